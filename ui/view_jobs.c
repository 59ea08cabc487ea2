/*
 * view_jobs.c — running operations: the rewrap and re-encryption jobs
 * with a progress bar, rate and ETA each; p pauses the selected job (it
 * stops after its batch in flight), u runs or resumes it in the
 * background, X cancels a queued or paused one.
 *
 * A resumed job runs on a worker thread with its own session (km_open: its
 * own catalogue connection and HSM session), as the audit verifier runs on
 * its own connection: the console stays responsive, the progress callback
 * only stores numbers under a mutex and the 10 Hz tick shows them.  When
 * the worker's session needs a step-up (a change in a personal
 * deployment), its prompt hands the question to this thread, which asks in
 * the console's secret dialog and hands the answer back; the answer lives
 * in locked memory and is cleansed at once.
 *
 * Must never: run a job on the console's own session (it would block the
 * screen), or keep a secret after handing it over.
 */
#include "ui.h"
#include "dialog.h"
#include "rowsel.h"
#include "views.h"
#include "job.h"
#include "secmem.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JB_MAX 500
#define JB_SECRET_MAX 1024

typedef struct jb_worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int started;             /* owner: a thread exists, not yet joined */
	char id[KM_REQUEST_ID_MAX];
	char home[PATH_MAX], user[64];
	int system_mode;
	/* under mu */
	uint64_t done, total;
	int finished, pause;
	km_status rc;
	km_err err;
	int asking;              /* the worker waits for an answer to `question` */
	char question[256];
	char *answer;            /* the worker's buffer, cap answer_cap */
	size_t answer_cap;
	int answered, answer_ok;
} jb_worker;

typedef struct jobs_state {
	km_job_info *jobs;
	size_t njobs, cap;
	int *shown;
	ui_rowsel rs;
	int all;                 /* 0: active jobs only */
	char filter[256];
	char err[KM_ERR_MSG_MAX];
	int list_y, page;
	jb_worker w;
	int in_prompt;
} jobs_state;

/* ---- data ---------------------------------------------------------------- */

static int jb_collect(void *ctx, const km_job_info *j)
{
	jobs_state *s = ctx;
	if (s->njobs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		km_job_info *n = realloc(s->jobs, cap * sizeof *n);
		int *sh = realloc(s->shown, cap * sizeof *sh);
		if (n)
			s->jobs = n;
		if (sh)
			s->shown = sh;
		if (!n || !sh)
			return 1;
		s->cap = cap;
	}
	s->jobs[s->njobs++] = *j;
	return s->njobs >= JB_MAX;
}

static void jb_apply_filter(jobs_state *s)
{
	s->rs.n = 0;
	for (size_t i = 0; i < s->njobs; i++)
		if (!s->filter[0] || strstr(s->jobs[i].key, s->filter))
			s->shown[s->rs.n++] = (int)i;
	ui_rs_fit(&s->rs, s->page);
}

static void jb_reload(ui_view *v)
{
	jobs_state *s = v->st;
	s->njobs = 0;
	s->err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	if (km_job_list(ui_ctx(v->c), !s->all, jb_collect, s, &e) != KM_OK)
		ui_tw_format(s->err, sizeof s->err, "%s", e.msg);
	jb_apply_filter(s);
}

static const km_job_info *jb_selected(jobs_state *s)
{
	return s->rs.n ? &s->jobs[s->shown[s->rs.sel]] : NULL;
}

/* ---- the worker ------------------------------------------------------------ */

static int jb_progress(void *ctx, uint64_t done, uint64_t total, const char *what)
{
	jb_worker *w = ctx;
	(void)what;
	pthread_mutex_lock(&w->mu);
	w->done = done;
	w->total = total;
	int pause = w->pause;
	pthread_mutex_unlock(&w->mu);
	return pause;
}

/* The worker session's step-up: ask the console thread and wait. */
static km_status jb_relay_prompt(void *ctx, const char *question, char *buf, size_t cap, km_err *e)
{
	jb_worker *w = ctx;
	pthread_mutex_lock(&w->mu);
	ui_tw_format(w->question, sizeof w->question, "%s", question);
	w->answer = buf;
	w->answer_cap = cap;
	w->answered = 0;
	w->asking = 1;
	while (!w->answered && !w->pause)
		pthread_cond_wait(&w->cv, &w->mu);
	int ok = w->answered && w->answer_ok;
	w->asking = 0;
	w->answer = NULL;
	pthread_mutex_unlock(&w->mu);
	return ok ? KM_OK : km_fail(e, KM_EDENIED, "cancelled: %s was not given", question);
}

static void *jb_main(void *arg)
{
	jb_worker *w = arg;
	km_ctx *ctx = NULL;
	km_err e;
	km_err_clear(&e);
	km_open_opts o = {
		.home = w->system_mode ? NULL : w->home,
		.user = w->system_mode ? NULL : w->user,
		.prompt = jb_relay_prompt,
		.prompt_ctx = w,
	};
	km_status rc = km_open(&o, &ctx, &e);
	if (rc == KM_OK) {
		rc = km_job_run(ctx, w->id, jb_progress, w, &e);
		km_close(ctx);
	}
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	w->err = e;
	w->finished = 1;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void jb_resume(ui_view *v, const km_job_info *j)
{
	jobs_state *s = v->st;
	ui_console *c = v->c;
	if (s->w.started) {
		ui_error_text(c, "job %s is already running here; p pauses it", s->w.id);
		return;
	}
	jb_worker *w = &s->w;
	pthread_mutex_lock(&w->mu);
	ui_tw_format(w->id, sizeof w->id, "%s", j->id);
	const km_config *cfg = km_config_get(ui_ctx(c));
	ui_tw_format(w->home, sizeof w->home, "%s", cfg ? cfg->home : "");
	ui_tw_format(w->user, sizeof w->user, "%s", ui_actor(c)->name);
	w->system_mode = ui_actor(c)->mode == KM_MODE_SYSTEM;
	w->done = j->done;
	w->total = j->total;
	w->finished = w->pause = w->asking = w->answered = 0;
	w->rc = KM_OK;
	km_err_clear(&w->err);
	pthread_mutex_unlock(&w->mu);
	if (pthread_create(&w->thread, NULL, jb_main, w) != 0) {
		ui_error_text(c, "cannot start a worker thread for job %s", j->id);
		return;
	}
	w->started = 1;
	ui_message(c, "running job %s in the background", j->id);
}

/* Answer the worker's step-up question in the console's dialog. */
static void jb_answer(ui_view *v)
{
	jobs_state *s = v->st;
	jb_worker *w = &s->w;
	char question[256];
	pthread_mutex_lock(&w->mu);
	int ask = w->asking && !w->answered;
	ui_tw_format(question, sizeof question, "%s", w->question);
	pthread_mutex_unlock(&w->mu);
	if (!ask || s->in_prompt)
		return;
	s->in_prompt = 1;
	char *secret = km_secure_alloc(JB_SECRET_MAX);
	int ok = secret && ui_dialog_secret(v->c, "Step-up for the job", question, secret, JB_SECRET_MAX);
	pthread_mutex_lock(&w->mu);
	if (w->asking && w->answer) {
		w->answer_ok = ok && strlen(secret) < w->answer_cap;
		if (w->answer_ok)
			memcpy(w->answer, secret, strlen(secret) + 1);
		w->answered = 1;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	km_secure_free(secret, JB_SECRET_MAX);
	s->in_prompt = 0;
}

static void jb_tick(ui_view *v)
{
	jobs_state *s = v->st;
	if (!s->w.started)
		return;
	jb_answer(v);
	pthread_mutex_lock(&s->w.mu);
	int finished = s->w.finished;
	km_status rc = s->w.rc;
	km_err err = s->w.err;
	pthread_mutex_unlock(&s->w.mu);
	if (!finished) {
		/* progress: this screen's numbers only, and only when shown */
		if (ui_view_current(v->c) == v) {
			v->stale = 1;
			ui_dirty(v->c);
		}
		return;
	}
	ui_changed(v->c); /* the job's end changes the keys' flags too */
	pthread_join(s->w.thread, NULL);
	s->w.started = 0;
	if (rc != KM_OK)
		ui_error(v->c, &err);
	else
		ui_message(v->c, "job %s: the run ended (done, or paused with its cursor kept)", s->w.id);
}

static void jb_open(ui_view *v)
{
	jobs_state *s = v->st;
	pthread_mutex_init(&s->w.mu, NULL);
	pthread_cond_init(&s->w.cv, NULL);
}

static void jb_close(ui_view *v)
{
	jobs_state *s = v->st;
	if (s->w.started) {
		/* leaving the console: the job pauses after its batch, keeping
		 * its cursor; a pending question is answered "no" */
		pthread_mutex_lock(&s->w.mu);
		s->w.pause = 1;
		pthread_cond_signal(&s->w.cv);
		pthread_mutex_unlock(&s->w.mu);
		pthread_join(s->w.thread, NULL);
		s->w.started = 0;
	}
	pthread_cond_destroy(&s->w.cv);
	pthread_mutex_destroy(&s->w.mu);
	free(s->jobs);
	free(s->shown);
}

/* ---- drawing ------------------------------------------------------------- */

static void jb_fmt_eta(int64_t secs, char buf[16])
{
	if (secs < 0)
		ui_tw_format(buf, 16, "-");
	else if (secs < 120)
		ui_tw_format(buf, 16, "%llds", (long long)secs);
	else if (secs < 7200)
		ui_tw_format(buf, 16, "%lldm", (long long)(secs / 60));
	else
		ui_tw_format(buf, 16, "%lldh", (long long)(secs / 3600));
}

static void jb_draw(ui_view *v, ui_rect a)
{
	jobs_state *s = v->st;
	ui_console *c = v->c;
	char info[300];
	ui_tw_format(info, sizeof info, "%d %sjob%s%s%s%s  (rewrap and re-encryption; :filter, and ^R reloads)",
	             s->rs.n, s->all ? "" : "unfinished ", s->rs.n == 1 ? "" : "s",
	             s->filter[0] ? " matching \"" : "", s->filter, s->filter[0] ? "\"" : "");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filter[0] ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS, info);
	s->list_y = a.y + 2;
	s->page = (a.h - 2) / 2; /* two lines a job: the facts, then the bar */
	if (s->page < 1)
		s->page = 1;
	ui_rs_fit(&s->rs, s->page);
	/* Narrower than the full row (107 cells): the key keeps the room and
	 * DONE, RATE and ETA move to the bar's line. */
	int narrow = a.w - 2 < 107;
	int keyw = narrow ? a.w - 2 - 49 : 24;
	if (keyw < 12)
		keyw = 12;
	char hdr[300];
	if (narrow)
		ui_tw_format(hdr, sizeof hdr, "%-16s %-10s %-*s %-9s %-9s", "ID", "KIND", keyw, "KEY",
		             "VERSIONS", "STATE");
	else
		ui_tw_format(hdr, sizeof hdr, "%-16s %-10s %-24s %-9s %-9s %15s %10s %6s", "ID", "KIND", "KEY",
		             "VERSIONS", "STATE", "DONE", "RATE", "ETA");
	ui_draw_fill(c, a.y + 1, a.x, a.w, UI_EL_HEADER);
	ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_HEADER, UI_TW_PAD, hdr);
	if (s->rs.n == 0)
		ui_draw_text(c, s->list_y, a.x + 2, a.w - 4, s->err[0] ? UI_EL_ERROR : UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->err[0] ? s->err : "no operation is running or waiting");
	/* live numbers of the job this console runs */
	uint64_t wdone = 0, wtotal = 0;
	if (s->w.started) {
		pthread_mutex_lock(&s->w.mu);
		wdone = s->w.done;
		wtotal = s->w.total;
		pthread_mutex_unlock(&s->w.mu);
	}
	for (int r = 0; r < s->page && s->rs.top + r < s->rs.n; r++) {
		int i = s->rs.top + r;
		const km_job_info *j = &s->jobs[s->shown[i]];
		int live = s->w.started && strcmp(s->w.id, j->id) == 0;
		uint64_t done = live && wtotal ? wdone : j->done, total = live && wtotal ? wtotal : j->total;
		ui_element base = i == s->rs.sel ? UI_EL_SELECTED : UI_EL_NORMAL;
		char ver[24], dn[48], rate[24], eta[16], line[400];
		ui_tw_format(ver, sizeof ver, "v%u -> v%u", j->from_version, j->to_version);
		ui_tw_format(dn, sizeof dn, "%llu/%llu", (unsigned long long)done, (unsigned long long)total);
		if (j->rate > 0)
			ui_tw_format(rate, sizeof rate, "%.0f/s", j->rate);
		else
			ui_tw_format(rate, sizeof rate, "-");
		int64_t left = j->eta;
		if (j->rate > 0 && total >= done)
			left = (int64_t)((double)(total - done) / j->rate);
		jb_fmt_eta(j->state == KM_JOB_RUNNING || live ? left : -1, eta);
		const char *state = live ? "running" : km_job_state_name(j->state);
		if (narrow)
			ui_tw_format(line, sizeof line, "%-16.16s %-10s %-*.*s %-9s %-9s", j->id,
			             km_job_kind_name(j->kind), keyw, keyw, j->key, ver, state);
		else
			ui_tw_format(line, sizeof line, "%-16.16s %-10s %-24.24s %-9s %-9s %15s %10s %6s", j->id,
			             km_job_kind_name(j->kind), j->key, ver, state, dn, rate, eta);
		int y = s->list_y + 2 * r;
		ui_draw_fill(c, y, a.x, a.w, base);
		ui_draw_text(c, y, a.x + 1, a.w - 2, base, UI_TW_PAD | UI_TW_ELLIPSIS, line);
		char pct[16];
		double frac = total ? (double)done / (double)total : (j->state == KM_JOB_DONE ? 1.0 : 0.0);
		ui_tw_format(pct, sizeof pct, "%3.0f %%", frac * 100);
		int facts_w = 0; /* narrow: "50/200 12/s ETA 3m" after the percentage */
		if (narrow) {
			ui_tw_format(line, sizeof line, "%s%s%s%s%s", dn, j->rate > 0 ? " " : "",
			             j->rate > 0 ? rate : "", strcmp(eta, "-") ? " ETA " : "", strcmp(eta, "-") ? eta : "");
			facts_w = ui_tw_width(line) + 1;
			if (facts_w < 24) /* the bars line up */
				facts_w = 24;
			ui_draw_text(c, y + 1, a.x + a.w - facts_w, facts_w - 1, UI_EL_NORMAL, UI_TW_PAD, line);
		}
		ui_draw_bar(c, y + 1, a.x + 3, a.w - 12 - facts_w, frac);
		ui_draw_text(c, y + 1, a.x + a.w - 8 - facts_w, 6, UI_EL_NORMAL, UI_TW_RIGHT | UI_TW_PAD, pct);
		if (j->error[0] && y + 1 < a.y + a.h)
			ui_draw_text(c, y + 1, a.x + 3, a.w - 12 - facts_w, UI_EL_ERROR, UI_TW_ELLIPSIS, j->error);
	}
}

/* ---- actions ------------------------------------------------------------- */

static int jb_handle(ui_view *v, ui_action a)
{
	jobs_state *s = v->st;
	if (ui_rs_move(&s->rs, a, s->page))
		return 1;
	const km_job_info *sel = jb_selected(s);
	km_err e;
	km_err_clear(&e);
	switch (a) {
	case UI_ACT_ENTER:
		s->all = !s->all; /* finished and cancelled ones too, or not */
		jb_reload(v);
		return 1;
	case UI_ACT_PANE_RIGHT:
	case UI_ACT_PANE_LEFT:
		return 1;
	case UI_ACT_QUIT:
		if (s->filter[0]) {
			s->filter[0] = '\0';
			jb_apply_filter(s);
			return 1;
		}
		return 0;
	case UI_ACT_JOB_PAUSE:
	case UI_ACT_JOB_RESUME:
	case UI_ACT_JOB_CANCEL: {
		if (!sel) {
			ui_error_text(v->c, "no job selected");
			return 1;
		}
		km_job_info j = *sel;
		if (a == UI_ACT_JOB_RESUME) {
			jb_resume(v, &j);
			return 1;
		}
		if (a == UI_ACT_JOB_PAUSE && s->w.started && strcmp(s->w.id, j.id) == 0) {
			pthread_mutex_lock(&s->w.mu);
			s->w.pause = 1;
			pthread_mutex_unlock(&s->w.mu);
		}
		if (a == UI_ACT_JOB_CANCEL) {
			char text[400];
			ui_tw_format(text, sizeof text,
			             "Cancel job %s (%s of %s)? Assets it has not moved stay under v%u, "
			             "decryptable while that version allows it.", j.id, km_job_kind_name(j.kind),
			             j.key, j.from_version);
			if (!ui_dialog_confirm(v->c, "Cancel job", text, NULL)) {
				ui_message(v->c, "job %s not cancelled", j.id);
				return 1;
			}
		}
		km_status st = a == UI_ACT_JOB_PAUSE ? km_job_pause(ui_ctx(v->c), j.id, &e)
		                                     : km_job_cancel(ui_ctx(v->c), j.id, &e);
		if (st != KM_OK)
			ui_error(v->c, &e);
		else
			ui_message(v->c, "job %s %s", j.id, a == UI_ACT_JOB_PAUSE ? "pauses after its batch" : "cancelled");
		ui_changed(v->c);
		return 1;
	}
	default:
		return 0;
	}
}

static void jb_filter(ui_view *v, const char *text)
{
	jobs_state *s = v->st;
	ui_tw_format(s->filter, sizeof s->filter, "%s", text);
	s->rs.sel = s->rs.top = 0;
	jb_apply_filter(s);
	ui_dirty(v->c);
}

static const char *jb_filter_text(ui_view *v)
{
	jobs_state *s = v->st;
	return s->filter;
}

static void jb_click(ui_view *v, int y, int x)
{
	jobs_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + 2 * s->page) {
		s->rs.sel = s->rs.top + (y - s->list_y) / 2;
		ui_rs_fit(&s->rs, s->page);
	}
	ui_dirty(v->c);
}

const struct ui_view_ops ui_view_jobs = {
	.name = "jobs",
	.title = "Operations",
	.short_title = "Ops",
	.help = "Running operations: rewrap and re-encryption jobs with a progress bar, rate and "
	        "ETA. p pauses the selected job after its batch in flight (it keeps its cursor); u "
	        "runs or resumes it in the background on its own session, with live progress; X "
	        "cancels a queued or paused job (assets not yet moved stay under their old version). "
	        "Enter shows finished and cancelled jobs too. / filters by key name.",
	.state_size = sizeof(jobs_state),
	.open = jb_open,
	.close = jb_close,
	.reload = jb_reload,
	.draw = jb_draw,
	.handle = jb_handle,
	.filter = jb_filter,
	.filter_text = jb_filter_text,
	.click = jb_click,
	.tick = jb_tick,
};
