/*
 * test_report.c — the auditor report's document (core/report.h) on a real
 * deployment (SoftHSM2, SQLite): a rotation through its request and a
 * compromise appear in their sections, the control map cites them with
 * proofs that verify against the checkpoint's root, the approvals'
 * signers are verified; an auditor's report holds no person's name and no
 * owner; --role never widens; the period filters; the time options and
 * who may run it.
 */
#include "th_deploy.h"
#include "report.h"
#include "auditproof.h"
#include "auditlog.h"
#include "kek.h"
#include "keystate.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static th_deploy D;
static void teardown(void) { th_deploy_teardown(&D); }

static json_t *control(json_t *doc, const char *id)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(doc, "controls"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "control")), id) == 0)
			return c;
	return NULL;
}

START_TEST(rotation_and_compromise_are_evidenced_with_proofs)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	km_tag owner = {"owner", "zz-owning-team"};
	ck_assert_msg(km_key_create(ctx, "features/rep", &owner, 1, &e) == KM_OK, "%s", e.msg);
	uint32_t nv = 0;
	ck_assert_msg(th_rotate(&D, ctx, "features/rep", &nv, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(nv, 2);
	ck_assert_msg(th_set_state(&D, ctx, "features/rep", 2, KS_COMPROMISED, &e) == KM_OK, "%s", e.msg);

	km_report_opts o = {0};
	json_t *doc;
	ck_assert_msg(km_report(ctx, &o, &doc, &e) == KM_OK, "%s", e.msg);
	ck_assert(json_is_false(json_object_get(doc, "redacted")));
	json_t *rot = json_object_get(doc, "rotations");
	ck_assert_uint_eq(json_array_size(rot), 1);
	json_t *r0 = json_array_get(rot, 0);
	ck_assert_str_eq(json_string_value(json_object_get(r0, "key")), "features/rep");
	ck_assert_int_eq(json_integer_value(json_object_get(r0, "from_version")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r0, "to_version")), 2);
	ck_assert(json_is_true(json_object_get(r0, "within_policy")));
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "compromises")), 1);
	/* the approvals: every signer's signature verifies */
	json_t *ap = json_object_get(doc, "approvals");
	ck_assert_uint_ge(json_array_size(ap), 1);
	size_t i, j;
	json_t *a, *s;
	json_array_foreach(ap, i, a) {
		ck_assert(json_is_true(json_object_get(a, "verified")));
		/* a compromise acts at once (approved afterwards); a rotation waits for its signers */
		if (strcmp(json_string_value(json_object_get(a, "kind")), "rotate") == 0)
			ck_assert_uint_ge(json_array_size(json_object_get(a, "signers")), 1);
		json_array_foreach(json_object_get(a, "signers"), j, s)
			ck_assert(json_is_true(json_object_get(s, "signature_valid")));
	}
	/* 3.7.4 cites the rotation; its proof verifies against the checkpoint */
	json_t *c = control(doc, "pci-3.7.4");
	ck_assert_str_eq(json_string_value(json_object_get(c, "status")), "evidenced");
	json_int_t seq = json_integer_value(json_object_get(r0, "seq"));
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(c, "events"), 0)), seq);
	ck_assert_str_eq(json_string_value(json_object_get(control(doc, "pci-3.7.9"), "status")),
	                 "not evidenced by events");
	char k[24];
	snprintf(k, sizeof k, "%" JSON_INTEGER_FORMAT, seq);
	json_t *p = json_object_get(json_object_get(doc, "proofs"), k);
	ck_assert_str_eq(json_string_value(json_object_get(p, "status")), "proven");
	km_audit_proof *pr = malloc(sizeof *pr);
	uint64_t size = (uint64_t)json_integer_value(json_object_get(p, "tree_size"));
	ck_assert_int_eq(km_audit_prove_inclusion(ctx, (uint64_t)seq, size, pr, &e), KM_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(p, "path")), pr->len);
	for (size_t x = 0; x < pr->len; x++) {
		char h[65];
		for (int b = 0; b < 32; b++)
			snprintf(h + 2 * b, 3, "%02x", pr->path[x][b]);
		ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "path"), x)), h);
	}
	free(pr);
	json_t *cp = json_object_get(json_object_get(doc, "verification"), "checkpoint");
	ck_assert_int_eq(json_integer_value(json_object_get(cp, "size")), (json_int_t)size);
	ck_assert(json_is_true(json_object_get(json_object_get(doc, "verification"), "intact")));
	json_decref(doc);

	/* an empty period: nothing to cite */
	o.from_ms = 1000;
	o.to_ms = 2000;
	ck_assert_int_eq(km_report(ctx, &o, &doc, &e), KM_OK);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "rotations")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(control(doc, "pci-3.7.4"), "status")),
	                 "no evidence in the period");
	json_decref(doc);

	/* rendered for an auditor: no person's name, no owner */
	km_report_opts ro = {.role = "auditor"};
	ck_assert_int_eq(km_report(ctx, &ro, &doc, &e), KM_OK);
	char *text = json_dumps(doc, 0);
	ck_assert(json_is_true(json_object_get(doc, "redacted")));
	ck_assert_ptr_null(strstr(text, "zz-owning-team"));
	ck_assert_ptr_null(strstr(text, "th-approver1"));
	ck_assert_ptr_nonnull(strstr(text, "person-"));
	ck_assert_ptr_nonnull(strstr(text, "features/rep")); /* key names stay */
	free(text);
	json_decref(doc);
	ro.role = "janitor";
	ck_assert_int_eq(km_report(ctx, &ro, &doc, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "--role"));
	km_close(ctx);
}
END_TEST

START_TEST(who_may_report_and_time_options)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	th_deploy_user(&D, ctx, "aud", KM_ROLE_AUDITOR, NULL);
	th_deploy_user(&D, ctx, "svc", KM_ROLE_SERVICE, "features/");
	km_close(ctx);
	km_err e;
	json_t *doc;
	km_report_opts o = {.role = "officer"};
	ctx = th_deploy_open(&D, "aud");
	ck_assert_int_eq(km_report(ctx, &o, &doc, &e), KM_OK);
	ck_assert(json_is_true(json_object_get(doc, "redacted"))); /* --role does not widen */
	json_decref(doc);
	km_close(ctx);
	ctx = th_deploy_open(&D, "svc");
	ck_assert_int_eq(km_report(ctx, NULL, &doc, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "report.read"));
	km_close(ctx);

	int64_t ms;
	ck_assert_int_eq(km_report_time_parse("from", "2026-11-30", 0, &ms, &e), KM_OK);
	ck_assert_int_eq(ms, 1795996800000LL);
	ck_assert_int_eq(km_report_time_parse("to", "2026-11-30", 1, &ms, &e), KM_OK);
	ck_assert_int_eq(ms, 1795996800000LL + 86400000);
	ck_assert_int_eq(km_report_time_parse("to", "2026-11-30T12:00:00Z", 1, &ms, &e), KM_OK);
	ck_assert_int_eq(ms, 1795996800000LL + 43200000);
	ck_assert_int_eq(km_report_time_parse("from", "yesterday", 0, &ms, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "--from \"yesterday\""));
	ck_assert_int_eq(km_report_time_parse("to", "2026-13-01", 1, &ms, &e), KM_EUSAGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "--to"));
}
END_TEST

/* Phases as the callback saw them, and where to cancel (-1: never). */
typedef struct phase_log {
	int seen[KM_REPORT_PHASES];
	int last_phase, order_ok, calls;
	int cancel_at; /* phase to cancel in */
} phase_log;

static int on_phase(void *c, km_report_phase ph, uint64_t done, uint64_t total)
{
	phase_log *l = c;
	l->calls++;
	if ((int)ph < l->last_phase || (total && done > total))
		l->order_ok = 0;
	l->last_phase = (int)ph;
	l->seen[ph]++;
	return (int)ph == l->cancel_at;
}

START_TEST(progress_phases_and_cancel)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_msg(km_key_create(ctx, "features/prog", NULL, 0, &e) == KM_OK, "%s", e.msg);
	/* every phase the core owns, in order; never rendering (the front end's) */
	phase_log l = {.order_ok = 1, .cancel_at = -1};
	km_report_opts o = {.progress = on_phase, .pctx = &l};
	json_t *doc = NULL;
	ck_assert_msg(km_report(ctx, &o, &doc, &e) == KM_OK, "%s", e.msg);
	json_decref(doc);
	ck_assert(l.order_ok);
	ck_assert_int_ge(l.seen[KM_REPORT_AGGREGATES], 5);
	ck_assert_int_ge(l.seen[KM_REPORT_VERIFICATION], 1);
	ck_assert_int_ge(l.seen[KM_REPORT_PROOFS], 2);
	ck_assert_int_eq(l.seen[KM_REPORT_RENDERING], 0);
	ck_assert_str_eq(km_report_phase_name(KM_REPORT_VERIFICATION), "verification");
	/* a cancel in each phase stops the report there, recorded as a failure */
	for (int ph = KM_REPORT_AGGREGATES; ph <= KM_REPORT_PROOFS; ph++) {
		phase_log c = {.order_ok = 1, .cancel_at = ph};
		km_report_opts co = {.progress = on_phase, .pctx = &c};
		doc = NULL;
		ck_assert_int_eq(km_report(ctx, &co, &doc, &e), KM_EBUSY);
		ck_assert_ptr_null(doc);
		ck_assert_str_eq(e.msg, "report cancelled");
		ck_assert_int_eq(c.last_phase, ph);
		for (int later = ph + 1; later < KM_REPORT_PHASES; later++)
			ck_assert_int_eq(c.seen[later], 0);
	}
	int errors = 0, oks = 0;
	audit_row row;
	for (uint64_t seq = 1;; seq++) {
		if (km_audit_get(ctx, seq, &row, &e) != KM_OK)
			break;
		if (row.action && strcmp(row.action, "report.read") == 0) {
			errors += row.outcome && strcmp(row.outcome, "error") == 0 && strstr(row.json, "report cancelled");
			oks += row.outcome && strcmp(row.outcome, "ok") == 0;
		}
		audit_row_free(&row);
	}
	ck_assert_int_eq(oks, 1);
	ck_assert_int_eq(errors, 3);
	km_close(ctx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("report");
	TCase *t = tcase_create("report");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 300);
	tcase_add_test(t, rotation_and_compromise_are_evidenced_with_proofs);
	tcase_add_test(t, who_may_report_and_time_options);
	tcase_add_test(t, progress_phases_and_cancel);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
