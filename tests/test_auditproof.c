/*
 * test_auditproof.c — checkpoints and proofs as outsiders get them
 * (auditproof.h), against a reference written here: the RFC 9162
 * definitions of MTH, PATH (2.1.3.1) and SUBPROOF (2.1.4.1) applied
 * recursively to every leaf, hashed with EVP_Digest directly from the
 * stored event texts — nothing from merkle.c or audit.c.
 */
#include "th_deploy.h"
#include "auditproof.h"
#include "ctx.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

static th_deploy D;
static void teardown(void) { th_deploy_teardown(&D); }

/* ---------------------------------------------------------------- reference */

typedef uint8_t hash[32];

static void sha(const void *a, size_t an, const void *b, size_t bn, const void *c, size_t cn, uint8_t *out)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ck_assert(m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1);
	EVP_DigestUpdate(m, a, an);
	if (bn)
		EVP_DigestUpdate(m, b, bn);
	if (cn)
		EVP_DigestUpdate(m, c, cn);
	ck_assert(EVP_DigestFinal_ex(m, out, NULL) == 1);
	EVP_MD_CTX_free(m);
}

static uint64_t split(uint64_t n)
{
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

static void mth(hash *d, uint64_t n, uint8_t *out)
{
	if (n == 0) {
		sha("", 0, NULL, 0, NULL, 0, out);
	} else if (n == 1) {
		memcpy(out, d[0], 32);
	} else {
		uint64_t k = split(n);
		hash l, r;
		mth(d, k, l);
		mth(d + k, n - k, r);
		sha("\x01", 1, l, 32, r, 32, out);
	}
}

/* PATH(m, D[n]), leaf-most first. */
static size_t ref_path(uint64_t m, hash *d, uint64_t n, hash *out)
{
	if (n <= 1)
		return 0;
	uint64_t k = split(n);
	size_t len;
	if (m < k) {
		len = ref_path(m, d, k, out);
		mth(d + k, n - k, out[len]);
	} else {
		len = ref_path(m - k, d + k, n - k, out);
		mth(d, k, out[len]);
	}
	return len + 1;
}

/* SUBPROOF(m, D[n], b). */
static size_t ref_subproof(uint64_t m, hash *d, uint64_t n, int b, hash *out)
{
	if (m == n) {
		if (b)
			return 0;
		mth(d, n, out[0]);
		return 1;
	}
	uint64_t k = split(n);
	size_t len;
	if (m <= k) {
		len = ref_subproof(m, d, k, b, out);
		mth(d + k, n - k, out[len]);
	} else {
		len = ref_subproof(m - k, d + k, n - k, 0, out);
		mth(d, k, out[len]);
	}
	return len + 1;
}

/* Every leaf, hashed from the stored text. */
static hash *ref_leaves(km_ctx *ctx, uint64_t *n)
{
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(km_db(ctx), "SELECT json FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	size_t cap = 1024;
	hash *d = malloc(cap * sizeof *d);
	*n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap)
			d = realloc(d, (cap *= 2) * sizeof *d);
		ck_assert_ptr_nonnull(d);
		sha("\x00", 1, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0), NULL, 0, d[(*n)++]);
	}
	sqlite3_finalize(st);
	return d;
}

/* Grow the log in transactions of 1, 2, 3... events, each signing a head,
 * until it has at least `want` entries. */
static void grow(km_ctx *ctx, uint64_t want)
{
	km_err e;
	for (int batch = 1;; batch++) {
		uint64_t n;
		ck_assert_int_eq(audit_size(km_db(ctx), &n, &e), KM_OK);
		if (n >= want)
			return;
		ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
		for (int i = 0; i < batch % 7 + 1; i++)
			ck_assert_int_eq(km_tx_audit(ctx, "test.event", "audit:test", "ok",
			                             json_pack("{s:i}", "i", i), &e), KM_OK);
		ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
	}
}

static int signed_at(km_ctx *ctx, uint64_t size)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(km_db(ctx), "SELECT 1 FROM audit_tree_heads WHERE size = ?", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	int r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return r;
}

/* ---------------------------------------------------------------- tests */

START_TEST(inclusion_and_consistency_match_the_rfc_definitions)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	grow(ctx, 140);
	uint64_t n;
	hash *leaves = ref_leaves(ctx, &n);
	km_audit_proof *p = malloc(sizeof *p);
	hash want[70], root;
	km_err e;
	size_t checked_inc = 0, checked_cons = 0, signed_seen = 0;

	for (uint64_t size = 1; size <= n; size++) {
		mth(leaves, size, root);
		/* edge leaves, the middle, and every leaf of the small trees */
		uint64_t picks[] = {0, 1, size / 2, size - 1, (size - 1) & ~(uint64_t)1};
		for (uint64_t m = 0; m < size; m++) {
			int pick = size <= 20;
			for (size_t j = 0; j < KM_ARRAY_LEN(picks); j++)
				pick |= picks[j] == m;
			if (!pick)
				continue;
			ck_assert_msg(km_audit_prove_inclusion(ctx, m + 1, size, p, &e) == KM_OK, "%s", e.msg);
			size_t len = ref_path(m, leaves, size, want);
			ck_assert_uint_eq(p->seq, m + 1);
			ck_assert_uint_eq(p->cp.size, size);
			ck_assert_uint_eq(p->len, len);
			ck_assert_msg(memcmp(p->path, want, len * 32) == 0, "inclusion %llu in %llu", (unsigned long long)m,
			              (unsigned long long)size);
			ck_assert(memcmp(p->cp.root, root, 32) == 0);
			ck_assert(memcmp(p->leaf_hash, leaves[m], 32) == 0);
			ck_assert_int_eq(p->cp.is_signed, signed_at(ctx, size));
			signed_seen += (size_t)p->cp.is_signed;
			checked_inc++;
		}
		/* consistency: every older size of the small trees, edges of all */
		for (uint64_t m = 0; m <= size; m++) {
			if (size > 40 && m > 2 && m != size / 2 && m != size - 1 && m != size && (m & (m - 1)) != 0)
				continue;
			ck_assert_msg(km_audit_prove_consistency(ctx, m, size, p, &e) == KM_OK, "%s", e.msg);
			size_t len = (m == 0 || m == size) ? 0 : ref_subproof(m, leaves, size, 1, want);
			ck_assert_uint_eq(p->first, m);
			ck_assert_uint_eq(p->len, len);
			ck_assert_msg(memcmp(p->path, want, len * 32) == 0, "consistency %llu -> %llu",
			              (unsigned long long)m, (unsigned long long)size);
			hash r1;
			mth(leaves, m, r1);
			ck_assert(memcmp(p->first_cp.root, r1, 32) == 0);
			ck_assert(memcmp(p->cp.root, root, 32) == 0);
			checked_cons++;
		}
	}
	ck_assert_uint_gt(signed_seen, 20); /* heads at many sizes were used */
	ck_assert_uint_gt(checked_inc, 600);
	ck_assert_uint_gt(checked_cons, 1000);

	/* size 0: the newest signed head, with its note */
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, n, 0, p, &e), KM_OK);
	ck_assert(p->cp.is_signed);
	ck_assert_uint_ge(p->cp.size, n);
	char line[32];
	snprintf(line, sizeof line, "\n%llu\n", (unsigned long long)p->cp.size);
	ck_assert_ptr_nonnull(strstr(p->cp.note, line));

	/* refusals */
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 0, 5, p, &e), KM_EUSAGE);
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 6, 5, p, &e), KM_EUSAGE);
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 1, n + 1000, p, &e), KM_EUSAGE);
	ck_assert_int_eq(km_audit_prove_consistency(ctx, 9, 3, p, &e), KM_EUSAGE);
	free(p);
	free(leaves);
	km_close(ctx);
}
END_TEST

START_TEST(a_damaged_node_gives_no_proof)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	grow(ctx, 40);
	km_audit_proof *p = malloc(sizeof *p);
	km_err e;
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 1, 32, p, &e), KM_OK);
	/* node over entries 3..4: on the path of entry 1 in every tree >= 4 */
	ck_assert_int_eq(sqlite3_exec(km_db(ctx), "UPDATE audit_nodes SET hash = zeroblob(32) "
	                              "WHERE level = 1 AND idx = 1", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 1, 32, p, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "entry 1 cannot be proven"));
	ck_assert_int_eq(km_audit_prove_consistency(ctx, 2, 32, p, &e), KM_EINTEGRITY);
	/* entries whose paths avoid it still prove */
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 3, 3, p, &e), KM_OK);
	free(p);
	km_close(ctx);
}
END_TEST

START_TEST(checkpoint_is_a_signed_note_by_the_audit_key)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_audit_checkpoint cp;
	km_err e;
	char origin[256];
	ck_assert_int_eq(km_audit_checkpoint_get(ctx, &cp, &e), KM_OK);
	ck_assert_int_eq(audit_origin(km_db(ctx), origin, sizeof origin, &e), KM_OK);
	/* text, blank line, "— origin base64" */
	char *cut = strstr(cp.note, "\n\n");
	ck_assert_ptr_nonnull(cut);
	size_t tlen = (size_t)(cut - cp.note) + 1;
	char prefix[300];
	snprintf(prefix, sizeof prefix, "\xe2\x80\x94 %s ", origin);
	ck_assert_int_eq(strncmp(cut + 2, prefix, strlen(prefix)), 0);
	const char *sig64 = cut + 2 + strlen(prefix);
	size_t slen = strlen(sig64);
	ck_assert(slen > 1 && sig64[slen - 1] == '\n');
	unsigned char raw[200];
	int rn = EVP_DecodeBlock(raw, (const unsigned char *)sig64, (int)(slen - 1));
	ck_assert_int_gt(rn, 8);
	while (slen > 1 && sig64[slen - 2] == '=') { /* DecodeBlock counts padding */
		rn--;
		slen--;
	}
	/* key ID = SHA-256(DER SPKI)[:4] */
	unsigned char *der = NULL;
	int dl = i2d_PUBKEY(ctx->audit_pub, &der);
	hash d;
	sha(der, (size_t)dl, NULL, 0, NULL, 0, d);
	OPENSSL_free(der);
	ck_assert(memcmp(raw, d, 4) == 0);
	/* the rest is a DER ECDSA signature over the text */
	EVP_MD_CTX *v = EVP_MD_CTX_new();
	ck_assert(EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL, ctx->audit_pub) == 1);
	ck_assert_int_eq(EVP_DigestVerify(v, raw + 4, (size_t)rn - 4, (const unsigned char *)cp.note, tlen), 1);
	EVP_MD_CTX_free(v);
	/* and the text is the tree head's */
	char text[512];
	ck_assert_uint_eq(audit_checkpoint_text(origin, cp.size, cp.root, cp.time, text, sizeof text), tlen);
	ck_assert_int_eq(strncmp(text, cp.note, tlen), 0);
	char vkey[KM_AUDIT_VKEY_MAX];
	uint32_t id;
	ck_assert_int_eq(km_audit_note_vkey(ctx, vkey, sizeof vkey, &id, &e), KM_OK);
	ck_assert_uint_eq(id, (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
	/* a forged head is never handed out */
	ck_assert_int_eq(sqlite3_exec(km_db(ctx), "UPDATE audit_tree_heads SET root = zeroblob(32) "
	                              "WHERE size = (SELECT max(size) FROM audit_tree_heads)", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(km_audit_checkpoint_get(ctx, &cp, &e), KM_EINTEGRITY);
	km_close(ctx);
}
END_TEST

START_TEST(who_may_prove_and_export)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	th_deploy_user(&D, ctx, "svc", KM_ROLE_SERVICE, "features/");
	km_audit_proof *p = malloc(sizeof *p);
	km_audit_export_result r;
	km_err e;
	char dir[400];
	snprintf(dir, sizeof dir, "%s/export", D.home);
	/* officers read proofs in place but do not export */
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 1, 0, p, &e), KM_OK);
	ck_assert_int_eq(km_audit_export(ctx, dir, NULL, 0, &r, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "audit.export"));
	km_close(ctx);
	ctx = th_deploy_open(&D, "svc");
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, 1, 0, p, &e), KM_EDENIED);
	ck_assert_int_eq(km_audit_checkpoint_get(ctx, &p->cp, &e), KM_EDENIED);
	km_close(ctx);
	free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auditproof");
	TCase *t = tcase_create("auditproof");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 300);
	tcase_add_test(t, inclusion_and_consistency_match_the_rfc_definitions);
	tcase_add_test(t, a_damaged_node_gives_no_proof);
	tcase_add_test(t, checkpoint_is_a_signed_note_by_the_audit_key);
	tcase_add_test(t, who_may_prove_and_export);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
