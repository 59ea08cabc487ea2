/*
 * request_int.h — internal to core/: the sealed rows of requests and
 * approvals, the risk score, and applying an executed request's change.
 *
 * request_row.c owns the two tables: every read a decision uses goes
 * through req_row_load / req_approvals_load, which check the HSM MAC; every
 * write goes through the save functions inside the caller's transaction,
 * which seal the row and note its digest for the audit event.
 */
#ifndef KM_REQUEST_INT_H
#define KM_REQUEST_INT_H

#include "ctx.h"
#include "request.h"
#include "policy.h"

typedef struct req_row {
	char id[KM_REQUEST_ID_MAX];
	km_request_kind kind;
	km_request_state state;
	char requester[64];
	char object[160];
	char summary[256];
	char *body;              /* canonical JSON as digested (malloc'd) */
	char digest[65];
	unsigned quorum;
	int64_t created, expires, decided;
	char job_id[KM_REQUEST_ID_MAX];
} req_row;

typedef struct req_approval {
	char approver[64];
	int64_t time;
	int approve;
	char reason[256];
	char signature[129];     /* hex; "" for a rejection */
} req_approval;

/* Load and check a request.  KM_ENOTFOUND "no request X"; KM_EINTEGRITY
 * when its MAC fails.  Free with req_row_clear. */
km_status req_row_load(km_ctx *ctx, const char *id, req_row *r, km_err *e);
/* Insert or update, sealed, in the caller's transaction; the seal's digest
 * goes to details' "sealed" list. */
km_status req_row_save(km_ctx *ctx, const req_row *r, int insert, json_t *details, km_err *e);
void req_row_clear(req_row *r);

/* Every approval and rejection of a request, oldest first, each through
 * its seal (KM_EINTEGRITY naming the first that fails).  *out is
 * malloc'd (free it); *n may be 0. */
km_status req_approvals_load(km_ctx *ctx, const char *id, req_approval **out, size_t *n, km_err *e);
km_status req_approval_insert(km_ctx *ctx, const char *id, const req_approval *a, json_t *details,
                              km_err *e);

/* The state a reader sees: pending or approved past its expiry reads as
 * expired (the row changes only when something writes it). */
km_request_state req_effective_state(const req_row *r, int64_t now);

/* SHA-256 of text as 64 hex characters (and the raw bytes if raw != NULL). */
void req_digest(const char *text, char hex[65], uint8_t raw[32]);

/* Exactly 2n lowercase or uppercase hex digits into n bytes: 0, else -1. */
int req_hex_decode(const char *hex, uint8_t *out, size_t n);
void req_hex_encode(const uint8_t *in, size_t n, char *out);

/* The opening action and the approving roles of a kind. */
km_action req_kind_action(km_request_kind k);
unsigned req_kind_roles(km_request_kind k);

/* The key named by "key:NAME" or "key:NAME@V" (else NULL). */
const char *req_object_key(const char *object, char *buf, size_t cap);

/* The policy that governs a key's requests ("" for deployment-wide ones).
 * TODO(wt-pol merge): km_policy_effective_get; until then the built-in
 * defaults of KM_POLICY_FIELDS. */
km_status req_policy(km_ctx *ctx, const char *key, km_policy_effective *out, km_err *e);

/* Score a change (request_risk.c): factors with points and a tier; the
 * assets under the affected versions in *assets. */
km_status req_risk(km_ctx *ctx, km_request_kind kind, const json_t *change, km_risk *out,
                   uint64_t *assets, km_err *e);

/* Is one approval valid now: signed by someone other than the requester,
 * who still holds the kind's role, is not locked, has the object in scope,
 * and whose sealed public key verifies the signature over the digest.
 * Returns 1, or 0 with the reason in problem. */
int req_approval_valid(km_ctx *ctx, const req_row *r, const req_approval *a, char *problem, size_t cap);

/* Distinct valid approvals among a[0..n); the first invalid approval's
 * reason in problem ("" if none). */
unsigned req_count_valid(km_ctx *ctx, const req_row *r, const req_approval *a, size_t n, char *problem,
                         size_t cap);

/* Apply an executed request's change (request_apply.c), inside the
 * caller's transaction; facts go to details, a queued job's id to job_id. */
km_status req_apply(km_ctx *ctx, const req_row *r, const json_t *change, json_t *details,
                    char job_id[KM_REQUEST_ID_MAX], km_err *e);

/* Check every requests and approvals row's seal (for audit verify). */
km_status request_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                              char *problem, size_t cap, km_err *e);

#endif
