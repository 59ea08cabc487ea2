/*
 * reportrun.c — the console's report form and its worker (reportrun.h).
 */
#include "reportrun.h"
#include "dialog.h"
#include "reportfile.h"
#include "report.h"
#include "authz.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RR_DEFAULT_DAYS 30

typedef struct rr_state {
	pthread_mutex_t mu;
	pthread_t thread;
	int running;              /* owner thread: a worker exists, not yet joined */
	/* the worker's inputs, set before it starts */
	char home[PATH_MAX], user[64];
	int system_mode;
	char fmt[8], role[64], path[PATH_MAX];
	int64_t from_ms, to_ms;
	/* written by the worker under mu */
	km_report_phase phase;
	uint64_t done, total;
	int finished, cancel;
	km_status rc;
	km_err err;
	long long bytes;
	/* owner thread only */
	struct timespec t0;
	double seconds;
	int have_last;            /* the last report's outcome is shown */
	km_status last_rc;
	char last_msg[KM_ERR_MSG_MAX + PATH_MAX];
} rr_state;

static rr_state rr = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double rr_elapsed(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- the worker ------------------------------------------------------------ */

static int rr_progress(void *c, km_report_phase phase, uint64_t done, uint64_t total)
{
	rr_state *s = c;
	pthread_mutex_lock(&s->mu);
	s->phase = phase;
	s->done = done;
	s->total = total;
	int cancel = s->cancel;
	pthread_mutex_unlock(&s->mu);
	return cancel;
}

static int rr_stop(void *c)
{
	rr_state *s = c;
	pthread_mutex_lock(&s->mu);
	int cancel = s->cancel;
	pthread_mutex_unlock(&s->mu);
	return cancel;
}

/* A report needs no step-up: a question from the worker's session is
 * refused rather than asked on a terminal ncurses owns. */
static km_status rr_no_prompt(void *ctx, const char *question, char *buf, size_t cap, km_err *e)
{
	(void)ctx;
	(void)buf;
	(void)cap;
	return km_fail(e, KM_EDENIED, "the report's background session cannot ask for %s; run keyward report "
	               "from a shell", question);
}

static void *rr_main(void *arg)
{
	rr_state *s = arg;
	km_ctx *ctx = NULL;
	km_err e;
	km_err_clear(&e);
	km_open_opts o = {
		.home = s->system_mode ? NULL : s->home,
		.user = s->system_mode ? NULL : s->user,
		.prompt = rr_no_prompt,
		.prompt_ctx = s,
	};
	long long bytes = -1;
	km_status rc = km_open(&o, &ctx, &e);
	if (rc == KM_OK) {
		km_report_opts ro = {.from_ms = s->from_ms, .to_ms = s->to_ms, .role = s->role[0] ? s->role : NULL,
		                     .progress = rr_progress, .pctx = s};
		json_t *doc = NULL;
		rc = km_report(ctx, &ro, &doc, &e);
		km_close(ctx);
		if (rc == KM_OK && rr_progress(s, KM_REPORT_RENDERING, 0, 1))
			rc = km_fail(&e, KM_EBUSY, "report cancelled");
		if (rc == KM_OK)
			rc = ui_report_write(s->path, s->fmt, doc, rr_stop, s, &e);
		json_decref(doc);
		struct stat sb;
		if (rc == KM_OK) {
			rr_progress(s, KM_REPORT_RENDERING, 1, 1);
			if (stat(s->path, &sb) == 0)
				bytes = (long long)sb.st_size;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->rc = rc;
	s->err = e;
	s->bytes = bytes;
	s->finished = 1;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- the form ------------------------------------------------------------- */

enum { F_FROM, F_TO, F_FORMAT, F_ROLE, F_OUT, F_COUNT };

struct rr_form {
	ui_console *c;
	char cwd[PATH_MAX];
};

static void rr_default_path(char *buf, size_t cap, const char *cwd, const char *from, const char *to,
                            const char *fmt)
{
	ui_tw_format(buf, cap, "%s%skeyward-report-%s_%s.%s", cwd, strcmp(cwd, "/") ? "/" : "", from, to, fmt);
}

static int rr_submit(void *ctx, ui_field *f, size_t n, char *general, size_t gcap)
{
	struct rr_form *fc = ctx;
	(void)n;
	(void)general;
	(void)gcap;
	km_err e;
	km_err_clear(&e);
	int64_t from_ms = 0, to_ms = 0;
	int bad = 0;
	if (km_report_time_parse("from", f[F_FROM].value, 0, &from_ms, &e) != KM_OK) {
		ui_tw_format(f[F_FROM].error, sizeof f[F_FROM].error, "%s", e.msg);
		bad = 1;
	}
	if (km_report_time_parse("to", f[F_TO].value, 1, &to_ms, &e) != KM_OK) {
		ui_tw_format(f[F_TO].error, sizeof f[F_TO].error, "%s", e.msg);
		bad = 1;
	}
	if (!bad && from_ms >= to_ms) {
		ui_tw_format(f[F_TO].error, sizeof f[F_TO].error, "the period is empty: To must be after From");
		bad = 1;
	}
	if (ui_report_check_format(f[F_FORMAT].value, &e) != KM_OK) {
		ui_tw_format(f[F_FORMAT].error, sizeof f[F_FORMAT].error, "html, json or csv");
		bad = 1;
	}
	unsigned roles;
	if (f[F_ROLE].value[0] && (km_roles_parse(f[F_ROLE].value, &roles, &e) != KM_OK || roles == 0)) {
		ui_tw_format(f[F_ROLE].error, sizeof f[F_ROLE].error,
		             "not a role: admin, officer, approver, auditor or service (empty: your own view)");
		bad = 1;
	}
	if (bad)
		return -1;
	char path[PATH_MAX];
	if (!f[F_OUT].value[0])
		rr_default_path(path, sizeof path, fc->cwd, f[F_FROM].value, f[F_TO].value, f[F_FORMAT].value);
	else if (f[F_OUT].value[0] != '/')
		ui_tw_format(path, sizeof path, "%s/%s", fc->cwd, f[F_OUT].value);
	else
		ui_tw_format(path, sizeof path, "%s", f[F_OUT].value);
	/* The directory must be there and writable now, not after the report ran. */
	char dir[PATH_MAX];
	ui_tw_format(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || !slash[1]) {
		ui_tw_format(f[F_OUT].error, sizeof f[F_OUT].error, "name a file, not a directory");
		return -1;
	}
	*(slash == dir ? slash + 1 : slash) = '\0';
	struct stat sb;
	errno = 0;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0) {
		ui_tw_format(f[F_OUT].error, sizeof f[F_OUT].error, "cannot write in %s: %s", dir,
		             errno ? strerror(errno) : "not a directory");
		return -1;
	}
	rr_state *s = &rr;
	pthread_mutex_lock(&s->mu);
	const km_config *cfg = km_config_get(ui_ctx(fc->c));
	ui_tw_format(s->home, sizeof s->home, "%s", cfg ? cfg->home : "");
	ui_tw_format(s->user, sizeof s->user, "%s", ui_actor(fc->c)->name);
	s->system_mode = ui_actor(fc->c)->mode == KM_MODE_SYSTEM;
	ui_tw_format(s->fmt, sizeof s->fmt, "%s", f[F_FORMAT].value);
	ui_tw_format(s->role, sizeof s->role, "%s", f[F_ROLE].value);
	ui_tw_format(s->path, sizeof s->path, "%s", path);
	s->from_ms = from_ms;
	s->to_ms = to_ms;
	s->phase = KM_REPORT_AGGREGATES;
	s->done = s->total = 0;
	s->finished = s->cancel = 0;
	s->rc = KM_OK;
	km_err_clear(&s->err);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void ui_report_start(ui_console *c)
{
	rr_state *s = &rr;
	if (s->running) {
		ui_error_text(c, "a report is already running (Esc cancels it)");
		return;
	}
	/* Without report.read the form would be wasted typing: the core's own
	 * check refuses at once, and records the denial as the CLI's does. */
	if (!km_policy_allows(ui_actor(c)->roles, KM_ACT_REPORT_READ)) {
		km_report_opts none = {0};
		json_t *doc = NULL;
		km_err e;
		km_err_clear(&e);
		if (km_report(ui_ctx(c), &none, &doc, &e) != KM_OK) {
			ui_error(c, &e);
			ui_changed(c); /* the denial is an event */
			return;
		}
		json_decref(doc); /* a policy the table did not foresee allowed it */
	}
	struct rr_form fc = {.c = c};
	if (!getcwd(fc.cwd, sizeof fc.cwd))
		ui_tw_format(fc.cwd, sizeof fc.cwd, "%s", s->home[0] ? s->home : "/tmp");
	time_t now = time(NULL), start = now - (time_t)RR_DEFAULT_DAYS * 86400;
	struct tm tn, ts;
	gmtime_r(&now, &tn);
	gmtime_r(&start, &ts);
	char from[16], to[16], hint[PATH_MAX + 128];
	strftime(from, sizeof from, "%Y-%m-%d", &ts);
	strftime(to, sizeof to, "%Y-%m-%d", &tn);
	char example[PATH_MAX];
	rr_default_path(example, sizeof example, fc.cwd, "FROM", "TO", "FORMAT");
	ui_tw_format(hint, sizeof hint, "empty: %s", example);
	ui_field f[F_COUNT] = {
		[F_FROM] = {.label = "From", .hint = "date (midnight UTC) or RFC 3339 time, included"},
		[F_TO] = {.label = "To", .hint = "date (that whole day included) or RFC 3339 time, excluded"},
		[F_FORMAT] = {.label = "Format", .hint = "html (self-contained, charts), json or csv"},
		[F_ROLE] = {.label = "Render for role", .hint = "empty: your own view; auditor, approver or service "
		                                                 "see people as pseudonyms"},
		[F_OUT] = {.label = "Output file", .hint = hint},
	};
	ui_tw_format(f[F_FROM].value, sizeof f[F_FROM].value, "%s", from);
	ui_tw_format(f[F_TO].value, sizeof f[F_TO].value, "%s", to);
	ui_tw_format(f[F_FORMAT].value, sizeof f[F_FORMAT].value, "html");
	if (!ui_dialog_form(c, "Auditor report", f, F_COUNT, rr_submit, &fc))
		return;
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	s->have_last = 0;
	if (pthread_create(&s->thread, NULL, rr_main, s) != 0) {
		ui_error_text(c, "cannot start a worker thread for the report");
		return;
	}
	s->running = 1;
	ui_message(c, "report running in the background; Esc cancels it");
}

/* ---- progress -------------------------------------------------------------- */

void ui_report_tick(ui_console *c)
{
	rr_state *s = &rr;
	if (!s->running)
		return;
	pthread_mutex_lock(&s->mu);
	int finished = s->finished;
	pthread_mutex_unlock(&s->mu);
	ui_dirty(c); /* the phase, percent and time move */
	if (!finished)
		return;
	pthread_join(s->thread, NULL);
	s->running = 0;
	s->seconds = rr_elapsed(&s->t0);
	s->have_last = 1;
	s->last_rc = s->rc;
	if (s->rc == KM_OK) {
		ui_tw_format(s->last_msg, sizeof s->last_msg, "Report written (%lld bytes, %.1f s): %s", s->bytes,
		             s->seconds, s->path);
		ui_message(c, "report written: %s", s->path);
	} else if (s->rc == KM_EBUSY && s->cancel) {
		ui_tw_format(s->last_msg, sizeof s->last_msg, "Report cancelled; no file written (%s)", s->path);
		ui_message(c, "report cancelled; no file written");
	} else {
		ui_tw_format(s->last_msg, sizeof s->last_msg, "Report failed: %s", s->err.msg);
		ui_error(c, &s->err);
	}
	ui_changed(c); /* report.read (and audit.verify) are new events */
}

int ui_report_rows(void)
{
	return rr.running ? 3 : rr.have_last ? 2 : 0;
}

int ui_report_draw(ui_console *c, ui_rect a)
{
	rr_state *s = &rr;
	const ui_glyphs *g = ui_glyph(c);
	char t[PATH_MAX + KM_ERR_MSG_MAX + 64];
	if (s->running) {
		pthread_mutex_lock(&s->mu);
		km_report_phase ph = s->phase;
		uint64_t done = s->done, total = s->total;
		int cancel = s->cancel;
		pthread_mutex_unlock(&s->mu);
		double frac = total ? (double)done / (double)total : 0.0;
		if (frac > 1.0)
			frac = 1.0;
		ui_tw_format(t, sizeof t, "Report: %s (phase %d of %d) %3d%%  %.1f s  %s", km_report_phase_name(ph),
		             (int)ph + 1, (int)KM_REPORT_PHASES, (int)(frac * 100.0), rr_elapsed(&s->t0),
		             cancel ? "cancelling..." : "Esc cancels");
		ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
		ui_draw_bar(c, a.y + 1, a.x + 1, a.w - 2, frac);
		return 3;
	}
	if (!s->have_last)
		return 0;
	int ok = s->last_rc == KM_OK;
	ui_tw_format(t, sizeof t, "%s %s", ok ? g->ok : g->bad, s->last_msg);
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, ok ? UI_EL_OK : s->last_rc == KM_EBUSY ? UI_EL_DIM : UI_EL_ERROR,
	             UI_TW_ELLIPSIS, t);
	return 2;
}

int ui_report_cancel(ui_console *c)
{
	rr_state *s = &rr;
	if (!s->running)
		return 0;
	pthread_mutex_lock(&s->mu);
	s->cancel = 1;
	pthread_mutex_unlock(&s->mu);
	ui_message(c, "cancelling the report...");
	return 1;
}

void ui_report_shutdown(void)
{
	rr_state *s = &rr;
	if (!s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->cancel = 1;
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->running = 0;
}

/* ---- bindings --------------------------------------------------------------- */

void ui_act_cancel(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	ui_report_cancel(c);
}

void ui_colon_report(ui_console *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ui_view *v = ui_view_find(c, "audit");
	if (v)
		ui_view_show(c, v);
	ui_report_start(c);
}
