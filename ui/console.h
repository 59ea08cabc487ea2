/*
 * console.h — the ncurses console: `keyward` with no arguments, and
 * `keyward console [--theme NAME]`.
 *
 * The caller opens the session (km_open: configuration, catalogue, HSM
 * login) before calling, and closes it afterwards; the console never opens
 * or closes the session, never exits the process, and restores the
 * terminal on every path out.
 */
#ifndef UI_CONSOLE_H
#define UI_CONSOLE_H

#include "keyward.h"

#include <stdio.h>

/* Run the console until the user quits.  theme_opt: --theme NAME or NULL
 * (then KEYWARD_THEME, then the config's "theme", then "default"; NO_COLOR
 * means "mono" whatever is asked).  Returns a process exit code: 0, or
 * non-zero if the terminal could not be used (message on stderr). */
int ui_console_run(km_ctx *ctx, const char *theme_opt);

/* The key reference (docs/keys.md): every action of the table, its default
 * keys and help, and the `:` commands.  For `keyward help keys`. */
void ui_console_keys_markdown(FILE *f);

#endif
