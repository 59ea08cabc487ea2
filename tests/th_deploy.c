/*
 * th_deploy.c — a real deployment per test.
 */
#include "th_deploy.h"
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void th_deploy_setup(th_deploy *d, unsigned roles, const char *extra_config)
{
	memset(d, 0, sizeof *d);
	ck_assert_int_eq(th_hsm_setup(&d->hsm), 0);
	snprintf(d->home, sizeof d->home, "%s/home", d->hsm.dir);
	km_init_opts o = {0};
	o.home = d->home;
	o.module_path = d->hsm.module;
	o.token = d->hsm.label;
	o.pin = d->hsm.pin;
	o.softhsm2_conf = d->hsm.conf;
	o.first_user_roles = roles;
	/* Every test person's passphrase; cheap Argon2id so tests stay fast
	 * (one test in test_cred runs the defaults). */
	o.passphrase = TH_PASSPHRASE;
	o.argon2_t = 1;
	o.argon2_m_kib = 8;
	km_err e = {0};
	km_status st = km_init_deployment(&o, &e);
	ck_assert_msg(st == KM_OK, "init: %s", e.msg);
	if (extra_config) {
		km_config c;
		ck_assert_int_eq(km_config_load(&c, d->home, &e), KM_OK);
		char text[1024];
		snprintf(text, sizeof text, "{%s}", extra_config);
		ck_assert_msg(km_config_parse(&c, text, "extra", &e) == KM_OK, "%s", e.msg);
		ck_assert_int_eq(km_config_save(&c, &e), KM_OK);
		km_config_free(&c);
	}
	setenv("KEYWARD_HOME", d->home, 1);
	setenv("KEYWARD_PIN", d->hsm.pin, 1);
	setenv("KEYWARD_PASSPHRASE", TH_PASSPHRASE, 1);
}

km_ctx *th_deploy_open(th_deploy *d, const char *user)
{
	km_open_opts o = {0};
	o.home = d->home;
	o.user = user;
	km_ctx *ctx = NULL;
	km_err e = {0};
	km_status st = km_open(&o, &ctx, &e);
	ck_assert_msg(st == KM_OK, "open: %s", e.msg);
	return ctx;
}

void th_deploy_teardown(th_deploy *d)
{
	th_hsm_teardown(&d->hsm);
}
