/*
 * demo.c — demo content for `keyward init --demo` and `keyward demo`.
 *
 * Uses only public core calls, so the demo's catalogue and audit log are
 * exactly what a security officer's work would have produced.
 */
#include "demo.h"
#include "asset.h"
#include "kek.h"
#include "policy.h"
#include "ctx.h"
#include "lifecycle.h"
#include "lineage.h"
#include "request.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct demo_key {
	const char *name;
	const char *tags;      /* "k=v;k=v" */
	const char *assets;    /* "kind:name@ver;..." protected under version 1 */
	int rotations;         /* rotations after the first assets */
	const char *assets2;   /* protected under the newest version */
	/* Final touches on older versions: "1=retired" etc. */
	const char *states;
	/* The history, in days before today: the key's birth and each
	 * rotation (a state change says its own day: "1=retired@30").  With
	 * the policies below (90-day cadence, 30 for inference/) some keys
	 * end up due and some overdue. */
	int born, rotated[2];
} demo_key;

static const demo_key demo_keys[] = {
	{"features/credit-risk",
	 "data_category=financial;sensitivity=high;retention=7y;region=eu-west-1;owner=risk-ml",
	 "feature:credit-risk/income@1;feature:credit-risk/debt-ratio@1;feature:credit-risk/utilisation@1",
	 2, "feature:credit-risk/income@2;feature:credit-risk/debt-ratio@2;feature:credit-risk/delinquency-90d@1",
	 "1=retired@45", /* past its 30-day deprecation period */
	 236, {150, 60}},
	{"features/fraud-signals",
	 "data_category=behavioural;sensitivity=high;retention=2y;region=us-east-1;owner=fraud-ml",
	 "feature:fraud-signals/device-velocity@3;feature:fraud-signals/geo-mismatch@1",
	 1, "feature:fraud-signals/device-velocity@4;feature:fraud-signals/merchant-risk@2", "",
	 232, {100, 0}},
	{"feature-groups/customer-360",
	 "data_category=pii;sensitivity=high;retention=5y;region=eu-west-1;owner=customer-data",
	 "feature:customer-360/profile@12;feature:customer-360/tenure@3", 0, "", "",
	 230, {0, 0}},
	{"features/churn-propensity",
	 "data_category=behavioural;sensitivity=low;retention=1y;region=eu-west-1;owner=growth-ml",
	 "feature:churn-propensity/engagement@5", 0, "", "",
	 40, {0, 0}},
	{"datasets/claims-2024",
	 "data_category=health;sensitivity=high;retention=10y;region=eu-central-1;owner=claims-analytics",
	 "dataset:claims-2024/raw@2024-12-31;dataset:claims-2024/curated@v3", 1,
	 "dataset:claims-2024/curated@v4", "1=retired@60;1=destroy-scheduled@5",
	 228, {120, 0}},
	{"datasets/claims-2025",
	 "data_category=health;sensitivity=high;retention=10y;region=eu-central-1;owner=claims-analytics",
	 "dataset:claims-2025/raw@2025-06-30;dataset:claims-2025/train-split@v1;dataset:claims-2025/test-split@v1",
	 0, "", "",
	 200, {0, 0}},
	{"datasets/transactions-eu",
	 "data_category=financial;sensitivity=medium;retention=7y;region=eu-west-1;owner=payments-data",
	 "dataset:transactions-eu/daily@2026-11-01;dataset:transactions-eu/daily@2026-11-02", 1,
	 "dataset:transactions-eu/daily@2026-11-20", "",
	 180, {20, 0}},
	{"models/fraud-v4",
	 "data_category=model;sensitivity=medium;retention=3y;region=us-east-1;owner=fraud-ml",
	 "model:fraud-v4/weights@4.0.0;model:fraud-v4/tokenizer@4.0.0", 1,
	 "model:fraud-v4/weights@4.1.0", "1=retired@10",
	 220, {95, 0}},
	{"models/credit-scorer-v2",
	 "data_category=model;sensitivity=high;retention=7y;region=eu-west-1;owner=risk-ml",
	 "model:credit-scorer-v2/weights@2.3.1;model:credit-scorer-v2/calibration@2.3.1", 0, "", "",
	 170, {0, 0}},
	{"inference/scoring-api",
	 "data_category=inference-log;sensitivity=high;retention=30d;region=eu-west-1;owner=ml-platform",
	 "inference-log:scoring-api/requests@2026-11-21;inference-log:scoring-api/requests@2026-11-22", 1,
	 "inference-log:scoring-api/requests@2026-11-23", "2=compromised@2",
	 90, {25, 0}},
	{"inference/fraud-api",
	 "data_category=inference-log;sensitivity=medium;retention=30d;region=us-east-1;owner=fraud-ml",
	 "inference-log:fraud-api/requests@2026-11-23", 0, "", "",
	 70, {0, 0}},
};

/* Split "a;b;c" into a caller-sized array of pointers into buf. */
static size_t split(char *buf, char **out, size_t cap)
{
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(buf, ";", &save); t && n < cap; t = strtok_r(NULL, ";", &save))
		out[n++] = t;
	return n;
}

/* Where the demo keeps the envelope of asset `spec`: HOME/demo-assets/
 * and the spec with '/', ':' and '@' as '_', then ".kwe". */
#define DEMO_ASSET_PATH_MAX (PATH_MAX + 300)
static void demo_asset_path(km_ctx *ctx, const char *spec, char path[DEMO_ASSET_PATH_MAX])
{
	char file[256];
	size_t j = 0;
	for (const char *p = spec; *p && j + 1 < sizeof file - 5; p++)
		file[j++] = (*p == '/' || *p == ':' || *p == '@') ? '_' : *p;
	file[j] = '\0';
	snprintf(path, DEMO_ASSET_PATH_MAX, "%s/demo-assets/%s.kwe", km_config_get(ctx)->home, file);
}

static km_status protect_demo_asset(km_ctx *ctx, const char *key, const char *spec, km_err *e)
{
	char dir[PATH_MAX + 16], path[DEMO_ASSET_PATH_MAX];
	snprintf(dir, sizeof dir, "%s/demo-assets", km_config_get(ctx)->home);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return km_fail(e, KM_EIO, "cannot create %s: %s", dir, strerror(errno));
	demo_asset_path(ctx, spec, path);

	/* Plausible content: a CSV-ish body of a few KiB. */
	int fd = memfd_create("keyward-demo", MFD_CLOEXEC);
	if (fd < 0)
		return km_fail(e, KM_EIO, "memfd_create: %s", strerror(errno));
	FILE *f = fdopen(dup(fd), "w");
	if (!f) {
		close(fd);
		return km_fail(e, KM_EIO, "fdopen: %s", strerror(errno));
	}
	fprintf(f, "# demo data for %s\nentity_id,value,event_time\n", spec);
	for (int i = 0; i < 200; i++)
		fprintf(f, "%06d,%d.%02d,2026-11-%02dT%02d:00:00Z\n", i * 7919 % 1000000, (i * 37) % 1000, i % 100,
		        1 + i % 23, i % 24);
	fclose(f);
	lseek(fd, 0, SEEK_SET);
	km_status st = km_protect(ctx, key, spec, fd, -1, path, NULL, e);
	close(fd);
	return st;
}

static km_status protect_list(km_ctx *ctx, const char *key, const char *list, km_err *e)
{
	char buf[1024];
	char *specs[16];
	snprintf(buf, sizeof buf, "%s", list);
	size_t n = split(buf, specs, 16);
	for (size_t i = 0; i < n; i++) {
		km_status st = protect_demo_asset(ctx, key, specs[i], e);
		if (st)
			return km_wrap(e, "demo asset %s", specs[i]);
	}
	return KM_OK;
}

/* The demo's approvers, one session each for the whole fill (one
 * passphrase derivation each, not one per request). */
/* Three: a high-sensitivity key's policy asks for two approvers and a
 * high-risk request for one more (request_risk.c). */
static const char *const demo_approver_names[] = {"bob", "carol", "frank"};
typedef struct demo_approvers {
	km_ctx *s[KM_ARRAY_LEN(demo_approver_names)];
} demo_approvers;

km_status km_demo_prompt(void *c, const char *question, char *buf, size_t cap, km_err *e)
{
	(void)c, (void)question;
	if (cap <= strlen(KM_DEMO_PASSPHRASE))
		return km_fail(e, KM_EINTERNAL, "no room for the demo passphrase");
	snprintf(buf, cap, "%s", KM_DEMO_PASSPHRASE);
	return KM_OK;
}

/* Another demo person's session, on the demo's clock. */
static km_status demo_session(km_ctx *ctx, const char *user, km_ctx **out, km_err *e)
{
	km_open_opts o = {.home = km_config_get(ctx)->home, .user = user, .prompt = km_demo_prompt,
	                  .clock = ctx->clock, .clock_ctx = ctx->clock_ctx};
	return km_open(&o, out, e);
}

static void demo_approvers_close(demo_approvers *ap)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(ap->s); i++)
		km_close(ap->s[i]);
	memset(ap, 0, sizeof *ap);
}

/* Approve request id as the demo's approvers, one after the other until
 * its quorum is met; with execute, the session's person then carries it
 * out.  Exactly what two or three people at their terminals would do. */
static km_status demo_decide(km_ctx *ctx, demo_approvers *ap, const char *id, int execute, unsigned max_approvals,
                             km_err *e)
{
	km_request_info info;
	km_status st = km_request_get(ctx, id, &info, e);
	for (size_t i = 0; !st && i < KM_ARRAY_LEN(ap->s) && info.state == KM_RS_PENDING &&
	                   info.approvals < max_approvals; i++) {
		if (strcmp(demo_approver_names[i], km_actor_get(ctx)->name) == 0)
			continue;
		if (!ap->s[i] && (st = demo_session(ctx, demo_approver_names[i], &ap->s[i], e)))
			break;
		if (!(st = km_request_approve(ap->s[i], id, e)))
			st = km_request_get(ctx, id, &info, e);
	}
	if (!st && execute)
		st = km_request_execute(ctx, id, NULL, NULL, e);
	return st;
}

/* ---- the timeline ------------------------------------------------------ */

#define DEMO_DAY 86400

/* The calendar zone's offset from UTC at t (0 if the zone cannot be read
 * any more: it was checked when the config was loaded). */
static int64_t demo_tz_offset(const km_demo_timeline *t, int64_t at)
{
	int32_t off = 0;
	km_err ignored;
	if (km_anomaly_tz_offset(t->calendar.time_zone, at, &off, &ignored) != KM_OK)
		off = 0;
	return off;
}

/* The local day number of t (days since 1970-01-01 in the zone). */
static int64_t demo_local_day(const km_demo_timeline *t, int64_t at)
{
	int64_t local = at + demo_tz_offset(t, at);
	return local >= 0 ? local / DEMO_DAY : (local - DEMO_DAY + 1) / DEMO_DAY;
}

static int demo_working_day(const km_demo_timeline *t, int64_t day)
{
	int wday = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
	return (int)((t->calendar.work_days >> wday) & 1);
}

/* Unix time of minute `min` of local day `day` (the offset read an hour
 * before: the same as at the minute but across a DST change, which
 * happens at night, far from the minutes the demo uses). */
static int64_t demo_local_time(const km_demo_timeline *t, int64_t day, int min)
{
	int64_t local = day * DEMO_DAY + (int64_t)min * 60;
	return local - demo_tz_offset(t, local - 3600);
}

/* The working day a step `days` before the present happens on: that day,
 * or, if it is not a working day, the working day before it; never before
 * the day the clock is on (steps come oldest first), and if the clock is
 * on a day off already (the planted weekend night), the next working day
 * before today. */
static int64_t demo_step_day(const km_demo_timeline *t, int days)
{
	int64_t today = demo_local_day(t, t->present), day = today - days;
	if (day < t->day)
		day = t->day;
	int64_t back = day;
	while (back > t->day && !demo_working_day(t, back))
		back--;
	if (demo_working_day(t, back))
		return back;
	for (int64_t fwd = day; fwd < today; fwd++)
		if (demo_working_day(t, fwd))
			return fwd;
	return day;
}

/* Move the clock to the step `days` before the present, in working time:
 * a day's first step an hour or so after work starts, each next one 5 to
 * 27 minutes later (minutes from the count of steps: reproducible), never
 * past an hour or so before work ends, and never backwards. */
static void timeline_move(km_demo_timeline *t, int days)
{
	int start = t->calendar.work_start_min, span = t->calendar.work_end_min - start;
	int margin = span / 8;
	t->steps++;
	if (days <= 0) { /* the present: real time again */
		t->now = t->present > t->now ? t->present : t->now + 60;
		t->day = demo_local_day(t, t->now);
		return;
	}
	int64_t day = demo_step_day(t, days), when;
	if (day > t->day)
		when = demo_local_time(t, day, start + margin + (int)(t->steps * 17 % (unsigned)(margin + 1)));
	else {
		when = t->now + (int64_t)(5 + t->steps * 11 % 23) * 60;
		if (when > demo_local_time(t, day, start + span - margin))
			when = t->now + 60;
	}
	t->now = when > t->now ? when : t->now + 60;
	t->day = day;
}

void km_demo_timeline_start(km_demo_timeline *t, int64_t present)
{
	memset(t, 0, sizeof *t);
	t->present = present;
	km_anomaly_config_defaults(&t->calendar);
	t->day = INT32_MIN;
	timeline_move(t, KM_DEMO_HISTORY_DAYS);
}

int64_t km_demo_clock(void *timeline) { return ((km_demo_timeline *)timeline)->now; }

/* The session's timeline, or NULL when it is not on the demo's clock (a
 * session of `keyward demo` adding extras later keeps the real time). */
static km_demo_timeline *demo_timeline(km_ctx *ctx)
{
	return ctx->clock == km_demo_clock ? ctx->clock_ctx : NULL;
}

/* Move the demo's clock to `days` before today, in working time. */
static void demo_at(km_ctx *ctx, int days)
{
	km_demo_timeline *t = demo_timeline(ctx);
	if (t)
		timeline_move(t, days);
}

/* Let `seconds` pass within a step (a person working through a list). */
static void demo_tick(km_ctx *ctx, int seconds)
{
	km_demo_timeline *t = demo_timeline(ctx);
	if (t)
		t->now += seconds;
}

/* The planted weekend night (below): `days` before today is a day off by
 * the calendar; the evening, well after work ended. */
static void demo_at_night(km_ctx *ctx, int days)
{
	km_demo_timeline *t = demo_timeline(ctx);
	if (!t)
		return;
	int end = t->calendar.work_end_min;
	int64_t day = demo_local_day(t, t->present) - days;
	int64_t when = demo_local_time(t, day, end + (24 * 60 - end) * 3 / 4);
	t->steps++;
	t->now = when > t->now ? when : t->now + 60;
	t->day = day > t->day ? day : t->day;
}

/* How many days before today the planted weekend night is: the first day
 * off at least three weeks back (three weeks if the calendar has none). */
static int demo_night_days(km_ctx *ctx)
{
	km_demo_timeline *t = demo_timeline(ctx);
	if (!t)
		return 21;
	int64_t today = demo_local_day(t, t->present);
	for (int d = 21; d < 28; d++)
		if (!demo_working_day(t, today - d))
			return d;
	return 21;
}

/* One step of a showcase key's story. */
typedef struct demo_step {
	int days;          /* before today */
	size_t key;        /* index in demo_keys */
	int what;          /* 0 birth, 1 rotation, 2 state change */
	int n;             /* rotation number, or index of the state change */
} demo_step;

static km_status step_birth(km_ctx *ctx, const demo_key *k, km_err *e)
{
	char buf[1024];
	char *kv[16];
	km_tag tags[16];
	snprintf(buf, sizeof buf, "%s", k->tags);
	size_t nt = split(buf, kv, 16);
	for (size_t i = 0; i < nt; i++) {
		km_status st = km_tag_parse(kv[i], tags[i].key, tags[i].value, e);
		if (st)
			return st;
	}
	km_status st = km_key_create(ctx, k->name, tags, nt, e);
	if (!st)
		st = protect_list(ctx, k->name, k->assets, e);
	return st;
}

static km_status step_rotate(km_ctx *ctx, demo_approvers *ap, const demo_key *k, int n, km_err *e)
{
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_request_rotate(ctx, k->name, "demo: scheduled rotation", id, e);
	if (!st)
		st = demo_decide(ctx, ap, id, 1, 16, e);
	if (!st && n == k->rotations - 1 && k->assets2[0])
		st = protect_list(ctx, k->name, k->assets2, e);
	return st;
}

/* The n-th "V=STATE@DAYS" of k->states. */
static km_status step_state(km_ctx *ctx, demo_approvers *ap, const demo_key *k, int n, km_err *e)
{
	char buf[256], id[KM_REQUEST_ID_MAX];
	char *changes[8];
	snprintf(buf, sizeof buf, "%s", k->states);
	size_t nc = split(buf, changes, 8);
	if ((size_t)n >= nc)
		return km_fail(e, KM_EINTERNAL, "demo table: no state change %d for %s", n, k->name);
	char *eq = strchr(changes[n], '='), *at = strchr(changes[n], '@');
	km_key_state to;
	if (!eq || !at)
		return km_fail(e, KM_EINTERNAL, "demo table: bad state change '%s'", changes[n]);
	*eq = *at = '\0';
	uint32_t v = (uint32_t)atoi(changes[n]);
	km_status st = km_state_parse(eq + 1, &to, e);
	if (st)
		return st;
	/* A compromise acts at once; its emergency rotation is left
	 * half-approved for the approvals inbox. */
	if (to == KS_COMPROMISED) {
		if (!(st = km_key_compromise(ctx, k->name, v, "demo: the key leaked in a debug log", id, e)))
			st = demo_decide(ctx, ap, id, 0, 1, e);
		return st;
	}
	st = to == KS_DESTROY_SCHEDULED ? km_request_destroy(ctx, k->name, v, "demo: retention ended", id, e)
	                                : km_request_set_state(ctx, k->name, v, to, "demo: clean-up", id, e);
	if (!st)
		st = demo_decide(ctx, ap, id, 1, 16, e);
	return st;
}

/* ---- the recent past: what makes every screen worth opening ------------ */

/* Keys onboarded with many assets (registered in bulk, no files), whose
 * rotations are left paused midway: the running operations screen has
 * jobs to resume, pause and cancel. */
static const struct demo_bulk {
	const char *key, *asset_prefix, *category, *owner;
	unsigned assets, batch; /* the rewrap pauses after its first batch */
} demo_bulk[] = {
	{"features/clickstream-sessions", "feature:clickstream/session", "behavioural", "growth-ml", 1000, 400},
	{"features/session-embeddings", "feature:embeddings/session", "behavioural", "growth-ml", 300, 100},
	{"models/ranker-v2", "model:ranker-v2/shard", "model", "search-ml", 200, 50},
};

static km_status extra_bulk_birth(km_ctx *ctx, const struct demo_bulk *b, km_err *e)
{
	km_tag tags[3] = {{"data_category", ""}, {"sensitivity", "medium"}, {"owner", ""}};
	snprintf(tags[0].value, sizeof tags[0].value, "%s", b->category);
	snprintf(tags[2].value, sizeof tags[2].value, "%s", b->owner);
	km_status st = km_key_create(ctx, b->key, tags, 3, e);
	char (*specs)[64] = st ? NULL : malloc(sizeof(char[64]) * b->assets);
	const char **ptrs = st ? NULL : malloc(sizeof(char *) * b->assets);
	if (!st && (!specs || !ptrs))
		st = km_fail(e, KM_ENOMEM, "out of memory");
	for (size_t i = 0; !st && i < b->assets; i++) {
		snprintf(specs[i], 64, "%s-%05zu@1", b->asset_prefix, i);
		ptrs[i] = specs[i];
	}
	if (!st)
		st = km_asset_register_bulk(ctx, b->key, ptrs, b->assets, e);
	free(specs);
	free(ptrs);
	return st;
}

static int pause_after_first_batch(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)c, (void)done, (void)total, (void)what;
	return 1;
}

/* Its rotation, approved and executed, with the rewrap paused after its
 * first batch. */
static km_status extra_rotation_midway(km_ctx *ctx, demo_approvers *ap, const struct demo_bulk *b, km_err *e)
{
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_request_rotate(ctx, b->key, "demo: usage grew; rotate early", id, e);
	if (!st)
		st = demo_decide(ctx, ap, id, 0, 16, e);
	if (st)
		return st;
	uint32_t batch = ctx->cfg.job_batch;
	ctx->cfg.job_batch = b->batch;
	st = km_request_execute(ctx, id, pause_after_first_batch, NULL, e);
	ctx->cfg.job_batch = batch;
	return st;
}

/* A pending policy change by the officer alice, for the approvals inbox. */
static km_status extra_policy_request(km_ctx *ctx, km_err *e)
{
	km_ctx *alice = NULL;
	km_policy p = {.scope = "features/"};
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_policy_set_parse(&p, "cadence_days=60", e);
	if (!st)
		st = demo_session(ctx, "alice", &alice, e);
	if (!st)
		st = km_policy_propose(alice, &p, "demo: feature stores rotate every 60 days from Q1", id, e);
	km_close(alice);
	return st;
}

/* Attempts the log must show refused: an approver creating a key, a
 * service reading the inventory, a service protecting out of its scope. */
static km_status extra_denials(km_ctx *ctx, demo_approvers *ap, km_err *e)
{
	km_ctx *svc = NULL;
	km_err ignored;
	km_status st = KM_OK;
	if (!ap->s[0])
		st = demo_session(ctx, demo_approver_names[0], &ap->s[0], e);
	if (!st && km_key_create(ap->s[0], "features/shadow-copy", NULL, 0, &ignored) != KM_EDENIED)
		st = km_fail(e, KM_EINTERNAL, "demo: an approver could create a key");
	if (!st)
		st = demo_session(ctx, "svc-scoring-api", &svc, e);
	km_key_info k;
	if (!st && km_key_get(svc, "features/credit-risk", &k, &ignored) != KM_EDENIED)
		st = km_fail(e, KM_EINTERNAL, "demo: a service could read the inventory");
	km_close(svc);
	return st;
}

/* ---- lineage ------------------------------------------------------------ */

/* The demo's lineage: what a nightly sync from the data platform would
 * import, as OpenLineage run events through the ordinary import (one
 * audited transaction).  Sources feed jobs that build datasets, feature
 * groups and features (the showcase keys' assets), which train models,
 * which serve endpoints; one path starts at the inference logs under the
 * compromised inference/scoring-api v2, so its impact reaches a model and
 * an endpoint.  Each reference is "NAMESPACE|NAME[|VERSION]". */
static const struct demo_run {
	int days;              /* before today: the event's time */
	const char *job;
	const char *inputs, *outputs;
} demo_runs[] = {
	{236, "etl.loan_applications", "postgres://core-banking|public.loan_applications",
	 "s3://lake|curated/loan-applications"},
	{235, "features.credit_risk_build", "s3://lake|curated/loan-applications",
	 "feast://feature-store|groups/credit-risk;feast://feature-store|credit-risk/income|1;"
	 "feast://feature-store|credit-risk/debt-ratio|1;feast://feature-store|credit-risk/utilisation|1"},
	{229, "features.customer_360_build", "postgres://crm|public.customers;kafka://events|app-sessions",
	 "feast://feature-store|groups/customer-360;feast://feature-store|customer-360/profile|12;"
	 "feast://feature-store|customer-360/tenure|3"},
	{172, "training.credit_scorer_v2",
	 "feast://feature-store|credit-risk/income|1;feast://feature-store|credit-risk/debt-ratio|1;"
	 "feast://feature-store|credit-risk/utilisation|1;feast://feature-store|customer-360/profile|12",
	 "s3://ml-models|credit-scorer-v2/weights|2.3.1"},
	{168, "deploy.credit_score", "s3://ml-models|credit-scorer-v2/weights|2.3.1", "serving|credit-score"},
	{199, "claims.split", "s3://claims-lake|claims-2025/raw|2025-06-30",
	 "s3://claims-lake|claims-2025/train-split|v1;s3://claims-lake|claims-2025/test-split|v1"},
	{190, "training.claims_triage",
	 "s3://claims-lake|claims-2025/train-split|v1;s3://claims-lake|claims-2025/test-split|v1",
	 "mlflow://registry|claims-triage|1.2.0"},
	{188, "deploy.claims_triage", "mlflow://registry|claims-triage|1.2.0", "serving|claims-triage"},
	{19, "training.fraud_v4",
	 "feast://feature-store|fraud-signals/device-velocity|4;feast://feature-store|fraud-signals/merchant-risk|2;"
	 "s3://lake|transactions-eu/daily|2026-11-20",
	 "s3://ml-models|fraud-v4/weights|4.1.0"},
	{17, "deploy.fraud_score", "s3://ml-models|fraud-v4/weights|4.1.0", "serving|fraud-score"},
	{10, "feedback.label_join",
	 "s3://inference-logs|scoring-api/requests|2026-11-23;s3://claims-lake|claims-2025/raw|2025-06-30",
	 "s3://lake|training/credit-feedback"},
	{8, "features.feedback_build", "s3://lake|training/credit-feedback",
	 "feast://feature-store|groups/credit-feedback;feast://feature-store|credit-feedback/default-label"},
	{6, "training.credit_scorer_v3",
	 "feast://feature-store|credit-feedback/default-label;feast://feature-store|credit-risk/income|2",
	 "mlflow://registry|credit-scorer-v3|3.0.0-rc1"},
	{4, "deploy.credit_score_canary", "mlflow://registry|credit-scorer-v3|3.0.0-rc1",
	 "serving|credit-score-canary"},
};

/* How the platform's names join keyward's assets (config.json's
 * lineage_mappings; the first rule that matches wins). */
static const char demo_mappings[] =
	"[{\"namespace\":\"feast://feature-store\",\"name\":\"groups/*\",\"kind\":\"feature-group\"},"
	"{\"namespace\":\"feast://feature-store\",\"name\":\"credit-feedback/*\",\"kind\":\"feature\"},"
	"{\"namespace\":\"feast://feature-store\",\"name\":\"*\",\"asset\":\"feature:{name}\"},"
	"{\"namespace\":\"s3://ml-models\",\"name\":\"*\",\"asset\":\"model:{name}\"},"
	"{\"namespace\":\"s3://inference-logs\",\"name\":\"*\",\"asset\":\"inference-log:{name}\"},"
	"{\"namespace\":\"s3://claims-lake\",\"name\":\"*\",\"asset\":\"dataset:{name}\"},"
	"{\"namespace\":\"s3://lake\",\"name\":\"transactions-eu/*\",\"asset\":\"dataset:{name}\"},"
	"{\"namespace\":\"mlflow://registry\",\"name\":\"*\",\"kind\":\"model\"},"
	"{\"namespace\":\"serving\",\"name\":\"*\",\"kind\":\"endpoint\"},"
	"{\"namespace\":\"postgres://*\",\"name\":\"*\",\"kind\":\"source\"},"
	"{\"namespace\":\"kafka://*\",\"name\":\"*\",\"kind\":\"source\"}]";

static json_t *demo_datasets(const char *list)
{
	json_t *arr = json_array();
	char buf[600];
	snprintf(buf, sizeof buf, "%s", list);
	char *refs[8];
	size_t n = split(buf, refs, KM_ARRAY_LEN(refs));
	for (size_t i = 0; i < n; i++) {
		char *name = strchr(refs[i], '|');
		if (!name)
			continue;
		*name++ = '\0';
		char *ver = strchr(name, '|');
		if (ver)
			*ver++ = '\0';
		json_t *d = json_pack("{s:s,s:s}", "namespace", refs[i], "name", name);
		if (ver)
			json_object_set_new(d, "facets", json_pack("{s:{s:s,s:s,s:s}}", "version", "_producer",
			                                           "https://keyward.example/demo", "_schemaURL",
			                                           "https://openlineage.io/spec/facets/1-0-1/"
			                                           "DatasetVersionDatasetFacet.json",
			                                           "datasetVersion", ver));
		json_array_append_new(arr, d);
	}
	return arr;
}

static km_status extra_lineage(km_ctx *ctx, km_err *e)
{
	km_config *cfg = &ctx->cfg;
	if (!cfg->lineage_mappings) {
		cfg->lineage_mappings = json_loads(demo_mappings, 0, NULL);
		km_status st = cfg->lineage_mappings ? km_config_save(cfg, e)
		                                     : km_fail(e, KM_EINTERNAL, "demo: lineage mappings");
		if (st)
			return st;
	}
	json_t *events = json_array();
	int64_t now = km_ctx_now(ctx);
	for (size_t i = 0; i < KM_ARRAY_LEN(demo_runs); i++) {
		const struct demo_run *r = &demo_runs[i];
		char when[32], run_id[40];
		km_time_format(now - (int64_t)r->days * 86400, when);
		/* a fixed UUID per run: importing the demo twice changes nothing */
		snprintf(run_id, sizeof run_id, "0d3e0000-0000-4000-8000-%012zu", i + 1);
		json_array_append_new(events, json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:{s:s,s:s},s:o,s:o}",
		                                        "eventType", "COMPLETE", "eventTime", when, "producer",
		                                        "https://keyward.example/demo", "schemaURL",
		                                        "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
		                                        "run", "runId", run_id, "job", "namespace", "airflow://ml-platform",
		                                        "name", r->job, "inputs", demo_datasets(r->inputs),
		                                        "outputs", demo_datasets(r->outputs)));
	}
	char *text = json_dumps(events, JSON_COMPACT);
	json_decref(events);
	if (!text)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_lineage_import_result res;
	km_status st = km_lineage_import_buffer(ctx, text, strlen(text), "demo:lineage-sync", &res, e);
	free(text);
	return st;
}

/* ---- planted anomalies ------------------------------------------------- */

/* The rest of the history keeps to working hours and to each key's usual
 * people, so `keyward audit scan` on the demo finds exactly these, each
 * something an auditor should read (docs/audit.md, "The demo's
 * anomalies"; tests/test_demo.c checks the list at 03:00 and at 14:00):
 *
 *   the weekend night   alice, an officer who never used datasets/claims-2025
 *                       (health data), decrypts its raw data and both
 *                       training splits on a Saturday evening three weeks
 *                       ago: off-hours on key:datasets/claims-2025@1 and
 *                       first-use on key:datasets/claims-2025.
 *   the probing service svc-scoring-api, whose scope is models/ and
 *                       inference/, asks for 12 keys' details one after
 *                       another within two minutes, twelve days ago, and is
 *                       refused each time: denial-burst on
 *                       user:svc-scoring-api.
 *   the override        yesterday, the day after inference/scoring-api v2
 *                       was marked compromised, alice decrypts an inference
 *                       log still under v2 with the audited override:
 *                       version-use on key:inference/scoring-api@2 and
 *                       first-use on key:inference/scoring-api.
 */

/* Decrypt the demo envelope of `spec` as session s (the plaintext goes to
 * /dev/null: the use is the point, and nothing is kept). */
static km_status demo_decrypt(km_ctx *s, const char *spec, int override, km_err *e)
{
	char path[DEMO_ASSET_PATH_MAX];
	demo_asset_path(s, spec, path);
	int in = open(path, O_RDONLY | O_CLOEXEC), out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	km_status st = in < 0 || out < 0 ? km_fail(e, KM_EIO, "demo: cannot open %s: %s", path, strerror(errno))
	                                 : KM_OK;
	km_unprotect_opts o = {.override_compromised = override};
	if (!st)
		st = km_unprotect_ex(s, in, out, NULL, &o, NULL, e);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return st ? km_wrap(e, "demo: decrypting %s", spec) : KM_OK;
}

static const char *const night_specs[] = {
	"dataset:claims-2025/raw@2025-06-30", "dataset:claims-2025/train-split@v1",
	"dataset:claims-2025/test-split@v1", "dataset:claims-2025/raw@2025-06-30",
};

static km_status planted_weekend_night(km_ctx *ctx, km_err *e)
{
	km_ctx *alice = NULL;
	km_status st = demo_session(ctx, "alice", &alice, e);
	for (size_t i = 0; !st && i < KM_ARRAY_LEN(night_specs); i++) {
		if (i)
			demo_tick(ctx, 6 * 60 + 40);
		st = demo_decrypt(alice, night_specs[i], 0, e);
	}
	km_close(alice);
	return st;
}

static km_status planted_probing_service(km_ctx *ctx, km_err *e)
{
	km_ctx *svc = NULL;
	km_status st = demo_session(ctx, "svc-scoring-api", &svc, e);
	for (size_t i = 0; !st && i < 12; i++) {
		km_key_info k;
		km_err ignored;
		demo_tick(ctx, 9);
		if (km_key_get(svc, demo_keys[i % KM_ARRAY_LEN(demo_keys)].name, &k, &ignored) != KM_EDENIED)
			st = km_fail(e, KM_EINTERNAL, "demo: a service could read the inventory");
	}
	km_close(svc);
	return st;
}

static km_status planted_override(km_ctx *ctx, km_err *e)
{
	km_ctx *alice = NULL;
	km_status st = demo_session(ctx, "alice", &alice, e);
	if (!st)
		st = demo_decrypt(alice, "inference-log:scoring-api/requests@2026-11-23", 1, e);
	km_close(alice);
	return st;
}

/* Extra steps, by day: what 3 + i is bulk key i's birth, 6 + i its
 * rotation paused midway; 9 a policy proposal; 10 refused attempts; 11 the
 * lineage sync; 12-14 the planted anomalies (the night's day is the
 * calendar's, DEMO_NIGHT: demo_night_days). */
#define DEMO_NIGHT -1
static const struct {
	int days, what;
} demo_extras[] = {
	{100, 3}, {60, 4}, {45, 5}, /* the bulk keys are born */
	{1, 9},                     /* alice proposes a policy change */
	{1, 6}, {1, 7}, {1, 8},     /* their rotations, paused midway */
	{1, 10},                    /* refused attempts */
	{1, 11},                    /* the lineage sync from the data platform */
	{DEMO_NIGHT, 12},           /* planted: the weekend night */
	{12, 13},                   /* planted: the probing service */
	{1, 14},                    /* planted: the override, after the compromise */
};

static km_status step_extra(km_ctx *ctx, demo_approvers *ap, int what, km_err *e)
{
	if (what >= 3 && what < 6)
		return extra_bulk_birth(ctx, &demo_bulk[what - 3], e);
	if (what >= 6 && what < 9)
		return extra_rotation_midway(ctx, ap, &demo_bulk[what - 6], e);
	if (what == 11)
		return extra_lineage(ctx, e);
	if (what == 12)
		return planted_weekend_night(ctx, e);
	if (what == 13)
		return planted_probing_service(ctx, e);
	if (what == 14)
		return planted_override(ctx, e);
	return what == 9 ? extra_policy_request(ctx, e) : extra_denials(ctx, ap, e);
}

/* Every step of every showcase key, oldest first (a stable order within a
 * day: the table's). */
static size_t demo_steps(km_ctx *ctx, demo_step *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < KM_ARRAY_LEN(demo_keys); i++) {
		const demo_key *k = &demo_keys[i];
		if (n < cap)
			out[n++] = (demo_step){k->born, i, 0, 0};
		for (int r = 0; r < k->rotations && r < 2 && n < cap; r++)
			out[n++] = (demo_step){k->rotated[r], i, 1, r};
		int c = 0;
		for (const char *p = k->states; (p = strchr(p, '@')) != NULL && n < cap; p++, c++)
			out[n++] = (demo_step){atoi(p + 1), i, 2, c};
	}
	for (size_t i = 0; i < KM_ARRAY_LEN(demo_extras) && n < cap; i++)
		out[n++] = (demo_step){demo_extras[i].days == DEMO_NIGHT ? demo_night_days(ctx) : demo_extras[i].days,
		                       SIZE_MAX, demo_extras[i].what, 0};
	/* insertion sort: a few dozen steps */
	for (size_t i = 1; i < n; i++) {
		demo_step x = out[i];
		size_t j = i;
		for (; j > 0 && out[j - 1].days < x.days; j--)
			out[j] = out[j - 1];
		out[j] = x;
	}
	return n;
}

static km_status showcase_all(km_ctx *ctx, demo_approvers *ap, const km_demo_opts *o, km_err *e)
{
	demo_step steps[96];
	size_t n = demo_steps(ctx, steps, KM_ARRAY_LEN(steps));
	km_status st = KM_OK;
	for (size_t i = 0; !st && i < n; i++) {
		if (steps[i].key == SIZE_MAX && steps[i].what == 12)
			demo_at_night(ctx, steps[i].days);
		else
			demo_at(ctx, steps[i].days);
		if (steps[i].key == SIZE_MAX) {
			if ((st = step_extra(ctx, ap, steps[i].what, e)))
				st = km_wrap(e, "demo");
		} else {
			const demo_key *k = &demo_keys[steps[i].key];
			st = steps[i].what == 0 ? step_birth(ctx, k, e)
			   : steps[i].what == 1 ? step_rotate(ctx, ap, k, steps[i].n, e)
			                        : step_state(ctx, ap, k, steps[i].n, e);
			if (st)
				st = km_wrap(e, "demo: %s", k->name);
		}
		if (o->progress)
			o->progress(o->pctx, "showcase history", i + 1, n);
	}
	return st;
}

/* The demo's policies: a deployment-wide cadence and a request lifetime of
 * five days (the history's last days may move back over a weekend to the
 * Friday before, and the requests opened then must still be pending when
 * the console opens on the Monday), a shorter cadence for the
 * inference logs, and two approvers besides the requester for every key
 * tagged sensitivity=high above (the "high-sensitivity keys ask
 * for two").  JSON bodies as a policy request's "change" carries them. */
static const struct {
	const char *scope;
	const char *fields;
} demo_policies[] = {
	{"", "{\"cadence_days\":90,\"request_ttl_hours\":120}"},
	{"inference/", "{\"cadence_days\":30,\"transition_days\":7}"},
	{"datasets/", "{\"reencrypt\":1}"},
	{"features/credit-risk", "{\"quorum\":2}"},
	{"features/fraud-signals", "{\"quorum\":2}"},
	{"feature-groups/customer-360", "{\"quorum\":2}"},
	{"datasets/claims-2024", "{\"quorum\":2}"},
	{"datasets/claims-2025", "{\"quorum\":2,\"expedited_quorum\":2}"},
	{"models/credit-scorer-v2", "{\"quorum\":2}"},
	{"inference/scoring-api", "{\"quorum\":2}"},
};

/* A demo is not a real deployment: its policies are written directly
 * through policy_apply, in one transaction of the demo's own, with one
 * "policy.set" event each marked "demo": true, instead of going through
 * the quorum requests every real policy change needs (km_policy_propose). */
static km_status demo_policies_apply(km_ctx *ctx, km_err *e)
{
	km_status st = km_tx_begin(ctx, e);
	for (size_t i = 0; !st && i < KM_ARRAY_LEN(demo_policies); i++) {
		json_t *change = json_pack("{s:s,s:o}", "scope", demo_policies[i].scope, "set",
		                           json_loads(demo_policies[i].fields, 0, NULL));
		json_t *d = json_pack("{s:b}", "demo", 1);
		char obj[160];
		snprintf(obj, sizeof obj, "policy:%s", demo_policies[i].scope);
		st = change && d ? policy_apply(ctx, change, d, e) : km_fail(e, KM_ENOMEM, "out of memory");
		json_decref(change);
		if (!st)
			st = km_tx_audit(ctx, km_action_name(KM_ACT_POLICY_SET), obj, "ok", d, e);
		else
			json_decref(d);
	}
	if (!st)
		return km_tx_commit(ctx, e);
	km_tx_rollback(ctx);
	return km_wrap(e, "demo policies");
}

static const char *const bulk_kinds[] = {"feature", "dataset", "model", "inference-log"};
static const char *const bulk_regions[] = {"eu-west-1", "us-east-1", "eu-central-1", "ap-south-1"};
static const char *const bulk_levels[] = {"low", "medium", "high"};

static km_status extra_keys(km_ctx *ctx, const km_demo_opts *o, km_err *e)
{
	enum { BATCH = 2000 };
	char (*names)[64] = malloc(sizeof(char[64]) * BATCH);
	const char **ptrs = malloc(sizeof(char *) * BATCH);
	km_status st = (names && ptrs) ? KM_OK : km_fail(e, KM_ENOMEM, "out of memory");
	for (uint64_t done = 0; !st && done < o->extra_keys;) {
		size_t n = 0;
		uint64_t first = done;
		for (; n < BATCH && done < o->extra_keys; n++, done++) {
			snprintf(names[n], 64, "%ss/team-%03llu/scope-%06llu", bulk_kinds[done % 4],
			         (unsigned long long)(done / 97 % 1000), (unsigned long long)done);
			ptrs[n] = names[n];
		}
		km_tag tags[3];
		snprintf(tags[0].key, sizeof tags[0].key, "region");
		snprintf(tags[0].value, sizeof tags[0].value, "%s", bulk_regions[first / BATCH % 4]);
		snprintf(tags[1].key, sizeof tags[1].key, "sensitivity");
		snprintf(tags[1].value, sizeof tags[1].value, "%s", bulk_levels[first / BATCH % 3]);
		snprintf(tags[2].key, sizeof tags[2].key, "owner");
		snprintf(tags[2].value, sizeof tags[2].value, "team-%03llu", (unsigned long long)(first / BATCH));
		st = km_key_create_bulk(ctx, ptrs, n, tags, 3, e);
		if (o->progress)
			o->progress(o->pctx, "keys", done, o->extra_keys);
	}
	free(names);
	free(ptrs);
	return st;
}

static km_status extra_events(km_ctx *ctx, const km_demo_opts *o, km_err *e)
{
	enum { BATCH = 10000 };
	const char *key = "datasets/bulk-events";
	km_status st = km_key_create(ctx, key, NULL, 0, e);
	if (st == KM_EEXISTS)
		st = KM_OK;
	char (*specs)[80] = malloc(sizeof(char[80]) * BATCH);
	const char **ptrs = malloc(sizeof(char *) * BATCH);
	if (!specs || !ptrs)
		st = km_fail(e, KM_ENOMEM, "out of memory");
	for (uint64_t done = 0; !st && done < o->extra_events;) {
		size_t n = 0;
		for (; n < BATCH && done < o->extra_events; n++, done++) {
			snprintf(specs[n], 80, "dataset:bulk/partition-%llu@%llu", (unsigned long long)(done / 1000),
			         (unsigned long long)(done % 1000));
			ptrs[n] = specs[n];
		}
		st = km_asset_register_bulk(ctx, key, ptrs, n, e);
		if (o->progress)
			o->progress(o->pctx, "events", done, o->extra_events);
	}
	free(specs);
	free(ptrs);
	return st;
}

km_status km_demo_fill(km_ctx *ctx, const km_demo_opts *o, km_err *e)
{
	km_demo_opts none = {0, 0, NULL, NULL};
	if (!o)
		o = &none;
	km_key_info probe;
	km_err ignored;
	km_status st = KM_OK;
	/* The history keeps to the deployment's own calendar (the defaults
	 * at init, as the timeline began). */
	km_demo_timeline *t = demo_timeline(ctx);
	if (t && (st = km_anomaly_config_parse(ctx->cfg.anomaly, &t->calendar, e)))
		return st;
	/* Showcase content once; `keyward demo` may run again for extras. */
	if (km_key_get(ctx, demo_keys[0].name, &probe, &ignored) != KM_OK) {
		demo_approvers ap = {0};
		demo_at(ctx, KM_DEMO_HISTORY_DAYS);
		st = demo_policies_apply(ctx, e);
		if (!st)
			st = showcase_all(ctx, &ap, o, e);
		demo_approvers_close(&ap);
		demo_at(ctx, 0);
	}
	if (!st && o->extra_keys)
		st = extra_keys(ctx, o, e);
	if (!st && o->extra_events)
		st = extra_events(ctx, o, e);
	return st;
}
