/*
 * rewrap_speed.c — a rewrap job against a bare SQLite UPDATE of the same
 * number of 60-byte blobs.
 *
 *   rewrap_speed [-n ASSETS] [--batch B] [--rounds R] [--dir DIR]
 *
 * Makes a personal deployment in a new temp dir under DIR (default
 * $TMPDIR or /tmp) with one key and ASSETS (default 1,000,000) assets
 * whose DEKs are real wraps under version 1 (written straight into the
 * catalogue: the setup is not what is measured).  Then R rounds (default
 * 3), each running ours and then the peer's, so a busy spell of a shared
 * machine hits both alike:
 *   ours:  lifecycle_rotate (new version, job queued), km_job_run with job_batch = B
 *          (default 20,000): every DEK unwrapped under the old version and
 *          wrapped under the new one, the catalogue rows, counters,
 *          cursor, one audit event and one HSM-signed head per batch;
 *   peer:  a database beside the catalogue, opened as the catalogue is
 *          (16 KiB pages, WAL, synchronous=FULL), table (id INTEGER
 *          PRIMARY KEY, b BLOB): one prepared UPDATE b = ? WHERE id = ?
 *          per row with a fresh random 60-byte value, committed every B
 *          rows.
 * Prints one line per round, "round N ours S peer S ratio X cpu ours S
 * peer S ratio X" (wall seconds, then CPU seconds of the process), then
 * the same for the best of each ("best ...", ratios of the bests), and
 * removes the dir.
 */
#include "asset.h"
#include "cred.h"
#include "ctx.h"
#include "db.h"
#include "dek.h"
#include "job.h"
#include "kek.h"
#include "kek_int.h"
#include "lifecycle.h"
#include "secmem.h"

#include <ftw.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PIN "rewrap-speed-pin"
#define BENCH_PASSPHRASE "rewrap speed passphrase"
#define KEY "features/bench"

static char run_dir[PATH_MAX];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process (user + system): a figure that a busy
 * shared machine disturbs less than wall time. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "rewrap_speed: %s: %s\n", what, why);
	exit(1);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (run_dir[0])
		nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static km_ctx *deploy(const char *base)
{
	km_err e = {0};
	char home[PATH_MAX + 8];
	if ((size_t)snprintf(run_dir, sizeof run_dir, "%s/kw-rewrap-speed-XXXXXX", base) >= sizeof run_dir)
		die(base, "path too long");
	if (!mkdtemp(run_dir)) {
		run_dir[0] = '\0';
		die("mkdtemp", base);
	}
	atexit(cleanup);
	snprintf(home, sizeof home, "%s/home", run_dir);
	km_init_opts o = {0};
	o.home = home;
	o.pin = BENCH_PIN;
	o.passphrase = BENCH_PASSPHRASE;
	o.argon2_t = KM_CRED_T_COST_MIN;
	o.argon2_m_kib = KM_CRED_M_COST_KIB_MIN;
	o.first_user_roles = KM_ROLE_OFFICER | KM_ROLE_AUDITOR;
	if (km_init_deployment(&o, &e) != KM_OK)
		die("init", e.msg);
	setenv("KEYWARD_PIN", BENCH_PIN, 1);
	setenv("KEYWARD_PASSPHRASE", BENCH_PASSPHRASE, 1);
	km_open_opts oo = {0};
	oo.home = home;
	km_ctx *ctx = NULL;
	if (km_open(&oo, &ctx, &e) != KM_OK)
		die("open", e.msg);
	return ctx;
}

/* n assets under version 1 of KEY, with real wraps, in one transaction. */
static void fill(km_ctx *ctx, long n)
{
	km_err e;
	if (km_key_create(ctx, KEY, NULL, 0, &e))
		die("key create", e.msg);
	kek_version_row row;
	const uint8_t *kek;
	dek_ctx *dc;
	if (kek_version_load(ctx, KEY, 1, &row, &e) || kek_material(ctx, &row, &kek, &e) || dek_ctx_new(kek, &dc, &e))
		die("key", e.msg);
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	sqlite3_stmt *q;
	if (km_db_exec(km_db(ctx), "BEGIN", &e) ||
	    km_db_prepare(km_db(ctx), "INSERT INTO assets(uid, kind, name, version, key_id, kek_version, wrapped_dek, "
	                  "size, created, created_by) VALUES(?, 'feature', ?, '', ?, 1, ?, 0, 0, 'bench')", &q, &e))
		die("fill", e.msg);
	for (long i = 0; i < n; i++) {
		char uid[KM_ASSET_UID_LEN + 1], name[48];
		uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
		snprintf(name, sizeof name, "bench/%ld", i);
		km_asset_ref ref = {uid, "feature", name, "", KEY, 1};
		if (km_asset_uid_new(uid, &e) || dek_generate(dek, &e) || dek_ctx_wrap(dc, dek, &ref, wrapped, &e))
			die("wrap", e.msg);
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, uid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 3, row.key_id);
		sqlite3_bind_blob(q, 4, wrapped, sizeof wrapped, SQLITE_TRANSIENT);
		if (sqlite3_step(q) != SQLITE_DONE)
			die("insert", sqlite3_errmsg(km_db(ctx)));
	}
	sqlite3_finalize(q);
	char sql[160];
	snprintf(sql, sizeof sql, "UPDATE key_versions SET assets = %ld WHERE key_id = %lld AND version = 1", n,
	         (long long)row.key_id);
	if (km_db_exec(km_db(ctx), sql, &e) || kek_summary_refresh(ctx, row.key_id, &e) ||
	    km_db_exec(km_db(ctx), "COMMIT", &e))
		die("fill", e.msg);
	dek_ctx_free(dc);
	km_secure_free(dek, KM_DEK_BYTES);
}

static double ours(km_ctx *ctx, uint32_t *version, long n, double *cpu)
{
	km_err e;
	uint32_t v;
	int64_t key_id = 0;
	char id[KM_REQUEST_ID_MAX];
	/* As an executed rotation request does: the new version and its job
	 * queued in one transaction (lifecycle.h); the run is what is timed. */
	json_t *d = json_object();
	(void)key_id;
	if (km_tx_begin(ctx, &e) || lifecycle_rotate(ctx, KEY, 0, "", &v, id, d, &e) ||
	    km_tx_audit(ctx, "key.rotate", "key:" KEY, "ok", d, &e) || km_tx_commit(ctx, &e))
		die("rotate", e.msg);
	double t = now_s(), c = cpu_s();
	if (km_job_run(ctx, id, NULL, NULL, &e))
		die("run", e.msg);
	t = now_s() - t;
	*cpu = cpu_s() - c;
	km_job_info j;
	if (km_job_get(ctx, id, &j, &e) || j.state != KM_JOB_DONE || j.done != (uint64_t)n)
		die("job", "did not move every asset");
	*version = v;
	return t;
}

static sqlite3 *peer_open(const km_ctx *ctx, long n)
{
	char path[PATH_MAX + 16];
	sqlite3 *db;
	snprintf(path, sizeof path, "%s/peer.db", ctx->cfg.home);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(path, "cannot open");
	const char *setup = "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	                    "PRAGMA cache_size = -16384;"
	                    "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL);"
	                    "BEGIN;";
	if (sqlite3_exec(db, setup, NULL, NULL, NULL) != SQLITE_OK)
		die("peer", sqlite3_errmsg(db));
	sqlite3_stmt *q;
	sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES(?, randomblob(60))", -1, &q, NULL);
	for (long i = 1; i <= n; i++) {
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, i);
		if (sqlite3_step(q) != SQLITE_DONE)
			die("peer insert", sqlite3_errmsg(db));
	}
	sqlite3_finalize(q);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("peer", sqlite3_errmsg(db));
	return db;
}

static double peer(sqlite3 *db, long n, long batch, double *cpu)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, "UPDATE t SET b = ? WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
		die("peer", sqlite3_errmsg(db));
	double t = now_s(), c = cpu_s();
	for (long i = 1; i <= n; i++) {
		if ((i - 1) % batch == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		uint8_t b[KM_WRAPPED_DEK_BYTES];
		RAND_bytes(b, sizeof b);
		sqlite3_reset(q);
		sqlite3_bind_blob(q, 1, b, sizeof b, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, i);
		if (sqlite3_step(q) != SQLITE_DONE)
			die("peer update", sqlite3_errmsg(db));
		if (i % batch == 0 || i == n)
			if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				die("peer commit", sqlite3_errmsg(db));
	}
	t = now_s() - t;
	*cpu = cpu_s() - c;
	sqlite3_finalize(q);
	return t;
}

int main(int argc, char **argv)
{
	long n = 1000000, batch = 20000;
	int rounds = 3;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = atol(argv[++i]);
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = atol(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else
			die("usage", "rewrap_speed [-n ASSETS] [--batch B] [--rounds R] [--dir DIR]");
	}
	if (n < 1 || batch < 1 || rounds < 1)
		die("usage", "ASSETS, B and R must be positive");
	km_ctx *ctx = deploy(dir);
	ctx->cfg.job_batch = (uint32_t)batch;
	double t = now_s();
	fill(ctx, n);
	sqlite3 *pdb = peer_open(ctx, n);
	fprintf(stderr, "rewrap_speed: %ld assets ready in %.1f s\n", n, now_s() - t);
	uint32_t version = 1;
	double best_ours = 0, best_peer = 0, cpu_ours = 0, cpu_peer = 0;
	for (int r = 1; r <= rounds; r++) {
		double ca, cb, a = ours(ctx, &version, n, &ca), b = peer(pdb, n, batch, &cb);
		printf("round %d ours %.3f peer %.3f ratio %.2f cpu ours %.3f peer %.3f ratio %.2f\n", r, a, b, a / b,
		       ca, cb, ca / cb);
		fflush(stdout);
		if (r == 1 || a < best_ours)
			best_ours = a;
		if (r == 1 || b < best_peer)
			best_peer = b;
		if (r == 1 || ca < cpu_ours)
			cpu_ours = ca;
		if (r == 1 || cb < cpu_peer)
			cpu_peer = cb;
	}
	printf("best ours %.3f peer %.3f ratio %.2f cpu ours %.3f peer %.3f ratio %.2f (%ld assets, batch %ld)\n",
	       best_ours, best_peer, best_ours / best_peer, cpu_ours, cpu_peer, cpu_ours / cpu_peer, n, batch);
	sqlite3_close(pdb);
	km_close(ctx);
	return 0;
}
