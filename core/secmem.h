/*
 * secmem.h — where plaintext key material is allowed to live.
 *
 * Every plaintext key (KEK version, DEK) in keyward lives in a buffer from
 * km_secure_alloc(): OpenSSL's secure heap, which is mlock()ed, kept out of
 * core dumps, and cleansed on free.  Stack copies are forbidden; a fixed-size
 * struct on the stack holding a key is a bug.
 *
 * km_hygiene_init() must run first thing in main(): it disables core dumps
 * (prctl PR_SET_DUMPABLE 0, RLIMIT_CORE 0), sets umask 077 and initialises
 * the secure heap.
 *
 * The secure heap is locked only if RLIMIT_MEMLOCK lets OpenSSL mlock() it
 * (otherwise OpenSSL carries on with it unlocked), and it never covers the
 * key schedules OpenSSL keeps inside cipher contexts on the ordinary heap.
 * km_memlock_process() locks the whole process where the limit allows and
 * says plainly what is and is not locked where it does not; the front end
 * decides whether that is fatal (a system deployment) or a warning.
 */
#ifndef KM_SECMEM_H
#define KM_SECMEM_H

#include "km.h"

/* Size of the locked arena; holds the bounded KEK cache and in-flight DEKs. */
#define KM_SECURE_HEAP_BYTES (256 * 1024)

/* Process-wide hardening; idempotent.  Fails only if the secure heap cannot
 * be created (then *e says why); core-dump suppression never fails silently:
 * a failure of prctl/setrlimit is also returned. */
km_status km_hygiene_init(km_err *e);

/* Allocate n zeroed bytes of locked memory.  NULL on exhaustion. */
void *km_secure_alloc(size_t n);

/* Cleanse and free memory from km_secure_alloc (NULL is fine). */
void km_secure_free(void *p, size_t n);

/* 1 if the secure heap is initialised (CRYPTO_secure_malloc_initialized)
 * and its pages are locked: OpenSSL's own mlock() worked (its init returned
 * 1, not 2), or km_memlock_process() locked every page since.  0 else. */
int km_secure_heap_locked(void);

/* How much of the process is kept out of swap. */
typedef enum km_memlock_level {
	KM_MEMLOCK_NONE,    /* nothing: keys may be written to swap */
	KM_MEMLOCK_KEYS,    /* the secure heap only: KEKs and DEKs, not cipher contexts */
	KM_MEMLOCK_PROCESS, /* every page, now and later (mlockall), cipher contexts too */
} km_memlock_level;

typedef struct km_memlock_state {
	km_memlock_level level;
	int heap_locked;       /* km_secure_heap_locked() */
	int exempt;            /* CAP_IPC_LOCK (root): the limit does not apply */
	uint64_t limit_bytes;  /* RLIMIT_MEMLOCK soft limit; UINT64_MAX = unlimited */
	uint64_t need_bytes;   /* what locking every page needs: the process's
	                        * mapped size now + KM_MEMLOCK_HEADROOM, whole MiB */
} km_memlock_state;

/* Room for what the process maps after locking (thread stacks, malloc
 * arenas, the PKCS#11 module, SQLite's cache): with MCL_FUTURE each new
 * mapping counts against RLIMIT_MEMLOCK in full, and one past the limit
 * fails (a malloc or a thread start), so the lock is taken only when the
 * limit leaves this much room.  Measured peaks: see secmem.c. */
#define KM_MEMLOCK_HEADROOM ((uint64_t)192 << 20)

/* The state now, without changing anything. */
void km_memlock_query(km_memlock_state *s);

/* Lock every page of the process, now and later:
 * mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT), tried only when the
 * limit allows it (exempt, unlimited, or limit >= need_bytes) — never
 * into a limit that later allocations would hit.  ONFAULT: pages are
 * locked as they are first touched, so reserved but unused address space
 * costs no memory.  Idempotent.  Fills *s (may be NULL) either way.
 *
 * KM_OK when every page is locked.  Otherwise *s says what is locked and
 * *e is the sentence to show, e.g. "locked memory unavailable:
 * RLIMIT_MEMLOCK is 64 KiB; raise it (ulimit -l / LimitMEMLOCK=) to at
 * least 224 MiB; nothing is locked: keys may be written to swap" —
 * KM_ELIMIT when the limit is the reason, KM_ENOMEM when mlockall failed
 * within it.  Call after km_hygiene_init(). */
km_status km_memlock_process(km_memlock_state *s, km_err *e);

/* 1 when km_memlock_process locked every page under a finite
 * RLIMIT_MEMLOCK (not exempt): each new mapping then spends that limit in
 * full, so optional mappings (a lineage walk's map of the catalogue) are
 * better not made. */
int km_memlock_bounded(void);

#endif
