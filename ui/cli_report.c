/*
 * cli_report.c — `keyward report`: the auditor report (core/report.h) as
 * JSON, CSV or self-contained HTML, on stdout or written atomically to
 * --out (a temporary beside it, then rename: atomicfile.h).  The renderer
 * (reportfile.h) is shared with the console's report form.
 *
 * Every form is rendered from the core's document only, after redaction,
 * so no form can hold a name the document does not.
 */
#include "cli.h"
#include "html.h"
#include "reportfile.h"
#include "report.h"
#include "auditproof.h"
#include "atomicfile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The sections shown as tables, in order (JSON keeps the document as is). */
static const struct {
	const char *name, *title;
} tables[] = {
    {"keys", "Key inventory (now)"},
    {"versions", "Key versions and states"},
    {"overdue", "Keys past their cryptoperiod"},
    {"rotations", "Rotations in the period, against policy"},
    {"approvals", "Approvals: signers and verified signatures"},
    {"compromises", "Compromises"},
    {"destructions", "Destructions"},
    {"access_by_actor", "Key use and denials by actor"},
    {"access_by_key", "Key use by key"},
    {"anomalies", "Anomalies"},
    {"events_per_day", "Events per day"},
    {"controls", "Control map"},
};

/* A cell's text: scalars as they are, arrays joined by spaces, objects
 * (signers) as their values joined by '/'. */
static void cell_text(json_t *v, char *out, size_t cap)
{
	out[0] = '\0';
	size_t n = 0;
	if (json_is_string(v)) {
		snprintf(out, cap, "%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			char b[512];
			cell_text(x, b, sizeof b);
			if (n < cap)
				n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", b);
		}
	} else if (json_is_object(v)) {
		const char *k;
		json_t *x;
		int first = 1;
		json_object_foreach(v, k, x) {
			char b[512];
			cell_text(x, b, sizeof b);
			if (!*b)
				continue;
			if (n < cap)
				n += (size_t)snprintf(out + n, cap - n, "%s%s", first ? "" : "/", b);
			first = 0;
		}
	}
}

/* ------------------------------------------------------------------- CSV */

/* RFC 4180 quoting; a leading = + @ gets an apostrophe so a spreadsheet
 * never takes a cell for a formula. */
static void csv_cell(FILE *f, const char *s)
{
	int quote = strpbrk(s, ",\"\r\n") != NULL;
	if (quote)
		fputc('"', f);
	if (*s == '=' || *s == '+' || *s == '@')
		fputc('\'', f);
	for (const char *p = s; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	if (quote)
		fputc('"', f);
}

static void csv_row(FILE *f, const char *first, json_t *cells)
{
	csv_cell(f, first);
	size_t i;
	json_t *c;
	json_array_foreach(cells, i, c) {
		char b[8192];
		cell_text(c, b, sizeof b);
		fputc(',', f);
		csv_cell(f, b);
	}
	fputs("\r\n", f);
}

/* One object as "#name,field,value" header and "name,field,value" rows. */
static void csv_pairs(FILE *f, const char *name, json_t *obj)
{
	char h[64];
	snprintf(h, sizeof h, "#%s", name);
	json_t *hdr = json_pack("[s,s]", "field", "value");
	csv_row(f, h, hdr);
	json_decref(hdr);
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		json_t *row = json_pack("[s,O]", k, v);
		csv_row(f, name, row);
		json_decref(row);
	}
}

/* Sections: a header row "#section,col..." then "section,val..." rows. */
static void csv_report(FILE *f, json_t *doc)
{
	json_t *meta = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "deployment", json_object_get(doc, "deployment"),
	                         "generated", json_object_get(doc, "generated"), "generated_by",
	                         json_object_get(doc, "generated_by"), "rendered_for",
	                         json_object_get(doc, "rendered_for"), "redacted", json_object_get(doc, "redacted"),
	                         "from", json_object_get(json_object_get(doc, "period"), "from"), "to",
	                         json_object_get(json_object_get(doc, "period"), "to"));
	csv_pairs(f, "report", meta);
	json_decref(meta);
	csv_pairs(f, "summary", json_object_get(doc, "summary"));
	json_t *ver = json_deep_copy(json_object_get(doc, "verification"));
	json_t *cp = json_object_get(ver, "checkpoint");
	if (json_is_object(cp)) {
		json_object_set(ver, "checkpoint_size", json_object_get(cp, "size"));
		json_object_set(ver, "checkpoint_root_hash", json_object_get(cp, "root_hash"));
		json_object_set(ver, "checkpoint_note", json_object_get(cp, "note"));
	}
	json_object_del(ver, "checkpoint");
	csv_pairs(f, "verification", ver);
	json_decref(ver);
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		json_t *rows = json_object_get(doc, tables[t].name);
		json_t *first = json_array_get(rows, 0);
		json_t *hdr = json_array(), *cols = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(first, k, v) {
			json_array_append_new(hdr, json_string(k));
			json_array_append_new(cols, json_string(k));
		}
		char h[64];
		snprintf(h, sizeof h, "#%s", tables[t].name);
		csv_row(f, h, hdr);
		size_t i;
		json_t *row;
		json_array_foreach(rows, i, row) {
			json_t *cells = json_array();
			size_t j;
			json_t *c;
			json_array_foreach(cols, j, c)
				json_array_append(cells, json_object_get(row, json_string_value(c)) ? json_object_get(row, json_string_value(c)) : json_null());
			csv_row(f, tables[t].name, cells);
			json_decref(cells);
		}
		json_decref(hdr);
		json_decref(cols);
	}
	json_t *hdr = json_pack("[s,s,s,s,s,s]", "seq", "status", "leaf_index", "tree_size", "leaf_hash", "path");
	csv_row(f, "#proofs", hdr);
	json_decref(hdr);
	const char *seq;
	json_t *p;
	json_object_foreach(json_object_get(doc, "proofs"), seq, p) {
		json_t *cells = json_pack("[s,O,O?,O?,O?,O?]", seq, json_object_get(p, "status"),
		                          json_object_get(p, "leaf_index"), json_object_get(p, "tree_size"),
		                          json_object_get(p, "leaf_hash"), json_object_get(p, "path"));
		csv_row(f, "proofs", cells);
		json_decref(cells);
	}
}

/* ------------------------------------------------------------------ HTML */

static void html_table(FILE *f, const char *id, const char *title, json_t *rows)
{
	fprintf(f, "<h2 id=\"%s\">", id);
	ui_html_text(f, title);
	fprintf(f, " (%zu)</h2>\n", json_array_size(rows));
	if (!json_array_size(rows)) {
		fputs("<p class=\"none\">None in this report.</p>\n", f);
		return;
	}
	json_t *first = json_array_get(rows, 0);
	fprintf(f, "<table class=\"%s\"><thead><tr>", id);
	const char *k;
	json_t *v;
	json_object_foreach(first, k, v) {
		fputs("<th>", f);
		ui_html_text(f, k);
		fputs("</th>", f);
	}
	fputs("</tr></thead><tbody>\n", f);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		fputs("<tr>", f);
		json_object_foreach(first, k, v) {
			char b[8192];
			cell_text(json_object_get(row, k), b, sizeof b);
			fputs("<td>", f);
			ui_html_text(f, b);
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
}

#define CHART_W 720
#define CHART_H 160

/* Events per day as bars, the busiest day full height. */
static void svg_per_day(FILE *f, json_t *days)
{
	size_t n = json_array_size(days);
	json_int_t max = 1;
	size_t i;
	json_t *d;
	json_array_foreach(days, i, d)
		if (json_integer_value(json_object_get(d, "events")) > max)
			max = json_integer_value(json_object_get(d, "events"));
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-per-day\" width=\"%d\" height=\"%d\" "
	        "role=\"img\" aria-label=\"events per day\">\n", CHART_W, CHART_H + 30);
	double bw = n ? (double)(CHART_W - 40) / (double)n : 0;
	json_array_foreach(days, i, d) {
		json_int_t ev = json_integer_value(json_object_get(d, "events"));
		double h = (double)ev * CHART_H / (double)max;
		fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a78b5\">"
		        "<title>", 40 + bw * (double)i, (double)CHART_H - h, bw > 2 ? bw - 1 : bw, h);
		ui_html_text(f, json_string_value(json_object_get(d, "day")));
		fprintf(f, ": %" JSON_INTEGER_FORMAT " events</title></rect>\n", ev);
	}
	fprintf(f, "<text x=\"0\" y=\"12\">%" JSON_INTEGER_FORMAT "</text><text x=\"0\" y=\"%d\">0</text>\n", max,
	        CHART_H);
	if (n) {
		fprintf(f, "<text x=\"40\" y=\"%d\">", CHART_H + 20);
		ui_html_text(f, json_string_value(json_object_get(json_array_get(days, 0), "day")));
		fprintf(f, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">", CHART_W, CHART_H + 20);
		ui_html_text(f, json_string_value(json_object_get(json_array_get(days, n - 1), "day")));
		fputs("</text>\n", f);
	}
	fputs("</svg>\n", f);
}

static double when(const char *t)
{
	struct tm tm = {0};
	if (!t || !strptime(t, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (double)timegm(&tm);
}

/* Rotations on a time line, one row per key: green within the
 * cryptoperiod, red outside it. */
static void svg_rotations(FILE *f, json_t *doc)
{
	json_t *rot = json_object_get(doc, "rotations");
	json_t *period = json_object_get(doc, "period");
	double t0 = when(json_string_value(json_object_get(period, "from")));
	double t1 = when(json_string_value(json_object_get(period, "to")));
	json_t *rowof = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(rot, i, r) {
		const char *k = json_string_value(json_object_get(r, "key"));
		if (k && !json_object_get(rowof, k))
			json_object_set_new(rowof, k, json_integer((json_int_t)json_object_size(rowof)));
		double t = when(json_string_value(json_object_get(r, "time")));
		if (t0 <= 0 || t < t0)
			t0 = t;
	}
	if (t1 <= t0)
		t1 = t0 + 86400;
	size_t rows = json_object_size(rowof);
	int h = 20 * (int)(rows ? rows : 1) + 30;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-rotations\" width=\"%d\" height=\"%d\" "
	        "role=\"img\" aria-label=\"rotation timeline\">\n", CHART_W + 200, h);
	const char *k;
	json_t *v;
	json_object_foreach(rowof, k, v) {
		int y = 20 * (int)json_integer_value(v) + 15;
		fprintf(f, "<text x=\"0\" y=\"%d\">", y + 4);
		ui_html_text(f, k);
		fprintf(f, "</text><line x1=\"200\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ccc\"/>\n", y, CHART_W + 190, y);
	}
	json_array_foreach(rot, i, r) {
		const char *key = json_string_value(json_object_get(r, "key"));
		int y = 20 * (int)json_integer_value(json_object_get(rowof, key ? key : "")) + 15;
		double x = 200 + (when(json_string_value(json_object_get(r, "time"))) - t0) / (t1 - t0) * (CHART_W - 10);
		int ok = json_is_true(json_object_get(r, "within_policy"));
		fprintf(f, "<circle class=\"rotation %s\" cx=\"%.1f\" cy=\"%d\" r=\"5\" fill=\"%s\"><title>",
		        ok ? "ok" : "late", x, y, ok ? "#2e8b57" : "#c0392b");
		ui_html_text(f, key);
		fprintf(f, " v%" JSON_INTEGER_FORMAT " -> v%" JSON_INTEGER_FORMAT " at ",
		        json_integer_value(json_object_get(r, "from_version")),
		        json_integer_value(json_object_get(r, "to_version")));
		ui_html_text(f, json_string_value(json_object_get(r, "time")));
		fputs(ok ? " (within its cryptoperiod)" : " (outside its cryptoperiod)", f);
		fputs("</title></circle>\n", f);
	}
	if (!rows)
		fputs("<text x=\"0\" y=\"20\">No rotation in the period.</text>\n", f);
	fputs("</svg>\n", f);
	json_decref(rowof);
}

static void html_pairs(FILE *f, json_t *obj)
{
	fputs("<table class=\"pairs\"><tbody>\n", f);
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (json_is_object(v))
			continue;
		char b[8192];
		cell_text(v, b, sizeof b);
		fputs("<tr><th>", f);
		ui_html_text(f, k);
		fputs("</th><td>", f);
		ui_html_text(f, b);
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
}

static void html_report(FILE *f, json_t *doc)
{
	json_t *period = json_object_get(doc, "period");
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>keyward audit report ", f);
	ui_html_text(f, json_string_value(json_object_get(period, "from")));
	fputs(" to ", f);
	ui_html_text(f, json_string_value(json_object_get(period, "to")));
	fputs("</title>\n<style>\nbody{font:14px system-ui,sans-serif;margin:2em;color:#222}"
	      "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;"
	      "text-align:left;vertical-align:top}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.5em;"
	      "overflow-x:auto}svg text{font:11px monospace}.none{color:#666}.bad{color:#c0392b;font-weight:bold}"
	      ".good{color:#2e8b57;font-weight:bold}\n</style></head><body>\n<h1>keyward audit report</h1>\n<p>", f);
	fputs("Deployment <code>", f);
	ui_html_text(f, json_string_value(json_object_get(doc, "deployment")));
	fputs("</code>, period ", f);
	ui_html_text(f, json_string_value(json_object_get(period, "from")));
	fputs(" to ", f);
	ui_html_text(f, json_string_value(json_object_get(period, "to")));
	fputs(" (end excluded). Generated ", f);
	ui_html_text(f, json_string_value(json_object_get(doc, "generated")));
	fputs(" by ", f);
	ui_html_text(f, json_string_value(json_object_get(doc, "generated_by")));
	fputs(" for the role(s) ", f);
	ui_html_text(f, json_string_value(json_object_get(doc, "rendered_for")));
	fputs(json_is_true(json_object_get(doc, "redacted"))
	          ? "; <strong>redacted</strong>: people and owners appear as stable pseudonyms.</p>\n"
	          : ".</p>\n", f);
	json_t *ver = json_object_get(doc, "verification");
	int intact = json_is_true(json_object_get(ver, "intact"));
	fprintf(f, "<h2 id=\"verification\">Verification</h2>\n<p class=\"%s\">", intact ? "good" : "bad");
	fputs(intact ? "The audit log verifies: every entry, tree head and signature checked out."
	             : "The audit log does NOT verify: ", f);
	if (!intact)
		ui_html_text(f, json_string_value(json_object_get(ver, "problem")));
	fputs("</p>\n", f);
	html_pairs(f, ver);
	json_t *cp = json_object_get(ver, "checkpoint");
	if (json_is_object(cp)) {
		fputs("<p>Newest checkpoint (C2SP signed note; check it and the proofs below with "
		      "docs/verify_audit_export.py or any RFC 9162 verifier):</p>\n<pre id=\"checkpoint\">", f);
		/* Line by line: the note's newlines are its format, not text to escape. */
		const char *note = json_string_value(json_object_get(cp, "note"));
		for (const char *l = note ? note : ""; *l;) {
			size_t n = strcspn(l, "\n");
			char line[KM_AUDIT_NOTE_MAX];
			snprintf(line, sizeof line, "%.*s", (int)n, l);
			if (n)
				ui_html_text(f, line);
			fputc('\n', f);
			l += n + (l[n] == '\n');
		}
		fputs("</pre>\n", f);
	}
	fputs("<h2 id=\"summary\">Summary</h2>\n", f);
	html_pairs(f, json_object_get(doc, "summary"));
	fputs("<h2>Events per day</h2>\n", f);
	svg_per_day(f, json_object_get(doc, "events_per_day"));
	fputs("<h2>Rotation timeline</h2>\n", f);
	svg_rotations(f, doc);
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		html_table(f, tables[t].name, tables[t].title, json_object_get(doc, tables[t].name));
	fputs("<h2 id=\"proofs\">Inclusion proofs of the cited events</h2>\n<p>RFC 9162 audit paths in the "
	      "checkpoint above, hashes in hex, leaf-most first.</p>\n<table class=\"proofs\"><thead><tr><th>seq</th>"
	      "<th>status</th><th>tree_size</th><th>leaf_hash</th><th>path</th></tr></thead><tbody>\n", f);
	const char *seq;
	json_t *p;
	json_object_foreach(json_object_get(doc, "proofs"), seq, p) {
		char b[8192];
		fputs("<tr><td>", f);
		ui_html_text(f, seq);
		fputs("</td><td>", f);
		ui_html_text(f, json_string_value(json_object_get(p, "status")));
		fputs("</td><td>", f);
		cell_text(json_object_get(p, "tree_size"), b, sizeof b);
		ui_html_text(f, b);
		fputs("</td><td><code>", f);
		ui_html_text(f, json_string_value(json_object_get(p, "leaf_hash")));
		fputs("</code></td><td><code>", f);
		cell_text(json_object_get(p, "path"), b, sizeof b);
		ui_html_text(f, b);
		fputs("</code></td></tr>\n", f);
	}
	fputs("</tbody></table>\n</body></html>\n", f);
}

/* ------------------------------------------------------------------ entry */

km_status ui_report_check_format(const char *fmt, km_err *e)
{
	if (strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0 && strcmp(fmt, "html") != 0)
		return km_fail(e, KM_EUSAGE, "report: the format is json, csv or html, not \"%.40s\"", fmt);
	return KM_OK;
}

km_status ui_report_render(FILE *f, const char *fmt, json_t *doc, km_err *e)
{
	km_status st = ui_report_check_format(fmt, e);
	if (st)
		return st;
	if (strcmp(fmt, "json") == 0)
		return ui_json_fprint(f, doc, e);
	if (strcmp(fmt, "csv") == 0)
		csv_report(f, doc);
	else
		html_report(f, doc);
	if (ferror(f))
		return km_fail(e, KM_EIO, "writing the report failed");
	return KM_OK;
}

km_status ui_report_write(const char *path, const char *fmt, json_t *doc, int (*stop)(void *c), void *sc,
                          km_err *e)
{
	atomicfile af;
	km_status st = ui_report_check_format(fmt, e);
	if (st || (st = atomicfile_open(path, &af, e)))
		return st;
	int fd = dup(af.fd);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		atomicfile_abort(&af);
		return km_fail(e, KM_EIO, "cannot write the report beside %s", path);
	}
	st = ui_report_render(f, fmt, doc, e);
	if (fclose(f) != 0 && !st)
		st = km_fail(e, KM_EIO, "writing the report to %s failed", path);
	if (!st && stop && stop(sc))
		st = km_fail(e, KM_EBUSY, "report cancelled");
	if (st) {
		atomicfile_abort(&af);
		return st;
	}
	return atomicfile_commit(&af, e);
}

km_status ui_cmd_report(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_report_opts o = {0};
	const char *fmt = ui_arg(a, "format");
	if (!fmt)
		fmt = "json";
	if (strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0 && strcmp(fmt, "html") != 0)
		return km_fail(e, KM_EUSAGE, "report: --format is json, csv or html, not \"%.40s\"", fmt);
	km_status st;
	const char *from = ui_arg(a, "from"), *to = ui_arg(a, "to");
	if (from && (st = km_report_time_parse("from", from, 0, &o.from_ms, e)))
		return st;
	if (to && (st = km_report_time_parse("to", to, 1, &o.to_ms, e)))
		return st;
	o.role = ui_arg(a, "role");
	const char *out = ui_arg(a, "out");
	if (out && !*out)
		return km_fail(e, KM_EUSAGE, "report: --out needs a file name");
	json_t *doc;
	if ((st = km_report(cli->ctx, &o, &doc, e)))
		return st;
	st = out ? ui_report_write(out, fmt, doc, NULL, NULL, e) : ui_report_render(stdout, fmt, doc, e);
	json_decref(doc);
	return st;
}
