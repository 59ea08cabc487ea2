/*
 * schedule_int.h — internal to core/: the stored policies as the schedule
 * reads them, and the schedule columns kept on each key.
 *
 * keys.cadence_s and keys.usage_bound hold the key's effective cadence
 * (seconds) and usage bound (the policy's, capped by the deployment's
 * kek_max_wraps, which protect enforces); keys.due_at and keys.overdue_at
 * when the current active version has lived one and two cadences (0: no
 * active version, nothing to rotate); keys.attention the KM_ATTN_* flags
 * that do not depend on the time: KM_ATTN_DUE and KM_ATTN_NEAR_BOUND at
 * 90 % of the bound, KM_ATTN_OVERDUE at the bound, KM_ATTN_COMPROMISED for
 * a compromised version that still wraps assets, or a key whose current
 * version is compromised (no active version left to encrypt with).  A reader adds the
 * time-dependent flags by comparing due_at / overdue_at with the session
 * clock, and the request and job flags from their tables.
 *
 * These columns are a summary, like keys.cur_*: the decisions they lead to
 * (opening a request, retiring, destroying) re-read the sealed rows first.
 */
#ifndef KM_SCHEDULE_INT_H
#define KM_SCHEDULE_INT_H

#include "ctx.h"
#include "policy.h"

/* Flags stored in keys.attention (the rest are added when read). */
#define SCHEDULE_STORED_FLAGS \
	(KM_ATTN_DUE | KM_ATTN_OVERDUE | KM_ATTN_NEAR_BOUND | KM_ATTN_COMPROMISED)

/* Every stored policy, each through its seal (KM_EINTEGRITY naming the
 * first whose MAC fails), sorted least specific first: global, prefixes
 * by length, keys.  *list is malloc'd (NULL when there is none). */
km_status policy_load_all(km_ctx *ctx, km_policy **list, size_t *n, km_err *e);

/* The effective policy of `key` from a list policy_load_all gave. */
void policy_effective_from(const km_policy *list, size_t n, const char *key, km_policy_effective *out);

/* Does the policy scope cover the key name?  "" covers every key, "p/"
 * every key starting with it, anything else only that key. */
int policy_scope_covers(const char *scope, const char *key);

/* Refresh one key's schedule columns after a change to its versions (the
 * caller's transaction).  A key that never had its policy values gets
 * them from the stored policies. */
km_status schedule_key_refresh(km_ctx *ctx, int64_t key_id, km_err *e);

/* Recompute the policy values and schedule of every key `scope` covers,
 * from `list` (the policies as they are after a change), in the caller's
 * transaction; *keys receives how many. */
km_status schedule_scope_recompute(km_ctx *ctx, const char *scope, const km_policy *list, size_t n,
                                   uint64_t *keys, km_err *e);

/* The status bar's counts at `now`: keys due (not overdue), and keys
 * overdue or with a compromised version still wrapping assets. */
km_status schedule_counts(km_ctx *ctx, int64_t now, uint64_t *due, uint64_t *overdue, km_err *e);

#endif
