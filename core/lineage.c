/*
 * lineage.c — the lineage graph: OpenLineage import, impact and provenance
 * walks, browsing and export (lineage.h).
 *
 * Storage is the v6 schema of db.c.  Walks are breadth first in C over the
 * indexed edge tables (one index range per node expanded), so the first
 * path that reaches a node is a shortest one and a cycle costs one visit.
 * An import is a single transaction: every event is checked completely
 * before any of it is written, and the first bad one rolls everything
 * back.  This module never prints and never reads key material.
 */
#include "lineage.h"
#include "lineage_int.h"
#include "bigbuf.h"
#include "lineage_adj.h"
#include "asset.h"
#include "caller.h"
#include "ctx.h"
#include "db.h"
#include "secmem.h"

#include <ctype.h>
#include <stddef.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FOREVER INT64_MAX
/* An import reads at most this much per file: a lineage export of a busy
 * platform is tens of MB; a GB file is a mistake, not a feed. */
#define IMPORT_FILE_MAX ((size_t)1 << 30)

static const char *const kind_names[KM_LN_KIND_COUNT] = {
#define KM_LN_NAME(e, name) [e] = name,
	KM_LINEAGE_KINDS(KM_LN_NAME)
#undef KM_LN_NAME
};

const char *km_lineage_kind_name(km_lineage_kind k)
{
	return (unsigned)k < KM_LN_KIND_COUNT ? kind_names[k] : "unknown";
}

int km_lineage_kind_parse(const char *s)
{
	for (int i = 0; s && i < KM_LN_KIND_COUNT; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return i;
	return -1;
}

void km_lineage_node_label(const km_lineage_node *n, char *buf, size_t cap)
{
	int own = strcmp(n->namespace_, "keyward") == 0;
	snprintf(buf, cap, "%s%s%s%s%s", own ? "" : n->namespace_, own ? "" : " ", n->name,
	         n->version[0] ? "@" : "", n->version);
}

/* ---------------------------------------------------------------- time */

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

km_status km_lineage_time_parse(const char *s, int date_only_ok, int64_t *ms, km_err *e)
{
	int Y, M, D, h = 0, m = 0, sec = 0;
	int64_t frac_ms = 0;
	const char *p = s;
	if (!s || strlen(s) < 10 || !digits(p, 4, &Y) || p[4] != '-' || !digits(p + 5, 2, &M) ||
	    p[7] != '-' || !digits(p + 8, 2, &D))
		goto bad;
	p += 10;
	int offset_min = 0;
	if (*p == '\0') {
		if (!date_only_ok)
			goto bad;
	} else {
		if ((*p != 'T' && *p != 't' && *p != ' ') || !digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &m) || p[6] != ':' || !digits(p + 7, 2, &sec))
			goto bad;
		p += 9;
		if (*p == '.') {
			p++;
			int nd = 0;
			while (isdigit((unsigned char)*p)) {
				if (nd < 3)
					frac_ms = frac_ms * 10 + (*p - '0');
				nd++;
				p++;
			}
			if (nd == 0)
				goto bad;
			for (; nd < 3; nd++)
				frac_ms *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om;
			if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
			    om > 59)
				goto bad;
			offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
			p += 6;
		} else {
			goto bad;
		}
		if (*p)
			goto bad;
	}
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		goto bad;
	struct tm tm = {0};
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (tm.tm_mday != D) /* 2026-02-30 normalised away */
		goto bad;
	*ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
	return KM_OK;
bad:
	return km_fail(e, KM_EINVAL, "\"%.64s\" is not an RFC 3339 date-time such as "
	               "2026-11-30T12:00:00Z%s", s ? s : "", date_only_ok ? " (or a date 2026-11-30)" : "");
}

/* ---------------------------------------------------------------- import */

/* What one event says, pointing into its JSON. */
typedef struct ol_event {
	const char *event_type; /* "" when absent */
	const char *event_time;
	int64_t time_ms;
	const char *run_id;
	const char *job_ns, *job_name;
	json_t *job_facets;
	json_t *inputs, *outputs; /* arrays or NULL */
} ol_event;

static const char *const event_types[] = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"};

static int uuid_ok(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

#define BAD(field, ...) km_fail(e, KM_EINVAL, "%s:%zu: %s " field, origin, line, __VA_ARGS__)

/* A string member that must be there and not be empty. */
static km_status need_string(json_t *obj, const char *key, const char *path, const char *origin,
                             size_t line, size_t max, const char **out, km_err *e)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return BAD("is missing (required by OpenLineage 2-0-2)", path);
	if (!json_is_string(v))
		return BAD("must be a string", path);
	if (json_string_length(v) == 0 || json_string_length(v) > max)
		return km_fail(e, KM_EINVAL, "%s:%zu: %s must be 1 to %zu characters", origin, line, path, max);
	*out = json_string_value(v);
	return KM_OK;
}

static km_status optional_object(json_t *obj, const char *key, const char *path,
                                 const char *origin, size_t line, json_t **out, km_err *e)
{
	json_t *v = json_object_get(obj, key);
	if (out)
		*out = v;
	if (v && !json_is_object(v))
		return BAD("must be an object", path);
	return KM_OK;
}

static km_status check_datasets(json_t *ev, const char *which, const char *facet_key,
                                const char *origin, size_t line, json_t **out, km_err *e)
{
	json_t *arr = json_object_get(ev, which);
	*out = NULL;
	if (!arr || json_is_null(arr))
		return KM_OK;
	if (!json_is_array(arr))
		return BAD("must be an array of datasets", which);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *d = json_array_get(arr, i);
		char path[64];
		snprintf(path, sizeof path, "%s[%zu]", which, i);
		if (!json_is_object(d))
			return BAD("must be an object with namespace and name", path);
		const char *s;
		char sub[96];
		km_status st;
		snprintf(sub, sizeof sub, "%s.namespace", path);
		if ((st = need_string(d, "namespace", sub, origin, line, KM_LINEAGE_NS_MAX, &s, e)))
			return st;
		snprintf(sub, sizeof sub, "%s.name", path);
		if ((st = need_string(d, "name", sub, origin, line, KM_LINEAGE_NAME_MAX, &s, e)))
			return st;
		snprintf(sub, sizeof sub, "%s.facets", path);
		if ((st = optional_object(d, "facets", sub, origin, line, NULL, e)))
			return st;
		snprintf(sub, sizeof sub, "%s.%s", path, facet_key);
		if ((st = optional_object(d, facet_key, sub, origin, line, NULL, e)))
			return st;
	}
	*out = arr;
	return KM_OK;
}

/* The whole of 2-0-2's RunEvent that keyward relies on, checked before
 * anything is written. */
static km_status event_check(json_t *ev, const char *origin, size_t line, ol_event *o, km_err *e)
{
	memset(o, 0, sizeof *o);
	if (!json_is_object(ev))
		return km_fail(e, KM_EINVAL, "%s:%zu: an event must be a JSON object", origin, line);
	km_status st;
	const char *s;
	json_t *et = json_object_get(ev, "eventType");
	o->event_type = "";
	if (et) {
		if (!json_is_string(et))
			return BAD("must be a string", "eventType");
		size_t i;
		for (i = 0; i < KM_ARRAY_LEN(event_types); i++)
			if (strcmp(json_string_value(et), event_types[i]) == 0)
				break;
		if (i == KM_ARRAY_LEN(event_types))
			return km_fail(e, KM_EINVAL, "%s:%zu: eventType \"%.32s\" is not one of START, RUNNING, "
			               "COMPLETE, ABORT, FAIL, OTHER", origin, line, json_string_value(et));
		o->event_type = event_types[i];
	}
	if ((st = need_string(ev, "eventTime", "eventTime", origin, line, 64, &o->event_time, e)))
		return st;
	km_err te;
	if (km_lineage_time_parse(o->event_time, 0, &o->time_ms, &te))
		return km_fail(e, KM_EINVAL, "%s:%zu: eventTime %s", origin, line, te.msg);
	if ((st = need_string(ev, "producer", "producer", origin, line, 2048, &s, e)) ||
	    (st = need_string(ev, "schemaURL", "schemaURL", origin, line, 2048, &s, e)))
		return st;
	json_t *run = json_object_get(ev, "run");
	if (!run)
		return BAD("is missing (required by OpenLineage 2-0-2)", "run");
	if (!json_is_object(run))
		return BAD("must be an object", "run");
	if ((st = need_string(run, "runId", "run.runId", origin, line, 64, &o->run_id, e)))
		return st;
	if (!uuid_ok(o->run_id))
		return km_fail(e, KM_EINVAL, "%s:%zu: run.runId \"%.64s\" is not a UUID", origin, line, o->run_id);
	if ((st = optional_object(run, "facets", "run.facets", origin, line, NULL, e)))
		return st;
	json_t *job = json_object_get(ev, "job");
	if (!job)
		return BAD("is missing (required by OpenLineage 2-0-2)", "job");
	if (!json_is_object(job))
		return BAD("must be an object", "job");
	if ((st = need_string(job, "namespace", "job.namespace", origin, line, KM_LINEAGE_NS_MAX, &o->job_ns, e)) ||
	    (st = need_string(job, "name", "job.name", origin, line, KM_LINEAGE_NAME_MAX, &o->job_name, e)) ||
	    (st = optional_object(job, "facets", "job.facets", origin, line, &o->job_facets, e)))
		return st;
	if ((st = check_datasets(ev, "inputs", "inputFacets", origin, line, &o->inputs, e)) ||
	    (st = check_datasets(ev, "outputs", "outputFacets", origin, line, &o->outputs, e)))
		return st;
	return KM_OK;
}
#undef BAD

typedef struct importer {
	km_ctx *ctx;
	sqlite3 *db;
	json_t *rules;
	sqlite3_stmt *ins_event, *sel_node, *sel_job, *ins_node, *upd_node, *ins_edge, *upd_edge;
	/* The nodes this import has read or written, so that a dataset seen
	 * again costs a hash lookup, and a write only when it changes:
	 * "ns\x1fname\x1fversion\x1f(j|d)" -> [id, kind, facets|null, first_seen]. */
	json_t *nodes;
	km_lineage_import_result *r;
	int64_t now;
	/* Sources whose edges this import added or changed: their packed
	 * rows are repacked before it commits (lineage_adj.h).  The import
	 * runs with triggers off, so the edge triggers do not do it. */
	int64_t *dirty;
	size_t ndirty, dirty_cap;
} importer;

static void importer_free(importer *im)
{
	sqlite3_stmt *all[] = {im->ins_event, im->sel_node, im->sel_job, im->ins_node, im->upd_node,
	                       im->ins_edge, im->upd_edge};
	for (size_t i = 0; i < KM_ARRAY_LEN(all); i++)
		sqlite3_finalize(all[i]);
	json_decref(im->nodes);
}

static km_status dirty_add(importer *im, int64_t src, km_err *e)
{
	/* A run's edges come out of its inputs one after another. */
	if (im->ndirty && im->dirty[im->ndirty - 1] == src)
		return KM_OK;
	if (im->ndirty == im->dirty_cap) {
		size_t nc = im->dirty_cap ? im->dirty_cap * 2 : 1024;
		int64_t *nd = realloc(im->dirty, nc * sizeof *nd);
		if (!nd)
			return km_fail(e, KM_ENOMEM, "out of memory importing lineage");
		im->dirty = nd;
		im->dirty_cap = nc;
	}
	im->dirty[im->ndirty++] = src;
	return KM_OK;
}

static km_status importer_prepare(importer *im, km_err *e)
{
	static const struct {
		size_t off;
		const char *sql;
	} stmts[] = {
		{offsetof(importer, ins_event), "INSERT OR IGNORE INTO lineage_events(run_id, event_type, "
		                                "event_time_ms, job, imported, body) VALUES(?,?,?,?,?,?)"},
		{offsetof(importer, sel_node), "SELECT id, kind, facets, first_seen FROM lineage_nodes WHERE "
		                               "namespace = ? AND name = ? AND version = ? AND kind <> 'job'"},
		{offsetof(importer, sel_job), "SELECT id, kind, facets, first_seen FROM lineage_nodes WHERE "
		                              "namespace = ? AND name = ? AND version = ? AND kind = 'job'"},
		{offsetof(importer, ins_node), "INSERT INTO lineage_nodes(kind, namespace, name, version, "
		                               "facets, first_seen) VALUES(?,?,?,?,?,?)"},
		{offsetof(importer, upd_node), "UPDATE lineage_nodes SET kind = ?, facets = ?, first_seen = ? "
		                               "WHERE id = ?"},
		{offsetof(importer, ins_edge), "INSERT OR IGNORE INTO lineage_edges(src, dst, kind, "
		                               "first_seen, last_seen, job) VALUES(?,?,?,?,?,?)"},
		/* The job of the earliest run that showed the edge. */
		{offsetof(importer, upd_edge), "UPDATE lineage_edges SET job = CASE WHEN ?1 < first_seen "
		                               "THEN ?2 ELSE job END, first_seen = min(first_seen, ?1), "
		                               "last_seen = max(last_seen, ?1) WHERE src = ?3 AND dst = ?4 "
		                               "AND kind = ?5 AND (?1 < first_seen OR ?1 > last_seen)"},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(stmts); i++) {
		km_status st = km_db_prepare(im->db, stmts[i].sql,
		                             (sqlite3_stmt **)((char *)im + stmts[i].off), e);
		if (st)
			return st;
	}
	im->nodes = json_object();
	return im->nodes ? KM_OK : km_fail(e, KM_ENOMEM, "out of memory");
}

static char *facets_text(json_t *facets)
{
	if (!facets || !json_is_object(facets) || json_object_size(facets) == 0)
		return NULL;
	return json_dumps(facets, JSON_COMPACT);
}

/* The node (namespace, name, version) of a job or not: found or made, its
 * kind raised from "dataset" to a more specific one, its facets replaced
 * by newer ones (ft, owned, may be NULL), first_seen lowered to t. */
static km_status node_put(importer *im, int is_job, const char *kind_in, const char *ns,
                          const char *name, const char *version, char *ft, int64_t t, int64_t *id,
                          char kind[16], km_err *e)
{
	/* The import's statements run without the CHECK on kind (see
	 * import_impl): this is that check. */
	if (km_lineage_kind_parse(kind_in) < 0) {
		free(ft);
		return km_fail(e, KM_EINVAL, "lineage: \"%s\" is not a node kind", kind_in);
	}
	size_t kl = strlen(ns) + strlen(name) + strlen(version) + 8;
	char stackkey[1024];
	char *key = kl <= sizeof stackkey ? stackkey : malloc(kl);
	if (!key) {
		free(ft);
		return km_fail(e, KM_ENOMEM, "out of memory");
	}
	snprintf(key, kl, "%s\x1f%s\x1f%s\x1f%c", ns, name, version, is_job ? 'j' : 'd');
	json_t *c = json_object_get(im->nodes, key);
	km_status st = KM_OK;
	if (!c) {
		sqlite3_stmt *q = is_job ? im->sel_job : im->sel_node;
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, ns, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, version, -1, SQLITE_STATIC);
		int rc = sqlite3_step(q);
		if (rc == SQLITE_ROW) {
			const char *f = (const char *)sqlite3_column_text(q, 2);
			c = json_pack("[I,s,s?,I]", (json_int_t)sqlite3_column_int64(q, 0),
			              (const char *)sqlite3_column_text(q, 1), f, (json_int_t)sqlite3_column_int64(q, 3));
		} else if (rc == SQLITE_DONE) {
			sqlite3_stmt *ins = im->ins_node;
			sqlite3_reset(ins);
			sqlite3_bind_text(ins, 1, kind_in, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 2, ns, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 3, name, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 4, version, -1, SQLITE_STATIC);
			if (ft)
				sqlite3_bind_text(ins, 5, ft, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(ins, 5);
			sqlite3_bind_int64(ins, 6, t);
			if (sqlite3_step(ins) != SQLITE_DONE)
				st = km_db_fail(im->db, e, "lineage (node)");
			sqlite3_reset(ins);
			im->r->nodes++;
			c = json_pack("[I,s,s?,I]", (json_int_t)sqlite3_last_insert_rowid(im->db), kind_in, ft,
			              (json_int_t)t);
		} else {
			st = km_db_fail(im->db, e, "lineage (node)");
		}
		sqlite3_reset(q);
		if (!st && (!c || json_object_set_new_nocheck(im->nodes, key, c)))
			st = km_fail(e, KM_ENOMEM, "out of memory");
	}
	if (!st) {
		const char *ck = json_string_value(json_array_get(c, 1));
		const char *cf = json_string_value(json_array_get(c, 2));
		int64_t first = json_integer_value(json_array_get(c, 3));
		const char *nk = !is_job && strcmp(kind_in, "dataset") != 0 && strcmp(kind_in, ck) != 0 ? kind_in : ck;
		int newer_facets = ft && (!cf || strcmp(cf, ft) != 0);
		if (nk != ck || newer_facets || t < first) {
			char kbuf[16];
			snprintf(kbuf, sizeof kbuf, "%s", nk);
			sqlite3_stmt *u = im->upd_node;
			sqlite3_reset(u);
			sqlite3_bind_text(u, 1, kbuf, -1, SQLITE_TRANSIENT);
			if (newer_facets || cf)
				sqlite3_bind_text(u, 2, newer_facets ? ft : cf, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(u, 2);
			sqlite3_bind_int64(u, 3, t < first ? t : first);
			sqlite3_bind_int64(u, 4, json_integer_value(json_array_get(c, 0)));
			if (sqlite3_step(u) != SQLITE_DONE)
				st = km_db_fail(im->db, e, "lineage (node)");
			sqlite3_reset(u);
			json_array_set_new(c, 1, json_string(kbuf));
			if (newer_facets)
				json_array_set_new(c, 2, json_string(ft));
			json_array_set_new(c, 3, json_integer(t < first ? t : first));
		}
		*id = json_integer_value(json_array_get(c, 0));
		if (kind)
			snprintf(kind, 16, "%s", json_string_value(json_array_get(c, 1)));
	}
	free(ft);
	if (key != stackkey)
		free(key);
	return st;
}

/* "{name}" in a rule's asset replaced by the dataset's name. */
static int expand_asset(const char *tmpl, const char *name, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = tmpl; *p; p++) {
		if (strncmp(p, "{name}", 6) == 0) {
			size_t l = strlen(name);
			if (n + l >= cap)
				return 0;
			memcpy(out + n, name, l);
			n += l;
			p += 5;
		} else {
			if (n + 1 >= cap)
				return 0;
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return 1;
}

static const char *asset_node_kind(const char *asset_kind)
{
	if (strcmp(asset_kind, "feature") == 0)
		return "feature";
	if (strcmp(asset_kind, "model") == 0)
		return "model";
	return "dataset";
}

/* Upsert the node a dataset reference stands for: mapped to an asset, or
 * given a kind, by the first rule that matches, else a dataset of its own
 * namespace.  Version: the asset spec's, else the datasetVersion facet. */
static km_status dataset_node(importer *im, json_t *d, int64_t t, const char *origin, size_t line,
                              int64_t *id, char kind[16], km_err *e)
{
	const char *ns = json_string_value(json_object_get(d, "namespace"));
	const char *name = json_string_value(json_object_get(d, "name"));
	json_t *facets = json_object_get(d, "facets");
	const char *dsver = json_string_value(json_object_get(json_object_get(facets, "version"),
	                                                      "datasetVersion"));
	const char *node_ns = ns, *node_name = name, *node_kind = "dataset";
	char version[KM_LINEAGE_VERSION_MAX + 1];
	snprintf(version, sizeof version, "%s", dsver ? dsver : "");
	char akind[32], aname[256], aver[128], spec[1024], full[300];
	size_t i;
	json_t *rule = NULL;
	json_array_foreach(im->rules, i, rule) {
		const char *pns = json_string_value(json_object_get(rule, "namespace"));
		const char *pname = json_string_value(json_object_get(rule, "name"));
		if (fnmatch(pns, ns, 0) == 0 && fnmatch(pname, name, 0) == 0)
			break;
	}
	if (rule && i < json_array_size(im->rules)) {
		const char *asset = json_string_value(json_object_get(rule, "asset"));
		const char *rkind = json_string_value(json_object_get(rule, "kind"));
		if (asset) {
			km_err ae;
			if (!expand_asset(asset, name, spec, sizeof spec) ||
			    km_asset_spec_parse(spec, akind, aname, aver, &ae))
				return km_fail(e, KM_EINVAL, "%s:%zu: dataset %s %s: mapping rule %zu gives "
				               "\"%.200s\", not an asset KIND:NAME[@VERSION]", origin, line, ns,
				               name, i, spec);
			snprintf(full, sizeof full, "%s:%s", akind, aname);
			node_ns = "keyward";
			node_name = full;
			node_kind = asset_node_kind(akind);
			if (aver[0])
				snprintf(version, sizeof version, "%s", aver);
		}
		if (rkind)
			node_kind = rkind;
		im->r->mapped++;
	} else {
		im->r->unmapped++;
	}
	return node_put(im, 0, node_kind, node_ns, node_name, version, facets_text(facets), t, id, kind, e);
}

/* New edges are the common case of a bulk import: one statement.  A
 * known edge is touched only when t widens its [first_seen, last_seen]. */
static km_status edge_put(importer *im, int64_t src, int64_t dst, const char *kind, int64_t t,
                          int64_t job, km_err *e)
{
	sqlite3_stmt *q = im->ins_edge;
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, src);
	sqlite3_bind_int64(q, 2, dst);
	sqlite3_bind_text(q, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, t);
	sqlite3_bind_int64(q, 5, t);
	sqlite3_bind_int64(q, 6, job);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return km_db_fail(im->db, e, "lineage (edge)");
	if (sqlite3_changes(im->db) == 1) {
		im->r->edges++;
		return dirty_add(im, src, e);
	}
	q = im->upd_edge;
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, t);
	sqlite3_bind_int64(q, 2, job);
	sqlite3_bind_int64(q, 3, src);
	sqlite3_bind_int64(q, 4, dst);
	sqlite3_bind_text(q, 5, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return km_db_fail(im->db, e, "lineage (edge)");
	return sqlite3_changes(im->db) == 1 ? dirty_add(im, src, e) : KM_OK;
}

#define MAX_DATASETS 4096

static km_status event_write(importer *im, const char *raw, size_t raw_len, const ol_event *o,
                             const char *origin, size_t line, km_err *e)
{
	int64_t t = o->time_ms / 1000;
	/* The job first: the event row refers to it. */
	int64_t job;
	km_status st = node_put(im, 1, "job", o->job_ns, o->job_name, "", facets_text(o->job_facets), t,
	                        &job, NULL, e);
	if (st)
		return st;
	sqlite3_stmt *q = im->ins_event;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, o->run_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, o->event_type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, o->time_ms);
	sqlite3_bind_int64(q, 4, job);
	sqlite3_bind_int64(q, 5, im->now);
	/* Kept as received: what the producer said, facets and all. */
	sqlite3_bind_text(q, 6, raw, (int)raw_len, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		return km_db_fail(im->db, e, "lineage (event)");
	sqlite3_reset(q);
	if (sqlite3_changes(im->db) == 0) {
		/* Seen before.  The job upsert above changed nothing either:
		 * min/coalesce of the same values. */
		im->r->duplicates++;
		return KM_OK;
	}
	im->r->imported++;

	size_t ni = json_array_size(o->inputs), no = json_array_size(o->outputs);
	if (ni > MAX_DATASETS || no > MAX_DATASETS)
		return km_fail(e, KM_EINVAL, "%s:%zu: more than %d inputs or outputs in one event",
		               origin, line, MAX_DATASETS);
	int64_t in_id[MAX_DATASETS];
	char in_kind[MAX_DATASETS][16];
	for (size_t i = 0; i < ni; i++) {
		if ((st = dataset_node(im, json_array_get(o->inputs, i), t, origin, line, &in_id[i],
		                       in_kind[i], e)))
			return st;
		if ((st = edge_put(im, in_id[i], job, "consumed-by", t, job, e)))
			return st;
	}
	for (size_t j = 0; j < no; j++) {
		int64_t out_id;
		char out_kind[16];
		if ((st = dataset_node(im, json_array_get(o->outputs, j), t, origin, line, &out_id,
		                       out_kind, e)))
			return st;
		for (size_t i = 0; i < ni; i++) {
			int served = strcmp(in_kind[i], "model") == 0 && strcmp(out_kind, "endpoint") == 0;
			if ((st = edge_put(im, in_id[i], out_id, served ? "served-by" : "derived-from", t,
			                   job, e)))
				return st;
		}
	}
	return KM_OK;
}

static km_status one_event(importer *im, json_t *ev, const char *raw, size_t raw_len,
                           const char *origin, size_t line, km_err *e)
{
	ol_event o;
	km_status st = event_check(ev, origin, line, &o, e);
	if (!st) {
		im->r->events++;
		st = event_write(im, raw, raw_len, &o, origin, line, e);
	}
	return st;
}

static int raw_len_ok(int n) { return n > 0 && n < INT32_MAX; }

static size_t line_of(const char *buf, size_t pos, size_t *cache_pos, size_t *cache_line)
{
	for (size_t i = *cache_pos; i < pos; i++)
		if (buf[i] == '\n')
			(*cache_line)++;
	*cache_pos = pos;
	return *cache_line;
}

static size_t skip_ws(const char *buf, size_t len, size_t i)
{
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
		i++;
	return i;
}

/* One JSON array of events: each element parsed on its own so that a bad
 * one is named by the line it starts on. */
static km_status import_array(importer *im, const char *buf, size_t len, size_t i,
                              const char *origin, km_err *e)
{
	size_t cpos = 0, cline = 1;
	i = skip_ws(buf, len, i + 1);
	if (i < len && buf[i] == ']')
		return skip_ws(buf, len, i + 1) == len ? KM_OK
		       : km_fail(e, KM_EINVAL, "%s:%zu: text after the array", origin,
		                 line_of(buf, i, &cpos, &cline));
	for (;;) {
		size_t line = line_of(buf, i, &cpos, &cline);
		if (i >= len)
			return km_fail(e, KM_EINVAL, "%s:%zu: truncated JSON: the array is not closed",
			               origin, line);
		json_error_t jerr;
		json_t *ev = json_loadb(buf + i, len - i, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
		if (!ev)
			return km_fail(e, KM_EINVAL, "%s:%zu: not valid JSON (line %d column %d of the "
			               "element: %s)", origin, line, jerr.line, jerr.column, jerr.text);
		km_status st = raw_len_ok(jerr.position) ? one_event(im, ev, buf + i, (size_t)jerr.position, origin, line, e)
		               : km_fail(e, KM_ELIMIT, "%s:%zu: an event larger than 2 GiB", origin, line);
		json_decref(ev);
		if (st)
			return st;
		i = skip_ws(buf, len, i + (size_t)jerr.position);
		if (i < len && buf[i] == ',') {
			i = skip_ws(buf, len, i + 1);
			continue;
		}
		if (i < len && buf[i] == ']')
			break;
		return km_fail(e, KM_EINVAL, "%s:%zu: truncated JSON: expected ',' or ']' after an event",
		               origin, line_of(buf, i, &cpos, &cline));
	}
	i = skip_ws(buf, len, i + 1);
	if (i != len)
		return km_fail(e, KM_EINVAL, "%s:%zu: text after the array", origin,
		               line_of(buf, i, &cpos, &cline));
	return KM_OK;
}

static km_status import_text(importer *im, const char *buf, size_t len, const char *origin, km_err *e)
{
	if (memchr(buf, '\0', len))
		return km_fail(e, KM_EINVAL, "%s: holds a NUL byte: not JSON text", origin);
	size_t i = skip_ws(buf, len, 0);
	if (i < len && buf[i] == '[')
		return import_array(im, buf, len, i, origin, e);
	/* JSON lines. */
	size_t line = 0;
	for (size_t start = 0; start < len;) {
		const char *nl = memchr(buf + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - buf) : len;
		line++;
		size_t a = skip_ws(buf, end, start);
		if (a < end) {
			json_error_t jerr;
			json_t *ev = json_loadb(buf + a, end - a, JSON_REJECT_DUPLICATES, &jerr);
			if (!ev)
				return km_fail(e, KM_EINVAL, "%s:%zu: not valid JSON (column %d: %s)", origin,
				               line, jerr.column, jerr.text);
			km_status st = raw_len_ok((int)(end - a)) ? one_event(im, ev, buf + a, end - a, origin, line, e)
			               : km_fail(e, KM_ELIMIT, "%s:%zu: an event larger than 2 GiB", origin, line);
			json_decref(ev);
			if (st)
				return st;
		}
		start = end + 1;
	}
	return KM_OK;
}

static km_status read_all(int fd, const char *origin, char **out, size_t *outlen, km_err *e)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return km_fail(e, KM_ENOMEM, "out of memory");
	for (;;) {
		if (n == cap) {
			if (cap >= IMPORT_FILE_MAX) {
				free(buf);
				return km_fail(e, KM_ELIMIT, "%s is larger than 1 GiB: split it", origin);
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return km_fail(e, KM_ENOMEM, "out of memory reading %s", origin);
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return km_fail(e, KM_EIO, "cannot read %s: %s", origin, strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*outlen = n;
	return KM_OK;
}

static km_status import_file(importer *im, const char *path, km_err *e)
{
	int fd;
	km_status st = km_caller_open(path, O_RDONLY, 0, &fd, e);
	if (st)
		return st;
	char *buf;
	size_t len;
	st = read_all(fd, path, &buf, &len, e);
	close(fd);
	if (st)
		return st;
	im->r->files++;
	st = import_text(im, buf, len, path, e);
	free(buf);
	return st;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int event_file_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".json") == 0) ||
	                       (l > 6 && strcmp(n + l - 6, ".jsonl") == 0));
}

static km_status import_dir(importer *im, const char *dir, km_err *e)
{
	km_caller_rights_begin();
	DIR *d = opendir(dir);
	int err = errno;
	char **names = NULL;
	size_t n = 0, cap = 0;
	km_status st = KM_OK;
	if (!d) {
		km_caller_rights_end();
		return km_fail(e, err == EACCES ? KM_EDENIED : KM_EIO, "cannot read the directory %s: %s",
		               dir, strerror(err));
	}
	struct dirent *de;
	while (!st && (de = readdir(d))) {
		if (!event_file_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn) {
				st = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			st = km_fail(e, KM_ENOMEM, "out of memory");
		else
			n++;
	}
	closedir(d);
	km_caller_rights_end();
	qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; !st && i < n; i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
			st = km_fail(e, KM_EINVAL, "path too long: %s/%s", dir, names[i]);
		else
			st = import_file(im, path, e);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!st && n == 0)
		st = km_fail(e, KM_ENOTFOUND, "%s holds no *.json or *.jsonl files", dir);
	return st;
}

/* path: a file, a directory or "-"; or (buf != NULL) a buffer named path. */
static km_status import_impl(km_ctx *ctx, const char *path, const char *buf, size_t len,
                             km_lineage_import_result *r, km_err *e)
{
	memset(r, 0, sizeof *r);
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_IMPORT, NULL, e);
	if (st)
		return st;
	int is_dir = 0;
	if (!buf && strcmp(path, "-") != 0) {
		struct stat sb;
		km_caller_rights_begin();
		int rc = stat(path, &sb);
		int err = errno;
		km_caller_rights_end();
		if (rc != 0)
			return km_fail(e, err == ENOENT ? KM_ENOTFOUND : KM_EIO, "cannot read %s: %s", path,
			               strerror(err));
		is_dir = S_ISDIR(sb.st_mode);
	}
	char *stdin_buf = NULL;
	if (!buf && strcmp(path, "-") == 0) {
		if ((st = read_all(STDIN_FILENO, "standard input", &stdin_buf, &len, e)))
			return st;
		buf = stdin_buf;
	}
	importer im = {.ctx = ctx, .db = km_db(ctx), .rules = km_config_get(ctx)->lineage_mappings,
	               .r = r, .now = km_ctx_now(ctx)};
	/* A bulk import touches edge pages all over the index: a larger page
	 * cache for its transaction keeps them from spilling to the WAL and
	 * being read back (measured 2x on 100k events); put back after. */
	km_db_exec(im.db, "PRAGMA cache_size = -262144", e);
	if (!(st = km_tx_begin(ctx, e))) {
		/* The kind columns' CHECK (kind IN (...)) makes SQLite build a
		 * temporary index of the list for every row written: a third of
		 * the import's time (callgrind, 10k events).  Every kind this
		 * loop writes is one of a fixed set checked here first (static
		 * edge kinds; node kinds through import_kind_ok, rule kinds by
		 * the config), so the loop's statements are compiled without it.
		 * The pragma is compile-time state: turning it off again expires
		 * those statements, and everything after (the audit row, any
		 * other writer on this connection) is checked as before. */
		km_db_exec(im.db, "PRAGMA ignore_check_constraints = ON", e);
		/* Triggers off for the loop's statements too: the only ones
		 * its tables have are lineage_edges' (db.c, v13), which mark a
		 * source's packed row stale one edge at a time (measured: a
		 * third more CPU for the import); the import keeps its own list
		 * of sources instead (dirty_add) and repacks them below.  Like
		 * the pragma, the setting is compile-time state: toggling it
		 * expires prepared statements, and it is back on before the
		 * audit row. */
		int trig_was = 1;
		sqlite3_db_config(im.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, -1, &trig_was);
		sqlite3_db_config(im.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
		if (!(st = importer_prepare(&im, e))) {
			if (buf) {
				r->files = 1;
				st = import_text(&im, buf, len, strcmp(path, "-") == 0 ? "stdin" : path, e);
			} else if (is_dir) {
				st = import_dir(&im, path, e);
			} else {
				st = import_file(&im, path, e);
			}
		}
		importer_free(&im);
		km_err ige;
		km_db_exec(im.db, "PRAGMA ignore_check_constraints = OFF", &ige);
		sqlite3_db_config(im.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, trig_was, NULL);
		/* Repack the sources whose edges this import wrote, and any row
		 * another writer marked stale, in the same transaction: walks
		 * after it read one row per node again. */
		if (!st)
			st = lineage_adj_refresh(im.db, im.dirty, im.ndirty, e);
		free(im.dirty);
		if (!st) {
			json_t *d = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "files", (json_int_t)r->files,
			                      "events", (json_int_t)r->events, "imported", (json_int_t)r->imported,
			                      "duplicates", (json_int_t)r->duplicates, "nodes", (json_int_t)r->nodes,
			                      "edges", (json_int_t)r->edges, "mapped", (json_int_t)r->mapped,
			                      "unmapped", (json_int_t)r->unmapped);
			st = km_tx_audit(ctx, km_action_name(KM_ACT_LINEAGE_IMPORT), ctx->op_object, "ok", d, e);
		}
		if (!st) {
			r->audit_seq = 0;
			st = km_tx_commit(ctx, e);
			if (!st) {
				uint64_t seq = 0;
				km_err ig;
				if (audit_size(im.db, &seq, &ig) == KM_OK)
					r->audit_seq = seq;
			}
		} else {
			km_tx_rollback(ctx);
			/* Nothing of it stays: the counts say so. */
			uint64_t files = r->files;
			memset(r, 0, sizeof *r);
			r->files = files;
		}
	}
	km_err ig;
	km_db_exec(im.db, "PRAGMA cache_size = -16384", &ig);
	free(stdin_buf);
	return st;
}

static void import_object(char *obj, size_t cap, const char *path)
{
	snprintf(obj, cap, "lineage:%s", path);
}

km_status km_lineage_import(km_ctx *ctx, const char *path, km_lineage_import_result *out, km_err *e)
{
	char obj[300];
	import_object(obj, sizeof obj, path ? path : "");
	km_op_begin(ctx, KM_ACT_LINEAGE_IMPORT, obj);
	km_lineage_import_result ig;
	if (!out)
		out = &ig;
	if (!path || !*path) {
		memset(out, 0, sizeof *out);
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a file, a directory or - for "
		                              "standard input"), e);
	}
	return km_op_end(ctx, import_impl(ctx, path, NULL, 0, out, e), e);
}

km_status km_lineage_import_buffer(km_ctx *ctx, const char *buf, size_t len, const char *origin,
                                   km_lineage_import_result *out, km_err *e)
{
	char obj[300];
	import_object(obj, sizeof obj, origin ? origin : "buffer");
	km_op_begin(ctx, KM_ACT_LINEAGE_IMPORT, obj);
	km_lineage_import_result ig;
	return km_op_end(ctx, import_impl(ctx, origin ? origin : "buffer", buf ? buf : "", len,
	                                  out ? out : &ig, e), e);
}

km_status km_lineage_pull(km_ctx *ctx, const char *url, const km_lineage_pull_opts *o,
                          km_lineage_pull_result *out, km_err *e)
{
	char obj[300];
	import_object(obj, sizeof obj, url ? url : "");
	km_op_begin(ctx, KM_ACT_LINEAGE_IMPORT, obj);
	km_lineage_pull_result ig;
	km_lineage_pull_opts defaults = {0};
	if (!out)
		out = &ig;
	if (!o)
		o = &defaults;
	memset(out, 0, sizeof *out);
	if (!url || !*url)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name the lineage server's URL"), e);
	/* Authorise before talking to anyone. */
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_IMPORT, NULL, e);
	char *text = NULL;
	size_t len = 0;
	lineage_pull_stats ps;
	if (!st)
		st = lineage_pull_fetch(url, o, &text, &len, &ps, e);
	if (!st) {
		out->pages = ps.pages;
		out->requests = ps.requests;
		out->retries = ps.retries;
		out->retry_after_waits = ps.retry_after_waits;
		st = import_impl(ctx, url, text, len, &out->import, e);
	}
	free(text);
	return km_op_end(ctx, st, e);
}

/* ---------------------------------------------------------------- walks */

/* The visited set of a walk: node id -> index in the visit arrays, open
 * addressing.  The arrays are in visit order, which is the BFS queue. */
typedef struct walk {
	/* Node ids are rowids, dense in every catalogue seen: ids in
	 * [dense_lo, dense_lo + dense_n) index dense[] directly (visit + 1, 0
	 * for none), sized once from the table's id range (walk_dense); any
	 * other id (a node added since, or a sparse catalogue) goes to the
	 * hash.  The hash was a tenth of a wide walk, its growth and
	 * first-touch page faults more. */
	uint32_t *dense;
	int64_t dense_lo;
	size_t dense_n;
	int64_t *slot_key;
	uint32_t *slot_val;
	size_t slots;          /* power of two */
	size_t hashed;         /* ids in the hash */
	int64_t *node;
	uint32_t *parent;      /* UINT32_MAX for a start */
	const char **edge;
	uint32_t *depth;
	int64_t *when;         /* first_seen of the edge that reached it (provenance reads it;
	                        * an impact walk reading packed rows may leave it 0) */
	size_t n, cap;
	uint64_t cycles;
	char cycle_example[512];
} walk;

#define NO_PARENT UINT32_MAX

static void walk_free(walk *w)
{
	km_big_free(w->dense, w->dense_n * sizeof *w->dense);
	free(w->slot_key);
	free(w->slot_val);
	km_big_free(w->node, w->cap * sizeof *w->node);
	km_big_free(w->parent, w->cap * sizeof *w->parent);
	km_big_free(w->edge, w->cap * sizeof *w->edge);
	km_big_free(w->depth, w->cap * sizeof *w->depth);
	km_big_free(w->when, w->cap * sizeof *w->when);
}

static size_t hash64(int64_t k)
{
	uint64_t x = (uint64_t)k * 0x9E3779B97F4A7C15ull;
	return (size_t)(x ^ (x >> 29));
}

static km_status walk_rehash(walk *w, km_err *e)
{
	size_t ns = w->slots ? w->slots * 2 : 1024;
	int64_t *nk = malloc(ns * sizeof *nk);
	uint32_t *nv = malloc(ns * sizeof *nv);
	if (!nk || !nv) {
		free(nk);
		free(nv);
		return km_fail(e, KM_ENOMEM, "out of memory walking the lineage graph");
	}
	for (size_t i = 0; i < ns; i++)
		nk[i] = -1;
	for (size_t i = 0; i < w->n; i++) {
		if ((uint64_t)w->node[i] - (uint64_t)w->dense_lo < w->dense_n)
			continue;
		size_t h = hash64(w->node[i]) & (ns - 1);
		while (nk[h] != -1)
			h = (h + 1) & (ns - 1);
		nk[h] = w->node[i];
		nv[h] = (uint32_t)i;
	}
	free(w->slot_key);
	free(w->slot_val);
	w->slot_key = nk;
	w->slot_val = nv;
	w->slots = ns;
	return KM_OK;
}

/* Index of node, or NO_PARENT. */
static inline uint32_t walk_find(const walk *w, int64_t node)
{
	uint64_t d = (uint64_t)node - (uint64_t)w->dense_lo;
	if (d < w->dense_n)
		return w->dense[d] - 1;
	if (!w->slots)
		return NO_PARENT;
	size_t h = hash64(node) & (w->slots - 1);
	while (w->slot_key[h] != -1) {
		if (w->slot_key[h] == node)
			return w->slot_val[h];
		h = (h + 1) & (w->slots - 1);
	}
	return NO_PARENT;
}

/* Double the visit arrays: every array moved, or none (their sizes are
 * all cap's). */
static km_status walk_grow(walk *w, km_err *e)
{
	size_t nc = w->cap ? w->cap * 2 : 256;
	int64_t *node = km_big_realloc(NULL, 0, nc * sizeof *node);
	uint32_t *parent = km_big_realloc(NULL, 0, nc * sizeof *parent);
	const char **edge = km_big_realloc(NULL, 0, nc * sizeof *edge);
	uint32_t *depth = km_big_realloc(NULL, 0, nc * sizeof *depth);
	int64_t *when = km_big_realloc(NULL, 0, nc * sizeof *when);
#define MOVE(f)                                          \
	do {                                                 \
		if (w->n)                                        \
			memcpy(f, w->f, w->n * sizeof *f);           \
		km_big_free(w->f, w->cap * sizeof *f);           \
		w->f = f;                                        \
	} while (0)
	if (!node || !parent || !edge || !depth || !when) {
		km_big_free(node, nc * sizeof *node);
		km_big_free(parent, nc * sizeof *parent);
		km_big_free(edge, nc * sizeof *edge);
		km_big_free(depth, nc * sizeof *depth);
		km_big_free(when, nc * sizeof *when);
		return km_fail(e, KM_ENOMEM, "out of memory walking the lineage graph");
	}
	MOVE(node);
	MOVE(parent);
	MOVE(edge);
	MOVE(depth);
	MOVE(when);
#undef MOVE
	w->cap = nc;
	return KM_OK;
}

static km_status walk_add(walk *w, int64_t node, uint32_t parent, const char *edge, int64_t when,
                          km_err *e)
{
	if (w->n >= UINT32_MAX - 1)
		return km_fail(e, KM_ELIMIT, "the lineage walk reached more than 4 billion nodes");
	uint64_t d = (uint64_t)node - (uint64_t)w->dense_lo;
	if (d >= w->dense_n && (w->hashed + 1) * 2 > w->slots && walk_rehash(w, e))
		return e->code;
	if (w->n == w->cap && walk_grow(w, e))
		return e->code;
	size_t i = w->n++;
	w->node[i] = node;
	w->parent[i] = parent;
	w->edge[i] = edge;
	w->depth[i] = parent == NO_PARENT ? 0 : w->depth[parent] + 1;
	w->when[i] = when;
	if (d < w->dense_n) {
		w->dense[d] = (uint32_t)i + 1;
		return KM_OK;
	}
	w->hashed++;
	size_t h = hash64(node) & (w->slots - 1);
	while (w->slot_key[h] != -1)
		h = (h + 1) & (w->slots - 1);
	w->slot_key[h] = node;
	w->slot_val[h] = (uint32_t)i;
	return KM_OK;
}

/* 16 MiB of index at most (4M ids), so that under mlockall the mapping stays
 * well inside KM_MEMLOCK_HEADROOM; touched only where visited. */
size_t lineage_walk_dense_max = (size_t)1 << 22;

/* Give the walk its direct index over the catalogue's node ids (two
 * seeks: min and max of the rowid, as two subqueries; one min(), max()
 * aggregate scans the table, 11 ms at 100k nodes).  Freshly mapped, so the pages of ids a
 * walk never visits stay untouched: a narrow walk touches a few.  A span too
 * wide for that (ids set by hand) or a failure leaves the hash to do it
 * all. */
static void walk_dense(walk *w, sqlite3 *db)
{
	sqlite3_stmt *q;
	if (w->n || sqlite3_prepare_v2(db, "SELECT (SELECT min(id) FROM lineage_nodes), (SELECT max(id) FROM lineage_nodes)", -1, &q, NULL))
		return;
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) == SQLITE_INTEGER) {
		int64_t lo = sqlite3_column_int64(q, 0), hi = sqlite3_column_int64(q, 1);
		uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
		if (span <= lineage_walk_dense_max && (w->dense = km_big_zalloc((size_t)span * sizeof *w->dense))) {
			w->dense_lo = lo;
			w->dense_n = (size_t)span;
		}
	}
	sqlite3_finalize(q);
}

static const char *edge_kind_static(const unsigned char *s)
{
	static const char *const kinds[] = {"derived-from", "consumed-by", "served-by", "protected-by"};
	for (size_t i = 0; i < KM_ARRAY_LEN(kinds); i++)
		if (s && strcmp((const char *)s, kinds[i]) == 0)
			return kinds[i];
	return "unknown";
}

static km_status node_load(sqlite3_stmt *q, int64_t id, km_lineage_node *n, km_err *e);

/* An edge from visit i to an already visited node: a cycle if that node is
 * i itself or one of i's ancestors on its path. */
static void walk_note_back_edge(walk *w, uint32_t i, uint32_t target, sqlite3_stmt *nodeq)
{
	/* An ancestor is never deeper than i: most edges to a visited node
	 * (a sibling's child) are settled by this one comparison. */
	if (w->depth[target] > w->depth[i])
		return;
	for (uint32_t a = i; a != NO_PARENT; a = w->parent[a]) {
		if (a != target)
			continue;
		w->cycles++;
		if (!w->cycle_example[0] && nodeq) {
			/* target -> ... -> i -> target, labels joined. */
			uint32_t chain[64];
			size_t k = 0;
			for (uint32_t b = i; k < 64; b = w->parent[b]) {
				chain[k++] = b;
				if (b == target)
					break;
			}
			size_t used = 0;
			for (size_t j = k; j-- > 0 && used < sizeof w->cycle_example;) {
				km_lineage_node n;
				km_err ig;
				char lab[256];
				if (node_load(nodeq, w->node[chain[j]], &n, &ig) == KM_OK)
					km_lineage_node_label(&n, lab, sizeof lab);
				else
					snprintf(lab, sizeof lab, "#%" PRId64, w->node[chain[j]]);
				used += (size_t)snprintf(w->cycle_example + used, sizeof w->cycle_example - used,
				                         "%s -> ", lab);
			}
			if (used < sizeof w->cycle_example) {
				km_lineage_node n;
				km_err ig;
				if (node_load(nodeq, w->node[target], &n, &ig) == KM_OK)
					km_lineage_node_label(&n, w->cycle_example + used,
					                      sizeof w->cycle_example - used);
			}
		}
		return;
	}
}

#define NODE_COLS "id, kind, namespace, name, version, coalesce(asset_id, 0), first_seen"
#define NODE_COLS_N "n.id, n.kind, n.namespace, n.name, n.version, coalesce(n.asset_id, 0), n.first_seen"

/* Text column c into buf, cut to cap - 1 bytes (a large walk loads every
 * node it reached: snprintf's formatting was a tenth of it). */
static void col_copy(sqlite3_stmt *q, int c, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(q, c);
	size_t l = t ? (size_t)sqlite3_column_bytes(q, c) : 0;
	if (l >= cap)
		l = cap - 1;
	if (l)
		memcpy(buf, t, l);
	buf[l] = '\0';
}

static void node_from_row(sqlite3_stmt *q, int c, km_lineage_node *n)
{
	n->id = sqlite3_column_int64(q, c);
	int k = km_lineage_kind_parse((const char *)sqlite3_column_text(q, c + 1));
	n->kind = k < 0 ? KM_LN_DATASET : (km_lineage_kind)k;
	col_copy(q, c + 2, n->namespace_, sizeof n->namespace_);
	col_copy(q, c + 3, n->name, sizeof n->name);
	col_copy(q, c + 4, n->version, sizeof n->version);
	n->asset_id = sqlite3_column_int64(q, c + 5);
	n->first_seen = sqlite3_column_int64(q, c + 6);
}

static km_status node_load(sqlite3_stmt *q, int64_t id, km_lineage_node *n, km_err *e)
{
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, id);
	int rc = sqlite3_step(q);
	km_status st = KM_OK;
	if (rc == SQLITE_ROW)
		node_from_row(q, 0, n);
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no lineage node #%" PRId64, id);
	else
		st = km_db_fail(sqlite3_db_handle(q), e, "lineage (node)");
	sqlite3_reset(q);
	return st;
}

/* Where a walk reads its edges: q (bound: ?1 the node, ?2 the as-of time;
 * columns: next node, edge kind, first_seen, last_seen), and, for
 * downstream walks, the packed table first (adj; NULL: q alone).  With
 * all_at nonzero, once that many nodes are known the walk has proved wide
 * and reads the whole packed table in one scan rather than a row per node
 * (callgrind, bench/lineage_speed: a row read is about 3,400 instructions,
 * the scan of 90k rows 81 M, the price of some 24,000 row reads; the wide
 * key's walk was 0.54 G instructions switching at 10,000 known nodes and
 * 0.76 G reading a row per node, the narrow one's 0.04 G a row per node
 * and 0.10 G scanning from the start). */
typedef struct walk_edges {
	sqlite3_stmt *q;
	lineage_adj_reader *adj;
	size_t all_at;
	int64_t as_of;
	int (*first_hop_ok)(void *c, uint32_t i, int64_t first_seen, int64_t last_seen);
	void *c;
	sqlite3_stmt *nodeq;  /* labels for the cycle example */
} walk_edges;

/* The edge from visit i to next: a new visit, or a back edge noted. */
static km_status walk_edge(walk *w, uint32_t i, int64_t next, const char *kind, int64_t first_seen,
                           sqlite3_stmt *nodeq, km_err *e)
{
	uint32_t seen = walk_find(w, next);
	if (seen == NO_PARENT)
		return walk_add(w, next, i, kind, first_seen, e);
	/* An ancestor is never deeper than i: most edges to a visited node
	 * (a sibling's child) are settled here, without a call. */
	if (w->depth[seen] <= w->depth[i])
		walk_note_back_edge(w, i, seen, nodeq);
	return KM_OK;
}

/* Visit i's edges from the packed table: 1 done, 0 its row is stale (read
 * lineage_edges), -1 failed (e set).  The same edges in the same order as
 * the SQL read, so the same tree. */
static int walk_expand_packed(walk *w, uint32_t i, const walk_edges *we, km_err *e)
{
	size_t n;
	int timed;
	int first_hop = we->first_hop_ok && w->parent[i] == NO_PARENT;
	int got = lineage_adj_reader_edges(we->adj, w->node[i], we->as_of, first_hop, &n, &timed, e);
	if (got <= 0)
		return got;
	const lineage_adj_edge *ed = we->adj->edges;
	for (size_t k = 0; k < n; k++) {
		/* Untimed: every edge was first seen by as_of, and the visit's
		 * `when` stays 0 (only provenance, which reads SQL, uses it). */
		if (timed && (ed[k].first_seen > we->as_of ||
		              (first_hop && !we->first_hop_ok(we->c, i, ed[k].first_seen, ed[k].last_seen))))
			continue;
		/* walk_edge, with the kind's name looked up only for a new visit
		 * (one edge in ten on the wide benchmark). */
		uint32_t seen = walk_find(w, ed[k].dst);
		if (seen == NO_PARENT) {
			if (walk_add(w, ed[k].dst, i, lineage_adj_kind_name(ed[k].kind), ed[k].first_seen, e))
				return -1;
		} else if (w->depth[seen] <= w->depth[i]) {
			walk_note_back_edge(w, i, seen, we->nodeq);
		}
	}
	return 1;
}

static km_status walk_expand_sql(walk *w, uint32_t i, const walk_edges *we, km_err *e)
{
	sqlite3_stmt *q = we->q;
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, w->node[i]);
	sqlite3_bind_int64(q, 2, we->as_of);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (we->first_hop_ok && w->parent[i] == NO_PARENT &&
		    !we->first_hop_ok(we->c, i, sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3)))
			continue;
		km_status st = walk_edge(w, i, sqlite3_column_int64(q, 0),
		                         edge_kind_static(sqlite3_column_text(q, 1)), sqlite3_column_int64(q, 2),
		                         we->nodeq, e);
		if (st) {
			sqlite3_reset(q);
			return st;
		}
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? KM_OK : km_db_fail(sqlite3_db_handle(q), e, "lineage (walk)");
}

/* Expand the visits from *next_visit on, breadth first: every visit up to
 * and including `through` (SIZE_MAX: to the end), and past it only while
 * fewer than max_known (0: no limit) nodes are known.  *next_visit is the
 * first visit not expanded.  Visits are expanded whole and in order, so
 * stopping and going on later builds the same tree. */
static km_status walk_run_to(walk *w, size_t *next_visit, size_t through, size_t max_known,
                             const walk_edges *we, km_err *e)
{
	for (size_t i = *next_visit; i < w->n; i = ++*next_visit) {
		if (i > through && (max_known == 0 || w->n >= max_known))
			break;
		if (we->adj && we->all_at && !we->adj->all && w->n >= we->all_at &&
		    lineage_adj_reader_load_all(we->adj, e))
			return e->code;
		int got = we->adj ? walk_expand_packed(w, (uint32_t)i, we, e) : 0;
		if (got < 0)
			return e->code;
		km_status st;
		if (!got && (st = walk_expand_sql(w, (uint32_t)i, we, e)))
			return st;
	}
	return KM_OK;
}

/* Every visit from `from` on. */
static km_status walk_run(walk *w, size_t from, const walk_edges *we, km_err *e)
{
	return walk_run_to(w, &from, SIZE_MAX, 0, we, e);
}

/* The path of visit i from its start, in steps[0..depth]. */
static size_t walk_path(const walk *w, uint32_t i, km_lineage_step *steps, const char *start_edge)
{
	size_t len = w->depth[i] + 1;
	size_t k = len;
	for (uint32_t a = i; a != NO_PARENT; a = w->parent[a]) {
		k--;
		steps[k].node = w->node[a];
		steps[k].edge = w->parent[a] == NO_PARENT ? start_edge : w->edge[a];
	}
	return len;
}

static uint32_t walk_max_depth(const walk *w)
{
	uint32_t m = 0;
	for (size_t i = 0; i < w->n; i++)
		if (w->depth[i] > m)
			m = w->depth[i];
	return m;
}

/* A walk reads in one read transaction: one snapshot for all its
 * statements (a concurrent import is seen whole or not at all), and one
 * file lock instead of one per statement (measured: 14% of a large walk
 * went to fcntl).
 *
 * It also reads the catalogue through a memory map (LINEAGE_MMAP_BYTES of
 * it), for its length only: a wide walk reads most of lineage_out and
 * lineage_nodes, and through SQLite's page cache every page was a copy
 * into fresh heap, at a page fault each (a third of a cold walk: 0.13 s
 * against 0.08 s mapped).  Not for the whole session: under mlockall the
 * pages a mapping touches stay locked until it goes, and the rest of
 * keyward (audit verify reads the whole log) has no need of it.  Nor where
 * every page is locked under a finite RLIMIT_MEMLOCK, which the map would
 * spend in full (km_memlock_bounded); where the map cannot be made, SQLite
 * reads as before.  Returns nonzero if it began one (2: mapped), for
 * read_end. */
#define LINEAGE_MMAP_BYTES "268435456"

static int read_begin(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		return 0;
	int mapped = !km_memlock_bounded() &&
	             sqlite3_exec(db, "PRAGMA mmap_size = " LINEAGE_MMAP_BYTES, NULL, NULL, NULL) == SQLITE_OK;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
		return 1 + mapped;
	if (mapped)
		sqlite3_exec(db, "PRAGMA mmap_size = 0", NULL, NULL, NULL);
	return 0;
}

static void read_end(sqlite3 *db, int began)
{
	if (began)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (began == 2)
		sqlite3_exec(db, "PRAGMA mmap_size = 0", NULL, NULL, NULL);
}

static km_status key_lookup(sqlite3 *db, const char *name, uint32_t version, int64_t *key_id, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(db, "SELECT id FROM keys WHERE name = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*key_id = sqlite3_column_int64(q, 0);
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no key named '%s'", name);
	else
		st = km_db_fail(db, e, "lineage (key)");
	sqlite3_finalize(q);
	if (st || version == 0)
		return st;
	int64_t have = 0;
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM key_versions WHERE key_id = %" PRId64
	         " AND version = %" PRIu32, *key_id, version);
	if ((st = km_db_int64(db, sql, &have, e)))
		return st;
	return have ? KM_OK : km_fail(e, KM_ENOTFOUND, "key '%s' has no version %" PRIu32, name, version);
}

/* Impact's seeds: the protection interval of each start node, for the
 * first hop's "consumed while protected" test. */
typedef struct impact_seed {
	uint32_t kek_version;
	int64_t from, to;
} impact_seed;

typedef struct impact_walk {
	impact_seed *seeds; /* by visit index, for starts */
} impact_walk;

static int impact_first_hop(void *c, uint32_t i, int64_t first, int64_t last)
{
	impact_walk *iw = c;
	return first < iw->seeds[i].to && last >= iw->seeds[i].from;
}

/* The starts of an impact walk: every node key_id (version 0: any of its
 * versions) protected at some time up to as_of, each with its interval
 * (the hull of them when it was protected more than once). */
static km_status impact_seeds(sqlite3 *db, int64_t key_id, uint32_t version, int64_t as_of, walk *w,
                             impact_walk *iw, km_err *e)
{
	sqlite3_stmt *seedq;
	size_t seed_cap = 0;
	km_status st = km_db_prepare(db, "SELECT node, kek_version, valid_from, valid_to FROM "
	                             "lineage_protection WHERE key_id = ?1 AND (?2 = 0 OR kek_version = ?2) "
	                             "AND valid_from <= ?3 ORDER BY valid_from, node", &seedq, e);
	if (st)
		return st;
	sqlite3_bind_int64(seedq, 1, key_id);
	sqlite3_bind_int64(seedq, 2, version);
	sqlite3_bind_int64(seedq, 3, as_of);
	int rc;
	while ((rc = sqlite3_step(seedq)) == SQLITE_ROW) {
		int64_t node = sqlite3_column_int64(seedq, 0);
		impact_seed s = {(uint32_t)sqlite3_column_int64(seedq, 1), sqlite3_column_int64(seedq, 2),
		                 sqlite3_column_int64(seedq, 3)};
		uint32_t seen = walk_find(w, node);
		if (seen != NO_PARENT) {
			/* Protected more than once (by two versions, or re-protected):
			 * the first hop may use any of its intervals' hull. */
			if (s.from < iw->seeds[seen].from)
				iw->seeds[seen].from = s.from;
			if (s.to > iw->seeds[seen].to)
				iw->seeds[seen].to = s.to;
			if (s.kek_version != iw->seeds[seen].kek_version)
				iw->seeds[seen].kek_version = 0;
			continue;
		}
		if ((st = walk_add(w, node, NO_PARENT, "protected-by", s.from, e)))
			break;
		if (w->n > seed_cap) {
			seed_cap = w->cap;
			impact_seed *ns = realloc(iw->seeds, seed_cap * sizeof *ns);
			if (!ns) {
				st = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			iw->seeds = ns;
		}
		iw->seeds[w->n - 1] = s;
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(db, e, "lineage (protection)");
	sqlite3_finalize(seedq);
	return st;
}

size_t lineage_impact_all_at = 10000;

#define IMPACT_EDGE_SQL "SELECT dst, kind, first_seen, last_seen FROM lineage_edges " \
                        "WHERE src = ?1 AND first_seen <= ?2"
#define NODE_BY_ID_SQL "SELECT " NODE_COLS " FROM lineage_nodes WHERE id = ?"

/* Visit i's depth, path (in steps: room for its depth + 1) and, for a
 * start, its protection; h->node is the caller's. */
static void impact_hit_rest(const walk *w, const impact_walk *iw, size_t i, km_lineage_step *steps,
                            km_lineage_hit *h)
{
	h->depth = w->depth[i];
	h->path_len = walk_path(w, (uint32_t)i, steps, "protected-by");
	h->path = steps;
	if (w->parent[i] == NO_PARENT) {
		h->kek_version = iw->seeds[i].kek_version;
		h->protected_from = iw->seeds[i].from;
		h->protected_to = iw->seeds[i].to;
	}
}

/* Visit i as a hit, its node loaded with nodeq. */
static km_status impact_hit(sqlite3_stmt *nodeq, const walk *w, const impact_walk *iw, size_t i,
                            km_lineage_step *steps, km_lineage_hit *h, km_err *e)
{
	memset(h, 0, sizeof *h);
	km_status st = node_load(nodeq, w->node[i], &h->node, e);
	if (!st)
		impact_hit_rest(w, iw, i, steps, h);
	return st;
}

/* Every visit's node, read in id order by one statement that steps to the
 * next row where the ids are close and seeks where they are not: a walk
 * that reached most of the graph loads its nodes at a step each instead
 * of a seek each (a third of a large walk's instructions went to loading
 * nodes one by one).  Strings go to one arena: namespace, name, version,
 * each NUL-ended, from pack[i].off. */
typedef struct node_pack {
	int64_t asset_id, first_seen;
	size_t off;
	km_lineage_kind kind;
} node_pack;

/* A walk's loaded nodes: pack[i] for visit i, strings in arena (bigbuf.h,
 * sizes kept to free by). */
typedef struct node_store {
	node_pack *pack;
	size_t pack_bytes;
	char *arena;
	size_t used, cap;
} node_store;

static void node_store_free(node_store *ns)
{
	km_big_free(ns->pack, ns->pack_bytes);
	km_big_free(ns->arena, ns->cap);
	memset(ns, 0, sizeof *ns);
}

static int id_pair_cmp(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;
	return (x[0] > y[0]) - (x[0] < y[0]);
}

static km_status arena_put(node_store *ns, const unsigned char *t, size_t l, km_err *e)
{
	if (ns->used + l + 1 > ns->cap) {
		size_t nc = (ns->cap + l + 1) * 2;
		char *na = km_big_realloc(ns->arena, ns->cap, nc);
		if (!na)
			return km_fail(e, KM_ENOMEM, "out of memory loading lineage nodes");
		ns->arena = na;
		ns->cap = nc;
	}
	if (l)
		memcpy(ns->arena + ns->used, t, l);
	ns->arena[ns->used + l] = '\0';
	ns->used += l + 1;
	return KM_OK;
}

#define NODE_SEEK_GAP 64

/* The visits as (node id, visit index), in id order.  Ids are rowids,
 * dense in most catalogues: where they span little more than the walk,
 * a slot per id in the span sorts them in one pass (qsort was a tenth of
 * a wide walk). */
static void ids_sorted(const walk *w, int64_t (*pairs)[2])
{
	size_t n = w->n;
	if (w->dense && !w->hashed) {
		/* Every visit is in the direct index: it is the sort. */
		size_t k = 0;
		for (size_t d = 0; d < w->dense_n && k < n; d++)
			if (w->dense[d]) {
				pairs[k][0] = w->dense_lo + (int64_t)d;
				pairs[k++][1] = w->dense[d] - 1;
			}
		return;
	}
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	for (size_t i = 0; i < n; i++) {
		if (w->node[i] < lo)
			lo = w->node[i];
		if (w->node[i] > hi)
			hi = w->node[i];
	}
	uint64_t span = n ? (uint64_t)hi - (uint64_t)lo + 1 : 0;
	uint32_t *slot = n && span <= 4 * (uint64_t)n + 4096 ? malloc((size_t)span * sizeof *slot) : NULL;
	if (slot) {
		memset(slot, 0xff, (size_t)span * sizeof *slot);
		for (size_t i = 0; i < n; i++)
			slot[(uint64_t)w->node[i] - (uint64_t)lo] = (uint32_t)i;
		size_t k = 0;
		for (uint64_t d = 0; d < span; d++)
			if (slot[d] != UINT32_MAX) {
				pairs[k][0] = (int64_t)((uint64_t)lo + d);
				pairs[k++][1] = slot[d];
			}
		free(slot);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		pairs[i][0] = w->node[i];
		pairs[i][1] = (int64_t)i;
	}
	qsort(pairs, n, sizeof *pairs, id_pair_cmp);
}

static km_status walk_load_nodes(sqlite3 *db, const walk *w, node_store *ns, km_err *e)
{
	size_t n = w->n, pairs_bytes = (n ? n : 1) * sizeof(int64_t[2]);
	memset(ns, 0, sizeof *ns);
	ns->pack_bytes = (n ? n : 1) * sizeof *ns->pack;
	ns->cap = n * 40 + 64;
	int64_t(*pairs)[2] = km_big_realloc(NULL, 0, pairs_bytes);
	ns->pack = km_big_realloc(NULL, 0, ns->pack_bytes);
	ns->arena = km_big_realloc(NULL, 0, ns->cap);
	sqlite3_stmt *q = NULL;
	km_status st = KM_OK;
	if (!pairs || !ns->pack || !ns->arena) {
		st = km_fail(e, KM_ENOMEM, "out of memory loading lineage nodes");
		goto out;
	}
	ids_sorted(w, pairs);
	if ((st = km_db_prepare(db, "SELECT " NODE_COLS " FROM lineage_nodes WHERE id >= ?1 ORDER BY id", &q,
	                        e)))
		goto out;
	int rc = SQLITE_DONE, have = 0;
	int64_t row = 0;
	for (size_t k = 0; k < n && !st; k++) {
		int64_t want = pairs[k][0];
		if (!have || row > want || want - row > NODE_SEEK_GAP) {
			sqlite3_reset(q);
			sqlite3_bind_int64(q, 1, want);
			rc = sqlite3_step(q);
			have = rc == SQLITE_ROW;
			row = have ? sqlite3_column_int64(q, 0) : 0;
		}
		while (have && row < want) {
			rc = sqlite3_step(q);
			have = rc == SQLITE_ROW;
			row = have ? sqlite3_column_int64(q, 0) : 0;
		}
		if (!have && rc != SQLITE_DONE) {
			st = km_db_fail(db, e, "lineage (nodes)");
			break;
		}
		if (!have || row != want) {
			st = km_fail(e, KM_ENOTFOUND, "no lineage node #%" PRId64, want);
			break;
		}
		node_pack *p = &ns->pack[pairs[k][1]];
		int kind = km_lineage_kind_parse((const char *)sqlite3_column_text(q, 1));
		p->kind = kind < 0 ? KM_LN_DATASET : (km_lineage_kind)kind;
		p->asset_id = sqlite3_column_int64(q, 5);
		p->first_seen = sqlite3_column_int64(q, 6);
		p->off = ns->used;
		for (int c = 2; c <= 4 && !st; c++)
			st = arena_put(ns, sqlite3_column_text(q, c), (size_t)sqlite3_column_bytes(q, c), e);
	}
out:
	sqlite3_finalize(q);
	km_big_free(pairs, pairs_bytes);
	if (st)
		node_store_free(ns);
	return st;
}

static void str_cut(char *buf, size_t cap, const char *s, size_t *len)
{
	size_t l = strlen(s);
	*len = l + 1;
	if (l >= cap)
		l = cap - 1;
	memcpy(buf, s, l);
	buf[l] = '\0';
}

static void node_from_pack(const walk *w, const node_store *ns, size_t i, km_lineage_node *n)
{
	const node_pack *p = &ns->pack[i];
	const char *t = ns->arena + p->off;
	size_t l;
	n->id = w->node[i];
	n->kind = p->kind;
	str_cut(n->namespace_, sizeof n->namespace_, t, &l);
	t += l;
	str_cut(n->name, sizeof n->name, t, &l);
	t += l;
	str_cut(n->version, sizeof n->version, t, &l);
	n->asset_id = p->asset_id;
	n->first_seen = p->first_seen;
}

km_status lineage_impact_run(km_ctx *ctx, const char *key_name, uint32_t version, int64_t as_of,
                             int (*cb)(void *c, const km_lineage_hit *h), void *cbctx,
                             km_lineage_impact_summary *sum, km_err *e)
{
	memset(sum, 0, sizeof *sum);
	snprintf(sum->key, sizeof sum->key, "%s", key_name);
	sum->version = version;
	sum->as_of = as_of;
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return st;
	sqlite3 *db = km_db(ctx);
	int64_t key_id = 0;
	int began = read_begin(db);
	if ((st = key_lookup(db, key_name, version, &key_id, e))) {
		read_end(db, began);
		return st;
	}
	walk w = {0};
	impact_walk iw = {0};
	sqlite3_stmt *edgeq = NULL, *nodeq = NULL;
	km_lineage_step *steps = NULL;
	node_store ns = {0};
	lineage_adj_reader adj = {0};
	walk_edges we = {.adj = &adj, .all_at = lineage_impact_all_at, .as_of = as_of,
	                 .first_hop_ok = impact_first_hop, .c = &iw};
	if ((st = km_db_prepare(db, IMPACT_EDGE_SQL, &edgeq, e)) ||
	    (st = km_db_prepare(db, NODE_BY_ID_SQL, &nodeq, e)) ||
	    (st = lineage_adj_reader_open(db, &adj, e)))
		goto out;
	walk_dense(&w, db);
	if ((st = impact_seeds(db, key_id, version, as_of, &w, &iw, e)))
		goto out;
	we.q = edgeq;
	we.nodeq = nodeq;
	if ((st = walk_run(&w, 0, &we, e)))
		goto out;
	sum->cycles = w.cycles;
	snprintf(sum->cycle_example, sizeof sum->cycle_example, "%s", w.cycle_example);
	steps = malloc(((size_t)walk_max_depth(&w) + 1) * sizeof *steps);
	if (!steps && w.n) {
		st = km_fail(e, KM_ENOMEM, "out of memory");
		goto out;
	}
	if ((st = walk_load_nodes(db, &w, &ns, e)))
		goto out;
	/* Cleared once: each hit rewrites every field but the bytes after its
	 * strings' NULs (a memset of 1 KB per hit was a tenth of a wide walk). */
	km_lineage_hit h;
	memset(&h, 0, sizeof h);
	for (size_t i = 0; i < w.n; i++) {
		node_from_pack(&w, &ns, i, &h.node);
		h.kek_version = 0;
		h.protected_from = h.protected_to = 0;
		impact_hit_rest(&w, &iw, i, steps, &h);
		sum->counts[h.node.kind]++;
		sum->total++;
		if (cb && cb(cbctx, &h))
			break;
	}
out:
	lineage_adj_reader_close(&adj);
	sqlite3_finalize(edgeq);
	sqlite3_finalize(nodeq);
	free(steps);
	node_store_free(&ns);
	free(iw.seeds);
	walk_free(&w);
	read_end(db, began);
	return st;
}

/* ---------------------------------------------------------------- a walk step by step */

struct km_lineage_walk {
	walk w;
	impact_walk iw;
	size_t next;              /* the first visit not expanded */
	int64_t as_of;
	km_lineage_step *steps;   /* the last hit's path */
	size_t steps_cap;
};

void km_lineage_walk_free(km_lineage_walk *lw)
{
	if (!lw)
		return;
	walk_free(&lw->w);
	free(lw->iw.seeds);
	free(lw->steps);
	free(lw);
}

static void walk_object(char *obj, size_t cap, const char *key_name, uint32_t version)
{
	snprintf(obj, cap, "key:%s", key_name ? key_name : "");
	if (version)
		snprintf(obj + strlen(obj), cap - strlen(obj), "@%" PRIu32, version);
}

km_status km_lineage_walk_impact(km_ctx *ctx, const char *key_name, uint32_t version, int64_t as_of,
                                 km_lineage_walk **out, km_err *e)
{
	char obj[200];
	walk_object(obj, sizeof obj, key_name, version);
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, obj);
	*out = NULL;
	if (!key_name || !*key_name)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a key"), e);
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return km_op_end(ctx, st, e);
	km_lineage_walk *lw = calloc(1, sizeof *lw);
	if (!lw)
		return km_op_end(ctx, km_fail(e, KM_ENOMEM, "out of memory"), e);
	lw->as_of = as_of ? as_of : km_ctx_now(ctx);
	sqlite3 *db = km_db(ctx);
	int64_t key_id = 0;
	int began = read_begin(db);
	if (!(st = key_lookup(db, key_name, version, &key_id, e))) {
		walk_dense(&lw->w, db);
		st = impact_seeds(db, key_id, version, lw->as_of, &lw->w, &lw->iw, e);
	}
	read_end(db, began);
	if (st)
		km_lineage_walk_free(lw);
	else
		*out = lw;
	return km_op_end(ctx, st, e);
}

km_status km_lineage_walk_expand(km_ctx *ctx, km_lineage_walk *lw, size_t through, size_t max_known,
                                 km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, "lineage:walk");
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st || lw->next >= lw->w.n || (lw->next > through && max_known && lw->w.n >= max_known))
		return km_op_end(ctx, st, e);
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *edgeq = NULL, *nodeq = NULL;
	lineage_adj_reader adj = {0};
	int began = read_begin(db);
	/* A row per node: the console expands a little at a time. */
	if (!(st = km_db_prepare(db, IMPACT_EDGE_SQL, &edgeq, e)) &&
	    !(st = km_db_prepare(db, NODE_BY_ID_SQL, &nodeq, e)) &&
	    !(st = lineage_adj_reader_open(db, &adj, e))) {
		walk_edges we = {.q = edgeq, .adj = &adj, .as_of = lw->as_of, .first_hop_ok = impact_first_hop,
		                 .c = &lw->iw, .nodeq = nodeq};
		st = walk_run_to(&lw->w, &lw->next, through, max_known, &we, e);
	}
	lineage_adj_reader_close(&adj);
	sqlite3_finalize(edgeq);
	sqlite3_finalize(nodeq);
	read_end(db, began);
	return km_op_end(ctx, st, e);
}

size_t km_lineage_walk_known(const km_lineage_walk *lw) { return lw->w.n; }
size_t km_lineage_walk_expanded(const km_lineage_walk *lw) { return lw->next; }
int64_t km_lineage_walk_as_of(const km_lineage_walk *lw) { return lw->as_of; }
uint64_t km_lineage_walk_cycles(const km_lineage_walk *lw) { return lw->w.cycles; }

km_status km_lineage_walk_hits(km_ctx *ctx, km_lineage_walk *lw, size_t from, size_t to,
                               int (*cb)(void *c, const km_lineage_hit *h), void *cbctx, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, "lineage:walk");
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (to > lw->w.n)
		to = lw->w.n;
	if (st || from >= to)
		return km_op_end(ctx, st, e);
	size_t need = (size_t)walk_max_depth(&lw->w) + 1;
	if (need > lw->steps_cap) {
		km_lineage_step *ns = realloc(lw->steps, need * sizeof *ns);
		if (!ns)
			return km_op_end(ctx, km_fail(e, KM_ENOMEM, "out of memory"), e);
		lw->steps = ns;
		lw->steps_cap = need;
	}
	/* need-to-know redaction on the way out, as km_lineage_impact */
	lineage_trampoline t = {.ctx = ctx, .redact = km_lineage_redacting(ctx), .hit_cb = cb, .c = cbctx};
	int (*out_cb)(void *, const km_lineage_hit *) = t.redact ? lineage_trampoline_hit : cb;
	void *out_c = t.redact ? (void *)&t : cbctx;
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *nodeq;
	int began = read_begin(db);
	if (!(st = km_db_prepare(db, NODE_BY_ID_SQL, &nodeq, e))) {
		for (size_t i = from; i < to; i++) {
			km_lineage_hit h;
			if ((st = impact_hit(nodeq, &lw->w, &lw->iw, i, lw->steps, &h, e)) || out_cb(out_c, &h))
				break;
		}
		sqlite3_finalize(nodeq);
	}
	read_end(db, began);
	char no_cycle[8] = "";
	st = lineage_trampoline_end(&t, st, no_cycle, sizeof no_cycle, e);
	return km_op_end(ctx, st, e);
}

km_status km_lineage_impact(km_ctx *ctx, const char *key_name, uint32_t version, int64_t as_of,
                            int (*cb)(void *c, const km_lineage_hit *h), void *cbctx,
                            km_lineage_impact_summary *sum, km_err *e)
{
	char obj[200];
	snprintf(obj, sizeof obj, "key:%s", key_name ? key_name : "");
	if (version)
		snprintf(obj + strlen(obj), sizeof obj - strlen(obj), "@%" PRIu32, version);
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, obj);
	km_lineage_impact_summary ig;
	if (!sum)
		sum = &ig;
	if (!key_name || !*key_name)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a key"), e);
	/* need-to-know redaction on the way out (lineage_redact.c) */
	lineage_trampoline t = {.ctx = ctx, .redact = km_lineage_redacting(ctx), .hit_cb = cb, .c = cbctx};
	km_status st = lineage_impact_run(ctx, key_name, version, as_of ? as_of : km_ctx_now(ctx),
	                                  t.redact ? lineage_trampoline_hit : cb, t.redact ? (void *)&t : cbctx,
	                                  sum, e);
	st = lineage_trampoline_end(&t, st, sum->cycle_example, sizeof sum->cycle_example, e);
	return km_op_end(ctx, st, e);
}

/* ---------------------------------------------------------------- nodes */

static km_status find_impl(km_ctx *ctx, const char *spec, km_lineage_node *out, const char *want_kind,
                           km_err *e);

km_status lineage_node_find_run(km_ctx *ctx, const char *spec, km_lineage_node *out,
                                const char *want_kind, km_err *e)
{
	return find_impl(ctx, spec, out, want_kind, e);
}

static km_status find_impl(km_ctx *ctx, const char *spec, km_lineage_node *out, const char *want_kind,
                           km_err *e)
{
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *q = NULL;
	km_status st;
	const char *p = spec[0] == '#' ? spec + 1 : spec;
	if (*p && strspn(p, "0123456789") == strlen(p) && strlen(p) < 19) {
		if ((st = km_db_prepare(db, "SELECT " NODE_COLS " FROM lineage_nodes WHERE id = ?", &q, e)))
			return st;
		st = node_load(q, strtoll(p, NULL, 10), out, e);
		sqlite3_finalize(q);
		return st;
	}
	char name[KM_LINEAGE_NAME_MAX + 1], version[KM_LINEAGE_VERSION_MAX + 1] = "";
	const char *at = strrchr(spec, '@');
	size_t nl = at ? (size_t)(at - spec) : strlen(spec);
	if (nl == 0 || nl > KM_LINEAGE_NAME_MAX || (at && strlen(at + 1) > KM_LINEAGE_VERSION_MAX))
		return km_fail(e, KM_EINVAL, "'%.200s' is not a node: give #ID, KIND:NAME[@VERSION] or "
		               "NAME[@VERSION]", spec);
	memcpy(name, spec, nl);
	name[nl] = '\0';
	if (at)
		snprintf(version, sizeof version, "%s", at + 1);
	/* A catalogue model named plainly ("fraud@3") is "model:fraud". */
	char alt[KM_LINEAGE_NAME_MAX + 16];
	snprintf(alt, sizeof alt, "%s:%s", want_kind ? want_kind : "", name);
	if ((st = km_db_prepare(db, "SELECT " NODE_COLS " FROM lineage_nodes WHERE (name = ?1 OR "
	                        "(?4 <> ':' AND namespace = 'keyward' AND name = ?4)) AND version = ?2 "
	                        "AND (?3 IS NULL OR kind = ?3) ORDER BY id LIMIT 6", &q, e)))
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, version, -1, SQLITE_STATIC);
	if (want_kind)
		sqlite3_bind_text(q, 3, want_kind, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 3);
	sqlite3_bind_text(q, 4, alt, -1, SQLITE_STATIC);
	km_lineage_node found[6];
	size_t n = 0;
	int rc;
	while (n < 6 && (rc = sqlite3_step(q)) == SQLITE_ROW)
		node_from_row(q, 0, &found[n++]);
	sqlite3_finalize(q);
	if (n == 0)
		return km_fail(e, KM_ENOTFOUND, "no lineage %s named '%.200s'%s%.100s%s", want_kind ? want_kind : "node",
		               name, version[0] ? " at version " : "", version,
		               version[0] ? "" : " without a version (name one with @VERSION)");
	if (n > 1) {
		char list[400] = "";
		size_t used = 0;
		for (size_t i = 0; i < n && i < 5 && used < sizeof list; i++) {
			char lab[200];
			km_lineage_node_label(&found[i], lab, sizeof lab);
			used += (size_t)snprintf(list + used, sizeof list - used, "%s#%" PRId64 " %s",
			                         i ? ", " : "", found[i].id, lab);
		}
		return km_fail(e, KM_EINVAL, "'%.200s' names %s nodes (%s%s): give #ID", spec,
		               n > 5 ? "more than 5" : "several", list, n > 5 ? ", ..." : "");
	}
	*out = found[0];
	return KM_OK;
}

km_status km_lineage_node_find(km_ctx *ctx, const char *spec, km_lineage_node *out, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, spec);
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (!st)
		st = find_impl(ctx, spec ? spec : "", out, NULL, e);
	if (!st)
		st = km_lineage_node_redact(ctx, out, e);
	return km_op_end(ctx, st, e);
}

/* ---------------------------------------------------------------- provenance */

km_status lineage_provenance_run(km_ctx *ctx, const char *spec,
                                 int (*cb)(void *c, const km_lineage_input *in), void *cbctx,
                                 km_lineage_provenance_summary *sum, km_err *e)
{
	memset(sum, 0, sizeof *sum);
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return st;
	if (!strchr(spec, '@') && spec[0] != '#')
		return km_fail(e, KM_EUSAGE, "name the model's version: MODEL@VERSION (or its node, #ID)");
	sqlite3 *db = km_db(ctx);
	int began = read_begin(db);
	if ((st = find_impl(ctx, spec, &sum->model, "model", e))) {
		read_end(db, began);
		return st;
	}
	walk w = {0};
	sqlite3_stmt *edgeq = NULL, *nodeq = NULL, *protq = NULL, *laterq = NULL;
	km_lineage_step *steps = NULL;
	if ((st = km_db_prepare(db, "SELECT src, kind, first_seen FROM lineage_edges WHERE dst = ?1 "
	                        "AND kind IN ('derived-from', 'served-by') AND first_seen <= ?2",
	                        &edgeq, e)) ||
	    (st = km_db_prepare(db, "SELECT " NODE_COLS " FROM lineage_nodes WHERE id = ?", &nodeq, e)) ||
	    (st = km_db_prepare(db, "SELECT k.name, p.kek_version, kv.state, kv.activated, kv.deactivated, "
	                        "p.key_id FROM lineage_protection p JOIN keys k ON k.id = p.key_id "
	                        "JOIN key_versions kv ON kv.key_id = p.key_id AND kv.version = p.kek_version "
	                        "WHERE p.node = ?1 AND p.valid_from <= ?2 AND p.valid_to > ?2 "
	                        "ORDER BY p.valid_from DESC LIMIT 1", &protq, e)) ||
	    (st = km_db_prepare(db, "SELECT count(*), coalesce(min(created), 0) FROM key_versions "
	                        "WHERE key_id = ? AND version > ?", &laterq, e)))
		goto out;
	if ((st = walk_add(&w, sum->model.id, NO_PARENT, "model", sum->model.first_seen, e)) ||
	    (st = walk_run(&w, 0, &(walk_edges){.q = edgeq, .as_of = INT64_MAX, .nodeq = nodeq}, e)))
		goto out;
	sum->cycles = w.cycles;
	snprintf(sum->cycle_example, sizeof sum->cycle_example, "%s", w.cycle_example);
	steps = malloc(((size_t)walk_max_depth(&w) + 1) * sizeof *steps);
	if (!steps) {
		st = km_fail(e, KM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 1; i < w.n; i++) {
		km_lineage_input in;
		memset(&in, 0, sizeof in);
		if ((st = node_load(nodeq, w.node[i], &in.hit.node, e)))
			goto out;
		in.hit.depth = w.depth[i];
		in.hit.path_len = walk_path(&w, (uint32_t)i, steps, "model");
		in.hit.path = steps;
		in.consumed = w.when[i];
		sqlite3_reset(protq);
		sqlite3_bind_int64(protq, 1, w.node[i]);
		sqlite3_bind_int64(protq, 2, in.consumed);
		int rc = sqlite3_step(protq);
		if (rc == SQLITE_ROW) {
			snprintf(in.key, sizeof in.key, "%s", (const char *)sqlite3_column_text(protq, 0));
			in.kek_version = (uint32_t)sqlite3_column_int64(protq, 1);
			snprintf(in.state, sizeof in.state, "%s", (const char *)sqlite3_column_text(protq, 2));
			in.activated = sqlite3_column_int64(protq, 3);
			in.deactivated = sqlite3_column_int64(protq, 4);
			int64_t key_id = sqlite3_column_int64(protq, 5);
			sqlite3_reset(laterq);
			sqlite3_bind_int64(laterq, 1, key_id);
			sqlite3_bind_int64(laterq, 2, in.kek_version);
			if (sqlite3_step(laterq) == SQLITE_ROW) {
				in.later_versions = (uint32_t)sqlite3_column_int64(laterq, 0);
				in.next_rotation = sqlite3_column_int64(laterq, 1);
			}
			sqlite3_reset(laterq);
			sum->protected_inputs++;
		} else if (rc != SQLITE_DONE) {
			sqlite3_reset(protq);
			st = km_db_fail(db, e, "lineage (protection)");
			goto out;
		}
		sqlite3_reset(protq);
		sum->inputs++;
		if (cb && cb(cbctx, &in))
			break;
	}
out:
	sqlite3_finalize(edgeq);
	sqlite3_finalize(nodeq);
	sqlite3_finalize(protq);
	sqlite3_finalize(laterq);
	free(steps);
	walk_free(&w);
	read_end(db, began);
	return st;
}

km_status km_lineage_provenance(km_ctx *ctx, const char *model_spec,
                                int (*cb)(void *c, const km_lineage_input *in), void *cbctx,
                                km_lineage_provenance_summary *sum, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, model_spec);
	km_lineage_provenance_summary ig;
	if (!sum)
		sum = &ig;
	if (!model_spec || !*model_spec) {
		memset(sum, 0, sizeof *sum);
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a model: MODEL@VERSION"), e);
	}
	/* redaction and the approvals behind each key version (lineage_redact.c) */
	lineage_trampoline t = {.ctx = ctx, .redact = km_lineage_redacting(ctx), .input_cb = cb, .c = cbctx};
	km_status st = lineage_provenance_run(ctx, model_spec, lineage_trampoline_input, &t, sum, e);
	if (!st && t.redact)
		st = km_lineage_node_redact(ctx, &sum->model, e);
	st = lineage_trampoline_end(&t, st, sum->cycle_example, sizeof sum->cycle_example, e);
	return km_op_end(ctx, st, e);
}

/* ---------------------------------------------------------------- show, export */

static void protection_from_row(sqlite3_stmt *q, km_lineage_protection *p)
{
	memset(p, 0, sizeof *p);
	p->node = sqlite3_column_int64(q, 0);
	p->asset_id = sqlite3_column_int64(q, 1);
	snprintf(p->key, sizeof p->key, "%s", (const char *)sqlite3_column_text(q, 2));
	p->kek_version = (uint32_t)sqlite3_column_int64(q, 3);
	p->valid_from = sqlite3_column_int64(q, 4);
	p->valid_to = sqlite3_column_int64(q, 5);
}

static void edge_from_row(sqlite3_stmt *q, int c, km_lineage_edge *ed)
{
	ed->src = sqlite3_column_int64(q, c);
	ed->dst = sqlite3_column_int64(q, c + 1);
	ed->kind = edge_kind_static(sqlite3_column_text(q, c + 2));
	ed->first_seen = sqlite3_column_int64(q, c + 3);
	ed->last_seen = sqlite3_column_int64(q, c + 4);
	ed->job = sqlite3_column_int64(q, c + 5);
}

#define PROT_SQL "SELECT p.node, p.asset_id, k.name, p.kek_version, p.valid_from, p.valid_to " \
	"FROM lineage_protection p JOIN keys k ON k.id = p.key_id"
#define EDGE_COLS "e.src, e.dst, e.kind, e.first_seen, e.last_seen, coalesce(e.job, 0)"

static km_status show_impl(km_ctx *ctx, const char *spec, const km_lineage_show_cbs *cbs, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	km_lineage_node n;
	if (st || (st = find_impl(ctx, spec, &n, NULL, e)))
		return st;
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *q = NULL;
	if (cbs->node) {
		if ((st = km_db_prepare(db, "SELECT facets FROM lineage_nodes WHERE id = ?", &q, e)))
			return st;
		sqlite3_bind_int64(q, 1, n.id);
		const char *f = sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
		km_lineage_node shown = n;
		/* facets hold names (schemas, sources): withheld when redacting */
		if ((st = km_lineage_node_redact(ctx, &shown, e))) {
			sqlite3_finalize(q);
			return st;
		}
		cbs->node(cbs->c, &shown, km_lineage_redacting(ctx) ? NULL : f);
		sqlite3_finalize(q);
	}
	static const char *const edge_sql[2] = {
		"SELECT " EDGE_COLS ", " NODE_COLS_N " FROM lineage_edges e JOIN lineage_nodes n ON n.id = e.dst "
		"WHERE e.src = ? ORDER BY e.kind, n.name",
		"SELECT " EDGE_COLS ", " NODE_COLS_N " FROM lineage_edges e JOIN lineage_nodes n ON n.id = e.src "
		"WHERE e.dst = ? ORDER BY e.kind, n.name",
	};
	for (int incoming = 0; cbs->edge && incoming < 2; incoming++) {
		if ((st = km_db_prepare(db, edge_sql[incoming], &q, e)))
			return st;
		sqlite3_bind_int64(q, 1, n.id);
		int rc;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			km_lineage_edge ed;
			km_lineage_node other;
			edge_from_row(q, 0, &ed);
			node_from_row(q, 6, &other);
			if ((st = km_lineage_node_redact(ctx, &other, e))) {
				sqlite3_finalize(q);
				return st;
			}
			cbs->edge(cbs->c, &ed, &other, incoming);
		}
		sqlite3_finalize(q);
		if (rc != SQLITE_DONE)
			return km_db_fail(db, e, "lineage (edges)");
	}
	if (cbs->protection) {
		if ((st = km_db_prepare(db, PROT_SQL " WHERE p.node = ? ORDER BY p.valid_from", &q, e)))
			return st;
		sqlite3_bind_int64(q, 1, n.id);
		while (sqlite3_step(q) == SQLITE_ROW) {
			km_lineage_protection p;
			protection_from_row(q, &p);
			cbs->protection(cbs->c, &p);
		}
		sqlite3_finalize(q);
	}
	return KM_OK;
}

km_status km_lineage_show(km_ctx *ctx, const char *spec, const km_lineage_show_cbs *cbs, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, spec);
	if (!spec || !*spec)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a node"), e);
	return km_op_end(ctx, show_impl(ctx, spec, cbs, e), e);
}

static km_status export_impl(km_ctx *ctx, const km_lineage_export_cbs *cbs, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return st;
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *q = NULL;
	int stop = 0, rc = SQLITE_DONE;
	if (cbs->node) {
		if ((st = km_db_prepare(db, "SELECT " NODE_COLS " FROM lineage_nodes ORDER BY id", &q, e)))
			return st;
		while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			km_lineage_node n;
			node_from_row(q, 0, &n);
			if ((st = km_lineage_node_redact(ctx, &n, e))) {
				sqlite3_finalize(q);
				return st;
			}
			stop = cbs->node(cbs->c, &n);
		}
		sqlite3_finalize(q);
		if (!stop && rc != SQLITE_DONE)
			return km_db_fail(db, e, "lineage (export)");
	}
	if (cbs->edge && !stop) {
		if ((st = km_db_prepare(db, "SELECT " EDGE_COLS " FROM lineage_edges e ORDER BY e.src, e.dst, e.kind",
		                        &q, e)))
			return st;
		while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			km_lineage_edge ed;
			edge_from_row(q, 0, &ed);
			stop = cbs->edge(cbs->c, &ed);
		}
		sqlite3_finalize(q);
		if (!stop && rc != SQLITE_DONE)
			return km_db_fail(db, e, "lineage (export)");
	}
	if (cbs->protection && !stop) {
		if ((st = km_db_prepare(db, PROT_SQL " ORDER BY p.node, p.valid_from", &q, e)))
			return st;
		while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			km_lineage_protection p;
			protection_from_row(q, &p);
			stop = cbs->protection(cbs->c, &p);
		}
		sqlite3_finalize(q);
		if (!stop && rc != SQLITE_DONE)
			return km_db_fail(db, e, "lineage (export)");
	}
	return KM_OK;
}

km_status km_lineage_export(km_ctx *ctx, const km_lineage_export_cbs *cbs, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, "lineage");
	return km_op_end(ctx, export_impl(ctx, cbs, e), e);
}

/* ---- rewrap batches ------------------------------------------------------ */

/* "Open" intervals end at the largest integer (db.c's LINEAGE_FOREVER). */
#define LINEAGE_FOREVER_SQL "9223372036854775807"

km_status lineage_rewrapped(km_ctx *ctx, int64_t key_id, uint32_t from_version, uint32_t to_version,
                            int64_t first_id, int64_t last_id, km_err *e)
{
	/* Open the new intervals from the open old ones first (the same nodes:
	 * the asset's versioned node, and its unversioned one while it is the
	 * newest), then close the old ones.  The caller passes only ranges in
	 * which every asset of the key under from_version moved (it splits a
	 * batch around the ones it could not move), so no asset is looked up.
	 * The unary + keeps SQLite on the table's asset-ordered key (one
	 * contiguous range) instead of by_key's (key, version) prefix, which
	 * spans every asset of the version and made each batch cost as much as
	 * the whole version (EXPLAIN QUERY PLAN; docs/benchmarks.md). */
	static const char *const sql[] = {
		"INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, valid_from, valid_to) "
		"SELECT p.node, p.asset_id, p.key_id, ?4, ?5, " LINEAGE_FOREVER_SQL " FROM lineage_protection p "
		"WHERE p.asset_id BETWEEN ?1 AND ?2 AND p.valid_to = " LINEAGE_FOREVER_SQL
		" AND +p.key_id = ?3 AND +p.kek_version = ?6",
		"UPDATE lineage_protection SET valid_to = ?5 WHERE asset_id BETWEEN ?1 AND ?2 AND valid_to = "
		LINEAGE_FOREVER_SQL " AND +key_id = ?3 AND +kek_version = ?6",
	};
	int64_t now = km_ctx_now(ctx);
	for (size_t i = 0; i < KM_ARRAY_LEN(sql); i++) {
		sqlite3_stmt *q;
		km_status st = km_db_prepare(ctx->db, sql[i], &q, e);
		if (st)
			return st;
		sqlite3_bind_int64(q, 1, first_id);
		sqlite3_bind_int64(q, 2, last_id);
		sqlite3_bind_int64(q, 3, key_id);
		sqlite3_bind_int64(q, 4, to_version);
		sqlite3_bind_int64(q, 5, now);
		sqlite3_bind_int64(q, 6, from_version);
		int rc = sqlite3_step(q);
		sqlite3_finalize(q);
		if (rc != SQLITE_DONE)
			return km_db_fail(ctx->db, e, "recording the rewrap in the lineage");
	}
	return KM_OK;
}
