/*
 * lineage_report.c — provenance and compromise-impact reports (lineage.h).
 *
 * A report is one JSON document built from the same walks as the CLI's
 * queries, plus what lets a reader check it against the audit log: the
 * newest signed tree head and the sequence numbers of the events the report
 * rests on (the imports that built the graph, and every event about the
 * keys it names).  The HTML form is rendered by the front end from this
 * document only.
 *
 * Redaction happens here, while the document is built, so no front end
 * ever holds a redacted name: dataset, job and namespace names and key
 * owners become pseudonyms "KIND-xxxxxxxxxx", an HSM MAC (row-MAC key) of
 * the name under the deployment, so the same name is the same pseudonym in
 * every report of the deployment and cannot be guessed back without the
 * HSM.  Key names, versions, states and times stay.
 */
#include "lineage.h"
#include "lineage_int.h"
#include "audit.h"
#include "ctx.h"
#include "db.h"
#include "pseudonym.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_EVENTS_MAX 100000

typedef struct report {
	km_ctx *ctx;
	int redact;
	km_pseudonyms *ps;
	json_t *labels;       /* node id -> label (as shown in this report) */
	json_t *keys;         /* key name -> true (for the audit events) */
	json_t *requests;     /* request id -> true (for the audit events) */
	json_t *approvals;    /* the list approval_item fills */
	json_t *items;
	km_status st;
	km_err *e;
} report;

/* The name itself, or its pseudonym when redacting (pseudonym.h). */
static const char *shown(report *r, const char *what, const char *name, char *buf, size_t cap)
{
	const char *s = km_pseudonym(r->ps, what, name, buf, cap);
	if (!r->st)
		r->st = km_pseudonyms_status(r->ps, r->e);
	return s;
}

/* Namespace "keyward" names keyward's own assets: KIND:NAME, whose NAME is
 * a dataset name like any other. */
static json_t *node_json(report *r, const km_lineage_node *n, char *label, size_t cap)
{
	const char *kind = km_lineage_kind_name(n->kind);
	char ns[300], nm[600];
	int own = strcmp(n->namespace_, "keyward") == 0;
	const char *shown_ns = own ? "keyward" : shown(r, "namespace", n->namespace_, ns, sizeof ns);
	const char *shown_name;
	char asset_kind[40] = "";
	if (own && strchr(n->name, ':')) {
		const char *colon = strchr(n->name, ':');
		snprintf(asset_kind, sizeof asset_kind, "%.*s:", (int)(colon - n->name), n->name);
		char tmp[600];
		const char *p = shown(r, kind, colon + 1, tmp, sizeof tmp);
		snprintf(nm, sizeof nm, "%s%s", asset_kind, p);
		shown_name = nm;
	} else {
		shown_name = shown(r, kind, n->name, nm, sizeof nm);
	}
	snprintf(label, cap, "%s%s%s%s%s", own ? "" : shown_ns, own ? "" : " ", shown_name,
	         n->version[0] ? "@" : "", n->version);
	json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)n->id, "kind", kind, "namespace",
	                      shown_ns, "name", shown_name, "label", label);
	json_object_set_new(o, "version", n->version[0] ? json_string(n->version) : json_null());
	char id[24];
	snprintf(id, sizeof id, "%" PRId64, n->id);
	json_object_set_new(r->labels, id, json_string(label));
	return o;
}

static json_t *path_json(report *r, const km_lineage_step *p, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char id[24];
		snprintf(id, sizeof id, "%" PRId64, p[i].node);
		json_t *lab = json_object_get(r->labels, id);
		json_array_append_new(arr, json_pack("{s:I,s:O?,s:s}", "node", (json_int_t)p[i].node, "label",
		                                     lab, "edge", p[i].edge));
	}
	return arr;
}

static json_t *time_json(int64_t t)
{
	if (!t || t == INT64_MAX)
		return json_null();
	char b[32];
	km_time_format(t, b);
	return json_string(b);
}

static int impact_item(void *c, const km_lineage_hit *h)
{
	report *r = c;
	char label[1200];
	json_t *o = node_json(r, &h->node, label, sizeof label);
	json_object_set_new(o, "depth", json_integer(h->depth));
	json_object_set_new(o, "path", path_json(r, h->path, h->path_len));
	if (h->depth == 0) {
		json_object_set_new(o, "key_version", h->kek_version ? json_integer(h->kek_version) : json_null());
		json_object_set_new(o, "protected_from", time_json(h->protected_from));
		json_object_set_new(o, "protected_to", time_json(h->protected_to));
	}
	json_array_append_new(r->items, o);
	return r->st != KM_OK;
}

/* The key's owner tag, shown or pseudonymised. */
static json_t *key_owner(report *r, const char *key)
{
	sqlite3_stmt *q;
	km_err ig;
	if (km_db_prepare(km_db(r->ctx), "SELECT t.value FROM key_tags t JOIN keys k ON k.id = t.key_id "
	                  "WHERE k.name = ? AND t.tag = 'owner'", &q, &ig))
		return json_null();
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	json_t *out = json_null();
	if (sqlite3_step(q) == SQLITE_ROW) {
		char b[300];
		json_decref(out);
		out = json_string(shown(r, "owner", (const char *)sqlite3_column_text(q, 0), b, sizeof b));
	}
	sqlite3_finalize(q);
	return out;
}

/* The requests behind a key version, with who signed them. */
static int approval_item(void *c, const km_lineage_approval *a)
{
	report *r = c;
	json_t *who = json_array();
	for (size_t i = 0; i < a->napprovers && i < KM_LINEAGE_APPROVERS_MAX; i++)
		json_array_append_new(who, json_pack("{s:s,s:s,s:o}", "approver", a->approvers[i].name, "decision",
		                                     a->approvers[i].approve ? "approved" : "rejected", "time",
		                                     time_json(a->approvers[i].time)));
	json_object_set_new(r->requests, a->request_id, json_true());
	json_array_append_new(r->approvals, json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:I}", "request", a->request_id,
	                                     "kind", a->kind, "state", a->state, "object", a->object,
	                                     "created", time_json(a->created), "decided", time_json(a->decided),
	                                     "approvers", who, "signatures", (json_int_t)a->napprovers));
	return 0;
}

static json_t *approvals_json(report *r, const char *key, uint32_t version)
{
	r->approvals = json_array();
	km_err e;
	km_err_clear(&e);
	km_status st = lineage_version_approvals_run(r->ctx, key, version, approval_item, r, &e);
	if (st && !r->st) {
		r->st = st;
		*r->e = e;
	}
	json_t *arr = r->approvals;
	r->approvals = NULL;
	return arr;
}

static int provenance_item(void *c, const km_lineage_input *in)
{
	report *r = c;
	char label[1200];
	json_t *o = node_json(r, &in->hit.node, label, sizeof label);
	json_object_set_new(o, "depth", json_integer(in->hit.depth));
	json_object_set_new(o, "consumed", time_json(in->consumed));
	json_object_set_new(o, "path", path_json(r, in->hit.path, in->hit.path_len));
	if (in->key[0]) {
		json_object_set_new(r->keys, in->key, json_true());
		json_object_set_new(o, "protected_by",
		                    json_pack("{s:s,s:I,s:s,s:o,s:o,s:I,s:o,s:o}", "key", in->key, "version",
		                              (json_int_t)in->kek_version, "state", in->state, "activated",
		                              time_json(in->activated), "deactivated", time_json(in->deactivated),
		                              "rotations_since", (json_int_t)in->later_versions, "next_rotation",
		                              time_json(in->next_rotation), "owner", key_owner(r, in->key)));
		json_object_set_new(json_object_get(o, "protected_by"), "approvals",
		                    approvals_json(r, in->key, in->kek_version));
	} else {
		json_object_set_new(o, "protected_by", json_null());
	}
	json_array_append_new(r->items, o);
	return r->st != KM_OK;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The newest signed tree head and the events the report rests on. */
static km_status evidence(report *r, json_t *doc, km_err *e)
{
	sqlite3 *db = km_db(r->ctx);
	uint64_t size = 0;
	uint8_t root[MERKLE_HASH_BYTES], sig[AUDIT_SIG_BYTES];
	int64_t t = 0;
	int have = 0;
	km_status st = audit_latest_head(db, &size, root, &t, sig, &have, e);
	if (st)
		return st;
	if (have) {
		char rh[2 * MERKLE_HASH_BYTES + 1], sh[2 * AUDIT_SIG_BYTES + 1];
		hex(root, sizeof root, rh);
		hex(sig, sizeof sig, sh);
		json_object_set_new(doc, "tree_head", json_pack("{s:I,s:s,s:o,s:s}", "size", (json_int_t)size,
		                                               "root", rh, "time", time_json(t), "signature", sh));
	} else {
		json_object_set_new(doc, "tree_head", json_null());
	}
	/* Imports that built the graph, and every event about the keys named. */
	json_t *seqs = json_array();
	sqlite3_stmt *q;
	if ((st = km_db_prepare(db, "SELECT seq FROM audit_events WHERE action = 'lineage.import' AND "
	                        "outcome = 'ok' UNION SELECT seq FROM audit_events WHERE object IN "
	                        "(SELECT 'key:' || value FROM json_each(?1) UNION "
	                        " SELECT 'key:' || j.value || '@' || kv.version FROM json_each(?1) j "
	                        " JOIN keys k ON k.name = j.value JOIN key_versions kv ON kv.key_id = k.id "
	                        " UNION SELECT 'request:' || value FROM json_each(?3)) "
	                        "ORDER BY 1 LIMIT ?2", &q, e))) {
		json_decref(seqs);
		return st;
	}
	json_t *names = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(r->keys, k, v)
		json_array_append_new(names, json_string(k));
	char *names_text = json_dumps(names, JSON_COMPACT);
	json_decref(names);
	sqlite3_bind_text(q, 1, names_text ? names_text : "[]", -1, SQLITE_TRANSIENT);
	free(names_text);
	sqlite3_bind_int(q, 2, REPORT_EVENTS_MAX);
	json_t *req_ids = json_array();
	json_object_foreach(r->requests, k, v)
		json_array_append_new(req_ids, json_string(k));
	char *req_text = json_dumps(req_ids, JSON_COMPACT);
	json_decref(req_ids);
	sqlite3_bind_text(q, 3, req_text ? req_text : "[]", -1, SQLITE_TRANSIENT);
	free(req_text);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		json_array_append_new(seqs, json_integer(sqlite3_column_int64(q, 0)));
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		json_decref(seqs);
		return km_db_fail(db, e, "lineage report (audit events)");
	}
	json_object_set_new(doc, "audit_events", seqs);
	return KM_OK;
}

static km_status report_impl(km_ctx *ctx, const km_lineage_report_opts *o, json_t **out, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return st;
	const km_actor *who = km_actor_get(ctx);
	int redact = o->redact || !km_role_need_to_know(who->roles) || km_lineage_redacting(ctx);
	report r = {.ctx = ctx, .redact = redact, .ps = km_pseudonyms_new(ctx, redact),
	            .labels = json_object(), .keys = json_object(), .requests = json_object(),
	            .items = json_array(), .e = e};
	if (!r.ps) {
		json_decref(r.labels);
		json_decref(r.keys);
		json_decref(r.requests);
		json_decref(r.items);
		return km_fail(e, KM_ENOMEM, "out of memory for the report");
	}
	json_t *doc = json_object();
	char now[32];
	km_time_format(km_ctx_now(ctx), now);
	json_object_set_new(doc, "report", json_string(o->kind == KM_LINEAGE_REPORT_IMPACT ? "compromise-impact"
	                                                                                  : "provenance"));
	json_object_set_new(doc, "deployment", json_string(ctx->deployment_id));
	json_object_set_new(doc, "generated", json_string(now));
	json_object_set_new(doc, "generated_by", json_string(who->name));
	json_object_set_new(doc, "redacted", json_boolean(r.redact));
	if (o->kind == KM_LINEAGE_REPORT_IMPACT) {
		char key[129];
		const char *at = strchr(o->subject, '@');
		size_t kl = at ? (size_t)(at - o->subject) : strlen(o->subject);
		uint32_t version = 0;
		if (kl == 0 || kl >= sizeof key) {
			st = km_fail(e, KM_EUSAGE, "KEY[@VERSION] expected");
		} else {
			memcpy(key, o->subject, kl);
			key[kl] = '\0';
			if (at) {
				char *end;
				unsigned long v = strtoul(at + 1, &end, 10);
				if (*end || v == 0 || v > UINT32_MAX)
					st = km_fail(e, KM_EUSAGE, "VERSION in KEY@VERSION must be a positive number");
				version = (uint32_t)v;
			}
		}
		km_lineage_impact_summary sum;
		int64_t as_of = o->as_of ? o->as_of : km_ctx_now(ctx);
		if (!st)
			st = lineage_impact_run(ctx, key, version, as_of, impact_item, &r, &sum, e);
		if (!st && r.st)
			st = r.st;
		if (!st) {
			json_object_set_new(r.keys, key, json_true());
			json_t *counts = json_object();
			for (int k = 0; k < KM_LN_KIND_COUNT; k++)
				json_object_set_new(counts, km_lineage_kind_name((km_lineage_kind)k),
				                    json_integer((json_int_t)sum.counts[k]));
			json_object_set_new(doc, "subject", json_pack("{s:s,s:o,s:o,s:o}", "key", key, "version",
			                                              version ? json_integer(version) : json_null(),
			                                              "as_of", time_json(as_of), "owner",
			                                              key_owner(&r, key)));
			json_object_set_new(doc, "summary", json_pack("{s:I,s:o,s:I}", "total", (json_int_t)sum.total,
			                                              "counts", counts, "cycles", (json_int_t)sum.cycles));
			json_object_set(doc, "nodes", r.items);
		}
	} else {
		km_lineage_provenance_summary sum;
		km_lineage_node model;
		char label[1200];
		/* The model first: every path starts at it. */
		if (strchr(o->subject, '@') && lineage_node_find_run(ctx, o->subject, &model, "model", e) == KM_OK)
			json_decref(node_json(&r, &model, label, sizeof label));
		st = lineage_provenance_run(ctx, o->subject, provenance_item, &r, &sum, e);
		if (!st && r.st)
			st = r.st;
		if (!st) {
			json_t *m = node_json(&r, &sum.model, label, sizeof label);
			json_object_set_new(doc, "subject", m);
			json_object_set_new(doc, "summary", json_pack("{s:I,s:I,s:I}", "inputs", (json_int_t)sum.inputs,
			                                              "protected_inputs", (json_int_t)sum.protected_inputs,
			                                              "cycles", (json_int_t)sum.cycles));
			json_object_set(doc, "upstream", r.items);
		}
	}
	if (!st)
		st = evidence(&r, doc, e);
	json_decref(r.requests);
	km_pseudonyms_free(r.ps);
	json_decref(r.labels);
	json_decref(r.keys);
	json_decref(r.items);
	if (st) {
		json_decref(doc);
		return st;
	}
	*out = doc;
	return KM_OK;
}

km_status km_lineage_report(km_ctx *ctx, const km_lineage_report_opts *o, json_t **out, km_err *e)
{
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, o && o->subject ? o->subject : "");
	*out = NULL;
	if (!o || !o->subject || !*o->subject)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name what the report is about"), e);
	return km_op_end(ctx, report_impl(ctx, o, out, e), e);
}
