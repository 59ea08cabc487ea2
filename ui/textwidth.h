/*
 * textwidth.h — measuring and clipping text by display width.
 *
 * The console never hands a string to curses without first fitting it to
 * the cells it may occupy: curses wraps past the right edge and a wide
 * (CJK, emoji) character counts two cells, so bytes and characters are both
 * the wrong measure.  Widths come from mbrtowc + wcwidth in the current
 * locale (the console calls setlocale(LC_ALL, "")).
 *
 * Measuring and fitting also sanitise, so that nothing the database holds
 * can move the cursor or change the terminal's state: every unit that
 * core/text.h escapes (C0 and C1 controls, DEL, bidi controls, bytes that
 * are not UTF-8, and the backslash itself) is drawn as its escape ("\x1b",
 * "\u202e", "\\"), and so is a character the locale gives no width
 * (wcwidth < 0).  Widths count the escape's cells, and an escape is never
 * cut in two.  In a locale whose character set is not UTF-8 every
 * non-ASCII character is escaped (KM_TEXT_ASCII).  Text is taken as UTF-8
 * whatever the locale: the catalogue stores UTF-8.
 *
 * This module knows nothing about curses; it is unit-tested on its own.
 */
#ifndef UI_TEXTWIDTH_H
#define UI_TEXTWIDTH_H

#include <stddef.h>

/* Display cells of UTF-8 s, as ui_tw_fit draws it (escapes included). */
int ui_tw_width(const char *s);

/* Bytes of the longest prefix of s that fits in `cells` display cells,
 * never splitting a character; *used (may be NULL) receives its width. */
size_t ui_tw_clip(const char *s, int cells, int *used);

enum {
	UI_TW_ELLIPSIS = 1u << 0, /* mark a cut with the ellipsis glyph */
	UI_TW_PAD      = 1u << 1, /* pad with spaces to exactly `cells` */
	UI_TW_RIGHT    = 1u << 2, /* right-align (implies padding on the left) */
	UI_TW_JSON     = 1u << 3, /* s is JSON text: backslashes stay single
	                             (KM_TEXT_KEEP_BACKSLASH) */
};

/* Write s into out (NUL-terminated, at most cap bytes), sanitised and
 * fitted to `cells` display cells according to flags.  Returns the width
 * written.  `cells` <= 0 writes "". */
int ui_tw_fit(char *out, size_t cap, const char *s, int cells, unsigned flags);

/* The whole of s as ui_tw_fit would draw it, without fitting, in a new
 * malloc'd string (flags: UI_TW_JSON only); "" for NULL; NULL only when out
 * of memory.  For output that is not cut to a width (the CLI). */
char *ui_tw_display(const char *s, unsigned flags);

/* 1 if the locale's character set is UTF-8 (box drawing and the ellipsis
 * may then use Unicode), else 0. */
int ui_tw_locale_is_utf8(void);

/* Glyphs for frames and marks: Unicode when the locale is UTF-8, plain
 * ASCII otherwise.  Each is one display cell wide. */
typedef struct ui_glyphs {
	const char *hline, *vline;
	const char *tl, *tr, *bl, *br;  /* corners */
	const char *tee_down, *tee_up;  /* ┬ ┴ */
	const char *ellipsis;
	const char *bar_full, *bar_empty;
	const char *ok, *bad;
	const char *sort_asc, *sort_desc;
} ui_glyphs;

const ui_glyphs *ui_tw_glyphs(int utf8);

/* snprintf where truncation is expected and harmless (text that is then
 * fitted to a cell anyway).  Always NUL-terminates when cap > 0. */
void ui_tw_format(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Word wrap: the number of bytes of s that form its next line of at most
 * `cells` cells (broken after a space when there is one, else mid-word;
 * at least one character so a caller always advances).  *next receives the
 * offset where the following line starts (past the space it broke at). */
size_t ui_tw_wrap(const char *s, int cells, size_t *next);

#endif
