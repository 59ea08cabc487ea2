/*
 * test_hsm.c — the PKCS#11 layer against a real SoftHSM2 token.
 *
 * Each test that needs a token makes its own in a temp dir (th_softhsm), so
 * tests run in parallel and a failure cannot leak state into the next one.
 * Tests must never use a token or config outside their temp dir.
 */
#include "hsm.h"
#include "secmem.h"
#include "th_softhsm.h"

#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define P11_HEADER "/usr/include/p11-kit-1/p11-kit/pkcs11.h"

/* ---------------------------------------------------------------- helpers */

static hsm *open_token(const th_hsm *t, const char *token)
{
	hsm_config cfg = {t->module, token};
	hsm *h = NULL;
	km_err e;
	km_status st = hsm_open(&cfg, &h, &e);
	ck_assert_msg(st == KM_OK, "hsm_open(%s): %s", token, e.msg);
	return h;
}

static hsm *open_login(const th_hsm *t)
{
	km_err e;
	hsm *h = open_token(t, t->label);
	ck_assert_msg(hsm_login(h, t->pin, &e) == KM_OK, "login: %s", e.msg);
	return h;
}

static int file_exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

/* Run a shell command; *out gets stdout+stderr (malloc()ed).  Returns the
 * exit status, or -1 if it did not exit normally. */
static int run_capture(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	size_t n;
	int status;

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	buf[len] = '\0';
	status = pclose(p);
	*out = buf;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The block pkcs11-tool prints for one object: from its header line (no
 * indent) containing `header` through the lines indented under it, and
 * only if one of those lines is "label:      <label>". */
static int object_block(const char *listing, const char *header, const char *label, char *block,
                        size_t cap)
{
	const char *p = listing;
	char want[80];

	snprintf(want, sizeof want, "label:      %s\n", label);
	while ((p = strstr(p, header)) != NULL) {
		const char *start = p, *end = p;
		while ((end = strchr(end, '\n')) != NULL && end[1] == ' ')
			end++;
		end = end ? end + 1 : start + strlen(start);
		if ((size_t)(end - start) < cap) {
			memcpy(block, start, (size_t)(end - start));
			block[end - start] = '\0';
			if (strstr(block, want))
				return 1;
		}
		p = end;
	}
	return 0;
}

/* The comma-separated items after "<field>:" in a pkcs11-tool block, as
 * ",a,b,c," so a caller can look for ",item," exactly. */
static void block_items(const char *block, const char *field, char *items, size_t cap)
{
	const char *p = strstr(block, field);
	size_t n = 1;

	items[0] = ',';
	items[1] = '\0';
	ck_assert_msg(p != NULL, "no %s line in:\n%s", field, block);
	p += strlen(field);
	p += strspn(p, " ");
	while (*p && *p != '\n' && n + 2 < cap) {
		if (*p == ',') {
			items[n++] = ',';
			p += 1 + strspn(p + 1, " ");
			continue;
		}
		items[n++] = *p++;
	}
	items[n++] = ',';
	items[n] = '\0';
}

/* Does any file under dir contain needle?  (for "key bytes never on disk") */
static const uint8_t *scan_needle;
static size_t scan_needle_len;
static int scan_found;

static int scan_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_F || sb->st_size <= 0)
		return 0;
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t *buf = malloc((size_t)sb->st_size);
	ck_assert_ptr_nonnull(buf);
	size_t n = fread(buf, 1, (size_t)sb->st_size, f);
	fclose(f);
	if (memmem(buf, n, scan_needle, scan_needle_len))
		scan_found = 1;
	free(buf);
	return 0;
}

static int tree_contains(const char *dir, const uint8_t *needle, size_t len)
{
	scan_needle = needle;
	scan_needle_len = len;
	scan_found = 0;
	ck_assert_int_eq(nftw(dir, scan_file, 16, FTW_PHYS), 0);
	return scan_found;
}

/* ---------------------------------------------------------------- open, login */

START_TEST(test_open_login)
{
	th_hsm t;
	hsm_token_info info;
	km_err e;
	int root = -1, audit = -1;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	hsm *h = open_token(&t, t.label);
	ck_assert_int_eq(hsm_token_describe(h, &info, &e), KM_OK);
	ck_assert_str_eq(info.label, "kw-test"); /* trimmed, not 32 blank-padded bytes */
	ck_assert_str_eq(info.manufacturer, "SoftHSM project");
	ck_assert_uint_eq(strlen(info.serial), 16);
	ck_assert_int_eq(info.logged_in, 0);
	ck_assert_int_eq(hsm_objects_present(h, &root, &audit, &e), KM_ESTATE);

	ck_assert_msg(hsm_login(h, t.pin, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(hsm_token_describe(h, &info, &e), KM_OK);
	ck_assert_int_eq(info.logged_in, 1);
	ck_assert_int_eq(hsm_login(h, t.pin, &e), KM_OK); /* twice is harmless */
	ck_assert_int_eq(hsm_objects_present(h, &root, &audit, &e), KM_OK);
	ck_assert_int_eq(root, 0);
	ck_assert_int_eq(audit, 0);
	hsm_close(h);
	hsm_close(NULL);
	th_hsm_teardown(&t);
	ck_assert(!file_exists(t.conf));
}
END_TEST

static const struct {
	const char *pin;
	const char *ckr;
} wrong_pins[] = {
	{"not-the-pin-0000", "CKR_PIN_INCORRECT"},
	{"kw-user-1235", "CKR_PIN_INCORRECT"},
	/* Outside SoftHSM2's 4..255: it still answers CKR_PIN_INCORRECT. */
	{"ab", "CKR_PIN_INCORRECT"},
	{"", "CKR_PIN_INCORRECT"},
};

START_TEST(test_wrong_pin)
{
	th_hsm t;
	km_err e;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	hsm *h = open_token(&t, t.label);
	km_status st = hsm_login(h, wrong_pins[_i].pin, &e);
	ck_assert_int_eq(st, KM_EDENIED);
	ck_assert_int_eq(e.code, KM_EDENIED);
	ck_assert_msg(strstr(e.msg, "wrong PIN") && strstr(e.msg, wrong_pins[_i].ckr) &&
	              strstr(e.msg, "C_Login"), "message: %s", e.msg);
	ck_assert_msg(!wrong_pins[_i].pin[0] || !strstr(e.msg, wrong_pins[_i].pin), "PIN leaked into: %s",
	              e.msg);
	/* A failed attempt must not leave the handle half logged in. */
	int root, audit;
	ck_assert_int_eq(hsm_objects_present(h, &root, &audit, &e), KM_ESTATE);
	ck_assert_msg(hsm_login(h, t.pin, &e) == KM_OK, "%s", e.msg);
	hsm_close(h);
	th_hsm_teardown(&t);
}
END_TEST

/* ---------------------------------------------------------------- config errors */

START_TEST(test_module_errors)
{
	/* Candidates for "a real shared library that is not PKCS#11". */
	static const char *not_p11[] = {"/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
	                                "/lib/x86_64-linux-gnu/libc.so.6"};
	const struct {
		const char *path;
		const char *expect;
	} rows[] = {
		{"/nonexistent/keyward/libpkcs11.so", "PKCS#11 module not found: /nonexistent/keyward/libpkcs11.so"},
		{"/etc/passwd", "cannot be loaded"},
		{not_p11[0], "is not a PKCS#11 library (it has no C_GetFunctionList)"},
		{not_p11[1], "is not a PKCS#11 library (it has no C_GetFunctionList)"},
		{not_p11[2], "is not a PKCS#11 library (it has no C_GetFunctionList)"},
		{"", "no PKCS#11 module configured"},
	};
	int tried_not_p11 = 0;

	for (size_t i = 0; i < KM_ARRAY_LEN(rows); i++) {
		hsm_config cfg = {rows[i].path, "kw-test"};
		hsm *h = (hsm *)&cfg; /* must be reset to NULL on failure */
		km_err e;
		int found = -1;

		if (rows[i].path[0] && strstr(rows[i].path, ".so.") && !file_exists(rows[i].path))
			continue;
		tried_not_p11 += strstr(rows[i].expect, "not a PKCS#11") != NULL;
		ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_ECONFIG);
		ck_assert_ptr_null(h);
		ck_assert_msg(strstr(e.msg, rows[i].expect), "%s: %s", rows[i].path, e.msg);
		ck_assert_int_eq(hsm_token_exists(&cfg, &found, &e), KM_ECONFIG);
		ck_assert_int_eq(hsm_token_create(&cfg, "so-pin-1234", "user-1234", &e), KM_ECONFIG);
	}
	ck_assert_int_gt(tried_not_p11, 0);
}
END_TEST

/* Not on the list because SoftHSM2 then initialises fine from its default
 * token directory: a conf without directories.tokendir, a conf that is a
 * directory. */
enum conf_break { CONF_MISSING, CONF_NO_TOKENDIR_DIR, CONF_TOKENDIR_IS_FILE };

static const struct {
	enum conf_break how;
	const char *expect;
} conf_rows[] = {
	{CONF_MISSING, "cannot be read"},
	{CONF_NO_TOKENDIR_DIR, "does not exist"},
	{CONF_TOKENDIR_IS_FILE, "is not a directory"},
};

START_TEST(test_broken_softhsm_conf)
{
	th_hsm t;
	char path[400];
	FILE *f;
	hsm *h = NULL;
	km_err e;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	hsm_config cfg = th_hsm_config(&t);
	snprintf(path, sizeof path, "%s/broken.conf", t.dir);
	switch (conf_rows[_i].how) {
	case CONF_MISSING:
		break; /* path never written */
	case CONF_NO_TOKENDIR_DIR:
		f = fopen(path, "w");
		fprintf(f, "directories.tokendir = %s/gone\nobjectstore.backend = file\n", t.dir);
		fclose(f);
		break;
	case CONF_TOKENDIR_IS_FILE:
		f = fopen(path, "w");
		fprintf(f, "directories.tokendir = %s\n", t.conf);
		fclose(f);
		break;
	}
	setenv("SOFTHSM2_CONF", path, 1);

	ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_ECONFIG);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(e.msg, conf_rows[_i].expect) && strstr(e.msg, "CKR_GENERAL_ERROR"), "%s", e.msg);
	ck_assert_msg(strstr(e.msg, path), "the message should name the config: %s", e.msg);

	/* The same module recovers once the config is right again. */
	setenv("SOFTHSM2_CONF", t.conf, 1);
	hsm_close(open_token(&t, t.label));
	th_hsm_teardown(&t);
}
END_TEST

/* ---------------------------------------------------------------- tokens */

START_TEST(test_token_not_found)
{
	th_hsm t;
	hsm *h = NULL;
	km_err e;
	int found = -1;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	hsm_config cfg = {t.module, "no-such-token"};
	ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_ENOTFOUND);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(e.msg, "\"no-such-token\"") && strstr(e.msg, "\"kw-test\""), "%s", e.msg);

	ck_assert_int_eq(hsm_token_exists(&cfg, &found, &e), KM_OK);
	ck_assert_int_eq(found, 0);
	cfg.token = t.label;
	ck_assert_int_eq(hsm_token_exists(&cfg, &found, &e), KM_OK);
	ck_assert_int_eq(found, 1);

	/* A label longer than CK_TOKEN_INFO can hold can never match. */
	cfg.token = "a-label-that-is-longer-than-32-bytes";
	ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_EINVAL);
	th_hsm_teardown(&t);
}
END_TEST

START_TEST(test_token_create)
{
	th_hsm t;
	km_err e;
	int found = 0;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	hsm_config cfg = th_hsm_config(&t);
	ck_assert_int_eq(hsm_token_create(&cfg, "other-so-pin", "other-user-pin", &e), KM_EEXISTS);
	ck_assert_msg(strstr(e.msg, "kw-test"), "%s", e.msg);

	/* A second token: SoftHSM2 renumbers slots, lookup is by label. */
	cfg.token = "pkcs11:token=kw%20second";
	ck_assert_msg(hsm_token_create(&cfg, "so-pin-2222", "user-pin-2222", &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(hsm_token_exists(&cfg, &found, &e), KM_OK);
	ck_assert_int_eq(found, 1);
	cfg.token = "kw second";
	hsm *h = NULL;
	ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_OK);
	ck_assert_int_eq(hsm_login(h, "user-pin-2222", &e), KM_OK);
	hsm_close(h);

	/* A PIN the token would refuse is caught before C_InitToken. */
	cfg.token = "kw-third";
	ck_assert_int_eq(hsm_token_create(&cfg, "so-pin-3333", "ab", &e), KM_EINVAL);
	ck_assert_msg(strstr(e.msg, "user PIN") && !strstr(e.msg, "\"ab\""), "%s", e.msg);
	ck_assert_int_eq(hsm_token_exists(&cfg, &found, &e), KM_OK);
	ck_assert_int_eq(found, 0);
	th_hsm_teardown(&t);
}
END_TEST

/* Two handles on one module: closing one must neither finalise the module
 * nor log out the other. */
START_TEST(test_two_handles)
{
	th_hsm t;
	hsm *h1, *h2;
	uint8_t digest[32] = {1}, sig[HSM_SIG_BYTES];
	km_err e;

	ck_assert_int_eq(th_hsm_setup_keys(&t, &h1), 0);
	h2 = open_login(&t);
	hsm_close(h1);
	ck_assert_msg(hsm_audit_sign(h2, digest, sig, &e) == KM_OK, "%s", e.msg);
	hsm_close(h2);
	/* And the module can be loaded again after the last close. */
	h1 = open_login(&t);
	ck_assert_msg(hsm_audit_sign(h1, digest, sig, &e) == KM_OK, "%s", e.msg);
	hsm_close(h1);
	th_hsm_teardown(&t);
}
END_TEST

/* A forked child initialises the module again (SoftHSM2 may answer
 * CKR_CRYPTOKI_ALREADY_INITIALIZED) and works on its own session; the
 * parent's handle is unharmed. */
START_TEST(test_fork_child)
{
	th_hsm t;
	hsm *h;
	uint8_t digest[32] = {7}, sig[HSM_SIG_BYTES];
	km_err e;
	int status = 0;

	ck_assert_int_eq(th_hsm_setup_keys(&t, &h), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		hsm_config cfg = th_hsm_config(&t);
		hsm *c = NULL;
		int ok = hsm_open(&cfg, &c, &e) == KM_OK && hsm_login(c, t.pin, &e) == KM_OK &&
		         hsm_audit_sign(c, digest, sig, &e) == KM_OK;
		if (!ok)
			fprintf(stderr, "child: %s\n", e.msg);
		hsm_close(c);
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status %d)", status);
	ck_assert_msg(hsm_audit_sign(h, digest, sig, &e) == KM_OK, "%s", e.msg);
	hsm_close(h);
	th_hsm_teardown(&t);
}
END_TEST

/* ---------------------------------------------------------------- keys */

START_TEST(test_root_and_audit_create)
{
	th_hsm t;
	hsm *h;
	km_err e;
	int root = 0, audit = 0;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	h = open_token(&t, t.label);
	ck_assert_int_eq(hsm_root_create(h, &e), KM_ESTATE); /* not logged in */
	ck_assert_int_eq(hsm_login(h, t.pin, &e), KM_OK);
	ck_assert_msg(hsm_root_create(h, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(hsm_objects_present(h, &root, &audit, &e), KM_OK);
	ck_assert_int_eq(root, 1);
	ck_assert_int_eq(audit, 0);
	ck_assert_int_eq(hsm_root_create(h, &e), KM_EEXISTS);
	ck_assert_msg(strstr(e.msg, "keyward-root"), "%s", e.msg);

	ck_assert_msg(hsm_audit_key_create(h, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(hsm_audit_key_create(h, &e), KM_EEXISTS);
	hsm_close(h);

	/* Found again from a fresh session: they are token objects. */
	h = open_login(&t);
	ck_assert_int_eq(hsm_objects_present(h, &root, &audit, &e), KM_OK);
	ck_assert_int_eq(root, 1);
	ck_assert_int_eq(audit, 1);
	ck_assert_int_eq(hsm_root_create(h, &e), KM_EEXISTS);
	hsm_close(h);
	th_hsm_teardown(&t);
}
END_TEST

START_TEST(test_kek_round_trip)
{
	th_hsm t;
	hsm *h;
	km_err e;
	uint8_t w1[HSM_WRAPPED_KEK_MAX], w2[HSM_WRAPPED_KEK_MAX];
	size_t n1 = 0, n2 = 0;
	uint8_t *k1 = km_secure_alloc(HSM_KEK_BYTES), *k2 = km_secure_alloc(HSM_KEK_BYTES);
	uint8_t *again = km_secure_alloc(HSM_KEK_BYTES);
	static const uint8_t zero[HSM_KEK_BYTES];

	ck_assert(k1 && k2 && again);
	ck_assert_int_eq(th_hsm_setup_keys(&t, &h), 0);
	ck_assert_msg(hsm_kek_generate(h, w1, sizeof w1, &n1, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(hsm_kek_generate(h, w2, sizeof w2, &n2, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(n1, 40); /* RFC 5649 of 32 bytes */
	ck_assert_uint_eq(n2, 40);
	ck_assert(memcmp(w1, w2, n1) != 0);

	ck_assert_msg(hsm_kek_unwrap(h, w1, n1, k1, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(hsm_kek_unwrap(h, w2, n2, k2, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(hsm_kek_unwrap(h, w1, n1, again, &e) == KM_OK, "%s", e.msg);
	ck_assert(memcmp(k1, zero, HSM_KEK_BYTES) != 0);
	ck_assert(memcmp(k1, k2, HSM_KEK_BYTES) != 0);
	ck_assert(memcmp(k1, again, HSM_KEK_BYTES) == 0);
	/* Neither the KEKs nor their wrapped form are stored on the token. */
	ck_assert(!tree_contains(t.tokendir, k1, HSM_KEK_BYTES));
	ck_assert(!tree_contains(t.tokendir, k2, HSM_KEK_BYTES));

	/* Too small a buffer is the caller's bug, not an HSM failure. */
	ck_assert_int_eq(hsm_kek_generate(h, w1, 16, &n1, &e), KM_EUSAGE);

	/* The session objects were destroyed: a fresh handle finds the same
	 * objects as before and still unwraps. */
	hsm_close(h);
	h = open_login(&t);
	ck_assert_msg(hsm_kek_unwrap(h, w2, n2, again, &e) == KM_OK, "%s", e.msg);
	ck_assert(memcmp(k2, again, HSM_KEK_BYTES) == 0);
	hsm_close(h);
	km_secure_free(k1, HSM_KEK_BYTES);
	km_secure_free(k2, HSM_KEK_BYTES);
	km_secure_free(again, HSM_KEK_BYTES);
	th_hsm_teardown(&t);
}
END_TEST

/* Mutations of a good 40-byte blob; every one must be an integrity failure. */
static const struct {
	const char *what;
	size_t flip_at; /* byte to flip, or SIZE_MAX for none */
	size_t len;     /* length to pass */
} tampers[] = {
	{"first byte flipped", 0, 40},
	{"middle byte flipped", 19, 40},
	{"last byte flipped", 39, 40},
	{"truncated to 32", SIZE_MAX, 32},
	{"truncated to 39", SIZE_MAX, 39},
	{"empty", SIZE_MAX, 0},
};

START_TEST(test_kek_tampered)
{
	th_hsm t;
	hsm *h;
	km_err e;
	uint8_t w[HSM_WRAPPED_KEK_MAX];
	size_t n = 0;
	uint8_t *k = km_secure_alloc(HSM_KEK_BYTES);
	static const uint8_t zero[HSM_KEK_BYTES];

	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(th_hsm_setup_keys(&t, &h), 0);
	ck_assert_int_eq(hsm_kek_generate(h, w, sizeof w, &n, &e), KM_OK);
	if (tampers[_i].flip_at != SIZE_MAX)
		w[tampers[_i].flip_at] ^= 0x01;
	km_status st = hsm_kek_unwrap(h, w, tampers[_i].len, k, &e);
	ck_assert_msg(st == KM_EINTEGRITY, "%s: status %d: %s", tampers[_i].what, st, e.msg);
	ck_assert(memcmp(k, zero, HSM_KEK_BYTES) == 0);
	/* The failure left nothing behind: the untouched blob still works. */
	if (tampers[_i].flip_at != SIZE_MAX)
		w[tampers[_i].flip_at] ^= 0x01;
	ck_assert_msg(hsm_kek_unwrap(h, w, n, k, &e) == KM_OK, "%s", e.msg);
	hsm_close(h);
	km_secure_free(k, HSM_KEK_BYTES);
	th_hsm_teardown(&t);
}
END_TEST

/* The root key as seen from outside keyward, through pkcs11-tool. */
START_TEST(test_root_attributes_pkcs11_tool)
{
	th_hsm t;
	hsm *h;
	char cmd[1024], block[2048], items[256];
	char *out = NULL;
	int rc;

	ck_assert_int_eq(th_hsm_setup_keys(&t, &h), 0);
	hsm_close(h);

	snprintf(cmd, sizeof cmd, "pkcs11-tool --module '%s' --token-label '%s' --login --pin '%s' "
	         "--list-objects 2>&1", t.module, t.label, t.pin);
	rc = run_capture(cmd, &out);
	ck_assert_msg(rc == 0, "pkcs11-tool exit %d:\n%s", rc, out);
	/* pkcs11-tool tries to read every key's value; the token refuses. */
	ck_assert_msg(strstr(out, "C_GetAttributeValue(VALUE) failed: rv = CKR_ATTRIBUTE_SENSITIVE"), "%s", out);

	ck_assert_msg(object_block(out, "Secret Key Object; AES length 32", "keyward-root", block, sizeof block),
	              "no root key in:\n%s", out);
	block_items(block, "Usage:", items, sizeof items);
	ck_assert_str_eq(items, ",wrap,unwrap,");
	block_items(block, "Access:", items, sizeof items);
	ck_assert_msg(strstr(items, ",sensitive,") && strstr(items, ",always sensitive,") &&
	              strstr(items, ",never extractable,") && !strstr(items, ",extractable,"), "%s", block);

	ck_assert_msg(object_block(out, "Private Key Object; EC", "keyward-audit", block, sizeof block),
	              "no audit private key in:\n%s", out);
	block_items(block, "Usage:", items, sizeof items);
	ck_assert_str_eq(items, ",sign,");
	block_items(block, "Access:", items, sizeof items);
	ck_assert_msg(strstr(items, ",sensitive,") && strstr(items, ",never extractable,") &&
	              !strstr(items, ",extractable,"), "%s", block);
	ck_assert_msg(object_block(out, "Public Key Object; EC", "keyward-audit", block, sizeof block),
	              "no audit public key in:\n%s", out);
	ck_assert_msg(strstr(block, "EC_PARAMS:  06082a8648ce3d030107"), "not P-256:\n%s", block);
	free(out);

	/* CKA_PRIVATE: without a login the root and the private key are invisible. */
	snprintf(cmd, sizeof cmd, "pkcs11-tool --module '%s' --token-label '%s' --list-objects 2>&1",
	         t.module, t.label);
	rc = run_capture(cmd, &out);
	ck_assert_msg(rc == 0, "pkcs11-tool exit %d:\n%s", rc, out);
	ck_assert_msg(!strstr(out, "keyward-root") && !strstr(out, "Private Key Object"), "%s", out);
	ck_assert_msg(strstr(out, "Public Key Object; EC"), "%s", out);
	free(out);

	/* Reading CKA_VALUE of the root must fail even when logged in. */
	snprintf(cmd, sizeof cmd, "pkcs11-tool --module '%s' --token-label '%s' --login --pin '%s' "
	         "--read-object --type secrkey --label keyward-root 2>&1", t.module, t.label, t.pin);
	rc = run_capture(cmd, &out);
	ck_assert_msg(rc != 0 && strstr(out, "CKR_ATTRIBUTE_SENSITIVE"), "exit %d:\n%s", rc, out);
	free(out);
	th_hsm_teardown(&t);
}
END_TEST

/* ---------------------------------------------------------------- audit signatures */

static int verify_with_openssl(const uint8_t *spki, size_t spki_len, const uint8_t digest[32],
                               const uint8_t sig[HSM_SIG_BYTES])
{
	const unsigned char *p = spki;
	uint8_t der[HSM_SIG_DER_MAX];
	size_t der_len = 0;
	km_err e;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
	EVP_PKEY_CTX *ctx;
	int ok;

	ck_assert_ptr_nonnull(pk);
	ck_assert_msg(hsm_sig_to_der(sig, der, sizeof der, &der_len, &e) == KM_OK, "%s", e.msg);
	ctx = EVP_PKEY_CTX_new(pk, NULL);
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
	ok = EVP_PKEY_verify(ctx, der, der_len, digest, 32);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok == 1;
}

START_TEST(test_audit_sign_verify)
{
	th_hsm t;
	hsm *h;
	km_err e;
	uint8_t digest[32], sig1[HSM_SIG_BYTES], sig2[HSM_SIG_BYTES];
	uint8_t *spki = NULL;
	size_t spki_len = 0;
	static const char head[] = "tree head 42";

	ck_assert_int_eq(th_hsm_setup_keys(&t, &h), 0);
	SHA256((const unsigned char *)head, sizeof head - 1, digest);
	ck_assert_msg(hsm_audit_sign(h, digest, sig1, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(hsm_audit_sign(h, digest, sig2, &e) == KM_OK, "%s", e.msg);
	ck_assert(memcmp(sig1, sig2, sizeof sig1) != 0); /* fresh k each time */
	ck_assert_msg(hsm_audit_pubkey_der(h, &spki, &spki_len, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(spki_len, 91); /* P-256 SubjectPublicKeyInfo */

	ck_assert(verify_with_openssl(spki, spki_len, digest, sig1));
	ck_assert(verify_with_openssl(spki, spki_len, digest, sig2));
	digest[0] ^= 0x80;
	ck_assert(!verify_with_openssl(spki, spki_len, digest, sig1));
	digest[0] ^= 0x80;
	sig1[40] ^= 0x01;
	ck_assert(!verify_with_openssl(spki, spki_len, digest, sig1));

	/* The same key through EVP_DigestVerify over the message itself. */
	{
		const unsigned char *p = spki;
		EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		uint8_t der[HSM_SIG_DER_MAX];
		size_t der_len;
		ck_assert_int_eq(hsm_sig_to_der(sig2, der, sizeof der, &der_len, &e), KM_OK);
		ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
		ck_assert_int_eq(EVP_DigestVerify(md, der, der_len, (const unsigned char *)head, sizeof head - 1), 1);
		EVP_MD_CTX_free(md);
		EVP_PKEY_free(pk);
	}
	free(spki);
	hsm_close(h);
	th_hsm_teardown(&t);
}
END_TEST

START_TEST(test_sig_to_der)
{
	uint8_t sig[HSM_SIG_BYTES], der[HSM_SIG_DER_MAX];
	size_t len = 0;
	km_err e;

	/* High bits set: both INTEGERs need a leading zero -> the maximum. */
	memset(sig, 0xff, sizeof sig);
	ck_assert_int_eq(hsm_sig_to_der(sig, der, sizeof der, &len, &e), KM_OK);
	ck_assert_uint_eq(len, 72);
	ck_assert_int_eq(der[0], 0x30);
	ck_assert_int_eq(der[2], 0x02);
	ck_assert_int_eq(der[3], 33);
	ck_assert_int_eq(der[4], 0x00);
	ck_assert_int_eq(hsm_sig_to_der(sig, der, 71, &len, &e), KM_EUSAGE);

	/* Small r and s: minimal INTEGERs. */
	memset(sig, 0, sizeof sig);
	sig[31] = 0x05;
	sig[63] = 0x07;
	ck_assert_int_eq(hsm_sig_to_der(sig, der, sizeof der, &len, &e), KM_OK);
	ck_assert_uint_eq(len, 8);
	static const uint8_t want[] = {0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07};
	ck_assert(memcmp(der, want, sizeof want) == 0);
}
END_TEST

/* ---------------------------------------------------------------- URIs */

static const struct {
	const char *uri;
	km_status status;
	const char *token, *manufacturer, *model, *serial, *object, *type, *module_path;
	long slot_id;
	const char *id; /* hex */
	const char *msg; /* substring of the error */
} uri_rows[] = {
	{"pkcs11:token=kw-test", KM_OK, "kw-test", "", "", "", "", "", "", -1, "", NULL},
	{"PKCS11:token=kw-test", KM_OK, "kw-test", "", "", "", "", "", "", -1, "", NULL},
	{"pkcs11:", KM_OK, "", "", "", "", "", "", "", -1, "", NULL},
	{"pkcs11:token=My%20Token;serial=7bf77bc431bd682d", KM_OK, "My Token", "", "", "7bf77bc431bd682d", "",
	 "", "", -1, "", NULL},
	{"pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2", KM_OK, "", "SoftHSM project", "SoftHSM v2",
	 "", "", "", "", -1, "", NULL},
	{"pkcs11:slot-id=834496557", KM_OK, "", "", "", "", "", "", "", 834496557, "", NULL},
	{"pkcs11:object=keyward-root;id=%6b%77%72%01;type=secret-key", KM_OK, "", "", "", "", "keyward-root",
	 "secret-key", "", -1, "6b777201", NULL},
	{"pkcs11:token=a%3bb%2Fc%25", KM_OK, "a;b/c%", "", "", "", "", "", "", -1, "", NULL},
	{"pkcs11:token=kw-test;", KM_OK, "kw-test", "", "", "", "", "", "", -1, "", NULL},
	{"pkcs11:token=kw?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234", KM_OK, "kw", "", "", "",
	 "", "", "/usr/lib/softhsm/libsofthsm2.so", -1, "", NULL},
	{"pkcs11:token=kw?pin-source=file:/etc/pin&module-path=%2Fopt%2Fp11.so", KM_OK, "kw", "", "", "", "",
	 "", "/opt/p11.so", -1, "", NULL},
	{"pkcs11:token=0123456789abcdef0123456789abcdef", KM_OK, "0123456789abcdef0123456789abcdef", "", "", "",
	 "", "", "", -1, "", NULL},

	{"pkcs11:foo=bar", KM_EINVAL, .msg = "\"foo\""},
	{"pkcs11:token=a;library-description=x", KM_EINVAL, .msg = "\"library-description\""},
	{"token=kw-test", KM_EINVAL, .msg = "pkcs11:"},
	{"pkcs11:token=a;token=b", KM_EINVAL, .msg = "twice"},
	{"pkcs11:token=%zz", KM_EINVAL, .msg = "percent"},
	{"pkcs11:token=ab%4", KM_EINVAL, .msg = "percent"},
	{"pkcs11:token=ab%", KM_EINVAL, .msg = "percent"},
	{"pkcs11:token", KM_EINVAL, .msg = "no '='"},
	{"pkcs11:token=a%00b", KM_EINVAL, .msg = "NUL"},
	{"pkcs11:slot-id=abc", KM_EINVAL, .msg = "decimal"},
	{"pkcs11:slot-id=-1", KM_EINVAL, .msg = "decimal"},
	{"pkcs11:slot-id=", KM_EINVAL, .msg = "decimal"},
	{"pkcs11:slot-id=99999999999999999999", KM_EINVAL, .msg = "out of range"},
	{"pkcs11:type=bogus", KM_EINVAL, .msg = "secret-key"},
	{"pkcs11:token=0123456789abcdef0123456789abcdef0", KM_EINVAL, .msg = "too long"},
	{"pkcs11:serial=0123456789abcdef0", KM_EINVAL, .msg = "too long"},
};

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

START_TEST(test_uri_parse)
{
	hsm_uri u;
	km_err e;
	char idhex[2 * sizeof u.id + 1];

	memset(&e, 0, sizeof e);
	km_status st = hsm_uri_parse(uri_rows[_i].uri, &u, &e);
	ck_assert_msg(st == uri_rows[_i].status, "%s: status %d (%s)", uri_rows[_i].uri, st, e.msg);
	if (st != KM_OK) {
		ck_assert_msg(strstr(e.msg, uri_rows[_i].msg), "%s: message %s", uri_rows[_i].uri, e.msg);
		return;
	}
	ck_assert_str_eq(u.token, uri_rows[_i].token);
	ck_assert_str_eq(u.manufacturer, uri_rows[_i].manufacturer);
	ck_assert_str_eq(u.model, uri_rows[_i].model);
	ck_assert_str_eq(u.serial, uri_rows[_i].serial);
	ck_assert_str_eq(u.object, uri_rows[_i].object);
	ck_assert_str_eq(u.type, uri_rows[_i].type);
	ck_assert_str_eq(u.module_path, uri_rows[_i].module_path);
	ck_assert_int_eq(u.slot_id, uri_rows[_i].slot_id);
	hex(u.id, u.id_len, idhex);
	ck_assert_str_eq(idhex, uri_rows[_i].id);
}
END_TEST

/* Open the test token by every way a URI can name it, and miss it on purpose. */
START_TEST(test_token_by_uri)
{
	th_hsm t;
	hsm_token_info info;
	km_err e;
	char uri[8][700];
	hsm *h;

	ck_assert_int_eq(th_hsm_setup(&t), 0);
	h = open_token(&t, t.label);
	ck_assert_int_eq(hsm_token_describe(h, &info, &e), KM_OK);
	hsm_close(h);

	snprintf(uri[0], sizeof uri[0], "pkcs11:token=kw-test");
	snprintf(uri[1], sizeof uri[1], "pkcs11:serial=%s", info.serial);
	snprintf(uri[2], sizeof uri[2], "pkcs11:token=kw%%2Dtest;manufacturer=SoftHSM%%20project;model=SoftHSM%%20v2");
	snprintf(uri[3], sizeof uri[3], "pkcs11:slot-id=%lu", info.slot_id);
	snprintf(uri[4], sizeof uri[4], "pkcs11:token=kw-test?module-path=%s&pin-value=ignored", t.module);
	for (int i = 0; i < 5; i++) {
		hsm_config cfg = {i == 4 ? NULL : t.module, uri[i]};
		h = NULL;
		ck_assert_msg(hsm_open(&cfg, &h, &e) == KM_OK, "%s: %s", uri[i], e.msg);
		ck_assert_int_eq(hsm_login(h, t.pin, &e), KM_OK);
		ck_assert_int_eq(hsm_token_describe(h, &info, &e), KM_OK);
		ck_assert_str_eq(info.label, "kw-test");
		hsm_close(h);
	}

	snprintf(uri[5], sizeof uri[5], "pkcs11:token=kw-test;serial=0000000000000000");
	snprintf(uri[6], sizeof uri[6], "pkcs11:token=nope?pin-value=secret-pin-9999");
	snprintf(uri[7], sizeof uri[7], "pkcs11:token=kw-test;slot-id=1;model=nope");
	for (int i = 5; i < 8; i++) {
		hsm_config cfg = {t.module, uri[i]};
		h = NULL;
		ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_ENOTFOUND);
		ck_assert_ptr_null(h);
		/* Lists what exists, and never echoes a PIN from the query. */
		ck_assert_msg(strstr(e.msg, "\"kw-test\"") && !strstr(e.msg, "secret-pin"), "%s", e.msg);
	}
	{
		hsm_config cfg = {t.module, "pkcs11:token=kw-test;bogus=1"};
		ck_assert_int_eq(hsm_open(&cfg, &h, &e), KM_EINVAL);
		ck_assert_msg(strstr(e.msg, "\"bogus\""), "%s", e.msg);
	}
	th_hsm_teardown(&t);
}
END_TEST

/* ---------------------------------------------------------------- CKR names */

/* Every CKR_ #define in the PKCS#11 header must come back by name. */
START_TEST(test_rv_names)
{
	FILE *f = fopen(P11_HEADER, "r");
	char line[256], name[80];
	int checked = 0;

	ck_assert_msg(f != NULL, "cannot read %s", P11_HEADER);
	while (fgets(line, sizeof line, f)) {
		char val[40];
		if (sscanf(line, " #define %79s (%39[0-9a-fA-FxX]", name, val) != 2 || strncmp(name, "CKR_", 4) != 0)
			continue;
		unsigned long v = strtoul(val, NULL, 0);
		ck_assert_msg(strcmp(hsm_rv_name(v), name) == 0, "%s (0x%lx) -> %s", name, v, hsm_rv_name(v));
		checked++;
	}
	fclose(f);
	ck_assert_int_ge(checked, 90);
	ck_assert_str_eq(hsm_rv_name(0x80000000UL), "CKR_VENDOR_DEFINED");
	ck_assert_str_eq(hsm_rv_name(0xA0), "CKR_PIN_INCORRECT");
	ck_assert_str_eq(hsm_rv_name(0x7777), "CKR_0x7777");
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *hsm_suite(void)
{
	Suite *s = suite_create("hsm");
	TCase *tc;

	tc = tcase_create("pure");
	tcase_add_loop_test(tc, test_uri_parse, 0, (int)KM_ARRAY_LEN(uri_rows));
	tcase_add_test(tc, test_sig_to_der);
	tcase_add_test(tc, test_rv_names);
	tcase_add_test(tc, test_module_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("token");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_login);
	tcase_add_loop_test(tc, test_wrong_pin, 0, (int)KM_ARRAY_LEN(wrong_pins));
	tcase_add_loop_test(tc, test_broken_softhsm_conf, 0, (int)KM_ARRAY_LEN(conf_rows));
	tcase_add_test(tc, test_token_not_found);
	tcase_add_test(tc, test_token_create);
	tcase_add_test(tc, test_token_by_uri);
	tcase_add_test(tc, test_two_handles);
	tcase_add_test(tc, test_fork_child);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_root_and_audit_create);
	tcase_add_test(tc, test_kek_round_trip);
	tcase_add_loop_test(tc, test_kek_tampered, 0, (int)KM_ARRAY_LEN(tampers));
	tcase_add_test(tc, test_root_attributes_pkcs11_tool);
	tcase_add_test(tc, test_audit_sign_verify);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return th_run_suite(hsm_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
