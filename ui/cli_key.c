/*
 * cli_key.c — `keyward key ...`: create, list, show, tag.  Changes that
 * need approval (rotate, state, compromise, destroy) are in cli_request.c.
 *
 * Thin: parse arguments, call kek.h, print.  The core authorises and audits
 * every call; nothing here decides who may do what.
 */
#include "cli.h"
#include "kek.h"
#include "auditlog.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define KEY_TAGS_MAX 64

/* ---------------------------------------------------------------- helpers */

json_t *ui_key_json(const km_key_info *k, json_t *tags)
{
	json_t *o = json_object();
	ui_json_set_text(o, "name", k->name);
	json_object_set_new(o, "id", json_integer(k->id));
	json_object_set_new(o, "current_version", json_integer(k->current_version));
	json_object_set_new(o, "current_state",
	                    k->current_version ? json_string(km_state_name(k->current_state))
	                                       : json_null());
	json_object_set_new(o, "created", ui_json_time(k->created));
	json_object_set_new(o, "current_created", ui_json_time(k->current_created));
	json_object_set_new(o, "assets", json_integer((json_int_t)k->assets));
	json_object_set_new(o, "last_used", ui_json_time(k->last_used));
	ui_json_set_text(o, "created_by", k->created_by);
	if (tags)
		json_object_set_new(o, "tags", tags);
	return o;
}

static int tag_to_json(void *c, const km_tag *t)
{
	ui_json_set_text((json_t *)c, t->key, t->value);
	return 0;
}

/* " k=v" per tag, into a memory stream; printed cleaned as one line. */
static int tag_to_text(void *c, const km_tag *t)
{
	fprintf((FILE *)c, " %s=%s", t->key, t->value);
	return 0;
}

static km_status key_tags_json(km_ctx *ctx, const char *name, json_t **out, km_err *e)
{
	json_t *tags = json_object();
	km_status st = km_key_tags(ctx, name, tag_to_json, tags, e);
	if (st != KM_OK) {
		json_decref(tags);
		return st;
	}
	*out = tags;
	return KM_OK;
}

/* Parse K=V arguments into tags[]. */
static km_status tags_parse(const char *const *kv, size_t n, km_tag *tags, km_err *e)
{
	if (n > KEY_TAGS_MAX)
		return km_fail(e, KM_EUSAGE, "at most %d tags at once", KEY_TAGS_MAX);
	for (size_t i = 0; i < n; i++) {
		km_status st = km_tag_parse(kv[i], tags[i].key, tags[i].value, e);
		if (st != KM_OK)
			return st;
	}
	return KM_OK;
}

/* The key as it is now: JSON document, or one line on stdout. */
static km_status key_report(ui_cli *cli, const char *name, const char *verb, km_err *e)
{
	km_key_info k;
	km_status st = km_key_get(cli->ctx, name, &k, e);
	if (st != KM_OK)
		return st;
	if (cli->json) {
		json_t *tags = NULL;
		st = key_tags_json(cli->ctx, name, &tags, e);
		if (st != KM_OK)
			return st;
		return ui_json_print(ui_key_json(&k, tags), e);
	}
	ui_print_line("%s %s: version %" PRIu32 " %s%s%s", verb, k.name, k.current_version,
	              k.current_version ? km_state_name(k.current_state) : "(no version)",
	              k.tags[0] ? ", tags: " : "", k.tags);
	return KM_OK;
}

/* ---------------------------------------------------------------- create */

km_status ui_cmd_key_create(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *kv[KEY_TAGS_MAX + 1];
	size_t n = ui_arg_all(a, "tag", kv, KM_ARRAY_LEN(kv));
	km_tag tags[KEY_TAGS_MAX];
	km_status st = tags_parse(kv, n, tags, e);
	if (st == KM_OK)
		st = km_key_create(cli->ctx, a->pos[0], n ? tags : NULL, n, e);
	if (st != KM_OK)
		return st;
	return key_report(cli, a->pos[0], "created", e);
}

/* ---------------------------------------------------------------- list */

typedef struct key_page {
	km_key_info *rows;
	size_t n, cap;
	km_status st;
} key_page;

static int key_collect(void *c, const km_key_info *k)
{
	key_page *p = c;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		km_key_info *r = realloc(p->rows, cap * sizeof *r);
		if (!r) {
			p->st = KM_ENOMEM;
			return 1;
		}
		p->rows = r;
		p->cap = cap;
	}
	p->rows[p->n++] = *k;
	return 0;
}

static km_status key_sort_parse(const char *s, km_key_sort *out, km_err *e)
{
	char names[128] = "";
	size_t n = 0;
	for (int i = 0; i < KM_KEY_SORT_COUNT; i++) {
		if (strcmp(s, km_key_sort_name((km_key_sort)i)) == 0) {
			*out = (km_key_sort)i;
			return KM_OK;
		}
		n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
		                      km_key_sort_name((km_key_sort)i));
		if (n >= sizeof names)
			n = sizeof names - 1;
	}
	return km_fail(e, KM_EUSAGE, "key list: no sort column \"%s\" (columns: %s)", s, names);
}

#define KEY_PAGE 500

km_status ui_cmd_key_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t limit;
	km_key_query q = {.filter = ui_arg(a, "filter"), .sort = KM_KEY_SORT_NAME,
	                  .descending = ui_arg_flag(a, "desc")};
	km_status st = ui_arg_u64(a, "limit", UINT64_MAX, 1, UINT64_MAX, &limit, e);
	if (st == KM_OK && ui_arg(a, "sort"))
		st = key_sort_parse(ui_arg(a, "sort"), &q.sort, e);
	if (st != KM_OK)
		return st;

	/* Page through the keyset listing until the limit or the end. */
	key_page p = {0};
	for (;;) {
		uint64_t want = limit - p.n;
		q.limit = want < KEY_PAGE ? (int)want : KEY_PAGE;
		q.cursor = p.n ? &p.rows[p.n - 1] : NULL;
		km_key_info cursor;
		if (q.cursor) { /* the array may move while the callback appends */
			cursor = *q.cursor;
			q.cursor = &cursor;
		}
		size_t before = p.n;
		p.st = KM_OK;
		st = km_key_list(cli->ctx, &q, key_collect, &p, e);
		if (st == KM_OK && p.st != KM_OK)
			st = km_fail(e, p.st, "out of memory listing keys");
		if (st != KM_OK || p.n - before < (size_t)q.limit || p.n >= limit)
			break;
	}
	if (st != KM_OK) {
		free(p.rows);
		return st;
	}

	if (cli->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < p.n && st == KM_OK; i++) {
			json_t *tags = NULL;
			st = key_tags_json(cli->ctx, p.rows[i].name, &tags, e);
			if (st == KM_OK)
				json_array_append_new(arr, ui_key_json(&p.rows[i], tags));
		}
		free(p.rows);
		if (st != KM_OK) {
			json_decref(arr);
			return st;
		}
		return ui_json_print(arr, e);
	}

	static const char *const hdr[] = {"NAME", "VER", "STATE", "AGE", "ASSETS", "LAST USE",
	                                  "TAGS"};
	ui_table *t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!t) {
		free(p.rows);
		return km_fail(e, KM_ENOMEM, "out of memory");
	}
	int64_t now = km_now();
	for (size_t i = 0; i < p.n && st == KM_OK; i++) {
		const km_key_info *k = &p.rows[i];
		char ver[16], age[24], assets[24], used[32];
		snprintf(ver, sizeof ver, "%" PRIu32, k->current_version);
		int64_t days = k->current_created ? (now - k->current_created) / 86400 : 0;
		snprintf(age, sizeof age, "%" PRId64 "d", days < 0 ? 0 : days);
		snprintf(assets, sizeof assets, "%" PRIu64, k->assets);
		ui_time_str(k->last_used, used);
		const char *cells[] = {k->name, ver,
		                       k->current_version ? km_state_name(k->current_state) : "-",
		                       age, assets, used, k->tags[0] ? k->tags : "-"};
		st = ui_table_add(t, cells, e);
	}
	if (st == KM_OK)
		ui_table_print(t, stdout);
	ui_table_free(t);
	free(p.rows);
	return st;
}

/* ---------------------------------------------------------------- show */

typedef struct key_show {
	json_t *versions;  /* JSON mode */
	ui_table *table;   /* text mode */
	audit_row *rows;
	size_t nrows;
	km_status st;
} key_show;

static json_t *version_json(const km_key_version_info *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(v->version));
	json_object_set_new(o, "state", json_string(km_state_name(v->state)));
	json_object_set_new(o, "created", ui_json_time(v->created));
	json_object_set_new(o, "activated", ui_json_time(v->activated));
	json_object_set_new(o, "deactivated", ui_json_time(v->deactivated));
	json_object_set_new(o, "destroy_after", ui_json_time(v->destroy_after));
	json_object_set_new(o, "destroyed", ui_json_time(v->destroyed));
	json_object_set_new(o, "wraps", json_integer((json_int_t)v->wraps));
	json_object_set_new(o, "assets", json_integer((json_int_t)v->assets));
	json_object_set_new(o, "last_used", ui_json_time(v->last_used));
	return o;
}

static int version_cb(void *c, const km_key_version_info *v)
{
	key_show *s = c;
	if (s->versions) {
		json_array_append_new(s->versions, version_json(v));
		return 0;
	}
	char ver[16], created[32], act[32], wraps[24], assets[24], used[32];
	snprintf(ver, sizeof ver, "%" PRIu32, v->version);
	snprintf(wraps, sizeof wraps, "%" PRIu64, v->wraps);
	snprintf(assets, sizeof assets, "%" PRIu64, v->assets);
	const char *cells[] = {ver, km_state_name(v->state), ui_time_str(v->created, created),
	                       ui_time_str(v->activated, act), wraps, assets,
	                       ui_time_str(v->last_used, used)};
	s->st = ui_table_add(s->table, cells, NULL);
	return s->st != KM_OK;
}

km_status ui_cmd_key_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *name = a->pos[0];
	uint64_t nev;
	km_status st = ui_arg_u64(a, "events", 10, 0, 10000, &nev, e);
	if (st != KM_OK)
		return st;
	km_key_info k;
	st = km_key_get(cli->ctx, name, &k, e);
	if (st != KM_OK)
		return st;
	json_t *tags = NULL;
	if (cli->json)
		st = key_tags_json(cli->ctx, name, &tags, e);
	if (st != KM_OK)
		return st;

	key_show s = {0};
	static const char *const hdr[] = {"VERSION", "STATE", "CREATED", "ACTIVATED", "WRAPS",
	                                  "ASSETS", "LAST USE"};
	if (cli->json)
		s.versions = json_array();
	else
		s.table = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	if (!s.versions && !s.table) {
		json_decref(tags);
		return km_fail(e, KM_ENOMEM, "out of memory");
	}
	st = km_key_versions(cli->ctx, name, version_cb, &s, e);
	if (st == KM_OK && s.st != KM_OK)
		st = km_fail(e, s.st, "out of memory listing versions");

	/* The latest events about this key, newest first from the core. */
	/* Skipped quietly for a role that may not read the log: asking would
	 * only add a denial to the log. */
	int may_read = km_policy_allows(km_actor_get(cli->ctx)->roles, KM_ACT_AUDIT_READ);
	if (st == KM_OK && nev > 0 && may_read) {
		audit_filter f;
		memset(&f, 0, sizeof f);
		st = ui_audit_collect(cli->ctx, &f, name, (size_t)nev, &s.rows, &s.nrows, e);
	}
	if (st != KM_OK)
		goto out;

	if (cli->json) {
		json_t *doc = ui_key_json(&k, tags);
		tags = NULL;
		json_object_set_new(doc, "versions", s.versions);
		s.versions = NULL;
		json_t *ev = json_array();
		for (size_t i = s.nrows; i-- > 0;)
			json_array_append_new(ev, ui_audit_row_json(&s.rows[i]));
		json_object_set_new(doc, "events", ev);
		st = ui_json_print(doc, e);
		goto out;
	}

	char created[32];
	ui_print_line("key:        %s", k.name);
	ui_print_line("created:    %s by %s", ui_time_str(k.created, created), k.created_by);
	ui_print_line("current:    version %" PRIu32 " (%s)", k.current_version,
	              k.current_version ? km_state_name(k.current_state) : "none");
	ui_print_line("assets:     %" PRIu64, k.assets);
	char *line = NULL;
	size_t linelen = 0;
	FILE *mf = open_memstream(&line, &linelen);
	if (!mf) {
		st = km_fail(e, KM_ENOMEM, "out of memory");
		goto out;
	}
	st = km_key_tags(cli->ctx, name, tag_to_text, mf, e);
	fclose(mf);
	if (st == KM_OK)
		ui_print_line("tags:      %s", line && line[0] ? line : " -");
	free(line);
	if (st != KM_OK)
		goto out;
	printf("\nversions:\n");
	ui_table_print(s.table, stdout);
	printf("\nlatest events:\n");
	if (!may_read)
		printf("  (not shown: your roles may not read the audit log)\n");
	else if (s.nrows == 0)
		printf("  (none)\n");
	for (size_t i = s.nrows; i-- > 0;)
		ui_audit_row_print(&s.rows[i], stdout);
out:
	json_decref(tags);
	json_decref(s.versions);
	ui_table_free(s.table);
	ui_audit_rows_free(s.rows, s.nrows);
	return st;
}

/* ---------------------------------------------------------------- changes */

km_status ui_cmd_key_tag(ui_cli *cli, const ui_args *a, km_err *e)
{
	size_t n = (size_t)a->npos - 1;
	km_tag tags[KEY_TAGS_MAX];
	km_status st = tags_parse((const char *const *)a->pos + 1, n, tags, e);
	if (st == KM_OK)
		st = km_key_tag(cli->ctx, a->pos[0], tags, n, e);
	if (st != KM_OK)
		return st;
	return key_report(cli, a->pos[0], "tagged", e);
}
