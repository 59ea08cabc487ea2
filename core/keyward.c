/*
 * keyward.c — sessions on a deployment: open, login, the authorise + audit
 * + commit path, deployment initialisation and status.
 */
#include "ctx.h"
#include "audit.h"
#include "db.h"
#include "hsm.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define PIN_MAX 256

int64_t km_now(void) { return (int64_t)time(NULL); }

void km_time_format(int64_t t, char buf[32])
{
	if (t <= 0) {
		snprintf(buf, 32, "-");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

km_status km_random_hex(char *out, size_t n, km_err *e)
{
	unsigned char b[32];
	if (n > sizeof b || RAND_bytes(b, (int)n) != 1)
		return km_fail(e, KM_EINTERNAL, "random generator failed");
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return KM_OK;
}

const km_actor *km_actor_get(const km_ctx *ctx) { return &ctx->actor; }
const char *km_log_damage(const km_ctx *ctx) { return ctx->log_damaged ? ctx->log_problem : NULL; }
const km_config *km_config_get(const km_ctx *ctx) { return &ctx->cfg; }
sqlite3 *km_db(km_ctx *ctx) { return ctx->db; }
hsm *km_hsm(km_ctx *ctx) { return ctx->h; }

/* ---- the audit + commit path ----------------------------------------- */

km_status km_ctx_sign(void *c, const uint8_t digest[32], uint8_t sig[64], km_err *e)
{
	return hsm_audit_sign(((km_ctx *)c)->h, digest, sig, e);
}

km_status km_tx_begin(km_ctx *ctx, km_err *e)
{
	if (!ctx->aw) {
		km_status st = audit_writer_new(ctx->db, &ctx->aw, e);
		if (st)
			return st;
	}
	audit_writer_reset(ctx->aw);
	return km_db_begin(ctx->db, e);
}

void km_tx_rollback(km_ctx *ctx)
{
	audit_writer_reset(ctx->aw);
	km_db_rollback(ctx->db);
}

km_status km_tx_audit(km_ctx *ctx, const char *action, const char *object,
                      const char *outcome, json_t *details, km_err *e)
{
	if (ctx->log_damaged) {
		json_decref(details);
		return km_fail(e, KM_EINTEGRITY, "the audit log is damaged, so nothing can be recorded "
		               "or changed (%s); run `keyward audit verify`", ctx->log_problem);
	}
	if (!details)
		details = json_object();
	if (ctx->actor.via[0])
		json_object_set_new(details, "via", json_string(ctx->actor.via));
	audit_event ev = {ctx->actor.name, action, object, outcome, details};
	uint64_t seq;
	km_status st = audit_writer_append(ctx->aw, &ev, &seq, e);
	json_decref(details);
	return st;
}

km_status km_tx_commit(km_ctx *ctx, km_err *e)
{
	km_status st = audit_writer_sign_head(ctx->aw, km_ctx_sign, ctx, e);
	if (st) {
		km_tx_rollback(ctx);
		return km_wrap(e, "cannot sign the audit tree head, nothing was changed");
	}
	st = km_db_commit(ctx->db, e);
	audit_writer_reset(ctx->aw);
	return st;
}

km_status km_audit_event(km_ctx *ctx, const char *action, const char *object,
                         const char *outcome, json_t *details, km_err *e)
{
	km_status st = km_tx_begin(ctx, e);
	if (st) {
		json_decref(details);
		return st;
	}
	if ((st = km_tx_audit(ctx, action, object, outcome, details, e))) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

km_status km_audit_failure(km_ctx *ctx, km_action a, const char *object, km_err *e)
{
	km_err ignored;
	json_t *d = json_pack("{s:s,s:s}", "error", km_status_name(e->code), "message", e->msg);
	/* A failure to record the failure must not mask the original error. */
	km_audit_event(ctx, km_action_name(a), object, "error", d, &ignored);
	return e->code;
}

km_status km_authorize(km_ctx *ctx, km_action a, const char *object, km_err *e)
{
	if (km_policy_allows(ctx->actor.roles, a))
		return KM_OK;
	char have[64], need[64];
	km_roles_format(ctx->actor.roles, have, sizeof have);
	km_policy_roles_for(a, need, sizeof need);
	km_fail(e, KM_EDENIED, "%s is not allowed to %s%s%s: it needs the role %s, and %s has %s",
	        ctx->actor.name, km_action_name(a), object && *object ? " " : "",
	        object ? object : "", need, ctx->actor.name, have);
	km_err ignored;
	json_t *d = json_pack("{s:s,s:s}", "roles", have, "needs", need);
	km_audit_event(ctx, km_action_name(a), object ? object : "", "denied", d, &ignored);
	return KM_EDENIED;
}

/* ---- opening a session ------------------------------------------------- */

static void export_softhsm_conf(const km_config *c)
{
	/* The environment wins: an operator pointing SOFTHSM2_CONF elsewhere
	 * means it. */
	if (c->softhsm2_conf[0] && !getenv("SOFTHSM2_CONF"))
		setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
}

/* Open the token and log in while holding HOME/.hsm-login.lock.  Logging in
 * makes SoftHSM2 rewrite its token file, and another process reading it at
 * that moment sees no token or no PIN (SoftHSMv2 issue 757); keyward's
 * processes on one deployment take turns for this short phase.  The lock
 * is advisory and only ever held for the login. */
static km_status hsm_open_and_login(km_ctx *ctx, const char *pin, km_err *e)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/.hsm-login.lock", ctx->cfg.home);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
			;
	hsm_config hc = {ctx->cfg.module_path, ctx->cfg.token};
	km_status st = hsm_open(&hc, &ctx->h, e);
	if (!st)
		st = hsm_login(ctx->h, pin, e);
	if (fd >= 0)
		close(fd); /* releases the lock */
	return st;
}

/* PIN file: '#' lines are comments; the first other line is the PIN. */
static km_status read_pin_file(const char *path, char *pin, size_t cap, km_err *e)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return km_fail(e, KM_ECONFIG, "cannot read the PIN file %s: %s", path, strerror(errno));
	char *line = km_secure_alloc(PIN_MAX + 2);
	km_status st = km_fail(e, KM_ECONFIG, "the PIN file %s holds no PIN", path);
	while (line && fgets(line, PIN_MAX + 2, f)) {
		if (line[0] == '#')
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		if (strlen(line) >= cap) {
			st = km_fail(e, KM_ECONFIG, "the PIN in %s is too long", path);
			break;
		}
		memcpy(pin, line, strlen(line) + 1);
		st = KM_OK;
		break;
	}
	fclose(f);
	km_secure_free(line, PIN_MAX + 2);
	return st;
}

static km_status obtain_pin(const km_open_opts *o, const km_config *c, char *pin, km_err *e)
{
	const char *env = getenv("KEYWARD_PIN");
	if (o && o->pin_file)
		return read_pin_file(o->pin_file, pin, PIN_MAX, e);
	if (env && *env) {
		if (strlen(env) >= PIN_MAX)
			return km_fail(e, KM_EUSAGE, "KEYWARD_PIN is too long");
		memcpy(pin, env, strlen(env) + 1);
		return KM_OK;
	}
	if (c->pin_file[0])
		return read_pin_file(c->pin_file, pin, PIN_MAX, e);
	if (o && o->prompt)
		return o->prompt(o->prompt_ctx, "HSM user PIN: ", pin, PIN_MAX, e);
	return km_fail(e, KM_EUSAGE, "no PIN: set KEYWARD_PIN, use --pin-file, or run on a terminal");
}

static km_status os_user_name(char *out, size_t cap, km_err *e)
{
	struct passwd *pw = getpwuid(geteuid());
	if (!pw)
		return km_fail(e, KM_EDENIED, "cannot tell who you are: uid %u has no passwd entry",
		               (unsigned)geteuid());
	snprintf(out, cap, "%s", pw->pw_name);
	return KM_OK;
}

static km_status load_roles(sqlite3 *db, const char *name, unsigned *roles, int *found, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = km_db_prepare(db, "SELECT roles FROM users WHERE name = ?", &st, e);
	if (s)
		return s;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		*roles = (unsigned)sqlite3_column_int(st, 0);
	else if (rc != SQLITE_DONE)
		s = km_db_fail(db, e, "reading users");
	sqlite3_finalize(st);
	return s;
}

static km_status load_audit_pubkey(km_ctx *ctx, km_err *e)
{
	uint8_t *der = NULL;
	size_t len = 0;
	km_status st = hsm_audit_pubkey_der(ctx->h, &der, &len, e);
	if (st)
		return st;
	const unsigned char *p = der;
	ctx->audit_pub = d2i_PUBKEY(NULL, &p, (long)len);
	free(der);
	if (!ctx->audit_pub)
		return km_fail(e, KM_EHSM, "the HSM's audit public key is not a valid EC key");
	return KM_OK;
}

void km_close(km_ctx *ctx)
{
	if (!ctx)
		return;
	kek_cache_free(ctx->cache);
	audit_writer_free(ctx->aw);
	EVP_PKEY_free(ctx->audit_pub);
	if (ctx->db)
		sqlite3_close(ctx->db);
	hsm_close(ctx->h);
	km_config_free(&ctx->cfg);
	OPENSSL_cleanse(ctx, sizeof *ctx);
	free(ctx);
}

km_status km_open(const km_open_opts *o, km_ctx **out, km_err *e)
{
	km_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = km_config_load(&ctx->cfg, o ? o->home : NULL, e);
	if (st)
		goto fail;
	export_softhsm_conf(&ctx->cfg);

	if ((st = km_db_open(ctx->cfg.db_path, 0, &ctx->db, e)))
		goto fail;
	if ((st = km_db_meta_get(ctx->db, "deployment_id", ctx->deployment_id,
	                         sizeof ctx->deployment_id, e)))
		goto fail;

	char *pin = km_secure_alloc(PIN_MAX);
	if (!pin) {
		st = km_fail(e, KM_ENOMEM, "locked memory exhausted");
		goto fail;
	}
	st = obtain_pin(o, &ctx->cfg, pin, e);
	if (!st)
		st = hsm_open_and_login(ctx, pin, e);
	km_secure_free(pin, PIN_MAX);
	if (st)
		goto fail;
	if ((st = load_audit_pubkey(ctx, e)))
		goto fail;

	/* Who is at the terminal, and who do they act as. */
	if ((st = os_user_name(ctx->actor.os_user, sizeof ctx->actor.os_user, e)))
		goto fail;
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", ctx->actor.os_user);
	if (o && o->as_user && *o->as_user) {
		if (geteuid() != 0) {
			st = km_fail(e, KM_EDENIED, "--as is only for the superuser (who can become any "
			             "user anyway); log in as %s instead", o->as_user);
			goto fail;
		}
		snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", o->as_user);
		snprintf(ctx->actor.via, sizeof ctx->actor.via, "%s", ctx->actor.os_user);
	}
	int found = 0;
	if ((st = load_roles(ctx->db, ctx->actor.name, &ctx->actor.roles, &found, e)))
		goto fail;

	kek_cache_limits lim = {ctx->cfg.cache_max_age_s, ctx->cfg.cache_max_uses,
	                        ctx->cfg.cache_max_bytes, ctx->cfg.cache_max_entries};
	if (!(ctx->cache = kek_cache_new(&lim))) {
		st = km_fail(e, KM_ENOMEM, "out of memory");
		goto fail;
	}
	if (!found) {
		km_err ignored;
		ctx->actor.roles = 0;
		km_audit_event(ctx, "login", "", "denied", json_pack("{s:s}", "reason", "not enrolled"), &ignored);
		st = km_fail(e, KM_EDENIED, "%s is not a keyward user of this deployment; ask an "
		             "administrator to enrol you (keyward user add %s --role ...)",
		             ctx->actor.name, ctx->actor.name);
		goto fail;
	}
	char roles[64];
	km_roles_format(ctx->actor.roles, roles, sizeof roles);
	if ((st = km_audit_event(ctx, "login", "", "ok", json_pack("{s:s}", "roles", roles), e))) {
		/* A damaged log cannot take the login event — nor any other, so
		 * nothing can change in this session.  It stays open so that an
		 * auditor can verify and read exactly what is wrong. */
		if (st != KM_EINTEGRITY)
			goto fail;
		ctx->log_damaged = 1;
		snprintf(ctx->log_problem, sizeof ctx->log_problem, "%s", e->msg);
		km_err_clear(e);
	}
	*out = ctx;
	return KM_OK;
fail:
	km_close(ctx);
	return st;
}

/* ---- status ------------------------------------------------------------ */

km_status km_status_get(km_ctx *ctx, km_status_info *s, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_STATUS, "", e);
	if (st)
		return st;
	memset(s, 0, sizeof *s);
	snprintf(s->home, sizeof s->home, "%s", ctx->cfg.home);
	snprintf(s->deployment_id, sizeof s->deployment_id, "%s", ctx->deployment_id);
	hsm_token_info ti;
	if (hsm_token_describe(ctx->h, &ti, e) == KM_OK) {
		snprintf(s->token_label, sizeof s->token_label, "%s", ti.label);
		snprintf(s->token_desc, sizeof s->token_desc, "%s %s %s", ti.manufacturer, ti.model, ti.serial);
		s->hsm_logged_in = ti.logged_in;
	}
	int64_t v, now = km_now();
	int64_t cadence = ctx->cfg.rotation_days * 86400;
	char sql[512];
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'keys'", &v, e)))
		return st;
	s->keys = (uint64_t)v;
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'versions'", &v, e)))
		return st;
	s->versions = (uint64_t)v;
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'assets'", &v, e)))
		return st;
	s->assets = (uint64_t)v;
	snprintf(sql, sizeof sql, "SELECT count(*) FROM keys WHERE cur_state = 'active' AND "
	         "cur_created <= %lld AND cur_created > %lld", (long long)(now - cadence),
	         (long long)(now - 2 * cadence));
	if ((st = km_db_int64(ctx->db, sql, &v, e)))
		return st;
	s->keys_due = (uint64_t)v;
	/* Each part is one index range; UNION counts a key once. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT id FROM keys WHERE cur_state = 'compromised' "
	         "UNION SELECT id FROM keys WHERE cur_state = 'active' AND cur_created <= %lld "
	         "UNION SELECT key_id FROM key_versions WHERE state = 'active' AND wraps >= %llu)",
	         (long long)(now - 2 * cadence), (unsigned long long)(ctx->cfg.kek_max_wraps / 10 * 9));
	if ((st = km_db_int64(ctx->db, sql, &v, e)))
		return st;
	s->keys_overdue = (uint64_t)v;

	if ((st = audit_size(ctx->db, &s->audit_events, e)))
		return st;
	uint8_t root[32], sig[64];
	int have = 0;
	if ((st = audit_latest_head(ctx->db, &s->audit_head_size, root, &s->audit_head_time, sig, &have, e)))
		return st;

	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT value FROM audit_meta WHERE key = 'last_verified'", &q, e)))
		return st;
	if (sqlite3_step(q) == SQLITE_ROW) {
		json_t *j = json_loads((const char *)sqlite3_column_text(q, 0), 0, NULL);
		if (j) {
			snprintf(s->last_verified, sizeof s->last_verified, "%s",
			         json_string_value(json_object_get(j, "time")) ? json_string_value(json_object_get(j, "time")) : "");
			s->last_verified_intact = json_is_true(json_object_get(j, "intact"));
			json_decref(j);
		}
	}
	sqlite3_finalize(q);
	return KM_OK;
}

km_status km_record_verification(km_ctx *ctx, int intact, uint64_t first_bad,
                                  const char *problem, km_err *e)
{
	char when[32];
	km_time_format(km_now(), when);
	json_t *rec = json_pack("{s:s,s:b,s:I,s:s}", "time", when, "intact", intact,
	                        "first_bad", (json_int_t)first_bad, "problem", problem ? problem : "");
	char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	km_status st = km_tx_begin(ctx, e);
	if (!st) {
		sqlite3_stmt *q;
		st = km_db_prepare(ctx->db, "INSERT INTO audit_meta(key, value) VALUES('last_verified', ?) "
		                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", &q, e);
		if (!st) {
			sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
			if (sqlite3_step(q) != SQLITE_DONE)
				st = km_db_fail(ctx->db, e, "recording the verification");
			sqlite3_finalize(q);
		}
		if (!st)
			st = km_tx_audit(ctx, km_action_name(KM_ACT_AUDIT_VERIFY), "audit",
			                 intact ? "ok" : "error", json_incref(rec), e);
		if (!st)
			st = km_tx_commit(ctx, e);
		else
			km_tx_rollback(ctx);
	}
	free(text);
	json_decref(rec);
	return st;
}

/* ---- initialisation ---------------------------------------------------- */

static const struct {
	const char *name;
	unsigned roles;
} demo_people[] = {
	{"alice", KM_ROLE_OFFICER},
	{"bob", KM_ROLE_APPROVER},
	{"carol", KM_ROLE_APPROVER},
	{"dave", KM_ROLE_AUDITOR},
	{"erin", KM_ROLE_ADMIN},
	{"svc-feature-store", KM_ROLE_SERVICE},
	{"svc-scoring-api", KM_ROLE_SERVICE},
};

static km_status insert_user(sqlite3 *db, const char *name, unsigned roles, const char *by, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(db, "INSERT INTO users(name, roles, created, created_by) VALUES(?,?,?,?)", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, (int)roles);
	sqlite3_bind_int64(q, 3, km_now());
	sqlite3_bind_text(q, 4, by, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(db, e, "adding user");
	sqlite3_finalize(q);
	return st;
}

static km_status mkdir_private(const char *dir, km_err *e)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		struct stat sb;
		if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
			return km_fail(e, KM_ECONFIG, "%s is not a directory", dir);
		return KM_OK;
	}
	if (errno == ENOENT) {
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			km_status st = mkdir_private(parent, e);
			if (st)
				return st;
			if (mkdir(dir, 0700) == 0)
				return KM_OK;
		}
	}
	return km_fail(e, KM_ECONFIG, "cannot create %s: %s", dir, strerror(errno));
}

km_status km_init_deployment(const km_init_opts *o, km_err *e)
{
	km_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return km_fail(e, KM_ENOMEM, "out of memory");
	char home[PATH_MAX];
	int created_db = 0;
	km_status st = km_config_home(o->home, home, sizeof home, e);
	if (st)
		goto out;
	km_config_defaults(&ctx->cfg, home);
	if (access(ctx->cfg.config_path, F_OK) == 0) {
		st = km_fail(e, KM_EEXISTS, "%s is already a keyward deployment (config.json exists)", home);
		goto out;
	}
	if (!o->pin || !*o->pin) {
		st = km_fail(e, KM_EUSAGE, "init needs the user PIN");
		goto out;
	}
	if ((st = mkdir_private(home, e)))
		goto out;
	if (chmod(home, 0700) != 0) {
		st = km_fail(e, KM_ECONFIG, "cannot make %s private (chmod 0700): %s", home, strerror(errno));
		goto out;
	}
	if (o->module_path)
		snprintf(ctx->cfg.module_path, sizeof ctx->cfg.module_path, "%s", o->module_path);
	if (o->token)
		snprintf(ctx->cfg.token, sizeof ctx->cfg.token, "%s", o->token);
	if (o->softhsm2_conf)
		snprintf(ctx->cfg.softhsm2_conf, sizeof ctx->cfg.softhsm2_conf, "%s", o->softhsm2_conf);
	if (o->pin_file)
		snprintf(ctx->cfg.pin_file, sizeof ctx->cfg.pin_file, "%s", o->pin_file);
	/* Environment overrides, as for every later session. */
	const char *envmod = getenv("KEYWARD_PKCS11_MODULE"), *envtok = getenv("KEYWARD_TOKEN");
	if (envmod && *envmod)
		snprintf(ctx->cfg.module_path, sizeof ctx->cfg.module_path, "%s", envmod);
	if (envtok && *envtok)
		snprintf(ctx->cfg.token, sizeof ctx->cfg.token, "%s", envtok);
	if (o->softhsm2_conf)
		setenv("SOFTHSM2_CONF", o->softhsm2_conf, 1);
	else
		export_softhsm_conf(&ctx->cfg);

	unsigned roles = o->first_user_roles ? o->first_user_roles : KM_ROLE_ADMIN;
	if ((st = km_roles_check_separation(roles, e)))
		goto out;
	if ((st = os_user_name(ctx->actor.name, sizeof ctx->actor.name, e)))
		goto out;
	ctx->actor.roles = roles;

	/* The token: adopt it if it exists, else create it. */
	hsm_config hc = {ctx->cfg.module_path, ctx->cfg.token};
	int exists = 0;
	if ((st = hsm_token_exists(&hc, &exists, e)))
		goto out;
	if (!exists) {
		if (!o->so_pin || !*o->so_pin) {
			st = km_fail(e, KM_EUSAGE, "token '%s' does not exist; creating it needs an SO PIN "
			             "(KEYWARD_SO_PIN or --so-pin-file)", ctx->cfg.token);
			goto out;
		}
		if ((st = hsm_token_create(&hc, o->so_pin, o->pin, e)))
			goto out;
	}
	if ((st = hsm_open(&hc, &ctx->h, e)) || (st = hsm_login(ctx->h, o->pin, e)))
		goto out;
	hsm_objects have;
	if ((st = hsm_objects_present(ctx->h, &have, e)))
		goto out;
	if (!have.root && (st = hsm_root_create(ctx->h, e)))
		goto out;
	if (!have.audit_key && (st = hsm_audit_key_create(ctx->h, e)))
		goto out;

	if (access(ctx->cfg.db_path, F_OK) == 0) {
		st = km_fail(e, KM_EEXISTS, "the catalogue %s exists already; move it away or "
		             "choose another KEYWARD_HOME", ctx->cfg.db_path);
		goto out;
	}
	created_db = 1;
	if ((st = km_db_open(ctx->cfg.db_path, 1, &ctx->db, e)))
		goto out;
	if ((st = km_random_hex(ctx->deployment_id, 16, e)))
		goto out;

	if ((st = km_tx_begin(ctx, e)))
		goto out;
	char origin[80], rolestr[64];
	snprintf(origin, sizeof origin, "keyward/%s", ctx->deployment_id);
	km_roles_format(roles, rolestr, sizeof rolestr);
	sqlite3_stmt *q = NULL;
	if (!(st = km_db_meta_set(ctx->db, "deployment_id", ctx->deployment_id, e)) &&
	    !(st = km_db_prepare(ctx->db, "INSERT INTO audit_meta(key, value) VALUES('origin', ?)", &q, e))) {
		sqlite3_bind_text(q, 1, origin, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "recording the audit origin");
		sqlite3_finalize(q);
	}
	if (!st)
		st = insert_user(ctx->db, ctx->actor.name, roles, ctx->actor.name, e);
	if (!st)
		st = km_tx_audit(ctx, "init", "deployment", "ok",
		                 json_pack("{s:s,s:s,s:s,s:s}", "deployment", ctx->deployment_id,
		                           "token", ctx->cfg.token, "module", ctx->cfg.module_path,
		                           "first_user", ctx->actor.name), e);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_USER_ADD), ctx->actor.name, "ok",
		                 json_pack("{s:s}", "roles", rolestr), e);
	for (size_t i = 0; !st && o->demo_users && i < KM_ARRAY_LEN(demo_people); i++) {
		if (strcmp(demo_people[i].name, ctx->actor.name) == 0)
			continue;
		km_roles_format(demo_people[i].roles, rolestr, sizeof rolestr);
		st = insert_user(ctx->db, demo_people[i].name, demo_people[i].roles, ctx->actor.name, e);
		if (!st)
			st = km_tx_audit(ctx, km_action_name(KM_ACT_USER_ADD), demo_people[i].name, "ok",
			                 json_pack("{s:s}", "roles", rolestr), e);
	}
	if (st) {
		km_tx_rollback(ctx);
		goto out;
	}
	if ((st = km_tx_commit(ctx, e)))
		goto out;
	/* config.json last: its presence is what marks a finished init. */
	st = km_config_save(&ctx->cfg, e);
out:
	if (st && created_db) {
		if (ctx->db) {
			sqlite3_close(ctx->db);
			ctx->db = NULL;
		}
		char p[PATH_MAX + 8];
		unlink(ctx->cfg.db_path);
		snprintf(p, sizeof p, "%s-wal", ctx->cfg.db_path);
		unlink(p);
		snprintf(p, sizeof p, "%s-shm", ctx->cfg.db_path);
		unlink(p);
	}
	km_close(ctx);
	return st;
}
