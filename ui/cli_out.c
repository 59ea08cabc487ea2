/*
 * cli_out.c — how the CLI writes: JSON documents, aligned tables, times,
 * and messages on stderr.  Data goes to stdout only through here; messages
 * never go to stdout.
 *
 * Every string that came from the catalogue, the core or the command line
 * reaches the terminal through one of four doors, and each one cleans it
 * with the console's own renderer (textwidth.h over core/text.h): the
 * table printer, ui_print_line, ui_note (every message, the core's error
 * messages included) and ui_json_print.  A handler never printf()s a name.
 */
#include "cli.h"
#include "textwidth.h"
#include "text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* JSON_ENSURE_ASCII has Jansson write every control character and every
 * non-ASCII character (C1, bidi, ...) as a \uXXXX escape.  DEL (0x7F) is
 * ASCII and Jansson leaves it raw; the output being pure ASCII, a 0x7F byte
 * can only stand inside a string, where \u007F means the same (upper-case
 * hex, as Jansson writes its escapes). */
static int json_out(const char *buf, size_t size, void *data)
{
	FILE *f = data;
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && buf[i] != 0x7f)
			continue;
		if (i > start && fwrite(buf + start, 1, i - start, f) != i - start)
			return -1;
		if (i < size && fputs("\\u007F", f) == EOF)
			return -1;
		start = i + 1;
	}
	return 0;
}

km_status ui_json_fprint(FILE *f, json_t *doc, km_err *e)
{
	if (!doc)
		return km_fail(e, KM_ENOMEM, "out of memory building JSON output");
	if (json_dump_callback(doc, json_out, f, JSON_INDENT(2) | JSON_ENSURE_ASCII) != 0 || fputc('\n', f) == EOF)
		return km_fail(e, KM_EIO, "writing JSON output failed");
	return KM_OK;
}

km_status ui_json_print(json_t *doc, km_err *e)
{
	km_status st = ui_json_fprint(stdout, doc, e);
	json_decref(doc);
	return st;
}

json_t *ui_json_text(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	/* Not UTF-8 (only an edited database holds such text): Jansson will
	 * not carry it, so it travels in its escaped display form. */
	char *clean = km_text_clean_alloc(s, 0);
	j = clean ? json_string(clean) : NULL;
	free(clean);
	return j;
}

void ui_json_set_text(json_t *obj, const char *key, const char *s)
{
	if (json_object_set_new(obj, key, ui_json_text(s)) == 0)
		return;
	char *clean = km_text_clean_alloc(key, 0); /* a key that is not UTF-8 */
	if (clean)
		json_object_set_new(obj, clean, ui_json_text(s));
	free(clean);
}

json_t *ui_json_time(int64_t t)
{
	if (t == 0)
		return json_null();
	char buf[32];
	km_time_format(t, buf);
	return json_string(buf);
}

const char *ui_time_str(int64_t t, char buf[32])
{
	if (t == 0) {
		strcpy(buf, "-");
		return buf;
	}
	km_time_format(t, buf);
	return buf;
}

/* Format, clean and write one line; prefix may be NULL. */
static void print_clean(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	char *clean = text ? ui_tw_display(text, 0) : NULL;
	fprintf(f, "%s%s\n", prefix ? prefix : "", clean ? clean : "(out of memory)");
	free(clean);
	free(text);
}

void ui_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	print_clean(stderr, "keyward: ", fmt, ap);
	va_end(ap);
}

void ui_print_line(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	print_clean(stdout, NULL, fmt, ap);
	va_end(ap);
}

const char *ui_clean(const char *s, char *buf, size_t cap)
{
	if (!s || !*s)
		s = "-";
	ui_tw_fit(buf, cap, s, ui_tw_width(s), 0);
	return buf;
}

/* ---------------------------------------------------------------- tables */

struct ui_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells; /* nrows * ncols, row-major; row 0 = headers */
};

ui_table *ui_table_new(size_t ncols, const char *const *headers)
{
	ui_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ncols = ncols;
	if (ui_table_add(t, headers, NULL) != KM_OK) {
		ui_table_free(t);
		return NULL;
	}
	return t;
}

km_status ui_table_add(ui_table *t, const char *const *cells, km_err *e)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		char **n = realloc(t->cells, cap * t->ncols * sizeof *n);
		if (!n)
			return km_fail(e, KM_ENOMEM, "out of memory");
		t->cells = n;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		/* Kept as given; ui_table_print cleans. */
		row[i] = strdup(cells[i] ? cells[i] : "-");
		if (!row[i]) {
			for (size_t j = 0; j < i; j++)
				free(row[j]);
			return km_fail(e, KM_ENOMEM, "out of memory");
		}
	}
	t->nrows++;
	return KM_OK;
}

void ui_table_print(ui_table *t, FILE *f)
{
	size_t *w = calloc(t->ncols, sizeof *w);
	if (!w)
		return;
	/* Widths and text are those the console would draw: no control
	 * character or escape sequence from the catalogue reaches the
	 * terminal (textwidth.h). */
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = (size_t)ui_tw_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			char *shown = ui_tw_display(s, 0);
			fputs(shown ? shown : "?", f);
			free(shown);
			if (c + 1 < t->ncols) {
				size_t pad = w[c] - (size_t)ui_tw_width(s) + 2;
				fprintf(f, "%*s", (int)pad, "");
			}
		}
		fputc('\n', f);
	}
	free(w);
}

void ui_table_free(ui_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

km_status ui_listing_emit(json_t *arr, ui_table *t, km_err *e)
{
	km_status st = KM_OK;
	if (arr)
		st = ui_json_print(arr, e); /* takes arr */
	else
		ui_table_print(t, stdout);
	ui_table_free(t);
	return st;
}
