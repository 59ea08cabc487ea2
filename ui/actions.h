/*
 * actions.h — the one table of console actions, and of `:` commands.
 *
 * Every keystroke the console understands is an action in UI_ACTIONS: its
 * name (used in config.json to rebind it), its default keys, the screens it
 * applies to, a help line, and the function that handles it.  From this one
 * table come the action enum, the keymap, the `?` help overlay and
 * docs/keys.md (`keyward help keys` prints ui_actions_markdown()).  Adding an
 * action is one row here and its handler.
 *
 * Handlers named `ui_act_view` are the current screen's: the console passes
 * the action to the view's handle() (struct ui_view_ops, views.h).
 *
 * Key names: a single character ("j", "G", ":", "é"), "^X" or "C-x" for
 * control keys, "Up", "Down", "Left", "Right", "PgUp", "PgDn", "Home",
 * "End", "Enter", "Tab", "BTab" (shift-tab), "Esc", "Space", "Backspace",
 * "Delete", "Insert", "F1".."F12".
 *
 * Rebinding (config.json): "keys": {"rotate-key": "R", "move-down": ["j", "n"]}
 * — the listed keys replace the action's defaults and are taken away from
 * any other action that had them.
 *
 * This module knows nothing of the console's state; it is unit-tested.
 */
#ifndef UI_ACTIONS_H
#define UI_ACTIONS_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

/* X(enum, name, default keys, screens, hint, help, handler).  hint: the
 * word the hint line shows beside the action's key on the screens it
 * applies to ("" for none): the hint line is generated from this column. */
#define UI_ACTIONS(X)                                                                          \
	X(UI_ACT_HELP, "help", "? F1", "all", "help", "Show this help: every action and its keys", ui_act_help) \
	X(UI_ACT_QUIT, "quit", "q", "all", "",                                                 \
	  "Go back: close the help, the detail pane or the filter; on the first screen, leave",   \
	  ui_act_quit)                                                                             \
	X(UI_ACT_QUIT_NOW, "quit-now", "Q", "all", "", "Leave the console at once", ui_act_quit)   \
	X(UI_ACT_NEXT_SCREEN, "next-screen", "Tab", "all", "", "Switch to the next screen", ui_act_screen) \
	X(UI_ACT_PREV_SCREEN, "prev-screen", "BTab", "all", "", "Switch to the previous screen", ui_act_screen) \
	X(UI_ACT_GOTO_SCREEN, "goto-screen", "1 2 3 4 5 6 7 8 9", "all", "",                       \
	  "Switch to the screen with that number in the title bar", ui_act_screen)                 \
	X(UI_ACT_COMMAND, "command", ":", "all", "command",                                        \
	  "Command line: run a command (:rotate NAME, :state NAME V STATE, ...); Tab completes",   \
	  ui_act_command)                                                                          \
	X(UI_ACT_FILTER, "filter", "/", "all", "filter",                                           \
	  "Filter the current list: a word matches key names, field:value a field (tag:value on keys, " \
	  "actor:NAME on audit, ...); Enter keeps it, Esc restores the previous one, q clears it", \
	  ui_act_filter)                                                                           \
	X(UI_ACT_RELOAD, "reload", "^R", "all", "", "Reload the data from the deployment", ui_act_reload) \
	X(UI_ACT_REDRAW, "redraw", "^L", "all", "", "Repaint the whole terminal", ui_act_redraw)    \
	X(UI_ACT_MOVE_DOWN, "move-down", "j Down", "all", "", "Move the selection down", ui_act_view) \
	X(UI_ACT_MOVE_UP, "move-up", "k Up", "all", "", "Move the selection up", ui_act_view)       \
	X(UI_ACT_PAGE_DOWN, "page-down", "PgDn ^F", "all", "", "Move down one page", ui_act_view)  \
	X(UI_ACT_PAGE_UP, "page-up", "PgUp ^B", "all", "", "Move up one page", ui_act_view)        \
	X(UI_ACT_FIRST, "first", "g Home", "all", "", "Go to the first row", ui_act_view)          \
	X(UI_ACT_LAST, "last", "G End", "all", "", "Go to the last row", ui_act_view)              \
	X(UI_ACT_PANE_LEFT, "focus-list", "h Left", "all", "", "Move the focus to the list", ui_act_view) \
	X(UI_ACT_PANE_RIGHT, "focus-detail", "l Right", "all", "",                                 \
	  "Move the focus to the detail pane (opening it); there j/k scroll it", ui_act_view)      \
	X(UI_ACT_ENTER, "toggle-detail", "Enter", "all", "detail",                                 \
	  "Open or close the detail pane of the selected row", ui_act_view)                        \
	X(UI_ACT_SORT_NEXT, "sort-next", "s", "keys", "sort", "Sort by the next column", ui_act_view) \
	X(UI_ACT_SORT_REVERSE, "sort-reverse", "S", "keys", "", "Reverse the sort order", ui_act_view) \
	X(UI_ACT_ATTENTION, "attention-only", "!", "keys", "attention",                            \
	  "Show only the keys that need attention (overdue, compromised, near the usage bound, ...) " \
	  "or all keys again", ui_act_view)                                                        \
	X(UI_ACT_KEY_CREATE, "create-key", "c", "keys", "create",                                  \
	  "Create a key (form: name, tags; the core validates)", ui_act_view)                      \
	X(UI_ACT_KEY_TAGS, "edit-tags", "t", "keys", "tags", "Edit the selected key's tags", ui_act_view) \
	X(UI_ACT_KEY_ROTATE, "rotate-key", "r", "keys schedule", "rotate",                         \
	  "Request a rotation of the selected key (approved by others, then executed)", ui_act_view) \
	X(UI_ACT_KEY_STATE, "change-state", "x", "keys", "state",                                  \
	  "Request a state change of the selected version (only legal ones; compromise acts at once)", ui_act_view) \
	X(UI_ACT_AUDIT_FILTER, "audit-filter", "f", "audit", "filter form",                        \
	  "Filter events by key, actor, action, outcome and time range (form)", ui_act_view)       \
	X(UI_ACT_AUDIT_VERIFY, "verify", "V", "audit", "verify",                                   \
	  "Verify the whole audit log (runs in the background with progress)", ui_act_view)       \
	X(UI_ACT_AUDIT_SESSIONS, "audit-sessions", "L", "audit", "logins",                         \
	  "Show or hide session (login) events, which are hidden at first", ui_act_view)         \
	X(UI_ACT_AUDIT_REPORT, "report", "R", "audit", "report",                                   \
	  "Start an auditor report (form: period, format, role, file); it runs in the background " \
	  "with its phase and percent shown", ui_act_view)                                         \
	X(UI_ACT_CANCEL, "cancel", "Esc", "all", "",                                               \
	  "Cancel the running report (no file is left behind)", ui_act_cancel)                     \
	X(UI_ACT_REQ_APPROVE, "approve-request", "a", "inbox", "approve",                          \
	  "Approve the selected request: sign its digest with your key (passphrase, + TOTP)",     \
	  ui_act_view)                                                                             \
	X(UI_ACT_REQ_REJECT, "reject-request", "d", "inbox", "reject",                             \
	  "Reject (deny) the selected request, with a reason; one rejection vetoes it", ui_act_view) \
	X(UI_ACT_REQ_HISTORY, "request-history", "H", "inbox", "history",                          \
	  "Switch between the requests you may sign now and the history of decided requests",     \
	  ui_act_view)                                                                             \
	X(UI_ACT_JOB_PAUSE, "pause-job", "p", "jobs", "pause",                                     \
	  "Pause the selected job after its batch in flight (it keeps its cursor)", ui_act_view)   \
	X(UI_ACT_JOB_RESUME, "resume-job", "u", "jobs", "resume",                                  \
	  "Run or resume the selected job in the background, with progress", ui_act_view)          \
	X(UI_ACT_JOB_CANCEL, "cancel-job", "X", "jobs", "cancel",                                  \
	  "Cancel the selected queued or paused job (asks first)", ui_act_view)                    \
	X(UI_ACT_LINEAGE_UPSTREAM, "lineage-flip", "w", "lineage", "up/down",                     \
	  "Upstream from the selected model (what went into it), or back downstream from the key", \
	  ui_act_view)                                                                             \
	X(UI_ACT_LINEAGE_KEY, "lineage-key", "K", "lineage", "key",                               \
	  "Go to the key version that protects the selected node (keys screen, version selected)", \
	  ui_act_view)                                                                             \
	X(UI_ACT_LINEAGE_ASSET, "lineage-asset", "A", "lineage", "asset",                         \
	  "Go to the selected node's catalogue asset: its key with the version that protects it, " \
	  "and the asset's record on the message line", ui_act_view)                               \
	X(UI_ACT_LINEAGE_EVENTS, "lineage-events", "E", "lineage", "events",                      \
	  "The audit screen filtered to the selected node's key version (or to the lineage imports " \
	  "that built a node no key protects)", ui_act_view)                                       \
	X(UI_ACT_IMPACT, "impact", "i", "keys inbox", "impact",                                   \
	  "The lineage screen's impact view: everything downstream of the selected key version "  \
	  "(keys screen; the version picked in the detail pane, else the current one) or of the " \
	  "request's key version (approvals screen)", ui_act_view)

typedef enum ui_action {
#define UI_ACT_ENUM(e, name, keys, screens, hint, help, fn) e,
	UI_ACTIONS(UI_ACT_ENUM)
#undef UI_ACT_ENUM
	UI_ACT_COUNT
} ui_action;

/* X(name, arguments, help, handler) — the `:` command line.  Arguments
 * are split at spaces; "double quotes" keep spaces. */
#define UI_COMMANDS(X)                                                                      \
	X("create", "NEW-NAME [k=v ...]", "Create a key with version 1 active and these tags", ui_colon_create) \
	X("tag", "NAME k=v ...", "Set tags on a key (k= removes tag k)", ui_colon_tag)            \
	X("rotate", "NAME", "Request a rotation of a key (asks for confirmation)", ui_colon_rotate)              \
	X("state", "NAME VERSION STATE",                                                        \
	  "Request a state change of a version (destructive ones ask you to type the name)", ui_colon_state) \
	X("verify", "", "Verify the whole audit log (on the audit screen)", ui_colon_verify)      \
	X("report", "", "Start an auditor report (form; progress on the audit screen)", ui_colon_report) \
	X("filter", "[TEXT]", "Set the current screen's filter (no TEXT: clear it)", ui_colon_filter) \
	X("sort", "COLUMN [asc|desc]", "Sort the current screen by a column", ui_colon_sort)      \
	X("screen", "SCREEN", "Switch to a screen by name (keys, audit, schedule, inbox, jobs, lineage, anomalies)", ui_colon_screen)          \
	X("theme", "NAME", "Switch the colour theme (default, light, high-contrast, mono)", ui_colon_theme) \
	X("lineage", "KEY[@VERSION] or MODEL@VERSION up",                                       \
	  "Show the lineage tree downstream of a key (version) or upstream of a model", ui_colon_lineage) \
	X("asof", "DATE or now", "Show the lineage as it was at DATE", ui_colon_asof)                \
	X("help", "", "Show the help overlay", ui_colon_help)                                     \
	X("quit", "", "Leave the console", ui_colon_quit)

typedef struct ui_action_info {
	const char *name;
	const char *keys;     /* default keys, space-separated names */
	const char *screens;  /* "all" or screen names */
	const char *hint;     /* the hint line's word, or "" */
	const char *help;
} ui_action_info;

typedef struct ui_command_info {
	const char *name, *args, *help;
} ui_command_info;

const ui_action_info *ui_action_get(ui_action a);
/* 1 if action a applies on the screen named `screen` ("all" or listed). */
int ui_action_on_screen(ui_action a, const char *screen);
/* Action by name, or -1. */
int ui_action_by_name(const char *name);
const ui_command_info *ui_command_get(size_t i, size_t *count);

/* ---- keys ----------------------------------------------------------- */

/* A key code: a character's code point, or UI_KEY_FN(curses KEY_*) for a
 * function key, so the two ranges never collide. */
#define UI_KEY_FN(k) (0x1000000 | (k))
#define UI_KEY_ENTER '\n'

/* Parse a key name (see above); 0 or -1. */
int ui_key_parse(const char *name, int *key);
/* Name of a key code, as ui_key_parse reads it. */
void ui_key_format(int key, char *buf, size_t cap);
/* Fold the several codes terminals send for one key ('\r', KEY_ENTER). */
int ui_key_normalize(int key);

#define UI_KEYMAP_MAX 256

typedef struct ui_keymap {
	size_t n;
	struct ui_binding { int key; ui_action action; } b[UI_KEYMAP_MAX];
} ui_keymap;

/* The default keymap, from the table. */
void ui_keymap_default(ui_keymap *km);

/* Apply a rebinding object (km_config.keys; NULL = nothing).  All or
 * nothing: on an unknown action, a bad key name or a wrong type, *km is
 * unchanged and msg says which entry and what is wrong.  Returns 0 / -1. */
int ui_keymap_rebind(ui_keymap *km, const json_t *keys, char *msg, size_t cap);

/* Action bound to key, or -1. */
int ui_keymap_lookup(const ui_keymap *km, int key);

/* The keys bound to an action, as "j, Down" (for the help overlay). */
void ui_keymap_keys(const ui_keymap *km, ui_action a, char *buf, size_t cap);

/* docs/keys.md: every action with its default keys, and every command. */
void ui_actions_markdown(FILE *f);

#endif
