/*
 * request_risk.c — why a request is risky, in factors a person can read,
 * and the policy inputs (quorum, expiry, TOTP) a request is opened with.
 *
 * Points per factor (the tier is the sum: high >= 5 adds one approver,
 * medium >= 3):
 *   assets       assets under the affected versions: 1..99 -> 1,
 *                100..9,999 -> 2, 10,000 or more -> 3
 *   sensitivity  the key's "sensitivity" tag: high 4, medium 1
 *   age          the current version older than the cadence 1, twice 2
 *   usage        wraps of the current version: 50 % of the bound 1, 90 % 2
 *   compromise   a compromised version of the key 4
 *   downstream   models and endpoints downstream of the affected versions in
 *                the lineage graph (lineage.h): 1..9 -> 1, 10 or more -> 2
 *   privilege    role grants and enrolments: admin or officer 3
 * so a high-sensitivity key that protects anything needs one more
 * approver than its policy says, as does any key with a compromise.
 */
#include "request_int.h"
#include "kek.h"
#include "kek_int.h"
#include "db.h"
#include "schedule_int.h"
#include "lineage_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

km_status req_policy(km_ctx *ctx, const char *key, km_policy_effective *out, km_err *e)
{
	/* The stored policies through their seals (policy.c), without a
	 * second authorisation: the caller authorised the request. */
	km_policy *list;
	size_t n;
	km_status st = policy_load_all(ctx, &list, &n, e);
	if (st)
		return st;
	policy_effective_from(list, n, key ? key : "", out);
	free(list);
	return KM_OK;
}

static void factor(km_risk *r, const char *name, int points, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void factor(km_risk *r, const char *name, int points, const char *fmt, ...)
{
	if (r->nfactors >= KM_RISK_FACTORS_MAX)
		return;
	km_risk_factor *f = &r->factors[r->nfactors++];
	snprintf(f->name, sizeof f->name, "%s", name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof f->detail, fmt, ap);
	va_end(ap);
	f->points = points;
	r->score += points;
}

static km_status int_query(km_ctx *ctx, const char *sql, int64_t key_id, int64_t v, int64_t *out, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, sql, &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	sqlite3_bind_int64(q, 2, v);
	int rc = sqlite3_step(q);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading for the risk score");
	sqlite3_finalize(q);
	return st;
}

static km_status key_factors(km_ctx *ctx, km_request_kind kind, const char *key, uint32_t version,
                             km_risk *r, uint64_t *assets, km_err *e)
{
	int64_t id, n = 0, compromised = 0, activated = 0, wraps = 0;
	km_status st = kek_lookup_id(ctx, key, &id, e);
	if (st)
		return st;
	/* Affected versions: the one named, else every version still live. */
	st = version ? int_query(ctx, "SELECT count(*) FROM assets WHERE key_id = ?1 AND kek_version = ?2", id,
	                         version, &n, e)
	             : int_query(ctx, "SELECT count(*) FROM assets a JOIN key_versions v ON v.key_id = a.key_id "
	                         "AND v.version = a.kek_version WHERE a.key_id = ?1 AND v.state <> 'destroyed' "
	                         "AND ?2 = ?2", id, 0, &n, e);
	if (!st)
		st = int_query(ctx, "SELECT count(*) FROM key_versions WHERE key_id = ?1 AND state = 'compromised' "
		               "AND ?2 = ?2", id, 0, &compromised, e);
	if (!st)
		st = int_query(ctx, "SELECT activated FROM key_versions WHERE key_id = ?1 AND state = 'active' "
		               "AND ?2 = ?2", id, 0, &activated, e);
	if (!st)
		st = int_query(ctx, "SELECT wraps FROM key_versions WHERE key_id = ?1 AND state = 'active' "
		               "AND ?2 = ?2", id, 0, &wraps, e);
	char sens[KM_TAG_VALUE_MAX + 1] = "";
	sqlite3_stmt *q;
	if (!st && !(st = km_db_prepare(ctx->db, "SELECT value FROM key_tags WHERE key_id = ? AND tag = 'sensitivity'",
	                                &q, e))) {
		sqlite3_bind_int64(q, 1, id);
		if (sqlite3_step(q) == SQLITE_ROW)
			snprintf(sens, sizeof sens, "%s", (const char *)sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
	}
	km_policy_effective pol;
	if (!st)
		st = req_policy(ctx, key, &pol, e);
	if (st)
		return st;
	*assets = (uint64_t)n;
	factor(r, "assets", n >= 10000 ? 3 : n >= 100 ? 2 : n > 0 ? 1 : 0, "%lld asset%s under %s%.0u",
	       (long long)n, n == 1 ? "" : "s", version ? "version " : "the live versions", version);
	int sp = strcmp(sens, "high") == 0 ? 4 : strcmp(sens, "medium") == 0 ? 1 : 0;
	factor(r, "sensitivity", sp, "sensitivity=%s", sens[0] ? sens : "(none)");
	if (activated > 0) {
		int64_t days = (km_ctx_now(ctx) - activated) / 86400, cad = pol.v[KM_PF_CADENCE];
		factor(r, "age", days >= 2 * cad ? 2 : days >= cad ? 1 : 0, "current version %lld days old "
		       "(cadence %lld)", (long long)days, (long long)cad);
		int64_t bound = pol.v[KM_PF_USAGE_BOUND];
		int pct = bound > 0 ? (int)(wraps * 100 / bound) : 0;
		factor(r, "usage", pct >= 90 ? 2 : pct >= 50 ? 1 : 0, "%lld of %lld encryptions (%d %%)",
		       (long long)wraps, (long long)bound, pct);
	}
	/* Who consumes what these versions protect: the lineage walk, as of
	 * now, without an authorisation of its own (the request's covers it). */
	km_lineage_impact_summary ls;
	if ((st = lineage_impact_run(ctx, key, version, km_ctx_now(ctx), NULL, NULL, &ls, e)))
		return st;
	uint64_t down = ls.counts[KM_LN_MODEL] + ls.counts[KM_LN_ENDPOINT];
	factor(r, "downstream", down >= 10 ? 2 : down > 0 ? 1 : 0, "%llu model%s and %llu endpoint%s downstream",
	       (unsigned long long)ls.counts[KM_LN_MODEL], ls.counts[KM_LN_MODEL] == 1 ? "" : "s",
	       (unsigned long long)ls.counts[KM_LN_ENDPOINT], ls.counts[KM_LN_ENDPOINT] == 1 ? "" : "s");
	if (compromised || kind == KM_REQ_EMERGENCY_ROTATE)
		factor(r, "compromise", 4, "%lld compromised version%s", (long long)(compromised ? compromised : 1),
		       compromised > 1 ? "s" : "");
	return KM_OK;
}

km_status req_risk(km_ctx *ctx, km_request_kind kind, const json_t *change, km_risk *out,
                   uint64_t *assets, km_err *e)
{
	memset(out, 0, sizeof *out);
	*assets = 0;
	const char *key = json_string_value(json_object_get(change, "key"));
	km_status st = KM_OK;
	if (key) {
		uint32_t v = (uint32_t)json_integer_value(json_object_get(change, "version"));
		st = key_factors(ctx, kind, key, v, out, assets, e);
	} else if (kind == KM_REQ_ROLE_GRANT || kind == KM_REQ_USER_ADD) {
		unsigned roles = 0;
		km_err ignored;
		km_roles_parse(json_string_value(json_object_get(change, "roles")), &roles, &ignored);
		char r[64];
		km_roles_format(roles, r, sizeof r);
		factor(out, "privilege", (roles & (KM_ROLE_ADMIN | KM_ROLE_OFFICER)) ? 3 : 0, "roles %s", r);
	}
	snprintf(out->tier, sizeof out->tier, "%s", out->score >= 5 ? "high" : out->score >= 3 ? "medium" : "low");
	return st;
}
