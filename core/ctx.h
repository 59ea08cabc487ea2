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

#include <openssl/evp.h>
#include <jansson.h>

struct km_ctx {
	km_config cfg;
	sqlite3 *db;
	hsm *h;
	km_actor actor;
	EVP_PKEY *audit_pub;
	char deployment_id[40];
	kek_cache *cache;
	audit_writer *aw;         /* created on first use; reset at every transaction end */
	int log_damaged;         /* the login event could not be appended */
	char log_problem[KM_ERR_MSG_MAX];
};

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

/* Random lowercase hex id of 2*n characters (n <= 32). */
km_status km_random_hex(char *out, size_t n, km_err *e);

/* The signing callback for audit_sign_head. */
km_status km_ctx_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64], km_err *e);

#endif
