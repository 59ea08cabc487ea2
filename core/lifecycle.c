/*
 * lifecycle.c — the key changes an executed request applies: rotation and
 * one version's state change, each inside the caller's transaction.
 *
 * Nothing here authorises, audits or commits: request.c (and the
 * scheduler) did the first and does the rest, so the change, its facts
 * and the request's new state land in one transaction or not at all.
 * Every version row is loaded through its seal and re-sealed after.
 */
#include "lifecycle.h"
#include "request_int.h"
#include "kek.h"
#include "kek_int.h"
#include "db.h"
#include "rowmac.h"

#include <stdio.h>
#include <string.h>

/* The older version whose assets the rotation's job moves: the version
 * that was active, else the newest compromised or decrypt-only one that
 * still protects assets (an emergency rotation after a compromise). */
static km_status job_source(km_ctx *ctx, int64_t key_id, uint32_t prev, uint32_t newest,
                            uint32_t *from, uint64_t *assets, km_err *e)
{
	char sql[320];
	int64_t n = 0, v = prev;
	*from = 0;
	*assets = 0;
	if (!prev) {
		snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM key_versions WHERE key_id = %lld "
		         "AND version < %u AND state IN ('compromised', 'decrypt-only') AND assets > 0",
		         (long long)key_id, newest);
		km_status st = km_db_int64(ctx->db, sql, &v, e);
		if (st)
			return st;
	}
	if (!v)
		return KM_OK;
	snprintf(sql, sizeof sql, "SELECT count(*) FROM assets WHERE key_id = %lld AND kek_version = %lld",
	         (long long)key_id, (long long)v);
	km_status st = km_db_int64(ctx->db, sql, &n, e);
	if (!st) {
		*from = (uint32_t)v;
		*assets = (uint64_t)n;
	}
	return st;
}

km_status lifecycle_rotate(km_ctx *ctx, const char *key, int reencrypt, const char *request_id,
                           uint32_t *new_version, char job_id[KM_REQUEST_ID_MAX], json_t *details,
                           km_err *e)
{
	int64_t id, maxv = 0;
	job_id[0] = '\0';
	km_status st = kek_lookup_id(ctx, key, &id, e);
	if (st)
		return st;
	/* Key generation inside the transaction: the new version's number
	 * is only certain under the write lock, and a session keygen costs
	 * microseconds (HSM-NOTES.md). */
	uint8_t wrapped[HSM_WRAPPED_KEK_MAX];
	size_t wlen = 0;
	if ((st = hsm_kek_generate(ctx->h, wrapped, sizeof wrapped, &wlen, e)))
		return st;
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM key_versions WHERE key_id = %lld", (long long)id);
	if ((st = km_db_int64(ctx->db, sql, &maxv, e)))
		return st;
	uint32_t v = (uint32_t)maxv + 1, prev = 0;
	/* The active version, through its seal: an edited row is refused,
	 * never re-sealed in its edited state. */
	kek_version_row cur;
	st = kek_version_load(ctx, key, 0, &cur, e);
	if (st == KM_ESTATE) {
		km_err_clear(e);
		st = KM_OK;
	} else if (!st) {
		prev = cur.version;
	}
	if (st)
		return st;
	json_object_set_new(details, "new_version", json_integer((json_int_t)v));
	if (prev) {
		snprintf(sql, sizeof sql, "UPDATE key_versions SET state = 'decrypt-only', deactivated = %lld "
		         "WHERE key_id = %lld AND version = %u", (long long)km_ctx_now(ctx), (long long)id, prev);
		if ((st = km_db_exec(ctx->db, sql, e)) || (st = kek_version_seal(ctx, id, prev, details, e)))
			return st;
		json_object_set_new(details, "previous_version", json_integer((json_int_t)prev));
	}
	if ((st = kek_version_insert(ctx, id, v, wrapped, wlen, details, e)) ||
	    (st = kek_summary_refresh(ctx, id, e)))
		return st;
	uint32_t from;
	uint64_t assets;
	if ((st = job_source(ctx, id, prev, v, &from, &assets, e)))
		return st;
	if (assets > 0) {
		km_job_kind kind = reencrypt ? KM_JOB_REENCRYPT : KM_JOB_REWRAP;
		if ((st = job_queue(ctx, kind, id, from, v, request_id, job_id, e)))
			return st;
		if (job_id[0])
				json_object_set_new(details, "job", json_pack("{s:s,s:s,s:i,s:I}", "id", job_id, "kind",
			                                              reencrypt ? "re-encrypt" : "rewrap", "from_version",
			                                              (int)from, "assets", (json_int_t)assets));
	}
	if (new_version)
		*new_version = v;
	if (prev)
		kek_cache_evict(ctx->cache, id, prev);
	return KM_OK;
}

km_status lifecycle_destroy_allowed_from(km_ctx *ctx, const char *key, const kek_version_row *row,
                                        int64_t *from, km_err *e)
{
	*from = 0;
	if (row->state != KS_RETIRED)
		return KM_OK;
	km_policy_effective pol;
	km_status st = req_policy(ctx, key, &pol, e);
	if (st)
		return st;
	/* A version retired before its retirement time was kept has none
	 * (0): it counts from when it stopped encrypting, the earliest it
	 * can have been retired. */
	int64_t since = row->retired;
	if (since <= 0) {
		char sql[160];
		snprintf(sql, sizeof sql, "SELECT deactivated FROM key_versions WHERE key_id = %lld AND version = %u",
		         (long long)row->key_id, row->version);
		if ((st = km_db_int64(ctx->db, sql, &since, e)))
			return st;
	}
	*from = since + pol.v[KM_PF_DEPRECATION] * 86400;
	return KM_OK;
}

km_status lifecycle_destroy_check(km_ctx *ctx, const char *key, const kek_version_row *row, int64_t now,
                                  km_err *e)
{
	int64_t from;
	km_status st = lifecycle_destroy_allowed_from(ctx, key, row, &from, e);
	if (st || now >= from)
		return st;
	km_policy_effective pol;
	if ((st = req_policy(ctx, key, &pol, e)))
		return st;
	char when[32];
	km_time_format(from, when);
	return km_fail(e, KM_ESTATE, "version %u of '%s' was retired less than its policy's %lld-day deprecation "
	               "period ago (deprecation_days from %s): its destruction may be scheduled from %s",
	               row->version, key, (long long)pol.v[KM_PF_DEPRECATION], pol.source[KM_PF_DEPRECATION], when);
}

/* Checks beyond the transition table: one active version at a time, no
 * destruction scheduled before the deprecation period ends, and none
 * carried out before the waiting period ends. */
static km_status state_preconditions(km_ctx *ctx, const char *key, const kek_version_row *row,
                                     km_key_state to, int64_t now, km_err *e)
{
	char sql[160];
	int64_t n = 0;
	km_status st = km_state_check_transition(row->state, to, e);
	if (st)
		return st;
	if (to == KS_ACTIVE) {
		snprintf(sql, sizeof sql, "SELECT count(*) FROM key_versions WHERE key_id = %lld AND state = 'active'",
		         (long long)row->key_id);
		if (!(st = km_db_int64(ctx->db, sql, &n, e)) && n)
			st = km_fail(e, KM_ESTATE, "key '%s' already has an active version; rotate instead", key);
	}
	if (!st && to == KS_DESTROY_SCHEDULED)
		st = lifecycle_destroy_check(ctx, key, row, now, e);
	if (!st && to == KS_DESTROYED) {
		snprintf(sql, sizeof sql, "SELECT destroy_after FROM key_versions WHERE key_id = %lld AND version = %u",
		         (long long)row->key_id, row->version);
		if (!(st = km_db_int64(ctx->db, sql, &n, e)) && now < n) {
			char when[32];
			km_time_format(n, when);
			st = km_fail(e, KM_ESTATE, "version %u of '%s' is scheduled for destruction; the waiting "
			             "period ends at %s", row->version, key, when);
		}
	}
	return st;
}

km_status lifecycle_set_state(km_ctx *ctx, const char *key, uint32_t version, km_key_state to,
                              json_t *details, km_err *e)
{
	if (version == 0)
		return km_fail(e, KM_EUSAGE, "versions are numbered from 1");
	kek_version_row row;
	int64_t now = km_ctx_now(ctx);
	km_status st = kek_version_load(ctx, key, version, &row, e);
	if (!st)
		st = state_preconditions(ctx, key, &row, to, now, e);
	if (st)
		return st;
	/* Column updates per target state; destroyed erases the wrapped
	 * material (secure_delete overwrites the freed bytes). */
	static const char *const extra[KS_COUNT] = {
		[KS_ACTIVE] = ", activated = ?2",
		[KS_DECRYPT_ONLY] = ", deactivated = CASE deactivated WHEN 0 THEN ?2 ELSE deactivated END, retired = 0",
		[KS_DESTROY_SCHEDULED] = ", destroy_after = ?2 + ?5",
		/* A cancelled destruction keeps the retirement time it had. */
		[KS_RETIRED] = ", destroy_after = 0, retired = CASE retired WHEN 0 THEN ?2 ELSE retired END",
		[KS_DESTROYED] = ", wrapped = NULL, destroyed = ?2",
	};
	/* The destruction wait: the key's policy (destroy_wait_days) where a
	 * policy sets it, else the deployment's default (config.json's
	 * destroy_wait_seconds, 7 days unless changed). */
	int64_t wait = ctx->cfg.destroy_wait_s;
	if (to == KS_DESTROY_SCHEDULED) {
		km_policy_effective pol;
		if ((st = req_policy(ctx, key, &pol, e)))
			return st;
		if (strcmp(pol.source[KM_PF_DESTROY_WAIT], "default") != 0)
			wait = pol.v[KM_PF_DESTROY_WAIT] * 86400;
	}
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE key_versions SET state = ?1%s WHERE key_id = ?3 AND version = ?4",
	         extra[to] ? extra[to] : "");
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, sql, &q, e)))
		return st;
	sqlite3_bind_text(q, 1, km_state_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now);
	sqlite3_bind_int64(q, 3, row.key_id);
	sqlite3_bind_int64(q, 4, version);
	sqlite3_bind_int64(q, 5, wait);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "changing the state");
	sqlite3_finalize(q);
	if (st)
		return st;
	json_object_set_new(details, "from", json_string(km_state_name(row.state)));
	json_object_set_new(details, "to", json_string(km_state_name(to)));
	json_object_set_new(details, "version", json_integer((json_int_t)version));
	if (to == KS_DESTROY_SCHEDULED)
		json_object_set_new(details, "destroy_after", json_integer(now + wait));
	if ((st = kek_version_seal(ctx, row.key_id, version, details, e)) ||
	    (st = kek_summary_refresh(ctx, row.key_id, e)))
		return st;
	/* A version that changed state must be unwrapped afresh if it may
	 * still be used, and never again if it may not.  Evicting before the
	 * commit is harmless: a rolled-back change only costs one unwrap. */
	kek_cache_evict(ctx->cache, row.key_id, version);
	return KM_OK;
}
