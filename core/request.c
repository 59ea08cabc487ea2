/*
 * request.c — opening requests: the canonical body, its digest, quorum and
 * expiry, and the one function per kind that checks and opens it.
 *
 * Opening changes nothing but the requests table: the change waits for its
 * quorum (request_decide.c).  Compromise is the one exception: it takes
 * effect at once and opens the emergency rotation.
 */
#include "request_int.h"
#include "lifecycle.h"
#include "kek.h"
#include "kek_int.h"
#include "cred.h"
#include "db.h"
#include "text.h"
#include "rowmac.h"
#include "user_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the body ---------------------------------------------------------- */

static json_t *risk_json(const km_risk *r)
{
	json_t *f = json_array();
	for (size_t i = 0; i < r->nfactors; i++)
		json_array_append_new(f, json_pack("{s:s,s:s,s:i}", "name", r->factors[i].name, "detail",
		                                   r->factors[i].detail, "points", r->factors[i].points));
	return json_pack("{s:i,s:s,s:o}", "score", r->score, "tier", r->tier, "factors", f);
}

/* One line a person reads in a list: what changes. */
static void summarise(km_request_kind kind, const json_t *c, uint64_t assets, char *buf, size_t cap)
{
	const char *key = json_string_value(json_object_get(c, "key"));
	const char *user = json_string_value(json_object_get(c, "user"));
	const char *roles = json_string_value(json_object_get(c, "roles"));
	const char *mode = json_string_value(json_object_get(c, "mode"));
	long long v = (long long)json_integer_value(json_object_get(c, "version"));
	long long from = (long long)json_integer_value(json_object_get(c, "from_version"));
	unsigned long long n = (unsigned long long)assets;
	switch (kind) {
	case KM_REQ_ROTATE:
		snprintf(buf, cap, "rotate %s: v%lld -> v%lld, %s %llu asset%s", key, from, from + 1,
		         mode ? mode : "rewrap", n, n == 1 ? "" : "s");
		break;
	case KM_REQ_EMERGENCY_ROTATE:
		snprintf(buf, cap, "emergency rotation of %s away from compromised v%lld, re-encrypt %llu asset%s",
		         key, v, n, n == 1 ? "" : "s");
		break;
	case KM_REQ_STATE:
		snprintf(buf, cap, "%s v%lld: %s -> %s", key, v, json_string_value(json_object_get(c, "from")),
		         json_string_value(json_object_get(c, "to")));
		break;
	case KM_REQ_DESTROY:
		snprintf(buf, cap, "destroy %s v%lld after the waiting period: %llu asset%s become unrecoverable",
		         key, v, n, n == 1 ? "" : "s");
		break;
	case KM_REQ_CANCEL_DESTROY:
		snprintf(buf, cap, "cancel the destruction of %s v%lld (back to retired)", key, v);
		break;
	case KM_REQ_ROLE_GRANT:
	case KM_REQ_ROLE_REVOKE:
		snprintf(buf, cap, "%s %s %s %s", kind == KM_REQ_ROLE_GRANT ? "grant" : "revoke", roles,
		         kind == KM_REQ_ROLE_GRANT ? "to" : "from", user);
		break;
	case KM_REQ_USER_ADD:
		snprintf(buf, cap, "enrol %s as %s", user, roles);
		break;
	case KM_REQ_POLICY: {
		/* policy.c's change: {"scope":S,"set":{field:value}}, empty set
		 * removes the policy at S. */
		const char *scope = json_string_value(json_object_get(c, "scope"));
		const char *sc = scope && *scope ? scope : "global";
		json_t *set = json_object_get(c, "set");
		if (!json_object_size(set)) {
			snprintf(buf, cap, "remove the %s policy (its keys inherit)", sc);
			break;
		}
		char *fields = json_dumps(set, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
		snprintf(buf, cap, "set the %s policy to %s", sc, fields ? fields : "?");
		free(fields);
		break;
	}
	default:
		snprintf(buf, cap, "%s %s", km_request_kind_name(kind),
		         json_string_value(json_object_get(c, "scope")) ? json_string_value(json_object_get(c, "scope")) : "");
		break;
	}
}

km_status request_open(km_ctx *ctx, km_request_kind kind, const char *object, json_t *change,
                       const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	const char *key = json_string_value(json_object_get(change, "key"));
	km_policy_effective pol;
	km_risk risk;
	uint64_t assets = 0;
	req_row r;
	memset(&r, 0, sizeof r);
	km_status st = km_text_check(reason ? reason : "", "the reason", e);
	if (!st && reason && strlen(reason) > KM_REQUEST_REASON_MAX)
		st = km_fail(e, KM_EINVAL, "the reason is %zu bytes long; the limit is %d", strlen(reason),
		             KM_REQUEST_REASON_MAX);
	if (!st)
		st = req_policy(ctx, key ? key : "", &pol, e);
	if (!st)
		st = req_risk(ctx, kind, change, &risk, &assets, e);
	if (!st)
		st = km_random_hex(r.id, 16, e);
	if (st)
		return st;
	r.kind = kind;
	r.state = KM_RS_PENDING;
	snprintf(r.requester, sizeof r.requester, "%s", ctx->actor.name);
	snprintf(r.object, sizeof r.object, "%s", object);
	summarise(kind, change, assets, r.summary, sizeof r.summary);
	r.quorum = (unsigned)pol.v[kind == KM_REQ_EMERGENCY_ROTATE ? KM_PF_EXPEDITED : KM_PF_QUORUM] +
	           (strcmp(risk.tier, "high") == 0);
	r.created = km_ctx_now(ctx);
	r.expires = r.created + pol.v[KM_PF_REQUEST_TTL] * 3600;
	json_t *body = json_pack("{s:O,s:I,s:s,s:I,s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:s,s:I,s:s}", "change", change,
	                         "created", (json_int_t)r.created, "deployment", ctx->deployment_id, "expires",
	                         (json_int_t)r.expires, "id", r.id, "kind", km_request_kind_name(kind), "object",
	                         object, "quorum", (int)r.quorum, "reason", reason ? reason : "", "requester",
	                         r.requester, "risk", risk_json(&risk), "summary", r.summary, "assets",
	                         (json_int_t)assets, "type", "keyward.request.v1");
	r.body = body ? json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(body);
	if (!r.body)
		return km_fail(e, KM_ENOMEM, "cannot build the request body");
	req_digest(r.body, r.digest, NULL);
	/* Recorded on the object it changes, so that a key's history
	 * (`audit tail --key`) shows its requests. */
	json_t *d = json_pack("{s:s,s:s,s:s,s:i,s:I,s:s,s:i}", "request", r.id, "kind", km_request_kind_name(kind),
	                      "digest", r.digest, "quorum", (int)r.quorum, "expires", (json_int_t)r.expires,
	                      "risk", risk.tier, "score", risk.score);
	if (!(st = km_tx_begin(ctx, e))) {
		st = req_row_save(ctx, &r, 1, d, e);
		if (!st)
			st = km_tx_audit(ctx, "request.open", object, "ok", json_incref(d), e);
		if (!st)
			st = km_tx_commit(ctx, e);
		else
			km_tx_rollback(ctx);
	}
	json_decref(d);
	if (!st)
		snprintf(id, KM_REQUEST_ID_MAX, "%s", r.id);
	req_row_clear(&r);
	return st;
}

/* ---- checks shared by the key kinds ----------------------------------- */

static void key_obj(char *buf, size_t cap, const char *key, uint32_t version)
{
	if (version)
		snprintf(buf, cap, "key:%s@%u", key, version);
	else
		snprintf(buf, cap, "key:%s", key);
}

/* A request of this kind for this object that is still open: opening a
 * second one would only split the approvers' signatures. */
static km_status refuse_duplicate(km_ctx *ctx, km_request_kind kind, const char *object, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT id FROM requests WHERE kind = ? AND object = ? AND "
	                             "state IN ('pending', 'approved') AND expires > ? LIMIT 1", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, km_request_kind_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, object, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, km_ctx_now(ctx));
	if (sqlite3_step(q) == SQLITE_ROW)
		st = km_fail(e, KM_EEXISTS, "request %s (%s of %s) is already open: approve or cancel it first",
		             (const char *)sqlite3_column_text(q, 0), km_request_kind_name(kind), object);
	sqlite3_finalize(q);
	return st;
}

/* Validate, authorise, check the version's state allows `to` now, refuse a
 * duplicate, then open.  to == KS_COUNT: a rotation (no version). */
static km_status open_key_request(km_ctx *ctx, km_request_kind kind, const char *key, uint32_t version,
                                  km_key_state to, const char *reason, json_t *change,
                                  char id[KM_REQUEST_ID_MAX], km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	km_status st = km_key_name_validate(key, e);
	if (st)
		return st;
	key_obj(obj, sizeof obj, key, version);
	if ((st = km_authorize(ctx, req_kind_action(kind), obj, e)))
		return st;
	kek_version_row row;
	if ((st = kek_version_load(ctx, key, version, &row, e)) && !(st == KM_ESTATE && !version))
		return st;
	if (st == KM_ESTATE) { /* rotation of a key with no active version */
		km_err_clear(e);
		row.version = 0;
		st = KM_OK;
	}
	if (to != KS_COUNT && (st = km_state_check_transition(row.state, to, e)))
		return st;
	/* Refused now rather than at execution: the approvers' signatures
	 * would be spent on a request that cannot run yet. */
	if (to == KS_DESTROY_SCHEDULED && (st = lifecycle_destroy_check(ctx, key, &row, km_ctx_now(ctx), e)))
		return st;
	if (to != KS_COUNT) {
		json_object_set_new(change, "version", json_integer((json_int_t)version));
		json_object_set_new(change, "from", json_string(km_state_name(row.state)));
		json_object_set_new(change, "to", json_string(km_state_name(to)));
	} else {
		json_object_set_new(change, "from_version", json_integer((json_int_t)row.version));
	}
	json_object_set_new(change, "key", json_string(key));
	if ((st = refuse_duplicate(ctx, kind, obj, e)))
		return st;
	return request_open(ctx, kind, obj, change, reason, id, e);
}

static km_status key_request(km_ctx *ctx, km_request_kind kind, const char *key, uint32_t version,
                             km_key_state to, const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_obj(obj, sizeof obj, key ? key : "", version);
	km_op_begin(ctx, req_kind_action(kind), obj);
	json_t *change = json_object();
	km_status st = KM_OK;
	if (kind == KM_REQ_ROTATE) {
		km_policy_effective pol;
		if (!(st = req_policy(ctx, key, &pol, e)))
			json_object_set_new(change, "mode", json_string(pol.v[KM_PF_MODE] ? "re-encrypt" : "rewrap"));
	}
	if (!st && kind != KM_REQ_ROTATE && version == 0)
		st = km_fail(e, KM_EUSAGE, "versions are numbered from 1");
	if (!st)
		st = open_key_request(ctx, kind, key, version, to, reason, change, id, e);
	json_decref(change);
	return km_op_end(ctx, st, e);
}

km_status km_request_rotate(km_ctx *ctx, const char *key, const char *reason, char id[KM_REQUEST_ID_MAX],
                            km_err *e)
{
	return key_request(ctx, KM_REQ_ROTATE, key, 0, KS_COUNT, reason, id, e);
}

km_status km_request_set_state(km_ctx *ctx, const char *key, uint32_t version, km_key_state to,
                           const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	static const char *const own_call[KS_COUNT] = {
		[KS_COMPROMISED] = "mark a version compromised with `key compromise` (km_key_compromise)",
		[KS_DESTROY_SCHEDULED] = "schedule destruction with `key destroy` (km_request_destroy)",
		[KS_DESTROYED] = "destruction happens when its waiting period ends (`rotate --due`)",
	};
	if ((unsigned)to < KS_COUNT && own_call[to])
		return km_fail(e, KM_EUSAGE, "%s", own_call[to]);
	return key_request(ctx, KM_REQ_STATE, key, version, to, reason, id, e);
}

km_status km_request_destroy(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                             char id[KM_REQUEST_ID_MAX], km_err *e)
{
	return key_request(ctx, KM_REQ_DESTROY, key, version, KS_DESTROY_SCHEDULED, reason, id, e);
}

km_status km_request_cancel_destroy(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                                    char id[KM_REQUEST_ID_MAX], km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	kek_version_row row;
	km_err ignored;
	/* Only a scheduled destruction can be cancelled (retired is also
	 * reachable from decrypt-only, which is not a cancellation). */
	if (key && version && kek_version_load(ctx, key, version, &row, &ignored) == KM_OK &&
	    row.state != KS_DESTROY_SCHEDULED) {
		key_obj(obj, sizeof obj, key, version);
		km_op_begin(ctx, KM_ACT_KEY_DESTROY, obj);
		return km_op_end(ctx, km_fail(e, KM_ESTATE, "version %u of '%s' is %s, not scheduled for destruction",
		                              version, key, km_state_name(row.state)), e);
	}
	return key_request(ctx, KM_REQ_CANCEL_DESTROY, key, version, KS_RETIRED, reason, id, e);
}

/* ---- compromise: at once, then the emergency rotation ----------------- */

static km_status compromise_impl(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                                 const char *obj, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	km_status st = km_key_name_validate(key, e);
	if (!st && version == 0)
		st = km_fail(e, KM_EUSAGE, "name the compromised version: KEY@VERSION");
	if (!st && (!reason || !*reason))
		st = km_fail(e, KM_EUSAGE, "a compromise needs a reason (--reason)");
	if (!st)
		st = km_text_check(reason, "the reason", e);
	if (!st)
		st = km_authorize(ctx, KM_ACT_KEY_COMPROMISE, obj, e);
	if (st || (st = km_tx_begin(ctx, e)))
		return st;
	json_t *d = json_pack("{s:s}", "reason", reason);
	st = lifecycle_set_state(ctx, key, version, KS_COMPROMISED, d, e);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_KEY_COMPROMISE), obj, "ok", json_incref(d), e);
	json_decref(d);
	if (!st)
		st = km_tx_commit(ctx, e);
	else
		km_tx_rollback(ctx);
	if (st)
		return st;
	json_t *change = json_pack("{s:s,s:i,s:s}", "key", key, "version", (int)version, "mode", "re-encrypt");
	st = request_open(ctx, KM_REQ_EMERGENCY_ROTATE, obj, change, reason, id, e);
	json_decref(change);
	if (st)
		km_wrap(e, "version %u of '%s' is marked compromised, but the emergency rotation could not be "
		        "opened; open it with `keyward key rotate %s`", version, key, key);
	return st;
}

km_status km_key_compromise(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                            char id[KM_REQUEST_ID_MAX], km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_obj(obj, sizeof obj, key ? key : "", version);
	km_op_begin(ctx, KM_ACT_KEY_COMPROMISE, obj);
	return km_op_end(ctx, compromise_impl(ctx, key, version, reason, obj, id, e), e);
}

/* ---- people ------------------------------------------------------------ */

static km_status role_impl(km_ctx *ctx, const char *user, unsigned roles, int grant, const char *reason,
                           const char *obj, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	km_status st = km_user_name_validate(user, e);
	if (st)
		return st;
	/* Before any step-up: nobody changes their own roles. */
	if (strcmp(user, ctx->actor.name) == 0)
		return km_authorize_deny(ctx, KM_ACT_USER_ROLE, "nobody may grant or revoke their own roles", e);
	if ((st = km_authorize(ctx, KM_ACT_USER_ROLE, obj, e)))
		return st;
	user_row u;
	if ((st = user_row_load(ctx, user, &u, e)))
		return st;
	unsigned after = grant ? (u.roles | roles) : (u.roles & ~roles);
	user_row_clear(&u);
	if ((st = km_roles_check_separation(after, e)))
		return st;
	char r[64];
	km_roles_format(roles, r, sizeof r);
	json_t *change = json_pack("{s:s,s:s}", "user", user, "roles", r);
	km_request_kind kind = grant ? KM_REQ_ROLE_GRANT : KM_REQ_ROLE_REVOKE;
	st = refuse_duplicate(ctx, kind, obj, e);
	if (!st)
		st = request_open(ctx, kind, obj, change, reason, id, e);
	json_decref(change);
	return st;
}

km_status km_request_role(km_ctx *ctx, const char *user, unsigned roles, int grant, const char *reason,
                          char id[KM_REQUEST_ID_MAX], km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", user ? user : "");
	km_op_begin(ctx, KM_ACT_USER_ROLE, obj);
	return km_op_end(ctx, role_impl(ctx, user, roles, grant, reason, obj, id, e), e);
}

/* Administrators other than the caller who could approve an enrolment. */
static km_status other_admins(km_ctx *ctx, int64_t *n, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT count(*) FROM users WHERE (roles & ?) <> 0 AND name <> ? "
	                             "AND disabled = 0 AND cred IS NOT NULL", &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, KM_ROLE_ADMIN);
	sqlite3_bind_text(q, 2, ctx->actor.name, -1, SQLITE_STATIC);
	*n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	sqlite3_finalize(q);
	return KM_OK;
}

/* The bootstrap enrolment: with no second administrator, nobody could
 * ever approve, so the sole one enrols at once (recorded as such). */
static km_status enrol_now(km_ctx *ctx, const char *name, unsigned roles, const char *scopes, json_t *cred,
                           const char *obj, km_err *e)
{
	user_row u = {.roles = roles, .created = km_ctx_now(ctx), .totp_step = -1};
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.created_by, sizeof u.created_by, "%s", ctx->actor.name);
	snprintf(u.scopes, sizeof u.scopes, "%s", scopes ? scopes : "");
	u.cred = cred ? json_incref(cred) : NULL;
	char r[64], digest[65], pub_hex[2 * KM_CRED_PUBKEY_BYTES + 1] = "";
	uint8_t pub[KM_CRED_PUBKEY_BYTES];
	km_roles_format(roles, r, sizeof r);
	if (cred && km_cred_public_key(cred, pub, e) == KM_OK)
		req_hex_encode(pub, sizeof pub, pub_hex);
	json_t *d = json_pack("{s:s,s:s,s:b}", "roles", r, "scopes", u.scopes, "bootstrap", 1);
	if (pub_hex[0])
		json_object_set_new(d, "signing_key", json_string(pub_hex));
	km_status st = km_tx_begin(ctx, e);
	if (!st && !(st = user_row_save(ctx, &u, 1, digest, e))) {
		km_sealed_note(d, "users", u.name, digest);
		st = km_tx_audit(ctx, km_action_name(KM_ACT_USER_ADD), obj, "ok", json_incref(d), e);
	}
	if (!st)
		st = km_tx_commit(ctx, e);
	else
		km_tx_rollback(ctx);
	json_decref(d);
	user_row_clear(&u);
	return st;
}

static km_status user_add_impl(km_ctx *ctx, const char *name, unsigned roles, const char *scopes,
                               const char *passphrase, const char *reason, const char *obj,
                               char id[KM_REQUEST_ID_MAX], km_err *e)
{
	km_status st = km_user_name_validate(name, e);
	if (!st)
		st = km_roles_check_separation(roles, e);
	if (!st && scopes && *scopes)
		st = km_scopes_validate(scopes, e);
	if (!st && (roles & KM_ROLE_SERVICE) && !(scopes && *scopes))
		st = km_fail(e, KM_EUSAGE, "a service needs scopes: the key-name prefixes it may use "
		             "(--scope features/)");
	if (!st)
		st = km_authorize(ctx, KM_ACT_USER_ADD, obj, e);
	user_row existing;
	km_err ignored;
	if (!st && user_row_load(ctx, name, &existing, &ignored) != KM_ENOTFOUND) {
		user_row_clear(&existing);
		st = km_fail(e, KM_EEXISTS, "user '%s' exists already", name);
	}
	if (st)
		return st;
	/* The credential record is made now, from the passphrase the person
	 * chose; it holds only the Argon2id verifier and sealed secrets. */
	json_t *cred = NULL;
	if (passphrase) {
		km_cred_params p = km_cred_params_default();
		p.t_cost = ctx->cfg.argon2_t;
		p.m_cost_kib = ctx->cfg.argon2_m_kib;
		if ((st = km_cred_create(name, passphrase, &p, &cred, e)))
			return st;
	}
	int64_t admins = 0;
	char r[64];
	km_roles_format(roles, r, sizeof r);
	st = other_admins(ctx, &admins, e);
	if (!st && admins == 0) {
		id[0] = '\0';
		st = enrol_now(ctx, name, roles, scopes, cred, obj, e);
	} else if (!st) {
		json_t *change = json_pack("{s:s,s:s,s:s,s:O?}", "user", name, "roles", r, "scopes", scopes ? scopes : "",
		                           "credential", cred);
		st = refuse_duplicate(ctx, KM_REQ_USER_ADD, obj, e);
		if (!st)
			st = request_open(ctx, KM_REQ_USER_ADD, obj, change, reason, id, e);
		json_decref(change);
	}
	json_decref(cred);
	return st;
}

km_status km_request_user_add(km_ctx *ctx, const char *name, unsigned roles, const char *scopes,
                              const char *passphrase, const char *reason, char id[KM_REQUEST_ID_MAX],
                              km_err *e)
{
	char obj[80];
	snprintf(obj, sizeof obj, "user:%.63s", name ? name : "");
	km_op_begin(ctx, KM_ACT_USER_ADD, obj);
	return km_op_end(ctx, user_add_impl(ctx, name, roles, scopes, passphrase, reason, obj, id, e), e);
}
