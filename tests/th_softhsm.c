/*
 * th_softhsm.c — per-test SoftHSM2 tokens (see th_softhsm.h).
 *
 * Test code only.  It must never touch a token directory it did not create:
 * teardown removes only a directory whose name it generated.
 */
#include "th_softhsm.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TH_DIR_PREFIX "kw-hsm-"
#define TH_RUN_PREFIX "kw-tests-"

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf, but only of a directory whose last component we named. */
static void remove_tree(const char *dir, const char *prefix)
{
	const char *base = strrchr(dir, '/');
	if (!dir[0] || !base || strncmp(base + 1, prefix, strlen(prefix)) != 0)
		return;
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_base(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

hsm_config th_hsm_config(const th_hsm *t)
{
	hsm_config c = {t->module, t->label};
	return c;
}

static int setup_failed(th_hsm *t, const char *what, const char *why)
{
	fprintf(stderr, "th_hsm_setup: %s: %s\n", what, why);
	th_hsm_teardown(t);
	return -1;
}

void th_hsm_at(th_hsm *t, const char *dir)
{
	const char *module = getenv("KEYWARD_TEST_PKCS11_MODULE");

	memset(t, 0, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "%s", dir);
	snprintf(t->conf, sizeof t->conf, "%s/softhsm2.conf", t->dir);
	snprintf(t->tokendir, sizeof t->tokendir, "%s/tokens", t->dir);
	snprintf(t->module, sizeof t->module, "%s", module && *module ? module : TH_DEFAULT_MODULE);
	snprintf(t->label, sizeof t->label, "kw-test");
	snprintf(t->pin, sizeof t->pin, "kw-user-1234");
	snprintf(t->so_pin, sizeof t->so_pin, "kw-so-567890");
}

int th_hsm_setup(th_hsm *t)
{
	char dir[256];
	hsm_config cfg;
	km_err e;
	FILE *f;

	memset(t, 0, sizeof *t);
	if ((size_t)snprintf(dir, sizeof dir, "%s/" TH_DIR_PREFIX "XXXXXX", tmp_base()) >= sizeof dir)
		return setup_failed(t, "temp dir", "TMPDIR is too long");
	if (!mkdtemp(dir))
		return setup_failed(t, "mkdtemp", strerror(errno));
	th_hsm_at(t, dir);

	if (mkdir(t->tokendir, 0700) != 0)
		return setup_failed(t, t->tokendir, strerror(errno));
	f = fopen(t->conf, "w");
	if (!f)
		return setup_failed(t, t->conf, strerror(errno));
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", t->tokendir);
	if (fclose(f) != 0)
		return setup_failed(t, t->conf, strerror(errno));
	if (setenv("SOFTHSM2_CONF", t->conf, 1) != 0)
		return setup_failed(t, "setenv SOFTHSM2_CONF", strerror(errno));

	cfg = th_hsm_config(t);
	if (hsm_token_create(&cfg, t->so_pin, t->pin, &e) != KM_OK)
		return setup_failed(t, "hsm_token_create", e.msg);
	return 0;
}

int th_hsm_setup_keys(th_hsm *t, hsm **out)
{
	hsm_config cfg;
	hsm *h = NULL;
	km_err e;

	*out = NULL;
	if (th_hsm_setup(t) != 0)
		return -1;
	cfg = th_hsm_config(t);
	if (hsm_open(&cfg, &h, &e) != KM_OK || hsm_login(h, t->pin, &e) != KM_OK ||
	    hsm_root_create(h, &e) != KM_OK || hsm_audit_key_create(h, &e) != KM_OK) {
		hsm_close(h);
		return setup_failed(t, "opening the test token and creating keys", e.msg);
	}
	*out = h;
	return 0;
}

void th_hsm_teardown(th_hsm *t)
{
	if (t && t->dir[0]) {
		remove_tree(t->dir, TH_DIR_PREFIX);
		t->dir[0] = '\0';
	}
}

int th_run_suite(Suite *s)
{
	char root[256];
	char *saved = NULL;
	const char *old = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	if (old)
		saved = strdup(old);
	snprintf(root, sizeof root, "%s/" TH_RUN_PREFIX "XXXXXX", tmp_base());
	if (!mkdtemp(root)) {
		fprintf(stderr, "th_run_suite: mkdtemp %s: %s\n", root, strerror(errno));
		free(saved);
		return 1;
	}
	setenv("TMPDIR", root, 1);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	remove_tree(root, TH_RUN_PREFIX);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	return failed;
}
