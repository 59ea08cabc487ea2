/*
 * bigbuf.c — huge-page scratch buffers (bigbuf.h).
 *
 * A mapping is rounded up to 2 MiB and placed on a 2 MiB boundary (mapped
 * 2 MiB longer, the ends trimmed), since the kernel backs only aligned
 * 2 MiB ranges with huge pages.  Growing maps anew and copies: a copy of
 * huge pages is cheap next to the faults it saves, and mremap may move the
 * range off its boundary.
 */
#include "bigbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_SZ ((size_t)2 << 20)

static size_t mapped_len(size_t bytes)
{
	return (bytes + HUGE_SZ - 1) & ~(HUGE_SZ - 1);
}

static void *map_aligned(size_t len)
{
	if (len > SIZE_MAX - HUGE_SZ)
		return NULL;
	unsigned char *raw = mmap(NULL, len + HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)raw + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1);
	unsigned char *p = (unsigned char *)start;
	size_t head = (size_t)(p - raw), tail = HUGE_SZ - head;
	if (head)
		munmap(raw, head);
	if (tail)
		munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
	/* Advice: where the kernel has no huge pages this fails and the
	 * buffer works as ordinary pages. */
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

void *km_big_realloc(void *p, size_t old_bytes, size_t new_bytes)
{
	int was_mapped = p && old_bytes >= KM_BIG_MIN;
	if (new_bytes < KM_BIG_MIN) {
		if (!was_mapped)
			return realloc(p, new_bytes ? new_bytes : 1);
		void *np = malloc(new_bytes ? new_bytes : 1);
		if (!np)
			return NULL;
		memcpy(np, p, new_bytes);
		munmap(p, mapped_len(old_bytes));
		return np;
	}
	if (was_mapped && mapped_len(new_bytes) == mapped_len(old_bytes))
		return p;
	void *np = map_aligned(mapped_len(new_bytes));
	if (!np)
		return NULL;
	if (p) {
		memcpy(np, p, old_bytes < new_bytes ? old_bytes : new_bytes);
		km_big_free(p, old_bytes);
	}
	return np;
}

void *km_big_zalloc(size_t n)
{
	void *p = km_big_realloc(NULL, 0, n);
	if (p && n < KM_BIG_MIN)
		memset(p, 0, n);
	return p;
}

void km_big_free(void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes >= KM_BIG_MIN)
		munmap(p, mapped_len(bytes));
	else
		free(p);
}
