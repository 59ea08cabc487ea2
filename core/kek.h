/*
 * kek.h — key-encryption keys: named scopes with versions and tags.
 *
 * A KEK is named by scope ("features/credit-risk", "models/fraud-v4").
 * Each version's material exists only wrapped by the HSM root; the plaintext
 * is unwrapped on demand into the bounded, locked KEK cache (kekcache.h).
 * Every function authorises and audits through keyward.h.
 */
#ifndef KM_KEK_H
#define KM_KEK_H

#include "keyward.h"
#include "keystate.h"

#define KM_KEY_NAME_MAX 128
#define KM_TAG_KEY_MAX 64
#define KM_TAG_VALUE_MAX 256

/* Validate a key name: 1..128 chars of [a-z0-9._-] in '/'-separated
 * segments, no empty segment, no leading/trailing '/'.  The message says
 * what is wrong and where. */
km_status km_key_name_validate(const char *name, km_err *e);

/* Parse "k=v"; key [a-z0-9_.-]{1,64}, value printable UTF-8 up to 256
 * bytes (empty value allowed: "k=" removes the tag in km_key_tag). */
km_status km_tag_parse(const char *kv, char key[KM_TAG_KEY_MAX + 1],
                       char value[KM_TAG_VALUE_MAX + 1], km_err *e);

typedef struct km_key_info {
	int64_t id;
	char name[KM_KEY_NAME_MAX + 1];
	uint32_t current_version;      /* newest version not pending (0 if none) */
	km_key_state current_state;
	int64_t created;               /* key creation */
	int64_t current_created;       /* current version creation: its age */
	uint64_t assets;               /* assets under any version */
	int64_t last_used;             /* 0 = never */
	char created_by[64];
	char tags[512];                /* "k=v, k=v" sorted by key, clipped */
} km_key_info;

typedef struct km_key_version_info {
	uint32_t version;
	km_key_state state;
	int64_t created, activated, deactivated, destroy_after, destroyed;
	uint64_t wraps;   /* DEKs wrapped (durable count) */
	uint64_t assets;  /* assets protected */
	int64_t last_used;
} km_key_version_info;

typedef struct km_tag { char key[KM_TAG_KEY_MAX + 1]; char value[KM_TAG_VALUE_MAX + 1]; } km_tag;

/* ---- changes (each one transaction with its audit event) ------------- */

/* Create a KEK with version 1 active.  tags may be NULL. */
km_status km_key_create(km_ctx *ctx, const char *name, const km_tag *tags,
                        size_t ntags, km_err *e);

/* Create n keys (each with version 1 active and the same tags) in one
 * transaction, one audit event each: imports, demo content, benchmarks. */
km_status km_key_create_bulk(km_ctx *ctx, const char *const *names, size_t n,
                             const km_tag *tags, size_t ntags, km_err *e);

/* Set (or with an empty value remove) tags. */
km_status km_key_tag(km_ctx *ctx, const char *name, const km_tag *tags,
                     size_t ntags, km_err *e);

/* Rotation and state changes are requests (request.h): km_request_rotate,
 * km_request_state, km_request_destroy, km_key_compromise. */

/* ---- reads ------------------------------------------------------------- */

km_status km_key_get(km_ctx *ctx, const char *name, km_key_info *out, km_err *e);

/* Versions newest first. */
km_status km_key_versions(km_ctx *ctx, const char *name,
                          int (*cb)(void *c, const km_key_version_info *v),
                          void *cbctx, km_err *e);

km_status km_key_tags(km_ctx *ctx, const char *name,
                      int (*cb)(void *c, const km_tag *t), void *cbctx, km_err *e);

/* Keyset-paginated listing: the console loads only what is visible.
 * filter: NULL/"" = all; "text" = name contains text; "tag:value" = keys
 * whose tag `tag` equals value (e.g. "sensitivity:high").
 * The cursor is the last row of the previous page (after) or the first row
 * of the next page (before, with `backwards` set: rows come in reverse). */
#define KM_KEY_SORTS(X)                        \
	X(KM_KEY_SORT_NAME,     "name")            \
	X(KM_KEY_SORT_VERSION,  "version")         \
	X(KM_KEY_SORT_STATE,    "state")           \
	X(KM_KEY_SORT_AGE,      "age")             \
	X(KM_KEY_SORT_ASSETS,   "assets")          \
	X(KM_KEY_SORT_LAST_USE, "last-use")

typedef enum km_key_sort {
#define KSORT_ENUM(e, name) e,
	KM_KEY_SORTS(KSORT_ENUM)
#undef KSORT_ENUM
	KM_KEY_SORT_COUNT
} km_key_sort;

const char *km_key_sort_name(km_key_sort s);

typedef struct km_key_query {
	const char *filter;
	km_key_sort sort;
	int descending;
	const km_key_info *cursor; /* NULL: from the start (or end if backwards) */
	int backwards;
	int limit;
} km_key_query;

km_status km_key_list(km_ctx *ctx, const km_key_query *q,
                      int (*cb)(void *c, const km_key_info *k), void *cbctx, km_err *e);

/* Number of keys matching a filter (for "n of N" displays).  Unfiltered it
 * is exact and O(1); a filtered count stops at KM_KEY_COUNT_CAP + 1, so a
 * keystroke in the filter never scans past what a person can use — show
 * "more than KM_KEY_COUNT_CAP" then. */
#define KM_KEY_COUNT_CAP 5000
km_status km_key_count(km_ctx *ctx, const char *filter, uint64_t *n, km_err *e);

#endif
