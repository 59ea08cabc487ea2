/*
 * schedule.h — what is due, and the scheduler that acts on it.
 *
 * A key's current version is due when its policy's cadence has passed
 * since it became active, or when 90 % of its usage bound is used; it is
 * overdue past twice the cadence or at the bound; compromised versions
 * still protecting assets and versions near the bound are flagged too.
 * Times come from the session clock (km_ctx_now), so tests move time with
 * km_set_clock and never with an environment variable.
 */
#ifndef KM_SCHEDULE_H
#define KM_SCHEDULE_H

#include "keyward.h"
#include "keystate.h"
#include "request.h"

enum {
	KM_ATTN_DUE         = 1u << 0,
	KM_ATTN_OVERDUE     = 1u << 1,
	KM_ATTN_NEAR_BOUND  = 1u << 2, /* >= 90 % of the usage bound */
	KM_ATTN_COMPROMISED = 1u << 3, /* a compromised version still protects assets */
	KM_ATTN_PENDING_REQ = 1u << 4, /* a request for this key is open */
	KM_ATTN_JOB         = 1u << 5, /* a rewrap/re-encryption job is not finished */
};

/* Short words for flags: "overdue,compromised". */
void km_attention_format(unsigned flags, char *buf, size_t cap);

typedef struct km_schedule_entry {
	char key[129];
	uint32_t version;            /* current version */
	km_key_state state;
	unsigned attention;          /* KM_ATTN_* */
	int64_t last_rotation;       /* current version's activation */
	int64_t due;                 /* when the cadence runs out */
	uint64_t wraps, usage_bound; /* usage of the current version */
	int64_t cadence_days;
	char policy_source[129];     /* where the cadence came from */
	char request_id[KM_REQUEST_ID_MAX]; /* an open request, or "" */
} km_schedule_entry;

/* Keys needing attention (attention != 0), soonest due first (compromised
 * and overdue first).  all != 0: every key, sorted the same way. */
km_status km_schedule_list(km_ctx *ctx, int all, int limit,
                           int (*cb)(void *c, const km_schedule_entry *s), void *cbctx, km_err *e);

/* Attention flags of one key (the inventory's marker). */
km_status km_key_attention(km_ctx *ctx, const char *key, unsigned *flags, km_err *e);

/* A retired version and when its destruction may be scheduled: the
 * policy's deprecation_days after it was retired (lifecycle.h). */
typedef struct km_retired_version {
	uint32_t version;
	int64_t retired;             /* when it entered retired */
	int64_t destroy_from;        /* destruction may be scheduled from then */
	int64_t deprecation_days;
	char deprecation_source[129]; /* where deprecation_days came from */
} km_retired_version;

/* The key's retired versions, oldest first, each loaded through its
 * seal.  Needs the right to read the key.  cb returns non-zero to stop. */
km_status km_key_retired_versions(km_ctx *ctx, const char *key,
                                  int (*cb)(void *c, const km_retired_version *r), void *cbctx, km_err *e);

/* What one `keyward rotate --due` run did or, with dry_run, would do. */
typedef struct km_due_action {
	char key[129];
	char what[32];               /* "open-request", "execute", "retire", "destroy", "expire", "resume-job" */
	char request_id[KM_REQUEST_ID_MAX];
	km_status outcome;           /* KM_OK, or why it failed (the run goes on) */
	char message[KM_ERR_MSG_MAX];
} km_due_action;

/* For cron: open a rotation request for each due key without one, execute
 * approved requests, resume interrupted jobs, retire versions past their
 * transition window with nothing left under them, destroy versions past
 * their destruction wait, and expire old requests.  Returns KM_OK when
 * every action succeeded, else the first failure's status. */
km_status km_rotate_due(km_ctx *ctx, int dry_run,
                        int (*cb)(void *c, const km_due_action *a), void *cbctx, km_err *e);

#endif
