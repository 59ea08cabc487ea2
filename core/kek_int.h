/*
 * kek_int.h — internal to core/: KEK lookups shared by kek.c and asset.c.
 */
#ifndef KM_KEK_INT_H
#define KM_KEK_INT_H

#include "ctx.h"
#include "keystate.h"

typedef struct kek_version_row {
	int64_t key_id;
	uint32_t version;
	km_key_state state;
	uint8_t wrapped[64];
	size_t wrapped_len;
	uint64_t wraps;
	int64_t retired; /* when it last entered retired (0: not retired since) */
} kek_version_row;

/* The key's id, or KM_ENOTFOUND "no key named X". */
km_status kek_lookup_id(km_ctx *ctx, const char *name, int64_t *id, km_err *e);

/* One version row; version 0 = the active version (KM_ESTATE if none).
 * The row's HSM MAC is checked: KM_EINTEGRITY naming the version when it
 * fails, so no decision ever uses an edited state or counter. */
km_status kek_version_load(km_ctx *ctx, const char *name, uint32_t version,
                           kek_version_row *row, km_err *e);

/* Re-seal a version row after a change, inside the caller's transaction
 * (which must have loaded it with kek_version_load first, so an edited row
 * is never laundered into a sealed one).  With `details` (may be NULL),
 * the change is noted for the audit event (km_sealed_note). */
km_status kek_version_seal(km_ctx *ctx, int64_t key_id, uint32_t version, json_t *details, km_err *e);

/* Insert a new active version with its wrapped material and seal it,
 * inside the caller's transaction (details as kek_version_seal). */
km_status kek_version_insert(km_ctx *ctx, int64_t key_id, uint32_t version,
                             const uint8_t *wrapped, size_t wlen, json_t *details, km_err *e);

/* Plaintext of a version, from the cache or unwrapped by the HSM root;
 * valid until the next cache call.  One use is charged to the cache; the
 * bytes that then pass through the data key are charged by the caller
 * (kek_cache_charge_bytes on ctx->cache) once the stream has ended. */
km_status kek_material(km_ctx *ctx, const kek_version_row *row, const uint8_t **key, km_err *e);

/* Recompute keys.cur_* / assets / last_used for one key (in a tx). */
km_status kek_summary_refresh(km_ctx *ctx, int64_t key_id, km_err *e);

/* Check every key version's seal, as user_rows_verify does for users (the
 * recorded digest covers every sealed field but the wrap counter, which
 * protect moves outside the transaction of its event). */
km_status kek_versions_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                              char *problem, size_t cap, km_err *e);

#endif
