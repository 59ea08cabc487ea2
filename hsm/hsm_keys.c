/*
 * hsm_keys.c — keyward's keys inside the HSM: the root key that wraps KEK
 * versions, the audit key pair that signs tree heads, and the row-MAC key
 * that authenticates catalogue rows.
 *
 * Every attribute of a key keyward creates is set explicitly (a module's
 * defaults differ, and SoftHSM2 stores a CKA_SENSITIVE key in clear unless
 * CKA_PRIVATE is also TRUE).  This file must never create an extractable
 * token key, never let a KEK session object outlive the call that made it,
 * and never copy a plaintext KEK anywhere but the caller's locked buffer.
 */
#include "hsm_int.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* How keyward finds its objects: CKA_LABEL + CKA_ID, never a handle that
 * was saved somewhere (handles are per session). */
typedef struct kw_object {
	const char *label;
	const uint8_t *id;
	size_t id_len;
	const char *what; /* for messages */
} kw_object;

static const uint8_t root_id[] = {'k', 'w', 'r', 0x01};
static const uint8_t audit_id[] = {'k', 'w', 'a', 0x01};
static const uint8_t mac_id[] = {'k', 'w', 'm', 0x01};
static const kw_object root_key = {"keyward-root", root_id, sizeof root_id, "root key"};
static const kw_object audit_key = {"keyward-audit", audit_id, sizeof audit_id, "audit key"};
static const kw_object mac_key = {"keyward-mac", mac_id, sizeof mac_id, "row-MAC key"};

/* DER OBJECT IDENTIFIER 1.2.840.10045.3.1.7 (prime256v1 / P-256). */
static const uint8_t p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
#define P256_POINT_BYTES 65 /* 04 || X || Y */

km_status hsm_need_login(const hsm *h, const char *action, km_err *e)
{
	if (!h || !h->have_session)
		return km_fail(e, KM_EUSAGE, "%s: no open HSM session", action);
	if (!h->logged_in)
		return km_fail(e, KM_ESTATE, "%s needs an HSM login first", action);
	return KM_OK;
}

/* Find keyward's object of class cls.  *found is 0 or 1; two objects with
 * one label and id mean someone else wrote to the token, and we refuse to
 * guess which is ours. */
static km_status find_object(const hsm *h, CK_OBJECT_CLASS cls, const kw_object *o,
                             CK_OBJECT_HANDLE *obj, int *found, km_err *e)
{
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR(CKA_LABEL, o->label, strlen(o->label)),
		ATTR(CKA_ID, o->id, o->id_len),
	};
	CK_OBJECT_HANDLE hits[2];
	CK_ULONG count = 0;
	CK_RV rv;

	*found = 0;
	rv = h->fl->C_FindObjectsInit(h->session, tmpl, KM_ARRAY_LEN(tmpl));
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "searching the HSM token failed", "C_FindObjectsInit");
	rv = h->fl->C_FindObjects(h->session, hits, KM_ARRAY_LEN(hits), &count);
	h->fl->C_FindObjectsFinal(h->session);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "searching the HSM token failed", "C_FindObjects");
	if (count > 1)
		return km_fail(e, KM_EHSM, "the HSM token holds more than one %s labelled \"%s\"; "
		               "remove the stray copy", o->what, o->label);
	if (count == 1) {
		*obj = hits[0];
		*found = 1;
	}
	return KM_OK;
}

static km_status need_object(const hsm *h, CK_OBJECT_CLASS cls, const kw_object *o,
                             CK_OBJECT_HANDLE *obj, km_err *e)
{
	CK_SESSION_INFO si;
	int found = 0;
	km_status st = KM_OK;

	/* An object another process's write hid for a moment (hsm_int.h). */
	for (int i = 0; i < HSM_TRIES && !found; i++) {
		hsm_backoff(i);
		st = find_object(h, cls, o, obj, &found, e);
		if (st != KM_OK && st != KM_EHSM)
			return st;
	}
	if (st != KM_OK || found)
		return st;
	/* Private objects vanish when the token logs us out (another process
	 * closing the last session, a module restart): say that, not "missing". */
	if (h->fl->C_GetSessionInfo(h->session, &si) == CKR_OK && si.state != CKS_RW_USER_FUNCTIONS &&
	    si.state != CKS_RO_USER_FUNCTIONS)
		return km_fail(e, KM_ESTATE, "the HSM session is no longer logged in; log in again");
	return km_fail(e, KM_ENOTFOUND, "the HSM token has no %s (\"%s\"); create it first", o->what,
	               o->label);
}

/* Generate keyward's secret key o with tmpl, unless the token has one
 * already (KM_EEXISTS). */
static km_status generate_secret(hsm *h, const kw_object *o, CK_MECHANISM *mech, CK_ATTRIBUTE *tmpl,
                                 CK_ULONG n, CK_OBJECT_HANDLE *obj, km_err *e)
{
	char action[64];
	int found = 0;
	snprintf(action, sizeof action, "creating the %s", o->what);
	km_status st = hsm_need_login(h, action, e);
	if (st == KM_OK)
		st = find_object(h, CKO_SECRET_KEY, o, obj, &found, e);
	if (st != KM_OK)
		return st;
	if (found)
		return km_fail(e, KM_EEXISTS, "the HSM token already has a %s (\"%s\")", o->what, o->label);
	CK_RV rv = h->fl->C_GenerateKey(h->session, mech, tmpl, n, obj);
	if (rv != CKR_OK) {
		snprintf(action, sizeof action, "generating the %s failed", o->what);
		return hsm_p11_fail(e, rv, action, "C_GenerateKey");
	}
	return KM_OK;
}

km_status hsm_root_create(hsm *h, km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_ULONG len = HSM_KEK_BYTES;
	CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR_VAR(CKA_VALUE_LEN, len),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR_BOOL(CKA_PRIVATE, 1),
		ATTR_BOOL(CKA_SENSITIVE, 1),
		ATTR_BOOL(CKA_EXTRACTABLE, 0),
		ATTR_BOOL(CKA_WRAP, 1),
		ATTR_BOOL(CKA_UNWRAP, 1),
		ATTR_BOOL(CKA_ENCRYPT, 0),
		ATTR_BOOL(CKA_DECRYPT, 0),
		ATTR_BOOL(CKA_SIGN, 0),
		ATTR_BOOL(CKA_VERIFY, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
		/* Nobody may later switch a usage on. */
		ATTR_BOOL(CKA_MODIFIABLE, 0),
		ATTR(CKA_LABEL, root_key.label, strlen(root_key.label)),
		ATTR(CKA_ID, root_key.id, root_key.id_len),
	};
	CK_OBJECT_HANDLE obj;
	return generate_secret(h, &root_key, &mech, tmpl, KM_ARRAY_LEN(tmpl), &obj, e);
}

km_status hsm_audit_key_create(hsm *h, km_err *e)
{
	CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pub_tmpl[] = {
		ATTR_VAR(CKA_CLASS, pub_cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR(CKA_EC_PARAMS, p256_oid, sizeof p256_oid),
		ATTR_BOOL(CKA_TOKEN, 1),
		/* Verifiers outside keyward need it without a login. */
		ATTR_BOOL(CKA_PRIVATE, 0),
		ATTR_BOOL(CKA_VERIFY, 1),
		ATTR_BOOL(CKA_ENCRYPT, 0),
		ATTR_BOOL(CKA_WRAP, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
		ATTR_BOOL(CKA_MODIFIABLE, 0),
		ATTR(CKA_LABEL, audit_key.label, strlen(audit_key.label)),
		ATTR(CKA_ID, audit_key.id, audit_key.id_len),
	};
	CK_ATTRIBUTE priv_tmpl[] = {
		ATTR_VAR(CKA_CLASS, priv_cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR_BOOL(CKA_PRIVATE, 1),
		ATTR_BOOL(CKA_SENSITIVE, 1),
		ATTR_BOOL(CKA_EXTRACTABLE, 0),
		ATTR_BOOL(CKA_SIGN, 1),
		ATTR_BOOL(CKA_SIGN_RECOVER, 0),
		ATTR_BOOL(CKA_DECRYPT, 0),
		ATTR_BOOL(CKA_UNWRAP, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
		ATTR_BOOL(CKA_MODIFIABLE, 0),
		ATTR(CKA_LABEL, audit_key.label, strlen(audit_key.label)),
		ATTR(CKA_ID, audit_key.id, audit_key.id_len),
	};
	CK_OBJECT_HANDLE pub, priv;
	int have_pub = 0, have_priv = 0;
	km_status st;
	CK_RV rv;

	st = hsm_need_login(h, "creating the audit key", e);
	if (st == KM_OK)
		st = find_object(h, CKO_PUBLIC_KEY, &audit_key, &pub, &have_pub, e);
	if (st == KM_OK)
		st = find_object(h, CKO_PRIVATE_KEY, &audit_key, &priv, &have_priv, e);
	if (st != KM_OK)
		return st;
	/* Half a pair is an orphan from an interrupted run: a second pair
	 * beside it would make the label ambiguous, so refuse either way. */
	if (have_pub || have_priv)
		return km_fail(e, KM_EEXISTS, "the HSM token already has an audit key (\"%s\"%s)", audit_key.label,
		               have_pub && have_priv ? "" : have_pub ? ", public half only" : ", private half only");
	rv = h->fl->C_GenerateKeyPair(h->session, &mech, pub_tmpl, KM_ARRAY_LEN(pub_tmpl), priv_tmpl,
	                              KM_ARRAY_LEN(priv_tmpl), &pub, &priv);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "generating the audit key pair failed", "C_GenerateKeyPair");
	return KM_OK;
}

km_status hsm_mac_key_create(hsm *h, km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_GENERIC_SECRET;
	CK_ULONG len = HSM_MAC_BYTES;
	CK_MECHANISM mech = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR_VAR(CKA_VALUE_LEN, len),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR_BOOL(CKA_PRIVATE, 1),
		ATTR_BOOL(CKA_SENSITIVE, 1),
		ATTR_BOOL(CKA_EXTRACTABLE, 0),
		/* CKM_SHA256_HMAC through C_Sign makes a MAC, C_Verify checks one. */
		ATTR_BOOL(CKA_SIGN, 1),
		ATTR_BOOL(CKA_VERIFY, 1),
		ATTR_BOOL(CKA_ENCRYPT, 0),
		ATTR_BOOL(CKA_DECRYPT, 0),
		ATTR_BOOL(CKA_WRAP, 0),
		ATTR_BOOL(CKA_UNWRAP, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
		ATTR_BOOL(CKA_MODIFIABLE, 0),
		ATTR(CKA_LABEL, mac_key.label, strlen(mac_key.label)),
		ATTR(CKA_ID, mac_key.id, mac_key.id_len),
	};
	CK_OBJECT_HANDLE obj;
	km_status st = generate_secret(h, &mac_key, &mech, tmpl, KM_ARRAY_LEN(tmpl), &obj, e);
	if (st == KM_OK) {
		h->mac_key = obj;
		h->mac_key_cached = 1;
	}
	return st;
}

/* One HMAC: C_SignInit + C_Sign.  *stale is set when the handle is no longer
 * valid, which only a cached handle can be. */
static km_status mac_once(hsm *h, CK_OBJECT_HANDLE key, const void *data, size_t len,
                          uint8_t out[HSM_MAC_BYTES], int *stale, km_err *e)
{
	static const uint8_t nothing[1];
	CK_MECHANISM mech = {CKM_SHA256_HMAC, NULL, 0};
	/* Room to spare: a C_Sign that fails for lack of space would leave the
	 * operation active on the session. */
	CK_BYTE mac[64];
	CK_ULONG mac_len = sizeof mac;
	CK_RV rv;

	*stale = 0;
	rv = h->fl->C_SignInit(h->session, &mech, key);
	if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
		*stale = 1;
		return hsm_p11_fail(e, rv, "starting a row MAC failed", "C_SignInit");
	}
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "starting a row MAC failed", "C_SignInit");
	/* Some modules refuse a NULL buffer even with length 0. */
	rv = h->fl->C_Sign(h->session, (CK_BYTE_PTR)(len ? data : nothing), (CK_ULONG)len, mac, &mac_len);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "computing a row MAC failed", "C_Sign");
	if (mac_len != HSM_MAC_BYTES) {
		OPENSSL_cleanse(mac, sizeof mac);
		return km_fail(e, KM_EHSM, "the row-MAC key gave a %lu-byte MAC, not %d", mac_len, HSM_MAC_BYTES);
	}
	memcpy(out, mac, HSM_MAC_BYTES);
	OPENSSL_cleanse(mac, sizeof mac);
	return KM_OK;
}

_Static_assert(sizeof(CK_ULONG) >= sizeof(size_t), "a size_t length must fit a CK_ULONG");

km_status hsm_mac(hsm *h, const void *data, size_t len, uint8_t out[HSM_MAC_BYTES], km_err *e)
{
	int stale = 0;
	km_status st;

	if (!out || (!data && len > 0))
		return km_fail(e, KM_EUSAGE, "hsm_mac: NULL argument");
	st = hsm_need_login(h, "computing a row MAC", e);
	if (st != KM_OK)
		return st;
	if (h->mac_key_cached) {
		st = mac_once(h, h->mac_key, data, len, out, &stale, e);
		if (!stale)
			return st;
		h->mac_key_cached = 0;
	}
	st = need_object(h, CKO_SECRET_KEY, &mac_key, &h->mac_key, e);
	if (st != KM_OK)
		return st;
	h->mac_key_cached = 1;
	return mac_once(h, h->mac_key, data, len, out, &stale, e);
}

km_status hsm_objects_present(hsm *h, hsm_objects *out, km_err *e)
{
	CK_OBJECT_HANDLE obj;
	int pub = 0, priv = 0, root = 0, mac = 0;
	unsigned anchors = 0;
	km_status st;

	if (!out)
		return km_fail(e, KM_EUSAGE, "hsm_objects_present: NULL argument");
	memset(out, 0, sizeof *out);
	/* Private objects are invisible before login: without it we would
	 * report a present root key as missing. */
	st = hsm_need_login(h, "looking for keyward's keys", e);
	if (st == KM_OK)
		st = find_object(h, CKO_SECRET_KEY, &root_key, &obj, &root, e);
	if (st == KM_OK)
		st = find_object(h, CKO_PUBLIC_KEY, &audit_key, &obj, &pub, e);
	if (st == KM_OK)
		st = find_object(h, CKO_PRIVATE_KEY, &audit_key, &obj, &priv, e);
	if (st == KM_OK)
		st = find_object(h, CKO_SECRET_KEY, &mac_key, &obj, &mac, e);
	if (st == KM_OK)
		st = hsm_anchor_count(h, &anchors, e);
	if (st != KM_OK)
		return st;
	out->root = root;
	out->audit_key = pub && priv;
	out->mac_key = mac;
	out->anchor = anchors > 0;
	return KM_OK;
}

km_status hsm_kek_generate(hsm *h, uint8_t *wrapped, size_t cap, size_t *wrapped_len, km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_ULONG len = HSM_KEK_BYTES;
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_MECHANISM wrap = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	/* A session object, so nothing of it reaches the token files; it has
	 * to be extractable for C_WrapKey, and no usage at all otherwise. */
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR_VAR(CKA_VALUE_LEN, len),
		ATTR_BOOL(CKA_TOKEN, 0),
		ATTR_BOOL(CKA_PRIVATE, 1),
		ATTR_BOOL(CKA_SENSITIVE, 1),
		ATTR_BOOL(CKA_EXTRACTABLE, 1),
		ATTR_BOOL(CKA_ENCRYPT, 0),
		ATTR_BOOL(CKA_DECRYPT, 0),
		ATTR_BOOL(CKA_WRAP, 0),
		ATTR_BOOL(CKA_UNWRAP, 0),
		ATTR_BOOL(CKA_SIGN, 0),
		ATTR_BOOL(CKA_VERIFY, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
	};
	CK_OBJECT_HANDLE root, kek;
	CK_ULONG out_len = cap;
	km_status st;
	CK_RV rv;

	if (!wrapped || !wrapped_len)
		return km_fail(e, KM_EUSAGE, "hsm_kek_generate: NULL argument");
	*wrapped_len = 0;
	st = hsm_need_login(h, "generating a KEK", e);
	if (st == KM_OK)
		st = need_object(h, CKO_SECRET_KEY, &root_key, &root, e);
	if (st != KM_OK)
		return st;

	rv = h->fl->C_GenerateKey(h->session, &gen, tmpl, KM_ARRAY_LEN(tmpl), &kek);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "generating a KEK in the HSM failed", "C_GenerateKey");
	rv = h->fl->C_WrapKey(h->session, &wrap, root, kek, wrapped, &out_len);
	h->fl->C_DestroyObject(h->session, kek);
	if (rv == CKR_BUFFER_TOO_SMALL)
		return km_fail(e, KM_EUSAGE, "the buffer for the wrapped KEK holds %zu bytes; %lu are needed",
		               cap, out_len);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "wrapping the new KEK with the root key failed", "C_WrapKey");
	*wrapped_len = out_len;
	return KM_OK;
}

/* Unwrap failures that mean "these bytes were not wrapped by this root".
 * SoftHSM2 reports a failed RFC 5649 integrity check as CKR_GENERAL_ERROR. */
static const CK_RV unwrap_integrity_rvs[] = {
	CKR_WRAPPED_KEY_INVALID, CKR_WRAPPED_KEY_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID,
	CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_GENERAL_ERROR,
};

km_status hsm_kek_unwrap(hsm *h, const uint8_t *wrapped, size_t wrapped_len, uint8_t *key_out,
                         km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_MECHANISM unwrap = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	/* CKA_SENSITIVE FALSE is what lets us read CKA_VALUE; the object is a
	 * session object destroyed below, and it has no usage. */
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_VAR(CKA_KEY_TYPE, type),
		ATTR_BOOL(CKA_TOKEN, 0),
		ATTR_BOOL(CKA_PRIVATE, 1),
		ATTR_BOOL(CKA_SENSITIVE, 0),
		ATTR_BOOL(CKA_EXTRACTABLE, 1),
		ATTR_BOOL(CKA_ENCRYPT, 0),
		ATTR_BOOL(CKA_DECRYPT, 0),
		ATTR_BOOL(CKA_WRAP, 0),
		ATTR_BOOL(CKA_UNWRAP, 0),
		ATTR_BOOL(CKA_SIGN, 0),
		ATTR_BOOL(CKA_VERIFY, 0),
		ATTR_BOOL(CKA_DERIVE, 0),
	};
	CK_ATTRIBUTE value = ATTR(CKA_VALUE, NULL, 0);
	CK_OBJECT_HANDLE root, kek = CK_INVALID_HANDLE;
	km_status st;
	CK_RV rv;

	if (!wrapped || !key_out)
		return km_fail(e, KM_EUSAGE, "hsm_kek_unwrap: NULL argument");
	if (wrapped_len == 0 || wrapped_len > HSM_WRAPPED_KEK_MAX)
		return km_fail(e, KM_EINTEGRITY, "a wrapped KEK of %zu bytes cannot be valid (expected 40)",
		               wrapped_len);
	st = hsm_need_login(h, "unwrapping a KEK", e);
	if (st == KM_OK)
		st = need_object(h, CKO_SECRET_KEY, &root_key, &root, e);
	if (st != KM_OK)
		return st;

	rv = h->fl->C_UnwrapKey(h->session, &unwrap, root, (CK_BYTE_PTR)wrapped, (CK_ULONG)wrapped_len,
	                        tmpl, KM_ARRAY_LEN(tmpl), &kek);
	if (rv != CKR_OK) {
		for (size_t i = 0; i < KM_ARRAY_LEN(unwrap_integrity_rvs); i++)
			if (rv == unwrap_integrity_rvs[i])
				return km_fail(e, KM_EINTEGRITY, "the wrapped KEK does not unwrap under this "
				               "token's root key: corrupted, or wrapped by another root "
				               "(C_UnwrapKey: %s)", hsm_rv_name(rv));
		return hsm_p11_fail(e, rv, "unwrapping a KEK with the root key failed", "C_UnwrapKey");
	}

	/* Ask for the length first so a wrong-sized key can never be written
	 * past key_out; then read the value straight into the caller's locked
	 * buffer, with no copy of ours in between. */
	rv = h->fl->C_GetAttributeValue(h->session, kek, &value, 1);
	if (rv == CKR_OK && value.ulValueLen != HSM_KEK_BYTES) {
		h->fl->C_DestroyObject(h->session, kek);
		return km_fail(e, KM_EINTEGRITY, "the unwrapped KEK is %lu bytes, not %d", value.ulValueLen,
		               HSM_KEK_BYTES);
	}
	if (rv == CKR_OK) {
		value.pValue = key_out;
		value.ulValueLen = HSM_KEK_BYTES;
		rv = h->fl->C_GetAttributeValue(h->session, kek, &value, 1);
	}
	h->fl->C_DestroyObject(h->session, kek);
	if (rv != CKR_OK || value.ulValueLen != HSM_KEK_BYTES) {
		OPENSSL_cleanse(key_out, HSM_KEK_BYTES);
		if (rv == CKR_OK)
			return km_fail(e, KM_EINTEGRITY, "the unwrapped KEK changed size while being read");
		return hsm_p11_fail(e, rv, "reading the unwrapped KEK failed", "C_GetAttributeValue");
	}
	return KM_OK;
}

km_status hsm_audit_sign(hsm *h, const uint8_t digest[32], uint8_t sig[HSM_SIG_BYTES], km_err *e)
{
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE key;
	/* Room for any curve: a failed C_Sign for lack of space would leave the
	 * signing operation active on the session. */
	CK_BYTE out[132];
	CK_ULONG out_len = sizeof out;
	km_status st;
	CK_RV rv;

	if (!digest || !sig)
		return km_fail(e, KM_EUSAGE, "hsm_audit_sign: NULL argument");
	st = hsm_need_login(h, "signing with the audit key", e);
	if (st == KM_OK)
		st = need_object(h, CKO_PRIVATE_KEY, &audit_key, &key, e);
	if (st != KM_OK)
		return st;
	rv = h->fl->C_SignInit(h->session, &mech, key);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "starting an audit signature failed", "C_SignInit");
	rv = h->fl->C_Sign(h->session, (CK_BYTE_PTR)digest, 32, out, &out_len);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "signing with the audit key failed", "C_Sign");
	if (out_len != HSM_SIG_BYTES)
		return km_fail(e, KM_EHSM, "the audit key gave a %lu-byte signature, not %d: is it P-256?",
		               out_len, HSM_SIG_BYTES);
	memcpy(sig, out, HSM_SIG_BYTES);
	return KM_OK;
}

/* CKA_EC_POINT should be a DER OCTET STRING around 04||X||Y, but some
 * modules return the bare point: accept both, nothing else. */
static const uint8_t *ec_point_unwrap(const uint8_t *buf, size_t len)
{
	if (len == P256_POINT_BYTES && buf[0] == 0x04)
		return buf;
	if (len == P256_POINT_BYTES + 2 && buf[0] == 0x04 && buf[1] == P256_POINT_BYTES && buf[2] == 0x04)
		return buf + 2;
	return NULL;
}

static km_status spki_from_point(const uint8_t point[P256_POINT_BYTES], uint8_t **der, size_t *der_len,
                                 km_err *e)
{
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, P256_POINT_BYTES),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;
	unsigned char *buf = NULL, *p;
	int n = 0;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return km_fail(e, KM_EHSM, "the audit public key from the HSM is not a valid P-256 point");
	}
	EVP_PKEY_CTX_free(ctx);
	n = i2d_PUBKEY(pkey, NULL);
	if (n > 0 && (buf = malloc((size_t)n)) != NULL) {
		p = buf;
		n = i2d_PUBKEY(pkey, &p);
	}
	EVP_PKEY_free(pkey);
	if (!buf || n <= 0) {
		free(buf);
		return km_fail(e, n <= 0 ? KM_EINTERNAL : KM_ENOMEM, "encoding the audit public key failed");
	}
	*der = buf;
	*der_len = (size_t)n;
	return KM_OK;
}

km_status hsm_audit_pubkey_der(hsm *h, uint8_t **der, size_t *der_len, km_err *e)
{
	CK_OBJECT_HANDLE key;
	uint8_t params[32], point[P256_POINT_BYTES + 8];
	CK_ATTRIBUTE attrs[] = {
		ATTR(CKA_EC_PARAMS, params, sizeof params),
		ATTR(CKA_EC_POINT, point, sizeof point),
	};
	const uint8_t *raw;
	km_status st;
	CK_RV rv;

	if (!der || !der_len)
		return km_fail(e, KM_EUSAGE, "hsm_audit_pubkey_der: NULL argument");
	*der = NULL;
	*der_len = 0;
	st = hsm_need_login(h, "reading the audit public key", e);
	if (st == KM_OK)
		st = need_object(h, CKO_PUBLIC_KEY, &audit_key, &key, e);
	if (st != KM_OK)
		return st;
	rv = h->fl->C_GetAttributeValue(h->session, key, attrs, KM_ARRAY_LEN(attrs));
	if (rv == CKR_BUFFER_TOO_SMALL)
		return km_fail(e, KM_EHSM, "the audit key is not a P-256 key (its parameters or point are "
		               "too large)");
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "reading the audit public key failed", "C_GetAttributeValue");
	if (attrs[0].ulValueLen != sizeof p256_oid || memcmp(params, p256_oid, sizeof p256_oid) != 0)
		return km_fail(e, KM_EHSM, "the audit key is not on curve P-256");
	raw = ec_point_unwrap(point, attrs[1].ulValueLen);
	if (!raw)
		return km_fail(e, KM_EHSM, "the audit public key's CKA_EC_POINT is not an uncompressed "
		               "P-256 point");
	return spki_from_point(raw, der, der_len, e);
}

km_status hsm_sig_to_der(const uint8_t sig[HSM_SIG_BYTES], uint8_t *der, size_t cap, size_t *der_len,
                         km_err *e)
{
	ECDSA_SIG *s = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *p = der;
	int n;

	if (!sig || !der || !der_len)
		return km_fail(e, KM_EUSAGE, "hsm_sig_to_der: NULL argument");
	*der_len = 0;
	s = ECDSA_SIG_new();
	r = BN_bin2bn(sig, HSM_SIG_BYTES / 2, NULL);
	sv = BN_bin2bn(sig + HSM_SIG_BYTES / 2, HSM_SIG_BYTES / 2, NULL);
	if (!s || !r || !sv || !ECDSA_SIG_set0(s, r, sv)) {
		BN_free(r);
		BN_free(sv);
		ECDSA_SIG_free(s);
		return km_fail(e, KM_ENOMEM, "out of memory converting a signature");
	}
	/* s owns r and sv now. */
	n = i2d_ECDSA_SIG(s, NULL);
	if (n <= 0 || (size_t)n > cap) {
		ECDSA_SIG_free(s);
		return km_fail(e, n <= 0 ? KM_EINTERNAL : KM_EUSAGE,
		               "a DER signature needs %d bytes; the buffer holds %zu", n, cap);
	}
	n = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return km_fail(e, KM_EINTERNAL, "encoding a DER signature failed");
	*der_len = (size_t)n;
	return KM_OK;
}
