/*
 * config.h — where a deployment lives and what it talks to.
 *
 * KEYWARD_HOME selects the deployment directory (default
 * $XDG_DATA_HOME/keyward, else ~/.local/share/keyward).  KEYWARD_HOME/config.json
 * (parsed with Jansson; unknown keys and wrong types are refused with a
 * message naming the key) names the PKCS#11 module, the token and the
 * database; environment variables override: KEYWARD_PKCS11_MODULE,
 * KEYWARD_TOKEN, KEYWARD_DB.  Relative paths are relative to the home.
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

typedef struct km_config {
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
	json_t *keys;                  /* console key rebinding object, or NULL */
} km_config;

/* Resolve the home directory only. */
km_status km_config_home(const char *home_opt, char *out, size_t cap, km_err *e);

/* Fill defaults for `home`. */
void km_config_defaults(km_config *c, const char *home);

/* Load HOME/config.json over the defaults, then apply environment
 * overrides.  Missing file -> KM_ECONFIG "no deployment at HOME (run
 * `keyward init`)". */
km_status km_config_load(km_config *c, const char *home_opt, km_err *e);

/* Parse config text (used by load and by tests). */
km_status km_config_parse(km_config *c, const char *text, const char *origin, km_err *e);

/* Write config.json atomically (write-then-rename, mode 0600). */
km_status km_config_save(const km_config *c, km_err *e);

void km_config_free(km_config *c);

#endif
