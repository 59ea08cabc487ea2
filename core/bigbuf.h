/*
 * bigbuf.h — internal to core/: scratch arrays of megabytes that one call
 * fills once and frees (a wide lineage walk's visit arrays, its copy of
 * the packed edge table, the nodes it loads).
 *
 * Why not plain malloc: on the virtual machines keyward is measured on,
 * the first touch of fresh memory costs about 11 us per 4 KiB page (16 MiB
 * in 45 ms), and that was half of a cold impact walk over 100k nodes.
 * Large buffers from here are mapped on 2 MiB boundaries and advised as
 * huge pages (MADV_HUGEPAGE), which the kernel honours when transparent
 * huge pages are "madvise" or "always" (the same 16 MiB: 1.2 ms).  Where it
 * does not, they cost what malloc'd memory costs.  Sizes under
 * KM_BIG_MIN stay on the heap.
 *
 * Nothing secret goes here: these pages are not cleansed on free (keys
 * live in km_secure_alloc, secmem.h).  Under mlockall they are locked as
 * they are touched, like every page; a mapping counts against
 * RLIMIT_MEMLOCK in full, rounded up to 2 MiB, so callers keep their
 * sizes to what they will fill (KM_MEMLOCK_HEADROOM).
 */
#ifndef KM_BIGBUF_H
#define KM_BIGBUF_H

#include <stddef.h>

#define KM_BIG_MIN ((size_t)256 << 10)

/* p (from here, old_bytes its size; NULL with 0 for none) resized to
 * new_bytes, its first min(old, new) bytes kept, the rest undefined.  NULL
 * when out of memory, p then left as it was. */
void *km_big_realloc(void *p, size_t old_bytes, size_t new_bytes);

/* n zeroed bytes (n may be 0: a pointer to free with size 0). */
void *km_big_zalloc(size_t n);

/* Free p, bytes its size as last allocated or resized. */
void km_big_free(void *p, size_t bytes);

#endif
