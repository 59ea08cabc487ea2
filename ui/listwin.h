/*
 * listwin.h — a window of rows over a keyset-paginated listing.
 *
 * The console never holds a whole table: a list keeps only the rows that
 * fit on screen, and moves by asking for the rows just after the last one
 * (or just before the first one) it has.  The source is a fetch function
 * over a cursor row, so keys (km_key_list) and audit events (km_audit_query)
 * share one implementation of moving, paging and jumping.
 *
 * Moving the selection within the window costs nothing; scrolling costs one
 * query of a few rows; a page one query of a page.
 */
#ifndef UI_LISTWIN_H
#define UI_LISTWIN_H

#include "km.h"

#include <stddef.h>

/* Fill out[] with up to `limit` rows strictly after `cursor` in display
 * order (backwards = 0; cursor NULL = from the first row), or strictly
 * before it, nearest first (backwards = 1; cursor NULL = from the last
 * row).  *got = rows written.  KM_OK or an error with its message. */
typedef km_status (*ui_lw_fetch_fn)(void *ctx, const void *cursor, int backwards, int limit,
                                    void *out, int *got, km_err *e);

typedef struct ui_listwin {
	size_t elem;        /* bytes per row */
	int cap;            /* rows that fit (the window's height) */
	int n;              /* rows held */
	int sel;            /* selected row index in [0, n), 0 when n == 0 */
	char *rows;         /* cap rows */
	char *scratch;      /* cap rows, for fetching */
	ui_lw_fetch_fn fetch;
	void *ctx;
	int at_start;       /* rows[0] is the listing's first row: a reload
	                     * then shows rows that arrived before it */
	km_err err;         /* last fetch problem (code KM_OK if none) */
} ui_listwin;

void ui_lw_init(ui_listwin *w, size_t elem, ui_lw_fetch_fn fetch, void *ctx);
void ui_lw_free(ui_listwin *w);

/* Row i of the window, or NULL. */
void *ui_lw_row(ui_listwin *w, int i);
void *ui_lw_selected(ui_listwin *w);

/* Set the window height (rows).  The selected row stays selected and
 * visible (at its place, or on the last row when the window shrank below
 * it), and rows above fill the window when the listing ends before it;
 * the rows are fetched anew.  0 / -1. */
int ui_lw_resize(ui_listwin *w, int cap);

/* Reload keeping the first row in place (data changed).  0 / -1. */
int ui_lw_reload(ui_listwin *w);

/* Fill from the start / end of the listing. */
int ui_lw_home(ui_listwin *w);
int ui_lw_end(ui_listwin *w);

/* Fill starting just after `cursor` (NULL: from the start). */
int ui_lw_from(ui_listwin *w, const void *cursor);

/* Moves: by one row, by one page.  Each returns 0, or -1 on a fetch
 * error (w->err).  At the ends they do nothing. */
int ui_lw_down(ui_listwin *w);
int ui_lw_up(ui_listwin *w);
int ui_lw_page_down(ui_listwin *w);
int ui_lw_page_up(ui_listwin *w);

/* Select row index i of the window (mouse), clamped. */
void ui_lw_select(ui_listwin *w, int i);

#endif
