/*
 * cli_out.c — how the CLI writes: JSON documents, aligned tables, times,
 * and messages on stderr.  Data goes to stdout only through here or the
 * handlers' own printf; messages never go to stdout.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

km_status ui_json_print(json_t *doc, km_err *e)
{
	if (!doc)
		return km_fail(e, KM_ENOMEM, "out of memory building JSON output");
	int rc = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(doc);
	if (rc != 0)
		return km_fail(e, KM_EIO, "writing JSON to stdout failed");
	fputc('\n', stdout);
	return KM_OK;
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

void ui_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("keyward: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---------------------------------------------------------------- tables */

struct ui_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells; /* nrows * ncols, row-major; row 0 = headers */
};

size_t ui_text_width(const char *s)
{
	mbstate_t ps;
	memset(&ps, 0, sizeof ps);
	size_t w = 0;
	const char *p = s;
	size_t left = strlen(s);
	while (left > 0) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, p, left, &ps);
		if (n == (size_t)-1 || n == (size_t)-2) {
			/* Not valid in this locale: count the byte. */
			memset(&ps, 0, sizeof ps);
			w++;
			p++;
			left--;
			continue;
		}
		if (n == 0)
			break;
		int cw = wcwidth(wc);
		w += cw > 0 ? (size_t)cw : 0;
		p += n;
		left -= n;
	}
	return w;
}

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
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = ui_text_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fputs(s, f);
			if (c + 1 < t->ncols) {
				size_t pad = w[c] - ui_text_width(s) + 2;
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
