/*
 * lifecycle.h — internal to core/: the changes a request applies, each
 * inside a transaction its caller opened (km_tx_begin), after the caller
 * authorised and checked the quorum.  Each loads the rows it changes
 * through their seals, re-seals them, adds its facts (and "sealed" notes)
 * to `details` for the caller's one audit event, and never commits.
 *
 * request.c executes through these; job.c queues its jobs from them.
 */
#ifndef KM_LIFECYCLE_H
#define KM_LIFECYCLE_H

#include "ctx.h"
#include "job.h"
#include "keystate.h"
struct kek_version_row;

/* New active version (generated in the HSM); the previous active one
 * becomes decrypt-only; a rewrap or re-encryption job (reencrypt != 0) is
 * queued for the assets under the version that was active, or, when none
 * was (an emergency rotation), under the newest compromised or
 * decrypt-only version that still protects assets (job_id, "" if there
 * was nothing to move). */
km_status lifecycle_rotate(km_ctx *ctx, const char *key, int reencrypt, const char *request_id,
                           uint32_t *new_version, char job_id[KM_REQUEST_ID_MAX], json_t *details,
                           km_err *e);

/* One version through the transition table (keystate.h), with the checks
 * beyond it (one active version; destroyed only after destroy_after).
 * Entering destroy-scheduled sets destroy_after = now + destroy_wait;
 * destroyed erases the wrapped material.  The version leaves the KEK cache
 * either way.  After committing a destruction the caller should checkpoint
 * the WAL (SQLITE_CHECKPOINT_TRUNCATE) so the erased bytes leave it too. */
km_status lifecycle_set_state(km_ctx *ctx, const char *key, uint32_t version, km_key_state to,
                              json_t *details, km_err *e);

/* The policy's deprecation period: a retired version may have its
 * destruction scheduled only deprecation_days after it was retired.
 * *from = the first moment it may (0 when the version is not retired: the
 * period does not apply to pending or compromised versions).
 * lifecycle_destroy_check refuses (KM_ESTATE) before then, naming that
 * date and where the period came from; lifecycle_set_state applies it. */
km_status lifecycle_destroy_allowed_from(km_ctx *ctx, const char *key, const struct kek_version_row *row,
                                        int64_t *from, km_err *e);
km_status lifecycle_destroy_check(km_ctx *ctx, const char *key, const struct kek_version_row *row,
                                  int64_t now, km_err *e);
/* Queue a job (job.c).  Inside the caller's transaction. */
km_status job_queue(km_ctx *ctx, km_job_kind kind, int64_t key_id, uint32_t from_version,
                    uint32_t to_version, const char *request_id, char id[KM_REQUEST_ID_MAX], km_err *e);

/* Open a request (request.c): builds and digests the canonical body,
 * computes quorum (policy + risk tier) and expiry, stores the sealed row
 * and records "request.open" with the digest.  The caller authorised the
 * kind's action already.  Its own transaction. */
km_status request_open(km_ctx *ctx, km_request_kind kind, const char *object, json_t *change,
                       const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e);

/* Apply a policy change request's "change" member (policy.c). */
km_status policy_apply(km_ctx *ctx, const json_t *change, json_t *details, km_err *e);

/* Apply-time facts in details: "scope", "policy" (the new fields, or null
 * when removed), "previous", "keys_recomputed", and the "sealed" note
 * (digest "removed" for a removed row, so a row put back is caught).
 * The keys the scope covers get their schedule recomputed here. */

/* Verify every stored policy row's seal, and with `recorded`
 * (km_sealed_recorded) that it is the row the log last recorded, for
 * `audit verify` — the same shape as user_rows_verify. */
km_status policy_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                             char *problem, size_t cap, km_err *e);

/* Mark a pending or approved request whose expiry has passed as expired
 * (request.c), in a transaction of its own with its audit event; KM_ESTATE
 * if it is decided or not yet expired.  The scheduler calls it. */
km_status request_expire(km_ctx *ctx, const char *id, km_err *e);
/* Ids of the requests stored as pending or approved whose expiry is at or
 * before now (readers already see them as expired).  *ids is malloc'd. */
km_status request_expired_list(km_ctx *ctx, int64_t now, char (**ids)[KM_REQUEST_ID_MAX], size_t *n, km_err *e);

#endif
