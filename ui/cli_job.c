/*
 * cli_job.c — `keyward job list|show|run|pause|cancel|unreachable`.
 *
 * `job run` resumes a queued, paused, failed or killed job with progress
 * on stderr (progress.h); Ctrl-C asks it to pause after its batch, and a
 * kill -9 loses at most that batch (job.h).
 */
#include "cli.h"
#include "job.h"
#include "progress.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *job_json(const km_job_info *j)
{
	json_t *o = json_object();
	ui_json_set_text(o, "id", j->id);
	json_object_set_new(o, "kind", json_string(km_job_kind_name(j->kind)));
	json_object_set_new(o, "state", json_string(km_job_state_name(j->state)));
	ui_json_set_text(o, "key", j->key);
	json_object_set_new(o, "from_version", json_integer(j->from_version));
	json_object_set_new(o, "to_version", json_integer(j->to_version));
	json_object_set_new(o, "request", j->request_id[0] ? ui_json_text(j->request_id) : json_null());
	json_object_set_new(o, "total", json_integer((json_int_t)j->total));
	json_object_set_new(o, "done", json_integer((json_int_t)j->done));
	json_object_set_new(o, "unreachable", json_integer((json_int_t)j->unreachable));
	json_object_set_new(o, "holder", j->holder[0] ? ui_json_text(j->holder) : json_null());
	json_object_set_new(o, "rate", json_real(j->rate));
	json_object_set_new(o, "eta_s", j->eta < 0 ? json_null() : json_integer(j->eta));
	json_object_set_new(o, "created", ui_json_time(j->created));
	json_object_set_new(o, "started", j->started ? ui_json_time(j->started) : json_null());
	json_object_set_new(o, "updated", ui_json_time(j->updated));
	json_object_set_new(o, "finished", j->finished ? ui_json_time(j->finished) : json_null());
	json_object_set_new(o, "error", j->error[0] ? ui_json_text(j->error) : json_null());
	return o;
}

static void eta_str(int64_t eta, char *buf, size_t cap)
{
	if (eta < 0)
		snprintf(buf, cap, "?");
	else
		snprintf(buf, cap, "%lld:%02lld", (long long)(eta / 60), (long long)(eta % 60));
}

typedef struct job_list {
	json_t *arr;
	ui_table *t;
	km_status st;
} job_list;

static int job_cb(void *c, const km_job_info *j)
{
	job_list *l = c;
	if (l->arr)
		return json_array_append_new(l->arr, job_json(j)) != 0;
	char move[48], prog[64], unr[24], rate[24], eta[24];
	snprintf(move, sizeof move, "v%" PRIu32 " -> v%" PRIu32, j->from_version, j->to_version);
	snprintf(prog, sizeof prog, "%" PRIu64 "/%" PRIu64, j->done, j->total);
	snprintf(unr, sizeof unr, "%" PRIu64, j->unreachable);
	snprintf(rate, sizeof rate, "%.0f/s", j->rate);
	eta_str(j->eta, eta, sizeof eta);
	const char *cells[] = {j->id, km_job_kind_name(j->kind), j->key, move, km_job_state_name(j->state), prog,
	                       unr, rate, eta, j->holder[0] ? j->holder : NULL};
	l->st = ui_table_add(l->t, cells, NULL);
	return l->st != KM_OK;
}

km_status ui_cmd_job_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	static const char *const hdr[] = {"ID", "KIND", "KEY", "MOVE", "STATE", "DONE", "UNREACHABLE", "RATE",
	                                  "ETA", "HOLDER"};
	job_list l = {0};
	if (cli->json)
		l.arr = json_array();
	else
		l.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!l.arr && !l.t)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = km_job_list(cli->ctx, !ui_arg_flag(a, "all"), job_cb, &l, e);
	if (st == KM_OK && l.st != KM_OK)
		st = km_fail(e, l.st, "out of memory listing jobs");
	if (st == KM_OK)
		return ui_listing_emit(l.arr, l.t, e);
	json_decref(l.arr);
	ui_table_free(l.t);
	return st;
}

km_status ui_cmd_job_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_job_info j;
	km_status st = km_job_get(cli->ctx, a->pos[0], &j, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(job_json(&j), e);
	char t1[32], t2[32], eta[24];
	ui_print_line("job:         %s (%s)", j.id, km_job_kind_name(j.kind));
	ui_print_line("key:         %s, version %" PRIu32 " -> %" PRIu32, j.key, j.from_version, j.to_version);
	if (j.request_id[0])
		ui_print_line("request:     %s", j.request_id);
	ui_print_line("state:       %s%s%s", km_job_state_name(j.state), j.holder[0] ? ", run by " : "", j.holder);
	ui_print_line("progress:    %" PRIu64 " of %" PRIu64 " done, %" PRIu64 " unreachable", j.done, j.total,
	              j.unreachable);
	eta_str(j.eta, eta, sizeof eta);
	ui_print_line("rate:        %.0f assets/s over the last run, ETA %s", j.rate, eta);
	ui_print_line("created:     %s", ui_time_str(j.created, t1));
	if (j.started)
		ui_print_line("started:     %s, last batch %s", ui_time_str(j.started, t1), ui_time_str(j.updated, t2));
	if (j.finished)
		ui_print_line("finished:    %s", ui_time_str(j.finished, t1));
	if (j.error[0])
		ui_print_line("error:       %s", j.error);
	if (j.unreachable)
		ui_print_line("unreachable: `keyward job unreachable %s` lists them", j.id);
	return KM_OK;
}

static void on_sigint(int sig)
{
	(void)sig;
	ui_progress_interrupt();
}

km_status ui_cmd_job_run(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *id = a->pos[0];
	km_job_info j;
	km_status st = km_job_get(cli->ctx, id, &j, e);
	if (st != KM_OK)
		return st;
	ui_progress *p = ui_progress_new(stderr, isatty(STDERR_FILENO), id, j.done + j.unreachable);
	if (!p)
		return km_fail(e, KM_ENOMEM, "out of memory");
	/* Ctrl-C: pause after the batch in flight (the handler sets a flag). */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	st = km_job_run(cli->ctx, id, ui_progress_cb, p, e);
	sigaction(SIGINT, &old, NULL);
	ui_progress_end(p);
	if (st != KM_OK)
		return st;
	if ((st = km_job_get(cli->ctx, id, &j, e)) != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(job_json(&j), e);
	if (j.state == KM_JOB_PAUSED)
		ui_note("job %s paused at %" PRIu64 " of %" PRIu64 "; `keyward job run %s` resumes it", j.id,
		        j.done + j.unreachable, j.total, j.id);
	else
		ui_note("job %s %s: %" PRIu64 " moved to version %" PRIu32 ", %" PRIu64 " unreachable%s", j.id,
		        km_job_state_name(j.state), j.done, j.to_version, j.unreachable,
		        j.unreachable ? " (`keyward job unreachable ID` lists them)" : "");
	return KM_OK;
}

km_status ui_cmd_job_pause(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_job_pause(cli->ctx, a->pos[0], e);
	if (st != KM_OK)
		return st;
	km_job_info j;
	if (km_job_get(cli->ctx, a->pos[0], &j, e) == KM_OK && j.state == KM_JOB_RUNNING)
		ui_note("job %s will pause after its current batch", a->pos[0]);
	else
		ui_note("job %s paused", a->pos[0]);
	return KM_OK;
}

km_status ui_cmd_job_cancel(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_job_cancel(cli->ctx, a->pos[0], e);
	if (st == KM_OK)
		ui_note("job %s cancelled; assets it had not moved stay under their version", a->pos[0]);
	return st;
}

typedef struct unreach_list {
	json_t *arr;
	ui_table *t;
	km_status st;
} unreach_list;

static int unreach_cb(void *c, int64_t asset_id, const char *path, const char *why)
{
	unreach_list *l = c;
	if (l->arr) {
		json_t *o = json_object();
		json_object_set_new(o, "asset", json_integer(asset_id));
		json_object_set_new(o, "path", path ? ui_json_text(path) : json_null());
		ui_json_set_text(o, "why", why);
		return json_array_append_new(l->arr, o) != 0;
	}
	char id[24];
	snprintf(id, sizeof id, "%" PRId64, asset_id);
	const char *cells[] = {id, path, why};
	l->st = ui_table_add(l->t, cells, NULL);
	return l->st != KM_OK;
}

km_status ui_cmd_job_unreachable(ui_cli *cli, const ui_args *a, km_err *e)
{
	static const char *const hdr[] = {"ASSET", "PATH", "WHY"};
	unreach_list l = {0};
	if (cli->json)
		l.arr = json_array();
	else
		l.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!l.arr && !l.t)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = km_job_unreachable(cli->ctx, a->pos[0], unreach_cb, &l, e);
	if (st == KM_OK && l.st != KM_OK)
		st = km_fail(e, l.st, "out of memory listing assets");
	if (st == KM_OK)
		return ui_listing_emit(l.arr, l.t, e);
	json_decref(l.arr);
	ui_table_free(l.t);
	return st;
}
