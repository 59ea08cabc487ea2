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
#include "db.h"
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
		ck_assert_msg(audit_sign_head(db, NULL, NULL, sign_cb, fx.h, &e) == KM_OK, "sign: %s", e.msg);
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
	ck_assert_msg(audit_verify(fx.db, fx.pub, NULL, NULL, NULL, &r, &e) == KM_OK, "verify: %s", e.msg);
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
	/* a thorough attacker keeps the filter columns in step with the text */
	ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE audit_events SET json = ?1, leaf_hash = ?2, "
	                                    "time = json_extract(?1, '$.time'), actor = json_extract(?1, '$.actor'), "
	                                    "action = json_extract(?1, '$.action'), object = json_extract(?1, '$.object'), "
	                                    "outcome = json_extract(?1, '$.outcome') WHERE seq = ?3",
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

/* Recompute audit_frontier and audit_nodes from the stored leaf hashes, as
 * a careful attacker would after deleting or rewriting entries: the derived
 * tables then agree with the leaves, so only a trusted root can tell. */
static void attacker_rebuild_tree(sqlite3 *db)
{
	merkle_hasher *h;
	merkle_frontier f;
	uint8_t nodes[MERKLE_MAX_LEVELS][HB];
	sqlite3_stmt *st, *put;
	km_err e;

	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	merkle_frontier_init(&f);
	sql(db, "DELETE FROM audit_nodes");
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO audit_nodes(level, idx, hash) VALUES(?, ?, ?)", -1,
	                                    &put, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT leaf_hash FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		unsigned top = 0;
		ck_assert_int_eq(merkle_frontier_append_nodes(h, &f, sqlite3_column_blob(st, 0), nodes, &top, &e), KM_OK);
		for (unsigned l = 1; l <= top; l++) {
			sqlite3_bind_int(put, 1, (int)l);
			sqlite3_bind_int64(put, 2, (sqlite3_int64)((f.size >> l) - 1));
			sqlite3_bind_blob(put, 3, nodes[l], HB, SQLITE_STATIC);
			ck_assert_int_eq(sqlite3_step(put), SQLITE_DONE);
			sqlite3_reset(put);
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(put);
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

static int64_t count_rows(sqlite3 *db, const char *q)
{
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_OK);
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

/* ...but an attacker who also rebuilds the frontier and nodes from the
 * remaining leaf hashes leaves a log that verifies without an anchor: only
 * the anchor (test_anchor_refuses_truncation_at_head) or a tree head
 * exported elsewhere (the SIEM) shows the log was longer.  This test pins
 * that documented behaviour. */
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
	attacker_rebuild_tree(fx.db);
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_EINTEGRITY);
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
	attacker_rebuild_tree(fx.db);
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_EINTEGRITY);
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_OK);
	sql(fx.db, "COMMIT");
	json_decref(d);
	free(big);
	grow(fx.db, 9600, 1);

	progress_calls = 0;
	progress_last = 0;
	ck_assert_int_eq(audit_verify(fx.db, fx.pub, NULL, count_progress, NULL, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_uint_eq(r.entries_checked, 9600);
	ck_assert_uint_eq(r.heads_checked, r.heads_total);
	ck_assert_int_ge(progress_calls, 2);
	ck_assert_uint_eq(progress_last, 9600);

	ck_assert_int_eq(audit_verify(fx.db, fx.pub, NULL, cancel_progress, NULL, &r, &e), KM_EBUSY);
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
	/* a damaged stored node deep in the log, and one missing, found by
	 * the threaded pipeline */
	sql(fx.db, "CREATE TABLE keep_node AS SELECT * FROM audit_nodes WHERE level = 1 AND idx = 3000");
	sql(fx.db, "UPDATE audit_nodes SET hash = randomblob(32) WHERE level = 1 AND idx = 3000");
	r = verify();
	expect_bad(&r, 6001, "the stored tree node over entries 6001..6002 (level 1)", "does not match");
	sql(fx.db, "DELETE FROM audit_nodes WHERE level = 1 AND idx = 3000");
	r = verify();
	expect_bad(&r, 6001, "the stored tree node over entries 6001..6002 (level 1) is missing", NULL);
	sql(fx.db, "INSERT INTO audit_nodes SELECT * FROM keep_node");
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

/* A random details value: nested objects (some with more keys than the
 * writer sorts on the stack), arrays, integers at the extremes, booleans,
 * null, and strings that need every kind of escape Jansson makes. */
static unsigned rnd(unsigned *r, size_t n)
{
	return (unsigned)((size_t)rand_r(r) % n);
}

static json_t *random_value(unsigned *r, int depth)
{
	static const char *const strs[] = {"plain", "", "with \"quotes\"", "back\\slash", "tab\there",
	                                   "nl\nx", "ctl\x01\x1f", "del\x7f", "slash/", "caf\xc3\xa9",
	                                   "\xf0\x9f\x94\x91 key", "~!@#$%^&*()_+`-={}[]|:;'<>,.?"};
	static const json_int_t ints[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN, 1000000007, -99};
	unsigned k = rnd(r, depth < 3 ? 8 : 5);
	switch (k) {
	case 0: return json_string(strs[rnd(r, KM_ARRAY_LEN(strs))]);
	case 1: return json_integer(ints[rnd(r, KM_ARRAY_LEN(ints))]);
	case 2: return json_boolean(rnd(r, 2));
	case 3: return json_null();
	case 4: return json_string(strs[0]);
	case 5: {
		json_t *a = json_array();
		for (unsigned i = rnd(r, 4); i > 0; i--)
			json_array_append_new(a, random_value(r, depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (unsigned i = rnd(r, k == 7 ? 24 : 4); i > 0; i--) {
			char name[32];
			static const char *const names[] = {"a", "b", "Z", "aa", "a b", "r\xc3\xa9", "q\"", "n"};
			unsigned w = rnd(r, KM_ARRAY_LEN(names));
			snprintf(name, sizeof name, "%s%u", names[w], w == KM_ARRAY_LEN(names) - 1 ? i : 0);
			json_object_set_new(o, name, random_value(r, depth + 1));
		}
		return o;
	}
	}
}

/* The writer emits the canonical text itself (not through Jansson's
 * dump): every stored text must be exactly what Jansson makes of the same
 * event object. */
START_TEST(test_canonical_matches_jansson)
{
	static const char *const names[] = {"alice", "o'brien \"ob\"", "zo\xc3\xab", "tab\tuser", "/x/y"};
	unsigned r = 12345;
	km_err e;
	int fallback_seen = 0, fast_seen = 0;

	sql(fx.db, "BEGIN IMMEDIATE");
	for (uint64_t i = 1; i <= 400; i++) {
		json_t *d = json_object();
		for (unsigned k = rnd(&r, 6); k > 0; k--) {
			char name[16];
			snprintf(name, sizeof name, "f%u", rnd(&r, 30));
			json_object_set_new(d, name, random_value(&r, 1));
		}
		audit_event ev = {names[rnd(&r, KM_ARRAY_LEN(names))], "asset.protect",
		                  i % 7 ? names[rnd(&r, KM_ARRAY_LEN(names))] : NULL, results[i % 7],
		                  i % 11 ? d : NULL};
		uint64_t seq;
		ck_assert_int_eq(audit_append(fx.db, &ev, &seq, &e), KM_OK);
		audit_row row;
		ck_assert_int_eq(audit_get(fx.db, seq, &row, &e), KM_OK);
		json_t *o = json_pack("{s:s,s:s,s:o,s:s?,s:s,s:I,s:s}", "action", ev.action, "actor", ev.actor,
		                      "details", ev.details ? json_incref(ev.details) : json_object(), "object",
		                      ev.object, "outcome", ev.outcome, "seq", (json_int_t)seq, "time", row.time);
		ck_assert_ptr_nonnull(o);
		char *want = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
		ck_assert_str_eq(row.json, want);
		if (strchr(want, '\\'))
			fallback_seen = 1;
		else
			fast_seen = 1;
		free(want);
		json_decref(o);
		audit_row_free(&row);
		json_decref(d);
	}
	ck_assert_msg(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e) == KM_OK, "sign: %s", e.msg);
	sql(fx.db, "COMMIT");
	ck_assert(fallback_seen && fast_seen);
	audit_verify_result res = verify();
	ck_assert_msg(res.intact == 1, "%s", res.problem);
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_OK);
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_EUSAGE);
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
	ck_assert_int_eq(audit_sign_head(fx.db, NULL, NULL, sign_cb, fx.h, &e), KM_ECONFIG);
	sql(fx.db, "ROLLBACK");
	ck_assert_int_eq(audit_verify(fx.db, NULL, NULL, NULL, NULL, &(audit_verify_result){0}, &e), KM_EUSAGE);
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
	if (f->hide_action && strcmp(actions[i % KM_ARRAY_LEN(actions)], f->hide_action) == 0)
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
		{.outcome = "error"},
		{.outcome = "ok"},
		{.actor = "carol", .object_prefix = "features/", .outcome = "ok"},
		{.object = "features/fraud", .actor = "alice"},
		{.hide_action = "key.rotate"},
		{.actor = "bob", .hide_action = "key.rotate"},
		{.object_prefix = "features/", .hide_action = "audit.verify"},
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

/* The time filters the front ends accept: RFC 3339 UTC or a prefix cut
 * after a field, in range; a trailing Z kept only after milliseconds. */
START_TEST(test_time_prefix_check)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} rows[] = {
		{"2026", "2026"},
		{"2026-03", "2026-03"},
		{"2026-03-31", "2026-03-31"},
		{"2024-02-29", "2024-02-29"},
		{"2026-03-01T10", "2026-03-01T10"},
		{"2026-03-01T10:30", "2026-03-01T10:30"},
		{"2026-03-01T10:30:59", "2026-03-01T10:30:59"},
		{"2026-03-01T10:30:00Z", "2026-03-01T10:30:00"},
		{"2026-03-01T10Z", "2026-03-01T10"},
		{"2026-03-01T10:30:00.123Z", "2026-03-01T10:30:00.123Z"},
		{"2026-03-01T10:30:00.123", "2026-03-01T10:30:00.123"},
		{"", NULL},
		{"26", NULL},
		{"2026-3", NULL},
		{"2026-13", NULL},
		{"2026-00", NULL},
		{"2026-02-30", NULL},
		{"2025-02-29", NULL},
		{"2026-04-31", NULL},
		{"2026-03-01 10:30", NULL},
		{"2026-03-01T24", NULL},
		{"2026-03-01T10:60", NULL},
		{"2026-03-01Z", NULL},
		{"2026-03-01T10:30:00+01:00", NULL},
		{"yesterday", NULL},
		{"2026-03-01T10:30:00.123Zx", NULL},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(rows); i++) {
		char out[AUDIT_TIME_LEN + 1] = "";
		km_err e;
		km_err_clear(&e);
		km_status st = audit_time_prefix_check(rows[i].in, "--since", out, &e);
		if (rows[i].out) {
			ck_assert_msg(st == KM_OK, "'%s' refused: %s", rows[i].in, e.msg);
			ck_assert_str_eq(out, rows[i].out);
		} else {
			ck_assert_msg(st == KM_EUSAGE, "'%s' accepted", rows[i].in);
			ck_assert_ptr_nonnull(strstr(e.msg, "--since"));
		}
	}
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
		{.outcome = "denied"}, /* the partial index of rare outcomes */
		{.outcome = "error", .actor = "carol"},
		{.outcome = "ok", .action = "key.rotate"},
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
	attacker_rebuild_tree(fx.db);
	grow(fx.db, 4, 1);
	ck_assert_int_eq(audit_get(fx.db, 4, &row, &e), KM_OK);
	ck_assert_str_eq(row.time, "2999-01-01T00:00:00.000Z");
	audit_row_free(&row);
	free(json);

	/* a rewritten (rehashed) time that goes backwards is pinpointed */
	sql(fx.db, "DELETE FROM audit_events");
	sql(fx.db, "DELETE FROM audit_tree_heads");
	sql(fx.db, "DELETE FROM audit_frontier");
	sql(fx.db, "DELETE FROM audit_nodes");
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
		ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, seq, &r, &e), KM_OK);
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
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 101, &r, &e), KM_ENOTFOUND);
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
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 42, &r, &e), KM_OK);
	expect_bad(&r, 42, "entry 42", "modified (leaf hash does not match)");
	/* another entry modified with its hash recomputed: it cannot be proven
	 * into the signed head, nor can 44, whose proof holds 43's leaf hash;
	 * 42's proof holds the stored node over 43..44, which still is the
	 * signed one, so 42 is proven */
	sql(fx.db, "UPDATE audit_events SET json = replace(json, 'r-99', 'r-77') WHERE seq = 42");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 42, &r, &e), KM_OK);
	ck_assert_int_eq(r.intact, 1);
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 43);
	char *forged = replace(json, "r-77", "r-00");
	attacker_rewrite(fx.db, 43, forged);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 43, &r, &e), KM_OK);
	expect_bad(&r, 43, "entry 43 cannot be proven", "tree head at size 100");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 44, &r, &e), KM_OK);
	expect_bad(&r, 44, "cannot be proven", NULL);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 42, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	/* non-canonical text with a matching hash */
	attacker_rewrite(fx.db, 43, json);
	char *json44 = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", 44);
	char *spaced = replace(json44, "\"actor\":", "\"actor\": ");
	attacker_rewrite(fx.db, 44, spaced);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 44, &r, &e), KM_OK);
	expect_bad(&r, 44, "entry 44", "canonical");
	/* a forged head signature */
	attacker_rewrite(fx.db, 44, json44);
	free(json44);
	sql(fx.db, "UPDATE audit_tree_heads SET signature = zeroblob(64) WHERE size = 100");
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 5, &r, &e), KM_OK);
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
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, NULL, 101, &r, &e), KM_OK);
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

/* ------------------------------------------------------------ the anchor
 *
 * keyward keeps the newest (size, root) it vouched for in the HSM token,
 * out of the database's reach.  Here it lives in memory: `anchor` plays the
 * token object, and commit() plays km_tx_commit: a writer, the anchor
 * check, COMMIT, then the new anchor stored (or not, for a process killed
 * between COMMIT and storing it). */

static audit_anchor anchor;
static int sign_calls;

static km_status counting_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	sign_calls++;
	return sign_cb(ctx, digest, sig, e);
}

/* A new deployment's anchor: the empty tree. */
static void anchor_init(audit_anchor *a)
{
	merkle_hasher *h;
	km_err e;
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	a->have = 1;
	a->size = 0;
	ck_assert_int_eq(merkle_sha256(h, NULL, 0, a->root, &e), KM_OK);
	merkle_hasher_free(h);
}

/* Append up to `upto` entries and commit the keyward way, checking against
 * *a; store_anchor: write the new anchor back to *a after COMMIT.  Returns
 * the first failure (the transaction is rolled back then). */
static km_status commit(sqlite3 *db, uint64_t upto, audit_anchor *a, int store_anchor, km_err *e)
{
	audit_writer *w;
	uint64_t n;
	km_status st = KM_OK;

	ck_assert_int_eq(audit_writer_new(db, &w, e), KM_OK);
	sql(db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_size(db, &n, e), KM_OK);
	for (uint64_t i = n + 1; i <= upto && st == KM_OK; i++) {
		json_t *d;
		audit_event ev = nth_event(i, &d);
		st = audit_writer_append(w, &ev, NULL, e);
		json_decref(d);
	}
	if (st == KM_OK)
		st = audit_writer_sign_head(w, a, fx.pub, counting_sign, fx.h, e);
	if (st != KM_OK) {
		sql(db, "ROLLBACK");
		audit_writer_free(w);
		return st;
	}
	sql(db, "COMMIT");
	if (store_anchor) {
		audit_anchor next;
		ck_assert_int_eq(audit_writer_anchor(w, &next, e), KM_OK);
		*a = next;
	}
	audit_writer_free(w);
	return KM_OK;
}

static void commit_ok(uint64_t upto, int store_anchor)
{
	km_err e;
	km_status st = commit(fx.db, upto, &anchor, store_anchor, &e);
	ck_assert_msg(st == KM_OK, "commit up to %llu: %s", (unsigned long long)upto, e.msg);
}

/* The standard log, anchored: heads at 30, 60 and 100, anchor at 100. */
static void anchored_log(void)
{
	anchor_init(&anchor);
	commit_ok(30, 1);
	commit_ok(60, 1);
	commit_ok(100, 1);
}

static audit_verify_result verify_anchored(const audit_anchor *a)
{
	audit_verify_result r;
	km_err e;
	ck_assert_msg(audit_verify(fx.db, fx.pub, a, NULL, NULL, &r, &e) == KM_OK, "verify: %s", e.msg);
	return r;
}

/* A refused commit signed nothing and changed nothing. */
static void expect_refused(km_status st, const km_err *e, uint64_t size, int64_t heads, const char *words1,
                           const char *words2)
{
	uint64_t n;
	km_err e2;
	ck_assert_msg(st == KM_EINTEGRITY, "commit was not refused: %s (%s)", km_status_name(st), e->msg);
	ck_assert_msg(strstr(e->msg, words1), "\"%s\" does not say \"%s\"", e->msg, words1);
	ck_assert_msg(!words2 || strstr(e->msg, words2), "\"%s\" does not say \"%s\"", e->msg, words2);
	ck_assert_int_eq(sign_calls, 0);
	ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM audit_tree_heads"), heads);
	ck_assert_int_eq(audit_size(fx.db, &n, &e2), KM_OK);
	ck_assert_uint_eq(n, size);
}

START_TEST(test_anchor_intact)
{
	uint8_t root[HB], sig[64];
	uint64_t size;
	int64_t t;
	int have;
	km_err e;
	audit_writer *w;
	audit_anchor got;

	/* an empty deployment: signing has nothing to do, the anchor is the
	 * empty tree, and an empty log verifies against it */
	audit_anchor empty;
	anchor_init(&empty);
	anchor = empty;
	commit_ok(0, 1);
	ck_assert_int_eq(anchor.have, 1);
	ck_assert_uint_eq(anchor.size, 0);
	ck_assert_mem_eq(anchor.root, empty.root, HB);
	audit_verify_result r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_int_eq(r.anchor_checked, 1);

	commit_ok(30, 1);
	commit_ok(60, 1);
	commit_ok(100, 1);
	/* the stored anchor is the head just signed */
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_uint_eq(anchor.size, 100);
	ck_assert_uint_eq(size, 100);
	ck_assert_mem_eq(anchor.root, root, HB);
	r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_int_eq(r.anchor_checked, 1);
	/* without an anchor nothing is compared */
	r = verify_anchored(NULL);
	ck_assert_int_eq(r.intact, 1);
	ck_assert_int_eq(r.anchor_checked, 0);
	for (uint64_t seq = 1; seq <= 100; seq += 33) {
		ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, &anchor, seq, &r, &e), KM_OK);
		ck_assert_msg(r.intact == 1, "%s", r.problem);
		ck_assert_int_eq(r.anchor_checked, 1);
	}

	/* the writer hands out an anchor only after a successful sign call in
	 * this transaction, and not once it appended after it */
	ck_assert_int_eq(audit_writer_new(fx.db, &w, &e), KM_OK);
	ck_assert_int_eq(audit_writer_anchor(w, &got, &e), KM_EUSAGE);
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_writer_sign_head(w, &anchor, fx.pub, counting_sign, fx.h, &e), KM_OK);
	ck_assert_int_eq(audit_writer_anchor(w, &got, &e), KM_OK);
	ck_assert_uint_eq(got.size, 100);
	json_t *d;
	audit_event ev = nth_event(101, &d);
	ck_assert_int_eq(audit_writer_append(w, &ev, NULL, &e), KM_OK);
	json_decref(d);
	ck_assert_int_eq(audit_writer_anchor(w, &got, &e), KM_EUSAGE);
	sql(fx.db, "ROLLBACK");
	audit_writer_reset(w);
	audit_writer_free(w);

	/* a damaged anchor (size 0 with some other root) is refused */
	audit_anchor bad = empty;
	bad.root[0] ^= 1;
	sql(fx.db, "DELETE FROM audit_events; DELETE FROM audit_tree_heads; DELETE FROM audit_frontier; "
	           "DELETE FROM audit_nodes;");
	sign_calls = 0;
	ck_assert_int_eq(commit(fx.db, 5, &bad, 1, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "anchor"));
	ck_assert_int_eq(sign_calls, 0);
	r = verify_anchored(&bad);
	expect_bad(&r, 1, "the anchor in the HSM records an empty log", NULL);
}
END_TEST

/* Finding 1, exactly: edit event 42, recompute its leaf hash, delete the
 * heads at and after it, rebuild the frontier and the stored nodes from the
 * leaves.  Every derived table now agrees with the rewritten leaves. */
static void rewrite_history(uint64_t k)
{
	char *json = column_text(fx.db, "SELECT json FROM audit_events WHERE seq = ?", (int64_t)k);
	char *forged = replace(json, "\"r-77\"", "\"r-66\"");
	char q[128];
	attacker_rewrite(fx.db, (int64_t)k, forged);
	snprintf(q, sizeof q, "DELETE FROM audit_tree_heads WHERE size >= %llu", (unsigned long long)k);
	sql(fx.db, q);
	attacker_rebuild_tree(fx.db);
	free(json);
	free(forged);
}

START_TEST(test_anchor_refuses_rewritten_history)
{
	km_err e;
	audit_anchor none = {0};

	anchored_log();
	rewrite_history(42);

	/* the next command of any kind: with events, or with none */
	sign_calls = 0;
	expect_refused(commit(fx.db, 101, &anchor, 1, &e), &e, 100, 1, "at size 100", "rewritten");
	expect_refused(commit(fx.db, 100, &anchor, 1, &e), &e, 100, 1, "at size 100", "rewritten");
	ck_assert_ptr_nonnull(strstr(e.msg, "nothing was signed"));
	/* the one-shot signer too */
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_sign_head(fx.db, &anchor, fx.pub, counting_sign, fx.h, &e), KM_EINTEGRITY);
	sql(fx.db, "ROLLBACK");
	ck_assert_int_eq(sign_calls, 0);
	ck_assert_uint_eq(anchor.size, 100);

	/* verify against the anchor: the rewrite shows at the anchored size,
	 * after the last head that survived */
	audit_verify_result r = verify_anchored(&anchor);
	expect_bad(&r, 31, "entries 31..100 do not match the tree anchored in the HSM at size 100", "rewritten");
	ck_assert_int_eq(r.anchor_checked, 0);
	ck_assert_uint_eq(r.heads_checked, 1);
	audit_verify_result one;
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, &anchor, 10, &one, &e), KM_OK);
	expect_bad(&one, 10, "cannot be proven consistent with the tree anchored in the HSM at size 100", NULL);

	/* What the finding was: with no anchor keyward signs the rewrite, and
	 * a verification without the anchor calls it intact... */
	sign_calls = 0;
	ck_assert_int_eq(commit(fx.db, 101, &none, 0, &e), KM_OK);
	ck_assert_int_eq(sign_calls, 1);
	r = verify_anchored(NULL);
	ck_assert_msg(r.intact == 1, "the unanchored rewrite should look intact: %s", r.problem);
	/* ...which the anchor still catches */
	r = verify_anchored(&anchor);
	expect_bad(&r, 31, "entries 31..100", "anchored in the HSM at size 100");
}
END_TEST

/* Truncation exactly at an older head, derived tables rebuilt: the log
 * left is consistent with itself, and shorter than the anchor. */
START_TEST(test_anchor_refuses_truncation_at_head)
{
	km_err e;

	anchored_log();
	sql(fx.db, "DELETE FROM audit_events WHERE seq > 60");
	sql(fx.db, "DELETE FROM audit_tree_heads WHERE size > 60");
	attacker_rebuild_tree(fx.db);

	sign_calls = 0;
	expect_refused(commit(fx.db, 61, &anchor, 1, &e), &e, 60, 2, "records 100", "truncated");
	expect_refused(commit(fx.db, 60, &anchor, 1, &e), &e, 60, 2, "records 100", "truncated");
	ck_assert_ptr_nonnull(strstr(e.msg, "nothing was signed"));
	audit_verify_result r = verify_anchored(&anchor);
	expect_bad(&r, 61, "entries 61..100 are missing", "the anchor in the HSM records 100 entries");
	ck_assert_uint_eq(r.entries_checked, 60);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, &anchor, 5, &r, &e), KM_OK);
	expect_bad(&r, 61, "entries 61..100 are missing", "anchor");
	/* without the anchor this is the documented limit */
	r = verify_anchored(NULL);
	ck_assert_int_eq(r.intact, 1);
}
END_TEST

/* A process killed between COMMIT and storing the anchor: the log is ahead
 * of the anchor by a genuinely signed head, which the next commit proves
 * and accepts. */
START_TEST(test_anchor_lagging_accepted)
{
	audit_anchor stale;
	km_err e;

	anchored_log();
	stale = anchor;
	commit_ok(120, 0); /* killed before the anchor was stored */
	ck_assert_uint_eq(anchor.size, 100);
	audit_verify_result r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_int_eq(r.anchor_checked, 1);
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, &anchor, 110, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);

	sign_calls = 0;
	commit_ok(130, 1);
	ck_assert_int_eq(sign_calls, 1);
	ck_assert_uint_eq(anchor.size, 130);

	/* two commits behind, and a command that appends nothing: accepted,
	 * nothing to sign, and the anchor catches up */
	commit_ok(140, 0);
	commit_ok(150, 0);
	sign_calls = 0;
	commit_ok(150, 1);
	ck_assert_int_eq(sign_calls, 0);
	ck_assert_uint_eq(anchor.size, 150);
	r = verify_anchored(&stale);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);

	/* the one-shot signer with a lagging anchor */
	audit_anchor lag = anchor;
	commit_ok(160, 0);
	sql(fx.db, "BEGIN IMMEDIATE");
	for (uint64_t i = 161; i <= 165; i++) {
		json_t *d;
		audit_event ev = nth_event(i, &d);
		ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_OK);
		json_decref(d);
	}
	ck_assert_msg(audit_sign_head(fx.db, &lag, fx.pub, sign_cb, fx.h, &e) == KM_OK, "%s", e.msg);
	sql(fx.db, "COMMIT");
	r = verify_anchored(&lag);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	ck_assert_uint_eq(r.head_size, 165);
}
END_TEST

/* Entries appended past the anchor by someone else (no head the audit key
 * signed covers them) are never signed for, even with a head row forged
 * over them; without an anchor the writer still vouches for them. */
START_TEST(test_anchor_refuses_inserted_tail)
{
	audit_anchor none = {0};
	uint8_t root[HB];
	km_err e;

	anchored_log();
	grow(fx.db, 105, 0);
	sign_calls = 0;
	expect_refused(commit(fx.db, 106, &anchor, 1, &e), &e, 105, 3, "101..105", "could have been inserted");

	/* a head row at 105 with the right root and a made-up signature */
	merkle_hasher *h;
	merkle_frontier f;
	sqlite3_stmt *st;
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	merkle_frontier_init(&f);
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "SELECT leaf_hash FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		ck_assert_int_eq(merkle_frontier_append(h, &f, sqlite3_column_blob(st, 0), NULL, &e), KM_OK);
	sqlite3_finalize(st);
	ck_assert_int_eq(merkle_frontier_root(h, &f, root, &e), KM_OK);
	merkle_hasher_free(h);
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "INSERT INTO audit_tree_heads VALUES(105, ?, 1700000000, "
	                                    "randomblob(64))", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, root, HB, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	expect_refused(commit(fx.db, 106, &anchor, 1, &e), &e, 105, 4, "101..105", "could have been inserted");

	/* the public key is required to accept a log ahead of its anchor */
	audit_writer *w;
	ck_assert_int_eq(audit_writer_new(fx.db, &w, &e), KM_OK);
	sql(fx.db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_writer_sign_head(w, &anchor, NULL, counting_sign, fx.h, &e), KM_EUSAGE);
	sql(fx.db, "ROLLBACK");
	audit_writer_free(w);

	/* the old behaviour, without an anchor */
	sql(fx.db, "DELETE FROM audit_tree_heads WHERE size = 105");
	ck_assert_int_eq(commit(fx.db, 106, &none, 0, &e), KM_OK);
	ck_assert_int_eq(sign_calls, 1);
}
END_TEST

/* The anchor lags at 60.  Rewriting an entry after it (80) leaves the first
 * 60 untouched, so the consistency proof from the anchor holds: what stops
 * the signer is that no head the audit key signed has the new root. */
START_TEST(test_anchor_lagging_rewrite_after_anchor)
{
	km_err e;

	anchor_init(&anchor);
	commit_ok(30, 1);
	commit_ok(60, 1);
	commit_ok(100, 0);
	ck_assert_uint_eq(anchor.size, 60);
	rewrite_history(80);
	sign_calls = 0;
	expect_refused(commit(fx.db, 101, &anchor, 1, &e), &e, 100, 2, "61..100", "no tree head signed");
	/* verification: the head at 100 went with the rewrite, so entries
	 * 61..100 are not covered; the anchor itself still matches at 60 */
	audit_verify_result r = verify_anchored(&anchor);
	expect_bad(&r, 61, "entries 61..100 are not covered", NULL);
	ck_assert_int_eq(r.anchor_checked, 1);
}
END_TEST

/* The anchor lags at 60 and entry 42, before it, is rewritten: the
 * consistency proof from the stored nodes to the anchored root fails. */
START_TEST(test_anchor_lagging_rewrite_before_anchor)
{
	km_err e;

	anchor_init(&anchor);
	commit_ok(30, 1);
	commit_ok(60, 1);
	commit_ok(100, 0);
	rewrite_history(42);
	sign_calls = 0;
	expect_refused(commit(fx.db, 101, &anchor, 1, &e), &e, 100, 1, "cannot be proven to extend",
	               "anchored in the HSM at size 60");
	audit_verify_result r = verify_anchored(&anchor);
	expect_bad(&r, 31, "entries 31..60 do not match the tree anchored in the HSM at size 60", NULL);
}
END_TEST

/* The attacker rewrites entry 42 and rebuilds the nodes, but leaves the
 * frontier as it was, so the log's root at 100 still matches the anchor.
 * The commit is accepted — and the head it signs is over the true history
 * plus the new entry, computed from the proven frontier, not over anything
 * the rebuilt tables say; verification then shows the rewrite. */
START_TEST(test_anchor_signs_the_proven_state)
{
	uint8_t (*honest)[HB] = calloc(101, HB), root[HB], want[HB], sig[64];
	merkle_frontier f;
	merkle_hasher *h;
	uint64_t size;
	int64_t t;
	int have;
	km_err e;

	anchored_log();
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "SELECT leaf_hash FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		memcpy(honest[i], sqlite3_column_blob(st, 0), HB);
	}
	sqlite3_finalize(st);
	sql(fx.db, "CREATE TABLE keep_frontier AS SELECT * FROM audit_frontier");
	rewrite_history(42);
	sql(fx.db, "DELETE FROM audit_frontier; INSERT INTO audit_frontier SELECT * FROM keep_frontier");

	commit_ok(101, 1);
	audit_row row;
	ck_assert_int_eq(audit_get(fx.db, 101, &row, &e), KM_OK);
	memcpy(honest[100], row.leaf_hash, HB);
	audit_row_free(&row);
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	merkle_frontier_init(&f);
	for (int i = 0; i < 101; i++)
		ck_assert_int_eq(merkle_frontier_append(h, &f, honest[i], NULL, &e), KM_OK);
	ck_assert_int_eq(merkle_frontier_root(h, &f, want, &e), KM_OK);
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_uint_eq(size, 101);
	ck_assert_mem_eq(root, want, HB);
	ck_assert_mem_eq(anchor.root, want, HB);
	audit_verify_result r = verify_anchored(&anchor);
	expect_bad(&r, 31, "entries 31..101", NULL);
	merkle_hasher_free(h);
	free(honest);
}
END_TEST

/* The one-shot signer takes the entries after the proven base as the
 * caller's, but the stored frontier it signs must still extend that base. */
START_TEST(test_sign_head_oneshot_checks_frontier)
{
	km_err e;

	anchored_log();
	sql(fx.db, "BEGIN IMMEDIATE");
	for (uint64_t i = 101; i <= 105; i++) {
		json_t *d;
		audit_event ev = nth_event(i, &d);
		ck_assert_int_eq(audit_append(fx.db, &ev, NULL, &e), KM_OK);
		json_decref(d);
	}
	sql(fx.db, "SAVEPOINT before_damage");
	sql(fx.db, "UPDATE audit_frontier SET hash = randomblob(32) WHERE level = 3");
	sign_calls = 0;
	ck_assert_int_eq(audit_sign_head(fx.db, &anchor, fx.pub, counting_sign, fx.h, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "frontier does not extend the proven tree at size 100"));
	ck_assert_int_eq(sign_calls, 0);
	sql(fx.db, "ROLLBACK TO before_damage");
	ck_assert_msg(audit_sign_head(fx.db, &anchor, fx.pub, counting_sign, fx.h, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(sign_calls, 1);
	sql(fx.db, "COMMIT");
	audit_verify_result r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
}
END_TEST

/* ------------------------------------------------------------ stored nodes */

/* MTH(D[lo:hi]) and the RFC 9162 proofs by their recursive definitions,
 * written here from the RFC, independent of core/merkle.c's walks. */
static uint64_t rfc_split(uint64_t n)
{
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

static void rfc_mth(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t lo, uint64_t hi, uint8_t out[HB])
{
	km_err e;
	if (hi == lo) {
		ck_assert_int_eq(merkle_sha256(h, NULL, 0, out, &e), KM_OK);
	} else if (hi - lo == 1) {
		memcpy(out, leaf[lo], HB);
	} else {
		uint8_t l[HB], r[HB];
		uint64_t k = rfc_split(hi - lo);
		rfc_mth(h, leaf, lo, lo + k, l);
		rfc_mth(h, leaf, lo + k, hi, r);
		ck_assert_int_eq(merkle_node_hash(h, l, r, out, &e), KM_OK);
	}
}

static void rfc_path(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t m, uint64_t lo, uint64_t hi,
                     uint8_t (*out)[HB], size_t *len)
{
	if (hi - lo <= 1)
		return;
	uint64_t k = rfc_split(hi - lo);
	if (m < k) {
		rfc_path(h, leaf, m, lo, lo + k, out, len);
		rfc_mth(h, leaf, lo + k, hi, out[(*len)++]);
	} else {
		rfc_path(h, leaf, m - k, lo + k, hi, out, len);
		rfc_mth(h, leaf, lo, lo + k, out[(*len)++]);
	}
}

static void rfc_subproof(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t m, uint64_t lo, uint64_t hi, int b,
                         uint8_t (*out)[HB], size_t *len)
{
	if (m == hi - lo) {
		if (!b)
			rfc_mth(h, leaf, lo, hi, out[(*len)++]);
		return;
	}
	uint64_t k = rfc_split(hi - lo);
	if (m <= k) {
		rfc_subproof(h, leaf, m, lo, lo + k, b, out, len);
		rfc_mth(h, leaf, lo + k, hi, out[(*len)++]);
	} else {
		rfc_subproof(h, leaf, m - k, lo + k, hi, 0, out, len);
		rfc_mth(h, leaf, lo, lo + k, out[(*len)++]);
	}
}

/* The stored leaf hashes, in order (caller frees). */
static uint8_t (*load_leaves(uint64_t n))[HB]
{
	uint8_t (*leaf)[HB] = calloc(n, HB);
	sqlite3_stmt *st;
	uint64_t i = 0;
	ck_assert_ptr_nonnull(leaf);
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "SELECT leaf_hash FROM audit_events ORDER BY seq", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && i < n)
		memcpy(leaf[i++], sqlite3_column_blob(st, 0), HB);
	sqlite3_finalize(st);
	ck_assert_uint_eq(i, n);
	return leaf;
}

/* merkle_leaf_fn over that array: the old leaf-walking path, as reference. */
static km_status array_leaf(void *ctx, uint64_t index, uint8_t out[HB], km_err *e)
{
	(void)e;
	memcpy(out, ((uint8_t (*)[HB])ctx)[index], HB);
	return KM_OK;
}

/* Proofs from the database equal the leaf-walking proofs and the RFC's
 * definitions, and verify. */
static void check_db_proofs(merkle_hasher *h, uint8_t (*leaf)[HB], uint64_t m, uint64_t n, int consistency)
{
	uint8_t got[MERKLE_PROOF_MAX][HB], ref[MERKLE_PROOF_MAX][HB], rfc[MERKLE_PROOF_MAX][HB];
	uint8_t r1[HB], r2[HB];
	size_t len = 99, ref_len = 98, rfc_len = 0;
	km_err e;

	rfc_mth(h, leaf, 0, n, r2);
	if (!consistency) {
		ck_assert_msg(audit_inclusion_proof(fx.db, m + 1, n, got, &len, &e) == KM_OK, "%s", e.msg);
		ck_assert_int_eq(merkle_inclusion_proof(h, array_leaf, leaf, m, n, ref, MERKLE_PROOF_MAX, &ref_len, &e),
		                 KM_OK);
		rfc_path(h, leaf, m, 0, n, rfc, &rfc_len);
		ck_assert_int_eq(merkle_verify_inclusion(h, leaf[m], m, n, (const uint8_t(*)[HB])got, len, r2, &e),
		                 KM_OK);
	} else {
		ck_assert_msg(audit_consistency_proof(fx.db, m, n, got, &len, &e) == KM_OK, "%s", e.msg);
		ck_assert_int_eq(merkle_consistency_proof(h, array_leaf, leaf, m, n, ref, MERKLE_PROOF_MAX, &ref_len,
		                                          &e), KM_OK);
		if (m > 0 && m < n)
			rfc_subproof(h, leaf, m, 0, n, 1, rfc, &rfc_len);
		rfc_mth(h, leaf, 0, m, r1);
		ck_assert_int_eq(merkle_verify_consistency(h, m, n, r1, r2, (const uint8_t(*)[HB])got, len, &e), KM_OK);
	}
	ck_assert_msg(len == rfc_len && ref_len == rfc_len, "%s %llu/%llu: %zu hashes, leaf walk %zu, RFC %zu",
	              consistency ? "consistency" : "inclusion", (unsigned long long)m, (unsigned long long)n, len,
	              ref_len, rfc_len);
	ck_assert_msg(memcmp(got, rfc, len * HB) == 0 && memcmp(ref, rfc, len * HB) == 0, "%s %llu/%llu differs",
	              consistency ? "consistency" : "inclusion", (unsigned long long)m, (unsigned long long)n);
}

START_TEST(test_nodes_and_proofs_from_db)
{
	merkle_hasher *h;
	km_err e;

	/* heads at uneven sizes, so nodes are written across transactions */
	grow(fx.db, 7, 1);
	grow(fx.db, 33, 1);
	grow(fx.db, 70, 1);
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	uint8_t (*leaf)[HB] = load_leaves(70);

	/* every node of level >= 1 is stored, and is the MTH of its range */
	ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM audit_nodes"), 70 - 3 /* popcount(70) */);
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "SELECT level, idx, hash FROM audit_nodes", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t l = (uint64_t)sqlite3_column_int64(st, 0), i = (uint64_t)sqlite3_column_int64(st, 1);
		uint8_t want[HB];
		ck_assert_uint_ge(l, 1);
		ck_assert_uint_le((i + 1) << l, 70);
		rfc_mth(h, leaf, i << l, (i + 1) << l, want);
		ck_assert_msg(memcmp(sqlite3_column_blob(st, 2), want, HB) == 0, "node (%llu, %llu)",
		              (unsigned long long)l, (unsigned long long)i);
	}
	sqlite3_finalize(st);

	/* all sizes 1..70, all pairs */
	for (uint64_t n = 1; n <= 70; n++) {
		for (uint64_t m = 0; m < n; m++)
			check_db_proofs(h, leaf, m, n, 0);
		for (uint64_t m = 0; m <= n; m++)
			check_db_proofs(h, leaf, m, n, 1);
	}
	free(leaf);

	/* random pairs in a larger log */
	for (uint64_t n = 70; n < 3000; n += 419)
		grow(fx.db, n + 419, 1);
	leaf = load_leaves(3003);
	uint64_t x = 12345;
	for (int i = 0; i < 150; i++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		uint64_t n = 1 + (x >> 33) % 3003;
		x = x * 6364136223846793005u + 1442695040888963407u;
		uint64_t m = (x >> 33) % n;
		check_db_proofs(h, leaf, m, n, 0);
		check_db_proofs(h, leaf, m, n, 1);
	}
	free(leaf);
	merkle_hasher_free(h);
	audit_verify_result r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
}
END_TEST

/* A damaged, missing or stray stored node: proofs fail (or cannot be
 * made), verification names it, and the signer's lag proof refuses it. */
START_TEST(test_tampered_nodes)
{
	uint8_t root[HB], sig[64], proof[MERKLE_PROOF_MAX][HB];
	uint64_t size;
	int64_t t;
	int have;
	size_t len;
	audit_row row;
	merkle_hasher *h;
	km_err e;

	anchored_log();
	sql(fx.db, "CREATE TABLE keep_nodes AS SELECT * FROM audit_nodes");
	ck_assert_int_eq(merkle_hasher_new(&h, &e), KM_OK);
	ck_assert_int_eq(audit_latest_head(fx.db, &size, root, &t, sig, &have, &e), KM_OK);
	ck_assert_int_eq(audit_get(fx.db, 9, &row, &e), KM_OK);
	/* entry 9's path at size 100 runs through node (2, 3): entries 13..16 */
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 9, 100, proof, &len, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_inclusion(h, row.leaf_hash, 8, 100, (const uint8_t(*)[HB])proof, len, root, &e),
	                 KM_OK);
	sql(fx.db, "UPDATE audit_nodes SET hash = randomblob(32) WHERE level = 2 AND idx = 3");
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 9, 100, proof, &len, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_inclusion(h, row.leaf_hash, 8, 100, (const uint8_t(*)[HB])proof, len, root, &e),
	                 KM_EINTEGRITY);
	audit_verify_result r;
	ck_assert_int_eq(audit_verify_entry(fx.db, fx.pub, &anchor, 9, &r, &e), KM_OK);
	expect_bad(&r, 9, "cannot be proven", NULL);
	r = verify_anchored(&anchor);
	expect_bad(&r, 13, "the stored tree node over entries 13..16 (level 2) does not match", "intact");
	ck_assert_uint_eq(r.entries_checked, 30); /* held back until head 30 proved 13..16 */

	/* missing */
	sql(fx.db, "DELETE FROM audit_nodes; INSERT INTO audit_nodes SELECT * FROM keep_nodes");
	sql(fx.db, "DELETE FROM audit_nodes WHERE level = 3 AND idx = 1");
	ck_assert_int_eq(audit_inclusion_proof(fx.db, 1, 100, proof, &len, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "entries 9..16 (level 3) is missing"));
	r = verify_anchored(&anchor);
	expect_bad(&r, 9, "the stored tree node over entries 9..16 (level 3) is missing", NULL);

	/* stray: past the log, or at a level no tree this size has */
	sql(fx.db, "DELETE FROM audit_nodes; INSERT INTO audit_nodes SELECT * FROM keep_nodes");
	sql(fx.db, "INSERT INTO audit_nodes VALUES(1, 5000, randomblob(32))");
	r = verify_anchored(&anchor);
	expect_bad(&r, 101, "(level 1, index 5000) lies outside the log", NULL);
	sql(fx.db, "DELETE FROM audit_nodes WHERE idx = 5000");
	sql(fx.db, "INSERT INTO audit_nodes VALUES(9, 0, randomblob(32))");
	r = verify_anchored(&anchor);
	expect_bad(&r, 101, "(level 9, index 0) lies outside the log", NULL);
	sql(fx.db, "DELETE FROM audit_nodes WHERE level = 9");
	r = verify_anchored(&anchor);
	ck_assert_msg(r.intact == 1, "%s", r.problem);

	/* one already where the next append puts one: refused */
	sql(fx.db, "INSERT INTO audit_nodes VALUES(1, 50, randomblob(32))");
	sign_calls = 0;
	expect_refused(commit(fx.db, 102, &anchor, 1, &e), &e, 100, 3, "already stored", NULL);
	sql(fx.db, "DELETE FROM audit_nodes WHERE level = 1 AND idx = 50");

	/* a lagging anchor (60) and a damaged node on the proof 60 -> 100 */
	audit_anchor at60 = {1, 60, {0}};
	uint8_t r60[HB];
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(fx.db, "SELECT root FROM audit_tree_heads WHERE size = 60", -1, &st, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	memcpy(r60, sqlite3_column_blob(st, 0), HB);
	sqlite3_finalize(st);
	memcpy(at60.root, r60, HB);
	sql(fx.db, "UPDATE audit_nodes SET hash = randomblob(32) WHERE level = 4 AND idx = 2");
	sign_calls = 0;
	expect_refused(commit(fx.db, 101, &at60, 1, &e), &e, 100, 3, "cannot be proven to extend", "size 60");
	sql(fx.db, "DELETE FROM audit_nodes; INSERT INTO audit_nodes SELECT * FROM keep_nodes");
	ck_assert_int_eq(commit(fx.db, 101, &at60, 1, &e), KM_OK);
	ck_assert_uint_eq(at60.size, 101);

	audit_row_free(&row);
	merkle_hasher_free(h);
}
END_TEST

/* Schema 4 on a catalogue written before it: the nodes are rebuilt from the
 * leaf hashes, identical to the ones the writer stores. */
/* The filter columns are copies of fields of the hashed text: each kind
 * of edit to a copy alone (the text and every hash intact) is found, and
 * pinned to its entry. */
START_TEST(test_tamper_filter_columns)
{
	static const struct {
		const char *set;
		int64_t seq;
	} edits[] = {
		{"actor = 'mallory'", 40},
		{"action = 'status'", 41},
		{"object = 'features/other'", 42},
		{"object = NULL", 43},
		{"outcome = 'denied'", 45},   /* entry 45 was ok */
		{"time = '2026-01-01T00:00:00.000Z'", 46},
		{"actor = NULL", 47},
	};
	standard_log();
	sql(fx.db, "UPDATE audit_events SET object = NULL WHERE seq = 50"); /* object is never NULL here */
	audit_verify_result r = verify();
	expect_bad(&r, 50, "entry 50: its filter columns", "do not match its text");
	sql(fx.db, "UPDATE audit_events SET object = json_extract(json, '$.object') WHERE seq = 50");
	for (size_t i = 0; i < KM_ARRAY_LEN(edits); i++) {
		char q[400];
		snprintf(q, sizeof q, "UPDATE audit_events SET %s WHERE seq = %lld", edits[i].set, (long long)edits[i].seq);
		sql(fx.db, q);
		r = verify();
		expect_bad(&r, (uint64_t)edits[i].seq, "filter columns", "anomaly scans");
		if (i == 0) {
			/* a row read shows the hashed text's actor, not the edited copy */
			audit_row row;
			km_err e;
			ck_assert_int_eq(audit_get(fx.db, 40, &row, &e), KM_OK);
			ck_assert_str_eq(row.actor, actors[40 % KM_ARRAY_LEN(actors)]);
			audit_row_free(&row);
		}
		snprintf(q, sizeof q, "UPDATE audit_events SET time = json_extract(json, '$.time'), actor = "
		         "json_extract(json, '$.actor'), action = json_extract(json, '$.action'), object = "
		         "json_extract(json, '$.object'), outcome = json_extract(json, '$.outcome') WHERE seq = %lld",
		         (long long)edits[i].seq);
		sql(fx.db, q);
	}
	r = verify();
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	/* an edited text outranks its stale columns: the head check names it */
	sql(fx.db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 20");
	sql(fx.db, "UPDATE audit_events SET json = replace(json, '\"outcome\":\"ok\"', '\"outcome\":\"denied\"') "
	           "WHERE seq = 10");
	r = verify();
	ck_assert_uint_eq(r.first_bad_seq, 10);
	ck_assert_ptr_null(strstr(r.problem, "filter columns"));
}
END_TEST

/* Schema 13 rebuilds an events table whose filter columns were generated
 * (json_extract) into stored columns: every row kept, the log intact, and
 * the writer appends on top. */
START_TEST(test_migration_v14_stored_columns)
{
	char path[512];
	sqlite3 *db;
	km_err e;
	int64_t v;

	snprintf(path, sizeof path, "%s/v14.db", fx.t.dir);
	ck_assert_int_eq(km_db_open(path, 1, &db, &e), KM_OK);
	sql(db, "INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/test-deployment')");
	grow(db, 50, 1);
	/* as keyward up to schema 12 stored it */
	sql(db, "CREATE TABLE old_events AS SELECT seq, json, leaf_hash FROM audit_events;"
	        "DROP TABLE audit_events;"
	        "CREATE TABLE audit_events(seq INTEGER PRIMARY KEY, json TEXT NOT NULL, leaf_hash BLOB NOT NULL, "
	        "time TEXT GENERATED ALWAYS AS (json_extract(json,'$.time')) VIRTUAL, "
	        "actor TEXT GENERATED ALWAYS AS (json_extract(json,'$.actor')) VIRTUAL, "
	        "action TEXT GENERATED ALWAYS AS (json_extract(json,'$.action')) VIRTUAL, "
	        "object TEXT GENERATED ALWAYS AS (json_extract(json,'$.object')) VIRTUAL, "
	        "outcome TEXT GENERATED ALWAYS AS (json_extract(json,'$.outcome')) VIRTUAL);"
	        "CREATE INDEX audit_events_object ON audit_events(object, seq);"
	        "CREATE INDEX audit_events_actor ON audit_events(actor, seq);"
	        "CREATE INDEX audit_events_action ON audit_events(action, seq);"
	        "CREATE INDEX audit_events_outcome ON audit_events(outcome, seq);"
	        "CREATE INDEX audit_events_time ON audit_events(time);"
	        "INSERT INTO audit_events(seq, json, leaf_hash) SELECT * FROM old_events;");
	/* schema 13: v15's packed lineage table (and its triggers) and v16's
	 * table of its times not made yet either */
	sql(db, "DROP TRIGGER lineage_edges_out_ins; DROP TRIGGER lineage_edges_out_upd;"
	        "DROP TRIGGER lineage_edges_out_del; DROP TABLE lineage_out; DROP TABLE lineage_out_times;"
	        "PRAGMA user_version = 13");
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM pragma_table_xinfo('audit_events') WHERE hidden"), 5);
	sqlite3_close(db);

	ck_assert_int_eq(km_db_open(path, 0, &db, &e), KM_OK);
	ck_assert_int_eq(km_db_int64(db, "PRAGMA user_version", &v, &e), KM_OK);
	ck_assert_int_eq(v, km_db_schema_version());
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM pragma_table_xinfo('audit_events') WHERE hidden"), 0);
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM audit_events"), 50);
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM audit_events WHERE time IS json_extract(json, '$.time') "
	                                "AND actor IS json_extract(json, '$.actor') AND action IS "
	                                "json_extract(json, '$.action') AND object IS json_extract(json, '$.object') "
	                                "AND outcome IS json_extract(json, '$.outcome') AND time IS NOT NULL"), 50);
	audit_verify_result r;
	ck_assert_int_eq(audit_verify(db, fx.pub, NULL, NULL, NULL, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);
	grow(db, 60, 1);
	ck_assert_int_eq(audit_verify(db, fx.pub, NULL, NULL, NULL, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1 && r.entries_checked == 60, "%s", r.problem);
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM audit_events WHERE actor = 'bob'"), 20);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_migration_backfills_nodes)
{
	char path[512];
	sqlite3 *db;
	km_err e;
	int64_t v;

	snprintf(path, sizeof path, "%s/migrate.db", fx.t.dir);
	ck_assert_int_eq(km_db_open(path, 1, &db, &e), KM_OK);
	ck_assert_int_ge(km_db_schema_version(), 4);
	ck_assert_int_eq(km_db_int64(db, "PRAGMA user_version", &v, &e), KM_OK);
	ck_assert_int_eq(v, km_db_schema_version());
	sql(db, "INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/test-deployment')");
	grow(db, 40, 1);
	grow(db, 77, 1);
	sql(db, "CREATE TABLE keep_nodes AS SELECT * FROM audit_nodes");
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM keep_nodes"), 77 - 4 /* popcount(77) */);
	/* back to schema 3, as an older keyward left it (v5's columns too) */
	sql(db, "DROP TABLE audit_nodes; PRAGMA user_version = 3");
	sql(db, "ALTER TABLE users DROP COLUMN scopes; ALTER TABLE users DROP COLUMN cred;"
	        "ALTER TABLE users DROP COLUMN failures; ALTER TABLE users DROP COLUMN locked_until;"
	        "ALTER TABLE users DROP COLUMN disabled; ALTER TABLE users DROP COLUMN totp_step;"
	        "ALTER TABLE users DROP COLUMN mac; ALTER TABLE key_versions DROP COLUMN mac");
	sql(db, "DROP TABLE approvals; DROP TABLE requests"); /* v6 */
	/* v7's policies and schedule columns */
	sql(db, "DROP TABLE policies; DROP INDEX keys_by_due; DROP INDEX keys_by_overdue;"
	        "DROP INDEX keys_by_attention; ALTER TABLE keys DROP COLUMN cadence_s;"
	        "ALTER TABLE keys DROP COLUMN usage_bound; ALTER TABLE keys DROP COLUMN due_at;"
	        "ALTER TABLE keys DROP COLUMN overdue_at; ALTER TABLE keys DROP COLUMN attention");
	sql(db, "DROP TABLE jobs; DROP TABLE job_unreachable; ALTER TABLE assets DROP COLUMN path"); /* v8 */
	/* ... none of v9's lineage tables (as v12 left them), nor v11's column */
	sql(db, "ALTER TABLE key_versions DROP COLUMN retired");
	sql(db, "DROP TRIGGER assets_lineage_ins; DROP TRIGGER assets_lineage_rekey;"
	        "DROP TABLE lineage_events; DROP TABLE lineage_protection; DROP TABLE lineage_edges;"
	        "DROP TABLE lineage_nodes; DROP INDEX assets_by_identity");
	sql(db, "DROP TABLE lineage_out"); /* v15 (its triggers went with lineage_edges) */
	sql(db, "DROP TABLE lineage_out_times"); /* v16 */
	sql(db, "DROP TABLE audit_forward"); /* v10 */
	sql(db, "DROP TABLE audit_cosignatures"); /* v13 */
	sqlite3_close(db);

	ck_assert_int_eq(km_db_open(path, 0, &db, &e), KM_OK);
	ck_assert_int_eq(km_db_int64(db, "PRAGMA user_version", &v, &e), KM_OK);
	ck_assert_int_eq(v, km_db_schema_version());
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM audit_nodes"), 73);
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM (SELECT * FROM keep_nodes EXCEPT "
	                                "SELECT * FROM audit_nodes)"), 0);
	audit_verify_result r;
	ck_assert_int_eq(audit_verify(db, fx.pub, NULL, NULL, NULL, &r, &e), KM_OK);
	ck_assert_msg(r.intact == 1, "%s", r.problem);

	/* a damaged log: the backfill stops at the gap, quietly */
	sql(db, "DELETE FROM audit_events WHERE seq = 50");
	ck_assert_int_eq(audit_nodes_backfill(db, &e), KM_EUSAGE);
	sql(db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(audit_nodes_backfill(db, &e), KM_OK);
	sql(db, "COMMIT");
	ck_assert_int_eq(count_rows(db, "SELECT count(*) FROM audit_nodes"), 49 - 3 /* popcount(49) */);
	ck_assert_int_eq(count_rows(db, "SELECT max((idx + 1) << level) FROM audit_nodes"), 48);
	sqlite3_close(db);
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
	tcase_add_test(tc, test_time_prefix_check);
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
	tcase_add_test(tc, test_canonical_matches_jansson);
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
	tcase_add_test(tc, test_anchor_intact);
	tcase_add_test(tc, test_anchor_refuses_rewritten_history);
	tcase_add_test(tc, test_anchor_refuses_truncation_at_head);
	tcase_add_test(tc, test_anchor_lagging_accepted);
	tcase_add_test(tc, test_anchor_refuses_inserted_tail);
	tcase_add_test(tc, test_anchor_lagging_rewrite_after_anchor);
	tcase_add_test(tc, test_anchor_lagging_rewrite_before_anchor);
	tcase_add_test(tc, test_anchor_signs_the_proven_state);
	tcase_add_test(tc, test_sign_head_oneshot_checks_frontier);
	tcase_add_test(tc, test_nodes_and_proofs_from_db);
	tcase_add_test(tc, test_tampered_nodes);
	tcase_add_test(tc, test_migration_backfills_nodes);
	tcase_add_test(tc, test_tamper_filter_columns);
	tcase_add_test(tc, test_migration_v14_stored_columns);
	suite_add_tcase(s, tc);
	return th_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
