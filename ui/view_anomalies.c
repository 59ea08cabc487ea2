/*
 * view_anomalies.c — the anomalies `keyward audit scan` found, newest
 * first: rule, whom it is about, what it touched, and the evidence (the
 * seqs of the events behind it); the detail pane gives the reason and
 * every evidence seq.  / filters by a word in the rule, actor or object.
 *
 * The rows are anomaly events read through the authorised audit query
 * (action "anomaly"), loaded whole when the data changed, at most AN_MAX
 * of the newest: a scan raises findings for a person to look at, not a
 * stream.
 *
 * Must never: scan (the scan appends; it is `keyward audit scan`'s, from
 * cron), or query while only repainting.
 */
#include "ui.h"
#include "rowsel.h"
#include "views.h"
#include "anomaly.h"
#include "auditlog.h"
#include "audittext.h"

#include <stdlib.h>
#include <string.h>

#define AN_MAX 2000

typedef struct an_row {
	uint64_t seq;
	char time[32], rule[32], subject[64], object[200], reason[400];
	char evidence[400]; /* "12,13,14" */
	size_t nevidence;
} an_row;

typedef struct anom_state {
	an_row *all;
	size_t nall, cap;
	int *shown;
	ui_rowsel rs;
	char filter[256];
	int detail_open;
	int list_y, page;
	char err[KM_ERR_MSG_MAX];
} anom_state;

static int an_collect(void *ctx, const audit_row *r)
{
	anom_state *s = ctx;
	if (s->nall == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		an_row *n = realloc(s->all, cap * sizeof *n);
		int *sh = realloc(s->shown, cap * sizeof *sh);
		if (n)
			s->all = n;
		if (sh)
			s->shown = sh;
		if (!n || !sh)
			return 1;
		s->cap = cap;
	}
	an_row *a = &s->all[s->nall++];
	memset(a, 0, sizeof *a);
	a->seq = r->seq;
	ui_tw_format(a->time, sizeof a->time, "%.19s", r->time ? r->time : "");
	if (a->time[10] == 'T')
		a->time[10] = ' ';
	ui_tw_format(a->object, sizeof a->object, "%s", r->object ? r->object : "");
	json_t *ev = json_loads(r->json, 0, NULL);
	json_t *d = json_object_get(ev, "details");
	const char *rule = json_string_value(json_object_get(d, "rule"));
	const char *subject = json_string_value(json_object_get(d, "subject"));
	const char *reason = json_string_value(json_object_get(d, "reason"));
	ui_tw_format(a->rule, sizeof a->rule, "%s", rule ? rule : "?");
	ui_tw_format(a->subject, sizeof a->subject, "%s", subject ? subject : "?");
	ui_tw_format(a->reason, sizeof a->reason, "%s", reason ? reason : "");
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(d, "evidence"), i, x) {
		size_t len = strlen(a->evidence);
		ui_tw_format(a->evidence + len, sizeof a->evidence - len, "%s%lld", i ? ", " : "",
		             (long long)json_integer_value(x));
		a->nevidence++;
	}
	json_decref(ev);
	return s->nall >= AN_MAX;
}

static void an_apply_filter(anom_state *s)
{
	s->rs.n = 0;
	for (size_t i = 0; i < s->nall; i++) {
		const an_row *a = &s->all[i];
		if (!s->filter[0] || strstr(a->rule, s->filter) || strstr(a->subject, s->filter) ||
		    strstr(a->object, s->filter))
			s->shown[s->rs.n++] = (int)i;
	}
	ui_rs_fit(&s->rs, s->page);
}

static void an_reload(ui_view *v)
{
	anom_state *s = v->st;
	s->nall = 0;
	s->err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	audit_filter f = {.action = KM_ANOMALY_ACTION};
	if (km_audit_query(ui_ctx(v->c), &f, 0, AN_MAX, an_collect, s, &e) != KM_OK)
		ui_tw_format(s->err, sizeof s->err, "%s", e.msg);
	an_apply_filter(s);
}

static void an_close(ui_view *v)
{
	anom_state *s = v->st;
	free(s->all);
	free(s->shown);
}

static const an_row *an_selected(anom_state *s)
{
	return s->rs.n ? &s->all[s->shown[s->rs.sel]] : NULL;
}

static void an_draw_detail(ui_view *v, ui_rect a, const an_row *r)
{
	ui_console *c = v->c;
	char t[600];
	ui_draw_hline(c, a.y, a.x, a.w, UI_EL_BORDER);
	ui_tw_format(t, sizeof t, " Anomaly %llu: %s ", (unsigned long long)r->seq, r->rule);
	ui_draw_text(c, a.y, a.x + 2, a.w - 4, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	int y = ui_draw_paragraphs(c, a, a.y + 1, 0, r->reason);
	if (y < a.y + a.h)
		ui_draw_text(c, y++, a.x + 1, a.w - 2, UI_EL_SECTION, 0, "Evidence: the audit events (keyward audit show SEQ)");
	ui_tw_format(t, sizeof t, "%s", r->evidence);
	ui_draw_paragraphs(c, a, y, 0, t);
}

static void an_draw(ui_view *v, ui_rect a)
{
	anom_state *s = v->st;
	ui_console *c = v->c;
	char info[400];
	ui_tw_format(info, sizeof info, "%d anomal%s%s%s%s, newest first; `keyward audit scan` finds new ones",
	             s->rs.n, s->rs.n == 1 ? "y" : "ies", s->filter[0] ? " matching \"" : "", s->filter,
	             s->filter[0] ? "\"" : "");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filter[0] ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS, info);
	int detail_h = s->detail_open ? (a.h - 2) / 2 : 0;
	s->list_y = a.y + 2;
	s->page = a.h - 2 - detail_h;
	if (s->page < 1)
		s->page = 1;
	ui_rs_fit(&s->rs, s->page);
	/* Below 100 columns the object gets the room: the year goes from the
	 * time, the seq and actor columns shrink to what the rows need. */
	int narrow = a.w < 100;
	int W_SEQ = narrow ? 7 : 8, W_TIME = narrow ? 11 : 16, W_RULE = 13, W_SUBJ = 14;
	if (narrow) {
		W_SUBJ = 5;
		for (int i = 0; i < s->rs.n; i++) {
			int w = ui_tw_width(s->all[s->shown[i]].subject);
			if (w > W_SUBJ)
				W_SUBJ = w < 16 ? w : 16;
		}
	}
	char hdr[300];
	ui_tw_format(hdr, sizeof hdr, "%*s %-*s %-*s %-*s %s", W_SEQ, "SEQ", W_TIME, "TIME (UTC)", W_RULE, "RULE",
	             W_SUBJ, "ACTOR", "OBJECT  EVIDENCE");
	ui_draw_fill(c, a.y + 1, a.x, a.w, UI_EL_HEADER);
	ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_HEADER, UI_TW_PAD, hdr);
	if (s->rs.n == 0)
		ui_draw_text(c, s->list_y, a.x + 2, a.w - 4, s->err[0] ? UI_EL_ERROR : UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->err[0] ? s->err
		             : s->filter[0] ? "no anomaly matches the filter (q clears it)"
		                            : "no anomalies (run `keyward audit scan` to look for new ones)");
	for (int r = 0; r < s->page && s->rs.top + r < s->rs.n; r++) {
		int i = s->rs.top + r;
		const an_row *an = &s->all[s->shown[i]];
		int y = s->list_y + r;
		ui_element base = i == s->rs.sel ? UI_EL_SELECTED : UI_EL_NORMAL;
		ui_draw_fill(c, y, a.x, a.w, base);
		char t[600];
		int x = a.x + 1;
		ui_tw_format(t, sizeof t, "%llu", (unsigned long long)an->seq);
		ui_draw_text(c, y, x, W_SEQ, base, UI_TW_RIGHT, t);
		x += W_SEQ + 1;
		ui_draw_text(c, y, x, W_TIME, base, UI_TW_PAD,
		             narrow && strlen(an->time) >= 16 ? an->time + 5 : an->time);
		x += W_TIME + 1;
		ui_draw_text(c, y, x, W_RULE, base == UI_EL_NORMAL ? UI_EL_BAD : base, UI_TW_PAD | UI_TW_ELLIPSIS,
		             an->rule);
		x += W_RULE + 1;
		ui_draw_text(c, y, x, W_SUBJ, base, UI_TW_PAD | UI_TW_ELLIPSIS, an->subject);
		x += W_SUBJ + 1;
		ui_tw_format(t, sizeof t, "%s  evidence %s", an->object, an->evidence);
		ui_draw_text(c, y, x, a.x + a.w - x - 1, base, UI_TW_PAD | UI_TW_ELLIPSIS, t);
	}
	const an_row *sel = an_selected(s);
	if (s->detail_open && sel) {
		ui_rect d = {a.y + a.h - detail_h, a.x, detail_h, a.w};
		an_draw_detail(v, d, sel);
	}
}

static int an_handle(ui_view *v, ui_action a)
{
	anom_state *s = v->st;
	if (ui_rs_move(&s->rs, a, s->page))
		return 1;
	switch (a) {
	case UI_ACT_ENTER:
	case UI_ACT_PANE_RIGHT:
		s->detail_open = a == UI_ACT_ENTER ? !s->detail_open : 1;
		return 1;
	case UI_ACT_PANE_LEFT:
		return 1;
	case UI_ACT_QUIT:
		if (s->detail_open) {
			s->detail_open = 0;
			return 1;
		}
		if (s->filter[0]) {
			s->filter[0] = '\0';
			an_apply_filter(s);
			return 1;
		}
		return 0;
	default:
		return 0;
	}
}

static void an_filter(ui_view *v, const char *text)
{
	anom_state *s = v->st;
	ui_tw_format(s->filter, sizeof s->filter, "%s", text);
	s->rs.sel = s->rs.top = 0;
	an_apply_filter(s);
	ui_dirty(v->c);
}

static const char *an_filter_text(ui_view *v)
{
	anom_state *s = v->st;
	return s->filter;
}

static void an_click(ui_view *v, int y, int x)
{
	anom_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + s->page) {
		s->rs.sel = s->rs.top + (y - s->list_y);
		ui_rs_fit(&s->rs, s->page);
	}
	ui_dirty(v->c);
}

const struct ui_view_ops ui_view_anomalies = {
	.name = "anomalies",
	.title = "Anomalies",
	.short_title = "Anom",
	.help = "What `keyward audit scan` found in the audit log, newest first: a decrypt-rate spike, "
	        "a first use of a key by an actor, use outside working hours, many assets decrypted in "
	        "a short window, a burst of denials, a decrypt under a decrypt-only or compromised "
	        "version. Each row names the rule, the actor, the object and the evidence (the seqs of "
	        "the audit events behind it); Enter shows the reason and every evidence seq. / filters "
	        "by a word in the rule, actor or object.",
	.state_size = sizeof(anom_state),
	.close = an_close,
	.reload = an_reload,
	.draw = an_draw,
	.handle = an_handle,
	.filter = an_filter,
	.filter_text = an_filter_text,
	.click = an_click,
};
