/*
 * test_job.c — rewrap and re-encryption jobs on a real deployment
 * (SoftHSM2 token, SQLite catalogue, audit log), and the compromise
 * override of unprotect.  Jobs are queued by lifecycle_rotate, as an
 * executed rotation request queues them, and run here by km_job_run.
 */
#include "th_deploy.h"
#include "asset.h"
#include "audit.h"
#include "auditlog.h"
#include "ctx.h"
#include "db.h"
#include "envelope.h"
#include "job.h"
#include "kek.h"
#include "kek_int.h"
#include "lifecycle.h"
#include "lineage.h"
#include "secmem.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static th_deploy D;

static void teardown(void) { th_deploy_teardown(&D); }

static int64_t count(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_msg(km_db_int64(km_db(ctx), sql, &v, &e) == KM_OK, "%s", e.msg);
	return v;
}

static void sql_exec(km_ctx *ctx, const char *sql)
{
	km_err e;
	ck_assert_msg(km_db_exec(km_db(ctx), sql, &e) == KM_OK, "%s: %s", sql, e.msg);
}

static void assert_log_intact(km_ctx *ctx)
{
	audit_verify_result r;
	km_err e;
	ck_assert_msg(km_audit_verify(ctx, NULL, NULL, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(r.intact, "audit log not intact: %s", r.problem);
	km_rows_result rr;
	ck_assert_msg(km_audit_verify_rows(ctx, &rr, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(rr.bad == 0, "sealed rows: %s", rr.problem);
}

/* Register n assets (no files) under key. */
static void register_assets(km_ctx *ctx, const char *key, size_t n, const char *prefix)
{
	char **specs = calloc(n, sizeof *specs);
	for (size_t i = 0; i < n; i++) {
		specs[i] = malloc(64);
		snprintf(specs[i], 64, "feature:%s/%zu", prefix, i);
	}
	km_err e;
	ck_assert_msg(km_asset_register_bulk(ctx, key, (const char *const *)specs, n, &e) == KM_OK, "%s", e.msg);
	for (size_t i = 0; i < n; i++)
		free(specs[i]);
	free(specs);
}

static void queue(km_ctx *ctx, km_job_kind kind, const char *key, uint32_t from, uint32_t to,
                  char id[KM_REQUEST_ID_MAX])
{
	km_err e;
	int64_t key_id;
	ck_assert_int_eq(kek_lookup_id(ctx, key, &key_id, &e), KM_OK);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_msg(job_queue(ctx, kind, key_id, from, to, "", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_tx_commit(ctx, &e) == KM_OK, "%s", e.msg);
}

/* Rotate as an executed rotation request does (lifecycle_rotate, in one
 * transaction with its event), which queues the job without running it;
 * the job's id in id.  Requests themselves are test_request's. */
static void rotate_queue(km_ctx *ctx, const char *key, km_job_kind kind, char id[KM_REQUEST_ID_MAX])
{
	km_err e;
	uint32_t v;
	char obj[200];
	json_t *d = json_object();
	snprintf(obj, sizeof obj, "key:%s", key);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_msg(lifecycle_rotate(ctx, key, kind == KM_JOB_REENCRYPT, "", &v, id, d, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_tx_audit(ctx, "key.rotate", obj, "ok", d, &e), KM_OK);
	ck_assert_msg(km_tx_commit(ctx, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(id[0], "the rotation of %s queued no job", key);
}

/* Every catalogue DEK of key unwraps under the version the catalogue names. */
static int64_t unwrap_all(km_ctx *ctx, const char *key)
{
	sqlite3_stmt *q;
	km_err e;
	ck_assert_int_eq(km_db_prepare(km_db(ctx), "SELECT a.uid, a.kind, a.name, a.version, a.kek_version, "
	                               "a.wrapped_dek FROM assets a JOIN keys k ON k.id = a.key_id WHERE k.name = ?",
	                               &q, &e), KM_OK);
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	int64_t n = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		km_asset_ref ref = {(const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
		                    (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3), key,
		                    (uint32_t)sqlite3_column_int64(q, 4)};
		kek_version_row row;
		const uint8_t *kek;
		ck_assert_int_eq(kek_version_load(ctx, key, ref.kek_version, &row, &e), KM_OK);
		ck_assert_int_eq(kek_material(ctx, &row, &kek, &e), KM_OK);
		ck_assert_int_eq(sqlite3_column_bytes(q, 5), KM_WRAPPED_DEK_BYTES);
		ck_assert_msg(dek_unwrap(kek, sqlite3_column_blob(q, 5), &ref, dek, &e) == KM_OK, "%s", e.msg);
		n++;
	}
	sqlite3_finalize(q);
	km_secure_free(dek, KM_DEK_BYTES);
	return n;
}

/* SHA-256 over every wrapped DEK in id order, hex: "nothing changed". */
static void wraps_digest(km_ctx *ctx, char out[65])
{
	sqlite3_stmt *q;
	km_err e;
	ck_assert_int_eq(km_db_prepare(km_db(ctx), "SELECT wrapped_dek, kek_version FROM assets ORDER BY id", &q, &e),
	                 KM_OK);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (sqlite3_step(q) == SQLITE_ROW) {
		EVP_DigestUpdate(md, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
		int64_t v = sqlite3_column_int64(q, 1);
		EVP_DigestUpdate(md, &v, sizeof v);
	}
	sqlite3_finalize(q);
	uint8_t d[32];
	unsigned int len;
	EVP_DigestFinal_ex(md, d, &len);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void write_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* Protect `data` into path (through a plaintext file beside it). */
static void protect_file(km_ctx *ctx, const char *key, const char *spec, const char *path, const char *data,
                         size_t n)
{
	char plain[400];
	snprintf(plain, sizeof plain, "%s.plain", path);
	write_file(plain, data, n);
	int in = open(plain, O_RDONLY);
	km_err e;
	km_asset_info a;
	ck_assert_msg(km_protect(ctx, key, spec, in, -1, path, &a, &e) == KM_OK, "%s", e.msg);
	ck_assert_str_eq(a.path, path);
	close(in);
	unlink(plain);
}

/* Unprotect path to memory and compare with want. */
static km_status unprotect_file(km_ctx *ctx, const char *path, const km_unprotect_opts *o, const char *want,
                                size_t n, km_err *e)
{
	int in = open(path, O_RDONLY);
	ck_assert_int_ge(in, 0);
	int out = memfd_create("out", 0);
	km_asset_info a;
	km_status st = km_unprotect_ex(ctx, in, out, NULL, o, &a, e);
	close(in);
	if (st == KM_OK) {
		char *buf = malloc(n + 1);
		ck_assert_int_eq(pread(out, buf, n + 1, 0), (ssize_t)n);
		ck_assert(memcmp(buf, want, n) == 0);
		free(buf);
	}
	close(out);
	return st;
}

static uint32_t header_version(const char *path)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	envelope_header h;
	km_err e;
	ck_assert_int_eq(envelope_read_header(fd, &h, &e), KM_OK);
	close(fd);
	return h.kek_version;
}

static int count_jobs(void *c, const km_job_info *j)
{
	(void)j;
	(*(int *)c)++;
	return 0;
}

/* ---------------------------------------------------------------- rewrap */

START_TEST(rewrap_moves_every_asset_once)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 1000");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/credit-risk", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/credit-risk", 2500, "bulk");
	char path[400];
	snprintf(path, sizeof path, "%s/income.kw", D.home);
	static const char data[] = "income by postcode, 2026";
	protect_file(ctx, "features/credit-risk", "feature:income@3", path, data, sizeof data);
	/* another key's assets are never touched */
	ck_assert_int_eq(km_key_create(ctx, "features/other", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/other", 10, "other");
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/credit-risk", KM_JOB_REWRAP, id);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_QUEUED);
	ck_assert_uint_eq(j.total, 2501);

	ck_assert_msg(km_job_run(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 2501);
	ck_assert_uint_eq(j.unreachable, 0);
	ck_assert_str_eq(j.holder, "");
	/* every asset once, under the new version; counts moved */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets a JOIN keys k ON k.id = a.key_id "
	                            "WHERE k.name = 'features/credit-risk' AND a.kek_version = 2"), 2501);
	ck_assert_int_eq(count(ctx, "SELECT count(DISTINCT uid) FROM assets"), 2511);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets"), 2511);
	ck_assert_int_eq(count(ctx, "SELECT v.assets FROM key_versions v JOIN keys k ON k.id = v.key_id "
	                            "WHERE k.name = 'features/credit-risk' AND v.version = 1"), 0);
	ck_assert_int_eq(count(ctx, "SELECT v.assets FROM key_versions v JOIN keys k ON k.id = v.key_id "
	                            "WHERE k.name = 'features/credit-risk' AND v.version = 2"), 2501);
	ck_assert_int_eq(count(ctx, "SELECT v.wraps FROM key_versions v JOIN keys k ON k.id = v.key_id "
	                            "WHERE k.name = 'features/credit-risk' AND v.version = 2"), 2501);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets a JOIN keys k ON k.id = a.key_id "
	                            "WHERE k.name = 'features/other' AND a.kek_version = 1"), 10);
	ck_assert_int_eq(unwrap_all(ctx, "features/credit-risk"), 2501);
	/* one event per batch of 1000 */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'job.batch'"), 3);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'job.done'"), 1);
	/* the file was not touched, and decrypts through the catalogue */
	ck_assert_uint_eq(header_version(path), 1);
	ck_assert_msg(unprotect_file(ctx, path, NULL, data, sizeof data, &e) == KM_OK, "%s", e.msg);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

static int64_t fixed_now;
static int64_t fixed_clock(void *c)
{
	(void)c;
	return fixed_now;
}

static void register_versioned(km_ctx *ctx, const char *key, size_t from, size_t n)
{
	char **specs = calloc(n, sizeof *specs);
	for (size_t i = 0; i < n; i++) {
		specs[i] = malloc(64);
		snprintf(specs[i], 64, "feature:lin/%zu@1", from + i);
	}
	km_err e;
	ck_assert_msg(km_asset_register_bulk(ctx, key, (const char *const *)specs, n, &e) == KM_OK, "%s", e.msg);
	for (size_t i = 0; i < n; i++)
		free(specs[i]);
	free(specs);
}

/* The lineage's protection intervals follow a rewrap set-wise per run of
 * moved assets: each moved asset's two nodes (versioned, and unversioned
 * while it is the newest) close under v1 and open under v2 at the batch's
 * time; an asset the job could not move (listed unreachable) keeps its v1
 * intervals open, wherever it falls in a batch; another key's assets whose
 * ids lie between are untouched. */
START_TEST(rewrap_lineage_follows_what_moved)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 1000");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	fixed_now = km_now();
	km_set_clock(ctx, fixed_clock, NULL);
	ck_assert_int_eq(km_key_create(ctx, "features/lin", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "features/other", NULL, 0, &e), KM_OK);
	register_versioned(ctx, "features/lin", 0, 1000);
	register_assets(ctx, "features/other", 10, "other"); /* ids amid the key's */
	register_versioned(ctx, "features/lin", 1000, 1500);
	int64_t lo = count(ctx, "SELECT min(a.id) FROM assets a JOIN keys k ON k.id = a.key_id "
	                        "WHERE k.name = 'features/lin'");
	/* Unreachable: the first, a batch's last and the next batch's first
	 * (ids 1000 and 1001 of the key, with another key's 10 between), one
	 * amid a batch, and the very last. */
	char sql[600];
	snprintf(sql, sizeof sql, "UPDATE assets SET wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id IN "
	         "(%lld, %lld, %lld, %lld, %lld)", (long long)lo, (long long)(lo + 999), (long long)(lo + 1010),
	         (long long)(lo + 1500), (long long)(lo + 2509));
	sql_exec(ctx, sql);
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/lin", KM_JOB_REWRAP, id);
	fixed_now += 3600;
	int64_t t = fixed_now;
	ck_assert_msg(km_job_run(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_uint_eq(j.done, 2495);
	ck_assert_uint_eq(j.unreachable, 5);
	/* Two nodes an asset, one open interval each, always under the
	 * version the catalogue names. */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_protection WHERE valid_to = 9223372036854775807 "
	                            "AND key_id = (SELECT id FROM keys WHERE name = 'features/lin')"), 5000);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_protection p JOIN assets a ON a.id = p.asset_id "
	                            "WHERE p.valid_to = 9223372036854775807 AND (p.kek_version <> a.kek_version "
	                            "OR p.key_id <> a.key_id)"), 0);
	/* Moved: v1 closed at t, v2 open from t, the same nodes. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM lineage_protection o JOIN lineage_protection n ON "
	         "n.asset_id = o.asset_id AND n.node = o.node AND n.kek_version = 2 AND n.valid_from = %lld AND "
	         "n.valid_to = 9223372036854775807 WHERE o.kek_version = 1 AND o.valid_to = %lld",
	         (long long)t, (long long)t);
	ck_assert_int_eq(count(ctx, sql), 2 * 2495);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_protection WHERE kek_version = 2"), 2 * 2495);
	/* Left behind: v1 still open, nothing under v2. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM lineage_protection WHERE kek_version = 1 AND "
	         "valid_to = 9223372036854775807 AND asset_id IN (%lld, %lld, %lld, %lld, %lld)", (long long)lo,
	         (long long)(lo + 999), (long long)(lo + 1010), (long long)(lo + 1500), (long long)(lo + 2509));
	ck_assert_int_eq(count(ctx, sql), 10);
	/* The other key: untouched. */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_protection p JOIN keys k ON k.id = p.key_id "
	                            "WHERE k.name = 'features/other' AND (p.kek_version <> 1 OR "
	                            "p.valid_to <> 9223372036854775807)"), 0);
	/* Impact as of just before the rewrap: v1 protected every node; now
	 * v1 reaches only what it still protects or protected earlier. */
	km_lineage_impact_summary sum;
	ck_assert_msg(km_lineage_impact(ctx, "features/lin", 2, t - 1, NULL, NULL, &sum, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(sum.total, 0);
	ck_assert_msg(km_lineage_impact(ctx, "features/lin", 2, t, NULL, NULL, &sum, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(sum.total, 2 * 2495);
	ck_assert_msg(km_lineage_impact(ctx, "features/lin", 1, t - 1, NULL, NULL, &sum, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(sum.total, 5000);
	km_close(ctx);
}
END_TEST

START_TEST(rewrap_rerun_is_idempotent)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 300");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "models/fraud", NULL, 0, &e), KM_OK);
	register_assets(ctx, "models/fraud", 1000, "m");
	char id[KM_REQUEST_ID_MAX], id2[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "models/fraud", KM_JOB_REWRAP, id);
	ck_assert_msg(km_job_run(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	char before[65], after[65];
	wraps_digest(ctx, before);
	int64_t batches = count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'job.batch'");
	ck_assert_int_eq(batches, 4);
	/* running a finished job again does nothing */
	ck_assert_int_eq(km_job_run(ctx, id, NULL, NULL, &e), KM_OK);
	/* a second job over the same versions finds nothing left to move */
	queue(ctx, KM_JOB_REWRAP, "models/fraud", 1, 2, id2);
	ck_assert_msg(km_job_run(ctx, id2, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id2, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 0);
	wraps_digest(ctx, after);
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'job.batch'"), batches);
	ck_assert_int_eq(count(ctx, "SELECT sum(assets) FROM key_versions"), 1000);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

/* ------------------------------------------------------- two executors */

/* The winner's first progress report waits a while holding the lease. */
static int slow_progress(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)done, (void)total, (void)what;
	int *first = c;
	if (*first) {
		*first = 0;
		sleep(2);
	}
	return 0;
}

START_TEST(two_runners_one_wins)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 500");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "datasets/claims", NULL, 0, &e), KM_OK);
	register_assets(ctx, "datasets/claims", 3000, "c");
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "datasets/claims", KM_JOB_REWRAP, id);
	km_close(ctx);

	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			close(go[1]);
			km_ctx *c = th_deploy_open(&D, NULL);
			char b;
			if (read(go[0], &b, 1) != 0)
				_exit(9);
			int first = 1;
			km_err ce;
			km_status st = km_job_run(c, id, slow_progress, &first, &ce);
			if (st == KM_EBUSY && !strstr(ce.msg, "pid"))
				st = KM_EINTERNAL; /* the holder must be named */
			km_close(c);
			_exit(st == KM_OK ? 0 : st == KM_EBUSY ? 2 : 1);
		}
	}
	close(go[0]);
	usleep(300000); /* both are open and waiting */
	close(go[1]);   /* start both at once */
	int codes[2];
	for (int i = 0; i < 2; i++) {
		int status;
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert(WIFEXITED(status));
		codes[i] = WEXITSTATUS(status);
	}
	ck_assert_msg((codes[0] == 0 && codes[1] == 2) || (codes[0] == 2 && codes[1] == 0), "exit codes %d %d",
	              codes[0], codes[1]);
	ctx = th_deploy_open(&D, NULL);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 3000);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 2"), 3000);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'job.run' AND outcome = 'ok'"), 1);
	ck_assert_int_eq(unwrap_all(ctx, "datasets/claims"), 3000);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

/* ------------------------------------------------------ pause, resume */

typedef struct pauser {
	km_ctx *other; /* a second session of the same person */
	const char *id;
	int calls;
	int via_flag;
} pauser;

static int pause_after_first(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)done, (void)total, (void)what;
	pauser *p = c;
	if (p->calls++)
		return 0;
	if (!p->via_flag)
		return 1;
	km_err e;
	ck_assert_msg(km_job_pause(p->other, p->id, &e) == KM_OK, "%s", e.msg);
	return 0;
}

START_TEST(pause_and_resume)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 400");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_ctx *other = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/x", 2000, "x");
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/x", KM_JOB_REWRAP, id);

	/* the progress callback asks to pause */
	pauser p = {other, id, 0, 0};
	ck_assert_msg(km_job_run(ctx, id, pause_after_first, &p, &e) == KM_OK, "%s", e.msg);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_PAUSED);
	ck_assert_uint_eq(j.done, 400);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 2"), 400);
	ck_assert_int_eq(km_job_pause(ctx, id, &e), KM_ESTATE);

	/* another session sets the flag; the runner stops after its batch */
	p = (pauser){other, id, 0, 1};
	ck_assert_msg(km_job_run(ctx, id, pause_after_first, &p, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_PAUSED);
	ck_assert_uint_eq(j.done, 800);

	/* resume to the end */
	ck_assert_msg(km_job_run(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 2000);
	ck_assert_int_eq(j.eta, 0);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 2"), 2000);

	/* cancel: a queued job is cancelled and cannot run */
	char id2[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/x", KM_JOB_REWRAP, id2);
	ck_assert_int_eq(km_job_cancel(ctx, id2, &e), KM_OK);
	ck_assert_int_eq(km_job_run(ctx, id2, NULL, NULL, &e), KM_ESTATE);
	ck_assert_int_eq(km_job_cancel(ctx, id2, &e), KM_ESTATE);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 2"), 2000);
	/* listings: active only (none now), then all */
	int n = 0;
	ck_assert_int_eq(km_job_list(ctx, 1, count_jobs, &n, &e), KM_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(km_job_list(ctx, 0, count_jobs, &n, &e), KM_OK);
	ck_assert_int_eq(n, 2);
	assert_log_intact(ctx);
	km_close(other);
	km_close(ctx);
}
END_TEST

/* The progress callback wedges the runner's own connection (an open
 * transaction): its next batch cannot begin, and neither can the release
 * of its claim, so the run returns with the row still "running" and held
 * by this very process, as the console's worker thread left it when the
 * catalogue stayed locked past its busy timeout.  A process that is not
 * running the job holds nothing: another session here pauses it at once
 * (it used to record a request no run would honour and leave the job
 * "running" until the 120 s lease ran out), and it resumes at once. */
static int wedge_runner(void *c, uint64_t done, uint64_t total, const char *what)
{
	(void)done;
	(void)total;
	(void)what;
	sqlite3_exec(km_db((km_ctx *)c), "BEGIN", NULL, NULL, NULL);
	return 0;
}

START_TEST(a_run_that_ended_holds_nothing_here)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 100");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_ctx *other = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/x", 500, "x");
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/x", KM_JOB_REWRAP, id);
	ck_assert_int_ne(km_job_run(ctx, id, wedge_runner, ctx, &e), KM_OK);
	sqlite3_exec(km_db(ctx), "ROLLBACK", NULL, NULL, NULL);
	km_job_info j;
	ck_assert_int_eq(km_job_get(other, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_RUNNING);
	ck_assert_uint_eq(j.done, 100);
	ck_assert_str_eq(j.holder, ""); /* shown as held by no one: no run here */
	ck_assert_msg(km_job_pause(other, id, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(other, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_PAUSED);
	ck_assert_str_eq(j.holder, "");
	ck_assert_msg(km_job_run(other, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(other, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 500);
	km_close(other);
	km_close(ctx);
}
END_TEST

/* While a run is under way here, a pause from another session in this
 * process is a request the run honours after its batch (as from another
 * process).  As the console does it: the request committed from its own
 * session, and the worker's progress callback answering "pause" too; the
 * runner's own pause transaction then follows a commit made while it was
 * reading the row for its progress (it once began on that read's stale
 * snapshot and failed at once with SQLITE_BUSY_SNAPSHOT, ending the run). */
typedef struct pause_mid {
	km_ctx *other;
	const char *id;
	int state_seen;
} pause_mid;

static int pause_from_here(void *c, uint64_t done, uint64_t total, const char *what)
{
	pause_mid *p = c;
	(void)done;
	(void)total;
	(void)what;
	km_err e;
	km_job_info j;
	if (km_job_pause(p->other, p->id, &e) == KM_OK && km_job_get(p->other, p->id, &j, &e) == KM_OK)
		p->state_seen = (int)j.state;
	return 1;
}

START_TEST(a_run_under_way_here_honours_a_pause)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 100");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_ctx *other = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/x", 500, "x");
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "features/x", KM_JOB_REWRAP, id);
	pause_mid p = {other, id, -1};
	ck_assert_msg(km_job_run(ctx, id, pause_from_here, &p, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(p.state_seen, KM_JOB_RUNNING); /* requested, not done behind the run's back */
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_PAUSED);
	ck_assert_uint_eq(j.done, 100); /* stopped before its second batch */
	km_close(other);
	km_close(ctx);
}
END_TEST

/* ------------------------------------------------------ tampering */

START_TEST(tampered_job_row_is_refused)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"job_batch\": 100");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/t", NULL, 0, &e), KM_OK);
	register_assets(ctx, "features/t", 300, "t");
	char id[KM_REQUEST_ID_MAX], sql[200];
	rotate_queue(ctx, "features/t", KM_JOB_REWRAP, id);
	/* someone with write access to the file moves the cursor past every
	 * asset, so that they would be left under the old version */
	snprintf(sql, sizeof sql, "UPDATE jobs SET cursor = 1000000 WHERE id = '%s'", id);
	ck_assert_int_eq(km_db_exec(km_db(ctx), sql, &e), KM_OK);
	ck_assert_int_eq(km_job_run(ctx, id, NULL, NULL, &e), KM_EINTEGRITY);
	ck_assert_msg(strstr(e.msg, "jobs row") != NULL, "%s", e.msg);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_EINTEGRITY);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 2"), 0);
	km_rows_result rr;
	ck_assert_int_eq(km_audit_verify_rows(ctx, &rr, &e), KM_OK);
	ck_assert_uint_eq(rr.bad, 1);
	km_close(ctx);
}
END_TEST

/* ------------------------------------------------------ re-encryption */

START_TEST(reencrypt_files_and_list_the_unreachable)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "datasets/d", NULL, 0, &e), KM_OK);
	enum { FILES = 5 };
	char paths[FILES][400], data[FILES][200];
	for (int i = 0; i < FILES; i++) {
		snprintf(paths[i], sizeof paths[i], "%s/part-%d.kw", D.home, i);
		snprintf(data[i], sizeof data[i], "part %d of the claims data set", i);
		char spec[64];
		snprintf(spec, sizeof spec, "dataset:claims/part-%d", i);
		protect_file(ctx, "datasets/d", spec, paths[i], data[i], strlen(data[i]));
	}
	register_assets(ctx, "datasets/d", 2, "nofile");
	ck_assert_int_eq(unlink(paths[4]), 0); /* gone */
	struct stat before;
	ck_assert_int_eq(stat(paths[0], &before), 0);
	char id[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "datasets/d", KM_JOB_REENCRYPT, id);
	ck_assert_msg(km_job_run(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_job_info j;
	ck_assert_int_eq(km_job_get(ctx, id, &j, &e), KM_OK);
	ck_assert_int_eq(j.state, KM_JOB_DONE);
	ck_assert_uint_eq(j.done, 4);
	ck_assert_uint_eq(j.unreachable, 3);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM job_unreachable"), 3);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM job_unreachable WHERE why LIKE 'cannot open%'"), 1);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM job_unreachable WHERE path IS NULL"), 2);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 1"), 3);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(header_version(paths[i]), 2);
		ck_assert_msg(unprotect_file(ctx, paths[i], NULL, data[i], strlen(data[i]), &e) == KM_OK, "%s", e.msg);
	}
	struct stat after;
	ck_assert_int_eq(stat(paths[0], &after), 0);
	ck_assert(after.st_ino != before.st_ino); /* replaced, by rename */
	/* no temporary left behind */
	ck_assert_int_eq(system("ls -a \"$KEYWARD_HOME\" | grep -q kwtmp"), 256);

	/* The state a kill between rename and catalogue update leaves: the
	 * file under v3, the catalogue still under v2.  unprotect uses the
	 * header's wrap; the next run finishes only the catalogue. */
	char id2[KM_REQUEST_ID_MAX];
	rotate_queue(ctx, "datasets/d", KM_JOB_REENCRYPT, id2);
	sqlite3_stmt *q;
	ck_assert_int_eq(km_db_prepare(km_db(ctx), "SELECT wrapped_dek FROM assets WHERE path = ?", &q, &e), KM_OK);
	sqlite3_bind_text(q, 1, paths[1], -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	uint8_t old_wrap[KM_WRAPPED_DEK_BYTES];
	memcpy(old_wrap, sqlite3_column_blob(q, 0), sizeof old_wrap);
	sqlite3_finalize(q);
	ck_assert_msg(km_job_run(ctx, id2, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(header_version(paths[1]), 3);
	/* put the catalogue row back as it was before the step */
	ck_assert_int_eq(km_db_prepare(km_db(ctx), "UPDATE assets SET kek_version = 2, wrapped_dek = ? WHERE path = ?",
	                               &q, &e), KM_OK);
	sqlite3_bind_blob(q, 1, old_wrap, sizeof old_wrap, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, paths[1], -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	ck_assert_msg(unprotect_file(ctx, paths[1], NULL, data[1], strlen(data[1]), &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(stat(paths[1], &before), 0);
	char id3[KM_REQUEST_ID_MAX];
	queue(ctx, KM_JOB_REENCRYPT, "datasets/d", 2, 3, id3);
	ck_assert_msg(km_job_run(ctx, id3, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_job_get(ctx, id3, &j, &e), KM_OK);
	ck_assert_uint_eq(j.done, 1);
	ck_assert_uint_eq(j.unreachable, 0);
	ck_assert_int_eq(stat(paths[1], &after), 0);
	ck_assert(after.st_ino == before.st_ino); /* recognised, not rewritten */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets WHERE kek_version = 3"), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(unprotect_file(ctx, paths[i], NULL, data[i], strlen(data[i]), &e) == KM_OK, "%s", e.msg);
	int n = 0;
	ck_assert_int_eq(km_job_list(ctx, 0, count_jobs, &n, &e), KM_OK);
	ck_assert_int_eq(n, 3);
	/* The lineage followed each re-encrypted asset: one open interval a
	 * node, under the version the catalogue names, the old ones closed. */
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM lineage_protection p JOIN assets a ON a.id = p.asset_id "
	                            "WHERE p.valid_to = 9223372036854775807 AND p.kek_version <> a.kek_version"), 0);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM (SELECT 1 FROM lineage_protection WHERE "
	                            "valid_to = 9223372036854775807 GROUP BY asset_id, node HAVING count(*) > 1)"), 0);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets a WHERE NOT EXISTS (SELECT 1 FROM "
	                            "lineage_protection p WHERE p.asset_id = a.id AND "
	                            "p.valid_to = 9223372036854775807)"), 0);
	ck_assert_int_gt(count(ctx, "SELECT count(*) FROM lineage_protection WHERE kek_version = 3"), 0);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

/* ------------------------------------------------------ compromise */

START_TEST(compromised_version_needs_the_override)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "models/m", NULL, 0, &e), KM_OK);
	char path[400];
	snprintf(path, sizeof path, "%s/weights.kw", D.home);
	static const char data[] = "model weights";
	protect_file(ctx, "models/m", "model:weights@1", path, data, sizeof data);
	ck_assert_msg(th_set_state(&D, ctx, "models/m", 1, KS_COMPROMISED, &e) == KM_OK, "%s", e.msg);

	/* encryption under a compromised version: refused by the state table */
	ck_assert(!km_state_can_encrypt(KS_COMPROMISED));
	int in = memfd_create("in", 0), out = memfd_create("out", 0);
	ck_assert_int_eq(km_protect(ctx, "models/m", "model:weights@2", in, out, NULL, NULL, &e), KM_ESTATE);
	close(in);
	close(out);

	/* decryption: refused, naming the override */
	ck_assert_int_eq(unprotect_file(ctx, path, NULL, data, sizeof data, &e), KM_ESTATE);
	ck_assert_msg(strstr(e.msg, "--override-compromised") != NULL, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'unprotect' AND outcome = 'error'"),
	                 1);
	/* with the override: decrypted, and the event says so */
	km_unprotect_opts o = {.override_compromised = 1};
	ck_assert_msg(unprotect_file(ctx, path, &o, data, sizeof data, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'unprotect' AND outcome = 'ok' "
	                            "AND json LIKE '%\"override\":\"compromised\"%'"), 1);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("job");
	TCase *t = tcase_create("job");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, rewrap_moves_every_asset_once);
	tcase_add_test(t, rewrap_rerun_is_idempotent);
	tcase_add_test(t, rewrap_lineage_follows_what_moved);
	tcase_add_test(t, a_run_that_ended_holds_nothing_here);
	tcase_add_test(t, a_run_under_way_here_honours_a_pause);
	tcase_add_test(t, two_runners_one_wins);
	tcase_add_test(t, pause_and_resume);
	tcase_add_test(t, tampered_job_row_is_refused);
	tcase_add_test(t, reencrypt_files_and_list_the_unreachable);
	tcase_add_test(t, compromised_version_needs_the_override);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
