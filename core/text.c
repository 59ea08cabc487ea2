/*
 * text.c — classifying, escaping and checking text (see text.h).
 *
 * Must never: let a byte of class other than printable through unescaped,
 * read past `avail`/`len`, write past `cap`, or cut an escape in two.
 */
#include "text.h"

#include <stdlib.h>
#include <string.h>

/* Well-formed UTF-8 (Unicode Table 3-7): for each lead byte range, the
 * sequence length and the range its second byte must be in (the later
 * bytes are always 80..BF).  The narrowed second-byte ranges are what
 * exclude overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
static const struct {
	unsigned char lead_lo, lead_hi;
	size_t len;
	unsigned char next_lo, next_hi;
} utf8_forms[] = {
	{0xC2, 0xDF, 2, 0x80, 0xBF},
	{0xE0, 0xE0, 3, 0xA0, 0xBF},
	{0xE1, 0xEC, 3, 0x80, 0xBF},
	{0xED, 0xED, 3, 0x80, 0x9F},
	{0xEE, 0xEF, 3, 0x80, 0xBF},
	{0xF0, 0xF0, 4, 0x90, 0xBF},
	{0xF1, 0xF3, 4, 0x80, 0xBF},
	{0xF4, 0xF4, 4, 0x80, 0x8F},
};

/* Code points that are not shown as they are; everything else decoded is
 * printable. */
static const struct {
	uint32_t lo, hi;
	km_text_class cls;
} text_ranges[] = {
	{0x0000, 0x001F, KM_TEXT_C0},
	{0x007F, 0x007F, KM_TEXT_DEL},
	{0x0080, 0x009F, KM_TEXT_C1},
	{0x061C, 0x061C, KM_TEXT_BIDI},    /* ARABIC LETTER MARK */
	{0x200E, 0x200F, KM_TEXT_BIDI},    /* LRM, RLM */
	{0x2028, 0x2029, KM_TEXT_LINESEP}, /* LINE / PARAGRAPH SEPARATOR */
	{0x202A, 0x202E, KM_TEXT_BIDI},    /* LRE, RLE, PDF, LRO, RLO */
	{0x2066, 0x2069, KM_TEXT_BIDI},    /* LRI, RLI, FSI, PDI */
};

static const char *const text_class_names[KM_TEXT_CLASS_COUNT] = {
	[KM_TEXT_PRINTABLE] = "printable character",
	[KM_TEXT_C0] = "control character",
	[KM_TEXT_DEL] = "control character",
	[KM_TEXT_C1] = "control character",
	[KM_TEXT_BIDI] = "bidirectional control",
	[KM_TEXT_LINESEP] = "line separator",
	[KM_TEXT_INVALID] = "byte that is not UTF-8",
};

const char *km_text_class_name(km_text_class c)
{
	return (unsigned)c < KM_TEXT_CLASS_COUNT ? text_class_names[c] : "character";
}

static km_text_class text_classify(uint32_t cp)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(text_ranges); i++)
		if (cp >= text_ranges[i].lo && cp <= text_ranges[i].hi)
			return text_ranges[i].cls;
	return KM_TEXT_PRINTABLE;
}

km_text_unit km_text_next(const char *s, size_t avail)
{
	const unsigned char *p = (const unsigned char *)s;
	km_text_unit u = {KM_TEXT_INVALID, p[0], 1};
	if (p[0] < 0x80) {
		u.cls = p[0] >= 0x20 && p[0] < 0x7f ? KM_TEXT_PRINTABLE : text_classify(p[0]);
		return u;
	}
	for (size_t i = 0; i < KM_ARRAY_LEN(utf8_forms); i++) {
		if (p[0] < utf8_forms[i].lead_lo || p[0] > utf8_forms[i].lead_hi)
			continue;
		size_t n = utf8_forms[i].len;
		if (avail < 2 || p[1] < utf8_forms[i].next_lo || p[1] > utf8_forms[i].next_hi)
			return u;
		uint32_t cp = p[0] & (0x7Fu >> n);
		for (size_t k = 1; k < n; k++) {
			if (k >= avail || (p[k] & 0xC0) != 0x80)
				return u;
			cp = (cp << 6) | (p[k] & 0x3Fu);
		}
		u.cls = text_classify(cp);
		u.cp = cp;
		u.len = n;
		return u;
	}
	return u; /* 80..C1 or F5..FF: never a lead byte */
}

static const char hex_digits[] = "0123456789abcdef";

/* out = prefix followed by `digits` hex digits of v; returns the length. */
static size_t text_hex(char *out, const char *prefix, uint32_t v, int digits)
{
	size_t n = strlen(prefix);
	memcpy(out, prefix, n);
	for (int i = digits - 1; i >= 0; i--)
		out[n++] = hex_digits[(v >> (4 * i)) & 0xF];
	out[n] = '\0';
	return n;
}

size_t km_text_escape(const km_text_unit *u, unsigned flags, char out[KM_TEXT_ESC_MAX])
{
	out[0] = '\0';
	switch (u->cls) {
	case KM_TEXT_C0:
	case KM_TEXT_DEL:
	case KM_TEXT_INVALID:
		return text_hex(out, "\\x", u->cp, 2); /* a byte as stored */
	case KM_TEXT_PRINTABLE:
		if (u->cp == '\\' && !(flags & KM_TEXT_KEEP_BACKSLASH)) {
			memcpy(out, "\\\\", 3);
			return 2;
		}
		if (u->cp < 0x80 || !(flags & KM_TEXT_ASCII))
			return 0;
		break;
	default: /* C1, bidi, linesep: a character that was well encoded */
		break;
	}
	return u->cp > 0xFFFF ? text_hex(out, "\\U", u->cp, 8) : text_hex(out, "\\u", u->cp, 4);
}

size_t km_text_clean(const char *in, size_t len, char *out, size_t cap, unsigned flags)
{
	size_t need = 0, o = 0;
	int full = 0; /* once something did not fit, nothing after it is written */
	if (cap > 0)
		out[0] = '\0';
	for (size_t i = 0; i < len;) {
		km_text_unit u = km_text_next(in + i, len - i);
		char esc[KM_TEXT_ESC_MAX];
		size_t n = km_text_escape(&u, flags, esc);
		const char *src = n ? esc : in + i;
		if (!n)
			n = u.len;
		need += n;
		if (!full && o + n < cap) {
			memcpy(out + o, src, n);
			o += n;
			out[o] = '\0';
		} else {
			full = 1;
		}
		i += u.len;
	}
	return need;
}

char *km_text_clean_alloc(const char *s, unsigned flags)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	size_t need = km_text_clean(s, len, NULL, 0, flags);
	char *out = malloc(need + 1);
	if (out)
		km_text_clean(s, len, out, need + 1, flags);
	return out;
}

/* Offset of the first unit that is not printable, or len; *bad gets it. */
static size_t text_first_bad(const char *s, size_t len, km_text_unit *bad)
{
	size_t i = 0;
	while (i < len) {
		km_text_unit u = km_text_next(s + i, len - i);
		if (u.cls != KM_TEXT_PRINTABLE) {
			*bad = u;
			return i;
		}
		i += u.len;
	}
	return len;
}

int km_text_is_clean(const char *s, size_t len)
{
	km_text_unit bad;
	return !s || text_first_bad(s, len, &bad) == len;
}

km_status km_text_check(const char *s, const char *what, km_err *e)
{
	if (!s)
		return KM_OK;
	size_t len = strlen(s);
	km_text_unit bad;
	size_t at = text_first_bad(s, len, &bad);
	if (at == len)
		return KM_OK;
	if (bad.cls == KM_TEXT_INVALID)
		return km_fail(e, KM_EINVAL, "%s is not valid UTF-8: byte 0x%02X at byte %zu", what,
		               (unsigned)bad.cp, at + 1);
	return km_fail(e, KM_EINVAL, "%s contains a %s U+%04X at byte %zu", what,
	               km_text_class_name(bad.cls), (unsigned)bad.cp, at + 1);
}
