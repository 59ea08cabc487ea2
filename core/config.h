/*
 * config.h — where a deployment lives and what it talks to.
 *
 * Two modes, one code path.  A personal deployment lives where its owner
 * says (--home, KEYWARD_HOME, default $XDG_DATA_HOME/keyward, else
 * ~/.local/share/keyward) and the environment may override its settings
 * (km_config_env_overrides: one table).  A system deployment lives in
 * KM_SYSTEM_HOME, fixed at build time, and is reached through the
 * set-user-ID binary: then nothing from the caller (environment, options,
 * the current directory) chooses a path or a library, and config.json is
 * read from the system home only.
 *
 * HOME/config.json is parsed with Jansson; unknown keys and wrong types are
 * refused with a message naming the key.  Relative paths are relative to
 * the home.
 */
#ifndef KM_CONFIG_H
#define KM_CONFIG_H

#include "km.h"

#include <limits.h>
#include <stddef.h>
#include <jansson.h>

#define KM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define KM_DEFAULT_TOKEN  "keyward"
#define KM_DEFAULT_DB     "keyward.db"
#define KM_SOFTHSM2_CONF  "softhsm2.conf"   /* a deployment's own, in its home */
#define KM_TOKEN_DIR      "tokens"

#ifndef KM_SYSTEM_HOME
#define KM_SYSTEM_HOME "/var/lib/keyward"
#endif
#ifndef KM_SERVICE_USER
#define KM_SERVICE_USER "keyward"
#endif

typedef enum km_mode { KM_MODE_PERSONAL = 0, KM_MODE_SYSTEM = 1 } km_mode;

typedef struct km_config {
	km_mode mode;
	char default_user[64];         /* personal mode: who ran init */
	char home[PATH_MAX];
	char config_path[PATH_MAX];
	char module_path[PATH_MAX];
	char token[256];
	char db_path[PATH_MAX];
	char pin_file[PATH_MAX];       /* "" if none */
	char softhsm2_conf[PATH_MAX];  /* "" if none; exported as SOFTHSM2_CONF */
	char theme[64];                /* "" = default */
	/* KEK cache bounds (like the AWS Encryption SDK's caching CMM). */
	int64_t cache_max_age_s;
	uint64_t cache_max_uses;
	uint64_t cache_max_bytes;
	uint32_t cache_max_entries;
	/* DEKs a KEK version may wrap before it must rotate (random 96-bit
	 * GCM nonces: stay far below 2^32). */
	uint64_t kek_max_wraps;
	/* Default rotation cadence, for "due" in the status bar. */
	int64_t rotation_days;
	int64_t destroy_wait_s;
	/* Assets a rewrap job moves per transaction (job.c). */
	uint32_t job_batch;
	/* Personal credentials: Argon2id cost for new passphrases, lockout. */
	uint32_t argon2_t;
	uint32_t argon2_m_kib;
	uint32_t lockout_failures;
	int64_t lockout_seconds;
	json_t *keys;                  /* console key rebinding object, or NULL */
	/* Lineage mapping rules: an array of {"namespace", "name" (fnmatch
	 * patterns), "asset" ("KIND:NAME[@VERSION]", "{name}" replaced by the
	 * dataset's name), "kind" (node kind)}; checked at load, or NULL. */
	json_t *lineage_mappings;
	/* Audit forwarding sinks (forward.h km_sinks_parse): an array of
	 * objects, checked at load, or NULL. */
	json_t *audit_sinks;
	/* Anomaly detection thresholds (anomaly.h km_anomaly_config_parse),
	 * checked at load, or NULL for the defaults. */
	json_t *anomaly;
} km_config;

/* 1 when this process runs with privilege it did not start with (the
 * set-user-ID binary of a system deployment: AT_SECURE).  Then the caller
 * chooses nothing: no home, no overrides. */
int km_process_privileged(void);

/* The value of an environment setting that may steer keyward (a path, a
 * token, a user name), or NULL: always NULL for a privileged process.  The
 * one door for such variables; secrets a person types (KEYWARD_PIN,
 * KEYWARD_PASSPHRASE) are read where they are used. */
const char *km_config_env(const char *name);

/* Resolve the home directory only: home_opt, KEYWARD_HOME, the XDG default;
 * KM_SYSTEM_HOME for a privileged process (which refuses home_opt). */
km_status km_config_home(const char *home_opt, char *out, size_t cap, km_err *e);

/* Fill defaults for `home`. */
void km_config_defaults(km_config *c, const char *home);

/* Apply the environment overrides of the settings table (personal mode,
 * unprivileged only; a no-op otherwise).  Relative paths resolve against
 * the home, as in config.json. */
km_status km_config_env_overrides(km_config *c, km_err *e);

/* Load HOME/config.json over the defaults, then apply environment
 * overrides (km_config_env_overrides).  Missing file -> KM_ECONFIG "no deployment at HOME (run
 * `keyward init`)". */
km_status km_config_load(km_config *c, const char *home_opt, km_err *e);

/* Parse config text (used by load and by tests). */
km_status km_config_parse(km_config *c, const char *text, const char *origin, km_err *e);

/* Write config.json atomically (write-then-rename, mode 0600). */
km_status km_config_save(const km_config *c, km_err *e);

void km_config_free(km_config *c);

#endif
