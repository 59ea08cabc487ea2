/*
 * forward_speed.c — the cost of the outbox on the append path, and how fast
 * the forwarder delivers (bench/forward_speed.sh runs both with their peers).
 *
 *   forward_speed append [-n EVENTS] [--batch B] [--rounds R] [--no-rows]
 *                 [--only-ours] --db FILE
 *   forward_speed forward --db FILE --url URL [--batch B] [--secret FILE]
 *                 [--dump DIR] [--rounds R]
 *
 * append: builds a durable log (WAL, synchronous=FULL, a file on disk) of
 * EVENTS (default 200,000) through the audit writer, B events per
 * transaction (default 1000), each transaction signing its tree head with
 * an in-process P-256 key (keyward signs in the HSM; the HSM's ~2 ms per
 * commit is left out of both sides here), with the forwarding cursor table
 * present: the outbox.  The peer inserts the very same rows (seq, text,
 * leaf hash, and the five filter columns) into a plain table with prepared
 * statements, B per transaction, same pragmas.  Each round runs ours then the peer; best of
 * R (default 3).  --no-rows skips the design not chosen (an outbox row per
 * event); --only-ours times our side alone (for a profiler).
 *
 * forward: delivers the log at FILE to a webhook at URL from cursor 0,
 * B events per batch (default 1000), HMAC-signed with --secret, and
 * reports events per second; --dump writes each batch body to DIR so the
 * script can have curl post the same bytes.
 */
#include "audit.h"
#include "forward_int.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process so far: the machine is shared, so the
 * wall-clock rate says as much about the neighbours as about the code. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct timing {
	double wall, cpu;
} timing;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "forward_speed: %s: %s\n", what, why);
	exit(1);
}

static void sql(sqlite3 *db, const char *s)
{
	char *err = NULL;
	if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK)
		die(s, err ? err : "?");
}

static sqlite3 *open_fresh(const char *path)
{
	char p[600];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK)
		die(path, "cannot open");
	/* keyward's own settings (core/db.c km_db_open() and configure()) on
	 * both sides: 16 KiB pages, WAL, synchronous=FULL */
	char ps[64]; /* BENCH_PAGE_SIZE: experiments with another page size */
	snprintf(ps, sizeof ps, "PRAGMA page_size = %d",
	         getenv("BENCH_PAGE_SIZE") ? atoi(getenv("BENCH_PAGE_SIZE")) : 16384);
	sql(db, ps);
	sql(db, "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; "
	        "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; PRAGMA journal_mode = WAL; "
	        "PRAGMA synchronous = FULL;");
	return db;
}

static EVP_PKEY *soft_key;

static km_status sign_soft(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	(void)ctx;
	unsigned char der[80];
	size_t len = sizeof der;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(soft_key, NULL);
	km_status st = KM_EINTERNAL;
	if (pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_sign(pc, der, &len, digest, 32) == 1) {
		const unsigned char *p = der;
		ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
		if (s && BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
		    BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32)
			st = KM_OK;
		ECDSA_SIG_free(s);
	}
	EVP_PKEY_CTX_free(pc);
	return st ? km_fail(e, st, "signing failed") : KM_OK;
}

static const char *const who[] = {"alice", "bob", "carol", "svc-scoring", "svc-ingest", "erin"};
static const char *const what[] = {"unprotect", "protect", "key.rotate", "request.approve", "status"};

/* Our side: n events through the writer, batch per transaction. */
static timing append_ours(const char *path, uint64_t n, uint64_t batch, int outbox_rows)
{
	sqlite3 *db = open_fresh(path);
	sql(db, audit_schema_sql);
	sql(db, forward_schema_sql);
	if (getenv("BENCH_SQL")) /* experiments: e.g. drop an index to see its cost */
		sql(db, getenv("BENCH_SQL"));
	/* The design not chosen: an outbox table with a row per event and
	 * sink, written beside each append and deleted once delivered. */
	sqlite3_stmt *ob = NULL;
	if (outbox_rows) {
		sql(db, "CREATE TABLE outbox(seq INTEGER NOT NULL, sink TEXT NOT NULL, PRIMARY KEY(sink, seq)) "
		        "WITHOUT ROWID");
		if (sqlite3_prepare_v2(db, "INSERT INTO outbox(seq, sink) VALUES (?1, 'siem')", -1, &ob, NULL))
			die("prepare", sqlite3_errmsg(db));
	}
	sql(db, "INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/bench')");
	audit_writer *w;
	km_err e;
	if (audit_writer_new(db, &w, &e))
		die("audit_writer_new", e.msg);
	double t0 = now_s(), c0 = cpu_s();
	for (uint64_t done = 0; done < n;) {
		sql(db, "BEGIN IMMEDIATE");
		for (uint64_t k = 0; k < batch && done < n; k++, done++) {
			char obj[64];
			snprintf(obj, sizeof obj, "features/asset-%04llu", (unsigned long long)(done * 7919 % 5000));
			json_t *d = json_pack("{s:s,s:i,s:s}", "via", "ssh:10.0.4.17", "version",
			                      (int)(done % 9) + 1, "request", "req-7f3a9c");
			audit_event ev = {who[done % 6], what[done % 5], obj, done % 50 ? "ok" : "denied", d};
			uint64_t seq;
			if (audit_writer_append(w, &ev, &seq, &e))
				die("append", e.msg);
			json_decref(d);
			if (ob) {
				sqlite3_bind_int64(ob, 1, (sqlite3_int64)seq);
				if (sqlite3_step(ob) != SQLITE_DONE)
					die("outbox", sqlite3_errmsg(db));
				sqlite3_reset(ob);
			}
		}
		if (audit_writer_sign_head(w, NULL, NULL, sign_soft, NULL, &e))
			die("sign", e.msg);
		sql(db, "COMMIT");
		audit_writer_reset(w);
	}
	timing t = {now_s() - t0, cpu_s() - c0};
	sqlite3_finalize(ob);
	audit_writer_free(w);
	sqlite3_close(db);
	return t;
}

/* The peer: the same rows (seq, text, leaf hash and the five filter
 * columns keyward stores beside the text), plain prepared INSERTs into a
 * bare table without indexes. */
#define PEER_COLS 8
static timing append_peer(const char *ours, const char *path, uint64_t batch)
{
	sqlite3 *src;
	if (sqlite3_open_v2(ours, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(ours, "cannot open");
	sqlite3_stmt *rd;
	if (sqlite3_prepare_v2(src, "SELECT seq, json, leaf_hash, time, actor, action, object, outcome "
	                       "FROM audit_events ORDER BY seq", -1, &rd, NULL))
		die("read", sqlite3_errmsg(src));
	/* rows in memory first, so the peer's timing is its inserts alone */
	size_t n = 0, cap = 1 << 16;
	struct row {
		int64_t seq;
		int len[PEER_COLS];
		char *col[PEER_COLS]; /* NULL: SQL NULL (column 0 unused) */
	} *rows = malloc(cap * sizeof *rows);
	while (sqlite3_step(rd) == SQLITE_ROW) {
		if (n == cap && !(rows = realloc(rows, (cap *= 2) * sizeof *rows)))
			die("peer", "out of memory");
		rows[n].seq = sqlite3_column_int64(rd, 0);
		for (int c = 1; c < PEER_COLS; c++) {
			rows[n].len[c] = sqlite3_column_bytes(rd, c);
			rows[n].col[c] = NULL;
			if (sqlite3_column_type(rd, c) != SQLITE_NULL) {
				rows[n].col[c] = malloc((size_t)rows[n].len[c] + 1);
				memcpy(rows[n].col[c], sqlite3_column_blob(rd, c), (size_t)rows[n].len[c]);
			}
		}
		n++;
	}
	sqlite3_finalize(rd);
	sqlite3_close(src);
	sqlite3 *db = open_fresh(path);
	sql(db, "CREATE TABLE ev(seq INTEGER PRIMARY KEY, json TEXT NOT NULL, leaf_hash BLOB NOT NULL, time TEXT, "
	        "actor TEXT, action TEXT, object TEXT, outcome TEXT)");
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(db, "INSERT INTO ev VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, &ins, NULL))
		die("prepare", sqlite3_errmsg(db));
	double t0 = now_s(), c0 = cpu_s();
	for (size_t i = 0; i < n;) {
		sql(db, "BEGIN IMMEDIATE");
		for (uint64_t k = 0; k < batch && i < n; k++, i++) {
			sqlite3_bind_int64(ins, 1, rows[i].seq);
			for (int c = 1; c < PEER_COLS; c++) {
				if (!rows[i].col[c])
					sqlite3_bind_null(ins, c + 1);
				else if (c == 2)
					sqlite3_bind_blob(ins, c + 1, rows[i].col[c], rows[i].len[c], SQLITE_STATIC);
				else
					sqlite3_bind_text(ins, c + 1, rows[i].col[c], rows[i].len[c], SQLITE_STATIC);
			}
			if (sqlite3_step(ins) != SQLITE_DONE)
				die("insert", sqlite3_errmsg(db));
			sqlite3_reset(ins);
		}
		sql(db, "COMMIT");
	}
	timing t = {now_s() - t0, cpu_s() - c0};
	sqlite3_finalize(ins);
	sqlite3_close(db);
	for (size_t i = 0; i < n; i++)
		for (int c = 1; c < PEER_COLS; c++)
			free(rows[i].col[c]);
	free(rows);
	return t;
}

static int dump_batches(sqlite3 *db, const char *dir, uint64_t batch)
{
	/* The same bodies the webhook sink sends, for curl: built by the sink
	 * code through a file sink would differ, so rebuild the envelope
	 * exactly as forward.c does. */
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, "SELECT seq, json FROM audit_events ORDER BY seq", -1, &q, NULL))
		die("dump", sqlite3_errmsg(db));
	FILE *f = NULL;
	uint64_t k = 0, first = 0, last = 0;
	int files = 0;
	char path[700];
	while (sqlite3_step(q) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(q, 0);
		if (!f) {
			snprintf(path, sizeof path, "%s/batch-%06d.json", dir, files++);
			if (!(f = fopen(path, "w")))
				die(path, "cannot write");
			first = seq;
			fprintf(f, "{\"after_seq\":%llu,\"origin\":\"keyward/bench\",\"sink\":\"bench\",\"events\":[",
			        (unsigned long long)(seq - 1));
		}
		fprintf(f, "%s%s", seq == first ? "" : ",", (const char *)sqlite3_column_text(q, 1));
		last = seq;
		if (++k == batch) {
			fprintf(f, "],\"first_seq\":%llu,\"last_seq\":%llu}", (unsigned long long)first,
			        (unsigned long long)last);
			fclose(f);
			f = NULL;
			k = 0;
		}
	}
	if (f) {
		fprintf(f, "],\"first_seq\":%llu,\"last_seq\":%llu}", (unsigned long long)first,
		        (unsigned long long)last);
		fclose(f);
	}
	sqlite3_finalize(q);
	return files;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "append") && strcmp(argv[1], "forward"))) {
		fprintf(stderr, "usage: forward_speed append [-n EVENTS] [--batch B] [--rounds R] --db FILE\n"
		                "       forward_speed forward --db FILE --url URL [--batch B] [--secret FILE]\n"
		                "                     [--dump DIR] [--rounds R]\n");
		return 2;
	}
	uint64_t n = 200000, batch = 1000;
	int rounds = 3, rows_design = 1, only_ours = 0;
	const char *dbpath = NULL, *url = NULL, *secret = NULL, *dump = NULL;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--no-rows")) { /* skip the design not chosen */
			rows_design = 0;
			continue;
		}
		if (!strcmp(a, "--only-ours")) { /* for a profiler: our side alone */
			only_ours = 1;
			continue;
		}
		if (!v)
			die(a, "needs a value");
		if (!strcmp(a, "-n"))
			n = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--batch"))
			batch = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rounds"))
			rounds = atoi(v);
		else if (!strcmp(a, "--db"))
			dbpath = v;
		else if (!strcmp(a, "--url"))
			url = v;
		else if (!strcmp(a, "--secret"))
			secret = v;
		else if (!strcmp(a, "--dump"))
			dump = v;
		else
			die(a, "unknown option");
		i++;
	}
	if (!dbpath || !batch || rounds < 1)
		die("options", "--db is required; --batch and --rounds must be positive");

	if (!strcmp(argv[1], "append")) {
		soft_key = EVP_EC_gen("P-256");
		char peer[600];
		snprintf(peer, sizeof peer, "%s.peer", dbpath);
		char alt[600];
		snprintf(alt, sizeof alt, "%s.rows", dbpath);
		timing bo = {1e9, 1e9}, bp = {1e9, 1e9}, ba = {1e9, 1e9};
		for (int r = 0; r < rounds; r++) {
			timing ta = rows_design ? append_ours(alt, n, batch, 1) : (timing){1e9, 1e9};
			timing to = append_ours(dbpath, n, batch, 0);
			if (only_ours) {
				printf("ours: %.0f events/s (%.0f per CPU s)\n", (double)n / to.wall, (double)n / to.cpu);
				continue;
			}
			timing tp = append_peer(dbpath, peer, batch);
			if (ta.wall < ba.wall) ba.wall = ta.wall;
			if (ta.cpu < ba.cpu) ba.cpu = ta.cpu;
			printf("round %d: outbox append %.0f events/s (%.0f per CPU s), raw sqlite3 inserts "
			       "%.0f events/s (%.0f per CPU s)\n", r + 1, (double)n / to.wall, (double)n / to.cpu,
			       (double)n / tp.wall, (double)n / tp.cpu);
			if (to.wall < bo.wall) bo.wall = to.wall;
			if (to.cpu < bo.cpu) bo.cpu = to.cpu;
			if (tp.wall < bp.wall) bp.wall = tp.wall;
			if (tp.cpu < bp.cpu) bp.cpu = tp.cpu;
		}
		printf("append (best of %d, %llu events, %llu per transaction, WAL + synchronous=FULL):\n"
		       "                          events/s   per CPU second\n"
		       "  keyward outbox append   %8.0f   %8.0f\n"
		       "  raw sqlite3 inserts     %8.0f   %8.0f\n"
		       "  ratio (ours / peer)     %8.2f   %8.2f\n",
		       rounds, (unsigned long long)n, (unsigned long long)batch, (double)n / bo.wall,
		       (double)n / bo.cpu, (double)n / bp.wall, (double)n / bp.cpu, bp.wall / bo.wall,
		       bp.cpu / bo.cpu);
		if (rows_design)
			printf("  (not chosen) an outbox row per event: %.0f events/s, %.0f per CPU second\n",
			       (double)n / ba.wall, (double)n / ba.cpu);
		EVP_PKEY_free(soft_key);
		return 0;
	}

	if (!url)
		die("forward", "--url is required");
	sqlite3 *db;
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die(dbpath, "cannot open");
	sql(db, "PRAGMA synchronous = FULL");
	uint64_t size;
	km_err e;
	if (audit_size(db, &size, &e))
		die("size", e.msg);
	if (dump)
		printf("dumped %d batches\n", dump_batches(db, dump, batch));
	km_sink s;
	memset(&s, 0, sizeof s);
	snprintf(s.name, sizeof s.name, "bench");
	s.kind = KM_SINK_WEBHOOK;
	snprintf(s.url, sizeof s.url, "%s", url);
	if (secret)
		snprintf(s.hmac_secret_file, sizeof s.hmac_secret_file, "%s", secret);
	s.batch = (uint32_t)batch;
	s.connect_timeout_s = 10;
	s.timeout_s = 30;
	s.attempts = 3;
	s.backoff_ms = 100;
	s.backoff_max_s = 2;
	double best = 1e9;
	for (int r = 0; r < rounds; r++) {
		sql(db, "DELETE FROM audit_forward");
		forward_run_opts o = {0};
		km_forward_sink_result res;
		memset(&res, 0, sizeof res);
		double t0 = now_s(), c0 = cpu_s();
		if (forward_sink_run(db, "keyward/bench", &s, &o, &res, &e))
			die("forward", e.msg);
		double t = now_s() - t0, c = cpu_s() - c0;
		if (res.delivered != size || res.lag != 0)
			die("forward", "not everything was delivered");
		printf("round %d: forwarded %llu events in %llu batches: %.0f events/s (%.0f per CPU s "
		       "of the forwarder)\n", r + 1, (unsigned long long)res.delivered,
		       (unsigned long long)res.batches, (double)size / t, (double)size / c);
		if (t < best)
			best = t;
	}
	printf("forward (best of %d): %.0f events/s (%.3f s for %llu events)\n", rounds, (double)size / best,
	       best, (unsigned long long)size);
	sqlite3_close(db);
	return 0;
}
