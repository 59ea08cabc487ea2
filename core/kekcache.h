/*
 * kekcache.h — unwrapped KEK versions held in locked memory, bounded.
 *
 * Unwrapping needs the HSM (about 19k/s, and a process round trip on a
 * network HSM), so a session keeps recently used versions — but only within
 * bounds, as the AWS Encryption SDK's caching materials manager does: an
 * entry expires after max_age seconds, after max_uses uses, or after
 * max_bytes bytes protected under it, and at most max_entries are held
 * (least recently used evicted).  Entries are cleansed when they go.
 * kek.c evicts a version at once when it leaves a state that allows use.
 *
 * Uses are charged when the key is handed out (get, put).  Bytes are
 * charged by the caller once it knows them (a stream's length is known
 * only at its end): kek_cache_charge_bytes after each protect and
 * unprotect.  Bytes through the data keys of protect and unprotect both
 * count, as both count as uses.  An entry whose bytes reach max_bytes is
 * evicted then, so the next use unwraps afresh; only the one stream that
 * crossed the bound ran past it.
 */
#ifndef KM_KEKCACHE_H
#define KM_KEKCACHE_H

#include "km.h"

typedef struct kek_cache kek_cache;

typedef struct kek_cache_limits {
	int64_t max_age_s;
	uint64_t max_uses;
	uint64_t max_bytes;
	uint32_t max_entries;
} kek_cache_limits;

kek_cache *kek_cache_new(const kek_cache_limits *l);
void kek_cache_free(kek_cache *c);

/* The cached key for (key_id, version), charged one use, or NULL if
 * absent or over a bound (then the entry is dropped).  The pointer is
 * valid until the next call on the cache. */
const uint8_t *kek_cache_get(kek_cache *c, int64_t key_id, uint32_t version);

/* Take ownership of `key` (32 bytes from km_secure_alloc) and return it;
 * charges one use. */
const uint8_t *kek_cache_put(kek_cache *c, int64_t key_id, uint32_t version, uint8_t *key);

/* Charge `bytes` protected or unprotected under (key_id, version); evicts
 * the entry once its total reaches max_bytes.  Returns 1 if the entry is
 * still held, 0 if it was evicted or was not there (nothing to charge: it
 * was evicted earlier, and the next use unwraps afresh anyway). */
int kek_cache_charge_bytes(kek_cache *c, int64_t key_id, uint32_t version, uint64_t bytes);

void kek_cache_evict(kek_cache *c, int64_t key_id, uint32_t version);
void kek_cache_clear(kek_cache *c);
size_t kek_cache_size(const kek_cache *c);

#endif
