/*
 * policy.c — rotation policies: parsing, the sealed policies table, the
 * effective policy of a key, and the request that changes one.
 *
 * A policy row is (scope, body, created, created_by, mac): body is the
 * canonical JSON of the fields the policy sets ({"cadence_days":30}, keys
 * sorted, no spaces), and mac the HSM MAC over the other four (rowmac.h).
 * Nothing here changes a policy on the spot: km_policy_propose opens a
 * request, and policy_apply runs when that request executes.
 */
#include "policy.h"
#include "db.h"
#include "kek.h"
#include "lifecycle.h"
#include "request.h"
#include "rowmac.h"
#include "schedule_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fields ------------------------------------------------------- */

static const struct {
	const char *name;
	int64_t def, min, max;
	const char *help;
} fields[KM_PF_COUNT] = {
#define PF_ROW(e, name, def, min, max, help) [e] = {name, (int64_t)(def), (int64_t)(min), (int64_t)(max), help},
	KM_POLICY_FIELDS(PF_ROW)
#undef PF_ROW
};

const char *km_policy_field_name(km_policy_field f)
{
	return (unsigned)f < KM_PF_COUNT ? fields[f].name : "unknown";
}

static void field_list(char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < KM_PF_COUNT && used < cap; i++) {
		int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", fields[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

km_status km_policy_field_parse(const char *name, km_policy_field *out, km_err *e)
{
	for (int i = 0; i < KM_PF_COUNT; i++) {
		if (name && strcmp(name, fields[i].name) == 0) {
			*out = (km_policy_field)i;
			return KM_OK;
		}
	}
	char list[512];
	field_list(list, sizeof list);
	return km_fail(e, KM_EINVAL, "unknown policy field '%.64s'; the fields are %s", name ? name : "", list);
}

static km_status field_check(km_policy_field f, int64_t v, km_err *e)
{
	if (v < fields[f].min || v > fields[f].max)
		return km_fail(e, KM_EINVAL, "%s=%lld is out of range: %s must be %lld to %lld (%s)", fields[f].name,
		               (long long)v, fields[f].name, (long long)fields[f].min, (long long)fields[f].max,
		               fields[f].help);
	return KM_OK;
}

km_status km_policy_set_parse(km_policy *p, const char *kv, km_err *e)
{
	const char *eq = kv ? strchr(kv, '=') : NULL;
	if (!eq || eq == kv)
		return km_fail(e, KM_EINVAL, "'%.64s' must be written field=value, e.g. cadence_days=30", kv ? kv : "");
	char name[64];
	if ((size_t)(eq - kv) >= sizeof name)
		return km_fail(e, KM_EINVAL, "unknown policy field '%.*s'", 40, kv);
	memcpy(name, kv, (size_t)(eq - kv));
	name[eq - kv] = '\0';
	km_policy_field f;
	km_status st = km_policy_field_parse(name, &f, e);
	if (st)
		return st;
	/* Digits only: no sign, no spaces, no hex, no trailing text. */
	const char *s = eq + 1;
	size_t n = strspn(s, "0123456789");
	if (n == 0 || s[n] != '\0' || n > 18)
		return km_fail(e, KM_EINVAL, "%s='%.32s' is not a whole number; %s must be %lld to %lld (%s)", name, s,
		               name, (long long)fields[f].min, (long long)fields[f].max, fields[f].help);
	int64_t v = strtoll(s, NULL, 10);
	if ((st = field_check(f, v, e)))
		return st;
	p->v[f] = v;
	p->set |= 1u << f;
	return KM_OK;
}

/* ---- scopes ----------------------------------------------------------- */

static km_status scope_validate(const char *scope, km_err *e)
{
	size_t n = scope ? strlen(scope) : 0;
	if (n == 0)
		return KM_OK;
	if (n > KM_POLICY_SCOPE_MAX)
		return km_fail(e, KM_EINVAL, "policy scope is %zu characters long; the limit is %d", n,
		               KM_POLICY_SCOPE_MAX);
	if (scope[n - 1] != '/')
		return km_key_name_validate(scope, e);
	char name[KM_POLICY_SCOPE_MAX + 1];
	memcpy(name, scope, n - 1);
	name[n - 1] = '\0';
	if (n == 1)
		return km_fail(e, KM_EINVAL, "policy scope '/' names nothing; the global policy's scope is \"\"");
	km_status st = km_key_name_validate(name, e);
	return st ? km_wrap(e, "policy prefix '%s'", scope) : KM_OK;
}

int policy_scope_covers(const char *scope, const char *key)
{
	size_t n = strlen(scope);
	if (n == 0)
		return 1;
	if (scope[n - 1] == '/')
		return strncmp(key, scope, n) == 0;
	return strcmp(key, scope) == 0;
}

static const char *scope_source(const char *scope) { return scope[0] ? scope : "global"; }

/* ---- bodies ----------------------------------------------------------- */

static json_t *body_json(const km_policy *p)
{
	json_t *o = json_object();
	for (int i = 0; i < KM_PF_COUNT; i++)
		if (p->set & (1u << i))
			json_object_set_new(o, fields[i].name, json_integer((json_int_t)p->v[i]));
	return o;
}

static char *body_text(const km_policy *p)
{
	json_t *o = body_json(p);
	char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(o);
	return t;
}

/* Fields from a JSON object ({"quorum":2}); every member must be a known
 * field with a value in its range. */
static km_status body_parse_json(const json_t *o, km_policy *p, km_err *e)
{
	if (!json_is_object(o))
		return km_fail(e, KM_EINVAL, "a policy body must be a JSON object of fields");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		km_policy_field f;
		km_status st = km_policy_field_parse(k, &f, e);
		if (st)
			return st;
		if (!json_is_integer(v))
			return km_fail(e, KM_EINVAL, "policy field %s must be a whole number", k);
		if ((st = field_check(f, (int64_t)json_integer_value(v), e)))
			return st;
		p->v[f] = (int64_t)json_integer_value(v);
		p->set |= 1u << f;
	}
	return KM_OK;
}

/* ---- the sealed row --------------------------------------------------- */

#define POLICY_COLS "scope, body, created, created_by, mac"

static json_t *policy_fields(sqlite3_stmt *q)
{
	return json_pack("[s,s,I,s]", (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
	                 (json_int_t)sqlite3_column_int64(q, 2), (const char *)sqlite3_column_text(q, 3));
}

static void policy_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	const char *s = (const char *)sqlite3_column_text(q, 0);
	snprintf(buf, cap, "'%s'", s && *s ? s : "(global)");
}

static void policy_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(q, 0));
}

km_status policy_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                             char *problem, size_t cap, km_err *e)
{
	static const km_rowmac_table t = {
		"policies", "SELECT " POLICY_COLS " FROM policies ORDER BY scope", policy_fields, policy_name, 4,
		policy_key, policy_fields,
	};
	return km_rowmac_scan(ctx, &t, recorded, checked, bad, problem, cap, e);
}

/* The row as one string, MAC included: a row identical to one whose seal
 * held this session needs no second HSM call. */
static char *row_fingerprint(sqlite3_stmt *q)
{
	json_t *f = policy_fields(q);
	json_t *mac = km_rowmac_blob(sqlite3_column_blob(q, 4), (size_t)sqlite3_column_bytes(q, 4));
	char *t = NULL;
	if (f && mac) {
		json_array_append(f, mac);
		t = json_dumps(f, JSON_COMPACT | JSON_ENSURE_ASCII);
	}
	json_decref(f);
	json_decref(mac);
	return t;
}

/* Check the row under q and parse it into p. */
static km_status row_load(km_ctx *ctx, sqlite3_stmt *q, km_policy *p, km_err *e)
{
	memset(p, 0, sizeof *p);
	const char *scope = (const char *)sqlite3_column_text(q, 0);
	snprintf(p->scope, sizeof p->scope, "%s", scope ? scope : "");
	char *fp = row_fingerprint(q);
	const char *seen = fp ? json_string_value(json_object_get(ctx->policy_verified, p->scope)) : NULL;
	km_status st = KM_OK;
	if (!seen || strcmp(seen, fp) != 0) {
		char what[KM_POLICY_SCOPE_MAX + 16];
		policy_name(q, what, sizeof what);
		st = km_rowmac_check(ctx, "policies", what, policy_fields(q), sqlite3_column_blob(q, 4),
		                     (size_t)sqlite3_column_bytes(q, 4), e);
		if (!st && fp) {
			if (!ctx->policy_verified)
				ctx->policy_verified = json_object();
			json_object_set_new(ctx->policy_verified, p->scope, json_string(fp));
		}
	}
	free(fp);
	if (st)
		return st;
	json_t *o = json_loads((const char *)sqlite3_column_text(q, 1), 0, NULL);
	st = body_parse_json(o, p, e);
	json_decref(o);
	return st ? km_wrap(e, "the stored policy '%s'", scope_source(p->scope)) : KM_OK;
}

/* Least specific first: global, prefixes (shorter first), keys. */
static int specificity(const km_policy *p)
{
	size_t n = strlen(p->scope);
	if (n == 0)
		return 0;
	return p->scope[n - 1] == '/' ? 1 + (int)n : 1000;
}

static int policy_cmp(const void *a, const void *b)
{
	const km_policy *x = a, *y = b;
	int sx = specificity(x), sy = specificity(y);
	return sx != sy ? (sx < sy ? -1 : 1) : strcmp(x->scope, y->scope);
}

km_status policy_load_all(km_ctx *ctx, km_policy **list, size_t *n, km_err *e)
{
	*list = NULL;
	*n = 0;
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT " POLICY_COLS " FROM policies", &q, e);
	if (st)
		return st;
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			km_policy *grown = realloc(*list, cap * sizeof **list);
			if (!grown) {
				st = km_fail(e, KM_ENOMEM, "out of memory for policies");
				break;
			}
			*list = grown;
		}
		if ((st = row_load(ctx, q, &(*list)[*n], e)))
			break;
		(*n)++;
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading policies");
	sqlite3_finalize(q);
	if (st) {
		free(*list);
		*list = NULL;
		*n = 0;
		return st;
	}
	if (*n > 1)
		qsort(*list, *n, sizeof **list, policy_cmp);
	return KM_OK;
}

void policy_effective_from(const km_policy *list, size_t n, const char *key, km_policy_effective *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->key, sizeof out->key, "%s", key);
	for (int f = 0; f < KM_PF_COUNT; f++) {
		out->v[f] = fields[f].def;
		snprintf(out->source[f], sizeof out->source[f], "default");
	}
	/* The list runs from least to most specific: a later policy that sets
	 * a field overrides an earlier one, field by field. */
	for (size_t i = 0; i < n; i++) {
		if (!policy_scope_covers(list[i].scope, key))
			continue;
		for (int f = 0; f < KM_PF_COUNT; f++) {
			if (list[i].set & (1u << f)) {
				out->v[f] = list[i].v[f];
				snprintf(out->source[f], sizeof out->source[f], "%s", scope_source(list[i].scope));
			}
		}
	}
}

/* ---- reads ------------------------------------------------------------ */

static km_status effective_get_impl(km_ctx *ctx, const char *key, km_policy_effective *out, km_err *e)
{
	char obj[KM_POLICY_SCOPE_MAX + 16];
	snprintf(obj, sizeof obj, "key:%s", key ? key : "");
	km_status st = km_authorize(ctx, KM_ACT_POLICY_READ, obj, e);
	if (!st)
		st = km_key_name_validate(key, e);
	km_policy *list;
	size_t n;
	if (!st)
		st = policy_load_all(ctx, &list, &n, e);
	if (st)
		return st;
	policy_effective_from(list, n, key, out);
	free(list);
	return KM_OK;
}

km_status km_policy_effective_get(km_ctx *ctx, const char *key, km_policy_effective *out, km_err *e)
{
	char obj[KM_POLICY_SCOPE_MAX + 16];
	snprintf(obj, sizeof obj, "policy:%.128s", key ? key : "");
	km_op_begin(ctx, KM_ACT_POLICY_READ, obj);
	return km_op_end(ctx, effective_get_impl(ctx, key, out, e), e);
}

static km_status list_impl(km_ctx *ctx, int (*cb)(void *c, const km_policy *p), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_POLICY_READ, NULL, e);
	km_policy *list;
	size_t n;
	if (!st)
		st = policy_load_all(ctx, &list, &n, e);
	if (st)
		return st;
	/* Global first, then by scope. */
	for (size_t i = 0; i < n; i++)
		if (!list[i].scope[0] && cb(cbctx, &list[i]))
			goto done;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(list[j].scope, list[i].scope) < 0) {
				km_policy t = list[i];
				list[i] = list[j];
				list[j] = t;
			}
	for (size_t i = 0; i < n; i++)
		if (list[i].scope[0] && cb(cbctx, &list[i]))
			break;
done:
	free(list);
	return KM_OK;
}

km_status km_policy_list(km_ctx *ctx, int (*cb)(void *c, const km_policy *p), void *cbctx, km_err *e)
{
	km_op_begin(ctx, KM_ACT_POLICY_READ, "policy:*");
	return km_op_end(ctx, list_impl(ctx, cb, cbctx, e), e);
}

/* The stored policy at exactly `scope`, checked; *found 0 when none. */
static km_status policy_get(km_ctx *ctx, const char *scope, km_policy *p, int *found, km_err *e)
{
	sqlite3_stmt *q;
	*found = 0;
	km_status st = km_db_prepare(ctx->db, "SELECT " POLICY_COLS " FROM policies WHERE scope = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, scope, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		st = row_load(ctx, q, p, e);
		*found = !st;
	} else if (rc != SQLITE_DONE) {
		st = km_db_fail(ctx->db, e, "reading policies");
	}
	sqlite3_finalize(q);
	return st;
}

/* ---- changes ---------------------------------------------------------- */

static km_status policy_check(const km_policy *p, km_err *e)
{
	if (p->set >> KM_PF_COUNT)
		return km_fail(e, KM_EINVAL, "the policy sets fields that do not exist");
	for (int f = 0; f < KM_PF_COUNT; f++) {
		km_status st = (p->set & (1u << f)) ? field_check((km_policy_field)f, p->v[f], e) : KM_OK;
		if (st)
			return st;
	}
	return KM_OK;
}

static km_status propose_impl(km_ctx *ctx, const km_policy *p, const char *obj, const char *reason,
                              char id[40], km_err *e)
{
	km_status st = scope_validate(p->scope, e);
	if (st)
		return st;
	if ((st = km_authorize(ctx, KM_ACT_POLICY_SET, obj, e)))
		return st;
	/* Whose policy it is (policy.h): the deployment-wide one is the
	 * administrator's; a key's or a prefix's belongs with the keys. */
	if (!p->scope[0] && !(ctx->actor.roles & KM_ROLE_ADMIN))
		return km_authorize_deny(ctx, KM_ACT_POLICY_SET, "the global policy is the administrator's; "
		                         "propose a policy for a key or a prefix (ending in '/') instead", e);
	if (p->scope[0] && !(ctx->actor.roles & KM_ROLE_OFFICER))
		return km_authorize_deny(ctx, KM_ACT_POLICY_SET, "policies of keys and prefixes are the "
		                         "officers'; an administrator sets only the global policy", e);
	if ((st = policy_check(p, e)))
		return st;
	km_policy cur;
	int found;
	if ((st = policy_get(ctx, p->scope, &cur, &found, e)))
		return st;
	if (!p->set && !found)
		return km_fail(e, KM_ENOTFOUND, "there is no %s policy to remove", p->scope[0] ? p->scope : "global");
	if (found && cur.set == p->set && memcmp(cur.v, p->v, sizeof cur.v) == 0)
		return km_fail(e, KM_EEXISTS, "the %s policy is already exactly this", scope_source(p->scope));
	/* {"scope":S,"set":{fields}}; an empty set removes the policy. */
	json_t *change = json_pack("{s:s,s:o}", "scope", p->scope, "set", body_json(p));
	if (!change)
		return km_fail(e, KM_ENOMEM, "out of memory");
	st = request_open(ctx, KM_REQ_POLICY, obj, change, reason ? reason : "", id, e);
	json_decref(change);
	return st;
}

km_status km_policy_propose(km_ctx *ctx, const km_policy *p, const char *reason, char id[40], km_err *e)
{
	char obj[KM_POLICY_SCOPE_MAX + 16];
	snprintf(obj, sizeof obj, "policy:%.128s", p ? p->scope : "");
	km_op_begin(ctx, KM_ACT_POLICY_SET, obj);
	if (!p)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "no policy given"), e);
	return km_op_end(ctx, propose_impl(ctx, p, obj, reason, id, e), e);
}

static km_status row_write(km_ctx *ctx, const km_policy *p, char digest[65], km_err *e)
{
	char *body = body_text(p);
	if (!body)
		return km_fail(e, KM_ENOMEM, "out of memory");
	int64_t now = km_ctx_now(ctx);
	json_t *f = json_pack("[s,s,I,s]", p->scope, body, (json_int_t)now, ctx->actor.name);
	uint8_t mac[KM_ROWMAC_BYTES];
	km_rowmac_digest(ctx, "policies", f, digest);
	km_status st = km_rowmac(ctx, "policies", f, mac, e);
	sqlite3_stmt *q = NULL;
	if (!st)
		st = km_db_prepare(ctx->db, "INSERT INTO policies(scope, body, created, created_by, mac) "
		                   "VALUES(?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET body = excluded.body, "
		                   "created = excluded.created, created_by = excluded.created_by, mac = excluded.mac",
		                   &q, e);
	if (!st) {
		sqlite3_bind_text(q, 1, p->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, body, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, now);
		sqlite3_bind_text(q, 4, ctx->actor.name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q, 5, mac, sizeof mac, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "writing the policy");
		sqlite3_finalize(q);
	}
	free(body);
	return st;
}

km_status policy_apply(km_ctx *ctx, const json_t *change, json_t *details, km_err *e)
{
	const char *scope = json_string_value(json_object_get(change, "scope"));
	if (!scope)
		return km_fail(e, KM_EINVAL, "a policy change names no scope");
	km_policy p;
	memset(&p, 0, sizeof p);
	km_status st = scope_validate(scope, e);
	if (!st)
		st = body_parse_json(json_object_get(change, "set"), &p, e);
	if (st)
		return st;
	snprintf(p.scope, sizeof p.scope, "%s", scope);
	km_policy cur;
	int found;
	/* The row it replaces goes through its seal too: an edited row is
	 * never laundered into a sealed one. */
	if ((st = policy_get(ctx, scope, &cur, &found, e)))
		return st;
	char digest[65] = "removed";
	if (p.set) {
		st = row_write(ctx, &p, digest, e);
	} else if (!found) {
		st = km_fail(e, KM_ENOTFOUND, "there is no %s policy to remove", scope[0] ? scope : "global");
	} else {
		sqlite3_stmt *q;
		if (!(st = km_db_prepare(ctx->db, "DELETE FROM policies WHERE scope = ?", &q, e))) {
			sqlite3_bind_text(q, 1, scope, -1, SQLITE_STATIC);
			if (sqlite3_step(q) != SQLITE_DONE)
				st = km_db_fail(ctx->db, e, "removing the policy");
			sqlite3_finalize(q);
		}
	}
	if (st)
		return st;
	json_object_del(ctx->policy_verified, scope);
	km_policy *list;
	size_t n;
	uint64_t keys = 0;
	if (!(st = policy_load_all(ctx, &list, &n, e))) {
		st = schedule_scope_recompute(ctx, scope, list, n, &keys, e);
		free(list);
	}
	if (st)
		return st;
	if (details) {
		json_object_set_new(details, "scope", json_string(scope));
		json_object_set_new(details, "policy", p.set ? body_json(&p) : json_null());
		json_object_set_new(details, "previous", found ? body_json(&cur) : json_null());
		json_object_set_new(details, "keys_recomputed", json_integer((json_int_t)keys));
		km_sealed_note(details, "policies", scope, digest);
	}
	return KM_OK;
}
