/*
 * view_keys.c — the key inventory: every KEK with its current version,
 * state, age, tags, assets and last use; a detail pane for the selected
 * key (versions, tags, assets, latest audit events); the key actions.
 *
 * Loads only what is visible: the list is a keyset-paginated window
 * (listwin.h) over km_key_list; the detail pane is fetched when the
 * selection changes while it is open.  Changes go through commands.c, the
 * same core calls as the CLI.
 *
 * Must never: change anything itself (it asks ui_op_*), or query the
 * deployment while only repainting an unchanged selection.
 */
#include "ui.h"
#include "listwin.h"
#include "views.h"
#include "kek.h"
#include "asset.h"
#include "auditlog.h"
#include "schedule.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_MAX_VERSIONS 64
#define KV_MAX_TAGS 128
#define KV_MAX_ASSETS 8
#define KV_MAX_EVENTS 8

typedef struct kv_event {
	uint64_t seq;
	char time[32], actor[64], action[48], outcome[16];
} kv_event;

/* The attention-only view holds at most this many names. */
#define KV_ATTN_MAX 5000

typedef struct keys_state {
	ui_listwin lw;
	int attn_only;        /* ! : only keys needing attention, most urgent first */
	char (*attn_names)[KM_KEY_NAME_MAX + 1];
	size_t nattn, attn_cap;
	char filter[256];
	int count_pending; /* the filter changed while typing; count not yet made */
	km_key_sort sort;
	int desc;
	uint64_t count;
	int detail_open, focus_detail;
	/* the detail pane, for detail_name */
	char detail_name[KM_KEY_NAME_MAX + 1];
	int detail_loaded;
	km_key_version_info versions[KV_MAX_VERSIONS];
	int nversions, vsel;
	int tag_top;       /* first tag line shown (PgDn/PgUp in the pane) */
	int tag_lines_more; /* tag lines below the pane, last drawn */
	int tag_page;       /* tag lines the pane showed, last drawn */
	km_tag tags[KV_MAX_TAGS];
	int ntags;
	km_asset_info assets[KV_MAX_ASSETS];
	int nassets;
	kv_event events[KV_MAX_EVENTS];
	int nevents;
	char detail_err[KM_ERR_MSG_MAX];
	int list_y, list_rows; /* where rows were drawn, for clicks */
	int ver_y;             /* first version row in the detail pane */
} keys_state;

/* Columns of the table, in display order; sort < 0: not sortable.
 * min: the fewest cells worth showing; drop: the order in which columns
 * give way on a narrow terminal (0: never) — tags first, the name last
 * of all, so that names get the space at 80 columns. */
typedef struct kv_column {
	const char *title;
	int min;
	int sort;
	int right;
	int drop;
} kv_column;

enum { KV_COL_NAME, KV_COL_VER, KV_COL_STATE, KV_COL_ATTN, KV_COL_AGE, KV_COL_TAGS, KV_COL_ASSETS, KV_COL_USE, KV_NCOL };

static const kv_column kv_columns[KV_NCOL] = {
	[KV_COL_NAME] = {"NAME", 12, KM_KEY_SORT_NAME, 0, 0},
	[KV_COL_VER] = {"VER", 3, KM_KEY_SORT_VERSION, 1, 0},
	[KV_COL_STATE] = {"STATE", 6, KM_KEY_SORT_STATE, 0, 0},
	/* needs attention: overdue, compromised, near-bound, due, request, job */
	[KV_COL_ATTN] = {"ATTN", 4, -1, 0, 0},
	[KV_COL_AGE] = {"AGE", 4, KM_KEY_SORT_AGE, 1, 3},
	[KV_COL_TAGS] = {"TAGS", 10, -1, 0, 1},
	[KV_COL_ASSETS] = {"ASSETS", 6, KM_KEY_SORT_ASSETS, 1, 4},
	[KV_COL_USE] = {"LAST USE", 8, KM_KEY_SORT_LAST_USE, 1, 2},
};

/* ---- data ---------------------------------------------------------------- */

/* A row of the list: the key and its attention flags (KM_ATTN_*), read
 * with the row so that a repaint never queries; idx is the row's place in
 * the attention listing (attention-only view), -1 otherwise. */
typedef struct kv_row {
	km_key_info k; /* first: a kv_row * is a km_key_info * */
	unsigned attn;
	int idx;
} kv_row;

struct kv_fetch_out {
	kv_row *rows;
	int n, limit;
};

static int kv_fetch_row(void *ctx, const km_key_info *k)
{
	struct kv_fetch_out *o = ctx;
	if (o->n >= o->limit)
		return 1;
	o->rows[o->n].k = *k;
	o->rows[o->n].attn = 0;
	o->rows[o->n].idx = -1;
	o->n++;
	return 0;
}

/* The attention flags of the fetched rows: a few index seeks each, for
 * the rows about to be shown only. */
static void kv_fetch_attention(ui_view *v, kv_row *rows, int n)
{
	km_err e;
	for (int i = 0; i < n; i++) {
		km_err_clear(&e);
		if (km_key_attention(ui_ctx(v->c), rows[i].k.name, &rows[i].attn, &e) != KM_OK)
			rows[i].attn = 0;
	}
}

/* Attention-only view: the keys km_schedule_list names (most urgent
 * first), held as names; each page's rows are read by name. */
static int kv_attn_collect(void *ctx, const km_schedule_entry *se)
{
	keys_state *s = ctx;
	if (s->nattn == s->attn_cap) {
		size_t cap = s->attn_cap ? s->attn_cap * 2 : 64;
		char (*n)[KM_KEY_NAME_MAX + 1] = realloc(s->attn_names, cap * sizeof *n);
		if (!n)
			return 1;
		s->attn_names = n;
		s->attn_cap = cap;
	}
	ui_tw_format(s->attn_names[s->nattn++], sizeof s->attn_names[0], "%s", se->key);
	return s->nattn >= KV_ATTN_MAX;
}

static km_status kv_attn_load(ui_view *v, km_err *e)
{
	keys_state *s = v->st;
	s->nattn = 0;
	return km_schedule_list(ui_ctx(v->c), 0, KV_ATTN_MAX, kv_attn_collect, s, e);
}

static km_status kv_attn_fetch(ui_view *v, const kv_row *cursor, int backwards, int limit, kv_row *out,
                               int *got, km_err *e)
{
	keys_state *s = v->st;
	*got = 0;
	long at = cursor ? cursor->idx : (backwards ? (long)s->nattn : -1);
	for (long i = backwards ? at - 1 : at + 1; i >= 0 && i < (long)s->nattn && *got < limit;
	     i += backwards ? -1 : 1) {
		if (s->filter[0] && !strstr(s->attn_names[i], s->filter))
			continue;
		kv_row *r = &out[*got];
		if (km_key_get(ui_ctx(v->c), s->attn_names[i], &r->k, e) != KM_OK)
			continue; /* gone since the listing: skip it */
		r->idx = (int)i;
		(*got)++;
	}
	km_err_clear(e);
	kv_fetch_attention(v, out, *got);
	return KM_OK;
}

static km_status kv_fetch(void *ctx, const void *cursor, int backwards, int limit, void *out,
                          int *got, km_err *e)
{
	ui_view *v = ctx;
	keys_state *s = v->st;
	if (s->attn_only)
		return kv_attn_fetch(v, cursor, backwards, limit, out, got, e);
	km_key_query q = {
		.filter = s->filter,
		.sort = s->sort,
		.descending = s->desc,
		.cursor = cursor, /* a kv_row starts with its km_key_info */
		.backwards = backwards,
		.limit = limit,
	};
	struct kv_fetch_out o = {out, 0, limit};
	km_status st = km_key_list(ui_ctx(v->c), &q, kv_fetch_row, &o, e);
	*got = o.n;
	kv_fetch_attention(v, out, o.n);
	return st;
}

static void kv_count(ui_view *v)
{
	keys_state *s = v->st;
	km_err e;
	km_err_clear(&e);
	if (s->attn_only) {
		s->count = 0;
		for (size_t i = 0; i < s->nattn; i++)
			s->count += !s->filter[0] || strstr(s->attn_names[i], s->filter) != NULL;
		return;
	}
	if (km_key_count(ui_ctx(v->c), s->filter, &s->count, &e) != KM_OK)
		s->count = 0;
}

/* Height of the list above the detail pane: two fifths, and only a few
 * rows while the focus is in the pane, which then has room for every
 * version and every tag. */
static int kv_list_height(ui_view *v)
{
	keys_state *s = v->st;
	return s->focus_detail ? 5 : (v->area.h * 2) / 5;
}

static int kv_list_rows(ui_view *v)
{
	keys_state *s = v->st;
	int h = v->area.h - 2; /* info line, header */
	if (s->detail_open)
		h = kv_list_height(v) - 2;
	return h < 1 ? 1 : h;
}

static void kv_report(ui_view *v, int rc)
{
	keys_state *s = v->st;
	if (rc != 0)
		ui_error(v->c, &s->lw.err);
}

static void kv_reload(ui_view *v)
{
	keys_state *s = v->st;
	if (s->attn_only) {
		km_err e;
		km_err_clear(&e);
		if (kv_attn_load(v, &e) != KM_OK)
			ui_error(v->c, &e);
	}
	int cap = kv_list_rows(v);
	int rc = cap != s->lw.cap ? ui_lw_resize(&s->lw, cap) : ui_lw_reload(&s->lw);
	kv_report(v, rc);
	kv_count(v);
	s->detail_loaded = 0;
}

static void kv_open(ui_view *v)
{
	keys_state *s = v->st;
	ui_lw_init(&s->lw, sizeof(kv_row), kv_fetch, v);
	s->sort = KM_KEY_SORT_NAME;
}

static void kv_close(ui_view *v)
{
	keys_state *s = v->st;
	ui_lw_free(&s->lw);
	free(s->attn_names);
}

static int kv_version_cb(void *ctx, const km_key_version_info *ver)
{
	keys_state *s = ctx;
	if (s->nversions >= KV_MAX_VERSIONS)
		return 1;
	s->versions[s->nversions++] = *ver;
	return 0;
}

static int kv_tag_cb(void *ctx, const km_tag *t)
{
	keys_state *s = ctx;
	if (s->ntags >= KV_MAX_TAGS)
		return 1;
	s->tags[s->ntags++] = *t;
	return 0;
}

static int kv_asset_cb(void *ctx, const km_asset_info *a)
{
	keys_state *s = ctx;
	if (s->nassets >= KV_MAX_ASSETS)
		return 1;
	s->assets[s->nassets++] = *a;
	return 0;
}

static int kv_event_cb(void *ctx, const audit_row *r)
{
	keys_state *s = ctx;
	if (s->nevents >= KV_MAX_EVENTS)
		return 1;
	kv_event *ev = &s->events[s->nevents++];
	ev->seq = r->seq;
	ui_tw_format(ev->time, sizeof ev->time, "%s", r->time ? r->time : "");
	ui_tw_format(ev->actor, sizeof ev->actor, "%s", r->actor ? r->actor : "");
	ui_tw_format(ev->action, sizeof ev->action, "%s", r->action ? r->action : "");
	ui_tw_format(ev->outcome, sizeof ev->outcome, "%s", r->outcome ? r->outcome : "");
	return 0;
}

/* Fetch the detail pane for the selected key (recalc on selection change). */
static void kv_detail_load(ui_view *v, const km_key_info *k)
{
	keys_state *s = v->st;
	if (s->detail_loaded && strcmp(s->detail_name, k->name) == 0)
		return;
	int same = strcmp(s->detail_name, k->name) == 0;
	ui_tw_format(s->detail_name, sizeof s->detail_name, "%s", k->name);
	s->detail_loaded = 1;
	s->nversions = s->ntags = s->nassets = s->nevents = 0;
	s->detail_err[0] = '\0';
	if (!same)
		s->vsel = s->tag_top = 0;
	km_ctx *ctx = ui_ctx(v->c);
	km_err e;
	km_err_clear(&e);
	if (km_key_versions(ctx, k->name, kv_version_cb, s, &e) != KM_OK ||
	    km_key_tags(ctx, k->name, kv_tag_cb, s, &e) != KM_OK) {
		ui_tw_format(s->detail_err, sizeof s->detail_err, "%s", e.msg);
		return;
	}
	/* Newest assets: per version (the catalogue's index is key, version,
	 * id, so each is a seek), merged by id; all versions at once would
	 * sort every asset of a busy key. */
	km_asset_info found[KV_MAX_ASSETS];
	int nf = 0;
	for (int i = 0; i < s->nversions && i < 16; i++) {
		km_asset_query aq = {.key_name = k->name, .kek_version = s->versions[i].version,
		                     .limit = KV_MAX_ASSETS};
		s->nassets = 0;
		if (km_asset_list(ctx, &aq, kv_asset_cb, s, &e) != KM_OK) {
			ui_tw_format(s->detail_err, sizeof s->detail_err, "%s", e.msg);
			break;
		}
		for (int j = 0; j < s->nassets; j++) {
			int at = nf < KV_MAX_ASSETS ? nf++ : -1;
			if (at < 0) {
				int old = 0;
				for (int m = 1; m < nf; m++)
					if (found[m].id < found[old].id)
						old = m;
				if (found[old].id > s->assets[j].id)
					continue;
				at = old;
			}
			found[at] = s->assets[j];
		}
	}
	for (int i = 0; i < nf; i++)
		for (int j = i + 1; j < nf; j++)
			if (found[j].id > found[i].id) {
				km_asset_info t = found[i];
				found[i] = found[j];
				found[j] = t;
			}
	s->nassets = nf;
	memcpy(s->assets, found, (size_t)nf * sizeof found[0]);
	/* Latest events: the key's own object and each version's, by exact
	 * object (an index seek each), merged newest first.  A prefix query
	 * would sort every event of a busy key. */
	km_err e2;
	km_err_clear(&e2);
	kv_event merged[KV_MAX_EVENTS * 2];
	int nm = 0;
	for (int i = -1; i < s->nversions && i < 16; i++) {
		char obj[KM_KEY_NAME_MAX + 24];
		if (i < 0)
			ui_tw_format(obj, sizeof obj, "key:%s", k->name);
		else
			ui_tw_format(obj, sizeof obj, "key:%s@%u", k->name, s->versions[i].version);
		audit_filter f = {.object = obj};
		s->nevents = 0;
		if (km_audit_query(ctx, &f, 0, KV_MAX_EVENTS, kv_event_cb, s, &e2) != KM_OK) {
			/* an officer without audit.read sees the reason */
			ui_tw_format(s->detail_err, sizeof s->detail_err, "%s", e2.msg);
			break;
		}
		for (int j = 0; j < s->nevents; j++) {
			int at = nm < KV_MAX_EVENTS * 2 ? nm++ : -1;
			if (at < 0) { /* replace the oldest if this one is newer */
				int old = 0;
				for (int m = 1; m < nm; m++)
					if (merged[m].seq < merged[old].seq)
						old = m;
				if (merged[old].seq > s->events[j].seq)
					continue;
				at = old;
			}
			merged[at] = s->events[j];
		}
	}
	/* newest first, at most KV_MAX_EVENTS */
	for (int i = 0; i < nm; i++)
		for (int j = i + 1; j < nm; j++)
			if (merged[j].seq > merged[i].seq) {
				kv_event t = merged[i];
				merged[i] = merged[j];
				merged[j] = t;
			}
	s->nevents = nm < KV_MAX_EVENTS ? nm : KV_MAX_EVENTS;
	memcpy(s->events, merged, (size_t)s->nevents * sizeof merged[0]);
	if (s->vsel >= s->nversions)
		s->vsel = s->nversions ? s->nversions - 1 : 0;
}

/* ---- drawing ------------------------------------------------------------- */

/* The cells of one row, as drawn. */
/* The attention cell's colour: red for what is wrong now, yellow for what
 * is due, dim for work in progress. */
static ui_element kv_attn_element(unsigned attn)
{
	if (attn & (KM_ATTN_COMPROMISED | KM_ATTN_OVERDUE))
		return UI_EL_BAD;
	if (attn & (KM_ATTN_DUE | KM_ATTN_NEAR_BOUND))
		return UI_EL_SECTION;
	return UI_EL_DIM;
}

static void kv_cells(const kv_row *row, int64_t now, char cell[KV_NCOL][256])
{
	const km_key_info *k = &row->k;
	cell[KV_COL_ATTN][0] = '\0';
	if (row->attn)
		km_attention_format(row->attn, cell[KV_COL_ATTN], sizeof cell[0]);
	ui_tw_format(cell[KV_COL_NAME], sizeof cell[0], "%s", k->name);
	ui_tw_format(cell[KV_COL_VER], sizeof cell[0], "%u", k->current_version);
	ui_tw_format(cell[KV_COL_STATE], sizeof cell[0], "%s",
	             k->current_version ? km_state_name(k->current_state) : "-");
	char age[16];
	ui_fmt_age(k->current_created, now, age);
	ui_tw_format(cell[KV_COL_AGE], sizeof cell[0], "%s", age);
	ui_tw_format(cell[KV_COL_TAGS], sizeof cell[0], "%s", k->tags);
	ui_fmt_count(k->assets, cell[KV_COL_ASSETS]);
	if (k->last_used) {
		ui_fmt_age(k->last_used, now, age);
		ui_tw_format(cell[KV_COL_USE], sizeof cell[0], "%s ago", age);
	} else {
		ui_tw_format(cell[KV_COL_USE], sizeof cell[0], "never");
	}
}

/* Column widths for `total` cells from what the visible rows hold: every
 * column as wide as its widest cell (at least its title), tags take what
 * is left; when that does not fit, columns give way in their `drop` order
 * before the name is cut.  A width of 0 hides the column. */
static void kv_widths(ui_view *v, int total, int w[KV_NCOL])
{
	keys_state *s = v->st;
	int64_t now = km_now();
	for (int i = 0; i < KV_NCOL; i++) {
		w[i] = ui_tw_width(kv_columns[i].title) + 1; /* room for the sort arrow */
		if (w[i] < kv_columns[i].min)
			w[i] = kv_columns[i].min;
	}
	for (int r = 0; r < s->lw.n; r++) {
		char cell[KV_NCOL][256];
		kv_cells(ui_lw_row(&s->lw, r), now, cell);
		for (int i = 0; i < KV_NCOL; i++) {
			int cw = ui_tw_width(cell[i]);
			if (i != KV_COL_TAGS && cw > w[i])
				w[i] = cw;
		}
	}
	if (w[KV_COL_NAME] > 64)
		w[KV_COL_NAME] = 64;
	int avail = total - 1;
	for (int step = 0;; step++) {
		int used = 0, ncols = 0;
		for (int i = 0; i < KV_NCOL; i++)
			if (w[i] > 0 && i != KV_COL_TAGS) {
				used += w[i];
				ncols++;
			}
		int rest = avail - used - ncols; /* one space after each column */
		if (w[KV_COL_TAGS] > 0 && rest - 1 >= kv_columns[KV_COL_TAGS].min) {
			w[KV_COL_TAGS] = rest - 1;
			return;
		}
		if (w[KV_COL_TAGS] == 0 && rest >= 0)
			return;
		/* drop the next column in order; after the last, cut the name */
		int victim = -1;
		for (int i = 0; i < KV_NCOL; i++)
			if (w[i] > 0 && kv_columns[i].drop > 0 &&
			    (victim < 0 || kv_columns[i].drop < kv_columns[victim].drop))
				victim = i;
		if (victim >= 0) {
			w[victim] = 0;
			continue;
		}
		w[KV_COL_NAME] += rest;
		if (w[KV_COL_NAME] < kv_columns[KV_COL_NAME].min)
			w[KV_COL_NAME] = kv_columns[KV_COL_NAME].min;
		(void)step;
		return;
	}
}

static void kv_draw_row(ui_view *v, int y, int x0, const int w[KV_NCOL], const kv_row *row,
                        ui_element base)
{
	ui_console *c = v->c;
	const km_key_info *k = &row->k;
	char cell[KV_NCOL][256];
	kv_cells(row, km_now(), cell);
	ui_draw_fill(c, y, x0, v->area.w, base);
	int x = x0 + 1;
	for (int i = 0; i < KV_NCOL; i++) {
		if (w[i] <= 0)
			continue;
		ui_element el = base;
		if (i == KV_COL_STATE && base == UI_EL_NORMAL && k->current_version)
			el = ui_state_element(k->current_state);
		if (i == KV_COL_ATTN && base == UI_EL_NORMAL && row->attn)
			el = kv_attn_element(row->attn);
		ui_draw_text(c, y, x, w[i], el,
		             UI_TW_PAD | UI_TW_ELLIPSIS | (kv_columns[i].right ? UI_TW_RIGHT : 0u), cell[i]);
		x += w[i] + 1;
	}
}

static void kv_draw_list(ui_view *v, ui_rect a)
{
	keys_state *s = v->st;
	ui_console *c = v->c;
	const ui_glyphs *g = ui_glyph(c);
	char info[512];
	char n[48];
	if (s->count_pending)
		snprintf(n, sizeof n, "keys");
	else
		snprintf(n, sizeof n, "%s%llu key%s", s->count > KM_KEY_COUNT_CAP ? "more than " : "",
		         (unsigned long long)(s->count > KM_KEY_COUNT_CAP ? KM_KEY_COUNT_CAP : s->count),
		         s->count == 1 ? "" : "s");
	if (s->attn_only)
		ui_tw_format(info, sizeof info, "%s%s%s%s needing attention, most urgent first  (! shows all)",
		             n, s->filter[0] ? " matching \"" : "", s->filter, s->filter[0] ? "\"" : "");
	else
		ui_tw_format(info, sizeof info, "%s%s%s%s  sorted by %s %s", n,
		             s->filter[0] ? " matching \"" : "", s->filter, s->filter[0] ? "\"" : "",
		             km_key_sort_name(s->sort), s->desc ? "(descending)" : "(ascending)");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, s->filter[0] ? UI_EL_FILTER : UI_EL_DIM, UI_TW_ELLIPSIS,
	             info);
	int w[KV_NCOL];
	kv_widths(v, a.w, w);
	ui_draw_fill(c, a.y + 1, a.x, a.w, UI_EL_HEADER);
	int x = a.x + 1;
	for (int i = 0; i < KV_NCOL; i++) {
		if (w[i] <= 0)
			continue;
		char t[64];
		int sorted = s->attn_only ? i == KV_COL_ATTN : kv_columns[i].sort == (int)s->sort;
		ui_tw_format(t, sizeof t, "%s%s", kv_columns[i].title,
		             sorted ? (s->desc ? g->sort_desc : g->sort_asc) : "");
		ui_draw_text(c, a.y + 1, x, w[i], UI_EL_HEADER,
		             UI_TW_PAD | (kv_columns[i].right ? UI_TW_RIGHT : 0u), t);
		x += w[i] + 1;
	}
	s->list_y = a.y + 2;
	s->list_rows = a.h - 2;
	if (s->lw.n == 0) {
		ui_draw_text(c, a.y + 2, a.x + 2, a.w - 4, UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->lw.err.code != KM_OK ? s->lw.err.msg
		             : s->attn_only         ? "no key needs attention (! shows all keys)"
		             : s->filter[0]         ? "no key matches the filter (/ to change it, q to clear)"
		                                    : "no keys yet: c creates one");
		return;
	}
	for (int i = 0; i < s->lw.n && i < a.h - 2; i++) {
		ui_element base = UI_EL_NORMAL;
		if (i == s->lw.sel)
			base = s->focus_detail ? UI_EL_SELECTED_IDLE : UI_EL_SELECTED;
		kv_draw_row(v, a.y + 2 + i, a.x, w, ui_lw_row(&s->lw, i), base);
	}
}

static void kv_draw_detail(ui_view *v, ui_rect a, const km_key_info *k)
{
	keys_state *s = v->st;
	ui_console *c = v->c;
	kv_detail_load(v, k);
	char t[300];
	ui_draw_hline(c, a.y, a.x, a.w, UI_EL_BORDER);
	ui_tw_format(t, sizeof t, " %s ", k->name);
	ui_draw_text(c, a.y, a.x + 2, a.w - 4, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	int lw = a.w / 2 - 1, rx = a.x + a.w / 2 + 1, rw = a.w - a.w / 2 - 2;
	int y = a.y + 1, bottom = a.y + a.h;
	/* versions */
	ui_draw_text(c, y++, a.x + 1, lw, UI_EL_SECTION, 0, "Versions");
	ui_tw_format(t, sizeof t, "%4s %-17s %-10s %-10s %7s %6s", "VER", "STATE", "CREATED",
	             "ACTIVATED", "WRAPS", "ASSETS");
	ui_draw_text(c, y++, a.x + 1, lw, UI_EL_HEADER, UI_TW_PAD, t);
	s->ver_y = y;
	/* tags as "k=v, k=v" wrapped to the column: every tag when the pane
	 * has room, else as many lines as fit and how many more there are */
	char tags[KV_MAX_TAGS * (KM_TAG_KEY_MAX + KM_TAG_VALUE_MAX + 4)];
	tags[0] = '\0';
	size_t tag_at[KV_MAX_TAGS]; /* where each tag starts in tags */
	for (int i = 0; i < s->ntags; i++) {
		size_t n = strlen(tags);
		tag_at[i] = n + (i ? 2 : 0);
		ui_tw_format(tags + n, sizeof tags - n, "%s%s=%s", i ? ", " : "", s->tags[i].key,
		             s->tags[i].value);
	}
	int tag_lines = 0;
	for (const char *p = tags; *p; tag_lines++) {
		size_t next;
		ui_tw_wrap(p, lw, &next);
		p += next;
	}
	if (tag_lines == 0)
		tag_lines = 1;
	/* versions get what the tags leave, at least three rows */
	int vmax = (bottom - y) - 2 - tag_lines;
	if (vmax > s->nversions)
		vmax = s->nversions;
	if (vmax < 3)
		vmax = 3;
	if (vmax < 1)
		vmax = 1;
	int first = s->vsel >= vmax ? s->vsel - vmax + 1 : 0;
	s->ver_y = y - first;
	for (int i = first; i < s->nversions && i - first < vmax; i++) {
		const km_key_version_info *ver = &s->versions[i];
		char cr[32], ac[32];
		ui_fmt_time(ver->created, cr);
		ui_fmt_time(ver->activated, ac);
		cr[10] = ac[10] = '\0';
		int sel = s->focus_detail && i == s->vsel;
		ui_element base = sel ? UI_EL_SELECTED : UI_EL_NORMAL;
		ui_draw_fill(c, y, a.x + 1, lw, base);
		ui_tw_format(t, sizeof t, "%4u", ver->version);
		ui_draw_text(c, y, a.x + 1, 5, base, UI_TW_PAD, t);
		ui_draw_text(c, y, a.x + 6, 17, sel ? base : ui_state_element(ver->state), UI_TW_PAD,
		             km_state_name(ver->state));
		char wr[16], as[16];
		ui_fmt_count(ver->wraps, wr);
		ui_fmt_count(ver->assets, as);
		ui_tw_format(t, sizeof t, " %-10s %-10s %7s %6s", cr, ac, wr, as);
		ui_draw_text(c, y, a.x + 23, lw - 22, base, UI_TW_PAD, t);
		y++;
	}
	y++;
	ui_tw_format(t, sizeof t, "Tags (%d)", s->ntags);
	ui_draw_text(c, y++, a.x + 1, lw, UI_EL_SECTION, 0, s->ntags ? t : "Tags");
	if (s->ntags == 0 && y < bottom)
		ui_draw_text(c, y++, a.x + 1, lw, UI_EL_DIM, UI_TW_ELLIPSIS, "(none; t edits tags)");
	if (s->tag_top > tag_lines - 1)
		s->tag_top = tag_lines - 1 > 0 ? tag_lines - 1 : 0;
	s->tag_lines_more = 0;
	s->tag_page = 0;
	int line_no = 0;
	for (const char *p = s->ntags ? tags : ""; *p && y < bottom; line_no++) {
		size_t next;
		size_t len = ui_tw_wrap(p, lw, &next);
		if (line_no < s->tag_top) {
			p += next;
			continue;
		}
		if (y == bottom - 1 && p[next]) {
			/* the last row that fits, and more to come: say how many */
			int shown = 0;
			while (shown < s->ntags && tag_at[shown] < (size_t)(p - tags))
				shown++;
			s->tag_lines_more = tag_lines - line_no;
			ui_tw_format(t, sizeof t, "... %d more tags (%s)", s->ntags - shown,
			             s->focus_detail ? "PgDn scrolls" : "l, then PgDn");
			ui_draw_text(c, y, a.x + 1, lw, UI_EL_DIM, UI_TW_ELLIPSIS, t);
			break;
		}
		char line[512];
		ui_tw_format(line, sizeof line, "%.*s", (int)len, p);
		ui_draw_text(c, y, a.x + 1, lw, UI_EL_NORMAL, UI_TW_ELLIPSIS, line);
		p += next;
		y++;
		s->tag_page++;
	}
	/* right column: assets, events */
	for (int yy = a.y + 1; yy < bottom; yy++)
		ui_draw_text(c, yy, a.x + a.w / 2, 1, UI_EL_BORDER, 0, ui_glyph(c)->vline);
	y = a.y + 1;
	ui_tw_format(t, sizeof t, "Assets (%llu; first %d)", (unsigned long long)k->assets,
	             s->nassets);
	ui_draw_text(c, y++, rx, rw, UI_EL_SECTION, UI_TW_ELLIPSIS, t);
	int half = (bottom - y) / 2;
	for (int i = 0; i < s->nassets && i < half - 1; i++) {
		const km_asset_info *as = &s->assets[i];
		ui_tw_format(t, sizeof t, "%-8s %s%s%s  v%u", as->kind, as->name, as->version[0] ? "@" : "",
		             as->version, as->kek_version);
		ui_draw_text(c, y++, rx, rw, UI_EL_NORMAL, UI_TW_ELLIPSIS, t);
	}
	if (s->nassets == 0)
		ui_draw_text(c, y++, rx, rw, UI_EL_DIM, 0, "(none)");
	y = a.y + 1 + half + 1;
	ui_draw_text(c, y++, rx, rw, UI_EL_SECTION, 0, "Latest audit events");
	if (s->detail_err[0])
		ui_draw_text(c, y++, rx, rw, UI_EL_ERROR, UI_TW_ELLIPSIS, s->detail_err);
	for (int i = 0; i < s->nevents && y < bottom; i++) {
		const kv_event *ev = &s->events[i];
		ui_tw_format(t, sizeof t, "#%llu %.19s %s %s", (unsigned long long)ev->seq, ev->time,
		             ev->actor, ev->action);
		int ow = ui_tw_width(ev->outcome) + 1;
		ui_draw_text(c, y, rx, rw - ow, UI_EL_NORMAL, UI_TW_ELLIPSIS | UI_TW_PAD, t);
		ui_draw_text(c, y, rx + rw - ow + 1, ow - 1,
		             strcmp(ev->outcome, "ok") == 0 ? UI_EL_OK : UI_EL_BAD, 0, ev->outcome);
		y++;
	}
}

static void kv_draw(ui_view *v, ui_rect a)
{
	keys_state *s = v->st;
	ui_rect list = a;
	if (s->detail_open)
		list.h = kv_list_height(v);
	kv_draw_list(v, list);
	const km_key_info *k = ui_lw_selected(&s->lw);
	if (s->detail_open && k) {
		ui_rect d = {a.y + list.h, a.x, a.h - list.h, a.w};
		kv_draw_detail(v, d, k);
	}
}

/* ---- actions ------------------------------------------------------------- */

static void kv_layout_changed(ui_view *v)
{
	keys_state *s = v->st;
	/* the window keeps the selected row visible (listwin.h) */
	kv_report(v, ui_lw_resize(&s->lw, kv_list_rows(v)));
}

/* The attention-only view on or off; the list starts from its top. */
static void kv_set_attention(ui_view *v, int on)
{
	keys_state *s = v->st;
	s->attn_only = on;
	if (on) {
		km_err e;
		km_err_clear(&e);
		if (kv_attn_load(v, &e) != KM_OK) {
			s->attn_only = 0;
			ui_error(v->c, &e);
			return;
		}
	}
	kv_report(v, ui_lw_home(&s->lw));
	kv_count(v);
}

static int kv_handle(ui_view *v, ui_action a)
{
	keys_state *s = v->st;
	ui_console *c = v->c;
	km_key_info *k = ui_lw_selected(&s->lw);
	km_key_info sel;
	if (k)
		sel = *k; /* the window may move under a dialog */
	switch (a) {
	case UI_ACT_MOVE_DOWN:
		if (s->focus_detail) {
			if (s->vsel < s->nversions - 1)
				s->vsel++;
		} else
			kv_report(v, ui_lw_down(&s->lw));
		return 1;
	case UI_ACT_MOVE_UP:
		if (s->focus_detail) {
			if (s->vsel > 0)
				s->vsel--;
		} else
			kv_report(v, ui_lw_up(&s->lw));
		return 1;
	case UI_ACT_PAGE_DOWN:
		if (s->focus_detail) /* in the pane: scroll the tags */
			s->tag_top += s->tag_lines_more > 0 ? s->tag_page : 0;
		else
			kv_report(v, ui_lw_page_down(&s->lw));
		return 1;
	case UI_ACT_PAGE_UP:
		if (s->focus_detail)
			s->tag_top = s->tag_top > s->tag_page ? s->tag_top - s->tag_page : 0;
		else
			kv_report(v, ui_lw_page_up(&s->lw));
		return 1;
	case UI_ACT_FIRST:
		if (s->focus_detail)
			s->vsel = 0;
		else
			kv_report(v, ui_lw_home(&s->lw));
		return 1;
	case UI_ACT_LAST:
		if (s->focus_detail)
			s->vsel = s->nversions ? s->nversions - 1 : 0;
		else
			kv_report(v, ui_lw_end(&s->lw));
		return 1;
	case UI_ACT_ENTER:
		s->detail_open = !s->detail_open;
		s->focus_detail = 0;
		kv_layout_changed(v);
		return 1;
	case UI_ACT_PANE_RIGHT:
		s->detail_open = 1;
		s->focus_detail = 1;
		kv_layout_changed(v);
		return 1;
	case UI_ACT_PANE_LEFT:
		s->focus_detail = 0;
		kv_layout_changed(v);
		return 1;
	case UI_ACT_QUIT:
		if (s->detail_open) {
			s->detail_open = s->focus_detail = 0;
			kv_layout_changed(v);
			return 1;
		}
		if (s->filter[0]) {
			s->filter[0] = '\0';
			kv_report(v, ui_lw_home(&s->lw));
			kv_count(v);
			return 1;
		}
		return 0;
	case UI_ACT_ATTENTION:
		kv_set_attention(v, !s->attn_only);
		return 1;
	case UI_ACT_SORT_NEXT:
		if (s->attn_only) {
			s->attn_only = 0; /* leave the urgency order for the columns' */
			kv_report(v, ui_lw_home(&s->lw));
			kv_count(v);
			return 1;
		}
		s->sort = (km_key_sort)((s->sort + 1) % KM_KEY_SORT_COUNT);
		kv_report(v, ui_lw_home(&s->lw));
		return 1;
	case UI_ACT_SORT_REVERSE:
		s->desc = !s->desc;
		kv_report(v, ui_lw_home(&s->lw));
		return 1;
	case UI_ACT_KEY_CREATE:
		ui_op_create(c, NULL, NULL);
		return 1;
	case UI_ACT_IMPACT:
		if (!k) {
			ui_error_text(c, "no key selected");
			return 1;
		}
		/* the version picked in the pane, else the current one */
		if (s->focus_detail && s->detail_loaded && s->vsel < s->nversions &&
		    strcmp(s->detail_name, sel.name) == 0)
			ui_goto_impact(c, sel.name, s->versions[s->vsel].version);
		else
			ui_goto_impact(c, sel.name, sel.current_version);
		return 1;
	case UI_ACT_KEY_TAGS:
	case UI_ACT_KEY_ROTATE:
	case UI_ACT_KEY_STATE:
		if (!k) {
			ui_error_text(c, "no key selected");
			return 1;
		}
		if (a == UI_ACT_KEY_TAGS)
			ui_op_edit_tags(c, sel.name);
		else if (a == UI_ACT_KEY_ROTATE)
			ui_op_rotate(c, sel.name, 1);
		else if (s->focus_detail && s->detail_loaded && s->vsel < s->nversions)
			ui_op_set_state(c, sel.name, s->versions[s->vsel].version, s->versions[s->vsel].state, -1);
		else if (sel.current_version)
			ui_op_set_state(c, sel.name, sel.current_version, sel.current_state, -1);
		else
			ui_error_text(c, "%s has no version yet", sel.name);
		return 1;
	default:
		return 0;
	}
}

static void kv_filter(ui_view *v, const char *text)
{
	keys_state *s = v->st;
	ui_tw_format(s->filter, sizeof s->filter, "%s", text);
	int rc = ui_lw_home(&s->lw);
	kv_report(v, rc);
	/* Counting matches can scan every key; per keystroke only the
	 * visible page is fetched, the count follows in kv_filter_settled. */
	s->count_pending = 1;
	ui_dirty(v->c);
}

static void kv_filter_settled(ui_view *v)
{
	keys_state *s = v->st;
	kv_count(v);
	s->count_pending = 0;
	ui_dirty(v->c);
}

static const char *kv_filter_text(ui_view *v)
{
	keys_state *s = v->st;
	return s->filter;
}

static int kv_sort(ui_view *v, const char *column, int descending)
{
	keys_state *s = v->st;
	if (strcmp(column, "attention") == 0) {
		(void)descending; /* most urgent first, always */
		kv_set_attention(v, 1);
		return 0;
	}
	s->attn_only = 0;
	for (int i = 0; i < KM_KEY_SORT_COUNT; i++)
		if (strcmp(km_key_sort_name((km_key_sort)i), column) == 0) {
			s->sort = (km_key_sort)i;
			s->desc = descending;
			kv_report(v, ui_lw_home(&s->lw));
			return 0;
		}
	char names[128] = "";
	for (int i = 0; i < KM_KEY_SORT_COUNT; i++)
		ui_tw_format(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
		             km_key_sort_name((km_key_sort)i));
	ui_error_text(v->c, "cannot sort keys by \"%s\"; columns: %s", column, names);
	return -1;
}

static void kv_click(ui_view *v, int y, int x)
{
	keys_state *s = v->st;
	(void)x;
	if (y >= s->list_y && y < s->list_y + s->list_rows) {
		ui_lw_select(&s->lw, y - s->list_y);
		s->focus_detail = 0;
	} else if (s->detail_open && y >= s->ver_y && y < s->ver_y + s->nversions && x < v->area.w / 2) {
		s->vsel = y - s->ver_y;
		s->focus_detail = 1;
	}
	ui_dirty(v->c);
}

void ui_goto_key(ui_console *c, const char *name, uint32_t version)
{
	ui_view *v = ui_view_find(c, "keys");
	keys_state *s = v->st;
	ui_view_show(c, v);
	s->attn_only = 0;
	ui_tw_format(s->filter, sizeof s->filter, "%s", name);
	s->detail_open = 1;
	s->focus_detail = version != 0;
	s->detail_loaded = 0;
	kv_report(v, ui_lw_resize(&s->lw, kv_list_rows(v)));
	kv_report(v, ui_lw_home(&s->lw));
	kv_count(v);
	/* the filter matches names containing it: pick the exact one */
	for (int i = 0; i < s->lw.n; i++) {
		const kv_row *r = ui_lw_row(&s->lw, i);
		if (strcmp(r->k.name, name) == 0) {
			ui_lw_select(&s->lw, i);
			break;
		}
	}
	const km_key_info *k = ui_lw_selected(&s->lw);
	if (!k || strcmp(k->name, name) != 0) {
		ui_error_text(c, "no key %s in the inventory", name);
		return;
	}
	kv_detail_load(v, k);
	for (int i = 0; version && i < s->nversions; i++)
		if (s->versions[i].version == version)
			s->vsel = i;
	ui_dirty(c);
}

const struct ui_view_ops ui_view_keys = {
	.name = "keys",
	.title = "Keys",
	.help = "Every key-encryption key with its current version and state, the age of that "
	        "version, its tags, the assets under it and when it was last used. Enter opens the "
	        "detail pane (versions, tags, assets, latest audit events); l moves into it to pick a "
	        "version for x (change state). / filters by name or tag:value (sensitivity:high); "
	        "s and S change the sort. ATTN marks keys that need attention (overdue, compromised "
	        "with assets still under it, near the usage bound, due, an open request, a running "
	        "job); ! shows only those, most urgent first (:sort attention does the same). i shows "
	        "the impact of the version picked in the pane (else the current one) on the lineage "
	        "screen.",
	.state_size = sizeof(keys_state),
	.open = kv_open,
	.close = kv_close,
	.reload = kv_reload,
	.draw = kv_draw,
	.handle = kv_handle,
	.filter = kv_filter,
	.filter_text = kv_filter_text,
	.filter_settled = kv_filter_settled,
	.sort = kv_sort,
	.click = kv_click,
};
