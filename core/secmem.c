/*
 * secmem.c — locked memory for keys and process hardening.
 */
#include "secmem.h"

#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <errno.h>
#include <string.h>

static int secure_heap_up;

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
		 * still cleansed, just not pinned; report through the accessor. */
		secure_heap_up = (rc == 1) ? 1 : 2;
	}
	return KM_OK;
}

int km_secure_heap_active(void)
{
	return secure_heap_up == 1 && CRYPTO_secure_malloc_initialized();
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
