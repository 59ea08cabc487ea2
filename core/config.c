/*
 * config.c — loading and saving KEYWARD_HOME/config.json.
 *
 * Strict: an unknown key or a value of the wrong type is an error naming
 * the key, because a typo in a security setting must not be silently
 * ignored.  Never logs or stores a PIN: the PIN lives in a separate file
 * (demo only) or comes from the environment or a prompt.
 */
#include "config.h"
#include "forward.h"
#include "anomaly.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

int km_process_privileged(void)
{
	return getauxval(AT_SECURE) != 0;
}

const char *km_config_env(const char *name)
{
	/* secure_getenv is NULL under AT_SECURE already; the explicit test
	 * keeps the rule visible and independent of the libc. */
	if (km_process_privileged())
		return NULL;
	const char *v = secure_getenv(name);
	return v && *v ? v : NULL;
}

km_status km_config_home(const char *home_opt, char *out, size_t cap, km_err *e)
{
	if (km_process_privileged()) {
		if (home_opt && *home_opt)
			return km_fail(e, KM_EUSAGE, "--home is not accepted here: this keyward is the "
			               "system deployment's set-user-ID program, whose home is %s", KM_SYSTEM_HOME);
		return snprintf(out, cap, "%s", KM_SYSTEM_HOME) < (int)cap ? KM_OK
		       : km_fail(e, KM_ECONFIG, "deployment path is too long");
	}
	const char *h = home_opt && *home_opt ? home_opt : km_config_env("KEYWARD_HOME");
	int n;
	if (h && *h) {
		n = snprintf(out, cap, "%s", h);
	} else {
		const char *xdg = km_config_env("XDG_DATA_HOME");
		const char *home = km_config_env("HOME");
		if (xdg && *xdg)
			n = snprintf(out, cap, "%s/keyward", xdg);
		else if (home && *home)
			n = snprintf(out, cap, "%s/.local/share/keyward", home);
		else
			return km_fail(e, KM_ECONFIG, "cannot find the deployment: set KEYWARD_HOME");
	}
	if (n < 0 || (size_t)n >= cap)
		return km_fail(e, KM_ECONFIG, "deployment path is too long");
	/* Strip trailing slashes so joined paths read cleanly. */
	size_t len = strlen(out);
	while (len > 1 && out[len - 1] == '/')
		out[--len] = '\0';
	return KM_OK;
}

void km_config_defaults(km_config *c, const char *home)
{
	memset(c, 0, sizeof *c);
	snprintf(c->home, sizeof c->home, "%s", home);
	snprintf(c->config_path, sizeof c->config_path, "%s/config.json", home);
	snprintf(c->module_path, sizeof c->module_path, "%s", KM_DEFAULT_MODULE);
	snprintf(c->token, sizeof c->token, "%s", KM_DEFAULT_TOKEN);
	snprintf(c->db_path, sizeof c->db_path, "%s/%s", home, KM_DEFAULT_DB);
	c->cache_max_age_s = 300;
	c->cache_max_uses = 100000;
	c->cache_max_bytes = (uint64_t)1 << 36; /* 64 GiB protected per cached unwrap */
	c->cache_max_entries = 64;
	c->kek_max_wraps = (uint64_t)1 << 30;    /* NIST SP 800-38D: random IVs below 2^32 */
	c->rotation_days = 90;
	c->destroy_wait_s = 7 * 24 * 3600;
	c->job_batch = 20000; /* per-batch cost ~50 ms (seals, signed head, anchor, fsync): see docs/benchmarks.md §10 */
	c->argon2_t = 3;
	c->argon2_m_kib = 64 * 1024;
	c->lockout_failures = 5;
	c->lockout_seconds = 15 * 60;
}

/* Resolve a possibly relative path against the home. */
static km_status set_path(char *dst, size_t cap, const char *home, const char *v,
                          const char *key, km_err *e)
{
	int n = (v[0] == '/') ? snprintf(dst, cap, "%s", v) : snprintf(dst, cap, "%s/%s", home, v);
	if (n < 0 || (size_t)n >= cap)
		return km_fail(e, KM_ECONFIG, "config: \"%s\" is too long", key);
	return KM_OK;
}

typedef enum { CT_PATH, CT_STRING, CT_POS_INT, CT_OBJECT, CT_MODE, CT_LINEAGE, CT_SINKS, CT_ANOMALY } cfg_type;

/* Every key config.json may hold: one row each.  Offsets point into
 * km_config so parsing is a loop over this table. */
static const struct cfg_key {
	const char *name;
	cfg_type type;
	size_t off;
	size_t cap;
	int width; /* bytes of the integer field */
	const char *help;
} cfg_keys[] = {
	{"mode", CT_MODE, offsetof(km_config, mode), 0, 0, "\"personal\" or \"system\""},
	{"default_user", CT_STRING, offsetof(km_config, default_user), 64, 0, "personal mode: the user when none is named"},
	{"pkcs11_module", CT_PATH, offsetof(km_config, module_path), PATH_MAX, 0, "path of the PKCS#11 library"},
	{"token", CT_STRING, offsetof(km_config, token), 256, 0, "token label or pkcs11: URI"},
	{"database", CT_PATH, offsetof(km_config, db_path), PATH_MAX, 0, "SQLite catalogue path"},
	{"pin_file", CT_PATH, offsetof(km_config, pin_file), PATH_MAX, 0, "file holding the user PIN (demo only)"},
	{"softhsm2_conf", CT_PATH, offsetof(km_config, softhsm2_conf), PATH_MAX, 0, "SoftHSM2 configuration to export"},
	{"theme", CT_STRING, offsetof(km_config, theme), 64, 0, "console theme name"},
	{"cache_max_age_seconds", CT_POS_INT, offsetof(km_config, cache_max_age_s), 0, 8, "KEK cache: seconds an unwrapped version stays"},
	{"cache_max_uses", CT_POS_INT, offsetof(km_config, cache_max_uses), 0, 8, "KEK cache: uses per unwrap"},
	{"cache_max_bytes", CT_POS_INT, offsetof(km_config, cache_max_bytes), 0, 8, "KEK cache: bytes protected per unwrap"},
	{"cache_max_entries", CT_POS_INT, offsetof(km_config, cache_max_entries), 0, 4, "KEK cache: versions held"},
	{"kek_max_wraps", CT_POS_INT, offsetof(km_config, kek_max_wraps), 0, 8, "DEKs one KEK version may wrap"},
	{"rotation_days", CT_POS_INT, offsetof(km_config, rotation_days), 0, 8, "default rotation cadence"},
	{"destroy_wait_seconds", CT_POS_INT, offsetof(km_config, destroy_wait_s), 0, 8, "waiting period before destruction"},
	{"argon2_t", CT_POS_INT, offsetof(km_config, argon2_t), 0, 4, "Argon2id passes for new passphrases"},
	{"argon2_m_kib", CT_POS_INT, offsetof(km_config, argon2_m_kib), 0, 4, "Argon2id memory (KiB) for new passphrases"},
	{"lockout_failures", CT_POS_INT, offsetof(km_config, lockout_failures), 0, 4, "failed passphrases or codes before a lockout"},
	{"lockout_seconds", CT_POS_INT, offsetof(km_config, lockout_seconds), 0, 8, "length of a lockout"},
	{"job_batch", CT_POS_INT, offsetof(km_config, job_batch), 0, 4, "assets a rewrap job moves per transaction"},
	{"keys", CT_OBJECT, offsetof(km_config, keys), 0, 0, "console key bindings"},
	{"lineage_mappings", CT_LINEAGE, offsetof(km_config, lineage_mappings), 0, 0,
	 "lineage mapping rules: [{\"namespace\", \"name\", \"asset\", \"kind\"}]"},
	{"audit_sinks", CT_SINKS, offsetof(km_config, audit_sinks), 0, 0,
	 "audit forwarding sinks: [{\"name\", \"type\", \"url\" or \"path\", ...}]"},
	{"anomaly", CT_ANOMALY, offsetof(km_config, anomaly), 0, 0, "anomaly detection thresholds"},
};

/* The node kinds a mapping rule may give a dataset (lineage.h
 * KM_LINEAGE_KINDS, less "job": jobs come from the event's job). */
static const char *const lineage_kinds[] = {
	"source", "dataset", "feature-group", "feature", "model", "endpoint",
};

/* One rule: namespace and name patterns (strings, required), then an asset
 * spec, a node kind, or both.  The message names the rule by its index so a
 * person can find it in a long list. */
static km_status lineage_rule_check(const char *origin, size_t i, json_t *r, km_err *e)
{
	if (!json_is_object(r))
		return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu] must be an object", origin, i);
	const char *k;
	json_t *v;
	json_object_foreach(r, k, v) {
		if (strcmp(k, "namespace") && strcmp(k, "name") && strcmp(k, "asset") && strcmp(k, "kind"))
			return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu]: unknown field \"%s\" "
			               "(namespace, name, asset, kind)", origin, i, k);
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 512)
			return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu].%s must be a string of "
			               "1 to 512 characters", origin, i, k);
	}
	static const char *const required[] = {"namespace", "name"};
	for (size_t j = 0; j < KM_ARRAY_LEN(required); j++)
		if (!json_object_get(r, required[j]))
			return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu] has no \"%s\" pattern",
			               origin, i, required[j]);
	const char *asset = json_string_value(json_object_get(r, "asset"));
	const char *kind = json_string_value(json_object_get(r, "kind"));
	if (!asset && !kind)
		return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu] maps to nothing: give "
		               "\"asset\" (KIND:NAME[@VERSION]) or \"kind\"", origin, i);
	if (asset && (!strchr(asset, ':') || asset[0] == ':'))
		return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu].asset \"%s\" must be "
		               "written KIND:NAME[@VERSION]", origin, i, asset);
	if (kind) {
		size_t j;
		for (j = 0; j < KM_ARRAY_LEN(lineage_kinds); j++)
			if (strcmp(kind, lineage_kinds[j]) == 0)
				break;
		if (j == KM_ARRAY_LEN(lineage_kinds))
			return km_fail(e, KM_ECONFIG, "%s: \"lineage_mappings\"[%zu].kind \"%s\" is not one "
			               "of source, dataset, feature-group, feature, model, endpoint",
			               origin, i, kind);
	}
	return KM_OK;
}

/* The settings the environment may override, personal mode only: the one
 * place that knows them, and the one place set-user-ID switches off.
 * SOFTHSM2_CONF is not one of them: a deployment names its own SoftHSM2
 * configuration, and a variable left in someone's shell for another token
 * must not lead it to a foreign token directory. */
static const struct env_key {
	const char *var;
	const char *setting; /* a cfg_keys name of type CT_PATH or CT_STRING */
} env_keys[] = {
	{"KEYWARD_PKCS11_MODULE", "pkcs11_module"},
	{"KEYWARD_TOKEN", "token"},
	{"KEYWARD_DB", "database"},
	{"KEYWARD_THEME", "theme"},
};

km_status km_config_parse(km_config *c, const char *text, const char *origin, km_err *e)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return km_fail(e, KM_ECONFIG, "%s: line %d column %d: %s", origin, jerr.line,
		               jerr.column, jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return km_fail(e, KM_ECONFIG, "%s: the top level must be a JSON object", origin);
	}
	const char *k;
	json_t *v;
	km_status st = KM_OK;
	json_object_foreach(root, k, v) {
		const struct cfg_key *ck = NULL;
		for (size_t i = 0; i < KM_ARRAY_LEN(cfg_keys); i++)
			if (strcmp(cfg_keys[i].name, k) == 0)
				ck = &cfg_keys[i];
		if (!ck) {
			st = km_fail(e, KM_ECONFIG, "%s: unknown setting \"%s\"", origin, k);
			break;
		}
		char *field = (char *)c + ck->off;
		if (ck->type == CT_MODE) {
			const char *m = json_string_value(v);
			if (m && strcmp(m, "personal") == 0)
				c->mode = KM_MODE_PERSONAL;
			else if (m && strcmp(m, "system") == 0)
				c->mode = KM_MODE_SYSTEM;
			else {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" must be %s", origin, k, ck->help);
				break;
			}
		} else if (ck->type == CT_PATH || ck->type == CT_STRING) {
			if (!json_is_string(v) || json_string_length(v) == 0) {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" must be a non-empty string (%s)", origin, k, ck->help);
				break;
			}
			if (ck->type == CT_PATH) {
				st = set_path(field, ck->cap, c->home, json_string_value(v), k, e);
				if (st)
					break;
			} else if (json_string_length(v) >= ck->cap) {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" is too long", origin, k);
				break;
			} else {
				snprintf(field, ck->cap, "%s", json_string_value(v));
			}
		} else if (ck->type == CT_POS_INT) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
			    (ck->width == 4 && json_integer_value(v) > UINT32_MAX)) {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" must be a positive integer (%s)", origin, k, ck->help);
				break;
			}
			if (ck->width == 4) {
				uint32_t x = (uint32_t)json_integer_value(v);
				memcpy(field, &x, sizeof x);
			} else {
				uint64_t x = (uint64_t)json_integer_value(v);
				memcpy(field, &x, sizeof x);
			}
		} else if (ck->type == CT_SINKS) {
			km_sink sinks[KM_SINKS_MAX];
			size_t ns;
			if ((st = km_sinks_parse(v, c->home, origin, sinks, KM_SINKS_MAX, &ns, e)))
				break;
			json_decref(c->audit_sinks);
			c->audit_sinks = json_incref(v);
		} else if (ck->type == CT_ANOMALY) {
			km_anomaly_config ac;
			if ((st = km_anomaly_config_parse(v, &ac, e))) {
				km_wrap(e, "%s", origin);
				break;
			}
			json_decref(c->anomaly);
			c->anomaly = json_incref(v);
		} else if (ck->type == CT_LINEAGE) {
			if (!json_is_array(v)) {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" must be an array (%s)", origin, k, ck->help);
				break;
			}
			for (size_t i = 0; !st && i < json_array_size(v); i++)
				st = lineage_rule_check(origin, i, json_array_get(v, i), e);
			if (st)
				break;
			json_decref(c->lineage_mappings);
			c->lineage_mappings = json_incref(v);
		} else {
			if (!json_is_object(v)) {
				st = km_fail(e, KM_ECONFIG, "%s: \"%s\" must be an object (%s)", origin, k, ck->help);
				break;
			}
			json_decref(c->keys);
			c->keys = json_incref(v);
		}
	}
	json_decref(root);
	return st;
}

km_status km_config_env_overrides(km_config *c, km_err *e)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(env_keys); i++) {
		const char *v = km_config_env(env_keys[i].var);
		if (!v)
			continue;
		const struct cfg_key *ck = NULL;
		for (size_t j = 0; j < KM_ARRAY_LEN(cfg_keys); j++)
			if (strcmp(cfg_keys[j].name, env_keys[i].setting) == 0)
				ck = &cfg_keys[j];
		char *field = (char *)c + ck->off;
		if (ck->type == CT_PATH) {
			km_status st = set_path(field, ck->cap, c->home, v, env_keys[i].var, e);
			if (st)
				return st;
		} else if (strlen(v) >= ck->cap) {
			return km_fail(e, KM_ECONFIG, "%s is too long", env_keys[i].var);
		} else {
			snprintf(field, ck->cap, "%s", v);
		}
	}
	return KM_OK;
}

km_status km_config_load(km_config *c, const char *home_opt, km_err *e)
{
	char home[PATH_MAX];
	km_status st = km_config_home(home_opt, home, sizeof home, e);
	if (st)
		return st;
	km_config_defaults(c, home);

	FILE *f = fopen(c->config_path, "r");
	if (!f) {
		if (errno == ENOENT)
			return km_fail(e, KM_ECONFIG, "no deployment at %s (no config.json): run `keyward init` "
			               "or set KEYWARD_HOME", home);
		return km_fail(e, KM_ECONFIG, "cannot read %s: %s", c->config_path, strerror(errno));
	}
	char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	int toolong = !feof(f);
	fclose(f);
	if (toolong)
		return km_fail(e, KM_ECONFIG, "%s: larger than 64 KiB", c->config_path);
	buf[n] = '\0';
	st = km_config_parse(c, buf, c->config_path, e);
	if (st)
		return st;
	if (km_process_privileged() && c->mode != KM_MODE_SYSTEM)
		return km_fail(e, KM_ECONFIG, "%s is not a system deployment (\"mode\": \"system\"), "
		               "but this keyward runs set-user-ID for one", c->config_path);
	return km_config_env_overrides(c, e);
}

/* Paths under the home are saved relative, so a deployment directory can be
 * moved or copied as a whole. */
static void put_path(json_t *o, const char *key, const char *home, const char *path)
{
	if (!path[0])
		return;
	size_t hl = strlen(home);
	if (strncmp(path, home, hl) == 0 && path[hl] == '/')
		path += hl + 1;
	json_object_set_new(o, key, json_string(path));
}

km_status km_config_save(const km_config *c, km_err *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "mode", json_string(c->mode == KM_MODE_SYSTEM ? "system" : "personal"));
	if (c->default_user[0])
		json_object_set_new(o, "default_user", json_string(c->default_user));
	json_object_set_new(o, "argon2_t", json_integer(c->argon2_t));
	json_object_set_new(o, "argon2_m_kib", json_integer(c->argon2_m_kib));
	json_object_set_new(o, "lockout_failures", json_integer(c->lockout_failures));
	json_object_set_new(o, "lockout_seconds", json_integer((json_int_t)c->lockout_seconds));
	put_path(o, "pkcs11_module", c->home, c->module_path);
	json_object_set_new(o, "token", json_string(c->token));
	put_path(o, "database", c->home, c->db_path);
	put_path(o, "pin_file", c->home, c->pin_file);
	put_path(o, "softhsm2_conf", c->home, c->softhsm2_conf);
	if (c->theme[0])
		json_object_set_new(o, "theme", json_string(c->theme));
	json_object_set_new(o, "kek_max_wraps", json_integer((json_int_t)c->kek_max_wraps));
	json_object_set_new(o, "rotation_days", json_integer((json_int_t)c->rotation_days));
	json_object_set_new(o, "destroy_wait_seconds", json_integer((json_int_t)c->destroy_wait_s));
	json_object_set_new(o, "job_batch", json_integer((json_int_t)c->job_batch));
	json_object_set_new(o, "cache_max_age_seconds", json_integer((json_int_t)c->cache_max_age_s));
	json_object_set_new(o, "cache_max_uses", json_integer((json_int_t)c->cache_max_uses));
	json_object_set_new(o, "cache_max_bytes", json_integer((json_int_t)c->cache_max_bytes));
	json_object_set_new(o, "cache_max_entries", json_integer((json_int_t)c->cache_max_entries));
	if (c->keys)
		json_object_set(o, "keys", c->keys);
	if (c->lineage_mappings)
		json_object_set(o, "lineage_mappings", c->lineage_mappings);
	if (c->audit_sinks)
		json_object_set(o, "audit_sinks", c->audit_sinks);
	if (c->anomaly)
		json_object_set(o, "anomaly", c->anomaly);
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (!text)
		return km_fail(e, KM_ENOMEM, "cannot serialise config.json");

	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s.tmp", c->config_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	km_status st = KM_OK;
	if (fd < 0) {
		st = km_fail(e, KM_EIO, "cannot write %s: %s", tmp, strerror(errno));
	} else {
		size_t len = strlen(text);
		ssize_t w = write(fd, text, len);
		if (w != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
			st = km_fail(e, KM_EIO, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		if (!st && rename(tmp, c->config_path) != 0)
			st = km_fail(e, KM_EIO, "cannot rename %s: %s", tmp, strerror(errno));
		if (st)
			unlink(tmp);
	}
	free(text);
	return st;
}

void km_config_free(km_config *c)
{
	if (c) {
		json_decref(c->keys);
		c->keys = NULL;
		json_decref(c->lineage_mappings);
		c->lineage_mappings = NULL;
		json_decref(c->audit_sinks);
		c->audit_sinks = NULL;
		json_decref(c->anomaly);
		c->anomaly = NULL;
	}
}
