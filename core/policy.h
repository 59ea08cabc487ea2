/*
 * policy.h — rotation policies: what a key's life must look like, and who
 * must agree to change it.
 *
 * A policy applies to one key ("features/credit-risk"), to a name prefix
 * ending in '/' ("features/"), or to the whole deployment (""), and sets
 * any subset of the fields below.  The effective policy of a key takes
 * each field from the most specific policy that sets it (key, then the
 * longest prefix, then global, then the built-in default), and says where
 * each field came from.  Policies are sealed rows (rowmac.h): a file writer
 * cannot loosen one.  Changing a policy is itself a quorum request
 * (request.h, kind "policy"); km_policy_propose only opens it.
 */
#ifndef KM_POLICY_H
#define KM_POLICY_H

#include "keyward.h"

/* X(enum, name, default, min, max, help) — every field is an integer in
 * the stored body; "mode" is 0 rewrap, 1 re-encrypt and "totp" 0/1.  The
 * usage bound's default keeps random 96-bit GCM nonces far below the 2^32
 * per-key limit of NIST SP 800-38D. */
#define KM_POLICY_FIELDS(X)                                                                    \
	X(KM_PF_CADENCE,     "cadence_days",     90,        1, 3650,         "rotate at least every N days") \
	X(KM_PF_USAGE_BOUND, "usage_bound",      1u << 24,  1, 1ull << 31,   "encryptions per version")   \
	X(KM_PF_TRANSITION,  "transition_days",  30,        0, 3650,         "old version stays decrypt-only") \
	X(KM_PF_DEPRECATION, "deprecation_days", 30,        0, 3650,         "retired this long before destruction may be scheduled") \
	X(KM_PF_DESTROY_WAIT,"destroy_wait_days",7,         1, 365,          "destroy-scheduled, cancellable, this long") \
	X(KM_PF_MODE,        "reencrypt",        0,         0, 1,            "1: rotation re-encrypts data with fresh DEKs; 0: rewraps DEKs") \
	X(KM_PF_QUORUM,      "quorum",           1,         1, 16,           "approvers needed besides the requester") \
	X(KM_PF_EXPEDITED,   "expedited_quorum", 1,         1, 16,           "approvers needed for an emergency rotation") \
	X(KM_PF_TOTP,        "require_totp",     0,         0, 1,            "approvers must give a one-time code") \
	X(KM_PF_REQUEST_TTL, "request_ttl_hours",72,        1, 720,          "a request expires after N hours")

typedef enum km_policy_field {
#define PF_ENUM(e, name, def, min, max, help) e,
	KM_POLICY_FIELDS(PF_ENUM)
#undef PF_ENUM
	KM_PF_COUNT
} km_policy_field;

const char *km_policy_field_name(km_policy_field f);
km_status km_policy_field_parse(const char *name, km_policy_field *out, km_err *e);

#define KM_POLICY_SCOPE_MAX 128

typedef struct km_policy {
	char scope[KM_POLICY_SCOPE_MAX + 1]; /* key name, "prefix/", or "" (global) */
	unsigned set;                        /* bit f: field f is set here */
	int64_t v[KM_PF_COUNT];
} km_policy;

typedef struct km_policy_effective {
	char key[KM_POLICY_SCOPE_MAX + 1];
	int64_t v[KM_PF_COUNT];
	/* Where field f came from: a policy's scope ("features/"), "global",
	 * or "default". */
	char source[KM_PF_COUNT][KM_POLICY_SCOPE_MAX + 1];
} km_policy_effective;

/* Parse "field=value" (as the CLI's --set takes it) into p, naming a bad
 * field or an out-of-range value with its range. */
km_status km_policy_set_parse(km_policy *p, const char *kv, km_err *e);

/* The effective policy for one key (which need not exist yet). */
km_status km_policy_effective_get(km_ctx *ctx, const char *key, km_policy_effective *out, km_err *e);

/* Every stored policy, global first, then by scope. */
km_status km_policy_list(km_ctx *ctx, int (*cb)(void *c, const km_policy *p), void *cbctx, km_err *e);

/* Open a request (kind "policy") to replace the policy at p->scope by p
 * (p->set == 0: remove it).  The change applies when the request executes.
 * The global policy ("") is the administrator's; other scopes the
 * officer's.  id receives the request id. */
km_status km_policy_propose(km_ctx *ctx, const km_policy *p, const char *reason,
                            char id[40], km_err *e);

#endif
