/*
 * cli_forward.c — `keyward audit forward`: delivery of the audit log to the
 * sinks of config.json (core/forward.h does the work; this file words it).
 *
 * Failures and retries go to stderr as they happen, one line each, so a
 * systemd journal shows why a sink lags; the summary per sink goes to
 * stdout (with --json one object) when the run ends.
 */
#include "cli.h"
#include "forward.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t fwd_stop;

static void on_stop(int sig)
{
	(void)sig;
	fwd_stop = 1;
}

static void on_progress(void *pctx, const km_forward_sink_result *r)
{
	(void)pctx;
	if (r->status != KM_OK) {
		char msg[KM_ERR_MSG_MAX];
		ui_note("sink %s: %s", r->name, ui_clean(r->error, msg, sizeof msg));
	}
}

km_status ui_cmd_audit_forward(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t interval;
	km_status st = ui_arg_u64(a, "interval", 1000, 10, 3600000, &interval, e);
	if (st)
		return st;
	km_forward_opts o = {0};
	o.sink = ui_arg(a, "sink");
	o.follow = ui_arg_flag(a, "follow");
	o.poll_ms = (uint32_t)interval;
	o.stop = &fwd_stop;
	fwd_stop = 0;
	struct sigaction sa, old_int, old_term;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	km_forward_sink_result res[KM_SINKS_MAX];
	memset(res, 0, sizeof res);
	size_t n = 0;
	km_status fst = km_forward(cli->ctx, &o, on_progress, NULL, res, &n, e);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (n == 0)
		return fst;
	if (cli->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			const km_forward_sink_result *r = &res[i];
			json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "sink", r->name,
			                      "type", km_sink_kind_name(r->kind),
			                      "delivered", (json_int_t)r->delivered,
			                      "batches", (json_int_t)r->batches,
			                      "retries", (json_int_t)r->retries,
			                      "retry_after_waits", (json_int_t)r->retry_after_waits,
			                      "cursor", (json_int_t)r->cursor, "lag", (json_int_t)r->lag);
			if (r->kind == KM_SINK_WITNESS) {
				json_object_set_new(j, "conflicts", json_integer((json_int_t)r->conflicts));
				json_object_set_new(j, "cosignatures", json_integer((json_int_t)r->cosignatures));
				json_object_set_new(j, "witness_size", json_integer((json_int_t)r->witness_size));
				json_object_set_new(j, "alarm", json_boolean(r->alarm));
			}
			json_object_set_new(j, "error", r->status ? ui_json_text(r->error) : json_null());
			json_array_append_new(arr, j);
		}
		km_err pe;
		km_err_clear(&pe);
		ui_json_print(arr, &pe);
	} else {
		for (size_t i = 0; i < n; i++) {
			const km_forward_sink_result *r = &res[i];
			printf("%-16s %-8s delivered %" PRIu64 " in %" PRIu64 " batches, %" PRIu64
			       " retries; cursor %" PRIu64 ", lag %" PRIu64 "%s\n", r->name,
			       km_sink_kind_name(r->kind), r->delivered, r->batches, r->retries, r->cursor,
			       r->lag, r->alarm ? " (ALARM)" : r->status ? " (FAILED)" : "");
		}
	}
	return fst;
}
