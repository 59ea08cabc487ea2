/*
 * th_deploy.c — a real deployment per test.
 */
#include "th_deploy.h"
#include "config.h"
#include "cred.h"
#include "kek.h"
#include "lifecycle.h"
#include "request.h"
#include "rowmac.h"
#include "user_int.h"

#include <check.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

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
	if (extra_config)
		th_deploy_config(d, extra_config);
	th_deploy_use(d);
}

void th_deploy_config(th_deploy *d, const char *extra_config)
{
	km_config c;
	km_err e = {0};
	ck_assert_msg(km_config_load(&c, d->home, &e) == KM_OK, "%s", e.msg);
	char text[1024];
	ck_assert_uint_lt((size_t)snprintf(text, sizeof text, "{%s}", extra_config), sizeof text);
	ck_assert_msg(km_config_parse(&c, text, "extra", &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_config_save(&c, &e) == KM_OK, "%s", e.msg);
	km_config_free(&c);
}

void th_deploy_use(const th_deploy *d)
{
	setenv("SOFTHSM2_CONF", d->hsm.conf, 1);
	setenv("KEYWARD_HOME", d->home, 1);
	setenv("KEYWARD_PIN", d->hsm.pin, 1);
	setenv("KEYWARD_PASSPHRASE", TH_PASSPHRASE, 1);
}

void th_deploy_at(th_deploy *d, const char *dir)
{
	memset(d, 0, sizeof *d);
	th_hsm_at(&d->hsm, dir);
	snprintf(d->home, sizeof d->home, "%s/home", d->hsm.dir);
}

/* cp -a from to: a directory tree as it is (modes kept: the home is 0700). */
static void copy_tree(const char *from, const char *to)
{
	char *argv[] = {"cp", "-a", "--", (char *)from, (char *)to, NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, "cp", NULL, NULL, argv, environ), status = 0;
	ck_assert_msg(rc == 0, "cannot run cp: %s", strerror(rc));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cp -a %s %s failed", from, to);
}

/* Whether the file at path contains text (a path the copy must not name). */
static int file_names(const char *path, const char *text)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	size_t n = strlen(text), cap = 1 << 16, have = 0, got;
	char *buf = malloc(cap + n);
	ck_assert_ptr_nonnull(buf);
	int found = 0;
	/* chunks overlapping by n bytes, so a match across two is seen */
	while (!found && (got = fread(buf + have, 1, cap, f)) > 0) {
		have += got;
		found = memmem(buf, have, text, n) != NULL;
		if (have > n) {
			memmove(buf, buf + have - n, n);
			have = n;
		}
	}
	free(buf);
	fclose(f);
	return found;
}

void th_deploy_copy(const th_deploy *src, th_deploy *dst, const char *dir)
{
	char made[256];
	if (!dir) {
		const char *t = getenv("TMPDIR");
		snprintf(made, sizeof made, "%s/kw-hsm-XXXXXX", t && *t ? t : "/tmp");
		ck_assert_msg(mkdtemp(made) != NULL, "mkdtemp %s: %s", made, strerror(errno));
		dir = made;
	}
	th_deploy_at(dst, dir);
	copy_tree(src->hsm.tokendir, dst->hsm.tokendir);
	copy_tree(src->home, dst->home);
	FILE *f = fopen(dst->hsm.conf, "w");
	ck_assert_msg(f != NULL, "%s: %s", dst->hsm.conf, strerror(errno));
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", dst->hsm.tokendir);
	ck_assert_int_eq(fclose(f), 0);
	/* config.json names the SoftHSM2 conf, outside the home: absolute */
	km_config c;
	km_err e = {0};
	ck_assert_msg(km_config_load(&c, dst->home, &e) == KM_OK, "%s", e.msg);
	snprintf(c.softhsm2_conf, sizeof c.softhsm2_conf, "%s", dst->hsm.conf);
	ck_assert_msg(km_config_save(&c, &e) == KM_OK, "%s", e.msg);
	km_config_free(&c);
	/* nothing in the copy may still lead to the original */
	static const char *const files[] = {"config.json", "keyward.db"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[400];
		snprintf(path, sizeof path, "%s/%s", dst->home, files[i]);
		ck_assert_msg(!file_names(path, src->hsm.dir), "%s names %s", path, src->hsm.dir);
	}
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

void th_deploy_user(th_deploy *d, km_ctx *ctx, const char *name, unsigned roles, const char *scopes)
{
	(void)d;
	km_err e = {0};
	user_row u = {.roles = roles, .created = km_ctx_now(ctx), .totp_step = -1};
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.created_by, sizeof u.created_by, "%s", km_actor_get(ctx)->name);
	snprintf(u.scopes, sizeof u.scopes, "%s", scopes ? scopes : "");
	km_cred_params p = km_cred_params_default();
	p.t_cost = km_config_get(ctx)->argon2_t;
	p.m_cost_kib = km_config_get(ctx)->argon2_m_kib;
	ck_assert_msg(km_cred_create(name, TH_PASSPHRASE, &p, &u.cred, &e) == KM_OK, "%s", e.msg);
	char digest[65], obj[80];
	snprintf(obj, sizeof obj, "user:%s", name);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_msg(user_row_save(ctx, &u, 1, digest, &e) == KM_OK, "%s", e.msg);
	json_t *det = json_object();
	km_sealed_note(det, "users", name, digest);
	ck_assert_int_eq(km_tx_audit(ctx, "user.add", obj, "ok", det, &e), KM_OK);
	ck_assert_msg(km_tx_commit(ctx, &e) == KM_OK, "%s", e.msg);
	user_row_clear(&u);
}

/* A fixture approver's name, enrolled when missing. */
static const char *fixture_approver(th_deploy *d, km_ctx *ctx, int admin, int i)
{
	static char name[32];
	snprintf(name, sizeof name, "th-%s%d", admin ? "admin" : "approver", i);
	user_row u;
	km_err e;
	if (user_row_load(ctx, name, &u, &e) == KM_OK)
		user_row_clear(&u);
	else
		th_deploy_user(d, ctx, name, admin ? KM_ROLE_ADMIN : KM_ROLE_APPROVER, NULL);
	return name;
}

km_status th_request_approve(th_deploy *d, km_ctx *ctx, const char *id, km_err *e)
{
	km_request_info r;
	km_status st = km_request_get(ctx, id, &r, e);
	int admin = r.kind == KM_REQ_ROLE_GRANT || r.kind == KM_REQ_ROLE_REVOKE || r.kind == KM_REQ_USER_ADD;
	for (int i = 1; !st && r.state == KM_RS_PENDING && i <= 4; i++) {
		const char *who = fixture_approver(d, ctx, admin, i);
		km_ctx *s = th_deploy_open(d, who);
		/* The approvers live on the requester's clock (a test that
		 * moved time moves it for everyone). */
		if (ctx->clock)
			km_set_clock(s, ctx->clock, ctx->clock_ctx);
		st = km_request_approve(s, id, e);
		km_close(s);
		if (!st)
			st = km_request_get(ctx, id, &r, e);
	}
	return st;
}

km_status th_request_done(th_deploy *d, km_ctx *ctx, const char *id, km_err *e)
{
	km_status st = th_request_approve(d, ctx, id, e);
	return st ? st : km_request_execute(ctx, id, NULL, NULL, e);
}

km_status th_rotate(th_deploy *d, km_ctx *ctx, const char *key, uint32_t *nv, km_err *e)
{
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_request_rotate(ctx, key, "test", id, e);
	if (!st)
		st = th_request_done(d, ctx, id, e);
	km_key_info k;
	if (!st && nv && !(st = km_key_get(ctx, key, &k, e)))
		*nv = k.current_version;
	return st;
}

typedef struct version_probe {
	uint32_t version;
	km_key_state state;
} version_probe;

static int probe_cb(void *c, const km_key_version_info *v)
{
	version_probe *p = c;
	if (v->version == p->version)
		p->state = v->state;
	return 0;
}

km_status th_set_state(th_deploy *d, km_ctx *ctx, const char *key, uint32_t version, int to, km_err *e)
{
	char id[KM_REQUEST_ID_MAX];
	km_status st;
	if (to == KS_COMPROMISED)
		return km_key_compromise(ctx, key, version, "test", id, e);
	version_probe p = {version, KS_PENDING};
	km_err ignored;
	km_key_versions(ctx, key, probe_cb, &p, &ignored);
	if (to == KS_DESTROY_SCHEDULED)
		st = km_request_destroy(ctx, key, version, "test", id, e);
	else if (to == KS_RETIRED && p.state == KS_DESTROY_SCHEDULED)
		st = km_request_cancel_destroy(ctx, key, version, "test", id, e);
	else
		st = km_request_set_state(ctx, key, version, (km_key_state)to, "test", id, e);
	if (!st)
		st = th_request_done(d, ctx, id, e);
	return st;
}

km_status th_policy_apply(km_ctx *ctx, const char *scope, const char *fields, km_err *e)
{
	json_t *change = json_pack("{s:s,s:o}", "scope", scope, "set", json_loads(fields, 0, NULL));
	json_t *d = json_object();
	km_status st = km_tx_begin(ctx, e);
	if (!st && !(st = policy_apply(ctx, change, d, e))) {
		st = km_tx_audit(ctx, "policy.set", "policy:test", "ok", d, e);
		d = NULL;
		if (!st)
			st = km_tx_commit(ctx, e);
	}
	if (st)
		km_tx_rollback(ctx);
	json_decref(d);
	json_decref(change);
	return st;
}
