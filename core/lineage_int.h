/*
 * lineage_int.h — internal to core/: the HTTP fetch behind km_lineage_pull.
 */
#ifndef KM_LINEAGE_INT_H
#define KM_LINEAGE_INT_H

#include "lineage.h"

typedef struct lineage_pull_stats {
	uint64_t pages, events, requests, retries, retry_after_waits;
} lineage_pull_stats;

/* Every event the server has (after o->since), page by page, as JSON lines
 * in *text (malloc'd, NUL-terminated, *len bytes).  Writes nothing. */
km_status lineage_pull_fetch(const char *base_url, const km_lineage_pull_opts *o, char **text,
                             size_t *len, lineage_pull_stats *stats, km_err *e);

/* km_lineage_impact and km_lineage_provenance without their own
 * km_op_begin/km_op_end, for callers inside one operation (reports).
 * as_of is already resolved (never 0). */
km_status lineage_impact_run(km_ctx *ctx, const char *key_name, uint32_t version, int64_t as_of,
                             int (*cb)(void *c, const km_lineage_hit *h), void *cbctx,
                             km_lineage_impact_summary *sum, km_err *e);
km_status lineage_provenance_run(km_ctx *ctx, const char *model_spec,
                                 int (*cb)(void *c, const km_lineage_input *in), void *cbctx,
                                 km_lineage_provenance_summary *sum, km_err *e);

/* km_lineage_node_find without the operation; want_kind NULL or a kind
 * name ("model": a bare NAME also matches the catalogue's "model:NAME"). */
km_status lineage_node_find_run(km_ctx *ctx, const char *spec, km_lineage_node *out,
                                const char *want_kind, km_err *e);

/* A rewrap batch moved every asset of key_id under from_version whose id
 * is in [first_id, last_id] to to_version (the caller splits its batch
 * around assets it could not move: they must not be in a range): close
 * their open protection intervals under from_version and open the same
 * nodes' under to_version, at the session's time, set-wise.  No trigger
 * watches assets.kek_version (db.c, v11): whoever changes it calls this,
 * inside the same transaction (the rewrap per run of moved assets, the
 * re-encryption per asset). */
km_status lineage_rewrapped(km_ctx *ctx, int64_t key_id, uint32_t from_version, uint32_t to_version,
                            int64_t first_id, int64_t last_id, km_err *e);

/* Known nodes past which km_lineage_impact's walk has proved wide and
 * reads the whole packed out-edge table in one scan (lineage_adj.h)
 * instead of a row per node; 0: never.  A variable so that tests can send
 * small graphs down either path. */
extern size_t lineage_impact_all_at;

/* The widest span of node ids a walk indexes directly instead of hashing
 * (lineage.c, walk_dense); 0: always hash.  A variable for the same
 * reason. */
extern size_t lineage_walk_dense_max;

/* lineage_redact.c: what the public queries wrap around the caller's
 * callbacks: each node redacted when the session is redacting, and each
 * provenance input given the approvals behind its key version.  The first
 * failure (an HSM MAC, a seal) stops the walk and is returned by
 * lineage_trampoline_end, which also withholds a redacted walk's cycle
 * example (it names nodes) and frees what the walk cached. */
typedef struct lineage_trampoline {
	km_ctx *ctx;
	int redact;
	int (*hit_cb)(void *c, const km_lineage_hit *h);
	int (*input_cb)(void *c, const km_lineage_input *in);
	void *c;
	km_status st;
	km_err err;
	void *approvals;      /* cache: one entry per key version met */
	size_t napprovals;
} lineage_trampoline;

int lineage_trampoline_hit(void *c, const km_lineage_hit *h);
int lineage_trampoline_input(void *c, const km_lineage_input *in);
km_status lineage_trampoline_end(lineage_trampoline *t, km_status st, char *cycle_example, size_t cap,
                                 km_err *e);

/* km_lineage_version_approvals without its own operation. */
km_status lineage_version_approvals_run(km_ctx *ctx, const char *key, uint32_t version,
                                        int (*cb)(void *c, const km_lineage_approval *a), void *cbctx,
                                        km_err *e);

#endif
