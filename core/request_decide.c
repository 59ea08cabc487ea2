/*
 * request_decide.c — approving (a signature), rejecting, cancelling and
 * executing requests.
 *
 * Every decision re-reads the request under the write lock (BEGIN
 * IMMEDIATE) through its seal, so two sessions never both move it: of two
 * executors one commits approved -> executed and the other then finds it
 * executed (KM_ESTATE).  Refusals that are about who someone is (their own
 * request, a second signature, a role they lack) are denials, recorded
 * before any passphrase is asked.
 */
#include "request_int.h"
#include "cred.h"
#include "text.h"
#include "user_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void req_obj(char *buf, size_t cap, const char *id)
{
	snprintf(buf, cap, "request:%.*s", KM_REQUEST_ID_MAX, id ? id : "");
}

/* Pending or approved, and not past its expiry. */
static km_status check_open(km_ctx *ctx, const req_row *r, km_err *e)
{
	km_request_state s = req_effective_state(r, km_ctx_now(ctx));
	if (s == KM_RS_EXPIRED) {
		char when[32];
		km_time_format(r->expires, when);
		return km_fail(e, KM_ESTATE, "request %s expired at %s; open a new one", r->id, when);
	}
	if (s != KM_RS_PENDING && s != KM_RS_APPROVED)
		return km_fail(e, KM_ESTATE, "request %s is %s; nothing can be decided on it any more", r->id,
		               km_request_state_name(s));
	return KM_OK;
}

/* Has `who` signed or rejected it already? */
static int has_decided(const req_approval *a, size_t n, const char *who)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].approver, who) == 0)
			return 1;
	return 0;
}

/* Who may sign: not the requester, not twice, holding the kind's role, and
 * with a second factor when the policy requires one.  Checked without
 * step-up first, and again under the lock. */
static km_status may_sign(km_ctx *ctx, km_action a, const req_row *r, const req_approval *ap, size_t n, km_err *e)
{
	if (strcmp(r->requester, ctx->actor.name) == 0)
		return km_authorize_deny(ctx, a, "nobody may approve or reject their own request", e);
	if (has_decided(ap, n, ctx->actor.name))
		return km_authorize_deny(ctx, a, "this person has already signed or rejected this request", e);
	if (!(ctx->actor.roles & req_kind_roles(r->kind))) {
		char need[64], why[128];
		km_roles_format(req_kind_roles(r->kind), need, sizeof need);
		snprintf(why, sizeof why, "a %s request is decided by the role %s", km_request_kind_name(r->kind), need);
		return km_authorize_deny(ctx, a, why, e);
	}
	km_policy_effective pol;
	char kb[160];
	const char *key = req_object_key(r->object, kb, sizeof kb);
	km_status st = req_policy(ctx, key ? key : "", &pol, e);
	if (st || !pol.v[KM_PF_TOTP])
		return st;
	user_row u;
	if ((st = user_row_load(ctx, ctx->actor.name, &u, e)))
		return st;
	int totp = u.cred && km_cred_record_has_totp(u.cred);
	user_row_clear(&u);
	return totp ? KM_OK : km_authorize_deny(ctx, a, "the policy requires a one-time code, and this person "
	                                        "has no second factor enrolled (`keyward user totp enrol`)", e);
}

/* Load the request and its approvals; with `locked`, inside a transaction. */
static km_status load_all(km_ctx *ctx, const char *id, req_row *r, req_approval **a, size_t *n, km_err *e)
{
	km_status st = req_row_load(ctx, id, r, e);
	if (!st && (st = req_approvals_load(ctx, id, a, n, e)))
		req_row_clear(r);
	return st;
}

static km_status decide_impl(km_ctx *ctx, const char *id, int approve, const char *reason, const char *obj,
                             km_err *e)
{
	km_action act = approve ? KM_ACT_REQUEST_APPROVE : KM_ACT_REQUEST_REJECT;
	req_row r;
	req_approval *ap = NULL;
	size_t n = 0;
	if (!approve && (!reason || !*reason))
		return km_fail(e, KM_EUSAGE, "a rejection needs a reason (--reason TEXT)");
	km_status st = load_all(ctx, id, &r, &ap, &n, e);
	if (st)
		return st;
	if (!(st = check_open(ctx, &r, e)) && !(st = may_sign(ctx, act, &r, ap, n, e)))
		st = km_authorize(ctx, act, r.object, e); /* role, scope, step-up (+ TOTP) */
	free(ap);
	ap = NULL;
	req_row_clear(&r);
	if (st || (st = km_tx_begin(ctx, e)))
		return st;
	/* Again under the lock: another session may have decided meanwhile. */
	if (!(st = load_all(ctx, id, &r, &ap, &n, e))) {
		if (!(st = check_open(ctx, &r, e)) && has_decided(ap, n, ctx->actor.name))
			st = km_fail(e, KM_EDENIED, "%s has already signed or rejected request %s", ctx->actor.name, id);
	}
	uint8_t digest[32], sig[KM_CRED_SIG_BYTES];
	char hex[65];
	req_approval mine = {.time = km_ctx_now(ctx), .approve = approve};
	snprintf(mine.approver, sizeof mine.approver, "%s", ctx->actor.name);
	snprintf(mine.reason, sizeof mine.reason, "%s", reason ? reason : "");
	if (!st) {
		req_digest(r.body, hex, digest);
		if (strcmp(hex, r.digest) != 0)
			st = km_fail(e, KM_EINTEGRITY, "request %s: its body does not match its digest", id);
	}
	if (!st && approve) {
		const struct km_cred_session *s = km_step_up_session(ctx);
		st = s ? km_cred_sign(s, digest, sizeof digest, sig, e)
		       : km_fail(e, KM_EINTERNAL, "step-up left no unlocked credential to sign with");
		if (!st)
			req_hex_encode(sig, sizeof sig, mine.signature);
	}
	json_t *d = json_pack("{s:s,s:s,s:s}", "approver", mine.approver, "digest", r.digest,
	                      "kind", km_request_kind_name(r.kind));
	if (approve)
		json_object_set_new(d, "signature", json_string(mine.signature));
	else
		json_object_set_new(d, "reason", json_string(mine.reason));
	if (!st)
		st = req_approval_insert(ctx, id, &mine, d, e);
	if (!st) {
		req_approval *grown = realloc(ap, (n + 1) * sizeof *ap);
		if (!grown) {
			st = km_fail(e, KM_ENOMEM, "out of memory");
		} else {
			ap = grown;
			ap[n++] = mine;
		}
	}
	if (!st) {
		char problem[128];
		unsigned valid = req_count_valid(ctx, &r, ap, n, problem, sizeof problem);
		km_request_state before = r.state;
		if (!approve) {
			r.state = KM_RS_REJECTED;
			r.decided = mine.time;
		} else if (valid >= r.quorum) {
			r.state = KM_RS_APPROVED;
		}
		json_object_set_new(d, "approvals", json_integer(valid));
		json_object_set_new(d, "quorum", json_integer(r.quorum));
		json_object_set_new(d, "state", json_string(km_request_state_name(r.state)));
		if (r.state != before)
			st = req_row_save(ctx, &r, 0, d, e);
	}
	if (!st)
		st = km_tx_audit(ctx, km_action_name(act), obj, "ok", json_incref(d), e);
	json_decref(d);
	if (!st)
		st = km_tx_commit(ctx, e);
	else
		km_tx_rollback(ctx);
	OPENSSL_cleanse(sig, sizeof sig);
	free(ap);
	req_row_clear(&r);
	return st;
}

km_status km_request_approve(km_ctx *ctx, const char *id, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_APPROVE, obj);
	return km_op_end(ctx, decide_impl(ctx, id ? id : "", 1, NULL, obj, e), e);
}

km_status km_request_reject(km_ctx *ctx, const char *id, const char *reason, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_REJECT, obj);
	km_status st = reason ? km_text_check(reason, "the reason", e) : KM_OK;
	return km_op_end(ctx, st ? st : decide_impl(ctx, id ? id : "", 0, reason, obj, e), e);
}

/* ---- cancel ------------------------------------------------------------ */

static km_status cancel_impl(km_ctx *ctx, const char *id, const char *obj, km_err *e)
{
	req_row r;
	km_status st = req_row_load(ctx, id, &r, e);
	if (st)
		return st;
	int mine = strcmp(r.requester, ctx->actor.name) == 0;
	req_row_clear(&r);
	if (!mine && !(ctx->actor.roles & KM_ROLE_ADMIN))
		return km_authorize_deny(ctx, KM_ACT_REQUEST_CANCEL, "only the requester or an administrator may "
		                         "cancel a request", e);
	if ((st = km_authorize(ctx, KM_ACT_REQUEST_CANCEL, obj, e)) || (st = km_tx_begin(ctx, e)))
		return st;
	json_t *d = json_object();
	if (!(st = req_row_load(ctx, id, &r, e))) {
		if (!(st = check_open(ctx, &r, e))) {
			r.state = KM_RS_CANCELLED;
			r.decided = km_ctx_now(ctx);
			json_object_set_new(d, "kind", json_string(km_request_kind_name(r.kind)));
			json_object_set_new(d, "target", json_string(r.object));
			st = req_row_save(ctx, &r, 0, d, e);
		}
		req_row_clear(&r);
	}
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_REQUEST_CANCEL), obj, "ok", json_incref(d), e);
	json_decref(d);
	if (!st)
		return km_tx_commit(ctx, e);
	km_tx_rollback(ctx);
	return st;
}

km_status km_request_cancel(km_ctx *ctx, const char *id, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_CANCEL, obj);
	return km_op_end(ctx, cancel_impl(ctx, id ? id : "", obj, e), e);
}

/* ---- execute ----------------------------------------------------------- */

/* Under the lock: the request as signed, still approved, every signature
 * and its signer still good, enough of them. */
static km_status execute_checks(km_ctx *ctx, const req_row *r, const req_approval *ap, size_t n,
                                json_t **change, json_t *d, km_err *e)
{
	km_request_state s = req_effective_state(r, km_ctx_now(ctx));
	if (s == KM_RS_EXPIRED)
		return check_open(ctx, r, e);
	char problem[128], hex[65];
	unsigned valid = req_count_valid(ctx, r, ap, n, problem, sizeof problem);
	if (s == KM_RS_PENDING)
		return km_fail(e, KM_ESTATE, "request %s has %u of its %u approvals; it cannot be executed yet",
		               r->id, valid, r->quorum);
	if (s != KM_RS_APPROVED)
		return km_fail(e, KM_ESTATE, "request %s is %s; only an approved request can be executed", r->id,
		               km_request_state_name(s));
	req_digest(r->body, hex, NULL);
	if (strcmp(hex, r->digest) != 0)
		return km_fail(e, KM_EINTEGRITY, "request %s: its body does not match its digest", r->id);
	json_t *body = json_loads(r->body, JSON_REJECT_DUPLICATES, NULL);
	json_int_t q = json_integer_value(json_object_get(body, "quorum"));
	if (!body || q != (json_int_t)r->quorum || !json_is_object(json_object_get(body, "change"))) {
		json_decref(body);
		return km_fail(e, KM_EINTEGRITY, "request %s: its body is not the one its row describes", r->id);
	}
	if (valid < r->quorum) {
		json_decref(body);
		return km_fail(e, KM_EDENIED, "request %s has %u valid approval%s of the %u it needs now: %s", r->id,
		               valid, valid == 1 ? "" : "s", r->quorum, problem[0] ? problem : "too few signatures");
	}
	json_t *who = json_array();
	for (size_t i = 0; i < n; i++)
		if (ap[i].approve)
			json_array_append_new(who, json_string(ap[i].approver));
	json_object_set_new(d, "approvers", who);
	*change = json_incref(json_object_get(body, "change"));
	json_decref(body);
	return KM_OK;
}

static km_status execute_impl(km_ctx *ctx, const char *id, const char *obj, char job_id[KM_REQUEST_ID_MAX],
                              km_err *e)
{
	req_row r;
	km_status st = req_row_load(ctx, id, &r, e);
	if (st)
		return st;
	km_action kind_act = req_kind_action(r.kind);
	char target[160];
	snprintf(target, sizeof target, "%s", r.object);
	req_row_clear(&r);
	/* The executor must be someone who could have opened it: an
	 * administrator never carries out a key change, nor an officer an
	 * enrolment. */
	if (!km_policy_allows(ctx->actor.roles, kind_act)) {
		char need[64], why[160];
		km_policy_roles_for(kind_act, need, sizeof need);
		snprintf(why, sizeof why, "this request is carried out by the role %s", need);
		return km_authorize_deny(ctx, KM_ACT_REQUEST_EXECUTE, why, e);
	}
	if ((st = km_authorize(ctx, KM_ACT_REQUEST_EXECUTE, target, e)) || (st = km_tx_begin(ctx, e)))
		return st;
	req_approval *ap = NULL;
	size_t n = 0;
	json_t *change = NULL, *d = json_object();
	if (!(st = load_all(ctx, id, &r, &ap, &n, e))) {
		json_object_set_new(d, "kind", json_string(km_request_kind_name(r.kind)));
		json_object_set_new(d, "target", json_string(r.object));
		json_object_set_new(d, "digest", json_string(r.digest));
		st = execute_checks(ctx, &r, ap, n, &change, d, e);
		if (!st)
			st = req_apply(ctx, &r, change, d, job_id, e);
		if (!st) {
			r.state = KM_RS_EXECUTED;
			r.decided = km_ctx_now(ctx);
			snprintf(r.job_id, sizeof r.job_id, "%s", job_id);
			st = req_row_save(ctx, &r, 0, d, e);
		}
	}
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_REQUEST_EXECUTE), obj, "ok", json_incref(d), e);
	int destroyed = !st && r.kind == KM_REQ_STATE &&
	                strcmp(json_string_value(json_object_get(change, "to")) ? json_string_value(json_object_get(change, "to")) : "",
	                       "destroyed") == 0;
	json_decref(d);
	json_decref(change);
	free(ap);
	req_row_clear(&r);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	if ((st = km_tx_commit(ctx, e)))
		return st;
	/* Destroyed material must not linger in the WAL either. */
	if (destroyed)
		sqlite3_wal_checkpoint_v2(ctx->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return KM_OK;
}

km_status km_request_execute(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16], job_id[KM_REQUEST_ID_MAX] = "";
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_EXECUTE, obj);
	km_status st = km_op_end(ctx, execute_impl(ctx, id ? id : "", obj, job_id, e), e);
	/* TODO(wt-job merge): the rotation's job runs here, with progress:
	 *     if (!st && job_id[0]) st = km_job_run(ctx, job_id, progress, pctx, e);
	 * (a killed run is resumed by `keyward job run` / `rotate --due'). */
	(void)progress, (void)pctx;
	return st;
}
