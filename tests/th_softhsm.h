/*
 * th_softhsm.h — test fixture: a throw-away SoftHSM2 token for one test.
 *
 * Every test that touches the HSM gets its own directory under $TMPDIR (or
 * /tmp) with its own softhsm2.conf and token directory, so tests run in
 * parallel and leave nothing behind.  Test code only: it writes PINs into a
 * struct and sets SOFTHSM2_CONF for the whole process, which production code
 * must never do.
 */
#ifndef KM_TH_SOFTHSM_H
#define KM_TH_SOFTHSM_H

#include "hsm.h"

#include <check.h>

#define TH_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

typedef struct th_hsm {
	char dir[256];      /* the temp dir; removed by th_hsm_teardown */
	char conf[300];     /* dir/softhsm2.conf, exported as SOFTHSM2_CONF */
	char tokendir[300]; /* dir/tokens */
	char module[256];   /* KEYWARD_TEST_PKCS11_MODULE or TH_DEFAULT_MODULE */
	char label[33];     /* "kw-test" */
	char pin[32];       /* user PIN */
	char so_pin[32];    /* security officer PIN */
} th_hsm;

/* Make the temp dir and conf, export SOFTHSM2_CONF, create token "kw-test"
 * with t->pin / t->so_pin.  0 on success; on failure prints why to stderr
 * and removes what it made. */
int th_hsm_setup(th_hsm *t);

/* t's fields for a token th_hsm_setup made in dir (or a copy of one):
 * the paths under dir, the module, label and PINs.  Touches no file. */
void th_hsm_at(th_hsm *t, const char *dir);

/* th_hsm_setup, then open the token, log in, create the root key and the
 * audit key pair.  *out is the open, logged-in handle (hsm_close it before
 * th_hsm_teardown).  0 on success. */
int th_hsm_setup_keys(th_hsm *t, hsm **out);

/* Remove t->dir and everything under it.  Safe on a zeroed or failed t. */
void th_hsm_teardown(th_hsm *t);

/* hsm_config naming t's module and token. */
hsm_config th_hsm_config(const th_hsm *t);

/* Run a Check suite with CK_NORMAL output inside a private TMPDIR that is
 * removed afterwards, so even a test that dies before its teardown leaves
 * nothing behind.  Returns the number of failed tests (0 = all passed). */
int th_run_suite(Suite *s);

#endif
