/*
 * cli_out.c — how the CLI writes: JSON documents, aligned tables, times,
 * and messages on stderr.  Data goes to stdout only through here or the
 * handlers' own printf; messages never go to stdout.
 */
#include "cli.h"
#include "textwidth.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
		/* Sanitised as the console does: no control character or escape
		 * sequence from the catalogue reaches the terminal. */
		const char *c = cells[i] ? cells[i] : "-";
		int w = ui_tw_width(c);
		size_t cap = strlen(c) + (size_t)w + 1;
		row[i] = malloc(cap);
		if (row[i])
			ui_tw_fit(row[i], cap, c, w, 0);
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
			size_t cw = (size_t)ui_tw_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fputs(s, f);
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
