/*
 * user.c — enrolling keyward users (authorised as user.add, audited).
 */
#include "user.h"
#include "ctx.h"
#include "db.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

km_status km_user_name_validate(const char *name, km_err *e)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 63)
		return km_fail(e, KM_EINVAL, "user name must be 1 to 63 characters");
	if (name[0] == '-')
		return km_fail(e, KM_EINVAL, "user name '%s' must not start with '-'", name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		/* ASCII whatever the locale: names are shown on terminals */
		if (c >= 0x80 || (!isalnum(c) && c != '.' && c != '_' && c != '-'))
			return km_fail(e, KM_EINVAL, "user name '%s': character %zu is not allowed "
			               "(letters, digits, '.', '_', '-')", name, i + 1);
	}
	return KM_OK;
}

km_status km_user_add(km_ctx *ctx, const char *name, unsigned roles, km_err *e)
{
	km_status st = km_user_name_validate(name, e);
	if (!st)
		st = km_roles_check_separation(roles, e);
	if (st)
		return st;
	char obj[80];
	snprintf(obj, sizeof obj, "user:%s", name);
	if ((st = km_authorize(ctx, KM_ACT_USER_ADD, obj, e)))
		return st;
	if ((st = km_tx_begin(ctx, e)))
		return st;
	sqlite3_stmt *q;
	if (!(st = km_db_prepare(ctx->db, "INSERT INTO users(name, roles, created, created_by) VALUES(?,?,?,?)", &q, e))) {
		sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int(q, 2, (int)roles);
		sqlite3_bind_int64(q, 3, km_now());
		sqlite3_bind_text(q, 4, ctx->actor.name, -1, SQLITE_STATIC);
		int rc = sqlite3_step(q);
		if (rc == SQLITE_CONSTRAINT)
			st = km_fail(e, KM_EEXISTS, "user '%s' exists already", name);
		else if (rc != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "adding the user");
		sqlite3_finalize(q);
	}
	char r[64];
	km_roles_format(roles, r, sizeof r);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_USER_ADD), obj, "ok", json_pack("{s:s}", "roles", r), e);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

km_status km_user_list(km_ctx *ctx, int (*cb)(void *c, const km_user_info *u), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_USER_READ, "", e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT name, roles, created, created_by FROM users ORDER BY name", &q, e)))
		return st;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_user_info u;
		snprintf(u.name, sizeof u.name, "%s", (const char *)sqlite3_column_text(q, 0));
		u.roles = (unsigned)sqlite3_column_int(q, 1);
		u.created = sqlite3_column_int64(q, 2);
		snprintf(u.created_by, sizeof u.created_by, "%s", (const char *)sqlite3_column_text(q, 3));
		if (cb(cbctx, &u))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing users");
	sqlite3_finalize(q);
	return st;
}
