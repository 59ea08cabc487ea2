/*
 * test_lineage_adj.c — the packed out-edge table (core/lineage_adj.h) that
 * impact walks read: on a random graph with cycles, re-observed edges and
 * protection intervals, the walk over packed rows (a row per node, and the
 * whole table at once) gives exactly the walk over lineage_edges (every
 * row marked stale) as of several times; an import, a writer that goes
 * around the import, and the migration keep the table in step; and a
 * packed row that disagrees with lineage_edges is caught.
 */
#include "th_deploy.h"
#include "asset.h"
#include "bigbuf.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "lineage.h"
#include "lineage_adj.h"
#include "lineage_int.h"

#include <check.h>
#include <stdint.h>
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

static void teardown(void)
{
	lineage_impact_all_at = 10000;
	lineage_walk_dense_max = (size_t)1 << 22;
	th_deploy_teardown(&D);
}

#define T0 1767225600 /* 2026-01-01 */
#define DAY 86400

static km_ctx *open_deploy(void)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER,
	                "\"lineage_mappings\": [{\"namespace\": \"s3://lake\", \"name\": \"features/*\","
	                " \"asset\": \"feature:{name}\"}]");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	clock_now = T0;
	km_set_clock(ctx, test_clock, NULL);
	return ctx;
}

static int64_t count(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_msg(km_db_int64(km_db(ctx), sql, &v, &e) == KM_OK, "%s: %s", sql, e.msg);
	return v;
}

static void exec(km_ctx *ctx, const char *sql)
{
	km_err e;
	ck_assert_msg(km_db_exec(km_db(ctx), sql, &e) == KM_OK, "%s: %s", sql, e.msg);
}

/* One OpenLineage run: job reads `in`, writes `out`, at t. */
static size_t ev(char *buf, size_t cap, int seq, int64_t t, const char *job, const char *in, const char *out)
{
	char when[32];
	km_time_format(t, when);
	int n = snprintf(buf, cap,
	                 "{\"eventType\":\"COMPLETE\",\"eventTime\":\"%s\",\"run\":{\"runId\":"
	                 "\"00000000-0000-4000-8000-%012d\"},\"job\":{\"namespace\":\"airflow\",\"name\":\"%s\"},"
	                 "\"inputs\":[{\"namespace\":\"s3://lake\",\"name\":\"%s\"}],"
	                 "\"outputs\":[{\"namespace\":\"s3://lake\",\"name\":\"%s\"}],"
	                 "\"producer\":\"https://example.com/p\",\"schemaURL\":"
	                 "\"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}\n",
	                 when, seq, job, in, out);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_lt((size_t)n, cap);
	return (size_t)n;
}

static void import_text(km_ctx *ctx, const char *text)
{
	km_err e;
	km_lineage_import_result r;
	ck_assert_msg(km_lineage_import_buffer(ctx, text, strlen(text), "t.jsonl", &r, &e) == KM_OK, "%s", e.msg);
}

static uint32_t rnd = 2463534242u;
static uint32_t next_rand(void)
{
	rnd ^= rnd << 13;
	rnd ^= rnd >> 17;
	rnd ^= rnd << 5;
	return rnd;
}

/* n random runs over features/a..d and d0..d29 (a small pool: cycles and
 * edges seen again, earlier and later), times spread over days 1..9 and
 * imported out of order. */
static void import_random(km_ctx *ctx, int first_seq, int n)
{
	static char text[400 * 700];
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		char in[32], out[32];
		uint32_t a = next_rand() % 34, b = next_rand() % 34;
		if (a < 4)
			snprintf(in, sizeof in, "features/%c", 'a' + (char)a);
		else
			snprintf(in, sizeof in, "d%u", a - 4);
		snprintf(out, sizeof out, "d%u", b % 30);
		int64_t t = T0 + (int64_t)(1 + next_rand() % 9) * DAY + (int64_t)(next_rand() % DAY);
		char job[8];
		snprintf(job, sizeof job, "j%u", next_rand() % 5);
		used += ev(text + used, sizeof text - used, first_seq + i, t, job, in, out);
	}
	import_text(ctx, text);
}

/* ---- a walk as comparable lines ------------------------------------------ */

typedef struct sig_list {
	char (*line)[240];
	size_t n, cap;
} sig_list;

static int sig_hit(void *c, const km_lineage_hit *h)
{
	sig_list *l = c;
	ck_assert_uint_lt(l->n, l->cap);
	char label[300];
	km_lineage_node_label(&h->node, label, sizeof label);
	/* node <- the node before it, depth, the edge that reached it, the
	 * whole path's edges, the start's protection, the node. */
	char path[64] = "";
	for (size_t k = 0; k < h->path_len && k < 20; k++)
		path[k] = h->path[k].edge[0];
	snprintf(l->line[l->n++], sizeof l->line[0], "%lld<-%lld d%u %s %s v%u %lld..%lld %.60s %d",
	         (long long)h->node.id, h->path_len > 1 ? (long long)h->path[h->path_len - 2].node : -1LL,
	         h->depth, h->path[h->path_len - 1].edge, path, h->kek_version, (long long)h->protected_from,
	         (long long)h->protected_to, label, (int)h->node.kind);
	ck_assert_uint_eq(h->path_len, h->depth + 1);
	return 0;
}

#define SIG_MAX 512
typedef struct walk_sig {
	char lines[SIG_MAX][240];
	sig_list l;
	km_lineage_impact_summary sum;
} walk_sig;

static void walk_of(km_ctx *ctx, uint32_t version, int64_t as_of, walk_sig *s)
{
	km_err e;
	s->l = (sig_list){s->lines, 0, SIG_MAX};
	ck_assert_msg(km_lineage_impact(ctx, "features/risk", version, as_of, sig_hit, &s->l, &s->sum, &e) == KM_OK,
	              "%s", e.msg);
	ck_assert_uint_eq(s->l.n, s->sum.total);
}

static int same_walk(const walk_sig *a, const walk_sig *b)
{
	if (a->l.n != b->l.n || a->sum.cycles != b->sum.cycles ||
	    strcmp(a->sum.cycle_example, b->sum.cycle_example) != 0 ||
	    memcmp(a->sum.counts, b->sum.counts, sizeof a->sum.counts) != 0)
		return 0;
	for (size_t i = 0; i < a->l.n; i++)
		if (strcmp(a->lines[i], b->lines[i]) != 0)
			return 0;
	return 1;
}

static void check_table(km_ctx *ctx, uint64_t want_stale, uint64_t want_wrong)
{
	uint64_t stale, wrong;
	km_err e;
	ck_assert_msg(lineage_adj_check(km_db(ctx), &stale, &wrong, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(stale, want_stale);
	ck_assert_uint_eq(wrong, want_wrong);
}

/* The walk over lineage_edges alone: every packed row marked stale for
 * the walk, then put back as it was. */
static void sql_walk_of(km_ctx *ctx, uint32_t version, int64_t as_of, walk_sig *s)
{
	exec(ctx, "CREATE TEMP TABLE keep_out AS SELECT src, packed FROM lineage_out;"
	          "UPDATE lineage_out SET packed = NULL");
	walk_of(ctx, version, as_of, s);
	exec(ctx, "UPDATE lineage_out SET packed = (SELECT packed FROM keep_out k WHERE k.src = lineage_out.src);"
	          "DROP TABLE keep_out");
}

static const int64_t as_ofs[] = {0, T0 + 2 * DAY, T0 + 3 * DAY + DAY / 2, T0 + 5 * DAY, T0 + 8 * DAY};

/* Packed (a row at a time, and the whole table) == SQL, for both
 * versions' selections and every as_of, and each with its visited set
 * hashed instead of indexed by id; *reached: the largest walk. */
static void all_walks_agree(km_ctx *ctx, size_t *reached, uint64_t *cycles)
{
	static walk_sig sql, rows, whole, hashed;
	*reached = 0;
	*cycles = 0;
	for (uint32_t v = 0; v <= 1; v++)
		for (size_t t = 0; t < KM_ARRAY_LEN(as_ofs); t++) {
			sql_walk_of(ctx, v, as_ofs[t], &sql);
			lineage_impact_all_at = 0;
			walk_of(ctx, v, as_ofs[t], &rows);
			lineage_impact_all_at = 1;
			walk_of(ctx, v, as_ofs[t], &whole);
			lineage_impact_all_at = 10000;
			ck_assert_msg(same_walk(&sql, &rows), "row-per-node walk differs (v%u, as of #%zu)", v, t);
			ck_assert_msg(same_walk(&sql, &whole), "whole-table walk differs (v%u, as of #%zu)", v, t);
			for (size_t at = 0; at <= 1; at++) {
				lineage_walk_dense_max = 0;
				lineage_impact_all_at = at;
				walk_of(ctx, v, as_ofs[t], &hashed);
				lineage_walk_dense_max = (size_t)1 << 22;
				lineage_impact_all_at = 10000;
				ck_assert_msg(same_walk(&sql, &hashed), "hashed walk differs (v%u, as of #%zu, all at %zu)",
				              v, t, at);
			}
			if (sql.l.n > *reached)
				*reached = sql.l.n;
			if (sql.sum.cycles > *cycles)
				*cycles = sql.sum.cycles;
		}
}

static int walk_has(const walk_sig *s, const char *label)
{
	for (size_t i = 0; i < s->l.n; i++)
		if (strstr(s->lines[i], label))
			return 1;
	return 0;
}

static void set_up_graph(km_ctx *ctx)
{
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/risk", NULL, 0, &e), KM_OK);
	const char *specs[] = {"feature:features/a@1", "feature:features/b@1", "feature:features/c@1",
	                       "feature:features/d@1"};
	ck_assert_msg(km_asset_register_bulk(ctx, "features/risk", specs, 4, &e) == KM_OK, "%s", e.msg);
	clock_now = T0 + 10 * DAY;
	import_random(ctx, 1, 300);
	/* Two datasets protected by v1 for days 3 to 6 only: their first hop
	 * takes only edges seen in that window. */
	exec(ctx, "INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, valid_from, valid_to) "
	          "SELECT n.id, 0, k.id, 1, 1767225600 + 3 * 86400, 1767225600 + 6 * 86400 "
	          "FROM lineage_nodes n, keys k WHERE n.name IN ('d3', 'd4') AND k.name = 'features/risk'");
}

/* ---- the tests ------------------------------------------------------------ */

START_TEST(packed_walk_equals_sql_walk)
{
	km_ctx *ctx = open_deploy();
	set_up_graph(ctx);
	/* The import left every row packed and equal to lineage_edges. */
	ck_assert_int_gt(count(ctx, "SELECT count(*) FROM lineage_out"), 20);
	check_table(ctx, 0, 0);
	size_t reached;
	uint64_t cycles;
	all_walks_agree(ctx, &reached, &cycles);
	ck_assert_uint_gt(reached, 20);
	ck_assert_uint_gt(cycles, 0);

	/* A packed row that lies (one more edge than lineage_edges holds, to
	 * a node nothing else reaches, out of a start and seen while it was
	 * protected) is what a repack that forgot a writer
	 * would leave: the check names it, and the packed walk differs from
	 * the SQL walk, which shows the walk reads the packed rows. */
	exec(ctx, "INSERT INTO lineage_nodes(kind, namespace, name, first_seen) VALUES('dataset', 's3://lake', "
	          "'island', 0)");
	exec(ctx, "CREATE TEMP TABLE hub AS SELECT n.id AS id FROM lineage_nodes n WHERE n.name = "
	          "'feature:features/a' AND n.namespace = 'keyward' AND n.version = '1'");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM hub"), 1);
	exec(ctx, "INSERT INTO lineage_edges(src, dst, kind, first_seen, last_seen) SELECT h.id, n.id, "
	          "'derived-from', 1767225600 + 86400, 1767225600 + 86400 FROM hub h, lineage_nodes n "
	          "WHERE n.name = 'island'");
	check_table(ctx, 1, 0); /* the trigger marked the row stale */
	km_err e;
	ck_assert_int_eq(lineage_adj_refresh(km_db(ctx), NULL, 0, &e), KM_OK);
	exec(ctx, "CREATE TEMP TABLE lie AS SELECT o.src, o.packed, t.times FROM lineage_out o "
	          "JOIN lineage_out_times t USING (src) JOIN hub h ON h.id = o.src");
	exec(ctx, "DELETE FROM lineage_edges WHERE dst = (SELECT id FROM lineage_nodes WHERE name = 'island')");
	ck_assert_int_eq(lineage_adj_refresh(km_db(ctx), NULL, 0, &e), KM_OK);
	check_table(ctx, 0, 0);
	/* (the start has no other edges: the repack dropped its row) */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_out WHERE src = (SELECT src FROM lie)"), 0);
	exec(ctx, "INSERT INTO lineage_out(src, packed) SELECT src, packed FROM lie;"
	          "INSERT INTO lineage_out_times(src, times) SELECT src, times FROM lie");
	check_table(ctx, 0, 1);
	static walk_sig sql, packed;
	sql_walk_of(ctx, 1, 0, &sql);
	walk_of(ctx, 1, 0, &packed);
	ck_assert(!walk_has(&sql, "s3://lake island"));
	ck_assert(walk_has(&packed, "s3://lake island"));
	ck_assert(!same_walk(&sql, &packed));

	/* A row that cannot be decoded is read from lineage_edges instead. */
	exec(ctx, "UPDATE lineage_out SET packed = X'01FFFF' WHERE src = (SELECT src FROM lie)");
	walk_of(ctx, 1, 0, &packed);
	ck_assert(same_walk(&sql, &packed));
	/* And a rebuild puts it right. */
	ck_assert_int_eq(lineage_adj_build(km_db(ctx), &e), KM_OK);
	check_table(ctx, 0, 0);
	walk_of(ctx, 1, 0, &packed);
	ck_assert(same_walk(&sql, &packed));
	km_close(ctx);
}
END_TEST

START_TEST(writers_keep_the_table_in_step)
{
	km_ctx *ctx = open_deploy();
	set_up_graph(ctx);
	static walk_sig before, after;
	walk_of(ctx, 1, 0, &before);
	ck_assert(!walk_has(&before, "s3://lake fresh1"));
	int64_t rows = count(ctx, "SELECT count(*) FROM lineage_out");

	/* A second import: new edges out of reached nodes, one to a new
	 * dataset, and edges seen again earlier than before (their first_seen
	 * moves back, which changes what is reached as of day 2). */
	char text[8 * 700];
	size_t used = 0;
	used += ev(text + used, sizeof text - used, 900, T0 + 9 * DAY, "j9", "features/a", "fresh1");
	used += ev(text + used, sizeof text - used, 901, T0 + 9 * DAY, "j9", "fresh1", "d0");
	for (int i = 0; i < 4; i++) {
		char in[16];
		snprintf(in, sizeof in, "features/%c", 'a' + i);
		used += ev(text + used, sizeof text - used, 910 + i, T0 + DAY + 60, "j0", in, "d1");
	}
	import_text(ctx, text);
	check_table(ctx, 0, 0);
	ck_assert_int_gt(count(ctx, "SELECT count(*) FROM lineage_out"), rows);
	walk_of(ctx, 1, 0, &after);
	ck_assert(walk_has(&after, "s3://lake fresh1"));
	size_t reached;
	uint64_t cycles;
	all_walks_agree(ctx, &reached, &cycles);

	/* A writer that goes around the import (the sqlite3 shell): the
	 * trigger marks the row stale, the walk reads lineage_edges for it
	 * and sees the edge at once, and the next import repacks it. */
	exec(ctx, "INSERT INTO lineage_nodes(kind, namespace, name, first_seen) VALUES('dataset', 's3://lake', "
	          "'by-hand', 0)");
	exec(ctx, "INSERT INTO lineage_edges(src, dst, kind, first_seen, last_seen) SELECT a.id, b.id, "
	          "'derived-from', 5, 5 FROM lineage_nodes a, lineage_nodes b WHERE a.name = 'fresh1' AND "
	          "b.name = 'by-hand'");
	check_table(ctx, 1, 0);
	walk_of(ctx, 1, 0, &after);
	ck_assert(walk_has(&after, "s3://lake by-hand"));
	all_walks_agree(ctx, &reached, &cycles);
	/* The same for an update and a delete by hand. */
	exec(ctx, "UPDATE lineage_edges SET first_seen = 1767225600 + 7 * 86400 WHERE dst = "
	          "(SELECT id FROM lineage_nodes WHERE name = 'by-hand')");
	walk_of(ctx, 1, T0 + 6 * DAY, &after);
	ck_assert(!walk_has(&after, "s3://lake by-hand"));
	all_walks_agree(ctx, &reached, &cycles);
	exec(ctx, "DELETE FROM lineage_edges WHERE src = (SELECT id FROM lineage_nodes WHERE name = 'fresh1')");
	walk_of(ctx, 1, 0, &after);
	ck_assert(!walk_has(&after, "s3://lake by-hand"));
	all_walks_agree(ctx, &reached, &cycles);
	check_table(ctx, 1, 0);
	char one[700];
	ev(one, sizeof one, 990, T0 + 9 * DAY, "j1", "d5", "d6");
	import_text(ctx, one);
	check_table(ctx, 0, 0);
	/* fresh1 has no edges left: its row went with them. */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_out WHERE src = "
	                            "(SELECT id FROM lineage_nodes WHERE name = 'fresh1')"), 0);
	all_walks_agree(ctx, &reached, &cycles);
	/* An update that moves an edge to another source marks both. */
	exec(ctx, "INSERT INTO lineage_nodes(kind, namespace, name, first_seen) VALUES('dataset', 's3://lake', "
	          "'mover', 0)");
	exec(ctx, "UPDATE lineage_edges SET src = (SELECT id FROM lineage_nodes WHERE name = 'mover') "
	          "WHERE src = (SELECT id FROM lineage_nodes WHERE name = 'd5') AND "
	          "dst = (SELECT id FROM lineage_nodes WHERE name = 'd6')");
	ck_assert_int_eq(count(ctx, "SELECT changes()"), 1);
	check_table(ctx, 2, 0);
	all_walks_agree(ctx, &reached, &cycles);
	km_close(ctx);
}
END_TEST

/* The whole-table read copies ids and kinds only (lineage_out), and reads
 * a row's times (lineage_out_times) when they are wanted (a first hop, an
 * as_of before some edge): the same edges as a row-at-a-time read, times
 * and all; and a times row gone missing makes the row read as stale. */
START_TEST(whole_table_reads_times_when_wanted)
{
	km_ctx *ctx = open_deploy();
	set_up_graph(ctx);
	km_err e;
	sqlite3 *db = km_db(ctx);
	lineage_adj_reader whole, one;
	ck_assert_int_eq(lineage_adj_reader_open(db, &whole, &e), KM_OK);
	ck_assert_int_eq(lineage_adj_reader_open(db, &one, &e), KM_OK);
	ck_assert_int_eq(lineage_adj_reader_load_all(&whole, &e), KM_OK);
	ck_assert_int_eq((int64_t)whole.data_len, count(ctx, "SELECT sum(length(packed)) FROM lineage_out"));
	ck_assert_int_eq((int64_t)whole.nsrc, count(ctx, "SELECT count(*) FROM lineage_out"));
	/* Edges are spread over days 1..9: as of the start of day 9 some rows
	 * need their times and some do not. */
	static const int64_t asks[] = {T0 + 9 * DAY, T0 + 10 * DAY, T0 + 2 * DAY};
	size_t compared = 0, timed_rows = 0, untimed_rows = 0;
	for (size_t i = 0; i < whole.nsrc; i++)
		for (size_t a = 0; a < KM_ARRAY_LEN(asks); a++)
			for (int want_times = 0; want_times <= 1; want_times++) {
				size_t nw, no;
				int tw, to;
				ck_assert_int_eq(lineage_adj_reader_edges(&whole, whole.src[i], asks[a], want_times, &nw, &tw,
				                                          &e), 1);
				ck_assert_int_eq(lineage_adj_reader_edges(&one, whole.src[i], asks[a], want_times, &no, &to,
				                                          &e), 1);
				ck_assert_uint_eq(nw, no);
				ck_assert_int_eq(tw, to);
				if (a == 0 && !want_times) {
					timed_rows += tw != 0;
					untimed_rows += tw == 0;
				}
				for (size_t k = 0; k < nw; k++) {
					ck_assert_int_eq(whole.edges[k].dst, one.edges[k].dst);
					ck_assert_uint_eq(whole.edges[k].kind, one.edges[k].kind);
					ck_assert_int_eq(whole.edges[k].first_seen, one.edges[k].first_seen);
					ck_assert_int_eq(whole.edges[k].last_seen, one.edges[k].last_seen);
				}
				compared += nw;
			}
	ck_assert_uint_gt(compared, 100);
	ck_assert_uint_gt(timed_rows, 0);
	ck_assert_uint_gt(untimed_rows, 0);
	/* Its times row gone: stale when the times are wanted, fine when not. */
	int64_t src = whole.src[0];
	char sql[120];
	snprintf(sql, sizeof sql, "DELETE FROM lineage_out_times WHERE src = %lld", (long long)src);
	exec(ctx, sql);
	size_t n;
	int timed;
	ck_assert_int_eq(lineage_adj_reader_edges(&whole, src, T0 + 2 * DAY, 1, &n, &timed, &e), 0);
	ck_assert_int_eq(lineage_adj_reader_edges(&one, src, T0 + 2 * DAY, 1, &n, &timed, &e), 0);
	ck_assert_int_eq(lineage_adj_reader_edges(&whole, src, INT64_MAX, 0, &n, &timed, &e), 1);
	ck_assert_uint_gt(n, 0);
	lineage_adj_reader_close(&whole);
	lineage_adj_reader_close(&one);
	km_close(ctx);
}
END_TEST

/* Deployments from before the table (v14) and from before its times had
 * a table of their own (v15, format 1 rows): the migrations build both
 * whole, and the walk is the same.  (v16 is the newest migration.) */
static void migrate_from(int version, const char *undo)
{
	km_ctx *ctx = open_deploy();
	set_up_graph(ctx);
	static walk_sig before, after;
	walk_of(ctx, 0, 0, &before);
	int64_t rows = count(ctx, "SELECT count(*) FROM lineage_out");
	int64_t times = count(ctx, "SELECT count(*) FROM lineage_out_times");
	ck_assert_int_eq(rows, times);
	km_close(ctx);

	char path[400];
	snprintf(path, sizeof path, "%s/keyward.db", D.home);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	char sql[600];
	snprintf(sql, sizeof sql, "%s PRAGMA user_version = %d", undo, version);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	ctx = th_deploy_open(&D, NULL);
	km_set_clock(ctx, test_clock, NULL);
	ck_assert_int_eq(count(ctx, "PRAGMA user_version"), km_db_schema_version());
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_out"), rows);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_out_times"), times);
	check_table(ctx, 0, 0);
	walk_of(ctx, 0, 0, &after);
	ck_assert(same_walk(&before, &after));
	km_close(ctx);
}

START_TEST(migration_builds_the_table)
{
	ck_assert_int_eq(km_db_schema_version(), 16);
	migrate_from(14, "DROP TRIGGER lineage_edges_out_ins; DROP TRIGGER lineage_edges_out_upd;"
	                 "DROP TRIGGER lineage_edges_out_del; DROP TABLE lineage_out; DROP TABLE lineage_out_times;");
}
END_TEST

START_TEST(migration_moves_the_times)
{
	/* Format 1 rows (the first byte says so) are rebuilt, not misread. */
	migrate_from(15, "DROP TABLE lineage_out_times; UPDATE lineage_out SET packed = X'01' || substr(packed, 2);");
}
END_TEST

/* Packing round-trips every int64 and every kind; rows that are not this
 * format's are refused, not guessed at. */
START_TEST(packing_round_trips_and_refuses_damage)
{
	sqlite3 *db;
	km_err e;
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(km_db_exec(db, "CREATE TABLE lineage_edges(src INTEGER, dst INTEGER, kind TEXT, "
	                            "first_seen INTEGER, last_seen INTEGER, PRIMARY KEY(src, dst, kind)) "
	                            "WITHOUT ROWID; CREATE TABLE lineage_out(src INTEGER PRIMARY KEY, packed BLOB);"
	                            "CREATE TABLE lineage_out_times(src INTEGER PRIMARY KEY, times BLOB NOT NULL);"
	                            "INSERT INTO lineage_edges VALUES"
	                            " (-7, -9223372036854775808, 'served-by', 9223372036854775807, 9223372036854775807),"
	                            " (-7, -1, 'consumed-by', -9223372036854775808, 9223372036854775807),"
	                            " (-7, -1, 'derived-from', 0, 0),"
	                            " (-7, 5, 'made-up', 1767225600123, 1767225600000),"
	                            " (-7, 9223372036854775807, 'derived-from', -5, -6),"
	                            " (3, 4, 'derived-from', 10, 20);", &e), KM_OK);
	ck_assert_int_eq(lineage_adj_build(db, &e), KM_OK);
	sqlite3_stmt *q;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT o.packed, t.times FROM lineage_out o JOIN lineage_out_times t "
	                                    "USING (src) WHERE src = -7", -1, &q, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	size_t len = (size_t)sqlite3_column_bytes(q, 0), tlen = (size_t)sqlite3_column_bytes(q, 1);
	unsigned char *blob = malloc(len), *times = malloc(tlen);
	memcpy(blob, sqlite3_column_blob(q, 0), len);
	memcpy(times, sqlite3_column_blob(q, 1), tlen);
	sqlite3_finalize(q);
	lineage_adj_edge *ed = NULL;
	size_t cap = 0, n;
	int timed;
	/* The times wanted and not given: the caller is told to fetch them. */
	ck_assert_int_eq(lineage_adj_decode(blob, len, NULL, 0, 0, 1, &ed, &cap, &n, &timed), 2);
	ck_assert_int_eq(lineage_adj_decode(blob, len, times, tlen, 0, 1, &ed, &cap, &n, &timed), 0);
	ck_assert_int_eq(timed, 1);
	ck_assert_uint_eq(n, 5);
	/* Primary-key order: dst, then kind as text. */
	static const struct {
		int64_t dst, first, last;
		unsigned kind;
	} want[] = {
		{INT64_MIN, INT64_MAX, INT64_MAX, LINEAGE_EK_SERVED},
		{-1, INT64_MIN, INT64_MAX, LINEAGE_EK_CONSUMED},
		{-1, 0, 0, LINEAGE_EK_DERIVED},
		{5, 1767225600123, 1767225600000, LINEAGE_EK_OTHER},
		{INT64_MAX, -5, -6, LINEAGE_EK_DERIVED},
	};
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(ed[i].dst, want[i].dst);
		ck_assert_int_eq(ed[i].first_seen, want[i].first);
		ck_assert_int_eq(ed[i].last_seen, want[i].last);
		ck_assert_uint_eq(ed[i].kind, want[i].kind);
	}
	ck_assert_str_eq(lineage_adj_kind_name(LINEAGE_EK_OTHER), "unknown");
	/* As of a time after every first_seen the times are not needed (and
	 * not asked for); as of one before some, they are (the walk filters
	 * on them). */
	ck_assert_int_eq(lineage_adj_decode(blob, len, NULL, 0, INT64_MAX, 0, &ed, &cap, &n, &timed), 0);
	ck_assert_int_eq(timed, 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(ed[4].dst, INT64_MAX);
	ck_assert_int_eq(lineage_adj_decode(blob, len, NULL, 0, 1767225600122, 0, &ed, &cap, &n, &timed), 2);
	ck_assert_int_eq(lineage_adj_decode(blob, len, times, tlen, 1767225600122, 0, &ed, &cap, &n, &timed), 0);
	ck_assert_int_eq(timed, 1);
	/* Damage: every truncation of the row and of its times, a wrong format
	 * byte, trailing bytes in either, a kind out of range, a count the row
	 * cannot hold. */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(lineage_adj_decode(blob, cut, times, tlen, 0, 1, &ed, &cap, &n, &timed), 1);
	for (size_t cut = 0; cut < tlen; cut++)
		ck_assert_int_eq(lineage_adj_decode(blob, len, times, cut, 0, 1, &ed, &cap, &n, &timed), 1);
	unsigned char *bad = malloc((len > tlen ? len : tlen) + 1);
	memcpy(bad, blob, len);
	bad[len] = 0;
	ck_assert_int_eq(lineage_adj_decode(bad, len + 1, times, tlen, 0, 1, &ed, &cap, &n, &timed), 1);
	bad[0] = LINEAGE_ADJ_FORMAT + 1;
	ck_assert_int_eq(lineage_adj_decode(bad, len, times, tlen, 0, 1, &ed, &cap, &n, &timed), 1);
	bad[0] = 1; /* format 1 (times in the row) reads as stale */
	ck_assert_int_eq(lineage_adj_decode(bad, len, times, tlen, 0, 1, &ed, &cap, &n, &timed), 1);
	memcpy(bad, times, tlen);
	bad[tlen] = 0;
	ck_assert_int_eq(lineage_adj_decode(blob, len, bad, tlen + 1, 0, 1, &ed, &cap, &n, &timed), 1);
	static const unsigned char huge[] = {LINEAGE_ADJ_FORMAT, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0};
	ck_assert_int_eq(lineage_adj_decode(huge, sizeof huge, NULL, 0, 0, 0, &ed, &cap, &n, &timed), 1);
	/* count 1, max_first 0, dst 0, kind 9 */
	static const unsigned char kind9[] = {LINEAGE_ADJ_FORMAT, 1, 0, 0, 9};
	ck_assert_int_eq(lineage_adj_decode(kind9, sizeof kind9, NULL, 0, 0, 0, &ed, &cap, &n, &timed), 1);
	static const unsigned char kind2[] = {LINEAGE_ADJ_FORMAT, 1, 0, 0, 2};
	ck_assert_int_eq(lineage_adj_decode(kind2, sizeof kind2, NULL, 0, 0, 0, &ed, &cap, &n, &timed), 0);
	uint64_t stale, wrong;
	ck_assert_int_eq(lineage_adj_check(db, &stale, &wrong, &e), KM_OK);
	ck_assert_uint_eq(stale + wrong, 0);
	/* The check sees a times row that differs, one that is missing, and
	 * one left without its row. */
	ck_assert_int_eq(km_db_exec(db, "UPDATE lineage_out_times SET times = X'0000' WHERE src = 3", &e), KM_OK);
	ck_assert_int_eq(lineage_adj_check(db, &stale, &wrong, &e), KM_OK);
	ck_assert_uint_eq(wrong, 1);
	ck_assert_int_eq(km_db_exec(db, "DELETE FROM lineage_out_times WHERE src = 3", &e), KM_OK);
	ck_assert_int_eq(lineage_adj_check(db, &stale, &wrong, &e), KM_OK);
	ck_assert_uint_eq(wrong, 1);
	ck_assert_int_eq(km_db_exec(db, "INSERT INTO lineage_out_times VALUES(99, X'00')", &e), KM_OK);
	ck_assert_int_eq(lineage_adj_check(db, &stale, &wrong, &e), KM_OK);
	ck_assert_uint_eq(wrong, 2);
	free(bad);
	free(blob);
	free(times);
	free(ed);
	sqlite3_close(db);
}
END_TEST

/* Scratch buffers keep their bytes across every move between the heap and
 * huge-page mappings, and mapped ones sit on 2 MiB boundaries. */
START_TEST(scratch_buffers_keep_their_bytes)
{
	static const size_t sizes[] = {100, KM_BIG_MIN - 1, KM_BIG_MIN, (size_t)3 << 20, (size_t)5 << 20,
	                               (size_t)5 << 20 | 1, 1000, (size_t)9 << 20, 0};
	unsigned char *p = NULL;
	size_t have = 0;
	for (size_t k = 0; k < KM_ARRAY_LEN(sizes); k++) {
		unsigned char *np = km_big_realloc(p, have, sizes[k]);
		ck_assert_ptr_nonnull(np);
		size_t keep = have < sizes[k] ? have : sizes[k];
		for (size_t i = 0; i < keep; i += 4093)
			ck_assert_uint_eq(np[i], (unsigned char)(i * 7 + 1));
		if (keep)
			ck_assert_uint_eq(np[keep - 1], (unsigned char)((keep - 1) * 7 + 1));
		if (sizes[k] >= KM_BIG_MIN)
			ck_assert_uint_eq((uintptr_t)np % ((size_t)2 << 20), 0);
		for (size_t i = 0; i < sizes[k]; i++)
			np[i] = (unsigned char)(i * 7 + 1);
		p = np;
		have = sizes[k];
	}
	km_big_free(p, have);
	for (size_t n = 1; n <= ((size_t)4 << 20); n *= 8) {
		unsigned char *z = km_big_zalloc(n);
		ck_assert_ptr_nonnull(z);
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(z[i], 0);
		km_big_free(z, n);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lineage_adj");
	TCase *t = tcase_create("deployment");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, packed_walk_equals_sql_walk);
	tcase_add_test(t, writers_keep_the_table_in_step);
	tcase_add_test(t, migration_builds_the_table);
	tcase_add_test(t, migration_moves_the_times);
	tcase_add_test(t, whole_table_reads_times_when_wanted);
	suite_add_tcase(s, t);
	TCase *p = tcase_create("pure");
	tcase_add_test(p, packing_round_trips_and_refuses_damage);
	tcase_add_test(p, scratch_buffers_keep_their_bytes);
	suite_add_tcase(s, p);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
