/*
 * job.h — long work that must survive a kill: rewrapping and re-encrypting
 * everything under an old key version.
 *
 * A job is a sealed catalogue row: kind, key, from and to version, the
 * request that started it, a cursor (the last asset id done), counts and a
 * state.  It runs in batches; each batch rewrites its assets, moves the
 * cursor and appends one audit event in one transaction, so a kill -9 at
 * any point loses at most the batch in flight and the next run resumes
 * from the cursor.  Re-doing a batch is harmless (an asset already under
 * the new version is skipped).  A run first claims the job with a lease
 * (holder, expiry) in its own transaction: two executors of one job never
 * both run it; the second gets KM_EBUSY naming the holder.
 *
 * Rewrap: the catalogue's wrapped DEK is the authority (docs/format.md);
 * each DEK is unwrapped under the old KEK version and wrapped under the
 * new one with the same asset identity, and no data file is touched.
 * Re-encryption: each asset's file (assets.path) is decrypted and
 * encrypted anew with a fresh DEK under the new version, to a temporary
 * file that is read back and checked before it replaces the old one; an
 * asset whose file cannot be reached is listed (km_job_unreachable), never
 * skipped silently.  When a job finishes with nothing left under the old
 * version, that version may leave the dual-key phase on schedule.
 */
#ifndef KM_JOB_H
#define KM_JOB_H

#include "keyward.h"
#include "request.h"

#define KM_JOB_KINDS(X)                   \
	X(KM_JOB_REWRAP,    "rewrap")     \
	X(KM_JOB_REENCRYPT, "re-encrypt")

typedef enum km_job_kind {
#define JK_ENUM(e, name) e,
	KM_JOB_KINDS(JK_ENUM)
#undef JK_ENUM
	KM_JOB_KIND_COUNT
} km_job_kind;

#define KM_JOB_STATES(X)              \
	X(KM_JOB_QUEUED,    "queued")    \
	X(KM_JOB_RUNNING,   "running")   \
	X(KM_JOB_PAUSED,    "paused")    \
	X(KM_JOB_DONE,      "done")      \
	X(KM_JOB_FAILED,    "failed")    \
	X(KM_JOB_CANCELLED, "cancelled")

typedef enum km_job_state {
#define JS_ENUM(e, name) e,
	KM_JOB_STATES(JS_ENUM)
#undef JS_ENUM
	KM_JOB_STATE_COUNT
} km_job_state;

const char *km_job_kind_name(km_job_kind k);
const char *km_job_state_name(km_job_state s);

typedef struct km_job_info {
	char id[KM_REQUEST_ID_MAX];
	km_job_kind kind;
	km_job_state state;
	char key[129];
	uint32_t from_version, to_version;
	char request_id[KM_REQUEST_ID_MAX];
	uint64_t total, done, unreachable;
	int64_t created, started, updated, finished;
	char holder[96];         /* "alice pid 4242 on host", "" when not running */
	double rate;             /* assets per second over the last run, 0 unknown */
	int64_t eta;             /* seconds left at that rate, -1 unknown */
	char error[256];
} km_job_info;

/* Run (or resume) a job until it is done, paused by the callback, or
 * fails.  progress may be NULL. */
km_status km_job_run(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e);
/* Ask a running job to stop after its batch (it becomes paused); a paused
 * or queued job can be cancelled, which leaves assets not yet done under
 * the old version (still decryptable while that version allows it). */
km_status km_job_pause(km_ctx *ctx, const char *id, km_err *e);
km_status km_job_cancel(km_ctx *ctx, const char *id, km_err *e);

km_status km_job_list(km_ctx *ctx, int active_only,
                      int (*cb)(void *c, const km_job_info *j), void *cbctx, km_err *e);
km_status km_job_get(km_ctx *ctx, const char *id, km_job_info *out, km_err *e);
/* Assets a re-encryption could not reach (file missing or unreadable). */
km_status km_job_unreachable(km_ctx *ctx, const char *id,
                             int (*cb)(void *c, int64_t asset_id, const char *path, const char *why),
                             void *cbctx, km_err *e);

#endif
