/*
 * rowsel.c — selection over an in-memory list (rowsel.h).
 */
#include "rowsel.h"

void ui_rs_fit(ui_rowsel *r, int page)
{
	if (page < 1)
		page = 1;
	if (r->sel >= r->n)
		r->sel = r->n - 1;
	if (r->sel < 0)
		r->sel = 0;
	if (r->top > r->sel)
		r->top = r->sel;
	if (r->sel >= r->top + page)
		r->top = r->sel - page + 1;
	/* no blank rows at the end while rows above are hidden */
	if (r->top > r->n - page)
		r->top = r->n - page;
	if (r->top < 0)
		r->top = 0;
}

int ui_rs_move(ui_rowsel *r, ui_action a, int page)
{
	switch (a) {
	case UI_ACT_MOVE_DOWN: r->sel++; break;
	case UI_ACT_MOVE_UP: r->sel--; break;
	case UI_ACT_PAGE_DOWN: r->sel += page; r->top += page; break;
	case UI_ACT_PAGE_UP: r->sel -= page; r->top -= page; break;
	case UI_ACT_FIRST: r->sel = 0; break;
	case UI_ACT_LAST: r->sel = r->n - 1; break;
	default: return 0;
	}
	ui_rs_fit(r, page);
	return 1;
}
