/*
 * job.c — persistent rewrap and re-encryption jobs (job.h).
 *
 * A job is one sealed row of `jobs` (rowmac.h): every change to it is
 * re-sealed and noted ("sealed") in the audit event of its transaction,
 * and every decision (claim, pause, batch, cancel) loads it through its
 * seal, so an edited row is refused and a replayed one is caught by
 * `audit verify`.
 *
 * Why a run is safe against kill -9 at any point:
 *   - the claim is one transaction: state running, the holder (user, pid,
 *     the pid's start time, host) and a lease; a second runner sees a live
 *     holder and gets KM_EBUSY.  A holder is dead when its lease expired,
 *     or, on this host, when its pid is gone or belongs to another process
 *     (start time differs): a killed run is resumed at once, without
 *     waiting for the lease.  A holder that is this very process (the
 *     console runs jobs on a worker thread and lives on after the run) is
 *     alive only while a km_job_run of that job is under way here
 *     (running_*): a run that ended without letting go of its claim is
 *     not mistaken for one that still honours a pause;
 *   - rewrap: each batch (job_batch assets) is one transaction: the
 *     assets' new wraps, the wrap counter of the new version, the per-
 *     version asset counts, the cursor and the job's counts, and one
 *     "job.batch" audit event.  A kill loses at most the batch in flight,
 *     which the next run redoes from the cursor; assets already moved are
 *     no longer under the old version, so nothing is done twice;
 *   - re-encryption: see reencrypt_one() for the order of file and
 *     catalogue steps and why each crash point is recoverable.
 */
#include "job.h"
#include "job_int.h"
#include "lineage_int.h"
#include "lifecycle.h"
#include "asset.h"
#include "atomicfile.h"
#include "caller.h"
#include "db.h"
#include "envelope.h"
#include "kek.h"
#include "kek_int.h"
#include "rowmac.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Seconds a claim holds without renewal.  Every batch renews it; a holder
 * on another host is trusted until it runs out. */
#define JOB_LEASE_S 120
#define JOB_BUSY_TRIES 4 /* busy timeouts (15 s each) a batch waits before the run gives up */
/* Files a re-encryption takes per step of the run loop: one, so that
 * progress, pause requests and the lease are looked at between files
 * (each file takes tens of milliseconds and two commits anyway). */
#define REENCRYPT_FETCH 1

static const char *const kind_names[] = {
#define JK_NAME(e, name) name,
	KM_JOB_KINDS(JK_NAME)
#undef JK_NAME
};
static const char *const state_names[] = {
#define JS_NAME(e, name) name,
	KM_JOB_STATES(JS_NAME)
#undef JS_NAME
};

const char *km_job_kind_name(km_job_kind k)
{
	return (unsigned)k < KM_JOB_KIND_COUNT ? kind_names[k] : "?";
}

const char *km_job_state_name(km_job_state s)
{
	return (unsigned)s < KM_JOB_STATE_COUNT ? state_names[s] : "?";
}

static int name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* ---- the sealed row ---------------------------------------------------- */

typedef struct job_row {
	char id[KM_REQUEST_ID_MAX];
	km_job_kind kind;
	km_job_state state;
	int64_t key_id;
	char key[KM_KEY_NAME_MAX + 1];
	uint32_t from_version, to_version;
	char request_id[KM_REQUEST_ID_MAX];
	int64_t cursor;
	uint64_t total, done, unreachable;
	int pause;
	char holder[96];
	char holder_host[64];
	int64_t holder_pid, holder_start, lease_until;
	int64_t created, started, updated, finished, run_started, run_done;
	char error[256];
} job_row;

#define JOB_COLS "j.id, j.kind, k.name, j.from_version, j.to_version, j.request_id, j.state, j.cursor, " \
	"j.total, j.done, j.unreachable, j.pause, j.holder, j.holder_host, j.holder_pid, j.holder_start, " \
	"j.lease_until, j.created, j.started, j.updated, j.finished, j.run_started, j.run_done, j.error, " \
	"j.mac, j.key_id"
#define JOB_FROM " FROM jobs j JOIN keys k ON k.id = j.key_id "
#define JOB_MAC_COL 24

static const char *col_text(sqlite3_stmt *q, int i)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	return t ? (const char *)t : "";
}

/* The sealed fields, in one order, from a row struct: the key's name (not
 * its id) so that swapping key names breaks the seal, as for versions. */
static json_t *job_fields_of(const job_row *r)
{
	json_t *f = json_pack("[s,s,s,I,I,s,s,I,I,I,I,i,s,s,I,I,I,I,I,I,I,I,I,s]", r->id,
	                      km_job_kind_name(r->kind), r->key, (json_int_t)r->from_version,
	                      (json_int_t)r->to_version, r->request_id, km_job_state_name(r->state),
	                      (json_int_t)r->cursor, (json_int_t)r->total, (json_int_t)r->done,
	                      (json_int_t)r->unreachable, r->pause, r->holder, r->holder_host,
	                      (json_int_t)r->holder_pid, (json_int_t)r->holder_start, (json_int_t)r->lease_until,
	                      (json_int_t)r->created, (json_int_t)r->started, (json_int_t)r->updated,
	                      (json_int_t)r->finished, (json_int_t)r->run_started, (json_int_t)r->run_done,
	                      r->error);
	return f;
}

/* Fill *r from a JOB_COLS row.  Unknown kind or state names: -1 (the
 * seal then fails, as the text was not written by keyward). */
static int job_row_read(sqlite3_stmt *q, job_row *r)
{
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", col_text(q, 0));
	int k = name_index(kind_names, KM_JOB_KIND_COUNT, col_text(q, 1));
	snprintf(r->key, sizeof r->key, "%s", col_text(q, 2));
	r->from_version = (uint32_t)sqlite3_column_int64(q, 3);
	r->to_version = (uint32_t)sqlite3_column_int64(q, 4);
	snprintf(r->request_id, sizeof r->request_id, "%s", col_text(q, 5));
	int s = name_index(state_names, KM_JOB_STATE_COUNT, col_text(q, 6));
	r->cursor = sqlite3_column_int64(q, 7);
	r->total = (uint64_t)sqlite3_column_int64(q, 8);
	r->done = (uint64_t)sqlite3_column_int64(q, 9);
	r->unreachable = (uint64_t)sqlite3_column_int64(q, 10);
	r->pause = sqlite3_column_int(q, 11);
	snprintf(r->holder, sizeof r->holder, "%s", col_text(q, 12));
	snprintf(r->holder_host, sizeof r->holder_host, "%s", col_text(q, 13));
	r->holder_pid = sqlite3_column_int64(q, 14);
	r->holder_start = sqlite3_column_int64(q, 15);
	r->lease_until = sqlite3_column_int64(q, 16);
	r->created = sqlite3_column_int64(q, 17);
	r->started = sqlite3_column_int64(q, 18);
	r->updated = sqlite3_column_int64(q, 19);
	r->finished = sqlite3_column_int64(q, 20);
	r->run_started = sqlite3_column_int64(q, 21);
	r->run_done = sqlite3_column_int64(q, 22);
	snprintf(r->error, sizeof r->error, "%s", col_text(q, 23));
	r->key_id = sqlite3_column_int64(q, 25);
	r->kind = k < 0 ? KM_JOB_REWRAP : (km_job_kind)k;
	r->state = s < 0 ? KM_JOB_FAILED : (km_job_state)s;
	return (k < 0 || s < 0) ? -1 : 0;
}

/* The fields straight from the stored text, so that a row edited to an
 * unknown state name still fails its seal (and is never "repaired" by
 * reading it into the struct). */
static json_t *job_fields(sqlite3_stmt *q)
{
	job_row r;
	job_row_read(q, &r);
	json_t *f = job_fields_of(&r);
	if (f) {
		json_array_set_new(f, 1, json_string(col_text(q, 1)));
		json_array_set_new(f, 6, json_string(col_text(q, 6)));
	}
	return f;
}

static void job_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s'", col_text(q, 0));
}

static void job_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", col_text(q, 0));
}

km_status job_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                          char *problem, size_t cap, km_err *e)
{
	static const km_rowmac_table t = {
		"jobs", "SELECT " JOB_COLS JOB_FROM "ORDER BY j.created, j.id", job_fields, job_name, JOB_MAC_COL,
		job_key, job_fields,
	};
	return km_rowmac_scan(ctx, &t, recorded, checked, bad, problem, cap, e);
}

/* Load a job through its seal: KM_ENOTFOUND, or KM_EINTEGRITY naming it. */
static km_status job_load(km_ctx *ctx, const char *id, job_row *r, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT " JOB_COLS JOB_FROM "WHERE j.id = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		char what[KM_REQUEST_ID_MAX + 4];
		snprintf(what, sizeof what, "'%s'", id);
		int bad_names = job_row_read(q, r);
		st = km_rowmac_check(ctx, "jobs", what, job_fields(q), sqlite3_column_blob(q, JOB_MAC_COL),
		                     (size_t)sqlite3_column_bytes(q, JOB_MAC_COL), e);
		if (!st && bad_names)
			st = km_fail(e, KM_EINTEGRITY, "the jobs row %s holds an unknown kind or state", what);
	} else if (rc == SQLITE_DONE) {
		st = km_fail(e, KM_ENOTFOUND, "no job '%s' (`keyward job list --all` lists them)", id);
	} else {
		st = km_db_fail(ctx->db, e, "reading jobs");
	}
	sqlite3_finalize(q);
	return st;
}

/* Write the row with a fresh seal, inside the caller's transaction, and
 * note its digest in details (the event of that transaction). */
static km_status job_save(km_ctx *ctx, const job_row *r, json_t *details, km_err *e)
{
	json_t *f = job_fields_of(r);
	if (!f)
		return km_fail(e, KM_EINTERNAL, "cannot build the jobs row for %s", r->id);
	char digest[65];
	km_rowmac_digest(ctx, "jobs", f, digest);
	km_sealed_note(details, "jobs", r->id, digest);
	uint8_t mac[KM_ROWMAC_BYTES];
	km_status st = km_rowmac(ctx, "jobs", f, mac, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "INSERT OR REPLACE INTO jobs(id, kind, key_id, from_version, to_version, "
	                        "request_id, state, cursor, total, done, unreachable, pause, holder, holder_host, "
	                        "holder_pid, holder_start, lease_until, created, started, updated, finished, "
	                        "run_started, run_done, error, mac) "
	                        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &q, e)))
		return st;
	int i = 1;
	sqlite3_bind_text(q, i++, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, i++, km_job_kind_name(r->kind), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, i++, r->key_id);
	sqlite3_bind_int64(q, i++, r->from_version);
	sqlite3_bind_int64(q, i++, r->to_version);
	sqlite3_bind_text(q, i++, r->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, i++, km_job_state_name(r->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, i++, r->cursor);
	sqlite3_bind_int64(q, i++, (int64_t)r->total);
	sqlite3_bind_int64(q, i++, (int64_t)r->done);
	sqlite3_bind_int64(q, i++, (int64_t)r->unreachable);
	sqlite3_bind_int(q, i++, r->pause);
	sqlite3_bind_text(q, i++, r->holder, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, i++, r->holder_host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, i++, r->holder_pid);
	sqlite3_bind_int64(q, i++, r->holder_start);
	sqlite3_bind_int64(q, i++, r->lease_until);
	sqlite3_bind_int64(q, i++, r->created);
	sqlite3_bind_int64(q, i++, r->started);
	sqlite3_bind_int64(q, i++, r->updated);
	sqlite3_bind_int64(q, i++, r->finished);
	sqlite3_bind_int64(q, i++, r->run_started);
	sqlite3_bind_int64(q, i++, r->run_done);
	sqlite3_bind_text(q, i++, r->error, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, i++, mac, sizeof mac, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "writing the job");
	sqlite3_finalize(q);
	return st;
}

/* ---- who holds a job --------------------------------------------------- */

/* A process's start time (clock ticks after boot, /proc/PID/stat field
 * 22), so that a pid reused by another process is not taken for the
 * holder.  0 when unknown. */
static int64_t proc_start_time(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ")": state is field 3; start time is field 22. */
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return field == 22 ? strtoll(p, NULL, 10) : 0;
}

static void host_name(char *buf, size_t cap)
{
	if (gethostname(buf, cap) != 0)
		snprintf(buf, cap, "unknown");
	buf[cap - 1] = '\0';
}

/* The jobs this process is running now (km_job_run between its claim and
 * its return), for holder_alive.  A handful at most: a fixed table. */
static pthread_mutex_t running_mu = PTHREAD_MUTEX_INITIALIZER;
static char running_ids[16][KM_REQUEST_ID_MAX];

static void running_set(const char *id, int on)
{
	pthread_mutex_lock(&running_mu);
	for (size_t i = 0; i < KM_ARRAY_LEN(running_ids); i++) {
		if (on ? running_ids[i][0] == '\0' : strcmp(running_ids[i], id) == 0) {
			if (on)
				snprintf(running_ids[i], sizeof running_ids[i], "%s", id);
			else
				running_ids[i][0] = '\0';
			break;
		}
	}
	pthread_mutex_unlock(&running_mu);
}

static int running_here(const char *id)
{
	int found = 0;
	pthread_mutex_lock(&running_mu);
	for (size_t i = 0; i < KM_ARRAY_LEN(running_ids) && !found; i++)
		found = strcmp(running_ids[i], id) == 0;
	pthread_mutex_unlock(&running_mu);
	return found;
}

static int holder_is_me(const job_row *r)
{
	char host[64];
	host_name(host, sizeof host);
	return r->holder[0] && r->holder_pid == (int64_t)getpid() && strcmp(r->holder_host, host) == 0 &&
	       r->holder_start == proc_start_time((long)getpid());
}

/* Does someone hold the job now?  A lease that ran out holds nothing; on
 * this host, neither does a pid that is gone or was reused. */
static int holder_alive(km_ctx *ctx, const job_row *r)
{
	if (!r->holder[0] || r->lease_until <= km_ctx_now(ctx))
		return 0;
	char host[64];
	host_name(host, sizeof host);
	if (strcmp(r->holder_host, host) != 0)
		return 1;
	if (r->holder_pid <= 0 || (kill((pid_t)r->holder_pid, 0) != 0 && errno == ESRCH))
		return 0;
	if (proc_start_time((long)r->holder_pid) != r->holder_start)
		return 0;
	return holder_is_me(r) ? running_here(r->id) : 1;
}

static void holder_clear(job_row *r)
{
	r->holder[0] = r->holder_host[0] = '\0';
	r->holder_pid = r->holder_start = r->lease_until = 0;
}

static void holder_set(km_ctx *ctx, job_row *r)
{
	host_name(r->holder_host, sizeof r->holder_host);
	r->holder_pid = (int64_t)getpid();
	r->holder_start = proc_start_time((long)getpid());
	snprintf(r->holder, sizeof r->holder, "%.40s pid %ld on %.32s", ctx->actor.name, (long)getpid(),
	         r->holder_host);
	r->lease_until = km_ctx_now(ctx) + JOB_LEASE_S;
}

static void job_object(char *buf, size_t cap, const char *id)
{
	snprintf(buf, cap, "job:%s", id ? id : "");
}

static json_t *job_details(const job_row *r)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I}", "job", r->id, "kind", km_job_kind_name(r->kind), "key_name", r->key,
	                 "from_version", (json_int_t)r->from_version, "to_version", (json_int_t)r->to_version);
}

/* One transaction: change the row as `change` says, seal it, one event. */
typedef km_status (*job_change_fn)(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e);

static km_status job_tx(km_ctx *ctx, const char *id, const char *action, job_change_fn change, void *c,
                        job_row *out, km_err *e)
{
	km_status st = km_tx_begin(ctx, e);
	if (st)
		return st;
	job_row r;
	json_t *d = NULL;
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	st = job_load(ctx, id, &r, e);
	if (!st) {
		d = job_details(&r);
		st = change(ctx, &r, d, c, e);
	}
	if (!st) {
		r.updated = km_ctx_now(ctx);
		st = job_save(ctx, &r, d, e);
	}
	if (!st) {
		json_object_set_new(d, "state", json_string(km_job_state_name(r.state)));
		st = km_tx_audit(ctx, action, obj, "ok", d, e);
		d = NULL;
	}
	json_decref(d);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	if ((st = km_tx_commit(ctx, e)))
		return st;
	if (out)
		*out = r;
	return KM_OK;
}

/* ---- queueing ---------------------------------------------------------- */

static km_status count_remaining(km_ctx *ctx, const job_row *r, uint64_t *n, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT count(*) FROM assets WHERE key_id = ? AND kek_version = ? "
	                             "AND id > ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, r->key_id);
	sqlite3_bind_int64(q, 2, r->from_version);
	sqlite3_bind_int64(q, 3, r->cursor);
	if (sqlite3_step(q) == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(q, 0);
	else
		st = km_db_fail(ctx->db, e, "counting assets");
	sqlite3_finalize(q);
	return st;
}

km_status job_queue(km_ctx *ctx, km_job_kind kind, int64_t key_id, uint32_t from_version,
                    uint32_t to_version, const char *request_id, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	if ((unsigned)kind >= KM_JOB_KIND_COUNT || from_version == 0 || to_version == 0 ||
	    from_version == to_version)
		return km_fail(e, KM_EUSAGE, "a job moves assets from one version to another (got %u -> %u)",
		               from_version, to_version);
	job_row r;
	memset(&r, 0, sizeof r);
	char hex[13];
	km_status st = km_random_hex(hex, 6, e);
	if (st)
		return st;
	snprintf(r.id, sizeof r.id, "job-%s", hex);
	r.kind = kind;
	r.state = KM_JOB_QUEUED;
	r.key_id = key_id;
	r.from_version = from_version;
	r.to_version = to_version;
	snprintf(r.request_id, sizeof r.request_id, "%s", request_id ? request_id : "");
	r.created = r.updated = km_ctx_now(ctx);
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT name FROM keys WHERE id = ?", &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	if (sqlite3_step(q) == SQLITE_ROW)
		snprintf(r.key, sizeof r.key, "%s", col_text(q, 0));
	else
		st = km_fail(e, KM_ENOTFOUND, "no key with id %lld", (long long)key_id);
	sqlite3_finalize(q);
	if (!st)
		st = count_remaining(ctx, &r, &r.total, e);
	json_t *d = job_details(&r);
	json_object_set_new(d, "total", json_integer((json_int_t)r.total));
	if (r.request_id[0])
		json_object_set_new(d, "request", json_string(r.request_id));
	if (!st)
		st = job_save(ctx, &r, d, e);
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, r.id);
	if (!st)
		st = km_tx_audit(ctx, "job.queue", obj, "ok", d, e);
	else
		json_decref(d);
	if (!st)
		snprintf(id, KM_REQUEST_ID_MAX, "%s", r.id);
	return st;
}

/* ---- claiming ---------------------------------------------------------- */

static km_status claim_change(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e)
{
	int *already_done = c;
	switch (r->state) {
	case KM_JOB_DONE:
		*already_done = 1;
		return km_fail(e, KM_ESTATE, "job %s is done", r->id);
	case KM_JOB_CANCELLED:
		return km_fail(e, KM_ESTATE, "job %s was cancelled; the assets it had not moved stay under "
		               "version %u (queue a new job to move them)", r->id, r->from_version);
	default:
		break;
	}
	if (holder_alive(ctx, r)) {
		char until[32];
		km_time_format(r->lease_until, until);
		return km_fail(e, KM_EBUSY, "job %s is being run by %s (lease until %s); wait for it, or "
		               "`keyward job pause %s`", r->id, r->holder, until, r->id);
	}
	if (r->holder[0])
		json_object_set_new(d, "previous_holder", json_string(r->holder)); /* a killed run */
	uint64_t left;
	km_status st = count_remaining(ctx, r, &left, e);
	if (st)
		return st;
	int64_t now = km_ctx_now(ctx);
	r->total = r->done + r->unreachable + left;
	r->state = KM_JOB_RUNNING;
	r->pause = 0;
	r->error[0] = '\0';
	if (!r->started)
		r->started = now;
	r->run_started = now;
	r->run_done = (int64_t)r->done;
	holder_set(ctx, r);
	json_object_set_new(d, "holder", json_string(r->holder));
	json_object_set_new(d, "cursor", json_integer(r->cursor));
	json_object_set_new(d, "total", json_integer((json_int_t)r->total));
	return KM_OK;
}

/* ---- one batch --------------------------------------------------------- */

typedef struct batch_asset {
	int64_t id;
	char uid[KM_ASSET_UID_LEN + 1];
	char kind[KM_ASSET_KIND_MAX + 1];
	char name[KM_ASSET_NAME_MAX + 1];
	char version[KM_ASSET_VERSION_MAX + 1];
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	int wrapped_ok;
	int lost; /* rewrap: left under the old version (unreachable) */
	char *path; /* malloc'd, NULL when none */
} batch_asset;

static void batch_free(batch_asset *b, size_t n)
{
	for (size_t i = 0; b && i < n; i++)
		free(b[i].path);
	free(b);
}

/* The next up to `limit` assets under the old version after the cursor. */
static km_status batch_read(km_ctx *ctx, const job_row *r, size_t limit, batch_asset **out, size_t *n,
                            km_err *e)
{
	*out = NULL;
	*n = 0;
	batch_asset *b = calloc(limit, sizeof *b);
	if (!b)
		return km_fail(e, KM_ENOMEM, "out of memory for a batch of %zu assets", limit);
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT id, uid, kind, name, version, wrapped_dek, path FROM assets "
	                             "WHERE key_id = ? AND kek_version = ? AND id > ? ORDER BY id LIMIT ?", &q, e);
	if (st) {
		free(b);
		return st;
	}
	sqlite3_bind_int64(q, 1, r->key_id);
	sqlite3_bind_int64(q, 2, r->from_version);
	sqlite3_bind_int64(q, 3, r->cursor);
	sqlite3_bind_int64(q, 4, (int64_t)limit);
	int rc;
	size_t i = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && i < limit) {
		batch_asset *a = &b[i++];
		a->id = sqlite3_column_int64(q, 0);
		snprintf(a->uid, sizeof a->uid, "%s", col_text(q, 1));
		snprintf(a->kind, sizeof a->kind, "%s", col_text(q, 2));
		snprintf(a->name, sizeof a->name, "%s", col_text(q, 3));
		snprintf(a->version, sizeof a->version, "%s", col_text(q, 4));
		if (sqlite3_column_bytes(q, 5) == KM_WRAPPED_DEK_BYTES) {
			memcpy(a->wrapped, sqlite3_column_blob(q, 5), KM_WRAPPED_DEK_BYTES);
			a->wrapped_ok = 1;
		}
		if (sqlite3_column_type(q, 6) != SQLITE_NULL && !(a->path = strdup(col_text(q, 6))))
			rc = SQLITE_NOMEM;
		if (rc == SQLITE_NOMEM)
			break;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		st = km_db_fail(ctx->db, e, "reading the assets to move");
	sqlite3_finalize(q);
	if (st) {
		batch_free(b, i);
		return st;
	}
	*out = b;
	*n = i;
	return KM_OK;
}

static km_status unreachable_add(km_ctx *ctx, const job_row *r, const batch_asset *a, const char *why,
                                 km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "INSERT OR REPLACE INTO job_unreachable(job_id, asset_id, path, why) "
	                             "VALUES(?, ?, ?, ?)", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, a->id);
	if (a->path)
		sqlite3_bind_text(q, 3, a->path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 3);
	sqlite3_bind_text(q, 4, why, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "recording an unreachable asset");
	sqlite3_finalize(q);
	return st;
}

/* Count n wraps on the new version, through its seal, refused past the
 * bound or once the version can no longer encrypt.  In the caller's
 * transaction. */
static km_status count_wraps(km_ctx *ctx, const job_row *r, uint64_t n, kek_version_row *to, km_err *e)
{
	km_status st = kek_version_load(ctx, r->key, r->to_version, to, e);
	if (st)
		return st;
	if (!km_state_can_encrypt(to->state))
		return km_fail(e, KM_ESTATE, "version %u of key '%s' is %s now: a job can no longer move assets "
		               "to it (queue one to the active version)", r->to_version, r->key,
		               km_state_name(to->state));
	if (n == 0)
		return KM_OK;
	if (to->wraps + n > ctx->cfg.kek_max_wraps)
		return km_fail(e, KM_ELIMIT, "version %u of key '%s' would wrap more than %llu data keys "
		               "(kek_max_wraps): rotate the key", r->to_version, r->key,
		               (unsigned long long)ctx->cfg.kek_max_wraps);
	char sql[160];
	snprintf(sql, sizeof sql, "UPDATE key_versions SET wraps = wraps + %llu WHERE key_id = %lld AND version = %u",
	         (unsigned long long)n, (long long)r->key_id, r->to_version);
	if ((st = km_db_exec(ctx->db, sql, e)))
		return st;
	return kek_version_seal(ctx, r->key_id, r->to_version, NULL, e);
}

/* Per-version asset counts and the key's summary after n assets moved. */
static km_status move_counts(km_ctx *ctx, const job_row *r, uint64_t n, km_err *e)
{
	if (n == 0)
		return KM_OK;
	char sql[200];
	snprintf(sql, sizeof sql, "UPDATE key_versions SET assets = assets + CASE version WHEN %u THEN -%llu "
	         "ELSE %llu END WHERE key_id = %lld AND version IN (%u, %u)", r->from_version,
	         (unsigned long long)n, (unsigned long long)n, (long long)r->key_id, r->from_version,
	         r->to_version);
	km_status st = km_db_exec(ctx->db, sql, e);
	return st ? st : kek_summary_refresh(ctx, r->key_id, e);
}

static km_status set_asset(sqlite3_stmt *up, const job_row *r, int64_t id, const uint8_t *wrapped, km_ctx *ctx,
                           km_err *e)
{
	sqlite3_reset(up);
	sqlite3_bind_blob(up, 1, wrapped, KM_WRAPPED_DEK_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(up, 2, r->to_version);
	sqlite3_bind_int64(up, 3, id);
	sqlite3_bind_int64(up, 4, r->from_version);
	if (sqlite3_step(up) != SQLITE_DONE)
		return km_db_fail(ctx->db, e, "updating an asset");
	if (sqlite3_changes(ctx->db) != 1)
		return km_fail(e, KM_EBUSY, "asset %lld changed while the job ran; run it again", (long long)id);
	return KM_OK;
}

#define SET_ASSET_SQL "UPDATE assets SET wrapped_dek = ?, kek_version = ? WHERE id = ? AND kek_version = ?"

/* The start of every batch transaction: the job through its seal, still
 * ours, not asked to pause. */
static km_status batch_begin(km_ctx *ctx, const char *id, job_row *r, int *paused, km_err *e)
{
	/* A long run meets other writers (every command's session records
	 * its login): a spell of them that outlasts one busy timeout is no
	 * reason to give up the run; a few are (the lease is 120 s). */
	km_status st = km_tx_begin(ctx, e);
	for (int tries = 1; st == KM_EBUSY && tries < JOB_BUSY_TRIES; tries++)
		st = km_tx_begin(ctx, e);
	if (st)
		return st;
	if ((st = job_load(ctx, id, r, e)))
		goto fail;
	if (r->state != KM_JOB_RUNNING || !holder_is_me(r)) {
		st = km_fail(e, KM_EBUSY, "job %s is no longer held by this run (%s%s): it stopped here",
		             id, r->holder[0] ? "now held by " : "state ", r->holder[0] ? r->holder :
		             km_job_state_name(r->state));
		goto fail;
	}
	if (r->pause) {
		*paused = 1;
		r->state = KM_JOB_PAUSED;
		r->pause = 0;
		holder_clear(r);
	}
	return KM_OK;
fail:
	km_tx_rollback(ctx);
	return st;
}

/* End of a batch transaction: the row saved, one event, commit. */
static km_status batch_commit(km_ctx *ctx, job_row *r, const char *action, json_t *d, km_err *e)
{
	r->updated = km_ctx_now(ctx);
	if (r->state == KM_JOB_RUNNING)
		r->lease_until = r->updated + JOB_LEASE_S;
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, r->id);
	km_status st = job_save(ctx, r, d, e);
	if (!st) {
		json_object_set_new(d, "state", json_string(km_job_state_name(r->state)));
		json_object_set_new(d, "done", json_integer((json_int_t)r->done));
		st = km_tx_audit(ctx, action, obj, "ok", d, e);
		d = NULL;
	}
	json_decref(d);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

/* Rewrap one batch: every DEK unwrapped under the old version and
 * wrapped under the new one with the same identity, in one transaction
 * with the cursor, counts and one event.  *more = 0 when nothing was
 * left. */
static km_status rewrap_batch(km_ctx *ctx, const char *id, int *more, int *paused, km_err *e)
{
	job_row r;
	*more = 0;
	km_status st = batch_begin(ctx, id, &r, paused, e);
	if (st)
		return st;
	if (*paused)
		return batch_commit(ctx, &r, "job.pause", job_details(&r), e);
	size_t limit = ctx->cfg.job_batch ? ctx->cfg.job_batch : 20000, n = 0;
	batch_asset *b = NULL;
	dek_ctx *from = NULL, *to = NULL;
	uint8_t *dek = NULL, wrapped[KM_WRAPPED_DEK_BYTES];
	sqlite3_stmt *up = NULL;
	json_t *d = job_details(&r), *bad = json_array();
	uint64_t moved = 0, lost = 0;
	kek_version_row fromrow, torow;
	const uint8_t *kek;
	if ((st = batch_read(ctx, &r, limit, &b, &n, e)))
		goto out;
	if (n == 0) {
		r.state = KM_JOB_DONE;
		r.finished = km_ctx_now(ctx);
		holder_clear(&r);
		st = batch_commit(ctx, &r, "job.done", d, e);
		d = NULL;
		goto out_committed;
	}
	*more = 1;
	/* Keys: the old version must still decrypt; the new one is counted
	 * for every wrap before any commit (never undercounted). */
	if ((st = kek_version_load(ctx, r.key, r.from_version, &fromrow, e)))
		goto out;
	if (!km_state_can_decrypt(fromrow.state)) {
		st = km_fail(e, KM_ESTATE, "version %u of key '%s' is %s: its assets can no longer be moved",
		             r.from_version, r.key, km_state_name(fromrow.state));
		goto out;
	}
	if ((st = count_wraps(ctx, &r, n, &torow, e)) ||
	    (st = kek_material(ctx, &fromrow, &kek, e)) || (st = dek_ctx_new(kek, &from, e)) ||
	    (st = kek_material(ctx, &torow, &kek, e)) || (st = dek_ctx_new(kek, &to, e)))
		goto out;
	if (!(dek = km_secure_alloc(KM_DEK_BYTES))) {
		st = km_fail(e, KM_ENOMEM, "locked memory exhausted");
		goto out;
	}
	if ((st = km_db_prepare(ctx->db, SET_ASSET_SQL, &up, e)))
		goto out;
	/* The lineage's protection intervals follow set-wise below (no
	 * trigger watches kek_version: db.c, v11). */
	for (size_t i = 0; i < n && !st; i++) {
		batch_asset *a = &b[i];
		km_asset_ref ref = {a->uid, a->kind, a->name, a->version, r.key, r.from_version};
		km_err ae;
		km_status as = a->wrapped_ok ? dek_ctx_unwrap(from, a->wrapped, &ref, dek, &ae)
		                             : km_fail(&ae, KM_EINTEGRITY, "the wrapped data key is malformed");
		if (as == KM_EINTEGRITY || as == KM_EINVAL) {
			/* Listed, never skipped silently: this DEK stays where
			 * it is, and the job says so. */
			st = unreachable_add(ctx, &r, a, ae.msg, e);
			json_array_append_new(bad, json_integer(a->id));
			a->lost = 1;
			lost++;
			continue;
		}
		if (as) {
			*e = ae;
			st = as;
			break;
		}
		ref.kek_version = r.to_version;
		if (!(st = dek_ctx_wrap(to, dek, &ref, wrapped, e)))
			st = set_asset(up, &r, a->id, wrapped, ctx, e);
		if (!st)
			moved++;
	}
	OPENSSL_cleanse(wrapped, sizeof wrapped);
	if (st)
		goto out;
	if ((st = move_counts(ctx, &r, moved, e)))
		goto out;
	/* The lineage follows per run of moved assets: an asset left behind
	 * (listed unreachable) keeps its interval under the old version. */
	for (size_t i = 0; i < n && !st;) {
		while (i < n && b[i].lost)
			i++;
		size_t j = i;
		while (j < n && !b[j].lost)
			j++;
		if (j > i)
			st = lineage_rewrapped(ctx, r.key_id, r.from_version, r.to_version, b[i].id, b[j - 1].id, e);
		i = j;
	}
	if (st)
		goto out;
	json_object_set_new(d, "first_asset", json_integer(b[0].id));
	json_object_set_new(d, "last_asset", json_integer(b[n - 1].id));
	json_object_set_new(d, "count", json_integer((json_int_t)moved));
	if (lost)
		json_object_set_new(d, "unreachable", json_incref(bad));
	r.cursor = b[n - 1].id;
	r.done += moved;
	r.unreachable += lost;
	st = batch_commit(ctx, &r, "job.batch", d, e);
	d = NULL;
	goto out_committed;
out:
	km_tx_rollback(ctx);
out_committed:
	sqlite3_finalize(up);
	km_secure_free(dek, KM_DEK_BYTES);
	dek_ctx_free(from);
	dek_ctx_free(to);
	batch_free(b, n);
	json_decref(d);
	json_decref(bad);
	return st;
}

/* The rewrap's UPDATEs keep each row's key_id and set kek_version to the
 * version whose row the batch has just loaded through its seal
 * (count_wraps, in the same transaction), so the catalogue's foreign key
 * (assets -> key_versions) holds by construction.  SQLite's own check of
 * it costs more than the rest of the UPDATE (measured on 100,000 rows:
 * 5 us a row without it, 20 us with it), so it is switched off around the
 * batch's transaction only (the pragma cannot change inside one) and
 * back on whatever happens. */
static km_status rewrap_batch_unchecked(km_ctx *ctx, const char *id, int *more, int *paused, km_err *e)
{
	km_status st = km_db_exec(ctx->db, "PRAGMA foreign_keys = OFF", e);
	if (st)
		return st;
	st = rewrap_batch(ctx, id, more, paused, e);
	km_err fe;
	km_status fs = km_db_exec(ctx->db, "PRAGMA foreign_keys = ON", &fe);
	if (!st && fs) {
		*e = fe;
		st = fs;
	}
	return st;
}

/* ---- re-encryption ----------------------------------------------------- */

/* Plaintext flows decrypt -> pipe -> (hash) -> pipe -> encrypt in memory
 * only, never to disk.  Each producer runs in a thread with SIGPIPE
 * blocked, so a consumer that fails makes it stop with EPIPE rather than
 * kill the process. */
typedef struct pass_thread {
	int in_fd, out_fd;
	const envelope_header *h;
	const uint8_t *dek;
	km_status st;
	km_err e;
} pass_thread;

static void block_sigpipe(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void *decrypt_thread(void *p)
{
	pass_thread *t = p;
	block_sigpipe();
	t->st = envelope_decrypt(t->in_fd, t->out_fd, t->h, t->dek, NULL, &t->e);
	close(t->out_fd);
	return NULL;
}

typedef struct tee_thread {
	int in_fd, out_fd; /* out_fd -1: only hash */
	uint8_t digest[32];
	int ok;
} tee_thread;

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void tee_loop(tee_thread *t)
{
	enum { CHUNK = 65536 };
	uint8_t *buf = malloc(CHUNK);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	t->ok = buf && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	while (t->ok) {
		ssize_t n = read(t->in_fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			t->ok = 0;
		if (n <= 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1 ||
		    (t->out_fd >= 0 && write_all(t->out_fd, buf, (size_t)n) != 0))
			t->ok = 0;
	}
	unsigned int len = 0;
	if (t->ok && (EVP_DigestFinal_ex(md, t->digest, &len) != 1 || len != 32))
		t->ok = 0;
	if (buf) {
		OPENSSL_cleanse(buf, CHUNK);
		free(buf);
	}
	EVP_MD_CTX_free(md);
	if (t->out_fd >= 0)
		close(t->out_fd);
	/* Drain, so a producer blocked on a full pipe can finish. */
	char sink[4096];
	while (read(t->in_fd, sink, sizeof sink) > 0)
		;
	OPENSSL_cleanse(sink, sizeof sink);
}

static void *tee_thread_main(void *p)
{
	block_sigpipe();
	tee_loop(p);
	return NULL;
}

/* Decrypt the rest of in_fd (after its header) and hash the plaintext.
 * With enc_out >= 0, also encrypt that plaintext under (nh, ndek) to
 * enc_out.  One pass; the digest is SHA-256 of the plaintext. */
static km_status transform(int in_fd, const envelope_header *h, const uint8_t *dek, int enc_out,
                           const envelope_header *nh, const uint8_t *ndek, uint8_t digest[32], km_err *e)
{
	int p1[2] = {-1, -1}, p2[2] = {-1, -1};
	if (pipe2(p1, O_CLOEXEC) != 0 || (enc_out >= 0 && pipe2(p2, O_CLOEXEC) != 0)) {
		int err = errno;
		if (p1[0] >= 0) {
			close(p1[0]);
			close(p1[1]);
		}
		return km_fail(e, KM_EIO, "cannot make a pipe: %s", strerror(err));
	}
	pass_thread dt = {in_fd, p1[1], h, dek, KM_OK, {0}};
	tee_thread tt = {p1[0], enc_out >= 0 ? p2[1] : -1, {0}, 0};
	pthread_t td, tth;
	int have_tee = 0;
	if (pthread_create(&td, NULL, decrypt_thread, &dt) != 0) {
		close(p1[0]);
		close(p1[1]);
		if (enc_out >= 0) {
			close(p2[0]);
			close(p2[1]);
		}
		return km_fail(e, KM_ENOMEM, "cannot start a thread");
	}
	km_status st = KM_OK;
	if (enc_out >= 0) {
		if (pthread_create(&tth, NULL, tee_thread_main, &tt) == 0) {
			have_tee = 1;
			st = envelope_encrypt(p2[0], enc_out, nh, ndek, NULL, e);
			/* Drain what the tee still writes if encryption stopped. */
			char sink[4096];
			while (read(p2[0], sink, sizeof sink) > 0)
				;
			OPENSSL_cleanse(sink, sizeof sink);
		} else {
			close(p2[1]);
			st = km_fail(e, KM_ENOMEM, "cannot start a thread");
			char sink[4096];
			while (read(p1[0], sink, sizeof sink) > 0)
				;
			OPENSSL_cleanse(sink, sizeof sink);
		}
		close(p2[0]);
	} else {
		tee_loop(&tt); /* reads only: no SIGPIPE here */
	}
	if (have_tee)
		pthread_join(tth, NULL);
	pthread_join(td, NULL);
	close(p1[0]);
	if (dt.st) {
		*e = dt.e;
		return dt.st;
	}
	if (st)
		return st;
	if (!tt.ok)
		return km_fail(e, KM_EIO, "the plaintext stream broke while it was checked");
	memcpy(digest, tt.digest, 32);
	return KM_OK;
}

typedef struct reenc_keys {
	dek_ctx *from, *to;
	const uint8_t *to_kek; /* for envelope DEKs: a plain copy in secure memory */
} reenc_keys;

/*
 * Re-encrypt one file.  Returns KM_OK with the new wrapped DEK in
 * `wrapped` (the caller records it), or KM_OK with *why set when the file
 * cannot be reached or does not match the catalogue (listed, never
 * skipped silently), or an error that stops the job.
 *
 * Order, and what a kill -9 at each point leaves:
 *   1. one wrap is counted on the new version (its own transaction): a
 *      kill after it overcounts by one, never under;
 *   2. the new envelope (fresh DEK, header naming the NEW version) is
 *      written to a locked temporary beside the file: a kill leaves the
 *      old file untouched and a temporary the next atomicfile_open of
 *      that path sweeps;
 *   3. the temporary is read back and must decrypt to the same plaintext
 *      digest as the old file; only then is it renamed over the file;
 *   4. the caller's transaction records the new wrap and version in the
 *      catalogue, moves the cursor and counts, and appends the event.
 * A kill between 3 and 4 leaves a file whose header names the new version
 * while the catalogue still names the old one.  Both readers handle that
 * state: unprotect uses the header's wrap when the header is ahead of the
 * catalogue (asset.c), and the next run recognises the file by its header
 * (uid matches, version = the job's target), checks that it decrypts
 * under the header's wrap, and finishes only the catalogue (this
 * function's first branch).  No state exists in which neither the old nor
 * the new DEK opens the file that is in place.
 */
static km_status reencrypt_one(km_ctx *ctx, const job_row *r, const batch_asset *a, reenc_keys *k,
                               uint8_t wrapped[KM_WRAPPED_DEK_BYTES], char *why, size_t whycap, km_err *e)
{
	why[0] = '\0';
	if (!a->path) {
		snprintf(why, whycap, "no file recorded for it (registered without one)");
		return KM_OK;
	}
	int fd = -1;
	km_err fe;
	if (km_caller_open(a->path, O_RDONLY, 0, &fd, &fe)) {
		snprintf(why, whycap, "cannot open the file: %.300s", fe.msg);
		return KM_OK;
	}
	struct stat sb;
	envelope_header h;
	km_status st = KM_OK;
	uint8_t *odek = km_secure_alloc(KM_DEK_BYTES), *ndek = km_secure_alloc(KM_DEK_BYTES);
	uint8_t d1[32], d2[32];
	atomicfile af = {-1, NULL, NULL};
	if (!odek || !ndek) {
		st = km_fail(e, KM_ENOMEM, "locked memory exhausted");
		goto out;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(why, whycap, "not a regular file");
		goto out;
	}
	if (envelope_read_header(fd, &h, &fe)) {
		snprintf(why, whycap, "not a readable envelope: %.300s", fe.msg);
		goto out;
	}
	if (strcmp(h.uid, a->uid) || strcmp(h.kind, a->kind) || strcmp(h.name, a->name) ||
	    strcmp(h.version_str, a->version) || strcmp(h.kek_name, r->key)) {
		snprintf(why, whycap, "the file holds another asset (%s:%s, uid %s) than the catalogue's", h.kind,
		         h.name, h.uid);
		goto out;
	}
	km_asset_ref href;
	envelope_header_ref(&h, &href);
	if (h.kek_version == r->to_version) {
		/* Re-encrypted by a run killed before its catalogue step. */
		if (dek_ctx_unwrap(k->to, h.wrapped_dek, &href, ndek, &fe) ||
		    transform(fd, &h, ndek, -1, NULL, NULL, d1, &fe)) {
			snprintf(why, whycap, "the file names version %u but does not decrypt under it: %.300s",
			         r->to_version, fe.msg);
			goto out;
		}
		memcpy(wrapped, h.wrapped_dek, KM_WRAPPED_DEK_BYTES);
		goto out;
	}
	if (h.kek_version > r->to_version) {
		snprintf(why, whycap, "the file is under version %u, newer than the job's target %u", h.kek_version,
		         r->to_version);
		goto out;
	}
	/* The catalogue's wrap is the authority for the old DEK. */
	km_asset_ref oref = href;
	oref.kek_version = r->from_version;
	if (!a->wrapped_ok || dek_ctx_unwrap(k->from, a->wrapped, &oref, odek, &fe)) {
		snprintf(why, whycap, "the catalogue's data key does not unwrap: %.300s",
		         a->wrapped_ok ? fe.msg : "malformed");
		goto out;
	}
	/* 1: count the wrap before the DEK exists anywhere. */
	kek_version_row torow;
	if ((st = km_tx_begin(ctx, e)))
		goto out;
	if ((st = count_wraps(ctx, r, 1, &torow, e)) || (st = km_db_commit(ctx->db, e))) {
		km_tx_rollback(ctx);
		goto out;
	}
	/* 2: the new envelope beside the file. */
	km_asset_ref nref = href;
	nref.kek_version = r->to_version;
	envelope_header nh;
	if ((st = dek_generate(ndek, e)) || (st = dek_ctx_wrap(k->to, ndek, &nref, wrapped, e)) ||
	    (st = envelope_header_init(&nh, &nref, wrapped, e)))
		goto out;
	nh.segment_size = h.segment_size;
	if (atomicfile_open(a->path, &af, &fe)) {
		snprintf(why, whycap, "cannot write beside the file: %.300s", fe.msg);
		goto out;
	}
	if (transform(fd, &h, odek, af.fd, &nh, ndek, d1, &fe)) {
		snprintf(why, whycap, "the file does not decrypt: %.300s", fe.msg);
		goto out;
	}
	/* 3: read the new file back; it must give the same plaintext. */
	envelope_header vh;
	if (lseek(af.fd, 0, SEEK_SET) != 0 || envelope_read_header(af.fd, &vh, &fe) ||
	    transform(af.fd, &vh, ndek, -1, NULL, NULL, d2, &fe) || CRYPTO_memcmp(d1, d2, 32) != 0) {
		st = km_fail(e, KM_EINTEGRITY, "the re-encrypted copy of %s did not read back to the same "
		             "plaintext; the file was left as it was", a->path);
		goto out;
	}
	if ((st = atomicfile_commit(&af, e)))
		goto out;
out:
	if (af.final_path)
		atomicfile_abort(&af);
	close(fd);
	km_secure_free(odek, KM_DEK_BYTES);
	km_secure_free(ndek, KM_DEK_BYTES);
	OPENSSL_cleanse(d1, sizeof d1);
	OPENSSL_cleanse(d2, sizeof d2);
	return st;
}

/* Re-encrypt the next files: each file's catalogue change, cursor and
 * event in a transaction of its own. */
static km_status reencrypt_batch(km_ctx *ctx, const char *id, int *more, int *paused, km_err *e)
{
	job_row r;
	*more = 0;
	/* A read-only look first: the files are worked on outside any
	 * transaction, so the catalogue stays open to others. */
	km_status st = batch_begin(ctx, id, &r, paused, e);
	if (st)
		return st;
	if (*paused)
		return batch_commit(ctx, &r, "job.pause", job_details(&r), e);
	batch_asset *b = NULL;
	size_t n = 0;
	if ((st = batch_read(ctx, &r, REENCRYPT_FETCH, &b, &n, e))) {
		km_tx_rollback(ctx);
		return st;
	}
	if (n == 0) {
		batch_free(b, n);
		r.state = KM_JOB_DONE;
		r.finished = km_ctx_now(ctx);
		holder_clear(&r);
		return batch_commit(ctx, &r, "job.done", job_details(&r), e);
	}
	kek_version_row fromrow, torow;
	const uint8_t *kek;
	reenc_keys k = {NULL, NULL, NULL};
	if (!(st = kek_version_load(ctx, r.key, r.from_version, &fromrow, e)) &&
	    !km_state_can_decrypt(fromrow.state))
		st = km_fail(e, KM_ESTATE, "version %u of key '%s' is %s: its assets can no longer be moved",
		             r.from_version, r.key, km_state_name(fromrow.state));
	if (!st)
		st = count_wraps(ctx, &r, 0, &torow, e);
	if (!st && !(st = kek_material(ctx, &fromrow, &kek, e)))
		st = dek_ctx_new(kek, &k.from, e);
	if (!st && !(st = kek_material(ctx, &torow, &kek, e)))
		st = dek_ctx_new(kek, &k.to, e);
	km_tx_rollback(ctx);
	*more = 1;
	for (size_t i = 0; i < n && !st; i++) {
		uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
		char why[400];
		st = reencrypt_one(ctx, &r, &b[i], &k, wrapped, why, sizeof why, e);
		if (st)
			break;
		/* 4: the catalogue, the cursor, the counts, one event. */
		job_row cur;
		if ((st = batch_begin(ctx, id, &cur, paused, e)))
			break;
		json_t *d = job_details(&cur);
		json_object_set_new(d, "first_asset", json_integer(b[i].id));
		json_object_set_new(d, "last_asset", json_integer(b[i].id));
		if (why[0]) {
			st = unreachable_add(ctx, &cur, &b[i], why, e);
			cur.unreachable++;
			json_object_set_new(d, "count", json_integer(0));
			json_object_set_new(d, "unreachable", json_pack("[I]", (json_int_t)b[i].id));
			json_object_set_new(d, "why", json_string(why));
		} else {
			sqlite3_stmt *up = NULL;
			if (!(st = km_db_prepare(ctx->db, SET_ASSET_SQL, &up, e)))
				st = set_asset(up, &cur, b[i].id, wrapped, ctx, e);
			sqlite3_finalize(up);
			if (!st)
				st = move_counts(ctx, &cur, 1, e);
			if (!st)
				st = lineage_rewrapped(ctx, cur.key_id, cur.from_version, cur.to_version, b[i].id,
				                       b[i].id, e);
			cur.done++;
			json_object_set_new(d, "count", json_integer(1));
		}
		OPENSSL_cleanse(wrapped, sizeof wrapped);
		if (cur.cursor < b[i].id)
			cur.cursor = b[i].id;
		if (st) {
			json_decref(d);
			km_tx_rollback(ctx);
			break;
		}
		st = batch_commit(ctx, &cur, *paused ? "job.pause" : "job.batch", d, e);
		if (*paused)
			break;
	}
	dek_ctx_free(k.from);
	dek_ctx_free(k.to);
	batch_free(b, n);
	return st;
}

/* ---- running ----------------------------------------------------------- */

/* A failed run leaves the job failed with its reason and lets go of it,
 * so that `job run` can resume once the cause is fixed. */
static km_status fail_change(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e)
{
	const km_err *why = c;
	if (!holder_is_me(r))
		return km_fail(e, KM_EBUSY, "not ours");
	/* A pause someone asked for stays a pause: the run stopped anyway. */
	r->state = r->pause ? KM_JOB_PAUSED : KM_JOB_FAILED;
	r->pause = 0;
	holder_clear(r);
	snprintf(r->error, sizeof r->error, "%.250s", why->msg);
	json_object_set_new(d, "error", json_string(why->msg));
	(void)ctx;
	return KM_OK;
}

static km_status pause_change_runner(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e)
{
	(void)c;
	(void)d;
	(void)ctx;
	if (!holder_is_me(r))
		return km_fail(e, KM_EBUSY, "not ours");
	r->state = KM_JOB_PAUSED;
	r->pause = 0;
	holder_clear(r);
	return KM_OK;
}

static km_status job_run_claimed(km_ctx *ctx, const char *id, job_row *rp, km_progress_fn progress, void *pctx,
                                 km_err *e);

static km_status job_run_impl(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_status st = km_authorize(ctx, KM_ACT_JOB_RUN, obj, e);
	if (st)
		return st;
	int already_done = 0;
	job_row r;
	st = job_tx(ctx, id, km_action_name(KM_ACT_JOB_RUN), claim_change, &already_done, &r, e);
	if (already_done) {
		km_err_clear(e);
		return KM_OK;
	}
	if (st)
		return st;
	running_set(id, 1);
	st = job_run_claimed(ctx, id, &r, progress, pctx, e);
	running_set(id, 0);
	return st;
}

/* The run after a successful claim (r): batches until done, paused, or
 * an error, which lets our claim go (job.fail) so that nobody waits for a
 * lease that no run honours any more. */
static km_status job_run_claimed(km_ctx *ctx, const char *id, job_row *rp, km_progress_fn progress, void *pctx,
                                 km_err *e)
{
	job_row r = *rp;
	km_status st = KM_OK;
	char what[KM_REQUEST_ID_MAX + KM_KEY_NAME_MAX + 48];
	snprintf(what, sizeof what, "%s %s %s v%u -> v%u", r.id, km_job_kind_name(r.kind), r.key, r.from_version,
	         r.to_version);
	struct timespec last = {0, 0};
	int more = 1, paused = 0;
	while (more && !paused) {
		st = r.kind == KM_JOB_REWRAP ? rewrap_batch_unchecked(ctx, id, &more, &paused, e)
		                             : reencrypt_batch(ctx, id, &more, &paused, e);
		if (st)
			break;
		if (!progress || paused)
			continue;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (more && now.tv_sec == last.tv_sec)
			continue;
		last = now;
		job_row cur;
		km_err ignored;
		sqlite3_stmt *q;
		int have = 0;
		/* Progress reads the row without a transaction: a display.  The
		 * statement is finished before any write: a read left open keeps
		 * its snapshot, and a transaction begun on top of it fails at
		 * once (SQLITE_BUSY_SNAPSHOT) when another session committed
		 * meanwhile, as the console's own pause request does.  That ended
		 * the console's run and left the job "running" (console_jobs). */
		if (km_db_prepare(ctx->db, "SELECT " JOB_COLS JOB_FROM "WHERE j.id = ?", &q, &ignored) == KM_OK) {
			sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
			if (sqlite3_step(q) == SQLITE_ROW) {
				job_row_read(q, &cur);
				have = 1;
			}
			sqlite3_finalize(q);
		}
		if (have && progress(pctx, cur.done + cur.unreachable, cur.total, what) && more) {
			st = job_tx(ctx, id, "job.pause", pause_change_runner, NULL, NULL, e);
			paused = 1;
		}
		if (st)
			break;
	}
	if (st) {
		/* Our own claim is let go with the reason, for a later resume
		 * (fail_change does nothing when the job is no longer ours: it
		 * was paused at once, or taken over).  A busy catalogue too: the
		 * run ended, and its lease must not keep the job "running". */
		km_err ignored;
		job_tx(ctx, id, "job.fail", fail_change, e, NULL, &ignored);
	}
	return st;
}

km_status km_job_run(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_JOB_RUN, obj);
	if (!id)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "no job named"), e);
	return km_op_end(ctx, job_run_impl(ctx, id, progress, pctx, e), e);
}

/* ---- pause, cancel ----------------------------------------------------- */

static km_status pause_change(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e)
{
	(void)c;
	switch (r->state) {
	case KM_JOB_DONE:
	case KM_JOB_CANCELLED:
		return km_fail(e, KM_ESTATE, "job %s is %s: there is nothing to pause", r->id,
		               km_job_state_name(r->state));
	case KM_JOB_PAUSED:
		return km_fail(e, KM_ESTATE, "job %s is paused already (`keyward job run %s` resumes it)", r->id, r->id);
	default:
		break;
	}
	if (r->state == KM_JOB_RUNNING && holder_alive(ctx, r)) {
		/* The runner stops after its batch and records the pause. */
		r->pause = 1;
		json_object_set_new(d, "requested", json_true());
		json_object_set_new(d, "holder", json_string(r->holder));
		return KM_OK;
	}
	r->state = KM_JOB_PAUSED;
	r->pause = 0;
	holder_clear(r);
	return KM_OK;
}

static km_status cancel_change(km_ctx *ctx, job_row *r, json_t *d, void *c, km_err *e)
{
	(void)c;
	if (r->state == KM_JOB_DONE || r->state == KM_JOB_CANCELLED)
		return km_fail(e, KM_ESTATE, "job %s is %s already", r->id, km_job_state_name(r->state));
	if (r->state == KM_JOB_RUNNING && holder_alive(ctx, r))
		return km_fail(e, KM_ESTATE, "job %s is running (%s): pause it first (`keyward job pause %s`), "
		               "then cancel it", r->id, r->holder, r->id);
	r->state = KM_JOB_CANCELLED;
	r->pause = 0;
	r->finished = km_ctx_now(ctx);
	holder_clear(r);
	json_object_set_new(d, "left", json_integer((json_int_t)(r->total - r->done - r->unreachable)));
	return KM_OK;
}

static km_status job_change_op(km_ctx *ctx, const char *id, const char *action, job_change_fn fn, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_JOB_RUN, obj);
	km_status st = id ? km_authorize(ctx, KM_ACT_JOB_RUN, obj, e) : km_fail(e, KM_EUSAGE, "no job named");
	if (!st)
		st = job_tx(ctx, id, action, fn, NULL, NULL, e);
	return km_op_end(ctx, st, e);
}

km_status km_job_pause(km_ctx *ctx, const char *id, km_err *e)
{
	return job_change_op(ctx, id, "job.pause", pause_change, e);
}

km_status km_job_cancel(km_ctx *ctx, const char *id, km_err *e)
{
	return job_change_op(ctx, id, "job.cancel", cancel_change, e);
}

/* ---- reading ----------------------------------------------------------- */

static void job_info_of(km_ctx *ctx, const job_row *r, km_job_info *j)
{
	memset(j, 0, sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", r->id);
	j->kind = r->kind;
	j->state = r->state;
	snprintf(j->key, sizeof j->key, "%s", r->key);
	j->from_version = r->from_version;
	j->to_version = r->to_version;
	snprintf(j->request_id, sizeof j->request_id, "%s", r->request_id);
	j->total = r->total;
	j->done = r->done;
	j->unreachable = r->unreachable;
	j->created = r->created;
	j->started = r->started;
	j->updated = r->updated;
	j->finished = r->finished;
	/* The holder only while it holds. */
	if (r->state == KM_JOB_RUNNING && holder_alive(ctx, r))
		snprintf(j->holder, sizeof j->holder, "%s", r->holder);
	snprintf(j->error, sizeof j->error, "%s", r->error);
	/* Rate over the last run: assets per second between its claim and
	 * its latest batch (whole seconds, so 0 when it was quicker). */
	int64_t span = r->updated - r->run_started;
	uint64_t moved = r->done >= (uint64_t)r->run_done ? r->done - (uint64_t)r->run_done : 0;
	j->rate = (r->run_started && span > 0 && moved) ? (double)moved / (double)span : 0.0;
	uint64_t left = r->total > r->done + r->unreachable ? r->total - r->done - r->unreachable : 0;
	if (r->state == KM_JOB_DONE || left == 0)
		j->eta = 0;
	else
		j->eta = j->rate > 0 ? (int64_t)((double)left / j->rate + 0.5) : -1;
}

static km_status job_get_impl(km_ctx *ctx, const char *id, km_job_info *out, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_status st = km_authorize(ctx, KM_ACT_JOB_READ, obj, e);
	if (st)
		return st;
	job_row r;
	if ((st = job_load(ctx, id, &r, e)))
		return st;
	job_info_of(ctx, &r, out);
	return KM_OK;
}

km_status km_job_get(km_ctx *ctx, const char *id, km_job_info *out, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_JOB_READ, obj);
	if (!id || !out)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "no job named"), e);
	return km_op_end(ctx, job_get_impl(ctx, id, out, e), e);
}

static km_status job_list_impl(km_ctx *ctx, int active_only, int (*cb)(void *c, const km_job_info *j),
                               void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_JOB_READ, "job:*", e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, active_only ?
	                        "SELECT " JOB_COLS JOB_FROM "WHERE j.state IN ('queued','running','paused','failed') "
	                        "ORDER BY j.created DESC, j.id" :
	                        "SELECT " JOB_COLS JOB_FROM "ORDER BY j.created DESC, j.id", &q, e)))
		return st;
	int rc;
	/* A listing shows rows as stored; every decision loads them through
	 * their seal (rowmac.h). */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		job_row r;
		km_job_info j;
		job_row_read(q, &r);
		job_info_of(ctx, &r, &j);
		if (cb(cbctx, &j))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing jobs");
	sqlite3_finalize(q);
	return st;
}

km_status km_job_list(km_ctx *ctx, int active_only, int (*cb)(void *c, const km_job_info *j), void *cbctx,
                      km_err *e)
{
	km_op_begin(ctx, KM_ACT_JOB_READ, "job:*");
	return km_op_end(ctx, job_list_impl(ctx, active_only, cb, cbctx, e), e);
}

static km_status unreachable_impl(km_ctx *ctx, const char *id,
                                  int (*cb)(void *c, int64_t asset_id, const char *path, const char *why),
                                  void *cbctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_status st = km_authorize(ctx, KM_ACT_JOB_READ, obj, e);
	job_row r;
	if (st || (st = job_load(ctx, id, &r, e)))
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT asset_id, path, why FROM job_unreachable WHERE job_id = ? "
	                        "ORDER BY asset_id", &q, e)))
		return st;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		if (cb(cbctx, sqlite3_column_int64(q, 0), sqlite3_column_type(q, 1) == SQLITE_NULL ? NULL : col_text(q, 1),
		       col_text(q, 2)))
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading unreachable assets");
	sqlite3_finalize(q);
	return st;
}

km_status km_job_unreachable(km_ctx *ctx, const char *id,
                             int (*cb)(void *c, int64_t asset_id, const char *path, const char *why),
                             void *cbctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 8];
	job_object(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_JOB_READ, obj);
	if (!id)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "no job named"), e);
	return km_op_end(ctx, unreachable_impl(ctx, id, cb, cbctx, e), e);
}
