/*
 * test_anomaly.c — anomaly detection (core/anomaly.c) on synthetic
 * histories in a real deployment (SoftHSM2, SQLite).
 *
 * Every scenario builds the same normal history — two services decrypting
 * their keys during Berlin working hours on two working weeks, a person
 * protecting now and then, one denial a day — on the session clock
 * (km_set_clock), then injects one pattern and scans.  It counts the
 * findings of the rule the pattern should trip (true positives, which must
 * be exactly the expected number, with the injected events as evidence)
 * and every other finding (false positives, which must be none).  The
 * normal history alone must raise nothing.  Events by other actors are
 * appended through the session's own audit path with the actor's name
 * swapped in (the path is the point; who is logged in is not).
 */
#include "anomaly.h"
#include "audit.h"
#include "ctx.h"
#include "kek.h"
#include "keystate.h"
#include "th_deploy.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static th_deploy D;
static km_ctx *ctx;
static int64_t clk;
static int64_t T0; /* a Monday, 00:00 UTC, after the deployment was made */
static char me[64];

static int64_t test_clock(void *c)
{
	(void)c;
	return clk;
}

#define DAY 86400

/* UTC time of local (Europe/Berlin) day d after T0, hh:mm. */
static int64_t berlin(int d, int hh, int mm)
{
	int64_t local = T0 + (int64_t)d * DAY + hh * 3600 + mm * 60;
	int32_t off = 0;
	km_err e;
	ck_assert_int_eq(km_anomaly_tz_offset("Europe/Berlin", local - 3600, &off, &e), KM_OK);
	return local - off;
}

static void tx_begin(void)
{
	km_err e;
	ck_assert_msg(km_tx_begin(ctx, &e) == KM_OK, "%s", e.msg);
}

static void tx_end(void)
{
	km_err e;
	ck_assert_msg(km_tx_commit(ctx, &e) == KM_OK, "%s", e.msg);
}

/* One event by `actor` at time t, inside an open transaction; its seq. */
static uint64_t emit(int64_t t, const char *actor, const char *action, const char *object,
                     const char *outcome, json_t *details)
{
	km_err e;
	clk = t;
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", actor);
	km_status st = km_tx_audit(ctx, action, object, outcome, details, &e);
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", me);
	ck_assert_msg(st == KM_OK, "%s", e.msg);
	uint64_t n = 0;
	ck_assert_int_eq(audit_size(km_db(ctx), &n, &e), KM_OK);
	return n;
}

static uint64_t decrypt(int64_t t, const char *actor, const char *key, const char *asset)
{
	char obj[128];
	snprintf(obj, sizeof obj, "key:%s@1", key);
	return emit(t, actor, "unprotect", obj, "ok", json_pack("{s:s,s:s}", "name", asset, "kind", "feature"));
}

/* The normal history is the same in every scenario, and making it (a
 * deployment, ~1,000 events in 54 transactions) costs more than any
 * scenario: it is made once per run, in a process of its own, into
 * template_dir, and each scenario gets its own copy (th_deploy_copy). */
static char template_dir[256];
#define ANOMALY_CFG                                                                                       \
	"\"anomaly\": {\"working_hours\": \"%s\", \"working_days\": \"mon-fri\", \"time_zone\": \"%s\", "      \
	"\"spike_min\": 60, \"spike_factor\": 5, \"mass_assets\": 25, \"mass_window_seconds\": 600, "        \
	"\"denials\": 5, \"denials_window_seconds\": 300, \"learn_hours\": %ld}"

/* The deployment and the normal history, into D (then closed). */
static void make_history(long *learn_out)
{
	int64_t now = km_now();
	T0 = (now / DAY + 3) * DAY;
	while (((T0 / DAY) + 4) % 7 != 1) /* 1970-01-01 was a Thursday; 1 = Monday */
		T0 += DAY;
	/* learning covers the deployment's making and the history's first day */
	long learn = (long)((T0 + DAY - now) / 3600 + 2);
	char cfg[1024];
	snprintf(cfg, sizeof cfg, ANOMALY_CFG, "08:00-18:00", "Europe/Berlin", learn);
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, cfg);
	ctx = th_deploy_open(&D, NULL);
	snprintf(me, sizeof me, "%s", km_actor_get(ctx)->name);
	km_err e;
	ck_assert_msg(km_key_create(ctx, "features/a", NULL, 0, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_key_create(ctx, "features/b", NULL, 0, &e) == KM_OK, "%s", e.msg);
	clk = T0;
	km_set_clock(ctx, test_clock, NULL);
	for (int d = 0; d < 12; d++) {
		if (d % 7 >= 5)
			continue; /* the weekend: nobody */
		for (int h = 10; h < 16; h++) {
			tx_begin();
			for (int k = 0; k < 8; k++) {
				char asset[32];
				snprintf(asset, sizeof asset, "a-%d", (d + h + k) % 10);
				decrypt(berlin(d, h, 5 * k), "svc-a", "features/a", asset);
				snprintf(asset, sizeof asset, "b-%d", (d * 3 + k) % 10);
				decrypt(berlin(d, h, 5 * k + 2), "svc-b", "features/b", asset);
			}
			if (h == 11)
				emit(berlin(d, h, 50), "alice", "protect", "key:features/a@1", "ok",
				     json_pack("{s:s}", "name", "alice-report"));
			if (h == 12)
				emit(berlin(d, h, 55), "mallory", "key.read", "key:features/a", "denied",
				     json_pack("{s:s}", "reason", "not allowed"));
			tx_end();
		}
	}
	km_close(ctx);
	ctx = NULL;
	*learn_out = learn;
}

/* The template, made by a child process (so that this one has never had
 * the template's token open when it opens its copy's). */
static void make_template(void)
{
	char ready[300];
	snprintf(ready, sizeof ready, "%s/ready", template_dir);
	if (access(ready, F_OK) == 0)
		return;
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		long learn = 0;
		make_history(&learn);
		th_deploy tpl;
		th_deploy_copy(&D, &tpl, template_dir);
		th_deploy_teardown(&D);
		FILE *f = fopen(ready, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "%lld %ld\n", (long long)T0, learn);
		ck_assert_int_eq(fclose(f), 0);
		exit(0);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "making the normal history failed");
	ck_assert_int_eq(access(ready, F_OK), 0);
}

/* This scenario's deployment: a copy of the template with the calendar's
 * zone and hours (NULL: Europe/Berlin, 08:00-18:00), open in ctx on the
 * session clock. */
static void normal_history(const char *tz, const char *hours)
{
	make_template();
	char ready[300];
	snprintf(ready, sizeof ready, "%s/ready", template_dir);
	FILE *f = fopen(ready, "r");
	ck_assert_ptr_nonnull(f);
	long long t0 = 0;
	long learn = 0;
	ck_assert_int_eq(fscanf(f, "%lld %ld", &t0, &learn), 2);
	fclose(f);
	T0 = (int64_t)t0;
	th_deploy tpl;
	th_deploy_at(&tpl, template_dir);
	th_deploy_copy(&tpl, &D, NULL);
	th_deploy_use(&D);
	if (tz || hours) {
		char cfg[1024];
		snprintf(cfg, sizeof cfg, ANOMALY_CFG, hours ? hours : "08:00-18:00", tz ? tz : "Europe/Berlin", learn);
		th_deploy_config(&D, cfg);
	}
	ctx = th_deploy_open(&D, NULL);
	snprintf(me, sizeof me, "%s", km_actor_get(ctx)->name);
	clk = T0;
	km_set_clock(ctx, test_clock, NULL);
}

static void teardown(void)
{
	if (ctx)
		km_close(ctx);
	ctx = NULL;
	th_deploy_teardown(&D);
}

typedef struct findings {
	int total;
	int by_rule[8];
	uint64_t evidence[64];
	size_t nevidence;
} findings;

static const char *const rules[] = {"decrypt-spike", "first-use", "off-hours", "mass-decrypt",
                                    "denial-burst", "version-use"};

static int finding_cb(void *c, const audit_row *r)
{
	findings *f = c;
	json_t *ev = json_loads(r->json, 0, NULL);
	ck_assert_ptr_nonnull(ev);
	json_t *d = json_object_get(ev, "details");
	const char *rule = json_string_value(json_object_get(d, "rule"));
	ck_assert_ptr_nonnull(rule);
	size_t i;
	for (i = 0; i < KM_ARRAY_LEN(rules); i++)
		if (strcmp(rules[i], rule) == 0)
			break;
	ck_assert_msg(i < KM_ARRAY_LEN(rules), "unknown rule %s", rule);
	f->by_rule[i]++;
	f->total++;
	json_t *x;
	json_array_foreach(json_object_get(d, "evidence"), i, x)
		if (f->nevidence < KM_ARRAY_LEN(f->evidence))
			f->evidence[f->nevidence++] = (uint64_t)json_integer_value(x);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(d, "reason")));
	json_decref(ev);
	return 0;
}

static findings scan_and_collect(void)
{
	km_err e;
	km_anomaly_scan_result r;
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", me);
	ck_assert_msg(km_anomaly_scan(ctx, &r, &e) == KM_OK, "%s", e.msg);
	findings f;
	memset(&f, 0, sizeof f);
	audit_filter q = {.action = KM_ANOMALY_ACTION};
	ck_assert_int_eq(audit_query(km_db(ctx), &q, 0, 1000, finding_cb, &f, &e), KM_OK);
	return f;
}

static int has_evidence(const findings *f, uint64_t seq)
{
	for (size_t i = 0; i < f->nevidence; i++)
		if (f->evidence[i] == seq)
			return 1;
	return 0;
}

static int rule_index(const char *rule)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(rules); i++)
		if (strcmp(rules[i], rule) == 0)
			return (int)i;
	ck_abort_msg("no rule %s", rule);
	return -1;
}

/* True and false positives of one scenario: exactly `want` findings of
 * `rule`, none of any other. */
static void assert_only(const findings *f, const char *scenario, const char *rule, int want)
{
	int tp = rule ? f->by_rule[rule_index(rule)] : 0;
	int fp = f->total - tp;
	printf("anomaly scenario %-16s true positives %d (want %d), false positives %d\n", scenario, tp, want, fp);
	for (size_t i = 0; i < KM_ARRAY_LEN(rules); i++)
		ck_assert_msg(rule && strcmp(rules[i], rule) == 0 ? f->by_rule[i] == want : f->by_rule[i] == 0,
		              "%s: %d findings of %s", scenario, f->by_rule[i], rules[i]);
}

/* ------------------------------------------------------------ scenarios */

START_TEST(normal_history_raises_nothing)
{
	normal_history(NULL, NULL);
	findings f = scan_and_collect();
	assert_only(&f, "normal", NULL, 0);
	/* a second scan reads only what came since, and still finds nothing */
	km_err e;
	uint64_t cursor = 0, size = 0;
	ck_assert_int_eq(km_anomaly_cursor(ctx, &cursor, &e), KM_OK);
	ck_assert_int_eq(audit_size(km_db(ctx), &size, &e), KM_OK);
	ck_assert_uint_gt(cursor, 900);
	ck_assert_uint_lt(cursor, size); /* the scan's own event came after it */
	km_anomaly_scan_result r;
	ck_assert_int_eq(km_anomaly_scan(ctx, &r, &e), KM_OK);
	ck_assert_uint_eq(r.from, cursor + 1);
	ck_assert_uint_lt(r.events, 5);
	uint64_t n = 0;
	ck_assert_int_eq(km_anomaly_count(ctx, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(spike_per_key_and_per_actor)
{
	normal_history(NULL, NULL);
	tx_begin();
	uint64_t first = 0;
	for (int k = 0; k < 100; k++) {
		char asset[16];
		snprintf(asset, sizeof asset, "a-%d", k % 5);
		uint64_t s = decrypt(berlin(14, 11, k / 2), "svc-a", "features/a", asset);
		if (!first)
			first = s;
	}
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "spike", "decrypt-spike", 2); /* the key's hour and the actor's hour */
	ck_assert(has_evidence(&f, first));
	uint64_t n = 0;
	km_err e;
	ck_assert_int_eq(km_anomaly_count(ctx, &n, &e), KM_OK);
	ck_assert_uint_eq(n, 2);
}
END_TEST

/* A spike that straddles two scans is found once, by the second. */
START_TEST(spike_across_two_scans_found_once)
{
	normal_history(NULL, NULL);
	for (int half = 0; half < 2; half++) {
		tx_begin();
		for (int k = 0; k < 50; k++)
			decrypt(berlin(14, 11, half * 25 + k / 2), "svc-a", "features/a", "a-1");
		tx_end();
		findings f = scan_and_collect();
		assert_only(&f, half ? "spike, 2nd scan" : "spike, 1st scan", half ? "decrypt-spike" : NULL,
		            half ? 2 : 0);
	}
	/* and a third scan adds nothing */
	findings f = scan_and_collect();
	assert_only(&f, "spike, 3rd scan", "decrypt-spike", 2);
}
END_TEST

START_TEST(first_use_by_a_new_actor)
{
	normal_history(NULL, NULL);
	tx_begin();
	uint64_t s = decrypt(berlin(14, 11, 0), "svc-c", "features/a", "a-1");
	decrypt(berlin(14, 11, 10), "svc-c", "features/a", "a-2"); /* the second use is not new */
	decrypt(berlin(14, 11, 20), "svc-a", "features/a", "a-2"); /* svc-a's is not either */
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "first-use", "first-use", 1);
	ck_assert(has_evidence(&f, s));
}
END_TEST

/* The key's creator protecting its first assets is how a key starts: no
 * finding; another actor's first use of the same new key is one. */
START_TEST(first_use_by_the_creator_is_not_reported)
{
	normal_history(NULL, NULL);
	km_err e;
	clk = berlin(14, 10, 0);
	ck_assert_msg(km_key_create(ctx, "features/c", NULL, 0, &e) == KM_OK, "%s", e.msg);
	tx_begin();
	emit(berlin(14, 10, 5), me, "protect", "key:features/c@1", "ok", json_pack("{s:s}", "name", "c-1"));
	uint64_t other = decrypt(berlin(14, 11, 0), "svc-a", "features/c", "c-1");
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "creator's first use", "first-use", 1);
	ck_assert(has_evidence(&f, other));
}
END_TEST

START_TEST(off_hours_by_the_configured_calendar)
{
	normal_history(NULL, NULL);
	tx_begin();
	/* 07:30 UTC on a Monday is working time in Berlin (08:30 or 09:30) */
	decrypt(T0 + 14 * DAY + 7 * 3600 + 30 * 60, "svc-a", "features/a", "a-1");
	/* a Saturday at noon, and a Tuesday at 22:00, Berlin time */
	uint64_t sat = decrypt(berlin(19, 12, 0), "svc-a", "features/a", "a-1");
	decrypt(berlin(19, 12, 10), "svc-a", "features/a", "a-2"); /* same hour: same finding */
	uint64_t night = decrypt(berlin(22, 22, 0), "svc-a", "features/a", "a-1");
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "off-hours", "off-hours", 2);
	ck_assert(has_evidence(&f, sat));
	ck_assert(has_evidence(&f, night));
}
END_TEST

/* The same history with the calendar in UTC: the 07:30 UTC use is early. */
START_TEST(off_hours_time_zone_matters)
{
	normal_history("UTC", "08:00-19:00");
	tx_begin();
	uint64_t early = decrypt(T0 + 14 * DAY + 7 * 3600 + 30 * 60, "svc-a", "features/a", "a-1");
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "off-hours UTC", "off-hours", 1);
	ck_assert(has_evidence(&f, early));
}
END_TEST

START_TEST(mass_decrypt_of_many_assets)
{
	normal_history(NULL, NULL);
	tx_begin();
	uint64_t last = 0;
	for (int k = 0; k < 30; k++) {
		char asset[16];
		snprintf(asset, sizeof asset, "b-%d", 100 + k);
		last = decrypt(berlin(14, 11, 0) + k * 10, "svc-b", "features/b", asset);
	}
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "mass-decrypt", "mass-decrypt", 1);
	ck_assert(!has_evidence(&f, last)); /* raised at the 25th asset, the crossing */
	ck_assert_uint_eq(f.nevidence, 25);
}
END_TEST

START_TEST(burst_of_denials)
{
	normal_history(NULL, NULL);
	tx_begin();
	uint64_t s = 0;
	for (int k = 0; k < 6; k++)
		s = emit(berlin(14, 12, 0) + k * 20, "mallory", "key.read", "key:features/b", "denied",
		         json_pack("{s:s}", "reason", "not allowed"));
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "denial-burst", "denial-burst", 1);
	ck_assert(!has_evidence(&f, s)); /* the 5th crossed the threshold */
	ck_assert(has_evidence(&f, s - 1));
}
END_TEST

START_TEST(decrypt_only_and_compromised_versions)
{
	normal_history(NULL, NULL);
	km_err e;
	clk = berlin(14, 9, 0);
	uint32_t nv = 0;
	ck_assert_msg(th_rotate(&D, ctx, "features/b", &nv, &e) == KM_OK, "%s", e.msg);
	km_status st = th_set_state(&D, ctx, "features/b", 1, KS_DECRYPT_ONLY, &e);
	(void)st; /* rotation may have made it decrypt-only already */
	tx_begin();
	uint64_t old = decrypt(berlin(14, 11, 0), "svc-b", "features/b", "b-1");
	uint64_t over = emit(berlin(14, 11, 5), "svc-a", "unprotect", "key:features/a@1", "ok",
	                     json_pack("{s:s,s:s,s:s,s:i}", "name", "a-1", "kind", "feature", "override",
	                               "compromised", "compromised_version", 1));
	tx_end();
	findings f = scan_and_collect();
	assert_only(&f, "version-use", "version-use", 2);
	ck_assert(has_evidence(&f, old));
	ck_assert(has_evidence(&f, over));
}
END_TEST

/* ------------------------------------------------------------ config */

START_TEST(config_thresholds_checked)
{
	static const struct {
		const char *json; /* the "anomaly" member */
		const char *error; /* NULL: accepted; else a substring of the message */
	} rows[] = {
		{"{}", NULL},
		{"{\"spike_factor\": 3, \"working_hours\": \"09:30-17:00\", \"working_days\": \"mon-wed,sat\", "
		 "\"time_zone\": \"America/New_York\", \"first_use\": false}", NULL},
		{"{\"spike_factor\": 0}", "\"anomaly.spike_factor\" must be an integer"},
		{"{\"spike_min\": \"20\"}", "\"anomaly.spike_min\" must be an integer"},
		{"{\"denials_window_seconds\": 9999999}", "\"anomaly.denials_window_seconds\""},
		{"{\"first_use\": 1}", "\"anomaly.first_use\" must be true or false"},
		{"{\"working_hours\": \"18:00-08:00\"}", "\"anomaly.working_hours\""},
		{"{\"working_hours\": \"8-18\"}", "\"anomaly.working_hours\" \"8-18\" must be HH:MM-HH:MM"},
		{"{\"working_days\": \"weekdays\"}", "\"anomaly.working_days\""},
		{"{\"time_zone\": \"Mars/Olympus_Mons\"}", "\"anomaly.time_zone\" \"Mars/Olympus_Mons\" is not a time zone"},
		{"{\"time_zone\": \"../../etc/passwd\"}", "is not a time zone name"},
		{"{\"spike\": 5}", "unknown setting \"anomaly.spike\""},
		{"[]", "\"anomaly\" must be an object"},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(rows); i++) {
		km_config c;
		km_config_defaults(&c, "/nonexistent");
		char text[600];
		snprintf(text, sizeof text, "{\"anomaly\": %s}", rows[i].json);
		km_err e;
		km_err_clear(&e);
		km_status st = km_config_parse(&c, text, "config.json", &e);
		if (!rows[i].error)
			ck_assert_msg(st == KM_OK, "row %zu refused: %s", i, e.msg);
		else
			ck_assert_msg(st == KM_ECONFIG && strstr(e.msg, rows[i].error) && strstr(e.msg, "config.json"),
			              "row %zu: %d '%s', want '%s'", i, st, e.msg, rows[i].error);
		km_config_free(&c);
	}
	km_anomaly_config ac;
	km_err e;
	json_t *o = json_pack("{s:s,s:s}", "working_hours", "09:30-17:00", "working_days", "fri-mon");
	ck_assert_int_eq(km_anomaly_config_parse(o, &ac, &e), KM_OK);
	json_decref(o);
	ck_assert_int_eq(ac.work_start_min, 570);
	ck_assert_int_eq(ac.work_end_min, 1020);
	ck_assert_uint_eq(ac.work_days, (1u << 5) | (1u << 6) | (1u << 0) | (1u << 1));
}
END_TEST

START_TEST(time_zone_offsets)
{
	int32_t off = -1;
	km_err e;
	ck_assert_int_eq(km_anomaly_tz_offset("UTC", 0, &off, &e), KM_OK);
	ck_assert_int_eq(off, 0);
	ck_assert_int_eq(km_anomaly_tz_offset("Europe/Berlin", 1768478400, &off, &e), KM_OK); /* 2026-01-15 */
	ck_assert_int_eq(off, 3600);
	ck_assert_int_eq(km_anomaly_tz_offset("Europe/Berlin", 1784116800, &off, &e), KM_OK); /* 2026-07-15 */
	ck_assert_int_eq(off, 7200);
	ck_assert_int_eq(km_anomaly_tz_offset("America/New_York", 1784116800, &off, &e), KM_OK);
	ck_assert_int_eq(off, -4 * 3600);
	ck_assert_int_eq(km_anomaly_tz_offset("Nowhere/Atlantis", 0, &off, &e), KM_ECONFIG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("anomaly");
	TCase *tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, normal_history_raises_nothing);
	tcase_add_test(tc, spike_per_key_and_per_actor);
	tcase_add_test(tc, spike_across_two_scans_found_once);
	tcase_add_test(tc, first_use_by_a_new_actor);
	tcase_add_test(tc, first_use_by_the_creator_is_not_reported);
	tcase_add_test(tc, off_hours_by_the_configured_calendar);
	tcase_add_test(tc, off_hours_time_zone_matters);
	tcase_add_test(tc, mass_decrypt_of_many_assets);
	tcase_add_test(tc, burst_of_denials);
	tcase_add_test(tc, decrypt_only_and_compromised_versions);
	suite_add_tcase(s, tc);
	TCase *tcfg = tcase_create("config");
	tcase_add_test(tcfg, config_thresholds_checked);
	tcase_add_test(tcfg, time_zone_offsets);
	suite_add_tcase(s, tcfg);
	/* the template's dir, which every scenario's process inherits */
	const char *t = getenv("TMPDIR");
	snprintf(template_dir, sizeof template_dir, "%s/kw-hsm-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(template_dir)) {
		perror(template_dir);
		return 1;
	}
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	th_hsm tpl;
	th_hsm_at(&tpl, template_dir);
	th_hsm_teardown(&tpl);
	return failed ? 1 : 0;
}
