/*
 * view_inbox.c — the approvals inbox: the pending requests this person may
 * sign now, each with what changes, the affected assets, the risk with its
 * factors and the signatures so far; a approves (the core asks for the
 * passphrase, and the one-time code when the policy wants it, through the
 * console's step-up dialog), d rejects with a reason; H shows the history
 * of decided requests instead.
 *
 * The list is km_request_list's (inbox, or every request for the
 * history), loaded whole when the data changed; the signatures of the
 * selected request are fetched when the selection changes.
 *
 * Must never: sign or reject without the core call, or show a signature as
 * valid that the core did not check (km_approval_info.valid).
 */
#include "ui.h"
#include "dialog.h"
#include "rowsel.h"
#include "views.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

#define IB_MAX 1000
#define IB_MAX_APPROVALS 16

typedef struct inbox_state {
	km_request_info *reqs;
	size_t nreqs, cap;
	int *shown;
	ui_rowsel rs;
	int history;              /* 0: may sign now; 1: decided requests */
	char filter[256];
	char err[KM_ERR_MSG_MAX];
	int list_y, page;
	/* signatures of the selected request */
	char approvals_of[KM_REQUEST_ID_MAX];
	km_approval_info approvals[IB_MAX_APPROVALS];
	int napprovals;
	char approvals_err[KM_ERR_MSG_MAX];
} inbox_state;

static int ib_decided(km_request_state st)
{
	return st != KM_RS_PENDING && st != KM_RS_APPROVED;
}

static int ib_collect(void *ctx, const km_request_info *r)
{
	inbox_state *s = ctx;
	if (s->history && !ib_decided(r->state))
		return 0;
	if (s->nreqs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		km_request_info *n = realloc(s->reqs, cap * sizeof *n);
		int *sh = realloc(s->shown, cap * sizeof *sh);
		if (n)
			s->reqs = n;
		if (sh)
			s->shown = sh;
		if (!n || !sh)
			return 1;
		s->cap = cap;
	}
	s->reqs[s->nreqs++] = *r;
	return s->nreqs >= IB_MAX;
}

/* A word matches the request's object (the key's name) or its summary. */
static void ib_apply_filter(inbox_state *s)
{
	s->rs.n = 0;
	for (size_t i = 0; i < s->nreqs; i++)
		if (!s->filter[0] || strstr(s->reqs[i].object, s->filter) || strstr(s->reqs[i].summary, s->filter))
			s->shown[s->rs.n++] = (int)i;
	ui_rs_fit(&s->rs, s->page);
	s->approvals_of[0] = '\0';
}

static void ib_reload(ui_view *v)
{
	inbox_state *s = v->st;
	s->nreqs = 0;
	s->err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	km_request_query q = {.inbox = !s->history, .pending_only = !s->history};
	if (km_request_list(ui_ctx(v->c), &q, ib_collect, s, &e) != KM_OK)
		ui_tw_format(s->err, sizeof s->err, "%s", e.msg);
	ib_apply_filter(s);
}

static void ib_close(ui_view *v)
{
	inbox_state *s = v->st;
	free(s->reqs);
	free(s->shown);
}

static const km_request_info *ib_selected(inbox_state *s)
{
	return s->rs.n ? &s->reqs[s->shown[s->rs.sel]] : NULL;
}

static int ib_approval_cb(void *ctx, const km_approval_info *a)
{
	inbox_state *s = ctx;
	if (s->napprovals >= IB_MAX_APPROVALS)
		return 1;
	s->approvals[s->napprovals++] = *a;
	return 0;
}

/* Recalc on selection change only. */
static void ib_load_approvals(ui_view *v, const km_request_info *r)
{
	inbox_state *s = v->st;
	if (strcmp(s->approvals_of, r->id) == 0)
		return;
	ui_tw_format(s->approvals_of, sizeof s->approvals_of, "%s", r->id);
	s->napprovals = 0;
	s->approvals_err[0] = '\0';
	km_err e;
	km_err_clear(&e);
	if (km_request_approvals(ui_ctx(v->c), r->id, ib_approval_cb, s, &e) != KM_OK)
		ui_tw_format(s->approvals_err, sizeof s->approvals_err, "%s", e.msg);
}

static void ib_draw_detail(ui_view *v, ui_rect a, const km_request_info *r)
{
	inbox_state *s = v->st;
	ui_console *c = v->c;
	ib_load_approvals(v, r);
	const ui_glyphs *g = ui_glyph(c);
	char t[600];
	ui_draw_hline(c, a.y, a.x, a.w, UI_EL_BORDER);
	ui_tw_format(t, sizeof t, " %s request %.12s ", km_request_kind_name(r->kind), r->id);
	ui_draw_text(c, a.y, a.x + 2, a.w - 4, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	int y = a.y + 1, bottom = a.y + a.h;
	int lw = a.w / 2 - 1, rx = a.x + a.w / 2 + 1, rw = a.w - a.w / 2 - 2;
	/* left: what changes, assets, reason, digest */
	ui_draw_text(c, y++, a.x + 1, lw, UI_EL_SECTION, 0, "What changes");
	/* every line wraps (at 80 columns a half pane is 39 cells); the
	 * summary leaves room for the five facts below it */
	y = ui_draw_wrapped(c, y, bottom - 7, a.x + 1, lw, UI_EL_NORMAL, r->summary);
	ui_tw_format(t, sizeof t, "Affected assets: %llu", (unsigned long long)r->assets);
	ui_draw_text(c, y++, a.x + 1, lw, UI_EL_NORMAL, UI_TW_ELLIPSIS, t);
	ui_tw_format(t, sizeof t, "Requested by %s: %s", r->requester, r->reason[0] ? r->reason : "(no reason)");
	y = ui_draw_wrapped(c, y, bottom - 4, a.x + 1, lw, UI_EL_NORMAL, t);
	char cr[32], ex[32];
	ui_fmt_time(r->created, cr);
	ui_fmt_time(r->decided ? r->decided : r->expires, ex);
	ui_tw_format(t, sizeof t, "Opened %s, %s %s UTC", cr, r->decided ? "decided" : "expires", ex);
	y = ui_draw_wrapped(c, y, bottom - 2, a.x + 1, lw, UI_EL_DIM, t);
	ui_tw_format(t, sizeof t, "Digest %s", r->digest);
	ui_draw_wrapped(c, y, bottom, a.x + 1, lw, UI_EL_HASH, t);
	/* right: risk and its factors, then the signatures */
	for (int yy = a.y + 1; yy < bottom; yy++)
		ui_draw_text(c, yy, a.x + a.w / 2, 1, UI_EL_BORDER, 0, g->vline);
	y = a.y + 1;
	ui_tw_format(t, sizeof t, "Risk %s (score %d)%s", r->risk.tier, r->risk.score,
	             strcmp(r->risk.tier, "high") == 0 ? ": one more approver" : "");
	ui_draw_text(c, y++, rx, rw, strcmp(r->risk.tier, "high") == 0 ? UI_EL_BAD : UI_EL_SECTION,
	             UI_TW_ELLIPSIS, t);
	for (size_t i = 0; i < r->risk.nfactors && y < bottom - 3; i++) {
		const km_risk_factor *f = &r->risk.factors[i];
		ui_tw_format(t, sizeof t, "%+3d %-11s %s", f->points, f->name, f->detail);
		ui_draw_text(c, y++, rx, rw, UI_EL_NORMAL, UI_TW_ELLIPSIS, t);
	}
	y++;
	ui_tw_format(t, sizeof t, "Signatures %u of %u", r->approvals, r->quorum);
	ui_draw_text(c, y++, rx, rw, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	if (s->approvals_err[0])
		ui_draw_text(c, y++, rx, rw, UI_EL_ERROR, UI_TW_ELLIPSIS, s->approvals_err);
	if (s->napprovals == 0 && !s->approvals_err[0] && y < bottom)
		ui_draw_text(c, y++, rx, rw, UI_EL_DIM, 0, "(none yet)");
	for (int i = 0; i < s->napprovals && y < bottom; i++) {
		const km_approval_info *ap = &s->approvals[i];
		char tm[32];
		ui_fmt_time(ap->time, tm);
		ui_tw_format(t, sizeof t, "%s %-10s %s %s", ap->valid ? g->ok : "!", ap->approver,
		             ap->approve ? "approved" : "rejected", tm);
		ui_draw_text(c, y, rx, rw, ap->valid ? (ap->approve ? UI_EL_OK : UI_EL_BAD) : UI_EL_ERROR,
		             UI_TW_ELLIPSIS, t);
		y++;
		if (!ap->approve && ap->reason[0] && y < bottom) {
			ui_tw_format(t, sizeof t, "reason: %s", ap->reason);
			ui_draw_text(c, y++, rx + 2, rw - 2, UI_EL_NORMAL, UI_TW_ELLIPSIS, t);
		}
		if (!ap->valid && ap->problem[0] && y < bottom)
			ui_draw_text(c, y++, rx + 2, rw - 2, UI_EL_ERROR, UI_TW_ELLIPSIS, ap->problem);
	}
}

static void ib_draw(ui_view *v, ui_rect a)
{
	inbox_state *s = v->st;
	ui_console *c = v->c;
	char info[400];
	if (s->history)
		ui_tw_format(info, sizeof info, "%d decided request%s%s%s%s, newest first  (H: the inbox)",
		             s->rs.n, s->rs.n == 1 ? "" : "s", s->filter[0] ? " matching \"" : "", s->filter,
		             s->filter[0] ? "\"" : "");
	else
		ui_tw_format(info, sizeof info, "%d request%s you may sign now%s%s%s  (H: history of decided ones)",
		             s->rs.n, s->rs.n == 1 ? "" : "s", s->filter[0] ? " matching \"" : "", s->filter,
		             s->filter[0] ? "\"" : "");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filter[0] ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS, info);
	int list_h = (a.h * 2) / 5;
	if (list_h < 4)
		list_h = 4;
	s->list_y = a.y + 2;
	s->page = list_h - 2;
	ui_rs_fit(&s->rs, s->page);
	char hdr[300];
	ui_tw_format(hdr, sizeof hdr, "%-12s %-16s %-10s %-6s %-9s %-10s %s", "ID", "KIND",
	             s->history ? "STATE" : "SIGNED", "RISK", "ASSETS", "REQUESTER", "WHAT CHANGES");
	ui_draw_fill(c, a.y + 1, a.x, a.w, UI_EL_HEADER);
	ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_HEADER, UI_TW_PAD, hdr);
	if (s->rs.n == 0)
		ui_draw_text(c, s->list_y, a.x + 2, a.w - 4, s->err[0] ? UI_EL_ERROR : UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->err[0] ? s->err
		             : s->history ? "no decided requests yet"
		                          : "nothing to sign: no pending request needs you (H: history)");
	for (int r = 0; r < s->page && s->rs.top + r < s->rs.n; r++) {
		int i = s->rs.top + r;
		const km_request_info *q = &s->reqs[s->shown[i]];
		ui_element base = i == s->rs.sel ? UI_EL_SELECTED : UI_EL_NORMAL;
		char signed_[32], as[16], line[600];
		if (s->history)
			ui_tw_format(signed_, sizeof signed_, "%s", km_request_state_name(q->state));
		else
			ui_tw_format(signed_, sizeof signed_, "%u of %u", q->approvals, q->quorum);
		ui_fmt_count(q->assets, as);
		ui_tw_format(line, sizeof line, "%-12.12s %-16s %-10s %-6s %9s %-10s %s", q->id,
		             km_request_kind_name(q->kind), signed_, q->risk.tier, as, q->requester, q->summary);
		int y = s->list_y + r;
		ui_draw_fill(c, y, a.x, a.w, base);
		ui_draw_text(c, y, a.x + 1, a.w - 2, base, UI_TW_PAD | UI_TW_ELLIPSIS, line);
		if (base == UI_EL_NORMAL && strcmp(q->risk.tier, "high") == 0)
			ui_draw_text(c, y, a.x + 1 + 13 + 17 + 11, 6, UI_EL_BAD, 0, q->risk.tier);
	}
	const km_request_info *sel = ib_selected(s);
	if (sel) {
		ui_rect d = {a.y + list_h, a.x, a.h - list_h, a.w};
		ib_draw_detail(v, d, sel);
	}
}

/* ---- approve, reject ---------------------------------------------------- */

static void ib_approve(ui_view *v, const km_request_info *r)
{
	ui_console *c = v->c;
	char id[KM_REQUEST_ID_MAX], text[800];
	ui_tw_format(id, sizeof id, "%s", r->id);
	ui_tw_format(text, sizeof text,
	             "Approve request %.12s? %s. You sign its digest %.16s... with your own key; the "
	             "next step asks for your passphrase (and one-time code when the policy wants it).",
	             r->id, r->summary, r->digest);
	if (!ui_dialog_confirm(c, "Approve request", text, NULL)) {
		ui_message(c, "not approved");
		return;
	}
	km_err e;
	km_err_clear(&e);
	if (km_request_approve(ui_ctx(c), id, &e) != KM_OK) {
		ui_error(c, &e);
		ui_changed(c); /* the refusal is audited */
		return;
	}
	km_request_info now;
	km_err_clear(&e);
	if (km_request_get(ui_ctx(c), id, &now, &e) == KM_OK)
		ui_message(c, "approved %.12s: %u of %u signatures%s", id, now.approvals, now.quorum,
		           now.state == KM_RS_APPROVED ? "; quorum met, ready to execute" : "");
	else
		ui_message(c, "approved %.12s", id);
	ui_changed(c);
}

struct ib_reject_ctx {
	ui_console *c;
	char id[KM_REQUEST_ID_MAX];
};

static int ib_reject_submit(void *ctx, ui_field *f, size_t n, char *general, size_t cap)
{
	struct ib_reject_ctx *rc = ctx;
	(void)n;
	if (!f[0].value[0]) {
		ui_tw_format(f[0].error, sizeof f[0].error, "a rejection needs a reason");
		return -1;
	}
	km_err e;
	km_err_clear(&e);
	if (km_request_reject(ui_ctx(rc->c), rc->id, f[0].value, &e) != KM_OK) {
		ui_tw_format(general, cap, "%s", e.msg);
		ui_changed(rc->c);
		return -1;
	}
	return 0;
}

static void ib_reject(ui_view *v, const km_request_info *r)
{
	struct ib_reject_ctx rc = {.c = v->c};
	ui_tw_format(rc.id, sizeof rc.id, "%s", r->id);
	ui_field f[1] = {{.label = "Reason", .hint = "why: the requester and the log see it; it vetoes the request"}};
	char title[200];
	ui_tw_format(title, sizeof title, "Reject %.12s (%s)", r->id, km_request_kind_name(r->kind));
	if (ui_dialog_form(v->c, title, f, 1, ib_reject_submit, &rc)) {
		ui_message(v->c, "rejected %.12s: %s", rc.id, f[0].value);
		ui_changed(v->c);
	}
}

static int ib_handle(ui_view *v, ui_action a)
{
	inbox_state *s = v->st;
	if (ui_rs_move(&s->rs, a, s->page))
		return 1;
	const km_request_info *sel = ib_selected(s);
	switch (a) {
	case UI_ACT_ENTER:
	case UI_ACT_PANE_RIGHT:
	case UI_ACT_PANE_LEFT:
		return 1; /* the detail is always shown */
	case UI_ACT_QUIT:
		if (s->filter[0]) {
			s->filter[0] = '\0';
			ib_apply_filter(s);
			return 1;
		}
		if (s->history) {
			s->history = 0;
			ib_reload(v);
			return 1;
		}
		return 0;
	case UI_ACT_IMPACT: {
		/* the risk factors' "downstream": what the request's key version
		 * (or key) protects and what was made from it */
		if (!sel) {
			ui_error_text(v->c, "no request selected");
			return 1;
		}
		if (strncmp(sel->object, "key:", 4) != 0) {
			ui_error_text(v->c, "request %.12s is about %s, not a key: it has no lineage impact", sel->id,
			              sel->object);
			return 1;
		}
		char key[160];
		ui_tw_format(key, sizeof key, "%s", sel->object + 4);
		char *at = strrchr(key, '@');
		uint32_t version = 0;
		if (at) {
			*at = '\0';
			version = (uint32_t)strtoul(at + 1, NULL, 10);
		}
		ui_goto_impact(v->c, key, version);
		return 1;
	}
	case UI_ACT_REQ_HISTORY:
		s->history = !s->history;
		s->rs.sel = s->rs.top = 0;
		ib_reload(v);
		return 1;
	case UI_ACT_REQ_APPROVE:
	case UI_ACT_REQ_REJECT: {
		if (!sel) {
			ui_error_text(v->c, "no request selected");
			return 1;
		}
		km_request_info r = *sel; /* the list reloads under the dialog */
		if (a == UI_ACT_REQ_APPROVE)
			ib_approve(v, &r);
		else
			ib_reject(v, &r);
		return 1;
	}
	default:
		return 0;
	}
}

static void ib_filter(ui_view *v, const char *text)
{
	inbox_state *s = v->st;
	ui_tw_format(s->filter, sizeof s->filter, "%s", text);
	s->rs.sel = s->rs.top = 0;
	ib_apply_filter(s);
	ui_dirty(v->c);
}

static const char *ib_filter_text(ui_view *v)
{
	inbox_state *s = v->st;
	return s->filter;
}

static void ib_click(ui_view *v, int y, int x)
{
	inbox_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + s->page) {
		s->rs.sel = s->rs.top + (y - s->list_y);
		ui_rs_fit(&s->rs, s->page);
	}
	ui_dirty(v->c);
}

const struct ui_view_ops ui_view_inbox = {
	.name = "inbox",
	.title = "Approvals",
	.short_title = "Appr",
	.help = "The pending requests you may sign now: what changes, the affected assets, the risk "
	        "with the factors behind it, and the signatures so far (each checked). a approves: "
	        "you sign the request's digest with your own key after your passphrase (and one-time "
	        "code when the policy wants it); d rejects with a reason, which vetoes the request. "
	        "H switches to the history of decided requests. The status bar counts what waits "
	        "for you. / filters by key name. i shows the impact of the request's key version "
	        "(what its risk factor \"downstream\" counts) on the lineage screen.",
	.state_size = sizeof(inbox_state),
	.close = ib_close,
	.reload = ib_reload,
	.draw = ib_draw,
	.handle = ib_handle,
	.filter = ib_filter,
	.filter_text = ib_filter_text,
	.click = ib_click,
};
