/*
 * keyward.h — a session on one deployment: the object every front end holds.
 *
 * km_open() loads the configuration, opens the catalogue, opens and logs in
 * to the HSM, maps the OS user to a keyward user and records the login in
 * the audit log.  All other core calls take the km_ctx.  Every one of them
 * authorises through km_authorize() and records through the single audit
 * path; the front ends (CLI, console) add nothing of their own.
 */
#ifndef KM_KEYWARD_H
#define KM_KEYWARD_H

#include "km.h"
#include "authz.h"
#include "config.h"

#include <sqlite3.h>

typedef struct km_ctx km_ctx;
typedef struct hsm hsm;

/* Asks a person for a secret without echo; writes a NUL-terminated string
 * into buf.  The CLI supplies one that reads /dev/tty. */
typedef km_status (*km_secret_prompt_fn)(void *ctx, const char *question,
                                          char *buf, size_t cap, km_err *e);

typedef struct km_open_opts {
	const char *home;        /* NULL: KEYWARD_HOME, then $XDG_DATA_HOME/keyward */
	const char *pin_file;    /* NULL: KEYWARD_PIN, then config pin_file, then prompt */
	km_secret_prompt_fn prompt;
	void *prompt_ctx;
	/* Act as this keyward user.  Honoured only for the superuser, who can
	 * become any OS user anyway (su); recorded in every event as "via". */
	const char *as_user;
} km_open_opts;

typedef struct km_actor {
	char name[64];    /* keyward user name */
	unsigned roles;   /* KM_ROLE_* bits */
	char os_user[64]; /* who is at the terminal */
	char via[64];     /* "root" when --as was used, else "" */
} km_actor;

km_status km_open(const km_open_opts *o, km_ctx **out, km_err *e);
void km_close(km_ctx *ctx);

const km_actor *km_actor_get(const km_ctx *ctx);
/* NULL, or why this session is read-only: the audit log refused the login
 * event because it is damaged.  Verification and reads still work. */
const char *km_log_damage(const km_ctx *ctx);
const km_config *km_config_get(const km_ctx *ctx);
sqlite3 *km_db(km_ctx *ctx);
hsm *km_hsm(km_ctx *ctx);

/* The one authorisation decision.  On denial: audits a "denied" event (in a
 * transaction of its own) and returns KM_EDENIED with a message naming the
 * action, the user, their roles and the roles that may do it. */
km_status km_authorize(km_ctx *ctx, km_action a, const char *object, km_err *e);

/* ---- deployment set-up ------------------------------------------------- */
typedef struct km_init_opts {
	const char *home;         /* as in km_open_opts */
	const char *module_path;  /* NULL: config default / SoftHSM2 */
	const char *token;        /* label or pkcs11: URI; NULL: "keyward" */
	const char *pin;          /* user PIN (required) */
	const char *so_pin;       /* needed only when the token must be created */
	const char *softhsm2_conf;/* optional; written into config.json */
	const char *pin_file;     /* optional; written into config.json (demo) */
	unsigned first_user_roles;/* 0: KM_ROLE_ADMIN */
	int demo_users;           /* also enrol the demo's named users */
} km_init_opts;

/* Create (or adopt) the token, the root key and audit key pair, the
 * catalogue, config.json and the first user (the invoking OS user).
 * Refuses with KM_EEXISTS if the deployment is already initialised. */
km_status km_init_deployment(const km_init_opts *o, km_err *e);

/* Status summary for `keyward status` and the console's status bar. */
typedef struct km_status_info {
	char home[PATH_MAX];
	char deployment_id[40];
	char token_label[33];
	char token_desc[128];  /* manufacturer model serial */
	int hsm_logged_in;
	uint64_t keys, versions, assets;
	uint64_t audit_events;
	uint64_t audit_head_size;      /* newest signed tree head */
	int64_t audit_head_time;
	char last_verified[64];        /* RFC 3339 time or "" */
	int last_verified_intact;      /* valid if last_verified[0] */
	uint64_t keys_due;             /* current version older than the cadence */
	uint64_t keys_overdue;         /* compromised, or past 2x cadence, or over 90% of wraps */
} km_status_info;

km_status km_status_get(km_ctx *ctx, km_status_info *out, km_err *e);

/* Record the outcome of a full audit verification so the status bar can
 * show "verified 5 min ago".  Audited as audit.verify. */
km_status km_record_verification(km_ctx *ctx, int intact, uint64_t first_bad,
                                 const char *problem, km_err *e);

/* Unix time now (the real clock; tests never fake it). */
int64_t km_now(void);
/* RFC 3339 UTC seconds: "2026-11-23T12:45:13Z". */
void km_time_format(int64_t t, char buf[32]);

#endif
