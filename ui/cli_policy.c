/*
 * cli_policy.c — `keyward policy ...`, `keyward schedule` and
 * `keyward rotate --due`.
 *
 * Thin: parse arguments, call policy.h / schedule.h, print.  A policy
 * change only opens a request (its id is printed); the scheduler's
 * actions go through the core's own authorised, audited paths.
 */
#include "cli.h"
#include "policy.h"
#include "schedule.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_SETS_MAX 32

/* "global" (or "") on the command line is the deployment-wide policy. */
static const char *scope_arg(const char *s) { return strcmp(s, "global") == 0 ? "" : s; }
static const char *scope_show(const char *s) { return s[0] ? s : "global"; }

/* One compact JSON document per line (for scripts reading a stream). */
static km_status json_line(json_t *doc, km_err *e)
{
	char *t = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	if (!t)
		return km_fail(e, KM_ENOMEM, "out of memory building JSON output");
	puts(t);
	fflush(stdout);
	free(t);
	return KM_OK;
}

/* ---------------------------------------------------------------- show */

/* Retired versions, where deprecation_days matters: when each may have
 * its destruction scheduled. */
typedef struct retired_out {
	json_t *arr;
	char lines[16][320];
	size_t n;
	int64_t now;
} retired_out;

static int retired_row(void *c, const km_retired_version *r)
{
	retired_out *o = c;
	char since[32], from[32];
	km_time_format(r->retired, since);
	km_time_format(r->destroy_from, from);
	if (o->arr) {
		json_t *j = json_pack("{s:I,s:s,s:s,s:b}", "version", (json_int_t)r->version, "retired", since,
		                      "destroy_from", from, "destroy_allowed", r->destroy_from <= o->now);
		json_array_append_new(o->arr, j);
	} else if (o->n < KM_ARRAY_LEN(o->lines)) {
		int now = r->destroy_from <= o->now;
		snprintf(o->lines[o->n++], sizeof o->lines[0], "version %u retired %s: destruction may be scheduled %s%s%s",
		         r->version, r->retired ? since : "(time not kept)", now ? "now (since " : "from ", from,
		         now ? ")" : "");
	}
	return 0;
}

km_status ui_cmd_policy_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_policy_effective p;
	km_status st = km_policy_effective_get(cli->ctx, a->pos[0], &p, e);
	if (st)
		return st;
	/* A key (not a scope) may have retired versions. */
	retired_out ro = {cli->json ? json_array() : NULL, {{0}}, 0, km_ctx_now(cli->ctx)};
	if (a->pos[0] && a->pos[0][0] && a->pos[0][strlen(a->pos[0]) - 1] != '/' &&
	    strcmp(a->pos[0], "global") != 0) {
		km_err ignored;
		/* A scope name that is not a key has none: nothing to add. */
		if (km_key_retired_versions(cli->ctx, a->pos[0], retired_row, &ro, &ignored) != KM_OK && ro.arr)
			json_array_clear(ro.arr);
	}
	json_t *arr = cli->json ? json_array() : NULL;
	static const char *const hdr[] = {"FIELD", "VALUE", "SOURCE"};
	ui_table *t = cli->json ? NULL : ui_table_new(3, hdr);
	for (int f = 0; f < KM_PF_COUNT && !st; f++) {
		char v[32];
		snprintf(v, sizeof v, "%" PRId64, p.v[f]);
		if (arr) {
			json_t *o = json_pack("{s:s,s:I}", "field", km_policy_field_name((km_policy_field)f), "value",
			                      (json_int_t)p.v[f]);
			ui_json_set_text(o, "source", p.source[f]);
			json_array_append_new(arr, o);
		} else {
			const char *cells[] = {km_policy_field_name((km_policy_field)f), v, p.source[f]};
			st = ui_table_add(t, cells, e);
		}
	}
	if (st) {
		ui_table_free(t);
		json_decref(ro.arr);
		return st;
	}
	if (arr) {
		json_t *doc = json_object();
		ui_json_set_text(doc, "key", p.key);
		json_object_set_new(doc, "fields", arr);
		json_object_set_new(doc, "retired_versions", ro.arr);
		return ui_json_print(doc, e);
	}
	ui_print_line("effective policy of %s:", p.key);
	st = ui_listing_emit(NULL, t, e);
	for (size_t i = 0; i < ro.n && !st; i++)
		ui_print_line("%s", ro.lines[i]);
	return st;
}

/* ---------------------------------------------------------------- list */

typedef struct policy_out {
	json_t *arr;
	ui_table *t;
	km_status st;
	km_err *e;
	size_t n;
} policy_out;

static int policy_row(void *c, const km_policy *p)
{
	policy_out *o = c;
	o->n++;
	if (o->arr) {
		json_t *fields = json_object();
		for (int f = 0; f < KM_PF_COUNT; f++)
			if (p->set & (1u << f))
				json_object_set_new(fields, km_policy_field_name((km_policy_field)f),
				                    json_integer((json_int_t)p->v[f]));
		json_t *j = json_object();
		ui_json_set_text(j, "scope", p->scope);
		json_object_set_new(j, "fields", fields);
		json_array_append_new(o->arr, j);
		return 0;
	}
	char text[512] = "";
	size_t used = 0;
	for (int f = 0; f < KM_PF_COUNT; f++) {
		if (!(p->set & (1u << f)))
			continue;
		int n = snprintf(text + used, sizeof text - used, "%s%s=%" PRId64, used ? " " : "",
		                 km_policy_field_name((km_policy_field)f), p->v[f]);
		if (n < 0 || (size_t)n >= sizeof text - used)
			break;
		used += (size_t)n;
	}
	const char *cells[] = {scope_show(p->scope), text};
	o->st = ui_table_add(o->t, cells, o->e);
	return o->st != KM_OK;
}

km_status ui_cmd_policy_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	static const char *const hdr[] = {"SCOPE", "FIELDS"};
	policy_out o = {cli->json ? json_array() : NULL, cli->json ? NULL : ui_table_new(2, hdr), KM_OK, e, 0};
	km_status st = km_policy_list(cli->ctx, policy_row, &o, e);
	if (!st)
		st = o.st;
	if (st) {
		json_decref(o.arr);
		ui_table_free(o.t);
		return st;
	}
	if (!o.arr && o.n == 0) {
		ui_table_free(o.t);
		ui_note("no policies are stored: every key follows the built-in defaults (keyward policy show KEY)");
		return KM_OK;
	}
	return ui_listing_emit(o.arr, o.t, e);
}

/* ---------------------------------------------------------------- set / unset */

static km_status propose(ui_cli *cli, const ui_args *a, km_policy *p, const char *verb, km_err *e)
{
	char id[KM_REQUEST_ID_MAX] = "";
	km_status st = km_policy_propose(cli->ctx, p, ui_arg(a, "reason"), id, e);
	if (st)
		return st;
	if (cli->json) {
		json_t *o = json_pack("{s:s,s:s}", "request", id, "kind", "policy");
		ui_json_set_text(o, "scope", p->scope);
		return ui_json_print(o, e);
	}
	ui_print_line("%s", id);
	ui_note("request %s opened to %s the %s policy; it applies once approved and executed", id, verb,
	        scope_show(p->scope));
	return KM_OK;
}

km_status ui_cmd_policy_set(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *kv[POLICY_SETS_MAX + 1];
	size_t n = ui_arg_all(a, "set", kv, KM_ARRAY_LEN(kv));
	if (n == 0)
		return km_fail(e, KM_EUSAGE, "policy set needs at least one --set FIELD=VALUE (fields: keyward policy set --help)");
	if (n > POLICY_SETS_MAX)
		return km_fail(e, KM_EUSAGE, "at most %d --set options at once", POLICY_SETS_MAX);
	km_policy p;
	memset(&p, 0, sizeof p);
	const char *scope = scope_arg(a->pos[0]);
	if (strlen(scope) > KM_POLICY_SCOPE_MAX)
		return km_fail(e, KM_EINVAL, "policy scope is longer than %d characters", KM_POLICY_SCOPE_MAX);
	snprintf(p.scope, sizeof p.scope, "%s", scope);
	for (size_t i = 0; i < n; i++) {
		km_status st = km_policy_set_parse(&p, kv[i], e);
		if (st)
			return st;
	}
	return propose(cli, a, &p, "set", e);
}

km_status ui_cmd_policy_unset(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_policy p;
	memset(&p, 0, sizeof p);
	const char *scope = scope_arg(a->pos[0]);
	if (strlen(scope) > KM_POLICY_SCOPE_MAX)
		return km_fail(e, KM_EINVAL, "policy scope is longer than %d characters", KM_POLICY_SCOPE_MAX);
	snprintf(p.scope, sizeof p.scope, "%s", scope);
	return propose(cli, a, &p, "remove", e);
}

/* ---------------------------------------------------------------- schedule */

typedef struct sched_out {
	json_t *arr;
	ui_table *t;
	km_status st;
	km_err *e;
	size_t n;
} sched_out;

static int sched_row(void *c, const km_schedule_entry *s)
{
	sched_out *o = c;
	char flags[128], due[32], last[32], usage[64], cadence[32], version[16];
	km_attention_format(s->attention, flags, sizeof flags);
	o->n++;
	if (o->arr) {
		json_t *j = json_object();
		ui_json_set_text(j, "key", s->key);
		json_object_set_new(j, "version", json_integer(s->version));
		json_object_set_new(j, "state", json_string(km_state_name(s->state)));
		json_t *fl = json_array();
		char *save = NULL;
		for (char *w = strtok_r(flags, ",", &save); w; w = strtok_r(NULL, ",", &save))
			json_array_append_new(fl, json_string(w));
		json_object_set_new(j, "attention", fl);
		json_object_set_new(j, "due", ui_json_time(s->due));
		json_object_set_new(j, "last_rotation", ui_json_time(s->last_rotation));
		json_object_set_new(j, "wraps", json_integer((json_int_t)s->wraps));
		json_object_set_new(j, "usage_bound", json_integer((json_int_t)s->usage_bound));
		json_object_set_new(j, "cadence_days", json_integer((json_int_t)s->cadence_days));
		ui_json_set_text(j, "policy_source", s->policy_source);
		json_object_set_new(j, "request", s->request_id[0] ? json_string(s->request_id) : json_null());
		json_array_append_new(o->arr, j);
		return 0;
	}
	snprintf(version, sizeof version, "%" PRIu32, s->version);
	snprintf(usage, sizeof usage, "%" PRIu64 "/%" PRIu64, s->wraps, s->usage_bound);
	snprintf(cadence, sizeof cadence, "%" PRId64 "d", s->cadence_days);
	const char *cells[] = {s->key, version, km_state_name(s->state), flags[0] ? flags : "-",
	                       ui_time_str(s->due, due), ui_time_str(s->last_rotation, last), usage, cadence,
	                       s->policy_source, s->request_id[0] ? s->request_id : "-"};
	o->st = ui_table_add(o->t, cells, o->e);
	return o->st != KM_OK;
}

km_status ui_cmd_schedule(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t limit;
	km_status st = ui_arg_u64(a, "limit", 0, 0, 1000000000, &limit, e);
	if (st)
		return st;
	static const char *const hdr[] = {"KEY", "VER", "STATE", "ATTENTION", "DUE", "LAST ROTATION", "USAGE",
	                                   "CADENCE", "POLICY", "REQUEST"};
	sched_out o = {cli->json ? json_array() : NULL, cli->json ? NULL : ui_table_new(10, hdr), KM_OK, e, 0};
	st = km_schedule_list(cli->ctx, ui_arg_flag(a, "all"), (int)limit, sched_row, &o, e);
	if (!st)
		st = o.st;
	if (st) {
		json_decref(o.arr);
		ui_table_free(o.t);
		return st;
	}
	if (!o.arr && o.n == 0) {
		ui_table_free(o.t);
		ui_note("no key needs attention (keyward schedule --all lists every key)");
		return KM_OK;
	}
	return ui_listing_emit(o.arr, o.t, e);
}

/* ---------------------------------------------------------------- rotate --due */

typedef struct due_out {
	int json;
	size_t n, failed;
	km_err *e;
} due_out;

static int due_action(void *c, const km_due_action *x)
{
	due_out *o = c;
	o->n++;
	if (x->outcome != KM_OK)
		o->failed++;
	if (o->json) {
		json_t *j = json_pack("{s:s,s:s}", "action", x->what, "outcome", km_status_name(x->outcome));
		ui_json_set_text(j, "key", x->key[0] ? x->key : NULL);
		json_object_set_new(j, "request", x->request_id[0] ? json_string(x->request_id) : json_null());
		ui_json_set_text(j, "message", x->message);
		km_err ignored;
		json_line(j, &ignored);
		return 0;
	}
	ui_print_line("%-12s %-8s %s%s%s: %s", x->what, x->outcome == KM_OK ? "ok" : km_status_name(x->outcome),
	              x->key[0] ? x->key : "-", x->request_id[0] ? " " : "", x->request_id, x->message);
	return 0;
}

km_status ui_cmd_rotate(ui_cli *cli, const ui_args *a, km_err *e)
{
	if (!ui_arg_flag(a, "due"))
		return km_fail(e, KM_EUSAGE, "rotate takes --due (for cron: act on what is due); to rotate one key "
		               "use `keyward key rotate NAME`");
	int dry = ui_arg_flag(a, "dry-run");
	due_out o = {cli->json, 0, 0, e};
	km_status st = km_rotate_due(cli->ctx, dry, due_action, &o, e);
	if (!cli->json && o.n == 0 && st == KM_OK)
		ui_note("nothing is due");
	else if (!cli->json && o.failed && st != KM_OK)
		ui_note("%zu of %zu actions failed", o.failed, o.n);
	return st;
}
