/*
 * view_schedule.c — the rotation schedule: every key that is due,
 * overdue, compromised (a compromised version still protecting assets) or
 * near its usage bound, most urgent first then by due date, with the
 * policy the cadence came from, the last rotation and any open request;
 * r requests a rotation of the selected key (the same request as
 * `keyward key rotate`).
 *
 * The list is km_schedule_list's, loaded whole when the data changed: it
 * holds only keys needing attention, bounded by SC_MAX.
 *
 * Must never: rotate anything itself (it asks ui_op_rotate, which opens a
 * request), or query while only repainting.
 */
#include "ui.h"
#include "rowsel.h"
#include "views.h"
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

#define SC_MAX 5000

typedef struct sched_state {
	km_schedule_entry *all;   /* as listed */
	size_t nall, cap;
	int *shown;               /* indexes into all matching the filter */
	ui_rowsel rs;
	char filter[256];
	int detail_open;
	int list_y, page;
	char err[KM_ERR_MSG_MAX];
} sched_state;

static int sc_collect(void *ctx, const km_schedule_entry *se)
{
	sched_state *s = ctx;
	if (s->nall == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		km_schedule_entry *n = realloc(s->all, cap * sizeof *n);
		int *sh = realloc(s->shown, cap * sizeof *sh);
		if (n)
			s->all = n;
		if (sh)
			s->shown = sh;
		if (!n || !sh)
			return 1;
		s->cap = cap;
	}
	s->all[s->nall++] = *se;
	return s->nall >= SC_MAX;
}

static void sc_apply_filter(sched_state *s)
{
	s->rs.n = 0;
	for (size_t i = 0; i < s->nall; i++)
		if (!s->filter[0] || strstr(s->all[i].key, s->filter))
			s->shown[s->rs.n++] = (int)i;
	ui_rs_fit(&s->rs, s->page);
}

static void sc_reload(ui_view *v)
{
	sched_state *s = v->st;
	s->nall = 0;
	s->err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	if (km_schedule_list(ui_ctx(v->c), 0, SC_MAX, sc_collect, s, &e) != KM_OK)
		ui_tw_format(s->err, sizeof s->err, "%s", e.msg);
	sc_apply_filter(s);
}

static void sc_close(ui_view *v)
{
	sched_state *s = v->st;
	free(s->all);
	free(s->shown);
}

static const km_schedule_entry *sc_selected(sched_state *s)
{
	return s->rs.n ? &s->all[s->shown[s->rs.sel]] : NULL;
}

static void sc_date(int64_t t, char buf[32])
{
	ui_fmt_time(t, buf);
	if (t)
		buf[10] = '\0';
}

/* Usage of the bound as a percentage ("-" when the policy sets none). */
static void sc_usage(const km_schedule_entry *se, char *buf, size_t cap)
{
	if (se->usage_bound == 0)
		ui_tw_format(buf, cap, "-");
	else
		ui_tw_format(buf, cap, "%.0f %%", 100.0 * (double)se->wraps / (double)se->usage_bound);
}

static void sc_draw_detail(ui_view *v, ui_rect a, const km_schedule_entry *se)
{
	ui_console *c = v->c;
	char t[512], due[32], last[32], attn[128];
	ui_draw_hline(c, a.y, a.x, a.w, UI_EL_BORDER);
	ui_tw_format(t, sizeof t, " %s ", se->key);
	ui_draw_text(c, a.y, a.x + 2, a.w - 4, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	ui_fmt_time(se->due, due);
	ui_fmt_time(se->last_rotation, last);
	km_attention_format(se->attention, attn, sizeof attn);
	const char *lines[6];
	char l[6][300];
	ui_tw_format(l[0], sizeof l[0], "Needs attention: %s", attn[0] ? attn : "-");
	ui_tw_format(l[1], sizeof l[1], "Current version %u (%s), active since %s UTC", se->version,
	             km_state_name(se->state), last);
	ui_tw_format(l[2], sizeof l[2], "Cadence %lld days (policy %s): due %s UTC",
	             (long long)se->cadence_days, se->policy_source[0] ? se->policy_source : "default", due);
	ui_tw_format(l[3], sizeof l[3], "Usage: %llu of %llu encryptions under this version",
	             (unsigned long long)se->wraps, (unsigned long long)se->usage_bound);
	ui_tw_format(l[4], sizeof l[4], "Open request: %s", se->request_id[0] ? se->request_id
	                                                   : "none (r requests a rotation)");
	for (int i = 0; i < 5; i++)
		lines[i] = l[i];
	for (int i = 0; i < 5 && 1 + i < a.h; i++)
		ui_draw_text(c, a.y + 1 + i, a.x + 1, a.w - 2, UI_EL_NORMAL, UI_TW_ELLIPSIS, lines[i]);
}

static void sc_draw(ui_view *v, ui_rect a)
{
	sched_state *s = v->st;
	ui_console *c = v->c;
	char info[400];
	ui_tw_format(info, sizeof info, "%d key%s due, overdue, compromised or near the usage bound%s%s%s; "
	             "most urgent first, then by due date", s->rs.n, s->rs.n == 1 ? "" : "s",
	             s->filter[0] ? " matching \"" : "", s->filter, s->filter[0] ? "\"" : "");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filter[0] ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS, info);
	int detail_h = s->detail_open ? 7 : 0;
	s->list_y = a.y + 2;
	s->page = a.h - 2 - detail_h;
	if (s->page < 1)
		s->page = 1;
	ui_rs_fit(&s->rs, s->page);
	/* KEY VER ATTENTION DUE LAST-ROTATION USAGE POLICY REQUEST: the
	 * attention and policy columns are as wide as what is shown in them,
	 * and names get the rest; at 80 columns the request column (also in
	 * the detail pane) gives way first, then the policy. */
	int wkey = 12, watt = 9, wpol = 6, wreq = 8;
	for (int i = 0; i < s->rs.n; i++) {
		const km_schedule_entry *se = &s->all[s->shown[i]];
		char at[128];
		km_attention_format(se->attention, at, sizeof at);
		int w = ui_tw_width(se->key), wa = ui_tw_width(at),
		    wp = ui_tw_width(se->policy_source[0] ? se->policy_source : "default");
		wkey = w > wkey ? w : wkey;
		watt = wa > watt ? wa : watt;
		wpol = wp > wpol ? wp : wpol;
	}
	watt = watt > 24 ? 24 : watt;
	wpol = wpol > 14 ? 14 : wpol;
	int fixed = 4 + (watt + 1) + 11 + 11 + 7 + (wpol + 1) + (wreq + 1);
	if (wkey > a.w - 2 - fixed) {
		fixed -= wreq + 1, wreq = 0;
		if (wkey > a.w - 2 - fixed)
			fixed -= wpol + 1, wpol = 0;
		if (wkey > a.w - 2 - fixed)
			wkey = a.w - 2 - fixed > 12 ? a.w - 2 - fixed : 12;
	}
	char hdr[400];
	ui_tw_format(hdr, sizeof hdr, "%-*s %3s %-*s %-10s %-10s %6s %-*s%s%s", wkey, "KEY", "VER", watt,
	             "ATTENTION", "DUE", "ROTATED", "USAGE", wpol, wpol ? "POLICY" : "", wpol ? " " : "",
	             wreq ? "REQUEST" : "");
	ui_draw_fill(c, a.y + 1, a.x, a.w, UI_EL_HEADER);
	ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_HEADER, UI_TW_PAD, hdr);
	if (s->rs.n == 0)
		ui_draw_text(c, s->list_y, a.x + 2, a.w - 4, s->err[0] ? UI_EL_ERROR : UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->err[0] ? s->err
		             : s->filter[0] ? "no key in the schedule matches the filter (q clears it)"
		                            : "nothing is due: every key is within its policy");
	for (int r = 0; r < s->page && s->rs.top + r < s->rs.n; r++) {
		int i = s->rs.top + r;
		const km_schedule_entry *se = &s->all[s->shown[i]];
		int y = s->list_y + r;
		int selected = i == s->rs.sel;
		ui_element base = selected ? UI_EL_SELECTED : UI_EL_NORMAL;
		ui_draw_fill(c, y, a.x, a.w, base);
		char attn[128], due[32], last[32], use[16], t[64];
		km_attention_format(se->attention, attn, sizeof attn);
		sc_date(se->due, due);
		sc_date(se->last_rotation, last);
		sc_usage(se, use, sizeof use);
		int x = a.x + 1;
		ui_draw_text(c, y, x, wkey, base, UI_TW_PAD | UI_TW_ELLIPSIS, se->key);
		x += wkey + 1;
		ui_tw_format(t, sizeof t, "%u", se->version);
		ui_draw_text(c, y, x, 3, base, UI_TW_PAD | UI_TW_RIGHT, t);
		x += 4;
		ui_element ae = base;
		if (!selected)
			ae = se->attention & KM_ATTN_COMPROMISED ? UI_EL_STATE_COMPROMISED
			   : se->attention & KM_ATTN_OVERDUE     ? UI_EL_BAD
			   : se->attention & (KM_ATTN_DUE | KM_ATTN_NEAR_BOUND) ? UI_EL_SECTION : UI_EL_DIM;
		ui_draw_text(c, y, x, watt, ae, UI_TW_PAD | UI_TW_ELLIPSIS, attn);
		x += watt + 1;
		/* overdue in red */
		ui_draw_text(c, y, x, 10, !selected && (se->attention & KM_ATTN_OVERDUE) ? UI_EL_BAD : base,
		             UI_TW_PAD, due);
		x += 11;
		ui_draw_text(c, y, x, 10, base, UI_TW_PAD, last);
		x += 11;
		ui_draw_text(c, y, x, 6, !selected && (se->attention & KM_ATTN_NEAR_BOUND) ? UI_EL_SECTION : base,
		             UI_TW_PAD | UI_TW_RIGHT, use);
		x += 7;
		if (wpol) {
			ui_draw_text(c, y, x, wpol, base, UI_TW_PAD | UI_TW_ELLIPSIS,
			             se->policy_source[0] ? se->policy_source : "default");
			x += wpol + 1;
		}
		if (wreq) {
			ui_tw_format(t, sizeof t, "%.8s", se->request_id[0] ? se->request_id : "-");
			ui_draw_text(c, y, x, a.x + a.w - x - 1, base, UI_TW_PAD | UI_TW_ELLIPSIS, t);
		}
	}
	const km_schedule_entry *sel = sc_selected(s);
	if (s->detail_open && sel) {
		ui_rect d = {a.y + a.h - detail_h, a.x, detail_h, a.w};
		sc_draw_detail(v, d, sel);
	}
}

static int sc_handle(ui_view *v, ui_action a)
{
	sched_state *s = v->st;
	if (ui_rs_move(&s->rs, a, s->page))
		return 1;
	const km_schedule_entry *sel = sc_selected(s);
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
			sc_apply_filter(s);
			return 1;
		}
		return 0;
	case UI_ACT_KEY_ROTATE: {
		if (!sel) {
			ui_error_text(v->c, "no key selected");
			return 1;
		}
		char key[sizeof sel->key];
		ui_tw_format(key, sizeof key, "%s", sel->key); /* the list reloads under the dialog */
		ui_op_rotate(v->c, key, 1);
		return 1;
	}
	default:
		return 0;
	}
}

static void sc_filter(ui_view *v, const char *text)
{
	sched_state *s = v->st;
	ui_tw_format(s->filter, sizeof s->filter, "%s", text);
	s->rs.sel = s->rs.top = 0;
	sc_apply_filter(s);
	ui_dirty(v->c);
}

static const char *sc_filter_text(ui_view *v)
{
	sched_state *s = v->st;
	return s->filter;
}

static void sc_click(ui_view *v, int y, int x)
{
	sched_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + s->page) {
		s->rs.sel = s->rs.top + (y - s->list_y);
		ui_rs_fit(&s->rs, s->page);
	}
	ui_dirty(v->c);
}

const struct ui_view_ops ui_view_schedule = {
	.name = "schedule",
	.title = "Schedule",
	.short_title = "Sched",
	.help = "The rotation schedule: keys that are due (cadence passed or 90 % of the usage "
	        "bound used), overdue (in red), compromised with assets still under the version, or "
	        "near the bound; compromised and overdue first, then by due date. Each row shows the "
	        "policy the cadence comes from, the last rotation and any open request. r requests "
	        "a rotation of the selected key (approvers then sign it in the Approvals screen); "
	        "Enter shows the details; / filters by key name.",
	.state_size = sizeof(sched_state),
	.close = sc_close,
	.reload = sc_reload,
	.draw = sc_draw,
	.handle = sc_handle,
	.filter = sc_filter,
	.filter_text = sc_filter_text,
	.click = sc_click,
};
