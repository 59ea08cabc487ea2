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
	ck_assert_int_eq(km_key_rotate(ctx, "features/credit-risk", NULL, &e), KM_OK);

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

int main(void)
{
	Suite *s = suite_create("hygiene");
	TCase *t = tcase_create("hygiene");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, no_plaintext_key_on_disk);
	tcase_add_test(t, process_hardening);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
