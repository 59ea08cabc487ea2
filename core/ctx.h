/*
 * ctx.h — internal to core/: the session structure and the one path by which
 * every change is authorised, recorded and committed.
 *
 *   km_authorize(ctx, action, object)     -- before touching anything
 *   km_tx_begin(ctx)                      -- BEGIN IMMEDIATE
 *   ... catalogue changes ...
 *   km_tx_audit(ctx, "key.create", obj, "ok", details)
 *   km_tx_commit(ctx)                     -- signs a tree head, COMMIT
 *
 * km_tx_commit signs the new tree head inside the transaction, so every
 * committed event is covered by an HSM-signed head.  Front ends never see
 * this header.
 */
#ifndef KM_CTX_H
#define KM_CTX_H

#include "keyward.h"
#include "kekcache.h"
#include "audit.h"
#include "hsm.h"

#include <sqlite3.h>
#include <openssl/evp.h>
#include <jansson.h>

struct km_cred_session;

struct km_ctx {
	km_config cfg;
	sqlite3 *db;
	hsm *h;
	km_actor actor;
	char scopes[256];         /* the user's key-name prefixes ("" none) */
	/* Where step-up finds the person's secrets (km_open_opts). */
	char passphrase_file[PATH_MAX];
	km_secret_prompt_fn prompt;
	void *prompt_ctx;
	/* After a successful step-up: the unlocked credential and the
	 * passphrase (locked memory), for re-sealing and signing. */
	struct km_cred_session *cred;
	char *passphrase;
	/* The operation in progress (km_op_begin): so that a failure is
	 * recorded exactly once, whichever check refused it. */
	km_action op;
	char op_object[256];
	int op_active, op_recorded;
	char memlock_note[KM_ERR_MSG_MAX]; /* "" when every page is locked */
	EVP_PKEY *audit_pub;
	char deployment_id[40];
	kek_cache *cache;
	audit_writer *aw;         /* created on first use; reset at every transaction end */
	int log_damaged;         /* the login event could not be appended */
	km_clock_fn clock;       /* NULL: the real clock (km_set_clock) */
	void *clock_ctx;
	char log_problem[KM_ERR_MSG_MAX];
	/* policy.c: policy rows whose seal held this session, by scope, so
	 * refreshing 100,000 keys does not ask the HSM 100,000 times. */
	json_t *policy_verified;
	/* lineage_redact.c: redaction asked for (km_lineage_set_redact), and
	 * the session's pseudonyms ("what\nname" -> pseudonym). */
	int lineage_redact;
	json_t *lineage_pseudonyms;
};

/* For core modules and tests: the session's catalogue connection and HSM. */
sqlite3 *km_db(km_ctx *ctx);
hsm *km_hsm(km_ctx *ctx);

km_status km_tx_begin(km_ctx *ctx, km_err *e);
/* details is stolen (decref'd) whatever happens; may be NULL. */
km_status km_tx_audit(km_ctx *ctx, const char *action, const char *object,
                      const char *outcome, json_t *details, km_err *e);
km_status km_tx_commit(km_ctx *ctx, km_err *e);
void km_tx_rollback(km_ctx *ctx);

/* One event in a transaction of its own (failures, denials, logins). */
km_status km_audit_event(km_ctx *ctx, const char *action, const char *object,
                         const char *outcome, json_t *details, km_err *e);

/* Record an action that failed after authorisation (integrity failure,
 * illegal state...), keeping *e intact for the caller; returns e->code. */
km_status km_audit_failure(km_ctx *ctx, km_action a, const char *object, km_err *e);

/* ---- one failure path ------------------------------------------------ */

/* Every public entry point: km_op_begin(ctx, action, object) first, then
 * its checks (validation, km_authorize, lookups, state), then
 *     return km_op_end(ctx, status, e);
 * km_op_end records a failure that nothing recorded yet (a denial is
 * recorded by km_authorize, a success by km_tx_commit), so every attempt
 * leaves exactly one event with its outcome. */
void km_op_begin(km_ctx *ctx, km_action a, const char *object);
km_status km_op_end(km_ctx *ctx, km_status st, km_err *e);

/* Refuse action a for a reason of the caller's (separation of duties
 * beyond roles): records the denial once, returns KM_EDENIED. */
km_status km_authorize_deny(km_ctx *ctx, km_action a, const char *reason, km_err *e);

/* After a successful step-up in this session: the unlocked credential and
 * the passphrase that opened it; NULL before. */
struct km_cred_session *km_step_up_session(km_ctx *ctx);
const char *km_step_up_passphrase(km_ctx *ctx);

/* The audit anchor the HSM holds (a->have 0 when none yet). */
km_status km_anchor_load(km_ctx *ctx, audit_anchor *a, km_err *e);

/* Sealed records: a meta row and an HSM MAC over its name and value.
 * get: KM_ENOTFOUND if absent, KM_EINTEGRITY if the MAC fails. */
km_status km_sealed_put(km_ctx *ctx, const char *name, const char *value, km_err *e);
km_status km_sealed_get(km_ctx *ctx, const char *name, char *value, size_t cap, km_err *e);

/* Random lowercase hex id of 2*n characters (n <= 32). */
km_status km_random_hex(char *out, size_t n, km_err *e);

/* The signing callback for audit_sign_head. */
km_status km_ctx_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e);

#endif
