/*
 * cred.c — passphrase-sealed Ed25519 keys and TOTP secrets.
 *
 * The record layout, the derivations and the associated data are specified
 * in cred.h; tests/test_cred.c re-derives them independently, so the three
 * change together.  Plaintext secrets only ever sit in a cred_secrets block
 * from km_secure_alloc() (or, for the length of one call, in an OpenSSL
 * object that keeps them on its own secure heap and cleanses them on free).
 */
#include "cred.h"
#include "secmem.h"
#include "user.h"

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGON2_OUT_BYTES 64 /* M: split into the verifier and the seal key */
#define SUBKEY_BYTES 32
#define SEED_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define SEAL_OVERHEAD (NONCE_BYTES + TAG_BYTES)
#define SEALED_SEED_BYTES (SEAL_OVERHEAD + SEED_BYTES)
#define SEALED_TOTP_MIN (SEAL_OVERHEAD + KM_TOTP_SECRET_MIN)
#define SEALED_TOTP_MAX (SEAL_OVERHEAD + KM_TOTP_SECRET_MAX)
#define USER_MAX 63
#define HASH_NAME_MAX 7 /* "SHA256" */
#define AAD_MAX 192
#define B64_LEN(n) (4 * (((n) + 2) / 3))
#define B64_MAX B64_LEN(SEALED_TOTP_MAX) /* the longest binary field */
#define TOTP_PERIOD_MAX 3600
#define TOTP_DIGITS_MIN 6
#define TOTP_DIGITS_MAX 8

static const char record_format[] = "keyward-credential";
static const char aad_label[] = "keyward credential v1";
static const char info_verifier[] = "keyward credential v1 verifier";
static const char info_seal[] = "keyward credential v1 seal";
static const char purpose_seed[] = "signing-key";
static const char purpose_totp[] = "totp-secret";

/* The HMAC hashes a TOTP secret may use (RFC 6238 section 1.2). */
static const char *const totp_hashes[] = {"SHA1", "SHA256", "SHA512", NULL};

/* Every plaintext secret of one credential: one locked block. */
typedef struct cred_secrets {
	uint8_t seed[SEED_BYTES];
	uint8_t seal_key[SUBKEY_BYTES];
	uint8_t totp[KM_TOTP_SECRET_MAX];
} cred_secrets;

/* The second factor's public settings. */
typedef struct cred_totp {
	char hash[HASH_NAME_MAX + 1];
	int digits;
	int period;
} cred_totp;

/* A parsed record: no plaintext secret in it. */
typedef struct cred_record {
	char user[USER_MAX + 1];
	km_cred_params params;
	uint8_t salt[KM_CRED_SALT_BYTES];
	uint8_t verifier[SUBKEY_BYTES];
	uint8_t pub[KM_CRED_PUBKEY_BYTES];
	uint8_t sealed_seed[SEALED_SEED_BYTES];
	int has_totp;
	cred_totp totp;
	uint8_t sealed_totp[SEALED_TOTP_MAX];
	size_t sealed_totp_len;
} cred_record;

struct km_cred_session {
	/* What identifies the record this session opened (all authenticated by
	 * the unlock), so a new record can be rebuilt from the session alone. */
	char user[USER_MAX + 1];
	km_cred_params params;
	uint8_t salt[KM_CRED_SALT_BYTES];
	uint8_t verifier[SUBKEY_BYTES];
	uint8_t pub[KM_CRED_PUBKEY_BYTES];
	int has_totp;
	cred_totp totp;
	size_t totp_len;
	cred_secrets *sec;
};

/* ------------------------------------------------------------ Argon2id */

km_cred_params km_cred_params_default(void)
{
	km_cred_params p = {KM_CRED_T_COST_DEFAULT, KM_CRED_M_COST_KIB_DEFAULT, KM_CRED_PARALLELISM_DEFAULT};
	return p;
}

km_status km_cred_params_check(const km_cred_params *p, km_err *e)
{
	if (!p)
		return km_fail(e, KM_EUSAGE, "no Argon2id parameters given");
	if (p->t_cost < KM_CRED_T_COST_MIN || p->t_cost > KM_CRED_T_COST_MAX)
		return km_fail(e, KM_EINVAL, "the Argon2id pass count (t_cost) is %u; it must be %u to %u",
		               p->t_cost, KM_CRED_T_COST_MIN, KM_CRED_T_COST_MAX);
	if (p->m_cost_kib < KM_CRED_M_COST_KIB_MIN || p->m_cost_kib > KM_CRED_M_COST_KIB_MAX)
		return km_fail(e, KM_EINVAL, "the Argon2id memory (m_cost_kib) is %u KiB; it must be %u to %u KiB",
		               p->m_cost_kib, KM_CRED_M_COST_KIB_MIN, KM_CRED_M_COST_KIB_MAX);
	if (p->parallelism < KM_CRED_PARALLELISM_MIN || p->parallelism > KM_CRED_PARALLELISM_MAX)
		return km_fail(e, KM_EINVAL, "the Argon2id parallelism is %u; it must be %u to %u",
		               p->parallelism, KM_CRED_PARALLELISM_MIN, KM_CRED_PARALLELISM_MAX);
	if (p->m_cost_kib < 8u * p->parallelism)
		return km_fail(e, KM_EINVAL, "the Argon2id memory (m_cost_kib) is %u KiB; with parallelism %u "
		               "it must be at least %u KiB (8 KiB per lane)",
		               p->m_cost_kib, p->parallelism, 8u * p->parallelism);
	return KM_OK;
}

km_status km_cred_argon2id(const km_cred_params *p, const uint8_t *pwd, size_t pwd_len,
                           const uint8_t *salt, size_t salt_len,
                           const uint8_t *secret, size_t secret_len,
                           const uint8_t *ad, size_t ad_len,
                           uint8_t *out, size_t out_len, km_err *e)
{
	km_status st = km_cred_params_check(p, e);
	if (st != KM_OK)
		return st;
	if (!out || out_len < 4 || out_len > 1024)
		return km_fail(e, KM_EUSAGE, "Argon2id output must be 4 to 1024 bytes");
	if ((!pwd && pwd_len) || (!salt && salt_len) || (!secret && secret_len) || (!ad && ad_len) ||
	    pwd_len > UINT32_MAX || salt_len > UINT32_MAX || secret_len > UINT32_MAX || ad_len > UINT32_MAX)
		return km_fail(e, KM_EUSAGE, "Argon2id input missing or too long");

	/* libargon2 only writes through pwd and secret when asked to wipe them
	 * (ARGON2_FLAG_CLEAR_*); with the default flags the casts are reads. */
	argon2_context c = {
		.out = out,
		.outlen = (uint32_t)out_len,
		.pwd = (uint8_t *)(uintptr_t)pwd,
		.pwdlen = (uint32_t)pwd_len,
		.salt = (uint8_t *)(uintptr_t)salt,
		.saltlen = (uint32_t)salt_len,
		.secret = (uint8_t *)(uintptr_t)secret,
		.secretlen = (uint32_t)secret_len,
		.ad = (uint8_t *)(uintptr_t)ad,
		.adlen = (uint32_t)ad_len,
		.t_cost = p->t_cost,
		.m_cost = p->m_cost_kib,
		.lanes = p->parallelism,
		.threads = p->parallelism,
		.version = ARGON2_VERSION_13,
		.allocate_cbk = NULL,
		.free_cbk = NULL,
		.flags = ARGON2_DEFAULT_FLAGS,
	};
	int rc = argon2_ctx(&c, Argon2_id);
	if (rc == ARGON2_OK)
		return KM_OK;
	OPENSSL_cleanse(out, out_len);
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		return km_fail(e, KM_ENOMEM, "Argon2id could not allocate %u KiB of memory", p->m_cost_kib);
	return km_fail(e, KM_EINTERNAL, "Argon2id failed: %s", argon2_error_message(rc));
}

/* ------------------------------------------------------------ primitives */

/* HKDF-SHA256(IKM = ikm, no salt, info) into out (the caller's secure
 * memory for a key).  The KDF context is freed (and cleansed) here. */
static km_status hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const char *info,
                             uint8_t *out, size_t out_len, km_err *e)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)ikm, ikm_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};
	int ok = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1;
	EVP_KDF_CTX_free(kctx);
	if (!ok) {
		OPENSSL_cleanse(out, out_len);
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "HKDF-SHA256 is not available from OpenSSL");
	}
	return KM_OK;
}

/* Argon2id over the passphrase, then the two HKDF subkeys (cred.h). */
static km_status derive_keys(const km_cred_params *p, const char *passphrase,
                             const uint8_t salt[KM_CRED_SALT_BYTES],
                             uint8_t verifier[SUBKEY_BYTES], uint8_t *seal_key, km_err *e)
{
	uint8_t *m = km_secure_alloc(ARGON2_OUT_BYTES);
	if (!m)
		return km_fail(e, KM_ENOMEM, "no locked memory left for the passphrase key");
	km_status st = km_cred_argon2id(p, (const uint8_t *)passphrase, strlen(passphrase),
	                                salt, KM_CRED_SALT_BYTES, NULL, 0, NULL, 0,
	                                m, ARGON2_OUT_BYTES, e);
	if (st == KM_OK)
		st = hkdf_sha256(m, ARGON2_OUT_BYTES, info_verifier, verifier, SUBKEY_BYTES, e);
	if (st == KM_OK)
		st = hkdf_sha256(m, ARGON2_OUT_BYTES, info_seal, seal_key, SUBKEY_BYTES, e);
	km_secure_free(m, ARGON2_OUT_BYTES);
	return st;
}

static km_status ed25519_public(const uint8_t *seed, uint8_t pub[KM_CRED_PUBKEY_BYTES], km_err *e)
{
	/* OpenSSL keeps an Ed25519 private key on its secure heap and cleanses
	 * it when the EVP_PKEY is freed. */
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, SEED_BYTES);
	size_t n = KM_CRED_PUBKEY_BYTES;
	int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == KM_CRED_PUBKEY_BYTES;
	EVP_PKEY_free(k);
	if (!ok) {
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "Ed25519 is not available from OpenSSL");
	}
	return KM_OK;
}

static size_t put_l1(uint8_t *aad, size_t pos, const char *s)
{
	size_t n = strlen(s);
	aad[pos] = (uint8_t)n;
	memcpy(aad + pos + 1, s, n);
	return pos + 1 + n;
}

static size_t put_be32(uint8_t *aad, size_t pos, uint32_t v)
{
	aad[pos] = (uint8_t)(v >> 24);
	aad[pos + 1] = (uint8_t)(v >> 16);
	aad[pos + 2] = (uint8_t)(v >> 8);
	aad[pos + 3] = (uint8_t)v;
	return pos + 4;
}

/* The part every AAD starts with: label, purpose, owner, record version.
 * user is at most USER_MAX bytes (validated by every caller). */
static size_t aad_head(uint8_t aad[AAD_MAX], const char *purpose, const char *user)
{
	size_t pos = put_l1(aad, 0, aad_label);
	pos = put_l1(aad, pos, purpose);
	size_t n = strlen(user);
	aad[pos] = (uint8_t)(n >> 8);
	aad[pos + 1] = (uint8_t)n;
	memcpy(aad + pos + 2, user, n);
	return put_be32(aad, pos + 2 + n, KM_CRED_RECORD_VERSION);
}

static size_t aad_seed(uint8_t aad[AAD_MAX], const char *user, const uint8_t pub[KM_CRED_PUBKEY_BYTES])
{
	size_t pos = put_l1(aad, aad_head(aad, purpose_seed, user), "ed25519");
	memcpy(aad + pos, pub, KM_CRED_PUBKEY_BYTES);
	return pos + KM_CRED_PUBKEY_BYTES;
}

static size_t aad_totp(uint8_t aad[AAD_MAX], const char *user, const cred_totp *t)
{
	size_t pos = put_l1(aad, aad_head(aad, purpose_totp, user), t->hash);
	aad[pos++] = (uint8_t)t->digits;
	return put_be32(aad, pos, (uint32_t)t->period);
}

_Static_assert(2 + sizeof aad_label + sizeof purpose_seed + 2 + USER_MAX + 4 + 8 + KM_CRED_PUBKEY_BYTES <= AAD_MAX,
               "AAD buffer too small");

/* AES-256-GCM: out = nonce || ciphertext || tag, fresh random nonce. */
static km_status gcm_seal(const uint8_t *key, const uint8_t *aad, size_t aad_len,
                          const uint8_t *pt, size_t pt_len, uint8_t *out, km_err *e)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	int ok = c && RAND_bytes(out, NONCE_BYTES) == 1 &&
	         EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, out, NULL) == 1 &&
	         EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
	         EVP_EncryptUpdate(c, out + NONCE_BYTES, &n, pt, (int)pt_len) == 1 && (size_t)n == pt_len &&
	         EVP_EncryptFinal_ex(c, out + NONCE_BYTES + n, &fin) == 1 && fin == 0 &&
	         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, out + NONCE_BYTES + pt_len) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok) {
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "AES-256-GCM sealing failed in OpenSSL");
	}
	return KM_OK;
}

/* Open nonce || ciphertext || tag into pt (secure memory).  0 if the tag
 * does not verify (pt is then cleansed), 1 if it does. */
static int gcm_open(const uint8_t *key, const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len, uint8_t *pt)
{
	size_t pt_len = in_len - SEAL_OVERHEAD;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	int ok = c && EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, in, NULL) == 1 &&
	         EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
	         EVP_DecryptUpdate(c, pt, &n, in + NONCE_BYTES, (int)pt_len) == 1 &&
	         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_BYTES,
	                             (void *)(uintptr_t)(in + NONCE_BYTES + pt_len)) == 1 &&
	         EVP_DecryptFinal_ex(c, pt + n, &fin) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok) {
		OPENSSL_cleanse(pt, pt_len);
		ERR_clear_error();
	}
	return ok;
}

static km_status check_passphrase(const char *pass, const char *which, km_err *e)
{
	if (!pass)
		return km_fail(e, KM_EUSAGE, "no %s given", which);
	size_t n = strnlen(pass, KM_CRED_PASSPHRASE_MAX + 1);
	if (n == 0)
		return km_fail(e, KM_EINVAL, "the %s is empty", which);
	if (n > KM_CRED_PASSPHRASE_MAX)
		return km_fail(e, KM_EINVAL, "the %s is longer than %d bytes", which, KM_CRED_PASSPHRASE_MAX);
	return KM_OK;
}

static int totp_hash_known(const char *name)
{
	for (size_t i = 0; name && totp_hashes[i]; i++)
		if (strcmp(name, totp_hashes[i]) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------ base64 fields */

/* Canonical padded base64 of n bytes into out[B64_LEN(n) + 1]. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Strict decode: min..max bytes, and the text must be exactly what
 * b64_encode gives back (no whitespace, no stray bits, padding right). */
static int b64_decode(const char *s, uint8_t *out, size_t min, size_t max, size_t *len)
{
	uint8_t buf[B64_MAX / 4 * 3];
	char again[B64_MAX + 1];
	size_t n = strlen(s);
	int ok = 0;

	if (n == 0 || n % 4 != 0 || n > B64_LEN(max))
		return 0;
	int r = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if (r >= 0) {
		size_t pad = (size_t)(s[n - 1] == '=') + (size_t)(s[n - 2] == '=');
		size_t got = (size_t)r >= pad ? (size_t)r - pad : 0;
		if (got >= min && got <= max) {
			b64_encode(buf, got, again);
			if (strcmp(again, s) == 0) {
				memcpy(out, buf, got);
				*len = got;
				ok = 1;
			}
		}
	}
	OPENSSL_cleanse(buf, sizeof buf);
	return ok;
}

/* ------------------------------------------------------------ record parsing */

static const char *json_type_word(json_type t)
{
	switch (t) {
	case JSON_OBJECT: return "an object";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	default: return "another type";
	}
}

/* Member key of obj (whose dotted path is sect, "" for the top) with the
 * given JSON type, or KM_EINVAL naming the field. */
static km_status field(const json_t *obj, const char *sect, const char *key, json_type type,
                       const json_t **out, km_err *e)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return km_fail(e, KM_EINVAL, "the credential record has no field \"%s%s\"", sect, key);
	if (json_typeof(v) != type)
		return km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" must be %s",
		               sect, key, json_type_word(type));
	if (type == JSON_STRING && strlen(json_string_value(v)) != json_string_length(v))
		return km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" contains a NUL", sect, key);
	*out = v;
	return KM_OK;
}

static km_status field_is(const json_t *obj, const char *sect, const char *key, const char *want, km_err *e)
{
	const json_t *v = NULL;
	km_status st = field(obj, sect, key, JSON_STRING, &v, e);
	if (st == KM_OK && strcmp(json_string_value(v), want) != 0)
		st = km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" must be \"%s\"", sect, key, want);
	return st;
}

static km_status field_uint(const json_t *obj, const char *sect, const char *key,
                            uint32_t min, uint32_t max, uint32_t *out, km_err *e)
{
	const json_t *v = NULL;
	km_status st = field(obj, sect, key, JSON_INTEGER, &v, e);
	if (st != KM_OK)
		return st;
	json_int_t i = json_integer_value(v);
	if (i < (json_int_t)min || i > (json_int_t)max)
		return km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" must be an integer from %u to %u",
		               sect, key, min, max);
	*out = (uint32_t)i;
	return KM_OK;
}

static km_status field_b64(const json_t *obj, const char *sect, const char *key,
                           uint8_t *out, size_t min, size_t max, size_t *len, km_err *e)
{
	const json_t *v = NULL;
	size_t got = 0;
	km_status st = field(obj, sect, key, JSON_STRING, &v, e);
	if (st != KM_OK)
		return st;
	if (!b64_decode(json_string_value(v), out, min, max, &got)) {
		if (min == max)
			return km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" must be base64 of %zu bytes",
			               sect, key, min);
		return km_fail(e, KM_EINVAL, "the credential record's field \"%s%s\" must be base64 of %zu to %zu bytes",
		               sect, key, min, max);
	}
	if (len)
		*len = got;
	return KM_OK;
}

/* Refuse members that are not in allowed (NULL-terminated). */
static km_status only_fields(const json_t *obj, const char *sect, const char *const *allowed, km_err *e)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)(uintptr_t)obj, k, v) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i])
			return km_fail(e, KM_EINVAL, "the credential record has an unknown field \"%s%s\"", sect, k);
	}
	return KM_OK;
}

static km_status parse_kdf(const json_t *j, cred_record *r, km_err *e)
{
	static const char *const keys[] = {"alg", "argon2_version", "t_cost", "m_cost_kib", "parallelism", "salt", NULL};
	const json_t *kdf = NULL;
	uint32_t version;
	km_status st;

	if ((st = field(j, "", "kdf", JSON_OBJECT, &kdf, e)) ||
	    (st = only_fields(kdf, "kdf.", keys, e)) ||
	    (st = field_is(kdf, "kdf.", "alg", "argon2id", e)) ||
	    (st = field_uint(kdf, "kdf.", "argon2_version", ARGON2_VERSION_13, ARGON2_VERSION_13, &version, e)) ||
	    (st = field_uint(kdf, "kdf.", "t_cost", KM_CRED_T_COST_MIN, KM_CRED_T_COST_MAX, &r->params.t_cost, e)) ||
	    (st = field_uint(kdf, "kdf.", "m_cost_kib", KM_CRED_M_COST_KIB_MIN, KM_CRED_M_COST_KIB_MAX,
	                     &r->params.m_cost_kib, e)) ||
	    (st = field_uint(kdf, "kdf.", "parallelism", KM_CRED_PARALLELISM_MIN, KM_CRED_PARALLELISM_MAX,
	                     &r->params.parallelism, e)) ||
	    (st = field_b64(kdf, "kdf.", "salt", r->salt, KM_CRED_SALT_BYTES, KM_CRED_SALT_BYTES, NULL, e)))
		return st;
	if ((st = km_cred_params_check(&r->params, e)))
		return km_wrap(e, "the credential record's field \"kdf\"");
	return KM_OK;
}

static km_status parse_signing_key(const json_t *j, cred_record *r, km_err *e)
{
	static const char *const keys[] = {"alg", "public", "sealed_seed", NULL};
	const json_t *sk = NULL;
	km_status st;

	if ((st = field(j, "", "signing_key", JSON_OBJECT, &sk, e)) ||
	    (st = only_fields(sk, "signing_key.", keys, e)) ||
	    (st = field_is(sk, "signing_key.", "alg", "ed25519", e)) ||
	    (st = field_b64(sk, "signing_key.", "public", r->pub, KM_CRED_PUBKEY_BYTES, KM_CRED_PUBKEY_BYTES, NULL, e)) ||
	    (st = field_b64(sk, "signing_key.", "sealed_seed", r->sealed_seed, SEALED_SEED_BYTES,
	                    SEALED_SEED_BYTES, NULL, e)))
		return st;
	return KM_OK;
}

static km_status parse_totp(const json_t *j, cred_record *r, km_err *e)
{
	static const char *const keys[] = {"hash", "digits", "period", "sealed_secret", NULL};
	const json_t *t = NULL, *hash = NULL;
	uint32_t digits, period;
	km_status st;

	if (!json_object_get(j, "totp"))
		return KM_OK;
	if ((st = field(j, "", "totp", JSON_OBJECT, &t, e)) ||
	    (st = only_fields(t, "totp.", keys, e)) ||
	    (st = field(t, "totp.", "hash", JSON_STRING, &hash, e)))
		return st;
	if (!totp_hash_known(json_string_value(hash)))
		return km_fail(e, KM_EINVAL, "the credential record's field \"totp.hash\" must be SHA1, SHA256 or SHA512");
	if ((st = field_uint(t, "totp.", "digits", TOTP_DIGITS_MIN, TOTP_DIGITS_MAX, &digits, e)) ||
	    (st = field_uint(t, "totp.", "period", 1, TOTP_PERIOD_MAX, &period, e)) ||
	    (st = field_b64(t, "totp.", "sealed_secret", r->sealed_totp, SEALED_TOTP_MIN, SEALED_TOTP_MAX,
	                    &r->sealed_totp_len, e)))
		return st;
	km_strlcpy(r->totp.hash, json_string_value(hash), sizeof r->totp.hash);
	r->totp.digits = (int)digits;
	r->totp.period = (int)period;
	r->has_totp = 1;
	return KM_OK;
}

static km_status rec_parse(const json_t *j, cred_record *r, km_err *e)
{
	static const char *const keys[] = {"format", "version", "user", "kdf", "key_split", "verifier",
	                                   "seal", "signing_key", "totp", NULL};
	const json_t *version = NULL, *user = NULL;
	km_status st;

	memset(r, 0, sizeof *r);
	if (!j || !json_is_object(j))
		return km_fail(e, KM_EINVAL, "the credential record is not a JSON object");
	if ((st = only_fields(j, "", keys, e)) ||
	    (st = field_is(j, "", "format", record_format, e)) ||
	    (st = field(j, "", "version", JSON_INTEGER, &version, e)))
		return st;
	if (json_integer_value(version) != KM_CRED_RECORD_VERSION)
		return km_fail(e, KM_EINVAL, "the credential record's field \"version\" is %" JSON_INTEGER_FORMAT
		               "; this keyward reads version %d", json_integer_value(version), KM_CRED_RECORD_VERSION);
	if ((st = field(j, "", "user", JSON_STRING, &user, e)))
		return st;
	if ((st = km_user_name_validate(json_string_value(user), e)))
		return km_wrap(e, "the credential record's field \"user\"");
	km_strlcpy(r->user, json_string_value(user), sizeof r->user);
	if ((st = parse_kdf(j, r, e)) ||
	    (st = field_is(j, "", "key_split", "hkdf-sha256", e)) ||
	    (st = field_b64(j, "", "verifier", r->verifier, SUBKEY_BYTES, SUBKEY_BYTES, NULL, e)) ||
	    (st = field_is(j, "", "seal", "aes-256-gcm", e)) ||
	    (st = parse_signing_key(j, r, e)) ||
	    (st = parse_totp(j, r, e)))
		return st;
	return KM_OK;
}

static km_status rec_to_json(const cred_record *r, json_t **out, km_err *e)
{
	char salt[B64_LEN(KM_CRED_SALT_BYTES) + 1], verifier[B64_LEN(SUBKEY_BYTES) + 1];
	char pub[B64_LEN(KM_CRED_PUBKEY_BYTES) + 1], seed[B64_LEN(SEALED_SEED_BYTES) + 1];
	char totp[B64_LEN(SEALED_TOTP_MAX) + 1];

	b64_encode(r->salt, sizeof r->salt, salt);
	b64_encode(r->verifier, sizeof r->verifier, verifier);
	b64_encode(r->pub, sizeof r->pub, pub);
	b64_encode(r->sealed_seed, sizeof r->sealed_seed, seed);
	json_t *j = json_pack("{s:s, s:i, s:s, s:{s:s, s:i, s:I, s:I, s:I, s:s}, s:s, s:s, s:s, s:{s:s, s:s, s:s}}",
	                      "format", record_format,
	                      "version", KM_CRED_RECORD_VERSION,
	                      "user", r->user,
	                      "kdf", "alg", "argon2id", "argon2_version", (int)ARGON2_VERSION_13,
	                      "t_cost", (json_int_t)r->params.t_cost,
	                      "m_cost_kib", (json_int_t)r->params.m_cost_kib,
	                      "parallelism", (json_int_t)r->params.parallelism,
	                      "salt", salt,
	                      "key_split", "hkdf-sha256",
	                      "verifier", verifier,
	                      "seal", "aes-256-gcm",
	                      "signing_key", "alg", "ed25519", "public", pub, "sealed_seed", seed);
	if (j && r->has_totp) {
		b64_encode(r->sealed_totp, r->sealed_totp_len, totp);
		json_t *t = json_pack("{s:s, s:i, s:i, s:s}", "hash", r->totp.hash, "digits", r->totp.digits,
		                      "period", r->totp.period, "sealed_secret", totp);
		if (!t || json_object_set_new(j, "totp", t) != 0) {
			json_decref(j);
			j = NULL;
		}
	}
	if (!j)
		return km_fail(e, KM_ENOMEM, "out of memory building the credential record");
	*out = j;
	return KM_OK;
}

/* Parse, and check that the record belongs to user. */
static km_status rec_load(const char *user, const json_t *record, cred_record *r, km_err *e)
{
	km_status st = km_user_name_validate(user, e);
	if (st == KM_OK)
		st = rec_parse(record, r, e);
	if (st == KM_OK && strcmp(r->user, user) != 0)
		st = km_fail(e, KM_EINTEGRITY, "the credential record belongs to %s, not to %s", r->user, user);
	return st;
}

/* ------------------------------------------------------------ sealing */

static km_status seal_seed(cred_record *r, const cred_secrets *sec, km_err *e)
{
	uint8_t aad[AAD_MAX];
	size_t n = aad_seed(aad, r->user, r->pub);
	return gcm_seal(sec->seal_key, aad, n, sec->seed, SEED_BYTES, r->sealed_seed, e);
}

static km_status seal_totp(cred_record *r, const uint8_t *seal_key, const uint8_t *secret, size_t len, km_err *e)
{
	uint8_t aad[AAD_MAX];
	size_t n = aad_totp(aad, r->user, &r->totp);
	r->sealed_totp_len = SEAL_OVERHEAD + len;
	return gcm_seal(seal_key, aad, n, secret, len, r->sealed_totp, e);
}

/* Parse, check ownership and passphrase, and open every sealed secret into
 * *sec_out (the caller's to km_secure_free).  See km_cred_unlock. */
static km_status rec_open(const char *user, const json_t *record, const char *passphrase,
                          cred_record *r, cred_secrets **sec_out, size_t *totp_len, km_err *e)
{
	uint8_t verifier[SUBKEY_BYTES], pub[KM_CRED_PUBKEY_BYTES], aad[AAD_MAX];
	km_status st;

	*sec_out = NULL;
	if ((st = check_passphrase(passphrase, "passphrase", e)) ||
	    (st = rec_load(user, record, r, e)))
		return st;
	cred_secrets *sec = km_secure_alloc(sizeof *sec);
	if (!sec)
		return km_fail(e, KM_ENOMEM, "no locked memory left for %s's keys", user);
	st = derive_keys(&r->params, passphrase, r->salt, verifier, sec->seal_key, e);
	if (st == KM_OK && CRYPTO_memcmp(verifier, r->verifier, SUBKEY_BYTES) != 0)
		st = km_fail(e, KM_EDENIED, "wrong passphrase for %s", user);
	if (st == KM_OK && !gcm_open(sec->seal_key, aad, aad_seed(aad, user, r->pub),
	                             r->sealed_seed, SEALED_SEED_BYTES, sec->seed))
		st = km_fail(e, KM_EINTEGRITY, "%s's credential record was altered: its signing key does not "
		             "decrypt (ciphertext, tag, public key or owner changed)", user);
	if (st == KM_OK && (st = ed25519_public(sec->seed, pub, e)) == KM_OK &&
	    CRYPTO_memcmp(pub, r->pub, KM_CRED_PUBKEY_BYTES) != 0)
		st = km_fail(e, KM_EINTEGRITY, "%s's credential record was altered: its public key is not "
		             "the signing key's", user);
	if (st == KM_OK && r->has_totp) {
		*totp_len = r->sealed_totp_len - SEAL_OVERHEAD;
		if (!gcm_open(sec->seal_key, aad, aad_totp(aad, user, &r->totp),
		              r->sealed_totp, r->sealed_totp_len, sec->totp))
			st = km_fail(e, KM_EINTEGRITY, "%s's credential record was altered: its second-factor "
			             "secret does not decrypt (ciphertext, tag, settings or owner changed)", user);
	}
	OPENSSL_cleanse(verifier, sizeof verifier);
	if (st != KM_OK) {
		km_secure_free(sec, sizeof *sec);
		return st;
	}
	*sec_out = sec;
	return KM_OK;
}

/* ------------------------------------------------------------ records */

km_status km_cred_record_check(const char *user, const json_t *record, km_err *e)
{
	cred_record r;
	return rec_load(user, record, &r, e);
}

int km_cred_record_has_totp(const json_t *record)
{
	return json_is_object(record) && json_object_get(record, "totp") != NULL;
}

km_status km_cred_create(const char *user, const char *passphrase, const km_cred_params *p,
                         json_t **record_out, km_err *e)
{
	cred_record r;
	km_status st;

	if (!record_out)
		return km_fail(e, KM_EUSAGE, "no place for the credential record");
	*record_out = NULL;
	memset(&r, 0, sizeof r);
	r.params = p ? *p : km_cred_params_default();
	if ((st = km_user_name_validate(user, e)) ||
	    (st = check_passphrase(passphrase, "passphrase", e)) ||
	    (st = km_cred_params_check(&r.params, e)))
		return st;
	km_strlcpy(r.user, user, sizeof r.user);
	if (RAND_bytes(r.salt, KM_CRED_SALT_BYTES) != 1)
		return km_fail(e, KM_EINTERNAL, "the random generator failed (credential salt)");

	cred_secrets *sec = km_secure_alloc(sizeof *sec);
	if (!sec)
		return km_fail(e, KM_ENOMEM, "no locked memory left for %s's keys", user);
	if (RAND_priv_bytes(sec->seed, SEED_BYTES) != 1)
		st = km_fail(e, KM_EINTERNAL, "the random generator failed (signing key)");
	if (st == KM_OK)
		st = ed25519_public(sec->seed, r.pub, e);
	if (st == KM_OK)
		st = derive_keys(&r.params, passphrase, r.salt, r.verifier, sec->seal_key, e);
	if (st == KM_OK)
		st = seal_seed(&r, sec, e);
	if (st == KM_OK)
		st = rec_to_json(&r, record_out, e);
	km_secure_free(sec, sizeof *sec);
	return st;
}

km_status km_cred_public_key(const json_t *record, uint8_t pub[KM_CRED_PUBKEY_BYTES], km_err *e)
{
	cred_record r;
	km_status st = rec_parse(record, &r, e);
	if (st == KM_OK)
		memcpy(pub, r.pub, KM_CRED_PUBKEY_BYTES);
	return st;
}

km_status km_cred_public_key_pem(const uint8_t pub[KM_CRED_PUBKEY_BYTES], char *out, size_t cap, km_err *e)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pub, KM_CRED_PUBKEY_BYTES);
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n = 0;
	km_status st = KM_OK;

	if (!k || !b || PEM_write_bio_PUBKEY(b, k) != 1 || (n = BIO_get_mem_data(b, &data)) <= 0) {
		ERR_clear_error();
		st = km_fail(e, KM_EINTERNAL, "cannot write the Ed25519 public key as PEM");
	} else if (!out || (size_t)n + 1 > cap) {
		st = km_fail(e, KM_EUSAGE, "the buffer for the PEM public key is too small (%ld bytes needed)", n + 1);
	} else {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	return st;
}

km_status km_cred_change_passphrase(const char *user, const json_t *record, const char *old_pass,
                                    const char *new_pass, const km_cred_params *p,
                                    json_t **new_record, km_err *e)
{
	cred_record r;
	cred_secrets *sec;
	size_t totp_len = 0;
	km_status st;

	if (!new_record)
		return km_fail(e, KM_EUSAGE, "no place for the new credential record");
	*new_record = NULL;
	if ((st = check_passphrase(new_pass, "new passphrase", e)) ||
	    (p && (st = km_cred_params_check(p, e))))
		return st;
	if ((st = rec_open(user, record, old_pass, &r, &sec, &totp_len, e)))
		return st;
	if (p)
		r.params = *p;
	/* The new seal key replaces the old one in the same locked block. */
	if (RAND_bytes(r.salt, KM_CRED_SALT_BYTES) != 1)
		st = km_fail(e, KM_EINTERNAL, "the random generator failed (credential salt)");
	if (st == KM_OK)
		st = derive_keys(&r.params, new_pass, r.salt, r.verifier, sec->seal_key, e);
	if (st == KM_OK)
		st = seal_seed(&r, sec, e);
	if (st == KM_OK && r.has_totp)
		st = seal_totp(&r, sec->seal_key, sec->totp, totp_len, e);
	if (st == KM_OK)
		st = rec_to_json(&r, new_record, e);
	km_secure_free(sec, sizeof *sec);
	return st;
}

/* ------------------------------------------------------------ sessions */

km_status km_cred_unlock(const char *user, const json_t *record, const char *passphrase,
                         km_cred_session **out, km_err *e)
{
	cred_record r;
	cred_secrets *sec;
	size_t totp_len = 0;

	if (!out)
		return km_fail(e, KM_EUSAGE, "no place for the credential session");
	*out = NULL;
	km_status st = rec_open(user, record, passphrase, &r, &sec, &totp_len, e);
	if (st != KM_OK)
		return st;
	km_cred_session *s = calloc(1, sizeof *s);
	if (!s) {
		km_secure_free(sec, sizeof *sec);
		return km_fail(e, KM_ENOMEM, "out of memory for the credential session");
	}
	km_strlcpy(s->user, r.user, sizeof s->user);
	s->params = r.params;
	memcpy(s->salt, r.salt, sizeof s->salt);
	memcpy(s->verifier, r.verifier, sizeof s->verifier);
	memcpy(s->pub, r.pub, sizeof s->pub);
	s->has_totp = r.has_totp;
	s->totp = r.totp;
	s->totp_len = totp_len;
	s->sec = sec;
	*out = s;
	return KM_OK;
}

void km_cred_session_free(km_cred_session *s)
{
	if (!s)
		return;
	km_secure_free(s->sec, sizeof *s->sec);
	OPENSSL_cleanse(s, sizeof *s);
	free(s);
}

const char *km_cred_session_user(const km_cred_session *s)
{
	return s->user;
}

void km_cred_session_public_key(const km_cred_session *s, uint8_t pub[KM_CRED_PUBKEY_BYTES])
{
	memcpy(pub, s->pub, KM_CRED_PUBKEY_BYTES);
}

int km_cred_session_has_totp(const km_cred_session *s)
{
	return s->has_totp;
}

km_status km_cred_sign(const km_cred_session *s, const uint8_t *msg, size_t len,
                       uint8_t sig[KM_CRED_SIG_BYTES], km_err *e)
{
	static const uint8_t empty[1];

	if (!s || !sig || (!msg && len))
		return km_fail(e, KM_EUSAGE, "nothing to sign with, or nothing to sign");
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, s->sec->seed, SEED_BYTES);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t n = KM_CRED_SIG_BYTES;
	int ok = k && c && EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, k, NULL) == 1 &&
	         EVP_DigestSign(c, sig, &n, msg ? msg : empty, len) == 1 && n == KM_CRED_SIG_BYTES;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	if (!ok) {
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "Ed25519 signing failed in OpenSSL");
	}
	return KM_OK;
}

km_status km_cred_verify(const uint8_t pub[KM_CRED_PUBKEY_BYTES], const uint8_t *msg, size_t len,
                         const uint8_t sig[KM_CRED_SIG_BYTES], km_err *e)
{
	static const uint8_t empty[1];

	if (!pub || !sig || (!msg && len))
		return km_fail(e, KM_EUSAGE, "no key, signature or message to verify");
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pub, KM_CRED_PUBKEY_BYTES);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = k && c && EVP_DigestVerifyInit_ex(c, NULL, NULL, NULL, NULL, k, NULL) == 1 &&
	         EVP_DigestVerify(c, sig, KM_CRED_SIG_BYTES, msg ? msg : empty, len) == 1;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	if (!ok) {
		ERR_clear_error();
		return km_fail(e, KM_EINTEGRITY, "the signature does not verify with this public key");
	}
	return KM_OK;
}

/* ------------------------------------------------------------ TOTP in records */

/* The record must be the one s opened: same owner, salt, verifier, key. */
static km_status session_owns(const km_cred_session *s, const json_t *record, cred_record *r, km_err *e)
{
	km_status st = rec_parse(record, r, e);
	if (st != KM_OK)
		return st;
	if (strcmp(r->user, s->user) != 0 ||
	    CRYPTO_memcmp(r->salt, s->salt, sizeof s->salt) != 0 ||
	    CRYPTO_memcmp(r->verifier, s->verifier, sizeof s->verifier) != 0 ||
	    CRYPTO_memcmp(r->pub, s->pub, sizeof s->pub) != 0)
		return km_fail(e, KM_ESTATE, "this credential record is not the one %s's session was unlocked "
		               "from (was the passphrase changed since?); unlock again", s->user);
	return KM_OK;
}

/* A record rebuilt from the session's authenticated state, with the
 * second factor given by (t, secret, len), or none if secret is NULL.
 * Every sealed value gets a fresh nonce. */
static km_status session_record(const km_cred_session *s, const cred_totp *t, const uint8_t *secret,
                                size_t len, json_t **out, km_err *e)
{
	cred_record r;
	memset(&r, 0, sizeof r);
	km_strlcpy(r.user, s->user, sizeof r.user);
	r.params = s->params;
	memcpy(r.salt, s->salt, sizeof r.salt);
	memcpy(r.verifier, s->verifier, sizeof r.verifier);
	memcpy(r.pub, s->pub, sizeof r.pub);
	km_status st = seal_seed(&r, s->sec, e);
	if (st == KM_OK && secret) {
		r.has_totp = 1;
		r.totp = *t;
		st = seal_totp(&r, s->sec->seal_key, secret, len, e);
	}
	if (st == KM_OK)
		st = rec_to_json(&r, out, e);
	return st;
}

km_status km_cred_totp_enrol(km_cred_session *s, const json_t *record, json_t **new_record,
                             char *uri, size_t uri_cap, char *base32, size_t b32_cap, km_err *e)
{
	cred_record r;
	cred_totp t = {"SHA1", KM_TOTP_DIGITS_DEFAULT, KM_TOTP_PERIOD_DEFAULT};
	km_status st;

	if (!s || !new_record || !uri || !base32)
		return km_fail(e, KM_EUSAGE, "km_cred_totp_enrol needs a session and places for its outputs");
	*new_record = NULL;
	if (b32_cap < KM_BASE32_LEN(KM_TOTP_SECRET_BYTES) + 1)
		return km_fail(e, KM_EUSAGE, "the buffer for the base32 secret is too small (%d bytes needed)",
		               KM_BASE32_LEN(KM_TOTP_SECRET_BYTES) + 1);
	if ((st = session_owns(s, record, &r, e)))
		return st;
	if (r.has_totp || s->has_totp)
		return km_fail(e, KM_EEXISTS, "%s already has a second factor; disable it before enrolling a new one",
		               s->user);

	uint8_t *secret = km_secure_alloc(KM_TOTP_SECRET_BYTES);
	if (!secret)
		return km_fail(e, KM_ENOMEM, "no locked memory left for the second-factor secret");
	if (RAND_priv_bytes(secret, KM_TOTP_SECRET_BYTES) != 1)
		st = km_fail(e, KM_EINTERNAL, "the random generator failed (second-factor secret)");
	if (st == KM_OK) {
		km_base32_encode(secret, KM_TOTP_SECRET_BYTES, base32, b32_cap);
		int n = snprintf(uri, uri_cap, "otpauth://totp/keyward:%s?secret=%s&issuer=keyward"
		                 "&algorithm=%s&digits=%d&period=%d", s->user, base32, t.hash, t.digits, t.period);
		if (n < 0 || (size_t)n >= uri_cap)
			st = km_fail(e, KM_EUSAGE, "the buffer for the otpauth URI is too small (%d bytes needed)", n + 1);
	}
	if (st == KM_OK)
		st = session_record(s, &t, secret, KM_TOTP_SECRET_BYTES, new_record, e);
	if (st == KM_OK) {
		memcpy(s->sec->totp, secret, KM_TOTP_SECRET_BYTES);
		s->totp_len = KM_TOTP_SECRET_BYTES;
		s->totp = t;
		s->has_totp = 1;
	} else {
		OPENSSL_cleanse(base32, b32_cap);
		OPENSSL_cleanse(uri, uri_cap);
	}
	km_secure_free(secret, KM_TOTP_SECRET_BYTES);
	return st;
}

km_status km_cred_totp_disable(km_cred_session *s, const json_t *record, json_t **new_record, km_err *e)
{
	cred_record r;
	km_status st;

	if (!s || !new_record)
		return km_fail(e, KM_EUSAGE, "km_cred_totp_disable needs a session and a place for the record");
	*new_record = NULL;
	if ((st = session_owns(s, record, &r, e)))
		return st;
	if (!r.has_totp)
		return km_fail(e, KM_ESTATE, "%s has no second factor to disable", s->user);
	if ((st = session_record(s, NULL, NULL, 0, new_record, e)))
		return st;
	OPENSSL_cleanse(s->sec->totp, sizeof s->sec->totp);
	s->totp_len = 0;
	s->has_totp = 0;
	return KM_OK;
}

km_status km_cred_totp_check(const km_cred_session *s, const char *code, int64_t now,
                             int64_t last_used_step, int64_t *matched_step, km_err *e)
{
	if (!s)
		return km_fail(e, KM_EUSAGE, "no credential session");
	if (!s->has_totp)
		return km_fail(e, KM_ESTATE, "%s has no second factor enrolled", s->user);
	return km_totp_check(s->sec->totp, s->totp_len, s->totp.hash, s->totp.period, s->totp.digits,
	                     code, now, last_used_step, matched_step, e);
}

/* ------------------------------------------------------------ TOTP (RFC 6238) */

static km_status totp_args(const uint8_t *secret, size_t len, const char *hash_name, int64_t unix_time,
                           int step_seconds, int digits, km_err *e)
{
	if (!secret || len == 0)
		return km_fail(e, KM_EINVAL, "the TOTP secret is empty");
	if (!totp_hash_known(hash_name))
		return km_fail(e, KM_EINVAL, "the TOTP hash must be SHA1, SHA256 or SHA512");
	if (step_seconds < 1 || step_seconds > TOTP_PERIOD_MAX)
		return km_fail(e, KM_EINVAL, "the TOTP period must be 1 to %d seconds", TOTP_PERIOD_MAX);
	if (digits < TOTP_DIGITS_MIN || digits > TOTP_DIGITS_MAX)
		return km_fail(e, KM_EINVAL, "a TOTP code has %d to %d digits", TOTP_DIGITS_MIN, TOTP_DIGITS_MAX);
	if (unix_time < 0)
		return km_fail(e, KM_EINVAL, "the time for a TOTP code is before 1970");
	return KM_OK;
}

/* HOTP (RFC 4226 section 5.3) at counter: dynamic truncation of the HMAC,
 * then the low `digits` decimal digits, zero-padded. */
static km_status hotp(const uint8_t *secret, size_t len, const char *hash_name, uint64_t counter,
                      int digits, char out[KM_TOTP_CODE_MAX], km_err *e)
{
	static const uint32_t modulus[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
	uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;

	for (int i = 7; i >= 0; i--) {
		msg[i] = (uint8_t)counter;
		counter >>= 8;
	}
	if (!EVP_Q_mac(NULL, "HMAC", NULL, hash_name, NULL, secret, len, msg, sizeof msg,
	               mac, sizeof mac, &mac_len) || mac_len < 20) {
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "HMAC-%s is not available from OpenSSL", hash_name);
	}
	unsigned off = mac[mac_len - 1] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
	               ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
	snprintf(out, KM_TOTP_CODE_MAX, "%0*u", digits, bin % modulus[digits]);
	OPENSSL_cleanse(mac, sizeof mac);
	return KM_OK;
}

km_status km_totp_code(const uint8_t *secret, size_t len, const char *hash_name, int64_t unix_time,
                       int step_seconds, int digits, char out[KM_TOTP_CODE_MAX], km_err *e)
{
	km_status st = totp_args(secret, len, hash_name, unix_time, step_seconds, digits, e);
	if (st != KM_OK)
		return st;
	if (!out)
		return km_fail(e, KM_EUSAGE, "no place for the TOTP code");
	return hotp(secret, len, hash_name, (uint64_t)(unix_time / step_seconds), digits, out, e);
}

km_status km_totp_check(const uint8_t *secret, size_t len, const char *hash_name, int step_seconds,
                        int digits, const char *code, int64_t now, int64_t last_used_step,
                        int64_t *matched_step, km_err *e)
{
	km_status st = totp_args(secret, len, hash_name, now, step_seconds, digits, e);
	if (st != KM_OK)
		return st;
	if (!code || !matched_step)
		return km_fail(e, KM_EUSAGE, "no one-time code to check, or no place for its step");
	size_t n = strnlen(code, KM_TOTP_CODE_MAX);
	if (n != (size_t)digits)
		return km_fail(e, KM_EINVAL, "the one-time code must be exactly %d digits; this one has %s%zu characters",
		               digits, n == KM_TOTP_CODE_MAX ? "at least " : "", n);
	for (size_t i = 0; i < n; i++)
		if (code[i] < '0' || code[i] > '9')
			return km_fail(e, KM_EINVAL, "the one-time code must be digits only (0-9); character %zu is not",
			               i + 1);

	int64_t now_step = now / step_seconds;
	int found = 0, reused = 0;
	int64_t hit = 0;
	for (int64_t d = -1; d <= 1; d++) {
		if ((d < 0 && now_step == 0) || (d > 0 && now_step == INT64_MAX))
			continue;
		int64_t step = now_step + d;
		char want[KM_TOTP_CODE_MAX];
		if ((st = hotp(secret, len, hash_name, (uint64_t)step, digits, want, e)))
			return st;
		int equal = CRYPTO_memcmp(want, code, (size_t)digits) == 0;
		OPENSSL_cleanse(want, sizeof want);
		if (equal && step > last_used_step && !found) {
			found = 1;
			hit = step;
		} else if (equal && step <= last_used_step) {
			reused = 1;
		}
	}
	if (found) {
		*matched_step = hit;
		return KM_OK;
	}
	if (reused)
		return km_fail(e, KM_EDENIED, "this code was already used; wait for the next one (a new code "
		               "every %d seconds)", step_seconds);
	return km_fail(e, KM_EDENIED, "the one-time code is wrong (or the authenticator's clock is more "
	               "than %d seconds off)", step_seconds);
}

/* ------------------------------------------------------------ base32 (RFC 4648) */

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t km_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t need = KM_BASE32_LEN(len), o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (!out || cap < need + 1) {
		if (out && cap > 0)
			out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		acc = ((acc << 8) | in[i]) & 0xfff; /* at most 4 + 8 bits pending */
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return o;
}

static int b32_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

km_status km_base32_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len, km_err *e)
{
	if (!in || !out_len)
		return km_fail(e, KM_EUSAGE, "no base32 text to decode");
	size_t total = strlen(in), n = total;
	while (n > 0 && in[n - 1] == '=')
		n--;
	/* A group of 8 characters carries 5 bytes; a final partial group has
	 * 2, 4, 5 or 7 characters (1..4 bytes).  Padding, if any, completes
	 * the last group. */
	size_t rest = n % 8;
	if (rest == 1 || rest == 3 || rest == 6 || (total != n && (total % 8 != 0 || rest == 0)))
		return km_fail(e, KM_EINVAL, "the base32 text has a length no encoding has (%zu characters)", total);
	size_t bytes = n * 5 / 8;
	if (bytes > cap || (!out && bytes))
		return km_fail(e, KM_EUSAGE, "the base32 text decodes to %zu bytes; the buffer holds %zu", bytes, cap);

	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b32_value(in[i]);
		if (v < 0) {
			OPENSSL_cleanse(out, o);
			return km_fail(e, KM_EINVAL, "the base32 text has a character outside A-Z and 2-7 at position %zu",
			               i + 1);
		}
		acc = ((acc << 5) | (uint32_t)v) & 0x1fff; /* at most 7 + 5 bits pending */
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0) {
		OPENSSL_cleanse(out, o);
		return km_fail(e, KM_EINVAL, "the base32 text is not canonical: its last character has bits "
		               "beyond the data");
	}
	*out_len = o;
	return KM_OK;
}
