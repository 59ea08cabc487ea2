/*
 * test_lineage.c — the lineage graph on a real deployment: OpenLineage
 * import (the spec's example events, malformed events, re-import), mapping
 * to catalogue assets, a cycle, impact with time travel across a rotation,
 * provenance, and who may do what.
 */
#include "th_deploy.h"
#include "asset.h"
#include "audit.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "lineage.h"
#include "request.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static th_deploy D;
static int64_t clock_now;

static int64_t test_clock(void *c)
{
	(void)c;
	return clock_now;
}

static void teardown(void) { th_deploy_teardown(&D); }

/* 2026-01-01T00:00:00Z and friends. */
#define T0 1767225600
#define DAY 86400

static const char mappings[] =
	"\"lineage_mappings\": ["
	" {\"namespace\": \"s3://lake\", \"name\": \"features/*\", \"asset\": \"feature:{name}\"},"
	" {\"namespace\": \"s3://lake\", \"name\": \"models/fraud\", \"asset\": \"model:fraud\"},"
	" {\"namespace\": \"serving\", \"name\": \"*\", \"kind\": \"endpoint\"}]";

static km_ctx *open_deploy(unsigned roles)
{
	th_deploy_setup(&D, roles, mappings);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	clock_now = T0;
	km_set_clock(ctx, test_clock, NULL);
	return ctx;
}

static int64_t count(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_int_eq(km_db_int64(km_db(ctx), sql, &v, &e), KM_OK);
	return v;
}

static void last_event(km_ctx *ctx, char *action, char *outcome, char *details, size_t cap)
{
	uint64_t n = 0;
	km_err e;
	ck_assert_int_eq(audit_size(km_db(ctx), &n, &e), KM_OK);
	audit_row r;
	ck_assert_int_eq(audit_get(km_db(ctx), n, &r, &e), KM_OK);
	strcpy(action, r.action);
	strcpy(outcome, r.outcome);
	if (details)
		snprintf(details, cap, "%s", r.json ? r.json : "");
	audit_row_free(&r);
}

/* The example run of the OpenLineage spec: a START and a COMPLETE of the
 * same run, reading one table and writing another. */
#define SPEC_START                                                                                  \
	"{\"eventType\": \"START\", \"eventTime\": \"2020-12-28T19:52:00.001+10:00\","                   \
	" \"run\": {\"runId\": \"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"                              \
	" \"job\": {\"namespace\": \"my-scheduler-namespace\", \"name\": \"myjob.mytask\"},"              \
	" \"inputs\": [{\"namespace\": \"my-datasource-namespace\", \"name\": \"instance.schema.table\"}]," \
	" \"outputs\": [{\"namespace\": \"my-datasource-namespace\", \"name\": \"instance.schema.output_table\"}]," \
	" \"producer\": \"https://github.com/OpenLineage/OpenLineage/blob/v1-0-0/client\","               \
	" \"schemaURL\": \"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}"
#define SPEC_COMPLETE                                                                               \
	"{\"eventType\": \"COMPLETE\", \"eventTime\": \"2020-12-28T20:52:00.001+10:00\","                \
	" \"run\": {\"runId\": \"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"                              \
	" \"job\": {\"namespace\": \"my-scheduler-namespace\", \"name\": \"myjob.mytask\","              \
	"  \"facets\": {\"sql\": {\"_producer\": \"https://example.com\", \"_schemaURL\": \"https://example.com/s\"," \
	"  \"query\": \"INSERT INTO output_table SELECT * FROM table\"}}},"                              \
	" \"inputs\": [{\"namespace\": \"my-datasource-namespace\", \"name\": \"instance.schema.table\"}]," \
	" \"outputs\": [{\"namespace\": \"my-datasource-namespace\", \"name\": \"instance.schema.output_table\"," \
	"  \"facets\": {\"schema\": {\"_producer\": \"https://example.com\", \"_schemaURL\": \"https://example.com/s\"," \
	"  \"fields\": [{\"name\": \"a\", \"type\": \"VARCHAR\"}]}}}],"                                  \
	" \"producer\": \"https://github.com/OpenLineage/OpenLineage/blob/v1-0-0/client\","               \
	" \"schemaURL\": \"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}"

START_TEST(spec_example_import_and_reimport)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	const char *lines = SPEC_START "\n\n" SPEC_COMPLETE "\n";
	km_lineage_import_result r;
	km_err e;
	ck_assert_msg(km_lineage_import_buffer(ctx, lines, strlen(lines), "spec.jsonl", &r, &e) == KM_OK,
	              "%s", e.msg);
	ck_assert_uint_eq(r.events, 2);
	ck_assert_uint_eq(r.imported, 2);
	ck_assert_uint_eq(r.duplicates, 0);
	ck_assert_uint_eq(r.nodes, 3);  /* the job and two datasets */
	ck_assert_uint_eq(r.edges, 2);  /* consumed-by, derived-from */
	ck_assert_uint_eq(r.unmapped, 4);
	char action[64], outcome[16], details[2048];
	last_event(ctx, action, outcome, details, sizeof details);
	ck_assert_str_eq(action, "lineage.import");
	ck_assert_str_eq(outcome, "ok");
	ck_assert_ptr_nonnull(strstr(details, "\"imported\":2"));
	/* eventTime with an offset is stored as UTC milliseconds. */
	ck_assert_int_eq(count(ctx, "SELECT min(event_time_ms) FROM lineage_events"), 1609149120001LL);
	/* Facets are kept: the job's SQL facet, the output's schema. */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_nodes WHERE kind = 'job' AND "
	                            "facets LIKE '%INSERT INTO output_table%'"), 1);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_nodes WHERE name = "
	                            "'instance.schema.output_table' AND facets LIKE '%VARCHAR%'"), 1);

	/* The same events again, as one JSON array: nothing changes. */
	const char *arr = "[\n" SPEC_START ",\n" SPEC_COMPLETE "\n]\n";
	int64_t events = count(ctx, "SELECT count(*) FROM lineage_events");
	ck_assert_msg(km_lineage_import_buffer(ctx, arr, strlen(arr), "spec.json", &r, &e) == KM_OK,
	              "%s", e.msg);
	ck_assert_uint_eq(r.events, 2);
	ck_assert_uint_eq(r.imported, 0);
	ck_assert_uint_eq(r.duplicates, 2);
	ck_assert_uint_eq(r.nodes, 0);
	ck_assert_uint_eq(r.edges, 0);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_events"), events);

	km_lineage_node n;
	ck_assert_msg(km_lineage_node_find(ctx, "instance.schema.output_table", &n, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(n.kind, KM_LN_DATASET);
	ck_assert_str_eq(n.namespace_, "my-datasource-namespace");

	/* The import compiles its own statements without the kind CHECK;
	 * after it, on the same connection, the schema's CHECK holds again. */
	ck_assert_int_ne(km_db_exec(km_db(ctx), "INSERT INTO lineage_edges(src, dst, kind, first_seen, "
	                            "last_seen) VALUES(1, 2, 'no-such-kind', 0, 0)", &e), KM_OK);
	ck_assert_int_ne(km_db_exec(km_db(ctx), "INSERT INTO lineage_nodes(kind, namespace, name, "
	                            "first_seen) VALUES('car', 'x', 'y', 0)", &e), KM_OK);
	km_close(ctx);
}
END_TEST

/* {text, what the message must name}: every one refused, nothing written. */
static const struct {
	const char *text;
	const char *message;
} malformed[] = {
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\",\"run\":{},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: run.runId is missing"},
	{"{\"eventType\":\"FINISH\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: eventType \"FINISH\" is not one of"},
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"inputs\":{\"namespace\":\"a\",\"name\":\"b\"},"
	 "\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: inputs must be an array"},
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"inputs\":[{\"namespace\":\"a\",\"name\":7}],"
	 "\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: inputs[0].name must be a string"},
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},\"job\":{\"namespace\":\"n\"",
	 "bad.jsonl:2: not valid JSON"},
	{"{\"eventType\":\"START\",\"eventTime\":\"yesterday\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: eventTime"},
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"not-a-uuid\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"producer\":\"p\",\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: run.runId \"not-a-uuid\" is not a UUID"},
	{"{\"eventType\":\"START\",\"eventTime\":\"2026-01-01T00:00:00Z\","
	 "\"run\":{\"runId\":\"0176a8c2-fe01-7439-87e6-56a1a1b4029f\"},"
	 "\"job\":{\"namespace\":\"n\",\"name\":\"j\"},\"schemaURL\":\"s\"}",
	 "bad.jsonl:2: producer is missing"},
};

START_TEST(malformed_events_are_refused_whole)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	for (size_t i = 0; i < KM_ARRAY_LEN(malformed); i++) {
		/* A good event first: it must not survive the bad one. */
		char text[4096];
		snprintf(text, sizeof text, "%s\n%s\n", SPEC_START, malformed[i].text);
		km_lineage_import_result r;
		km_err e;
		ck_assert_int_eq(km_lineage_import_buffer(ctx, text, strlen(text), "bad.jsonl", &r, &e), KM_EINVAL);
		ck_assert_msg(strstr(e.msg, malformed[i].message) != NULL, "row %zu: \"%s\" lacks \"%s\"", i,
		              e.msg, malformed[i].message);
		ck_assert_uint_eq(r.imported, 0);
		ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_events"), 0);
		ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_nodes"), 0);
		ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_edges"), 0);
		char action[64], outcome[16];
		last_event(ctx, action, outcome, NULL, 0);
		ck_assert_str_eq(action, "lineage.import");
		ck_assert_str_eq(outcome, "error");
	}
	/* A truncated array, named by the line its last event starts on. */
	const char *arr = "[\n" SPEC_START ",\n" SPEC_COMPLETE;
	km_err e;
	ck_assert_int_eq(km_lineage_import_buffer(ctx, arr, strlen(arr), "cut.json", NULL, &e), KM_EINVAL);
	ck_assert_msg(strstr(e.msg, "cut.json:3: truncated JSON") != NULL, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_events"), 0);
	km_close(ctx);
}
END_TEST

/* An event at time t (seconds) of a job reading `in` and writing `out`
 * (datasets in s3://lake unless they name a namespace "ns|name"). */
static void ev(char *buf, size_t cap, int seq, int64_t t, const char *job, const char *in,
               const char *out, const char *out_version)
{
	char when[32];
	km_time_format(t, when);
	char outv[160] = "";
	if (out_version)
		snprintf(outv, sizeof outv, ",\"facets\":{\"version\":{\"_producer\":\"p\",\"_schemaURL\":\"s\","
		         "\"datasetVersion\":\"%s\"}}", out_version);
	char in_ns[64] = "s3://lake", out_ns[64] = "s3://lake";
	const char *bar;
	if ((bar = strchr(in, '|'))) {
		snprintf(in_ns, sizeof in_ns, "%.*s", (int)(bar - in), in);
		in = bar + 1;
	}
	if ((bar = strchr(out, '|'))) {
		snprintf(out_ns, sizeof out_ns, "%.*s", (int)(bar - out), out);
		out = bar + 1;
	}
	snprintf(buf, cap,
	         "{\"eventType\":\"COMPLETE\",\"eventTime\":\"%s\",\"run\":{\"runId\":"
	         "\"00000000-0000-4000-8000-%012d\"},\"job\":{\"namespace\":\"airflow\",\"name\":\"%s\"},"
	         "\"inputs\":[{\"namespace\":\"%s\",\"name\":\"%s\"}],"
	         "\"outputs\":[{\"namespace\":\"%s\",\"name\":\"%s\"%s}],"
	         "\"producer\":\"https://example.com/p\",\"schemaURL\":"
	         "\"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}\n",
	         when, seq, job, in_ns, in, out_ns, out, outv);
}

static void import1(km_ctx *ctx, const char *text)
{
	km_err e;
	km_lineage_import_result r;
	ck_assert_msg(km_lineage_import_buffer(ctx, text, strlen(text), "t.jsonl", &r, &e) == KM_OK,
	              "%s", e.msg);
}

typedef struct collect {
	char labels[64][200];
	uint32_t depth[64];
	char first_edge[64][24];
	size_t n;
} collect;

static int collect_hit(void *c, const km_lineage_hit *h)
{
	collect *co = c;
	if (co->n < 64) {
		km_lineage_node_label(&h->node, co->labels[co->n], sizeof co->labels[0]);
		co->depth[co->n] = h->depth;
		snprintf(co->first_edge[co->n], sizeof co->first_edge[0], "%s",
		         h->path_len > 1 ? h->path[h->path_len - 1].edge : h->path[0].edge);
		co->n++;
	}
	return 0;
}

static int has(const collect *co, const char *label)
{
	for (size_t i = 0; i < co->n; i++)
		if (strcmp(co->labels[i], label) == 0)
			return 1;
	return 0;
}

START_TEST(cycle_is_tolerated_and_reported)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *spec = "feature:features/income@1";
	ck_assert_msg(km_asset_register_bulk(ctx, "features/risk", &spec, 1, &e) == KM_OK, "%s", e.msg);
	char a[2048], b[2048], text[4096];
	clock_now += 3600;
	/* income -> scores, and scores -> income again (a feedback job). */
	ev(a, sizeof a, 1, clock_now, "score", "features/income", "scores", NULL);
	ev(b, sizeof b, 2, clock_now, "feedback", "scores", "features/income", NULL);
	snprintf(text, sizeof text, "%s%s", a, b);
	import1(ctx, text);
	collect co = {0};
	km_lineage_impact_summary sum;
	ck_assert_msg(km_lineage_impact(ctx, "features/risk", 0, 0, collect_hit, &co, &sum, &e) == KM_OK,
	              "%s", e.msg);
	/* feature:features/income@1 and its unversioned node, scores, two jobs. */
	ck_assert_uint_eq(sum.total, 5);
	ck_assert(has(&co, "feature:features/income"));
	ck_assert(has(&co, "s3://lake scores"));
	ck_assert(has(&co, "airflow feedback"));
	ck_assert_uint_ge(sum.cycles, 1);
	ck_assert_msg(strstr(sum.cycle_example, "feature:features/income -> s3://lake scores -> "
	                                        "feature:features/income") != NULL, "%s", sum.cycle_example);
	km_close(ctx);
}
END_TEST

/* A hit as one comparable line: node, the node before it, depth, edge,
 * the protection of a start. */
typedef struct sig_list {
	char (*line)[200];
	size_t n, cap;
} sig_list;

static int sig_hit(void *c, const km_lineage_hit *h)
{
	sig_list *l = c;
	ck_assert_uint_lt(l->n, l->cap);
	char label[300];
	km_lineage_node_label(&h->node, label, sizeof label);
	snprintf(l->line[l->n++], sizeof l->line[0], "%lld<-%lld d%u %s v%u %lld..%lld %.60s %d %lld %lld",
	         (long long)h->node.id, h->path_len > 1 ? (long long)h->path[h->path_len - 2].node : -1LL,
	         h->depth, h->path[h->path_len - 1].edge, h->kek_version, (long long)h->protected_from,
	         (long long)h->protected_to, label, (int)h->node.kind, (long long)h->node.asset_id,
	         (long long)h->node.first_seen);
	ck_assert_int_eq(h->path[h->path_len - 1].node, h->node.id);
	ck_assert_uint_eq(h->path_len, h->depth + 1);
	return 0;
}

/* The walk expanded a little at a time (as the console does: a budget
 * first, then one node's children at a time, in any order) gives the
 * same visits, parents, depths and paths as km_lineage_impact, with a
 * cycle in the graph and as of two times. */
START_TEST(stepwise_walk_is_the_same_tree)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *specs[] = {"feature:features/a@1", "feature:features/b@1", "feature:features/c@1"};
	ck_assert_msg(km_asset_register_bulk(ctx, "features/risk", specs, 3, &e) == KM_OK, "%s", e.msg);
	/* 60 events over 3 features and 20 datasets, half on day 2 and half on
	 * day 4: fan-out, joins and cycles (d7 -> features/a among them). */
	static char text[60 * 700];
	size_t used = 0;
	uint32_t r = 12345;
	for (int i = 0; i < 60; i++) {
		char in[40], out[40], one[700];
		r = r * 1103515245u + 12345u;
		uint32_t a = (r >> 8) % 23;
		r = r * 1103515245u + 12345u;
		uint32_t b = (r >> 8) % 20;
		if (a < 3)
			snprintf(in, sizeof in, "features/%c", 'a' + a);
		else
			snprintf(in, sizeof in, "d%u", a - 3);
		snprintf(out, sizeof out, "d%u", b);
		if (i == 7)
			snprintf(out, sizeof out, "features/a");
		ev(one, sizeof one, 100 + i, T0 + (i < 30 ? 2 : 4) * DAY + i, i % 2 ? "j1" : "j2", in, out,
		   NULL);
		used += (size_t)snprintf(text + used, sizeof text - used, "%s", one);
	}
	clock_now = T0 + 5 * DAY;
	import1(ctx, text);
	int64_t times[] = {0, T0 + 3 * DAY};
	for (size_t t = 0; t < 2; t++) {
		static char eager_lines[256][200], step_lines[256][200];
		sig_list eager = {eager_lines, 0, 256}, step = {step_lines, 0, 256};
		km_lineage_impact_summary sum;
		ck_assert_msg(km_lineage_impact(ctx, "features/risk", 1, times[t], sig_hit, &eager, &sum, &e) ==
		              KM_OK, "%s", e.msg);
		ck_assert_uint_gt(eager.n, 10);
		for (int budget = 0; budget < 3; budget++) {
			km_lineage_walk *w;
			ck_assert_msg(km_lineage_walk_impact(ctx, "features/risk", 1, times[t], &w, &e) == KM_OK,
			              "%s", e.msg);
			ck_assert_uint_le(km_lineage_walk_known(w), 6); /* the starts only */
			ck_assert_uint_eq(km_lineage_walk_expanded(w), 0);
			ck_assert_int_eq(km_lineage_walk_as_of(w), times[t] ? times[t] : clock_now);
			/* A budget first (none, a few nodes, many), then the last
			 * known node, then the first not expanded, and so on. */
			ck_assert_int_eq(km_lineage_walk_expand(ctx, w, 0, (size_t)budget * 7, &e), KM_OK);
			for (int k = 0; km_lineage_walk_expanded(w) < km_lineage_walk_known(w); k++)
				ck_assert_int_eq(km_lineage_walk_expand(ctx, w, k % 2 ? km_lineage_walk_known(w) - 1 :
				                                        km_lineage_walk_expanded(w), 0, &e), KM_OK);
			step.n = 0;
			ck_assert_int_eq(km_lineage_walk_hits(ctx, w, 0, SIZE_MAX, sig_hit, &step, &e), KM_OK);
			ck_assert_uint_eq(step.n, eager.n);
			for (size_t i = 0; i < eager.n; i++)
				ck_assert_str_eq(step.line[i], eager.line[i]);
			ck_assert_uint_eq(km_lineage_walk_cycles(w), sum.cycles);
			km_lineage_walk_free(w);
		}
	}
	km_close(ctx);
}
END_TEST

/* v1 protects features/income@1; the fraud model v1 is trained on it; the
 * key rotates; features/income@2 is protected under v2 and the model v2 is
 * trained on that and served.  Impact and provenance as of several dates. */
START_TEST(time_travel_across_a_rotation)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *s1 = "feature:features/income@1";
	clock_now = T0 + DAY;
	ck_assert_msg(km_asset_register_bulk(ctx, "features/risk", &s1, 1, &e) == KM_OK, "%s", e.msg);
	char a[2048], b[2048], c[2048], text[8192];
	ev(a, sizeof a, 1, T0 + 2 * DAY, "train", "features/income", "models/fraud", "1");
	clock_now = T0 + 2 * DAY + 60;
	import1(ctx, a);

	clock_now = T0 + 3 * DAY;
	uint32_t v2;
	ck_assert_msg(th_rotate(&D, ctx, "features/risk", &v2, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(v2, 2);
	const char *s2 = "feature:features/income@2";
	clock_now = T0 + 4 * DAY;
	ck_assert_msg(km_asset_register_bulk(ctx, "features/risk", &s2, 1, &e) == KM_OK, "%s", e.msg);
	ev(b, sizeof b, 2, T0 + 5 * DAY, "train", "features/income", "models/fraud", "2");
	ev(c, sizeof c, 3, T0 + 6 * DAY, "deploy", "models/fraud", "serving|fraud-api", NULL);
	/* The deploy reads the unversioned model; make it read v2 explicitly
	 * by its datasetVersion is not needed: the endpoint hangs off model:fraud. */
	snprintf(text, sizeof text, "%s%s", b, c);
	clock_now = T0 + 6 * DAY + 60;
	import1(ctx, text);

	/* As of day 2.5: v1 reaches income@1, income, the train job and model v1. */
	collect co = {0};
	km_lineage_impact_summary sum;
	ck_assert_msg(km_lineage_impact(ctx, "features/risk", 1, T0 + 2 * DAY + DAY / 2, collect_hit, &co,
	                                &sum, &e) == KM_OK, "%s", e.msg);
	ck_assert(has(&co, "feature:features/income@1"));
	ck_assert(has(&co, "model:fraud@1"));
	ck_assert(!has(&co, "model:fraud@2"));
	ck_assert(!has(&co, "serving fraud-api"));
	ck_assert_uint_eq(sum.counts[KM_LN_MODEL], 1);
	/* As of day 1.5 the model did not exist yet. */
	memset(&co, 0, sizeof co);
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 1, T0 + DAY + DAY / 2, collect_hit, &co,
	                                   &sum, &e), KM_OK);
	ck_assert(has(&co, "feature:features/income@1"));
	ck_assert(!has(&co, "model:fraud@1"));
	/* v2 did not exist at day 2.5: nothing. */
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 2, T0 + 2 * DAY + DAY / 2, NULL, NULL,
	                                   &sum, &e), KM_OK);
	ck_assert_uint_eq(sum.total, 0);
	/* Now: v2 reaches income@2, model v2 (trained after it was
	 * protected) and not model v1, which was consumed only under v1. */
	memset(&co, 0, sizeof co);
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 2, 0, collect_hit, &co, &sum, &e), KM_OK);
	ck_assert(has(&co, "feature:features/income@2"));
	ck_assert(has(&co, "model:fraud@2"));
	ck_assert(!has(&co, "model:fraud@1"));
	/* And v1, now, still reaches model v1 (what it protected was used). */
	memset(&co, 0, sizeof co);
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 1, 0, collect_hit, &co, &sum, &e), KM_OK);
	ck_assert(has(&co, "model:fraud@1"));
	ck_assert(!has(&co, "model:fraud@2"));
	/* The whole key: both models, each by a shortest path of two edges. */
	memset(&co, 0, sizeof co);
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 0, 0, collect_hit, &co, &sum, &e), KM_OK);
	for (size_t i = 0; i < co.n; i++)
		if (strncmp(co.labels[i], "model:fraud@", 12) == 0) {
			ck_assert_uint_eq(co.depth[i], 1);
			ck_assert_str_eq(co.first_edge[i], "derived-from");
		}
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 9, 0, NULL, NULL, &sum, &e), KM_ENOTFOUND);
	/* A rotation request's risk counts what is downstream (both models
	 * here; the served node is a dataset), so the approvers see it. */
	char id[KM_REQUEST_ID_MAX];
	km_request_info ri;
	ck_assert_msg(km_request_rotate(ctx, "features/risk", "test", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_request_get(ctx, id, &ri, &e), KM_OK);
	size_t f = 0;
	while (f < ri.risk.nfactors && strcmp(ri.risk.factors[f].name, "downstream") != 0)
		f++;
	ck_assert_uint_lt(f, ri.risk.nfactors);
	ck_assert_int_eq(ri.risk.factors[f].points, 1);
	ck_assert_str_eq(ri.risk.factors[f].detail, "2 models and 0 endpoints downstream");
	km_close(ctx);
}
END_TEST

typedef struct prov {
	char label[8][200];
	char key[8][129];
	uint32_t version[8];
	char state[8][24];
	uint32_t later[8];
	size_t n;
} prov;

static int prov_cb(void *c, const km_lineage_input *in)
{
	prov *p = c;
	if (p->n < 8) {
		km_lineage_node_label(&in->hit.node, p->label[p->n], sizeof p->label[0]);
		snprintf(p->key[p->n], sizeof p->key[0], "%s", in->key);
		p->version[p->n] = in->kek_version;
		snprintf(p->state[p->n], sizeof p->state[0], "%s", in->state);
		p->later[p->n] = in->later_versions;
		p->n++;
	}
	return 0;
}

START_TEST(provenance_names_the_key_version_at_consumption)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *s1 = "feature:features/income@1";
	clock_now = T0 + DAY;
	ck_assert_int_eq(km_asset_register_bulk(ctx, "features/risk", &s1, 1, &e), KM_OK);
	char a[2048], b[2048], text[4096];
	ev(a, sizeof a, 1, T0 + 2 * DAY, "train", "features/income", "models/fraud", "1");
	ev(b, sizeof b, 2, T0 + 2 * DAY, "clean", "raw|clicks", "features/income", NULL);
	snprintf(text, sizeof text, "%s%s", a, b);
	clock_now = T0 + 2 * DAY + 60;
	import1(ctx, text);
	clock_now = T0 + 3 * DAY;
	uint32_t v2;
	ck_assert_msg(th_rotate(&D, ctx, "features/risk", &v2, &e) == KM_OK, "%s", e.msg);

	prov p = {0};
	km_lineage_provenance_summary sum;
	ck_assert_msg(km_lineage_provenance(ctx, "fraud@1", prov_cb, &p, &sum, &e) == KM_OK, "%s", e.msg);
	ck_assert_str_eq(sum.model.name, "model:fraud");
	ck_assert_uint_eq(sum.inputs, 2);
	ck_assert_uint_eq(sum.protected_inputs, 1);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_str_eq(p.label[0], "feature:features/income");
	ck_assert_str_eq(p.key[0], "features/risk");
	ck_assert_uint_eq(p.version[0], 1);
	ck_assert_str_eq(p.state[0], "decrypt-only");
	ck_assert_uint_eq(p.later[0], 1);
	ck_assert_str_eq(p.label[1], "raw clicks");
	ck_assert_str_eq(p.key[1], "");
	ck_assert_int_eq(km_lineage_provenance(ctx, "fraud@7", NULL, NULL, &sum, &e), KM_ENOTFOUND);
	ck_assert_int_eq(km_lineage_provenance(ctx, "fraud", NULL, NULL, &sum, &e), KM_EUSAGE);
	km_close(ctx);
}
END_TEST

/* Approvals behind each input's key version: the rotation that moved the
 * input's data on, with who approved it; every row through its seal. */
typedef struct appr {
	size_t n;
	char kind[4][24], request[4][40], approver[4][64];
	size_t approvers[4];
} appr;

static int appr_cb(void *c, const km_lineage_approval *a)
{
	appr *p = c;
	if (p->n < 4) {
		snprintf(p->kind[p->n], sizeof p->kind[0], "%s", a->kind);
		snprintf(p->request[p->n], sizeof p->request[0], "%s", a->request_id);
		snprintf(p->approver[p->n], sizeof p->approver[0], "%s", a->napprovers ? a->approvers[0].name : "");
		p->approvers[p->n] = a->napprovers;
		p->n++;
	}
	return 0;
}

static int prov_appr_cb(void *c, const km_lineage_input *in)
{
	appr *p = c;
	if (in->key[0])
		for (size_t i = 0; i < in->napprovals; i++)
			appr_cb(p, &in->approvals[i]);
	return 0;
}

START_TEST(provenance_names_the_approvals_behind_each_version)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "features/other", NULL, 0, &e), KM_OK);
	const char *s1 = "feature:features/income@1";
	clock_now = T0 + DAY;
	ck_assert_int_eq(km_asset_register_bulk(ctx, "features/risk", &s1, 1, &e), KM_OK);
	char a[2048];
	ev(a, sizeof a, 1, T0 + 2 * DAY, "train", "features/income", "models/fraud", "1");
	clock_now = T0 + 2 * DAY + 60;
	import1(ctx, a);
	/* before any request: none */
	appr p = {0};
	ck_assert_int_eq(km_lineage_provenance(ctx, "fraud@1", prov_appr_cb, &p, NULL, &e), KM_OK);
	ck_assert_uint_eq(p.n, 0);
	clock_now = T0 + 3 * DAY;
	uint32_t v;
	ck_assert_msg(th_rotate(&D, ctx, "features/risk", &v, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(th_rotate(&D, ctx, "features/other", &v, &e) == KM_OK, "%s", e.msg);
	clock_now = T0 + 4 * DAY;
	ck_assert_msg(th_rotate(&D, ctx, "features/risk", &v, &e) == KM_OK, "%s", e.msg);

	/* the input was consumed under v1: both rotations since, oldest first,
	 * none of the other key's */
	memset(&p, 0, sizeof p);
	ck_assert_msg(km_lineage_provenance(ctx, "fraud@1", prov_appr_cb, &p, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_str_eq(p.kind[0], "rotate");
	ck_assert_str_eq(p.kind[1], "rotate");
	ck_assert_str_ne(p.request[0], p.request[1]);
	ck_assert_uint_ge(p.approvers[0], 1);
	ck_assert_str_ne(p.approver[0], "");
	/* v3: only the rotation that made it (the one before made v2) */
	appr q = {0};
	ck_assert_int_eq(km_lineage_version_approvals(ctx, "features/risk", 3, appr_cb, &q, &e), KM_OK);
	ck_assert_uint_eq(q.n, 1);
	ck_assert_str_eq(q.request[0], p.request[1]);
	ck_assert_int_eq(km_lineage_version_approvals(ctx, "features/risk", 0, appr_cb, &q, &e), KM_EUSAGE);

	/* a forged approver name fails its seal, and nothing is shown */
	char sql[300];
	snprintf(sql, sizeof sql, "UPDATE approvals SET approver = 'mallory' WHERE request_id = '%s' AND "
	         "approver = '%s'", p.request[0], p.approver[0]);
	ck_assert_int_eq(sqlite3_exec(km_db(ctx), sql, NULL, NULL, NULL), SQLITE_OK);
	memset(&p, 0, sizeof p);
	ck_assert_int_eq(km_lineage_provenance(ctx, "fraud@1", prov_appr_cb, &p, NULL, &e), KM_EINTEGRITY);
	ck_assert_uint_eq(p.n, 0);
	km_close(ctx);
}
END_TEST

static int redacted_cb(void *c, const km_lineage_hit *h)
{
	collect *co = c;
	collect_hit(c, h);
	/* no name the graph holds, in any field */
	ck_assert_ptr_null(strstr(h->node.name, "income"));
	ck_assert_ptr_null(strstr(h->node.name, "fraud"));
	ck_assert_ptr_null(strstr(h->node.namespace_, "serving"));
	(void)co;
	return 0;
}

START_TEST(redaction_gives_stable_pseudonyms_everywhere)
{
	km_ctx *ctx = open_deploy(KM_ROLE_OFFICER);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *s1 = "feature:features/income@1";
	clock_now = T0 + DAY;
	ck_assert_int_eq(km_asset_register_bulk(ctx, "features/risk", &s1, 1, &e), KM_OK);
	char a[2048], b[2048], text[4096];
	ev(a, sizeof a, 1, T0 + 2 * DAY, "train", "features/income", "models/fraud", "1");
	ev(b, sizeof b, 2, T0 + 2 * DAY, "deploy", "features/income", "serving|fraud-api", NULL);
	snprintf(text, sizeof text, "%s%s", a, b);
	clock_now = T0 + 2 * DAY + 60;
	import1(ctx, text);

	/* an officer sees names, until asking for redaction */
	ck_assert_int_eq(km_lineage_redacting(ctx), 0);
	collect plain = {0}, red = {0};
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 1, 0, collect_hit, &plain, NULL, &e), KM_OK);
	ck_assert(has(&plain, "serving fraud-api"));
	km_lineage_set_redact(ctx, 1);
	ck_assert_int_eq(km_lineage_redacting(ctx), 1);
	ck_assert_int_eq(km_lineage_impact(ctx, "features/risk", 1, 0, redacted_cb, &red, NULL, &e), KM_OK);
	ck_assert_uint_eq(red.n, plain.n);
	ck_assert(!has(&red, "serving fraud-api"));

	/* keyward's own nodes keep their kind prefix; the same name is the
	 * same pseudonym in every answer, a different kind another one */
	char p1[64], p2[64], p3[64];
	ck_assert_int_eq(km_lineage_pseudonym(ctx, "feature", "features/income", p1, sizeof p1, &e), KM_OK);
	ck_assert_int_eq(km_lineage_pseudonym(ctx, "feature", "features/income", p2, sizeof p2, &e), KM_OK);
	ck_assert_int_eq(km_lineage_pseudonym(ctx, "dataset", "features/income", p3, sizeof p3, &e), KM_OK);
	ck_assert_str_eq(p1, p2);
	ck_assert_str_ne(p1, p3);
	ck_assert_int_eq((int)strlen(p1), (int)strlen("feature-") + 10);
	char want[128];
	snprintf(want, sizeof want, "feature:%s@1", p1);
	ck_assert(has(&red, want));
	km_lineage_node n;
	ck_assert_int_eq(km_lineage_node_find(ctx, "feature:features/income@1", &n, &e), KM_OK);
	char lab[300];
	km_lineage_node_label(&n, lab, sizeof lab);
	ck_assert_str_eq(lab, want);
	/* a report made in the same deployment uses the same pseudonym */
	km_lineage_report_opts o = {.kind = KM_LINEAGE_REPORT_IMPACT, .subject = "features/risk@1"};
	json_t *doc = NULL;
	ck_assert_msg(km_lineage_report(ctx, &o, &doc, &e) == KM_OK, "%s", e.msg);
	char *dump = json_dumps(doc, JSON_COMPACT);
	ck_assert_ptr_nonnull(strstr(dump, want));
	ck_assert_ptr_null(strstr(dump, "fraud-api"));
	free(dump);
	json_decref(doc);
	/* and back */
	km_lineage_set_redact(ctx, 0);
	ck_assert_int_eq(km_lineage_node_find(ctx, "feature:features/income@1", &n, &e), KM_OK);
	ck_assert_str_eq(n.name, "feature:features/income");
	km_close(ctx);

	/* an auditor has no need-to-know: redacted whatever it asks */
	th_deploy_teardown(&D);
	th_deploy_setup(&D, KM_ROLE_AUDITOR, mappings);
	ctx = th_deploy_open(&D, NULL);
	ck_assert_int_eq(km_lineage_redacting(ctx), 1);
	km_lineage_set_redact(ctx, 0);
	ck_assert_int_eq(km_lineage_redacting(ctx), 1);
	km_close(ctx);
}
END_TEST

START_TEST(roles_decide_who_imports_and_reads)
{
	th_deploy_setup(&D, KM_ROLE_AUDITOR, mappings);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	const char *lines = SPEC_START "\n";
	ck_assert_int_eq(km_lineage_import_buffer(ctx, lines, strlen(lines), "x.jsonl", NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "lineage.import"));
	char action[64], outcome[16];
	last_event(ctx, action, outcome, NULL, 0);
	ck_assert_str_eq(action, "lineage.import");
	ck_assert_str_eq(outcome, "denied");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_events"), 0);
	/* Reading is allowed; a missing node is just not found. */
	km_lineage_node n;
	ck_assert_int_eq(km_lineage_node_find(ctx, "nothing@1", &n, &e), KM_ENOTFOUND);
	ck_assert(km_policy_allows(KM_ROLE_ADMIN, KM_ACT_LINEAGE_IMPORT));
	ck_assert(!km_policy_allows(KM_ROLE_SERVICE, KM_ACT_LINEAGE_READ));
	km_close(ctx);
}
END_TEST

START_TEST(mapping_rules_are_checked_at_load)
{
	static const struct {
		const char *cfg;
		const char *message;
	} rows[] = {
		{"{\"lineage_mappings\": {}}", "must be an array"},
		{"{\"lineage_mappings\": [{\"namespace\": \"a\"}]}", "[0] has no \"name\" pattern"},
		{"{\"lineage_mappings\": [{\"namespace\": \"a\", \"name\": \"b\"}]}", "[0] maps to nothing"},
		{"{\"lineage_mappings\": [{\"namespace\": \"a\", \"name\": \"b\", \"kind\": \"car\"}]}",
		 "[0].kind \"car\""},
		{"{\"lineage_mappings\": [{\"namespace\": \"a\", \"name\": \"b\", \"asset\": \"x\"}]}",
		 "[0].asset \"x\" must be written KIND:NAME"},
		{"{\"lineage_mappings\": [{\"namespace\": \"a\", \"name\": \"b\", \"kind\": \"model\", \"x\": \"y\"}]}",
		 "unknown field \"x\""},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(rows); i++) {
		km_config c;
		km_config_defaults(&c, "/nonexistent");
		km_err e;
		ck_assert_int_eq(km_config_parse(&c, rows[i].cfg, "config.json", &e), KM_ECONFIG);
		ck_assert_msg(strstr(e.msg, rows[i].message) != NULL, "row %zu: %s", i, e.msg);
		km_config_free(&c);
	}
	km_config c;
	km_config_defaults(&c, "/nonexistent");
	km_err e;
	char text[1024];
	snprintf(text, sizeof text, "{%s}", mappings);
	ck_assert_msg(km_config_parse(&c, text, "config.json", &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(json_array_size(c.lineage_mappings), 3);
	km_config_free(&c);
}
END_TEST

START_TEST(time_parse_table)
{
	static const struct {
		const char *s;
		int date_ok;
		km_status st;
		int64_t ms;
	} rows[] = {
		{"2026-01-01T00:00:00Z", 0, KM_OK, 1767225600000LL},
		{"2026-01-01T00:00:00.5Z", 0, KM_OK, 1767225600500LL},
		{"2026-01-01T01:00:00+01:00", 0, KM_OK, 1767225600000LL},
		{"2025-12-31T23:00:00.123456-01:00", 0, KM_OK, 1767225600123LL},
		{"2026-01-01", 1, KM_OK, 1767225600000LL},
		{"2026-01-01", 0, KM_EINVAL, 0},
		{"2026-02-30T00:00:00Z", 0, KM_EINVAL, 0},
		{"2026-01-01T00:00:00", 0, KM_EINVAL, 0},
		{"2026-01-01T00:00:00Zjunk", 0, KM_EINVAL, 0},
		{"", 0, KM_EINVAL, 0},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(rows); i++) {
		int64_t ms = 0;
		km_err e;
		ck_assert_msg(km_lineage_time_parse(rows[i].s, rows[i].date_ok, &ms, &e) == rows[i].st,
		              "row %zu (%s)", i, rows[i].s);
		if (rows[i].st == KM_OK)
			ck_assert_int_eq(ms, rows[i].ms);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lineage");
	TCase *t = tcase_create("lineage");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, spec_example_import_and_reimport);
	tcase_add_test(t, malformed_events_are_refused_whole);
	tcase_add_test(t, cycle_is_tolerated_and_reported);
	tcase_add_test(t, stepwise_walk_is_the_same_tree);
	tcase_add_test(t, time_travel_across_a_rotation);
	tcase_add_test(t, provenance_names_the_key_version_at_consumption);
	tcase_add_test(t, roles_decide_who_imports_and_reads);
	tcase_add_test(t, provenance_names_the_approvals_behind_each_version);
	tcase_add_test(t, redaction_gives_stable_pseudonyms_everywhere);
	suite_add_tcase(s, t);
	TCase *p = tcase_create("pure");
	tcase_add_test(p, mapping_rules_are_checked_at_load);
	tcase_add_test(p, time_parse_table);
	suite_add_tcase(s, p);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
