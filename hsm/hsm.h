/*
 * hsm.h — keyward's only door to the HSM.
 *
 * Speaks keyward's terms ("wrap a new KEK under the root", "sign this
 * digest with the audit key") and hides PKCS#11 entirely: nothing outside
 * hsm/ includes <p11-kit/pkcs11.h>.  The module is dlopen()ed from a path, so
 * any vendor's PKCS#11 library works; tests and the demo use SoftHSM2.
 *
 * Every failure fills km_err with a sentence naming the operation and the
 * CKR_* name, e.g. "HSM login failed: wrong PIN (C_Login: CKR_PIN_INCORRECT)".
 * A PIN never appears in a message.
 *
 * Objects keyward keeps on its token (found by CKA_LABEL + CKA_ID):
 *   "keyward-root"   AES-256 secret key: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE
 *                    TRUE; CKA_EXTRACTABLE FALSE; CKA_WRAP, CKA_UNWRAP TRUE and
 *                    every other usage FALSE.
 *   "keyward-audit"  EC P-256 key pair; the private half CKA_SIGN only,
 *                    sensitive, private, never extractable.
 *   "keyward-mac"    32-byte generic secret for HMAC-SHA256 over catalogue
 *                    rows: private, sensitive, never extractable, CKA_SIGN and
 *                    CKA_VERIFY only.  Generated in the HSM; nobody sees it.
 *   "keyward-anchor" private data object (CKO_DATA, CKA_APPLICATION
 *                    "keyward") holding up to HSM_ANCHOR_MAX bytes that the
 *                    core defines: the audit log's anchor.  See
 *                    hsm_anchor_write for how it is replaced.
 * KEK versions never live on the token: they are generated as extractable
 * session objects, wrapped by the root with CKM_AES_KEY_WRAP_PAD (RFC 5649)
 * and destroyed at once; only the wrapped bytes leave the HSM layer.
 */
#ifndef KM_HSM_H
#define KM_HSM_H

#include "km.h"

#define HSM_KEK_BYTES 32          /* AES-256 */
#define HSM_WRAPPED_KEK_MAX 64    /* RFC 5649 of 32 bytes is 40 */
#define HSM_SIG_BYTES 64          /* ECDSA P-256 raw r||s */
#define HSM_MAC_BYTES 32          /* HMAC-SHA256 */
#define HSM_ANCHOR_MAX 256        /* bytes the core may keep in the anchor */

typedef struct hsm hsm;

typedef struct hsm_config {
	const char *module_path; /* PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so */
	const char *token;       /* token label, or an RFC 7512 "pkcs11:" URI naming one */
} hsm_config;

typedef struct hsm_token_info {
	char label[33];
	char manufacturer[33];
	char model[17];
	char serial[17];
	unsigned long slot_id;
	int logged_in;
} hsm_token_info;

/* Load the module, initialise it (retrying the transient CKR_GENERAL_ERROR
 * that SoftHSM2 gives to concurrent starters), find the token by label or URI
 * and open a read-write session.  Distinct messages for: module file missing
 * or not a PKCS#11 library; SoftHSM2 config (SOFTHSM2_CONF) unreadable or its
 * token directory missing; token not found (the message lists the labels that
 * were found).  Not logged in yet. */
km_status hsm_open(const hsm_config *cfg, hsm **out, km_err *e);

/* C_Login as the normal user.  Wrong, locked or malformed PIN -> KM_EDENIED. */
km_status hsm_login(hsm *h, const char *pin, km_err *e);

/* Log out, close the session, finalise, unload.  NULL is fine. */
void hsm_close(hsm *h);

/* Is there a token matching cfg->token?  *found = 1 or 0.  Needs the module
 * only, no session. */
km_status hsm_token_exists(const hsm_config *cfg, int *found, km_err *e);

/* Initialise a fresh token with cfg->token as label on the first slot that
 * has an uninitialised token (C_InitToken with so_pin), then set the user PIN
 * (C_InitPIN).  KM_EEXISTS if a token with that label exists already. */
km_status hsm_token_create(const hsm_config *cfg, const char *so_pin,
                           const char *user_pin, km_err *e);

/* Token description for status displays. */
km_status hsm_token_describe(hsm *h, hsm_token_info *out, km_err *e);

/* Create the root key / audit key pair / row-MAC key on the token.
 * KM_EEXISTS if present. */
km_status hsm_root_create(hsm *h, km_err *e);
km_status hsm_audit_key_create(hsm *h, km_err *e);
km_status hsm_mac_key_create(hsm *h, km_err *e);

/* Which of keyward's objects the token holds; each flag 1 or 0. */
typedef struct hsm_objects {
	int root;      /* "keyward-root" */
	int audit_key; /* both halves of "keyward-audit" */
	int mac_key;   /* "keyward-mac" */
	int anchor;    /* at least one "keyward-anchor" data object */
} hsm_objects;

/* Fill *out.  Needs hsm_login first (private objects are invisible before
 * it): without it -> KM_ESTATE, as for every key and anchor function below. */
km_status hsm_objects_present(hsm *h, hsm_objects *out, km_err *e);

/* Generate a new AES-256 KEK inside the HSM and return it wrapped by the
 * root (RFC 5649).  The plaintext never leaves the HSM in this call. */
km_status hsm_kek_generate(hsm *h, uint8_t *wrapped, size_t cap,
                           size_t *wrapped_len, km_err *e);

/* Unwrap a KEK version with the root and copy its 32 bytes into key_out,
 * which must be locked memory (km_secure_alloc).  The temporary session
 * object is destroyed on every path.  A blob that does not unwrap ->
 * KM_EINTEGRITY. */
km_status hsm_kek_unwrap(hsm *h, const uint8_t *wrapped, size_t wrapped_len,
                         uint8_t *key_out, km_err *e);

/* Sign a SHA-256 digest with the audit key: CKM_ECDSA, raw r||s. */
km_status hsm_audit_sign(hsm *h, const uint8_t digest[32],
                         uint8_t sig[HSM_SIG_BYTES], km_err *e);

/* HMAC-SHA256 of data[0..len) with the row-MAC key (CKM_SHA256_HMAC through
 * C_SignInit/C_Sign).  The key's handle is found once per hsm handle and
 * kept.  No row-MAC key -> KM_ENOTFOUND.  data may be NULL if len is 0. */
km_status hsm_mac(hsm *h, const void *data, size_t len, uint8_t out[HSM_MAC_BYTES], km_err *e);

/* Read the anchor into buf.  No anchor on the token -> KM_OK with *found = 0
 * and *len = 0.  An anchor longer than cap -> KM_EUSAGE (HSM_ANCHOR_MAX is
 * always enough).  A stored value that fails its checksum, or two anchors
 * of one generation with different bytes (two writers that did not hold the
 * core's lock) -> KM_EINTEGRITY: the caller must not guess.  A read racing
 * a write returns the old value or the new one, never a mix, and never
 * "not found" when an anchor existed before the write began. */
km_status hsm_anchor_read(hsm *h, uint8_t *buf, size_t cap, size_t *len, int *found, km_err *e);

/* Replace the anchor with buf[0..len), len <= HSM_ANCHOR_MAX.  Whatever
 * anchors the token holds are replaced, damaged or conflicting ones too:
 * read first if what was there matters.
 *
 * SoftHSM2 2.6.1 refuses to change CKA_VALUE of an existing data object
 * (CKR_ATTRIBUTE_READ_ONLY), and its file store rewrites an object in place
 * anyway (truncate, unlock, then flush), which a kill or a concurrent reader
 * can catch half done.  So an anchor object is never modified (it is created
 * CKA_MODIFIABLE FALSE): each write creates a new object whose value carries
 * a generation one above every anchor seen, and only then destroys the
 * anchors it saw.  A kill before the create completes leaves the old anchor;
 * a kill after it leaves both, and hsm_anchor_read takes the higher
 * generation (the next write removes the old one).  A kill inside
 * C_CreateObject can also leave SoftHSM2 an empty or attribute-less object
 * file: no search matches it, and PKCS#11 cannot remove it.  Writers must
 * be serialised by the caller (a lock file): two at once can each leave an
 * anchor of the same generation, which reads as KM_EINTEGRITY until the
 * next write replaces both; the token never ends up with no anchor. */
km_status hsm_anchor_write(hsm *h, const uint8_t *buf, size_t len, km_err *e);

/* The audit public key as DER SubjectPublicKeyInfo (for OpenSSL's
 * d2i_PUBKEY and for export as PEM).  *der is malloc()ed; caller frees. */
km_status hsm_audit_pubkey_der(hsm *h, uint8_t **der, size_t *der_len, km_err *e);

/* "CKR_PIN_INCORRECT" for 0xA0 and so on; "CKR_0x..." if unknown. */
const char *hsm_rv_name(unsigned long rv);

/* RFC 7512 URI subset for naming a token: token, manufacturer, model,
 * serial, slot-id, object, id, type in the path; module-path and pin-value
 * in the query.  Percent-decoding applied.  Unknown path attributes are
 * refused with a message naming them; other query attributes (pin-source,
 * module-name, vendor ones) are skipped.
 *
 * pin_value holds a PIN: use it for the one login it was given for, never
 * store or log it, and hsm_uri_cleanse() the struct when done.  Store or
 * log the URI itself only after hsm_uri_strip_secrets(). */
#define HSM_PIN_MAX 255
typedef struct hsm_uri {
	char token[33], manufacturer[33], model[17], serial[17];
	char object[128];
	uint8_t id[64];
	size_t id_len;
	char type[16];
	char module_path[512];
	char pin_value[HSM_PIN_MAX + 1]; /* "" if absent */
	long slot_id; /* -1 if absent */
} hsm_uri;
km_status hsm_uri_parse(const char *uri, hsm_uri *out, km_err *e);

/* Wipe the PIN an hsm_uri may hold (OPENSSL_cleanse).  NULL is fine. */
void hsm_uri_cleanse(hsm_uri *u);

/* Copy a token name to out without its secrets, so it can be stored and
 * logged: for a "pkcs11:" URI, every pin-value and pin-source attribute
 * goes (names compared after percent-decoding, ignoring case, so no
 * spelling slips through), and a '?' with nothing left after it too.
 * Everything else is copied byte for byte; a plain label is copied as is.
 * out too small or a NULL argument -> KM_EUSAGE with out set to "" (when
 * there is room for it), never a cut-off copy. */
km_status hsm_uri_strip_secrets(const char *in, char *out, size_t cap);

/* ---- Added by the hsm/ implementation: pure OpenSSL, no HSM involved ---- */

/* Largest DER ECDSA-Sig-Value for P-256: SEQUENCE of two INTEGERs of up to
 * 33 bytes each. */
#define HSM_SIG_DER_MAX 72

/* Convert a raw r||s signature from hsm_audit_sign() into the DER
 * ECDSA-Sig-Value that OpenSSL's EVP_DigestVerify / EVP_PKEY_verify expect.
 * cap smaller than the encoding -> KM_EUSAGE. */
km_status hsm_sig_to_der(const uint8_t sig[HSM_SIG_BYTES], uint8_t *der, size_t cap,
                         size_t *der_len, km_err *e);

#endif
