/*
 * textwidth.c — display width, clipping and sanitising of text.
 *
 * Must never: write past `cap`, split a multibyte character or an escape,
 * or emit a unit that core/text.h escapes.
 */
#include "textwidth.h"
#include "text.h"

#include <langinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

#ifndef __STDC_ISO_10646__
#error "wcwidth() is called with Unicode code points: wchar_t must be ISO 10646"
#endif

/* One unit of text as it will be drawn: its byte length in the input, its
 * width, and, when it is not drawn as its own bytes, the escape drawn in
 * its place (core/text.h: the one definition of what is escaped). */
typedef struct tw_char {
	size_t len;
	int width;
	size_t esclen; /* 0: the bytes themselves */
	char esc[KM_TEXT_ESC_MAX];
} tw_char;

/* km_text flags for the current locale and the UI_TW_* flags. */
static unsigned tw_text_flags(unsigned flags)
{
	return (ui_tw_locale_is_utf8() ? 0u : (unsigned)KM_TEXT_ASCII) |
	       ((flags & UI_TW_JSON) ? (unsigned)KM_TEXT_KEEP_BACKSLASH : 0u);
}

static tw_char tw_next(const char *s, size_t avail, unsigned textflags)
{
	tw_char c = {.len = 1, .width = 1};
	/* Most text: printable ASCII other than '\\' is never escaped (text.h). */
	if (*s >= 0x20 && *s < 0x7f && *s != '\\')
		return c;
	km_text_unit u = km_text_next(s, avail);
	c.len = u.len;
	c.esclen = km_text_escape(&u, textflags, c.esc);
	if (c.esclen == 0 && u.cp >= 0x80) {
		int w = wcwidth((wchar_t)u.cp);
		if (w < 0) /* the locale has no width for it: show its number */
			c.esclen = km_text_escape(&u, textflags | KM_TEXT_ASCII, c.esc);
		else
			c.width = w;
	}
	if (c.esclen)
		c.width = (int)c.esclen;
	return c;
}

/* Width of s as drawn with the given km_text flags. */
static int tw_width(const char *s, unsigned textflags)
{
	int w = 0;
	size_t left = strlen(s);
	while (left > 0) {
		tw_char c = tw_next(s, left, textflags);
		w += c.width;
		s += c.len;
		left -= c.len;
	}
	return w;
}

int ui_tw_width(const char *s)
{
	return tw_width(s, tw_text_flags(0));
}

static size_t tw_clip(const char *s, int cells, int *used, unsigned textflags)
{
	size_t off = 0, left = strlen(s);
	int w = 0;
	while (left > 0) {
		tw_char c = tw_next(s + off, left, textflags);
		if (w + c.width > cells)
			break;
		w += c.width;
		off += c.len;
		left -= c.len;
	}
	if (used)
		*used = w;
	return off;
}

size_t ui_tw_clip(const char *s, int cells, int *used)
{
	return tw_clip(s, cells, used, tw_text_flags(0));
}

/* Append n bytes if they fit with the NUL. */
static int tw_put(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
	if (*o + n + 1 > cap)
		return 0;
	memcpy(out + *o, p, n);
	*o += n;
	out[*o] = '\0';
	return 1;
}

static int tw_spaces(char *out, size_t cap, size_t *o, int n)
{
	int done = 0;
	while (done < n && tw_put(out, cap, o, " ", 1))
		done++;
	return done;
}

int ui_tw_fit(char *out, size_t cap, const char *s, int cells, unsigned flags)
{
	if (cap == 0)
		return 0;
	out[0] = '\0';
	if (cells <= 0 || !s)
		s = "";
	if (cells < 0)
		cells = 0;
	unsigned tf = tw_text_flags(flags);
	int total = tw_width(s, tf);
	int budget = cells;
	const char *ell = NULL;
	int cut = total > cells;
	if (cut && (flags & UI_TW_ELLIPSIS) && cells >= 1) {
		ell = ui_tw_glyphs(ui_tw_locale_is_utf8())->ellipsis;
		budget = cells - 1;
	}
	int shown = total;
	if (cut)
		tw_clip(s, budget, &shown, tf);
	size_t o = 0;
	int written = 0;
	int pad = (flags & (UI_TW_PAD | UI_TW_RIGHT)) ? cells - shown - (ell ? 1 : 0) : 0;
	if ((flags & UI_TW_RIGHT) && pad > 0) {
		written += tw_spaces(out, cap, &o, pad);
		pad = 0;
	}
	size_t left = strlen(s);
	int w = 0;
	while (left > 0) {
		tw_char c = tw_next(s, left, tf);
		if (w + c.width > budget)
			break;
		int ok = c.esclen ? tw_put(out, cap, &o, c.esc, c.esclen) : tw_put(out, cap, &o, s, c.len);
		if (!ok)
			break;
		w += c.width;
		s += c.len;
		left -= c.len;
	}
	written += w;
	if (ell && tw_put(out, cap, &o, ell, strlen(ell)))
		written += 1;
	if (pad > 0)
		written += tw_spaces(out, cap, &o, cells - written);
	return written;
}

char *ui_tw_display(const char *s, unsigned flags)
{
	if (!s)
		s = "";
	size_t left = strlen(s);
	char *out = malloc(KM_TEXT_CLEAN_CAP(left)); /* an escape is at most 4 bytes per byte */
	if (!out)
		return NULL;
	unsigned tf = tw_text_flags(flags);
	size_t o = 0;
	while (left > 0) {
		tw_char c = tw_next(s, left, tf);
		memcpy(out + o, c.esclen ? c.esc : s, c.esclen ? c.esclen : c.len);
		o += c.esclen ? c.esclen : c.len;
		s += c.len;
		left -= c.len;
	}
	out[o] = '\0';
	return out;
}

int ui_tw_locale_is_utf8(void)
{
	const char *cs = nl_langinfo(CODESET);
	return cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0);
}

static const ui_glyphs glyphs_utf8 = {
	.hline = "\xe2\x94\x80", .vline = "\xe2\x94\x82",
	.tl = "\xe2\x94\x8c", .tr = "\xe2\x94\x90", .bl = "\xe2\x94\x94", .br = "\xe2\x94\x98",
	.tee_down = "\xe2\x94\xac", .tee_up = "\xe2\x94\xb4",
	.ellipsis = "\xe2\x80\xa6",
	.bar_full = "\xe2\x96\x88", .bar_empty = "\xe2\x96\x91",
	.ok = "\xe2\x9c\x93", .bad = "\xe2\x9c\x97",
	.sort_asc = "\xe2\x96\xb2", .sort_desc = "\xe2\x96\xbc",
};

static const ui_glyphs glyphs_ascii = {
	.hline = "-", .vline = "|",
	.tl = "+", .tr = "+", .bl = "+", .br = "+",
	.tee_down = "+", .tee_up = "+",
	.ellipsis = "~",
	.bar_full = "#", .bar_empty = ".",
	.ok = "+", .bad = "!",
	.sort_asc = "^", .sort_desc = "v",
};

const ui_glyphs *ui_tw_glyphs(int utf8)
{
	return utf8 ? &glyphs_utf8 : &glyphs_ascii;
}

size_t ui_tw_wrap(const char *s, int cells, size_t *next)
{
	size_t left = strlen(s), off = 0, last_space = 0;
	int w = 0, have_space = 0;
	unsigned tf = tw_text_flags(0);
	while (left > 0) {
		tw_char c = tw_next(s + off, left, tf);
		if (s[off] == '\n') {
			*next = off + 1;
			return off;
		}
		if (w + c.width > cells && off > 0)
			break;
		if (s[off] == ' ') {
			last_space = off;
			have_space = 1;
		}
		w += c.width;
		off += c.len;
		left -= c.len;
	}
	if (left == 0) {
		*next = off;
		return off;
	}
	if (s[off] == ' ') { /* the line ends exactly at a space */
		*next = off + 1;
		return off;
	}
	if (have_space && last_space > 0) {
		*next = last_space + 1;
		return last_space;
	}
	*next = off;
	return off;
}

void ui_tw_format(char *buf, size_t cap, const char *fmt, ...)
{
	if (cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}
