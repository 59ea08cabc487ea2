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

/* Merge extra_config (JSON members, as for th_deploy_setup) into its
 * config.json.  Aborts the test on failure. */
void th_deploy_config(th_deploy *d, const char *extra_config);

/* A fixture many tests share is made once and copied per test (a Check
 * suite's tests are separate processes; making a deployment and its
 * history can cost more than the test).  th_deploy_copy copies src's token
 * directory and home into `dir` (existing and empty; NULL: a new temp dir
 * of its own) and names the copy's SoftHSM2 conf in its config.json, so the
 * copy is a deployment of its own: changing it leaves src as it was.  src
 * must not be open (no km_ctx on it) in this process or any other: the copy
 * is of the files.  th_deploy_copy exports nothing; th_deploy_use exports
 * what th_deploy_setup does (SOFTHSM2_CONF, KEYWARD_HOME, KEYWARD_PIN,
 * KEYWARD_PASSPHRASE) for d.  Both abort the test on failure. */
void th_deploy_copy(const th_deploy *src, th_deploy *dst, const char *dir);
void th_deploy_use(const th_deploy *d);
/* d as th_deploy_setup or th_deploy_copy left it in dir (for a copy made
 * in an earlier process): the paths, module, token label and PINs. */
void th_deploy_at(th_deploy *d, const char *dir);

/* km_open on it as keyward user `user` (NULL: who ran init); aborts the
 * test on failure. */
km_ctx *th_deploy_open(th_deploy *d, const char *user);

void th_deploy_teardown(th_deploy *d);

/* Enrol a person directly (as init enrols the first one: a sealed row and
 * its audit event), with TH_PASSPHRASE; scopes may be NULL.  For fixtures
 * only: real enrolments are requests. */
void th_deploy_user(th_deploy *d, km_ctx *ctx, const char *name, unsigned roles, const char *scopes);

/* Have request `id` (opened in ctx) approved by fixture approvers
 * ("th-approver1", "th-approver2", or "th-admin1", "th-admin2" for the
 * administrators' kinds; enrolled on first use) until its quorum is met,
 * then execute it in ctx.  Returns the execution's status. */
km_status th_request_done(th_deploy *d, km_ctx *ctx, const char *id, km_err *e);
/* The same without executing: the quorum's signatures only. */
km_status th_request_approve(th_deploy *d, km_ctx *ctx, const char *id, km_err *e);

/* What tests used to do on the spot, now through a request each:
 * rotate (the new version in *nv, may be NULL) and change a state
 * (compromise acts at once; destroy-scheduled and its cancellation use
 * their own kinds). */
km_status th_rotate(th_deploy *d, km_ctx *ctx, const char *key, uint32_t *nv, km_err *e);
km_status th_set_state(th_deploy *d, km_ctx *ctx, const char *key, uint32_t version, int to, km_err *e);
/* Write a policy as an executed request would (policy_apply inside a
 * transaction with its event): scope "" is the global policy, fields a
 * JSON object such as {"deprecation_days":0}. */
km_status th_policy_apply(km_ctx *ctx, const char *scope, const char *fields, km_err *e);

#endif
