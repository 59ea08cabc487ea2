/*
 * test_core.c — the key manager core on a real deployment: SoftHSM2 token,
 * SQLite catalogue, audit log.  Each test makes its own deployment.
 */
#include "th_deploy.h"
#include "asset.h"
#include "audit.h"
#include "auditlog.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "lifecycle.h"
#include "request.h"
#include "user.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static th_deploy D;

static uint64_t audit_count(km_ctx *ctx)
{
	uint64_t n = 0;
	km_err e;
	ck_assert_int_eq(audit_size(km_db(ctx), &n, &e), KM_OK);
	return n;
}

/* The newest event's action and outcome. */
static void last_event(km_ctx *ctx, char *action, char *outcome)
{
	audit_row r;
	km_err e;
	ck_assert_int_eq(audit_get(km_db(ctx), audit_count(ctx), &r, &e), KM_OK);
	strcpy(action, r.action);
	strcpy(outcome, r.outcome);
	audit_row_free(&r);
}

static int64_t count(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_int_eq(km_db_int64(km_db(ctx), sql, &v, &e), KM_OK);
	return v;
}

static void assert_log_intact(km_ctx *ctx)
{
	audit_verify_result r;
	km_err e;
	ck_assert_msg(km_audit_verify(ctx, NULL, NULL, &r, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(r.intact, "audit log not intact: %s", r.problem);
}

static int memfd_with(const char *data, size_t n)
{
	int fd = memfd_create("t", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void teardown(void) { th_deploy_teardown(&D); }

START_TEST(init_and_login_are_audited)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	ck_assert_uint_eq(km_actor_get(ctx)->roles, KM_ROLE_OFFICER | KM_ROLE_AUDITOR);
	char action[64], outcome[16];
	last_event(ctx, action, outcome);
	ck_assert_str_eq(action, "login");
	ck_assert_str_eq(outcome, "ok");
	/* init, user.add, login */
	ck_assert_uint_ge(audit_count(ctx), 3);
	km_err e;
	km_init_opts again = {.home = D.home, .pin = D.hsm.pin, .passphrase = TH_PASSPHRASE};
	ck_assert_int_eq(km_init_deployment(&again, &e), KM_EEXISTS);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

START_TEST(key_create_rotate_and_show)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	km_tag tags[2] = {{"sensitivity", "high"}, {"region", "eu-west-1"}};
	ck_assert_msg(km_key_create(ctx, "features/credit-risk", tags, 2, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_key_create(ctx, "features/credit-risk", NULL, 0, &e), KM_EEXISTS);
	/* A refused attempt leaves exactly one event, with its outcome. */
	uint64_t before = audit_count(ctx);
	ck_assert_int_eq(km_key_create(ctx, "Bad Name", NULL, 0, &e), KM_EINVAL);
	ck_assert_uint_eq(audit_count(ctx), before + 1);
	char action[64], outcome[16];
	last_event(ctx, action, outcome);
	ck_assert_str_eq(action, "key.create");
	ck_assert_str_eq(outcome, "error");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM keys"), 1);

	uint32_t v = 0;
	ck_assert_int_eq(th_rotate(&D, ctx, "features/credit-risk", &v, &e), KM_OK);
	ck_assert_uint_eq(v, 2);
	km_key_info k;
	ck_assert_int_eq(km_key_get(ctx, "features/credit-risk", &k, &e), KM_OK);
	ck_assert_uint_eq(k.current_version, 2);
	ck_assert_int_eq(k.current_state, KS_ACTIVE);
	ck_assert_str_eq(k.tags, "region=eu-west-1, sensitivity=high");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 1 AND state = 'decrypt-only'"), 1);
	/* wrapped material is stored, and it is not 32 raw bytes */
	ck_assert_int_eq(count(ctx, "SELECT min(length(wrapped)) FROM key_versions"), 40);

	km_tag untag = {"region", ""};
	ck_assert_int_eq(km_key_tag(ctx, "features/credit-risk", &untag, 1, &e), KM_OK);
	ck_assert_int_eq(km_key_get(ctx, "features/credit-risk", &k, &e), KM_OK);
	ck_assert_str_eq(k.tags, "sensitivity=high");
	ck_assert_int_eq(km_key_get(ctx, "features/nope", &k, &e), KM_ENOTFOUND);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

START_TEST(illegal_state_change_is_refused_and_recorded)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	char id[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_key_create(ctx, "models/fraud-v4", NULL, 0, &e), KM_OK);
	/* Refused when the request would open, naming the legal targets. */
	ck_assert_int_eq(km_request_set_state(ctx, "models/fraud-v4", 1, KS_RETIRED, "t", id, &e), KM_ESTATE);
	ck_assert_ptr_nonnull(strstr(e.msg, "allowed from active: decrypt-only, compromised"));
	char action[64], outcome[16];
	last_event(ctx, action, outcome);
	ck_assert_str_eq(action, "key.state");
	ck_assert_str_eq(outcome, "error");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE state = 'active'"), 1);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM requests"), 0);
	ck_assert_int_eq(km_request_set_state(ctx, "models/fraud-v4", 9, KS_RETIRED, "t", id, &e), KM_ENOTFOUND);
	/* Destruction is never a plain state request: it waits (rotate --due). */
	ck_assert_int_eq(km_request_set_state(ctx, "models/fraud-v4", 1, KS_DESTROYED, "t", id, &e), KM_EUSAGE);
	ck_assert_int_eq(th_rotate(&D, ctx, "models/fraud-v4", NULL, &e), KM_OK);
	ck_assert_int_eq(th_policy_apply(ctx, "models/fraud-v4", "{\"deprecation_days\":0}", &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "models/fraud-v4", 1, KS_RETIRED, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "models/fraud-v4", 1, KS_DESTROY_SCHEDULED, &e), KM_OK);
	/* the lifecycle itself refuses destruction before the waiting period ends */
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	json_t *d = json_object();
	ck_assert_int_eq(lifecycle_set_state(ctx, "models/fraud-v4", 1, KS_DESTROYED, d, &e), KM_ESTATE);
	json_decref(d);
	km_tx_rollback(ctx);
	ck_assert_ptr_nonnull(strstr(e.msg, "waiting period"));
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

START_TEST(destruction_erases_material)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"destroy_wait_seconds\": 1");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "datasets/old", NULL, 0, &e), KM_OK);
	ck_assert_int_eq(th_rotate(&D, ctx, "datasets/old", NULL, &e), KM_OK);
	ck_assert_int_eq(th_policy_apply(ctx, "datasets/old", "{\"deprecation_days\":0}", &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/old", 1, KS_RETIRED, &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/old", 1, KS_DESTROY_SCHEDULED, &e), KM_OK);
	sleep(2); /* the configured waiting period is a wall-clock rule */
	/* What `rotate --due` does at the end of the wait. */
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	json_t *d = json_object();
	ck_assert_msg(lifecycle_set_state(ctx, "datasets/old", 1, KS_DESTROYED, d, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_tx_audit(ctx, "key.state", "key:datasets/old@1", "ok", d, &e), KM_OK);
	ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 1 AND wrapped IS NULL "
	                       "AND state = 'destroyed'"), 1);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/old", 1, KS_COMPROMISED, &e), KM_ESTATE);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

static int64_t fixed_now;
static int64_t fixed_clock(void *c)
{
	(void)c;
	return fixed_now;
}

/* The destruction wait comes from the key's policy where one sets it
 * (here 3 days for datasets/), else the deployment default (1 s here). */
START_TEST(destruction_wait_follows_the_policy)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"destroy_wait_seconds\": 1");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	fixed_now = km_now();
	km_set_clock(ctx, fixed_clock, NULL);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	json_t *change = json_pack("{s:s,s:{s:i}}", "scope", "datasets/", "set", "destroy_wait_days", 3);
	json_t *d = json_object();
	ck_assert_msg(policy_apply(ctx, change, d, &e) == KM_OK, "%s", e.msg);
	json_decref(change);
	ck_assert_int_eq(km_tx_audit(ctx, "policy.set", "policy:datasets/", "ok", d, &e), KM_OK);
	ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
	ck_assert_int_eq(th_policy_apply(ctx, "", "{\"deprecation_days\":0}", &e), KM_OK);
	const char *keys[] = {"datasets/a", "models/b"};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(km_key_create(ctx, keys[i], NULL, 0, &e), KM_OK);
		ck_assert_int_eq(th_rotate(&D, ctx, keys[i], NULL, &e), KM_OK);
		ck_assert_int_eq(th_set_state(&D, ctx, keys[i], 1, KS_RETIRED, &e), KM_OK);
		ck_assert_msg(th_set_state(&D, ctx, keys[i], 1, KS_DESTROY_SCHEDULED, &e) == KM_OK, "%s", e.msg);
	}
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT destroy_after - %lld FROM key_versions WHERE version = 1 AND key_id = "
	         "(SELECT id FROM keys WHERE name = 'datasets/a')", (long long)fixed_now);
	ck_assert_int_eq(count(ctx, sql), 3 * 86400);
	snprintf(sql, sizeof sql, "SELECT destroy_after - %lld FROM key_versions WHERE version = 1 AND key_id = "
	         "(SELECT id FROM keys WHERE name = 'models/b')", (long long)fixed_now);
	ck_assert_int_eq(count(ctx, sql), 1);
	km_close(ctx);
}
END_TEST

START_TEST(protect_unprotect_and_state_rules)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_OK);
	const char msg[] = "feature values: 0.25, 0.5, 0.75";
	int in = memfd_with(msg, sizeof msg);
	int env = memfd_create("env", 0);
	km_asset_info a;
	ck_assert_msg(km_protect(ctx, "features/x", "feature:x/score@1", in, env, NULL, &a, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(a.size, sizeof msg);
	ck_assert_uint_eq(a.kek_version, 1);
	ck_assert_int_eq(count(ctx, "SELECT wraps FROM key_versions WHERE version = 1"), 1);
	ck_assert_int_eq(count(ctx, "SELECT assets FROM keys"), 1);

	/* decrypt-only still decrypts */
	ck_assert_int_eq(th_rotate(&D, ctx, "features/x", NULL, &e), KM_OK);
	lseek(env, 0, SEEK_SET);
	int out = memfd_create("out", 0);
	km_asset_info b;
	ck_assert_msg(km_unprotect(ctx, env, out, NULL, &b, &e) == KM_OK, "%s", e.msg);
	char back[64] = {0};
	ck_assert_int_eq(pread(out, back, sizeof back, 0), (ssize_t)sizeof msg);
	ck_assert_str_eq(back, msg);
	ck_assert_int_eq(b.id, a.id);
	char action[64], outcome[16];
	last_event(ctx, action, outcome);
	ck_assert_str_eq(action, "unprotect");

	/* The rotation's rewrap moved the DEK to v2 in the catalogue (the
	 * authority; the envelope still names v1), so a retired v1 no longer
	 * stands in the way. */
	ck_assert_int_eq(count(ctx, "SELECT kek_version FROM assets"), 2);
	ck_assert_int_eq(th_set_state(&D, ctx, "features/x", 1, KS_RETIRED, &e), KM_OK);
	lseek(env, 0, SEEK_SET);
	int out2 = memfd_create("out2", 0);
	ck_assert_msg(km_unprotect(ctx, env, out2, NULL, &b, &e) == KM_OK, "%s", e.msg);

	/* compromised: no more encryption with it, and decryption only with
	 * the override; nothing is released without it */
	ck_assert_int_eq(th_set_state(&D, ctx, "features/x", 2, KS_COMPROMISED, &e), KM_OK);
	lseek(in, 0, SEEK_SET);
	int env2 = memfd_create("env2", 0);
	ck_assert_int_eq(km_protect(ctx, "features/x", "feature:x/score@2", in, env2, NULL, &a, &e), KM_ESTATE);
	lseek(env, 0, SEEK_SET);
	int out3 = memfd_create("out3", 0);
	ck_assert_int_eq(km_unprotect(ctx, env, out3, NULL, &b, &e), KM_ESTATE);
	ck_assert_int_eq(lseek(out3, 0, SEEK_END), 0);
	close(out3);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets"), 1);
	/* the status counters agree with the tables */
	ck_assert_int_eq(count(ctx, "SELECT n FROM counts WHERE name = 'assets'"), 1);
	ck_assert_int_eq(count(ctx, "SELECT n FROM counts WHERE name = 'versions'"),
	                 count(ctx, "SELECT count(*) FROM key_versions"));
	km_status_info si;
	ck_assert_int_eq(km_status_get(ctx, &si, &e), KM_OK);
	ck_assert_uint_eq(si.keys, 1);
	ck_assert_uint_eq(si.versions, 2);
	ck_assert_uint_eq(si.assets, 1);
	ck_assert_uint_eq(si.keys_overdue, 1); /* its newest version is compromised */
	assert_log_intact(ctx);
	close(in); close(env); close(out); close(out2); close(env2);
	km_close(ctx);
}
END_TEST

START_TEST(wrap_bound_stops_encryption)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"kek_max_wraps\": 3");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/busy", NULL, 0, &e), KM_OK);
	for (int i = 0; i < 3; i++) {
		int in = memfd_with("x", 1), out = memfd_create("o", 0);
		char spec[64];
		snprintf(spec, sizeof spec, "feature:busy/f@%d", i);
		ck_assert_msg(km_protect(ctx, "features/busy", spec, in, out, NULL, NULL, &e) == KM_OK, "%s", e.msg);
		close(in);
		close(out);
	}
	int in = memfd_with("x", 1), out = memfd_create("o", 0);
	ck_assert_int_eq(km_protect(ctx, "features/busy", "feature:busy/f@9", in, out, NULL, NULL, &e), KM_ELIMIT);
	ck_assert_ptr_nonnull(strstr(e.msg, "rotate"));
	ck_assert_int_eq(lseek(out, 0, SEEK_END), 0);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM assets"), 3);
	const char *specs[] = {"feature:busy/g@1"};
	ck_assert_int_eq(km_asset_register_bulk(ctx, "features/busy", specs, 1, &e), KM_ELIMIT);
	/* rotating gives a fresh budget, which the rotation's rewrap of the
	 * three DEKs spends: its wraps count like any other */
	ck_assert_int_eq(th_rotate(&D, ctx, "features/busy", NULL, &e), KM_OK);
	ck_assert_int_eq(count(ctx, "SELECT wraps FROM key_versions WHERE version = 2"), 3);
	ck_assert_int_eq(km_asset_register_bulk(ctx, "features/busy", specs, 1, &e), KM_ELIMIT);
	close(in);
	close(out);
	km_close(ctx);
}
END_TEST

/* cache_max_bytes: the bytes that pass under one cached unwrap, protect
 * and unprotect alike, are bounded; past the bound the version leaves the
 * cache and the next use unwraps it afresh. */
START_TEST(cache_byte_bound_forces_a_fresh_unwrap)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, "\"cache_max_bytes\": 10000");
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/bytes", NULL, 0, &e), KM_OK);
	static char data[4000];
	memset(data, 'b', sizeof data);
	int env[4];
	/* after each protect of 4000 bytes: held while below 10000 bytes */
	static const size_t held_after[4] = {1, 1, 0, 1};
	for (int i = 0; i < 4; i++) {
		int in = memfd_with(data, sizeof data);
		env[i] = memfd_create("env", 0);
		char spec[64];
		snprintf(spec, sizeof spec, "feature:bytes/f@%d", i);
		ck_assert_msg(km_protect(ctx, "features/bytes", spec, in, env[i], NULL, NULL, &e) == KM_OK, "%s", e.msg);
		ck_assert_msg(kek_cache_size(ctx->cache) == held_after[i], "after protect %d: %zu cached", i,
		              kek_cache_size(ctx->cache));
		close(in);
	}
	/* the fresh unwrap of the 4th protect holds 4000; unprotects count too */
	static const size_t held_after_read[2] = {1, 0};
	for (int i = 0; i < 2; i++) {
		lseek(env[i], 0, SEEK_SET);
		int out = memfd_create("out", 0);
		km_asset_info a;
		ck_assert_msg(km_unprotect(ctx, env[i], out, NULL, &a, &e) == KM_OK, "%s", e.msg);
		ck_assert_uint_eq(a.size, sizeof data);
		ck_assert_msg(kek_cache_size(ctx->cache) == held_after_read[i], "after unprotect %d: %zu cached", i,
		              kek_cache_size(ctx->cache));
		close(out);
	}
	for (int i = 0; i < 4; i++)
		close(env[i]);
	km_close(ctx);
}
END_TEST

START_TEST(denials_are_audited)
{
	th_deploy_setup(&D, KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "officer"));
	char action[64], outcome[16];
	last_event(ctx, action, outcome);
	ck_assert_str_eq(action, "key.create");
	ck_assert_str_eq(outcome, "denied");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM keys"), 0);
	char uid[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_request_user_add(ctx, "mallory", KM_ROLE_OFFICER, NULL, TH_PASSPHRASE, NULL, uid, &e), KM_EDENIED);
	assert_log_intact(ctx);
	km_close(ctx);
}
END_TEST

START_TEST(admin_enrols_but_cannot_use_keys)
{
	th_deploy_setup(&D, KM_ROLE_ADMIN, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	char uid[KM_REQUEST_ID_MAX];
	/* The sole administrator enrols at once (nobody else could approve). */
	ck_assert_int_eq(km_request_user_add(ctx, "alice", KM_ROLE_OFFICER, NULL, TH_PASSPHRASE, NULL, uid, &e), KM_OK);
	ck_assert_str_eq(uid, "");
	ck_assert_int_eq(km_request_user_add(ctx, "alice", KM_ROLE_OFFICER, NULL, TH_PASSPHRASE, NULL, uid, &e), KM_EEXISTS);
	ck_assert_int_eq(km_request_user_add(ctx, "root2", KM_ROLE_ADMIN | KM_ROLE_OFFICER, NULL, TH_PASSPHRASE, NULL, uid, &e), KM_EDENIED);
	ck_assert_int_eq(km_key_create(ctx, "features/x", NULL, 0, &e), KM_EDENIED);
	km_close(ctx);
	/* Personal mode: --user names the person; the passphrase proves it. */
	km_ctx *alice = th_deploy_open(&D, "alice");
	ck_assert_str_eq(km_actor_get(alice)->name, "alice");
	ck_assert_int_eq(km_key_create(alice, "features/x", NULL, 0, &e), KM_OK);
	km_close(alice);
	km_open_opts o = {.home = D.home, .user = "nobody-enrolled"};
	km_ctx *none = NULL;
	ck_assert_int_eq(km_open(&o, &none, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a keyward user"));
}
END_TEST

static int collect_names(void *c, const km_key_info *k)
{
	char *buf = c;
	strcat(buf, k->name);
	strcat(buf, " ");
	return 0;
}

static int keep_last(void *c, const km_key_info *k)
{
	*(km_key_info *)c = *k;
	return 0;
}

START_TEST(inventory_keyset_pagination)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	km_err e;
	const char *names[12];
	char buf[12][32];
	for (int i = 0; i < 12; i++) {
		snprintf(buf[i], sizeof buf[i], "features/k%02d", i);
		names[i] = buf[i];
	}
	km_tag t = {"sensitivity", "high"};
	ck_assert_int_eq(km_key_create_bulk(ctx, names, 12, &t, 1, &e), KM_OK);
	ck_assert_int_eq(km_key_create(ctx, "models/m", NULL, 0, &e), KM_OK);

	char all[1024] = "";
	km_key_info last;
	km_key_query q = {.sort = KM_KEY_SORT_NAME, .limit = 5};
	for (int page = 0; page < 4; page++) {
		char one[512] = "";
		ck_assert_int_eq(km_key_list(ctx, &q, collect_names, one, &e), KM_OK);
		strcat(all, one);
		if (!one[0])
			break;
		ck_assert_int_eq(km_key_list(ctx, &q, keep_last, &last, &e), KM_OK);
		q.cursor = &last;
	}
	ck_assert_str_eq(all, "features/k00 features/k01 features/k02 features/k03 features/k04 features/k05 "
	                      "features/k06 features/k07 features/k08 features/k09 features/k10 features/k11 models/m ");
	/* backwards from models/m */
	km_key_info m;
	ck_assert_int_eq(km_key_get(ctx, "models/m", &m, &e), KM_OK);
	km_key_query back = {.sort = KM_KEY_SORT_NAME, .limit = 2, .cursor = &m, .backwards = 1};
	char b[256] = "";
	ck_assert_int_eq(km_key_list(ctx, &back, collect_names, b, &e), KM_OK);
	ck_assert_str_eq(b, "features/k11 features/k10 ");
	/* filters */
	uint64_t n;
	ck_assert_int_eq(km_key_count(ctx, "sensitivity:high", &n, &e), KM_OK);
	ck_assert_uint_eq(n, 12);
	ck_assert_int_eq(km_key_count(ctx, "k1", &n, &e), KM_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(km_key_count(ctx, "_", &n, &e), KM_OK);
	ck_assert_uint_eq(n, 0); /* LIKE wildcards are escaped */
	km_key_query desc = {.sort = KM_KEY_SORT_NAME, .descending = 1, .limit = 1};
	char d[128] = "";
	ck_assert_int_eq(km_key_list(ctx, &desc, collect_names, d, &e), KM_OK);
	ck_assert_str_eq(d, "models/m ");
	km_close(ctx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("core");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, init_and_login_are_audited);
	tcase_add_test(t, key_create_rotate_and_show);
	tcase_add_test(t, illegal_state_change_is_refused_and_recorded);
	tcase_add_test(t, destruction_erases_material);
	tcase_add_test(t, destruction_wait_follows_the_policy);
	tcase_add_test(t, protect_unprotect_and_state_rules);
	tcase_add_test(t, wrap_bound_stops_encryption);
	tcase_add_test(t, cache_byte_bound_forces_a_fresh_unwrap);
	tcase_add_test(t, denials_are_audited);
	tcase_add_test(t, admin_enrols_but_cannot_use_keys);
	tcase_add_test(t, inventory_keyset_pagination);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
