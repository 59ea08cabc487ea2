/*
 * th_deploy.h — test fixture: a whole keyward deployment (SoftHSM2 token,
 * catalogue, config.json) in a private temp directory, made through
 * km_init_deployment exactly as `keyward init` makes it.
 */
#ifndef KM_TH_DEPLOY_H
#define KM_TH_DEPLOY_H

#include "th_softhsm.h"
#include "keyward.h"

typedef struct th_deploy {
	th_hsm hsm;
	char home[300];
} th_deploy;

/* Every test user's passphrase (KEYWARD_PASSPHRASE is set to it). */
#define TH_PASSPHRASE "test passphrase"

/* Create the deployment; the invoking user gets `roles`.  extra_config is
 * JSON members merged into config.json (e.g. "\"kek_max_wraps\": 3") or
 * NULL.  Exports KEYWARD_HOME and KEYWARD_PIN.  Aborts the test on failure. */
void th_deploy_setup(th_deploy *d, unsigned roles, const char *extra_config);

/* km_open on it as keyward user `user` (NULL: who ran init); aborts the
 * test on failure. */
km_ctx *th_deploy_open(th_deploy *d, const char *user);

void th_deploy_teardown(th_deploy *d);

#endif
