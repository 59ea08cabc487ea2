/*
 * request.h — changes that need more than one person: signed M-of-N
 * requests.
 *
 * Rotation, state changes, destruction and its cancellation, policy
 * changes, role grants and revocations and user enrolment no longer act on
 * the spot: they open a request.  A request is a canonical JSON body (keys
 * sorted, no spaces, ASCII) with a SHA-256 digest:
 *
 *   {"change":{..},"created":T,"deployment":"..","expires":T,"id":"..",
 *    "kind":"rotate","object":"key:features/credit-risk","quorum":M,
 *    "reason":"..","requester":"alice","risk":{..},"type":"keyward.request.v1"}
 *
 * An approval is an Ed25519 signature by the approver's own key (cred.h,
 * unlocked by step-up) over the 32 digest bytes, so anyone can check it
 * offline with `openssl pkeyutl -verify -rawin` on the files that
 * km_request_export writes.  Execution needs M distinct eligible approvers:
 * never the requester, never one person twice, each holding the approving
 * role and the object in scope both when signing and at execution, each
 * signature verifying against the signer's sealed public key.  A request
 * expires after its policy's request_ttl_hours; one rejection with a
 * reason vetoes it.  Requests and approvals are sealed rows (rowmac.h), and
 * every signature goes into the audit log in the event that records it.
 *
 * The one exception to "request first" is compromise (km_key_compromise):
 * it takes effect at once and opens the emergency rotation as a request.
 */
#ifndef KM_REQUEST_H
#define KM_REQUEST_H

#include "keyward.h"
#include "keystate.h"

/* X(enum, name, action that opens it, approving roles) */
#define KM_REQUEST_KINDS(X)                                                          \
	X(KM_REQ_ROTATE,           "rotate",           KM_ACT_KEY_ROTATE, KM_ROLE_APPROVER) \
	X(KM_REQ_EMERGENCY_ROTATE, "emergency-rotate", KM_ACT_KEY_COMPROMISE, KM_ROLE_APPROVER) \
	X(KM_REQ_STATE,            "state",            KM_ACT_KEY_STATE,  KM_ROLE_APPROVER) \
	X(KM_REQ_DESTROY,          "destroy",          KM_ACT_KEY_DESTROY, KM_ROLE_APPROVER) \
	X(KM_REQ_CANCEL_DESTROY,   "cancel-destroy",   KM_ACT_KEY_DESTROY, KM_ROLE_APPROVER) \
	X(KM_REQ_POLICY,           "policy",           KM_ACT_POLICY_SET, KM_ROLE_APPROVER) \
	X(KM_REQ_ROLE_GRANT,       "role-grant",       KM_ACT_USER_ROLE,  KM_ROLE_ADMIN)    \
	X(KM_REQ_ROLE_REVOKE,      "role-revoke",      KM_ACT_USER_ROLE,  KM_ROLE_ADMIN)    \
	X(KM_REQ_USER_ADD,         "user-add",         KM_ACT_USER_ADD,   KM_ROLE_ADMIN)

typedef enum km_request_kind {
#define RK_ENUM(e, name, act, roles) e,
	KM_REQUEST_KINDS(RK_ENUM)
#undef RK_ENUM
	KM_REQ_KIND_COUNT
} km_request_kind;

/* pending: collecting signatures; approved: quorum met, not yet run;
 * executed: applied (long work may continue as a job, job.h). */
#define KM_REQUEST_STATES(X)          \
	X(KM_RS_PENDING,   "pending")   \
	X(KM_RS_APPROVED,  "approved")  \
	X(KM_RS_EXECUTED,  "executed")  \
	X(KM_RS_REJECTED,  "rejected")  \
	X(KM_RS_CANCELLED, "cancelled") \
	X(KM_RS_EXPIRED,   "expired")   \
	X(KM_RS_FAILED,    "failed")

typedef enum km_request_state {
#define RS_ENUM(e, name) e,
	KM_REQUEST_STATES(RS_ENUM)
#undef RS_ENUM
	KM_RS_COUNT
} km_request_state;

const char *km_request_kind_name(km_request_kind k);
km_status km_request_kind_parse(const char *name, km_request_kind *out, km_err *e);
const char *km_request_state_name(km_request_state s);

#define KM_REQUEST_ID_MAX 40
#define KM_RISK_FACTORS_MAX 8

typedef struct km_risk_factor {
	char name[32];       /* "assets", "sensitivity", "age", "usage", "compromise", "downstream" */
	char detail[96];     /* "1,204 assets under v3", "sensitivity=high" */
	int points;
} km_risk_factor;

typedef struct km_risk {
	int score;           /* sum of the factors' points */
	char tier[8];        /* "low" | "medium" | "high"; high adds one approver */
	size_t nfactors;
	km_risk_factor factors[KM_RISK_FACTORS_MAX];
} km_risk;

typedef struct km_request_info {
	char id[KM_REQUEST_ID_MAX];
	km_request_kind kind;
	km_request_state state;
	char requester[64];
	char object[160];        /* "key:features/credit-risk@3", "user:bob", "policy:features/" */
	char summary[256];       /* one line: what changes ("rotate features/x: v3 -> v4, rewrap 1,204 DEKs") */
	char reason[256];
	int64_t created, expires, decided; /* decided: executed/rejected/... time, 0 pending */
	unsigned quorum;         /* approvals needed (policy, + 1 for a high risk tier) */
	unsigned approvals;      /* valid distinct approvals so far */
	char digest[65];         /* hex SHA-256 of the canonical body */
	km_risk risk;
	uint64_t assets;         /* assets under the affected versions */
	char job_id[KM_REQUEST_ID_MAX]; /* the job execution started, or "" */
	int can_sign;            /* this session's person may approve or reject it now */
} km_request_info;

typedef struct km_approval_info {
	char approver[64];
	int64_t time;
	int approve;             /* 1 approval, 0 rejection */
	char reason[256];        /* rejections */
	char signature[129];     /* hex Ed25519 signature over the digest ("" for a rejection) */
	int valid;               /* signature verifies and the approver is eligible now */
	char problem[128];       /* why not valid */
} km_approval_info;

/* ---- opening requests (each authorised by the kind's action) ---------- */

/* Rotate a key: the new version and rewrap/re-encryption follow its policy. */
km_status km_request_rotate(km_ctx *ctx, const char *key, const char *reason,
                            char id[KM_REQUEST_ID_MAX], km_err *e);
/* Change one version's state (not compromise, not destruction: their own calls). */
km_status km_request_set_state(km_ctx *ctx, const char *key, uint32_t version, km_key_state to,
                           const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e);
/* Schedule destruction of a retired version / cancel a scheduled one. */
km_status km_request_destroy(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                             char id[KM_REQUEST_ID_MAX], km_err *e);
km_status km_request_cancel_destroy(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                                    char id[KM_REQUEST_ID_MAX], km_err *e);
/* Grant or revoke roles (admin; a second admin approves). */
km_status km_request_role(km_ctx *ctx, const char *user, unsigned roles, int grant, const char *reason,
                          char id[KM_REQUEST_ID_MAX], km_err *e);

/* Enrol a person (admin): the credential record is made now from the
 * passphrase they chose (NULL: a service without one) and travels in the
 * request's change, which holds no secret in the clear; a second
 * administrator approves.  Bootstrap: while the deployment has no other
 * administrator who could approve, the enrolment takes effect at once
 * (audited with "bootstrap": true) and id is "".  The first administrator
 * (init) and the demo's people are enrolled by init. */
km_status km_request_user_add(km_ctx *ctx, const char *name, unsigned roles, const char *scopes,
                              const char *passphrase, const char *reason, char id[KM_REQUEST_ID_MAX],
                              km_err *e);

/* Mark one version compromised, at once (step-up, any officer): encryption
 * under it stops, decryption needs km_unprotect's explicit override, the
 * KEK cache drops it, and an emergency rotation opens as a request with the
 * policy's expedited quorum (its id in id).  The affected assets are the
 * ones km_asset_list gives for that version; the emergency rotation
 * re-encrypts them. */
km_status km_key_compromise(km_ctx *ctx, const char *key, uint32_t version, const char *reason,
                            char id[KM_REQUEST_ID_MAX], km_err *e);

/* ---- deciding --------------------------------------------------------- */

/* Sign the digest with this person's key (step-up unlocks it; TOTP too when
 * the policy requires it).  Refused: the requester, a second signature by
 * the same person, a decided or expired request, a role or scope that does
 * not allow it.  When the quorum fills the request becomes approved. */
km_status km_request_approve(km_ctx *ctx, const char *id, km_err *e);
/* A rejection with a reason (required) vetoes the request. */
km_status km_request_reject(km_ctx *ctx, const char *id, const char *reason, km_err *e);
/* The requester (or an admin) withdraws a pending or approved request. */
km_status km_request_cancel(km_ctx *ctx, const char *id, km_err *e);

/* Progress of long work: done of total, per second at most.  Return
 * non-zero to pause (the job keeps its cursor). */
typedef int (*km_progress_fn)(void *c, uint64_t done, uint64_t total, const char *what);

/* Execute an approved request: every signature and eligibility re-checked
 * now, then the change applied in one transaction with its audit event.
 * Rotation queues a rewrap or re-encryption job and runs it here with
 * progress (job.h); a killed run is resumed by km_job_run.  Exactly one of
 * two concurrent executors wins; the other gets KM_ESTATE. */
km_status km_request_execute(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx,
                             km_err *e);

/* ---- reading ---------------------------------------------------------- */

typedef struct km_request_query {
	int inbox;               /* only requests this person may sign now */
	int pending_only;        /* pending and approved */
	const char *object;      /* NULL, or requests whose object starts with this */
	int limit;               /* 0: all */
} km_request_query;

km_status km_request_list(km_ctx *ctx, const km_request_query *q,
                          int (*cb)(void *c, const km_request_info *r), void *cbctx, km_err *e);
km_status km_request_get(km_ctx *ctx, const char *id, km_request_info *out, km_err *e);
/* The canonical body (malloc'd, the caller frees) exactly as digested. */
km_status km_request_body(km_ctx *ctx, const char *id, char **body, km_err *e);
/* Approvals and rejections, oldest first, each checked. */
km_status km_request_approvals(km_ctx *ctx, const char *id,
                               int (*cb)(void *c, const km_approval_info *a), void *cbctx, km_err *e);
/* Number of pending requests this person may sign (the status-bar badge). */
km_status km_request_inbox_count(km_ctx *ctx, uint64_t *n, km_err *e);

/* Recompute the digest from the body, check every signature against the
 * signer's sealed public key and compare with what the audit log recorded.
 * KM_OK if all hold; KM_EINTEGRITY naming the first that does not. */
km_status km_request_verify(km_ctx *ctx, const char *id, char *report, size_t cap, km_err *e);

/* Write DIR/request.json (the body), DIR/digest.bin, and per approver
 * DIR/NAME.sig and DIR/NAME.pub.pem, plus DIR/VERIFY.txt with the openssl
 * commands; files are written with the caller's rights, then renamed. */
km_status km_request_export(km_ctx *ctx, const char *id, const char *dir, km_err *e);

#endif
