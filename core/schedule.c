/*
 * schedule.c — what is due, and `keyward rotate --due`.
 *
 * The schedule lives on the keys rows (schedule_int.h): every change to a
 * key's versions refreshes its columns in the same transaction, and a
 * policy change recomputes the keys it covers, so reading the schedule is
 * a few index ranges whatever the number of keys.  Only the comparison
 * with the clock happens at read time, with km_ctx_now().
 */
#include "schedule.h"
#include "schedule_int.h"
#include "db.h"
#include "job.h"
#include "kek.h"
#include "kek_int.h"
#include "lifecycle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

/* ---- the stored columns ----------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)
/* KM_ATTN_* values, spelt out for SQL (checked below). */
#define A_DUE 1
#define A_OVERDUE 2
#define A_NEAR 4
#define A_COMPROMISED 8
_Static_assert(A_DUE == KM_ATTN_DUE && A_OVERDUE == KM_ATTN_OVERDUE && A_NEAR == KM_ATTN_NEAR_BOUND &&
               A_COMPROMISED == KM_ATTN_COMPROMISED, "attention bits as SQL knows them");

/* Due times and stored flags from the versions and the key's policy
 * values; %s is the WHERE clause. */
#define ACTIVE_VERSION "FROM key_versions v WHERE v.key_id = keys.id AND v.state = 'active' " \
	"ORDER BY v.version DESC LIMIT 1"
static const char refresh_sql[] =
	"UPDATE keys SET"
	" due_at = coalesce((SELECT v.activated + keys.cadence_s " ACTIVE_VERSION "), 0),"
	" overdue_at = coalesce((SELECT v.activated + 2 * keys.cadence_s " ACTIVE_VERSION "), 0),"
	" attention = (CASE WHEN keys.cur_state = 'compromised' OR EXISTS (SELECT 1 FROM key_versions v"
	"              WHERE v.key_id = keys.id AND v.state = 'compromised' AND v.assets > 0)"
	"              THEN " STR(A_COMPROMISED) " ELSE 0 END)"
	"  | coalesce((SELECT CASE WHEN v.wraps >= keys.usage_bound THEN " STR(A_DUE | A_OVERDUE | A_NEAR)
	"              WHEN v.wraps * 10 >= keys.usage_bound * 9 THEN " STR(A_DUE | A_NEAR) " ELSE 0 END "
	ACTIVE_VERSION "), 0) "
	"WHERE %s";

static int64_t bound_of(km_ctx *ctx, int64_t policy_bound)
{
	/* protect refuses past kek_max_wraps whatever the policy says, so
	 * that is the bound the schedule must warn about. */
	int64_t hard = ctx->cfg.kek_max_wraps > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ctx->cfg.kek_max_wraps;
	return policy_bound < hard ? policy_bound : hard;
}

static km_status run_refresh(km_ctx *ctx, const char *where, const char *b1, const char *b2, int64_t id,
                             uint64_t *changed, km_err *e)
{
	char sql[sizeof refresh_sql + 128];
	snprintf(sql, sizeof sql, refresh_sql, where);
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, sql, &q, e);
	if (st)
		return st;
	if (b1)
		sqlite3_bind_text(q, 1, b1, -1, SQLITE_STATIC);
	if (b2)
		sqlite3_bind_text(q, 2, b2, -1, SQLITE_STATIC);
	if (id)
		sqlite3_bind_int64(q, 3, id);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "updating the rotation schedule");
	else if (changed)
		*changed = (uint64_t)sqlite3_changes(ctx->db);
	sqlite3_finalize(q);
	return st;
}

km_status schedule_key_refresh(km_ctx *ctx, int64_t key_id, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT name, cadence_s FROM keys WHERE id = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	char name[KM_KEY_NAME_MAX + 1] = "";
	int64_t cadence = 0;
	if (sqlite3_step(q) == SQLITE_ROW) {
		snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(q, 0));
		cadence = sqlite3_column_int64(q, 1);
	} else {
		st = km_fail(e, KM_EINTERNAL, "refreshing the schedule of a key that does not exist");
	}
	sqlite3_finalize(q);
	if (st)
		return st;
	if (cadence == 0) {
		/* A new key: its policy values, once; policy changes keep them
		 * current after that. */
		km_policy *list;
		size_t n;
		if ((st = policy_load_all(ctx, &list, &n, e)))
			return st;
		km_policy_effective eff;
		policy_effective_from(list, n, name, &eff);
		free(list);
		if ((st = km_db_prepare(ctx->db, "UPDATE keys SET cadence_s = ?, usage_bound = ? WHERE id = ?", &q, e)))
			return st;
		sqlite3_bind_int64(q, 1, eff.v[KM_PF_CADENCE] * DAY);
		sqlite3_bind_int64(q, 2, bound_of(ctx, eff.v[KM_PF_USAGE_BOUND]));
		sqlite3_bind_int64(q, 3, key_id);
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "updating the rotation schedule");
		sqlite3_finalize(q);
		if (st)
			return st;
	}
	return run_refresh(ctx, "id = ?3", NULL, NULL, key_id, NULL, e);
}

/* Keys a scope covers, as SQL over keys.name with ?1 (and ?2): a prefix
 * is the range [p/, p0) on the name index ('0' follows '/'). */
static const char *scope_where(const char *scope, char *hi, size_t cap)
{
	size_t n = strlen(scope);
	if (n == 0)
		return "1";
	if (scope[n - 1] != '/')
		return "name = ?1";
	snprintf(hi, cap, "%.*s0", (int)(n - 1), scope);
	return "name >= ?1 AND name < ?2";
}

km_status schedule_scope_recompute(km_ctx *ctx, const char *scope, const km_policy *list, size_t n,
                                   uint64_t *keys, km_err *e)
{
	char hi[KM_POLICY_SCOPE_MAX + 2] = "", sql[512];
	const char *where = scope_where(scope, hi, sizeof hi);
	const char *b1 = scope[0] ? scope : NULL, *b2 = hi[0] ? hi : NULL;
	km_policy_effective def;
	policy_effective_from(NULL, 0, "", &def);
	/* Defaults, then every policy that sets the cadence or the bound,
	 * least specific first, each over the keys it covers: field by field
	 * the most specific one is written last.  Set-based, so a global
	 * change to 100,000 keys is a handful of statements. */
	km_status st = KM_OK;
	for (size_t i = 0; !st && i <= n; i++) {
		const km_policy *p = i ? &list[i - 1] : NULL;
		unsigned want = (1u << KM_PF_CADENCE) | (1u << KM_PF_USAGE_BOUND);
		if (p && !(p->set & want))
			continue;
		char phi[KM_POLICY_SCOPE_MAX + 2] = "";
		const char *pwhere = p ? scope_where(p->scope, phi, sizeof phi) : "1";
		/* The policy's own range uses ?4 and ?5. */
		char pw[128];
		snprintf(pw, sizeof pw, "%s", pwhere);
		for (char *c = pw; *c; c++)
			if (c[0] == '?' && (c[1] == '1' || c[1] == '2'))
				c[1] = (char)(c[1] + 3);
		snprintf(sql, sizeof sql, "UPDATE keys SET cadence_s = coalesce(?6, cadence_s), "
		         "usage_bound = coalesce(?7, usage_bound) WHERE (%s) AND (%s)", where, pw);
		sqlite3_stmt *q;
		if ((st = km_db_prepare(ctx->db, sql, &q, e)))
			break;
		if (b1)
			sqlite3_bind_text(q, 1, b1, -1, SQLITE_STATIC);
		if (b2)
			sqlite3_bind_text(q, 2, b2, -1, SQLITE_STATIC);
		if (p && p->scope[0])
			sqlite3_bind_text(q, 4, p->scope, -1, SQLITE_STATIC);
		if (phi[0])
			sqlite3_bind_text(q, 5, phi, -1, SQLITE_STATIC);
		const int64_t *v = p ? p->v : def.v;
		unsigned set = p ? p->set : ~0u;
		if (set & (1u << KM_PF_CADENCE))
			sqlite3_bind_int64(q, 6, v[KM_PF_CADENCE] * DAY);
		if (set & (1u << KM_PF_USAGE_BOUND))
			sqlite3_bind_int64(q, 7, bound_of(ctx, v[KM_PF_USAGE_BOUND]));
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "updating key policies");
		sqlite3_finalize(q);
	}
	if (!st)
		st = run_refresh(ctx, where, b1, b2, 0, keys, e);
	return st;
}

km_status schedule_counts(km_ctx *ctx, int64_t now, uint64_t *due, uint64_t *overdue, km_err *e)
{
	/* Each count is one index range plus the few keys with stored flags
	 * (a partial index); overdue keys are a subset of the due ones. */
	static const char *const sql[2] = {
		"SELECT (SELECT count(*) FROM keys WHERE overdue_at BETWEEN 1 AND ?1) + "
		"(SELECT count(*) FROM keys WHERE attention != 0 AND (attention & " STR(A_OVERDUE | A_COMPROMISED)
		") != 0 AND NOT (overdue_at BETWEEN 1 AND ?1))",
		"SELECT (SELECT count(*) FROM keys WHERE due_at BETWEEN 1 AND ?1) + "
		"(SELECT count(*) FROM keys WHERE attention != 0 AND (attention & " STR(A_DUE | A_OVERDUE | A_COMPROMISED)
		") != 0 AND NOT (due_at BETWEEN 1 AND ?1))",
	};
	int64_t v[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *q;
		km_status st = km_db_prepare(ctx->db, sql[i], &q, e);
		if (st)
			return st;
		sqlite3_bind_int64(q, 1, now);
		if (sqlite3_step(q) == SQLITE_ROW)
			v[i] = sqlite3_column_int64(q, 0);
		else
			st = km_db_fail(ctx->db, e, "counting due keys");
		sqlite3_finalize(q);
		if (st)
			return st;
	}
	*overdue = (uint64_t)v[0];
	*due = v[1] > v[0] ? (uint64_t)(v[1] - v[0]) : 0;
	return KM_OK;
}

/* ---- flags ------------------------------------------------------------ */

static const struct {
	unsigned bit;
	const char *word;
} attn_words[] = {
	{KM_ATTN_COMPROMISED, "compromised"}, {KM_ATTN_OVERDUE, "overdue"},
	{KM_ATTN_DUE, "due"},                 {KM_ATTN_NEAR_BOUND, "near-bound"},
	{KM_ATTN_PENDING_REQ, "request"},     {KM_ATTN_JOB, "job"},
};

void km_attention_format(unsigned flags, char *buf, size_t cap)
{
	size_t used = 0;
	if (!cap)
		return;
	buf[0] = '\0';
	/* "overdue" says "due" already. */
	if (flags & KM_ATTN_OVERDUE)
		flags &= ~(unsigned)KM_ATTN_DUE;
	for (size_t i = 0; i < KM_ARRAY_LEN(attn_words); i++) {
		if (!(flags & attn_words[i].bit))
			continue;
		int n = snprintf(buf + used, cap - used, "%s%s", used ? "," : "", attn_words[i].word);
		if (n < 0 || (size_t)n >= cap - used)
			break;
		used += (size_t)n;
	}
}

static unsigned time_flags(int64_t now, int64_t due_at, int64_t overdue_at)
{
	unsigned f = 0;
	if (due_at > 0 && due_at <= now)
		f |= KM_ATTN_DUE;
	if (overdue_at > 0 && overdue_at <= now)
		f |= KM_ATTN_OVERDUE | KM_ATTN_DUE;
	return f;
}

/* ---- open requests and jobs, by key ----------------------------------- */

typedef struct key_note {
	char key[KM_KEY_NAME_MAX + 1];
	char id[KM_REQUEST_ID_MAX];
} key_note;

typedef struct notes {
	key_note *v;
	size_t n, cap;
	int failed;
} notes;

static int notes_add(notes *ns, const char *key, const char *id)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 16;
		key_note *g = realloc(ns->v, cap * sizeof *g);
		if (!g) {
			ns->failed = 1;
			return 1;
		}
		ns->v = g;
		ns->cap = cap;
	}
	snprintf(ns->v[ns->n].key, sizeof ns->v[ns->n].key, "%s", key);
	snprintf(ns->v[ns->n].id, sizeof ns->v[ns->n].id, "%s", id);
	ns->n++;
	return 0;
}

static const char *notes_find(const notes *ns, const char *key)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].key, key) == 0)
			return ns->v[i].id;
	return NULL;
}

/* "key:NAME" or "key:NAME@3" -> NAME; 0 for other objects. */
static int object_key_name(const char *object, char *buf, size_t cap)
{
	if (strncmp(object, "key:", 4) != 0)
		return 0;
	snprintf(buf, cap, "%s", object + 4);
	char *at = strrchr(buf, '@');
	if (at)
		*at = '\0';
	return 1;
}

static int note_request(void *c, const km_request_info *r)
{
	char key[KM_KEY_NAME_MAX + 1];
	if ((r->state == KM_RS_PENDING || r->state == KM_RS_APPROVED) && object_key_name(r->object, key, sizeof key))
		return notes_add(c, key, r->id);
	return 0;
}

static int note_job(void *c, const km_job_info *j)
{
	if (j->state != KM_JOB_DONE && j->state != KM_JOB_FAILED && j->state != KM_JOB_CANCELLED)
		return notes_add(c, j->key, j->id);
	return 0;
}

static km_status open_work(km_ctx *ctx, notes *reqs, notes *jobs, km_err *e)
{
	km_request_query rq = {.pending_only = 1, .object = "key:"};
	km_status st = km_request_list(ctx, &rq, note_request, reqs, e);
	if (!st)
		st = km_job_list(ctx, 1, note_job, jobs, e);
	if (!st && (reqs->failed || jobs->failed))
		st = km_fail(e, KM_ENOMEM, "out of memory");
	return st;
}

/* ---- the schedule ----------------------------------------------------- */

#define ENTRY_COLS "k.name, k.cur_version, k.cur_state, k.due_at, k.overdue_at, k.attention, k.cadence_s, " \
	"k.usage_bound, coalesce(v.wraps, 0), coalesce(nullif(v.activated, 0), k.cur_created)"
#define ENTRY_FROM " FROM keys k LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = k.cur_version "

typedef struct entries {
	km_schedule_entry *v;
	size_t n, cap;
} entries;

static km_status entry_read(km_ctx *ctx, sqlite3_stmt *q, int64_t now, const km_policy *pl, size_t pn,
                            km_schedule_entry *s, km_err *e)
{
	memset(s, 0, sizeof *s);
	snprintf(s->key, sizeof s->key, "%s", (const char *)sqlite3_column_text(q, 0));
	s->version = (uint32_t)sqlite3_column_int64(q, 1);
	km_err ignored;
	if (km_state_parse((const char *)sqlite3_column_text(q, 2), &s->state, &ignored))
		s->state = KS_PENDING;
	s->due = sqlite3_column_int64(q, 3);
	s->attention = (unsigned)sqlite3_column_int64(q, 5) | time_flags(now, s->due, sqlite3_column_int64(q, 4));
	s->cadence_days = sqlite3_column_int64(q, 6) / DAY;
	s->usage_bound = (uint64_t)sqlite3_column_int64(q, 7);
	s->wraps = (uint64_t)sqlite3_column_int64(q, 8);
	s->last_rotation = sqlite3_column_int64(q, 9);
	km_policy_effective eff;
	policy_effective_from(pl, pn, s->key, &eff);
	snprintf(s->policy_source, sizeof s->policy_source, "%s", eff.source[KM_PF_CADENCE]);
	(void)ctx;
	(void)e;
	return KM_OK;
}

static km_status entries_add(entries *es, const km_schedule_entry *s, km_err *e)
{
	if (es->n == es->cap) {
		size_t cap = es->cap ? 2 * es->cap : 64;
		km_schedule_entry *g = realloc(es->v, cap * sizeof *g);
		if (!g)
			return km_fail(e, KM_ENOMEM, "out of memory for the schedule");
		es->v = g;
		es->cap = cap;
	}
	es->v[es->n++] = *s;
	return KM_OK;
}

static int entry_rank(const km_schedule_entry *s)
{
	if (s->attention & KM_ATTN_COMPROMISED)
		return 0;
	if (s->attention & KM_ATTN_OVERDUE)
		return 1;
	return 2;
}

static int entry_cmp(const void *a, const void *b)
{
	const km_schedule_entry *x = a, *y = b;
	int rx = entry_rank(x), ry = entry_rank(y);
	if (rx != ry)
		return rx < ry ? -1 : 1;
	/* Soonest due first; keys with nothing to rotate last. */
	int64_t dx = x->due ? x->due : INT64_MAX, dy = y->due ? y->due : INT64_MAX;
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcmp(x->key, y->key);
}

static km_status select_entries(km_ctx *ctx, const char *where, const char *bind, int64_t now,
                                const km_policy *pl, size_t pn, entries *es, km_err *e)
{
	char sql[768];
	snprintf(sql, sizeof sql, "SELECT " ENTRY_COLS ENTRY_FROM "WHERE %s", where);
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, sql, &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, now);
	if (bind)
		sqlite3_bind_text(q, 2, bind, -1, SQLITE_STATIC);
	int rc;
	while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_schedule_entry s;
		if (!(st = entry_read(ctx, q, now, pl, pn, &s, e)))
			st = entries_add(es, &s, e);
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading the schedule");
	sqlite3_finalize(q);
	return st;
}

static int entries_has(const entries *es, const char *key)
{
	for (size_t i = 0; i < es->n; i++)
		if (strcmp(es->v[i].key, key) == 0)
			return 1;
	return 0;
}

/* Keys needing attention (or all), with request and job flags, sorted. */
static km_status schedule_collect(km_ctx *ctx, int all, entries *es, km_err *e)
{
	notes reqs = {0}, jobs = {0};
	km_policy *pl = NULL;
	size_t pn = 0;
	int64_t now = km_ctx_now(ctx);
	km_status st = open_work(ctx, &reqs, &jobs, e);
	if (!st)
		st = policy_load_all(ctx, &pl, &pn, e);
	if (!st)
		st = select_entries(ctx, all ? "1" : "(k.due_at BETWEEN 1 AND ?1) OR k.attention != 0", NULL, now,
		                    pl, pn, es, e);
	/* Keys that need attention only for an open request or a job. */
	for (int pass = 0; !st && !all && pass < 2; pass++) {
		const notes *ns = pass ? &jobs : &reqs;
		for (size_t i = 0; !st && i < ns->n; i++)
			if (!entries_has(es, ns->v[i].key))
				st = select_entries(ctx, "k.name = ?2", ns->v[i].key, now, pl, pn, es, e);
	}
	for (size_t i = 0; !st && i < es->n; i++) {
		const char *r = notes_find(&reqs, es->v[i].key);
		if (r) {
			es->v[i].attention |= KM_ATTN_PENDING_REQ;
			snprintf(es->v[i].request_id, sizeof es->v[i].request_id, "%s", r);
		}
		if (notes_find(&jobs, es->v[i].key))
			es->v[i].attention |= KM_ATTN_JOB;
	}
	if (!st && es->n > 1)
		qsort(es->v, es->n, sizeof *es->v, entry_cmp);
	free(pl);
	free(reqs.v);
	free(jobs.v);
	return st;
}

km_status km_schedule_list(km_ctx *ctx, int all, int limit,
                           int (*cb)(void *c, const km_schedule_entry *s), void *cbctx, km_err *e)
{
	km_op_begin(ctx, KM_ACT_KEY_READ, "schedule");
	km_status st = km_op_end(ctx, km_authorize(ctx, KM_ACT_KEY_READ, "schedule", e), e);
	if (st)
		return st;
	entries es = {0};
	km_op_begin(ctx, KM_ACT_KEY_READ, "schedule");
	st = km_op_end(ctx, schedule_collect(ctx, all, &es, e), e);
	for (size_t i = 0; !st && i < es.n && (limit <= 0 || i < (size_t)limit); i++)
		if (cb(cbctx, &es.v[i]))
			break;
	free(es.v);
	return st;
}

static km_status key_attention_impl(km_ctx *ctx, const char *key, unsigned *flags, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 8];
	snprintf(obj, sizeof obj, "key:%s", key);
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, obj, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT due_at, overdue_at, attention FROM keys WHERE name = ?", &q, e)))
		return st;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*flags = (unsigned)sqlite3_column_int64(q, 2) |
		         time_flags(km_ctx_now(ctx), sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1));
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no key named '%s'", key);
	else
		st = km_db_fail(ctx->db, e, "reading the key");
	sqlite3_finalize(q);
	return st;
}

static km_status retired_impl(km_ctx *ctx, const char *key, int (*cb)(void *c, const km_retired_version *r),
                              void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 8];
	snprintf(obj, sizeof obj, "key:%s", key);
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, obj, e);
	int64_t key_id;
	if (st || (st = kek_lookup_id(ctx, key, &key_id, e)))
		return st;
	/* The list first, then each row through its seal (the load reads). */
	uint32_t vs[256];
	size_t n = 0;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT version FROM key_versions WHERE key_id = ? AND state = 'retired' "
	                        "ORDER BY version LIMIT 256", &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		vs[n++] = (uint32_t)sqlite3_column_int64(q, 0);
	if (rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading key versions");
	sqlite3_finalize(q);
	km_policy_effective pol;
	km_policy *pl = NULL;
	size_t pn = 0;
	if (!st && n && !(st = policy_load_all(ctx, &pl, &pn, e)))
		policy_effective_from(pl, pn, key, &pol);
	free(pl);
	for (size_t i = 0; i < n && !st; i++) {
		kek_version_row row;
		km_retired_version r = {0};
		if ((st = kek_version_load(ctx, key, vs[i], &row, e)) ||
		    (st = lifecycle_destroy_allowed_from(ctx, key, &row, &r.destroy_from, e)))
			break;
		r.version = vs[i];
		r.retired = row.retired;
		r.deprecation_days = pol.v[KM_PF_DEPRECATION];
		snprintf(r.deprecation_source, sizeof r.deprecation_source, "%s", pol.source[KM_PF_DEPRECATION]);
		if (cb(cbctx, &r))
			break;
	}
	return st;
}

km_status km_key_retired_versions(km_ctx *ctx, const char *key,
                                  int (*cb)(void *c, const km_retired_version *r), void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 8];
	snprintf(obj, sizeof obj, "key:%.128s", key ? key : "");
	km_op_begin(ctx, KM_ACT_KEY_READ, obj);
	return km_op_end(ctx, key && cb ? retired_impl(ctx, key, cb, cbctx, e)
	                                : km_fail(e, KM_EUSAGE, "no key given"), e);
}

km_status km_key_attention(km_ctx *ctx, const char *key, unsigned *flags, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 8];
	snprintf(obj, sizeof obj, "key:%.128s", key ? key : "");
	*flags = 0;
	km_op_begin(ctx, KM_ACT_KEY_READ, obj);
	km_status st = km_op_end(ctx, key ? key_attention_impl(ctx, key, flags, e)
	                                  : km_fail(e, KM_EUSAGE, "no key given"), e);
	if (st)
		return st;
	/* The request and job flags, from their own (authorised) listings. */
	notes reqs = {0}, jobs = {0};
	char prefix[KM_KEY_NAME_MAX + 8];
	snprintf(prefix, sizeof prefix, "key:%s", key);
	km_request_query rq = {.pending_only = 1, .object = prefix};
	st = km_request_list(ctx, &rq, note_request, &reqs, e);
	if (!st)
		st = km_job_list(ctx, 1, note_job, &jobs, e);
	if (!st && notes_find(&reqs, key))
		*flags |= KM_ATTN_PENDING_REQ;
	if (!st && notes_find(&jobs, key))
		*flags |= KM_ATTN_JOB;
	free(reqs.v);
	free(jobs.v);
	return st;
}

/* ---- rotate --due ----------------------------------------------------- */

typedef struct due_run {
	km_ctx *ctx;
	int dry_run;
	int (*cb)(void *c, const km_due_action *a);
	void *cbctx;
	km_status first;       /* the first failure */
	km_err first_err;
	int stop;              /* the callback asked to stop */
} due_run;

static void report(due_run *r, const char *key, const char *what, const char *id, km_status outcome,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(due_run *r, const char *key, const char *what, const char *id, km_status outcome,
                   const char *fmt, ...)
{
	km_due_action a;
	memset(&a, 0, sizeof a);
	snprintf(a.key, sizeof a.key, "%s", key ? key : "");
	snprintf(a.what, sizeof a.what, "%s", what);
	snprintf(a.request_id, sizeof a.request_id, "%s", id ? id : "");
	a.outcome = outcome;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a.message, sizeof a.message, fmt, ap);
	va_end(ap);
	if (outcome != KM_OK && r->first == KM_OK) {
		r->first = outcome;
		km_fail(&r->first_err, outcome, "%s %s: %s", what, key && *key ? key : (id ? id : ""), a.message);
	}
	if (r->cb && r->cb(r->cbctx, &a))
		r->stop = 1;
}

typedef struct req_row {
	char id[KM_REQUEST_ID_MAX];
	char key[KM_KEY_NAME_MAX + 1];
	km_request_kind kind;
	km_request_state state;
	int64_t expires;
} req_row;

typedef struct req_rows {
	req_row *v;
	size_t n, cap;
	int failed;
} req_rows;

static int collect_request(void *c, const km_request_info *r)
{
	req_rows *rs = c;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? 2 * rs->cap : 16;
		req_row *g = realloc(rs->v, cap * sizeof *g);
		if (!g) {
			rs->failed = 1;
			return 1;
		}
		rs->v = g;
		rs->cap = cap;
	}
	req_row *x = &rs->v[rs->n++];
	memset(x, 0, sizeof *x);
	snprintf(x->id, sizeof x->id, "%s", r->id);
	if (!object_key_name(r->object, x->key, sizeof x->key))
		x->key[0] = '\0';
	x->kind = r->kind;
	x->state = r->state;
	x->expires = r->expires;
	return 0;
}

static void expire_and_execute(due_run *r, int64_t now)
{
	req_rows rs = {0};
	km_err e;
	/* Requests past their expiry read as expired already; written so. */
	char (*ids)[KM_REQUEST_ID_MAX] = NULL;
	size_t nids = 0;
	km_status est = request_expired_list(r->ctx, now, &ids, &nids, &e);
	if (est)
		report(r, "", "expire", "", est, "cannot list requests: %s", e.msg);
	for (size_t i = 0; !est && i < nids && !r->stop; i++) {
		km_request_info info;
		char key[KM_KEY_NAME_MAX + 1] = "";
		if (km_request_get(r->ctx, ids[i], &info, &e) == KM_OK)
			object_key_name(info.object, key, sizeof key);
		if (r->dry_run) {
			report(r, key, "expire", ids[i], KM_OK, "would mark the expired request as expired");
			continue;
		}
		km_status st = request_expire(r->ctx, ids[i], &e);
		report(r, key, "expire", ids[i], st, "%s", st ? e.msg : "expired");
	}
	free(ids);
	km_request_query q = {.pending_only = 1};
	km_status st = km_request_list(r->ctx, &q, collect_request, &rs, &e);
	if (!st && rs.failed)
		st = km_fail(&e, KM_ENOMEM, "out of memory");
	if (st) {
		report(r, "", "execute", "", st, "cannot list requests: %s", e.msg);
		free(rs.v);
		return;
	}
	for (size_t i = 0; i < rs.n && !r->stop; i++) {
		req_row *x = &rs.v[i];
		char when[32];
		km_time_format(x->expires, when);
		if (x->expires > 0 && x->expires <= now) {
			if (r->dry_run) {
				report(r, x->key, "expire", x->id, KM_OK, "would expire (%s request, expired %s)",
				       km_request_kind_name(x->kind), when);
				continue;
			}
			st = request_expire(r->ctx, x->id, &e);
			report(r, x->key, "expire", x->id, st, "%s", st ? e.msg : "expired");
			continue;
		}
		if (x->state != KM_RS_APPROVED)
			continue;
		if (r->dry_run) {
			report(r, x->key, "execute", x->id, KM_OK, "would execute the approved %s request",
			       km_request_kind_name(x->kind));
			continue;
		}
		st = km_request_execute(r->ctx, x->id, NULL, NULL, &e);
		report(r, x->key, "execute", x->id, st, "%s", st ? e.msg : "executed");
	}
	free(rs.v);
}

static void resume_jobs(due_run *r)
{
	notes jobs = {0};
	km_err e;
	km_status st = km_job_list(r->ctx, 1, note_job, &jobs, &e);
	if (st) {
		report(r, "", "resume-job", "", st, "cannot list jobs: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < jobs.n && !r->stop; i++) {
		km_job_info j;
		/* Paused jobs were paused by a person: only queued ones and runs
		 * that died (their lease lapses) are resumed. */
		if (km_job_get(r->ctx, jobs.v[i].id, &j, &e) != KM_OK ||
		    (j.state != KM_JOB_QUEUED && j.state != KM_JOB_RUNNING))
			continue;
		if (r->dry_run) {
			report(r, j.key, "resume-job", j.request_id, KM_OK, "would run %s job %s (%llu of %llu done)",
			       km_job_kind_name(j.kind), j.id, (unsigned long long)j.done, (unsigned long long)j.total);
			continue;
		}
		st = km_job_run(r->ctx, j.id, NULL, NULL, &e);
		if (st == KM_EBUSY) /* another run holds it: not ours to finish */
			continue;
		report(r, j.key, "resume-job", j.request_id, st, "%s", st ? e.msg : "job finished");
	}
	free(jobs.v);
}

static void open_due_requests(due_run *r)
{
	entries es = {0};
	km_err e;
	km_status st = schedule_collect(r->ctx, 0, &es, &e);
	if (st) {
		report(r, "", "open-request", "", st, "cannot read the schedule: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < es.n && !r->stop; i++) {
		km_schedule_entry *s = &es.v[i];
		if (!(s->attention & (KM_ATTN_DUE | KM_ATTN_OVERDUE)) || (s->attention & KM_ATTN_PENDING_REQ) ||
		    s->state != KS_ACTIVE)
			continue;
		char why[320];
		if (s->wraps * 10 >= s->usage_bound * 9)
			snprintf(why, sizeof why, "scheduled: version %u has wrapped %llu of %llu", s->version,
			         (unsigned long long)s->wraps, (unsigned long long)s->usage_bound);
		else
			snprintf(why, sizeof why, "scheduled: version %u is older than the %lld-day cadence (%s)",
			         s->version, (long long)s->cadence_days, s->policy_source);
		if (r->dry_run) {
			report(r, s->key, "open-request", "", KM_OK, "would open a rotation request (%s)", why);
			continue;
		}
		char id[KM_REQUEST_ID_MAX] = "";
		st = km_request_rotate(r->ctx, s->key, why, id, &e);
		report(r, s->key, "open-request", id, st, "%s", st ? e.msg : why);
	}
	free(es.v);
}

/* One version through lifecycle_set_state in a transaction of its own. */
static km_status version_step(km_ctx *ctx, const char *key, uint32_t version, km_key_state to, km_action act,
                              const char *why, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 24];
	snprintf(obj, sizeof obj, "key:%s@%u", key, version);
	km_status st = km_tx_begin(ctx, e);
	if (st)
		return km_audit_failure(ctx, act, obj, e);
	json_t *d = json_pack("{s:s,s:s}", "by", "schedule", "why", why);
	st = lifecycle_set_state(ctx, key, version, to, d, e);
	if (!st) {
		st = km_tx_audit(ctx, km_action_name(act), obj, "ok", d, e);
		d = NULL;
	}
	json_decref(d);
	if (!st)
		st = km_tx_commit(ctx, e);
	else
		km_tx_rollback(ctx);
	if (st)
		return km_audit_failure(ctx, act, obj, e);
	/* Erased material must leave the write-ahead log too (lifecycle.h). */
	if (to == KS_DESTROYED)
		sqlite3_wal_checkpoint_v2(ctx->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return KM_OK;
}

typedef struct version_row {
	char key[KM_KEY_NAME_MAX + 1];
	uint32_t version;
	int64_t since;
} version_row;

static km_status versions_in(km_ctx *ctx, const char *sql, int64_t now, version_row **out, size_t *n, km_err *e)
{
	sqlite3_stmt *q;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	km_status st = km_db_prepare(ctx->db, sql, &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, now);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			version_row *g = realloc(*out, cap * sizeof *g);
			if (!g) {
				st = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			*out = g;
		}
		version_row *v = &(*out)[(*n)++];
		snprintf(v->key, sizeof v->key, "%s", (const char *)sqlite3_column_text(q, 0));
		v->version = (uint32_t)sqlite3_column_int64(q, 1);
		v->since = sqlite3_column_int64(q, 2);
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading key versions");
	sqlite3_finalize(q);
	return st;
}

static void retire_and_destroy(due_run *r, int64_t now)
{
	km_err e;
	km_policy *pl = NULL;
	size_t pn = 0;
	version_row *vs = NULL;
	size_t n = 0;
	/* Decrypt-only with nothing left under it: retired once its policy's
	 * transition window has passed since it stopped encrypting. */
	km_status st = policy_load_all(r->ctx, &pl, &pn, &e);
	if (!st)
		st = versions_in(r->ctx, "SELECT k.name, v.version, v.deactivated FROM key_versions v JOIN keys k "
		                 "ON k.id = v.key_id WHERE v.state = 'decrypt-only' AND v.assets = 0 "
		                 "ORDER BY k.name, v.version", now, &vs, &n, &e);
	if (st)
		report(r, "", "retire", "", st, "cannot read versions: %s", e.msg);
	for (size_t i = 0; !st && i < n && !r->stop; i++) {
		km_policy_effective eff;
		policy_effective_from(pl, pn, vs[i].key, &eff);
		int64_t window = eff.v[KM_PF_TRANSITION] * DAY;
		if (vs[i].since <= 0 || vs[i].since + window > now)
			continue;
		char why[320];
		snprintf(why, sizeof why, "no assets left and the %lld-day transition window (%s) has passed",
		         (long long)eff.v[KM_PF_TRANSITION], eff.source[KM_PF_TRANSITION]);
		/* Its destruction may be scheduled once the deprecation period
		 * has passed since now (lifecycle_destroy_check). */
		char from[32];
		km_time_format(now + eff.v[KM_PF_DEPRECATION] * DAY, from);
		if (r->dry_run) {
			report(r, vs[i].key, "retire", "", KM_OK, "would retire version %u: %s; its destruction could be "
			       "scheduled from %s", vs[i].version, why, from);
			continue;
		}
		km_status a = version_step(r->ctx, vs[i].key, vs[i].version, KS_RETIRED, KM_ACT_KEY_STATE, why, &e);
		if (a)
			report(r, vs[i].key, "retire", "", a, "version %u: %s", vs[i].version, e.msg);
		else
			report(r, vs[i].key, "retire", "", a, "version %u: retired; its destruction may be scheduled "
			       "from %s (deprecation_days %lld, %s)", vs[i].version, from,
			       (long long)eff.v[KM_PF_DEPRECATION], eff.source[KM_PF_DEPRECATION]);
	}
	free(vs);
	free(pl);
	vs = NULL;
	/* Destruction was approved when it was scheduled; it happens once the
	 * waiting period is over. */
	if (!r->stop && (st = versions_in(r->ctx, "SELECT k.name, v.version, v.destroy_after FROM key_versions v "
	                                  "JOIN keys k ON k.id = v.key_id WHERE v.state = 'destroy-scheduled' AND "
	                                  "v.destroy_after BETWEEN 1 AND ?1 ORDER BY k.name, v.version",
	                                  now, &vs, &n, &e)))
		report(r, "", "destroy", "", st, "cannot read versions: %s", e.msg);
	for (size_t i = 0; !st && i < n && !r->stop; i++) {
		char when[32];
		km_time_format(vs[i].since, when);
		if (r->dry_run) {
			report(r, vs[i].key, "destroy", "", KM_OK, "would destroy version %u (waiting period ended %s)",
			       vs[i].version, when);
			continue;
		}
		km_status a = version_step(r->ctx, vs[i].key, vs[i].version, KS_DESTROYED, KM_ACT_KEY_DESTROY,
		                           "the destruction waiting period has ended", &e);
		report(r, vs[i].key, "destroy", "", a, "version %u: %s", vs[i].version, a ? e.msg : "destroyed");
	}
	free(vs);
}

km_status km_rotate_due(km_ctx *ctx, int dry_run, int (*cb)(void *c, const km_due_action *a), void *cbctx,
                        km_err *e)
{
	km_op_begin(ctx, KM_ACT_ROTATE_DUE, "schedule");
	/* A dry run changes nothing, so reading the schedule is enough. */
	km_status st = km_op_end(ctx, km_authorize(ctx, dry_run ? KM_ACT_KEY_READ : KM_ACT_ROTATE_DUE,
	                                           "schedule", e), e);
	if (st)
		return st;
	due_run r = {ctx, dry_run, cb, cbctx, KM_OK, {KM_OK, ""}, 0};
	int64_t now = km_ctx_now(ctx);
	/* Expire first (an expired approval is never executed), then execute
	 * and resume what was approved, then open requests for keys still
	 * due, then the waiting periods.  Each action goes through its own
	 * audited path; one failure does not stop the others. */
	expire_and_execute(&r, now);
	if (!r.stop)
		resume_jobs(&r);
	if (!r.stop)
		open_due_requests(&r);
	if (!r.stop)
		retire_and_destroy(&r, now);
	if (r.first != KM_OK && e)
		*e = r.first_err;
	return r.first;
}
