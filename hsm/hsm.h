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

/* Create the root key / audit key pair on the token.  KM_EEXISTS if present. */
km_status hsm_root_create(hsm *h, km_err *e);
km_status hsm_audit_key_create(hsm *h, km_err *e);

/* Are the root key and the audit key pair present?  Each flag 1 or 0.
 * Needs hsm_login first (private objects are invisible before it): without
 * it -> KM_ESTATE, as for every key function below. */
km_status hsm_objects_present(hsm *h, int *root, int *audit_key, km_err *e);

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

/* The audit public key as DER SubjectPublicKeyInfo (for OpenSSL's
 * d2i_PUBKEY and for export as PEM).  *der is malloc()ed; caller frees. */
km_status hsm_audit_pubkey_der(hsm *h, uint8_t **der, size_t *der_len, km_err *e);

/* "CKR_PIN_INCORRECT" for 0xA0 and so on; "CKR_0x..." if unknown. */
const char *hsm_rv_name(unsigned long rv);

/* RFC 7512 URI subset for naming a token: token, manufacturer, model,
 * serial, slot-id, object, id, type, module-path.  Percent-decoding applied.
 * Unknown path attributes are refused with a message naming them. */
typedef struct hsm_uri {
	char token[33], manufacturer[33], model[17], serial[17];
	char object[128];
	uint8_t id[64];
	size_t id_len;
	char type[16];
	char module_path[512];
	long slot_id; /* -1 if absent */
} hsm_uri;
km_status hsm_uri_parse(const char *uri, hsm_uri *out, km_err *e);

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
