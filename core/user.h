/*
 * user.h — keyward's people: roles, scopes, personal credentials.
 *
 * A person is a row of the users table sealed by an HSM MAC (rowmac.h):
 * roles, scopes (key-name prefixes a service may use), a credential record
 * (cred.h: Argon2id passphrase verifier, the encrypted Ed25519 signing key,
 * an optional encrypted TOTP secret), the failure counter and lockout.
 * Identity comes from the session (keyward.h): the real uid in a system
 * deployment, --user in a personal one.  Every change here is authorised
 * (with step-up: the caller's passphrase, + TOTP when enrolled) and
 * audited; refusals are audited too.
 */
#ifndef KM_USER_H
#define KM_USER_H

#include "keyward.h"

typedef struct km_user_info {
	char name[64];
	unsigned roles;
	int64_t created;
	char created_by[64];
	char scopes[256];       /* "" = none (services then may use no key) */
	int has_passphrase;
	int totp;               /* a second factor is enrolled */
	int disabled;           /* locked by an administrator */
	int64_t locked_until;   /* lockout after failures; 0 = none */
	uint32_t failures;
	int sealed;             /* listings: 1 when the row's HSM MAC checked out */
} km_user_info;

/* Enrolment is a request: km_request_user_add (request.h). */

/* Change the session user's own passphrase (after step-up with the old
 * one); the signing key stays the same. */
km_status km_user_passwd(km_ctx *ctx, const char *new_passphrase, km_err *e);

/* Enrol a TOTP second factor for the session user: fills the otpauth://
 * URI and the base32 secret to show once.  Disable: the session user's own,
 * or (administrator) another user's, e.g. for a lost device. */
km_status km_user_totp_enrol(km_ctx *ctx, char *uri, size_t uri_cap, char *secret, size_t secret_cap,
                             km_err *e);
km_status km_user_totp_disable(km_ctx *ctx, const char *name, km_err *e);

/* Administrator: lock a user out (every session refused) or lift a lock
 * (also an automatic lockout after failures). */
km_status km_user_lock(km_ctx *ctx, const char *name, km_err *e);
km_status km_user_unlock(km_ctx *ctx, const char *name, km_err *e);

km_status km_user_list(km_ctx *ctx, int (*cb)(void *c, const km_user_info *u),
                       void *cbctx, km_err *e);

/* User names: 1..63 of [A-Za-z0-9._-], not starting with '-'. */
km_status km_user_name_validate(const char *name, km_err *e);

/* The session user's Ed25519 public key as PEM (malloc'd), for
 * `openssl pkeyutl -verify`. */
km_status km_user_pubkey_pem(km_ctx *ctx, const char *name, char **pem, km_err *e);

#endif
