/*
 * test_merkle.c — RFC 6962 hashing, frontier, proof generation and
 * verification.
 *
 * Ground truth is twofold: the Certificate Transparency reference vectors
 * (the eight classic leaves, their roots at sizes 1..8, and the published
 * inclusion and consistency proofs), and a naive recursive implementation of
 * the RFC's definitions written here independently of core/merkle.c.
 */
#include "merkle.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB MERKLE_HASH_BYTES

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	ck_assert_uint_eq(strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static merkle_hasher *hasher(void)
{
	merkle_hasher *h = NULL;
	km_err e;
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	return h;
}

/* ------------------------------------------------------------ reference data */

static const struct {
	const char *data;
	size_t len;
} ct_leaves[] = {
	{"", 0},
	{"\x00", 1},
	{"\x10", 1},
	{"\x20\x21", 2},
	{"\x30\x31", 2},
	{"\x40\x41\x42\x43", 4},
	{"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
	{"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

/* ct_roots[n] is the root of the first n leaves. */
static const char *const ct_roots[] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* Published CT proofs over the same leaves.  a, b: index and size for
 * inclusion, old and new size for consistency. */
typedef struct proof_vector {
	uint64_t a, b;
	size_t len;
	const char *hashes[3];
} proof_vector;

static const proof_vector ct_inclusion[] = {
	{0, 1, 0, {NULL}},
	{0, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	           "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	           "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{5, 8, 3, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	           "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	           "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
	{1, 5, 3, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	           "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	           "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static const proof_vector ct_consistency[] = {
	{1, 1, 0, {NULL}},
	{1, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	           "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	           "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	           "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	           "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	           "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

/* ------------------------------------------------------------ leaf sources */

typedef struct leaf_table {
	uint8_t (*hash)[HB];
	uint64_t count;
	uint64_t fetches;
} leaf_table;

static km_status table_leaf(void *ctx, uint64_t index, uint8_t out[HB], km_err *e)
{
	leaf_table *t = ctx;
	if (index >= t->count)
		return km_fail(e, KM_ENOTFOUND, "no leaf %llu", (unsigned long long)index);
	memcpy(out, t->hash[index], HB);
	t->fetches++;
	return KM_OK;
}

static leaf_table ct_table(merkle_hasher *h)
{
	leaf_table t = {calloc(KM_ARRAY_LEN(ct_leaves), HB), KM_ARRAY_LEN(ct_leaves), 0};
	km_err e;
	ck_assert_ptr_nonnull(t.hash);
	for (size_t i = 0; i < KM_ARRAY_LEN(ct_leaves); i++)
		ck_assert_int_eq(merkle_leaf_hash(h, ct_leaves[i].data, ct_leaves[i].len, t.hash[i], &e), KM_OK);
	return t;
}

static leaf_table generated_table(merkle_hasher *h, uint64_t n)
{
	leaf_table t = {calloc(n, HB), n, 0};
	km_err e;
	ck_assert_ptr_nonnull(t.hash);
	for (uint64_t i = 0; i < n; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof buf, "leaf-%llu", (unsigned long long)i);
		ck_assert_int_eq(merkle_leaf_hash(h, buf, (size_t)len, t.hash[i], &e), KM_OK);
	}
	return t;
}

/* ------------------------------------------------------------ naive RFC 6962 */

static uint64_t naive_k(uint64_t n)
{
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

/* MTH(D[lo:hi]) straight from the recursive definition. */
static void naive_mth(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t lo, uint64_t hi, uint8_t out[HB])
{
	km_err e;
	if (hi == lo) {
		ck_assert_int_eq(merkle_sha256(h, NULL, 0, out, &e), KM_OK);
	} else if (hi - lo == 1) {
		memcpy(out, leaf[lo], HB);
	} else {
		uint8_t l[HB], r[HB];
		uint64_t k = naive_k(hi - lo);
		naive_mth(h, leaf, lo, lo + k, l);
		naive_mth(h, leaf, lo + k, hi, r);
		ck_assert_int_eq(merkle_node_hash(h, l, r, out, &e), KM_OK);
	}
}

/* PATH(m, D[lo:hi]), appended to proof. */
static void naive_path(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t m, uint64_t lo, uint64_t hi,
                       uint8_t (*proof)[HB], size_t *len)
{
	uint64_t n = hi - lo, k;
	if (n <= 1)
		return;
	k = naive_k(n);
	if (m < k) {
		naive_path(h, leaf, m, lo, lo + k, proof, len);
		naive_mth(h, leaf, lo + k, hi, proof[(*len)++]);
	} else {
		naive_path(h, leaf, m - k, lo + k, hi, proof, len);
		naive_mth(h, leaf, lo, lo + k, proof[(*len)++]);
	}
}

/* SUBPROOF(m, D[lo:hi], b), appended to proof. */
static void naive_subproof(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t m, uint64_t lo, uint64_t hi,
                           int b, uint8_t (*proof)[HB], size_t *len)
{
	uint64_t n = hi - lo, k;
	if (m == n) {
		if (!b)
			naive_mth(h, leaf, lo, hi, proof[(*len)++]);
		return;
	}
	k = naive_k(n);
	if (m <= k) {
		naive_subproof(h, leaf, m, lo, lo + k, b, proof, len);
		naive_mth(h, leaf, lo + k, hi, proof[(*len)++]);
	} else {
		naive_subproof(h, leaf, m - k, lo + k, hi, 0, proof, len);
		naive_mth(h, leaf, lo, lo + k, proof[(*len)++]);
	}
}

/* ------------------------------------------------------------ node sources */

/* Every perfect subtree of a leaf table, built level by level straight from
 * the definition (node(l, i) = node_hash(node(l-1, 2i), node(l-1, 2i+1))),
 * independently of the frontier and proof code. */
typedef struct node_table {
	leaf_table *leaves;
	uint8_t (*level[MERKLE_MAX_LEVELS])[HB]; /* level[0] unused: leaves */
	uint64_t count[MERKLE_MAX_LEVELS];
	uint64_t fetches;
	int fail_level;                           /* >= 0: fetches at this level fail */
} node_table;

static node_table node_table_build(merkle_hasher *h, leaf_table *t)
{
	node_table nt;
	km_err e;
	memset(&nt, 0, sizeof nt);
	nt.leaves = t;
	nt.fail_level = -1;
	nt.count[0] = t->count;
	for (unsigned l = 1; l < MERKLE_MAX_LEVELS && (t->count >> l) > 0; l++) {
		uint8_t (*below)[HB] = l == 1 ? t->hash : nt.level[l - 1];
		nt.count[l] = t->count >> l;
		nt.level[l] = calloc(nt.count[l], HB);
		ck_assert_ptr_nonnull(nt.level[l]);
		for (uint64_t i = 0; i < nt.count[l]; i++)
			ck_assert_int_eq(merkle_node_hash(h, below[2 * i], below[2 * i + 1], nt.level[l][i], &e), KM_OK);
	}
	return nt;
}

static void node_table_free(node_table *nt)
{
	for (unsigned l = 1; l < MERKLE_MAX_LEVELS; l++)
		free(nt->level[l]);
}

static km_status table_node(void *ctx, unsigned level, uint64_t index, uint8_t out[HB], km_err *e)
{
	node_table *nt = ctx;
	if ((int)level == nt->fail_level)
		return km_fail(e, KM_EINTEGRITY, "node (%u, %llu) withheld", level, (unsigned long long)index);
	if (level >= MERKLE_MAX_LEVELS || index >= nt->count[level])
		return km_fail(e, KM_ENOTFOUND, "no node (%u, %llu)", level, (unsigned long long)index);
	memcpy(out, level ? nt->level[level][index] : nt->leaves->hash[index], HB);
	nt->fetches++;
	return KM_OK;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_leaf_and_node_hash)
{
	merkle_hasher *h = hasher();
	uint8_t got[HB], want[HB], a[HB], b[HB];
	km_err e;

	ck_assert_int_eq(merkle_leaf_hash(h, NULL, 0, got, &e), KM_OK);
	unhex(ct_roots[1], want, HB);
	ck_assert_mem_eq(got, want, HB);
	ck_assert_int_eq(merkle_leaf_hash(h, "\x00", 1, got, &e), KM_OK);
	unhex("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", want, HB);
	ck_assert_mem_eq(got, want, HB);

	/* node(a, b) for the first two leaves is the size-2 root; the output
	 * may alias an input. */
	ck_assert_int_eq(merkle_leaf_hash(h, "", 0, a, &e), KM_OK);
	ck_assert_int_eq(merkle_leaf_hash(h, "\x00", 1, b, &e), KM_OK);
	ck_assert_int_eq(merkle_node_hash(h, a, b, a, &e), KM_OK);
	unhex(ct_roots[2], want, HB);
	ck_assert_mem_eq(a, want, HB);

	ck_assert_int_eq(merkle_sha256(h, NULL, 0, got, &e), KM_OK);
	unhex(ct_roots[0], want, HB);
	ck_assert_mem_eq(got, want, HB);
	merkle_hasher_free(h);
	merkle_hasher_free(NULL);
}
END_TEST

START_TEST(test_ct_roots)
{
	merkle_hasher *h = hasher();
	leaf_table t = ct_table(h);
	merkle_frontier f;
	uint8_t got[HB], want[HB];
	km_err e;

	merkle_frontier_init(&f);
	for (uint64_t n = 0; n <= t.count; n++) {
		if (n > 0)
			ck_assert_int_eq(merkle_frontier_append(h, &f, t.hash[n - 1], NULL, &e), KM_OK);
		ck_assert_uint_eq(f.size, n);
		ck_assert_int_eq(merkle_frontier_root(h, &f, got, &e), KM_OK);
		unhex(ct_roots[n], want, HB);
		ck_assert_msg(memcmp(got, want, HB) == 0, "root of %llu CT leaves", (unsigned long long)n);
		if (n > 0) {
			ck_assert_int_eq(merkle_range_root(h, table_leaf, &t, 0, n, got, &e), KM_OK);
			ck_assert_mem_eq(got, want, HB);
		}
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* The frontier's root agrees with the recursive definition at every size,
 * and the level reported by append is the one binary increment predicts. */
START_TEST(test_frontier_matches_naive)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 300);
	merkle_frontier f;
	uint8_t got[HB], want[HB];
	km_err e;

	merkle_frontier_init(&f);
	for (uint64_t n = 1; n <= t.count; n++) {
		unsigned level = 99;
		ck_assert_int_eq(merkle_frontier_append(h, &f, t.hash[n - 1], &level, &e), KM_OK);
		ck_assert_uint_eq(level, (unsigned)__builtin_ctzll(n));
		ck_assert_int_eq(merkle_frontier_root(h, &f, got, &e), KM_OK);
		naive_mth(h, t.hash, 0, n, want);
		ck_assert_msg(memcmp(got, want, HB) == 0, "frontier root differs at size %llu",
		              (unsigned long long)n);
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

static void check_vector(merkle_hasher *h, const proof_vector *v, const uint8_t (*got)[HB], size_t len)
{
	ck_assert_uint_eq(len, v->len);
	for (size_t i = 0; i < len; i++) {
		uint8_t want[HB];
		unhex(v->hashes[i], want, HB);
		ck_assert_msg(memcmp(got[i], want, HB) == 0, "proof (%llu, %llu) element %zu",
		              (unsigned long long)v->a, (unsigned long long)v->b, i);
	}
	(void)h;
}

START_TEST(test_ct_proofs)
{
	merkle_hasher *h = hasher();
	leaf_table t = ct_table(h);
	uint8_t proof[MERKLE_PROOF_MAX][HB], root[HB], root2[HB];
	size_t len;
	km_err e;

	for (size_t i = 0; i < KM_ARRAY_LEN(ct_inclusion); i++) {
		const proof_vector *v = &ct_inclusion[i];
		ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, v->a, v->b, proof,
		                                        MERKLE_PROOF_MAX, &len, &e), KM_OK);
		check_vector(h, v, (const uint8_t(*)[HB])proof, len);
		unhex(ct_roots[v->b], root, HB);
		ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[v->a], v->a, v->b,
		                                         (const uint8_t(*)[HB])proof, len, root, &e), KM_OK);
	}
	for (size_t i = 0; i < KM_ARRAY_LEN(ct_consistency); i++) {
		const proof_vector *v = &ct_consistency[i];
		ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, v->a, v->b, proof,
		                                          MERKLE_PROOF_MAX, &len, &e), KM_OK);
		check_vector(h, v, (const uint8_t(*)[HB])proof, len);
		unhex(ct_roots[v->a], root, HB);
		unhex(ct_roots[v->b], root2, HB);
		ck_assert_int_eq(merkle_verify_consistency(h, v->a, v->b, root, root2,
		                                           (const uint8_t(*)[HB])proof, len, &e), KM_OK);
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* Every way of bending a good inclusion proof must fail. */
static void inclusion_must_fail(merkle_hasher *h, const leaf_table *t, uint64_t m, uint64_t n,
                                const uint8_t (*proof)[HB], size_t len, const uint8_t root[HB])
{
	uint8_t bad[MERKLE_PROOF_MAX + 1][HB], other[HB];
	const uint8_t *leaf = t->hash[m];
	km_err e;

#define MUST_FAIL(expr, what) \
	ck_assert_msg((expr) == KM_EINTEGRITY, "inclusion %llu/%llu accepted with %s", \
	              (unsigned long long)m, (unsigned long long)n, what)

	if (m > 0)
		MUST_FAIL(merkle_verify_inclusion(h, leaf, m - 1, n, proof, len, root, &e), "index - 1");
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m + 1, n, proof, len, root, &e), "index + 1");
	if ((m ^ 2) != m && n > 2)
		MUST_FAIL(merkle_verify_inclusion(h, leaf, m ^ 2, n, proof, len, root, &e), "index ^ 2");
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n * 2, proof, len, root, &e), "size * 2");
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n / 2, proof, len, root, &e), "size / 2");
	memcpy(other, leaf, HB);
	other[0] ^= 1;
	MUST_FAIL(merkle_verify_inclusion(h, other, m, n, proof, len, root, &e), "wrong leaf");
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n, proof, len, other, &e), "wrong root");

	/* trailing and preceding extra hashes */
	memcpy(bad, proof, len * HB);
	memcpy(bad[len], root, HB);
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n, (const uint8_t(*)[HB])bad, len + 1, root, &e),
	          "trailing root");
	memcpy(bad[0], root, HB);
	memcpy(bad + 1, proof, len * HB);
	MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n, (const uint8_t(*)[HB])bad, len + 1, root, &e),
	          "preceding root");
	/* a flipped bit in each element; one element dropped */
	for (size_t i = 0; i < len; i++) {
		memcpy(bad, proof, len * HB);
		bad[i][0] ^= 8;
		MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n, (const uint8_t(*)[HB])bad, len, root, &e),
		          "flipped bit");
	}
	if (len > 0)
		MUST_FAIL(merkle_verify_inclusion(h, leaf, m, n, proof, len - 1, root, &e), "removed element");
#undef MUST_FAIL
}

START_TEST(test_inclusion_all_pairs)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 40);
	uint8_t proof[MERKLE_PROOF_MAX][HB], naive[MERKLE_PROOF_MAX][HB], root[HB];
	km_err e;

	for (uint64_t n = 1; n <= t.count; n++) {
		naive_mth(h, t.hash, 0, n, root);
		for (uint64_t m = 0; m < n; m++) {
			size_t len = 0, naive_len = 0;
			ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, m, n, proof,
			                                        MERKLE_PROOF_MAX, &len, &e), KM_OK);
			naive_path(h, t.hash, m, 0, n, naive, &naive_len);
			ck_assert_uint_eq(len, naive_len);
			ck_assert_msg(memcmp(proof, naive, len * HB) == 0, "inclusion proof %llu/%llu differs from RFC",
			              (unsigned long long)m, (unsigned long long)n);
			ck_assert_msg(merkle_verify_inclusion(h, t.hash[m], m, n, (const uint8_t(*)[HB])proof,
			                                      len, root, &e) == KM_OK,
			              "inclusion %llu/%llu: %s", (unsigned long long)m, (unsigned long long)n, e.msg);
			inclusion_must_fail(h, &t, m, n, (const uint8_t(*)[HB])proof, len, root);
		}
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

static void consistency_must_fail(merkle_hasher *h, uint64_t m, uint64_t n, const uint8_t r1[HB],
                                  const uint8_t r2[HB], const uint8_t (*proof)[HB], size_t len)
{
	uint8_t bad[MERKLE_PROOF_MAX + 1][HB], other[HB];
	km_err e;

#define MUST_FAIL(expr, what) \
	ck_assert_msg((expr) == KM_EINTEGRITY, "consistency %llu->%llu accepted with %s", \
	              (unsigned long long)m, (unsigned long long)n, what)

	memcpy(other, r1, HB);
	other[5] ^= 0x10;
	MUST_FAIL(merkle_verify_consistency(h, m, n, other, r2, proof, len, &e), "wrong old root");
	MUST_FAIL(merkle_verify_consistency(h, m, n, r1, other, proof, len, &e), "wrong new root");
	MUST_FAIL(merkle_verify_consistency(h, m, n, r2, r1, proof, len, &e), "swapped roots");
	MUST_FAIL(merkle_verify_consistency(h, m - 1, n, r1, r2, proof, len, &e), "old size - 1");
	MUST_FAIL(merkle_verify_consistency(h, m + 1, n, r1, r2, proof, len, &e), "old size + 1");
	MUST_FAIL(merkle_verify_consistency(h, m, n * 2, r1, r2, proof, len, &e), "new size * 2");
	MUST_FAIL(merkle_verify_consistency(h, m, n, r1, r2, proof, 0, &e), "empty proof");
	MUST_FAIL(merkle_verify_consistency(h, m, n, r1, r2, proof, len - 1, &e), "truncated proof");
	memcpy(bad, proof, len * HB);
	memcpy(bad[len], r2, HB);
	MUST_FAIL(merkle_verify_consistency(h, m, n, r1, r2, (const uint8_t(*)[HB])bad, len + 1, &e),
	          "trailing root");
	memcpy(bad[0], r1, HB);
	memcpy(bad + 1, proof, len * HB);
	MUST_FAIL(merkle_verify_consistency(h, m, n, r1, r2, (const uint8_t(*)[HB])bad, len + 1, &e),
	          "preceding root");
	for (size_t i = 0; i < len; i++) {
		memcpy(bad, proof, len * HB);
		bad[i][0] ^= 16;
		MUST_FAIL(merkle_verify_consistency(h, m, n, r1, r2, (const uint8_t(*)[HB])bad, len, &e),
		          "flipped bit");
	}
#undef MUST_FAIL
}

START_TEST(test_consistency_all_pairs)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 40);
	uint8_t proof[MERKLE_PROOF_MAX][HB], naive[MERKLE_PROOF_MAX][HB];
	uint8_t roots[41][HB];
	km_err e;

	for (uint64_t n = 0; n <= t.count; n++)
		naive_mth(h, t.hash, 0, n, roots[n]);
	for (uint64_t n = 0; n <= t.count; n++) {
		for (uint64_t m = 0; m <= n; m++) {
			size_t len = 99, naive_len = 0;
			ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, m, n, proof,
			                                          MERKLE_PROOF_MAX, &len, &e), KM_OK);
			if (m > 0 && m < n)
				naive_subproof(h, t.hash, m, 0, n, 1, naive, &naive_len);
			ck_assert_uint_eq(len, naive_len);
			ck_assert_msg(memcmp(proof, naive, len * HB) == 0,
			              "consistency proof %llu->%llu differs from RFC",
			              (unsigned long long)m, (unsigned long long)n);
			ck_assert_msg(merkle_verify_consistency(h, m, n, roots[m], roots[n],
			                                        (const uint8_t(*)[HB])proof, len, &e) == KM_OK,
			              "consistency %llu->%llu: %s", (unsigned long long)m,
			              (unsigned long long)n, e.msg);
			if (m > 0 && m < n)
				consistency_must_fail(h, m, n, roots[m], roots[n], (const uint8_t(*)[HB])proof, len);
		}
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

START_TEST(test_edge_cases)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 8);
	uint8_t proof[MERKLE_PROOF_MAX][HB], empty[HB], r4[HB], r5[HB], r8[HB];
	size_t len;
	km_err e;
	merkle_frontier f;

	ck_assert_int_eq(merkle_sha256(h, NULL, 0, empty, &e), KM_OK);
	naive_mth(h, t.hash, 0, 4, r4);
	naive_mth(h, t.hash, 0, 5, r5);
	naive_mth(h, t.hash, 0, 8, r8);

	/* usage errors from the generators */
	ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, 8, 8, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_EUSAGE);
	ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, 0, 0, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_EUSAGE);
	ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, 5, 3, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_EUSAGE);
	ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, 0, 8, proof, 2, &len, &e), KM_EUSAGE);
	ck_assert_int_eq(merkle_range_root(h, table_leaf, &t, 3, 3, proof[0], &e), KM_EUSAGE);
	/* a leaf source that fails passes its error through */
	ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, 0, 9, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_ENOTFOUND);

	/* trivial consistency cases */
	ck_assert_int_eq(merkle_verify_consistency(h, 0, 0, empty, empty, NULL, 0, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(h, 0, 8, empty, r8, NULL, 0, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(h, 0, 8, empty, r8, (const uint8_t(*)[HB])&empty, 1, &e),
	                 KM_EINTEGRITY);
	ck_assert_int_eq(merkle_verify_consistency(h, 4, 4, r4, r4, NULL, 0, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(h, 4, 4, r4, r5, NULL, 0, &e), KM_EINTEGRITY);
	ck_assert_int_eq(merkle_verify_consistency(h, 4, 4, r4, r4, (const uint8_t(*)[HB])&r4, 1, &e),
	                 KM_EINTEGRITY);
	ck_assert_int_eq(merkle_verify_consistency(h, 5, 4, r5, r4, NULL, 0, &e), KM_EINTEGRITY);
	/* time travel with a real proof */
	ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, 4, 8, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(h, 8, 4, r8, r4, (const uint8_t(*)[HB])proof, len, &e),
	                 KM_EINTEGRITY);

	/* inclusion in an empty tree, or past the end, never verifies */
	ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[0], 0, 0, NULL, 0, empty, &e), KM_EINTEGRITY);
	ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[0], 1, 1, NULL, 0, t.hash[0], &e), KM_EINTEGRITY);
	/* a single leaf is its own root with an empty proof */
	ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[0], 0, 1, NULL, 0, t.hash[0], &e), KM_OK);

	/* the frontier refuses to overflow */
	merkle_frontier_init(&f);
	f.size = UINT64_MAX;
	ck_assert_int_eq(merkle_frontier_append(h, &f, t.hash[0], NULL, &e), KM_ELIMIT);

	/* the frontier at 2^63 + 1 leaves: only the two subtrees matter */
	merkle_frontier_init(&f);
	f.size = (UINT64_C(1) << 63) | 1;
	memcpy(f.hash[63], r8, HB);
	memcpy(f.hash[0], r4, HB);
	ck_assert_int_eq(merkle_frontier_root(h, &f, proof[0], &e), KM_OK);
	ck_assert_int_eq(merkle_node_hash(h, r8, r4, proof[1], &e), KM_OK);
	ck_assert_mem_eq(proof[0], proof[1], HB);

	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* The nodes an append reports are the perfect subtrees the definition
 * says the tree gains: levels 1..ctz(n), the ones ending at leaf n. */
START_TEST(test_append_reports_nodes)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 300);
	merkle_frontier f;
	uint8_t nodes[MERKLE_MAX_LEVELS][HB], want[HB];
	km_err e;

	merkle_frontier_init(&f);
	for (uint64_t n = 1; n <= t.count; n++) {
		unsigned top = 99;
		memset(nodes, 0xee, sizeof nodes);
		ck_assert_int_eq(merkle_frontier_append_nodes(h, &f, t.hash[n - 1], nodes, &top, &e), KM_OK);
		ck_assert_uint_eq(top, (unsigned)__builtin_ctzll(n));
		for (unsigned l = 1; l <= top; l++) {
			naive_mth(h, t.hash, n - (UINT64_C(1) << l), n, want);
			ck_assert_msg(memcmp(nodes[l], want, HB) == 0, "node at level %u after %llu leaves", l,
			              (unsigned long long)n);
		}
		/* nothing written outside 1..top */
		ck_assert_int_eq(nodes[0][0], 0xee);
		ck_assert_int_eq(nodes[top + 1][0], 0xee);
	}
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* Range roots from nodes equal the definition for every range a split can
 * produce, and refuse ranges that no set of stored subtrees tiles. */
START_TEST(test_range_root_nodes)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 70);
	node_table nt = node_table_build(h, &t);
	uint8_t got[HB], want[HB];
	km_err e;

	for (uint64_t lo = 0; lo < t.count; lo++) {
		for (uint64_t hi = lo + 1; hi <= t.count; hi++) {
			uint64_t top = UINT64_C(1) << (63 - __builtin_clzll(hi - lo));
			km_status st = merkle_range_root_nodes(h, table_node, &nt, lo, hi, got, &e);
			if (lo % top != 0) {
				ck_assert_msg(st == KM_EUSAGE, "[%llu, %llu) accepted", (unsigned long long)lo,
				              (unsigned long long)hi);
				continue;
			}
			ck_assert_int_eq(st, KM_OK);
			naive_mth(h, t.hash, lo, hi, want);
			ck_assert_msg(memcmp(got, want, HB) == 0, "root of [%llu, %llu)", (unsigned long long)lo,
			              (unsigned long long)hi);
		}
	}
	ck_assert_int_eq(merkle_range_root_nodes(h, table_node, &nt, 5, 5, got, &e), KM_EUSAGE);
	node_table_free(&nt);
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* Proofs from nodes are byte for byte the leaf-walking proofs and the RFC's
 * recursive definition, for every size 1..70 and every pair. */
START_TEST(test_node_proofs_all_pairs)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 70);
	node_table nt = node_table_build(h, &t);
	uint8_t proof[MERKLE_PROOF_MAX][HB], ref[MERKLE_PROOF_MAX][HB], naive[MERKLE_PROOF_MAX][HB];
	uint8_t roots[71][HB];
	km_err e;

	for (uint64_t n = 0; n <= t.count; n++)
		naive_mth(h, t.hash, 0, n, roots[n]);
	for (uint64_t n = 1; n <= t.count; n++) {
		for (uint64_t m = 0; m < n; m++) {
			size_t len = 99, ref_len = 98, naive_len = 0;
			ck_assert_int_eq(merkle_inclusion_proof_nodes(h, table_node, &nt, m, n, proof, MERKLE_PROOF_MAX,
			                                              &len, &e), KM_OK);
			ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, m, n, ref, MERKLE_PROOF_MAX, &ref_len,
			                                        &e), KM_OK);
			naive_path(h, t.hash, m, 0, n, naive, &naive_len);
			ck_assert_uint_eq(len, naive_len);
			ck_assert_uint_eq(ref_len, naive_len);
			ck_assert_msg(memcmp(proof, naive, len * HB) == 0 && memcmp(ref, naive, len * HB) == 0,
			              "inclusion %llu/%llu differs", (unsigned long long)m, (unsigned long long)n);
			ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[m], m, n, (const uint8_t(*)[HB])proof, len,
			                                         roots[n], &e), KM_OK);
		}
	}
	for (uint64_t n = 0; n <= t.count; n++) {
		for (uint64_t m = 0; m <= n; m++) {
			size_t len = 99, ref_len = 98, naive_len = 0;
			ck_assert_int_eq(merkle_consistency_proof_nodes(h, table_node, &nt, m, n, proof, MERKLE_PROOF_MAX,
			                                                &len, &e), KM_OK);
			ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, m, n, ref, MERKLE_PROOF_MAX,
			                                          &ref_len, &e), KM_OK);
			if (m > 0 && m < n)
				naive_subproof(h, t.hash, m, 0, n, 1, naive, &naive_len);
			ck_assert_uint_eq(len, naive_len);
			ck_assert_uint_eq(ref_len, naive_len);
			ck_assert_msg(memcmp(proof, naive, len * HB) == 0 && memcmp(ref, naive, len * HB) == 0,
			              "consistency %llu->%llu differs", (unsigned long long)m, (unsigned long long)n);
			ck_assert_int_eq(merkle_verify_consistency(h, m, n, roots[m], roots[n],
			                                           (const uint8_t(*)[HB])proof, len, &e), KM_OK);
		}
	}
	node_table_free(&nt);
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* splitmix64, for reproducible random pairs */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/* Random pairs in a bigger tree: node proofs equal the leaf-walking ones and
 * verify against roots made from the definition, with O(log n) fetches
 * against about n for the leaf walk. */
START_TEST(test_node_proofs_random_large)
{
	merkle_hasher *h = hasher();
	const uint64_t total = 20001;
	leaf_table t = generated_table(h, total);
	node_table nt = node_table_build(h, &t);
	uint8_t proof[MERKLE_PROOF_MAX][HB], ref[MERKLE_PROOF_MAX][HB], r1[HB], r2[HB];
	uint64_t seed = 7;
	km_err e;

	for (int i = 0; i < 40; i++) {
		uint64_t n = 1 + mix64(seed++) % total, m = mix64(seed++) % n;
		size_t len = 0, ref_len = 0;
		nt.fetches = 0;
		t.fetches = 0;
		ck_assert_int_eq(merkle_inclusion_proof_nodes(h, table_node, &nt, m, n, proof, MERKLE_PROOF_MAX, &len,
		                                              &e), KM_OK);
		ck_assert_uint_le(nt.fetches, 2 * 64);
		ck_assert_uint_le(nt.fetches, 2 * (64 - (uint64_t)__builtin_clzll(n)) + 1);
		ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, m, n, ref, MERKLE_PROOF_MAX, &ref_len, &e),
		                 KM_OK);
		ck_assert_uint_eq(len, ref_len);
		ck_assert_msg(memcmp(proof, ref, len * HB) == 0, "inclusion %llu/%llu", (unsigned long long)m,
		              (unsigned long long)n);
		naive_mth(h, t.hash, 0, n, r2);
		ck_assert_int_eq(merkle_verify_inclusion(h, t.hash[m], m, n, (const uint8_t(*)[HB])proof, len, r2, &e),
		                 KM_OK);

		nt.fetches = 0;
		ck_assert_int_eq(merkle_consistency_proof_nodes(h, table_node, &nt, m, n, proof, MERKLE_PROOF_MAX,
		                                                &len, &e), KM_OK);
		ck_assert_uint_le(nt.fetches, 2 * (64 - (uint64_t)__builtin_clzll(n)) + 1);
		ck_assert_int_eq(merkle_consistency_proof(h, table_leaf, &t, m, n, ref, MERKLE_PROOF_MAX, &ref_len,
		                                          &e), KM_OK);
		ck_assert_uint_eq(len, ref_len);
		ck_assert_msg(memcmp(proof, ref, len * HB) == 0, "consistency %llu->%llu", (unsigned long long)m,
		              (unsigned long long)n);
		naive_mth(h, t.hash, 0, m, r1);
		ck_assert_int_eq(merkle_verify_consistency(h, m, n, r1, r2, (const uint8_t(*)[HB])proof, len, &e),
		                 KM_OK);
	}
	/* a node source that fails passes its error through */
	nt.fail_level = 3;
	size_t len;
	ck_assert_int_eq(merkle_inclusion_proof_nodes(h, table_node, &nt, 0, 64, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_EINTEGRITY);
	ck_assert_int_eq(merkle_inclusion_proof_nodes(h, table_node, &nt, 0, 8, proof, 2, &len, &e), KM_EUSAGE);
	ck_assert_int_eq(merkle_inclusion_proof_nodes(h, table_node, &nt, 8, 8, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_EUSAGE);
	ck_assert_int_eq(merkle_consistency_proof_nodes(h, table_node, &nt, 9, 8, proof, MERKLE_PROOF_MAX, &len,
	                                                &e), KM_EUSAGE);
	node_table_free(&nt);
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

/* A proof reads about as many leaves as the tree has, in ascending runs. */
START_TEST(test_proof_cost)
{
	merkle_hasher *h = hasher();
	leaf_table t = generated_table(h, 1000);
	uint8_t proof[MERKLE_PROOF_MAX][HB];
	size_t len;
	km_err e;

	ck_assert_int_eq(merkle_inclusion_proof(h, table_leaf, &t, 637, 1000, proof, MERKLE_PROOF_MAX, &len, &e),
	                 KM_OK);
	ck_assert_uint_eq(len, 10);
	ck_assert_uint_le(t.fetches, 1000);
	free(t.hash);
	merkle_hasher_free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("merkle");
	TCase *tc = tcase_create("rfc6962");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_leaf_and_node_hash);
	tcase_add_test(tc, test_ct_roots);
	tcase_add_test(tc, test_frontier_matches_naive);
	tcase_add_test(tc, test_ct_proofs);
	tcase_add_test(tc, test_inclusion_all_pairs);
	tcase_add_test(tc, test_consistency_all_pairs);
	tcase_add_test(tc, test_edge_cases);
	tcase_add_test(tc, test_proof_cost);
	tcase_add_test(tc, test_append_reports_nodes);
	tcase_add_test(tc, test_range_root_nodes);
	tcase_add_test(tc, test_node_proofs_all_pairs);
	tcase_add_test(tc, test_node_proofs_random_large);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
