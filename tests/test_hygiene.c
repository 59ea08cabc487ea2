/*
 * test_hygiene.c — key material never reaches disk, and the process
 * hardening holds.
 *
 * The test takes the real plaintexts (the KEK through the core's internal
 * cache path, the DEK by unwrapping the catalogue's wrapped DEK with it)
 * and then searches every file of the deployment — token directory,
 * catalogue, its WAL and shm, config, envelopes — for them, raw and hex.
 */
#include "th_deploy.h"
#include "asset.h"
#include "ctx.h"
#include "db.h"
#include "dek.h"
#include "kek.h"
#include "kek_int.h"
#include "secmem.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <inttypes.h>
#include <unistd.h>

static th_deploy D;

static void teardown(void) { th_deploy_teardown(&D); }

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
			return 1;
	return 0;
}

/* Number of files under dir holding the needle (raw or lowercase hex). */
static int scan(const char *dir, const uint8_t *key, size_t len, int *files_seen)
{
	char hex[2 * 64 + 1];
	for (size_t i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int hits = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		struct stat sb;
		if (lstat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			hits += scan(path, key, len, files_seen);
			continue;
		}
		if (!S_ISREG(sb.st_mode) || sb.st_size == 0)
			continue;
		(*files_seen)++;
		int fd = open(path, O_RDONLY);
		uint8_t *buf = malloc((size_t)sb.st_size);
		ck_assert_int_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
		close(fd);
		if (contains(buf, (size_t)sb.st_size, key, len) ||
		    contains(buf, (size_t)sb.st_size, (const uint8_t *)hex, 2 * len)) {
			fprintf(stderr, "searched bytes found in %s\n", path);
			hits++;
		}
		free(buf);
	}
	closedir(d);
	return hits;
}

START_TEST(no_plaintext_key_on_disk)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/credit-risk", NULL, 0, &e), KM_OK);
	char env_path[512], out_path[512], in_path[512];
	snprintf(in_path, sizeof in_path, "%s/plain.csv", D.home);
	snprintf(env_path, sizeof env_path, "%s/x.kwe", D.home);
	snprintf(out_path, sizeof out_path, "%s/back.csv", D.home);
	FILE *f = fopen(in_path, "w");
	for (int i = 0; i < 5000; i++)
		fprintf(f, "%d,income,%d\n", i, i * 31);
	fclose(f);
	int in = open(in_path, O_RDONLY);
	km_asset_info a;
	ck_assert_msg(km_protect(ctx, "features/credit-risk", "feature:credit-risk/income@1", in, -1, env_path, &a, &e) == KM_OK, "%s", e.msg);
	close(in);
	int env = open(env_path, O_RDONLY);
	ck_assert_msg(km_unprotect(ctx, env, -1, out_path, NULL, &e) == KM_OK, "%s", e.msg);
	close(env);
	ck_assert_int_eq(th_rotate(&D, ctx, "features/credit-risk", NULL, &e), KM_OK);

	/* The real plaintexts, recovered the way the core itself does. */
	kek_version_row row;
	ck_assert_int_eq(kek_version_load(ctx, "features/credit-risk", 1, &row, &e), KM_OK);
	const uint8_t *kek_ref;
	ck_assert_int_eq(kek_material(ctx, &row, &kek_ref, &e), KM_OK);
	uint8_t kek[32];
	memcpy(kek, kek_ref, 32);
	sqlite3_stmt *q;
	ck_assert_int_eq(km_db_prepare(km_db(ctx), "SELECT wrapped_dek FROM assets WHERE id = ?", &q, &e), KM_OK);
	sqlite3_bind_int64(q, 1, a.id);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	memcpy(wrapped, sqlite3_column_blob(q, 0), sizeof wrapped);
	sqlite3_finalize(q);
	km_asset_ref ref = {a.uid, a.kind, a.name, a.version, a.kek_name, a.kek_version};
	uint8_t dek[32];
	ck_assert_int_eq(dek_unwrap(kek, wrapped, &ref, dek, &e), KM_OK);
	km_close(ctx);

	int files = 0;
	ck_assert_int_eq(scan(D.hsm.dir, kek, sizeof kek, &files), 0);
	ck_assert_int_eq(scan(D.hsm.dir, dek, sizeof dek, &files), 0);
	/* token files, keyward.db (+ -wal), config.json, envelope, plaintexts */
	ck_assert_int_ge(files, 8);
	/* and the scan can find what is there: the plaintext pattern */
	const char *pattern = "4242,income,131502";
	ck_assert_int_eq(scan(D.home, (const uint8_t *)pattern, strlen(pattern), &files), 2); /* plain + back */
	OPENSSL_cleanse(kek, sizeof kek);
	OPENSSL_cleanse(dek, sizeof dek);
}
END_TEST

START_TEST(process_hardening)
{
	km_err e;
	ck_assert_int_eq(km_hygiene_init(&e), KM_OK);
	ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_CORE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 0);
	mode_t old = umask(0);
	ck_assert_uint_eq(old, 077);
	umask(old);
	uint8_t *k = km_secure_alloc(32);
	ck_assert_ptr_nonnull(k);
	ck_assert(CRYPTO_secure_allocated(k));
	km_secure_free(k, 32);
}
END_TEST

/* ---- locked memory under RLIMIT_MEMLOCK ---- */

typedef struct memlock_outcome {
	int ran;                 /* 0: the child could not set up the scenario */
	km_status rc;
	km_memlock_state s;
	char msg[KM_ERR_MSG_MAX];
	uint64_t vm_lck;         /* VmLck after km_memlock_process */
	int key_locked;          /* a km_secure_alloc block is in locked memory */
	int heap_locked;         /* 4 MiB of ordinary heap, touched afterwards, are */
} memlock_outcome;

static uint64_t vm_locked(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	uint64_t kib = UINT64_MAX;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmLck:", 6) == 0)
			kib = strtoull(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib * 1024;
}

/* 1 if the mapping holding p is locked (VM_LOCKED: "lo" among its
 * VmFlags in /proc/self/smaps), 0 if not, -1 if p is in no mapping. */
static int address_locked(const volatile void *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	uintptr_t a = (uintptr_t)p;
	int inside = 0, locked = -1;
	while (f && locked < 0 && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			inside = a >= lo && a < hi;
		else if (inside && strncmp(line, "VmFlags:", 8) == 0)
			locked = strstr(line, " lo") != NULL;
	}
	if (f)
		fclose(f);
	return locked;
}

/* A fresh process with RLIMIT_MEMLOCK at `limit` (soft and hard), without
 * CAP_IPC_LOCK if drop (root becomes nobody, as a service's user would
 * be), runs km_hygiene_init and km_memlock_process — what
 * `prlimit --memlock=LIMIT keyward` does at its start. */
static memlock_outcome memlock_in_child(rlim_t limit, int drop)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		memlock_outcome o;
		memset(&o, 0, sizeof o);
		struct rlimit rl = {limit, limit};
		if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 ||
		    (drop && geteuid() == 0 && (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		                                setresuid(65534, 65534, 65534) != 0))) {
			if (write(p[1], &o, sizeof o) != (ssize_t)sizeof o)
				_exit(1);
			_exit(0);
		}
		o.ran = 1;
		km_err e;
		km_err_clear(&e);
		if (km_hygiene_init(&e) != KM_OK)
			_exit(2);
		o.rc = km_memlock_process(&o.s, &e);
		memcpy(o.msg, e.msg, sizeof o.msg);
		o.vm_lck = vm_locked();
		uint8_t *key = km_secure_alloc(32);
		o.key_locked = address_locked(key);
		km_secure_free(key, 32);
		size_t n = 4u << 20;
		volatile char *heap = malloc(n); /* where OpenSSL keeps cipher contexts */
		for (size_t i = 0; heap && i < n; i += 4096)
			heap[i] = 1;
		o.heap_locked = address_locked(heap + n / 2);
		if (write(p[1], &o, sizeof o) != (ssize_t)sizeof o)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	memlock_outcome o;
	ck_assert_int_eq(read(p[0], &o, sizeof o), (ssize_t)sizeof o);
	close(p[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "memlock child failed (%d)", status);
	return o;
}

static void assert_refusal(const memlock_outcome *o, const char *limit_text, const char *what)
{
	char want[128];
	snprintf(want, sizeof want, "locked memory unavailable: RLIMIT_MEMLOCK is %s; raise it "
	         "(ulimit -l / LimitMEMLOCK=) to at least ", limit_text);
	ck_assert_int_eq(o->rc, KM_ELIMIT);
	ck_assert_msg(strncmp(o->msg, want, strlen(want)) == 0, "%s", o->msg);
	/* the figure it asks for is the one the state reports */
	char need[64];
	snprintf(need, sizeof need, "at least %" PRIu64 " MiB; %s", o->s.need_bytes >> 20, what);
	ck_assert_msg(strstr(o->msg, need) != NULL, "%s (want \"%s\")", o->msg, need);
	ck_assert_uint_ge(o->s.need_bytes, KM_MEMLOCK_HEADROOM);
	ck_assert_int_eq(o->s.exempt, 0);
	/* and it did not lock the process: new heap pages stay unlocked */
	ck_assert_int_eq(o->heap_locked, 0);
}

START_TEST(memlock_under_a_low_limit)
{
	/* 64 KiB (an old systemd default): not even the 256 KiB key heap */
	memlock_outcome o = memlock_in_child(64 * 1024, 1);
	ck_assert(o.ran);
	ck_assert_int_eq(o.s.level, KM_MEMLOCK_NONE);
	ck_assert_int_eq(o.s.heap_locked, 0);
	ck_assert_uint_eq(o.s.limit_bytes, 64 * 1024);
	assert_refusal(&o, "64 KiB", "nothing is locked");
	ck_assert_int_eq(o.key_locked, 0);
	ck_assert_uint_eq(o.vm_lck, 0);

	/* 1 MiB: the key heap, but not the rest (cipher contexts) */
	o = memlock_in_child(1024 * 1024, 1);
	ck_assert(o.ran);
	ck_assert_int_eq(o.s.level, KM_MEMLOCK_KEYS);
	ck_assert_int_eq(o.s.heap_locked, 1);
	assert_refusal(&o, "1 MiB", "only the key heap is locked");
	ck_assert_int_eq(o.key_locked, 1);
	ck_assert_uint_ge(o.vm_lck, KM_SECURE_HEAP_BYTES);
	ck_assert_uint_lt(o.vm_lck, 1024 * 1024);
}
END_TEST

START_TEST(memlock_whole_process_when_allowed)
{
	/* CAP_IPC_LOCK (root): the limit does not apply, whatever it is. */
	memlock_outcome o = memlock_in_child(64 * 1024, 0);
	ck_assert(o.ran);
	if (!o.s.exempt) {
		fprintf(stderr, "memlock_whole_process_when_allowed: not root, exempt case not run\n");
	} else {
		ck_assert_msg(o.rc == KM_OK, "%s", o.msg);
		ck_assert_int_eq(o.s.level, KM_MEMLOCK_PROCESS);
		ck_assert_int_eq(o.s.heap_locked, 1); /* locked now, though OpenSSL's mlock failed */
		/* MCL_FUTURE: ordinary heap touched later is locked too */
		ck_assert_int_eq(o.key_locked, 1);
		ck_assert_int_eq(o.heap_locked, 1);
	}
	/* Without the capability, a limit that leaves the headroom is enough.
	 * Needs a hard limit that can be raised that far; else not run. */
	km_memlock_state now;
	km_memlock_query(&now);
	o = memlock_in_child((rlim_t)(now.need_bytes + (64u << 20)), 1);
	if (!o.ran) {
		fprintf(stderr, "memlock_whole_process_when_allowed: cannot raise RLIMIT_MEMLOCK here, "
		        "limited case not run\n");
		return;
	}
	ck_assert_msg(o.rc == KM_OK, "%s", o.msg);
	ck_assert_int_eq(o.s.level, KM_MEMLOCK_PROCESS);
	ck_assert_int_eq(o.s.exempt, 0);
	ck_assert_int_eq(o.key_locked, 1);
	ck_assert_int_eq(o.heap_locked, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hygiene");
	TCase *t = tcase_create("hygiene");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, no_plaintext_key_on_disk);
	tcase_add_test(t, process_hardening);
	tcase_add_test(t, memlock_under_a_low_limit);
	tcase_add_test(t, memlock_whole_process_when_allowed);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
