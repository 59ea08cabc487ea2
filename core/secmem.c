/*
 * secmem.c — locked memory for keys and process hardening.
 *
 * KM_MEMLOCK_HEADROOM: keyward maps about 11 MiB when it starts.  Peaks
 * (VmPeak, everything mapped, with every page locked; 2 cores): protect or
 * unprotect of 1 GiB 28 MiB, demo --events 200000 35 MiB, audit verify
 * 157 MiB — its hashing thread gets a malloc arena, which glibc reserves
 * as a 128 MiB mapping before trimming it to 64 MiB, and a locked mapping
 * counts in full even where never touched.  192 MiB covers that with room
 * for a larger PKCS#11 module than SoftHSM2.
 */
#include "secmem.h"

#include <openssl/crypto.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0: not made by km_hygiene_init; 1: made and mlock()ed; 2: made, but
 * OpenSSL's mlock() failed (the limit), so it is not pinned. */
static int secure_heap_up;
/* mlockall(MCL_CURRENT | MCL_FUTURE) is in force. */
static int process_locked;
/* ... and every new mapping counts against a finite RLIMIT_MEMLOCK. */
static int lock_bounded;

km_status km_hygiene_init(km_err *e)
{
	struct rlimit no_core = {0, 0};

	umask(077);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return km_fail(e, KM_EINTERNAL, "cannot disable core dumps (prctl): %s", strerror(errno));
	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		return km_fail(e, KM_EINTERNAL, "cannot disable core dumps (setrlimit): %s", strerror(errno));
	if (!secure_heap_up) {
		/* minsize 32: one AES-256 key is the smallest thing we store. */
		int rc = CRYPTO_secure_malloc_init(KM_SECURE_HEAP_BYTES, 32);
		if (rc == 0)
			return km_fail(e, KM_ENOMEM, "cannot create the locked key heap (%d KiB); "
			               "raise RLIMIT_MEMLOCK (ulimit -l)", KM_SECURE_HEAP_BYTES / 1024);
		/* rc == 2 means the heap exists but mlock failed: still usable,
		 * still cleansed, just not pinned; km_memlock_process() and
		 * km_secure_heap_locked() report it. */
		secure_heap_up = (rc == 1) ? 1 : 2;
	}
	return KM_OK;
}

int km_secure_heap_locked(void)
{
	return CRYPTO_secure_malloc_initialized() && (secure_heap_up == 1 || process_locked);
}

/* The value of the line "NAME:\tvalue" of /proc/self/status, or NULL. */
static char *status_field(const char *name, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return NULL;
	size_t nl = strlen(name);
	char line[256];
	char *found = NULL;
	while (!found && fgets(line, sizeof line, f))
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			km_strlcpy(out, line + nl + 1, cap);
			found = out;
		}
	fclose(f);
	return found;
}

/* Bytes mapped now (VmSize: what MCL_CURRENT has to fit in the limit). */
static uint64_t mapped_bytes(void)
{
	char v[64];
	return status_field("VmSize", v, sizeof v) ? strtoull(v, NULL, 10) * 1024 : 0;
}

/* CAP_IPC_LOCK in the effective set: RLIMIT_MEMLOCK does not apply. */
static int can_lock_any(void)
{
	char v[64];
	if (!status_field("CapEff", v, sizeof v))
		return 0;
	return (strtoull(v, NULL, 16) >> CAP_IPC_LOCK) & 1;
}

static const char *size_text(uint64_t b, char *buf, size_t cap)
{
	if (b == UINT64_MAX)
		snprintf(buf, cap, "unlimited");
	else if (b >= (1u << 20) && b % (1u << 20) == 0)
		snprintf(buf, cap, "%" PRIu64 " MiB", b >> 20);
	else if (b % 1024 == 0)
		snprintf(buf, cap, "%" PRIu64 " KiB", b >> 10);
	else
		snprintf(buf, cap, "%" PRIu64 " bytes", b);
	return buf;
}

void km_memlock_query(km_memlock_state *s)
{
	struct rlimit rl = {0, 0};
	getrlimit(RLIMIT_MEMLOCK, &rl);
	const uint64_t mib = (uint64_t)1 << 20;
	s->limit_bytes = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	s->exempt = can_lock_any();
	s->need_bytes = (mapped_bytes() + KM_MEMLOCK_HEADROOM + mib - 1) / mib * mib;
	s->heap_locked = km_secure_heap_locked();
	s->level = process_locked ? KM_MEMLOCK_PROCESS : s->heap_locked ? KM_MEMLOCK_KEYS : KM_MEMLOCK_NONE;
}

int km_memlock_bounded(void)
{
	return lock_bounded;
}

km_status km_memlock_process(km_memlock_state *out, km_err *e)
{
	km_memlock_state s;
	km_memlock_query(&s);
	int err = 0;
	if (!process_locked && (s.exempt || s.limit_bytes >= s.need_bytes)) {
		/* The system call itself: a sanitizer's mlockall() returns 0
		 * and locks nothing, and this must report what is true. */
		if (syscall(SYS_mlockall, MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
			process_locked = 1;
		else if (errno == EINVAL && syscall(SYS_mlockall, MCL_CURRENT | MCL_FUTURE) == 0)
			process_locked = 1; /* a kernel before 4.4: no ONFAULT */
		else
			err = errno;
		km_memlock_query(&s);
		lock_bounded = process_locked && !s.exempt && s.limit_bytes != UINT64_MAX;
	}
	if (out)
		*out = s;
	if (s.level == KM_MEMLOCK_PROCESS)
		return KM_OK;
	char lim[32], need[32];
	const char *what = s.level == KM_MEMLOCK_KEYS
		? "only the key heap is locked: cipher contexts may be written to swap"
		: "nothing is locked: keys may be written to swap";
	size_text(s.limit_bytes, lim, sizeof lim);
	if (err)
		return km_fail(e, KM_ENOMEM, "locked memory unavailable: mlockall failed (%s) with "
		               "RLIMIT_MEMLOCK at %s; %s", strerror(err), lim, what);
	return km_fail(e, KM_ELIMIT, "locked memory unavailable: RLIMIT_MEMLOCK is %s; raise it "
	               "(ulimit -l / LimitMEMLOCK=) to at least %s; %s", lim,
	               size_text(s.need_bytes, need, sizeof need), what);
}

void *km_secure_alloc(size_t n)
{
	/* OPENSSL_secure_zalloc falls back to the ordinary heap when the secure
	 * heap is not initialised; that path is only taken in unit tests that
	 * skip km_hygiene_init, and the memory is still cleansed on free. */
	return OPENSSL_secure_zalloc(n);
}

void km_secure_free(void *p, size_t n)
{
	if (p)
		OPENSSL_secure_clear_free(p, n);
}
