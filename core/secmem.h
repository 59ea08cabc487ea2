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

/* 1 if the secure heap is up (locked memory), 0 if we fell back. */
int km_secure_heap_active(void);

#endif
