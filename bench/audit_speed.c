/*
 * audit_speed.c — how fast the audit log appends, verifies and answers
 * filtered queries at scale.
 *
 *   audit_speed [-n EVENTS] [--heads-every K] [--db FILE] [--out FILE]
 *               [--runs R] [--soft-signer]
 *   audit_speed --verify-only --db FILE [--out FILE] [--runs R]
 *   audit_speed --queries-only --db FILE
 *   audit_speed --proofs-only --db FILE
 *
 * Builds a fresh database of EVENTS realistic events (default 1,000,000;
 * at FILE, default a new temp dir) through audit_append(), signing a tree
 * head every K events (default: one head at the end, all in one
 * transaction), then times audit_verify() on a fresh connection (best of R
 * runs, default 3), one SHA-256 pass over the same event bytes in this
 * process, and a set of filtered queries.  The concatenated event JSON is
 * written to --out (default FILE.events.json) so a script can time
 * `openssl dgst -sha256` and `sha256sum` on it; the audit public key is
 * written to FILE.pub.pem so --verify-only can re-time an existing log.
 *
 * Tree heads are signed by a real SoftHSM2 token made in a temp dir (needs
 * /usr/lib/softhsm/libsofthsm2.so or KEYWARD_TEST_PKCS11_MODULE);
 * --soft-signer uses an in-process OpenSSL P-256 key instead, for machines
 * without SoftHSM2 (benchmark only: keyward itself always signs in the HSM).
 * --queries-only times the filtered queries on an existing database.
 * Every run also times inclusion and consistency proofs from the stored
 * tree nodes (random entries, checked against the newest head's root), and
 * one inclusion proof the old way, from the leaf hashes, for comparison;
 * and `prove SEQ`'s work (entry read, leaf hash, proof, verification)
 * against its peer, the same rows read with bare sqlite3 statements.
 * --proofs-only times the proofs alone on an existing database.
 * Nothing is deleted afterwards: the database and files stay for re-runs.
 */
#include "audit.h"
#include "hsm.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used so far. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "audit_speed: %s: %s\n", what, why);
	exit(1);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		die(sql, err ? err : "?");
}

/* ------------------------------------------------------------ signers */

typedef struct signer {
	hsm *h;          /* SoftHSM2 token, or */
	EVP_PKEY *soft;  /* an in-process key (--soft-signer) */
	EVP_PKEY *pub;
	char dir[256];   /* temp dir for the token */
} signer;

static km_status sign_hsm(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	return hsm_audit_sign(((signer *)ctx)->h, digest, sig, e);
}

static km_status sign_soft(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	signer *s = ctx;
	unsigned char der[80];
	size_t der_len = sizeof der;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(s->soft, NULL);
	km_status st = KM_EINTERNAL;
	if (pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_sign(pc, der, &der_len, digest, 32) == 1) {
		const unsigned char *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
		if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
		    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32)
			st = KM_OK;
		ECDSA_SIG_free(es);
	}
	EVP_PKEY_CTX_free(pc);
	return st == KM_OK ? st : km_fail(e, st, "software signing failed");
}

static void signer_open(signer *s, int soft)
{
	km_err e;
	memset(s, 0, sizeof *s);
	if (soft) {
		s->soft = EVP_EC_gen("P-256");
		if (!s->soft)
			die("software key", "EVP_EC_gen failed");
		s->pub = s->soft;
		return;
	}
	const char *module = getenv("KEYWARD_TEST_PKCS11_MODULE");
	char conf[300], tokens[300];
	snprintf(s->dir, sizeof s->dir, "/tmp/kw-bench-hsm-XXXXXX");
	if (!mkdtemp(s->dir))
		die("mkdtemp", s->dir);
	snprintf(conf, sizeof conf, "%s/softhsm2.conf", s->dir);
	snprintf(tokens, sizeof tokens, "%s/tokens", s->dir);
	mkdir(tokens, 0700);
	FILE *f = fopen(conf, "w");
	if (!f)
		die(conf, "cannot write");
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	hsm_config cfg = {module && *module ? module : "/usr/lib/softhsm/libsofthsm2.so", "kw-bench"};
	uint8_t *der = NULL;
	size_t der_len = 0;
	if (hsm_token_create(&cfg, "bench-so-pin", "bench-pin", &e) != KM_OK ||
	    hsm_open(&cfg, &s->h, &e) != KM_OK || hsm_login(s->h, "bench-pin", &e) != KM_OK ||
	    hsm_audit_key_create(s->h, &e) != KM_OK || hsm_audit_pubkey_der(s->h, &der, &der_len, &e) != KM_OK)
		die("SoftHSM2 token (try --soft-signer)", e.msg);
	const unsigned char *p = der;
	s->pub = d2i_PUBKEY(NULL, &p, (long)der_len);
	free(der);
	if (!s->pub)
		die("audit public key", "does not parse");
}

static void signer_close(signer *s)
{
	EVP_PKEY_free(s->pub);
	hsm_close(s->h);
	if (s->dir[0]) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "audit_speed: could not remove %s\n", s->dir);
	}
}

/* ------------------------------------------------------------ the workload */

static const char *const actors[] = {
	"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "svc-scoring",
};
static const char *const actions[] = {
	"key.rotate", "key.create", "asset.protect", "asset.unprotect", "request.approve",
	"request.create", "audit.verify", "key.compromise", "policy.change", "user.login",
};
static const char *const kinds[] = {"features", "datasets", "models", "inference"};

/* splitmix64: independent-looking fields from the event number */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/* Event i: 20 actors, 10 actions, 4 kinds x 250 objects, 2% denied and
 * 1% errors, details of four fields (about 240 bytes of JSON in all). */
static void make_event(uint64_t i, char *object, size_t cap, audit_event *ev, json_t **details)
{
	uint64_t r = mix(i);
	snprintf(object, cap, "%s/asset-%03llu", kinds[r % KM_ARRAY_LEN(kinds)],
	         (unsigned long long)(r >> 8) % 250);
	*details = json_pack("{s:s,s:i,s:s,s:s}", "request", "req-7f3a9c", "version", (int)((r >> 20) % 12),
	                     "reason", "scheduled rotation per policy", "via", "ssh:10.0.4.17");
	ev->actor = actors[(r >> 24) % KM_ARRAY_LEN(actors)];
	ev->action = actions[(r >> 32) % KM_ARRAY_LEN(actions)];
	ev->object = object;
	ev->outcome = (r >> 40) % 50 == 0 ? "denied" : (r >> 40) % 100 == 1 ? "error" : "ok";
	ev->details = *details;
}

static int count_row(void *ctx, const audit_row *row)
{
	(void)row;
	(*(int *)ctx)++;
	return 0;
}

/* Filtered queries: the first page of 50, and a page from the middle. */
static void run_queries(const char *dbpath, uint64_t n)
{
	sqlite3 *db;
	km_err e;
	double t0;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die(dbpath, "cannot reopen");
	/* a one-second window a quarter of the way into the log */
	char second[32] = "2000-01-01T00:00:00";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT substr(time, 1, 19) FROM audit_events WHERE seq = ?", -1, &st,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)(n / 4 + 1));
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(second, sizeof second, "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	const struct {
		const char *what;
		audit_filter f;
	} queries[] = {
		{"no filter", {0}},
		{"actor = erin", {.actor = "erin"}},
		{"object = features/asset-042", {.object = "features/asset-042"}},
		{"object prefix models/ (25%)", {.object_prefix = "models/"}},
		{"object prefix datasets/asset-1 (~4%)", {.object_prefix = "datasets/asset-1"}},
		{"object prefix models/asset-249 (0.1%)", {.object_prefix = "models/asset-249"}},
		{"outcome = ok + prefix models/asset-249", {.outcome = "ok", .object_prefix = "models/asset-249"}},
		{"outcome = error", {.outcome = "error"}},
		{"action + outcome (key.compromise, denied)", {.action = "key.compromise", .outcome = "denied"}},
		{"actor + object prefix (trent, inference/)", {.actor = "trent", .object_prefix = "inference/"}},
		{"time_to 2000 (no match)", {.time_to = "2000"}},
		{"time_from 2000 (everything)", {.time_from = "2000-01-01"}},
		{"one second, a quarter in", {.time_from = second, .time_to = second}},
		{"one second + actor erin", {.time_from = second, .time_to = second, .actor = "erin"}},
		{"one second + prefix models/", {.time_from = second, .time_to = second, .object_prefix = "models/"}},
	};
	for (size_t i = 0; i < KM_ARRAY_LEN(queries); i++) {
		int rows = 0, deep = 0;
		t0 = now_s();
		if (audit_query(db, &queries[i].f, 0, 50, count_row, &rows, &e) != KM_OK)
			die("audit_query", e.msg);
		double t1 = now_s() - t0;
		t0 = now_s();
		if (audit_query(db, &queries[i].f, n / 2, 50, count_row, &deep, &e) != KM_OK)
			die("audit_query", e.msg);
		double t2 = now_s() - t0;
		printf("query %-44s %6.2f ms (%d rows); page at seq %llu: %6.2f ms (%d rows)\n", queries[i].what,
		       t1 * 1000, rows, (unsigned long long)(n / 2), t2 * 1000, deep);
	}
	sqlite3_close(db);
}

/* Build a fresh log of n events at dbpath, a head every heads_every. */
static double build_log(const char *dbpath, uint64_t n, uint64_t heads_every, signer *sg, int soft)
{
	audit_sign_fn sign = soft ? sign_soft : sign_hsm;
	sqlite3 *db;
	km_err e;

	unlink(dbpath);
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK)
		die(dbpath, "cannot open");
	exec_sql(db, "PRAGMA journal_mode = WAL");
	exec_sql(db, audit_schema_sql);
	exec_sql(db, "INSERT INTO audit_meta(key, value) VALUES('origin', 'keyward/bench')");
	double t0 = now_s();
	for (uint64_t done = 0; done < n;) {
		uint64_t upto = done + heads_every < n ? done + heads_every : n;
		exec_sql(db, "BEGIN IMMEDIATE");
		for (; done < upto; done++) {
			char object[64];
			audit_event ev;
			json_t *d;
			make_event(done + 1, object, sizeof object, &ev, &d);
			if (audit_append(db, &ev, NULL, &e) != KM_OK)
				die("audit_append", e.msg);
			json_decref(d);
		}
		/* No anchor: the same work as before anchors existed (the check
		 * costs one root comparison per commit when the anchor is current). */
		if (audit_sign_head(db, NULL, NULL, sign, sg, &e) != KM_OK)
			die("audit_sign_head", e.msg);
		exec_sql(db, "COMMIT");
	}
	double t = now_s() - t0;
	sqlite3_close(db);
	return t;
}

/* Write the events' bytes, concatenated in seq order, to out. */
static size_t dump_events(const char *dbpath, const char *out)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	size_t bytes = 0;
	FILE *f = fopen(out, "wb");

	if (!f)
		die(out, "cannot write");
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die(dbpath, "cannot open");
	sqlite3_prepare_v2(db, "SELECT json FROM audit_events ORDER BY seq", -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		fwrite(sqlite3_column_text(st, 0), 1, len, f);
		bytes += len;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (fclose(f) != 0)
		die(out, "write failed");
	return bytes;
}

/* One SHA-256 pass over a file in this process: *wall and *cpu seconds. */
static void sha_file(const char *path, double *wall, double *cpu)
{
	static unsigned char buf[1 << 20];
	unsigned char md[32];
	unsigned int mdlen;
	size_t got;
	FILE *in = fopen(path, "rb");
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	double t0 = now_s(), c0 = cpu_s();

	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	while (in && (got = fread(buf, 1, sizeof buf, in)) > 0)
		EVP_DigestUpdate(m, buf, got);
	EVP_DigestFinal_ex(m, md, &mdlen);
	*wall = now_s() - t0;
	*cpu = cpu_s() - c0;
	EVP_MD_CTX_free(m);
	if (in)
		fclose(in);
}

/* audit_verify on a fresh connection, `runs` times: best wall and CPU. */
static audit_verify_result verify_runs(const char *dbpath, EVP_PKEY *pub, int runs, double *best,
                                       double *best_cpu)
{
	audit_verify_result r = {0};
	km_err e;

	*best = *best_cpu = 1e9;
	for (int i = 0; i < runs; i++) {
		sqlite3 *db;
		if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
			die(dbpath, "cannot open");
		double t0 = now_s(), c0 = cpu_s();
		if (audit_verify(db, pub, NULL, NULL, NULL, &r, &e) != KM_OK)
			die("audit_verify", e.msg);
		double t = now_s() - t0, c = cpu_s() - c0;
		*best = t < *best ? t : *best;
		*best_cpu = c < *best_cpu ? c : *best_cpu;
		sqlite3_close(db);
		if (!r.intact)
			die("audit_verify", r.problem);
	}
	return r;
}

/* Leaf hashes from SQLite for the reference (leaf-walking) proof. */
typedef struct leaf_reader {
	sqlite3_stmt *st;
	uint64_t next;
} leaf_reader;

static km_status bench_leaf(void *ctx, uint64_t index, uint8_t out[32], km_err *e)
{
	leaf_reader *lr = ctx;
	if (index != lr->next) {
		sqlite3_reset(lr->st);
		sqlite3_bind_int64(lr->st, 1, (sqlite3_int64)index + 1);
	}
	if (sqlite3_step(lr->st) != SQLITE_ROW || sqlite3_column_bytes(lr->st, 0) != 32)
		return km_fail(e, KM_EINTEGRITY, "leaf %llu unreadable", (unsigned long long)index);
	memcpy(out, sqlite3_column_blob(lr->st, 0), 32);
	lr->next = index + 1;
	return KM_OK;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* "median M us, 99th percentile P us, worst W us" of k durations (sorts d). */
static void print_spread(const char *what, double *d, int k, const char *note)
{
	double sum = 0;
	for (int i = 0; i < k; i++)
		sum += d[i];
	qsort(d, (size_t)k, sizeof *d, cmp_double);
	printf("%-17s %.1f us average, median %.1f, 99th percentile %.1f, worst %.1f us %s\n", what,
	       sum / k * 1e6, d[k / 2] * 1e6, d[k * 99 / 100] * 1e6, d[k - 1] * 1e6, note);
}

/* The peer for an inclusion proof: the same rows read with bare prepared
 * SELECTs and nothing else (no hashing, no checks).  The RFC 9162 path of
 * leaf m in [start, end) lists the root of the other half at every split;
 * each such range is tiled by the perfect subtrees of its set bits. */
typedef struct raw_reader {
	sqlite3_stmt *leaf, *node;
	int rows;
} raw_reader;

static void raw_range(raw_reader *r, uint64_t start, uint64_t end)
{
	uint64_t off = start;
	for (unsigned l = 64; l-- > 0;) {
		if (!(((end - start) >> l) & 1))
			continue;
		sqlite3_stmt *st = l ? r->node : r->leaf;
		sqlite3_reset(st);
		if (l) {
			sqlite3_bind_int(st, 1, (int)l);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)(off >> l));
		} else {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)off + 1);
		}
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32)
			r->rows++;
		off += (uint64_t)1 << l;
	}
}

static void raw_path(raw_reader *r, uint64_t m, uint64_t start, uint64_t end)
{
	while (end - start > 1) {
		uint64_t k = 1;
		while (k * 2 < end - start)
			k *= 2;
		if (m < start + k) {
			raw_range(r, start + k, end);
			end = start + k;
		} else {
			raw_range(r, start, start + k);
			start += k;
		}
	}
	raw_range(r, start, end); /* the leaf itself */
}

/* Proofs at the newest head: k random inclusion and consistency proofs from
 * the stored nodes, each verified; one leaf-walking proof for comparison. */
static void time_proofs(const char *dbpath, int k)
{
	uint8_t root[32], sig[64], proof[MERKLE_PROOF_MAX][32], r1[32];
	uint64_t size, seed = 42;
	int64_t t;
	int have;
	size_t len;
	double *inc = calloc((size_t)k, sizeof *inc), *con = calloc((size_t)k, sizeof *con);
	merkle_hasher *h;
	sqlite3 *db;
	km_err e;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die(dbpath, "cannot open");
	if (audit_latest_head(db, &size, root, &t, sig, &have, &e) != KM_OK || !have || merkle_hasher_new(&h, &e))
		die("proofs", "no signed head");
	exec_sql(db, "BEGIN");
	for (int i = 0; i < k; i++) {
		uint64_t seq = 1 + mix(seed++) % size;
		audit_row row;
		if (audit_get(db, seq, &row, &e) != KM_OK)
			die("audit_get", e.msg);
		double t0 = now_s();
		if (audit_inclusion_proof(db, seq, size, proof, &len, &e) != KM_OK)
			die("audit_inclusion_proof", e.msg);
		inc[i] = now_s() - t0;
		if (merkle_verify_inclusion(h, row.leaf_hash, seq - 1, size, (const uint8_t(*)[32])proof, len, root,
		                            &e) != KM_OK)
			die("inclusion proof does not verify", e.msg);
		audit_row_free(&row);
		/* consistency from a random older size, checked against that
		 * size's root computed independently (from the proof of size 1
		 * upwards would be circular; use the leaf-walking root) */
		uint64_t first = 1 + mix(seed++) % size;
		t0 = now_s();
		if (audit_consistency_proof(db, first, size, proof, &len, &e) != KM_OK)
			die("audit_consistency_proof", e.msg);
		con[i] = now_s() - t0;
		if (i < 3) {
			leaf_reader lr = {NULL, 0};
			sqlite3_prepare_v2(db, "SELECT leaf_hash FROM audit_events WHERE seq >= ? ORDER BY seq", -1,
			                   &lr.st, NULL);
			lr.next = UINT64_MAX;
			if (merkle_range_root(h, bench_leaf, &lr, 0, first, r1, &e) != KM_OK ||
			    merkle_verify_consistency(h, first, size, r1, root, (const uint8_t(*)[32])proof, len, &e) != KM_OK)
				die("consistency proof does not verify", e.msg);
			sqlite3_finalize(lr.st);
		}
	}
	/* What `keyward audit prove SEQ` does after authorising, and its peer
	 * in the same run: the entry read, its leaf hashed from the text, the
	 * proof from the stored nodes and checked against the signed root —
	 * against the same rows read with bare sqlite3 statements. */
	double *full = calloc((size_t)k, sizeof *full), *raw = calloc((size_t)k, sizeof *raw);
	raw_reader rr = {0};
	sqlite3_prepare_v2(db, "SELECT leaf_hash FROM audit_events WHERE seq = ?", -1, &rr.leaf, NULL);
	sqlite3_prepare_v2(db, "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", -1, &rr.node, NULL);
	for (int i = 0; i < k; i++) {
		uint64_t seq = 1 + mix(seed++) % size;
		uint8_t leaf[32];
		audit_row row;
		double t0 = now_s();
		if (audit_get(db, seq, &row, &e) != KM_OK || merkle_leaf_hash(h, row.json, strlen(row.json), leaf, &e) ||
		    audit_inclusion_proof(db, seq, size, proof, &len, &e) != KM_OK ||
		    merkle_verify_inclusion(h, leaf, seq - 1, size, (const uint8_t(*)[32])proof, len, root, &e) != KM_OK)
			die("inclusion proof (full)", e.msg);
		full[i] = now_s() - t0;
		audit_row_free(&row);
		t0 = now_s();
		raw_path(&rr, seq - 1, 0, size);
		raw[i] = now_s() - t0;
	}
	sqlite3_finalize(rr.leaf);
	sqlite3_finalize(rr.node);
	double fsum = 0, rsum = 0;
	for (int i = 0; i < k; i++) {
		fsum += full[i];
		rsum += raw[i];
	}
	char note[128];
	snprintf(note, sizeof note, "(read + leaf hash + proof + verify; target < 1000 us)");
	print_spread("prove SEQ", full, k, note);
	snprintf(note, sizeof note, "(%d rows: the same path read with bare sqlite3 SELECTs)", rr.rows);
	print_spread("peer: raw reads", raw, k, note);
	printf("prove / raw reads %.2f (averages; median ratio %.2f)\n", rsum > 0 ? fsum / rsum : 0.0,
	       raw[k / 2] > 0 ? full[k / 2] / raw[k / 2] : 0.0);
	free(full);
	free(raw);
	snprintf(note, sizeof note, "(%d random entries at size %llu, from stored nodes)", k,
	         (unsigned long long)size);
	print_spread("inclusion proof", inc, k, note);
	print_spread("consistency proof", con, k, "(from random older sizes)");
	free(inc);
	free(con);
	leaf_reader lr = {NULL, 0};
	sqlite3_prepare_v2(db, "SELECT leaf_hash FROM audit_events WHERE seq >= ? ORDER BY seq", -1, &lr.st, NULL);
	lr.next = UINT64_MAX;
	double t0 = now_s();
	if (merkle_inclusion_proof(h, bench_leaf, &lr, size / 3, size, proof, MERKLE_PROOF_MAX, &len, &e) != KM_OK)
		die("leaf-walking proof", e.msg);
	printf("inclusion proof   %.1f ms the old way (from %llu leaf hashes)\n", (now_s() - t0) * 1e3,
	       (unsigned long long)size);
	sqlite3_finalize(lr.st);
	exec_sql(db, "COMMIT");
	int64_t nodes = 0, pages = 0, psize = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_nodes", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		nodes = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM dbstat WHERE name = 'audit_nodes'", -1, &st, NULL) ==
	        SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		pages = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		psize = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (pages)
		printf("stored nodes      %lld rows, %.1f MiB\n", (long long)nodes,
		       (double)pages * (double)psize / 1048576.0);
	else
		printf("stored nodes      %lld rows\n", (long long)nodes);
	merkle_hasher_free(h);
	sqlite3_close(db);
}

static void usage(void)
{
	fprintf(stderr, "usage: audit_speed [-n EVENTS] [--heads-every K] [--db FILE] [--out FILE] [--runs R]\n"
	                "                   [--soft-signer]\n"
	                "       audit_speed --verify-only --db FILE [--out FILE] [--runs R]\n"
	                "       audit_speed --queries-only --db FILE\n"
	                "       audit_speed --proofs-only --db FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000, heads_every = 0;
	const char *out = NULL, *dbpath = NULL;
	int soft = 0, runs = 3, queries_only = 0, verify_only = 0, proofs_only = 0;
	char dir[256] = "", path[300], outbuf[420], pem[420];
	signer sg;
	double t_build = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--heads-every") && i + 1 < argc)
			heads_every = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--db") && i + 1 < argc)
			dbpath = argv[++i];
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--soft-signer"))
			soft = 1;
		else if (!strcmp(argv[i], "--queries-only"))
			queries_only = 1;
		else if (!strcmp(argv[i], "--verify-only"))
			verify_only = 1;
		else if (!strcmp(argv[i], "--proofs-only"))
			proofs_only = 1;
		else
			usage();
	}
	if ((queries_only || verify_only || proofs_only) && !dbpath)
		usage();
	if (proofs_only) {
		time_proofs(dbpath, 1000);
		return 0;
	}
	if (!dbpath) {
		snprintf(dir, sizeof dir, "/tmp/kw-bench-audit-XXXXXX");
		if (!mkdtemp(dir))
			die("mkdtemp", dir);
		snprintf(path, sizeof path, "%s/audit.db", dir);
		dbpath = path;
	}
	if (!out) {
		snprintf(outbuf, sizeof outbuf, "%s.events.json", dbpath);
		out = outbuf;
	}
	/* the audit public key travels with the database, for --verify-only */
	snprintf(pem, sizeof pem, "%s.pub.pem", dbpath);

	if (queries_only) {
		sqlite3 *db;
		sqlite3_stmt *st;
		int64_t max = 0;
		if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
			die(dbpath, "cannot open");
		if (sqlite3_prepare_v2(db, "SELECT max(seq) FROM audit_events", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			max = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
		run_queries(dbpath, (uint64_t)max);
		return 0;
	}

	memset(&sg, 0, sizeof sg);
	if (verify_only) {
		FILE *f = fopen(pem, "r");
		if (!f || !(sg.pub = PEM_read_PUBKEY(f, NULL, NULL, NULL)))
			die(pem, "cannot read the audit public key");
		fclose(f);
	} else {
		signer_open(&sg, soft);
		t_build = build_log(dbpath, n, heads_every ? heads_every : n, &sg, soft);
		FILE *f = fopen(pem, "w");
		if (!f || PEM_write_PUBKEY(f, sg.pub) != 1 || fclose(f) != 0)
			die(pem, "cannot write the audit public key");
	}

	size_t bytes = dump_events(dbpath, out);
	double t_sha, c_sha, best, best_cpu;
	sha_file(out, &t_sha, &c_sha);
	audit_verify_result r = verify_runs(dbpath, sg.pub, runs, &best, &best_cpu);
	n = r.entries_total;

	printf("events            %llu (%.1f MiB of event JSON, %.0f bytes each)\n", (unsigned long long)n,
	       (double)bytes / 1048576.0, n ? (double)bytes / (double)n : 0.0);
	printf("tree heads        %llu\n", (unsigned long long)r.heads_total);
	if (!verify_only)
		printf("append            %.2f s  (%.0f events/s, audit_append + sign, %s)\n", t_build,
		       (double)n / t_build, soft ? "software signer" : "SoftHSM2");
	printf("verify            %.3f s wall, %.3f s CPU  (best of %d; %.0f events/s)\n", best, best_cpu, runs,
	       (double)n / best);
	printf("sha256 in-process %.3f s wall, %.3f s CPU  (one EVP pass over the concatenated bytes)\n", t_sha,
	       c_sha);
	printf("verify / sha256   %.2f wall, %.2f CPU\n", t_sha > 0 ? best / t_sha : 0.0,
	       c_sha > 0 ? best_cpu / c_sha : 0.0);
	printf("event bytes       %s  (time openssl dgst -sha256 / sha256sum on it)\n", out);
	printf("database          %s  (public key %s)\n", dbpath, pem);
	if (!verify_only)
		run_queries(dbpath, n);
	time_proofs(dbpath, 1000);
	signer_close(&sg);
	return 0;
}
