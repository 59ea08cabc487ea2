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

/* Index of (key_id, version), or c->n if absent. */
static size_t find(const kek_cache *c, int64_t key_id, uint32_t version)
{
	size_t i = 0;
	while (i < c->n && (c->e[i].key_id != key_id || c->e[i].version != version))
		i++;
	return i;
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
	if (!c)
		return;
	size_t i = find(c, key_id, version);
	if (i < c->n)
		drop(c, i);
}

/* Charge a use; 0 if that would break a bound. */
static int charge_use(kek_cache *c, kek_entry *x)
{
	if (mono_now() - x->born >= c->lim.max_age_s)
		return 0;
	if (x->uses + 1 > c->lim.max_uses)
		return 0;
	if (x->bytes >= c->lim.max_bytes)
		return 0;
	x->uses++;
	x->stamp = ++c->clock;
	return 1;
}

const uint8_t *kek_cache_get(kek_cache *c, int64_t key_id, uint32_t version)
{
	if (!c)
		return NULL;
	size_t i = find(c, key_id, version);
	if (i == c->n)
		return NULL;
	if (!charge_use(c, &c->e[i])) {
		drop(c, i);
		return NULL;
	}
	return c->e[i].key;
}

int kek_cache_charge_bytes(kek_cache *c, int64_t key_id, uint32_t version, uint64_t bytes)
{
	if (!c)
		return 0;
	size_t i = find(c, key_id, version);
	if (i == c->n)
		return 0;
	kek_entry *x = &c->e[i];
	x->bytes = bytes > UINT64_MAX - x->bytes ? UINT64_MAX : x->bytes + bytes;
	if (x->bytes >= c->lim.max_bytes) {
		drop(c, i);
		return 0;
	}
	return 1;
}

const uint8_t *kek_cache_put(kek_cache *c, int64_t key_id, uint32_t version, uint8_t *key)
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
	*x = (kek_entry){key_id, version, key, mono_now(), 1, 0, ++c->clock};
	return x->key;
}
