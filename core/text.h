/*
 * text.h — what of a stored or typed string may reach a terminal as it is.
 *
 * Names, tag values, asset fields, actors and audit text come from the
 * catalogue, and anyone who can write the SQLite file can put any bytes in
 * them.  A terminal acts on some of those bytes: ESC and the C1 controls
 * (U+009B is CSI, U+009D is OSC) start escape sequences that can move the
 * cursor, rewrite what is on screen or set the window title; the bidi
 * controls reorder what is shown; bytes that are not UTF-8 are C1 controls
 * to an 8-bit terminal.  This module classifies text, renders it in a form
 * that only ever contains printable characters, and refuses it at input.
 *
 * Classes (one table in text.c):
 *   C0       U+0000..U+001F, TAB and LF included: every display field here
 *            is one line, and a line break in a cell is a forgery of layout
 *   DEL      U+007F
 *   C1       U+0080..U+009F, correctly encoded as UTF-8 (C2 80..C2 9F)
 *   bidi     U+202A..U+202E (embeddings, overrides), U+2066..U+2069
 *            (isolates), and the invisible marks U+200E, U+200F and U+061C:
 *            a mark reorders neighbouring punctuation as well as an override
 *            does, and no name needs one
 *   linesep  U+2028, U+2029: line breaks by another name
 *   invalid  a byte that does not begin a well-formed UTF-8 sequence
 *            (Unicode Table 3-7): stray continuation bytes such as a lone
 *            0x9B, overlong forms (C0 80, E0 80 80), surrogates (ED A0 80),
 *            code points above U+10FFFF, and truncated sequences.  Decoding
 *            resumes at the next byte, so each bad byte shows on its own.
 * Everything else is printable here; joiners (U+200C, U+200D) stay, since
 * emoji sequences need them.  Whether the terminal can draw a printable
 * character is the front end's question (wcwidth), not this module's.
 *
 * Escaped form (visible, and one text never renders like another):
 *   \xHH        one byte as stored: a C0 control, DEL, or an invalid byte
 *   \uHHHH      a code point that was correctly encoded: C1, bidi, linesep
 *               (and, with KM_TEXT_ASCII, any non-ASCII character;
 *               \UHHHHHHHH above U+FFFF)
 *   \\          a backslash.  Without this, the six typed characters
 *               "\u202e" would show exactly like a planted U+202E; with it,
 *               a single backslash on screen always begins an escape.
 * Hex digits are lower case.  The escaped form is at most 4 bytes per input
 * byte (KM_TEXT_CLEAN_CAP).
 *
 * Pure: no locale, no terminal, no allocation except km_text_clean_alloc.
 */
#ifndef KM_TEXT_H
#define KM_TEXT_H

#include "km.h"

#include <stdint.h>

typedef enum km_text_class {
	KM_TEXT_PRINTABLE = 0,
	KM_TEXT_C0,
	KM_TEXT_DEL,
	KM_TEXT_C1,
	KM_TEXT_BIDI,
	KM_TEXT_LINESEP,
	KM_TEXT_INVALID,
	KM_TEXT_CLASS_COUNT
} km_text_class;

/* One unit of text: a decoded character, or one byte that is not UTF-8. */
typedef struct km_text_unit {
	km_text_class cls;
	uint32_t cp;  /* the code point; for KM_TEXT_INVALID, the byte */
	size_t len;   /* bytes it occupies, >= 1 */
} km_text_unit;

/* Decode the unit at s; avail >= 1 is how many bytes of s may be read (a
 * sequence cut short by avail is invalid).  A NUL byte is a C0 unit. */
km_text_unit km_text_next(const char *s, size_t avail);

/* "control character", "bidirectional control", ... for messages. */
const char *km_text_class_name(km_text_class c);

enum {
	/* Also escape every non-ASCII character, for a terminal whose
	 * character set is not UTF-8: there, UTF-8 continuation bytes
	 * 0x80..0x9F are themselves C1 controls. */
	KM_TEXT_ASCII = 1u << 0,
	/* The text is JSON, whose own escapes are already unambiguous (a
	 * backslash in valid JSON always begins an escape): keep backslashes
	 * single so the text reads as the JSON it is. */
	KM_TEXT_KEEP_BACKSLASH = 1u << 1,
};

/* Longest escape of one unit ("\U0010ffff") plus its NUL. */
#define KM_TEXT_ESC_MAX 11

/* The escaped form of u into out (NUL-terminated); returns its length, or
 * 0 when u is shown as the bytes it is. */
size_t km_text_escape(const km_text_unit *u, unsigned flags, char out[KM_TEXT_ESC_MAX]);

/* Bytes that always hold the escaped form of len input bytes, with NUL. */
#define KM_TEXT_CLEAN_CAP(len) (4 * (len) + 1)

/* Write the escaped form of in[0..len) to out, as much as fits in cap with
 * its NUL (an escape is never cut in two; out is always terminated when
 * cap > 0).  Returns the length of the whole escaped form, as snprintf
 * does: the output was complete iff the result < cap.  in may hold NULs;
 * in may be NULL when len is 0. */
size_t km_text_clean(const char *in, size_t len, char *out, size_t cap, unsigned flags);

/* The escaped form of the C string s in a new malloc'd string ("" for
 * NULL); NULL only when out of memory.  The caller frees it. */
char *km_text_clean_alloc(const char *s, unsigned flags);

/* 1 if s[0..len) has no unit that would be escaped (backslashes aside). */
int km_text_is_clean(const char *s, size_t len);

/* Input check for text that will be stored and shown later: KM_OK, or
 * KM_EINVAL with a message naming `what`, the offending character and its
 * byte position (1-based), e.g. "tag 'owner': the value contains a control
 * character U+009B at byte 3".  The message never repeats the text. */
km_status km_text_check(const char *s, const char *what, km_err *e);

#endif
