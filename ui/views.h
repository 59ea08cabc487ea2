/*
 * views.h — the registry of screens, in title-bar order (number keys).
 *
 * Adding a screen is one entry here and one view_NAME.c defining
 * `const struct ui_view_ops ui_view_NAME`.  Nothing else names screens.
 */
#ifndef UI_VIEWS_H
#define UI_VIEWS_H

#include "ui.h"

#define UI_VIEWS(X) \
	X(keys)         \
	X(audit)        \
	X(schedule)     \
	X(inbox)        \
	X(jobs)         \
	X(lineage)      \
	X(anomalies)

#define UI_VIEW_EXTERN(n) extern const struct ui_view_ops ui_view_##n;
UI_VIEWS(UI_VIEW_EXTERN)
#undef UI_VIEW_EXTERN

enum {
#define UI_VIEW_ENUM(n) UI_VIEW_##n,
	UI_VIEWS(UI_VIEW_ENUM)
#undef UI_VIEW_ENUM
	UI_VIEW_COUNT
};

#endif
