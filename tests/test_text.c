/*
 * test_text.c — core/text.c: classifying, escaping and refusing text that
 * would act on a terminal, and the tag-value check built on it (kek.c).
 *
 * Table-driven over every class: each C0 control, DEL, each C1 control
 * encoded as UTF-8, every byte 0x80..0xFF alone, each bidi control and
 * line separator, overlong forms, surrogates, code points above U+10FFFF,
 * truncated sequences; good CJK, emoji and joiner sequences must come out
 * untouched.  Unambiguity is checked by a decoder written here from the
 * documented escape syntax: decoding the escaped form gives back the input
 * bytes, for the table and for random inputs.
 */
#include "text.h"
#include "kek.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------- */

static char *clean_n(const char *in, size_t len, unsigned flags)
{
	size_t need = km_text_clean(in, len, NULL, 0, flags);
	char *out = malloc(need + 1);
	ck_assert_ptr_nonnull(out);
	size_t again = km_text_clean(in, len, out, need + 1, flags);
	ck_assert_uint_eq(again, need);
	ck_assert_uint_eq(strlen(out), need);
	ck_assert_uint_le(need + 1, KM_TEXT_CLEAN_CAP(len));
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is not the documented form */
}

static size_t utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decode the escaped form by the syntax in text.h: \\, \xHH (a byte),
 * \uHHHH and \UHHHHHHHH (a code point, as UTF-8).  Returns the length, or
 * (size_t)-1 for text that is not a well-formed escaped form (a lone
 * backslash, an unknown escape, bad hex digits). */
static size_t unescape(const char *s, char *out)
{
	size_t o = 0;
	while (*s) {
		if (*s != '\\') {
			out[o++] = *s++;
			continue;
		}
		s++;
		int digits = *s == 'x' ? 2 : *s == 'u' ? 4 : *s == 'U' ? 8 : 0;
		if (*s == '\\') {
			out[o++] = '\\';
			s++;
			continue;
		}
		if (!digits)
			return (size_t)-1;
		s++;
		uint32_t v = 0;
		for (int i = 0; i < digits; i++) {
			int h = hexval(s[i]);
			if (h < 0)
				return (size_t)-1;
			v = v << 4 | (uint32_t)h;
		}
		s += digits;
		if (digits == 2)
			out[o++] = (char)v;
		else
			o += utf8_put(v, out + o);
	}
	out[o] = '\0';
	return o;
}

/* The escaped form holds only printable units; with KM_TEXT_ASCII only
 * printable ASCII. */
static void assert_clean_output(const char *out, unsigned flags, const char *what)
{
	ck_assert_msg(km_text_is_clean(out, strlen(out)), "%s: escaped form is not clean", what);
	if (flags & KM_TEXT_ASCII)
		for (const char *p = out; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
			              "%s: byte 0x%02x in ASCII output", what, (unsigned char)*p);
}

/* ---- the table ------------------------------------------------------------ */

typedef struct text_row {
	const char *in;
	size_t len;          /* 0: strlen(in) */
	unsigned flags;
	const char *out;
	km_text_class first_bad; /* KM_TEXT_PRINTABLE: none */
} text_row;

#define ROW(in, flags, out, cls) {in, sizeof(in) - 1, flags, out, cls}

static const text_row text_rows[] = {
	/* good text is untouched */
	ROW("features/credit-risk", 0, "features/credit-risk", KM_TEXT_PRINTABLE),
	ROW("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 0, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    KM_TEXT_PRINTABLE),                                           /* 日本語 */
	ROW("\xf0\x9f\x94\x91 key", 0, "\xf0\x9f\x94\x91 key", KM_TEXT_PRINTABLE), /* 🔑 */
	ROW("\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb", 0,
	    "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb", KM_TEXT_PRINTABLE), /* 👩‍💻: ZWJ stays */
	ROW("e\xcc\x81t\xc3\xa9", 0, "e\xcc\x81t\xc3\xa9", KM_TEXT_PRINTABLE), /* combining */
	ROW("\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a", 0, "\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a",
	    KM_TEXT_PRINTABLE),                                           /* Arabic letters */
	/* the edges of the well-formed ranges are printable */
	ROW("\xc2\xa0", 0, "\xc2\xa0", KM_TEXT_PRINTABLE),                 /* U+00A0 */
	ROW("\xed\x9f\xbf", 0, "\xed\x9f\xbf", KM_TEXT_PRINTABLE),         /* U+D7FF */
	ROW("\xee\x80\x80", 0, "\xee\x80\x80", KM_TEXT_PRINTABLE),         /* U+E000 */
	ROW("\xf0\x90\x80\x80", 0, "\xf0\x90\x80\x80", KM_TEXT_PRINTABLE), /* U+10000 */
	ROW("\xf4\x8f\xbf\xbf", 0, "\xf4\x8f\xbf\xbf", KM_TEXT_PRINTABLE), /* U+10FFFF */
	/* the reviewer's findings */
	ROW("a\x1b[31mb", 0, "a\\x1b[31mb", KM_TEXT_C0),
	ROW("x\xc2\x9b" "2J", 0, "x\\u009b2J", KM_TEXT_C1),               /* CSI */
	ROW("\xc2\x9d" "0;t\x07", 0, "\\u009d0;t\\x07", KM_TEXT_C1),      /* OSC ... BEL */
	ROW("a\x9b" "b", 0, "a\\x9bb", KM_TEXT_INVALID),                  /* raw CSI byte */
	ROW("abc\xe2\x80\xae" "fdp.exe", 0, "abc\\u202efdp.exe", KM_TEXT_BIDI),
	/* TAB and LF are escaped: every field is one line */
	ROW("a\tb\nc\rd", 0, "a\\x09b\\x0ac\\x0dd", KM_TEXT_C0),
	ROW("a\x7f", 0, "a\\x7f", KM_TEXT_DEL),
	{"a\0b", 3, 0, "a\\x00b", KM_TEXT_C0},                            /* NUL inside */
	/* line separators */
	ROW("a\xe2\x80\xa8" "b\xe2\x80\xa9", 0, "a\\u2028b\\u2029", KM_TEXT_LINESEP),
	/* overlong forms: every byte on its own */
	ROW("\xc0\x80", 0, "\\xc0\\x80", KM_TEXT_INVALID),
	ROW("\xc1\xbf", 0, "\\xc1\\xbf", KM_TEXT_INVALID),
	ROW("\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf", KM_TEXT_INVALID),       /* '/' in 3 bytes */
	ROW("\xe0\x9f\xbf", 0, "\\xe0\\x9f\\xbf", KM_TEXT_INVALID),
	ROW("\xf0\x80\x80\xaf", 0, "\\xf0\\x80\\x80\\xaf", KM_TEXT_INVALID),
	ROW("\xf0\x8f\xbf\xbf", 0, "\\xf0\\x8f\\xbf\\xbf", KM_TEXT_INVALID),
	ROW("\xe0\x82\x9b", 0, "\\xe0\\x82\\x9b", KM_TEXT_INVALID),       /* CSI, overlong */
	/* surrogates */
	ROW("\xed\xa0\x80", 0, "\\xed\\xa0\\x80", KM_TEXT_INVALID),       /* U+D800 */
	ROW("\xed\xbf\xbf", 0, "\\xed\\xbf\\xbf", KM_TEXT_INVALID),       /* U+DFFF */
	/* above U+10FFFF */
	ROW("\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80", KM_TEXT_INVALID),
	ROW("\xf5\x80\x80\x80", 0, "\\xf5\\x80\\x80\\x80", KM_TEXT_INVALID),
	/* truncated sequences; decoding resumes at the next byte */
	ROW("\xe6\x97", 0, "\\xe6\\x97", KM_TEXT_INVALID),
	ROW("\xe6\x97" "A", 0, "\\xe6\\x97A", KM_TEXT_INVALID),
	ROW("\xf0\x9f\x94", 0, "\\xf0\\x9f\\x94", KM_TEXT_INVALID),
	ROW("\xc3", 0, "\\xc3", KM_TEXT_INVALID),
	ROW("\xe6\xe6\x97\xa5", 0, "\\xe6\xe6\x97\xa5", KM_TEXT_INVALID), /* then a good 日 */
	/* a sequence cut short by the length given, not by a NUL */
	{"\xe6\x97\xa5", 2, 0, "\\xe6\\x97", KM_TEXT_INVALID},
	/* the backslash rule: typed escapes never look like real ones */
	ROW("a\\b", 0, "a\\\\b", KM_TEXT_PRINTABLE),
	ROW("\\u202e", 0, "\\\\u202e", KM_TEXT_PRINTABLE),
	ROW("\\x1b", 0, "\\\\x1b", KM_TEXT_PRINTABLE),
	ROW("{\"v\":\"a\\u001b\\\\\"}", KM_TEXT_KEEP_BACKSLASH, "{\"v\":\"a\\u001b\\\\\"}",
	    KM_TEXT_PRINTABLE),
	ROW("\\\x1b", KM_TEXT_KEEP_BACKSLASH, "\\\\x1b", KM_TEXT_C0),   /* still escapes ESC */
	/* a terminal that is not UTF-8: everything non-ASCII escaped */
	ROW("\xc3\xa9t\xc3\xa9", KM_TEXT_ASCII, "\\u00e9t\\u00e9", KM_TEXT_PRINTABLE),
	ROW("\xe6\x97\xa5", KM_TEXT_ASCII, "\\u65e5", KM_TEXT_PRINTABLE),
	ROW("\xf0\x9f\x94\x91", KM_TEXT_ASCII, "\\U0001f511", KM_TEXT_PRINTABLE),
	ROW("\xf4\x8f\xbf\xbf", KM_TEXT_ASCII, "\\U0010ffff", KM_TEXT_PRINTABLE),
	ROW("\x9b\xc2\x9b", KM_TEXT_ASCII, "\\x9b\\u009b", KM_TEXT_INVALID),
};

START_TEST(test_table)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(text_rows); i++) {
		const text_row *r = &text_rows[i];
		char *out = clean_n(r->in, r->len, r->flags);
		ck_assert_msg(strcmp(out, r->out) == 0, "row %zu: \"%s\", expected \"%s\"", i, out, r->out);
		char what[32];
		snprintf(what, sizeof what, "row %zu", i);
		assert_clean_output(out, r->flags, what);
		int clean = r->first_bad == KM_TEXT_PRINTABLE;
		ck_assert_msg(km_text_is_clean(r->in, r->len) == clean, "row %zu: is_clean %d", i, !clean);
		/* the first bad unit has the class the row names */
		for (size_t at = 0; !clean && at < r->len;) {
			km_text_unit u = km_text_next(r->in + at, r->len - at);
			if (u.cls != KM_TEXT_PRINTABLE) {
				ck_assert_msg(u.cls == r->first_bad, "row %zu: class %d, expected %d", i,
				              u.cls, r->first_bad);
				break;
			}
			at += u.len;
		}
		char back[256];
		if (!(r->flags & KM_TEXT_KEEP_BACKSLASH)) {
			size_t n = unescape(out, back);
			ck_assert_msg(n == r->len && memcmp(back, r->in, n) == 0,
			              "row %zu: the escaped form does not decode to the input", i);
		}
		free(out);
	}
}
END_TEST

/* Every C0 control, DEL and every C1 control (as UTF-8), between letters. */
START_TEST(test_every_control)
{
	char in[8], want[16];
	for (unsigned b = 0; b < 0x20; b++) {
		in[0] = 'a'; /* NUL too: the length delimits */
		in[1] = (char)b;
		in[2] = 'b';
		char *out = clean_n(in, 3, 0);
		snprintf(want, sizeof want, "a\\x%02xb", b);
		ck_assert_msg(strcmp(out, want) == 0, "C0 0x%02x: \"%s\"", b, out);
		ck_assert(!km_text_is_clean(in, 3));
		free(out);
	}
	char *del = clean_n("\x7f", 1, 0);
	ck_assert_str_eq(del, "\\x7f");
	free(del);
	for (unsigned cp = 0x80; cp < 0xA0; cp++) {
		char c1[4] = {(char)0xC2, (char)cp, 'z', 0};
		char *out = clean_n(c1, 3, 0);
		snprintf(want, sizeof want, "\\u%04xz", cp);
		ck_assert_msg(strcmp(out, want) == 0, "C1 U+%04X: \"%s\"", cp, out);
		ck_assert(km_text_next(c1, 3).cls == KM_TEXT_C1);
		free(out);
	}
}
END_TEST

/* Every byte 0x80..0xFF on its own is not UTF-8 and shows as \xHH. */
START_TEST(test_every_high_byte)
{
	for (unsigned b = 0x80; b <= 0xFF; b++) {
		char in[2] = {(char)b, 0};
		char *out = clean_n(in, 1, 0);
		char want[8];
		snprintf(want, sizeof want, "\\x%02x", b);
		ck_assert_msg(strcmp(out, want) == 0, "byte 0x%02x: \"%s\"", b, out);
		free(out);
		/* and followed by ASCII, the ASCII survives */
		char in2[3] = {(char)b, 'q', 0};
		out = clean_n(in2, 2, 0);
		ck_assert_msg(strlen(out) == 5 && out[4] == 'q', "byte 0x%02x then q: \"%s\"", b, out);
		free(out);
	}
}
END_TEST

static const uint32_t bidi_controls[] = {0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C,
                                         0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069};

START_TEST(test_every_bidi)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(bidi_controls); i++) {
		char in[8] = "";
		size_t n = utf8_put(bidi_controls[i], in);
		char *out = clean_n(in, n, 0);
		char want[16];
		snprintf(want, sizeof want, "\\u%04x", bidi_controls[i]);
		ck_assert_msg(strcmp(out, want) == 0, "U+%04X: \"%s\"", bidi_controls[i], out);
		ck_assert(km_text_next(in, n).cls == KM_TEXT_BIDI);
		free(out);
	}
	/* neighbours of the ranges are ordinary characters */
	static const uint32_t near[] = {0x061B, 0x061D, 0x200D, 0x2010, 0x2027, 0x202F, 0x2065, 0x206A};
	for (size_t i = 0; i < KM_ARRAY_LEN(near); i++) {
		char in[8] = "";
		size_t n = utf8_put(near[i], in);
		ck_assert_msg(km_text_next(in, n).cls == KM_TEXT_PRINTABLE, "U+%04X", near[i]);
	}
}
END_TEST

/* The buffer form: never past cap, never half an escape, snprintf's return. */
START_TEST(test_small_buffers)
{
	const char *in = "ab\x1b" "cd";
	char out[16];
	memset(out, 'X', sizeof out);
	ck_assert_uint_eq(km_text_clean(in, strlen(in), out, 4, 0), 8);
	ck_assert_str_eq(out, "ab");            /* "\x1b" did not fit whole */
	ck_assert_int_eq(out[4], 'X');
	ck_assert_uint_eq(km_text_clean(in, strlen(in), out, 7, 0), 8);
	ck_assert_str_eq(out, "ab\\x1b");        /* then "cd" would need 9 */
	ck_assert_uint_eq(km_text_clean(in, strlen(in), out, 9, 0), 8);
	ck_assert_str_eq(out, "ab\\x1bcd");
	ck_assert_uint_eq(km_text_clean(in, strlen(in), out, 1, 0), 8);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(km_text_clean(NULL, 0, out, sizeof out, 0), 0);
	ck_assert_str_eq(out, "");
	/* nothing is written after a unit that did not fit, even a short one */
	ck_assert_uint_eq(km_text_clean("\x1bz", 2, out, 3, 0), 5);
	ck_assert_str_eq(out, "");
	char *a = km_text_clean_alloc(NULL, 0);
	ck_assert_str_eq(a, "");
	free(a);
	a = km_text_clean_alloc("k\xc2\x9b", 0);
	ck_assert_str_eq(a, "k\\u009b");
	free(a);
}
END_TEST

/* Random bytes (biased towards the interesting ones): the escaped form is
 * always clean, within KM_TEXT_CLEAN_CAP, and decodes to the input. */
START_TEST(test_random_round_trip)
{
	static const unsigned char pool[] = {0x00, 0x07, 0x09, 0x0a, 0x1b, 0x5c, 0x7f, 0x80, 0x9b,
	                                     0x9d, 0xbf, 0xc0, 0xc2, 0xc3, 0xe0, 0xe2, 0xe6, 0xed,
	                                     0xef, 0xf0, 0xf4, 0xf5, 0xff, 'a', 'u', 'x', '2'};
	unsigned seed = 12345;
	for (int iter = 0; iter < 20000; iter++) {
		char in[24], back[128];
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof in);
		for (size_t i = 0; i < len; i++)
			in[i] = (char)(rand_r(&seed) % 3 ? pool[rand_r(&seed) % (int)sizeof pool]
			                                 : rand_r(&seed) & 0xff);
		unsigned flags = iter % 2 ? KM_TEXT_ASCII : 0;
		char *out = clean_n(in, len, flags);
		assert_clean_output(out, flags, "random");
		size_t n = unescape(out, back);
		ck_assert_msg(n == len && memcmp(back, in, len) == 0, "iteration %d does not round-trip",
		              iter);
		free(out);
	}
}
END_TEST

/* ---- input checks --------------------------------------------------------- */

static const struct {
	const char *in;
	const char *msg; /* NULL: accepted */
} check_rows[] = {
	{"plain value", NULL},
	{"\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x91", NULL},
	{"back\\slash", NULL},
	{"ab\xc2\x9b", "tag value contains a control character U+009B at byte 3"},
	{"\x1b[2J", "tag value contains a control character U+001B at byte 1"},
	{"a\tb", "tag value contains a control character U+0009 at byte 2"},
	{"del\x7f", "tag value contains a control character U+007F at byte 4"},
	{"x\xe2\x80\xae", "tag value contains a bidirectional control U+202E at byte 2"},
	{"\xe2\x81\xa6x", "tag value contains a bidirectional control U+2066 at byte 1"},
	{"a\xe2\x80\xa8", "tag value contains a line separator U+2028 at byte 2"},
	{"ab\x9b", "tag value is not valid UTF-8: byte 0x9B at byte 3"},
	{"\xc0\x80", "tag value is not valid UTF-8: byte 0xC0 at byte 1"},
	{"ok\xed\xa0\x80", "tag value is not valid UTF-8: byte 0xED at byte 3"},
};

START_TEST(test_check)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(check_rows); i++) {
		km_err e;
		km_err_clear(&e);
		km_status st = km_text_check(check_rows[i].in, "tag value", &e);
		if (!check_rows[i].msg) {
			ck_assert_msg(st == KM_OK, "row %zu refused: %s", i, e.msg);
			continue;
		}
		ck_assert_msg(st == KM_EINVAL && e.code == KM_EINVAL, "row %zu accepted", i);
		ck_assert_msg(strcmp(e.msg, check_rows[i].msg) == 0, "row %zu: \"%s\"", i, e.msg);
		ck_assert_msg(km_text_is_clean(e.msg, strlen(e.msg)), "row %zu: the message is not clean", i);
	}
}
END_TEST

/* km_tag_parse (kek.c) refuses what the display would have to escape, at
 * the one place every tag value passes: CLI, console and demo alike. */
START_TEST(test_tag_values)
{
	char k[KM_TAG_KEY_MAX + 1], v[KM_TAG_VALUE_MAX + 1];
	km_err e;
	ck_assert_int_eq(km_tag_parse("owner=\xe6\x97\xa5\xe6\x9c\xac-team", k, v, &e), KM_OK);
	ck_assert_str_eq(v, "\xe6\x97\xa5\xe6\x9c\xac-team");
	ck_assert_int_eq(km_tag_parse("path=C:\\data", k, v, &e), KM_OK);
	static const struct {
		const char *kv, *msg;
	} bad[] = {
		{"owner=a\xc2\x9b" "b", "tag 'owner': the value contains a control character U+009B at byte 2"},
		{"owner=a\xc2\x9d" "b", "tag 'owner': the value contains a control character U+009D at byte 2"},
		{"owner=\x9b", "tag 'owner': the value is not valid UTF-8: byte 0x9B at byte 1"},
		{"owner=ab\xe2\x80\xae", "tag 'owner': the value contains a bidirectional control U+202E at byte 3"},
		{"owner=\x1b]2;x\x07", "tag 'owner': the value contains a control character U+001B at byte 1"},
		{"owner=a\nb", "tag 'owner': the value contains a control character U+000A at byte 2"},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(bad); i++) {
		km_err_clear(&e);
		ck_assert_msg(km_tag_parse(bad[i].kv, k, v, &e) == KM_EINVAL, "row %zu accepted", i);
		ck_assert_msg(strcmp(e.msg, bad[i].msg) == 0, "row %zu: \"%s\"", i, e.msg);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_every_control);
	tcase_add_test(tc, test_every_high_byte);
	tcase_add_test(tc, test_every_bidi);
	tcase_add_test(tc, test_small_buffers);
	tcase_add_test(tc, test_random_round_trip);
	tcase_add_test(tc, test_check);
	tcase_add_test(tc, test_tag_values);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
