/*
 * user.c — keyward's people: sealed rows, enrolment, passphrases, TOTP,
 * locks.  Every change is authorised (step-up included) by km_authorize and
 * recorded on the one audit path, with the new row's digest.
 */
#include "user_int.h"
#include "cred.h"
#include "db.h"
#include "rowmac.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLS "name, roles, created, created_by, scopes, cred, failures, locked_until, " \
	"disabled, totp_step, mac"

km_status km_user_name_validate(const char *name, km_err *e)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 63)
		return km_fail(e, KM_EINVAL, "user name must be 1 to 63 characters");
	if (name[0] == '-')
		return km_fail(e, KM_EINVAL, "user name must not start with '-'");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		/* ASCII whatever the locale: names are shown on terminals */
		if (c >= 0x80 || (!isalnum(c) && c != '.' && c != '_' && c != '-'))
			return km_fail(e, KM_EINVAL, "user name: character %zu is not allowed "
			               "(letters, digits, '.', '_', '-')", i + 1);
	}
	return KM_OK;
}

/* ---- the sealed row ---------------------------------------------------- */

static json_t *user_fields(const user_row *u)
{
	char *cred = u->cred ? json_dumps(u->cred, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
	json_t *f = json_pack("[s,I,I,s,s,s?,I,I,b,I]", u->name, (json_int_t)u->roles,
	                      (json_int_t)u->created, u->created_by, u->scopes, cred,
	                      (json_int_t)u->failures, (json_int_t)u->locked_until, u->disabled,
	                      (json_int_t)u->totp_step);
	free(cred);
	return f;
}

void user_row_clear(user_row *u)
{
	json_decref(u->cred);
	memset(u, 0, sizeof *u);
}

static km_status row_from_stmt(sqlite3_stmt *q, user_row *u, km_err *e)
{
	memset(u, 0, sizeof *u);
	snprintf(u->name, sizeof u->name, "%s", (const char *)sqlite3_column_text(q, 0));
	u->roles = (unsigned)sqlite3_column_int64(q, 1);
	u->created = sqlite3_column_int64(q, 2);
	snprintf(u->created_by, sizeof u->created_by, "%s", (const char *)sqlite3_column_text(q, 3));
	snprintf(u->scopes, sizeof u->scopes, "%s", (const char *)sqlite3_column_text(q, 4));
	const char *cred = (const char *)sqlite3_column_text(q, 5);
	if (cred) {
		json_error_t je;
		if (!(u->cred = json_loads(cred, JSON_REJECT_DUPLICATES, &je)))
			return km_fail(e, KM_EINTEGRITY, "the credential record of user %s is not JSON (%s)",
			               u->name, je.text);
	}
	u->failures = (uint32_t)sqlite3_column_int64(q, 6);
	u->locked_until = sqlite3_column_int64(q, 7);
	u->disabled = sqlite3_column_int(q, 8) != 0;
	u->totp_step = sqlite3_column_int64(q, 9);
	return KM_OK;
}

km_status user_row_load(km_ctx *ctx, const char *name, user_row *u, km_err *e)
{
	sqlite3_stmt *q;
	memset(u, 0, sizeof *u);
	km_status st = km_db_prepare(ctx->db, "SELECT " USER_COLS " FROM users WHERE name = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		st = row_from_stmt(q, u, e);
		if (!st) {
			char what[96];
			snprintf(what, sizeof what, "'%s'", u->name);
			st = km_rowmac_check(ctx, "users", what, user_fields(u), sqlite3_column_blob(q, 10),
			                     (size_t)sqlite3_column_bytes(q, 10), e);
		}
		if (st)
			user_row_clear(u);
	} else if (rc == SQLITE_DONE) {
		st = km_fail(e, KM_ENOTFOUND, "%s is not a keyward user of this deployment", name);
	} else {
		st = km_db_fail(ctx->db, e, "reading users");
	}
	sqlite3_finalize(q);
	return st;
}

km_status user_row_save(km_ctx *ctx, const user_row *u, int insert, char digest[65], km_err *e)
{
	uint8_t mac[KM_ROWMAC_BYTES];
	json_t *fields = user_fields(u);
	if (digest)
		km_rowmac_digest(ctx, "users", fields, digest);
	km_status st = km_rowmac(ctx, "users", fields, mac, e);
	if (st)
		return st;
	char *cred = u->cred ? json_dumps(u->cred, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
	sqlite3_stmt *q;
	st = km_db_prepare(ctx->db, insert ?
	                   "INSERT INTO users(" USER_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)" :
	                   "UPDATE users SET roles = ?2, created = ?3, created_by = ?4, scopes = ?5, cred = ?6, "
	                   "failures = ?7, locked_until = ?8, disabled = ?9, totp_step = ?10, mac = ?11 "
	                   "WHERE name = ?1", &q, e);
	if (!st) {
		sqlite3_bind_text(q, 1, u->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, u->roles);
		sqlite3_bind_int64(q, 3, u->created);
		sqlite3_bind_text(q, 4, u->created_by, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, u->scopes, -1, SQLITE_STATIC);
		if (cred)
			sqlite3_bind_text(q, 6, cred, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 6);
		sqlite3_bind_int64(q, 7, u->failures);
		sqlite3_bind_int64(q, 8, u->locked_until);
		sqlite3_bind_int(q, 9, u->disabled);
		sqlite3_bind_int64(q, 10, u->totp_step);
		sqlite3_bind_blob(q, 11, mac, sizeof mac, SQLITE_STATIC);
		int rc = sqlite3_step(q);
		if (rc == SQLITE_CONSTRAINT)
			st = km_fail(e, KM_EEXISTS, "user '%s' exists already", u->name);
		else if (rc != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "writing the user");
		else if (!insert && sqlite3_changes(ctx->db) != 1)
			st = km_fail(e, KM_ENOTFOUND, "%s is not a keyward user of this deployment", u->name);
		sqlite3_finalize(q);
	}
	free(cred);
	return st;
}

int user_row_locked(const user_row *u, int64_t now, char *why, size_t cap)
{
	if (u->disabled) {
		snprintf(why, cap, "%s is locked by an administrator", u->name);
		return 1;
	}
	if (u->locked_until > now) {
		char t[32];
		km_time_format(u->locked_until, t);
		snprintf(why, cap, "%s is locked out after repeated failures until %s", u->name, t);
		return 1;
	}
	return 0;
}

/* ---- changes ----------------------------------------------------------- */

static km_cred_params cred_params(km_ctx *ctx)
{
	km_cred_params p = km_cred_params_default();
	p.t_cost = ctx->cfg.argon2_t;
	p.m_cost_kib = ctx->cfg.argon2_m_kib;
	return p;
}

/* Store u (already changed) and record action on it, in one transaction. */
static km_status save_and_record(km_ctx *ctx, const user_row *u, int insert, km_action a,
                                 json_t *details, km_err *e)
{
	char obj[80], digest[65];
	snprintf(obj, sizeof obj, "user:%s", u->name);
	km_status st = km_tx_begin(ctx, e);
	if (st) {
		json_decref(details);
		return st;
	}
	st = user_row_save(ctx, u, insert, digest, e);
	if (!st) {
		km_sealed_note(details, "users", u->name, digest);
		st = km_tx_audit(ctx, km_action_name(a), obj, "ok", details, e);
	} else {
		json_decref(details);
	}
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

static km_status user_passwd(km_ctx *ctx, const char *new_pass, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_USER_PASSWD, NULL, e);
	if (st)
		return st;
	const char *old = km_step_up_passphrase(ctx);
	if (!old)
		return km_fail(e, KM_EINTERNAL, "step-up left no passphrase to re-seal with");
	user_row u;
	if ((st = user_row_load(ctx, ctx->actor.name, &u, e)))
		return st;
	json_t *rec = NULL;
	km_cred_params p = cred_params(ctx);
	st = km_cred_change_passphrase(u.name, u.cred, old, new_pass, &p, &rec, e);
	if (!st) {
		json_decref(u.cred);
		u.cred = rec;
		st = save_and_record(ctx, &u, 0, KM_ACT_USER_PASSWD, json_object(), e);
	}
	user_row_clear(&u);
	return st;
}

km_status km_user_passwd(km_ctx *ctx, const char *new_passphrase, km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%s", ctx->actor.name);
	km_op_begin(ctx, KM_ACT_USER_PASSWD, obj);
	return km_op_end(ctx, user_passwd(ctx, new_passphrase, e), e);
}

static km_status totp_enrol(km_ctx *ctx, char *uri, size_t uri_cap, char *secret, size_t secret_cap,
                            km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_USER_TOTP, NULL, e);
	if (st)
		return st;
	km_cred_session *s = km_step_up_session(ctx);
	if (!s)
		return km_fail(e, KM_EINTERNAL, "step-up left no unlocked credential");
	user_row u;
	if ((st = user_row_load(ctx, ctx->actor.name, &u, e)))
		return st;
	json_t *rec = NULL;
	st = km_cred_totp_enrol(s, u.cred, &rec, uri, uri_cap, secret, secret_cap, e);
	if (!st) {
		json_decref(u.cred);
		u.cred = rec;
		u.totp_step = -1;
		st = save_and_record(ctx, &u, 0, KM_ACT_USER_TOTP, json_pack("{s:s}", "totp", "enrolled"), e);
	}
	if (st) {
		OPENSSL_cleanse(uri, uri_cap);
		OPENSSL_cleanse(secret, secret_cap);
	}
	user_row_clear(&u);
	return st;
}

km_status km_user_totp_enrol(km_ctx *ctx, char *uri, size_t uri_cap, char *secret, size_t secret_cap,
                             km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%s", ctx->actor.name);
	km_op_begin(ctx, KM_ACT_USER_TOTP, obj);
	return km_op_end(ctx, totp_enrol(ctx, uri, uri_cap, secret, secret_cap, e), e);
}

/* Remove the "totp" member: for another user the administrator cannot
 * unlock their record, and the second factor's secret is simply dropped. */
static km_status totp_disable(km_ctx *ctx, const char *name, km_err *e)
{
	int self = !name || strcmp(name, ctx->actor.name) == 0;
	if (!self && !(ctx->actor.roles & KM_ROLE_ADMIN))
		return km_authorize_deny(ctx, KM_ACT_USER_TOTP, "only an administrator may remove "
		                         "another user's second factor", e);
	km_status st = km_authorize(ctx, KM_ACT_USER_TOTP, NULL, e);
	if (st)
		return st;
	user_row u;
	if ((st = user_row_load(ctx, self ? ctx->actor.name : name, &u, e)))
		return st;
	if (!u.cred || !km_cred_record_has_totp(u.cred)) {
		st = km_fail(e, KM_ESTATE, "%s has no second factor enrolled", u.name);
	} else {
		json_object_del(u.cred, "totp");
		u.totp_step = -1;
		st = save_and_record(ctx, &u, 0, KM_ACT_USER_TOTP, json_pack("{s:s}", "totp", "disabled"), e);
	}
	user_row_clear(&u);
	return st;
}

km_status km_user_totp_disable(km_ctx *ctx, const char *name, km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", name ? name : ctx->actor.name);
	km_op_begin(ctx, KM_ACT_USER_TOTP, obj);
	return km_op_end(ctx, totp_disable(ctx, name, e), e);
}

static km_status set_lock(km_ctx *ctx, km_action a, const char *name, int lock, km_err *e)
{
	km_status st = km_user_name_validate(name, e);
	if (!st && strcmp(name, ctx->actor.name) == 0 && lock)
		st = km_fail(e, KM_EUSAGE, "you cannot lock yourself out");
	if (st)
		return st;
	if ((st = km_authorize(ctx, a, NULL, e)))
		return st;
	user_row u;
	if ((st = user_row_load(ctx, name, &u, e)))
		return st;
	u.disabled = lock;
	if (!lock) {
		u.failures = 0;
		u.locked_until = 0;
	}
	st = save_and_record(ctx, &u, 0, a, json_object(), e);
	user_row_clear(&u);
	return st;
}

km_status km_user_lock(km_ctx *ctx, const char *name, km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", name ? name : "");
	km_op_begin(ctx, KM_ACT_USER_LOCK, obj);
	return km_op_end(ctx, set_lock(ctx, KM_ACT_USER_LOCK, name, 1, e), e);
}

km_status km_user_unlock(km_ctx *ctx, const char *name, km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", name ? name : "");
	km_op_begin(ctx, KM_ACT_USER_UNLOCK, obj);
	return km_op_end(ctx, set_lock(ctx, KM_ACT_USER_UNLOCK, name, 0, e), e);
}

/* ---- reads ------------------------------------------------------------- */

static km_status user_list(km_ctx *ctx, int (*cb)(void *c, const km_user_info *u), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_USER_READ, NULL, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT " USER_COLS " FROM users ORDER BY name", &q, e)))
		return st;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		user_row u;
		km_err rowerr;
		km_user_info i;
		memset(&i, 0, sizeof i);
		int parsed = row_from_stmt(q, &u, &rowerr) == KM_OK;
		snprintf(i.name, sizeof i.name, "%s", u.name);
		i.roles = u.roles;
		i.created = u.created;
		snprintf(i.created_by, sizeof i.created_by, "%s", u.created_by);
		snprintf(i.scopes, sizeof i.scopes, "%s", u.scopes);
		i.has_passphrase = u.cred != NULL;
		i.totp = u.cred && km_cred_record_has_totp(u.cred);
		i.disabled = u.disabled;
		i.locked_until = u.locked_until;
		i.failures = u.failures;
		i.sealed = parsed && km_rowmac_check(ctx, "users", u.name, user_fields(&u),
		                                     sqlite3_column_blob(q, 10),
		                                     (size_t)sqlite3_column_bytes(q, 10), &rowerr) == KM_OK;
		user_row_clear(&u);
		if (cb(cbctx, &i))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing users");
	sqlite3_finalize(q);
	return st;
}

km_status km_user_list(km_ctx *ctx, int (*cb)(void *c, const km_user_info *u), void *cbctx, km_err *e)
{
	km_op_begin(ctx, KM_ACT_USER_READ, "users");
	return km_op_end(ctx, user_list(ctx, cb, cbctx, e), e);
}

/* For the seal scan: a row's fields straight from the statement (a row
 * that does not parse gives NULL, which the check reports). */
static json_t *user_stmt_fields(sqlite3_stmt *q)
{
	user_row u;
	km_err ignored;
	json_t *f = row_from_stmt(q, &u, &ignored) == KM_OK ? user_fields(&u) : NULL;
	user_row_clear(&u);
	return f;
}

static void user_stmt_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s'", (const char *)sqlite3_column_text(q, 0));
}

static void user_stmt_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(q, 0));
}

km_status user_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                           char *problem, size_t cap, km_err *e)
{
	static const km_rowmac_table t = {
		"users", "SELECT " USER_COLS " FROM users ORDER BY name", user_stmt_fields, user_stmt_name, 10,
		user_stmt_key, user_stmt_fields,
	};
	return km_rowmac_scan(ctx, &t, recorded, checked, bad, problem, cap, e);
}

static km_status user_pubkey(km_ctx *ctx, const char *name, char **pem, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_USER_READ, NULL, e);
	if (st)
		return st;
	user_row u;
	if ((st = user_row_load(ctx, name, &u, e)))
		return st;
	uint8_t pub[KM_CRED_PUBKEY_BYTES];
	char buf[KM_CRED_PEM_MAX];
	if (!u.cred)
		st = km_fail(e, KM_ESTATE, "%s has no credential, so no signing key", u.name);
	if (!st)
		st = km_cred_public_key(u.cred, pub, e);
	if (!st)
		st = km_cred_public_key_pem(pub, buf, sizeof buf, e);
	if (!st && !(*pem = strdup(buf)))
		st = km_fail(e, KM_ENOMEM, "out of memory");
	user_row_clear(&u);
	return st;
}

km_status km_user_pubkey_pem(km_ctx *ctx, const char *name, char **pem, km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", name ? name : "");
	km_op_begin(ctx, KM_ACT_USER_READ, obj);
	return km_op_end(ctx, user_pubkey(ctx, name, pem, e), e);
}
