/*
 * kekcache.c — a small LRU of unwrapped KEK versions in locked memory.
 *
 * Linear search: max_entries is tens, and the cost is dwarfed by the HSM
 * round trip it saves.
 */
#include "kekcache.h"
#include "secmem.h"

#include <stdlib.h>
#include <time.h>

typedef struct kek_entry {
	int64_t key_id;
	uint32_t version;
	uint8_t *key;   /* 32 bytes, km_secure_alloc */
	int64_t born;
	uint64_t uses, bytes;
	uint64_t stamp; /* LRU clock */
} kek_entry;

struct kek_cache {
	kek_cache_limits lim;
	kek_entry *e;
	size_t n;
	uint64_t clock;
};

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

kek_cache *kek_cache_new(const kek_cache_limits *l)
{
	kek_cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->lim = *l;
	if (c->lim.max_entries == 0)
		c->lim.max_entries = 1;
	c->e = calloc(c->lim.max_entries, sizeof *c->e);
	if (!c->e) {
		free(c);
		return NULL;
	}
	return c;
}

static void drop(kek_cache *c, size_t i)
{
	km_secure_free(c->e[i].key, 32);
	c->e[i] = c->e[--c->n];
}

void kek_cache_clear(kek_cache *c)
{
	if (!c)
		return;
	while (c->n)
		drop(c, 0);
}

void kek_cache_free(kek_cache *c)
{
	if (!c)
		return;
	kek_cache_clear(c);
	free(c->e);
	free(c);
}

size_t kek_cache_size(const kek_cache *c) { return c ? c->n : 0; }

void kek_cache_evict(kek_cache *c, int64_t key_id, uint32_t version)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->e[i].key_id == key_id && c->e[i].version == version) {
			drop(c, i);
			return;
		}
}

/* Charge a use; 0 if that would break a bound. */
static int charge(kek_cache *c, kek_entry *x, uint64_t bytes)
{
	if (mono_now() - x->born >= c->lim.max_age_s)
		return 0;
	if (x->uses + 1 > c->lim.max_uses)
		return 0;
	if (x->bytes + bytes > c->lim.max_bytes)
		return 0;
	x->uses++;
	x->bytes += bytes;
	x->stamp = ++c->clock;
	return 1;
}

const uint8_t *kek_cache_get(kek_cache *c, int64_t key_id, uint32_t version, uint64_t bytes)
{
	for (size_t i = 0; c && i < c->n; i++) {
		kek_entry *x = &c->e[i];
		if (x->key_id != key_id || x->version != version)
			continue;
		if (!charge(c, x, bytes)) {
			drop(c, i);
			return NULL;
		}
		return x->key;
	}
	return NULL;
}

const uint8_t *kek_cache_put(kek_cache *c, int64_t key_id, uint32_t version,
                             uint8_t *key, uint64_t bytes)
{
	kek_cache_evict(c, key_id, version);
	if (c->n == c->lim.max_entries) {
		size_t lru = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->e[i].stamp < c->e[lru].stamp)
				lru = i;
		drop(c, lru);
	}
	kek_entry *x = &c->e[c->n++];
	*x = (kek_entry){key_id, version, key, mono_now(), 1, bytes, ++c->clock};
	return x->key;
}
