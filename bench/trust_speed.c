/*
 * trust_speed.c — what the trust boundary costs per operation and per
 * commit: the HSM's row MAC, the HSM-held audit anchor, one whole commit,
 * and Argon2id at the default parameters.
 *
 *   trust_speed [--dir DIR] [--blocks B]
 *       One round on a fresh personal deployment made in a new temp dir
 *       under DIR (default $TMPDIR or /tmp: choose the disk the catalogue
 *       lives on) and removed afterwards.  Each measure runs in B blocks
 *       (default 10), and each block runs ours and then the peer's, so a
 *       busy spell of a shared machine hits both alike.  Prints one line
 *       "NAME MICROSECONDS" per measure: the median time of one operation
 *       over the round.
 *         mac_hsm           hsm_mac (HMAC-SHA256 in the HSM) of a 100-byte row text
 *         mac_ossl          peer: HMAC-SHA256 of the same text with OpenSSL
 *                           in this process (EVP_MAC, key context kept)
 *         anchor_read       hsm_anchor_read
 *         anchor_write      hsm_anchor_write (the anchor's own bytes put back)
 *         row_read          peer: the same 44 bytes read from a SQLite row
 *         row_write         peer: the same 44 bytes written to a SQLite row,
 *                           one transaction, WAL, synchronous=FULL
 *         commit            km_tx_begin + km_tx_audit of one event + km_tx_commit
 *                           (anchor read and proof, HSM-signed tree head,
 *                           COMMIT, then lock, anchor read, anchor write)
 *         commit_noanchor   the same calls with the anchor steps left out:
 *                           the head signed with no anchor to prove
 *                           against, COMMIT, nothing stored in the HSM
 *         sqlite_commit     peer: one transaction inserting the same event
 *                           text (and a 32-byte hash) as one row, WAL,
 *                           synchronous=FULL, a database beside the catalogue
 *
 *   trust_speed --argon2 SALT
 *       One Argon2id run through km_cred_argon2id at keyward's defaults
 *       (t=3, 64 MiB, p=1, 64-byte output) over the passphrase read from
 *       stdin (one line, its newline dropped) and SALT.  Prints the output
 *       in hex, as `argon2 SALT -id -t 3 -m 16 -p 1 -l 64 -r` does for the
 *       same input, then "argon2id_s SECONDS" (the call alone).  Memory
 *       is locked first (km_memlock_process), as in every keyward session
 *       that unlocks a credential.
 *
 * Benchmark only: the commit_noanchor path is not one keyward ever takes.
 * A no-anchor block leaves the anchor behind the log; an untimed ordinary
 * commit after it catches the anchor up, so the next timed commits start
 * from a current anchor as they do in use.
 */
#include "cred.h"
#include "ctx.h"
#include "db.h"
#include "hsm.h"
#include "secmem.h"

#include <ftw.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "trust_speed: %s: %s\n", what, why);
	exit(1);
}

/* ------------------------------------------------------------ samples */

/* One measure's per-operation times over a round. */
typedef struct samples {
	const char *name;
	double *us;
	size_t n, cap;
} samples;

static void sample_add(samples *s, double us)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->us = realloc(s->us, s->cap * sizeof *s->us);
		if (!s->us)
			die("samples", "out of memory");
	}
	s->us[s->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void sample_print(samples *s)
{
	if (!s->n)
		die(s->name, "no samples");
	qsort(s->us, s->n, sizeof *s->us, cmp_double);
	double med = s->n % 2 ? s->us[s->n / 2] : (s->us[s->n / 2 - 1] + s->us[s->n / 2]) / 2;
	printf("%s %.2f\n", s->name, med);
	free(s->us);
}

/* ------------------------------------------------------------ the deployment */

#define BENCH_PIN "trust-speed-pin"
#define BENCH_PASSPHRASE "trust speed passphrase"

static char run_dir[PATH_MAX];

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
	if ((size_t)snprintf(run_dir, sizeof run_dir, "%s/kw-trust-speed-XXXXXX", base) >= sizeof run_dir)
		die(base, "path too long");
	if (!mkdtemp(run_dir)) {
		run_dir[0] = '\0';
		die("mkdtemp", base);
	}
	atexit(cleanup);
	snprintf(home, sizeof home, "%s/home", run_dir);
	/* The person's Argon2id cost is the floor: nothing timed here unlocks
	 * a credential, and init should not cost a second per round. */
	km_init_opts o = {0};
	o.home = home;
	o.pin = BENCH_PIN;
	o.passphrase = BENCH_PASSPHRASE;
	o.argon2_t = KM_CRED_T_COST_MIN;
	o.argon2_m_kib = KM_CRED_M_COST_KIB_MIN;
	if (km_init_deployment(&o, &e) != KM_OK)
		die("init", e.msg);
	setenv("KEYWARD_PIN", BENCH_PIN, 1);
	km_open_opts oo = {0};
	oo.home = home;
	km_ctx *ctx = NULL;
	if (km_open(&oo, &ctx, &e) != KM_OK)
		die("open", e.msg);
	return ctx;
}

/* ------------------------------------------------------------ the peer's database */

static sqlite3 *peer_open(const km_ctx *ctx)
{
	char path[PATH_MAX + 16];
	sqlite3 *db;
	snprintf(path, sizeof path, "%s/peer.db", ctx->cfg.home);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(path, "cannot open");
	/* As the catalogue is opened (db.c): 16 KiB pages, WAL, FULL. */
	const char *setup = "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	                    "CREATE TABLE events(seq INTEGER PRIMARY KEY, json TEXT NOT NULL, leaf_hash BLOB NOT NULL);"
	                    "CREATE TABLE anchor(id INTEGER PRIMARY KEY, value BLOB NOT NULL);";
	char *err = NULL;
	if (sqlite3_exec(db, setup, NULL, NULL, &err) != SQLITE_OK)
		die("peer database", err ? err : "?");
	return db;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		die(sql, sqlite3_errmsg(db));
	return q;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		die(sql, sqlite3_errmsg(db));
}

static void step_done(sqlite3 *db, sqlite3_stmt *q)
{
	if (sqlite3_step(q) != SQLITE_DONE)
		die("peer statement", sqlite3_errmsg(db));
	sqlite3_reset(q);
}

/* ------------------------------------------------------------ row MACs */

/* A row text of the length keyward MACs (a key_versions row is about this). */
static const char row_text[] =
	"[\"keyward-row/1\",\"0f3c9a6e21b84d7c\",\"key_versions\",17,3,\"active\",1763900000,0,"
	"\"a1b2c3d4\",120]";

static void bench_macs(km_ctx *ctx, int blocks, samples *hsm_s, samples *ossl_s)
{
	enum { PER_BLOCK = 300 };
	km_err e = {0};
	uint8_t mac[HSM_MAC_BYTES], key[32];
	size_t len = sizeof row_text - 1;
	if (RAND_bytes(key, sizeof key) != 1)
		die("HMAC key", "RAND_bytes failed");
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mc = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	                       OSSL_PARAM_construct_end()};
	if (!mc || EVP_MAC_init(mc, key, sizeof key, params) != 1)
		die("HMAC", "OpenSSL has no HMAC-SHA256");
	for (int b = 0; b < blocks; b++) {
		for (int i = 0; i < PER_BLOCK; i++) {
			double t = now_us();
			if (hsm_mac(ctx->h, row_text, len, mac, &e) != KM_OK)
				die("hsm_mac", e.msg);
			sample_add(hsm_s, now_us() - t);
		}
		for (int i = 0; i < PER_BLOCK; i++) {
			size_t out = 0;
			double t = now_us();
			/* Re-init with NULL key keeps the key, as the HSM keeps its handle. */
			if (EVP_MAC_init(mc, NULL, 0, NULL) != 1 ||
			    EVP_MAC_update(mc, (const unsigned char *)row_text, len) != 1 ||
			    EVP_MAC_final(mc, mac, &out, sizeof mac) != 1)
				die("HMAC", "EVP_MAC failed");
			sample_add(ossl_s, now_us() - t);
		}
	}
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(m);
	OPENSSL_cleanse(key, sizeof key);
}

/* ------------------------------------------------------------ the anchor */

static void bench_anchor(km_ctx *ctx, sqlite3 *peer, int blocks, samples *rd, samples *wr, samples *prd,
                         samples *pwr)
{
	enum { READS = 100, WRITES = 10 };
	km_err e = {0};
	uint8_t buf[HSM_ANCHOR_MAX];
	size_t len = 0;
	int found = 0;
	if (hsm_anchor_read(ctx->h, buf, sizeof buf, &len, &found, &e) != KM_OK || !found)
		die("anchor", found ? e.msg : "the new deployment has no anchor");
	sqlite3_stmt *put = prep(peer, "INSERT OR REPLACE INTO anchor(id, value) VALUES(1, ?)");
	sqlite3_stmt *get = prep(peer, "SELECT value FROM anchor WHERE id = 1");
	sqlite3_bind_blob(put, 1, buf, (int)len, SQLITE_STATIC);
	step_done(peer, put);
	for (int b = 0; b < blocks; b++) {
		for (int i = 0; i < READS; i++) {
			uint8_t again[HSM_ANCHOR_MAX];
			size_t n = 0;
			double t = now_us();
			if (hsm_anchor_read(ctx->h, again, sizeof again, &n, &found, &e) != KM_OK)
				die("hsm_anchor_read", e.msg);
			sample_add(rd, now_us() - t);
			if (n != len || memcmp(again, buf, len) != 0)
				die("hsm_anchor_read", "the anchor changed under the benchmark");
		}
		for (int i = 0; i < READS; i++) {
			double t = now_us();
			if (sqlite3_step(get) != SQLITE_ROW || (size_t)sqlite3_column_bytes(get, 0) != len)
				die("peer anchor row", sqlite3_errmsg(peer));
			memcpy(buf, sqlite3_column_blob(get, 0), len);
			sqlite3_reset(get);
			sample_add(prd, now_us() - t);
		}
		for (int i = 0; i < WRITES; i++) {
			double t = now_us();
			if (hsm_anchor_write(ctx->h, buf, len, &e) != KM_OK)
				die("hsm_anchor_write", e.msg);
			sample_add(wr, now_us() - t);
		}
		for (int i = 0; i < WRITES; i++) {
			double t = now_us();
			exec_ok(peer, "BEGIN IMMEDIATE");
			step_done(peer, put);
			exec_ok(peer, "COMMIT");
			sample_add(pwr, now_us() - t);
		}
	}
	sqlite3_finalize(put);
	sqlite3_finalize(get);
}

/* ------------------------------------------------------------ commits */

static void one_event(km_ctx *ctx, int i, km_err *e)
{
	if (km_tx_begin(ctx, e) != KM_OK)
		die("km_tx_begin", e->msg);
	if (km_tx_audit(ctx, "bench.commit", "bench/trust-speed", "ok", json_pack("{s:i}", "i", i), e) != KM_OK)
		die("km_tx_audit", e->msg);
}

static void commit_full(km_ctx *ctx, int i)
{
	km_err e = {0};
	one_event(ctx, i, &e);
	if (km_tx_commit(ctx, &e) != KM_OK)
		die("km_tx_commit", e.msg);
}

/* km_tx_commit without km_anchor_load before and anchor_store after. */
static void commit_noanchor(km_ctx *ctx, int i)
{
	km_err e = {0};
	one_event(ctx, i, &e);
	if (audit_writer_sign_head(ctx->aw, NULL, ctx->audit_pub, km_ctx_sign, ctx, &e) != KM_OK)
		die("audit_writer_sign_head", e.msg);
	if (km_db_commit(ctx->db, &e) != KM_OK)
		die("COMMIT", e.msg);
	audit_writer_reset(ctx->aw);
}

static void bench_commits(km_ctx *ctx, sqlite3 *peer, int blocks, samples *full, samples *bare,
                          samples *raw)
{
	enum { PER_BLOCK = 15 };
	int i = 0;
	/* The peer inserts keyward's own event text, read back from the log. */
	commit_full(ctx, i++);
	sqlite3_stmt *last = prep(ctx->db, "SELECT json FROM audit_events ORDER BY seq DESC LIMIT 1");
	if (sqlite3_step(last) != SQLITE_ROW)
		die("audit_events", "no event after a commit");
	char *event = strdup((const char *)sqlite3_column_text(last, 0));
	sqlite3_finalize(last);
	if (!event)
		die("event", "out of memory");
	sqlite3_stmt *ins = prep(peer, "INSERT INTO events(seq, json, leaf_hash) VALUES(?, ?, ?)");
	uint8_t hash[32];
	sqlite3_int64 seq = 0;
	for (int b = 0; b < blocks; b++) {
		for (int k = 0; k < PER_BLOCK; k++) {
			double t = now_us();
			commit_full(ctx, i++);
			sample_add(full, now_us() - t);
		}
		for (int k = 0; k < PER_BLOCK; k++) {
			double t = now_us();
			commit_noanchor(ctx, i++);
			sample_add(bare, now_us() - t);
		}
		commit_full(ctx, i++); /* untimed: brings the anchor up to the log */
		for (int k = 0; k < PER_BLOCK; k++) {
			RAND_bytes(hash, sizeof hash);
			double t = now_us();
			exec_ok(peer, "BEGIN IMMEDIATE");
			sqlite3_bind_int64(ins, 1, ++seq);
			sqlite3_bind_text(ins, 2, event, -1, SQLITE_STATIC);
			sqlite3_bind_blob(ins, 3, hash, sizeof hash, SQLITE_STATIC);
			step_done(peer, ins);
			exec_ok(peer, "COMMIT");
			sample_add(raw, now_us() - t);
		}
	}
	sqlite3_finalize(ins);
	free(event);
	/* The log the timed commits made must still verify against the anchor. */
	audit_anchor a;
	audit_verify_result r;
	km_err e = {0};
	if (km_anchor_load(ctx, &a, &e) != KM_OK ||
	    audit_verify(ctx->db, ctx->audit_pub, &a, NULL, NULL, &r, &e) != KM_OK || !r.intact)
		die("the benchmark's audit log does not verify", e.msg[0] ? e.msg : r.problem);
}

/* ------------------------------------------------------------ Argon2id */

static int argon2(const char *salt)
{
	km_err e = {0};
	char *pass = km_secure_alloc(KM_CRED_PASSPHRASE_MAX + 2);
	uint8_t *out = km_secure_alloc(64);
	if (!pass || !out)
		die("argon2", "out of locked memory");
	if (!fgets(pass, KM_CRED_PASSPHRASE_MAX + 2, stdin))
		die("argon2", "no passphrase on stdin");
	pass[strcspn(pass, "\n")] = '\0';
	km_cred_params p = km_cred_params_default();
	km_err why = {0};
	if (km_memlock_process(NULL, &why) != KM_OK) /* keyward goes on unlocked too */
		fprintf(stderr, "trust_speed: %s\n", why.msg);
	double t = now_us();
	km_status st = km_cred_argon2id(&p, (const uint8_t *)pass, strlen(pass), (const uint8_t *)salt, strlen(salt),
	                                NULL, 0, NULL, 0, out, 64, &e);
	t = now_us() - t;
	if (st != KM_OK)
		die("km_cred_argon2id", e.msg);
	for (int i = 0; i < 64; i++)
		printf("%02x", out[i]);
	printf("\nargon2id_s %.4f\n", t / 1e6);
	km_secure_free(pass, KM_CRED_PASSPHRASE_MAX + 2);
	km_secure_free(out, 64);
	return 0;
}

/* ------------------------------------------------------------ main */

static int usage(void)
{
	fprintf(stderr, "usage: trust_speed [--dir DIR] [--blocks B]\n"
	                "       trust_speed --argon2 SALT   (passphrase on stdin)\n");
	return 2;
}

int main(int argc, char **argv)
{
	km_err e = {0};
	const char *dir = getenv("TMPDIR");
	int blocks = 10;
	if (!dir || !*dir)
		dir = "/tmp";
	if (km_hygiene_init(&e) != KM_OK)
		die("hygiene", e.msg);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--argon2") && i + 1 < argc)
			return argon2(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--blocks") && i + 1 < argc && atoi(argv[i + 1]) > 0)
			blocks = atoi(argv[++i]);
		else
			return usage();
	}
	km_ctx *ctx = deploy(dir);
	sqlite3 *peer = peer_open(ctx);
	samples s[] = {{.name = "mac_hsm"},     {.name = "mac_ossl"},      {.name = "anchor_read"},
	               {.name = "anchor_write"}, {.name = "row_read"},     {.name = "row_write"},
	               {.name = "commit"},       {.name = "commit_noanchor"}, {.name = "sqlite_commit"}};
	bench_macs(ctx, blocks, &s[0], &s[1]);
	bench_anchor(ctx, peer, blocks, &s[2], &s[3], &s[4], &s[5]);
	bench_commits(ctx, peer, blocks, &s[6], &s[7], &s[8]);
	sqlite3_close(peer);
	km_close(ctx);
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		sample_print(&s[i]);
	return 0;
}
