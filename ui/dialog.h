/*
 * dialog.h — modal dialogs: confirmation, choice, forms, and the line
 * editor of the message line (`/` and `:`).
 *
 * Each dialog runs its own small loop over ui_read_key(), repainting the
 * console underneath (ui_paint) and itself on top, then one ui_flush().
 * Resizing while a dialog is open just repaints; below the minimum size
 * only the size message shows.  A quit signal cancels the dialog.
 */
#ifndef UI_DIALOG_H
#define UI_DIALOG_H

#include "ui.h"

/* Yes/no.  If `typed` is not NULL the user must type exactly that text
 * (the key's name, for destructive changes) and press Enter.  1 = yes. */
int ui_dialog_confirm(ui_console *c, const char *title, const char *text, const char *typed);

/* Ask for a secret (passphrase, one-time code) without showing it: one '*'
 * per character.  buf is the caller's locked buffer, cleansed on cancel.
 * 1 = entered, 0 = cancelled. */
int ui_dialog_secret(ui_console *c, const char *title, const char *question, char *buf, size_t cap);

/* Pick one of n items (Up/Down/j/k, Enter; Esc cancels).  Index or -1. */
int ui_dialog_choose(ui_console *c, const char *title, const char *text,
                     const char *const *items, int n, int initial);

typedef struct ui_field {
	const char *label;
	const char *hint;             /* dim line under the field, or NULL */
	char value[512];
	char error[KM_ERR_MSG_MAX];   /* set by the submit callback */
} ui_field;

/* Called on Enter.  Sets field errors (or *general) and returns -1 to keep
 * the form open, or 0 when done.  Errors from the core go verbatim. */
typedef int (*ui_form_submit_fn)(void *ctx, ui_field *fields, size_t n, char *general,
                                 size_t general_cap);

/* A form: Tab/Down next field, BTab/Up previous, Enter submits, Esc
 * cancels.  1 = submitted and accepted, 0 = cancelled. */
int ui_dialog_form(ui_console *c, const char *title, ui_field *fields, size_t n,
                   ui_form_submit_fn submit, void *ctx);

/* Edit buf on the message line after `prefix`.  changed (may be NULL) is
 * called after every edit (incremental filter).  1 = Enter, 0 = Esc. */
int ui_prompt(ui_console *c, const char *prefix, char *buf, size_t cap,
              void (*changed)(void *ctx, const char *text), void *ctx);

/* Complete the end of buf in place (Tab); note receives what is offered
 * when more than one thing fits ("rotate  reload"), or why nothing does. */
typedef void (*ui_complete_fn)(ui_console *c, char *buf, size_t cap, char *note, size_t notecap);

/* ui_prompt with Tab completion by `complete` (NULL: Tab does nothing). */
int ui_prompt_complete(ui_console *c, const char *prefix, char *buf, size_t cap,
                       void (*changed)(void *ctx, const char *text), void *ctx,
                       ui_complete_fn complete);

/* Line editing shared by the prompt and form fields: apply key to buf.
 * Returns 1 if buf changed, 0 if the key is not an editing key. */
int ui_edit_key(char *buf, size_t cap, int key);

#endif
