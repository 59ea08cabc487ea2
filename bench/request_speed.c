/*
 * request_speed.c — one signed two-approval change, end to end: open a
 * rotation request, two approvers sign it, the officer executes it.
 *
 *   request_speed [--dir DIR] [--rounds N]
 *       A fresh personal deployment in a new temp dir under DIR (default
 *       $TMPDIR or /tmp), removed afterwards: an officer, two approvers,
 *       and a key tagged sensitivity=high with 100 assets (high risk tier,
 *       so its quorum is two).  Each person has a session of their own, as
 *       three people at three terminals would; Argon2id is excluded by
 *       using its floor cost (the tests' parameters) and by stepping each
 *       session up once before timing.  N rounds (default 20), each:
 *       ours, then the peer's.  Prints "NAME SECONDS", medians:
 *         request_e2e     km_request_rotate + 2 x km_request_approve +
 *                         km_request_execute (each a commit with its
 *                         HSM-signed tree head; the rotation generates a
 *                         KEK version in the HSM)
 *         peer_inproc     3 Ed25519 signatures over a 32-byte digest
 *                         (EVP, keys loaded) + one SQLite transaction
 *                         inserting a row, WAL, synchronous=FULL
 *         peer_cli        the same with the tools: 3 x `openssl pkeyutl
 *                         -sign -rawin` + one `sqlite3` transaction
 */
#include "cred.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "asset.h"
#include "request.h"
#include "rowmac.h"
#include "user_int.h"

#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PIN "request-speed-pin"
#define BENCH_PASS "request speed passphrase"
#define KEY "features/bench"

static char run_dir[PATH_MAX], home[PATH_MAX + 8];

static void die(const char *what, const char *why)
{
	fprintf(stderr, "request_speed: %s: %s\n", what, why);
	exit(1);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (run_dir[0])
		nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void ok(km_status st, const char *what, const km_err *e)
{
	if (st != KM_OK)
		die(what, e->msg);
}

/* An approver, enrolled as init enrols (a sealed row and its event). */
static void enrol(km_ctx *ctx, const char *name)
{
	km_err e = {0};
	user_row u = {.roles = KM_ROLE_APPROVER, .created = km_ctx_now(ctx), .totp_step = -1};
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.created_by, sizeof u.created_by, "bench");
	km_cred_params p = {KM_CRED_T_COST_MIN, KM_CRED_M_COST_KIB_MIN, 1};
	char digest[65], obj[80];
	ok(km_cred_create(name, BENCH_PASS, &p, &u.cred, &e), "cred", &e);
	ok(km_tx_begin(ctx, &e), "begin", &e);
	ok(user_row_save(ctx, &u, 1, digest, &e), "user", &e);
	json_t *d = json_object();
	km_sealed_note(d, "users", name, digest);
	snprintf(obj, sizeof obj, "user:%s", name);
	ok(km_tx_audit(ctx, "user.add", obj, "ok", d, &e), "audit", &e);
	ok(km_tx_commit(ctx, &e), "commit", &e);
	user_row_clear(&u);
}

static km_ctx *session(const char *user)
{
	km_open_opts o = {.home = home, .user = user};
	km_ctx *c = NULL;
	km_err e = {0};
	ok(km_open(&o, &c, &e), user ? user : "officer", &e);
	return c;
}

static void deploy(const char *base, km_ctx *s[3])
{
	km_err e = {0};
	if ((size_t)snprintf(run_dir, sizeof run_dir, "%s/kw-request-speed-XXXXXX", base) >= sizeof run_dir)
		die(base, "path too long");
	if (!mkdtemp(run_dir))
		die("mkdtemp", base);
	atexit(cleanup);
	snprintf(home, sizeof home, "%s/home", run_dir);
	km_init_opts o = {.home = home, .pin = BENCH_PIN, .passphrase = BENCH_PASS,
	                  .first_user_roles = KM_ROLE_OFFICER, .first_user = "officer",
	                  .argon2_t = KM_CRED_T_COST_MIN, .argon2_m_kib = KM_CRED_M_COST_KIB_MIN};
	ok(km_init_deployment(&o, &e), "init", &e);
	setenv("KEYWARD_PIN", BENCH_PIN, 1);
	setenv("KEYWARD_PASSPHRASE", BENCH_PASS, 1);
	s[0] = session("officer");
	enrol(s[0], "bob");
	enrol(s[0], "carol");
	s[1] = session("bob");
	s[2] = session("carol");
	km_tag t = {"sensitivity", "high"};
	ok(km_key_create(s[0], KEY, &t, 1, &e), "key", &e);
	const char *specs[100];
	char names[100][48];
	for (int i = 0; i < 100; i++) {
		snprintf(names[i], sizeof names[i], "feature:bench/f%d@1", i);
		specs[i] = names[i];
	}
	ok(km_asset_register_bulk(s[0], KEY, specs, 100, &e), "assets", &e);
}

/* One request, two signatures, one execution. */
static double round_ours(km_ctx *s[3])
{
	km_err e = {0};
	char id[KM_REQUEST_ID_MAX];
	double t0 = now_s();
	ok(km_request_rotate(s[0], KEY, "bench", id, &e), "rotate", &e);
	ok(km_request_approve(s[1], id, &e), "approve bob", &e);
	ok(km_request_approve(s[2], id, &e), "approve carol", &e);
	ok(km_request_execute(s[0], id, NULL, NULL, &e), "execute", &e);
	return now_s() - t0;
}

typedef struct peer {
	EVP_PKEY *k[3];
	sqlite3 *db;
	char dir[PATH_MAX + 16];
} peer;

static void peer_setup(peer *p)
{
	snprintf(p->dir, sizeof p->dir, "%s/peer", run_dir);
	if (mkdir(p->dir, 0700) != 0)
		die(p->dir, "mkdir");
	char path[PATH_MAX + 64], cmd[3 * PATH_MAX];
	for (int i = 0; i < 3; i++) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
		if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &p->k[i]) != 1)
			die("peer", "Ed25519 keygen");
		EVP_PKEY_CTX_free(c);
		snprintf(path, sizeof path, "%s/k%d.pem", p->dir, i);
		FILE *f = fopen(path, "w");
		if (!f || PEM_write_PrivateKey(f, p->k[i], NULL, NULL, 0, NULL, NULL) != 1)
			die(path, "write");
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/digest.bin", p->dir);
	FILE *f = fopen(path, "w");
	if (!f || fwrite("0123456789abcdef0123456789abcdef", 1, 32, f) != 32)
		die(path, "write");
	fclose(f);
	snprintf(path, sizeof path, "%s/peer.db", p->dir);
	if (sqlite3_open(path, &p->db) != SQLITE_OK ||
	    sqlite3_exec(p->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	                 "CREATE TABLE r(id INTEGER PRIMARY KEY, body TEXT, sig BLOB)", NULL, NULL, NULL) != SQLITE_OK)
		die(path, "sqlite");
	snprintf(cmd, sizeof cmd, "sqlite3 %s/cli.db 'PRAGMA journal_mode = WAL; CREATE TABLE r(id INTEGER "
	         "PRIMARY KEY, body TEXT, sig BLOB)' >/dev/null", p->dir);
	if (system(cmd) != 0)
		die("peer", "sqlite3 tool");
}

static double round_peer_inproc(peer *p)
{
	static const uint8_t digest[32] = {1};
	uint8_t sig[64];
	double t0 = now_s();
	for (int i = 0; i < 3; i++) {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		size_t n = sizeof sig;
		if (!m || EVP_DigestSignInit(m, NULL, NULL, NULL, p->k[i]) != 1 ||
		    EVP_DigestSign(m, sig, &n, digest, sizeof digest) != 1)
			die("peer", "sign");
		EVP_MD_CTX_free(m);
	}
	if (sqlite3_exec(p->db, "BEGIN IMMEDIATE; INSERT INTO r(body, sig) VALUES('{\"kind\":\"rotate\"}', "
	                 "randomblob(64)); COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("peer", "sqlite transaction");
	return now_s() - t0;
}

static double round_peer_cli(peer *p)
{
	char cmd[5 * PATH_MAX];
	double t0 = now_s();
	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof cmd, "openssl pkeyutl -sign -inkey %s/k%d.pem -rawin -in %s/digest.bin "
		         "-out %s/s%d.sig", p->dir, i, p->dir, p->dir, i);
		if (system(cmd) != 0)
			die("peer", "openssl pkeyutl -sign");
	}
	snprintf(cmd, sizeof cmd, "sqlite3 %s/cli.db \"BEGIN IMMEDIATE; INSERT INTO r(body, sig) "
	         "VALUES('x', randomblob(64)); COMMIT;\"", p->dir);
	if (system(cmd) != 0)
		die("peer", "sqlite3 transaction");
	return now_s() - t0;
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int rounds = 20;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else
			die(argv[i], "usage: request_speed [--dir DIR] [--rounds N]");
	}
	if (rounds < 1 || rounds > 10000)
		die("--rounds", "1 to 10000");
	km_ctx *s[3];
	peer p = {0};
	deploy(base, s);
	peer_setup(&p);
	round_ours(s); /* steps every session up (Argon2id at its floor), untimed */
	double *ours = calloc((size_t)rounds, sizeof *ours), *pin = calloc((size_t)rounds, sizeof *pin);
	double *pcli = calloc((size_t)rounds, sizeof *pcli);
	if (!ours || !pin || !pcli)
		die("calloc", "out of memory");
	for (int r = 0; r < rounds; r++) {
		ours[r] = round_ours(s);
		pin[r] = round_peer_inproc(&p);
		pcli[r] = round_peer_cli(&p);
	}
	printf("request_e2e %.4f\n", median(ours, rounds));
	printf("peer_inproc %.4f\n", median(pin, rounds));
	printf("peer_cli %.4f\n", median(pcli, rounds));
	for (int i = 0; i < 3; i++) {
		km_close(s[i]);
		EVP_PKEY_free(p.k[i]);
	}
	sqlite3_close(p.db);
	free(ours);
	free(pin);
	free(pcli);
	return 0;
}
