/*
 * test_witness.c — witness.h without a network: verifier keys (the key ID
 * computed here from the spec's formula), the 409 size body, the request
 * body over a real audit log, and cosignature checks with Ed25519
 * signatures made here (valid, altered, another key's, from the future,
 * missing, malformed).  The exchange with a live witness is
 * tests/sh/cli_witness.sh.
 */
#include "audit.h"
#include "merkle.h"
#include "witness.h"

#include <check.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME "witness.test/w1"
#define EM "\xe2\x80\x94"

static EVP_PKEY *wkey;
static uint8_t wpub[32];
static uint32_t wid;
static char vkey[256];

static void b64(const uint8_t *in, size_t n, char *out) { EVP_EncodeBlock((unsigned char *)out, in, (int)n); }

static uint32_t id_of(const char *name, const uint8_t pub[32])
{
	uint8_t buf[300], d[32];
	size_t nl = strlen(name);
	memcpy(buf, name, nl);
	buf[nl] = '\n';
	buf[nl + 1] = 0x04;
	memcpy(buf + nl + 2, pub, 32);
	ck_assert_int_eq(EVP_Digest(buf, nl + 34, d, NULL, EVP_sha256(), NULL), 1);
	return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

static void setup(void)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
	wkey = NULL;
	ck_assert_int_eq(EVP_PKEY_keygen(c, &wkey), 1);
	EVP_PKEY_CTX_free(c);
	size_t n = sizeof wpub;
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(wkey, wpub, &n), 1);
	wid = id_of(NAME, wpub);
	uint8_t raw[33];
	char enc[64];
	raw[0] = 0x04;
	memcpy(raw + 1, wpub, 32);
	b64(raw, sizeof raw, enc);
	snprintf(vkey, sizeof vkey, "%s+%08" PRIx32 "+%s", NAME, wid, enc);
}

static void teardown(void) { EVP_PKEY_free(wkey); }

START_TEST(test_vkey_parse)
{
	char name[256];
	uint32_t id;
	uint8_t pub[32];
	km_err e;
	ck_assert_int_eq(witness_vkey_parse(vkey, name, sizeof name, &id, pub, &e), KM_OK);
	ck_assert_str_eq(name, NAME);
	ck_assert_uint_eq(id, wid);
	ck_assert_mem_eq(pub, wpub, 32);

	/* another name with the same key: its key ID is not this one */
	char bad[300];
	snprintf(bad, sizeof bad, "witness.test/w2%s", vkey + strlen(NAME));
	ck_assert_int_eq(witness_vkey_parse(bad, name, sizeof name, &id, pub, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "does not belong to this name and key"));
	/* one bit of the key changed */
	snprintf(bad, sizeof bad, "%s", vkey);
	char *k = bad + strlen(NAME) + 10 + 5; /* inside the key (base64 may hold a +) */
	*k = *k == 'A' ? 'B' : 'A';
	ck_assert_int_eq(witness_vkey_parse(bad, name, sizeof name, &id, pub, &e), KM_EUSAGE);
	/* an Ed25519 note key (type 0x01) is not a cosignature key */
	uint8_t raw[33];
	char enc[64];
	raw[0] = 0x01;
	memcpy(raw + 1, wpub, 32);
	b64(raw, sizeof raw, enc);
	snprintf(bad, sizeof bad, "%s+%08" PRIx32 "+%s", NAME, wid, enc);
	ck_assert_int_eq(witness_vkey_parse(bad, name, sizeof name, &id, pub, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "0x04"));
	static const char *const shapes[] = {"", "nameonly", "a+b", "a b+0011aabb+AAAA", "+0011aabb+AAAA",
	                                     NAME "+0011AABB+AAAA", NAME "+0011aab+AAAA",
	                                     NAME "+0011aabb+A A=", NAME "+0011aabb+"};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		ck_assert_msg(witness_vkey_parse(shapes[i], name, sizeof name, &id, pub, &e) == KM_EUSAGE, "%s",
		              shapes[i]);
}
END_TEST

START_TEST(test_parse_size)
{
	uint64_t v = 7;
	ck_assert_int_eq(witness_parse_size("0\n", 2, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(witness_parse_size("20852163\n", 9, &v), 0);
	ck_assert_uint_eq(v, 20852163);
	ck_assert_int_eq(witness_parse_size("18446744073709551615\n", 21, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	static const char *const bad[] = {"", "\n", "12", "012\n", "1 2\n", "-1\n", "12\n\n",
	                                  "18446744073709551616\n", "0x10\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(witness_parse_size(bad[i], strlen(bad[i]), &v) == -1, "%s", bad[i]);
}
END_TEST

static const char TEXT[] = "keyward/test\n10\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 1795437913\n";

/* "— NAME base64(id || t || Ed25519(cosignature/v1 message))" */
static void cosign_line(EVP_PKEY *k, const char *name, uint32_t id, uint64_t t, const char *text,
                        char *out, size_t cap)
{
	char msg[512];
	int ml = snprintf(msg, sizeof msg, "cosignature/v1\ntime %" PRIu64 "\n%s", t, text);
	uint8_t raw[76];
	size_t sl = 64;
	for (int i = 0; i < 4; i++)
		raw[i] = (uint8_t)(id >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		raw[4 + i] = (uint8_t)(t >> (56 - 8 * i));
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestSignInit(m, NULL, NULL, NULL, k), 1);
	ck_assert_int_eq(EVP_DigestSign(m, raw + 12, &sl, (const unsigned char *)msg, (size_t)ml), 1);
	EVP_MD_CTX_free(m);
	char enc[128];
	b64(raw, sizeof raw, enc);
	snprintf(out, cap, EM " %s %s\n", name, enc);
}

static km_status check(const char *answer, int64_t now, witness_cosig *cs, size_t *n, km_err *e)
{
	return witness_check_cosignatures(answer, strlen(answer), TEXT, strlen(TEXT), NAME, wid, wpub, now,
	                                  cs, WITNESS_COSIG_MAX, n, e);
}

START_TEST(test_cosignatures)
{
	witness_cosig cs[WITNESS_COSIG_MAX];
	size_t n;
	km_err e;
	char line[256], other[256], answer[1024];
	int64_t now = 1795437913;
	cosign_line(wkey, NAME, wid, (uint64_t)now, TEXT, line, sizeof line);

	/* valid, after another witness's line (ignored, even though it does
	 * not verify: it is not ours) */
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *k2 = NULL;
	ck_assert_int_eq(EVP_PKEY_keygen_init(c), 1);
	ck_assert_int_eq(EVP_PKEY_keygen(c, &k2), 1);
	EVP_PKEY_CTX_free(c);
	cosign_line(k2, "other.test/w9", 0x01020304, 5, "nothing\n", other, sizeof other);
	snprintf(answer, sizeof answer, "%s%s", other, line);
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(cs[0].time, now);
	ck_assert_int_eq(strncmp(cs[0].line, line, strlen(line) - 1), 0);
	ck_assert_uint_eq(strlen(cs[0].line), strlen(line) - 1);

	/* the same name and key ID, signed by another key */
	cosign_line(k2, NAME, wid, (uint64_t)now, TEXT, answer, sizeof answer);
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "does not verify"));
	EVP_PKEY_free(k2);

	/* over another checkpoint */
	cosign_line(wkey, NAME, wid, (uint64_t)now, "keyward/test\n11\nAAAA\n", answer, sizeof answer);
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_EINTEGRITY);

	/* one base64 character of the signature changed */
	snprintf(answer, sizeof answer, "%s", line);
	char *p = answer + strlen(answer) - 10;
	*p = *p == 'A' ? 'B' : 'A';
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_EINTEGRITY);

	/* from the future, beyond the allowed skew; within it is fine */
	cosign_line(wkey, NAME, wid, (uint64_t)now + WITNESS_FUTURE_SKEW + 1, TEXT, answer, sizeof answer);
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "future"));
	cosign_line(wkey, NAME, wid, (uint64_t)now + WITNESS_FUTURE_SKEW, TEXT, answer, sizeof answer);
	ck_assert_int_eq(check(answer, now, cs, &n, &e), KM_OK);

	/* only other witnesses: no cosignature by ours */
	ck_assert_int_eq(check(other, now, cs, &n, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "no cosignature by " NAME));

	/* not signature lines */
	static const char *const junk[] = {"", "OK\n", EM " " NAME " not-base64!\n"};
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(check(junk[i], now, cs, &n, &e) == KM_EIO, "%s", junk[i]);
	char cut[256];
	snprintf(cut, sizeof cut, "%.*s", (int)strlen(line) - 1, line);
	ck_assert_int_eq(check(cut, now, cs, &n, &e), KM_EIO);

	/* without a key: shape only, nothing returned */
	ck_assert_int_eq(witness_check_cosignatures(other, strlen(other), TEXT, strlen(TEXT), NULL, 0, NULL,
	                                            now, cs, WITNESS_COSIG_MAX, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_request_body)
{
	char dir[] = "/tmp/kw-test-witness-XXXXXX", p[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(p, sizeof p, "%s/log.db", dir);
	sqlite3 *db;
	km_err e;
	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, audit_schema_sql, NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 13; i++) {
		audit_event ev = {"alice", "protect", "features/a", "ok", NULL};
		ck_assert_int_eq(audit_append(db, &ev, NULL, &e), KM_OK);
	}
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	uint8_t root[32], old_root[32];
	ck_assert_int_eq(audit_root_at(db, 13, root, &e), KM_OK);
	ck_assert_int_eq(audit_root_at(db, 6, old_root, &e), KM_OK);
	const char *note = "keyward/test\n13\nROOT=\n\n" EM " keyward/test SIG=\n";
	char *body;
	size_t len;

	/* old 6 -> 13: "old 6", the proof lines, a blank line, the note */
	ck_assert_int_eq(witness_request(db, 6, 13, root, note, &body, &len, &e), KM_OK);
	ck_assert_uint_eq(strlen(body), len);
	ck_assert_int_eq(strncmp(body, "old 6\n", 6), 0);
	char *blank = strstr(body, "\n\n");
	ck_assert_ptr_nonnull(blank);
	ck_assert_str_eq(blank + 2, note);
	uint8_t proof[MERKLE_PROOF_MAX][32];
	size_t np = 0;
	for (char *l = body + 6; l < blank + 1; l = strchr(l, '\n') + 1) {
		ck_assert_int_eq(strchr(l, '\n') - l, 44);
		ck_assert_int_eq(EVP_DecodeBlock(proof[np], (const unsigned char *)l, 44), 33);
		np++;
	}
	ck_assert_uint_ge(np, 2);
	merkle_hasher *mh;
	ck_assert_int_eq(merkle_hasher_new(&mh, &e), KM_OK);
	ck_assert_int_eq(merkle_verify_consistency(mh, 6, 13, old_root, root, (const uint8_t(*)[32])proof, np, &e),
	                 KM_OK);
	merkle_hasher_free(mh);
	free(body);

	/* old 0 and old == size: no proof lines */
	ck_assert_int_eq(witness_request(db, 0, 13, root, note, &body, &len, &e), KM_OK);
	ck_assert_int_eq(strncmp(body, "old 0\n\nkeyward/test\n", 20), 0);
	free(body);
	ck_assert_int_eq(witness_request(db, 13, 13, root, note, &body, &len, &e), KM_OK);
	ck_assert_int_eq(strncmp(body, "old 13\n\n", 8), 0);
	free(body);

	/* a root the log cannot prove it extends to: nothing is sent */
	root[0] ^= 1;
	ck_assert_int_eq(witness_request(db, 6, 13, root, note, &body, &len, &e), KM_EINTEGRITY);
	ck_assert_ptr_null(body);
	ck_assert_int_eq(witness_request(db, 14, 13, root, note, &body, &len, &e), KM_EUSAGE);
	sqlite3_close(db);
	char cmd[96];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("witness");
	TCase *tc = tcase_create("witness");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_vkey_parse);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_cosignatures);
	tcase_add_test(tc, test_request_body);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
