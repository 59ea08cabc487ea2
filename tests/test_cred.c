/*
 * test_cred.c — personal credentials: Argon2id, the sealed record, Ed25519
 * approvals and the TOTP second factor.
 *
 * Ground truth comes from outside core/cred.c: the RFC 9106 section 5.3
 * Argon2id vector, the RFC 6238 Appendix B TOTP table (all three hashes),
 * the RFC 4648 section 10 base32 vectors, libargon2 and OpenSSL called
 * directly to re-derive a record by the layout cred.h documents, and the
 * openssl command line verifying a signature.  Tampering and malformed
 * records are tables: each row says which status and which words the
 * message must carry.  Low Argon2id cost everywhere except one timed test
 * at the defaults.
 */
#include "cred.h"
#include "secmem.h"
#include "th_softhsm.h"

#include <argon2.h>
#include <check.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The lowest accepted cost: these tests are about the record, not Argon2. */
static const km_cred_params fast = {1, 8, 1};

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; hex[i]; i++) {
		if (hex[i] == ' ')
			continue;
		unsigned v;
		ck_assert_msg(j < n, "hex longer than %zu bytes", n);
		ck_assert_int_eq(sscanf(hex + i, "%2x", &v), 1);
		out[j++] = (uint8_t)v;
		i++;
	}
	ck_assert_uint_eq(j, n);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ------------------------------------------------------------ record surgery */

/* The object holding the dotted path's last member, and that member's key. */
static json_t *parent_of(json_t *rec, const char *path, char *leaf, size_t cap)
{
	const char *dot = strchr(path, '.');
	if (!dot) {
		km_strlcpy(leaf, path, cap);
		return rec;
	}
	char head[64];
	ck_assert_uint_lt((size_t)(dot - path), sizeof head);
	memcpy(head, path, (size_t)(dot - path));
	head[dot - path] = '\0';
	km_strlcpy(leaf, dot + 1, cap);
	json_t *obj = json_object_get(rec, head);
	ck_assert_msg(json_is_object(obj), "no object %s", head);
	return obj;
}

/* Standard base64 decoding, written here (not cred.c's). */
static size_t b64_dec(const char *s, uint8_t *out, size_t cap)
{
	uint8_t buf[192];
	size_t n = strlen(s);
	ck_assert_uint_eq(n % 4, 0);
	ck_assert_uint_le(n / 4 * 3, sizeof buf);
	int r = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	ck_assert_int_ge(r, 0);
	size_t got = (size_t)r - (size_t)(s[n - 1] == '=') - (size_t)(s[n - 2] == '=');
	ck_assert_uint_le(got, cap);
	memcpy(out, buf, got);
	return got;
}

static size_t field_bytes(const json_t *rec, const char *path, uint8_t *out, size_t cap)
{
	char leaf[64];
	json_t *obj = parent_of((json_t *)(uintptr_t)rec, path, leaf, sizeof leaf);
	const char *s = json_string_value(json_object_get(obj, leaf));
	ck_assert_msg(s != NULL, "no string at %s", path);
	return b64_dec(s, out, cap);
}

static void set_bytes(json_t *rec, const char *path, const uint8_t *in, size_t n)
{
	char leaf[64], enc[256];
	ck_assert_uint_lt(4 * ((n + 2) / 3), sizeof enc);
	EVP_EncodeBlock((unsigned char *)enc, in, (int)n);
	json_t *obj = parent_of(rec, path, leaf, sizeof leaf);
	ck_assert_int_eq(json_object_set_new(obj, leaf, json_string(enc)), 0);
}

static void flip_byte(json_t *rec, const char *path, int index)
{
	uint8_t b[128];
	size_t n = field_bytes(rec, path, b, sizeof b);
	size_t i = index < 0 ? n - (size_t)(-index) : (size_t)index;
	ck_assert_uint_lt(i, n);
	b[i] ^= 0x01;
	set_bytes(rec, path, b, n);
}

static void set_value(json_t *rec, const char *path, json_t *v)
{
	char leaf[64];
	json_t *obj = parent_of(rec, path, leaf, sizeof leaf);
	if (v)
		ck_assert_int_eq(json_object_set_new(obj, leaf, v), 0);
	else
		ck_assert_int_eq(json_object_del(obj, leaf), 0);
}

/* alice's record at the fast cost, with a second factor when totp is set
 * (its base32 secret into b32 if not NULL). */
static json_t *make_record(const char *user, const char *pass, int totp, char *b32)
{
	json_t *rec = NULL;
	km_err e = {0};
	ck_assert_msg(km_cred_create(user, pass, &fast, &rec, &e) == KM_OK, "%s", e.msg);
	if (!totp)
		return rec;
	km_cred_session *s = NULL;
	json_t *with = NULL;
	char uri[KM_TOTP_URI_MAX], secret[KM_TOTP_BASE32_MAX];
	ck_assert_msg(km_cred_unlock(user, rec, pass, &s, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_cred_totp_enrol(s, rec, &with, uri, sizeof uri, secret, sizeof secret, &e) == KM_OK,
	              "%s", e.msg);
	if (b32)
		strcpy(b32, secret);
	km_cred_session_free(s);
	json_decref(rec);
	return with;
}

/* ------------------------------------------------------------ Argon2id */

START_TEST(test_argon2id_rfc9106)
{
	/* RFC 9106 section 5.3: Argon2id v0x13, 32 KiB, 3 passes, 4 lanes,
	 * password 32 x 0x01, salt 16 x 0x02, secret 8 x 0x03, AD 12 x 0x04. */
	uint8_t pwd[32], salt[16], secret[8], ad[12], tag[32], want[32];
	km_cred_params p = {3, 32, 4};
	km_err e = {0};

	memset(pwd, 0x01, sizeof pwd);
	memset(salt, 0x02, sizeof salt);
	memset(secret, 0x03, sizeof secret);
	memset(ad, 0x04, sizeof ad);
	unhex("0d 64 0d f5 8d 78 76 6c 08 c0 37 a3 4a 8b 53 c9 d0 1e f0 45 2d 75 b6 5e b5 25 20 e9 6b 01 e6 59",
	      want, sizeof want);
	ck_assert_msg(km_cred_argon2id(&p, pwd, sizeof pwd, salt, sizeof salt, secret, sizeof secret,
	                               ad, sizeof ad, tag, sizeof tag, &e) == KM_OK, "%s", e.msg);
	ck_assert_mem_eq(tag, want, sizeof want);
}
END_TEST

/* The wrapper passes t, m and p through in the right order: it agrees with
 * libargon2's own one-call API for a cost where all three differ. */
START_TEST(test_argon2id_matches_libargon2)
{
	const km_cred_params p = {2, 64, 3};
	const char pwd[] = "correct horse battery staple";
	uint8_t salt[16], ours[64], theirs[64];
	km_err e = {0};

	memset(salt, 0x5a, sizeof salt);
	ck_assert_msg(km_cred_argon2id(&p, (const uint8_t *)pwd, strlen(pwd), salt, sizeof salt, NULL, 0, NULL, 0,
	                               ours, sizeof ours, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(argon2id_hash_raw(p.t_cost, p.m_cost_kib, p.parallelism, pwd, strlen(pwd), salt,
	                                   sizeof salt, theirs, sizeof theirs), ARGON2_OK);
	ck_assert_mem_eq(ours, theirs, sizeof ours);
}
END_TEST

static const struct {
	km_cred_params p;
	km_status want;
	const char *words; /* in the message */
} params_rows[] = {
	{{3, 65536, 1}, KM_OK, NULL},
	{{1, 8, 1}, KM_OK, NULL},
	{{1, 32, 4}, KM_OK, NULL},
	{{0, 65536, 1}, KM_EINVAL, "t_cost"},
	{{65, 65536, 1}, KM_EINVAL, "t_cost"},
	{{3, 7, 1}, KM_EINVAL, "m_cost_kib"},
	{{3, 4u * 1024u * 1024u + 1u, 1}, KM_EINVAL, "m_cost_kib"},
	{{3, 65536, 0}, KM_EINVAL, "parallelism"},
	{{3, 65536, 17}, KM_EINVAL, "parallelism"},
	{{3, 15, 2}, KM_EINVAL, "8 KiB per lane"},
};

START_TEST(test_params_check)
{
	km_err e = {0};
	km_status st = km_cred_params_check(&params_rows[_i].p, &e);
	ck_assert_int_eq(st, params_rows[_i].want);
	if (params_rows[_i].words)
		ck_assert_msg(strstr(e.msg, params_rows[_i].words), "row %d: \"%s\"", _i, e.msg);
	/* A record cannot be made at a refused cost either. */
	json_t *rec = NULL;
	if (st != KM_OK) {
		ck_assert_int_eq(km_cred_create("alice", "pw", &params_rows[_i].p, &rec, &e), st);
		ck_assert_ptr_null(rec);
	}
}
END_TEST

START_TEST(test_params_default)
{
	km_cred_params d = km_cred_params_default();
	ck_assert_uint_eq(d.t_cost, 3);
	ck_assert_uint_eq(d.m_cost_kib, 65536);
	ck_assert_uint_eq(d.parallelism, 1);
}
END_TEST

/* The one test at the default cost; prints its time. */
START_TEST(test_default_cost_timed)
{
	km_cred_params d = km_cred_params_default();
	uint8_t salt[16] = {0}, out[64];
	json_t *rec = NULL;
	km_cred_session *s = NULL;
	km_err e = {0};
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(km_cred_argon2id(&d, (const uint8_t *)"pw", 2, salt, sizeof salt, NULL, 0, NULL, 0,
	                                  out, sizeof out, &e), KM_OK);
	double one = seconds_since(&t0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(km_cred_create("alice", "a long passphrase", NULL, &rec, &e) == KM_OK, "%s", e.msg);
	double create = seconds_since(&t0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec, "kdf"), "m_cost_kib")), 65536);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec, "kdf"), "t_cost")), 3);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(km_cred_unlock("alice", rec, "a long passphrase", &s, &e) == KM_OK, "%s", e.msg);
	double unlock = seconds_since(&t0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(km_cred_unlock("alice", rec, "a wrong passphrase", &(km_cred_session *){NULL}, &e),
	                 KM_EDENIED);
	double refuse = seconds_since(&t0);

	fprintf(stderr, "test_cred: Argon2id at t=3 m=64MiB p=1: one run %.3f s; create %.3f s, "
	        "unlock %.3f s, wrong passphrase %.3f s\n", one, create, unlock, refuse);
	km_cred_session_free(s);
	json_decref(rec);
}
END_TEST

/* ------------------------------------------------------------ TOTP */

static const struct {
	int64_t time;
	const char *sha1, *sha256, *sha512;
} rfc6238_rows[] = {
	{59, "94287082", "46119246", "90693936"},
	{1111111109, "07081804", "68084774", "25091201"},
	{1111111111, "14050471", "67062674", "99943326"},
	{1234567890, "89005924", "91819424", "93441116"},
	{2000000000, "69279037", "90698825", "38618901"},
	{20000000000, "65353130", "77737706", "47863826"},
};

START_TEST(test_totp_rfc6238)
{
	/* Appendix B: 8 digits, 30 s, and one ASCII seed per hash (errata 2866). */
	static const char seed20[] = "12345678901234567890";
	static const char seed32[] = "12345678901234567890123456789012";
	static const char seed64[] = "1234567890123456789012345678901234567890123456789012345678901234";
	const struct {
		const char *hash, *seed, *want;
	} cases[] = {
		{"SHA1", seed20, rfc6238_rows[_i].sha1},
		{"SHA256", seed32, rfc6238_rows[_i].sha256},
		{"SHA512", seed64, rfc6238_rows[_i].sha512},
	};
	for (size_t c = 0; c < KM_ARRAY_LEN(cases); c++) {
		char code[KM_TOTP_CODE_MAX];
		km_err e = {0};
		ck_assert_msg(km_totp_code((const uint8_t *)cases[c].seed, strlen(cases[c].seed), cases[c].hash,
		                           rfc6238_rows[_i].time, 30, 8, code, &e) == KM_OK, "%s", e.msg);
		ck_assert_msg(strcmp(code, cases[c].want) == 0, "%s at %lld: %s, want %s", cases[c].hash,
		              (long long)rfc6238_rows[_i].time, code, cases[c].want);
		/* 6 digits are the low six of the same value. */
		ck_assert_int_eq(km_totp_code((const uint8_t *)cases[c].seed, strlen(cases[c].seed), cases[c].hash,
		                              rfc6238_rows[_i].time, 30, 6, code, &e), KM_OK);
		ck_assert_str_eq(code, cases[c].want + 2);
	}
}
END_TEST

START_TEST(test_totp_code_arguments)
{
	const uint8_t k[20] = {1};
	char code[KM_TOTP_CODE_MAX];
	km_err e = {0};
	ck_assert_int_eq(km_totp_code(k, sizeof k, "MD5", 59, 30, 6, code, &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "SHA1, SHA256 or SHA512"));
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", 59, 30, 5, code, &e), KM_EINVAL);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", 59, 30, 9, code, &e), KM_EINVAL);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", 59, 0, 6, code, &e), KM_EINVAL);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", -1, 30, 6, code, &e), KM_EINVAL);
	ck_assert_int_eq(km_totp_code(k, 0, "SHA1", 59, 30, 6, code, &e), KM_EINVAL);
}
END_TEST

static const struct {
	const char *raw, *b32;
} rfc4648_rows[] = {
	{"", ""}, {"f", "MY"}, {"fo", "MZXQ"}, {"foo", "MZXW6"},
	{"foob", "MZXW6YQ"}, {"fooba", "MZXW6YTB"}, {"foobar", "MZXW6YTBOI"},
};

START_TEST(test_base32_rfc4648)
{
	const char *raw = rfc4648_rows[_i].raw, *b32 = rfc4648_rows[_i].b32;
	char enc[32];
	uint8_t dec[16];
	size_t n = 99;
	km_err e = {0};

	ck_assert_uint_eq(km_base32_encode((const uint8_t *)raw, strlen(raw), enc, sizeof enc), strlen(b32));
	ck_assert_str_eq(enc, b32);
	ck_assert_int_eq(km_base32_decode(b32, dec, sizeof dec, &n, &e), KM_OK);
	ck_assert_uint_eq(n, strlen(raw));
	ck_assert_mem_eq(dec, raw, n);
	/* Lower case and the RFC's padding decode the same. */
	char lower[32], padded[32];
	for (size_t i = 0; i <= strlen(b32); i++)
		lower[i] = (char)(b32[i] >= 'A' && b32[i] <= 'Z' ? b32[i] + 32 : b32[i]);
	ck_assert_int_eq(km_base32_decode(lower, dec, sizeof dec, &n, &e), KM_OK);
	ck_assert_mem_eq(dec, raw, strlen(raw));
	snprintf(padded, sizeof padded, "%s%.*s", b32, (int)((8 - strlen(b32) % 8) % 8), "========");
	ck_assert_int_eq(km_base32_decode(padded, dec, sizeof dec, &n, &e), KM_OK);
	ck_assert_uint_eq(n, strlen(raw));
	/* Too small an output buffer is refused, not overrun. */
	if (strlen(b32) > 0) {
		ck_assert_uint_eq(km_base32_encode((const uint8_t *)raw, strlen(raw), enc, strlen(b32)), 0);
		ck_assert_str_eq(enc, "");
	}
}
END_TEST

static const struct {
	const char *text;
	const char *words;
} base32_bad_rows[] = {
	{"M", "length"},
	{"MZX", "length"},
	{"MZXW6Y", "length"},
	{"MZXW6YTB=", "length"},   /* padding after a full group */
	{"MY=", "length"},         /* padding that does not complete the group */
	{"MZ", "not canonical"},   /* 'Z' leaves a set bit beyond the byte */
	{"M1", "position 2"},      /* '1' is not in the alphabet */
	{"MZXW 6YQ", "position 5"},
	{"MZ=XW", "position 3"},
};

START_TEST(test_base32_bad)
{
	uint8_t out[16];
	size_t n = 0;
	km_err e = {0};
	ck_assert_int_eq(km_base32_decode(base32_bad_rows[_i].text, out, sizeof out, &n, &e), KM_EINVAL);
	ck_assert_msg(strstr(e.msg, base32_bad_rows[_i].words), "\"%s\": %s", base32_bad_rows[_i].text, e.msg);
}
END_TEST

/* One step either way is accepted and reports its step; two are not. */
START_TEST(test_totp_window)
{
	uint8_t k[20];
	const int64_t now = 1700000015; /* mid-step */
	const int64_t t = now / 30;
	ck_assert_int_eq(RAND_bytes(k, sizeof k), 1);
	for (int d = -2; d <= 2; d++) {
		char code[KM_TOTP_CODE_MAX];
		int64_t step = -7;
		km_err e = {0};
		ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", now + 30 * d, 30, 6, code, &e), KM_OK);
		km_status st = km_totp_check(k, sizeof k, "SHA1", 30, 6, code, now, -1, &step, &e);
		if (d >= -1 && d <= 1) {
			ck_assert_msg(st == KM_OK, "offset %d: %s", d, e.msg);
			ck_assert_int_eq(step, t + d);
		} else {
			ck_assert_int_eq(st, KM_EDENIED);
			ck_assert_ptr_nonnull(strstr(e.msg, "wrong"));
			ck_assert_int_eq(step, -7);
		}
	}
}
END_TEST

START_TEST(test_totp_replay)
{
	uint8_t k[20];
	char now_code[KM_TOTP_CODE_MAX], prev_code[KM_TOTP_CODE_MAX], next_code[KM_TOTP_CODE_MAX];
	const int64_t now = 1700000015, t = now / 30;
	int64_t step = 0, used;
	km_err e = {0};

	ck_assert_int_eq(RAND_bytes(k, sizeof k), 1);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", now, 30, 6, now_code, &e), KM_OK);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", now - 30, 30, 6, prev_code, &e), KM_OK);
	ck_assert_int_eq(km_totp_code(k, sizeof k, "SHA1", now + 30, 30, 6, next_code, &e), KM_OK);

	ck_assert_int_eq(km_totp_check(k, sizeof k, "SHA1", 30, 6, now_code, now, -1, &step, &e), KM_OK);
	ck_assert_int_eq(step, t);
	used = step;
	/* The same code again, even a second later: refused as a replay. */
	ck_assert_int_eq(km_totp_check(k, sizeof k, "SHA1", 30, 6, now_code, now + 1, used, &step, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "this code was already used"));
	/* An older step's code, still inside the window: also refused. */
	ck_assert_int_eq(km_totp_check(k, sizeof k, "SHA1", 30, 6, prev_code, now, used, &step, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "already used"));
	/* The next step's code is new. */
	ck_assert_int_eq(km_totp_check(k, sizeof k, "SHA1", 30, 6, next_code, now, used, &step, &e), KM_OK);
	ck_assert_int_eq(step, t + 1);
}
END_TEST

static const struct {
	const char *code;
	const char *words;
} totp_bad_rows[] = {
	{"", "exactly 6 digits"},
	{"12345", "exactly 6 digits"},
	{"1234567", "exactly 6 digits"},
	{"12345678901234", "at least 10"},
	{"12a456", "character 3"},
	{" 12345", "character 1"},
	{"12345 ", "character 6"},
	{"-12345", "digits only"},
	{"+12345", "digits only"},
	{"12\xd9\xa3" "45", "digits only"}, /* ARABIC-INDIC DIGIT THREE, 2 bytes */
};

START_TEST(test_totp_malformed)
{
	uint8_t k[20] = {0};
	int64_t step = -7;
	km_err e = {0};
	ck_assert_int_eq(km_totp_check(k, sizeof k, "SHA1", 30, 6, totp_bad_rows[_i].code, 1700000015, -1, &step, &e),
	                 KM_EINVAL);
	ck_assert_msg(strstr(e.msg, totp_bad_rows[_i].words), "row %d: %s", _i, e.msg);
	ck_assert_int_eq(step, -7);
}
END_TEST

/* ------------------------------------------------------------ records */

START_TEST(test_create_and_unlock)
{
	json_t *a = NULL, *b = NULL;
	km_cred_session *s = NULL;
	uint8_t pub[32], spub[32], pub_b[32], salt_a[16], salt_b[16];
	km_err e = {0};

	ck_assert_msg(km_cred_create("alice", "correct horse", &fast, &a, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_cred_create("alice", "correct horse", &fast, &b, &e) == KM_OK, "%s", e.msg);
	ck_assert_str_eq(json_string_value(json_object_get(a, "format")), "keyward-credential");
	ck_assert_int_eq(json_integer_value(json_object_get(a, "version")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(a, "user")), "alice");
	ck_assert_int_eq(km_cred_record_check("alice", a, &e), KM_OK);
	ck_assert_int_eq(km_cred_record_has_totp(a), 0);

	/* Same passphrase, fresh salt and fresh key each time. */
	field_bytes(a, "kdf.salt", salt_a, sizeof salt_a);
	field_bytes(b, "kdf.salt", salt_b, sizeof salt_b);
	ck_assert_mem_ne(salt_a, salt_b, 16);
	ck_assert_int_eq(km_cred_public_key(a, pub, &e), KM_OK);
	ck_assert_int_eq(km_cred_public_key(b, pub_b, &e), KM_OK);
	ck_assert_mem_ne(pub, pub_b, 32);

	/* Nothing in the record is the passphrase or raw Argon2 output. */
	char *text = json_dumps(a, 0);
	ck_assert_ptr_null(strstr(text, "correct horse"));
	free(text);

	ck_assert_msg(km_cred_unlock("alice", a, "correct horse", &s, &e) == KM_OK, "%s", e.msg);
	ck_assert_str_eq(km_cred_session_user(s), "alice");
	km_cred_session_public_key(s, spub);
	ck_assert_mem_eq(spub, pub, 32);
	ck_assert_int_eq(km_cred_session_has_totp(s), 0);
	km_cred_session_free(s);
	json_decref(a);
	json_decref(b);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	json_t *rec = make_record("alice", "correct horse", 0, NULL);
	km_cred_session *s = (km_cred_session *)1;
	km_err e = {0};

	ck_assert_int_eq(km_cred_unlock("alice", rec, "correct hors", &s, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "wrong passphrase"));
	ck_assert_ptr_null(strstr(e.msg, "correct"));
	ck_assert_ptr_null(s);
	ck_assert_int_eq(km_cred_unlock("alice", rec, "Correct horse", &s, &e), KM_EDENIED);
	ck_assert_int_eq(km_cred_unlock("alice", rec, "", &s, &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "empty"));
	ck_assert_int_eq(km_cred_create("alice", "", &fast, &(json_t *){NULL}, &e), KM_EINVAL);
	json_decref(rec);
}
END_TEST

enum mutation { FLIP, SET_INT, SET_STR, DROP, MOVE_TO_BOB };

static const struct {
	const char *name;
	enum mutation how;
	const char *path;
	long long arg; /* FLIP: byte index (negative from the end); SET_INT: value */
	const char *str;
	km_status want;
	const char *words;
} tamper_rows[] = {
	/* What feeds Argon2id or the verifier cannot be told from a wrong
	 * passphrase (cred.h): refused as one. */
	{"salt", FLIP, "kdf.salt", 0, NULL, KM_EDENIED, "wrong passphrase"},
	{"salt last byte", FLIP, "kdf.salt", -1, NULL, KM_EDENIED, "wrong passphrase"},
	{"t_cost", SET_INT, "kdf.t_cost", 2, NULL, KM_EDENIED, "wrong passphrase"},
	{"m_cost", SET_INT, "kdf.m_cost_kib", 16, NULL, KM_EDENIED, "wrong passphrase"},
	{"verifier", FLIP, "verifier", 31, NULL, KM_EDENIED, "wrong passphrase"},
	/* Everything after the verifier is authenticated. */
	{"seed nonce", FLIP, "signing_key.sealed_seed", 0, NULL, KM_EINTEGRITY, "signing key does not decrypt"},
	{"seed ciphertext", FLIP, "signing_key.sealed_seed", 12, NULL, KM_EINTEGRITY, "signing key does not decrypt"},
	{"seed tag", FLIP, "signing_key.sealed_seed", -1, NULL, KM_EINTEGRITY, "signing key does not decrypt"},
	{"public key", FLIP, "signing_key.public", 5, NULL, KM_EINTEGRITY, "signing key does not decrypt"},
	{"totp ciphertext", FLIP, "totp.sealed_secret", 12, NULL, KM_EINTEGRITY, "second-factor secret"},
	{"totp tag", FLIP, "totp.sealed_secret", -1, NULL, KM_EINTEGRITY, "second-factor secret"},
	{"totp digits", SET_INT, "totp.digits", 8, NULL, KM_EINTEGRITY, "second-factor secret"},
	{"totp period", SET_INT, "totp.period", 60, NULL, KM_EINTEGRITY, "second-factor secret"},
	{"totp hash", SET_STR, "totp.hash", 0, "SHA256", KM_EINTEGRITY, "second-factor secret"},
	/* Owner: the name in the record swapped, or the record in another row. */
	{"user swapped", SET_STR, "user", 0, "bob", KM_EINTEGRITY, "does not decrypt"},
	{"in bob's row", MOVE_TO_BOB, NULL, 0, NULL, KM_EINTEGRITY, "belongs to alice, not to bob"},
};

START_TEST(test_tamper)
{
	json_t *rec = make_record("alice", "correct horse", 1, NULL);
	const char *as = "alice";
	km_cred_session *s = NULL;
	km_err e = {0};

	/* The untouched record opens: the refusal below is the mutation's. */
	ck_assert_msg(km_cred_unlock("alice", rec, "correct horse", &s, &e) == KM_OK, "%s", e.msg);
	km_cred_session_free(s);
	s = NULL;

	switch (tamper_rows[_i].how) {
	case FLIP: flip_byte(rec, tamper_rows[_i].path, (int)tamper_rows[_i].arg); break;
	case SET_INT: set_value(rec, tamper_rows[_i].path, json_integer(tamper_rows[_i].arg)); break;
	case SET_STR: set_value(rec, tamper_rows[_i].path, json_string(tamper_rows[_i].str)); break;
	case DROP: set_value(rec, tamper_rows[_i].path, NULL); break;
	case MOVE_TO_BOB: break;
	}
	if (tamper_rows[_i].how == MOVE_TO_BOB || (tamper_rows[_i].how == SET_STR && !strcmp(tamper_rows[_i].path, "user")))
		as = "bob";
	ck_assert_int_eq(km_cred_unlock(as, rec, "correct horse", &s, &e), tamper_rows[_i].want);
	ck_assert_msg(strstr(e.msg, tamper_rows[_i].words), "%s: %s", tamper_rows[_i].name, e.msg);
	ck_assert_ptr_null(s);
	/* Changing the passphrase goes through the same gate. */
	json_t *out = NULL;
	ck_assert_int_eq(km_cred_change_passphrase(as, rec, "correct horse", "new one", &fast, &out, &e),
	                 tamper_rows[_i].want);
	ck_assert_ptr_null(out);
	json_decref(rec);
}
END_TEST

/* A record carried to another person does not open there, however it is
 * dressed up. */
START_TEST(test_record_moved)
{
	json_t *a = make_record("alice", "alice's pass", 0, NULL);
	json_t *b = make_record("bob", "bob's pass", 0, NULL);
	km_cred_session *s = NULL;
	km_err e = {0};

	/* alice's record in bob's row, with alice's passphrase. */
	ck_assert_int_eq(km_cred_unlock("bob", a, "alice's pass", &s, &e), KM_EINTEGRITY);
	ck_assert_int_eq(km_cred_record_check("bob", a, &e), KM_EINTEGRITY);
	/* ...and with its user field rewritten to bob. */
	json_t *a_as_b = json_deep_copy(a);
	set_value(a_as_b, "user", json_string("bob"));
	ck_assert_int_eq(km_cred_record_check("bob", a_as_b, &e), KM_OK); /* shape alone cannot tell */
	ck_assert_int_eq(km_cred_unlock("bob", a_as_b, "alice's pass", &s, &e), KM_EINTEGRITY);
	/* alice's sealed key transplanted into bob's record. */
	json_t *b_with_a = json_deep_copy(b);
	set_value(b_with_a, "signing_key", json_deep_copy(json_object_get(a, "signing_key")));
	ck_assert_int_eq(km_cred_unlock("bob", b_with_a, "bob's pass", &s, &e), KM_EINTEGRITY);
	ck_assert_ptr_null(s);
	json_decref(a_as_b);
	json_decref(b_with_a);
	json_decref(a);
	json_decref(b);
}
END_TEST

static const struct {
	enum mutation how;
	const char *path;
	long long num;
	const char *str;
	const char *words;
} malformed_rows[] = {
	{DROP, "kdf", 0, NULL, "no field \"kdf\""},
	{DROP, "kdf.salt", 0, NULL, "no field \"kdf.salt\""},
	{SET_STR, "kdf.salt", 0, "!!!!", "\"kdf.salt\" must be base64 of 16 bytes"},
	{SET_STR, "kdf.salt", 0, "AAAAAAAAAAAAAAAAAAAA", "\"kdf.salt\" must be base64"},     /* 15 bytes */
	{SET_STR, "kdf.salt", 0, "AAAAAAAAAAAAAAAAAAAAAB==", "\"kdf.salt\" must be base64"}, /* stray bits */
	{SET_STR, "kdf.salt", 0, " AAAAAAAAAAAAAAAAAAAAA==", "\"kdf.salt\" must be base64"},
	{SET_STR, "kdf.t_cost", 0, "3", "\"kdf.t_cost\" must be an integer"},
	{SET_INT, "kdf.t_cost", 0, NULL, "\"kdf.t_cost\" must be an integer from 1 to 64"},
	{SET_INT, "kdf.t_cost", -3, NULL, "\"kdf.t_cost\""},
	{SET_INT, "kdf.m_cost_kib", 4, NULL, "\"kdf.m_cost_kib\""},
	{SET_INT, "kdf.m_cost_kib", 1LL << 40, NULL, "\"kdf.m_cost_kib\""},
	{SET_INT, "kdf.parallelism", 2, NULL, "\"kdf\": the Argon2id memory"}, /* 8 KiB, 2 lanes */
	{SET_STR, "kdf.alg", 0, "argon2i", "\"kdf.alg\" must be \"argon2id\""},
	{SET_INT, "kdf.argon2_version", 16, NULL, "\"kdf.argon2_version\""},
	{SET_INT, "kdf.pepper", 1, NULL, "unknown field \"kdf.pepper\""},
	{SET_INT, "verifier", 7, NULL, "\"verifier\" must be a string"},
	{SET_STR, "verifier", 0, "AAAA", "\"verifier\" must be base64 of 32 bytes"},
	{SET_STR, "signing_key.public", 0, "AAAA", "\"signing_key.public\""},
	{SET_STR, "signing_key.alg", 0, "rsa", "\"signing_key.alg\" must be \"ed25519\""},
	{DROP, "signing_key.sealed_seed", 0, NULL, "\"signing_key.sealed_seed\""},
	{SET_INT, "signing_key", 1, NULL, "\"signing_key\" must be an object"},
	{SET_STR, "seal", 0, "aes-128-gcm", "\"seal\" must be \"aes-256-gcm\""},
	{SET_STR, "key_split", 0, "halves", "\"key_split\""},
	{SET_INT, "version", 2, NULL, "\"version\" is 2"},
	{SET_STR, "version", 0, "1", "\"version\" must be an integer"},
	{SET_STR, "format", 0, "something-else", "\"format\""},
	{SET_STR, "user", 0, "-alice", "\"user\""},
	{SET_STR, "note", 0, "hi", "unknown field \"note\""},
	{SET_STR, "totp.hash", 0, "MD5", "\"totp.hash\" must be SHA1, SHA256 or SHA512"},
	{SET_INT, "totp.digits", 5, NULL, "\"totp.digits\""},
	{SET_INT, "totp.period", 0, NULL, "\"totp.period\""},
	{SET_STR, "totp.sealed_secret", 0, "AAAA", "\"totp.sealed_secret\""},
	{SET_STR, "totp", 0, "on", "\"totp\" must be an object"},
};

START_TEST(test_malformed)
{
	json_t *rec = make_record("alice", "correct horse", 1, NULL);
	km_cred_session *s = NULL;
	uint8_t pub[32];
	km_err e = {0};

	switch (malformed_rows[_i].how) {
	case SET_INT: set_value(rec, malformed_rows[_i].path, json_integer(malformed_rows[_i].num)); break;
	case SET_STR: set_value(rec, malformed_rows[_i].path, json_string(malformed_rows[_i].str)); break;
	case DROP: set_value(rec, malformed_rows[_i].path, NULL); break;
	default: ck_abort();
	}
	ck_assert_int_eq(km_cred_unlock("alice", rec, "correct horse", &s, &e), KM_EINVAL);
	ck_assert_msg(strstr(e.msg, malformed_rows[_i].words), "%s: %s", malformed_rows[_i].path, e.msg);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(km_cred_record_check("alice", rec, &e), KM_EINVAL);
	ck_assert_int_eq(km_cred_public_key(rec, pub, &e), KM_EINVAL);
	json_decref(rec);
}
END_TEST

START_TEST(test_not_an_object)
{
	json_t *arr = json_array();
	km_cred_session *s = NULL;
	km_err e = {0};
	ck_assert_int_eq(km_cred_unlock("alice", arr, "pw", &s, &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a JSON object"));
	ck_assert_int_eq(km_cred_unlock("alice", NULL, "pw", &s, &e), KM_EINVAL);
	json_decref(arr);
}
END_TEST

START_TEST(test_change_passphrase)
{
	char b32[KM_TOTP_BASE32_MAX], code[KM_TOTP_CODE_MAX];
	json_t *rec = make_record("alice", "old passphrase", 1, b32);
	json_t *next = NULL;
	km_cred_session *s = NULL;
	uint8_t pub[32], pub2[32], salt[16], salt2[16], secret[32], sig[64];
	size_t secret_len;
	int64_t step;
	km_err e = {0};
	const km_cred_params stronger = {2, 16, 1};

	ck_assert_int_eq(km_cred_public_key(rec, pub, &e), KM_OK);
	field_bytes(rec, "kdf.salt", salt, sizeof salt);

	/* Wrong old passphrase: nothing comes out. */
	ck_assert_int_eq(km_cred_change_passphrase("alice", rec, "old passphras", "new passphrase", NULL, &next, &e),
	                 KM_EDENIED);
	ck_assert_ptr_null(next);

	ck_assert_msg(km_cred_change_passphrase("alice", rec, "old passphrase", "new passphrase", &stronger, &next,
	                                        &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_cred_public_key(next, pub2, &e), KM_OK);
	ck_assert_mem_eq(pub, pub2, 32);
	field_bytes(next, "kdf.salt", salt2, sizeof salt2);
	ck_assert_mem_ne(salt, salt2, 16);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(next, "kdf"), "t_cost")), 2);
	ck_assert_int_eq(km_cred_record_has_totp(next), 1);

	ck_assert_int_eq(km_cred_unlock("alice", next, "old passphrase", &s, &e), KM_EDENIED);
	ck_assert_ptr_null(s);
	ck_assert_msg(km_cred_unlock("alice", next, "new passphrase", &s, &e) == KM_OK, "%s", e.msg);

	/* Same signing key: a signature verifies under the old public key. */
	ck_assert_int_eq(km_cred_sign(s, (const uint8_t *)"req", 3, sig, &e), KM_OK);
	ck_assert_int_eq(km_cred_verify(pub, (const uint8_t *)"req", 3, sig, &e), KM_OK);

	/* Same second factor: the authenticator's code still works. */
	ck_assert_int_eq(km_base32_decode(b32, secret, sizeof secret, &secret_len, &e), KM_OK);
	ck_assert_int_eq(km_totp_code(secret, secret_len, "SHA1", 1700000000, 30, 6, code, &e), KM_OK);
	ck_assert_int_eq(km_cred_totp_check(s, code, 1700000000, -1, &step, &e), KM_OK);
	km_cred_session_free(s);

	/* p NULL keeps the record's cost. */
	json_t *again = NULL;
	ck_assert_int_eq(km_cred_change_passphrase("alice", next, "new passphrase", "third", NULL, &again, &e), KM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(again, "kdf"), "t_cost")), 2);
	ck_assert_int_eq(km_cred_change_passphrase("alice", next, "new passphrase", "", NULL, &(json_t *){NULL}, &e),
	                 KM_EINVAL);
	json_decref(again);
	json_decref(next);
	json_decref(rec);
}
END_TEST

/* ------------------------------------------------------------ signatures */

START_TEST(test_sign_verify)
{
	json_t *a = make_record("alice", "pa", 0, NULL), *b = make_record("bob", "pb", 0, NULL);
	km_cred_session *s = NULL;
	uint8_t digest[32], sig[64], pub_a[32], pub_b[32];
	km_err e = {0};

	ck_assert_int_eq(RAND_bytes(digest, sizeof digest), 1);
	ck_assert_int_eq(km_cred_public_key(a, pub_a, &e), KM_OK);
	ck_assert_int_eq(km_cred_public_key(b, pub_b, &e), KM_OK);
	ck_assert_int_eq(km_cred_unlock("alice", a, "pa", &s, &e), KM_OK);
	ck_assert_int_eq(km_cred_sign(s, digest, sizeof digest, sig, &e), KM_OK);
	ck_assert_int_eq(km_cred_verify(pub_a, digest, sizeof digest, sig, &e), KM_OK);

	digest[7] ^= 0x40;
	ck_assert_int_eq(km_cred_verify(pub_a, digest, sizeof digest, sig, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "does not verify"));
	digest[7] ^= 0x40;
	sig[63] ^= 0x01;
	ck_assert_int_eq(km_cred_verify(pub_a, digest, sizeof digest, sig, &e), KM_EINTEGRITY);
	sig[63] ^= 0x01;
	ck_assert_int_eq(km_cred_verify(pub_b, digest, sizeof digest, sig, &e), KM_EINTEGRITY);

	/* The empty message is a message too. */
	ck_assert_int_eq(km_cred_sign(s, NULL, 0, sig, &e), KM_OK);
	ck_assert_int_eq(km_cred_verify(pub_a, NULL, 0, sig, &e), KM_OK);
	ck_assert_int_eq(km_cred_verify(pub_a, digest, 1, sig, &e), KM_EINTEGRITY);
	km_cred_session_free(s);
	json_decref(a);
	json_decref(b);
}
END_TEST

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "cannot write %s", path);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* The approval format is checkable offline with stock openssl. */
START_TEST(test_openssl_cli_verifies)
{
	json_t *rec = make_record("alice", "pa", 0, NULL);
	km_cred_session *s = NULL;
	uint8_t pub[32], digest[32], sig[64];
	char pem[KM_CRED_PEM_MAX], small[40], dir[256], cmd[1200];
	km_err e = {0};
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(dir, sizeof dir, "%s/cred-XXXXXX", tmp);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(km_cred_public_key(rec, pub, &e), KM_OK);
	ck_assert_int_eq(km_cred_public_key_pem(pub, pem, sizeof pem, &e), KM_OK);
	ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN PUBLIC KEY-----\n"));
	ck_assert_int_eq(km_cred_public_key_pem(pub, small, sizeof small, &e), KM_EUSAGE);

	ck_assert_int_eq(RAND_bytes(digest, sizeof digest), 1);
	ck_assert_int_eq(km_cred_unlock("alice", rec, "pa", &s, &e), KM_OK);
	ck_assert_int_eq(km_cred_sign(s, digest, sizeof digest, sig, &e), KM_OK);

	char p_pem[300], p_msg[300], p_sig[300];
	snprintf(p_pem, sizeof p_pem, "%s/pub.pem", dir);
	snprintf(p_msg, sizeof p_msg, "%s/digest.bin", dir);
	snprintf(p_sig, sizeof p_sig, "%s/sig.bin", dir);
	write_file(p_pem, pem, strlen(pem));
	write_file(p_msg, digest, sizeof digest);
	write_file(p_sig, sig, sizeof sig);
	snprintf(cmd, sizeof cmd, "openssl pkeyutl -verify -pubin -inkey '%s' -rawin -in '%s' -sigfile '%s' "
	         ">/dev/null 2>&1", p_pem, p_msg, p_sig);
	ck_assert_int_eq(system(cmd), 0);

	/* openssl refuses the same signature over a changed digest. */
	digest[0] ^= 1;
	write_file(p_msg, digest, sizeof digest);
	ck_assert_int_ne(system(cmd), 0);

	km_cred_session_free(s);
	json_decref(rec);
	unlink(p_pem);
	unlink(p_msg);
	unlink(p_sig);
	rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------ TOTP enrolment */

START_TEST(test_totp_enrol_check_disable)
{
	json_t *rec = make_record("alice", "pa", 0, NULL), *with = NULL, *without = NULL, *dup = NULL;
	km_cred_session *s = NULL, *s2 = NULL;
	char uri[KM_TOTP_URI_MAX], b32[KM_TOTP_BASE32_MAX], code[KM_TOTP_CODE_MAX], want[KM_TOTP_URI_MAX];
	uint8_t secret[64];
	size_t n = 0;
	int64_t step = -1;
	const int64_t now = 1700000000;
	km_err e = {0};

	ck_assert_int_eq(km_cred_unlock("alice", rec, "pa", &s, &e), KM_OK);
	ck_assert_int_eq(km_cred_totp_check(s, "123456", now, -1, &step, &e), KM_ESTATE);
	ck_assert_int_eq(km_cred_totp_enrol(s, rec, &with, uri, 40, b32, sizeof b32, &e), KM_EUSAGE);
	ck_assert_ptr_null(with);
	ck_assert_int_eq(km_cred_session_has_totp(s), 0);

	ck_assert_msg(km_cred_totp_enrol(s, rec, &with, uri, sizeof uri, b32, sizeof b32, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(strlen(b32), 32);
	ck_assert_int_eq(km_base32_decode(b32, secret, sizeof secret, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 20);
	snprintf(want, sizeof want, "otpauth://totp/keyward:alice?secret=%s&issuer=keyward&algorithm=SHA1"
	         "&digits=6&period=30", b32);
	ck_assert_str_eq(uri, want);
	ck_assert_int_eq(km_cred_record_has_totp(with), 1);
	char *text = json_dumps(with, 0);
	ck_assert_ptr_null(strstr(text, b32)); /* stored sealed, not in base32 */
	free(text);

	/* The enrolling session adopts the secret at once (confirm-first flow). */
	ck_assert_int_eq(km_cred_session_has_totp(s), 1);
	ck_assert_int_eq(km_totp_code(secret, n, "SHA1", now, 30, 6, code, &e), KM_OK);
	ck_assert_int_eq(km_cred_totp_check(s, code, now, -1, &step, &e), KM_OK);
	ck_assert_int_eq(step, now / 30);
	ck_assert_int_eq(km_cred_totp_check(s, code, now, step, &step, &e), KM_EDENIED);

	/* A fresh unlock of the new record has it too. */
	ck_assert_int_eq(km_cred_unlock("alice", with, "pa", &s2, &e), KM_OK);
	ck_assert_int_eq(km_cred_session_has_totp(s2), 1);
	ck_assert_int_eq(km_cred_totp_check(s2, code, now + 29, -1, &step, &e), KM_OK);

	/* Enrolling again needs a disable first. */
	ck_assert_int_eq(km_cred_totp_enrol(s2, with, &dup, uri, sizeof uri, b32, sizeof b32, &e), KM_EEXISTS);
	ck_assert_ptr_null(dup);

	/* Disable: the record loses it, the session forgets it. */
	ck_assert_int_eq(km_cred_totp_disable(s2, with, &without, &e), KM_OK);
	ck_assert_int_eq(km_cred_record_has_totp(without), 0);
	ck_assert_int_eq(km_cred_session_has_totp(s2), 0);
	ck_assert_int_eq(km_cred_totp_check(s2, code, now, -1, &step, &e), KM_ESTATE);
	ck_assert_int_eq(km_cred_totp_disable(s2, without, &dup, &e), KM_ESTATE);
	km_cred_session_free(s2);
	s2 = NULL;
	ck_assert_int_eq(km_cred_unlock("alice", without, "pa", &s2, &e), KM_OK);
	ck_assert_int_eq(km_cred_session_has_totp(s2), 0);

	km_cred_session_free(s);
	km_cred_session_free(s2);
	json_decref(rec);
	json_decref(with);
	json_decref(without);
}
END_TEST

/* A session only rewrites the record it opened. */
START_TEST(test_totp_enrol_needs_own_record)
{
	json_t *a = make_record("alice", "pa", 0, NULL), *b = make_record("bob", "pb", 0, NULL);
	json_t *a2 = NULL, *out = NULL;
	km_cred_session *s = NULL;
	char uri[KM_TOTP_URI_MAX], b32[KM_TOTP_BASE32_MAX];
	km_err e = {0};

	ck_assert_int_eq(km_cred_unlock("alice", a, "pa", &s, &e), KM_OK);
	ck_assert_int_eq(km_cred_totp_enrol(s, b, &out, uri, sizeof uri, b32, sizeof b32, &e), KM_ESTATE);
	ck_assert_ptr_null(out);
	/* After a passphrase change the session's record is stale. */
	ck_assert_int_eq(km_cred_change_passphrase("alice", a, "pa", "pa2", NULL, &a2, &e), KM_OK);
	ck_assert_int_eq(km_cred_totp_enrol(s, a2, &out, uri, sizeof uri, b32, sizeof b32, &e), KM_ESTATE);
	ck_assert_ptr_nonnull(strstr(e.msg, "unlock again"));
	ck_assert_int_eq(km_cred_session_has_totp(s), 0);
	km_cred_session_free(s);
	json_decref(a);
	json_decref(a2);
	json_decref(b);
}
END_TEST

/* ------------------------------------------------------------ the documented layout */

static void hkdf(const uint8_t *ikm, size_t n, const char *info, uint8_t out[32])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *c = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)ikm, n),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};
	ck_assert_int_eq(EVP_KDF_derive(c, out, 32, p), 1);
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
}

static size_t l1(uint8_t *b, size_t pos, const char *s)
{
	b[pos] = (uint8_t)strlen(s);
	memcpy(b + pos + 1, s, strlen(s));
	return pos + 1 + strlen(s);
}

/* The AAD prefix as cred.h writes it down. */
static size_t doc_aad_head(uint8_t *b, const char *purpose, const char *user)
{
	size_t pos = l1(b, 0, "keyward credential v1");
	pos = l1(b, pos, purpose);
	b[pos++] = 0;
	b[pos++] = (uint8_t)strlen(user);
	memcpy(b + pos, user, strlen(user));
	pos += strlen(user);
	const uint8_t version[4] = {0, 0, 0, 1};
	memcpy(b + pos, version, 4);
	return pos + 4;
}

static int gcm_open_doc(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
                        uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, ok;
	ok = EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, in, NULL) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len) == 1 &&
	     EVP_DecryptUpdate(c, out, &len, in + 12, (int)(n - 28)) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(uintptr_t)(in + n - 16)) == 1 &&
	     EVP_DecryptFinal_ex(c, out + len, &len) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok;
}

/* Re-derive a record from cred.h's description with libargon2 and OpenSSL
 * alone: the verifier, the sealed seed (and its public key and signatures),
 * and the sealed TOTP secret. */
START_TEST(test_record_follows_documented_layout)
{
	const char *pass = "documented passphrase";
	char b32[KM_TOTP_BASE32_MAX], b32_again[KM_TOTP_BASE32_MAX];
	json_t *rec = make_record("carol", pass, 1, b32);
	uint8_t salt[16], m[64], verifier[32], seal[32], stored_verifier[32], pub[32], sealed_seed[60];
	uint8_t seed[32], derived_pub[32], sealed_totp[128], totp[100], aad[256], sig_doc[64], sig_km[64];
	km_cred_session *s = NULL;
	km_err e = {0};
	json_t *kdf = json_object_get(rec, "kdf");

	ck_assert_uint_eq(field_bytes(rec, "kdf.salt", salt, sizeof salt), 16);
	ck_assert_int_eq(argon2id_hash_raw((uint32_t)json_integer_value(json_object_get(kdf, "t_cost")),
	                                   (uint32_t)json_integer_value(json_object_get(kdf, "m_cost_kib")),
	                                   (uint32_t)json_integer_value(json_object_get(kdf, "parallelism")),
	                                   pass, strlen(pass), salt, sizeof salt, m, sizeof m), ARGON2_OK);
	hkdf(m, sizeof m, "keyward credential v1 verifier", verifier);
	hkdf(m, sizeof m, "keyward credential v1 seal", seal);
	ck_assert_uint_eq(field_bytes(rec, "verifier", stored_verifier, sizeof stored_verifier), 32);
	ck_assert_mem_eq(verifier, stored_verifier, 32);
	/* Neither half of M is stored as the verifier. */
	ck_assert_mem_ne(m, stored_verifier, 32);
	ck_assert_mem_ne(m + 32, stored_verifier, 32);

	ck_assert_uint_eq(field_bytes(rec, "signing_key.public", pub, sizeof pub), 32);
	ck_assert_uint_eq(field_bytes(rec, "signing_key.sealed_seed", sealed_seed, sizeof sealed_seed), 60);
	size_t pos = doc_aad_head(aad, "signing-key", "carol");
	pos = l1(aad, pos, "ed25519");
	memcpy(aad + pos, pub, 32);
	ck_assert(gcm_open_doc(seal, aad, pos + 32, sealed_seed, sizeof sealed_seed, seed));
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	size_t n = 32;
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(k, derived_pub, &n), 1);
	ck_assert_mem_eq(derived_pub, pub, 32);

	/* Ed25519 is deterministic: km_cred_sign gives OpenSSL's signature. */
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t sl = 64;
	ck_assert_int_eq(EVP_DigestSignInit(c, NULL, NULL, NULL, k), 1);
	ck_assert_int_eq(EVP_DigestSign(c, sig_doc, &sl, (const uint8_t *)"approve", 7), 1);
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	ck_assert_int_eq(km_cred_unlock("carol", rec, pass, &s, &e), KM_OK);
	ck_assert_int_eq(km_cred_sign(s, (const uint8_t *)"approve", 7, sig_km, &e), KM_OK);
	ck_assert_mem_eq(sig_doc, sig_km, 64);

	size_t tn = field_bytes(rec, "totp.sealed_secret", sealed_totp, sizeof sealed_totp);
	ck_assert_uint_eq(tn, 12 + 20 + 16);
	pos = doc_aad_head(aad, "totp-secret", "carol");
	pos = l1(aad, pos, "SHA1");
	aad[pos++] = 6;
	const uint8_t period[4] = {0, 0, 0, 30};
	memcpy(aad + pos, period, 4);
	ck_assert(gcm_open_doc(seal, aad, pos + 4, sealed_totp, tn, totp));
	ck_assert_uint_eq(km_base32_encode(totp, 20, b32_again, sizeof b32_again), 32);
	ck_assert_str_eq(b32_again, b32);

	OPENSSL_cleanse(m, sizeof m);
	OPENSSL_cleanse(seal, sizeof seal);
	OPENSSL_cleanse(seed, sizeof seed);
	km_cred_session_free(s);
	json_decref(rec);
}
END_TEST

/* ------------------------------------------------------------ main */

static Suite *cred_suite(void)
{
	Suite *s = suite_create("cred");
	TCase *tc;

	tc = tcase_create("argon2id");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_argon2id_rfc9106);
	tcase_add_test(tc, test_argon2id_matches_libargon2);
	tcase_add_loop_test(tc, test_params_check, 0, (int)KM_ARRAY_LEN(params_rows));
	tcase_add_test(tc, test_params_default);
	tcase_add_test(tc, test_default_cost_timed);
	suite_add_tcase(s, tc);

	tc = tcase_create("totp");
	tcase_add_loop_test(tc, test_totp_rfc6238, 0, (int)KM_ARRAY_LEN(rfc6238_rows));
	tcase_add_test(tc, test_totp_code_arguments);
	tcase_add_loop_test(tc, test_base32_rfc4648, 0, (int)KM_ARRAY_LEN(rfc4648_rows));
	tcase_add_loop_test(tc, test_base32_bad, 0, (int)KM_ARRAY_LEN(base32_bad_rows));
	tcase_add_test(tc, test_totp_window);
	tcase_add_test(tc, test_totp_replay);
	tcase_add_loop_test(tc, test_totp_malformed, 0, (int)KM_ARRAY_LEN(totp_bad_rows));
	suite_add_tcase(s, tc);

	tc = tcase_create("record");
	tcase_add_test(tc, test_create_and_unlock);
	tcase_add_test(tc, test_wrong_passphrase);
	tcase_add_loop_test(tc, test_tamper, 0, (int)KM_ARRAY_LEN(tamper_rows));
	tcase_add_test(tc, test_record_moved);
	tcase_add_loop_test(tc, test_malformed, 0, (int)KM_ARRAY_LEN(malformed_rows));
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_change_passphrase);
	tcase_add_test(tc, test_record_follows_documented_layout);
	suite_add_tcase(s, tc);

	tc = tcase_create("sign");
	tcase_add_test(tc, test_sign_verify);
	tcase_add_test(tc, test_openssl_cli_verifies);
	suite_add_tcase(s, tc);

	tc = tcase_create("totp-record");
	tcase_add_test(tc, test_totp_enrol_check_disable);
	tcase_add_test(tc, test_totp_enrol_needs_own_record);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	km_err e = {0};
	/* Locked memory as in production, so the session's secrets come from it. */
	if (km_hygiene_init(&e) != KM_OK) {
		fprintf(stderr, "test_cred: %s\n", e.msg);
		return 1;
	}
	return th_run_suite(cred_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
