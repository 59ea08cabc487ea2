/*
 * view_audit.c — the audit log, newest first: filters by key, actor,
 * action, outcome and time range; a detail pane with the event's canonical
 * JSON and leaf hash; full verification on a worker thread with progress.
 *
 * Loads only what is visible (km_audit_query with before_seq).  Sequence
 * numbers are contiguous from 1, so without a filter the rows just above a
 * given one are found by arithmetic; with a filter by probing ever larger
 * ranges.
 *
 * Verification: km_audit_verify_start authorises on this (the owner)
 * thread; km_audit_verify_run runs on a pthread with its own read-only
 * connection; the progress callback only stores numbers under a mutex; the
 * console's tick (10 Hz) picks them up, and km_audit_verify_finish records
 * the result on this thread.  The screen never waits for the worker except
 * to join it once it said it is done (or when the console closes, after
 * asking it to cancel).
 */
#include "ui.h"
#include "dialog.h"
#include "listwin.h"
#include "views.h"
#include "auditlog.h"
#include "auditproof.h"
#include "audittext.h"
#include "reportrun.h"

#include <openssl/evp.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct au_row {
	uint64_t seq;
	char time[32], actor[64], action[48], object[200], outcome[16];
	char change[160]; /* what the event changed, in words (audittext.h) */
} au_row;

typedef struct au_verify {
	pthread_mutex_t mu;
	pthread_t thread;
	km_verify_job *job;
	int running;          /* owner thread: a worker exists, not yet joined */
	struct timespec t0;
	/* written by the worker under mu */
	uint64_t checked, total;
	int done, cancel;
	km_status rc;
	km_err err;
	audit_verify_result r;
	/* owner thread only */
	int have_result;
	audit_verify_result last;
	double seconds;
	uint64_t shown_checked;
} au_verify;

typedef struct audit_state {
	ui_listwin lw;
	char filter_text[256];
	char f_prefix[200], f_contains[200], f_actor[64], f_action[64], f_outcome[16], f_from[40], f_to[40];
	audit_filter f;
	int filtered;         /* the person's filter is set */
	int show_sessions;    /* L: session (login) events are listed too */
	int count_pending;    /* the filter changed while typing; count not made yet */
	uint64_t newest;
	uint64_t matching;    /* events matching the filter, counted up to AU_COUNT_CAP + 1 */
	int detail_open;
	uint64_t detail_seq;
	int detail_loaded;
	audit_row detail;
	char detail_err[KM_ERR_MSG_MAX];
	int list_y, list_rows;
	/* With a filter, rows are not contiguous in seq: the seqs of the
	 * filtered listing seen so far from its newest row down (a prefix of
	 * the listing), so moving back up is one query, not a search. */
	uint64_t *known;
	size_t nknown, known_cap;
	au_verify v;
	int mu_ready;
} audit_state;

/* ---- data ---------------------------------------------------------------- */

static void au_copy(au_row *d, const audit_row *r)
{
	d->seq = r->seq;
	ui_tw_format(d->time, sizeof d->time, "%s", r->time ? r->time : "");
	ui_tw_format(d->actor, sizeof d->actor, "%s", r->actor ? r->actor : "");
	ui_tw_format(d->action, sizeof d->action, "%s", r->action ? r->action : "");
	ui_tw_format(d->object, sizeof d->object, "%s", r->object ? r->object : "");
	ui_tw_format(d->outcome, sizeof d->outcome, "%s", r->outcome ? r->outcome : "");
	ui_audit_summary(r->json, d->change, sizeof d->change);
}

struct au_collect {
	au_row *rows;
	int n, limit;
	uint64_t above;  /* backwards: keep only seq > above, the last `limit` seen */
	int ring;        /* 1: keep the last `limit` rows seen (ring buffer) */
	int seen;
};

static int au_collect_row(void *ctx, const audit_row *r)
{
	struct au_collect *o = ctx;
	if (!o->ring) {
		if (o->n >= o->limit)
			return 1;
		au_copy(&o->rows[o->n++], r);
		return 0;
	}
	if (r->seq <= o->above)
		return 1;
	au_copy(&o->rows[o->seen % o->limit], r);
	o->seen++;
	return 0;
}

/* The rows listed are a subset of the log: the person's filter, or the
 * session events hidden (which also makes seqs non-contiguous). */
static int au_narrowed(const audit_state *s)
{
	return s->filtered || s->f.hide_action;
}

static const audit_filter *au_filter_ptr(audit_state *s)
{
	return au_narrowed(s) ? &s->f : NULL;
}

/* Hide session events unless L showed them or the filter asks for an
 * action (action:login means the sessions). */
static void au_sessions_apply(audit_state *s)
{
	s->f.hide_action = s->show_sessions || s->f_action[0] ? NULL : AUDIT_SESSION_ACTION;
	s->nknown = 0;
}

#define AU_KNOWN_MAX (1u << 18)

/* Record forward-fetched rows that extend the known prefix. */
static void au_known_add(audit_state *s, const au_row *cursor, const au_row *rows, int n)
{
	if (!cursor)
		s->nknown = 0;
	else if (s->nknown == 0 || s->known[s->nknown - 1] != cursor->seq)
		return; /* not contiguous with what we know */
	for (int i = 0; i < n && s->nknown < AU_KNOWN_MAX; i++) {
		if (s->nknown == s->known_cap) {
			size_t cap = s->known_cap ? s->known_cap * 2 : 1024;
			uint64_t *k = realloc(s->known, cap * sizeof *k);
			if (!k)
				return;
			s->known = k;
			s->known_cap = cap;
		}
		s->known[s->nknown++] = rows[i].seq;
	}
}

/* Index of seq in the known prefix (descending), or -1. */
static long au_known_find(const audit_state *s, uint64_t seq)
{
	size_t lo = 0, hi = s->nknown;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->known[mid] == seq)
			return (long)mid;
		if (s->known[mid] > seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static km_status au_fetch(void *ctx, const void *cursor, int backwards, int limit, void *out,
                          int *got, km_err *e)
{
	ui_view *v = ctx;
	audit_state *s = v->st;
	km_ctx *kc = ui_ctx(v->c);
	const au_row *cur = cursor;
	*got = 0;
	if (!backwards) {
		struct au_collect o = {.rows = out, .limit = limit};
		km_status st = km_audit_query(kc, au_filter_ptr(s), cur ? cur->seq : 0, limit,
		                              au_collect_row, &o, e);
		*got = o.n;
		if (st == KM_OK && au_narrowed(s))
			au_known_add(s, cur, out, o.n);
		return st;
	}
	/* newer than cursor (or from the oldest), nearest first */
	uint64_t lo = cur ? cur->seq : 0;
	if (lo >= s->newest)
		return KM_OK;
	long at = au_narrowed(s) && cur ? au_known_find(s, lo) : -1;
	if (at == 0)
		return KM_OK; /* lo is the newest matching row */
	if (at > 0) {
		long from = at - limit > 0 ? at - limit : 0;
		int n = (int)(at - from);
		struct au_collect o = {.rows = out, .limit = n};
		km_status st = km_audit_query(kc, au_filter_ptr(s), s->known[from] + 1, n, au_collect_row,
		                              &o, e);
		if (st != KM_OK)
			return st;
		au_row *rows = out; /* newest first -> nearest first */
		for (int i = 0; i < o.n / 2; i++) {
			au_row t = rows[i];
			rows[i] = rows[o.n - 1 - i];
			rows[o.n - 1 - i] = t;
		}
		*got = o.n;
		return KM_OK;
	}
	au_row *tmp = calloc((size_t)limit, sizeof *tmp);
	if (!tmp)
		return km_fail(e, KM_ENOMEM, "out of memory");
	uint64_t span = (uint64_t)limit;
	km_status st = KM_OK;
	struct au_collect o;
	for (;;) {
		memset(&o, 0, sizeof o);
		o.rows = tmp;
		o.limit = limit;
		o.above = lo;
		o.ring = 1;
		uint64_t before = lo + span + 1;
		int top = before > s->newest;
		uint64_t qlimit = span < 1000000 ? span : 1000000;
		st = km_audit_query(kc, au_filter_ptr(s), top ? 0 : before, (int)qlimit, au_collect_row, &o,
		                    e);
		if (st != KM_OK || o.seen >= limit || top)
			break;
		span *= 8;
	}
	if (st == KM_OK) {
		int n = o.seen < limit ? o.seen : limit;
		/* the ring holds the last n rows seen, newest first; the last seen
		 * is the nearest to lo */
		for (int i = 0; i < n; i++)
			((au_row *)out)[i] = tmp[(o.seen - 1 - i) % limit];
		*got = n;
	}
	free(tmp);
	return st;
}

static int au_newest_cb(void *ctx, const audit_row *r)
{
	*(uint64_t *)ctx = r->seq;
	return 1;
}

static void au_report(ui_view *v, int rc)
{
	audit_state *s = v->st;
	if (rc != 0)
		ui_error(v->c, &s->lw.err);
}

static int au_list_rows(ui_view *v)
{
	audit_state *s = v->st;
	int h = v->area.h - 2 - ((s->v.running || s->v.have_result) ? 3 : 0) - ui_report_rows();
	/* the event's details need the room more than the neighbours do */
	if (s->detail_open)
		h = h / 3 > 3 ? h / 3 : (h < 3 ? h : 3);
	return h < 1 ? 1 : h;
}

static void au_detail_clear(audit_state *s)
{
	audit_row_free(&s->detail);
	s->detail_loaded = 0;
}

/* Counting matches stops past this, like the key count (kek.h): a filter
 * matching most of a large log costs a bounded walk. */
#define AU_COUNT_CAP 5000

static int au_count_cb(void *ctx, const audit_row *r)
{
	(void)r;
	uint64_t *n = ctx;
	return ++*n > AU_COUNT_CAP;
}

/* The header's count follows the filter, session events hidden or not. */
static void au_count(ui_view *v)
{
	audit_state *s = v->st;
	s->matching = 0;
	s->count_pending = 0;
	if (!au_narrowed(s))
		return;
	km_err e;
	km_err_clear(&e);
	if (km_audit_query(ui_ctx(v->c), &s->f, 0, AU_COUNT_CAP + 1, au_count_cb, &s->matching, &e) != KM_OK)
		s->matching = 0;
}

static void au_reload(ui_view *v)
{
	audit_state *s = v->st;
	km_err e;
	km_err_clear(&e);
	s->newest = 0;
	if (km_audit_query(ui_ctx(v->c), NULL, 0, 1, au_newest_cb, &s->newest, &e) != KM_OK) {
		ui_error(v->c, &e);
		ui_tw_format(s->lw.err.msg, sizeof s->lw.err.msg, "%s", e.msg);
	}
	int cap = au_list_rows(v);
	au_report(v, cap != s->lw.cap ? ui_lw_resize(&s->lw, cap) : ui_lw_reload(&s->lw));
	au_count(v);
	au_detail_clear(s);
}

static void au_open(ui_view *v)
{
	audit_state *s = v->st;
	ui_lw_init(&s->lw, sizeof(au_row), au_fetch, v);
	au_sessions_apply(s);
	pthread_mutex_init(&s->v.mu, NULL);
	s->mu_ready = 1;
}

static void au_verify_stop(audit_state *s)
{
	if (!s->v.running)
		return;
	pthread_mutex_lock(&s->v.mu);
	s->v.cancel = 1;
	pthread_mutex_unlock(&s->v.mu);
	pthread_join(s->v.thread, NULL);
	km_audit_verify_abandon(s->v.job);
	s->v.job = NULL;
	s->v.running = 0;
}

static void au_close(ui_view *v)
{
	audit_state *s = v->st;
	au_verify_stop(s);
	ui_report_shutdown();
	ui_lw_free(&s->lw);
	au_detail_clear(s);
	free(s->known);
	s->known = NULL;
	if (s->mu_ready)
		pthread_mutex_destroy(&s->v.mu);
}

/* ---- filter ------------------------------------------------------------- */

static const struct {
	const char *prefix;
	size_t off;   /* field of audit_state receiving the value */
	size_t cap;
	int key;      /* 1: value is a key name: object prefix "key:NAME" */
} au_filter_words[] = {
	{"key:", offsetof(audit_state, f_prefix), sizeof(((audit_state *)0)->f_prefix), 1},
	{"object:", offsetof(audit_state, f_prefix), sizeof(((audit_state *)0)->f_prefix), 0},
	{"actor:", offsetof(audit_state, f_actor), sizeof(((audit_state *)0)->f_actor), 0},
	{"action:", offsetof(audit_state, f_action), sizeof(((audit_state *)0)->f_action), 0},
	{"outcome:", offsetof(audit_state, f_outcome), sizeof(((audit_state *)0)->f_outcome), 0},
	{"since:", offsetof(audit_state, f_from), sizeof(((audit_state *)0)->f_from), 0},
	{"until:", offsetof(audit_state, f_to), sizeof(((audit_state *)0)->f_to), 0},
};

static void au_filter_parse(audit_state *s, const char *text)
{
	ui_tw_format(s->filter_text, sizeof s->filter_text, "%s", text);
	s->f_prefix[0] = s->f_contains[0] = s->f_actor[0] = s->f_action[0] = s->f_outcome[0] = s->f_from[0] =
		s->f_to[0] = '\0';
	char buf[256];
	ui_tw_format(buf, sizeof buf, "%s", text);
	char *save = NULL;
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		size_t i = 0;
		while (i < KM_ARRAY_LEN(au_filter_words) &&
		       strncmp(w, au_filter_words[i].prefix, strlen(au_filter_words[i].prefix)) != 0)
			i++;
		char *dst = s->f_prefix;
		size_t cap = sizeof s->f_prefix;
		const char *val = w;
		int key = 0;
		if (i < KM_ARRAY_LEN(au_filter_words)) {
			dst = (char *)s + au_filter_words[i].off;
			cap = au_filter_words[i].cap;
			val = w + strlen(au_filter_words[i].prefix);
			key = au_filter_words[i].key;
		}
		/* a bare word selects the keys whose names contain it, as on the
		 * keys screen ("credit": features/credit-risk and its versions);
		 * a word with a colon that is no field is an object prefix
		 * (user:bob) */
		if (i == KM_ARRAY_LEN(au_filter_words) && !strchr(w, ':')) {
			dst = s->f_contains;
			cap = sizeof s->f_contains;
		}
		ui_tw_format(dst, cap, "%s%s", key ? "key:" : "", val);
	}
	s->f = (audit_filter){
		.object_prefix = s->f_prefix[0] ? s->f_prefix : s->f_contains[0] ? "key:" : NULL,
		.object_contains = s->f_contains[0] ? s->f_contains : NULL,
		.actor = s->f_actor[0] ? s->f_actor : NULL,
		.action = s->f_action[0] ? s->f_action : NULL,
		.outcome = s->f_outcome[0] ? s->f_outcome : NULL,
		.time_from = s->f_from[0] ? s->f_from : NULL,
		.time_to = s->f_to[0] ? s->f_to : NULL,
	};
	s->filtered = s->f_prefix[0] || s->f_contains[0] || s->f_actor[0] || s->f_action[0] || s->f_outcome[0] ||
	              s->f_from[0] || s->f_to[0];
	au_sessions_apply(s);
}

/* Per keystroke, as on the keys screen: only the visible page is fetched;
 * counting the matches waits until the filter is kept (au_filter_settled). */
static void au_filter(ui_view *v, const char *text)
{
	audit_state *s = v->st;
	au_filter_parse(s, text);
	au_report(v, ui_lw_home(&s->lw));
	s->count_pending = 1;
	ui_dirty(v->c);
}

static void au_filter_settled(ui_view *v)
{
	au_count(v);
	ui_dirty(v->c);
}

/* The filter set at once (the form, q, a jump): page and count. */
static void au_filter_now(ui_view *v, const char *text)
{
	au_filter(v, text);
	au_filter_settled(v);
}

void ui_goto_audit(ui_console *c, const char *filter)
{
	ui_view *v = ui_view_find(c, "audit");
	audit_state *s = v->st;
	ui_view_show(c, v);
	if (s->lw.cap > 0) {
		au_filter_now(v, filter);
		return;
	}
	/* never shown yet: its window has no rows to fill; the first reload
	 * sizes it and fetches with the filter */
	au_filter_parse(s, filter);
	v->stale = 1;
}

static const char *au_filter_text(ui_view *v)
{
	audit_state *s = v->st;
	return s->filter_text;
}

struct au_form_ctx {
	ui_view *v;
};

static int au_form_submit(void *ctx, ui_field *f, size_t n, char *general, size_t cap)
{
	struct au_form_ctx *fc = ctx;
	static const char *const words[] = {"key:", "actor:", "action:", "outcome:", "since:", "until:"};
	(void)general;
	(void)cap;
	char text[512] = "";
	for (size_t i = 0; i < n; i++) {
		if (strchr(f[i].value, ' ')) {
			ui_tw_format(f[i].error, sizeof f[i].error, "no spaces here");
			return -1;
		}
		if (f[i].value[0])
			ui_tw_format(text + strlen(text), sizeof text - strlen(text), "%s%s%s",
			             text[0] ? " " : "", words[i], f[i].value);
	}
	au_filter_now(fc->v, text);
	return 0;
}

static void au_filter_form(ui_view *v)
{
	audit_state *s = v->st;
	ui_field f[6] = {
		{.label = "Key", .hint = "events about this key (all its versions)"},
		{.label = "Actor", .hint = "user name"},
		{.label = "Action", .hint = "e.g. key.rotate, key.state, login, audit.verify"},
		{.label = "Outcome", .hint = "ok, denied or error"},
		{.label = "Since", .hint = "RFC 3339 time or prefix, inclusive: 2026-03 or 2026-03-01T10"},
		{.label = "Until", .hint = "RFC 3339 time or prefix, inclusive: 2026-03-31"},
	};
	const char *vals[6] = {s->f_prefix, s->f_actor, s->f_action, s->f_outcome, s->f_from, s->f_to};
	for (int i = 0; i < 6; i++)
		ui_tw_format(f[i].value, sizeof f[i].value, "%s",
		             i == 0 && strncmp(vals[0], "key:", 4) == 0 ? vals[0] + 4 : vals[i]);
	struct au_form_ctx fc = {v};
	ui_dialog_form(v->c, "Filter audit events", f, 6, au_form_submit, &fc);
}

/* ---- verification -------------------------------------------------------- */

static int au_progress(void *ctx, uint64_t checked, uint64_t total)
{
	au_verify *vf = ctx;
	pthread_mutex_lock(&vf->mu);
	vf->checked = checked;
	vf->total = total;
	int cancel = vf->cancel;
	pthread_mutex_unlock(&vf->mu);
	return cancel;
}

static void *au_verify_main(void *arg)
{
	au_verify *vf = arg;
	audit_verify_result r;
	memset(&r, 0, sizeof r);
	km_err e;
	km_err_clear(&e);
	km_status rc = km_audit_verify_run(vf->job, au_progress, vf, &r, &e);
	pthread_mutex_lock(&vf->mu);
	vf->r = r;
	vf->rc = rc;
	vf->err = e;
	vf->done = 1;
	pthread_mutex_unlock(&vf->mu);
	return NULL;
}

static void au_verify_begin(ui_view *v)
{
	audit_state *s = v->st;
	if (s->v.running) {
		ui_message(v->c, "verification is already running");
		return;
	}
	km_err e;
	km_err_clear(&e);
	km_verify_job *job = NULL;
	if (km_audit_verify_start(ui_ctx(v->c), &job, &e) != KM_OK) {
		ui_error(v->c, &e);
		ui_changed(v->c); /* the denial is an event */
		return;
	}
	s->v.job = job;
	s->v.checked = s->v.total = 0;
	s->v.done = s->v.cancel = 0;
	s->v.have_result = 0;
	s->v.shown_checked = 0;
	clock_gettime(CLOCK_MONOTONIC, &s->v.t0);
	if (pthread_create(&s->v.thread, NULL, au_verify_main, &s->v) != 0) {
		km_audit_verify_abandon(job);
		s->v.job = NULL;
		ui_error_text(v->c, "cannot start the verification thread");
		return;
	}
	s->v.running = 1;
	v->stale = 1; /* the progress panel takes rows from the list */
	ui_message(v->c, "verifying the audit log...");
}

static double au_elapsed(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* After a failed verification: show the bad entry, unfiltered, selected. */
static void au_jump_to(ui_view *v, uint64_t seq)
{
	audit_state *s = v->st;
	au_filter_parse(s, "");
	s->show_sessions = 1; /* the bad entry may be a session event */
	au_sessions_apply(s);
	au_count(v);
	au_row above = {.seq = seq + 1};
	s->lw.sel = 0;
	au_report(v, ui_lw_from(&s->lw, &above));
	s->detail_open = 1;
	au_detail_clear(s);
}

static void au_tick(ui_view *v)
{
	audit_state *s = v->st;
	ui_report_tick(v->c);
	if (!s->v.running)
		return;
	pthread_mutex_lock(&s->v.mu);
	int done = s->v.done;
	uint64_t checked = s->v.checked;
	pthread_mutex_unlock(&s->v.mu);
	if (checked != s->v.shown_checked) {
		s->v.shown_checked = checked;
		ui_dirty(v->c);
	}
	if (!done) {
		ui_dirty(v->c); /* the rate and elapsed time move */
		return;
	}
	pthread_join(s->v.thread, NULL);
	s->v.running = 0;
	s->v.seconds = au_elapsed(&s->v.t0);
	km_err e;
	km_err_clear(&e);
	if (s->v.rc != KM_OK) {
		km_audit_verify_abandon(s->v.job);
		s->v.job = NULL;
		ui_error(v->c, &s->v.err);
		ui_changed(v->c);
		return;
	}
	s->v.last = s->v.r;
	s->v.have_result = 1;
	if (km_audit_verify_finish(ui_ctx(v->c), s->v.job, &s->v.r, &e) != KM_OK)
		ui_error(v->c, &e);
	s->v.job = NULL;
	ui_changed(v->c);
	/* The sealed rows too (on this thread: the seals are checked by the
	 * HSM through the session). */
	km_rows_result rows;
	km_status rst = km_audit_verify_rows(ui_ctx(v->c), &rows, &e);
	if (s->v.last.intact && rst == KM_OK && rows.bad) {
		ui_error_text(v->c, "audit log intact, but %llu sealed row%s fail%s: %s",
		              (unsigned long long)rows.bad, rows.bad == 1 ? "" : "s", rows.bad == 1 ? "s" : "",
		              rows.problem);
	} else if (s->v.last.intact) {
		ui_message(v->c, "audit log intact: %llu entries, %llu signed tree heads, %llu sealed rows checked",
		           (unsigned long long)s->v.last.entries_checked,
		           (unsigned long long)s->v.last.heads_checked, (unsigned long long)rows.checked);
	} else {
		ui_error_text(v->c, "audit log damaged at entry %llu: %s",
		              (unsigned long long)s->v.last.first_bad_seq, s->v.last.problem);
		if (s->v.last.first_bad_seq) {
			/* reload first (sizes change), then jump */
			ui_lw_resize(&s->lw, au_list_rows(v));
			au_jump_to(v, s->v.last.first_bad_seq);
			v->stale = 0;
		}
	}
}

static void au_hex(const uint8_t *b, size_t n, char *out, size_t cap)
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 2 < cap; i++) {
		out[o++] = hx[b[i] >> 4];
		out[o++] = hx[b[i] & 15];
	}
	out[o] = '\0';
}

static int au_draw_verify(ui_view *v, ui_rect a)
{
	audit_state *s = v->st;
	ui_console *c = v->c;
	const ui_glyphs *g = ui_glyph(c);
	char t[600];
	if (s->v.running) {
		pthread_mutex_lock(&s->v.mu);
		uint64_t checked = s->v.checked, total = s->v.total;
		pthread_mutex_unlock(&s->v.mu);
		double secs = au_elapsed(&s->v.t0);
		double rate = secs > 0 ? (double)checked / secs : 0;
		ui_tw_format(t, sizeof t, "Verifying the audit log: %llu / %llu entries  %.0f entries/s  %.1f s",
		             (unsigned long long)checked, (unsigned long long)total, rate, secs);
		ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
		int bw = a.w - 2;
		int done = total ? (int)((double)bw * (double)checked / (double)total) : 0;
		if (done > bw)
			done = bw;
		attrset((int)ui_attr(c, UI_EL_PROGRESS_DONE));
		for (int i = 0; i < done; i++)
			mvaddstr(a.y + 1, a.x + 1 + i, g->bar_full);
		attrset((int)ui_attr(c, UI_EL_PROGRESS_TODO));
		for (int i = done; i < bw; i++)
			mvaddstr(a.y + 1, a.x + 1 + i, g->bar_empty);
		attrset(A_NORMAL);
		return 3;
	}
	if (!s->v.have_result)
		return 0;
	const audit_verify_result *r = &s->v.last;
	if (r->intact) {
		ui_tw_format(t, sizeof t, "%s Audit log intact: %llu entries and %llu signed tree heads checked in %.2f s",
		             g->ok, (unsigned long long)r->entries_checked,
		             (unsigned long long)r->heads_checked, s->v.seconds);
		ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_OK, UI_TW_ELLIPSIS, t);
		char root[2 * AUDIT_HASH_BYTES + 1], tm[32];
		au_hex(r->head_root, AUDIT_HASH_BYTES, root, sizeof root);
		ui_fmt_time(r->head_time, tm);
		ui_tw_format(t, sizeof t, "Signed tree head: size %llu  root %s  time %s UTC",
		             (unsigned long long)r->head_size, root, tm);
		ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_HASH, UI_TW_ELLIPSIS, t);
	} else {
		ui_tw_format(t, sizeof t, "%s Audit log DAMAGED: first bad entry %llu (%llu entries checked before it)",
		             g->bad, (unsigned long long)r->first_bad_seq,
		             (unsigned long long)r->entries_checked);
		ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_BAD, UI_TW_ELLIPSIS, t);
		ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_ERROR, UI_TW_ELLIPSIS, r->problem);
	}
	return 3;
}

/* ---- drawing ------------------------------------------------------------- */

enum { AU_SEQ = 8, AU_OUTCOME = 8 };
/* Below this width a row keeps the change in view: the time loses its
 * year and seconds, and what changed comes before the object. */
#define AU_NARROW(a) ((a).w < 110)
#define AU_TIME (AU_NARROW(a) ? 11 : 19)
/* actor and action columns: narrower on a narrow terminal, for the object */
#define AU_ACTOR (a.w >= 110 ? 16 : 10)
#define AU_ACTION (a.w >= 110 ? 16 : 12)

static void au_draw_row(ui_view *v, int y, ui_rect a, const au_row *r, ui_element base)
{
	ui_console *c = v->c;
	char t[64];
	ui_draw_fill(c, y, a.x, a.w, base);
	int x = a.x + 1;
	ui_tw_format(t, sizeof t, "%llu", (unsigned long long)r->seq);
	ui_draw_text(c, y, x, AU_SEQ, base, UI_TW_RIGHT, t);
	x += AU_SEQ + 1;
	char tm[32];
	ui_tw_format(tm, sizeof tm, "%.19s", r->time);
	if (tm[10] == 'T')
		tm[10] = ' ';
	if (AU_NARROW(a) && strlen(tm) >= 16) /* "11-30 02:16" */
		ui_tw_format(tm, sizeof tm, "%.11s", r->time + 5), tm[5] = ' ';
	ui_draw_text(c, y, x, AU_TIME, base, UI_TW_PAD, tm);
	x += AU_TIME + 1;
	ui_draw_text(c, y, x, AU_ACTOR, base, UI_TW_PAD | UI_TW_ELLIPSIS, r->actor);
	x += AU_ACTOR + 1;
	ui_draw_text(c, y, x, AU_ACTION, base, UI_TW_PAD | UI_TW_ELLIPSIS, r->action);
	x += AU_ACTION + 1;
	ui_element oe = base != UI_EL_NORMAL ? base : strcmp(r->outcome, "ok") == 0 ? UI_EL_OK : UI_EL_BAD;
	ui_draw_text(c, y, x, AU_OUTCOME, oe, UI_TW_PAD, r->outcome);
	x += AU_OUTCOME + 1;
	/* the object, then what changed: "key:x@2  active -> compromised" */
	char what[400];
	const char *first = AU_NARROW(a) ? r->change : r->object, *second = AU_NARROW(a) ? r->object : r->change;
	ui_tw_format(what, sizeof what, "%s%s%s", first, first[0] && second[0] ? "  " : "", second);
	ui_draw_text(c, y, x, a.x + a.w - x - 1, base, UI_TW_PAD | UI_TW_ELLIPSIS, what);
}

/* The detail pane is a column of sections, each drawn from row y within
 * the pane's bottom `end` and returning the next free row: add a section
 * by adding a function and one call in au_draw_detail. */

static void au_detail_load(audit_state *s, km_ctx *kc, uint64_t seq)
{
	if (s->detail_loaded && s->detail_seq == seq)
		return;
	au_detail_clear(s);
	s->detail_seq = seq;
	s->detail_loaded = 1;
	s->detail_err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	if (km_audit_get(kc, seq, &s->detail, &e) != KM_OK)
		ui_tw_format(s->detail_err, sizeof s->detail_err, "%s", e.msg);
}

/* Leaf hash and what changed. */
static int au_detail_summary(ui_view *v, ui_rect a, int y, const au_row *r)
{
	audit_state *s = v->st;
	ui_console *c = v->c;
	char hex[2 * AUDIT_HASH_BYTES + 1];
	au_hex(s->detail.leaf_hash, AUDIT_HASH_BYTES, hex, sizeof hex);
	if (y < a.y + a.h) {
		ui_draw_text(c, y, a.x + 1, 11, UI_EL_SECTION, 0, "Leaf hash");
		ui_draw_text(c, y++, a.x + 12, a.w - 13, UI_EL_HASH, UI_TW_ELLIPSIS, hex);
	}
	if (r->change[0] && y < a.y + a.h) {
		ui_draw_text(c, y, a.x + 1, 11, UI_EL_SECTION, 0, "Change");
		ui_draw_text(c, y++, a.x + 12, a.w - 13, UI_EL_NORMAL, UI_TW_ELLIPSIS, r->change);
	}
	return y;
}

/* The event, indented and wrapped at word boundaries. */
static int au_detail_event(ui_view *v, ui_rect a, int y)
{
	audit_state *s = v->st;
	ui_console *c = v->c;
	if (y >= a.y + a.h)
		return y;
	ui_draw_text(c, y++, a.x + 1, a.w - 2, UI_EL_SECTION, UI_TW_ELLIPSIS,
	             "Event (as hashed: keyward audit show SEQ --json)");
	char *pretty = ui_audit_pretty(s->detail.json);
	/* the object's own braces take two rows and say nothing: its members
	 * are drawn one level out */
	char *body = pretty && pretty[0] == '{' && pretty[1] == '\n' ? pretty + 2 : pretty;
	char *close = body ? strrchr(body, '\n') : NULL;
	if (close && strcmp(close, "\n}") == 0)
		*close = '\0';
	if (body != pretty)
		a.x -= 2, a.w += 2; /* every member line starts with two spaces */
	y = ui_draw_paragraphs(c, a, y, UI_TW_JSON, body);
	free(pretty);
	return y;
}

/* The selected event's RFC 9162 inclusion proof in the newest signed tree
 * head, below its JSON: what `keyward audit prove SEQ` prints.  Kept apart
 * from the rest of the pane (and from audit_state) on purpose: loaded once
 * per selected entry, from O(log n) stored nodes, and checked against the
 * signed root by the core before it is shown. */
static struct {
	uint64_t seq;
	km_status st;
	km_audit_proof p;
	char err[KM_ERR_MSG_MAX];
} au_proof;

static int au_draw_proof(ui_console *c, ui_rect a, int y, uint64_t seq)
{
	if (y >= a.y + a.h)
		return y;
	if (au_proof.seq != seq) {
		km_err e;
		km_err_clear(&e);
		au_proof.seq = seq;
		au_proof.err[0] = '\0';
		if ((au_proof.st = km_audit_prove_inclusion(ui_ctx(c), seq, 0, &au_proof.p, &e)) != KM_OK)
			ui_tw_format(au_proof.err, sizeof au_proof.err, "%s", e.msg);
	}
	char t[300], b64[4 * ((AUDIT_HASH_BYTES + 2) / 3) + 1];
	if (au_proof.st != KM_OK) {
		ui_tw_format(t, sizeof t, "Inclusion proof: %s", au_proof.err);
		ui_draw_text(c, y++, a.x + 1, a.w - 2, au_proof.st == KM_EINTEGRITY ? UI_EL_ERROR : UI_EL_DIM,
		             UI_TW_ELLIPSIS, t);
		return y;
	}
	const km_audit_proof *p = &au_proof.p;
	EVP_EncodeBlock((unsigned char *)b64, p->cp.root, AUDIT_HASH_BYTES);
	ui_tw_format(t, sizeof t, "Inclusion proof (RFC 9162): leaf %llu of the signed tree head of %llu entries, "
	             "root %s, %zu hash%s", (unsigned long long)(seq - 1), (unsigned long long)p->cp.size, b64,
	             p->len, p->len == 1 ? "" : "es");
	ui_draw_text(c, y++, a.x + 1, a.w - 2, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	for (size_t i = 0; i < p->len && y < a.y + a.h; i++) {
		EVP_EncodeBlock((unsigned char *)b64, p->path[i], AUDIT_HASH_BYTES);
		ui_tw_format(t, sizeof t, "%2zu  %s", i + 1, b64);
		ui_draw_text(c, y++, a.x + 1, a.w - 2, UI_EL_HASH, UI_TW_ELLIPSIS, t);
	}
	return y;
}

static void au_draw_detail(ui_view *v, ui_rect a, const au_row *r)
{
	audit_state *s = v->st;
	ui_console *c = v->c;
	au_detail_load(s, ui_ctx(c), r->seq);
	char t[200];
	ui_draw_hline(c, a.y, a.x, a.w, UI_EL_BORDER);
	ui_tw_format(t, sizeof t, " Event %llu ", (unsigned long long)r->seq);
	ui_draw_text(c, a.y, a.x + 2, a.w - 4, UI_EL_SECTION, 0, t);
	int y = a.y + 1;
	if (s->detail_err[0]) {
		ui_draw_text(c, y, a.x + 1, a.w - 2, UI_EL_ERROR, UI_TW_ELLIPSIS, s->detail_err);
		return;
	}
	y = au_detail_summary(v, a, y, r);
	y = au_detail_event(v, a, y);
	au_draw_proof(c, a, y, r->seq);
}

static void au_draw(ui_view *v, ui_rect a)
{
	audit_state *s = v->st;
	ui_console *c = v->c;
	char info[400], n[64];
	if (s->count_pending)
		ui_tw_format(n, sizeof n, "events");
	else
		ui_tw_format(n, sizeof n, "%s%llu of %llu events", s->matching > AU_COUNT_CAP ? "more than " : "",
		             (unsigned long long)(s->matching > AU_COUNT_CAP ? AU_COUNT_CAP : s->matching),
		             (unsigned long long)s->newest);
	const char *sessions = s->f.hide_action ? "logins hidden (L shows)" : "";
	if (s->filtered)
		ui_tw_format(info, sizeof info, "%s match \"%s\", newest first%s%s", n, s->filter_text,
		             sessions[0] ? "; " : "", sessions);
	else if (sessions[0])
		ui_tw_format(info, sizeof info, "%s, newest first; %s", n, sessions);
	else
		ui_tw_format(info, sizeof info, "%llu events, newest first", (unsigned long long)s->newest);
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filtered ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS,
	             info);
	int y = a.y + 1;
	ui_rect vr = {y, a.x, 3, a.w};
	y += au_draw_verify(v, vr);
	ui_rect rr = {y, a.x, 3, a.w};
	y += ui_report_draw(c, rr);
	ui_draw_fill(c, y, a.x, a.w, UI_EL_HEADER);
	char hdr[200];
	ui_tw_format(hdr, sizeof hdr, "%*s %-*s %-*s %-*s %-*s %s", AU_SEQ, "SEQ", AU_TIME, "TIME (UTC)",
	             AU_ACTOR, "ACTOR", AU_ACTION, "ACTION", AU_OUTCOME, "OUTCOME",
	             AU_NARROW(a) ? "CHANGE  OBJECT" : "OBJECT  CHANGE");
	ui_draw_text(c, y, a.x + 1, a.w - 2, UI_EL_HEADER, UI_TW_PAD, hdr);
	y++;
	int rows = au_list_rows(v);
	if (rows != s->lw.cap)
		au_report(v, ui_lw_resize(&s->lw, rows));
	s->list_y = y;
	s->list_rows = rows;
	if (s->lw.n == 0)
		ui_draw_text(c, y, a.x + 2, a.w - 4, UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->lw.err.code != KM_OK ? s->lw.err.msg
		             : s->filtered          ? "no event matches the filter (/ or f to change it, q to clear)"
		                                    : "no events");
	for (int i = 0; i < s->lw.n && i < rows; i++)
		au_draw_row(v, y + i, a, ui_lw_row(&s->lw, i), i == s->lw.sel ? UI_EL_SELECTED : UI_EL_NORMAL);
	const au_row *sel = ui_lw_selected(&s->lw);
	if (s->detail_open && sel) {
		ui_rect d = {y + rows, a.x, a.y + a.h - (y + rows), a.w};
		au_draw_detail(v, d, sel);
	}
}

/* ---- actions ------------------------------------------------------------- */

static int au_handle(ui_view *v, ui_action a)
{
	audit_state *s = v->st;
	switch (a) {
	case UI_ACT_MOVE_DOWN: au_report(v, ui_lw_down(&s->lw)); return 1;
	case UI_ACT_MOVE_UP: au_report(v, ui_lw_up(&s->lw)); return 1;
	case UI_ACT_PAGE_DOWN: au_report(v, ui_lw_page_down(&s->lw)); return 1;
	case UI_ACT_PAGE_UP: au_report(v, ui_lw_page_up(&s->lw)); return 1;
	case UI_ACT_FIRST: au_report(v, ui_lw_home(&s->lw)); return 1;
	case UI_ACT_LAST: au_report(v, ui_lw_end(&s->lw)); return 1;
	case UI_ACT_ENTER:
	case UI_ACT_PANE_RIGHT:
		s->detail_open = a == UI_ACT_ENTER ? !s->detail_open : 1;
		au_report(v, ui_lw_resize(&s->lw, au_list_rows(v)));
		return 1;
	case UI_ACT_PANE_LEFT:
		return 1;
	case UI_ACT_QUIT:
		if (s->detail_open) {
			s->detail_open = 0;
			au_report(v, ui_lw_resize(&s->lw, au_list_rows(v)));
			return 1;
		}
		if (s->filtered) {
			au_filter_now(v, "");
			return 1;
		}
		return 0;
	case UI_ACT_AUDIT_FILTER:
		au_filter_form(v);
		return 1;
	case UI_ACT_AUDIT_VERIFY:
		au_verify_begin(v);
		return 1;
	case UI_ACT_AUDIT_REPORT:
		ui_report_start(v->c);
		return 1;
	case UI_ACT_AUDIT_SESSIONS:
		s->show_sessions = !s->show_sessions;
		au_sessions_apply(s);
		au_report(v, ui_lw_home(&s->lw));
		au_count(v);
		ui_message(v->c, s->show_sessions ? "session (login) events shown" : "session (login) events hidden");
		return 1;
	default:
		return 0;
	}
}

static void au_click(ui_view *v, int y, int x)
{
	audit_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + s->list_rows)
		ui_lw_select(&s->lw, y - s->list_y);
	ui_dirty(v->c);
}

const struct ui_view_ops ui_view_audit = {
	.name = "audit",
	.title = "Audit",
	.help = "The audit log, newest first; each row shows what the event changed (old -> new, the "
	        "asset). Session (login) events are hidden until L shows them. / filters as you type, "
	        "with words key:NAME actor:NAME action:NAME "
	        "outcome:ok|denied|error since:TIME until:TIME; a bare word selects the events about "
	        "the keys whose names contain it, as on the keys screen; "
	        "f opens the same filter as a form. Enter shows the event, indented, and its leaf "
	        "hash. V verifies the whole log in the background: every leaf, every signed tree "
	        "head; on damage the list jumps to the first bad entry. R starts an auditor report "
	        "(period, format, role, file) in the background with its phase and percent; Esc "
	        "cancels it and leaves no file; at the end the file's path is shown.",
	.state_size = sizeof(audit_state),
	.open = au_open,
	.close = au_close,
	.reload = au_reload,
	.draw = au_draw,
	.handle = au_handle,
	.filter = au_filter,
	.filter_text = au_filter_text,
	.filter_settled = au_filter_settled,
	.click = au_click,
	.tick = au_tick,
};
