/*
 * auditlog.h — the audit log as the front ends see it: authorised reads and
 * verification.  (audit.h is the storage and hashing layer underneath; the
 * front ends never call it directly, so every read is authorised.)
 *
 * Verification can run on another thread than the one that owns the
 * km_ctx: start (authorise) on the owner thread, run anywhere — the job has
 * its own read-only database connection and a copy of the HSM audit public
 * key — and finish (record the result, audited) on the owner thread.
 */
#ifndef KM_AUDITLOG_H
#define KM_AUDITLOG_H

#include "keyward.h"
#include "audit_types.h"

km_status km_audit_query(km_ctx *ctx, const audit_filter *f, uint64_t before_seq,
                         int limit, int (*row_cb)(void *c, const audit_row *row),
                         void *cbctx, km_err *e);

km_status km_audit_get(km_ctx *ctx, uint64_t seq, audit_row *out, km_err *e);

typedef struct km_verify_job km_verify_job;

km_status km_audit_verify_start(km_ctx *ctx, km_verify_job **job, km_err *e);
km_status km_audit_verify_run(km_verify_job *job, audit_progress_fn progress,
                              void *pctx, audit_verify_result *r, km_err *e);
/* Records the result (and frees the job, whatever happens). */
km_status km_audit_verify_finish(km_ctx *ctx, km_verify_job *job,
                                 const audit_verify_result *r, km_err *e);
/* Free a job without recording (cancelled). */
void km_audit_verify_abandon(km_verify_job *job);

/* start + run + finish, for the CLI. */
km_status km_audit_verify(km_ctx *ctx, audit_progress_fn progress, void *pctx,
                          audit_verify_result *r, km_err *e);

/* km_audit_verify, and visit (may be NULL) sees every entry once it is
 * proven (audit_types.h), on the verifier's checking thread: one pass over
 * the log both verifies it and feeds the caller (the auditor report's
 * counts), so the caller's figures come from the bytes just verified. */
km_status km_audit_verify_visit(km_ctx *ctx, audit_progress_fn progress, void *pctx, audit_visit_fn visit,
                                void *vctx, audit_verify_result *r, km_err *e);

/* One entry: its leaf hash, its inclusion in the newest signed tree head
 * and that head's signature. */
km_status km_audit_verify_entry(km_ctx *ctx, uint64_t seq, audit_verify_result *r,
                                km_err *e);

/* The HSM seals of every row that authorisation reads (users, key
 * versions): rows checked, rows whose MAC fails, the first one named. */
typedef struct km_rows_result {
	uint64_t checked;
	uint64_t bad;
	char problem[256];
} km_rows_result;
km_status km_audit_verify_rows(km_ctx *ctx, km_rows_result *r, km_err *e);

/* The audit public key as PEM (malloc'd), for verifiers outside keyward. */
km_status km_audit_pubkey_pem(km_ctx *ctx, char **pem, km_err *e);

#endif
