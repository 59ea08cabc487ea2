/*
 * request_apply.c — what an executed request does, and whether one
 * approval still counts at execution.
 *
 * Everything here runs inside the executor's transaction, after the
 * request's seal, state, expiry and digest were checked: the change, the
 * request's new state and the one audit event commit together.
 */
#include "request_int.h"
#include "lifecycle.h"
#include "cred.h"
#include "rowmac.h"
#include "user_int.h"

#include <stdio.h>
#include <string.h>

int req_approval_valid(km_ctx *ctx, const req_row *r, const req_approval *a, char *problem, size_t cap)
{
	problem[0] = '\0';
	if (!a->approve) {
		snprintf(problem, cap, "a rejection, not an approval");
		return 0;
	}
	if (strcmp(a->approver, r->requester) == 0) {
		snprintf(problem, cap, "%s opened the request and cannot approve it", a->approver);
		return 0;
	}
	user_row u;
	km_err e;
	if (user_row_load(ctx, a->approver, &u, &e) != KM_OK) {
		snprintf(problem, cap, "%.120s", e.msg);
		return 0;
	}
	char keybuf[160], why[160];
	const char *key = req_object_key(r->object, keybuf, sizeof keybuf);
	uint8_t pub[KM_CRED_PUBKEY_BYTES], sig[KM_CRED_SIG_BYTES], digest[32];
	char hex[65];
	req_digest(r->body, hex, digest);
	int ok = 0;
	if (!(u.roles & req_kind_roles(r->kind))) {
		char need[64];
		km_roles_format(req_kind_roles(r->kind), need, sizeof need);
		snprintf(problem, cap, "%s no longer holds the role %s", u.name, need);
	} else if (user_row_locked(&u, km_ctx_now(ctx), why, sizeof why)) {
		snprintf(problem, cap, "%.120s", why);
	} else if (key && u.scopes[0] && !km_scope_contains(u.scopes, key)) {
		snprintf(problem, cap, "'%.60s' is outside %s's scopes (%.40s)", key, u.name, u.scopes);
	} else if (!u.cred || km_cred_public_key(u.cred, pub, &e) != KM_OK) {
		snprintf(problem, cap, "%s has no signing key", u.name);
	} else if (req_hex_decode(a->signature, sig, sizeof sig) != 0 ||
	           km_cred_verify(pub, digest, sizeof digest, sig, &e) != KM_OK) {
		snprintf(problem, cap, "%s's signature does not verify against %s's public key over the digest",
		         u.name, u.name);
	} else {
		ok = 1;
	}
	user_row_clear(&u);
	return ok;
}

unsigned req_count_valid(km_ctx *ctx, const req_row *r, const req_approval *a, size_t n, char *problem,
                         size_t cap)
{
	unsigned valid = 0;
	problem[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char why[128];
		int twice = 0;
		for (size_t j = 0; j < i; j++)
			twice |= strcmp(a[j].approver, a[i].approver) == 0;
		if (twice) { /* one person counts once, whatever the rows say */
			snprintf(why, sizeof why, "%s signed more than once", a[i].approver);
		} else if (req_approval_valid(ctx, r, &a[i], why, sizeof why)) {
			valid++;
			continue;
		}
		if (a[i].approve && !problem[0])
			snprintf(problem, cap, "%s", why);
	}
	return valid;
}

static km_status apply_roles(km_ctx *ctx, const req_row *r, const json_t *change, int grant, json_t *details,
                             km_err *e)
{
	const char *name = json_string_value(json_object_get(change, "user"));
	unsigned roles = 0;
	km_status st = km_roles_parse(json_string_value(json_object_get(change, "roles")), &roles, e);
	if (st)
		return st;
	if (!name)
		return km_fail(e, KM_EINVAL, "request '%s' names no user", r->id);
	/* Never one's own roles, whoever carries the request out. */
	if (strcmp(name, r->requester) == 0 || strcmp(name, ctx->actor.name) == 0)
		return km_fail(e, KM_EDENIED, "%s cannot change their own roles", name);
	user_row u;
	if ((st = user_row_load(ctx, name, &u, e)))
		return st;
	unsigned before = u.roles;
	u.roles = grant ? (u.roles | roles) : (u.roles & ~roles);
	if (u.roles == 0)
		st = km_fail(e, KM_EUSAGE, "revoking %s would leave %s with no role; lock the user instead",
		             json_string_value(json_object_get(change, "roles")), name);
	if (!st)
		st = km_roles_check_separation(u.roles, e);
	char digest[65], was[64], now[64];
	if (!st)
		st = user_row_save(ctx, &u, 0, digest, e);
	if (!st) {
		km_roles_format(before, was, sizeof was);
		km_roles_format(u.roles, now, sizeof now);
		km_sealed_note(details, "users", u.name, digest);
		json_object_set_new(details, "user", json_string(u.name));
		json_object_set_new(details, "roles_before", json_string(was));
		json_object_set_new(details, "roles_after", json_string(now));
	}
	user_row_clear(&u);
	return st;
}

static km_status apply_user_add(km_ctx *ctx, const req_row *r, const json_t *change, json_t *details, km_err *e)
{
	const char *name = json_string_value(json_object_get(change, "user"));
	const char *scopes = json_string_value(json_object_get(change, "scopes"));
	json_t *cred = json_object_get(change, "credential");
	user_row u = {.created = km_ctx_now(ctx), .totp_step = -1};
	km_status st = km_user_name_validate(name, e);
	if (!st)
		st = km_roles_parse(json_string_value(json_object_get(change, "roles")), &u.roles, e);
	if (!st)
		st = km_roles_check_separation(u.roles, e);
	if (!st && cred && !json_is_null(cred))
		st = km_cred_record_check(name, cred, e);
	if (st)
		return st;
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.created_by, sizeof u.created_by, "%s", r->requester);
	snprintf(u.scopes, sizeof u.scopes, "%s", scopes ? scopes : "");
	u.cred = cred && !json_is_null(cred) ? json_deep_copy(cred) : NULL;
	char digest[65];
	st = user_row_save(ctx, &u, 1, digest, e);
	if (!st) {
		km_sealed_note(details, "users", u.name, digest);
		json_object_set_new(details, "user", json_string(u.name));
	}
	user_row_clear(&u);
	return st;
}

km_status req_apply(km_ctx *ctx, const req_row *r, const json_t *change, json_t *details,
                    char job_id[KM_REQUEST_ID_MAX], km_err *e)
{
	const char *key = json_string_value(json_object_get(change, "key"));
	uint32_t version = (uint32_t)json_integer_value(json_object_get(change, "version"));
	const char *mode = json_string_value(json_object_get(change, "mode"));
	km_key_state to = KS_PENDING;
	uint32_t nv = 0;
	job_id[0] = '\0';
	switch (r->kind) {
	case KM_REQ_ROTATE:
	case KM_REQ_EMERGENCY_ROTATE:
		return lifecycle_rotate(ctx, key, mode && strcmp(mode, "re-encrypt") == 0, r->id, &nv, job_id, details, e);
	case KM_REQ_STATE: {
		km_status st = km_state_parse(json_string_value(json_object_get(change, "to")), &to, e);
		return st ? st : lifecycle_set_state(ctx, key, version, to, details, e);
	}
	case KM_REQ_DESTROY:
		return lifecycle_set_state(ctx, key, version, KS_DESTROY_SCHEDULED, details, e);
	case KM_REQ_CANCEL_DESTROY:
		return lifecycle_set_state(ctx, key, version, KS_RETIRED, details, e);
	case KM_REQ_POLICY:
		return policy_apply(ctx, change, details, e);
	case KM_REQ_ROLE_GRANT:
	case KM_REQ_ROLE_REVOKE:
		return apply_roles(ctx, r, change, r->kind == KM_REQ_ROLE_GRANT, details, e);
	case KM_REQ_USER_ADD:
		return apply_user_add(ctx, r, change, details, e);
	default:
		return km_fail(e, KM_EINTERNAL, "request '%s' has a kind nothing applies", r->id);
	}
}
