/*
 * rowsel.h — selection and scrolling over a short list held in memory
 * (the schedule, the approvals inbox, the running operations): unlike the
 * key and audit listings (listwin.h) these are bounded by what needs a
 * person's attention, so a screen loads them whole and moves over them.
 *
 * Must never: leave sel outside [0, n) (0 when n == 0), or top so that the
 * selected row is out of the window.
 */
#ifndef UI_ROWSEL_H
#define UI_ROWSEL_H

#include "actions.h"

typedef struct ui_rowsel {
	int n;    /* rows */
	int sel;  /* selected row */
	int top;  /* first row shown */
} ui_rowsel;

/* A movement action (move, page, first, last) over a window of `page`
 * rows: 1 if it was one, 0 if the action is not a movement. */
int ui_rs_move(ui_rowsel *r, ui_action a, int page);

/* Clamp after n changed, and scroll so the selection is in a window of
 * `page` rows. */
void ui_rs_fit(ui_rowsel *r, int page);

#endif
