/*
 * merkle.c — RFC 6962 / RFC 9162 Merkle hashing, frontier, proofs.
 *
 * Every hash goes through one reused EVP_MD_CTX; nothing here allocates
 * after merkle_hasher_new().  Proof generation walks the RFC's recursive
 * definitions iteratively (a tree of 2^64 leaves is only 64 levels deep, so
 * fixed arrays of MERKLE_MAX_LEVELS ranges are enough), collecting the
 * ranges whose roots the proof lists; the roots then come from leaves or
 * from stored nodes.  Every range the split produces starts at a multiple of
 * its largest power of two, so it is tiled by at most 64 stored nodes, and
 * at most one range of a proof needs more than one.
 */
#include "merkle.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct merkle_hasher {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
};

static const uint8_t leaf_prefix = 0x00;
static const uint8_t node_prefix = 0x01;

km_status merkle_hasher_new(merkle_hasher **out, km_err *e)
{
	merkle_hasher *h = calloc(1, sizeof *h);
	*out = NULL;
	if (!h)
		return km_fail(e, KM_ENOMEM, "out of memory for the Merkle hasher");
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (!h->md || !h->ctx) {
		merkle_hasher_free(h);
		return km_fail(e, KM_EINTERNAL, "OpenSSL has no usable SHA-256 implementation");
	}
	*out = h;
	return KM_OK;
}

void merkle_hasher_free(merkle_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	free(h);
}

/* SHA-256 over up to three pieces; NULL pieces are skipped. */
static km_status hash3(merkle_hasher *h, const void *a, size_t alen, const void *b, size_t blen,
                       const void *c, size_t clen, uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	unsigned int outlen = 0;
	if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 ||
	    (alen && EVP_DigestUpdate(h->ctx, a, alen) != 1) ||
	    (blen && EVP_DigestUpdate(h->ctx, b, blen) != 1) ||
	    (clen && EVP_DigestUpdate(h->ctx, c, clen) != 1) ||
	    EVP_DigestFinal_ex(h->ctx, out, &outlen) != 1 || outlen != MERKLE_HASH_BYTES)
		return km_fail(e, KM_EINTERNAL, "SHA-256 failed inside OpenSSL");
	return KM_OK;
}

km_status merkle_leaf_hash(merkle_hasher *h, const void *data, size_t len,
                           uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	return hash3(h, &leaf_prefix, 1, data, len, NULL, 0, out, e);
}

km_status merkle_node_hash(merkle_hasher *h, const uint8_t left[MERKLE_HASH_BYTES],
                           const uint8_t right[MERKLE_HASH_BYTES],
                           uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	/* The digest is written only at Final, after both inputs were read,
	 * so out may alias either input. */
	return hash3(h, &node_prefix, 1, left, MERKLE_HASH_BYTES, right, MERKLE_HASH_BYTES, out, e);
}

km_status merkle_sha256(merkle_hasher *h, const void *data, size_t len,
                        uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	return hash3(h, data, len, NULL, 0, NULL, 0, out, e);
}

/* ------------------------------------------------------------ frontier */

void merkle_frontier_init(merkle_frontier *f)
{
	memset(f, 0, sizeof *f);
}

km_status merkle_frontier_append_nodes(merkle_hasher *h, merkle_frontier *f,
                                       const uint8_t leaf[MERKLE_HASH_BYTES],
                                       uint8_t (*nodes)[MERKLE_HASH_BYTES],
                                       unsigned *level_out, km_err *e)
{
	uint8_t carry[MERKLE_HASH_BYTES];
	unsigned level = 0;

	if (f->size == UINT64_MAX)
		return km_fail(e, KM_ELIMIT, "the Merkle tree is full (2^64 - 1 leaves)");
	memcpy(carry, leaf, sizeof carry);
	/* Like binary increment: each set low bit is a subtree of the same
	 * size as the carry, sitting to its left; merge and move up.  Every
	 * merge completes a perfect subtree one level higher. */
	while (f->size >> level & 1) {
		km_status s = merkle_node_hash(h, f->hash[level], carry, carry, e);
		if (s != KM_OK)
			return s;
		level++;
		if (nodes)
			memcpy(nodes[level], carry, sizeof carry);
	}
	memcpy(f->hash[level], carry, sizeof carry);
	f->size++;
	if (level_out)
		*level_out = level;
	return KM_OK;
}

km_status merkle_frontier_append(merkle_hasher *h, merkle_frontier *f,
                                 const uint8_t leaf[MERKLE_HASH_BYTES],
                                 unsigned *level_out, km_err *e)
{
	return merkle_frontier_append_nodes(h, f, leaf, NULL, level_out, e);
}

km_status merkle_frontier_root(merkle_hasher *h, const merkle_frontier *f,
                               uint8_t root[MERKLE_HASH_BYTES], km_err *e)
{
	int have = 0;

	if (f->size == 0)
		return merkle_sha256(h, NULL, 0, root, e);
	/* Fold right to left: the smallest subtree is the rightmost. */
	for (unsigned level = 0; level < MERKLE_MAX_LEVELS; level++) {
		if (!(f->size >> level & 1))
			continue;
		if (!have) {
			memcpy(root, f->hash[level], MERKLE_HASH_BYTES);
			have = 1;
		} else {
			km_status s = merkle_node_hash(h, f->hash[level], root, root, e);
			if (s != KM_OK)
				return s;
		}
	}
	return KM_OK;
}

/* ------------------------------------------------------------ proofs */

/* Largest power of two strictly below n (n >= 2): the RFC's split point. */
static uint64_t split_point(uint64_t n)
{
	return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

km_status merkle_range_root(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                            uint64_t start, uint64_t end,
                            uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	merkle_frontier f;
	uint8_t lh[MERKLE_HASH_BYTES];

	if (start >= end)
		return km_fail(e, KM_EUSAGE, "empty Merkle range [%llu, %llu)",
		               (unsigned long long)start, (unsigned long long)end);
	merkle_frontier_init(&f);
	for (uint64_t i = start; i < end; i++) {
		km_status s = leaf(ctx, i, lh, e);
		if (s == KM_OK)
			s = merkle_frontier_append(h, &f, lh, NULL, e);
		if (s != KM_OK)
			return s;
	}
	return merkle_frontier_root(h, &f, out, e);
}

km_status merkle_range_root_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                  uint64_t start, uint64_t end,
                                  uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	uint8_t sub[MERKLE_MAX_LEVELS][MERKLE_HASH_BYTES];
	size_t count = 0;
	uint64_t pos = start, span;

	if (start >= end)
		return km_fail(e, KM_EUSAGE, "empty Merkle range [%llu, %llu)",
		               (unsigned long long)start, (unsigned long long)end);
	span = end - start;
	if (start & ((UINT64_C(1) << (63 - __builtin_clzll(span))) - 1))
		return km_fail(e, KM_EUSAGE, "Merkle range [%llu, %llu) is not tiled by stored subtrees",
		               (unsigned long long)start, (unsigned long long)end);
	/* Tiles left to right, largest first: each starts at a multiple of
	 * its own size because every tile before it is larger. */
	for (int level = 63; level >= 0; level--) {
		if (!(span >> level & 1))
			continue;
		km_status s = node(ctx, (unsigned)level, pos >> level, sub[count], e);
		if (s != KM_OK)
			return s;
		pos += UINT64_C(1) << level;
		count++;
	}
	/* Fold right to left, as the frontier root does. */
	memcpy(out, sub[count - 1], MERKLE_HASH_BYTES);
	for (size_t i = count - 1; i-- > 0;) {
		km_status s = merkle_node_hash(h, sub[i], out, out, e);
		if (s != KM_OK)
			return s;
	}
	return KM_OK;
}

/* Where a proof's hashes come from: leaf hashes (about n fetches, the
 * reference) or stored nodes (O(log n)); exactly one of leaf, node is set. */
typedef struct hash_source {
	merkle_leaf_fn leaf;
	merkle_node_fn node;
	void *ctx;
} hash_source;

static km_status source_root(merkle_hasher *h, const hash_source *src, uint64_t lo, uint64_t hi,
                             uint8_t out[MERKLE_HASH_BYTES], km_err *e)
{
	return src->node ? merkle_range_root_nodes(h, src->node, src->ctx, lo, hi, out, e)
	                 : merkle_range_root(h, src->leaf, src->ctx, lo, hi, out, e);
}

typedef struct leaf_range {
	uint64_t lo, hi;
} leaf_range;

/* Emit the roots of ranges[count-1] .. ranges[0] (reverse order, since the
 * walks below collect siblings root-first and proofs list them leaf-first). */
static km_status emit_reversed(merkle_hasher *h, const hash_source *src, const leaf_range *ranges,
                               size_t count, uint8_t (*proof)[MERKLE_HASH_BYTES], size_t *len,
                               km_err *e)
{
	while (count-- > 0) {
		km_status s = source_root(h, src, ranges[count].lo, ranges[count].hi, proof[(*len)++], e);
		if (s != KM_OK)
			return s;
	}
	return KM_OK;
}

static km_status inclusion_proof(merkle_hasher *h, const hash_source *src, uint64_t index,
                                 uint64_t size, uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                 size_t *proof_len, km_err *e)
{
	leaf_range sib[MERKLE_MAX_LEVELS];
	size_t depth = 0;
	uint64_t lo = 0, hi = size;

	*proof_len = 0;
	if (index >= size)
		return km_fail(e, KM_EUSAGE, "leaf %llu is not in a tree of %llu leaves",
		               (unsigned long long)index, (unsigned long long)size);
	/* PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      if m < k
	 *               = PATH(m - k, D[k:n]) : MTH(D[0:k])  otherwise */
	while (hi - lo > 1) {
		uint64_t k = split_point(hi - lo);
		if (index - lo < k) {
			sib[depth++] = (leaf_range){lo + k, hi};
			hi = lo + k;
		} else {
			sib[depth++] = (leaf_range){lo, lo + k};
			lo += k;
		}
	}
	if (depth > cap)
		return km_fail(e, KM_EUSAGE, "inclusion proof needs %zu hashes, room for %zu", depth, cap);
	return emit_reversed(h, src, sib, depth, proof, proof_len, e);
}

static km_status consistency_proof(merkle_hasher *h, const hash_source *src, uint64_t first,
                                   uint64_t second, uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                   size_t *proof_len, km_err *e)
{
	leaf_range sib[MERKLE_MAX_LEVELS];
	size_t depth = 0;
	uint64_t lo = 0, hi = second, m = first;
	int complete = 1; /* the RFC's flag b: the old tree is a complete subtree */
	leaf_range tail = {0, 0};

	*proof_len = 0;
	if (first > second)
		return km_fail(e, KM_EUSAGE, "no consistency proof from size %llu to the smaller %llu",
		               (unsigned long long)first, (unsigned long long)second);
	if (first == 0 || first == second)
		return KM_OK;
	/* SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])         if m <= k
	 *                      = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  if m > k
	 *                      = [] if b, else [MTH(D[n])]                     if m == n */
	for (;;) {
		uint64_t n = hi - lo;
		if (m == n) {
			if (!complete)
				tail = (leaf_range){lo, hi};
			break;
		}
		uint64_t k = split_point(n);
		if (m <= k) {
			sib[depth++] = (leaf_range){lo + k, hi};
			hi = lo + k;
		} else {
			sib[depth++] = (leaf_range){lo, lo + k};
			m -= k;
			lo += k;
			complete = 0;
		}
	}
	if (depth + (tail.hi > tail.lo) > cap)
		return km_fail(e, KM_EUSAGE, "consistency proof needs %zu hashes, room for %zu",
		               depth + 1, cap);
	if (tail.hi > tail.lo) {
		km_status s = source_root(h, src, tail.lo, tail.hi, proof[0], e);
		if (s != KM_OK)
			return s;
		*proof_len = 1;
	}
	return emit_reversed(h, src, sib, depth, proof, proof_len, e);
}

km_status merkle_inclusion_proof(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                                 uint64_t index, uint64_t size,
                                 uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                 size_t *proof_len, km_err *e)
{
	hash_source src = {leaf, NULL, ctx};
	return inclusion_proof(h, &src, index, size, proof, cap, proof_len, e);
}

km_status merkle_consistency_proof(merkle_hasher *h, merkle_leaf_fn leaf, void *ctx,
                                   uint64_t first, uint64_t second,
                                   uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                   size_t *proof_len, km_err *e)
{
	hash_source src = {leaf, NULL, ctx};
	return consistency_proof(h, &src, first, second, proof, cap, proof_len, e);
}

km_status merkle_inclusion_proof_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                       uint64_t index, uint64_t size,
                                       uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                       size_t *proof_len, km_err *e)
{
	hash_source src = {NULL, node, ctx};
	return inclusion_proof(h, &src, index, size, proof, cap, proof_len, e);
}

km_status merkle_consistency_proof_nodes(merkle_hasher *h, merkle_node_fn node, void *ctx,
                                         uint64_t first, uint64_t second,
                                         uint8_t (*proof)[MERKLE_HASH_BYTES], size_t cap,
                                         size_t *proof_len, km_err *e)
{
	hash_source src = {NULL, node, ctx};
	return consistency_proof(h, &src, first, second, proof, cap, proof_len, e);
}

/* ------------------------------------------------------------ verification */

km_status merkle_verify_inclusion(merkle_hasher *h, const uint8_t leaf[MERKLE_HASH_BYTES],
                                  uint64_t index, uint64_t size,
                                  const uint8_t (*proof)[MERKLE_HASH_BYTES], size_t proof_len,
                                  const uint8_t root[MERKLE_HASH_BYTES], km_err *e)
{
	uint8_t r[MERKLE_HASH_BYTES];
	uint64_t fn = index, sn;

	if (index >= size)
		return km_fail(e, KM_EINTEGRITY, "leaf index %llu is outside a tree of %llu leaves",
		               (unsigned long long)index, (unsigned long long)size);
	sn = size - 1;
	memcpy(r, leaf, sizeof r);
	for (size_t i = 0; i < proof_len; i++) {
		km_status s;
		if (sn == 0)
			return km_fail(e, KM_EINTEGRITY, "inclusion proof is longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			s = merkle_node_hash(h, proof[i], r, r, e);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			s = merkle_node_hash(h, r, proof[i], r, e);
		}
		if (s != KM_OK)
			return s;
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return km_fail(e, KM_EINTEGRITY, "inclusion proof is too short for a tree of %llu leaves",
		               (unsigned long long)size);
	if (memcmp(r, root, sizeof r) != 0)
		return km_fail(e, KM_EINTEGRITY, "inclusion proof does not lead to the tree head's root");
	return KM_OK;
}

km_status merkle_verify_consistency(merkle_hasher *h, uint64_t first, uint64_t second,
                                    const uint8_t first_root[MERKLE_HASH_BYTES],
                                    const uint8_t second_root[MERKLE_HASH_BYTES],
                                    const uint8_t (*proof)[MERKLE_HASH_BYTES], size_t proof_len,
                                    km_err *e)
{
	uint8_t fr[MERKLE_HASH_BYTES], sr[MERKLE_HASH_BYTES];
	uint64_t fn, sn;
	size_t next;

	if (first > second)
		return km_fail(e, KM_EINTEGRITY, "a tree of %llu leaves cannot extend one of %llu",
		               (unsigned long long)second, (unsigned long long)first);
	if (first == second) {
		if (proof_len != 0)
			return km_fail(e, KM_EINTEGRITY, "consistency proof between equal sizes must be empty");
		if (memcmp(first_root, second_root, MERKLE_HASH_BYTES) != 0)
			return km_fail(e, KM_EINTEGRITY, "two different roots for the same tree size %llu",
			               (unsigned long long)first);
		return KM_OK;
	}
	if (first == 0) {
		if (proof_len != 0)
			return km_fail(e, KM_EINTEGRITY, "consistency proof from the empty tree must be empty");
		return KM_OK;
	}
	if (proof_len == 0)
		return km_fail(e, KM_EINTEGRITY, "consistency proof is empty");

	/* If first is a power of two, the old root itself is the proof's
	 * implicit first element. */
	if ((first & (first - 1)) == 0) {
		memcpy(fr, first_root, sizeof fr);
		next = 0;
	} else {
		memcpy(fr, proof[0], sizeof fr);
		next = 1;
	}
	memcpy(sr, fr, sizeof sr);
	fn = first - 1;
	sn = second - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; next < proof_len; next++) {
		const uint8_t *c = proof[next];
		km_status s;
		if (sn == 0)
			return km_fail(e, KM_EINTEGRITY, "consistency proof is longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			s = merkle_node_hash(h, c, fr, fr, e);
			if (s == KM_OK)
				s = merkle_node_hash(h, c, sr, sr, e);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			s = merkle_node_hash(h, sr, c, sr, e);
		}
		if (s != KM_OK)
			return s;
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return km_fail(e, KM_EINTEGRITY, "consistency proof is too short");
	if (memcmp(fr, first_root, sizeof fr) != 0)
		return km_fail(e, KM_EINTEGRITY, "consistency proof does not reproduce the old root");
	if (memcmp(sr, second_root, sizeof sr) != 0)
		return km_fail(e, KM_EINTEGRITY, "consistency proof does not reproduce the new root");
	return KM_OK;
}
