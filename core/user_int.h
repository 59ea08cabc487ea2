/*
 * user_int.h — internal to core/: the users row, sealed by an HSM MAC.
 *
 * Every read that a decision uses goes through user_row_load, which checks
 * the MAC; every write goes through user_row_save inside the caller's
 * transaction, which seals the row and gives the digest that the audit
 * event of the change records.
 */
#ifndef KM_USER_INT_H
#define KM_USER_INT_H

#include "ctx.h"
#include "user.h"

typedef struct user_row {
	char name[64];
	unsigned roles;
	int64_t created;
	char created_by[64];
	char scopes[256];
	json_t *cred;        /* credential record (cred.h), or NULL */
	uint32_t failures;   /* failed passphrases or codes since the last success */
	int64_t locked_until;
	int disabled;        /* locked by an administrator */
	int64_t totp_step;   /* last accepted TOTP step; -1 none */
} user_row;

/* Load and check a row.  KM_ENOTFOUND "X is not a keyward user of this
 * deployment"; KM_EINTEGRITY when its MAC fails.  Free with
 * user_row_clear. */
km_status user_row_load(km_ctx *ctx, const char *name, user_row *u, km_err *e);

/* Insert (insert = 1) or update the row and its MAC, inside the caller's
 * transaction; digest (may be NULL) receives the row's digest for the
 * audit event.  Insert of an existing name: KM_EEXISTS. */
km_status user_row_save(km_ctx *ctx, const user_row *u, int insert, char digest[65], km_err *e);

void user_row_clear(user_row *u);

/* 1 if the row is locked now (administrator or lockout); why in buf. */
int user_row_locked(const user_row *u, int64_t now, char *why, size_t cap);

/* Check every users row's seal, and with `recorded` (km_sealed_recorded)
 * that it is the row the log last recorded: *checked rows, failures
 * counted in *bad, the first one named in problem. */
km_status user_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                           char *problem, size_t cap, km_err *e);

#endif
