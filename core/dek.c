/*
 * dek.c — DEK generation and AES-256-GCM wrapping bound to the asset identity.
 *
 * Layouts (wrapped DEK, associated data, identity block) are specified in
 * docs/format.md; the two must change together.  Keys are only read from
 * the caller's secure buffers and handed to OpenSSL; nothing here copies a
 * key into memory of its own.
 */
#include "dek.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#define WRAP_NONCE_BYTES 12
#define WRAP_TAG_BYTES 16
#define WRAP_CT_OFFSET WRAP_NONCE_BYTES
#define WRAP_TAG_OFFSET (WRAP_NONCE_BYTES + KM_DEK_BYTES)

/* Domain separation: this AAD can never be mistaken for another keyward
 * AAD (envelope segments use a 32-byte hash; other modules other labels). */
static const char dek_aad_label[] = "keyward dek v1";
#define DEK_AAD_LABEL_LEN (sizeof dek_aad_label - 1)
#define DEK_AAD_MAX (2 + DEK_AAD_LABEL_LEN + KM_ASSET_REF_ENCODED_MAX)

_Static_assert(KM_WRAPPED_DEK_BYTES == WRAP_NONCE_BYTES + KM_DEK_BYTES + WRAP_TAG_BYTES,
               "wrapped DEK layout");

const char *const km_asset_kinds[] = {
	"feature",
	"dataset",
	"model",
	"inference-log",
	NULL,
};

static const char unwrap_failed_msg[] =
	"the data key does not unwrap: wrong key version, or the envelope belongs to another asset";

/* ------------------------------------------------------------ identity */

int km_asset_kind_valid(const char *kind)
{
	if (!kind)
		return 0;
	for (size_t i = 0; km_asset_kinds[i]; i++)
		if (strcmp(kind, km_asset_kinds[i]) == 0)
			return 1;
	return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_alnum(char c) { return is_digit(c) || is_lower(c) || is_upper(c); }
static int is_hexlower(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

/* Character classes of the identity fields. */
static int name_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; }
static int kek_name_char(char c) { return is_digit(c) || is_lower(c) || c == '.' || c == '_' || c == '-'; }
static int version_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '+'; }

/* A '/'-separated path of segments of `ok` characters: 1..max bytes, no
 * empty segment (so no leading, trailing or doubled '/'), no "." or "..". */
static km_status check_path(const char *field, const char *s, size_t max,
                            int (*ok)(char), const char *allowed, km_err *e)
{
	if (!s)
		return km_fail(e, KM_EINVAL, "the asset identity has no %s", field);
	size_t n = strnlen(s, max + 1);
	if (n == 0)
		return km_fail(e, KM_EINVAL, "the %s is empty", field);
	if (n > max)
		return km_fail(e, KM_EINVAL, "the %s is longer than %zu bytes", field, max);
	size_t seg_start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '/') {
			size_t len = i - seg_start;
			if (len == 0)
				return km_fail(e, KM_EINVAL, "the %s has an empty '/'-segment at position %zu",
				               field, i + 1);
			if ((len == 1 && s[seg_start] == '.') ||
			    (len == 2 && s[seg_start] == '.' && s[seg_start + 1] == '.'))
				return km_fail(e, KM_EINVAL, "the %s has a \".\" or \"..\" segment at position %zu",
				               field, seg_start + 1);
			seg_start = i + 1;
		} else if (!ok(s[i])) {
			return km_fail(e, KM_EINVAL, "the %s has a character that is not allowed at position %zu "
			               "(allowed: %s, and '/' between segments)", field, i + 1, allowed);
		}
	}
	return KM_OK;
}

km_status km_asset_ref_validate(const km_asset_ref *ref, km_err *e)
{
	km_status st;

	if (!ref)
		return km_fail(e, KM_EUSAGE, "no asset identity given");

	if (!ref->uid)
		return km_fail(e, KM_EINVAL, "the asset identity has no uid");
	size_t n = strnlen(ref->uid, KM_ASSET_UID_LEN + 1);
	if (n != KM_ASSET_UID_LEN)
		return km_fail(e, KM_EINVAL, "the asset uid must be exactly %d lowercase hex digits",
		               KM_ASSET_UID_LEN);
	for (size_t i = 0; i < n; i++)
		if (!is_hexlower(ref->uid[i]))
			return km_fail(e, KM_EINVAL, "the asset uid has a character that is not a lowercase hex "
			               "digit at position %zu", i + 1);

	if (!km_asset_kind_valid(ref->kind))
		return km_fail(e, KM_EINVAL, "the asset kind must be one of feature, dataset, model, inference-log");

	st = check_path("asset name", ref->name, KM_ASSET_NAME_MAX, name_char, "letters, digits, . _ -", e);
	if (st != KM_OK)
		return st;

	if (!ref->version)
		return km_fail(e, KM_EINVAL, "the asset identity has no version (use \"\" for none)");
	n = strnlen(ref->version, KM_ASSET_VERSION_MAX + 1);
	if (n > KM_ASSET_VERSION_MAX)
		return km_fail(e, KM_EINVAL, "the asset version is longer than %d bytes", KM_ASSET_VERSION_MAX);
	for (size_t i = 0; i < n; i++)
		if (!version_char(ref->version[i]) || (i == 0 && !is_alnum(ref->version[i])))
			return km_fail(e, KM_EINVAL, "the asset version has a character that is not allowed at "
			               "position %zu (allowed: letters, digits, . _ - +; first a letter or digit)", i + 1);

	st = check_path("key name", ref->kek_name, KM_ASSET_KEK_NAME_MAX, kek_name_char,
	                "lowercase letters, digits, . _ -", e);
	if (st != KM_OK)
		return st;

	if (ref->kek_version == 0)
		return km_fail(e, KM_EINVAL, "the key version must be 1 or more");
	return KM_OK;
}

km_status km_asset_uid_new(char uid[KM_ASSET_UID_LEN + 1], km_err *e)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[KM_ASSET_UID_LEN / 2];

	if (RAND_bytes(raw, (int)sizeof raw) != 1)
		return km_fail(e, KM_EINTERNAL, "the random generator failed (asset uid)");
	for (size_t i = 0; i < sizeof raw; i++) {
		uid[2 * i] = hex[raw[i] >> 4];
		uid[2 * i + 1] = hex[raw[i] & 0x0f];
	}
	uid[KM_ASSET_UID_LEN] = '\0';
	return KM_OK;
}

static size_t put_field(uint8_t *out, size_t pos, size_t cap, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max || pos + 2 + n > cap)
		return 0;
	out[pos] = (uint8_t)(n >> 8);
	out[pos + 1] = (uint8_t)(n & 0xff);
	memcpy(out + pos + 2, s, n);
	return pos + 2 + n;
}

size_t km_asset_ref_encode(const km_asset_ref *ref, uint8_t *out, size_t cap)
{
	if (!ref || !ref->uid || !ref->kind || !ref->name || !ref->version || !ref->kek_name)
		return 0;
	size_t pos = 0;
	if (!(pos = put_field(out, pos, cap, ref->uid, KM_ASSET_UID_LEN)) ||
	    !(pos = put_field(out, pos, cap, ref->kind, KM_ASSET_KIND_MAX)) ||
	    !(pos = put_field(out, pos, cap, ref->name, KM_ASSET_NAME_MAX)) ||
	    !(pos = put_field(out, pos, cap, ref->version, KM_ASSET_VERSION_MAX)) ||
	    !(pos = put_field(out, pos, cap, ref->kek_name, KM_ASSET_KEK_NAME_MAX)))
		return 0;
	if (pos + 4 > cap)
		return 0;
	out[pos] = (uint8_t)(ref->kek_version >> 24);
	out[pos + 1] = (uint8_t)(ref->kek_version >> 16);
	out[pos + 2] = (uint8_t)(ref->kek_version >> 8);
	out[pos + 3] = (uint8_t)ref->kek_version;
	return pos + 4;
}

/* AAD of the wrap: length-prefixed label, then the identity block. */
static km_status dek_aad(const km_asset_ref *ref, uint8_t aad[DEK_AAD_MAX], size_t *len, km_err *e)
{
	km_status st = km_asset_ref_validate(ref, e);
	if (st != KM_OK)
		return st;
	aad[0] = 0;
	aad[1] = (uint8_t)DEK_AAD_LABEL_LEN;
	memcpy(aad + 2, dek_aad_label, DEK_AAD_LABEL_LEN);
	size_t n = km_asset_ref_encode(ref, aad + 2 + DEK_AAD_LABEL_LEN, KM_ASSET_REF_ENCODED_MAX);
	if (n == 0)
		return km_fail(e, KM_EINTERNAL, "cannot encode the asset identity");
	*len = 2 + DEK_AAD_LABEL_LEN + n;
	return KM_OK;
}

/* ------------------------------------------------------------ cipher */

/* Fetched once: implicit fetching on every EVP_CipherInit_ex costs more
 * than the wrap itself. */
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *gcm_cipher;

static void gcm_fetch(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static km_status openssl_fail(km_err *e, const char *what)
{
	char buf[160];
	unsigned long code = ERR_get_error();
	ERR_clear_error();
	if (code) {
		ERR_error_string_n(code, buf, sizeof buf);
		return km_fail(e, KM_EINTERNAL, "%s failed in OpenSSL: %s", what, buf);
	}
	return km_fail(e, KM_EINTERNAL, "%s failed in OpenSSL", what);
}

/* A context with the cipher set and, if kek is not NULL, the key schedule. */
static km_status new_cipher_ctx(const uint8_t *kek, EVP_CIPHER_CTX **out, km_err *e)
{
	pthread_once(&gcm_once, gcm_fetch);
	if (!gcm_cipher)
		return openssl_fail(e, "fetching AES-256-GCM");
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return km_fail(e, KM_ENOMEM, "out of memory (cipher context)");
	if (EVP_CipherInit_ex(c, gcm_cipher, NULL, kek, NULL, 1) != 1) {
		EVP_CIPHER_CTX_free(c);
		return openssl_fail(e, "keying AES-256-GCM");
	}
	*out = c;
	return KM_OK;
}

/* c is keyed; only the nonce and direction change per call.  The nonce is
 * already in out[0..12). */
static km_status wrap_keyed(EVP_CIPHER_CTX *c, const uint8_t *dek, const km_asset_ref *ref,
                            uint8_t out[KM_WRAPPED_DEK_BYTES], km_err *e)
{
	uint8_t aad[DEK_AAD_MAX];
	size_t aad_len;
	uint8_t scratch[16];
	int n = 0, m = 0;

	km_status st = dek_aad(ref, aad, &aad_len, e);
	if (st != KM_OK)
		return st;
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, out, 1) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_CipherUpdate(c, out + WRAP_CT_OFFSET, &n, dek, KM_DEK_BYTES) != 1 ||
	    EVP_CipherFinal_ex(c, scratch, &m) != 1 || n + m != KM_DEK_BYTES ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, WRAP_TAG_BYTES, out + WRAP_TAG_OFFSET) != 1) {
		OPENSSL_cleanse(out, KM_WRAPPED_DEK_BYTES);
		return openssl_fail(e, "wrapping the data key");
	}
	return KM_OK;
}

static km_status unwrap_keyed(EVP_CIPHER_CTX *c, const uint8_t in[KM_WRAPPED_DEK_BYTES],
                              const km_asset_ref *ref, uint8_t *dek_out, km_err *e)
{
	uint8_t aad[DEK_AAD_MAX];
	size_t aad_len;
	uint8_t tag[WRAP_TAG_BYTES];
	uint8_t scratch[16];
	int n = 0, m = 0;

	km_status st = dek_aad(ref, aad, &aad_len, e);
	if (st != KM_OK)
		return st;
	memcpy(tag, in + WRAP_TAG_OFFSET, sizeof tag);
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, in, 0) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_CipherUpdate(c, dek_out, &n, in + WRAP_CT_OFFSET, KM_DEK_BYTES) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, WRAP_TAG_BYTES, tag) != 1) {
		OPENSSL_cleanse(dek_out, KM_DEK_BYTES);
		return openssl_fail(e, "unwrapping the data key");
	}
	if (EVP_CipherFinal_ex(c, scratch, &m) != 1 || n + m != KM_DEK_BYTES) {
		OPENSSL_cleanse(dek_out, KM_DEK_BYTES);
		ERR_clear_error();
		return km_fail(e, KM_EINTEGRITY, "%s", unwrap_failed_msg);
	}
	return KM_OK;
}

/* ------------------------------------------------------------ public */

km_status dek_generate(uint8_t *dek, km_err *e)
{
	if (!dek)
		return km_fail(e, KM_EUSAGE, "dek_generate: no buffer");
	if (RAND_priv_bytes(dek, KM_DEK_BYTES) != 1)
		return km_fail(e, KM_EINTERNAL, "the random generator failed (data key)");
	return KM_OK;
}

km_status dek_wrap(const uint8_t *kek, const uint8_t *dek, const km_asset_ref *ref,
                   uint8_t out[KM_WRAPPED_DEK_BYTES], km_err *e)
{
	EVP_CIPHER_CTX *c;
	if (!kek || !dek || !out)
		return km_fail(e, KM_EUSAGE, "dek_wrap: missing key or output");
	if (RAND_bytes(out, WRAP_NONCE_BYTES) != 1)
		return km_fail(e, KM_EINTERNAL, "the random generator failed (wrap nonce)");
	km_status st = new_cipher_ctx(kek, &c, e);
	if (st != KM_OK)
		return st;
	st = wrap_keyed(c, dek, ref, out, e);
	EVP_CIPHER_CTX_free(c);
	return st;
}

km_status dek_unwrap(const uint8_t *kek, const uint8_t in[KM_WRAPPED_DEK_BYTES],
                     const km_asset_ref *ref, uint8_t *dek_out, km_err *e)
{
	EVP_CIPHER_CTX *c;
	if (!kek || !in || !dek_out)
		return km_fail(e, KM_EUSAGE, "dek_unwrap: missing key, input or output");
	km_status st = new_cipher_ctx(kek, &c, e);
	if (st != KM_OK)
		return st;
	st = unwrap_keyed(c, in, ref, dek_out, e);
	EVP_CIPHER_CTX_free(c);
	return st;
}

/* Nonces drawn 64 at a time: every RAND call costs a getpid() system call
 * (OpenSSL's fork check), which dominated the cost of a wrap.  Nonces are
 * public; drawing them in bulk changes nothing about their randomness. */
#define NONCE_POOL 64

struct dek_ctx {
	EVP_CIPHER_CTX *cipher; /* keyed with the KEK; direction set per call */
	size_t nonces_left;
	uint8_t nonces[NONCE_POOL * WRAP_NONCE_BYTES];
};

km_status dek_ctx_new(const uint8_t *kek, dek_ctx **out, km_err *e)
{
	if (!kek || !out)
		return km_fail(e, KM_EUSAGE, "dek_ctx_new: missing key or output");
	dek_ctx *c = OPENSSL_zalloc(sizeof *c);
	if (!c)
		return km_fail(e, KM_ENOMEM, "out of memory (key context)");
	km_status st = new_cipher_ctx(kek, &c->cipher, e);
	if (st != KM_OK) {
		OPENSSL_free(c);
		return st;
	}
	*out = c;
	return KM_OK;
}

km_status dek_ctx_wrap(dek_ctx *c, const uint8_t *dek, const km_asset_ref *ref,
                       uint8_t out[KM_WRAPPED_DEK_BYTES], km_err *e)
{
	if (!c || !dek || !out)
		return km_fail(e, KM_EUSAGE, "dek_ctx_wrap: missing context, key or output");
	if (c->nonces_left == 0) {
		if (RAND_bytes(c->nonces, (int)sizeof c->nonces) != 1)
			return km_fail(e, KM_EINTERNAL, "the random generator failed (wrap nonce)");
		c->nonces_left = NONCE_POOL;
	}
	/* Each pooled nonce is used once, then erased from the pool. */
	c->nonces_left--;
	uint8_t *nonce = c->nonces + c->nonces_left * WRAP_NONCE_BYTES;
	memcpy(out, nonce, WRAP_NONCE_BYTES);
	memset(nonce, 0, WRAP_NONCE_BYTES);
	return wrap_keyed(c->cipher, dek, ref, out, e);
}

km_status dek_ctx_unwrap(dek_ctx *c, const uint8_t in[KM_WRAPPED_DEK_BYTES],
                         const km_asset_ref *ref, uint8_t *dek_out, km_err *e)
{
	if (!c || !in || !dek_out)
		return km_fail(e, KM_EUSAGE, "dek_ctx_unwrap: missing context, input or output");
	return unwrap_keyed(c->cipher, in, ref, dek_out, e);
}

void dek_ctx_free(dek_ctx *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->cipher); /* cleanses the key schedule */
	OPENSSL_free(c);
}
