/*
 * cli_anomaly.c — `keyward audit scan` and `keyward anomaly list`.
 *
 * The scan is the core's (anomaly.h); the list reads the anomaly events
 * through the authorised audit query, so it shows exactly what the log
 * holds.
 */
#include "cli.h"
#include "anomaly.h"
#include "auditlog.h"
#include "audittext.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

km_status ui_cmd_audit_scan(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	km_anomaly_scan_result r;
	km_status st = km_anomaly_scan(cli->ctx, &r, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(json_pack("{s:I,s:I,s:I,s:I}", "from", (json_int_t)r.from, "through",
		                               (json_int_t)r.through, "events", (json_int_t)r.events,
		                               "anomalies", (json_int_t)r.anomalies), e);
	if (r.events == 0)
		printf("nothing new since the last scan\n");
	else
		printf("scanned events %" PRIu64 "..%" PRIu64 ": %" PRIu64 " anomal%s\n", r.from, r.through,
		       r.anomalies, r.anomalies == 1 ? "y" : "ies");
	return KM_OK;
}

/* An anomaly event's parts, from its details. */
typedef struct anomaly_view {
	const char *rule, *subject, *reason;
	json_t *evidence;
} anomaly_view;

static void anomaly_parts(json_t *ev, anomaly_view *v)
{
	json_t *d = json_object_get(ev, "details");
	v->rule = json_string_value(json_object_get(d, "rule"));
	v->subject = json_string_value(json_object_get(d, "subject"));
	v->reason = json_string_value(json_object_get(d, "reason"));
	v->evidence = json_object_get(d, "evidence");
}

struct list_ctx {
	const char *rule;
	json_t *out; /* --json: the array */
	uint64_t n, want, last_seq, seen;
};

static int list_row(void *c, const audit_row *r)
{
	struct list_ctx *l = c;
	l->last_seq = r->seq;
	l->seen++;
	json_t *ev = json_loads(r->json, 0, NULL);
	anomaly_view v;
	anomaly_parts(ev, &v);
	if (!ev || (l->rule && (!v.rule || strcmp(v.rule, l->rule) != 0))) {
		json_decref(ev);
		return 0;
	}
	if (l->out) {
		json_t *o = json_object();
		json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
		ui_json_set_text(o, "time", r->time);
		ui_json_set_text(o, "rule", v.rule);
		ui_json_set_text(o, "subject", v.subject);
		ui_json_set_text(o, "object", r->object);
		ui_json_set_text(o, "reason", v.reason);
		json_object_set(o, "evidence", v.evidence ? v.evidence : json_array());
		json_array_append_new(l->out, o);
	} else {
		char ev_text[600] = "";
		size_t i;
		json_t *x;
		json_array_foreach(v.evidence, i, x) {
			size_t len = strlen(ev_text);
			if (i == 8 || len + 24 >= sizeof ev_text) {
				snprintf(ev_text + len, sizeof ev_text - len, ",... (%zu)", json_array_size(v.evidence));
				break;
			}
			if (0) {
				snprintf(ev_text + len, sizeof ev_text - len, ",...");
				break;
			}
			snprintf(ev_text + len, sizeof ev_text - len, "%s%" JSON_INTEGER_FORMAT, i ? "," : "",
			         json_integer_value(x));
		}
		ui_print_line("%8" PRIu64 "  %s  %-14s %-16s %s  evidence %s  %s", r->seq, r->time,
		              v.rule ? v.rule : "?", v.subject ? v.subject : "?", r->object ? r->object : "-",
		              ev_text, v.reason ? v.reason : "");
	}
	json_decref(ev);
	return ++l->n >= l->want;
}

km_status ui_cmd_anomaly_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t n;
	km_status st = ui_arg_u64(a, "lines", 50, 1, 1000000, &n, e);
	if (st != KM_OK)
		return st;
	/* a misspelt rule would list nothing and look like a clean log */
	static const char *const rules[] = {"decrypt-spike", "first-use", "off-hours", "mass-decrypt",
	                                    "denial-burst", "version-use"};
	const char *rule = ui_arg(a, "rule");
	int known = !rule;
	for (size_t i = 0; rule && i < sizeof rules / sizeof rules[0]; i++)
		known |= strcmp(rule, rules[i]) == 0;
	if (!known)
		return km_fail(e, KM_EUSAGE, "--rule \"%.64s\" is not a rule: decrypt-spike, first-use, off-hours, "
		               "mass-decrypt, denial-burst or version-use", rule);
	audit_filter f;
	memset(&f, 0, sizeof f);
	f.action = KM_ANOMALY_ACTION;
	struct list_ctx l = {.rule = rule, .want = n};
	if (cli->json)
		l.out = json_array();
	for (;;) {
		uint64_t seen = l.seen;
		st = km_audit_query(cli->ctx, &f, l.last_seq, 500, list_row, &l, e);
		if (st != KM_OK || l.n >= l.want || l.seen - seen < 500)
			break;
	}
	if (st != KM_OK) {
		json_decref(l.out);
		return st;
	}
	if (cli->json)
		return ui_json_print(l.out, e);
	if (l.n == 0)
		printf("no anomalies%s (run `keyward audit scan` to look for new ones)\n",
		       l.rule ? " of that rule" : "");
	return KM_OK;
}
