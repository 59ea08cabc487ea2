/*
 * console.c — the console's terminal, event loop, bars, help overlay and
 * the global actions.
 *
 * One loop reads keys with a 100 ms timeout so background work (audit
 * verification) can report progress; KEY_RESIZE arrives through that loop
 * (curses' own SIGWINCH handling); our SIGINT/SIGTERM handler only sets a
 * flag.  A frame is painted only when something changed (ui_dirty), data
 * is fetched only when it changed (ui_view.stale), and each frame ends in
 * one doupdate().
 *
 * Must never: draw unmeasured text, leave the terminal in curses mode on
 * any way out, or do work in a signal handler.
 */
#include "console.h"
#include "audittext.h"
#include "ui.h"
#include "views.h"
#include "dialog.h"
#include "request.h"
#include "anomaly.h"

#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define UI_MIN_ROWS 24
#define UI_MIN_COLS 80
#define UI_STATUS_EVERY_S 30

static volatile sig_atomic_t ui_stop_requested;

static void ui_on_stop_signal(int sig)
{
	(void)sig;
	ui_stop_requested = 1;
}

struct ui_console {
	km_ctx *ctx;
	const km_actor *actor;
	SCREEN *screen;
	ui_view views[UI_VIEW_COUNT];
	int cur;
	ui_keymap keymap;
	ui_theme theme;
	attr_t attrs[UI_EL_COUNT];
	int colour_started;
	int utf8;
	int rows, cols, too_small;
	int dirty, quit;
	int help_open, help_top;
	char msg[KM_ERR_MSG_MAX + 128];
	int msg_error;
	km_status_info status;
	uint64_t inbox;          /* requests this person may sign now: the badge */
	uint64_t anomalies;      /* anomaly events in the log (audit scan) */
	int status_stale;
	time_t status_time;
	char status_problem[KM_ERR_MSG_MAX];
	int tab_x[UI_VIEW_COUNT], tab_w[UI_VIEW_COUNT];
	int cursor_y, cursor_x; /* -1: hidden */
	int prompting;
	int dispatching, modal_ran; /* a dialog ran inside the dispatch */
	const char *prompt_prefix;
	const char *prompt_text;
	char prompt_note[512]; /* completions offered, beside the prompt */
};

static const struct ui_view_ops *const view_registry[UI_VIEW_COUNT] = {
#define UI_VIEW_ROW(n) [UI_VIEW_##n] = &ui_view_##n,
	UI_VIEWS(UI_VIEW_ROW)
#undef UI_VIEW_ROW
};

typedef void (*ui_action_fn)(ui_console *c, ui_action a, int key);
static const ui_action_fn action_handlers[UI_ACT_COUNT] = {
#define UI_ACT_FN(e, name, keys, screens, hint, help, fn) [e] = fn,
	UI_ACTIONS(UI_ACT_FN)
#undef UI_ACT_FN
};

/* KEYWARD_CONSOLE_TIMING=FILE: append how long the first frame and each
 * keystroke (dispatch + paint + doupdate) took, and the peak RSS at the
 * end — what `make bench` records.  Off (NULL) otherwise. */
static FILE *ui_timing;

static double ui_ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

void ui_timing_key(int key, const struct timespec *t0)
{
	if (!ui_timing)
		return;
	char kn[32];
	ui_key_format(key, kn, sizeof kn);
	fprintf(ui_timing, "key %s %.2f ms\n", kn, ui_ms_since(t0));
	fflush(ui_timing);
}

/* ---- session accessors ------------------------------------------------ */

km_ctx *ui_ctx(ui_console *c) { return c->ctx; }
const km_actor *ui_actor(ui_console *c) { return c->actor; }
void ui_dirty(ui_console *c) { c->dirty = 1; }
int ui_needs_paint(ui_console *c) { return c->dirty; }
int ui_too_small(ui_console *c) { return c->too_small; }
const ui_glyphs *ui_glyph(ui_console *c) { return ui_tw_glyphs(c->utf8); }

void ui_size(ui_console *c, int *rows, int *cols)
{
	*rows = c->rows;
	*cols = c->cols;
}

void ui_changed(ui_console *c)
{
	for (int i = 0; i < UI_VIEW_COUNT; i++)
		c->views[i].stale = 1;
	c->status_stale = 1;
	c->dirty = 1;
}

void ui_message(ui_console *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	c->msg_error = 0;
	c->dirty = 1;
}

void ui_error_text(ui_console *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	c->msg_error = 1;
	c->dirty = 1;
}

void ui_error(ui_console *c, const km_err *e)
{
	/* The core's sentence, verbatim: it names what failed and why. */
	ui_error_text(c, "%s", e->msg[0] ? e->msg : km_status_name(e->code));
}

ui_view *ui_view_find(ui_console *c, const char *name)
{
	for (int i = 0; i < UI_VIEW_COUNT; i++)
		if (strcmp(c->views[i].ops->name, name) == 0)
			return &c->views[i];
	return NULL;
}

ui_view *ui_view_current(ui_console *c) { return &c->views[c->cur]; }

const ui_keymap *ui_keymap_get(ui_console *c) { return &c->keymap; }

ui_view *ui_view_nth(ui_console *c, int i)
{
	return i >= 0 && i < UI_VIEW_COUNT ? &c->views[i] : NULL;
}

void ui_view_show(ui_console *c, ui_view *v)
{
	c->cur = (int)(v - c->views);
	c->help_open = 0;
	c->dirty = 1;
}

/* ---- theme -------------------------------------------------------------- */

static const attr_t curses_attr_of_bit[] = {
	[UI_A_BOLD_BIT] = A_BOLD,
	[UI_A_DIM_BIT] = A_DIM,
	[UI_A_UNDERLINE_BIT] = A_UNDERLINE,
	[UI_A_REVERSE_BIT] = A_REVERSE,
	[UI_A_STANDOUT_BIT] = A_STANDOUT,
	[UI_A_ITALIC_BIT] = A_ITALIC,
};

/* A theme colour the terminal can show: bright colours fold to the base
 * colour on 8-colour terminals, anything else unknown to the default. */
static short ui_colour_fit(short c, attr_t *extra)
{
	if (c < 0 || c < COLORS)
		return c;
	if (c < 16) {
		*extra |= A_BOLD;
		return (short)(c - 8);
	}
	return -1;
}

static void ui_theme_apply(ui_console *c)
{
	int colour = !c->theme.mono && has_colors();
	if (colour && !c->colour_started) {
		start_color();
		use_default_colors();
		c->colour_started = 1;
	}
	for (int i = 0; i < UI_EL_COUNT; i++) {
		const ui_style *s = &c->theme.el[i];
		attr_t a = 0;
		for (size_t b = 0; b < KM_ARRAY_LEN(curses_attr_of_bit); b++)
			if (s->attrs & (1u << b))
				a |= curses_attr_of_bit[b];
		if (colour && i + 1 < COLOR_PAIRS) {
			attr_t extra = 0;
			short fg = ui_colour_fit(s->fg, &extra);
			attr_t ignored = 0;
			short bg = ui_colour_fit(s->bg, &ignored);
			init_pair((short)(i + 1), fg, bg);
			a |= (attr_t)COLOR_PAIR(i + 1) | extra;
		}
		c->attrs[i] = a;
	}
	c->dirty = 1;
}

static void ui_theme_select(ui_console *c, const char *name, char *msg, size_t cap)
{
	ui_theme_load(&c->theme, name, msg, cap);
	ui_theme_apply(c);
}

attr_t ui_attr(ui_console *c, ui_element el)
{
	return (unsigned)el < UI_EL_COUNT ? c->attrs[el] : A_NORMAL;
}

ui_element ui_state_element(km_key_state s)
{
	char name[48];
	ui_tw_format(name, sizeof name, "state.%s", km_state_name(s));
	int e = ui_theme_element_by_name(name);
	return e < 0 ? UI_EL_NORMAL : (ui_element)e;
}

/* ---- drawing ----------------------------------------------------------- */

void ui_draw_text(ui_console *c, int y, int x, int w, ui_element el, unsigned flags,
                  const char *s)
{
	if (y < 0 || y >= c->rows || x < 0 || x >= c->cols || w <= 0)
		return;
	if (x + w > c->cols)
		w = c->cols - x;
	char buf[1024];
	ui_tw_fit(buf, sizeof buf, s ? s : "", w, flags);
	attrset((int)ui_attr(c, el));
	mvaddstr(y, x, buf);
	attrset(A_NORMAL);
}

int ui_draw_wrapped(ui_console *c, int y, int bottom, int x, int w, ui_element el, const char *s)
{
	char line[1024];
	const char *p = s ? s : "";
	while (*p && y < bottom && w > 0) {
		size_t next;
		size_t len = ui_tw_wrap(p, w, &next);
		if (y == bottom - 1 && p[next]) {
			/* the last row: the rest, cut with an ellipsis */
			ui_draw_text(c, y++, x, w, el, UI_TW_ELLIPSIS, p);
			break;
		}
		ui_tw_format(line, sizeof line, "%.*s", (int)len, p);
		ui_draw_text(c, y++, x, w, el, UI_TW_ELLIPSIS, line);
		p += next;
	}
	return y;
}

struct ui_para_sink {
	ui_console *c;
	ui_rect a;
	int y;
	unsigned flags;
};

static int ui_para_line(void *ctx, const char *text, int indent)
{
	struct ui_para_sink *p = ctx;
	if (p->y >= p->a.y + p->a.h)
		return 1;
	ui_draw_text(p->c, p->y++, p->a.x + 1 + indent, p->a.w - 2 - indent, UI_EL_NORMAL, p->flags, text);
	return 0;
}

int ui_draw_paragraphs(ui_console *c, ui_rect a, int y, unsigned flags, const char *text)
{
	struct ui_para_sink p = {c, a, y, flags};
	ui_audit_wrap(text ? text : "", a.w - 2, ui_para_line, &p);
	return p.y;
}

void ui_draw_fill(ui_console *c, int y, int x, int w, ui_element el)
{
	ui_draw_text(c, y, x, w, el, UI_TW_PAD, "");
}

void ui_draw_hline(ui_console *c, int y, int x, int w, ui_element el)
{
	if (y < 0 || y >= c->rows || x < 0 || w <= 0)
		return;
	if (x + w > c->cols)
		w = c->cols - x;
	const char *h = ui_glyph(c)->hline;
	attrset((int)ui_attr(c, el));
	move(y, x);
	for (int i = 0; i < w; i++)
		addstr(h);
	attrset(A_NORMAL);
}

void ui_draw_bar(ui_console *c, int y, int x, int w, double frac)
{
	if (y < 0 || y >= c->rows || x < 0 || w <= 0)
		return;
	if (x + w > c->cols)
		w = c->cols - x;
	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	int done = (int)((double)w * frac);
	const ui_glyphs *g = ui_glyph(c);
	attrset((int)ui_attr(c, UI_EL_PROGRESS_DONE));
	for (int i = 0; i < done; i++)
		mvaddstr(y, x + i, g->bar_full);
	attrset((int)ui_attr(c, UI_EL_PROGRESS_TODO));
	for (int i = done; i < w; i++)
		mvaddstr(y, x + i, g->bar_empty);
	attrset(A_NORMAL);
}

void ui_draw_box(ui_console *c, ui_rect r, ui_element frame, ui_element fill, const char *title)
{
	if (r.h < 2 || r.w < 2)
		return;
	const ui_glyphs *g = ui_glyph(c);
	for (int y = r.y + 1; y < r.y + r.h - 1; y++) {
		ui_draw_text(c, y, r.x, 1, frame, 0, g->vline);
		ui_draw_fill(c, y, r.x + 1, r.w - 2, fill);
		ui_draw_text(c, y, r.x + r.w - 1, 1, frame, 0, g->vline);
	}
	ui_draw_text(c, r.y, r.x, 1, frame, 0, g->tl);
	ui_draw_hline(c, r.y, r.x + 1, r.w - 2, frame);
	ui_draw_text(c, r.y, r.x + r.w - 1, 1, frame, 0, g->tr);
	ui_draw_text(c, r.y + r.h - 1, r.x, 1, frame, 0, g->bl);
	ui_draw_hline(c, r.y + r.h - 1, r.x + 1, r.w - 2, frame);
	ui_draw_text(c, r.y + r.h - 1, r.x + r.w - 1, 1, frame, 0, g->br);
	if (title && *title) {
		char t[256];
		ui_tw_format(t, sizeof t, " %s ", title);
		ui_draw_text(c, r.y, r.x + 2, r.w - 4, UI_EL_DIALOG_TITLE, UI_TW_ELLIPSIS, t);
	}
}

/* ---- formatting --------------------------------------------------------- */

void ui_fmt_age(int64_t t, int64_t now, char buf[16])
{
	if (t == 0) {
		ui_tw_format(buf, 16, "-");
		return;
	}
	int64_t d = now - t;
	if (d < 0)
		d = 0;
	static const struct { int64_t secs; const char *unit; } units[] = {
		{365 * 86400, "y"}, {30 * 86400, "mo"}, {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(units); i++)
		if (d >= units[i].secs || units[i].secs == 1) {
			ui_tw_format(buf, 16, "%lld%s", (long long)(d / units[i].secs), units[i].unit);
			return;
		}
}

void ui_fmt_count(uint64_t n, char buf[16])
{
	if (n < 1000000)
		ui_tw_format(buf, 16, "%llu", (unsigned long long)n);
	else if (n < 1000000000)
		ui_tw_format(buf, 16, "%.1fM", (double)n / 1e6);
	else
		ui_tw_format(buf, 16, "%.1fG", (double)n / 1e9);
}

void ui_fmt_time(int64_t t, char buf[32])
{
	if (t == 0) {
		ui_tw_format(buf, 32, "-");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---- bars ---------------------------------------------------------------- */

static void ui_status_refresh(ui_console *c)
{
	km_err e;
	km_err_clear(&e);
	if (km_status_get(c->ctx, &c->status, &e) == KM_OK)
		c->status_problem[0] = '\0';
	else
		ui_tw_format(c->status_problem, sizeof c->status_problem, "status: %s", e.msg);
	km_err_clear(&e);
	if (km_request_inbox_count(c->ctx, &c->inbox, &e) != KM_OK)
		c->inbox = 0;
	/* only for those who may read the log: a refused read is an event */
	c->anomalies = 0;
	km_err_clear(&e);
	if (c->actor->roles & (KM_ROLE_ADMIN | KM_ROLE_OFFICER | KM_ROLE_APPROVER | KM_ROLE_AUDITOR))
		km_anomaly_count(c->ctx, &c->anomalies, &e);
	c->status_stale = 0;
	c->status_time = time(NULL);
}

static int64_t ui_parse_rfc3339(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

/* Tab i's label at a level of compactness: 0 the full title, 1 the short
 * one, 2 the number alone (the current screen keeps its short title). */
static void ui_tab_label(ui_console *c, int i, int level, char *t, size_t cap)
{
	const struct ui_view_ops *ops = c->views[i].ops;
	const char *name = level == 0 || !ops->short_title ? ops->title : ops->short_title;
	if (level >= 2 && i != c->cur)
		ui_tw_format(t, cap, " %d ", i + 1);
	else
		ui_tw_format(t, cap, " %d %s ", i + 1, name);
}

/* Every tab stays on the title bar, so that a click or a glance finds each
 * screen: the titles shorten until they fit (80 columns: the short ones). */
static void ui_paint_title(ui_console *c)
{
	ui_draw_fill(c, 0, 0, c->cols, UI_EL_TITLE);
	int x = 0, level = 0;
	char t[64];
	for (; level < 2; level++) {
		int need = 9;
		for (int i = 0; i < UI_VIEW_COUNT; i++) {
			ui_tab_label(c, i, level, t, sizeof t);
			need += ui_tw_width(t) + 1;
		}
		if (need - 1 <= c->cols)
			break;
	}
	ui_draw_text(c, 0, x, 9, UI_EL_TITLE, 0, " keyward ");
	x += 9;
	for (int i = 0; i < UI_VIEW_COUNT && x < c->cols; i++) {
		ui_tab_label(c, i, level, t, sizeof t);
		int w = ui_tw_width(t);
		c->tab_x[i] = x;
		c->tab_w[i] = w;
		ui_draw_text(c, 0, x, w, i == c->cur ? UI_EL_TAB_ACTIVE : UI_EL_TITLE, 0, t);
		x += w + 1;
	}
}

/* Status bar segments: text and element, joined by a separator. */
typedef struct { char text[192]; ui_element el; } ui_status_seg;

/* The segments after the home path and the person, in full or, when the
 * full ones do not fit, compact at level 1 "HSM ok", at level 2 (80
 * columns) also "audit 1679 unverified", "4 due 4 late", and at level 3
 * (80 columns with anomalies waiting) "5 anom", "1679 unverified".
 * Returns how many were written from seg. */
static int ui_status_facts(ui_console *c, int level, ui_status_seg *seg)
{
	const km_status_info *s = &c->status;
	const ui_glyphs *g = ui_glyph(c);
	int n = 0;
	if (c->inbox) { /* the badge: what waits for this person's signature, before
	                 * anything that may be cut on a narrow terminal */
		ui_tw_format(seg[n].text, sizeof seg[n].text, "%llu to approve", (unsigned long long)c->inbox);
		seg[n++].el = UI_EL_STATUS_WARN;
	}
	if (c->anomalies) {
		if (level >= 3)
			ui_tw_format(seg[n].text, sizeof seg[n].text, "%llu anom", (unsigned long long)c->anomalies);
		else
			ui_tw_format(seg[n].text, sizeof seg[n].text, "%llu anomal%s", (unsigned long long)c->anomalies,
			             c->anomalies == 1 ? "y" : "ies");
		seg[n++].el = UI_EL_STATUS_WARN;
	}
	if (c->status_problem[0]) {
		ui_tw_format(seg[n].text, sizeof seg[n].text, "%s", c->status_problem);
		seg[n++].el = UI_EL_STATUS_BAD;
		return n;
	}
	int compact = level >= 2;
	if (level >= 1)
		ui_tw_format(seg[n].text, sizeof seg[n].text, "HSM %s", s->hsm_logged_in ? "ok" : "NOT logged in");
	else
		ui_tw_format(seg[n].text, sizeof seg[n].text, "HSM %s: %s", s->token_label,
		             s->hsm_logged_in ? "logged in" : "NOT logged in");
	seg[n++].el = s->hsm_logged_in ? UI_EL_STATUS : UI_EL_STATUS_BAD;
	char ver[96];
	ui_tw_format(ver, sizeof ver, "%s", compact ? "unverified" : "never verified");
	ui_element vel = UI_EL_STATUS_WARN;
	if (s->last_verified[0]) {
		char age[16];
		ui_fmt_age(ui_parse_rfc3339(s->last_verified), (int64_t)time(NULL), age);
		if (compact)
			ui_tw_format(ver, sizeof ver, "%s %s", s->last_verified_intact ? g->ok : "FAILED", age);
		else
			ui_tw_format(ver, sizeof ver, "verified %s ago %s", age,
			             s->last_verified_intact ? g->ok : "FAILED");
		vel = s->last_verified_intact ? UI_EL_STATUS : UI_EL_STATUS_BAD;
	}
	/* level 3: an unverified log is "1785 unverified", the word audit gone */
	ui_tw_format(seg[n].text, sizeof seg[n].text,
	             level >= 3 && !s->last_verified[0] ? "%llu %s" : compact ? "audit %llu %s" : "audit %llu events, %s",
	             (unsigned long long)s->audit_events, ver);
	seg[n++].el = vel;
	ui_tw_format(seg[n].text, sizeof seg[n].text, compact ? "%llu due %llu late" : "%llu due, %llu overdue",
	             (unsigned long long)s->keys_due, (unsigned long long)s->keys_overdue);
	seg[n++].el = s->keys_overdue ? UI_EL_STATUS_BAD : s->keys_due ? UI_EL_STATUS_WARN : UI_EL_STATUS;
	if (s->sinks) { /* forwarding: each sink's lag, "fwd siem 0 file 12" */
		int len = snprintf(seg[n].text, sizeof seg[n].text, "fwd");
		uint64_t worst = 0;
		for (uint32_t i = 0; i < s->sinks && len > 0 && (size_t)len < sizeof seg[n].text; i++) {
			len += snprintf(seg[n].text + len, sizeof seg[n].text - (size_t)len, " %s %llu",
			                s->sink[i].name, (unsigned long long)s->sink[i].lag);
			if (s->sink[i].lag > worst)
				worst = s->sink[i].lag;
		}
		/* a sink behind by more than a few batches is worth a glance */
		seg[n++].el = worst > 10000 ? UI_EL_STATUS_WARN : UI_EL_STATUS;
	}
	return n;
}

static int ui_status_width(const ui_status_seg *seg, int n)
{
	int total = 1 + 3 * (n - 1);
	for (int i = 0; i < n; i++)
		total += ui_tw_width(seg[i].text);
	return total;
}

static void ui_paint_status(ui_console *c)
{
	int y = c->rows - 2;
	ui_draw_fill(c, y, 0, c->cols, UI_EL_STATUS);
	if (c->status_time == 0 && !c->status_stale) {
		ui_draw_text(c, y, 1, c->cols - 2, UI_EL_STATUS, UI_TW_ELLIPSIS, "reading the deployment's status...");
		return;
	}
	if (c->status_stale || time(NULL) - c->status_time >= UI_STATUS_EVERY_S)
		ui_status_refresh(c);
	const km_status_info *s = &c->status;
	const ui_glyphs *g = ui_glyph(c);
	ui_status_seg seg[8];
	int n = 0;
	char roles[96];
	km_roles_format(c->actor->roles, roles, sizeof roles);
	ui_tw_format(seg[n].text, sizeof seg[n].text, "%s", s->home[0] ? s->home : "?");
	seg[n++].el = UI_EL_STATUS;
	ui_tw_format(seg[n].text, sizeof seg[n].text, "%s (%s)", c->actor->name, roles[0] ? roles : "no roles");
	seg[n++].el = UI_EL_STATUS;
	/* the home path keeps at least 9 cells; past that the facts go compact */
	int facts = 0, fits = 0;
	for (int level = 0; level < 4 && !fits; level++) {
		facts = ui_status_facts(c, level, seg + n);
		fits = ui_status_width(seg, n + facts) - ui_tw_width(seg[0].text) + 9 <= c->cols - 1;
	}
	n += facts;
	if (!fits) { /* even compact the facts need the home path's room */
		memmove(seg, seg + 1, sizeof seg[0] * (size_t)(n - 1));
		n--;
	}
	/* too wide: the home path gives way first, keeping its end */
	int excess = ui_status_width(seg, n) - (c->cols - 1);
	if (excess > 0 && fits) {
		int room = ui_tw_width(seg[0].text) - excess - 1;
		if (room < 8)
			room = 8;
		const char *p = seg[0].text;
		while (*p && ui_tw_width(p) > room)
			p++;
		while ((*p & 0xC0) == 0x80)
			p++;
		char tail[192];
		ui_tw_format(tail, sizeof tail, "%s%s", g->ellipsis, p);
		ui_tw_format(seg[0].text, sizeof seg[0].text, "%s", tail);
	}
	int x = 1;
	for (int i = 0; i < n && x < c->cols; i++) {
		if (i > 0) {
			ui_draw_text(c, y, x, 3, UI_EL_STATUS, 0, " ");
			ui_draw_text(c, y, x + 1, 1, UI_EL_STATUS, 0, g->vline);
			x += 3;
		}
		int w = ui_tw_width(seg[i].text);
		if (x + w > c->cols - 1)
			w = c->cols - 1 - x;
		ui_draw_text(c, y, x, w, seg[i].el, UI_TW_ELLIPSIS, seg[i].text);
		x += w;
	}
}

/* The hint line (the message row when there is no message): the current
 * screen's own actions, then the global ones, each as its first key in
 * force and the action table's hint word.  Generated from the table, so a
 * rebinding or a new action shows here without an edit. */
void ui_hints_format(ui_console *c, char *buf, size_t cap, int width)
{
	ui_view *v = ui_view_current(c);
	buf[0] = '\0';
	for (int pass = 0; pass < 2; pass++)
		for (int a = 0; a < UI_ACT_COUNT; a++) {
			const ui_action_info *ai = ui_action_get((ui_action)a);
			int global = strcmp(ai->screens, "all") == 0;
			if (!ai->hint[0] || global != pass || !ui_action_on_screen((ui_action)a, v->ops->name))
				continue;
			char keys[96];
			ui_keymap_keys(&c->keymap, (ui_action)a, keys, sizeof keys);
			keys[strcspn(keys, ", ")] = '\0';
			if (!keys[0])
				continue;
			size_t n = strlen(buf);
			char item[160];
			ui_tw_format(item, sizeof item, "%s%s %s", n ? "  " : "", keys, ai->hint);
			/* whole hints only: one that does not fit is left out */
			if (ui_tw_width(buf) + ui_tw_width(item) <= width)
				ui_tw_format(buf + n, cap - n, "%s", item);
		}
}

static void ui_paint_hints(ui_console *c, int y)
{
	char hints[512];
	ui_hints_format(c, hints, sizeof hints, c->cols - 2);
	ui_draw_text(c, y, 1, c->cols - 2, UI_EL_DIM, UI_TW_ELLIPSIS, hints);
}

static void ui_paint_message(ui_console *c)
{
	int y = c->rows - 1;
	ui_draw_fill(c, y, 0, c->cols, UI_EL_NORMAL);
	c->cursor_y = -1;
	if (c->prompting) {
		int pw = ui_tw_width(c->prompt_prefix);
		ui_draw_text(c, y, 0, pw, UI_EL_PROMPT, 0, c->prompt_prefix);
		/* show the end of a long input: what is being typed */
		const char *t = c->prompt_text;
		int room = c->cols - pw - 1;
		while (ui_tw_width(t) > room && *t)
			t++;
		while ((*t & 0xC0) == 0x80)
			t++;
		ui_draw_text(c, y, pw, room, UI_EL_NORMAL, 0, t);
		c->cursor_y = y;
		c->cursor_x = pw + ui_tw_width(t);
		int nx = c->cursor_x + 3;
		if (c->prompt_note[0] && nx < c->cols - 4)
			ui_draw_text(c, y, nx, c->cols - nx - 1, UI_EL_DIM, UI_TW_ELLIPSIS, c->prompt_note);
		return;
	}
	if (!c->msg[0]) {
		ui_paint_hints(c, y);
		return;
	}
	ui_draw_text(c, y, 0, c->cols, c->msg_error ? UI_EL_ERROR : UI_EL_MESSAGE, UI_TW_ELLIPSIS,
	             c->msg);
}

/* The help overlay: row i of the generated text, drawn at y (or only
 * counted when y < 0).  Returns the number of rows. */
static int ui_help_rows(ui_console *c, int first, int y0, int rows, int x, int w)
{
	int row = 0;
#define HELP_LINE(el, text)                                                   \
	do {                                                                      \
		if (row >= first && row - first < rows)                               \
			ui_draw_text(c, y0 + row - first, x, w, el, UI_TW_ELLIPSIS, text); \
		row++;                                                                \
	} while (0)
	ui_view *v = ui_view_current(c);
	char line[512];
	ui_tw_format(line, sizeof line, "%s screen", v->ops->title);
	HELP_LINE(UI_EL_SECTION, line);
	const char *p = v->ops->help;
	while (p && *p) {
		size_t next;
		size_t len = ui_tw_wrap(p, w, &next);
		ui_tw_format(line, sizeof line, "%.*s", (int)len, p);
		HELP_LINE(UI_EL_NORMAL, line);
		p += next;
	}
	HELP_LINE(UI_EL_NORMAL, "");
	HELP_LINE(UI_EL_SECTION, "Keys (rebind them in config.json \"keys\"; docs/keys.md)");
	for (int a = 0; a < UI_ACT_COUNT; a++) {
		const ui_action_info *ai = ui_action_get((ui_action)a);
		char keys[96];
		ui_keymap_keys(&c->keymap, (ui_action)a, keys, sizeof keys);
		if (row >= first && row - first < rows) {
			int yy = y0 + row - first;
			ui_draw_text(c, yy, x, 18, UI_EL_HELP_KEY, UI_TW_ELLIPSIS, keys[0] ? keys : "(unbound)");
			ui_draw_text(c, yy, x + 19, 15, UI_EL_NORMAL, UI_TW_ELLIPSIS, ai->name);
			ui_draw_text(c, yy, x + 35, w - 35, UI_EL_NORMAL, UI_TW_ELLIPSIS, ai->help);
		}
		row++;
	}
	HELP_LINE(UI_EL_NORMAL, "");
	HELP_LINE(UI_EL_SECTION, "Commands (:)");
	size_t ncmd;
	ui_command_get(0, &ncmd);
	for (size_t i = 0; i < ncmd; i++) {
		const ui_command_info *ci = ui_command_get(i, NULL);
		ui_tw_format(line, sizeof line, ":%s %s", ci->name, ci->args);
		if (row >= first && row - first < rows) {
			int yy = y0 + row - first;
			ui_draw_text(c, yy, x, 34, UI_EL_HELP_KEY, UI_TW_ELLIPSIS, line);
			ui_draw_text(c, yy, x + 35, w - 35, UI_EL_NORMAL, UI_TW_ELLIPSIS, ci->help);
		}
		row++;
	}
#undef HELP_LINE
	return row;
}

static int ui_help_page(ui_console *c)
{
	return c->rows - 3 - 2;
}

static void ui_paint_help(ui_console *c)
{
	ui_rect r = {1, 0, c->rows - 3, c->cols};
	ui_draw_box(c, r, UI_EL_BORDER, UI_EL_NORMAL, "Help: keys in force (j/k scroll, any other key closes)");
	int total = ui_help_rows(c, 0, -1000, 0, 2, r.w - 4);
	if (c->help_top > total - ui_help_page(c))
		c->help_top = total - ui_help_page(c) > 0 ? total - ui_help_page(c) : 0;
	ui_help_rows(c, c->help_top, r.y + 1, r.h - 2, 2, r.w - 4);
}

static void ui_paint_too_small(ui_console *c)
{
	char a[96], b[96];
	ui_tw_format(a, sizeof a, "Terminal too small: %dx%d", c->cols, c->rows);
	ui_tw_format(b, sizeof b, "keyward needs at least %dx%d; enlarge the window", UI_MIN_COLS,
	             UI_MIN_ROWS);
	int y = c->rows / 2 - 1;
	int wa = ui_tw_width(a), wb = ui_tw_width(b);
	ui_draw_text(c, y, wa < c->cols ? (c->cols - wa) / 2 : 0, c->cols, UI_EL_ERROR, UI_TW_ELLIPSIS, a);
	ui_draw_text(c, y + 1, wb < c->cols ? (c->cols - wb) / 2 : 0, c->cols, UI_EL_NORMAL,
	             UI_TW_ELLIPSIS, b);
}

void ui_paint(ui_console *c)
{
	getmaxyx(stdscr, c->rows, c->cols);
	c->too_small = c->rows < UI_MIN_ROWS || c->cols < UI_MIN_COLS;
	erase();
	c->dirty = 0;
	c->cursor_y = -1;
	if (c->too_small) {
		ui_paint_too_small(c);
		return;
	}
	ui_paint_title(c);
	ui_view *v = ui_view_current(c);
	ui_rect area = {1, 0, c->rows - 3, c->cols};
	if (v->stale || area.h != v->area.h || area.w != v->area.w) {
		v->area = area;
		v->stale = 0;
		if (v->ops->reload)
			v->ops->reload(v);
	}
	v->area = area;
	v->ops->draw(v, area);
	if (c->help_open)
		ui_paint_help(c);
	ui_paint_status(c);
	ui_paint_message(c);
}

void ui_flush(ui_console *c)
{
	if (c->cursor_y >= 0) {
		move(c->cursor_y, c->cursor_x);
		curs_set(1);
	} else {
		curs_set(0);
	}
	wnoutrefresh(stdscr);
	doupdate();
}

/* ---- input -------------------------------------------------------------- */

static MEVENT ui_last_mouse;

int ui_read_key(ui_console *c, int *key)
{
	if (ui_stop_requested)
		c->quit = 1;
	if (c->quit)
		return -1;
	if (c->dispatching)
		c->modal_ran = 1;
	wint_t wch;
	int rc = wget_wch(stdscr, &wch);
	if (rc == ERR) {
		for (int i = 0; i < UI_VIEW_COUNT; i++)
			if (c->views[i].ops->tick)
				c->views[i].ops->tick(&c->views[i]);
		if (time(NULL) - c->status_time >= UI_STATUS_EVERY_S) {
			c->status_stale = 1;
			c->dirty = 1;
		}
		return ui_stop_requested ? -1 : 0;
	}
	if (rc == KEY_CODE_YES) {
		if (wch == KEY_RESIZE) {
			c->dirty = 1;
			return 0;
		}
		if (wch == KEY_MOUSE) {
			if (getmouse(&ui_last_mouse) != OK)
				return 0;
		}
		*key = UI_KEY_FN((int)wch);
		return 1;
	}
	*key = ui_key_normalize((int)wch);
	return 1;
}

/* ---- global actions ----------------------------------------------------- */

void ui_act_help(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	c->help_open = 1;
	c->help_top = 0;
}

void ui_act_quit(ui_console *c, ui_action a, int key)
{
	(void)key;
	if (a == UI_ACT_QUIT_NOW) {
		c->quit = 1;
		return;
	}
	ui_view *v = ui_view_current(c);
	if (v->ops->handle && v->ops->handle(v, UI_ACT_QUIT))
		return;
	if (c->cur != 0) {
		ui_view_show(c, &c->views[0]);
		return;
	}
	c->quit = 1;
}

void ui_act_screen(ui_console *c, ui_action a, int key)
{
	int n = c->cur;
	if (a == UI_ACT_NEXT_SCREEN)
		n = (n + 1) % UI_VIEW_COUNT;
	else if (a == UI_ACT_PREV_SCREEN)
		n = (n + UI_VIEW_COUNT - 1) % UI_VIEW_COUNT;
	else if (key >= '1' && key <= '9') {
		n = key - '1';
		if (n >= UI_VIEW_COUNT) {
			ui_error_text(c, "there is no screen %d (1-%d)", n + 1, UI_VIEW_COUNT);
			return;
		}
	}
	ui_view_show(c, &c->views[n]);
}

struct ui_filter_prompt {
	ui_view *v;
};

static void ui_filter_changed(void *ctx, const char *text)
{
	struct ui_filter_prompt *fp = ctx;
	fp->v->ops->filter(fp->v, text);
}

void ui_act_filter(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	ui_view *v = ui_view_current(c);
	if (!v->ops->filter) {
		ui_error_text(c, "the %s screen has no filter", v->ops->title);
		return;
	}
	char before[256], text[256];
	ui_tw_format(before, sizeof before, "%s", v->ops->filter_text ? v->ops->filter_text(v) : "");
	ui_tw_format(text, sizeof text, "%s", before);
	struct ui_filter_prompt fp = {v};
	int incremental = !v->ops->filter_on_enter;
	if (!ui_prompt(c, "/", text, sizeof text, incremental ? ui_filter_changed : NULL, &fp)) {
		if (incremental)
			v->ops->filter(v, before);
	} else if (!incremental) {
		v->ops->filter(v, text);
	}
	if (incremental && v->ops->filter_settled)
		v->ops->filter_settled(v);
}

void ui_act_command(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	char line[1024] = "";
	if (ui_prompt_complete(c, ":", line, sizeof line, NULL, NULL, ui_op_complete))
		ui_op_command(c, line);
}

void ui_act_reload(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	ui_changed(c);
	ui_message(c, "reloaded");
}

void ui_act_redraw(ui_console *c, ui_action a, int key)
{
	(void)a;
	(void)key;
	clearok(curscr, TRUE);
	c->dirty = 1;
}

void ui_act_view(ui_console *c, ui_action a, int key)
{
	(void)key;
	ui_view *v = ui_view_current(c);
	if (!v->ops->handle || !v->ops->handle(v, a))
		ui_error_text(c, "%s: not available on the %s screen", ui_action_get(a)->name,
		              v->ops->title);
}

/* ---- prompt (message line editor) ---------------------------------------- */

void ui_prompt_note(ui_console *c, const char *note)
{
	ui_tw_format(c->prompt_note, sizeof c->prompt_note, "%s", note ? note : "");
	c->dirty = 1;
}

void ui_prompt_show(ui_console *c, const char *prefix, const char *text)
{
	c->prompt_note[0] = '\0';
	c->prompting = prefix != NULL;
	c->prompt_prefix = prefix;
	c->prompt_text = text;
	c->dirty = 1;
}

/* ---- :commands that concern the console itself --------------------------- */

void ui_colon_theme(ui_console *c, int argc, char **argv)
{
	if (argc != 2) {
		ui_error_text(c, "usage: :theme NAME");
		return;
	}
	char msg[1024] = "";
	ui_theme_select(c, argv[1], msg, sizeof msg);
	if (msg[0])
		ui_error_text(c, "%s", msg);
	else
		ui_message(c, "theme %s%s", c->theme.name,
		           getenv("NO_COLOR") && *getenv("NO_COLOR") ? " (NO_COLOR is set: mono)" : "");
}

void ui_colon_help(ui_console *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ui_act_help(c, UI_ACT_HELP, 0);
}

void ui_colon_quit(ui_console *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	c->quit = 1;
}

void ui_colon_screen(ui_console *c, int argc, char **argv)
{
	ui_view *v = argc == 2 ? ui_view_find(c, argv[1]) : NULL;
	if (!v) {
		char names[128] = "";
		for (int i = 0; i < UI_VIEW_COUNT; i++)
			ui_tw_format(names + strlen(names), sizeof names - strlen(names), "%s%s",
			             i ? ", " : "", c->views[i].ops->name);
		ui_error_text(c, "usage: :screen NAME (%s)", names);
		return;
	}
	ui_view_show(c, v);
}

/* ---- the loop ------------------------------------------------------------ */

static void ui_mouse(ui_console *c)
{
	MEVENT *m = &ui_last_mouse;
	if (c->too_small)
		return;
	if (m->bstate & (BUTTON4_PRESSED)) {
		for (int i = 0; i < 3; i++)
			ui_act_view(c, UI_ACT_MOVE_UP, 0);
		return;
	}
#ifdef BUTTON5_PRESSED
	if (m->bstate & BUTTON5_PRESSED) {
		for (int i = 0; i < 3; i++)
			ui_act_view(c, UI_ACT_MOVE_DOWN, 0);
		return;
	}
#endif
	if (!(m->bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED)))
		return;
	if (m->y == 0) {
		for (int i = 0; i < UI_VIEW_COUNT; i++)
			if (m->x >= c->tab_x[i] && m->x < c->tab_x[i] + c->tab_w[i])
				ui_view_show(c, &c->views[i]);
		return;
	}
	ui_view *v = ui_view_current(c);
	if (!c->help_open && v->ops->click && m->y >= v->area.y && m->y < v->area.y + v->area.h)
		v->ops->click(v, m->y, m->x);
}

static void ui_dispatch(ui_console *c, int key)
{
	c->msg[0] = '\0';
	c->msg_error = 0;
	c->dirty = 1;
	if (key == UI_KEY_FN(KEY_MOUSE)) {
		ui_mouse(c);
		return;
	}
	int a = ui_keymap_lookup(&c->keymap, key);
	if (c->help_open) {
		if (a == UI_ACT_MOVE_DOWN)
			c->help_top++;
		else if (a == UI_ACT_MOVE_UP && c->help_top > 0)
			c->help_top--;
		else if (a == UI_ACT_PAGE_DOWN)
			c->help_top += ui_help_page(c);
		else if (a == UI_ACT_PAGE_UP)
			c->help_top = c->help_top > ui_help_page(c) ? c->help_top - ui_help_page(c) : 0;
		else
			c->help_open = 0;
		return;
	}
	if (a < 0) {
		char kn[32];
		ui_key_format(key, kn, sizeof kn);
		ui_error_text(c, "%s is not bound to anything (? lists the keys)", kn);
		return;
	}
	action_handlers[a](c, (ui_action)a, key);
}

static void ui_loop(ui_console *c, const struct timespec *t_open)
{
	int first = 1;
	struct timespec t_key;
	int timing_key = 0;
	while (!c->quit) {
		if (c->dirty) {
			ui_paint(c);
			ui_flush(c);
			if (ui_timing && first)
				fprintf(ui_timing, "first-frame %.2f ms\n", ui_ms_since(t_open));
			if (timing_key)
				ui_timing_key(timing_key, &t_key);
			if (first) {
				/* the status bar's numbers come after the first frame: the
				 * screen shows at once, the counts a moment later */
				first = 0;
				c->status_stale = 1;
				c->dirty = 1;
				continue;
			}
		}
		timing_key = 0;
		int key;
		int got = ui_read_key(c, &key);
		if (got < 0)
			break;
		if (got > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t_key);
			c->dispatching = 1;
			c->modal_ran = 0;
			ui_dispatch(c, key);
			c->dispatching = 0;
			/* a key that opened a prompt or dialog was timed inside it */
			timing_key = c->modal_ran ? 0 : key;
		}
	}
}

static void ui_append_problem(char *msg, size_t cap, const char *problem)
{
	size_t n = strlen(msg);
	if (problem[0])
		ui_tw_format(msg + n, cap - n, "%s%s", n ? " | " : "", problem);
}

/* Step-up inside the console: a dialog, never the raw terminal under
 * ncurses. */
static km_status console_secret_prompt(void *pctx, const char *question, char *buf, size_t cap,
                                       km_err *e)
{
	ui_console *c = pctx;
	if (!ui_dialog_secret(c, "Step-up", question, buf, cap))
		return km_fail(e, KM_EDENIED, "cancelled: %s was not given", question);
	return KM_OK;
}

int ui_console_run(km_ctx *ctx, const char *theme_opt)
{
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "keyward: the console needs a terminal; for scripts use the "
		                "commands (keyward --help)\n");
		return 2;
	}
	struct timespec t_open;
	clock_gettime(CLOCK_MONOTONIC, &t_open);
	/* A file the caller names: never for a set-user-ID keyward. */
	const char *timing = km_config_env("KEYWARD_CONSOLE_TIMING");
	ui_timing = timing && *timing ? fopen(timing, "ae") : NULL;
	setlocale(LC_CTYPE, ""); /* widths and wide-character input; numbers stay "C" */
	ui_console *c = calloc(1, sizeof *c);
	if (!c) {
		fprintf(stderr, "keyward: out of memory\n");
		return 1;
	}
	c->ctx = ctx;
	c->actor = km_actor_get(ctx);
	c->utf8 = ui_tw_locale_is_utf8();
	c->status_stale = 0; /* fetched after the first frame (ui_loop) */

	char problems[2048] = "";
	char msg[1024] = "";
	const km_config *cfg = km_config_get(ctx);
	/* KEYWARD_THEME is applied by the core's configuration (personal
	 * mode only). */
	const char *theme = theme_opt;
	if ((!theme || !*theme) && cfg)
		theme = cfg->theme;
	ui_keymap_default(&c->keymap);
	if (cfg && ui_keymap_rebind(&c->keymap, cfg->keys, msg, sizeof msg) != 0)
		ui_append_problem(problems, sizeof problems, msg);

	set_escdelay(25);
	c->screen = newterm(NULL, stdout, stdin);
	if (!c->screen) {
		const char *term = getenv("TERM");
		fprintf(stderr, "keyward: cannot use the terminal \"%s\" (TERM); try TERM=xterm-256color\n",
		        term ? term : "");
		free(c);
		if (ui_timing)
			fclose(ui_timing);
		ui_timing = NULL;
		return 2;
	}
	struct sigaction sa, old_int, old_term;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ui_on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	ui_stop_requested = 0;

	km_set_secret_prompt(ctx, console_secret_prompt, c);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	curs_set(0);
	wtimeout(stdscr, 100);
	mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED
#ifdef BUTTON5_PRESSED
	          | BUTTON5_PRESSED
#endif
	          , NULL);
	mouseinterval(0);

	msg[0] = '\0';
	ui_theme_select(c, theme, msg, sizeof msg);
	ui_append_problem(problems, sizeof problems, msg);
	if (problems[0])
		ui_error_text(c, "%s", problems);

	for (int i = 0; i < UI_VIEW_COUNT; i++) {
		ui_view *v = &c->views[i];
		v->ops = view_registry[i];
		v->c = c;
		v->stale = 1;
		v->st = v->ops->state_size ? calloc(1, v->ops->state_size) : NULL;
		if (v->ops->open)
			v->ops->open(v);
	}
	c->dirty = 1;
	ui_loop(c, &t_open);

	for (int i = 0; i < UI_VIEW_COUNT; i++) {
		if (c->views[i].ops->close)
			c->views[i].ops->close(&c->views[i]);
		free(c->views[i].st);
	}
	km_set_secret_prompt(ctx, NULL, NULL);
	endwin();
	delscreen(c->screen);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	free(c);
	if (ui_timing) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(ui_timing, "max-rss %ld KiB\n", ru.ru_maxrss);
		fclose(ui_timing);
		ui_timing = NULL;
	}
	return 0;
}

void ui_console_keys_markdown(FILE *f)
{
	ui_actions_markdown(f);
}
