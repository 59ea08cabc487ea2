/*
 * cred.h — a person's credentials: passphrase, optional TOTP second factor,
 * and the Ed25519 key that signs their approvals.
 *
 * Pure: no database, no HSM, no clock, no terminal.  The caller stores the
 * credential record (a JSON object) in the person's users row, passes the
 * current time in, and keeps the last accepted TOTP step.
 *
 * What one record holds, and why
 * ------------------------------
 *   {"format": "keyward-credential", "version": 1, "user": "alice",
 *    "kdf": {"alg": "argon2id", "argon2_version": 19, "t_cost": 3,
 *            "m_cost_kib": 65536, "parallelism": 1, "salt": B64(16)},
 *    "key_split": "hkdf-sha256",
 *    "verifier": B64(32),
 *    "seal": "aes-256-gcm",
 *    "signing_key": {"alg": "ed25519", "public": B64(32),
 *                    "sealed_seed": B64(nonce 12 || ciphertext 32 || tag 16)},
 *    "totp": {"hash": "SHA1", "digits": 6, "period": 30,            (optional)
 *             "sealed_secret": B64(nonce 12 || ciphertext n || tag 16)}}
 *
 * B64 is standard base64 with padding, canonical (re-encoding gives the same
 * text).  Parsing is strict: a missing, mistyped, out-of-range or unknown
 * field is KM_EINVAL with a message that names the field by its dotted path
 * ("kdf.salt", "signing_key.sealed_seed", ...).
 *
 * Derivation.  One Argon2id run (version 0x13, the record's t/m/p, the
 * passphrase's UTF-8 bytes as given, the 16-byte random salt, no secret, no
 * associated data) yields 64 bytes M.  M itself is never stored or kept:
 *   verifier = HKDF-SHA256(IKM = M, salt = none, info = "keyward credential v1 verifier", L = 32)
 *   seal key = HKDF-SHA256(IKM = M, salt = none, info = "keyward credential v1 seal",     L = 32)
 * HKDF with distinct labels makes the two independent: knowing the stored
 * verifier says nothing about the seal key.
 *
 * Sealing.  AES-256-GCM under the seal key, a fresh random 12-byte nonce per
 * seal, 16-byte tag.  The associated data binds each ciphertext to its owner
 * and purpose, so a ciphertext cannot be moved to another person, to another
 * record version, or between the two slots:
 *   AAD = L1("keyward credential v1") || L1(purpose) || L2(user)
 *         || BE32(record version) || purpose fields
 *   purpose "signing-key": L1("ed25519") || the 32-byte public key
 *   purpose "totp-secret": L1(hash name) || BE8(digits) || BE32(period)
 * where L1(x) = one length byte then x, L2(x) = two length bytes
 * (big-endian) then x.
 *
 * What a changed record does on unlock
 * ------------------------------------
 * The only secret is the passphrase, so a change to anything that feeds
 * Argon2id (salt, t/m/p) or to the stored verifier cannot be told apart
 * from a wrong passphrase: those give KM_EDENIED "wrong passphrase".
 * Everything after the verifier is authenticated: a changed nonce,
 * ciphertext, tag, public key, TOTP parameter, or a record presented for
 * another user (its "user" field, or the caller's name, differs) gives
 * KM_EINTEGRITY.  A format error gives KM_EINVAL.  In no case does a
 * changed record yield a key or a secret.
 *
 * What this module does not protect against: someone who can write the
 * users table can replace a record wholesale (a new key pair under a
 * passphrase they chose) or put back an older one.  The public key must
 * therefore also be pinned where writers of the table cannot reach (the
 * audit log records it at enrolment and at every change).
 *
 * Secrets in memory.  The signing seed, the seal key, the TOTP secret and
 * M live only in km_secure_alloc() buffers, cleansed on every path.
 * Argon2's own working memory (m_cost_kib) is ordinary heap that libargon2
 * wipes before freeing it.  The passphrase is the caller's: this module
 * reads it and never copies it.  No message contains a passphrase, a key,
 * a secret or a code.
 */
#ifndef KM_CRED_H
#define KM_CRED_H

#include "km.h"

#include <jansson.h>

#define KM_CRED_RECORD_VERSION 1
#define KM_CRED_SALT_BYTES 16
#define KM_CRED_PUBKEY_BYTES 32   /* raw Ed25519 public key */
#define KM_CRED_SIG_BYTES 64      /* raw Ed25519 signature */
#define KM_CRED_PEM_MAX 128       /* an Ed25519 SubjectPublicKeyInfo PEM and its NUL */
#define KM_CRED_PASSPHRASE_MAX 1024 /* bytes; a passphrase is 1..1024 bytes */

/* ------------------------------------------------------------ Argon2id cost */

/* Argon2id cost, per person (stored in the record, so each record unlocks
 * with the cost it was made with, whatever the configuration says today). */
typedef struct km_cred_params {
	uint32_t t_cost;      /* passes over memory */
	uint32_t m_cost_kib;  /* memory in KiB */
	uint32_t parallelism; /* lanes, and threads libargon2 may start */
} km_cred_params;

/* Defaults: RFC 9106 section 4's second recommended option (t=3, 64 MiB)
 * with one lane, so an unlock holds one core, not four. */
#define KM_CRED_T_COST_DEFAULT 3u
#define KM_CRED_M_COST_KIB_DEFAULT 65536u
#define KM_CRED_PARALLELISM_DEFAULT 1u

/* Accepted range.  The floor is Argon2's own minimum (m >= 8 KiB per lane);
 * it is far below what protects a passphrase and exists for tests and
 * small machines, the configuration is expected to stay at the defaults.
 * The ceiling bounds what a crafted record can make an unlock allocate or
 * spend (4 GiB, 64 passes, 16 lanes). */
#define KM_CRED_T_COST_MIN 1u
#define KM_CRED_T_COST_MAX 64u
#define KM_CRED_M_COST_KIB_MIN 8u
#define KM_CRED_M_COST_KIB_MAX (4u * 1024u * 1024u)
#define KM_CRED_PARALLELISM_MIN 1u
#define KM_CRED_PARALLELISM_MAX 16u

/* {3, 65536, 1}. */
km_cred_params km_cred_params_default(void);

/* KM_OK if every field is within the range above and m_cost_kib >=
 * 8 * parallelism; else KM_EINVAL naming the parameter, its value and
 * the allowed range. */
km_status km_cred_params_check(const km_cred_params *p, km_err *e);

/* Argon2id version 0x13 with all of RFC 9106's inputs: this module's only
 * path into libargon2, exposed so its known-answer test (RFC 9106 section
 * 5.3 uses a secret and associated data) runs the same code as a record.
 * secret and ad may be NULL when their length is 0.  out_len is 4..1024.
 * p is checked with km_cred_params_check; KM_ENOMEM if libargon2 cannot
 * allocate m_cost_kib. */
km_status km_cred_argon2id(const km_cred_params *p, const uint8_t *pwd, size_t pwd_len,
                           const uint8_t *salt, size_t salt_len,
                           const uint8_t *secret, size_t secret_len,
                           const uint8_t *ad, size_t ad_len,
                           uint8_t *out, size_t out_len, km_err *e);

/* ------------------------------------------------------------ records */

/* A new record for user (km_user_name_validate rules) with a fresh salt and
 * a fresh Ed25519 key, its seed drawn from the private DRBG into locked
 * memory.  p NULL means km_cred_params_default().  The passphrase must be
 * 1..KM_CRED_PASSPHRASE_MAX bytes (policy on its strength is the caller's).
 * *record_out is a new reference the caller owns (json_decref). */
km_status km_cred_create(const char *user, const char *passphrase, const km_cred_params *p,
                         json_t **record_out, km_err *e);

/* Parse and check the record's shape and that it belongs to user, without
 * a passphrase: KM_EINVAL (names the field) or KM_EINTEGRITY (another
 * user's record).  What the caller runs when it loads a row. */
km_status km_cred_record_check(const char *user, const json_t *record, km_err *e);

/* 1 if the record has a "totp" member (a second factor is enrolled), else 0.
 * Shape only; km_cred_unlock checks it. */
int km_cred_record_has_totp(const json_t *record);

/* The record's raw Ed25519 public key.  KM_EINVAL if the record is
 * malformed.  Unauthenticated until the record is unlocked once: use
 * km_cred_session_public_key for a key you are about to pin. */
km_status km_cred_public_key(const json_t *record, uint8_t pub[KM_CRED_PUBKEY_BYTES], km_err *e);

/* The public key as a PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"),
 * NUL-terminated, the form `openssl pkeyutl -verify -pubin -inkey F -rawin`
 * reads.  KM_EUSAGE if cap < the PEM's length + 1 (KM_CRED_PEM_MAX always
 * suffices). */
km_status km_cred_public_key_pem(const uint8_t pub[KM_CRED_PUBKEY_BYTES], char *out, size_t cap,
                                 km_err *e);

/* ------------------------------------------------------------ sessions */

/* An unlocked credential: the signing seed, the seal key and the TOTP
 * secret (if enrolled) in locked memory, for as long as the person's
 * session lasts.  Not shareable between threads while in use. */
typedef struct km_cred_session km_cred_session;

/* Check the passphrase against the record and open it.  In order:
 *   the record's shape                       KM_EINVAL (names the field)
 *   the record's user is `user`              KM_EINTEGRITY
 *   Argon2id, then the verifier (constant-time compare)
 *                                            KM_EDENIED "wrong passphrase"
 *   the sealed seed opens, and its public key is the record's
 *                                            KM_EINTEGRITY
 *   the sealed TOTP secret opens, if any     KM_EINTEGRITY
 * One Argon2id run at the record's cost (0.33 s at the defaults on the
 * quiet 2-vCPU development VM, over 1 s when it is busy; 64 MiB meanwhile):
 * rate-limit the attempts in the caller.  On failure *out is NULL and
 * nothing secret remains in memory. */
km_status km_cred_unlock(const char *user, const json_t *record, const char *passphrase,
                         km_cred_session **out, km_err *e);

/* Cleanse and free (NULL is fine). */
void km_cred_session_free(km_cred_session *s);

/* The user the session was unlocked for. */
const char *km_cred_session_user(const km_cred_session *s);

/* The public key, authenticated by the unlock (it matches the seed). */
void km_cred_session_public_key(const km_cred_session *s, uint8_t pub[KM_CRED_PUBKEY_BYTES]);

/* 1 if the unlocked record has a second factor. */
int km_cred_session_has_totp(const km_cred_session *s);

/* Pure Ed25519 (RFC 8032) signature over msg.  An approval signs the
 * request digest: msg is then those digest bytes, and the signature checks
 * with `openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in digest
 * -sigfile sig`.  msg may be NULL when len is 0. */
km_status km_cred_sign(const km_cred_session *s, const uint8_t *msg, size_t len,
                       uint8_t sig[KM_CRED_SIG_BYTES], km_err *e);

/* KM_OK if sig is pub's Ed25519 signature over msg, else KM_EINTEGRITY
 * "the signature does not verify". */
km_status km_cred_verify(const uint8_t pub[KM_CRED_PUBKEY_BYTES], const uint8_t *msg, size_t len,
                         const uint8_t sig[KM_CRED_SIG_BYTES], km_err *e);

/* A new record with the same signing key (and TOTP secret, if any) under
 * new_pass: new salt, new verifier, everything resealed with fresh nonces.
 * Unlocks with old_pass first (same errors as km_cred_unlock).  p NULL
 * keeps the record's Argon2id cost; pass the configured cost to upgrade it.
 * The old record keeps opening with the old passphrase: the caller must
 * replace it. */
km_status km_cred_change_passphrase(const char *user, const json_t *record, const char *old_pass,
                                    const char *new_pass, const km_cred_params *p,
                                    json_t **new_record, km_err *e);

/* ------------------------------------------------------------ TOTP (RFC 6238) */

#define KM_TOTP_SECRET_BYTES 20  /* what enrolment makes (RFC 4226's 160 bits) */
#define KM_TOTP_SECRET_MIN 16    /* what a record may hold */
#define KM_TOTP_SECRET_MAX 64
#define KM_TOTP_DIGITS_DEFAULT 6
#define KM_TOTP_PERIOD_DEFAULT 30
#define KM_TOTP_CODE_MAX 10      /* a code (6..8 digits here) and its NUL */
#define KM_BASE32_LEN(n) (((n) * 8 + 4) / 5) /* unpadded length for n bytes */
#define KM_TOTP_BASE32_MAX (KM_BASE32_LEN(KM_TOTP_SECRET_MAX) + 1)
#define KM_TOTP_URI_MAX 256

/* Make a TOTP secret for the unlocked person: 20 random bytes, HMAC-SHA1,
 * 6 digits, 30-second steps (what every authenticator app reads).
 * record must be the one s was unlocked from (else KM_ESTATE), without a
 * second factor (else KM_EEXISTS: disable first).  Outputs the new record
 * (the caller's reference), the otpauth URI
 *   otpauth://totp/keyward:USER?secret=B32&issuer=keyward&algorithm=SHA1&digits=6&period=30
 * and the secret in base32 (RFC 4648, upper case, no padding) for typing
 * by hand.  uri and base32 hold the secret: show them once, then cleanse
 * them (OPENSSL_cleanse).  KM_EUSAGE if uri_cap or b32_cap is too small
 * (KM_TOTP_URI_MAX and KM_TOTP_BASE32_MAX suffice).
 * The session adopts the new secret at once, so the caller can ask for a
 * first code with km_cred_totp_check and store the new record only if the
 * person proved their authenticator has it. */
km_status km_cred_totp_enrol(km_cred_session *s, const json_t *record, json_t **new_record,
                             char *uri, size_t uri_cap, char *base32, size_t b32_cap, km_err *e);

/* A new record without the second factor; the session forgets its secret.
 * record must be the one s was unlocked from (KM_ESTATE) and have a second
 * factor (KM_ESTATE).  Whether a current code is asked for first is the
 * caller's policy. */
km_status km_cred_totp_disable(km_cred_session *s, const json_t *record, json_t **new_record,
                               km_err *e);

/* Check a one-time code typed by the session's person against its record's
 * secret, hash, digits and period.  KM_ESTATE if no second factor is
 * enrolled; otherwise as km_totp_check. */
km_status km_cred_totp_check(const km_cred_session *s, const char *code, int64_t now,
                             int64_t last_used_step, int64_t *matched_step, km_err *e);

/* The RFC 6238 code at unix_time: HOTP (RFC 4226) over the step
 * floor(unix_time / step_seconds) (T0 = 0), with HMAC over hash_name
 * "SHA1", "SHA256" or "SHA512".  digits 6..8, step_seconds 1..3600,
 * unix_time >= 0, len >= 1; else KM_EINVAL.  out gets the zero-padded
 * decimal code and a NUL. */
km_status km_totp_code(const uint8_t *secret, size_t len, const char *hash_name, int64_t unix_time,
                       int step_seconds, int digits, char out[KM_TOTP_CODE_MAX], km_err *e);

/* Accept code if it is the code of step T-1, T or T+1 (T = the step of
 * now; one step of clock drift either way) and that step is later than
 * last_used_step (RFC 6238 section 5.2: a code is good once).  On success
 * *matched_step is the step it matched: the caller stores it as the
 * person's new last_used_step (pass -1 when none was ever used).
 *   code not exactly `digits` ASCII digits  KM_EINVAL, says what is expected
 *   code of a step <= last_used_step        KM_EDENIED "this code was already used ..."
 *   no match in the window                  KM_EDENIED "the code is wrong ..."
 * All three candidate codes are computed and compared in constant time. */
km_status km_totp_check(const uint8_t *secret, size_t len, const char *hash_name, int step_seconds,
                        int digits, const char *code, int64_t now, int64_t last_used_step,
                        int64_t *matched_step, km_err *e);

/* RFC 4648 base32, upper case, no padding.  Writes KM_BASE32_LEN(len)
 * characters and a NUL; returns that length (0 for len 0), or 0 with
 * out = "" (when cap > 0) if cap < KM_BASE32_LEN(len) + 1. */
size_t km_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap);

/* Decode base32 (either case; trailing '=' padding accepted but not
 * required) into out.  KM_EINVAL for a character outside the alphabet, a
 * length no encoding has, or non-zero unused trailing bits; KM_EUSAGE if
 * cap is too small.  *out_len gets the byte count. */
km_status km_base32_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len, km_err *e);

#endif
