/*
 * request_expire.c — the scheduler's side of expiry.
 *
 * Readers already see a pending or approved request past its expiry as
 * expired (req_effective_state); `keyward rotate --due` also writes it so,
 * sealed and with an event of its own, so the row and the log say what
 * became of it.
 */
#include "lifecycle.h"
#include "db.h"
#include "request_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

km_status request_expired_list(km_ctx *ctx, int64_t now, char (**ids)[KM_REQUEST_ID_MAX], size_t *n, km_err *e)
{
	sqlite3_stmt *q;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	km_status st = km_db_prepare(ctx->db, "SELECT id FROM requests WHERE state IN ('pending', 'approved') "
	                             "AND expires BETWEEN 1 AND ? ORDER BY expires, id", &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, now);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char (*g)[KM_REQUEST_ID_MAX] = realloc(*ids, cap * sizeof *g);
			if (!g) {
				st = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			*ids = g;
		}
		snprintf((*ids)[(*n)++], KM_REQUEST_ID_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading requests");
	sqlite3_finalize(q);
	if (st) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return st;
}

km_status request_expire(km_ctx *ctx, const char *id, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	snprintf(obj, sizeof obj, "request:%s", id);
	km_status st = km_tx_begin(ctx, e);
	if (st)
		return st;
	req_row r;
	json_t *d = json_object();
	int64_t now = km_ctx_now(ctx);
	/* Through its seal, under the write lock: an edited expiry is refused,
	 * and one that another session decided meanwhile is left alone. */
	if (!(st = req_row_load(ctx, id, &r, e))) {
		if (r.state != KM_RS_PENDING && r.state != KM_RS_APPROVED)
			st = km_fail(e, KM_ESTATE, "request %s is %s, not open", id, km_request_state_name(r.state));
		else if (r.expires <= 0 || r.expires > now)
			st = km_fail(e, KM_ESTATE, "request %s has not expired", id);
		if (!st) {
			json_object_set_new(d, "kind", json_string(km_request_kind_name(r.kind)));
			json_object_set_new(d, "target", json_string(r.object));
			json_object_set_new(d, "was", json_string(km_request_state_name(r.state)));
			json_object_set_new(d, "expires", json_integer((json_int_t)r.expires));
			json_object_set_new(d, "by", json_string("schedule"));
			r.state = KM_RS_EXPIRED;
			r.decided = now;
			st = req_row_save(ctx, &r, 0, d, e);
		}
		req_row_clear(&r);
	}
	if (!st)
		st = km_tx_audit(ctx, "request.expire", obj, "ok", json_incref(d), e);
	json_decref(d);
	if (!st)
		return km_tx_commit(ctx, e);
	km_tx_rollback(ctx);
	return km_audit_failure(ctx, KM_ACT_ROTATE_DUE, obj, e);
}
