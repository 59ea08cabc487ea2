/*
 * cli_lineage.c — `keyward lineage import|impact|provenance|show|export`.
 *
 * Thin: parse the arguments, call the core (lineage.h), render a table, a
 * few lines or one JSON document.  Every name from the graph reaches the
 * terminal through the cleaning printers of cli_out.c; DOT output is built
 * from the same cleaned text.
 */
#include "cli.h"
#include "html.h"
#include "lineage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *node_kind(const km_lineage_node *n) { return km_lineage_kind_name(n->kind); }

static json_t *node_json(const km_lineage_node *n)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(n->id));
	json_object_set_new(o, "kind", json_string(node_kind(n)));
	ui_json_set_text(o, "namespace", n->namespace_);
	ui_json_set_text(o, "name", n->name);
	json_object_set_new(o, "version", n->version[0] ? ui_json_text(n->version) : json_null());
	json_object_set_new(o, "asset", n->asset_id ? json_integer(n->asset_id) : json_null());
	json_object_set_new(o, "first_seen", ui_json_time(n->first_seen));
	return o;
}

static const char *label(const km_lineage_node *n, char *buf, size_t cap)
{
	km_lineage_node_label(n, buf, cap);
	return buf;
}

/* Option `name` as "RFC 3339" or "2026-11-30" -> Unix seconds; 0 if absent. */
static km_status parse_as_of_opt(const ui_args *a, const char *name, int64_t *out, km_err *e)
{
	const char *v = ui_arg(a, name);
	*out = 0;
	if (!v)
		return KM_OK;
	int64_t ms;
	km_status st = km_lineage_time_parse(v, 1, &ms, e);
	if (st)
		return km_wrap(e, "--%s", name);
	*out = ms / 1000 + (ms % 1000 ? 1 : 0);
	return KM_OK;
}

static km_status parse_as_of(const ui_args *a, int64_t *out, km_err *e)
{
	return parse_as_of_opt(a, "as-of", out, e);
}

/* --redact: the core redacts every answer of this session (lineage.h). */
static void apply_redact(ui_cli *cli, const ui_args *a)
{
	if (ui_arg_flag(a, "redact"))
		km_lineage_set_redact(cli->ctx, 1);
}

/* ---------------------------------------------------------------- import */

km_status ui_cmd_lineage_import(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_lineage_import_result r;
	km_status st = km_lineage_import(cli->ctx, a->pos[0], &r, e);
	if (st)
		return st;
	if (cli->json) {
		json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "files", (json_int_t)r.files,
		                      "events", (json_int_t)r.events, "imported", (json_int_t)r.imported,
		                      "duplicates", (json_int_t)r.duplicates, "nodes", (json_int_t)r.nodes,
		                      "edges", (json_int_t)r.edges, "mapped", (json_int_t)r.mapped,
		                      "unmapped", (json_int_t)r.unmapped, "audit_seq",
		                      (json_int_t)r.audit_seq);
		return ui_json_print(o, e);
	}
	ui_note("imported %" PRIu64 " of %" PRIu64 " events from %" PRIu64 " file%s (%" PRIu64
	        " already there): %" PRIu64 " nodes and %" PRIu64 " edges added; %" PRIu64
	        " dataset references mapped to assets, %" PRIu64 " not (audit event %" PRIu64 ")",
	        r.imported, r.events, r.files, r.files == 1 ? "" : "s", r.duplicates, r.nodes, r.edges,
	        r.mapped, r.unmapped, r.audit_seq);
	return KM_OK;
}

km_status ui_cmd_lineage_pull(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_lineage_pull_opts o = {0};
	uint64_t v;
	km_status st;
	if ((st = parse_as_of_opt(a, "since", &o.since, e)))
		return st;
	if ((st = ui_arg_u64(a, "timeout", 30, 1, 3600, &v, e)))
		return st;
	o.timeout_s = (uint32_t)v;
	if ((st = ui_arg_u64(a, "page-size", 100, 1, 10000, &v, e)))
		return st;
	o.page_size = (uint32_t)v;
	if ((st = ui_arg_u64(a, "attempts", 5, 1, 20, &v, e)))
		return st;
	o.attempts = (uint32_t)v;
	km_lineage_pull_result r;
	if ((st = km_lineage_pull(cli->ctx, a->pos[0], &o, &r, e)))
		return st;
	if (cli->json) {
		json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "pages", (json_int_t)r.pages,
		                      "requests", (json_int_t)r.requests, "retries", (json_int_t)r.retries,
		                      "retry_after_waits", (json_int_t)r.retry_after_waits,
		                      "events", (json_int_t)r.import.events, "imported",
		                      (json_int_t)r.import.imported, "duplicates", (json_int_t)r.import.duplicates,
		                      "nodes", (json_int_t)r.import.nodes, "edges", (json_int_t)r.import.edges);
		return ui_json_print(j, e);
	}
	ui_note("pulled %" PRIu64 " events in %" PRIu64 " page%s (%" PRIu64 " requests, %" PRIu64
	        " retried); imported %" PRIu64 " (%" PRIu64 " already there): %" PRIu64 " nodes and %" PRIu64
	        " edges added (audit event %" PRIu64 ")", r.import.events, r.pages, r.pages == 1 ? "" : "s",
	        r.requests, r.retries, r.import.imported, r.import.duplicates, r.import.nodes, r.import.edges,
	        r.import.audit_seq);
	return KM_OK;
}

/* ---------------------------------------------------------------- impact */

/* Labels of the nodes met so far, by id: a path's nodes are always met
 * before the node it leads to (breadth first). */
typedef struct walk_out {
	json_t *labels;   /* "id" -> label */
	json_t *arr;      /* --json */
	ui_table *t;
	char head[160];   /* how a path starts: "key:NAME[@V]" */
	km_status st;
} walk_out;

static json_t *path_json(walk_out *w, const km_lineage_step *p, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char id[24];
		snprintf(id, sizeof id, "%" PRId64, p[i].node);
		json_t *st = json_object();
		json_object_set_new(st, "node", json_integer(p[i].node));
		json_t *lab = json_object_get(w->labels, id);
		json_object_set(st, "label", lab ? lab : json_null());
		json_object_set_new(st, "edge", json_string(p[i].edge));
		json_array_append_new(arr, st);
	}
	return arr;
}

/* "a -derived-from-> b -served-by-> c", cut to fit. */
static void path_text(walk_out *w, const km_lineage_step *p, size_t n, const char *head, char *buf,
                      size_t cap)
{
	size_t used = (size_t)snprintf(buf, cap, "%s", head);
	for (size_t i = 0; i < n && used < cap; i++) {
		char id[24];
		snprintf(id, sizeof id, "%" PRId64, p[i].node);
		const char *lab = json_string_value(json_object_get(w->labels, id));
		used += (size_t)snprintf(buf + used, cap - used, " -%s-> %s", p[i].edge, lab ? lab : id);
	}
}

static int impact_cb(void *c, const km_lineage_hit *h)
{
	walk_out *w = c;
	char id[24], lab[800];
	snprintf(id, sizeof id, "%" PRId64, h->node.id);
	label(&h->node, lab, sizeof lab);
	json_object_set_new(w->labels, id, ui_json_text(lab));
	if (w->arr) {
		json_t *o = node_json(&h->node);
		json_object_set_new(o, "depth", json_integer(h->depth));
		json_object_set_new(o, "path", path_json(w, h->path, h->path_len));
		if (h->depth == 0) {
			json_object_set_new(o, "key_version", h->kek_version ? json_integer(h->kek_version) : json_null());
			json_object_set_new(o, "protected_from", ui_json_time(h->protected_from));
			json_object_set_new(o, "protected_to",
			                    h->protected_to == INT64_MAX ? json_null() : ui_json_time(h->protected_to));
		}
		return json_array_append_new(w->arr, o) != 0;
	}
	char depth[16], why[2048];
	snprintf(depth, sizeof depth, "%" PRIu32, h->depth);
	if (h->depth == 0) {
		char from[32], to[32];
		char ver[24] = "several versions";
		if (h->kek_version)
			snprintf(ver, sizeof ver, "v%" PRIu32, h->kek_version);
		snprintf(why, sizeof why, "protected by %s from %s%s%s", ver,
		         ui_time_str(h->protected_from, from), h->protected_to == INT64_MAX ? "" : " to ",
		         h->protected_to == INT64_MAX ? "" : ui_time_str(h->protected_to, to));
	} else {
		path_text(w, h->path, h->path_len, w->head, why, sizeof why);
	}
	const char *cells[] = {node_kind(&h->node), lab, depth, why};
	w->st = ui_table_add(w->t, cells, NULL);
	return w->st != KM_OK;
}

static km_status parse_key_version(const char *spec, char *key, size_t cap, uint32_t *version, km_err *e)
{
	const char *at = strchr(spec, '@');
	size_t kl = at ? (size_t)(at - spec) : strlen(spec);
	if (kl == 0 || kl >= cap)
		return km_fail(e, KM_EUSAGE, "KEY[@VERSION] expected, not \"%s\"", spec);
	memcpy(key, spec, kl);
	key[kl] = '\0';
	*version = 0;
	if (at) {
		uint64_t v;
		km_status st = ui_parse_u64(at + 1, "VERSION", 1, UINT32_MAX, &v, e);
		if (st)
			return st;
		*version = (uint32_t)v;
	}
	return KM_OK;
}

static json_t *counts_json(const uint64_t *counts)
{
	json_t *o = json_object();
	for (int k = 0; k < KM_LN_KIND_COUNT; k++)
		json_object_set_new(o, km_lineage_kind_name((km_lineage_kind)k), json_integer((json_int_t)counts[k]));
	return o;
}

static void counts_line(const uint64_t *counts, uint64_t total)
{
	char line[512];
	size_t used = (size_t)snprintf(line, sizeof line, "%" PRIu64 " node%s", total, total == 1 ? "" : "s");
	for (int k = 0; k < KM_LN_KIND_COUNT && used < sizeof line; k++)
		if (counts[k])
			used += (size_t)snprintf(line + used, sizeof line - used, ", %" PRIu64 " %s", counts[k],
			                         km_lineage_kind_name((km_lineage_kind)k));
	ui_print_line("%s", line);
}

km_status ui_cmd_lineage_impact(ui_cli *cli, const ui_args *a, km_err *e)
{
	apply_redact(cli, a);
	char key[129];
	uint32_t version = 0;
	int64_t as_of = 0;
	km_status st;
	if ((st = parse_key_version(a->pos[0], key, sizeof key, &version, e)) ||
	    (st = parse_as_of(a, &as_of, e)))
		return st;
	static const char *const hdr[] = {"KIND", "NODE", "DEPTH", "WHY"};
	walk_out w = {.labels = json_object()};
	snprintf(w.head, sizeof w.head, "key:%s", key);
	if (version)
		snprintf(w.head + strlen(w.head), sizeof w.head - strlen(w.head), "@%" PRIu32, version);
	if (cli->json)
		w.arr = json_array();
	else
		w.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	km_lineage_impact_summary sum;
	st = km_lineage_impact(cli->ctx, key, version, as_of, impact_cb, &w, &sum, e);
	if (!st && w.st)
		st = km_fail(e, w.st, "out of memory");
	json_decref(w.labels);
	if (st) {
		json_decref(w.arr);
		ui_table_free(w.t);
		return st;
	}
	if (cli->json) {
		json_t *o = json_object();
		ui_json_set_text(o, "key", sum.key);
		json_object_set_new(o, "version", version ? json_integer(version) : json_null());
		json_object_set_new(o, "as_of", ui_json_time(sum.as_of));
		json_object_set_new(o, "total", json_integer((json_int_t)sum.total));
		json_object_set_new(o, "counts", counts_json(sum.counts));
		json_object_set_new(o, "cycles", json_integer((json_int_t)sum.cycles));
		json_object_set_new(o, "cycle_example", sum.cycles ? ui_json_text(sum.cycle_example) : json_null());
		json_object_set_new(o, "redacted", json_boolean(km_lineage_redacting(cli->ctx)));
		json_object_set_new(o, "nodes", w.arr);
		return ui_json_print(o, e);
	}
	char when[32];
	if (version)
		ui_print_line("impact of key %s version %" PRIu32 " as of %s", key, version,
		              ui_time_str(sum.as_of, when));
	else
		ui_print_line("impact of key %s (every version) as of %s", key, ui_time_str(sum.as_of, when));
	if (km_lineage_redacting(cli->ctx))
		ui_print_line("redacted: dataset, job, namespace and owner names are pseudonyms (need-to-know)");
	counts_line(sum.counts, sum.total);
	if (sum.cycles)
		ui_print_line("%" PRIu64 " cycle%s met, e.g. %s", sum.cycles, sum.cycles == 1 ? "" : "s",
		              sum.cycle_example);
	if (sum.total == 0) {
		ui_table_free(w.t);
		return KM_OK;
	}
	ui_print_line("%s", "");
	ui_table_print(w.t, stdout);
	ui_table_free(w.t);
	return KM_OK;
}

/* ---------------------------------------------------------------- provenance */

static json_t *approvals_json(const km_lineage_input *in)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < in->napprovals; i++) {
		const km_lineage_approval *ap = &in->approvals[i];
		json_t *o = json_object();
		json_object_set_new(o, "request", json_string(ap->request_id));
		json_object_set_new(o, "kind", json_string(ap->kind));
		json_object_set_new(o, "state", json_string(ap->state));
		ui_json_set_text(o, "object", ap->object);
		json_object_set_new(o, "created", ui_json_time(ap->created));
		json_object_set_new(o, "decided", ap->decided ? ui_json_time(ap->decided) : json_null());
		json_t *who = json_array();
		for (size_t j = 0; j < ap->napprovers && j < KM_LINEAGE_APPROVERS_MAX; j++) {
			json_t *w = json_object();
			ui_json_set_text(w, "approver", ap->approvers[j].name);
			json_object_set_new(w, "decision", json_string(ap->approvers[j].approve ? "approved" : "rejected"));
			json_object_set_new(w, "time", ui_json_time(ap->approvers[j].time));
			json_array_append_new(who, w);
		}
		json_object_set_new(o, "approvers", who);
		json_array_append_new(arr, o);
	}
	return arr;
}

/* "rotate 1a2b3c4d5e6f executed (bob, carol); state 0a1b.. pending (bob)" */
static void approvals_text(const km_lineage_input *in, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	if (!in->napprovals) {
		snprintf(buf, cap, "none");
		return;
	}
	for (size_t i = 0; i < in->napprovals && used < cap; i++) {
		const km_lineage_approval *ap = &in->approvals[i];
		used += (size_t)snprintf(buf + used, cap - used, "%s%s %.12s %s (", i ? "; " : "", ap->kind,
		                         ap->request_id, ap->state);
		for (size_t j = 0; j < ap->napprovers && j < KM_LINEAGE_APPROVERS_MAX && used < cap; j++)
			used += (size_t)snprintf(buf + used, cap - used, "%s%s%s", j ? ", " : "", ap->approvers[j].name,
			                         ap->approvers[j].approve ? "" : " rejected");
		if (used < cap)
			used += (size_t)snprintf(buf + used, cap - used, "%s)", ap->napprovers ? "" : "no signatures");
	}
}

static int prov_cb(void *c, const km_lineage_input *in)
{
	walk_out *w = c;
	char id[24], lab[800];
	snprintf(id, sizeof id, "%" PRId64, in->hit.node.id);
	label(&in->hit.node, lab, sizeof lab);
	json_object_set_new(w->labels, id, ui_json_text(lab));
	char consumed[32], next[32];
	if (w->arr) {
		json_t *o = node_json(&in->hit.node);
		json_object_set_new(o, "depth", json_integer(in->hit.depth));
		json_object_set_new(o, "consumed", ui_json_time(in->consumed));
		json_object_set_new(o, "path", path_json(w, in->hit.path, in->hit.path_len));
		if (in->key[0]) {
			json_t *k = json_object();
			ui_json_set_text(k, "key", in->key);
			json_object_set_new(k, "version", json_integer(in->kek_version));
			json_object_set_new(k, "state", json_string(in->state));
			json_object_set_new(k, "activated", ui_json_time(in->activated));
			json_object_set_new(k, "deactivated", ui_json_time(in->deactivated));
			json_object_set_new(k, "rotations_since", json_integer(in->later_versions));
			json_object_set_new(k, "next_rotation", ui_json_time(in->next_rotation));
			json_object_set_new(k, "approvals", approvals_json(in));
			json_object_set_new(o, "protected_by", k);
		} else {
			json_object_set_new(o, "protected_by", json_null());
		}
		return json_array_append_new(w->arr, o) != 0;
	}
	char kv[200] = "-", rot[64] = "-", appr[1024] = "-";
	if (in->key[0]) {
		approvals_text(in, appr, sizeof appr);
		snprintf(kv, sizeof kv, "%s v%" PRIu32 " (%s)", in->key, in->kek_version, in->state);
		if (in->later_versions)
			snprintf(rot, sizeof rot, "%" PRIu32 " since, first %s", in->later_versions,
			         ui_time_str(in->next_rotation, next));
		else
			snprintf(rot, sizeof rot, "none");
	}
	const char *cells[] = {node_kind(&in->hit.node), lab, ui_time_str(in->consumed, consumed), kv, rot, appr};
	w->st = ui_table_add(w->t, cells, NULL);
	return w->st != KM_OK;
}

km_status ui_cmd_lineage_provenance(ui_cli *cli, const ui_args *a, km_err *e)
{
	apply_redact(cli, a);
	static const char *const hdr[] = {"KIND", "INPUT", "CONSUMED", "PROTECTED BY", "ROTATIONS", "APPROVALS"};
	walk_out w = {.labels = json_object()};
	if (cli->json)
		w.arr = json_array();
	else
		w.t = ui_table_new(KM_ARRAY_LEN(hdr), hdr);
	km_lineage_provenance_summary sum;
	km_status st = km_lineage_provenance(cli->ctx, a->pos[0], prov_cb, &w, &sum, e);
	if (!st && w.st)
		st = km_fail(e, w.st, "out of memory");
	json_decref(w.labels);
	if (st) {
		json_decref(w.arr);
		ui_table_free(w.t);
		return st;
	}
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "model", node_json(&sum.model));
		json_object_set_new(o, "inputs", json_integer((json_int_t)sum.inputs));
		json_object_set_new(o, "protected_inputs", json_integer((json_int_t)sum.protected_inputs));
		json_object_set_new(o, "cycles", json_integer((json_int_t)sum.cycles));
		json_object_set_new(o, "redacted", json_boolean(km_lineage_redacting(cli->ctx)));
		json_object_set_new(o, "upstream", w.arr);
		return ui_json_print(o, e);
	}
	char lab[800];
	ui_print_line("provenance of %s: %" PRIu64 " upstream input%s, %" PRIu64 " protected by keyward",
	              label(&sum.model, lab, sizeof lab), sum.inputs, sum.inputs == 1 ? "" : "s",
	              sum.protected_inputs);
	if (km_lineage_redacting(cli->ctx))
		ui_print_line("redacted: dataset, job, namespace and owner names are pseudonyms (need-to-know)");
	if (sum.cycles)
		ui_print_line("%" PRIu64 " cycle%s met, e.g. %s", sum.cycles, sum.cycles == 1 ? "" : "s",
		              sum.cycle_example);
	if (sum.inputs) {
		ui_print_line("%s", "");
		ui_table_print(w.t, stdout);
	}
	ui_table_free(w.t);
	return KM_OK;
}

/* ---------------------------------------------------------------- show */

typedef struct show_out {
	json_t *doc, *out, *in, *prot;
	int json;
} show_out;

static void show_node(void *c, const km_lineage_node *n, const char *facets)
{
	show_out *s = c;
	if (s->json) {
		json_t *nj = node_json(n);
		json_object_update(s->doc, nj);
		json_decref(nj);
		json_t *f = facets ? json_loads(facets, 0, NULL) : NULL;
		json_object_set_new(s->doc, "facets", f ? f : json_null());
		return;
	}
	char lab[800], seen[32];
	ui_print_line("node:       #%" PRId64 " %s", n->id, label(n, lab, sizeof lab));
	ui_print_line("kind:       %s", node_kind(n));
	ui_print_line("namespace:  %s", n->namespace_);
	ui_print_line("name:       %s", n->name);
	ui_print_line("version:    %s", n->version[0] ? n->version : "-");
	if (n->asset_id)
		ui_print_line("asset:      %" PRId64 " (keyward asset show %" PRId64 ")", n->asset_id, n->asset_id);
	ui_print_line("first seen: %s", ui_time_str(n->first_seen, seen));
	if (facets)
		ui_print_line("facets:     %.400s%s", facets, strlen(facets) > 400 ? "..." : "");
}

static void show_edge(void *c, const km_lineage_edge *ed, const km_lineage_node *other, int incoming)
{
	show_out *s = c;
	char lab[800], first[32], last[32];
	if (s->json) {
		json_t *o = json_object();
		json_object_set_new(o, "edge", json_string(ed->kind));
		json_object_set_new(o, "node", node_json(other));
		json_object_set_new(o, "first_seen", ui_json_time(ed->first_seen));
		json_object_set_new(o, "last_seen", ui_json_time(ed->last_seen));
		json_object_set_new(o, "job", ed->job ? json_integer(ed->job) : json_null());
		json_array_append_new(incoming ? s->in : s->out, o);
		return;
	}
	ui_print_line("%s %-12s %s #%" PRId64 " %s (%s .. %s)", incoming ? "<-" : "->", ed->kind,
	              incoming ? "from" : "to", other->id, label(other, lab, sizeof lab),
	              ui_time_str(ed->first_seen, first), ui_time_str(ed->last_seen, last));
}

static void show_prot(void *c, const km_lineage_protection *p)
{
	show_out *s = c;
	char from[32], to[32];
	if (s->json) {
		json_t *o = json_object();
		ui_json_set_text(o, "key", p->key);
		json_object_set_new(o, "version", json_integer(p->kek_version));
		json_object_set_new(o, "asset", json_integer(p->asset_id));
		json_object_set_new(o, "from", ui_json_time(p->valid_from));
		json_object_set_new(o, "to", p->valid_to == INT64_MAX ? json_null() : ui_json_time(p->valid_to));
		json_array_append_new(s->prot, o);
		return;
	}
	ui_print_line("protected-by %s v%" PRIu32 " (asset %" PRId64 ") from %s%s%s", p->key, p->kek_version,
	              p->asset_id, ui_time_str(p->valid_from, from), p->valid_to == INT64_MAX ? "" : " to ",
	              p->valid_to == INT64_MAX ? "" : ui_time_str(p->valid_to, to));
}

km_status ui_cmd_lineage_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	apply_redact(cli, a);
	show_out s = {.json = cli->json};
	if (s.json) {
		s.doc = json_object();
		s.out = json_array();
		s.in = json_array();
		s.prot = json_array();
	}
	km_lineage_show_cbs cbs = {show_node, show_edge, show_prot, &s};
	km_status st = km_lineage_show(cli->ctx, a->pos[0], &cbs, e);
	if (!s.json)
		return st;
	if (st) {
		json_decref(s.doc);
		json_decref(s.out);
		json_decref(s.in);
		json_decref(s.prot);
		return st;
	}
	json_object_set_new(s.doc, "downstream", s.out);
	json_object_set_new(s.doc, "upstream", s.in);
	json_object_set_new(s.doc, "protected_by", s.prot);
	return ui_json_print(s.doc, e);
}

/* ---------------------------------------------------------------- export */

typedef struct export_out {
	int dot;
	json_t *nodes, *edges, *prot;
} export_out;

/* A DOT string body: the cleaned display form with '"' escaped. */
static void dot_quoted(const char *s, FILE *f)
{
	char clean[1200];
	ui_clean(s, clean, sizeof clean);
	fputc('"', f);
	for (const char *p = clean; *p; p++) {
		if (*p == '"')
			fputc('\\', f);
		fputc(*p, f);
	}
	fputc('"', f);
}

static int export_node(void *c, const km_lineage_node *n)
{
	export_out *x = c;
	if (!x->dot)
		return json_array_append_new(x->nodes, node_json(n)) != 0;
	char lab[800];
	printf("  n%" PRId64 " [shape=%s, label=", n->id,
	       n->kind == KM_LN_JOB ? "box" : n->kind == KM_LN_MODEL ? "doubleoctagon"
	       : n->kind == KM_LN_ENDPOINT ? "house" : "ellipse");
	dot_quoted(label(n, lab, sizeof lab), stdout);
	printf("];\n");
	return 0;
}

static int export_edge(void *c, const km_lineage_edge *ed)
{
	export_out *x = c;
	if (x->dot) {
		printf("  n%" PRId64 " -> n%" PRId64 " [label=\"%s\"%s];\n", ed->src, ed->dst, ed->kind,
		       strcmp(ed->kind, "consumed-by") == 0 ? ", style=dashed" : "");
		return 0;
	}
	json_t *o = json_object();
	json_object_set_new(o, "src", json_integer(ed->src));
	json_object_set_new(o, "dst", json_integer(ed->dst));
	json_object_set_new(o, "kind", json_string(ed->kind));
	json_object_set_new(o, "first_seen", ui_json_time(ed->first_seen));
	json_object_set_new(o, "last_seen", ui_json_time(ed->last_seen));
	json_object_set_new(o, "job", ed->job ? json_integer(ed->job) : json_null());
	return json_array_append_new(x->edges, o) != 0;
}

static int export_prot(void *c, const km_lineage_protection *p)
{
	export_out *x = c;
	if (x->dot) {
		char kv[200];
		snprintf(kv, sizeof kv, "key:%s@%" PRIu32, p->key, p->kek_version);
		printf("  ");
		dot_quoted(kv, stdout);
		printf(" [shape=component];\n  n%" PRId64 " -> ", p->node);
		dot_quoted(kv, stdout);
		printf(" [label=\"protected-by\", style=bold%s];\n", p->valid_to == INT64_MAX ? "" : ", color=grey");
		return 0;
	}
	json_t *o = json_object();
	json_object_set_new(o, "node", json_integer(p->node));
	ui_json_set_text(o, "key", p->key);
	json_object_set_new(o, "version", json_integer(p->kek_version));
	json_object_set_new(o, "asset", json_integer(p->asset_id));
	json_object_set_new(o, "from", ui_json_time(p->valid_from));
	json_object_set_new(o, "to", p->valid_to == INT64_MAX ? json_null() : ui_json_time(p->valid_to));
	return json_array_append_new(x->prot, o) != 0;
}

km_status ui_cmd_lineage_export(ui_cli *cli, const ui_args *a, km_err *e)
{
	apply_redact(cli, a);
	const char *fmt = ui_arg(a, "format");
	if (!fmt)
		fmt = cli->json ? "json" : "dot";
	export_out x = {0};
	if (strcmp(fmt, "dot") == 0)
		x.dot = 1;
	else if (strcmp(fmt, "json") != 0)
		return km_fail(e, KM_EUSAGE, "lineage export: --format is dot or json, not \"%s\"", fmt);
	if (!x.dot) {
		x.nodes = json_array();
		x.edges = json_array();
		x.prot = json_array();
	} else {
		printf("digraph lineage {\n  rankdir=LR;\n");
	}
	km_lineage_export_cbs cbs = {export_node, export_edge, export_prot, &x};
	km_status st = km_lineage_export(cli->ctx, &cbs, e);
	if (x.dot) {
		printf("}\n");
		return st;
	}
	if (st) {
		json_decref(x.nodes);
		json_decref(x.edges);
		json_decref(x.prot);
		return st;
	}
	return ui_json_print(json_pack("{s:o,s:o,s:o}", "nodes", x.nodes, "edges", x.edges,
	                               "protected_by", x.prot), e);
}

/* ---------------------------------------------------------------- report */

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

#define SVG_MAX_NODES 400
#define SVG_COL 230
#define SVG_ROW 26

/* The nodes by depth in columns, each linked to the node before it on its
 * path: the shortest-path tree the report explains. */
static void html_svg(FILE *f, json_t *items)
{
	json_t *pos = json_object();
	int rows[64] = {0}, maxrow = 0, maxdepth = 0;
	size_t n = json_array_size(items) < SVG_MAX_NODES ? json_array_size(items) : SVG_MAX_NODES;
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(items, i);
		int d = (int)json_integer_value(json_object_get(it, "depth"));
		if (d > 63)
			d = 63;
		char id[24];
		snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(it, "id")));
		json_object_set_new(pos, id, json_pack("[i,i]", 20 + d * SVG_COL, 20 + rows[d] * SVG_ROW));
		rows[d]++;
		if (rows[d] > maxrow)
			maxrow = rows[d];
		if (d > maxdepth)
			maxdepth = d;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\">\n",
	        40 + (maxdepth + 1) * SVG_COL, 40 + maxrow * SVG_ROW);
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(items, i);
		json_t *path = json_object_get(it, "path");
		size_t pl = json_array_size(path);
		if (pl < 2)
			continue;
		char a[24], b[24];
		snprintf(a, sizeof a, "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(json_array_get(path, pl - 2), "node")));
		snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(it, "id")));
		json_t *pa = json_object_get(pos, a), *pb = json_object_get(pos, b);
		if (!pa || !pb)
			continue;
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"e\"><title>",
		        (int)json_integer_value(json_array_get(pa, 0)) + 200, (int)json_integer_value(json_array_get(pa, 1)) + 9,
		        (int)json_integer_value(json_array_get(pb, 0)), (int)json_integer_value(json_array_get(pb, 1)) + 9);
		ui_html_text(f, jstr(json_array_get(path, pl - 1), "edge"));
		fputs("</title></line>\n", f);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(items, i);
		char id[24];
		snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(it, "id")));
		json_t *p = json_object_get(pos, id);
		int x = (int)json_integer_value(json_array_get(p, 0)), y = (int)json_integer_value(json_array_get(p, 1));
		char lab[40];
		snprintf(lab, sizeof lab, "%.28s%s", jstr(it, "label"), strlen(jstr(it, "label")) > 28 ? "..." : "");
		fprintf(f, "<g class=\"%s\"><rect x=\"%d\" y=\"%d\" width=\"200\" height=\"18\" rx=\"4\"/>"
		        "<text x=\"%d\" y=\"%d\">", jstr(it, "kind"), x, y, x + 4, y + 13);
		ui_html_text(f, lab);
		fputs("</text><title>", f);
		ui_html_text(f, jstr(it, "label"));
		fputs("</title></g>\n", f);
	}
	fputs("</svg>\n", f);
	if (json_array_size(items) > n)
		fprintf(f, "<p>The graph shows the first %zu of %zu nodes; the table lists all.</p>\n", n,
		        json_array_size(items));
	json_decref(pos);
}

static void html_report(FILE *f, json_t *doc)
{
	int impact = strcmp(jstr(doc, "report"), "compromise-impact") == 0;
	json_t *items = json_object_get(doc, impact ? "nodes" : "upstream");
	json_t *subj = json_object_get(doc, "subject");
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>keyward ", f);
	ui_html_text(f, jstr(doc, "report"));
	fputs(" report</title>\n<style>\nbody{font:14px system-ui,sans-serif;margin:2em;color:#222}"
	      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;"
	      "vertical-align:top}code{font-size:12px}svg text{font:11px monospace}"
	      "rect{fill:#eef;stroke:#557}.model rect{fill:#fde}.endpoint rect{fill:#efd}.job rect{fill:#eee}"
	      "line.e{stroke:#888}\n</style></head><body>\n<h1>", f);
	fputs(impact ? "Compromise impact" : "Provenance", f);
	fputs(": ", f);
	if (impact) {
		ui_html_text(f, jstr(subj, "key"));
		if (json_integer_value(json_object_get(subj, "version")))
			fprintf(f, " version %" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(subj, "version")));
	} else {
		ui_html_text(f, jstr(subj, "label"));
	}
	fputs("</h1>\n<p>Deployment <code>", f);
	ui_html_text(f, jstr(doc, "deployment"));
	fputs("</code>, generated ", f);
	ui_html_text(f, jstr(doc, "generated"));
	fputs(" by ", f);
	ui_html_text(f, jstr(doc, "generated_by"));
	if (impact) {
		fputs(", as of ", f);
		ui_html_text(f, jstr(subj, "as_of"));
	}
	fputs(json_is_true(json_object_get(doc, "redacted")) ?
	      ". <strong>Redacted:</strong> dataset, job, namespace and owner names are pseudonyms.</p>\n" : ".</p>\n", f);
	char *summary = json_dumps(json_object_get(doc, "summary"), JSON_COMPACT | JSON_SORT_KEYS);
	fputs("<p>Summary: <code>", f);
	ui_html_text(f, summary ? summary : "");
	fputs("</code></p>\n", f);
	free(summary);
	html_svg(f, items);
	fputs("<table><tr><th>kind</th><th>node</th><th>depth</th>", f);
	fputs(impact ? "<th>why (shortest path)</th></tr>\n" :
	               "<th>consumed</th><th>protected by (state now; approvals)</th><th>path</th></tr>\n", f);
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		fputs("<tr><td>", f);
		ui_html_text(f, jstr(it, "kind"));
		fputs("</td><td>", f);
		ui_html_text(f, jstr(it, "label"));
		fprintf(f, "</td><td>%" JSON_INTEGER_FORMAT "</td><td>", json_integer_value(json_object_get(it, "depth")));
		if (!impact) {
			ui_html_text(f, jstr(it, "consumed"));
			fputs("</td><td>", f);
			json_t *pb = json_object_get(it, "protected_by");
			if (json_is_object(pb)) {
				char b[300];
				snprintf(b, sizeof b, "%s v%" JSON_INTEGER_FORMAT " (%s), owner %s, %" JSON_INTEGER_FORMAT
				         " rotation(s) since", jstr(pb, "key"), json_integer_value(json_object_get(pb, "version")),
				         jstr(pb, "state"), json_is_string(json_object_get(pb, "owner")) ? jstr(pb, "owner") : "-",
				         json_integer_value(json_object_get(pb, "rotations_since")));
				ui_html_text(f, b);
				/* the requests behind that version, with their approvers */
				size_t k;
				json_t *ap;
				json_array_foreach(json_object_get(pb, "approvals"), k, ap) {
					char line[400];
					size_t used = (size_t)snprintf(line, sizeof line, "%s %.12s %s by", jstr(ap, "kind"),
					                               jstr(ap, "request"), jstr(ap, "state"));
					size_t m;
					json_t *w;
					json_array_foreach(json_object_get(ap, "approvers"), m, w)
						if (used < sizeof line)
							used += (size_t)snprintf(line + used, sizeof line - used, "%s %s (%s)",
							                         m ? "," : "", jstr(w, "approver"), jstr(w, "decision"));
					fputs("<br><small>", f);
					ui_html_text(f, line);
					fputs("</small>", f);
				}
			} else {
				fputs("-", f);
			}
			fputs("</td><td>", f);
		}
		size_t j;
		json_t *st;
		json_array_foreach(json_object_get(it, "path"), j, st) {
			if (j) {
				fputs(" &rarr; <em>", f);
				ui_html_text(f, jstr(st, "edge"));
				fputs("</em> &rarr; ", f);
			}
			ui_html_text(f, jstr(st, "label"));
		}
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n<h2>Evidence</h2>\n", f);
	json_t *th = json_object_get(doc, "tree_head");
	if (json_is_object(th)) {
		fprintf(f, "<p>Newest signed tree head: size %" JSON_INTEGER_FORMAT ", time ",
		        json_integer_value(json_object_get(th, "size")));
		ui_html_text(f, jstr(th, "time"));
		fputs(", root <code>", f);
		ui_html_text(f, jstr(th, "root"));
		fputs("</code>, signature <code>", f);
		ui_html_text(f, jstr(th, "signature"));
		fputs("</code>.</p>\n", f);
	}
	fputs("<p>Audit events relied on (seq): <code>", f);
	json_array_foreach(json_object_get(doc, "audit_events"), i, it)
		fprintf(f, "%s%" JSON_INTEGER_FORMAT, i ? " " : "", json_integer_value(it));
	fputs("</code>. Check them with <code>keyward audit verify --entry SEQ</code>.</p>\n</body></html>\n", f);
}

km_status ui_cmd_lineage_report(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_lineage_report_opts o = {0};
	if (strcmp(a->pos[0], "provenance") == 0)
		o.kind = KM_LINEAGE_REPORT_PROVENANCE;
	else if (strcmp(a->pos[0], "impact") == 0)
		o.kind = KM_LINEAGE_REPORT_IMPACT;
	else
		return km_fail(e, KM_EUSAGE, "lineage report: provenance or impact, not \"%s\"", a->pos[0]);
	o.subject = a->pos[1];
	o.redact = ui_arg_flag(a, "redact");
	km_status st = parse_as_of(a, &o.as_of, e);
	if (st)
		return st;
	const char *fmt = ui_arg(a, "format");
	if (!fmt)
		fmt = "json";
	if (strcmp(fmt, "json") != 0 && strcmp(fmt, "html") != 0)
		return km_fail(e, KM_EUSAGE, "lineage report: --format is json or html, not \"%s\"", fmt);
	json_t *doc;
	if ((st = km_lineage_report(cli->ctx, &o, &doc, e)))
		return st;
	if (strcmp(fmt, "json") == 0)
		return ui_json_print(doc, e);
	html_report(stdout, doc);
	json_decref(doc);
	return KM_OK;
}
