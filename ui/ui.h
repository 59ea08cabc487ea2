/*
 * ui.h — what screens (views) and dialogs may use of the console.
 *
 * The console (console.c) owns the terminal, the event loop, the keymap,
 * the theme, the status bar and the message line.  A screen is a struct
 * ui_view_ops registered in views.h; it draws into the rectangle it is
 * given, handles the actions the console passes on, and reloads its data
 * only when it is marked stale (recalc) — a repaint alone never queries the
 * deployment.
 *
 * Drawing: every string goes through ui_draw_text(), which fits it to its
 * cell by display width; nothing calls mvaddstr with unmeasured text.
 * Painting happens into curses' virtual screen; the console calls
 * doupdate() once per frame, so there is no flicker.
 */
#ifndef UI_UI_H
#define UI_UI_H

#define NCURSES_WIDECHAR 1
#include <ncurses.h>

#include "keyward.h"
#include "keystate.h"
#include "actions.h"
#include "theme.h"
#include "textwidth.h"

typedef struct ui_console ui_console;
typedef struct ui_view ui_view;

typedef struct ui_rect {
	int y, x, h, w;
} ui_rect;

struct ui_view_ops {
	const char *name;    /* "keys": :screen NAME */
	const char *title;   /* "Keys": the title bar tab */
	const char *short_title; /* "Ops": the tab when the full titles do not
	                          * fit the width (NULL: title) */
	const char *help;    /* a paragraph for the help overlay */
	size_t state_size;   /* bytes of per-view state, allocated zeroed */
	/* Called once after the state is allocated (may be NULL). */
	void (*open)(ui_view *v);
	/* Free what the view allocated (may be NULL). */
	void (*close)(ui_view *v);
	/* Recalc: fetch what is visible.  Called before draw when v->stale. */
	void (*reload)(ui_view *v);
	/* Repaint into area from the data already loaded. */
	void (*draw)(ui_view *v, ui_rect area);
	/* Handle an action; 1 if handled (the console repaints), 0 if the
	 * action means nothing here. */
	int (*handle)(ui_view *v, ui_action a);
	/* Set the filter; NULL if none.  Called per keystroke when
	 * filter_on_enter is 0 (incremental), else once on Enter. */
	void (*filter)(ui_view *v, const char *text);
	int filter_on_enter;
	/* Optional: the incremental filter was kept (Enter) or restored (Esc);
	 * work too slow for every keystroke (counting matches) goes here. */
	void (*filter_settled)(ui_view *v);
	/* The filter in force, for the prompt's initial text and Esc. */
	const char *(*filter_text)(ui_view *v);
	/* :sort COLUMN [asc|desc]; 0, or -1 having set the message. */
	int (*sort)(ui_view *v, const char *column, int descending);
	/* Mouse click at screen coordinates inside the last drawn area. */
	void (*click)(ui_view *v, int y, int x);
	/* Called about ten times a second for background work; sets
	 * ui_dirty() when there is something new to show.  May be NULL. */
	void (*tick)(ui_view *v);
	/* Height the view last wanted for one page of rows (listing). */
};

struct ui_view {
	const struct ui_view_ops *ops;
	ui_console *c;
	void *st;       /* state_size bytes */
	int stale;      /* reload before the next draw */
	ui_rect area;   /* where it was drawn last */
};

/* ---- the session ---------------------------------------------------- */
km_ctx *ui_ctx(ui_console *c);
const km_actor *ui_actor(ui_console *c);

/* Something changed on screen: repaint on the next frame. */
void ui_dirty(ui_console *c);
/* The deployment changed (we changed it): every view reloads when next
 * shown, and the status bar is refreshed. */
void ui_changed(ui_console *c);

/* Message line.  ui_error() shows the core's message verbatim. */
void ui_message(ui_console *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ui_error(ui_console *c, const km_err *e);
void ui_error_text(ui_console *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Screens. */
ui_view *ui_view_find(ui_console *c, const char *name);
ui_view *ui_view_current(ui_console *c);
/* Screen i in title-bar order, or NULL past the last. */
ui_view *ui_view_nth(ui_console *c, int i);
void ui_view_show(ui_console *c, ui_view *v);

/* Jumps between screens (each defined by the screen it shows). */
/* The keys screen with key `name` selected and its detail pane open, the
 * version picked in the pane (0: none picked). */
void ui_goto_key(ui_console *c, const char *name, uint32_t version);
/* The audit screen with this filter (the `/` syntax: key:NAME, action:..). */
void ui_goto_audit(ui_console *c, const char *filter);
/* The lineage screen's impact view: downstream of key `key` at `version`
 * (0: every version). */
void ui_goto_impact(ui_console *c, const char *key, uint32_t version);

/* The keys in force (after config.json's rebinding), for hints. */
const ui_keymap *ui_keymap_get(ui_console *c);

/* ---- drawing -------------------------------------------------------- */
attr_t ui_attr(ui_console *c, ui_element el);
ui_element ui_state_element(km_key_state s);
const ui_glyphs *ui_glyph(ui_console *c);

/* Draw s at (y, x) fitted to w cells (UI_TW_* flags), in element el. */
void ui_draw_text(ui_console *c, int y, int x, int w, ui_element el, unsigned flags,
                  const char *s);
/* Draw s word-wrapped to w cells from row y, on rows before `bottom`; the
 * last row that fits ends in an ellipsis if text is left.  Returns the row
 * after the last one drawn. */
int ui_draw_wrapped(ui_console *c, int y, int bottom, int x, int w, ui_element el, const char *s);
/* Draw text of several lines in rect a from row y, each cut by
 * ui_audit_wrap (continuations indented under their line), in UI_EL_NORMAL
 * with flags; stops at a's bottom.  Returns the row after the last drawn. */
int ui_draw_paragraphs(ui_console *c, ui_rect a, int y, unsigned flags, const char *text);
void ui_draw_fill(ui_console *c, int y, int x, int w, ui_element el);
void ui_draw_hline(ui_console *c, int y, int x, int w, ui_element el);
void ui_draw_box(ui_console *c, ui_rect r, ui_element frame, ui_element fill, const char *title);
/* A progress bar of w cells, frac (0..1) of it done. */
void ui_draw_bar(ui_console *c, int y, int x, int w, double frac);

/* Repaint everything (views, bars) into the virtual screen without
 * flushing; dialogs call it, then draw themselves, then ui_flush(). */
void ui_paint(ui_console *c);
void ui_flush(ui_console *c);
/* 1 when the terminal is below the minimum size (dialogs draw nothing). */
int ui_too_small(ui_console *c);
void ui_size(ui_console *c, int *rows, int *cols);

/* Wait up to 100 ms for a key: 1 and *key (normalized, UI_KEY_FN for
 * function keys), or 0 (timeout, resize, mouse: ticks have run; repaint
 * if ui_needs_paint()). */
int ui_read_key(ui_console *c, int *key);
int ui_needs_paint(ui_console *c);
/* Show a line being edited on the message row (prefix NULL: stop). */
/* A dim note beside the line being edited (completions); cleared by
 * ui_prompt_show. */
void ui_prompt_note(ui_console *c, const char *note);
/* The hint line of the current screen (what the message row shows when
 * there is no message), whole hints that fit in `width` cells. */
void ui_hints_format(ui_console *c, char *buf, size_t cap, int width);
void ui_prompt_show(ui_console *c, const char *prefix, const char *text);

/* KEYWARD_CONSOLE_TIMING: record how long a keystroke took (from t0 to
 * now, after the frame was flushed).  No-op when timing is off. */
struct timespec;
void ui_timing_key(int key, const struct timespec *t0);

/* ---- formatting ------------------------------------------------------ */
/* "45s", "12m", "5h", "3d", "7mo", "2y"; "-" for t == 0. */
void ui_fmt_age(int64_t t, int64_t now, char buf[16]);
/* A count in at most 6 cells: "999999", "1.2M", "3.4G". */
void ui_fmt_count(uint64_t n, char buf[16]);
/* "2025-11-23 12:45:13" (UTC); "-" for 0. */
void ui_fmt_time(int64_t t, char buf[32]);

/* ---- operations shared by screens and the command line (commands.c) -- */
void ui_op_rotate(ui_console *c, const char *name, int ask);
/* Offers only km_state_targets(from); destructive targets need the name
 * typed.  to < 0: choose in a dialog. */
void ui_op_set_state(ui_console *c, const char *name, uint32_t version, km_key_state from,
                     int to);
void ui_op_create(ui_console *c, const char *name, const char *tags);
void ui_op_edit_tags(ui_console *c, const char *name);
/* Run a `:` command line. */
void ui_op_command(ui_console *c, const char *line);
/* Tab on the `:` line: complete a command name, or the argument the
 * command's table row names there (NAME: a key, SCREEN, STATE, COLUMN). */
void ui_op_complete(ui_console *c, char *buf, size_t cap, char *note, size_t notecap);

/* ---- handlers named in the tables (actions.h) ------------------------ */
#define UI_ACT_DECL(e, name, keys, screens, hint, help, fn) void fn(ui_console *c, ui_action a, int key);
UI_ACTIONS(UI_ACT_DECL)
#undef UI_ACT_DECL
#define UI_CMD_DECL(name, args, help, fn) void fn(ui_console *c, int argc, char **argv);
UI_COMMANDS(UI_CMD_DECL)
#undef UI_CMD_DECL

#endif
