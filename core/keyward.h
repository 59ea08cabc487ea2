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

typedef struct km_ctx km_ctx;

/* Asks a person for a secret without echo; writes a NUL-terminated string
 * into buf.  The CLI supplies one that reads /dev/tty. */
typedef km_status (*km_secret_prompt_fn)(void *ctx, const char *question,
                                          char *buf, size_t cap, km_err *e);

/* Identity.  A system deployment names the person by the real uid and
 * accepts none of home, pin_file and user (KM_EUSAGE).  A personal one
 * takes user (else KEYWARD_USER, else the person who ran init): the OS
 * login does not tell its people apart, so every change there asks for the
 * named person's passphrase. */
typedef struct km_open_opts {
	const char *home;        /* NULL: KEYWARD_HOME, then $XDG_DATA_HOME/keyward */
	const char *pin_file;    /* NULL: config pin_file, then KEYWARD_PIN, then prompt */
	const char *user;        /* personal mode: act as this keyward user */
	/* Step-up: a file holding the passphrase (opened with the caller's
	 * rights), else KEYWARD_PASSPHRASE, else the prompt; the one-time
	 * code from KEYWARD_OTP, else the prompt. */
	const char *passphrase_file;
	km_secret_prompt_fn prompt;
	void *prompt_ctx;
	/* NULL: the real clock.  Only the demo's backdated history sets it
	 * (see km_set_clock below), so that even its logins are on its clock. */
	int64_t (*clock)(void *c);
	void *clock_ctx;
} km_open_opts;

typedef struct km_actor {
	char name[64];    /* keyward user name */
	unsigned roles;   /* KM_ROLE_* bits */
	char os_user[64]; /* who is at the terminal (the real uid's login) */
	km_mode mode;     /* personal or system deployment */
} km_actor;

km_status km_open(const km_open_opts *o, km_ctx **out, km_err *e);
void km_close(km_ctx *ctx);

const km_actor *km_actor_get(const km_ctx *ctx);

/* Replace how this session asks for step-up secrets (the console puts up a
 * dialog while it runs).  Returns nothing; fn NULL means "never ask". */
void km_set_secret_prompt(km_ctx *ctx, km_secret_prompt_fn fn, void *prompt_ctx);
/* NULL, or why this session is read-only: the audit log refused the login
 * event because it is damaged.  Verification and reads still work. */
const char *km_log_damage(const km_ctx *ctx);
const km_config *km_config_get(const km_ctx *ctx);

/* The one authorisation decision: role (the policy table), scope (a key
 * outside a scoped user's prefixes), lock state, and step-up where the
 * policy asks for it (the passphrase, + TOTP when enrolled; failures count
 * towards a lockout).  On refusal: records one "denied" event with the
 * reason (in a transaction of its own) and returns KM_EDENIED with a
 * message naming what is missing.  object NULL: the one given to
 * km_op_begin. */
km_status km_authorize(km_ctx *ctx, km_action a, const char *object, km_err *e);

/* ---- deployment set-up ------------------------------------------------- */
typedef struct km_init_opts {
	const char *home;         /* as in km_open_opts */
	const char *module_path;  /* NULL: config default / SoftHSM2 */
	const char *token;        /* label or pkcs11: URI; NULL: "keyward" */
	const char *pin;          /* user PIN (required) */
	const char *so_pin;       /* needed only when the token must be created */
	const char *softhsm2_conf;/* optional; written into config.json */
	const char *pin_file;     /* optional; written into config.json (demo, system) */
	unsigned first_user_roles;/* 0: KM_ROLE_ADMIN */
	const char *first_user;   /* NULL: the caller's login name */
	const char *passphrase;   /* the first user's passphrase (required) */
	int demo;                 /* a demonstration: random PINs (the user PIN in
	                           * KM_DEMO_PIN_FILE, reused if an interrupted
	                           * init left one), the demo's people enrolled
	                           * with KM_DEMO_PASSPHRASE; pin is ignored */
	km_mode mode;             /* system: the home is KM_SYSTEM_HOME */
	uint32_t argon2_t, argon2_m_kib; /* 0: the defaults */
	int64_t (*clock)(void *c);   /* NULL: the real clock (as in km_open_opts) */
	void *clock_ctx;
} km_init_opts;

#define KM_DEMO_PASSPHRASE "keyward-demo"
/* init --demo: the user PIN, random, in HOME/KM_DEMO_PIN_FILE (0600), a
 * deliberate and clearly marked convenience for demonstrations only. */
#define KM_DEMO_PIN_FILE "demo-pin.DEMO-ONLY"

/* Does init have to create the token (so it needs an SO PIN)?  A personal
 * deployment that uses SoftHSM2 without a configuration of its own gets a
 * token directory of its own inside the home, so its token is always new
 * and its SO PIN made at random (kept in HOME/so-pin, 0600). */
km_status km_init_needs_so_pin(const km_init_opts *o, int *needs, km_err *e);

/* Create (or adopt) the token, the root key, audit key pair and row-MAC
 * key, the catalogue, config.json and the first user.  A personal
 * deployment with the default module gets its own SoftHSM2 configuration
 * and token directory (HOME/softhsm2.conf, HOME/tokens), so two deployments
 * never meet.  Refuses with KM_EEXISTS if the deployment is already
 * initialised. */
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
	char last_verified[64];        /* RFC 3339 time or "" (from a sealed record) */
	int last_verified_intact;      /* valid if last_verified[0] */
	km_mode mode;
	char boundary[256];            /* who the trust boundary is, in a sentence */
	char memlock[KM_ERR_MSG_MAX];  /* what of the process is locked in memory */
	/* By each key's effective policy (policy.h, schedule.h): */
	uint64_t keys_due;             /* due (cadence passed or 90% of the usage bound), not overdue */
	uint64_t keys_overdue;         /* past 2x cadence, at the usage bound, or a compromised
	                                * version still wrapping assets */
	/* Audit forwarding (forward.h): each configured sink and its lag, the
	 * entries it has not acknowledged yet.  sinks_problem: why they could
	 * not be read ("" when fine). */
	uint32_t sinks;
	struct { char name[32]; uint64_t lag; } sink[8];
	char sinks_problem[KM_ERR_MSG_MAX];
} km_status_info;

km_status km_status_get(km_ctx *ctx, km_status_info *out, km_err *e);

/* Record the outcome of a full audit verification so the status bar can
 * show "verified 5 min ago".  Audited as audit.verify. */
km_status km_record_verification(km_ctx *ctx, int intact, uint64_t first_bad,
                                 const char *problem, km_err *e);

/* Unix time now, by the real clock. */
int64_t km_now(void);

/* The session's clock.  Every time the core decides by (due dates, expiry,
 * waiting periods, lockouts; TOTP alone keeps real time) and every audit event time comes from
 * km_ctx_now(), which is the real clock unless a caller of the core API
 * injected another: unit tests of due dates, and the demo, which builds a
 * backdated history.  The shipped front ends never inject one; no option or
 * environment variable reaches it.  Audit times still never decrease. */
typedef int64_t (*km_clock_fn)(void *c);
void km_set_clock(km_ctx *ctx, km_clock_fn fn, void *c);
int64_t km_ctx_now(const km_ctx *ctx);
/* RFC 3339 UTC seconds: "2026-11-23T12:45:13Z". */
void km_time_format(int64_t t, char buf[32]);

#endif
