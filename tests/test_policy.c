/*
 * test_policy.c — rotation policies and the schedule on a real deployment
 * (SoftHSM2 token, SQLite catalogue, audit log).
 *
 * Policies are written the way an executed request writes them
 * (policy_apply inside a transaction with its event); time moves through
 * the session clock (km_set_clock), never an environment variable.
 */
#include "th_deploy.h"
#include "asset.h"
#include "auditlog.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "kek_int.h"
#include "lifecycle.h"
#include "policy.h"
#include "schedule.h"
#include "schedule_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY 86400

static th_deploy D;
static void teardown(void) { th_deploy_teardown(&D); }

/* The session clock the tests move. */
static int64_t clock_now;
static int64_t test_clock(void *c)
{
	(void)c;
	return clock_now;
}

static km_ctx *open_with_clock(void)
{
	km_ctx *ctx = th_deploy_open(&D, NULL);
	clock_now = km_now();
	km_set_clock(ctx, test_clock, NULL);
	return ctx;
}

/* Apply {"scope":S,"set":FIELDS} as an executed request would. */
static void apply(km_ctx *ctx, const char *scope, const char *fields)
{
	km_err e;
	json_t *change = json_pack("{s:s,s:o}", "scope", scope, "set", json_loads(fields, 0, NULL));
	json_t *d = json_object();
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	km_status st = policy_apply(ctx, change, d, &e);
	ck_assert_msg(st == KM_OK, "policy_apply %s: %s", scope, e.msg);
	ck_assert_int_eq(km_tx_audit(ctx, "policy.set", "policy:test", "ok", d, &e), KM_OK);
	ck_assert_msg(km_tx_commit(ctx, &e) == KM_OK, "%s", e.msg);
	json_decref(change);
}

static void effective(km_ctx *ctx, const char *key, km_policy_effective *p)
{
	km_err e;
	ck_assert_msg(km_policy_effective_get(ctx, key, p, &e) == KM_OK, "%s: %s", key, e.msg);
}

static int64_t sql_int(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_msg(km_db_int64(km_db(ctx), sql, &v, &e) == KM_OK, "%s", e.msg);
	return v;
}

static void sql_exec(km_ctx *ctx, const char *sql)
{
	km_err e;
	ck_assert_msg(km_db_exec(km_db(ctx), sql, &e) == KM_OK, "%s: %s", sql, e.msg);
}

static unsigned attention(km_ctx *ctx, const char *key)
{
	unsigned f = 0;
	km_err e;
	ck_assert_msg(km_key_attention(ctx, key, &f, &e) == KM_OK, "%s", e.msg);
	return f;
}

static void status_counts(km_ctx *ctx, uint64_t *due, uint64_t *overdue)
{
	km_status_info s;
	km_err e;
	ck_assert_msg(km_status_get(ctx, &s, &e) == KM_OK, "%s", e.msg);
	*due = s.keys_due;
	*overdue = s.keys_overdue;
}

/* ---------------------------------------------------------------- parsing */

static const struct {
	const char *in;
	km_status st;
	const char *words; /* in the message, or the field's value when OK */
} parse_rows[] = {
	{"cadence_days=30", KM_OK, "30"},
	{"cadence_days=1", KM_OK, "1"},
	{"cadence_days=3650", KM_OK, "3650"},
	{"usage_bound=2147483648", KM_OK, "2147483648"},
	{"reencrypt=1", KM_OK, "1"},
	{"cadence_days=0", KM_EINVAL, "cadence_days must be 1 to 3650"},
	{"cadence_days=3651", KM_EINVAL, "cadence_days must be 1 to 3650"},
	{"usage_bound=2147483649", KM_EINVAL, "usage_bound must be 1 to 2147483648"},
	{"quorum=17", KM_EINVAL, "quorum must be 1 to 16"},
	{"destroy_wait_days=0", KM_EINVAL, "destroy_wait_days must be 1 to 365"},
	{"require_totp=2", KM_EINVAL, "require_totp must be 0 to 1"},
	{"cadence_days=-5", KM_EINVAL, "not a whole number"},
	{"cadence_days=3x", KM_EINVAL, "not a whole number"},
	{"cadence_days=", KM_EINVAL, "not a whole number"},
	{"cadence_days= 7", KM_EINVAL, "not a whole number"},
	{"cadence_days=99999999999999999999", KM_EINVAL, "not a whole number"},
	{"cadence=30", KM_EINVAL, "unknown policy field 'cadence'"},
	{"=30", KM_EINVAL, "field=value"},
	{"cadence_days", KM_EINVAL, "field=value"},
	{"", KM_EINVAL, "field=value"},
};

START_TEST(set_parse_table)
{
	for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
		km_policy p;
		km_err e;
		memset(&p, 0, sizeof p);
		km_err_clear(&e);
		km_status st = km_policy_set_parse(&p, parse_rows[i].in, &e);
		ck_assert_msg(st == parse_rows[i].st, "'%s': status %d, want %d (%s)", parse_rows[i].in, st,
		              parse_rows[i].st, e.msg);
		if (st == KM_OK) {
			km_policy_field f;
			char name[64];
			snprintf(name, sizeof name, "%.*s", (int)strcspn(parse_rows[i].in, "="), parse_rows[i].in);
			ck_assert_int_eq(km_policy_field_parse(name, &f, &e), KM_OK);
			ck_assert_uint_eq(p.set, 1u << f);
			ck_assert_int_eq(p.v[f], strtoll(parse_rows[i].words, NULL, 10));
		} else {
			ck_assert_msg(strstr(e.msg, parse_rows[i].words), "'%s': message '%s' lacks '%s'",
			              parse_rows[i].in, e.msg, parse_rows[i].words);
			ck_assert_uint_eq(p.set, 0);
		}
	}
	/* An unknown field's message lists the real ones. */
	km_policy p = {0};
	km_err e;
	ck_assert_int_eq(km_policy_set_parse(&p, "cadense_days=3", &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "request_ttl_hours"));
}
END_TEST

/* ---------------------------------------------------------------- inheritance */

static int scope_seen(void *c, const km_policy *pol)
{
	char *s = c;
	snprintf(s + strlen(s), 512 - strlen(s), "[%s],", pol->scope);
	return 0;
}

START_TEST(inheritance_and_sources)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_policy_effective p;

	/* Nothing stored: the built-in defaults, named as such. */
	effective(ctx, "features/x", &p);
	ck_assert_int_eq(p.v[KM_PF_CADENCE], 90);
	ck_assert_int_eq(p.v[KM_PF_USAGE_BOUND], 1 << 24);
	ck_assert_int_eq(p.v[KM_PF_QUORUM], 1);
	for (int f = 0; f < KM_PF_COUNT; f++)
		ck_assert_str_eq(p.source[f], "default");

	apply(ctx, "", "{\"cadence_days\":60,\"quorum\":2}");
	apply(ctx, "features/", "{\"cadence_days\":30,\"transition_days\":5}");
	apply(ctx, "features/deep/", "{\"transition_days\":2}");
	apply(ctx, "features/deep/key", "{\"quorum\":3}");
	apply(ctx, "features", "{\"reencrypt\":1}"); /* a key named "features", not a prefix */

	/* key > longest prefix > shorter prefix > global > default, per field */
	effective(ctx, "features/deep/key", &p);
	ck_assert_int_eq(p.v[KM_PF_QUORUM], 3);
	ck_assert_str_eq(p.source[KM_PF_QUORUM], "features/deep/key");
	ck_assert_int_eq(p.v[KM_PF_TRANSITION], 2);
	ck_assert_str_eq(p.source[KM_PF_TRANSITION], "features/deep/");
	ck_assert_int_eq(p.v[KM_PF_CADENCE], 30);
	ck_assert_str_eq(p.source[KM_PF_CADENCE], "features/");
	ck_assert_int_eq(p.v[KM_PF_MODE], 0);
	ck_assert_str_eq(p.source[KM_PF_MODE], "default");
	ck_assert_int_eq(p.v[KM_PF_DESTROY_WAIT], 7);

	effective(ctx, "features/deep/other", &p);
	ck_assert_int_eq(p.v[KM_PF_QUORUM], 2);
	ck_assert_str_eq(p.source[KM_PF_QUORUM], "global");
	ck_assert_str_eq(p.source[KM_PF_TRANSITION], "features/deep/");

	effective(ctx, "features/x", &p);
	ck_assert_int_eq(p.v[KM_PF_TRANSITION], 5);
	ck_assert_str_eq(p.source[KM_PF_TRANSITION], "features/");

	/* "features/" does not cover "featuresx/a", nor the key "features". */
	effective(ctx, "featuresx/a", &p);
	ck_assert_int_eq(p.v[KM_PF_CADENCE], 60);
	ck_assert_str_eq(p.source[KM_PF_CADENCE], "global");
	effective(ctx, "features", &p);
	ck_assert_int_eq(p.v[KM_PF_CADENCE], 60);
	ck_assert_int_eq(p.v[KM_PF_MODE], 1);
	ck_assert_str_eq(p.source[KM_PF_MODE], "features");

	/* Removing the prefix policy falls back field by field. */
	apply(ctx, "features/", "{}");
	effective(ctx, "features/x", &p);
	ck_assert_int_eq(p.v[KM_PF_CADENCE], 60);
	ck_assert_str_eq(p.source[KM_PF_CADENCE], "global");
	ck_assert_str_eq(p.source[KM_PF_TRANSITION], "default");

	/* The listing: global first, then by scope. */
	km_err e;
	char seen[512] = "";
	ck_assert_int_eq(km_policy_list(ctx, scope_seen, seen, &e), KM_OK);
	ck_assert_str_eq(seen, "[],[features],[features/deep/],[features/deep/key],");

	/* Bad scopes and keys are refused with a reason. */
	ck_assert_int_eq(km_policy_effective_get(ctx, "Bad Key", &p, &e), KM_EINVAL);
	json_t *bad = json_pack("{s:s,s:{s:i}}", "scope", "/", "set", "quorum", 2);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_int_eq(policy_apply(ctx, bad, NULL, &e), KM_EINVAL);
	km_tx_rollback(ctx);
	json_decref(bad);
	bad = json_pack("{s:s,s:{s:i}}", "scope", "features/", "set", "quorum", 99);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_int_eq(policy_apply(ctx, bad, NULL, &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "quorum must be 1 to 16"));
	km_tx_rollback(ctx);
	json_decref(bad);
	km_close(ctx);
}
END_TEST

/* ---------------------------------------------------------------- due dates */

typedef struct sched_got {
	km_schedule_entry v[8];
	int n;
} sched_got;

static int collect(void *c, const km_schedule_entry *s)
{
	sched_got *g = c;
	if (g->n < 8)
		g->v[g->n++] = *s;
	return 0;
}

START_TEST(due_overdue_near_bound_by_the_clock)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	int64_t t0 = clock_now;
	uint64_t due, overdue;
	ck_assert_int_eq(km_key_create(ctx, "features/a", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "models/b", NULL, 0, &e), KM_OK);
	ck_assert_uint_eq(attention(ctx, "features/a"), 0);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(due, 0);
	ck_assert_uint_eq(overdue, 0);

	/* Default cadence 90 days: due at 90, overdue at 180. */
	clock_now = t0 + 90 * DAY - 1;
	ck_assert_uint_eq(attention(ctx, "features/a"), 0);
	clock_now = t0 + 90 * DAY;
	ck_assert_uint_eq(attention(ctx, "features/a"), KM_ATTN_DUE);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(due, 2);
	ck_assert_uint_eq(overdue, 0);
	clock_now = t0 + 180 * DAY;
	ck_assert_uint_eq(attention(ctx, "features/a"), KM_ATTN_DUE | KM_ATTN_OVERDUE);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(due, 0);
	ck_assert_uint_eq(overdue, 2);

	/* Rotation starts a new cadence. */
	ck_assert_int_eq(th_rotate(&D, ctx, "features/a", NULL, &e), KM_OK);
	ck_assert_uint_eq(attention(ctx, "features/a"), 0);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(due, 0);
	ck_assert_uint_eq(overdue, 1);

	/* A policy change recomputes the keys it covers, in its transaction:
	 * 10 days into the new version, a 7-day cadence is due. */
	clock_now += 10 * DAY;
	ck_assert_uint_eq(attention(ctx, "features/a"), 0);
	apply(ctx, "features/", "{\"cadence_days\":7}");
	ck_assert_int_eq(sql_int(ctx, "SELECT cadence_s FROM keys WHERE name = 'features/a'"), 7 * DAY);
	ck_assert_int_eq(sql_int(ctx, "SELECT cadence_s FROM keys WHERE name = 'models/b'"), 90 * DAY);
	ck_assert_uint_eq(attention(ctx, "features/a"), KM_ATTN_DUE);
	clock_now += 4 * DAY; /* 14 days: twice the cadence */
	ck_assert_uint_eq(attention(ctx, "features/a"), KM_ATTN_DUE | KM_ATTN_OVERDUE);
	/* A key created under the policy gets it at once. */
	ck_assert_int_eq(km_key_create(ctx, "features/new", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(sql_int(ctx, "SELECT cadence_s FROM keys WHERE name = 'features/new'"), 7 * DAY);
	ck_assert_uint_eq(attention(ctx, "features/new"), 0);

	/* Usage: 90% of the bound is due and near-bound, the bound overdue. */
	apply(ctx, "models/b", "{\"usage_bound\":10,\"cadence_days\":3650}");
	ck_assert_uint_eq(attention(ctx, "models/b"), 0);
	const char *specs[10];
	char buf[10][32];
	for (int i = 0; i < 10; i++) {
		snprintf(buf[i], sizeof buf[i], "model:b/w@%d", i);
		specs[i] = buf[i];
	}
	ck_assert_msg(km_asset_register_bulk(ctx, "models/b", specs, 8, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(attention(ctx, "models/b"), 0);
	ck_assert_msg(km_asset_register_bulk(ctx, "models/b", specs + 8, 1, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(attention(ctx, "models/b"), KM_ATTN_DUE | KM_ATTN_NEAR_BOUND);
	ck_assert_msg(km_asset_register_bulk(ctx, "models/b", specs + 9, 1, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(attention(ctx, "models/b"), KM_ATTN_DUE | KM_ATTN_OVERDUE | KM_ATTN_NEAR_BOUND);

	/* The schedule lists them, overdue first, with where the cadence
	 * came from. */
	sched_got got = {.n = 0};
	ck_assert_int_eq(km_schedule_list(ctx, 0, 0, collect, &got, &e), KM_OK);
	ck_assert_int_eq(got.n, 2);
	ck_assert_str_eq(got.v[0].key, "features/a");
	ck_assert_str_eq(got.v[0].policy_source, "features/");
	ck_assert_int_eq(got.v[0].cadence_days, 7);
	ck_assert_str_eq(got.v[1].key, "models/b");
	ck_assert_uint_eq(got.v[1].wraps, 10);
	ck_assert_uint_eq(got.v[1].usage_bound, 10);
	ck_assert_str_eq(got.v[1].policy_source, "models/b");
	got.n = 0;
	ck_assert_int_eq(km_schedule_list(ctx, 1, 0, collect, &got, &e), KM_OK);
	ck_assert_int_eq(got.n, 3);
	ck_assert_str_eq(got.v[2].key, "features/new");
	km_close(ctx);
}
END_TEST

static int pause_at_once(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)c, (void)done, (void)total, (void)what;
	return 1;
}

/* The example: v1 compromised and still wrapping assets, v2
 * active and young.  The
 * inventory says "compromised", the status bar overdue. */
START_TEST(compromised_with_assets_counts_as_overdue)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	const char *specs[] = {"dataset:x/a@1", "dataset:x/b@1"};
	uint64_t due, overdue;
	ck_assert_int_eq(km_key_create(ctx, "datasets/x", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "datasets/empty", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_asset_register_bulk(ctx, "datasets/x", specs, 2, &e), KM_OK);
	/* datasets/x's rotation stops after its first batch (one asset), so
	 * v1 still wraps the other when it is found compromised;
	 * datasets/empty has rotated away completely. */
	char id[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_request_rotate(ctx, "datasets/x", "test", id, &e), KM_OK);
	ck_assert_int_eq(th_request_approve(&D, ctx, id, &e), KM_OK);
	uint32_t batch = ctx->cfg.job_batch;
	ctx->cfg.job_batch = 1;
	ck_assert_int_eq(km_request_execute(ctx, id, pause_at_once, NULL, &e), KM_OK);
	ctx->cfg.job_batch = batch;
	ck_assert_int_eq(th_rotate(&D, ctx, "datasets/empty", NULL, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/x", 1, KS_COMPROMISED, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/empty", 1, KS_COMPROMISED, &e), KM_OK);
	/* Each compromise opened its emergency rotation: a pending request. */
	ck_assert_uint_eq(attention(ctx, "datasets/x"), KM_ATTN_COMPROMISED | KM_ATTN_PENDING_REQ | KM_ATTN_JOB);
	/* Compromised with nothing under it and a fresh active version: only
	 * the open request. */
	ck_assert_uint_eq(attention(ctx, "datasets/empty"), KM_ATTN_PENDING_REQ);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(overdue, 1);
	ck_assert_uint_eq(due, 0);
	char words[64];
	km_attention_format(KM_ATTN_COMPROMISED | KM_ATTN_DUE | KM_ATTN_OVERDUE | KM_ATTN_PENDING_REQ, words,
	                    sizeof words);
	ck_assert_str_eq(words, "compromised,overdue,request");
	/* Once the assets leave v1 (as a re-encryption would move them), the
	 * flag goes with them. */
	sql_exec(ctx, "BEGIN; UPDATE key_versions SET assets = 0 WHERE version = 1 AND key_id = "
	              "(SELECT id FROM keys WHERE name = 'datasets/x')");
	ck_assert_int_eq(kek_summary_refresh(ctx, sql_int(ctx, "SELECT id FROM keys WHERE name = 'datasets/x'"), &e),
	                 KM_OK);
	ck_assert_uint_eq(attention(ctx, "datasets/x"), KM_ATTN_PENDING_REQ | KM_ATTN_JOB);
	status_counts(ctx, &due, &overdue);
	ck_assert_uint_eq(overdue, 0);
	sql_exec(ctx, "ROLLBACK");
	km_close(ctx);
}
END_TEST

/* The status bar's counts at 100,000 keys: index ranges, never a scan of
 * keys, and fast. */
START_TEST(status_counts_stay_cheap)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	int64_t now = clock_now;
	char sql[512];
	/* Summary rows only (the counts read nothing else): 1 in 10 due,
	 * 1 in 100 overdue, 1 in 1000 with a stored flag. */
	snprintf(sql, sizeof sql,
	         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
	         "INSERT INTO keys(name, created, created_by, cadence_s, usage_bound, due_at, overdue_at, attention) "
	         "SELECT printf('bulk/k%%06d', i), %lld, 't', 86400, 100, "
	         "CASE WHEN i %% 10 = 0 THEN %lld ELSE %lld END, "
	         "CASE WHEN i %% 100 = 0 THEN %lld ELSE %lld END, "
	         "CASE WHEN i %% 1000 = 1 THEN 8 ELSE 0 END FROM n",
	         (long long)now, (long long)(now - 10), (long long)(now + 1000), (long long)(now - 5),
	         (long long)(now + 2000));
	sql_exec(ctx, sql);
	uint64_t due, overdue;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(schedule_counts(ctx, now, &due, &overdue, &e), KM_OK);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	ck_assert_uint_eq(overdue, 1000 + 100);   /* i%100 == 0, plus the 100 flagged */
	ck_assert_uint_eq(due, 10000 - 1000);     /* i%10 == 0 but not overdue */
	fprintf(stderr, "status counts at 100,000 keys: %.2f ms\n", ms);
	ck_assert_msg(ms < 200, "counting took %.1f ms", ms);
	/* The plan: every access to keys goes through an index. */
	const char *const plans[] = {
		"EXPLAIN QUERY PLAN SELECT count(*) FROM keys WHERE overdue_at BETWEEN 1 AND 5",
		"EXPLAIN QUERY PLAN SELECT count(*) FROM keys WHERE attention != 0 AND (attention & 10) != 0 "
		"AND NOT (overdue_at BETWEEN 1 AND 5)",
		"EXPLAIN QUERY PLAN SELECT count(*) FROM keys WHERE due_at BETWEEN 1 AND 5",
	};
	/* A global policy change recomputes every key in its transaction:
	 * set-wise statements, not a policy evaluation per key. */
	km_policy gl = {.scope = "", .set = 1u << KM_PF_CADENCE, .v = {[KM_PF_CADENCE] = 45}};
	uint64_t n = 0;
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(schedule_scope_recompute(ctx, "", &gl, 1, &n, &e), KM_OK);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	fprintf(stderr, "global policy recompute of 100,000 keys: %.0f ms\n", ms);
	ck_assert_uint_eq(n, 100000);
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM keys WHERE cadence_s = 45 * 86400"), 100000);
	/* These keys have no versions: nothing is due any more. */
	ck_assert_int_eq(schedule_counts(ctx, now, &due, &overdue, &e), KM_OK);
	ck_assert_uint_eq(due + overdue, 0);
	km_tx_rollback(ctx);
	for (size_t i = 0; i < 3; i++) {
		sqlite3_stmt *q;
		ck_assert_int_eq(km_db_prepare(km_db(ctx), plans[i], &q, &e), KM_OK);
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(q, 3);
			ck_assert_msg(strstr(d, "INDEX"), "plan %zu: %s", i, d);
		}
		sqlite3_finalize(q);
	}
	km_close(ctx);
}
END_TEST

/* ---------------------------------------------------------------- seals */

START_TEST(tampered_policy_is_refused_and_caught)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	km_policy_effective p;
	km_rows_result r;
	apply(ctx, "features/", "{\"quorum\":3}");
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(r.bad, 0);
	/* A file writer loosens the quorum: the row is refused by every
	 * read that decides, and verify names it. */
	sql_exec(ctx, "UPDATE policies SET body = '{\"quorum\":1}' WHERE scope = 'features/'");
	ck_assert_int_eq(km_policy_effective_get(ctx, "features/x", &p, &e), KM_EINTEGRITY);
	ck_assert_msg(strstr(e.msg, "policies row 'features/'") && strstr(e.msg, "HSM MAC"), "%s", e.msg);
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(r.bad, 1);
	ck_assert_msg(strstr(r.problem, "policies row 'features/'"), "%s", r.problem);
	/* A forged row that was never sealed: the same. */
	sql_exec(ctx, "INSERT INTO policies(scope, body, created, created_by) VALUES('', '{\"quorum\":1}', 0, 'x')");
	ck_assert_int_eq(km_policy_effective_get(ctx, "models/y", &p, &e), KM_EINTEGRITY);
	km_close(ctx);
}
END_TEST

START_TEST(older_genuine_policy_put_back_is_caught)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	km_rows_result r;
	km_policy_effective p;
	apply(ctx, "features/", "{\"quorum\":1}");
	sql_exec(ctx, "CREATE TABLE old_policy AS SELECT * FROM policies WHERE scope = 'features/'");
	clock_now += 60;
	apply(ctx, "features/", "{\"quorum\":4}");
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(r.bad, 0);
	sql_exec(ctx, "DELETE FROM policies WHERE scope = 'features/'; "
	              "INSERT INTO policies SELECT * FROM old_policy");
	/* Its MAC is genuine, so reads take it ... */
	effective(ctx, "features/x", &p);
	ck_assert_int_eq(p.v[KM_PF_QUORUM], 1);
	/* ... but verify compares it with the log's newest record. */
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(r.bad, 1);
	ck_assert_msg(strstr(r.problem, "not the one the audit log last recorded"), "%s", r.problem);
	/* A removed policy put back is caught the same way. */
	sql_exec(ctx, "DELETE FROM policies WHERE scope = 'features/'; INSERT INTO policies SELECT * FROM old_policy");
	clock_now += 60;
	apply(ctx, "features/", "{}");
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM policies"), 0);
	sql_exec(ctx, "INSERT INTO policies SELECT * FROM old_policy");
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(r.bad, 1);
	km_close(ctx);
}
END_TEST

/* ---------------------------------------------------------------- proposals */

START_TEST(propose_checks_scope_owner_and_fields)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	char id[40] = "";
	km_policy p;
	memset(&p, 0, sizeof p);
	ck_assert_int_eq(km_policy_set_parse(&p, "quorum=2", &e), KM_OK);
	/* The global policy is the administrator's. */
	ck_assert_int_eq(km_policy_propose(ctx, &p, "tighten", id, &e), KM_EDENIED);
	ck_assert_msg(strstr(e.msg, "global policy is the administrator's"), "%s", e.msg);
	snprintf(p.scope, sizeof p.scope, "features/");
	ck_assert_msg(km_policy_propose(ctx, &p, "tighten", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(strlen(id), 32);
	/* Proposing changes nothing yet. */
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM policies"), 0);
	p.v[KM_PF_QUORUM] = 40;
	ck_assert_int_eq(km_policy_propose(ctx, &p, "", id, &e), KM_EINVAL);
	ck_assert_msg(strstr(e.msg, "quorum must be 1 to 16"), "%s", e.msg);
	memset(&p, 0, sizeof p);
	snprintf(p.scope, sizeof p.scope, "features/");
	ck_assert_int_eq(km_policy_propose(ctx, &p, "", id, &e), KM_ENOTFOUND);
	snprintf(p.scope, sizeof p.scope, "Bad/");
	p.set = 1;
	p.v[0] = 5;
	ck_assert_int_eq(km_policy_propose(ctx, &p, "", id, &e), KM_EINVAL);
	km_close(ctx);
}
END_TEST

START_TEST(admin_proposes_only_the_global_policy)
{
	th_deploy_setup(&D, KM_ROLE_ADMIN, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	char id[40] = "";
	km_policy p;
	memset(&p, 0, sizeof p);
	ck_assert_int_eq(km_policy_set_parse(&p, "cadence_days=30", &e), KM_OK);
	ck_assert_msg(km_policy_propose(ctx, &p, "", id, &e) == KM_OK, "%s", e.msg);
	snprintf(p.scope, sizeof p.scope, "models/");
	ck_assert_int_eq(km_policy_propose(ctx, &p, "", id, &e), KM_EDENIED);
	km_close(ctx);
}
END_TEST

/* ---------------------------------------------------------------- rotate --due */

typedef struct actions {
	char lines[16][200];
	int n;
} actions;

static int note_action(void *c, const km_due_action *a)
{
	actions *x = c;
	if (x->n < 16)
		snprintf(x->lines[x->n++], sizeof x->lines[0], "%s %s %s", a->what, a->key, km_status_name(a->outcome));
	return 0;
}

static int has_action(const actions *x, const char *line)
{
	for (int i = 0; i < x->n; i++)
		if (strcmp(x->lines[i], line) == 0)
			return 1;
	return 0;
}

START_TEST(rotate_due_dry_run_reports_each_action)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	int64_t t0 = clock_now;
	ck_assert_int_eq(km_key_create(ctx, "features/due", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "features/rotated", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "features/gone", NULL, 0, &e), KM_OK);
	apply(ctx, "features/rotated", "{\"cadence_days\":3650}");
	apply(ctx, "features/gone", "{\"cadence_days\":3650,\"deprecation_days\":0}");
	ck_assert_int_eq(th_rotate(&D, ctx, "features/rotated", NULL, &e), KM_OK); /* v1 decrypt-only, empty */
	ck_assert_int_eq(th_rotate(&D, ctx, "features/gone", NULL, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "features/gone", 1, KS_RETIRED, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "features/gone", 1, KS_DESTROY_SCHEDULED, &e), KM_OK);

	actions x = {.n = 0};
	ck_assert_int_eq(km_rotate_due(ctx, 1, note_action, &x, &e), KM_OK);
	ck_assert_int_eq(x.n, 0);

	/* 31 days on: features/due is not due (90 days), the transition
	 * window (30) is over, the destruction wait (7) too. */
	clock_now = t0 + 31 * DAY;
	x.n = 0;
	ck_assert_int_eq(km_rotate_due(ctx, 1, note_action, &x, &e), KM_OK);
	ck_assert_int_eq(x.n, 2);
	ck_assert(has_action(&x, "retire features/rotated ok"));
	ck_assert(has_action(&x, "destroy features/gone ok"));
	clock_now = t0 + 91 * DAY;
	x.n = 0;
	ck_assert_int_eq(km_rotate_due(ctx, 1, note_action, &x, &e), KM_OK);
	ck_assert(has_action(&x, "open-request features/due ok"));
	ck_assert_int_eq(x.n, 3);
	/* A dry run changed nothing. */
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM key_versions WHERE state IN ('retired', 'destroyed')"), 0);
	/* A longer transition window keeps the version decrypt-only. */
	apply(ctx, "features/rotated", "{\"cadence_days\":3650,\"transition_days\":200}");
	x.n = 0;
	ck_assert_int_eq(km_rotate_due(ctx, 1, note_action, &x, &e), KM_OK);
	ck_assert(!has_action(&x, "retire features/rotated ok"));
	km_close(ctx);
}
END_TEST

typedef struct first_req {
	char id[KM_REQUEST_ID_MAX];
	int n;
} first_req;

static int first_request(void *c, const km_request_info *r)
{
	first_req *x = c;
	if (!x->n++)
		snprintf(x->id, sizeof x->id, "%s", r->id);
	return 0;
}

/* Not a dry run: each action through its own audited path. */
START_TEST(rotate_due_acts)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	int64_t t0 = clock_now;
	th_deploy_user(&D, ctx, "bob", KM_ROLE_APPROVER, NULL);
	ck_assert_int_eq(km_key_create(ctx, "features/due", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "features/quiet", NULL, 0, &e), KM_OK);
	apply(ctx, "features/quiet", "{\"cadence_days\":3650}");

	/* Due: a rotation request opens, once. */
	clock_now = t0 + 91 * DAY;
	actions x = {.n = 0};
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(x.n, 1);
	ck_assert(has_action(&x, "open-request features/due ok"));
	ck_assert_uint_eq(attention(ctx, "features/due"), KM_ATTN_DUE | KM_ATTN_PENDING_REQ);
	km_request_query q = {.pending_only = 1, .object = "key:features/due"};
	first_req req = {"", 0};
	ck_assert_int_eq(km_request_list(ctx, &q, first_request, &req, &e), KM_OK);
	ck_assert_int_eq(req.n, 1);
	x.n = 0;
	ck_assert_int_eq(km_rotate_due(ctx, 0, note_action, &x, &e), KM_OK);
	ck_assert_int_eq(x.n, 0);

	/* Approved: the next run executes it; the key is no longer due. */
	km_ctx *bob = th_deploy_open(&D, "bob");
	ck_assert_msg(km_request_approve(bob, req.id, &e) == KM_OK, "%s", e.msg);
	km_close(bob);
	x.n = 0;
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert(has_action(&x, "execute features/due ok"));
	ck_assert_int_eq(sql_int(ctx, "SELECT cur_version FROM keys WHERE name = 'features/due'"), 2);
	ck_assert_uint_eq(attention(ctx, "features/due"), 0);

	/* An unapproved request past its expiry (72 h) is written expired. */
	char id[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_request_rotate(ctx, "features/quiet", "test", id, &e), KM_OK);
	clock_now += 73 * 3600;
	x.n = 0;
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert(has_action(&x, "expire features/quiet ok"));
	km_request_info info;
	ck_assert_int_eq(km_request_get(ctx, id, &info, &e), KM_OK);
	ck_assert_int_eq(info.state, KM_RS_EXPIRED);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE id = '%s' AND state = 'expired'", id);
	ck_assert_int_eq(sql_int(ctx, sql), 1);

	/* v1 of features/due is decrypt-only and empty: retired after the
	 * 30-day window, then destroyed after its waiting period. */
	clock_now += 31 * DAY;
	x.n = 0;
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert(has_action(&x, "retire features/due ok"));
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM key_versions WHERE state = 'retired'"), 1);
	/* The default deprecation period (30 days) holds destruction back. */
	ck_assert_int_eq(th_set_state(&D, ctx, "features/due", 1, KS_DESTROY_SCHEDULED, &e), KM_ESTATE);
	clock_now += 30 * DAY;
	ck_assert_msg(th_set_state(&D, ctx, "features/due", 1, KS_DESTROY_SCHEDULED, &e) == KM_OK, "%s", e.msg);
	x.n = 0;
	ck_assert_int_eq(km_rotate_due(ctx, 0, note_action, &x, &e), KM_OK);
	ck_assert(!has_action(&x, "destroy features/due ok"));
	clock_now += 8 * DAY;
	x.n = 0;
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert(has_action(&x, "destroy features/due ok"));
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM key_versions WHERE state = 'destroyed' AND "
	                              "wrapped IS NULL"), 1);
	km_rows_result r;
	ck_assert_msg(km_audit_verify_rows(ctx, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(r.bad == 0, "%s", r.problem);
	km_close(ctx);
}
END_TEST

/* ---------------------------------------------------------------- deprecation */

static int note_retired(void *c, const km_retired_version *r)
{
	*(km_retired_version *)c = *r;
	return 0;
}

static km_status destroy_request(km_ctx *ctx, const char *key, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	return km_request_destroy(ctx, key, 1, "retention ended", id, e);
}

/* deprecation_days: a retired version's destruction may be scheduled only
 * that long after it was retired; the refusal names the date, both when
 * the request opens and when it executes (the policy may have grown in
 * between); a cancelled destruction keeps the retirement time, a version
 * taken back to decrypt-only starts again. */
START_TEST(deprecation_holds_destruction_back)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = open_with_clock();
	km_err e;
	char id[KM_REQUEST_ID_MAX], when[32], words[96];
	th_deploy_user(&D, ctx, "bob", KM_ROLE_APPROVER, NULL);
	ck_assert_int_eq(km_key_create(ctx, "datasets/old", NULL, 0, &e), KM_OK);
	apply(ctx, "datasets/old", "{\"cadence_days\":3650}");
	ck_assert_int_eq(th_rotate(&D, ctx, "datasets/old", NULL, &e), KM_OK);
	int64_t t0 = clock_now;
	ck_assert_msg(th_set_state(&D, ctx, "datasets/old", 1, KS_RETIRED, &e) == KM_OK, "%s", e.msg);

	/* Refused at once, naming the day it becomes allowed (default 30). */
	ck_assert_int_eq(destroy_request(ctx, "datasets/old", id, &e), KM_ESTATE);
	km_time_format(t0 + 30 * DAY, when);
	snprintf(words, sizeof words, "may be scheduled from %s", when);
	ck_assert_msg(strstr(e.msg, words) && strstr(e.msg, "30-day") && strstr(e.msg, "default"), "%s", e.msg);
	km_retired_version rv = {0};
	ck_assert_msg(km_key_retired_versions(ctx, "datasets/old", note_retired, &rv, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(rv.version, 1);
	ck_assert_int_eq(rv.retired, t0);
	ck_assert_int_eq(rv.destroy_from, t0 + 30 * DAY);
	clock_now = t0 + 30 * DAY - 1;
	ck_assert_int_eq(destroy_request(ctx, "datasets/old", id, &e), KM_ESTATE);
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM requests WHERE kind = 'destroy'"), 0);

	/* Allowed on the day; approved; then the policy asks for 60 days
	 * before it runs: `rotate --due` refuses to execute it, with the date. */
	clock_now = t0 + 30 * DAY;
	ck_assert_msg(destroy_request(ctx, "datasets/old", id, &e) == KM_OK, "%s", e.msg);
	km_ctx *bob = th_deploy_open(&D, "bob");
	ck_assert_msg(km_request_approve(bob, id, &e) == KM_OK, "%s", e.msg);
	km_close(bob);
	apply(ctx, "datasets/", "{\"deprecation_days\":60}");
	actions x = {.n = 0};
	km_rotate_due(ctx, 0, note_action, &x, &e);
	ck_assert_msg(has_action(&x, "execute datasets/old illegal-state"), "%s", x.n ? x.lines[0] : "no action");
	km_request_info info;
	ck_assert_int_eq(km_request_get(ctx, id, &info, &e), KM_OK);
	km_time_format(t0 + 60 * DAY, when);
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM key_versions WHERE state = 'retired'"), 1);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE);
	snprintf(words, sizeof words, "may be scheduled from %s", when);
	ck_assert_msg(strstr(e.msg, words) && strstr(e.msg, "datasets/"), "%s", e.msg);
	/* On that day (the approved request has expired meanwhile): a new
	 * one opens and executes. */
	clock_now = t0 + 60 * DAY;
	x.n = 0;
	ck_assert_msg(km_rotate_due(ctx, 0, note_action, &x, &e) == KM_OK, "%s", e.msg);
	ck_assert(has_action(&x, "expire datasets/old ok"));
	ck_assert_msg(destroy_request(ctx, "datasets/old", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(th_request_done(&D, ctx, id, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(sql_int(ctx, "SELECT count(*) FROM key_versions WHERE state = 'destroy-scheduled'"), 1);

	/* Cancelled: retired again, since t0 still, so it may be scheduled
	 * again at once. */
	ck_assert_msg(th_set_state(&D, ctx, "datasets/old", 1, KS_RETIRED, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_key_retired_versions(ctx, "datasets/old", note_retired, &rv, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(rv.retired, t0);
	ck_assert_msg(destroy_request(ctx, "datasets/old", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_request_cancel(ctx, id, &e), KM_OK);

	/* Back to decrypt-only and retired again: the period starts over. */
	ck_assert_msg(th_set_state(&D, ctx, "datasets/old", 1, KS_DECRYPT_ONLY, &e) == KM_OK, "%s", e.msg);
	clock_now += DAY;
	int64_t t1 = clock_now;
	ck_assert_msg(th_set_state(&D, ctx, "datasets/old", 1, KS_RETIRED, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(destroy_request(ctx, "datasets/old", id, &e), KM_ESTATE);
	km_time_format(t1 + 60 * DAY, when);
	ck_assert_msg(strstr(e.msg, when), "%s", e.msg);

	/* The retirement time is sealed: moving it back is caught. */
	sql_exec(ctx, "UPDATE key_versions SET retired = 1 WHERE version = 1");
	ck_assert_int_eq(destroy_request(ctx, "datasets/old", id, &e), KM_EINTEGRITY);
	km_close(ctx);
}
END_TEST

Suite *policy_suite(void);
Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *t = tcase_create("policy");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, set_parse_table);
	tcase_add_test(t, inheritance_and_sources);
	tcase_add_test(t, due_overdue_near_bound_by_the_clock);
	tcase_add_test(t, compromised_with_assets_counts_as_overdue);
	tcase_add_test(t, status_counts_stay_cheap);
	tcase_add_test(t, tampered_policy_is_refused_and_caught);
	tcase_add_test(t, older_genuine_policy_put_back_is_caught);
	tcase_add_test(t, propose_checks_scope_owner_and_fields);
	tcase_add_test(t, admin_proposes_only_the_global_policy);
	tcase_add_test(t, rotate_due_dry_run_reports_each_action);
	tcase_add_test(t, rotate_due_acts);
	tcase_add_test(t, deprecation_holds_destruction_back);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(policy_suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
