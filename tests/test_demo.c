/*
 * test_demo.c — the demo's history (core/demo.c) as the anomaly scanner
 * sees it, whatever hour `init --demo` ran at.
 *
 * The demo is made exactly as `keyward init --demo` makes it
 * (km_init_deployment with demo on, then km_demo_fill, both on the demo's
 * timeline), but with the present chosen by the test through the
 * timeline (km_demo_timeline_start): 03:00 on a Monday (the night, with
 * the weekend just behind: the last days of the story fall on days off),
 * 14:00 on a Wednesday, and 03:00 on a Monday with the calendar in
 * Asia/Tokyo.  A scan must then find exactly the anomalies
 * the demo plants (docs/audit.md, "The demo's anomalies"), by rule, object
 * and actor: none of the history's ordinary work may look off-hours or
 * new.  Before the history kept to working hours, the 03:00 demo raised
 * dozens of off-hours findings and one first-use per key.
 */
#include "anomaly.h"
#include "audit.h"
#include "ctx.h"
#include "config.h"
#include "demo.h"
#include "th_softhsm.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

static km_demo_timeline timeline;

/* Unix time of `weekday` (0 Sunday) at hh:00 UTC, in the week that began
 * at least a week before the real now: a past the demo can end at. */
static int64_t past(int weekday, int hh)
{
	int64_t day = km_now() / DAY - 14;
	while ((day + 4) % 7 != 0) /* 1970-01-01 was a Thursday */
		day++;
	return (day + weekday) * DAY + hh * 3600;
}

/* init --demo and the fill, with the history ending at `present` and the
 * scanner's calendar in time zone `tz` (NULL: the default, UTC) from
 * before the fill; the open session (on the demo's clock, now at the
 * present) in *out. */
static void make_demo(th_hsm *h, int64_t present, const char *tz, km_ctx **out)
{
	ck_assert_int_eq(th_hsm_setup(h), 0);
	char home[400], pin_file[500];
	snprintf(home, sizeof home, "%s/home", h->dir);
	snprintf(pin_file, sizeof pin_file, "%s/%s", home, KM_DEMO_PIN_FILE);
	km_demo_timeline_start(&timeline, present);
	km_init_opts o = {.home = home, .module_path = h->module, .token = "kw-demo",
	                  .softhsm2_conf = h->conf, .demo = 1, .passphrase = KM_DEMO_PASSPHRASE,
	                  .first_user_roles = KM_ROLE_OFFICER | KM_ROLE_AUDITOR, .argon2_t = 1,
	                  .argon2_m_kib = 8, .clock = km_demo_clock, .clock_ctx = &timeline};
	km_err e = {0};
	ck_assert_msg(km_init_deployment(&o, &e) == KM_OK, "init --demo: %s", e.msg);
	if (tz) {
		km_config c;
		char text[200];
		snprintf(text, sizeof text, "{\"anomaly\": {\"time_zone\": \"%s\"}}", tz);
		ck_assert_msg(km_config_load(&c, home, &e) == KM_OK, "%s", e.msg);
		ck_assert_msg(km_config_parse(&c, text, "test", &e) == KM_OK, "%s", e.msg);
		ck_assert_msg(km_config_save(&c, &e) == KM_OK, "%s", e.msg);
		km_config_free(&c);
	}
	km_open_opts oo = {.home = home, .pin_file = pin_file, .prompt = km_demo_prompt,
	                   .clock = km_demo_clock, .clock_ctx = &timeline};
	ck_assert_msg(km_open(&oo, out, &e) == KM_OK, "open: %s", e.msg);
	ck_assert_msg(km_demo_fill(*out, NULL, &e) == KM_OK, "demo: %s", e.msg);
	ck_assert_int_eq(km_ctx_now(*out), present);
}

/* Each finding as "rule object actor", in found[]. */
typedef struct found {
	char line[64][200];
	size_t n;
} found;

static int finding_cb(void *c, const audit_row *r)
{
	found *f = c;
	json_t *ev = json_loads(r->json, 0, NULL);
	ck_assert_ptr_nonnull(ev);
	json_t *d = json_object_get(ev, "details");
	ck_assert_uint_lt(f->n, KM_ARRAY_LEN(f->line));
	snprintf(f->line[f->n++], sizeof f->line[0], "%s %s %s", json_string_value(json_object_get(d, "rule")),
	         json_string_value(json_object_get(ev, "object")), json_string_value(json_object_get(d, "subject")));
	json_decref(ev);
	return 0;
}

static int by_text(const void *a, const void *b) { return strcmp(a, b); }

/* What the demo plants (core/demo.c, "planted anomalies"), sorted. */
static const char *const planted[] = {
	"denial-burst user:svc-scoring-api svc-scoring-api",
	"first-use key:datasets/claims-2025 alice",
	"first-use key:inference/scoring-api alice",
	"off-hours key:datasets/claims-2025@1 alice",
	"version-use key:inference/scoring-api@2 alice",
};

static void scan_finds_exactly_the_planted(int64_t present, const char *tz, const char *when)
{
	th_hsm h;
	km_ctx *ctx = NULL;
	make_demo(&h, present, tz, &ctx);
	km_err e = {0};
	km_anomaly_scan_result r;
	ck_assert_msg(km_anomaly_scan(ctx, &r, &e) == KM_OK, "scan: %s", e.msg);
	found f = {0};
	audit_filter q = {.action = KM_ANOMALY_ACTION};
	ck_assert_int_eq(audit_query(km_db(ctx), &q, 0, 100, finding_cb, &f, &e), KM_OK);
	qsort(f.line, f.n, sizeof f.line[0], by_text);
	for (size_t i = 0; i < f.n; i++)
		printf("demo at %s: %s\n", when, f.line[i]);
	ck_assert_msg(f.n == KM_ARRAY_LEN(planted), "demo at %s: %zu findings, want %zu", when, f.n,
	              KM_ARRAY_LEN(planted));
	for (size_t i = 0; i < f.n; i++)
		ck_assert_str_eq(f.line[i], planted[i]);
	ck_assert_uint_eq(r.anomalies, KM_ARRAY_LEN(planted));
	km_close(ctx);
	th_hsm_teardown(&h);
}

START_TEST(demo_made_at_three_in_the_night)
{
	scan_finds_exactly_the_planted(past(1, 3), NULL, "Monday 03:00");
}
END_TEST

START_TEST(demo_made_in_the_afternoon)
{
	scan_finds_exactly_the_planted(past(3, 14), NULL, "Wednesday 14:00");
}
END_TEST

/* The calendar in Tokyo (UTC+9, no summer time): the history keeps to
 * Tokyo's working hours, which a history in UTC's would miss by nine
 * hours.  Sunday 18:00 UTC is Monday 03:00 there. */
START_TEST(demo_made_at_night_in_tokyo)
{
	scan_finds_exactly_the_planted(past(0, 18), "Asia/Tokyo", "Monday 03:00 Tokyo");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("demo");
	TCase *tc = tcase_create("anomalies");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, demo_made_at_three_in_the_night);
	tcase_add_test(tc, demo_made_in_the_afternoon);
	tcase_add_test(tc, demo_made_at_night_in_tokyo);
	suite_add_tcase(s, tc);
	return th_run_suite(s) ? 1 : 0;
}
