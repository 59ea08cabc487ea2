/*
 * dek.h — data-encryption keys: generation, and wrapping under a KEK version
 * with the asset's identity bound as associated data.
 *
 * A DEK is a fresh random AES-256 key per asset version.  It is stored only
 * wrapped: AES-256-GCM under one KEK version, with associated data that
 * encodes, unambiguously, which asset it belongs to (uid, kind, name,
 * version) and which KEK version wrapped it.  A wrapped DEK copied into
 * another asset's envelope, or presented with the wrong KEK version, does
 * not unwrap.  The byte layout is specified in docs/format.md.
 *
 * This module also owns the asset identity (km_asset_ref): the list of asset
 * kinds and the rules for names and versions, because the identity is what
 * the wrap binds.
 *
 * Plaintext keys (KEK, DEK) are only ever read from or written to buffers
 * the caller got from km_secure_alloc(); this module never copies a key to
 * the stack or the ordinary heap (OpenSSL's cipher context holds the key
 * schedule while a call runs, and is freed with EVP_CIPHER_CTX_free, which
 * cleanses it).
 */
#ifndef KM_DEK_H
#define KM_DEK_H

#include "km.h"

#define KM_DEK_BYTES 32           /* AES-256 */
#define KM_KEK_BYTES 32           /* AES-256 */
#define KM_WRAPPED_DEK_BYTES 60   /* nonce(12) || ciphertext(32) || tag(16) */

/* Limits of the identity fields, in bytes, without the terminating NUL. */
#define KM_ASSET_UID_LEN 32       /* exactly 32 lowercase hex digits */
#define KM_ASSET_KIND_MAX 31
#define KM_ASSET_NAME_MAX 255
#define KM_ASSET_VERSION_MAX 127
#define KM_ASSET_KEK_NAME_MAX 128 /* same rule as KEK names (kek.h) */

/* Largest output of km_asset_ref_encode(): five 2-byte length prefixes,
 * the five strings at their limits, the 4-byte KEK version. */
#define KM_ASSET_REF_ENCODED_MAX                                            \
	(5 * 2 + KM_ASSET_UID_LEN + KM_ASSET_KIND_MAX + KM_ASSET_NAME_MAX + \
	 KM_ASSET_VERSION_MAX + KM_ASSET_KEK_NAME_MAX + 4)

/* The asset kinds, NULL-terminated: "feature", "dataset", "model",
 * "inference-log".  The one list; everything else iterates it. */
extern const char *const km_asset_kinds[];

/* The identity of one asset version, as bound into its wrapped DEK and its
 * envelope header.  Plain views: the strings belong to the caller. */
typedef struct km_asset_ref {
	const char *uid;      /* 32 lowercase hex digits, random per asset version */
	const char *kind;     /* one of km_asset_kinds */
	const char *name;     /* 1..255: [A-Za-z0-9._-] segments joined by '/' */
	const char *version;  /* 0..127: [A-Za-z0-9._+-], starts alphanumeric; "" = none */
	const char *kek_name; /* 1..128: [a-z0-9._-] segments joined by '/' */
	uint32_t kek_version; /* >= 1 */
} km_asset_ref;

/* Check every field against the rules above.  Names are '/'-separated
 * segments: no empty segment, no "." or ".." segment, no leading or
 * trailing '/'.  KM_EINVAL with a message that names the field and the
 * position of the first offending character (the value itself is not
 * echoed: it may hold control characters). */
km_status km_asset_ref_validate(const km_asset_ref *ref, km_err *e);

/* 1 if kind is one of km_asset_kinds, else 0. */
int km_asset_kind_valid(const char *kind);

/* A fresh random asset-version uid: 32 lowercase hex digits and a NUL. */
km_status km_asset_uid_new(char uid[KM_ASSET_UID_LEN + 1], km_err *e);

/* The identity block shared by the DEK's associated data and the envelope
 * header: uid, kind, name, version, kek_name each as a 2-byte big-endian
 * length then the bytes, then kek_version as 4 bytes big-endian.  Returns
 * the number of bytes written, or 0 if the ref is invalid or cap is too
 * small (cap >= KM_ASSET_REF_ENCODED_MAX always suffices). */
size_t km_asset_ref_encode(const km_asset_ref *ref, uint8_t *out, size_t cap);

/* Fill dek[KM_DEK_BYTES] (secure memory) from the private DRBG. */
km_status dek_generate(uint8_t *dek, km_err *e);

/* Wrap dek under kek (both KM_*_BYTES, secure memory) for the asset ref,
 * with a fresh random 12-byte nonce.  The ref is validated first
 * (KM_EINVAL).  One-shot: the cipher context lives only for this call, so
 * nothing of the KEK remains afterwards.  For many wraps under one KEK
 * version (rotation rewraps, bulk registration) use dek_ctx below. */
km_status dek_wrap(const uint8_t *kek, const uint8_t *dek, const km_asset_ref *ref,
                   uint8_t out[KM_WRAPPED_DEK_BYTES], km_err *e);

/* Unwrap into dek_out[KM_DEK_BYTES] (secure memory).  If the tag does not
 * verify — a wrong KEK version, a wrapped DEK from another asset, or any
 * changed byte — KM_EINTEGRITY "the data key does not unwrap: ..." and
 * dek_out is zeroed. */
km_status dek_unwrap(const uint8_t *kek, const uint8_t in[KM_WRAPPED_DEK_BYTES],
                     const km_asset_ref *ref, uint8_t *dek_out, km_err *e);

/* A cipher context keyed once with one KEK version, for many wraps and
 * unwraps without repeating the key schedule.  The context holds the KEK's
 * key schedule until dek_ctx_free() (which cleanses it); keep its life as
 * short as the batch.  One context per thread: it is not shareable. */
typedef struct dek_ctx dek_ctx;

km_status dek_ctx_new(const uint8_t *kek, dek_ctx **out, km_err *e);
km_status dek_ctx_wrap(dek_ctx *c, const uint8_t *dek, const km_asset_ref *ref,
                       uint8_t out[KM_WRAPPED_DEK_BYTES], km_err *e);
km_status dek_ctx_unwrap(dek_ctx *c, const uint8_t in[KM_WRAPPED_DEK_BYTES],
                         const km_asset_ref *ref, uint8_t *dek_out, km_err *e);
void dek_ctx_free(dek_ctx *c); /* NULL is fine */

#endif
