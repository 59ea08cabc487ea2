/*
 * listwin.c — keyset-paginated window of rows (see listwin.h).
 *
 * Must never: hold more than `cap` rows, or leave `sel` outside [0, n).
 */
#include "listwin.h"

#include <stdlib.h>
#include <string.h>

void ui_lw_init(ui_listwin *w, size_t elem, ui_lw_fetch_fn fetch, void *ctx)
{
	memset(w, 0, sizeof *w);
	w->elem = elem;
	w->fetch = fetch;
	w->ctx = ctx;
}

void ui_lw_free(ui_listwin *w)
{
	free(w->rows);
	free(w->scratch);
	w->rows = w->scratch = NULL;
	w->n = w->cap = w->sel = 0;
}

void *ui_lw_row(ui_listwin *w, int i)
{
	return i >= 0 && i < w->n ? w->rows + (size_t)i * w->elem : NULL;
}

void *ui_lw_selected(ui_listwin *w)
{
	return ui_lw_row(w, w->sel);
}

static void clamp(ui_listwin *w)
{
	if (w->sel >= w->n)
		w->sel = w->n - 1;
	if (w->sel < 0)
		w->sel = 0;
}

static int fetch(ui_listwin *w, const void *cursor, int backwards, int limit, int *got)
{
	*got = 0;
	if (limit <= 0)
		return 0;
	km_err_clear(&w->err);
	if (w->fetch(w->ctx, cursor, backwards, limit, w->scratch, got, &w->err) != KM_OK) {
		*got = 0;
		return -1;
	}
	return 0;
}

/* Copy a cursor row out of the window before the window is overwritten. */
static void *copy_row(ui_listwin *w, const void *row)
{
	void *c = malloc(w->elem);
	if (c)
		memcpy(c, row, w->elem);
	return c;
}

int ui_lw_from(ui_listwin *w, const void *cursor)
{
	int got;
	if (fetch(w, cursor, 0, w->cap, &got) != 0)
		return -1;
	memcpy(w->rows, w->scratch, (size_t)got * w->elem);
	w->n = got;
	w->at_start = cursor == NULL;
	clamp(w);
	return 0;
}

int ui_lw_home(ui_listwin *w)
{
	w->sel = 0;
	return ui_lw_from(w, NULL);
}

int ui_lw_end(ui_listwin *w)
{
	int got;
	if (fetch(w, NULL, 1, w->cap, &got) != 0)
		return -1;
	for (int i = 0; i < got; i++)
		memcpy(w->rows + (size_t)(got - 1 - i) * w->elem, w->scratch + (size_t)i * w->elem, w->elem);
	w->n = got;
	w->sel = got - 1;
	w->at_start = got < w->cap;
	clamp(w);
	return 0;
}

int ui_lw_reload(ui_listwin *w)
{
	if (w->n == 0 || w->at_start) {
		int sel = w->sel;
		int rc = ui_lw_from(w, NULL);
		w->sel = sel;
		clamp(w);
		return rc;
	}
	void *first = copy_row(w, w->rows);
	if (!first)
		return -1;
	int got, rc;
	if (fetch(w, first, 1, 1, &got) != 0)
		rc = -1;
	else if (got == 0)
		rc = ui_lw_from(w, NULL);
	else {
		void *prev = copy_row(w, w->scratch);
		rc = prev ? ui_lw_from(w, prev) : -1;
		free(prev);
	}
	free(first);
	return rc;
}

/* Refill a window of w->cap rows around `anchor` (a copy of the row that
 * was selected), keeping it at index `want` when the rows before it allow,
 * and filling from above when the listing ends before the window does, so
 * no row is left blank while rows exist above.  Two fetches: the rows
 * before the anchor, then the anchor's own (fresh) row and those after. */
static int refill_around(ui_listwin *w, const void *anchor, int want)
{
	int cap = w->cap;
	char *before = malloc((size_t)cap * w->elem);
	char *after = malloc((size_t)cap * w->elem);
	int rc = -1;
	if (!before || !after) {
		km_fail(&w->err, KM_ENOMEM, "out of memory for %d rows", cap);
		goto out;
	}
	int nb = 0, na = 0;
	km_err_clear(&w->err);
	/* up to cap rows before the anchor, nearest first */
	if (w->fetch(w->ctx, anchor, 1, cap, before, &nb, &w->err) != KM_OK)
		goto out;
	/* the anchor itself (it may have changed or gone) and what follows */
	const void *from = nb > 0 ? (const void *)before : NULL;
	if (w->fetch(w->ctx, from, 0, cap, after, &na, &w->err) != KM_OK)
		goto out;
	if (want > cap - 1)
		want = cap - 1;
	if (want < 0)
		want = 0;
	int keep_before = nb < want ? nb : want;
	int keep_after = na < cap - keep_before ? na : cap - keep_before;
	/* the listing ends early: take more rows from above */
	while (keep_before + keep_after < cap && keep_before < nb)
		keep_before++;
	for (int i = 0; i < keep_before; i++)
		memcpy(w->rows + (size_t)i * w->elem, before + (size_t)(keep_before - 1 - i) * w->elem,
		       w->elem);
	memcpy(w->rows + (size_t)keep_before * w->elem, after, (size_t)keep_after * w->elem);
	w->n = keep_before + keep_after;
	w->sel = keep_before;
	w->at_start = keep_before == nb && nb < cap;
	clamp(w);
	rc = 0;
out:
	free(before);
	free(after);
	return rc;
}

int ui_lw_resize(ui_listwin *w, int cap)
{
	if (cap < 1)
		cap = 1;
	if (cap == w->cap && w->rows)
		return 0;
	/* the selected row stays selected and visible, at the same place
	 * when it still fits, else on the last row */
	void *anchor = w->n > 0 ? copy_row(w, ui_lw_selected(w)) : NULL;
	int want = w->sel;
	char *r = realloc(w->rows, (size_t)cap * w->elem);
	if (r)
		w->rows = r;
	char *s = realloc(w->scratch, (size_t)cap * w->elem);
	if (s)
		w->scratch = s;
	if (!r || !s) {
		free(anchor);
		km_fail(&w->err, KM_ENOMEM, "out of memory for %d rows", cap);
		return -1;
	}
	w->cap = cap;
	if (w->n > cap)
		w->n = cap;
	clamp(w);
	if (!anchor)
		return ui_lw_reload(w);
	int rc = refill_around(w, anchor, want);
	free(anchor);
	return rc;
}

int ui_lw_down(ui_listwin *w)
{
	if (w->sel < w->n - 1) {
		w->sel++;
		return 0;
	}
	if (w->n == 0)
		return 0;
	int got;
	if (fetch(w, w->rows + (size_t)(w->n - 1) * w->elem, 0, 1, &got) != 0)
		return -1;
	if (got == 0)
		return 0;
	if (w->n == w->cap) {
		memmove(w->rows, w->rows + w->elem, (size_t)(w->n - 1) * w->elem);
		w->n--;
		w->at_start = 0;
	}
	memcpy(w->rows + (size_t)w->n * w->elem, w->scratch, w->elem);
	w->n++;
	w->sel = w->n - 1;
	return 0;
}

int ui_lw_up(ui_listwin *w)
{
	if (w->sel > 0) {
		w->sel--;
		return 0;
	}
	if (w->n == 0)
		return 0;
	int got;
	if (fetch(w, w->rows, 1, 1, &got) != 0)
		return -1;
	if (got == 0) {
		w->at_start = 1;
		return 0;
	}
	int keep = w->n == w->cap ? w->n - 1 : w->n;
	memmove(w->rows + w->elem, w->rows, (size_t)keep * w->elem);
	memcpy(w->rows, w->scratch, w->elem);
	w->n = keep + 1;
	w->sel = 0;
	return 0;
}

int ui_lw_page_down(ui_listwin *w)
{
	if (w->n == 0)
		return 0;
	int got;
	if (fetch(w, w->rows + (size_t)(w->n - 1) * w->elem, 0, w->cap, &got) != 0)
		return -1;
	if (got == 0) {
		w->sel = w->n - 1;
		return 0;
	}
	/* window = the last (cap - got) old rows, then the new ones */
	int keep = w->cap - got;
	if (keep > w->n)
		keep = w->n;
	if (keep < w->n)
		w->at_start = 0;
	memmove(w->rows, w->rows + (size_t)(w->n - keep) * w->elem, (size_t)keep * w->elem);
	memcpy(w->rows + (size_t)keep * w->elem, w->scratch, (size_t)got * w->elem);
	w->n = keep + got;
	if (got < w->cap)
		w->sel = w->n - 1;
	clamp(w);
	return 0;
}

int ui_lw_page_up(ui_listwin *w)
{
	if (w->n == 0)
		return 0;
	int got;
	if (fetch(w, w->rows, 1, w->cap, &got) != 0)
		return -1;
	if (got == 0) {
		w->sel = 0;
		w->at_start = 1;
		return 0;
	}
	if (got < w->cap)
		w->at_start = 1;
	int keep = w->cap - got;
	if (keep > w->n)
		keep = w->n;
	memmove(w->rows + (size_t)got * w->elem, w->rows, (size_t)keep * w->elem);
	for (int i = 0; i < got; i++)
		memcpy(w->rows + (size_t)(got - 1 - i) * w->elem, w->scratch + (size_t)i * w->elem, w->elem);
	w->n = keep + got;
	if (got < w->cap)
		w->sel = 0;
	clamp(w);
	return 0;
}

void ui_lw_select(ui_listwin *w, int i)
{
	w->sel = i;
	clamp(w);
}
