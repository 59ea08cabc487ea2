/*
 * keyward.c — sessions on a deployment: open, login, the authorise + audit
 * + commit path, deployment initialisation and status.
 */
#include "ctx.h"
#include "audit.h"
#include "caller.h"
#include "cred.h"
#include "db.h"
#include "forward.h"
#include "hsm.h"
#include "rowmac.h"
#include "schedule_int.h"
#include "secmem.h"
#include "user_int.h"

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

void km_set_clock(km_ctx *ctx, km_clock_fn fn, void *c)
{
	ctx->clock = fn;
	ctx->clock_ctx = c;
	if (ctx->aw)
		audit_writer_set_clock(ctx->aw, fn, c);
	km_err ignored;
	if (ctx->db)
		km_db_set_clock(ctx->db, fn, c, &ignored); /* only ENOMEM can fail: then triggers keep real time */
}

int64_t km_ctx_now(const km_ctx *ctx) { return ctx->clock ? ctx->clock(ctx->clock_ctx) : km_now(); }

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

void km_set_secret_prompt(km_ctx *ctx, km_secret_prompt_fn fn, void *prompt_ctx)
{
	ctx->prompt = fn;
	ctx->prompt_ctx = prompt_ctx;
}
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
		if (ctx->clock)
			audit_writer_set_clock(ctx->aw, ctx->clock, ctx->clock_ctx);
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
	/* Personal mode: who was at the terminal when it is not the user. */
	if (ctx->actor.os_user[0] && strcmp(ctx->actor.os_user, ctx->actor.name) != 0)
		json_object_set_new(details, "os_user", json_string(ctx->actor.os_user));
	audit_event ev = {ctx->actor.name, action, object, outcome, details};
	uint64_t seq;
	km_status st = audit_writer_append(ctx->aw, &ev, &seq, e);
	json_decref(details);
	return st;
}

/* ---- the HSM anchor ------------------------------------------------------
 * The newest (size, root) keyward vouched for, in a private token object:
 * "KWA1", the size (8 bytes, big-endian), the root (32 bytes). */
#define ANCHOR_MAGIC "KWA1"
#define ANCHOR_BYTES (4 + 8 + MERKLE_HASH_BYTES)

km_status km_anchor_load(km_ctx *ctx, audit_anchor *a, km_err *e)
{
	uint8_t buf[HSM_ANCHOR_MAX];
	size_t len = 0;
	int found = 0;
	memset(a, 0, sizeof *a);
	km_status st = hsm_anchor_read(ctx->h, buf, sizeof buf, &len, &found, e);
	if (st || !found)
		return st;
	if (len != ANCHOR_BYTES || memcmp(buf, ANCHOR_MAGIC, 4) != 0)
		return km_fail(e, KM_EINTEGRITY, "the HSM's audit anchor is not a keyward anchor (%zu bytes)", len);
	a->have = 1;
	for (int i = 0; i < 8; i++)
		a->size = a->size << 8 | buf[4 + i];
	memcpy(a->root, buf + 12, MERKLE_HASH_BYTES);
	return KM_OK;
}

/* Store `next` if it is newer than what the token holds.  Writers take
 * HOME/.anchor.lock in turn, and an anchor never moves back: of two
 * sessions that committed one after the other, the later size wins
 * whichever stores first. */
static void anchor_store(km_ctx *ctx, const audit_anchor *next)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/.anchor.lock", ctx->cfg.home);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
			;
	km_err ignored;
	audit_anchor cur;
	if (km_anchor_load(ctx, &cur, &ignored) == KM_OK && (!cur.have || next->size > cur.size)) {
		uint8_t buf[ANCHOR_BYTES];
		memcpy(buf, ANCHOR_MAGIC, 4);
		for (int i = 0; i < 8; i++)
			buf[4 + i] = (uint8_t)(next->size >> (56 - 8 * i));
		memcpy(buf + 12, next->root, MERKLE_HASH_BYTES);
		/* A failure here leaves the anchor lagging, which the next
		 * commit's proof (consistency from the anchored size) covers. */
		hsm_anchor_write(ctx->h, buf, sizeof buf, &ignored);
	}
	if (fd >= 0)
		close(fd);
}

km_status km_tx_commit(km_ctx *ctx, km_err *e)
{
	/* Prove the log extends the anchored one, then sign: a history
	 * rewritten in the file is never signed. */
	audit_anchor a, next;
	km_status st = km_anchor_load(ctx, &a, e);
	if (!st)
		st = audit_writer_sign_head(ctx->aw, &a, ctx->audit_pub, km_ctx_sign, ctx, e);
	if (!st)
		st = audit_writer_anchor(ctx->aw, &next, e);
	if (st) {
		km_tx_rollback(ctx);
		if (st == KM_EINTEGRITY)
			return km_wrap(e, "the audit log does not extend the one anchored in the HSM, so "
			               "nothing was changed; run `keyward audit verify`");
		return km_wrap(e, "cannot sign the audit tree head, nothing was changed");
	}
	st = km_db_commit(ctx->db, e);
	audit_writer_reset(ctx->aw);
	if (!st) {
		ctx->op_recorded = 1;
		anchor_store(ctx, &next);
	}
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

/* Objects in events are what the person typed: bounded, so a refused
 * megabyte-long name does not become a megabyte-long event. */
#define EVENT_OBJECT_MAX 200

km_status km_audit_failure(km_ctx *ctx, km_action a, const char *object, km_err *e)
{
	km_err ignored;
	char obj[EVENT_OBJECT_MAX + 1];
	snprintf(obj, sizeof obj, "%s", object ? object : "");
	json_t *d = json_pack("{s:s,s:s}", "error", km_status_name(e->code), "message", e->msg);
	/* A failure to record the failure must not mask the original error. */
	km_audit_event(ctx, km_action_name(a), obj, e->code == KM_EDENIED ? "denied" : "error", d, &ignored);
	ctx->op_recorded = 1;
	return e->code;
}

void km_op_begin(km_ctx *ctx, km_action a, const char *object)
{
	ctx->op = a;
	ctx->op_active = 1;
	ctx->op_recorded = 0;
	snprintf(ctx->op_object, sizeof ctx->op_object, "%s", object ? object : "");
}

km_status km_op_end(km_ctx *ctx, km_status st, km_err *e)
{
	if (st != KM_OK && ctx->op_active && !ctx->op_recorded)
		km_audit_failure(ctx, ctx->op, ctx->op_object, e);
	ctx->op_active = 0;
	return st;
}

/* One denial event with its reason, once per operation. */
static km_status deny(km_ctx *ctx, km_action a, const char *object, json_t *d, km_err *e)
{
	km_err ignored;
	char obj[EVENT_OBJECT_MAX + 1];
	snprintf(obj, sizeof obj, "%s", object ? object : "");
	if (!d)
		d = json_object();
	json_object_set_new(d, "reason", json_string(e->msg));
	if (!ctx->op_recorded)
		km_audit_event(ctx, km_action_name(a), obj, "denied", d, &ignored);
	else
		json_decref(d);
	ctx->op_recorded = 1;
	return KM_EDENIED;
}

km_status km_authorize_deny(km_ctx *ctx, km_action a, const char *reason, km_err *e)
{
	km_fail(e, KM_EDENIED, "%s is not allowed to %s: %s", ctx->actor.name, km_action_name(a), reason);
	return deny(ctx, a, ctx->op_active ? ctx->op_object : "", NULL, e);
}

/* The key name inside an object "key:NAME" or "key:NAME@3", or NULL. */
static const char *object_key(const char *object, char *buf, size_t cap)
{
	if (!object || strncmp(object, "key:", 4) != 0)
		return NULL;
	snprintf(buf, cap, "%s", object + 4);
	char *at = strrchr(buf, '@');
	if (at)
		*at = '\0';
	return buf;
}

/* A secret for step-up: a file named by the person (opened with their
 * rights), the environment, or the prompt. */
static km_status step_up_secret(km_ctx *ctx, const char *file, const char *env, const char *question,
                                char *buf, size_t cap, km_err *e)
{
	if (file && *file)
		return km_secret_file_read(file, KM_SECRET_CALLER, "passphrase", buf, cap, e);
	/* The person's own secret, not a setting: read even when privileged. */
	const char *v = getenv(env);
	if (v && *v) {
		if (strlen(v) >= cap)
			return km_fail(e, KM_EUSAGE, "%s is too long", env);
		memcpy(buf, v, strlen(v) + 1);
		return KM_OK;
	}
	km_status st = ctx->prompt ? ctx->prompt(ctx->prompt_ctx, question, buf, cap, e) : KM_EUSAGE;
	if (st == KM_EUSAGE)
		return km_fail(e, KM_EDENIED, "%s needs %s and there is no terminal to ask on: set %s%s",
		               ctx->actor.name, strcmp(env, "KEYWARD_OTP") == 0 ? "a one-time code" : "a passphrase",
		               env, strcmp(env, "KEYWARD_PASSPHRASE") == 0 ? " or use --passphrase-file" : "");
	return st;
}

/* Count a failed passphrase or code against the user, in the transaction
 * that records the refusal; past the limit the user is locked out. */
static void count_failure(km_ctx *ctx, km_action a, const char *object, const char *reason, km_err *e)
{
	km_err ignored;
	user_row u;
	char obj[EVENT_OBJECT_MAX + 1], digest[65];
	snprintf(obj, sizeof obj, "%s", object ? object : "");
	if (ctx->op_recorded || user_row_load(ctx, ctx->actor.name, &u, &ignored) != KM_OK)
		return;
	u.failures++;
	int locked = u.failures >= ctx->cfg.lockout_failures;
	if (locked) {
		u.locked_until = km_ctx_now(ctx) + ctx->cfg.lockout_seconds;
		u.failures = 0;
	}
	if (km_tx_begin(ctx, &ignored) == KM_OK) {
		json_t *d = json_pack("{s:s,s:b}", "reason", reason, "locked_out", locked);
		int saved = user_row_save(ctx, &u, 0, digest, &ignored) == KM_OK;
		if (saved)
			km_sealed_note(d, "users", u.name, digest);
		else
			json_decref(d);
		char uobj[80];
		snprintf(uobj, sizeof uobj, "user:%s", u.name);
		if (saved && km_tx_audit(ctx, km_action_name(a), obj, "denied", d, &ignored) == KM_OK &&
		    (!locked || km_tx_audit(ctx, "user.lockout", uobj, "ok",
		                            json_pack("{s:I}", "until", (json_int_t)u.locked_until),
		                            &ignored) == KM_OK))
			km_tx_commit(ctx, &ignored);
		else
			km_tx_rollback(ctx);
	}
	ctx->op_recorded = 1;
	if (locked)
		km_wrap(e, "%s is now locked out for %lld minutes", ctx->actor.name,
		        (long long)(ctx->cfg.lockout_seconds / 60));
	user_row_clear(&u);
}

#define PASSPHRASE_CAP (KM_CRED_PASSPHRASE_MAX + 2)

/* Step-up: the session user's passphrase (+ one-time code when enrolled),
 * once per session. */
static km_status step_up(km_ctx *ctx, km_action a, const char *object, km_err *e)
{
	if (ctx->cred)
		return KM_OK;
	user_row u;
	km_status st = user_row_load(ctx, ctx->actor.name, &u, e);
	if (st)
		return st == KM_ENOTFOUND ? deny(ctx, a, object, NULL, e) : st;
	char why[160];
	if (user_row_locked(&u, km_ctx_now(ctx), why, sizeof why)) {
		user_row_clear(&u);
		km_fail(e, KM_EDENIED, "%s", why);
		return deny(ctx, a, object, NULL, e);
	}
	if (!u.cred) {
		user_row_clear(&u);
		km_fail(e, KM_EDENIED, "%s needs a passphrase to %s, and has none (a service "
		        "cannot make changes)", ctx->actor.name, km_action_name(a));
		return deny(ctx, a, object, NULL, e);
	}
	char *pass = km_secure_alloc(PASSPHRASE_CAP);
	char *code = km_secure_alloc(KM_TOTP_CODE_MAX + 8);
	km_cred_session *s = NULL;
	char q[128];
	snprintf(q, sizeof q, "Passphrase for %s", ctx->actor.name);
	st = pass && code ? KM_OK : km_fail(e, KM_ENOMEM, "out of locked memory");
	if (!st)
		st = step_up_secret(ctx, ctx->passphrase_file, "KEYWARD_PASSPHRASE", q, pass, PASSPHRASE_CAP, e);
	if (!st) {
		st = km_cred_unlock(u.name, u.cred, pass, &s, e);
		if (st == KM_EDENIED)
			count_failure(ctx, a, object, "wrong passphrase", e);
	}
	int64_t step = -1;
	if (!st && km_cred_session_has_totp(s)) {
		st = step_up_secret(ctx, NULL, "KEYWARD_OTP", "One-time code", code, KM_TOTP_CODE_MAX + 8, e);
		if (!st) {
			st = km_cred_totp_check(s, code, km_now(), u.totp_step, &step, e);
			if (st == KM_EDENIED || st == KM_EINVAL) {
				st = KM_EDENIED;
				e->code = KM_EDENIED;
				count_failure(ctx, a, object, "wrong or reused one-time code", e);
			}
		}
	}
	if (!st && (u.failures || step >= 0)) {
		/* Success: reset the counter; remember the code's step so it
		 * cannot be used again. */
		u.failures = 0;
		if (step >= 0)
			u.totp_step = step;
		if (!(st = km_tx_begin(ctx, e))) {
			char digest[65];
			st = user_row_save(ctx, &u, 0, digest, e);
			if (!st) {
				char uobj[80];
				json_t *d = json_pack("{s:b}", "totp", step >= 0);
				km_sealed_note(d, "users", u.name, digest);
				snprintf(uobj, sizeof uobj, "user:%s", u.name);
				st = km_tx_audit(ctx, "user.auth", uobj, "ok", d, e);
			}
			if (!st)
				st = km_tx_commit(ctx, e);
			else
				km_tx_rollback(ctx);
			ctx->op_recorded = 0; /* the operation itself is still to be recorded */
		}
	}
	user_row_clear(&u);
	km_secure_free(code, KM_TOTP_CODE_MAX + 8);
	if (st) {
		km_cred_session_free(s);
		km_secure_free(pass, PASSPHRASE_CAP);
		if (st == KM_EDENIED && !ctx->op_recorded)
			return deny(ctx, a, object, NULL, e);
		return st;
	}
	ctx->cred = s;
	ctx->passphrase = pass;
	return KM_OK;
}

struct km_cred_session *km_step_up_session(km_ctx *ctx) { return ctx->cred; }
const char *km_step_up_passphrase(km_ctx *ctx) { return ctx->passphrase; }

km_status km_authorize(km_ctx *ctx, km_action a, const char *object, km_err *e)
{
	/* A front end may ask ahead of the operation (step up before typing
	 * a new passphrase): that is an attempt of its own, recorded once. */
	if (!ctx->op_active)
		km_op_begin(ctx, a, object);
	if (!object)
		object = ctx->op_object;
	if (!km_policy_allows(ctx->actor.roles, a)) {
		char have[64], need[64];
		km_roles_format(ctx->actor.roles, have, sizeof have);
		km_policy_roles_for(a, need, sizeof need);
		km_fail(e, KM_EDENIED, "%s is not allowed to %s%s%.*s: it needs the role %s, and %s has %s",
		        ctx->actor.name, km_action_name(a), *object ? " " : "", EVENT_OBJECT_MAX, object,
		        need, ctx->actor.name, have);
		return deny(ctx, a, object, json_pack("{s:s,s:s}", "roles", have, "needs", need), e);
	}
	unsigned flags = km_policy_flags(a);
	char keybuf[256];
	const char *key = object_key(object, keybuf, sizeof keybuf);
	if ((flags & KM_POL_SCOPED) && key && ((ctx->actor.roles & KM_ROLE_SERVICE) || ctx->scopes[0]) &&
	    !km_scope_contains(ctx->scopes, key)) {
		km_fail(e, KM_EDENIED, "%s may not %s with '%.*s': it is outside %s's scopes (%s)",
		        ctx->actor.name, km_action_name(a), EVENT_OBJECT_MAX, key, ctx->actor.name,
		        ctx->scopes[0] ? ctx->scopes : "none");
		return deny(ctx, a, object, json_pack("{s:s}", "scopes", ctx->scopes), e);
	}
	if ((flags & KM_POL_STEPUP) || ((flags & KM_POL_CHANGE) && ctx->actor.mode == KM_MODE_PERSONAL))
		return step_up(ctx, a, object, e);
	return KM_OK;
}

/* ---- opening a session ------------------------------------------------- */

static km_status export_softhsm_conf(const km_config *c, km_err *e)
{
	/* SoftHSM2 reads SOFTHSM2_CONF itself: it must see the deployment's
	 * own, never one left in the caller's environment. */
	if (c->softhsm2_conf[0]) {
		if (setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1) != 0)
			return km_fail(e, KM_EINTERNAL, "cannot set SOFTHSM2_CONF");
	} else if (km_process_privileged()) {
		unsetenv("SOFTHSM2_CONF");
	}
	/* A deployment made before it recorded a configuration keeps using
	 * what the environment says (personal mode only). */
	return KM_OK;
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
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
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

static km_status read_pin_file(const char *path, int as_caller, char *pin, size_t cap, km_err *e)
{
	return km_secret_file_read(path, KM_SECRET_COMMENTS | (as_caller ? KM_SECRET_CALLER : 0), "PIN",
	                           pin, cap, e);
}

/* The HSM PIN.  System mode: the home's PIN file and nothing else.
 * Personal mode: --pin-file, KEYWARD_PIN, the config's pin_file (the demo),
 * then the prompt — the same order for every command, init included. */
static km_status obtain_pin(const km_open_opts *o, const km_config *c, char *pin, km_err *e)
{
	if (c->mode == KM_MODE_SYSTEM || km_process_privileged()) {
		if (!c->pin_file[0])
			return km_fail(e, KM_ECONFIG, "the system deployment's config.json names no pin_file");
		return read_pin_file(c->pin_file, 0, pin, PIN_MAX, e);
	}
	const char *env = getenv("KEYWARD_PIN");
	if (o && o->pin_file)
		return read_pin_file(o->pin_file, 1, pin, PIN_MAX, e);
	if (env && *env) {
		if (strlen(env) >= PIN_MAX)
			return km_fail(e, KM_EUSAGE, "KEYWARD_PIN is too long");
		memcpy(pin, env, strlen(env) + 1);
		return KM_OK;
	}
	if (c->pin_file[0])
		return read_pin_file(c->pin_file, 0, pin, PIN_MAX, e);
	km_status st = o && o->prompt ? o->prompt(o->prompt_ctx, "HSM user PIN", pin, PIN_MAX, e) : KM_EUSAGE;
	if (st == KM_EUSAGE)
		return km_fail(e, KM_EUSAGE, "no HSM PIN and no terminal to ask for it: use --pin-file or "
		               "set KEYWARD_PIN");
	return st;
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
	km_cred_session_free(ctx->cred);
	km_secure_free(ctx->passphrase, PASSPHRASE_CAP);
	if (ctx->db)
		sqlite3_close(ctx->db);
	hsm_close(ctx->h);
	km_config_free(&ctx->cfg);
	json_decref(ctx->policy_verified);
	json_decref(ctx->lineage_pseudonyms);
	OPENSSL_cleanse(ctx, sizeof *ctx);
	free(ctx);
}

/* Who is this session?  System mode: the real uid, nothing else.  Personal
 * mode: the named user (the OS user owns the deployment either way). */
static km_status session_identity(km_ctx *ctx, const km_open_opts *o, km_err *e)
{
	km_status st = km_caller_name(ctx->actor.os_user, sizeof ctx->actor.os_user, e);
	if (st)
		return st;
	ctx->actor.mode = ctx->cfg.mode;
	const char *named = o ? o->user : NULL;
	if (ctx->cfg.mode == KM_MODE_SYSTEM) {
		if (named && *named)
			return km_fail(e, KM_EUSAGE, "--user is for personal deployments: in a system "
			               "deployment you are your login name (%s)", ctx->actor.os_user);
		snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", ctx->actor.os_user);
		return KM_OK;
	}
	if (!named || !*named)
		named = km_config_env("KEYWARD_USER");
	if (!named || !*named)
		named = ctx->cfg.default_user[0] ? ctx->cfg.default_user : ctx->actor.os_user;
	if ((st = km_user_name_validate(named, e)))
		return km_wrap(e, "--user");
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s", named);
	return KM_OK;
}

/* The login: the user's sealed row decides roles and scopes; an unknown,
 * damaged or locked user is refused and the refusal recorded. */
static km_status session_login(km_ctx *ctx, km_err *e)
{
	km_err ignored;
	user_row u;
	km_status st = user_row_load(ctx, ctx->actor.name, &u, e);
	if (st == KM_ENOTFOUND) {
		km_audit_event(ctx, "login", "", "denied", json_pack("{s:s}", "reason", "not enrolled"), &ignored);
		return km_fail(e, KM_EDENIED, "%s is not a keyward user of this deployment; ask an "
		               "administrator to enrol you (keyward user add %s --role ...)",
		               ctx->actor.name, ctx->actor.name);
	}
	if (st == KM_EINTEGRITY) {
		km_audit_event(ctx, "login", "", "error", json_pack("{s:s,s:s}", "error", "integrity",
		               "message", e->msg), &ignored);
		return st;
	}
	if (st)
		return st;
	char why[160];
	if (user_row_locked(&u, km_ctx_now(ctx), why, sizeof why)) {
		user_row_clear(&u);
		km_audit_event(ctx, "login", "", "denied", json_pack("{s:s}", "reason", why), &ignored);
		return km_fail(e, KM_EDENIED, "%s; an administrator can lift it (keyward user unlock %s)",
		               why, ctx->actor.name);
	}
	ctx->actor.roles = u.roles;
	snprintf(ctx->scopes, sizeof ctx->scopes, "%s", u.scopes);
	user_row_clear(&u);
	char roles[64];
	km_roles_format(ctx->actor.roles, roles, sizeof roles);
	if ((st = km_audit_event(ctx, "login", "", "ok", json_pack("{s:s}", "roles", roles), e))) {
		/* A damaged log cannot take the login event — nor any other, so
		 * nothing can change in this session.  It stays open so that an
		 * auditor can verify and read exactly what is wrong. */
		if (st != KM_EINTEGRITY)
			return st;
		ctx->log_damaged = 1;
		snprintf(ctx->log_problem, sizeof ctx->log_problem, "%s", e->msg);
		km_err_clear(e);
	}
	return KM_OK;
}

km_status km_open(const km_open_opts *o, km_ctx **out, km_err *e)
{
	km_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = KM_OK;
	if (km_process_privileged() && o && (o->pin_file || o->user)) {
		st = km_fail(e, KM_EUSAGE, "--pin-file and --user are not accepted by the system "
		             "deployment's set-user-ID keyward");
		goto fail;
	}
	if (o && o->clock) {
		/* A backdated clock is for the demo's history; a set-user-ID
		 * keyward never lets its caller move time. */
		if (km_process_privileged()) {
			st = km_fail(e, KM_EUSAGE, "the system deployment's keyward runs on the real clock");
			goto fail;
		}
		ctx->clock = o->clock;
		ctx->clock_ctx = o->clock_ctx;
	}
	if ((st = km_config_load(&ctx->cfg, o ? o->home : NULL, e)) ||
	    (st = export_softhsm_conf(&ctx->cfg, e)))
		goto fail;
	/* Locked memory: every page where the limit allows; the key heap at
	 * least.  A system deployment refuses to run with keys that could be
	 * swapped out; a personal one says so in `status`. */
	km_memlock_state ml;
	km_err ml_err;
	if (km_memlock_process(&ml, &ml_err) != KM_OK) {
		if (ctx->cfg.mode == KM_MODE_SYSTEM && ml.level == KM_MEMLOCK_NONE) {
			*e = ml_err;
			st = ml_err.code ? ml_err.code : KM_ELIMIT;
			goto fail;
		}
		snprintf(ctx->memlock_note, sizeof ctx->memlock_note, "%s", ml_err.msg);
	}
	if (o) {
		if (o->passphrase_file)
			snprintf(ctx->passphrase_file, sizeof ctx->passphrase_file, "%s", o->passphrase_file);
		ctx->prompt = o->prompt;
		ctx->prompt_ctx = o->prompt_ctx;
	}
	if ((st = session_identity(ctx, o, e)))
		goto fail;

	if ((st = km_db_open(ctx->cfg.db_path, 0, &ctx->db, e)) ||
	    (ctx->clock && (st = km_db_set_clock(ctx->db, ctx->clock, ctx->clock_ctx, e))))
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

	kek_cache_limits lim = {ctx->cfg.cache_max_age_s, ctx->cfg.cache_max_uses,
	                        ctx->cfg.cache_max_bytes, ctx->cfg.cache_max_entries};
	if (!(ctx->cache = kek_cache_new(&lim))) {
		st = km_fail(e, KM_ENOMEM, "out of memory");
		goto fail;
	}
	if ((st = session_login(ctx, e)))
		goto fail;
	*out = ctx;
	return KM_OK;
fail:
	km_close(ctx);
	return st;
}

/* ---- status ------------------------------------------------------------ */

static km_status status_get_impl(km_ctx *ctx, km_status_info *s, km_err *e);

km_status km_status_get(km_ctx *ctx, km_status_info *s, km_err *e)
{
	km_op_begin(ctx, KM_ACT_STATUS, "deployment");
	return km_op_end(ctx, status_get_impl(ctx, s, e), e);
}

static km_status status_get_impl(km_ctx *ctx, km_status_info *s, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_STATUS, NULL, e);
	if (st)
		return st;
	memset(s, 0, sizeof *s);
	snprintf(s->home, sizeof s->home, "%s", ctx->cfg.home);
	s->mode = ctx->cfg.mode;
	snprintf(s->memlock, sizeof s->memlock, "%s", ctx->memlock_note[0] ? ctx->memlock_note
	         : "every page locked (no key can be swapped out)");
	if (ctx->cfg.mode == KM_MODE_SYSTEM)
		snprintf(s->boundary, sizeof s->boundary, "system deployment: files owned by the service "
		         "account; people are named by their login (uid %u)", (unsigned)getuid());
	else
		snprintf(s->boundary, sizeof s->boundary, "personal deployment: the OS user %s owns every "
		         "file and is the boundary; people are told apart by passphrases",
		         ctx->actor.os_user);
	snprintf(s->deployment_id, sizeof s->deployment_id, "%s", ctx->deployment_id);
	hsm_token_info ti;
	if (hsm_token_describe(ctx->h, &ti, e) == KM_OK) {
		snprintf(s->token_label, sizeof s->token_label, "%s", ti.label);
		snprintf(s->token_desc, sizeof s->token_desc, "%s %s %s", ti.manufacturer, ti.model, ti.serial);
		s->hsm_logged_in = ti.logged_in;
	}
	int64_t v;
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'keys'", &v, e)))
		return st;
	s->keys = (uint64_t)v;
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'versions'", &v, e)))
		return st;
	s->versions = (uint64_t)v;
	if ((st = km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'assets'", &v, e)))
		return st;
	s->assets = (uint64_t)v;
	/* From the schedule kept on each key (schedule_int.h): each key's
	 * own policy, in index ranges, whatever the number of keys. */
	if ((st = schedule_counts(ctx, km_ctx_now(ctx), &s->keys_due, &s->keys_overdue, e)))
		return st;

	if ((st = audit_size(ctx->db, &s->audit_events, e)))
		return st;
	uint8_t root[32], sig[64];
	int have = 0;
	if ((st = audit_latest_head(ctx->db, &s->audit_head_size, root, &s->audit_head_time, sig, &have, e)))
		return st;

	/* The verification record is sealed: a row edited by hand shows as
	 * "never verified", not as a reassuring date. */
	char text[512];
	km_err rec_err;
	if (km_sealed_get(ctx, "last_verified", text, sizeof text, &rec_err) == KM_OK) {
		json_t *j = json_loads(text, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "time"));
		snprintf(s->last_verified, sizeof s->last_verified, "%s", t ? t : "");
		s->last_verified_intact = json_is_true(json_object_get(j, "intact"));
		json_decref(j);
	}

	km_sink_lag lags[KM_SINKS_MAX];
	size_t nl = 0;
	km_err lag_err;
	km_err_clear(&lag_err);
	if (km_forward_lags(ctx, lags, KM_SINKS_MAX, &nl, &lag_err) != KM_OK)
		snprintf(s->sinks_problem, sizeof s->sinks_problem, "%s", lag_err.msg);
	for (size_t i = 0; i < nl; i++) {
		memcpy(s->sink[i].name, lags[i].name, sizeof lags[i].name);
		s->sink[i].lag = lags[i].lag;
	}
	s->sinks = (uint32_t)nl;
	return KM_OK;
}

/* Sealed records: meta rows whose value carries an HSM MAC. */
km_status km_sealed_put(km_ctx *ctx, const char *name, const char *value, km_err *e)
{
	uint8_t mac[KM_ROWMAC_BYTES];
	char key[96];
	km_status st = km_rowmac(ctx, "meta", json_pack("[s,s]", name, value), mac, e);
	if (st)
		return st;
	json_t *hex = km_rowmac_blob(mac, sizeof mac);
	snprintf(key, sizeof key, "%s.mac", name);
	st = km_db_meta_set(ctx->db, name, value, e);
	if (!st)
		st = km_db_meta_set(ctx->db, key, json_string_value(hex), e);
	json_decref(hex);
	return st;
}

km_status km_sealed_get(km_ctx *ctx, const char *name, char *value, size_t cap, km_err *e)
{
	char key[96], mac_hex[2 * KM_ROWMAC_BYTES + 8];
	uint8_t mac[KM_ROWMAC_BYTES];
	snprintf(key, sizeof key, "%s.mac", name);
	km_status st = km_db_meta_get(ctx->db, name, value, cap, e);
	if (!st)
		st = km_db_meta_get(ctx->db, key, mac_hex, sizeof mac_hex, e);
	if (st)
		return st;
	size_t n = strlen(mac_hex) / 2;
	for (size_t i = 0; i < n && i < sizeof mac; i++) {
		unsigned b;
		if (sscanf(mac_hex + 2 * i, "%2x", &b) != 1)
			n = 0;
		mac[i] = (uint8_t)b;
	}
	return km_rowmac_check(ctx, "meta", name, json_pack("[s,s]", name, value), n == sizeof mac ? mac : NULL,
	                       n, e);
}

km_status km_record_verification(km_ctx *ctx, int intact, uint64_t first_bad,
                                  const char *problem, km_err *e)
{
	char when[32];
	km_time_format(km_ctx_now(ctx), when);
	json_t *rec = json_pack("{s:s,s:b,s:I,s:s}", "time", when, "intact", intact,
	                        "first_bad", (json_int_t)first_bad, "problem", problem ? problem : "");
	char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	km_status st = km_tx_begin(ctx, e);
	if (!st) {
		st = km_sealed_put(ctx, "last_verified", text, e);
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
	const char *scopes;
} demo_people[] = {
	{"alice", KM_ROLE_OFFICER, ""},
	{"bob", KM_ROLE_APPROVER, ""},
	{"carol", KM_ROLE_APPROVER, ""},
	{"frank", KM_ROLE_APPROVER, ""},
	{"dave", KM_ROLE_AUDITOR, ""},
	{"erin", KM_ROLE_ADMIN, ""},
	{"svc-feature-store", KM_ROLE_SERVICE, "features/,datasets/"},
	{"svc-scoring-api", KM_ROLE_SERVICE, "models/,inference/"},
};

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

/* Write a small private file once (O_EXCL: never over something else). */
static km_status write_private(const char *path, const char *text, km_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return km_fail(e, KM_EIO, "cannot create %s: %s", path, strerror(errno));
	size_t n = strlen(text);
	km_status st = (write(fd, text, n) == (ssize_t)n && fsync(fd) == 0) ? KM_OK
	               : km_fail(e, KM_EIO, "cannot write %s: %s", path, strerror(errno));
	close(fd);
	if (st)
		unlink(path);
	return st;
}

/* A personal deployment that uses SoftHSM2 without a configuration of its
 * own named gets one inside its home. */
static int own_softhsm(const km_init_opts *o)
{
	const char *mod = o->module_path ? o->module_path : km_config_env("KEYWARD_PKCS11_MODULE");
	return !o->softhsm2_conf && (!mod || strcmp(mod, KM_DEFAULT_MODULE) == 0);
}

/* Settings as init will record them: options, then the environment (personal
 * mode), then the defaults.  A PIN inside a token URI never gets this far:
 * the token is stored with every pin-value and pin-source stripped. */
static km_status init_settings(const km_init_opts *o, km_config *c, km_err *e)
{
	char home[PATH_MAX];
	km_status st = km_config_home(o->home, home, sizeof home, e);
	if (st)
		return st;
	km_config_defaults(c, home);
	c->mode = o->mode;
	if (o->module_path)
		snprintf(c->module_path, sizeof c->module_path, "%s", o->module_path);
	if (o->token)
		snprintf(c->token, sizeof c->token, "%s", o->token);
	if (o->softhsm2_conf)
		snprintf(c->softhsm2_conf, sizeof c->softhsm2_conf, "%s", o->softhsm2_conf);
	if (o->pin_file)
		snprintf(c->pin_file, sizeof c->pin_file, "%s", o->pin_file);
	if (o->argon2_t)
		c->argon2_t = o->argon2_t;
	if (o->argon2_m_kib)
		c->argon2_m_kib = o->argon2_m_kib;
	if ((st = km_config_env_overrides(c, e)))
		return st;
	if (o->mode == KM_MODE_SYSTEM || own_softhsm(o)) {
		if (snprintf(c->softhsm2_conf, sizeof c->softhsm2_conf, "%s/%s", home, KM_SOFTHSM2_CONF) >=
		    (int)sizeof c->softhsm2_conf)
			return km_fail(e, KM_ECONFIG, "the deployment path is too long");
		snprintf(c->module_path, sizeof c->module_path, "%s", KM_DEFAULT_MODULE);
	}
	char clean[sizeof c->token];
	if (hsm_uri_strip_secrets(c->token, clean, sizeof clean) != KM_OK)
		return km_fail(e, KM_ECONFIG, "the token name is too long or malformed");
	snprintf(c->token, sizeof c->token, "%s", clean);
	return KM_OK;
}

km_status km_init_needs_so_pin(const km_init_opts *o, int *needs, km_err *e)
{
	km_config c;
	*needs = 0;
	km_status st = init_settings(o, &c, e);
	if (st)
		return st;
	int own = o->mode == KM_MODE_SYSTEM || own_softhsm(o);
	if (!own) {
		if ((st = export_softhsm_conf(&c, e)) == KM_OK) {
			hsm_config hc = {c.module_path, c.token};
			int found = 1;
			if (hsm_token_exists(&hc, &found, e) == KM_OK)
				*needs = !found;
		}
	}
	km_config_free(&c);
	return KM_OK;
}

/* The deployment's own SoftHSM2: configuration and token directory. */
static km_status own_softhsm_setup(const km_config *c, km_err *e)
{
	char dir[PATH_MAX + 16], text[PATH_MAX + 256];
	snprintf(dir, sizeof dir, "%s/%s", c->home, KM_TOKEN_DIR);
	km_status st = mkdir_private(dir, e);
	if (st)
		return st;
	if (access(c->softhsm2_conf, F_OK) == 0)
		return KM_OK; /* an earlier, interrupted init made it */
	snprintf(text, sizeof text, "# keyward: this deployment's own SoftHSM2 token directory\n"
	         "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
	return write_private(c->softhsm2_conf, text, e);
}

/* len characters from an alphabet without look-alikes, each drawn without
 * modulo bias (bytes past the largest multiple of the alphabet are
 * redrawn). */
static km_status random_pin(char *buf, size_t len, km_err *e)
{
	static const char alphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
	const unsigned n = sizeof alphabet - 1, limit = 256 - 256 % n;
	unsigned char b;
	for (size_t i = 0; i < len; i++) {
		do {
			if (RAND_bytes(&b, 1) != 1)
				return km_fail(e, KM_EINTERNAL, "the random generator failed");
		} while (b >= limit);
		buf[i] = alphabet[b % n];
	}
	buf[len] = '\0';
	OPENSSL_cleanse(&b, sizeof b);
	return KM_OK;
}

/* The demo's PIN file: reuse the one an interrupted `init --demo` left
 * (its token may already carry that PIN), else make one. */
static km_status demo_pin(const char *path, char *pin, km_err *e)
{
	if (access(path, F_OK) == 0)
		return read_pin_file(path, 0, pin, PIN_MAX, e);
	char text[PIN_MAX + 160];
	km_status st = random_pin(pin, 20, e);
	if (!st) {
		snprintf(text, sizeof text, "# DEMO ONLY: the user PIN of a demonstration deployment, kept "
		         "in a file for convenience. Never do this with real keys.\n%s\n", pin);
		st = write_private(path, text, e);
		OPENSSL_cleanse(text, sizeof text);
	}
	return st;
}

/* A new user row in init's transaction: sealed and recorded. */
static km_status init_user(km_ctx *ctx, const char *name, unsigned roles, const char *scopes,
                           const char *passphrase, km_err *e)
{
	user_row u = {.roles = roles, .created = km_now(), .totp_step = -1};
	snprintf(u.name, sizeof u.name, "%s", name);
	snprintf(u.created_by, sizeof u.created_by, "%s", ctx->actor.name);
	snprintf(u.scopes, sizeof u.scopes, "%s", scopes);
	km_cred_params p = km_cred_params_default();
	p.t_cost = ctx->cfg.argon2_t;
	p.m_cost_kib = ctx->cfg.argon2_m_kib;
	km_status st = passphrase ? km_cred_create(name, passphrase, &p, &u.cred, e) : KM_OK;
	char digest[65], rolestr[64];
	km_roles_format(roles, rolestr, sizeof rolestr);
	if (!st)
		st = user_row_save(ctx, &u, 1, digest, e);
	if (!st) {
		char uobj[80];
		json_t *d = json_pack("{s:s,s:s}", "roles", rolestr, "scopes", scopes);
		uint8_t pub[KM_CRED_PUBKEY_BYTES];
		char hex[2 * KM_CRED_PUBKEY_BYTES + 1];
		if (u.cred && km_cred_public_key(u.cred, pub, e) == KM_OK) {
			for (size_t i = 0; i < sizeof pub; i++)
				snprintf(hex + 2 * i, 3, "%02x", pub[i]);
			json_object_set_new(d, "signing_key", json_string(hex));
		}
		km_sealed_note(d, "users", name, digest);
		snprintf(uobj, sizeof uobj, "user:%s", name);
		st = km_tx_audit(ctx, km_action_name(KM_ACT_USER_ADD), uobj, "ok", d, e);
	}
	user_row_clear(&u);
	return st;
}

km_status km_init_deployment(const km_init_opts *o, km_err *e)
{
	km_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return km_fail(e, KM_ENOMEM, "out of memory");
	ctx->clock = o->clock;
	ctx->clock_ctx = o->clock_ctx;
	int created_db = 0;
	char *so_pin = NULL, *pin = NULL;
	km_status st;
	if (o->mode == KM_MODE_SYSTEM && getuid() != 0) {
		st = km_fail(e, KM_EDENIED, "only root may initialise the system deployment "
		             "(sudo keyward init --system --admin NAME)");
		goto out;
	}
	if (o->mode != KM_MODE_SYSTEM && km_process_privileged()) {
		st = km_fail(e, KM_EUSAGE, "this keyward is the system deployment's set-user-ID program: "
		             "use init --system, or a keyward that is not set-user-ID for a personal deployment");
		goto out;
	}
	if ((st = init_settings(o, &ctx->cfg, e)))
		goto out;
	const char *home = ctx->cfg.home;
	if (access(ctx->cfg.config_path, F_OK) == 0) {
		st = km_fail(e, KM_EEXISTS, "%s is already a keyward deployment (config.json exists)", home);
		goto out;
	}
	if (!o->passphrase || !*o->passphrase) {
		st = km_fail(e, KM_EUSAGE, "init needs the first user's passphrase");
		goto out;
	}
	if (o->mode != KM_MODE_SYSTEM && !o->demo && (!o->pin || !*o->pin)) {
		st = km_fail(e, KM_EUSAGE, "init needs the user PIN");
		goto out;
	}
	if ((st = mkdir_private(home, e)))
		goto out;
	if (chmod(home, 0700) != 0) {
		st = km_fail(e, KM_ECONFIG, "cannot make %s private (chmod 0700): %s", home, strerror(errno));
		goto out;
	}

	unsigned roles = o->first_user_roles ? o->first_user_roles : KM_ROLE_ADMIN;
	if ((st = km_roles_check_separation(roles, e)))
		goto out;
	if ((st = km_caller_name(ctx->actor.os_user, sizeof ctx->actor.os_user, e)))
		goto out;
	snprintf(ctx->actor.name, sizeof ctx->actor.name, "%s",
	         o->first_user && *o->first_user ? o->first_user : ctx->actor.os_user);
	if ((st = km_user_name_validate(ctx->actor.name, e)))
		goto out;
	ctx->actor.roles = roles;
	ctx->actor.mode = o->mode;
	ctx->cfg.mode = o->mode;
	if (o->mode == KM_MODE_PERSONAL)
		snprintf(ctx->cfg.default_user, sizeof ctx->cfg.default_user, "%s", ctx->actor.name);

	/* The token: the deployment's own (system mode, or personal with
	 * SoftHSM2 and no configuration named), else adopt or create the one
	 * named. */
	int own = o->mode == KM_MODE_SYSTEM || own_softhsm(o);
	so_pin = km_secure_alloc(PIN_MAX);
	pin = km_secure_alloc(PIN_MAX);
	if (!so_pin || !pin) {
		st = km_fail(e, KM_ENOMEM, "out of locked memory");
		goto out;
	}
	if (own && (st = own_softhsm_setup(&ctx->cfg, e)))
		goto out;
	if ((st = export_softhsm_conf(&ctx->cfg, e)))
		goto out;
	if (o->mode == KM_MODE_SYSTEM) {
		/* Nobody types the system PIN: it lives in the home, readable by
		 * the service account only. */
		char text[PIN_MAX + 128];
		if (snprintf(ctx->cfg.pin_file, sizeof ctx->cfg.pin_file, "%s/pin", home) >=
		    (int)sizeof ctx->cfg.pin_file) {
			st = km_fail(e, KM_ECONFIG, "the deployment path is too long");
			goto out;
		}
		if (access(ctx->cfg.pin_file, F_OK) == 0)
			st = read_pin_file(ctx->cfg.pin_file, 0, pin, PIN_MAX, e);
		else if (!(st = random_pin(pin, 32, e))) {
			snprintf(text, sizeof text, "# keyward system deployment: HSM user PIN\n%s\n", pin);
			st = write_private(ctx->cfg.pin_file, text, e);
			OPENSSL_cleanse(text, sizeof text);
		}
		if (st)
			goto out;
	} else if (o->demo) {
		if (snprintf(ctx->cfg.pin_file, sizeof ctx->cfg.pin_file, "%s/%s", home, KM_DEMO_PIN_FILE) >=
		    (int)sizeof ctx->cfg.pin_file) {
			st = km_fail(e, KM_ECONFIG, "the deployment path is too long");
			goto out;
		}
		if ((st = demo_pin(ctx->cfg.pin_file, pin, e)))
			goto out;
	} else {
		snprintf(pin, PIN_MAX, "%s", o->pin);
	}
	hsm_config hc = {ctx->cfg.module_path, ctx->cfg.token};
	int exists = 0;
	if ((st = hsm_token_exists(&hc, &exists, e)))
		goto out;
	if (!exists) {
		if (own) {
			/* Recorded next to the token it opens, for recovery. */
			char path[PATH_MAX + 16], text[PIN_MAX + 128];
			snprintf(path, sizeof path, "%s/so-pin", home);
			if ((st = random_pin(so_pin, 32, e)))
				goto out;
			snprintf(text, sizeof text, "# keyward: SoftHSM2 security-officer PIN of this deployment's token\n%s\n", so_pin);
			unlink(path); /* from an init killed before its token existed */
			st = write_private(path, text, e);
			OPENSSL_cleanse(text, sizeof text);
			if (st)
				goto out;
		} else if (o->demo) {
			if ((st = random_pin(so_pin, 32, e)))
				goto out;
		} else if (!o->so_pin || !*o->so_pin) {
			st = km_fail(e, KM_EUSAGE, "token '%s' does not exist; creating it needs an SO PIN "
			             "(KEYWARD_SO_PIN or --so-pin-file)", ctx->cfg.token);
			goto out;
		} else {
			snprintf(so_pin, PIN_MAX, "%s", o->so_pin);
		}
		if ((st = hsm_token_create(&hc, so_pin, pin, e)))
			goto out;
	}
	if ((st = hsm_open(&hc, &ctx->h, e)) || (st = hsm_login(ctx->h, pin, e)))
		goto out;
	hsm_objects have;
	if ((st = hsm_objects_present(ctx->h, &have, e)))
		goto out;
	if (!have.root && (st = hsm_root_create(ctx->h, e)))
		goto out;
	if (!have.audit_key && (st = hsm_audit_key_create(ctx->h, e)))
		goto out;
	if (!have.mac_key && (st = hsm_mac_key_create(ctx->h, e)))
		goto out;
	if (have.anchor) {
		st = km_fail(e, KM_EEXISTS, "token '%s' already anchors another keyward audit log; "
		             "give this deployment a token of its own", ctx->cfg.token);
		goto out;
	}

	if (access(ctx->cfg.db_path, F_OK) == 0) {
		st = km_fail(e, KM_EEXISTS, "the catalogue %s exists already; move it away or "
		             "choose another KEYWARD_HOME", ctx->cfg.db_path);
		goto out;
	}
	created_db = 1;
	if ((st = km_db_open(ctx->cfg.db_path, 1, &ctx->db, e)) ||
	    (ctx->clock && (st = km_db_set_clock(ctx->db, ctx->clock, ctx->clock_ctx, e))))
		goto out;
	if ((st = km_random_hex(ctx->deployment_id, 16, e)))
		goto out;

	if ((st = km_tx_begin(ctx, e)))
		goto out;
	char origin[80];
	snprintf(origin, sizeof origin, "keyward/%s", ctx->deployment_id);
	sqlite3_stmt *q = NULL;
	if (!(st = km_db_meta_set(ctx->db, "deployment_id", ctx->deployment_id, e)) &&
	    !(st = km_db_prepare(ctx->db, "INSERT INTO audit_meta(key, value) VALUES('origin', ?)", &q, e))) {
		sqlite3_bind_text(q, 1, origin, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "recording the audit origin");
		sqlite3_finalize(q);
	}
	if (!st)
		st = km_tx_audit(ctx, "init", "deployment", "ok",
		                 json_pack("{s:s,s:s,s:s,s:s,s:s}", "deployment", ctx->deployment_id,
		                           "mode", o->mode == KM_MODE_SYSTEM ? "system" : "personal",
		                           "token", ctx->cfg.token, "module", ctx->cfg.module_path,
		                           "first_user", ctx->actor.name), e);
	if (!st)
		st = init_user(ctx, ctx->actor.name, roles, "", o->passphrase, e);
	for (size_t i = 0; !st && o->demo && i < KM_ARRAY_LEN(demo_people); i++) {
		if (strcmp(demo_people[i].name, ctx->actor.name) == 0)
			continue;
		int svc = demo_people[i].roles & KM_ROLE_SERVICE;
		st = init_user(ctx, demo_people[i].name, demo_people[i].roles, demo_people[i].scopes,
		               svc ? NULL : KM_DEMO_PASSPHRASE, e);
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
	km_secure_free(so_pin, PIN_MAX);
	km_secure_free(pin, PIN_MAX);
	km_close(ctx);
	return st;
}
