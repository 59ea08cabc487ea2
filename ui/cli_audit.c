/*
 * cli_audit.c — `keyward audit verify|tail|show|pubkey`, and the audit-event
 * reading that `key show` shares.
 *
 * Every read goes through auditlog.h (authorised); verification is the
 * core's, this file only words the result.  A failed verification prints
 * the first bad sequence number on stdout and exits 5 (integrity-failure).
 */
#include "cli.h"
#include "auditlog.h"
#include "textwidth.h"
#include "audittext.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- rows */

json_t *ui_audit_row_json(const audit_row *r)
{
	json_t *ev = json_loads(r->json, 0, NULL);
	if (!ev) /* stored text that does not parse: show it as it is */
		ev = json_pack("{s:I,s:o}", "seq", (json_int_t)r->seq, "unparsed", ui_json_text(r->json));
	return ev;
}

void ui_audit_row_print(const audit_row *r, FILE *f)
{
	char summary[512];
	ui_audit_summary(r->json, summary, sizeof summary);
	/* The fields are decoded from JSON: a tampered row could hold escape
	 * sequences, so they are cleaned before they reach a terminal. */
	char t[64], actor[128], action[128], outcome[32], object[512], what[512];
	fprintf(f, "%8" PRIu64 "  %s  %-12s %-14s %-7s %s%s%s\n", r->seq,
	        ui_clean(r->time, t, sizeof t), ui_clean(r->actor, actor, sizeof actor),
	        ui_clean(r->action, action, sizeof action),
	        ui_clean(r->outcome, outcome, sizeof outcome),
	        ui_clean(r->object, object, sizeof object), summary[0] ? "  " : "",
	        ui_clean(summary, what, sizeof what));
}

/* ---------------------------------------------------------------- collecting */

/* Is this event about key `key`?  Key events name "key:NAME" or
 * "key:NAME@VERSION"; a prefix query alone would also match "key:NAME2". */
static int row_about_key(const audit_row *r, const char *key)
{
	if (!r->object || strncmp(r->object, "key:", 4) != 0)
		return 0;
	size_t n = strlen(key);
	const char *o = r->object + 4;
	return strncmp(o, key, n) == 0 && (o[n] == '\0' || o[n] == '@');
}

typedef struct collect {
	const char *key;
	audit_row *rows;
	size_t n, want;
	uint64_t last_seq;
	size_t seen;
	km_status st;
	km_err *e;
} collect;

static int collect_cb(void *c, const audit_row *r)
{
	collect *k = c;
	k->last_seq = r->seq;
	k->seen++;
	if (k->key && !row_about_key(r, k->key))
		return 0;
	k->st = audit_row_copy(r, &k->rows[k->n], k->e);
	if (k->st != KM_OK)
		return 1;
	k->n++;
	return k->n >= k->want;
}

#define AUDIT_PAGE 500

km_status ui_audit_collect(km_ctx *ctx, const audit_filter *f0, const char *key, size_t want,
                           audit_row **rows, size_t *nrows, km_err *e)
{
	*rows = NULL;
	*nrows = 0;
	if (want == 0)
		return KM_OK;
	audit_filter f = *f0;
	char prefix[KM_ERR_MSG_MAX];
	if (key) {
		snprintf(prefix, sizeof prefix, "key:%s", key);
		f.object_prefix = prefix;
	}
	collect k = {.key = key, .want = want, .e = e};
	k.rows = calloc(want, sizeof *k.rows);
	if (!k.rows)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = KM_OK;
	for (;;) {
		size_t seen = k.seen;
		size_t left = want - k.n;
		int page = left < AUDIT_PAGE && !key ? (int)left : AUDIT_PAGE;
		st = km_audit_query(ctx, &f, k.last_seq, page, collect_cb, &k, e);
		if (st == KM_OK)
			st = k.st;
		if (st != KM_OK || k.n >= want || k.seen - seen < (size_t)page || k.last_seq <= 1)
			break;
	}
	if (st != KM_OK) {
		for (size_t i = 0; i < k.n; i++)
			audit_row_free(&k.rows[i]);
		free(k.rows);
		return st;
	}
	*rows = k.rows;
	*nrows = k.n;
	return KM_OK;
}

void ui_audit_rows_free(audit_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		audit_row_free(&rows[i]);
	free(rows);
}

/* ---------------------------------------------------------------- tail */

km_status ui_cmd_audit_tail(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t n;
	km_status st = ui_arg_u64(a, "lines", 20, 1, 1000000, &n, e);
	if (st != KM_OK)
		return st;
	audit_filter f;
	memset(&f, 0, sizeof f);
	f.object = ui_arg(a, "object");
	f.actor = ui_arg(a, "actor");
	f.action = ui_arg(a, "action");
	f.outcome = ui_arg(a, "outcome");
	char since[AUDIT_TIME_LEN + 1], until[AUDIT_TIME_LEN + 1];
	if (ui_arg(a, "since")) {
		if ((st = audit_time_prefix_check(ui_arg(a, "since"), "--since", since, e)) != KM_OK)
			return st;
		f.time_from = since;
	}
	if (ui_arg(a, "until")) {
		if ((st = audit_time_prefix_check(ui_arg(a, "until"), "--until", until, e)) != KM_OK)
			return st;
		f.time_to = until;
	}
	if (f.time_from && f.time_to && strncmp(f.time_from, f.time_to, strlen(f.time_to)) > 0)
		return km_fail(e, KM_EUSAGE, "--since %s is after --until %s: nothing can match", f.time_from,
		               f.time_to);
	/* Asked for by action, sessions are what was asked for. */
	if (!ui_arg_flag(a, "sessions") && !f.action)
		f.hide_action = AUDIT_SESSION_ACTION;
	audit_row *rows;
	size_t nrows;
	st = ui_audit_collect(cli->ctx, &f, ui_arg(a, "key"), (size_t)n, &rows, &nrows, e);
	if (st != KM_OK)
		return st;
	/* Oldest first, like tail(1). */
	if (cli->json) {
		json_t *arr = json_array();
		for (size_t i = nrows; i-- > 0;)
			json_array_append_new(arr, ui_audit_row_json(&rows[i]));
		st = ui_json_print(arr, e);
	} else {
		for (size_t i = nrows; i-- > 0;)
			ui_audit_row_print(&rows[i], stdout);
	}
	ui_audit_rows_free(rows, nrows);
	return st;
}

/* ---------------------------------------------------------------- show */

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

km_status ui_cmd_audit_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t seq;
	km_status st = ui_parse_u64(a->pos[0], "SEQ", 1, UINT64_MAX, &seq, e);
	if (st != KM_OK)
		return st;
	audit_row r;
	memset(&r, 0, sizeof r);
	st = km_audit_get(cli->ctx, seq, &r, e);
	if (st != KM_OK)
		return st;
	char leaf[2 * AUDIT_HASH_BYTES + 1];
	hex(r.leaf_hash, AUDIT_HASH_BYTES, leaf);
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "seq", json_integer((json_int_t)r.seq));
		json_object_set_new(o, "leaf_hash", json_string(leaf));
		json_object_set_new(o, "event", ui_audit_row_json(&r));
		json_object_set_new(o, "json", ui_json_text(r.json));
		st = ui_json_print(o, e);
	} else {
		char buf[512];
		printf("seq:        %" PRIu64 "\n", r.seq);
		printf("time:       %s\n", ui_clean(r.time, buf, sizeof buf));
		printf("actor:      %s\n", ui_clean(r.actor, buf, sizeof buf));
		printf("action:     %s\n", ui_clean(r.action, buf, sizeof buf));
		printf("object:     %s\n", ui_clean(r.object, buf, sizeof buf));
		printf("outcome:    %s\n", ui_clean(r.outcome, buf, sizeof buf));
		printf("leaf hash:  %s\n", leaf);
		char summary[512];
		ui_audit_summary(r.json, summary, sizeof summary);
		if (summary[0])
			printf("change:     %s\n", ui_clean(summary, buf, sizeof buf));
		/* Indented for reading (--json has the stored text, exactly as
		 * hashed); never raw control bytes. */
		char *pretty = ui_audit_pretty(r.json);
		printf("event:\n");
		for (char *line = pretty, *nl; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			char *shown = ui_tw_display(line, UI_TW_JSON);
			printf("  %s\n", shown ? shown : "?");
			free(shown);
		}
		free(pretty);
	}
	audit_row_free(&r);
	return st;
}

/* ---------------------------------------------------------------- pubkey */

km_status ui_cmd_audit_pubkey(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	char *pem = NULL;
	km_status st = km_audit_pubkey_pem(cli->ctx, &pem, e);
	if (st != KM_OK)
		return st;
	fputs(pem, stdout);
	free(pem);
	return KM_OK;
}

/* ---------------------------------------------------------------- verify */

static int verify_progress(void *c, uint64_t checked, uint64_t total)
{
	const ui_cli *cli = c;
	if (cli->stderr_tty) {
		fprintf(stderr, "\r\033[Kverifying: %" PRIu64 " / %" PRIu64 " entries", checked, total);
		fflush(stderr);
	}
	return 0;
}

km_status ui_cmd_audit_verify(ui_cli *cli, const ui_args *a, km_err *e)
{
	audit_verify_result r;
	memset(&r, 0, sizeof r);
	km_status st;
	const char *entry = ui_arg(a, "entry");
	uint64_t seq = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (entry) {
		st = ui_parse_u64(entry, "--entry", 1, UINT64_MAX, &seq, e);
		if (st == KM_OK)
			st = km_audit_verify_entry(cli->ctx, seq, &r, e);
	} else {
		st = km_audit_verify(cli->ctx, verify_progress, cli, &r, e);
		if (cli->stderr_tty)
			fputs("\r\033[K", stderr);
	}
	if (st != KM_OK)
		return st;
	/* The sealed rows too: a role or state edited by hand is as much a
	 * failed verification as an edited event. */
	km_rows_result rows;
	memset(&rows, 0, sizeof rows);
	if (!entry && (st = km_audit_verify_rows(cli->ctx, &rows, e)) != KM_OK)
		return st;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	char root[2 * AUDIT_HASH_BYTES + 1], t[32];
	hex(r.head_root, AUDIT_HASH_BYTES, root);
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "intact", json_boolean(r.intact));
		if (entry)
			json_object_set_new(o, "entry", json_integer((json_int_t)seq));
		json_object_set_new(o, "entries_total", json_integer((json_int_t)r.entries_total));
		json_object_set_new(o, "entries_checked", json_integer((json_int_t)r.entries_checked));
		json_object_set_new(o, "heads_total", json_integer((json_int_t)r.heads_total));
		json_object_set_new(o, "heads_checked", json_integer((json_int_t)r.heads_checked));
		json_object_set_new(o, "seconds", json_real(secs));
		if (!entry) {
			json_object_set_new(o, "rows_checked", json_integer((json_int_t)rows.checked));
			json_object_set_new(o, "rows_bad", json_integer((json_int_t)rows.bad));
			json_object_set_new(o, "rows_problem", rows.bad ? ui_json_text(rows.problem) : json_null());
		}
		json_object_set_new(o, "first_bad_seq",
		                    r.intact ? json_null() : json_integer((json_int_t)r.first_bad_seq));
		json_object_set_new(o, "problem", r.intact ? json_null() : ui_json_text(r.problem));
		json_object_set_new(o, "head",
		                    r.head_size ? json_pack("{s:I,s:s,s:o}", "size",
		                                            (json_int_t)r.head_size, "root", root,
		                                            "time", ui_json_time(r.head_time))
		                                : json_null());
		st = ui_json_print(o, e);
	} else {
		if (entry)
			printf("entry:              %" PRIu64 "\n", seq);
		printf("entries checked:    %" PRIu64 " of %" PRIu64 "\n", r.entries_checked,
		       r.entries_total);
		printf("time:               %.3f s (%.0f entries/s)\n", secs,
		       secs > 0 ? (double)r.entries_checked / secs : 0.0);
		printf("tree heads checked: %" PRIu64 " of %" PRIu64 "\n", r.heads_checked,
		       r.heads_total);
		if (r.head_size)
			printf("newest signed head: size %" PRIu64 ", root %s, time %s\n", r.head_size,
			       root, ui_time_str(r.head_time, t));
		else
			printf("newest signed head: none verified\n");
		if (!entry) {
			printf("sealed rows:        %" PRIu64 " checked (HSM MAC, newest record in the log), "
			       "%" PRIu64 " failing\n", rows.checked, rows.bad);
			if (rows.bad)
				ui_print_line("FAILED: %s", rows.problem);
		}
		if (r.intact)
			printf("%s\n", rows.bad ? "log intact, rows damaged" : "intact");
		else if (r.first_bad_seq)
			ui_print_line("FAILED at entry %" PRIu64 ": %s", r.first_bad_seq, r.problem);
		else
			ui_print_line("FAILED: %s", r.problem);
	}
	if (st != KM_OK)
		return st;
	if (!r.intact) {
		if (r.first_bad_seq)
			return km_fail(e, KM_EINTEGRITY, "the audit log failed verification at entry %" PRIu64
			               ": %s", r.first_bad_seq, r.problem);
		return km_fail(e, KM_EINTEGRITY, "the audit log failed verification: %s", r.problem);
	}
	if (rows.bad)
		return km_fail(e, KM_EINTEGRITY, "%" PRIu64 " sealed row%s fail%s %s check; the first: %s",
		               rows.bad, rows.bad == 1 ? "" : "s", rows.bad == 1 ? "s" : "",
		               rows.bad == 1 ? "its" : "their", rows.problem);
	return KM_OK;
}
