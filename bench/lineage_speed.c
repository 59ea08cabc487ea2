/*
 * lineage_speed.c — the lineage graph at scale: an impact walk over 100k
 * nodes and 1M edges, and the events for an import benchmark.
 *
 *   lineage_speed graph  --db FILE [--nodes N] [--edges-per-node K]
 *   lineage_speed cte    --db FILE --key NAME --version V --as-of T
 *   lineage_speed impact --key NAME --version V [--as-of T] [--runs R] [--all-at N]
 *   lineage_speed events --out FILE [-n N]
 *
 * graph: writes a layered graph straight into the catalogue of an
 * initialised deployment (10 layers of N/10; each node of layers 0-7 has
 * K+1 derived-from edges into the next layer, each model of layer 8 K+2
 * served-by edges to endpoints, to distinct positions within +-60 of its
 * own, so a narrow start stays narrow; with K = 10, 1M edges; then the
 * packed out-edge table built from them, lineage_adj.h), plus two
 * keys' protection: bench/narrow v1 protects 10 neighbouring nodes of
 * layer 0, bench/wide v1 protects 1000 spread over it (its impact reaches
 * most of the graph).  The keys must exist (`keyward key create`).
 * cte: prints the recursive CTE that computes the same reach as
 * km_lineage_impact (for the sqlite3 shell to time).
 * impact: opens the deployment (KEYWARD_HOME) and times km_lineage_impact
 * in this process, best of R runs; prints JSON {"seconds", "nodes"}.
 * --all-at N: read the whole packed out-edge table once the walk knows N
 * nodes (0: a row per node throughout; lineage_int.h).
 * events: N OpenLineage run events (default 100,000) as JSON lines, over
 * 20,000 datasets and 500 jobs, each with 2 inputs and 1 or 2 outputs.
 */
#include "keyward.h"
#include "lineage.h"
#include "lineage_adj.h"
#include "lineage_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "lineage_speed: %s: %s\n", what, why);
	exit(1);
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

/* A small deterministic generator: the same graph every run. */
static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

#define LAYERS 10
#define T_BASE 1767225600 /* 2026-01-01 */

static void exec_or_die(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		die(sql, err ? err : "?");
}

static int64_t key_id(sqlite3 *db, const char *name)
{
	sqlite3_stmt *q;
	sqlite3_prepare_v2(db, "SELECT id FROM keys WHERE name = ?", -1, &q, NULL);
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW)
		die(name, "no such key: create it first");
	int64_t id = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return id;
}

static int graph(const char *path, long nodes, long k)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(path, sqlite3_errmsg(db));
	int64_t narrow = key_id(db, "bench/narrow"), wide = key_id(db, "bench/wide");
	exec_or_die(db, "PRAGMA foreign_keys = OFF; BEGIN");
	sqlite3_stmt *n, *ed, *p;
	sqlite3_prepare_v2(db, "INSERT INTO lineage_nodes(id, kind, namespace, name, version, first_seen) "
	                   "VALUES(?,?,?,?,'',?)", -1, &n, NULL);
	sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO lineage_edges(src, dst, kind, first_seen, last_seen, job) "
	                   "VALUES(?,?,?,?,?,NULL)", -1, &ed, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, "
	                   "valid_from, valid_to) VALUES(?,?,?,1,?,9223372036854775807)", -1, &p, NULL);
	long per = nodes / LAYERS;
	int64_t base;
	{
		sqlite3_stmt *q;
		sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM lineage_nodes", -1, &q, NULL);
		sqlite3_step(q);
		base = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	static const char *const layer_kind[LAYERS] = {"feature", "dataset", "dataset", "feature-group",
	                                               "dataset", "dataset", "feature", "dataset",
	                                               "model", "endpoint"};
	for (long i = 0; i < per * LAYERS; i++) {
		char name[64];
		snprintf(name, sizeof name, "bench/l%ld/n%ld", i / per, i % per);
		sqlite3_reset(n);
		sqlite3_bind_int64(n, 1, base + 1 + i);
		sqlite3_bind_text(n, 2, layer_kind[i / per], -1, SQLITE_STATIC);
		sqlite3_bind_text(n, 3, "s3://bench", -1, SQLITE_STATIC);
		sqlite3_bind_text(n, 4, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(n, 5, T_BASE);
		if (sqlite3_step(n) != SQLITE_DONE)
			die("node", sqlite3_errmsg(db));
	}
	long edges = 0;
	/* Layers 0-7: 11 edges a node, layer 8 (models -> endpoints): 12, the
	 * last layer none: 1,000,000 edges for 100,000 nodes.  Offsets are
	 * distinct (one in each slice) and within -60..+60 of the position. */
	for (long i = 0; i < per * (LAYERS - 1); i++) {
		long layer = i / per, pos = i % per;
		long fan = layer == LAYERS - 2 ? k + 2 : k + 1, slice = 120 / fan;
		for (long j = 0; j < fan; j++) {
			long off = j * slice + (long)(next_rand() % (uint64_t)slice) - 60;
			long dst = (layer + 1) * per + (pos + off + per) % per;
			int64_t t = T_BASE + 3600 + (int64_t)(next_rand() % (86400 * 300));
			sqlite3_reset(ed);
			sqlite3_bind_int64(ed, 1, base + 1 + i);
			sqlite3_bind_int64(ed, 2, base + 1 + dst);
			sqlite3_bind_text(ed, 3, layer == LAYERS - 2 ? "served-by" : "derived-from", -1, SQLITE_STATIC);
			sqlite3_bind_int64(ed, 4, t);
			sqlite3_bind_int64(ed, 5, t + 86400);
			if (sqlite3_step(ed) != SQLITE_DONE)
				die("edge", sqlite3_errmsg(db));
			edges += sqlite3_changes(db);
		}
	}
	for (long i = 0; i < 1000; i++) {
		int64_t node = base + 1 + (i < 10 ? per / 2 + i : (i * per) / 1000);
		sqlite3_reset(p);
		sqlite3_bind_int64(p, 1, node);
		sqlite3_bind_int64(p, 2, 0);
		sqlite3_bind_int64(p, 3, i < 10 ? narrow : wide);
		sqlite3_bind_int64(p, 4, T_BASE);
		if (sqlite3_step(p) != SQLITE_DONE)
			die("protection", sqlite3_errmsg(db));
	}
	/* Written around the import, so every source's packed out-edge row is
	 * marked stale (db.c, v13): pack them all, as the migration would. */
	km_err e;
	if (lineage_adj_build(db, &e) != KM_OK)
		die("packing the out-edges", e.msg);
	exec_or_die(db, "COMMIT; ANALYZE;");
	sqlite3_finalize(n);
	sqlite3_finalize(ed);
	sqlite3_finalize(p);
	sqlite3_close(db);
	printf("{\"nodes\": %ld, \"edges\": %ld}\n", per * LAYERS, edges);
	return 0;
}

/* The same reach as km_lineage_impact: the protection rows as of T, the
 * first hop only along edges seen while protected, then every edge first
 * seen by T; counted by kind. */
static int cte(const char *path, const char *key, const char *version, const char *as_of)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(path, sqlite3_errmsg(db));
	int64_t id = key_id(db, key);
	sqlite3_close(db);
	printf("WITH RECURSIVE\n"
	       " seeds(node, vf, vt) AS (SELECT node, valid_from, valid_to FROM lineage_protection\n"
	       "   WHERE key_id = %" PRId64 " AND kek_version = %s AND valid_from <= %s),\n"
	       " reach(n) AS (\n"
	       "   SELECT node FROM seeds\n"
	       "   UNION SELECT e.dst FROM seeds s JOIN lineage_edges e ON e.src = s.node\n"
	       "     WHERE e.first_seen <= %s AND e.first_seen < s.vt AND e.last_seen >= s.vf\n"
	       "   UNION SELECT e.dst FROM reach r JOIN lineage_edges e ON e.src = r.n\n"
	       "     WHERE e.first_seen <= %s)\n"
	       "SELECT n.kind, count(*) FROM reach r JOIN lineage_nodes n ON n.id = r.n GROUP BY n.kind;\n",
	       id, version, as_of, as_of, as_of);
	return 0;
}

static int count_hit(void *c, const km_lineage_hit *h)
{
	(void)h;
	(*(uint64_t *)c)++;
	return 0;
}

static int impact(const char *key, uint32_t version, int64_t as_of, int runs)
{
	km_ctx *ctx;
	km_err e;
	km_open_opts o = {0};
	if (km_open(&o, &ctx, &e) != KM_OK)
		die("km_open", e.msg);
	double best = 1e9;
	uint64_t hits = 0;
	km_lineage_impact_summary sum;
	for (int r = 0; r < runs; r++) {
		hits = 0;
		double t0 = now_s();
		if (km_lineage_impact(ctx, key, version, as_of, count_hit, &hits, &sum, &e) != KM_OK)
			die("impact", e.msg);
		double t = now_s() - t0;
		if (t < best)
			best = t;
	}
	km_close(ctx);
	printf("{\"seconds\": %.6f, \"nodes\": %" PRIu64 ", \"models\": %" PRIu64 ", \"endpoints\": %" PRIu64 "}\n",
	       best, hits, sum.counts[KM_LN_MODEL], sum.counts[KM_LN_ENDPOINT]);
	return 0;
}

static int events(const char *path, long n)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die(path, "cannot write");
	for (long i = 0; i < n; i++) {
		long job = (long)(next_rand() % 500);
		long in1 = (long)(next_rand() % 20000), in2 = (long)(next_rand() % 20000);
		long out1 = (long)(next_rand() % 20000), out2 = (long)(next_rand() % 20000);
		int two = (int)(next_rand() % 2);
		time_t t = (time_t)(T_BASE + i * 10);
		struct tm tm;
		gmtime_r(&t, &tm);
		char when[40];
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		char second[96] = "";
		if (two)
			snprintf(second, sizeof second, ",{\"namespace\":\"s3://lake\",\"name\":\"tables/t%ld\"}", out2);
		fprintf(f,
		        "{\"eventType\":\"COMPLETE\",\"eventTime\":\"%s.%03ldZ\",\"run\":{\"runId\":"
		        "\"%08lx-0000-4000-8000-%012lx\"},\"job\":{\"namespace\":\"airflow\",\"name\":\"dag%ld.task\"},"
		        "\"inputs\":[{\"namespace\":\"s3://lake\",\"name\":\"tables/t%ld\"},"
		        "{\"namespace\":\"s3://lake\",\"name\":\"tables/t%ld\"}],"
		        "\"outputs\":[{\"namespace\":\"s3://lake\",\"name\":\"tables/t%ld\",\"facets\":{\"schema\":"
		        "{\"_producer\":\"https://example.com\",\"_schemaURL\":\"https://example.com/schema\","
		        "\"fields\":[{\"name\":\"id\",\"type\":\"BIGINT\"}]}}}%s],"
		        "\"producer\":\"https://example.com/bench\","
		        "\"schemaURL\":\"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}\n",
		        when, i % 1000, (unsigned long)i, (unsigned long)i, job, in1, in2, out1, second);
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage", "graph|cte|impact|events ...");
	const char *mode = argv[1];
	if (strcmp(mode, "graph") == 0)
		return graph(opt(argc, argv, "--db", "keyward.db"), atol(opt(argc, argv, "--nodes", "100000")),
		             atol(opt(argc, argv, "--edges-per-node", "10")));
	if (strcmp(mode, "cte") == 0)
		return cte(opt(argc, argv, "--db", "keyward.db"), opt(argc, argv, "--key", "bench/narrow"),
		           opt(argc, argv, "--version", "1"), opt(argc, argv, "--as-of", "9999999999"));
	if (strcmp(mode, "impact") == 0) {
		const char *all_at = opt(argc, argv, "--all-at", NULL);
		if (all_at)
			lineage_impact_all_at = (size_t)atol(all_at);
		return impact(opt(argc, argv, "--key", "bench/narrow"),
		              (uint32_t)atol(opt(argc, argv, "--version", "1")),
		              atoll(opt(argc, argv, "--as-of", "0")), atoi(opt(argc, argv, "--runs", "5")));
	}
	if (strcmp(mode, "events") == 0)
		return events(opt(argc, argv, "--out", "events.jsonl"), atol(opt(argc, argv, "-n", "100000")));
	die("usage", "graph|cte|impact|events ...");
	return 1;
}
