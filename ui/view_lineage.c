/*
 * view_lineage.c — the lineage browser: an indented tree of what a key
 * version's data went into (downstream, the impact walk) or of what went
 * into a model version (upstream, provenance), with the selected node's
 * details beside it.
 *
 * :lineage KEY[@VERSION] starts downstream, :lineage MODEL@VERSION up
 * starts upstream; u switches direction from the selected node (a model:
 * its provenance; back down: the key last shown); Enter folds and unfolds;
 * / finds the next node whose label contains the text (unfolding its
 * branch); :asof DATE|now moves the whole view in time.  Each node sits
 * under the node before it on its shortest path, so the tree is the walk's
 * explanation.  All data comes from the core (lineage.h) at reload, on
 * unfold and on /; a repaint queries nothing.
 *
 * Downstream, the tree loads lazily: the impact walk (km_lineage_walk_*)
 * is run at reload only until LN_FIRST_NODES nodes are known, so that the
 * first frame costs the same for a key whose data fed the whole graph as
 * for one that fed ten nodes.  A node whose children are not known yet
 * shows "+"; unfolding it runs the walk on through it (the same breadth-
 * first walk, so the same tree as loading it all at once), and / runs it
 * to the end before it searches.
 */
#include "ui.h"
#include "views.h"
#include "lineage.h"
#include "asset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The screen shows at most this many nodes of a walk. */
#define LN_ROWS_MAX 20000
/* Downstream, a reload runs the walk until this many nodes are known
 * (measured: about 10 ms of the first frame at 100k nodes / 1M edges). */
#define LN_FIRST_NODES 2000

typedef struct ln_row {
	int64_t node;
	int parent;          /* row index, -1 for a start */
	uint32_t depth;
	int first_child, next_sibling; /* -1: none */
	int folded;
	char kind[16];
	char edge[16];       /* the edge that reached it */
	char label[256];
	char detail[3][200]; /* the side pane's extra lines */
	/* the key version behind it, for the jumps (K, A, E): upstream the
	 * one that protected it when consumed; downstream a start's (asset's)
	 * own, "" / 0 elsewhere (the jump climbs to the start) */
	char key[129];
	uint32_t kek_version;
} ln_row;

typedef struct lineage_state {
	char start[256];     /* what :lineage named */
	char last_key[256];  /* the key to go back down to */
	int upstream;
	int64_t as_of;       /* 0: now */
	ln_row *rows;        /* BFS order: row i is the walk's visit i */
	int nrows;
	km_lineage_walk *walk; /* downstream: the walk behind the rows */
	int truncated;
	int *vis;            /* visible rows, tree order */
	int *slot_row;       /* LN_SLOTS: node -> row, -1 empty */
	int nvis, sel, top;
	char summary[600];
	char error[KM_ERR_MSG_MAX];
	char find[128];
	int list_h;
} lineage_state;

/* node id -> row: open addressing over LN_SLOTS slots (twice the rows). */
#define LN_SLOTS 65536

static size_t ln_hash(int64_t node)
{
	uint64_t x = (uint64_t)node * 0x9E3779B97F4A7C15ull;
	return (size_t)(x >> 48) & (LN_SLOTS - 1);
}

static int ln_row_of(const lineage_state *s, int64_t node)
{
	for (size_t h = ln_hash(node); s->slot_row[h] != -1; h = (h + 1) & (LN_SLOTS - 1))
		if (s->rows[s->slot_row[h]].node == node)
			return s->slot_row[h];
	return -1;
}

static void ln_index(lineage_state *s, int row)
{
	size_t h = ln_hash(s->rows[row].node);
	while (s->slot_row[h] != -1)
		h = (h + 1) & (LN_SLOTS - 1);
	s->slot_row[h] = row;
}

static int ln_add(lineage_state *s, const km_lineage_node *n, const km_lineage_step *path, size_t len,
                  uint32_t depth)
{
	if (s->nrows >= LN_ROWS_MAX) {
		s->truncated = 1;
		return 1;
	}
	ln_row *r = &s->rows[s->nrows];
	memset(r, 0, sizeof *r);
	r->node = n->id;
	r->depth = depth;
	r->first_child = r->next_sibling = -1;
	r->parent = len >= 2 ? ln_row_of(s, path[len - 2].node) : -1;
	snprintf(r->kind, sizeof r->kind, "%s", km_lineage_kind_name(n->kind));
	snprintf(r->edge, sizeof r->edge, "%s", len ? path[len - 1].edge : "");
	km_lineage_node_label(n, r->label, sizeof r->label);
	ln_index(s, s->nrows);
	s->nrows++;
	return 0;
}

static int ln_impact_cb(void *c, const km_lineage_hit *h)
{
	lineage_state *s = c;
	if (ln_add(s, &h->node, h->path, h->path_len, h->depth))
		return 1;
	ln_row *r = &s->rows[s->nrows - 1];
	char from[32];
	if (h->depth == 0) {
		ui_tw_format(r->key, sizeof r->key, "%.*s", (int)strcspn(s->start, "@"), s->start);
		r->kek_version = h->kek_version;
		ui_fmt_time(h->protected_from, from);
		if (h->kek_version)
			snprintf(r->detail[0], sizeof r->detail[0], "protected by v%" PRIu32 " since %s",
			         h->kek_version, from);
		else
			snprintf(r->detail[0], sizeof r->detail[0], "protected by several versions since %s", from);
	}
	return 0;
}

static int ln_prov_cb(void *c, const km_lineage_input *in)
{
	lineage_state *s = c;
	if (ln_add(s, &in->hit.node, in->hit.path, in->hit.path_len, in->hit.depth))
		return 1;
	ln_row *r = &s->rows[s->nrows - 1];
	char when[32];
	ui_fmt_time(in->consumed, when);
	snprintf(r->detail[0], sizeof r->detail[0], "consumed %s", when);
	ui_tw_format(r->key, sizeof r->key, "%s", in->key);
	r->kek_version = in->kek_version;
	if (in->key[0])
		snprintf(r->detail[1], sizeof r->detail[1], "protected by %s v%" PRIu32 " (%s now, %" PRIu32
		         " rotation%s since)", in->key, in->kek_version, in->state, in->later_versions,
		         in->later_versions == 1 ? "" : "s");
	else
		snprintf(r->detail[1], sizeof r->detail[1], "not protected by keyward then");
	/* the requests behind that version: kind and approvers */
	size_t used = 0;
	for (size_t i = 0; i < in->napprovals && used < sizeof r->detail[2]; i++) {
		const km_lineage_approval *ap = &in->approvals[i];
		used += (size_t)snprintf(r->detail[2] + used, sizeof r->detail[2] - used, "%s%s %.8s:",
		                         i ? "; " : "approvals: ", ap->kind, ap->request_id);
		for (size_t j = 0; j < ap->napprovers && j < KM_LINEAGE_APPROVERS_MAX && used < sizeof r->detail[2]; j++)
			used += (size_t)snprintf(r->detail[2] + used, sizeof r->detail[2] - used, " %s%s",
			                         ap->approvers[j].name, ap->approvers[j].approve ? "" : "(rejected)");
	}
	return 0;
}

/* Tree order: each row under its parent, children in walk order; a walk
 * along first-child / next-sibling / parent links, so no depth or fan-out
 * limit. */
static void ln_visible(lineage_state *s)
{
	s->nvis = 0;
	for (int root = 0; root < s->nrows; root++) {
		if (s->rows[root].parent != -1)
			continue;
		int r = root;
		for (;;) {
			s->vis[s->nvis++] = r;
			if (!s->rows[r].folded && s->rows[r].first_child != -1) {
				r = s->rows[r].first_child;
				continue;
			}
			while (r != root && s->rows[r].next_sibling == -1)
				r = s->rows[r].parent;
			if (r == root)
				break;
			r = s->rows[r].next_sibling;
		}
	}
	if (s->sel >= s->nvis)
		s->sel = s->nvis ? s->nvis - 1 : 0;
}

static void ln_link(lineage_state *s)
{
	int *last = malloc(sizeof(int) * (size_t)(s->nrows ? s->nrows : 1));
	if (!last)
		return;
	for (int i = 0; i < s->nrows; i++) {
		last[i] = -1;
		s->rows[i].first_child = s->rows[i].next_sibling = -1;
	}
	for (int i = 0; i < s->nrows; i++) {
		int p = s->rows[i].parent;
		if (p < 0)
			continue;
		if (last[p] == -1)
			s->rows[p].first_child = i;
		else
			s->rows[last[p]].next_sibling = i;
		last[p] = i;
	}
	free(last);
}

/* Rows for the visits the walk knows and the screen has not loaded yet
 * (up to LN_ROWS_MAX), linked into the tree; and the summary line, whose
 * counts by kind are the walk's once it has run to the end. */
static km_status ln_load_rows(ui_view *v, km_err *e)
{
	lineage_state *s = v->st;
	km_ctx *ctx = ui_ctx(v->c);
	size_t known = km_lineage_walk_known(s->walk);
	km_status st = km_lineage_walk_hits(ctx, s->walk, (size_t)s->nrows, known, ln_impact_cb, s, e);
	if (st)
		return st;
	ln_link(s);
	size_t done = km_lineage_walk_expanded(s->walk);
	char when[32];
	ui_fmt_time(km_lineage_walk_as_of(s->walk), when);
	const char *cyc = km_lineage_walk_cycles(s->walk) ? ", cycles met" : "";
	if (done < known) {
		snprintf(s->summary, sizeof s->summary, "downstream of key %s: %zu nodes so far (+ unfolds "
		         "further, / searches all) as of %s%s", s->start, known, when, cyc);
	} else if ((size_t)s->nrows == known) {
		uint64_t models = 0, endpoints = 0;
		for (int i = 0; i < s->nrows; i++) {
			models += strcmp(s->rows[i].kind, "model") == 0;
			endpoints += strcmp(s->rows[i].kind, "endpoint") == 0;
		}
		snprintf(s->summary, sizeof s->summary, "downstream of key %s: %zu nodes (%" PRIu64
		         " models, %" PRIu64 " endpoints) as of %s%s", s->start, known, models, endpoints,
		         when, cyc);
	} else {
		snprintf(s->summary, sizeof s->summary, "downstream of key %s: %zu nodes as of %s%s",
		         s->start, known, when, cyc);
	}
	return KM_OK;
}

/* Whether row r's children are all known (always, upstream). */
static int ln_expanded(const lineage_state *s, int r)
{
	return !s->walk || (size_t)r < km_lineage_walk_expanded(s->walk);
}

/* Run the walk on through row `through` (SIZE_MAX: to the end) and load
 * the rows it found.  Rows the walk expanded on the way, other than
 * `through`, start folded: the tree grows where it was asked to. */
static void ln_walk_on(ui_view *v, size_t through)
{
	lineage_state *s = v->st;
	if (!s->walk)
		return;
	size_t before = km_lineage_walk_expanded(s->walk);
	km_err e;
	if (km_lineage_walk_expand(ui_ctx(v->c), s->walk, through, 0, &e) || ln_load_rows(v, &e)) {
		ui_error(v->c, &e);
		return;
	}
	size_t after = km_lineage_walk_expanded(s->walk);
	for (size_t i = before; i < after && i < (size_t)s->nrows; i++)
		s->rows[i].folded = i != through;
	ln_visible(s);
}

static void ln_reload(ui_view *v)
{
	lineage_state *s = v->st;
	km_lineage_walk_free(s->walk);
	s->walk = NULL;
	s->nrows = 0;
	s->nvis = 0;
	s->truncated = 0;
	s->error[0] = s->summary[0] = '\0';
	if (!s->start[0] || !s->rows || !s->vis || !s->slot_row)
		return;
	for (size_t i = 0; i < LN_SLOTS; i++)
		s->slot_row[i] = -1;
	km_err e;
	km_status st;
	if (s->upstream) {
		km_lineage_provenance_summary sum;
		st = km_lineage_provenance(ui_ctx(v->c), s->start, ln_prov_cb, s, &sum, &e);
		if (!st)
			snprintf(s->summary, sizeof s->summary, "upstream of %s: %" PRIu64 " inputs, %" PRIu64
			         " protected by keyward%s", s->start, sum.inputs, sum.protected_inputs,
			         sum.cycles ? ", cycles met" : "");
	} else {
		char key[256];
		snprintf(key, sizeof key, "%s", s->start);
		char *at = strchr(key, '@');
		uint32_t version = 0;
		if (at) {
			*at = '\0';
			version = (uint32_t)strtoul(at + 1, NULL, 10);
		}
		km_ctx *ctx = ui_ctx(v->c);
		st = km_lineage_walk_impact(ctx, key, version, s->as_of, &s->walk, &e);
		if (!st)
			st = km_lineage_walk_expand(ctx, s->walk, 0, LN_FIRST_NODES, &e);
		if (!st)
			st = ln_load_rows(v, &e);
		if (!st)
			snprintf(s->last_key, sizeof s->last_key, "%s", s->start);
	}
	if (st) {
		snprintf(s->error, sizeof s->error, "%s", e.msg);
		s->nrows = 0;
	}
	ln_link(s);
	ln_visible(s);
}

static void ln_open(ui_view *v)
{
	lineage_state *s = v->st;
	s->rows = calloc(LN_ROWS_MAX, sizeof *s->rows);
	s->vis = calloc(LN_ROWS_MAX, sizeof *s->vis);
	s->slot_row = calloc(LN_SLOTS, sizeof *s->slot_row);
}

static void ln_close(ui_view *v)
{
	lineage_state *s = v->st;
	free(s->rows);
	free(s->vis);
	free(s->slot_row);
	km_lineage_walk_free(s->walk);
	s->walk = NULL;
}

static void ln_draw(ui_view *v, ui_rect a)
{
	lineage_state *s = v->st;
	ui_console *c = v->c;
	int detail_w = a.w >= 100 ? a.w / 3 : 0;
	int list_w = a.w - detail_w;
	char line[512];
	if (!s->rows) {
		ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_ERROR, UI_TW_ELLIPSIS, "out of memory");
		return;
	}
	/* first, so that it survives a narrow terminal */
	ui_tw_format(line, sizeof line, "%s%.400s%s",
	             s->summary[0] && km_lineage_redacting(ui_ctx(c)) ? "names are pseudonyms (need-to-know): " : "",
	             s->summary[0] ? s->summary : "Lineage", s->truncated ? " (first 20000 nodes)" : "");
	ui_draw_text(c, a.y, a.x + 1, a.w - 2, UI_EL_SECTION, UI_TW_ELLIPSIS | UI_TW_PAD, line);
	s->list_h = a.h - 1;
	if (s->error[0]) {
		ui_draw_text(c, a.y + 1, a.x + 1, a.w - 2, UI_EL_ERROR, UI_TW_ELLIPSIS, s->error);
		return;
	}
	if (!s->start[0] || s->nvis == 0) {
		ui_draw_text(c, a.y + 2, a.x + 2, a.w - 4, UI_EL_DIM, UI_TW_ELLIPSIS,
		             s->start[0] ? "Nothing reached." :
		             "Start with :lineage KEY[@VERSION] (downstream) or :lineage MODEL@VERSION up.");
		ui_draw_text(c, a.y + 3, a.x + 2, a.w - 4, UI_EL_DIM, UI_TW_ELLIPSIS,
		             "Enter folds, u switches up/down from the selected model, / finds, :asof DATE.");
		return;
	}
	if (s->sel < s->top)
		s->top = s->sel;
	if (s->sel >= s->top + s->list_h)
		s->top = s->sel - s->list_h + 1;
	for (int i = 0; i < s->list_h; i++) {
		int y = a.y + 1 + i;
		int vi = s->top + i;
		ui_element el = vi == s->sel ? UI_EL_SELECTED : UI_EL_NORMAL;
		ui_draw_fill(c, y, a.x, list_w, el);
		if (vi >= s->nvis)
			continue;
		const ln_row *r = &s->rows[s->vis[vi]];
		int indent = (int)(r->depth > 20 ? 20 : r->depth) * 2;
		const char *mark = !ln_expanded(s, s->vis[vi]) ? "+" : r->first_child == -1 ? " " :
		                   r->folded ? "+" : "-";
		snprintf(line, sizeof line, "%*s%s %s  [%s]", indent, "", mark, r->label, r->kind);
		ui_draw_text(c, y, a.x + 1, list_w - 2, el, UI_TW_ELLIPSIS | UI_TW_PAD, line);
	}
	if (!detail_w)
		return;
	int x = a.x + list_w;
	for (int y = a.y + 1; y < a.y + a.h; y++)
		ui_draw_text(c, y, x, 1, UI_EL_BORDER, 0, "|");
	const ln_row *r = &s->rows[s->vis[s->sel]];
	int y = a.y + 1;
	ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_SECTION, UI_TW_ELLIPSIS, r->label);
	snprintf(line, sizeof line, "kind %s, node #%" PRId64, r->kind, r->node);
	ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_NORMAL, UI_TW_ELLIPSIS, line);
	snprintf(line, sizeof line, "reached by %s, depth %" PRIu32, r->edge, r->depth);
	ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_NORMAL, UI_TW_ELLIPSIS, line);
	for (int k = 0; k < 3; k++)
		if (r->detail[k][0])
			ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_NORMAL, UI_TW_ELLIPSIS, r->detail[k]);
	/* the jumps, with the keys bound to them now */
	char kk[32], ka[32], ke[32];
	ui_keymap_keys(ui_keymap_get(c), UI_ACT_LINEAGE_KEY, kk, sizeof kk);
	ui_keymap_keys(ui_keymap_get(c), UI_ACT_LINEAGE_ASSET, ka, sizeof ka);
	ui_keymap_keys(ui_keymap_get(c), UI_ACT_LINEAGE_EVENTS, ke, sizeof ke);
	snprintf(line, sizeof line, "%s key  %s asset  %s audit events", kk, ka, ke);
	ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_DIM, UI_TW_ELLIPSIS, line);
	y++;
	ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_SECTION, 0, "Path");
	/* the chain up to the start, newest last */
	int chain[64], n = 0;
	for (int p = s->vis[s->sel]; p != -1 && n < 64; p = s->rows[p].parent)
		chain[n++] = p;
	while (n-- > 0 && y < a.y + a.h) {
		const ln_row *q = &s->rows[chain[n]];
		snprintf(line, sizeof line, "%s %s", q->parent == -1 ? (s->upstream ? "model" : "key ->") : q->edge,
		         q->label);
		ui_draw_text(c, y++, x + 2, detail_w - 3, UI_EL_DIM, UI_TW_ELLIPSIS, line);
	}
}

/* Unfold every ancestor of row r, then select it. */
static void ln_reveal(lineage_state *s, int r)
{
	for (int p = s->rows[r].parent; p != -1; p = s->rows[p].parent)
		s->rows[p].folded = 0;
	ln_visible(s);
	for (int i = 0; i < s->nvis; i++)
		if (s->vis[i] == r)
			s->sel = i;
}

static void ln_find(ui_view *v, const char *text)
{
	lineage_state *s = v->st;
	snprintf(s->find, sizeof s->find, "%s", text ? text : "");
	if (!s->find[0] || !s->nvis)
		return;
	int cur = s->vis[s->sel];
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 1; k <= s->nrows; k++) {
			int r = (cur + k) % s->nrows;
			if (strstr(s->rows[r].label, s->find)) {
				ln_reveal(s, r);
				ui_dirty(v->c);
				return;
			}
		}
		/* Not among the nodes known so far: the rest of the walk. */
		if (pass || !s->walk || km_lineage_walk_expanded(s->walk) == km_lineage_walk_known(s->walk))
			break;
		ln_walk_on(v, SIZE_MAX);
		ui_dirty(v->c);
	}
	ui_message(v->c, "no node matches \"%s\"", s->find);
}

static const char *ln_find_text(ui_view *v)
{
	return ((lineage_state *)v->st)->find;
}

/* The key version behind row r: its own (a start downstream, an input
 * upstream), else downstream its start's, the asset its path began at. */
static const ln_row *ln_protector(const lineage_state *s, int r)
{
	if (!s->upstream)
		while (s->rows[r].parent != -1)
			r = s->rows[r].parent;
	return s->rows[r].key[0] ? &s->rows[r] : NULL;
}

static void ln_node_asset(void *c, const km_lineage_node *n, const char *facets)
{
	(void)facets;
	*(int64_t *)c = n->asset_id;
}

/* K: the key screen; A: the asset (its key, the version that protects it,
 * its record on the message line); E: the audit events of that key
 * version, or the imports that built a node no key protects. */
static void ln_jump(ui_view *v, ui_action a, int r)
{
	lineage_state *s = v->st;
	ui_console *c = v->c;
	const ln_row *row = &s->rows[r];
	const ln_row *p = ln_protector(s, r);
	if (a == UI_ACT_LINEAGE_EVENTS) {
		char f[200];
		if (p && p->kek_version)
			ui_tw_format(f, sizeof f, "key:%s@%" PRIu32, p->key, p->kek_version);
		else if (p)
			ui_tw_format(f, sizeof f, "key:%s", p->key);
		else
			ui_tw_format(f, sizeof f, "action:lineage.import");
		ui_goto_audit(c, f);
		return;
	}
	if (a == UI_ACT_LINEAGE_KEY) {
		if (!p) {
			ui_error_text(c, "%s was not protected by a keyward key", row->label);
			return;
		}
		ui_goto_key(c, p->key, p->kek_version);
		return;
	}
	/* the asset: the node's own catalogue record */
	km_err e;
	km_err_clear(&e);
	int64_t asset_id = 0;
	char spec[32];
	snprintf(spec, sizeof spec, "#%" PRId64, row->node);
	km_lineage_show_cbs cbs = {ln_node_asset, NULL, NULL, &asset_id};
	if (km_lineage_show(ui_ctx(c), spec, &cbs, &e) != KM_OK) {
		ui_error(c, &e);
		return;
	}
	if (!asset_id) {
		ui_error_text(c, "%s is not a catalogue asset (it comes from lineage events)%s", row->label,
		              p ? "; K goes to the key that protects what it came from" : "");
		return;
	}
	if (km_lineage_redacting(ui_ctx(c))) {
		/* the catalogue record would name what the pseudonym hides */
		ui_error_text(c, "the asset's record is withheld from your role (need-to-know); K shows its key");
		return;
	}
	km_asset_info as;
	if (km_asset_get(ui_ctx(c), asset_id, &as, &e) != KM_OK) {
		ui_error(c, &e);
		return;
	}
	ui_goto_key(c, as.kek_name, as.kek_version);
	char when[32];
	ui_fmt_time(as.created, when);
	ui_message(c, "asset #%" PRId64 " %s:%s%s%s under %s v%" PRIu32 ", protected %s by %s", as.id, as.kind,
	           as.name, as.version[0] ? "@" : "", as.version, as.kek_name, as.kek_version, when,
	           as.created_by);
}

static int ln_handle(ui_view *v, ui_action a)
{
	lineage_state *s = v->st;
	int page = s->list_h > 1 ? s->list_h - 1 : 1;
	switch (a) {
	case UI_ACT_MOVE_DOWN: if (s->sel + 1 < s->nvis) s->sel++; return 1;
	case UI_ACT_MOVE_UP: if (s->sel > 0) s->sel--; return 1;
	case UI_ACT_PAGE_DOWN: s->sel = s->sel + page < s->nvis ? s->sel + page : (s->nvis ? s->nvis - 1 : 0); return 1;
	case UI_ACT_PAGE_UP: s->sel = s->sel > page ? s->sel - page : 0; return 1;
	case UI_ACT_FIRST: s->sel = 0; return 1;
	case UI_ACT_LAST: s->sel = s->nvis ? s->nvis - 1 : 0; return 1;
	case UI_ACT_ENTER:
		if (s->nvis && !ln_expanded(s, s->vis[s->sel])) {
			ln_walk_on(v, (size_t)s->vis[s->sel]);
		} else if (s->nvis && s->rows[s->vis[s->sel]].first_child != -1) {
			s->rows[s->vis[s->sel]].folded ^= 1;
			ln_visible(s);
		}
		return 1;
	case UI_ACT_LINEAGE_UPSTREAM:
		if (s->upstream) {
			if (!s->last_key[0]) {
				ui_message(v->c, "no key to go back down to: :lineage KEY[@VERSION]");
				return 1;
			}
			snprintf(s->start, sizeof s->start, "%s", s->last_key);
			s->upstream = 0;
		} else {
			if (!s->nvis || strcmp(s->rows[s->vis[s->sel]].kind, "model") != 0) {
				ui_message(v->c, "select a model to see what went into it");
				return 1;
			}
			snprintf(s->start, sizeof s->start, "#%" PRId64, s->rows[s->vis[s->sel]].node);
			s->upstream = 1;
		}
		s->sel = s->top = 0;
		v->stale = 1;
		return 1;
	case UI_ACT_LINEAGE_KEY:
	case UI_ACT_LINEAGE_ASSET:
	case UI_ACT_LINEAGE_EVENTS:
		if (!s->nvis) {
			ui_error_text(v->c, "no node selected: :lineage KEY[@VERSION] first");
			return 1;
		}
		ln_jump(v, a, s->vis[s->sel]);
		return 1;
	default:
		return 0;
	}
}

/* :lineage SPEC [up|down] */
void ui_colon_lineage(ui_console *c, int argc, char **argv)
{
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "up") && strcmp(argv[2], "down"))) {
		ui_error_text(c, "usage: :lineage KEY[@VERSION] | MODEL@VERSION up");
		return;
	}
	ui_view *v = ui_view_find(c, "lineage");
	lineage_state *s = v->st;
	snprintf(s->start, sizeof s->start, "%s", argv[1]);
	s->upstream = argc == 3 && strcmp(argv[2], "up") == 0;
	s->sel = s->top = 0;
	v->stale = 1;
	ui_view_show(c, v);
}

void ui_goto_impact(ui_console *c, const char *key, uint32_t version)
{
	ui_view *v = ui_view_find(c, "lineage");
	lineage_state *s = v->st;
	if (version)
		snprintf(s->start, sizeof s->start, "%.200s@%" PRIu32, key, version);
	else
		snprintf(s->start, sizeof s->start, "%.200s", key);
	s->upstream = 0;
	s->sel = s->top = 0;
	v->stale = 1;
	ui_view_show(c, v);
}

/* :asof DATE|now */
void ui_colon_asof(ui_console *c, int argc, char **argv)
{
	ui_view *v = ui_view_find(c, "lineage");
	lineage_state *s = v->st;
	if (argc != 2) {
		ui_error_text(c, "usage: :asof 2026-11-30 | 2026-11-30T12:00:00Z | now");
		return;
	}
	if (strcmp(argv[1], "now") == 0) {
		s->as_of = 0;
	} else {
		int64_t ms;
		km_err e;
		if (km_lineage_time_parse(argv[1], 1, &ms, &e)) {
			ui_error(c, &e);
			return;
		}
		s->as_of = ms / 1000;
	}
	v->stale = 1;
	ui_view_show(c, v);
}

const struct ui_view_ops ui_view_lineage = {
	.name = "lineage",
	.title = "Lineage",
	.help = "Where a key version's data went, as a tree: :lineage KEY[@VERSION] shows everything "
	        "downstream of what it protected (each node under the node before it on its shortest "
	        "path); :lineage MODEL@VERSION up shows what went into a model and the key version "
	        "that protected each input. Enter folds a branch, u switches between upstream (from "
	        "the selected model) and downstream (the last key), / finds a node by name, "
	        ":asof DATE shows the graph as it was then. From the selected node, K goes to the key "
	        "version that protects it (or protected what it came from), A to its catalogue asset, "
	        "E to the audit events of that key version. i on the keys and approvals screens, and a "
	        "compromise, open this screen's impact view. Roles without need-to-know see "
	        "pseudonyms for names.",
	.state_size = sizeof(lineage_state),
	.open = ln_open,
	.close = ln_close,
	.reload = ln_reload,
	.draw = ln_draw,
	.handle = ln_handle,
	.filter = ln_find,
	.filter_text = ln_find_text,
	.filter_on_enter = 1,
};
