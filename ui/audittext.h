/*
 * audittext.h — audit events in words, for people: what an event changed
 * in one line ("active -> compromised", "v1 -> v2", "asset credit-risk/x"),
 * and the event as indented JSON cut into lines at word boundaries.  The
 * audit screen and `audit tail` / `audit show` both use it, so a row reads
 * the same in the console and the CLI.
 *
 * Pure functions over the stored event text (no terminal, no database).
 * The text comes from the log, which a file writer can edit: callers still
 * fit and clean every string before it reaches a terminal (ui_draw_text,
 * ui_clean).  Must never: show the raw details JSON as the summary, or
 * print digests, seals and signatures there (they are in the detail).
 */
#ifndef UI_AUDITTEXT_H
#define UI_AUDITTEXT_H

#include <stddef.h>

/* One line saying what the event changed, from its details: a state or
 * version change as "old -> new", the asset's name, the reason or error
 * message, and a few particulars (roles, kind, count).  "" when the details
 * say nothing a person needs in a list.  Always NUL-terminates (cap > 0);
 * cut at cap. */
void ui_audit_summary(const char *event_json, char *buf, size_t cap);

/* The event as indented JSON (two spaces, keys sorted, UTF-8 as is), in a
 * new malloc'd string; the stored text itself when it does not parse.
 * NULL only when out of memory. */
char *ui_audit_pretty(const char *event_json);

/* Cut text (lines separated by '\n') into display lines of at most `cells`
 * cells: each line breaks at a space when it can, and its continuation is
 * indented two cells past the line's own indentation, so a long string
 * value reads as a paragraph under its key.  Calls line(ctx, text, indent)
 * per display line (text NUL-terminated, without the indentation, which is
 * `indent` cells); stops early when line returns nonzero.  Returns the
 * number of lines emitted. */
int ui_audit_wrap(const char *text, int cells,
                  int (*line)(void *ctx, const char *text, int indent), void *ctx);

#endif
