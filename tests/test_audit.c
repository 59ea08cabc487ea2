/*
 * test_audit.c — the audit log end to end, with a real SoftHSM2 token
 * signing the tree heads.
 *
 * The tamper tests play the attacker: they open the database with the
 * plain sqlite3 C API and run the SQL one would type into the sqlite3 shell
 * (computing a SHA-256 on the side where the attack needs one).  Each
 * asserts that verification notices, names the right first bad entry, and
 * says what happened in words.
 */
#include "audit.h"
#include "hsm.h"
#include "th_softhsm.h"

#include <check.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB MERKLE_HASH_BYTES

typedef struct fixture {
	th_hsm t;
	hsm *h;
	sqlite3 *db;
	EVP_PKEY *pub;
	char path[400];
} fixture;

static fixture fx;

static const char origin[] = "keyward/test-deployment";

static km_status sign_cb(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	return hsm_audit_sign(ctx, digest, sig, e);
}

static void sql(sqlite3 *db, const char *text)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, text, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", text, err ? err : "?");
	sqlite3_free(err);
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void setup(void)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	km_err e;

	memset(&fx, 0, sizeof fx);
	ck_assert_int_eq(th_hsm_setup_keys(&fx.t, &fx.h), 0);
	snprintf(fx.path, sizeof fx.path, "%s/catalogue.db", fx.t.dir);
	fx.db = open_db(fx.path);
	sql(fx.db, "PRAGMA journal_mode = WAL");
	sql(fx.db, audit_schema_sql);
	sql(fx.db, "INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/test-deployment')");
	ck_assert_int_eq(hsm_audit_pubkey_der(fx.h, &der, &der_len, &e), KM_OK);
	const unsigned char *p = der;
	fx.pub = d2i_PUBKEY(NULL, &p, (long)der_len);
	ck_assert_ptr_nonnull(fx.pub);
	free(der);
}

static void teardown(void)
{
	EVP_PKEY_free(fx.pub);
	sqlite3_close(fx.db);
	hsm_close(fx.h);
	th_hsm_teardown(&fx.t);
}

/* ------------------------------------------------------------ writing helpers */

static const char *const actors[] = {"alice", "bob", "carol"};
static const char *const objects[] = {"features/credit-risk", "features/fraud", "models/fraud-v4",
                                      "datasets/claims-2025"};
static const char *const actions[] = {"key.rotate", "key.create", "asset.protect", "audit.verify",
                                      "key.approve"};
static const char *const results[] = {"ok", "ok", "denied", "ok", "error", "ok", "ok"};

/* The i-th event of a test log (i from 1): deterministic and varied. */
static audit_event nth_event(uint64_t i, json_t **details)
{
	*details = json_pack("{s:I,s:s,s:b}", "n", (json_int_t)i, "request", "r-77", "expedited", (int)(i % 2));
	audit_event ev = {actors[i % KM_ARRAY_LEN(actors)], actions[i % KM_ARRAY_LEN(actions)],
	                  objects[i % KM_ARRAY_LEN(objects)], results[i % KM_ARRAY_LEN(results)], *details};
	return ev;
}

/* Append events until the log has `upto` entries, in one transaction,
 * signing a head before COMMIT if sign is set. */
static void grow(sqlite3 *db, uint64_t upto, int sign)
{
	uint64_t n, seq;
	km_err e;

	sql(db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_size(db, &n, &e), KM_OK);
	for (uint64_t i = n + 1; i <= upto; i++) {
		json_t *d;
		audit_event ev = nth_event(i, &d);
		ck_assert_msg(audit_append(db, &ev, &seq, &e) == KM_OK, "append %llu: %s", (unsigned long long)i, e.msg);
		ck_assert_uint_eq(seq, i);
		json_decref(d);
	}
	if (sign)
		ck_assert_msg(audit_sign_head(db, sign_cb, fx.h, &e) == KM_OK, "sign: %s", e.msg);
	sql(db, "COMMIT");
}

/* The standard log: 100 events, heads at 30, 60 and 100. */
static void standard_log(void)
{
	grow(fx.db, 30, 1);
	grow(fx.db, 60, 1);
	grow(fx.db, 100, 1);
}

static audit_verify_result verify(void)
{
	audit_verify_result r;
	km_err e;
	ck_assert_msg(audit_verify(fx.db, fx.pub, NULL, NULL, &r, &e) == KM_OK, "verify: %s", e.msg);
	return r;
}

static void expect_bad(const audit_verify_result *r, uint64_t first_bad, const char *words1,
                       const char *words2)
{
	ck_assert_msg(r->intact == 0, "tampering went unnoticed");
	ck_assert_msg(r->first_bad_seq == first_bad, "first bad %llu, expected %llu (%s)",
	              (unsigned long long)r->first_bad_seq, (unsigned long long)first_bad, r->problem);
	ck_assert_msg(strstr(r->problem, words1), "problem \"%s\" does not say \"%s\"", r->problem, words1);
	ck_assert_msg(!words2 || strstr(r->problem, words2), "problem \"%s\" does not say \"%s\"",
	              r->problem, words2);
}

/* ------------------------------------------------------------ attacker helpers */

static void attacker_leaf(const char *text, uint8_t out[HB])
{
	merkle_hasher *h;
	km_err e;
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	ck_assert_int_eq(merkle_leaf_hash(h, text, strlen(text), out, &e), KM_OK);
	merkle_hasher_free(h);
}

static char *column_text(sqlite3 *db, const char *q, int64_t arg)
{
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, arg);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	char *s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s;
}

/* UPDATE audit_events SET json = ?, leaf_hash = sha256(0x00 || json) WHERE seq = ? */
static void attacker_rewrite(sqlite3 *db, int64_t seq, const char *json)
{
	uint8_t leaf[HB];
	sqlite3_stmt *st;
	attacker_leaf(json, leaf);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE audit_events SET json = ?, leaf_hash = ? WHERE seq = ?",
	                                    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, json, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, leaf, HB, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, seq);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Replace the first occurrence of from with to (malloc'd). */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	ck_assert_ptr_nonnull(at);
	size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	return out;
}

/* Recompute audit_frontier from the stored leaf hashes, as a careful
 * attacker would after deleting entries. */
static void attacker_rebuild_frontier(sqlite3 *db)
{
	merkle_hasher *h;
	merkle_frontier f;
	sqlite3_stmt *st;
	km_err e;

	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	merkle_frontier_init(&f);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT leaf_hash FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		ck_assert_int_eq(merkle_frontier_append(h, &f, sqlite3_column_blob(st, 0), NULL, &e), KM_OK);
	sqlite3_finalize(st);
	sql(db, "DELETE FROM audit_frontier");
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO audit_frontier(level, hash) VALUES(?, ?)", -1, &st,
	                                    NULL), SQLITE_OK);
	for (int l = 0; l < MERKLE_MAX_LEVELS; l++) {
		if (!(f.size >> l & 1))
			continue;
		sqlite3_bind_int(st, 1, l);
		sqlite3_bind_blob(st, 2, f.hash[l], HB, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	merkle_hasher_free(h);
}

/* ------------------------------------------------------------ intact logs */

START_TEST(test_intact_log)
{
	audit_verify_result r = verify();
	uint8_t root[HB], sig[64];
	uint64_t size;
	int64_t t;
	int have;
	km_err e;

	/* the empty log is intact */
	ck_assert_int_eq(r.intact, 1);
	ck_assert_uint_eq(r.entries_total, 0);
	ck_assert_uint_eq(r.first_bad_seq, 0);
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_int_eq(have, 0);

	standard_log();
	r = verify();
	ck_assert_msg(r.intact == 1, "intact log reported: %s", r.problem);
	ck_assert_uint_eq(r.entries_total, 100);
	ck_assert_uint_eq(r.entries_checked, 100);
	ck_assert_uint_eq(r.heads_total, 3);
	ck_assert_uint_eq(r.heads_checked, 3);
	ck_assert_uint_eq(r.first_bad_seq, 0);
	ck_assert_str_eq(r.problem, "");
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_int_eq(have, 1);
	ck_assert_uint_eq(size, 100);
	ck_assert_uint_eq(r.head_size, 100);
	ck_assert_mem_eq(r.head_root, root, HB);
	ck_assert_int_eq(r.head_time, t);

	/* signing again with nothing new adds no head */
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_OK);
	sql(fx.db, "COMMIT");
	r = verify();
	ck_assert_uint_eq(r.heads_total, 3);
}
END_TEST

/* The checkpoint is the C2SP shape, and its signature is a plain ECDSA
 * P-256 / SHA-256 signature any OpenSSL can check. */
START_TEST(test_checkpoint_text)
{
	uint8_t root[HB], sig[64], der[HSM_SIG_DER_MAX];
	char text[512], want[512], b64[64];
	uint64_t size;
	int64_t t;
	int have;
	size_t der_len;
	km_err e;

	standard_log();
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	size_t len = audit_checkpoint_text(origin, size, root, t, text, sizeof text);
	EVP_EncodeBlock((unsigned char *)b64, root, HB);
	snprintf(want, sizeof want, "keyward/test-deployment\n100\n%s\ntime %lld\n", b64, (long long)t);
	ck_assert_str_eq(text, want);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_uint_eq(strlen(b64), 44);

	ck_assert_int_eq(hsm_sig_to_der(sig, der, sizeof der, &der_len, &e), KM_OK);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, fx.pub), 1);
	ck_assert_int_eq(EVP_DigestVerify(m, der, der_len, (const unsigned char *)text, len), 1);
	EVP_MD_CTX_free(m);

	/* too small a buffer, or an origin that would break the lines */
	ck_assert_uint_eq(audit_checkpoint_text(origin, size, root, t, text, 20), 0);
	ck_assert_uint_eq(audit_checkpoint_text("bad\norigin", size, root, t, text, sizeof text), 0);
	ck_assert_uint_eq(audit_checkpoint_text("", size, root, t, text, sizeof text), 0);
	ck_assert_int_eq(audit_origin(fx.db, text, sizeof text, &e), KM_OK);
	ck_assert_str_eq(text, origin);
	ck_assert_int_eq(audit_origin(fx.db, text, 5, &e), KM_EUSAGE);
}
END_TEST

/* Appends from two connections (two processes, in effect) share the one
 * frontier in the table. */
START_TEST(test_two_connections)
{
	sqlite3 *other = open_db(fx.path);
	grow(fx.db, 10, 1);
	grow(other, 25, 1);
	grow(fx.db, 26, 1);
	grow(other, 40, 1);
	audit_verify_result r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_uint_eq(r.heads_checked, 4);
	sqlite3_close(other);
}
END_TEST

/* ------------------------------------------------------------ the attacker */

START_TEST(test_tamper_modify_json)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET json = replace(json, '\"outcome\":\"ok\"', '\"outcome\":\"denied\"') "
	           "WHERE seq = 42");
	audit_verify_result r = verify();
	expect_bad(&r, 42, "entry 42", "modified (leaf hash does not match)");
	ck_assert_uint_eq(r.entries_checked, 41);
	ck_assert_uint_eq(r.heads_checked, 1);
	ck_assert_uint_eq(r.head_size, 30);
}
END_TEST

START_TEST(test_tamper_modify_json_and_leaf_hash)
{
	standard_log();
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 42);
	char *forged = replace(json, "\"actor\":\"alice\"", "\"actor\":\"mallory\"");
	attacker_rewrite(fx.db, 42, forged);
	audit_verify_result r = verify();
	expect_bad(&r, 31, "entries 31..60", "tree head at size 60");
	ck_assert_uint_eq(r.heads_checked, 1);
	free(json);
	free(forged);
}
END_TEST

START_TEST(test_tamper_delete_middle)
{
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq = 17");
	audit_verify_result r = verify();
	expect_bad(&r, 17, "entry 17 is missing", "jumps from 16 to 18");
	ck_assert_uint_eq(r.entries_total, 99);
}
END_TEST

START_TEST(test_tamper_delete_first)
{
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq <= 3");
	audit_verify_result r = verify();
	expect_bad(&r, 1, "entries 1..3 are missing", NULL);
}
END_TEST

/* Insert a forged event at 50 by moving everything after it up by one. */
START_TEST(test_tamper_insert_renumbered)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 50");
	sql(fx.db, "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1050");
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 49);
	char *forged = replace(json, "\"seq\":49", "\"seq\":50");
	sql(fx.db, "INSERT INTO audit_events(seq, json, leaf_hash) VALUES(50, '{}', x'00')");
	attacker_rewrite(fx.db, 50, forged);
	audit_verify_result r = verify();
	/* the forged row itself looks right; its displaced successor does not */
	expect_bad(&r, 51, "entry 51", "says it is entry 50");
	free(json);
	free(forged);
}
END_TEST

/* The thorough version: every moved event's text and hash rewritten too. */
START_TEST(test_tamper_insert_renumbered_rehashed)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 50");
	sql(fx.db, "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1050");
	for (int64_t s = 50; s <= 101; s++) {
		char from[32], to[32];
		int64_t src = s == 50 ? 49 : s;
		char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", src);
		snprintf(from, sizeof from, "\"seq\":%lld,", (long long)(s == 50 ? 49 : s - 1));
		snprintf(to, sizeof to, "\"seq\":%lld,", (long long)s);
		char *forged = replace(json, from, to);
		if (s == 50)
			sql(fx.db, "INSERT INTO audit_events(seq, json, leaf_hash) VALUES(50, '{}', x'00')");
		attacker_rewrite(fx.db, s, forged);
		free(json);
		free(forged);
	}
	audit_verify_result r = verify();
	expect_bad(&r, 31, "entries 31..60", "do not match the signed tree head at size 60");
}
END_TEST

START_TEST(test_tamper_swap_rows)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET seq = -20 WHERE seq = 20");
	sql(fx.db, "UPDATE audit_events SET seq = 20 WHERE seq = 25");
	sql(fx.db, "UPDATE audit_events SET seq = 25 WHERE seq = -20");
	audit_verify_result r = verify();
	expect_bad(&r, 20, "entry 20", "says it is entry 25");
}
END_TEST

START_TEST(test_tamper_swap_json_only)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET json = (SELECT json FROM audit_events WHERE seq = 25) WHERE seq = 20");
	audit_verify_result r = verify();
	expect_bad(&r, 20, "entry 20", "says it is entry 25");
}
END_TEST

START_TEST(test_tamper_truncate_tail)
{
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 90");
	audit_verify_result r = verify();
	expect_bad(&r, 91, "entries 91..100 are missing", "truncated");
	ck_assert_uint_eq(r.entries_checked, 90);
	ck_assert_uint_eq(r.heads_checked, 2);
}
END_TEST

/* Tail and the heads over it deleted, cutting mid-way between two heads:
 * the entries left after the last surviving head are uncovered. */
START_TEST(test_tamper_truncate_tail_and_heads)
{
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 90");
	sql(fx.db, "DELETE FROM audit_tree_heads WHERE size > 90");
	audit_verify_result r = verify();
	expect_bad(&r, 61, "entries 61..90", "not covered by any signed tree head");
}
END_TEST

/* The known limit.  Cutting exactly at a head and leaving the frontier
 * cache alone is still caught (the cache remembers 100 entries)... */
START_TEST(test_tamper_truncate_at_head)
{
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 60");
	sql(fx.db, "DELETE FROM audit_tree_heads WHERE size > 60");
	audit_verify_result r = verify();
	expect_bad(&r, 61, "frontier", NULL);
}
END_TEST

/* ...but an attacker who also rebuilds the frontier from the remaining
 * leaf hashes leaves a log that verifies: only a tree head exported
 * elsewhere (the SIEM) shows the log was longer.  This test pins that
 * documented behaviour. */
START_TEST(test_tamper_truncate_known_limit)
{
	uint8_t exported_root[HB], sig[64], proof[MERKLE_PROOF_MAX][HB];
	uint64_t exported_size, n;
	int64_t t;
	int have;
	size_t len;
	km_err e;

	standard_log();
	ck_assert_int_eq(audit_latest_head(fx.db, &exported_size, exported_root, &t, sig, &have, &e), KM_OK);
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 60");
	sql(fx.db, "DELETE FROM audit_tree_heads WHERE size > 60");
	attacker_rebuild_frontier(fx.db);
	audit_verify_result r = verify();
	ck_assert_msg(r.intact == 1, "expected the known limit, got: %s", r.problem);
	ck_assert_uint_eq(r.head_size, 60);
	/* what the SIEM comparison sees: its head is beyond the log */
	ck_assert_uint_gt(exported_size, r.head_size);
	ck_assert_int_eq(audit_size(fx.db, &n, &e), KM_OK);
	ck_assert_int_eq(audit_consistency_proof(fx.db, r.head_size, exported_size, proof, &len, &e), KM_EUSAGE);
}
END_TEST

START_TEST(test_tamper_forge_head_root)
{
	standard_log();
	sql(fx.db, "UPDATE audit_tree_heads SET root = randomblob(32) WHERE size = 60");
	audit_verify_result r = verify();
	expect_bad(&r, 31, "tree head at size 60", "signature does not verify (forged or damaged)");
}
END_TEST

START_TEST(test_tamper_forge_signature_byte)
{
	standard_log();
	sql(fx.db, "UPDATE audit_tree_heads SET signature = "
	           "substr(signature, 1, 10) || x'5a' || substr(signature, 12) WHERE size = 100");
	audit_verify_result r = verify();
	expect_bad(&r, 61, "tree head at size 100", "signature does not verify");
	ck_assert_uint_eq(r.heads_checked, 2);
}
END_TEST

START_TEST(test_tamper_forge_head_time)
{
	standard_log();
	sql(fx.db, "UPDATE audit_tree_heads SET time = time - 86400 WHERE size = 30");
	audit_verify_result r = verify();
	expect_bad(&r, 1, "tree head at size 30", "signature does not verify");
}
END_TEST

START_TEST(test_tamper_origin)
{
	standard_log();
	sql(fx.db, "UPDATE audit_meta SET value = 'keyward/elsewhere' WHERE key = 'origin'");
	audit_verify_result r = verify();
	expect_bad(&r, 1, "tree head at size 30", "signature does not verify");
	sql(fx.db, "DELETE FROM audit_meta WHERE key = 'origin'");
	r = verify();
	expect_bad(&r, 1, "origin", NULL);
}
END_TEST

/* An event that no head covers: appended and committed without signing. */
START_TEST(test_tamper_unsigned_append)
{
	standard_log();
	grow(fx.db, 101, 0);
	audit_verify_result r = verify();
	expect_bad(&r, 101, "entry 101 is not covered by any signed tree head", "inserted");
	grow(fx.db, 103, 0);
	r = verify();
	expect_bad(&r, 101, "entries 101..103 are not covered", NULL);
	/* the next signed commit covers them (the writer vouches for them) */
	grow(fx.db, 104, 1);
	r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
}
END_TEST

START_TEST(test_tamper_frontier)
{
	km_err e;
	standard_log();
	sql(fx.db, "UPDATE audit_frontier SET hash = randomblob(32) WHERE level = 2");
	audit_verify_result r = verify();
	expect_bad(&r, 101, "frontier", NULL);
	/* a frontier missing a level is refused by the writer */
	sql(fx.db, "DELETE FROM audit_frontier WHERE level = 2");
	sql(fx.db, "BEGIN IMMEDIATE");
	json_t *d;
	audit_event ev = nth_event(101, &d);
	ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "frontier"));
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_EINTEGRITY);
	sql(fx.db, "ROLLBACK");
	json_decref(d);
}
END_TEST

/* A rehashed entry whose text is valid JSON but not canonical: the bulk
 * pass re-serialises entry 1 (and one in 256 after it) with Jansson. */
START_TEST(test_tamper_non_canonical)
{
	standard_log();
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 1);
	char *spaced = replace(json, "\"details\":{", "\"details\": {");
	attacker_rewrite(fx.db, 1, spaced);
	audit_verify_result r = verify();
	expect_bad(&r, 1, "entry 1: the event text is not canonical", NULL);
	free(json);
	free(spaced);
}
END_TEST

START_TEST(test_damaged_leaf_hash_blob)
{
	standard_log();
	sql(fx.db, "UPDATE audit_events SET leaf_hash = x'0102' WHERE seq = 5");
	audit_verify_result r = verify();
	expect_bad(&r, 5, "entry 5", "modified");
}
END_TEST

START_TEST(test_signer_refuses_truncated_log)
{
	km_err e;
	standard_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 90");
	attacker_rebuild_frontier(fx.db);
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "deleted"));
	sql(fx.db, "ROLLBACK");
}
END_TEST

/* ------------------------------------------------------------ a bigger log */

static int progress_calls;
static uint64_t progress_last;

static int count_progress(void *ctx, uint64_t checked, uint64_t total)
{
	(void)ctx;
	ck_assert_uint_le(checked, total);
	ck_assert_uint_ge(checked, progress_last);
	progress_last = checked;
	progress_calls++;
	return 0;
}

static int cancel_progress(void *ctx, uint64_t checked, uint64_t total)
{
	(void)ctx;
	(void)checked;
	(void)total;
	return 1;
}

/* Large enough for the two-thread pipeline, with heads landing anywhere in
 * a batch, an event bigger than a batch arena, and tampering deep inside. */
START_TEST(test_big_log)
{
	km_err e;
	audit_verify_result r;

	for (uint64_t n = 0; n < 9000; n += 397)
		grow(fx.db, n + 397, 1);
	/* one event with 400 KB of details */
	char *big = malloc(400 * 1024 + 1);
	memset(big, 'x', 400 * 1024);
	big[400 * 1024] = '\0';
	json_t *d = json_pack("{s:s}", "blob", big);
	audit_event ev = {"alice", "asset.protect", "datasets/claims-2025", "ok", d};
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_OK);
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_OK);
	sql(fx.db, "COMMIT");
	json_decref(d);
	free(big);
	grow(fx.db, 9600, 1);

	progress_calls = 0;
	progress_last = 0;
	ck_assert_int_eq(audit_verify(fx.db, fx.pub, count_progress, NULL, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_uint_eq(r.entries_checked, 9600);
	ck_assert_uint_eq(r.heads_checked, r.heads_total);
	ck_assert_int_ge(progress_calls, 2);
	ck_assert_uint_eq(progress_last, 9600);

	ck_assert_int_eq(audit_verify(fx.db, fx.pub, cancel_progress, NULL, &r, &e), KM_EBUSY);
	ck_assert_ptr_nonnull(strstr(e.msg, "cancelled"));
	ck_assert_int_eq(r.intact, 0);

	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-77', 'r-78') WHERE seq = 7777");
	r = verify();
	expect_bad(&r, 7777, "entry 7777", "modified");
	ck_assert_uint_eq(r.entries_checked, 7776);
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-78', 'r-77') WHERE seq = 7777");
	/* entries whose leaf the reader thread hashes (7777) and those the
	 * checker hashes (6000) are both checked */
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-77', 'r-78') WHERE seq = 6000");
	r = verify();
	expect_bad(&r, 6000, "entry 6000", "modified");
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-78', 'r-77') WHERE seq = 6000");
	r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	/* forged heads: the reader thread checks every other signature, the
	 * checker the rest; both findings are reported the same way */
	sql(fx.db, "CREATE TABLE keep AS SELECT size, root FROM audit_tree_heads");
	sql(fx.db, "UPDATE audit_tree_heads SET root = randomblob(32) WHERE size = 794");
	r = verify();
	expect_bad(&r, 398, "tree head at size 794", "signature does not verify");
	sql(fx.db, "UPDATE audit_tree_heads SET root = (SELECT root FROM keep WHERE keep.size = 794) "
	           "WHERE size = 794");
	sql(fx.db, "UPDATE audit_tree_heads SET root = randomblob(32) WHERE size = 1191");
	r = verify();
	expect_bad(&r, 795, "tree head at size 1191", "signature does not verify");
	sql(fx.db, "UPDATE audit_tree_heads SET root = (SELECT root FROM keep WHERE keep.size = 1191) "
	           "WHERE size = 1191");
	r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	sql(fx.db, "DELETE FROM audit_events WHERE seq = 9500");
	r = verify();
	expect_bad(&r, 9500, "entry 9500 is missing", NULL);
}
END_TEST

/* ------------------------------------------------------------ canonical events */

START_TEST(test_canonical_json)
{
	audit_row row;
	uint64_t seq;
	km_err e;
	json_t *d = json_pack("{s:i,s:s,s:{s:b,s:n},s:[i,s]}", "zeta", 1, "alpha", "x y", "mid", "b", 1, "a",
	                      "list", 3, "s");
	audit_event ev = {"zo\xc3\xab", "key.create", NULL, "ok", d};

	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_append(fx.db, &ev, &seq, &e), KM_OK);
	sql(fx.db, "COMMIT");
	json_decref(d);
	ck_assert_int_eq(audit_get(fx.db, seq, &row, &e), KM_OK);
	/* sorted keys at every level, no whitespace, ASCII with \u escapes,
	 * null object, integer seq, millisecond UTC time last */
	const char *want_prefix = "{\"action\":\"key.create\",\"actor\":\"zo\\u00EB\",\"details\":{\"alpha\":\"x y\","
	                          "\"list\":[3,\"s\"],\"mid\":{\"a\":null,\"b\":true},\"zeta\":1},\"object\":null,"
	                          "\"outcome\":\"ok\",\"seq\":1,\"time\":\"";
	ck_assert_msg(strncmp(row.json, want_prefix, strlen(want_prefix)) == 0, "got %s", row.json);
	const char *t = row.json + strlen(want_prefix);
	ck_assert_uint_eq(strlen(t), AUDIT_TIME_LEN + 2);
	ck_assert_str_eq(t + AUDIT_TIME_LEN, "\"}");
	ck_assert_int_eq(t[10], 'T');
	ck_assert_int_eq(t[19], '.');
	ck_assert_int_eq(t[23], 'Z');
	/* generated columns decode the same JSON */
	ck_assert_str_eq(row.actor, "zo\xc3\xab");
	ck_assert_ptr_null(row.object);
	ck_assert_str_eq(row.outcome, "ok");
	ck_assert_uint_eq(strlen(row.time), AUDIT_TIME_LEN);
	ck_assert_int_eq(strncmp(row.time, t, AUDIT_TIME_LEN), 0);
	/* stored leaf hash is the RFC 6962 leaf hash of exactly these bytes */
	uint8_t leaf[HB];
	attacker_leaf(row.json, leaf);
	ck_assert_mem_eq(leaf, row.leaf_hash, HB);

	audit_row copy;
	ck_assert_int_eq(audit_row_copy(&row, &copy, &e), KM_OK);
	audit_row_free(&row);
	ck_assert_ptr_null(row.json);
	ck_assert_str_eq(copy.actor, "zo\xc3\xab");
	ck_assert_ptr_null(copy.object);
	ck_assert_uint_eq(copy.seq, 1);
	audit_row_free(&copy);
	audit_row_free(NULL);

	ck_assert_int_eq(audit_get(fx.db, 99, &row, &e), KM_ENOTFOUND);
}
END_TEST

/* Table-driven: what audit_append accepts and refuses in details. */
static const struct {
	const char *details; /* JSON text; NULL = no details */
	km_status want;
} details_rows[] = {
	{NULL, KM_OK},
	{"{}", KM_OK},
	{"{\"key_id\": \"features/x\", \"version\": 3, \"ok\": true, \"none\": null}", KM_OK},
	{"{\"list\": [1, \"two\", {\"three\": 3}]}", KM_OK},
	{"{\"n\": -9223372036854775808}", KM_OK},
	{"{\"ratio\": 0.5}", KM_EINVAL},
	{"{\"nested\": {\"deeper\": [1, 2.0]}}", KM_EINVAL},
	{"{\"key\": \"00112233\"}", KM_EINTERNAL},
	{"{\"DEK\": \"...\"}", KM_EINTERNAL},
	{"{\"kek\": \"...\"}", KM_EINTERNAL},
	{"{\"outer\": {\"Secret\": \"s\"}}", KM_EINTERNAL},
	{"{\"list\": [{\"pin\": \"1234\"}]}", KM_EINTERNAL},
	{"{\"passphrase\": \"x\"}", KM_EINTERNAL},
	{"{\"plaintext\": \"x\"}", KM_EINTERNAL},
	{"[1, 2]", KM_EINVAL},
	{"\"just a string\"", KM_EINVAL},
};

START_TEST(test_details_rules)
{
	km_err e;
	uint64_t n;
	sql(fx.db, "BEGIN IMMEDIATE");
	for (size_t i = 0; i < KM_ARRAY_LEN(details_rows); i++) {
		json_t *d = NULL;
		if (details_rows[i].details) {
			d = json_loads(details_rows[i].details, JSON_DECODE_ANY, NULL);
			ck_assert_ptr_nonnull(d);
		}
		audit_event ev = {"alice", "key.create", "features/x", "ok", d};
		km_status got = audit_append(fx.db, &ev, NULL, &e);
		ck_assert_msg(got == details_rows[i].want, "details %s: got %s (%s), want %s",
		              details_rows[i].details ? details_rows[i].details : "NULL", km_status_name(got),
		              got ? e.msg : "", km_status_name(details_rows[i].want));
		json_decref(d);
	}
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_OK);
	sql(fx.db, "COMMIT");
	ck_assert_int_eq(audit_size(fx.db, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 5); /* the five good rows, contiguous */
	audit_verify_result r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
}
END_TEST

START_TEST(test_event_fields_and_usage)
{
	km_err e;
	audit_event ev = {"alice", "key.create", "features/x", "ok", NULL};

	/* outside a transaction, or in one without the write lock */
	ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "BEGIN IMMEDIATE"));
	sql(fx.db, "BEGIN");
	ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_EUSAGE);
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_EUSAGE);
	sql(fx.db, "COMMIT");

	sql(fx.db, "BEGIN IMMEDIATE");
	audit_event bad[] = {
		{NULL, "key.create", "x", "ok", NULL},
		{"", "key.create", "x", "ok", NULL},
		{"alice", NULL, "x", "ok", NULL},
		{"alice", "key.create", "x", "fine", NULL},
		{"alice", "key.create", "x", NULL, NULL},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(bad); i++)
		ck_assert_int_eq(audit_append(fx.db, &bad[i], NULL, &e), KM_EUSAGE);
	audit_event latin1 = {"zo\xeb", "key.create", "x", "ok", NULL};
	ck_assert_int_eq(audit_append(fx.db, &latin1, NULL, &e), KM_EINVAL);
	ck_assert_int_eq(audit_append(fx.db, NULL, NULL, &e), KM_EUSAGE);
	sql(fx.db, "COMMIT");

	/* signing needs an origin */
	sql(fx.db, "DELETE FROM audit_meta WHERE key = 'origin'");
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_OK);
	ck_assert_int_eq(audit_sign_head(fx.db, sign_cb, fx.h, &e), KM_ECONFIG);
	sql(fx.db, "ROLLBACK");
	ck_assert_int_eq(audit_verify(fx.db, NULL, NULL, NULL, &(audit_verify_result){0}, &e), KM_EUSAGE);
}
END_TEST

/* ------------------------------------------------------------ queries */

typedef struct collected {
	uint64_t seq[200];
	size_t n;
	int stop_after;
	int ok;
} collected;

static int collect(void *ctx, const audit_row *row)
{
	collected *c = ctx;
	ck_assert_ptr_nonnull(row->json);
	ck_assert_ptr_nonnull(row->time);
	c->seq[c->n++] = row->seq;
	return c->stop_after && (int)c->n >= c->stop_after;
}

static collected run_query(const audit_filter *f, uint64_t before, int limit)
{
	collected c = {{0}, 0, 0, 1};
	km_err e;
	ck_assert_msg(audit_query(fx.db, f, before, limit, collect, &c, &e) == KM_OK, "query: %s", e.msg);
	return c;
}

/* Does event i (as nth_event makes it) pass filter f? */
static int naive_match(uint64_t i, const audit_filter *f)
{
	const char *obj = objects[i % KM_ARRAY_LEN(objects)];
	if (f->object && strcmp(obj, f->object) != 0)
		return 0;
	if (f->object_prefix && strncmp(obj, f->object_prefix, strlen(f->object_prefix)) != 0)
		return 0;
	if (f->actor && strcmp(actors[i % KM_ARRAY_LEN(actors)], f->actor) != 0)
		return 0;
	if (f->action && strcmp(actions[i % KM_ARRAY_LEN(actions)], f->action) != 0)
		return 0;
	if (f->outcome && strcmp(results[i % KM_ARRAY_LEN(results)], f->outcome) != 0)
		return 0;
	return 1;
}

START_TEST(test_query_filters)
{
	static const audit_filter filters[] = {
		{0},
		{.actor = "bob"},
		{.object = "features/fraud"},
		{.object_prefix = "features/"},
		{.object_prefix = "models/fraud"},
		{.object_prefix = "nothing/"},
		{.action = "key.rotate", .outcome = "ok"},
		{.outcome = "denied"},
		{.actor = "carol", .object_prefix = "features/", .outcome = "ok"},
		{.object = "features/fraud", .actor = "alice"},
	};
	standard_log();
	for (size_t fi = 0; fi < KM_ARRAY_LEN(filters); fi++) {
		const audit_filter *f = &filters[fi];
		uint64_t want[100];
		size_t nwant = 0;
		for (uint64_t i = 100; i >= 1; i--)
			if (naive_match(i, f))
				want[nwant++] = i;
		/* page through 7 at a time, newest first */
		size_t got = 0;
		uint64_t before = 0;
		for (;;) {
			collected c = run_query(f, before, 7);
			for (size_t k = 0; k < c.n; k++, got++) {
				ck_assert_msg(got < nwant, "filter %zu: too many rows", fi);
				ck_assert_msg(c.seq[k] == want[got], "filter %zu row %zu: seq %llu, want %llu", fi, got,
				              (unsigned long long)c.seq[k], (unsigned long long)want[got]);
			}
			if (c.n < 7)
				break;
			before = c.seq[c.n - 1];
		}
		ck_assert_msg(got == nwant, "filter %zu: %zu rows, want %zu", fi, got, nwant);
	}

	/* default limit, early stop */
	collected c = run_query(NULL, 0, 0);
	ck_assert_uint_eq(c.n, 50);
	ck_assert_uint_eq(c.seq[0], 100);
	c = (collected){{0}, 0, 3, 1};
	km_err e;
	ck_assert_int_eq(audit_query(fx.db, NULL, 0, 20, collect, &c, &e), KM_OK);
	ck_assert_uint_eq(c.n, 3);
}
END_TEST

START_TEST(test_query_time_range)
{
	audit_row row;
	km_err e;
	char day[11], minute[17];

	standard_log();
	ck_assert_int_eq(audit_get(fx.db, 1, &row, &e), KM_OK);
	snprintf(day, sizeof day, "%.10s", row.time);
	snprintf(minute, sizeof minute, "%.16s", row.time);
	audit_row_free(&row);

	/* inclusive prefixes: the whole day, from..to the same day */
	audit_filter f = {.time_from = day, .time_to = day};
	ck_assert_uint_eq(run_query(&f, 0, 200).n, 100);
	f = (audit_filter){.time_to = "1999-12-31"};
	ck_assert_uint_eq(run_query(&f, 0, 200).n, 0);
	f = (audit_filter){.time_from = "2999"};
	ck_assert_uint_eq(run_query(&f, 0, 200).n, 0);
	f = (audit_filter){.time_from = "2000", .actor = "alice"};
	ck_assert_uint_eq(run_query(&f, 0, 200).n, 33);
	/* a prefix to the minute still includes that minute's events */
	f = (audit_filter){.time_to = minute};
	ck_assert_uint_ge(run_query(&f, 0, 200).n, 1);
}
END_TEST

/* Give event i the time 2026-MM-DDT10:00:00.000Z of day i (attacker-style
 * rewrite; only the queries care here), keeping times increasing. */
static void set_day_times(uint64_t n)
{
	for (uint64_t i = 1; i <= n; i++) {
		char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", (int64_t)i);
		char *at = strstr(json, "\"time\":\"");
		ck_assert_ptr_nonnull(at);
		int month = 1 + (int)((i - 1) / 28), day = 1 + (int)((i - 1) % 28);
		char t[32];
		snprintf(t, sizeof t, "2026-%02d-%02dT10:00:00.000Z", month, day);
		memcpy(at + 8, t, AUDIT_TIME_LEN);
		attacker_rewrite(fx.db, (int64_t)i, json);
		free(json);
	}
}

START_TEST(test_query_time_semantics)
{
	static const struct {
		const char *from, *to, *actor;
		uint64_t first, last; /* expected seq range (0, 0: none) */
	} rows[] = {
		{"2026-02", "2026-02", NULL, 29, 56},         /* all of February */
		{"2026-02-03", "2026-02-05", NULL, 31, 33},   /* inclusive day prefixes */
		{"2026-02-03T10:00:00.000Z", "2026-02-03T10:00:00.000Z", NULL, 31, 31},
		{NULL, "2026-01-28", NULL, 1, 28},
		{"2026-04-16", NULL, NULL, 100, 100},
		{"2026-04-17", NULL, NULL, 0, 0},
		{NULL, "2025", NULL, 0, 0},
		{"2026-03", "2026-02", NULL, 0, 0},           /* from after to */
		{"2026-02", "2026-02", "bob", 29, 55},        /* bob: seq % 3 == 1 */
	};
	standard_log();
	set_day_times(100);
	for (size_t r = 0; r < KM_ARRAY_LEN(rows); r++) {
		audit_filter f = {.time_from = rows[r].from, .time_to = rows[r].to, .actor = rows[r].actor};
		collected c = run_query(&f, 0, 200);
		uint64_t want = 0;
		for (uint64_t i = rows[r].last; rows[r].last && i >= rows[r].first; i--) {
			if (rows[r].actor && i % 3 != 1)
				continue;
			ck_assert_msg(want < c.n && c.seq[want] == i, "row %zu: result %llu should be %llu", r,
			              (unsigned long long)(want < c.n ? c.seq[want] : 0), (unsigned long long)i);
			want++;
		}
		ck_assert_msg(c.n == want, "row %zu: %zu results, want %llu", r, c.n, (unsigned long long)want);
	}
	/* pagination inside a time range */
	audit_filter f = {.time_from = "2026-02", .time_to = "2026-02"};
	collected c = run_query(&f, 40, 5);
	ck_assert_uint_eq(c.n, 5);
	ck_assert_uint_eq(c.seq[0], 39);
	ck_assert_uint_eq(c.seq[4], 35);
}
END_TEST

/* Capture every statement audit_query runs, to look at its plan. */
typedef struct captured {
	char *sql[16];
	int n;
} captured;

static int capture_sql(unsigned type, void *ctx, void *p, void *x)
{
	captured *c = ctx;
	(void)x;
	if (type == SQLITE_TRACE_STMT && c->n < 16)
		c->sql[c->n++] = strdup(sqlite3_sql(p));
	return 0;
}

static void assert_no_scan(const char *sql, const char *what)
{
	char q[1200];
	sqlite3_stmt *st;
	snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, q, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *detail = (const char *)sqlite3_column_text(st, 3);
		ck_assert_msg(strncmp(detail, "SCAN audit_events", 17) != 0 || strstr(detail, "INDEX"),
		              "%s: full scan (%s) in %s", what, detail, sql);
	}
	sqlite3_finalize(st);
}

/* Every statement behind a filtered query searches an index or a rowid
 * range: none computes json_extract over the whole log. */
START_TEST(test_query_plans)
{
	static const audit_filter filters[] = {
		{0},
		{.actor = "bob"},
		{.object = "features/fraud"},
		{.object_prefix = "features/"},
		{.outcome = "denied", .object_prefix = "models/"},
		{.time_from = "2026-02"},
		{.time_to = "2026-02", .action = "key.rotate"},
		{.time_from = "2026", .time_to = "2026", .object_prefix = "features/", .actor = "alice"},
	};
	standard_log();
	for (size_t i = 0; i < KM_ARRAY_LEN(filters); i++) {
		captured c = {{NULL}, 0};
		sqlite3_trace_v2(fx.db, SQLITE_TRACE_STMT, capture_sql, &c);
		run_query(&filters[i], 0, 10);
		sqlite3_trace_v2(fx.db, 0, NULL, NULL);
		ck_assert_int_ge(c.n, 1);
		int time_lookups = 0;
		for (int k = 0; k < c.n; k++) {
			if (strncmp(c.sql[k], "SELECT", 6) == 0)
				assert_no_scan(c.sql[k], "query");
			time_lookups += strstr(c.sql[k], "ORDER BY time") != NULL;
			free(c.sql[k]);
		}
		/* a time range becomes a sequence range: one index descent per bound */
		ck_assert_int_eq(time_lookups, !!filters[i].time_from + !!filters[i].time_to);
	}
}
END_TEST

/* Time never goes backwards in the log, and verification notices if it
 * does. */
START_TEST(test_time_monotonic)
{
	audit_row row;
	km_err e;

	grow(fx.db, 3, 1);
	/* the newest event claims a time far in the future (say, a host with a
	 * clock ahead wrote it); the next append must not go back before it */
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 3);
	char *at = strstr(json, "\"time\":\"");
	memcpy(at + 8, "2999-01-01T00:00:00.000Z", AUDIT_TIME_LEN);
	attacker_rewrite(fx.db, 3, json);
	attacker_rebuild_frontier(fx.db);
	grow(fx.db, 4, 1);
	ck_assert_int_eq(audit_get(fx.db, 4, &row, &e), KM_OK);
	ck_assert_str_eq(row.time, "2999-01-01T00:00:00.000Z");
	audit_row_free(&row);
	free(json);

	/* a rewritten (rehashed) time that goes backwards is pinpointed */
	sql(fx.db, "DELETE FROM audit_events");
	sql(fx.db, "DELETE FROM audit_tree_heads");
	sql(fx.db, "DELETE FROM audit_frontier");
	standard_log();
	json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 42);
	at = strstr(json, "\"time\":\"");
	memcpy(at + 8, "2000-01-01T00:00:00.000Z", AUDIT_TIME_LEN);
	attacker_rewrite(fx.db, 42, json);
	audit_verify_result r = verify();
	expect_bad(&r, 42, "entry 42: its time 2000-01-01T00:00:00.000Z is earlier than entry 41's",
	           "reordered or rewritten");
	free(json);
}
END_TEST

/* ------------------------------------------------------------ proofs */

START_TEST(test_inclusion_proofs)
{
	uint8_t root[HB], sig[64], proof[MERKLE_PROOF_MAX][HB], r30[HB];
	uint64_t size;
	int64_t t;
	int have;
	size_t len;
	merkle_hasher *h;
	km_err e;

	grow(fx.db, 30, 1);
	ck_assert_int_eq(audit_latest_head(fx.db, &size, r30, &t, sig, &have, &e), KM_OK);
	grow(fx.db, 60, 1);
	grow(fx.db, 100, 1);
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	for (uint64_t seq = 1; seq <= 100; seq += 11) {
		audit_row row;
		ck_assert_int_eq(audit_get(fx.db, seq, &row, &e), KM_OK);
		ck_assert_int_eq(audit_inclusion_proof(fx.db, seq, 100, proof, &len, &e), KM_OK);
		ck_assert_int_eq(merkle_verify_inclusion(h, row.leaf_hash, seq - 1, 100, (const uint8_t(*)[HB])proof,
		                                         len, root, &e), KM_OK);
		/* the same proof does not place it anywhere else */
		ck_assert_int_eq(merkle_verify_inclusion(h, row.leaf_hash, seq % 100, 100,
		                                         (const uint8_t(*)[HB])proof, len, root, &e), KM_EINTEGRITY);
		audit_row_free(&row);

		audit_verify_result r;
		ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, seq, &r, &e), KM_OK);
		ck_assert_msg(r.intact == 1, "entry %llu: %s", (unsigned long long)seq, r.problem);
		ck_assert_uint_eq(r.head_size, 100);
		ck_assert_mem_eq(r.head_root, root, HB);
	}
	/* consistency: the head at 30 is a prefix of the head at 100 */
	ck_assert_int_eq(audit_consistency_proof(fx.db, 30, 100, proof, &len, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(h, 30, 100, r30, root, (const uint8_t(*)[HB])proof, len, &e),
	                 KM_OK);
	/* usage errors */
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 0, 100, proof, &len, &e), KM_EUSAGE);
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 50, 40, proof, &len, &e), KM_EUSAGE);
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 50, 101, proof, &len, &e), KM_EUSAGE);
	audit_verify_result r;
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 101, &r, &e), KM_ENOTFOUND);
	merkle_hasher_free(h);
}
END_TEST

START_TEST(test_verify_entry_tampered)
{
	audit_verify_result r;
	km_err e;

	standard_log();
	/* modified text, hash left alone */
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-77', 'r-99') WHERE seq = 42");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 42, &r, &e), KM_OK);
	expect_bad(&r, 42, "entry 42", "modified (leaf hash does not match)");
	/* another entry modified with its hash recomputed: 42's neighbours
	 * can no longer be proven into the signed head */
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-99', 'r-77') WHERE seq = 42");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 42, &r, &e), KM_OK);
	ck_assert_int_eq(r.intact, 1);
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 43);
	char *forged = replace(json, "r-77", "r-00");
	attacker_rewrite(fx.db, 43, forged);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 43, &r, &e), KM_OK);
	expect_bad(&r, 43, "entry 43 cannot be proven", "tree head at size 100");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 42, &r, &e), KM_OK);
	expect_bad(&r, 42, "cannot be proven", NULL);
	/* non-canonical text with a matching hash */
	attacker_rewrite(fx.db, 43, json);
	char *json44 = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 44);
	char *spaced = replace(json44, "\"actor\":", "\"actor\": ");
	attacker_rewrite(fx.db, 44, spaced);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 44, &r, &e), KM_OK);
	expect_bad(&r, 44, "entry 44", "canonical");
	/* a forged head signature */
	attacker_rewrite(fx.db, 44, json44);
	free(json44);
	sql(fx.db, "UPDATE audit_tree_heads SET signature = zeroblob(64) WHERE size = 100");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 5, &r, &e), KM_OK);
	expect_bad(&r, 5, "tree head at size 100", "signature does not verify");
	free(json);
	free(forged);
	free(spaced);
}
END_TEST

START_TEST(test_verify_entry_uncovered)
{
	audit_verify_result r;
	km_err e;
	standard_log();
	grow(fx.db, 101, 0);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, 101, &r, &e), KM_OK);
	expect_bad(&r, 101, "not covered", NULL);
}
END_TEST

/* Full verification inside the caller's own read transaction. */
START_TEST(test_verify_in_callers_txn)
{
	standard_log();
	sql(fx.db, "BEGIN");
	audit_verify_result r = verify();
	ck_assert_int_eq(r.intact, 1);
	ck_assert_int_eq(sqlite3_get_autocommit(fx.db), 0);
	sql(fx.db, "COMMIT");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_intact_log);
	tcase_add_test(tc, test_checkpoint_text);
	tcase_add_test(tc, test_two_connections);
	tcase_add_test(tc, test_tamper_modify_json);
	tcase_add_test(tc, test_tamper_modify_json_and_leaf_hash);
	tcase_add_test(tc, test_tamper_delete_middle);
	tcase_add_test(tc, test_tamper_delete_first);
	tcase_add_test(tc, test_tamper_insert_renumbered);
	tcase_add_test(tc, test_tamper_insert_renumbered_rehashed);
	tcase_add_test(tc, test_tamper_swap_rows);
	tcase_add_test(tc, test_tamper_swap_json_only);
	tcase_add_test(tc, test_tamper_truncate_tail);
	tcase_add_test(tc, test_tamper_truncate_tail_and_heads);
	tcase_add_test(tc, test_tamper_truncate_at_head);
	tcase_add_test(tc, test_tamper_truncate_known_limit);
	tcase_add_test(tc, test_tamper_forge_head_root);
	tcase_add_test(tc, test_tamper_forge_signature_byte);
	tcase_add_test(tc, test_tamper_forge_head_time);
	tcase_add_test(tc, test_tamper_origin);
	tcase_add_test(tc, test_tamper_unsigned_append);
	tcase_add_test(tc, test_tamper_frontier);
	tcase_add_test(tc, test_tamper_non_canonical);
	tcase_add_test(tc, test_damaged_leaf_hash_blob);
	tcase_add_test(tc, test_signer_refuses_truncated_log);
	tcase_add_test(tc, test_big_log);
	tcase_add_test(tc, test_canonical_json);
	tcase_add_test(tc, test_details_rules);
	tcase_add_test(tc, test_event_fields_and_usage);
	tcase_add_test(tc, test_query_filters);
	tcase_add_test(tc, test_query_time_range);
	tcase_add_test(tc, test_query_time_semantics);
	tcase_add_test(tc, test_query_plans);
	tcase_add_test(tc, test_time_monotonic);
	tcase_add_test(tc, test_inclusion_proofs);
	tcase_add_test(tc, test_verify_entry_tampered);
	tcase_add_test(tc, test_verify_entry_uncovered);
	tcase_add_test(tc, test_verify_in_callers_txn);
	suite_add_tcase(s, tc);
	return th_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
