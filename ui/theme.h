/*
 * theme.h — colour themes as data.
 *
 * Every colour the console uses is one element of UI_ELEMENTS below; code
 * asks for an element, never for a colour.  A theme gives each element a
 * foreground, a background and attributes; themes are JSON files
 * (themes/NAME.json):
 *
 *   { "name": "default", "description": "...", "mono": false,
 *     "elements": { "title": {"fg": "black", "bg": "cyan", "attrs": ["bold"]}, ... } }
 *
 * Colours: "default" (the terminal's), black, red, green, yellow, blue,
 * magenta, cyan, white, bright-black … bright-white, or a number 0..255.
 * Attributes: bold, dim, underline, reverse, standout, italic.  An element a
 * file leaves out keeps its built-in value.  "mono": true means attributes
 * only (the "mono" theme; NO_COLOR selects it whatever else is asked).
 *
 * Search path for NAME.json: $KEYWARD_THEMES_DIR, then the install
 * directory UI_THEMES_DIR, then the directory beside the executable's
 * (dirname(/proc/self/exe)/../themes, so build/keyward in a checkout finds
 * themes/).  Never the current directory, and when set-user-ID (AT_SECURE)
 * only UI_THEMES_DIR: such a program must not read files its caller
 * chooses, and the variable and the executable's place are the caller's
 * to choose (a hard link).  A missing or malformed file yields a
 * message naming the file and the problem, and the default theme is used
 * instead; the built-in table below is the last resort, so the console
 * always has a theme.
 *
 * This module knows nothing about curses (the console turns styles into
 * colour pairs); it is unit-tested on its own.
 */
#ifndef UI_THEME_H
#define UI_THEME_H

#include <limits.h>
#include <stddef.h>

#ifndef UI_THEMES_DIR
#define UI_THEMES_DIR "/usr/local/share/keyward/themes"
#endif

/* Colour values in the tables below. */
#define UI_C_DEFAULT (-1)
#define UI_C_BLACK 0
#define UI_C_RED 1
#define UI_C_GREEN 2
#define UI_C_YELLOW 3
#define UI_C_BLUE 4
#define UI_C_MAGENTA 5
#define UI_C_CYAN 6
#define UI_C_WHITE 7
#define UI_C_BRIGHT(c) ((c) + 8)

/* X(attr, name) */
#define UI_ATTRS(X)                 \
	X(UI_A_BOLD, "bold")            \
	X(UI_A_DIM, "dim")              \
	X(UI_A_UNDERLINE, "underline")  \
	X(UI_A_REVERSE, "reverse")      \
	X(UI_A_STANDOUT, "standout")    \
	X(UI_A_ITALIC, "italic")

enum {
#define UI_ATTR_BIT(e, name) e##_BIT,
	UI_ATTRS(UI_ATTR_BIT)
#undef UI_ATTR_BIT
};
enum {
#define UI_ATTR_ENUM(e, name) e = 1u << e##_BIT,
	UI_ATTRS(UI_ATTR_ENUM)
#undef UI_ATTR_ENUM
};

/* X(enum, name, fg, bg, attrs, mono attrs) — the built-in default (dark)
 * theme and the built-in monochrome one.  themes/default.json and
 * themes/mono.json say the same (a unit test keeps them in step). */
#define UI_ELEMENTS(X)                                                                     \
	X(UI_EL_NORMAL,        "normal",        UI_C_DEFAULT, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_TITLE,         "title",         UI_C_BLACK, UI_C_CYAN, 0, UI_A_REVERSE) \
	X(UI_EL_TAB_ACTIVE,    "tab-active",    UI_C_BRIGHT(UI_C_WHITE), UI_C_BLUE, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_STATUS,        "status",        UI_C_WHITE, UI_C_BLUE, 0, UI_A_REVERSE) \
	X(UI_EL_STATUS_WARN,   "status-warn",   UI_C_BRIGHT(UI_C_YELLOW), UI_C_BLUE, UI_A_BOLD, UI_A_REVERSE | UI_A_BOLD) \
	X(UI_EL_STATUS_BAD,    "status-bad",    UI_C_BRIGHT(UI_C_WHITE), UI_C_RED, UI_A_BOLD, UI_A_REVERSE | UI_A_BOLD | UI_A_UNDERLINE) \
	X(UI_EL_HEADER,        "header",        UI_C_CYAN, UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD | UI_A_UNDERLINE) \
	X(UI_EL_SELECTED,      "selected",      UI_C_BLACK, UI_C_CYAN, 0, UI_A_REVERSE) \
	X(UI_EL_SELECTED_IDLE, "selected-idle", UI_C_DEFAULT, UI_C_BRIGHT(UI_C_BLACK), 0, UI_A_UNDERLINE) \
	X(UI_EL_BORDER,        "border",        UI_C_BLUE, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_SECTION,       "section",       UI_C_YELLOW, UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_DIM,           "dim",           UI_C_BRIGHT(UI_C_BLACK), UI_C_DEFAULT, 0, UI_A_DIM) \
	X(UI_EL_MESSAGE,       "message",       UI_C_GREEN, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_ERROR,         "error",         UI_C_BRIGHT(UI_C_RED), UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_PROMPT,        "prompt",        UI_C_DEFAULT, UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_DIALOG,        "dialog",        UI_C_WHITE, UI_C_BLACK, 0, 0) \
	X(UI_EL_DIALOG_TITLE,  "dialog-title",  UI_C_BRIGHT(UI_C_YELLOW), UI_C_BLACK, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_FIELD,         "field",         UI_C_BLACK, UI_C_WHITE, 0, UI_A_UNDERLINE) \
	X(UI_EL_FIELD_FOCUS,   "field-focus",   UI_C_BLACK, UI_C_CYAN, 0, UI_A_REVERSE) \
	X(UI_EL_FIELD_ERROR,   "field-error",   UI_C_BRIGHT(UI_C_RED), UI_C_BLACK, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_HELP_KEY,      "help-key",      UI_C_YELLOW, UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_PROGRESS_DONE, "progress-done", UI_C_GREEN, UI_C_DEFAULT, 0, UI_A_REVERSE) \
	X(UI_EL_PROGRESS_TODO, "progress-todo", UI_C_BRIGHT(UI_C_BLACK), UI_C_DEFAULT, 0, 0) \
	X(UI_EL_OK,            "ok",            UI_C_BRIGHT(UI_C_GREEN), UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_BAD,           "bad",           UI_C_BRIGHT(UI_C_RED), UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD | UI_A_REVERSE) \
	X(UI_EL_HASH,          "hash",          UI_C_MAGENTA, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_FILTER,        "filter",        UI_C_YELLOW, UI_C_DEFAULT, 0, UI_A_UNDERLINE) \
	X(UI_EL_STATE_PENDING, "state.pending", UI_C_CYAN, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_STATE_ACTIVE,  "state.active",  UI_C_BRIGHT(UI_C_GREEN), UI_C_DEFAULT, UI_A_BOLD, UI_A_BOLD) \
	X(UI_EL_STATE_DECRYPT_ONLY, "state.decrypt-only", UI_C_YELLOW, UI_C_DEFAULT, 0, 0) \
	X(UI_EL_STATE_RETIRED, "state.retired", UI_C_BRIGHT(UI_C_BLACK), UI_C_DEFAULT, 0, UI_A_DIM) \
	X(UI_EL_STATE_DESTROY_SCHEDULED, "state.destroy-scheduled", UI_C_MAGENTA, UI_C_DEFAULT, UI_A_BOLD, UI_A_UNDERLINE) \
	X(UI_EL_STATE_DESTROYED, "state.destroyed", UI_C_RED, UI_C_DEFAULT, 0, UI_A_DIM | UI_A_UNDERLINE) \
	X(UI_EL_STATE_COMPROMISED, "state.compromised", UI_C_BRIGHT(UI_C_WHITE), UI_C_RED, UI_A_BOLD, UI_A_REVERSE | UI_A_BOLD)

typedef enum ui_element {
#define UI_EL_ENUM(e, name, fg, bg, a, m) e,
	UI_ELEMENTS(UI_EL_ENUM)
#undef UI_EL_ENUM
	UI_EL_COUNT
} ui_element;

typedef struct ui_style {
	short fg, bg;     /* UI_C_DEFAULT or 0..255 */
	unsigned attrs;   /* UI_A_* */
} ui_style;

typedef struct ui_theme {
	char name[64];
	char path[PATH_MAX];   /* file it came from, "" for built-in */
	int mono;              /* attributes only, no colour */
	ui_style el[UI_EL_COUNT];
} ui_theme;

/* The built-in default (mono = 0) or monochrome (mono = 1) theme. */
void ui_theme_builtin(ui_theme *t, int mono);

/* Parse theme JSON over the built-in values.  origin names the file in
 * messages.  Returns 0, or -1 with msg = "ORIGIN: what is wrong" and *t
 * untouched. */
int ui_theme_parse(ui_theme *t, const char *text, const char *origin, char *msg, size_t cap);

/* The search path above, for a process that is (secure = 1) or is not
 * set-user-ID: env_dir is $KEYWARD_THEMES_DIR (NULL or "" = unset),
 * exe_path the executable's path (NULL = unknown).  Fills dirs[0..n) and
 * returns n (at most UI_THEME_DIRS_MAX). */
#define UI_THEME_DIRS_MAX 3
size_t ui_theme_dirs(int secure, const char *env_dir, const char *exe_path,
                     char dirs[UI_THEME_DIRS_MAX][PATH_MAX]);

/* Find NAME.json on this process's search path; 0 and the path, or -1
 * (msg says where it looked, or that the name is not a valid theme
 * name). */
int ui_theme_find(const char *name, char *path, size_t cap, char *msg, size_t msgcap);

/* Pick and load the theme: NO_COLOR (set and non-empty in the
 * environment) means "mono"; else `name` (NULL or "" = "default").  Never
 * fails: on a problem *t is the default theme (or the built-in one) and
 * msg says what happened ("using the default theme: FILE:
 * problem").  Returns 0 if the asked-for theme loaded, -1 if it fell back. */
int ui_theme_load(ui_theme *t, const char *name, char *msg, size_t cap);

const char *ui_theme_element_name(ui_element e);
/* Element by name, or -1. */
int ui_theme_element_by_name(const char *name);

#endif
