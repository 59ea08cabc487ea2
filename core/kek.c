/*
 * kek.c — KEKs: creation, tags and the inventory.  Rotation and state
 * changes are requests (request.h) applied by lifecycle.c.
 *
 * Each change: validate, authorise, do the HSM work outside the write lock
 * (key generation), then one transaction holding the catalogue change, its
 * audit event and the signed tree head.
 */
#include "kek.h"
#include "kek_int.h"
#include "db.h"
#include "hsm.h"
#include "rowmac.h"
#include "schedule_int.h"
#include "secmem.h"
#include "text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation -------------------------------------------------------- */

static int name_char_ok(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

km_status km_key_name_validate(const char *name, km_err *e)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0)
		return km_fail(e, KM_EINVAL, "key name is empty");
	if (n > KM_KEY_NAME_MAX)
		return km_fail(e, KM_EINVAL, "key name is %zu characters long; the limit is %d", n, KM_KEY_NAME_MAX);
	if (name[0] == '/' || name[n - 1] == '/')
		return km_fail(e, KM_EINVAL, "key name '%s' must not start or end with '/'", name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/') {
			if (name[i + 1] == '/')
				return km_fail(e, KM_EINVAL, "key name '%s' has an empty segment at position %zu", name, i + 1);
			continue;
		}
		if (!name_char_ok(c))
			return km_fail(e, KM_EINVAL, "key name '%s': character %zu ('%c') is not allowed; use "
			               "a-z, 0-9, '.', '_', '-' and '/' between segments", name, i + 1,
			               isprint(c) ? c : '?');
		if (c == '.' && (i == 0 || name[i - 1] == '/') && (name[i + 1] == '/' || name[i + 1] == '\0' ||
		                                                   (name[i + 1] == '.' && (name[i + 2] == '/' || name[i + 2] == '\0'))))
			return km_fail(e, KM_EINVAL, "key name '%s': '.' and '..' are not segment names", name);
	}
	return KM_OK;
}

km_status km_tag_parse(const char *kv, char key[KM_TAG_KEY_MAX + 1],
                       char value[KM_TAG_VALUE_MAX + 1], km_err *e)
{
	const char *eq = kv ? strchr(kv, '=') : NULL;
	if (!eq)
		return km_fail(e, KM_EINVAL, "tag '%s' must be written key=value", kv ? kv : "");
	size_t kl = (size_t)(eq - kv), vl = strlen(eq + 1);
	if (kl == 0 || kl > KM_TAG_KEY_MAX)
		return km_fail(e, KM_EINVAL, "tag '%s': the key must be 1 to %d characters", kv, KM_TAG_KEY_MAX);
	for (size_t i = 0; i < kl; i++)
		if (!name_char_ok((unsigned char)kv[i]))
			return km_fail(e, KM_EINVAL, "tag '%s': key character '%c' is not allowed (a-z 0-9 . _ -)",
			               kv, isprint((unsigned char)kv[i]) ? kv[i] : '?');
	if (vl > KM_TAG_VALUE_MAX)
		return km_fail(e, KM_EINVAL, "tag '%.*s': the value is longer than %d bytes", (int)kl, kv, KM_TAG_VALUE_MAX);
	/* Shown on terminals later: no C0/C1/bidi control, only UTF-8 (text.h). */
	char what[KM_TAG_KEY_MAX + 24];
	snprintf(what, sizeof what, "tag '%.*s': the value", (int)kl, kv);
	km_status st = km_text_check(eq + 1, what, e);
	if (st)
		return st;
	memcpy(key, kv, kl);
	key[kl] = '\0';
	memcpy(value, eq + 1, vl + 1);
	return KM_OK;
}

static km_status tags_validate(const km_tag *tags, size_t n, km_err *e)
{
	for (size_t i = 0; i < n; i++) {
		char buf[KM_TAG_KEY_MAX + KM_TAG_VALUE_MAX + 2], k[KM_TAG_KEY_MAX + 1], v[KM_TAG_VALUE_MAX + 1];
		snprintf(buf, sizeof buf, "%s=%s", tags[i].key, tags[i].value);
		km_status st = km_tag_parse(buf, k, v, e);
		if (st)
			return st;
	}
	return KM_OK;
}

/* ---- internal lookups -------------------------------------------------- */

km_status kek_lookup_id(km_ctx *ctx, const char *name, int64_t *id, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT id FROM keys WHERE name = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(q, 0);
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no key named '%s'", name);
	else
		st = km_db_fail(ctx->db, e, "reading keys");
	sqlite3_finalize(q);
	return st;
}

/* The sealed fields of a version, with its key's name so that swapping
 * key names in the keys table breaks the seal. */
#define KV_COLS "k.name, v.version, v.state, v.wrapped, v.created, v.activated, v.deactivated, " \
	"v.destroy_after, v.destroyed, v.retired, v.wraps, v.mac"
#define KV_COL_RETIRED 9
#define KV_COL_WRAPS 10
#define KV_COL_MAC 11
#define KV_FROM " FROM key_versions v JOIN keys k ON k.id = v.key_id "

static json_t *kv_fields(sqlite3_stmt *q)
{
	return json_pack("[s,I,s,o,I,I,I,I,I,I,I]", (const char *)sqlite3_column_text(q, 0),
	                 (json_int_t)sqlite3_column_int64(q, 1), (const char *)sqlite3_column_text(q, 2),
	                 km_rowmac_blob(sqlite3_column_blob(q, 3), (size_t)sqlite3_column_bytes(q, 3)),
	                 (json_int_t)sqlite3_column_int64(q, 4), (json_int_t)sqlite3_column_int64(q, 5),
	                 (json_int_t)sqlite3_column_int64(q, 6), (json_int_t)sqlite3_column_int64(q, 7),
	                 (json_int_t)sqlite3_column_int64(q, 8), (json_int_t)sqlite3_column_int64(q, 9),
	                 (json_int_t)sqlite3_column_int64(q, 10));
}

km_status kek_version_load(km_ctx *ctx, const char *name, uint32_t version,
                           kek_version_row *row, km_err *e)
{
	memset(row, 0, sizeof *row);
	km_status st = kek_lookup_id(ctx, name, &row->key_id, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	st = km_db_prepare(ctx->db, version ?
	                   "SELECT " KV_COLS KV_FROM "WHERE v.key_id = ? AND v.version = ?" :
	                   "SELECT " KV_COLS KV_FROM "WHERE v.key_id = ? AND v.state = 'active' "
	                   "ORDER BY v.version DESC LIMIT 1", &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, row->key_id);
	if (version)
		sqlite3_bind_int64(q, 2, version);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		row->version = (uint32_t)sqlite3_column_int64(q, 1);
		char what[KM_KEY_NAME_MAX + 32];
		snprintf(what, sizeof what, "'%s' version %u", name, row->version);
		st = km_rowmac_check(ctx, "key_versions", what, kv_fields(q), sqlite3_column_blob(q, KV_COL_MAC),
		                     (size_t)sqlite3_column_bytes(q, KV_COL_MAC), e);
		if (!st)
			st = km_state_parse((const char *)sqlite3_column_text(q, 2), &row->state, e);
		int len = sqlite3_column_bytes(q, 3);
		if (!st && len > 0 && (size_t)len <= sizeof row->wrapped) {
			memcpy(row->wrapped, sqlite3_column_blob(q, 3), (size_t)len);
			row->wrapped_len = (size_t)len;
		}
		row->wraps = (uint64_t)sqlite3_column_int64(q, KV_COL_WRAPS);
		row->retired = sqlite3_column_int64(q, KV_COL_RETIRED);
	} else if (rc == SQLITE_DONE) {
		st = version ? km_fail(e, KM_ENOTFOUND, "key '%s' has no version %u", name, version)
		             : km_fail(e, KM_ESTATE, "key '%s' has no active version: rotate it to make one", name);
	} else {
		st = km_db_fail(ctx->db, e, "reading key versions");
	}
	sqlite3_finalize(q);
	return st;
}

static void kv_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s' version %lld", (const char *)sqlite3_column_text(q, 0),
	         (long long)sqlite3_column_int64(q, 1));
}

static void kv_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s@%lld", (const char *)sqlite3_column_text(q, 0),
	         (long long)sqlite3_column_int64(q, 1));
}

/* What events record of a version: every sealed field but the wraps. */
static json_t *kv_recorded_fields(sqlite3_stmt *q)
{
	json_t *f = kv_fields(q);
	json_array_remove(f, json_array_size(f) - 1);
	return f;
}

km_status kek_versions_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                              char *problem, size_t cap, km_err *e)
{
	static const km_rowmac_table t = {
		"key_versions", "SELECT " KV_COLS KV_FROM "ORDER BY v.key_id, v.version", kv_fields, kv_name, KV_COL_MAC,
		kv_key, kv_recorded_fields,
	};
	return km_rowmac_scan(ctx, &t, recorded, checked, bad, problem, cap, e);
}

km_status kek_version_seal(km_ctx *ctx, int64_t key_id, uint32_t version, json_t *details, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT " KV_COLS KV_FROM "WHERE v.key_id = ? AND v.version = ?",
	                             &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	sqlite3_bind_int64(q, 2, version);
	uint8_t mac[KM_ROWMAC_BYTES];
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		if (details) {
			char key[KM_KEY_NAME_MAX + 32], digest[65];
			json_t *f = kv_recorded_fields(q);
			kv_key(q, key, sizeof key);
			km_rowmac_digest(ctx, "key_versions", f, digest);
			json_decref(f);
			km_sealed_note(details, "key_versions", key, digest);
		}
		st = km_rowmac(ctx, "key_versions", kv_fields(q), mac, e);
	} else {
		st = rc == SQLITE_DONE ? km_fail(e, KM_EINTERNAL, "sealing a version that does not exist")
		                       : km_db_fail(ctx->db, e, "reading key versions");
	}
	sqlite3_finalize(q);
	if (st)
		return st;
	if ((st = km_db_prepare(ctx->db, "UPDATE key_versions SET mac = ? WHERE key_id = ? AND version = ?", &q, e)))
		return st;
	sqlite3_bind_blob(q, 1, mac, sizeof mac, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, key_id);
	sqlite3_bind_int64(q, 3, version);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "sealing a key version");
	sqlite3_finalize(q);
	return st;
}

km_status kek_material(km_ctx *ctx, const kek_version_row *row, const uint8_t **key, km_err *e)
{
	const uint8_t *k = kek_cache_get(ctx->cache, row->key_id, row->version);
	if (k) {
		*key = k;
		return KM_OK;
	}
	if (row->wrapped_len == 0)
		return km_fail(e, KM_ESTATE, "version %u has no key material (destroyed)", row->version);
	uint8_t *plain = km_secure_alloc(HSM_KEK_BYTES);
	if (!plain)
		return km_fail(e, KM_ENOMEM, "locked memory exhausted");
	km_status st = hsm_kek_unwrap(ctx->h, row->wrapped, row->wrapped_len, plain, e);
	if (st) {
		km_secure_free(plain, HSM_KEK_BYTES);
		return st;
	}
	*key = kek_cache_put(ctx->cache, row->key_id, row->version, plain);
	return KM_OK;
}

km_status kek_summary_refresh(km_ctx *ctx, int64_t key_id, km_err *e)
{
	/* Current = the active version, else the newest one. */
	static const char sql[] =
		"WITH cur AS (SELECT version, state, created FROM key_versions WHERE key_id = ?1 "
		"             ORDER BY (state = 'active') DESC, version DESC LIMIT 1) "
		"UPDATE keys SET cur_version = coalesce((SELECT version FROM cur), 0),"
		" cur_state = coalesce((SELECT state FROM cur), 'pending'),"
		" cur_created = coalesce((SELECT created FROM cur), 0),"
		" assets = (SELECT coalesce(sum(assets), 0) FROM key_versions WHERE key_id = ?1),"
		" last_used = (SELECT coalesce(max(last_used), 0) FROM key_versions WHERE key_id = ?1) "
		"WHERE id = ?1";
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, sql, &q, e);
	if (st)
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "updating the key summary");
	sqlite3_finalize(q);
	/* The schedule columns follow the versions in the same transaction. */
	return st ? st : schedule_key_refresh(ctx, key_id, e);
}

km_status kek_version_insert(km_ctx *ctx, int64_t key_id, uint32_t version,
                             const uint8_t *wrapped, size_t wlen, json_t *details, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "INSERT INTO key_versions(key_id, version, state, wrapped, "
	                             "created, activated) VALUES(?, ?, 'active', ?, ?, ?)", &q, e);
	if (st)
		return st;
	int64_t now = km_ctx_now(ctx);
	sqlite3_bind_int64(q, 1, key_id);
	sqlite3_bind_int64(q, 2, version);
	sqlite3_bind_blob(q, 3, wrapped, (int)wlen, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_int64(q, 5, now);
	if (sqlite3_step(q) != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "adding a key version");
	sqlite3_finalize(q);
	return st ? st : kek_version_seal(ctx, key_id, version, details, e);
}

static km_status set_tags(km_ctx *ctx, int64_t key_id, const km_tag *tags, size_t n,
                          json_t *set, json_t *removed, km_err *e)
{
	sqlite3_stmt *up = NULL, *del = NULL;
	km_status st = km_db_prepare(ctx->db, "INSERT INTO key_tags(key_id, tag, value) VALUES(?, ?, ?) "
	                             "ON CONFLICT(key_id, tag) DO UPDATE SET value = excluded.value", &up, e);
	if (!st)
		st = km_db_prepare(ctx->db, "DELETE FROM key_tags WHERE key_id = ? AND tag = ?", &del, e);
	for (size_t i = 0; !st && i < n; i++) {
		sqlite3_stmt *q = tags[i].value[0] ? up : del;
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, key_id);
		sqlite3_bind_text(q, 2, tags[i].key, -1, SQLITE_STATIC);
		if (tags[i].value[0]) {
			sqlite3_bind_text(q, 3, tags[i].value, -1, SQLITE_STATIC);
			json_object_set_new(set, tags[i].key, json_string(tags[i].value));
		} else {
			json_array_append_new(removed, json_string(tags[i].key));
		}
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_db_fail(ctx->db, e, "writing tags");
	}
	sqlite3_finalize(up);
	sqlite3_finalize(del);
	return st;
}

static void key_object(char *buf, size_t cap, const char *name, uint32_t version)
{
	if (version)
		snprintf(buf, cap, "key:%s@%u", name, version);
	else
		snprintf(buf, cap, "key:%s", name);
}

/* ---- changes ----------------------------------------------------------- */

/* Inside the caller's transaction: a KEK generated in the HSM, its row,
 * version 1 active, its tags, the summary and the audit event.  q is the
 * prepared "INSERT INTO keys" statement, reused by bulk creation. */
static km_status insert_new_key(km_ctx *ctx, sqlite3_stmt *q, const char *name, const km_tag *tags,
                                size_t ntags, km_err *e)
{
	uint8_t wrapped[HSM_WRAPPED_KEK_MAX];
	size_t wlen = 0;
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	km_status st = hsm_kek_generate(ctx->h, wrapped, sizeof wrapped, &wlen, e);
	if (st)
		return st;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, km_ctx_now(ctx));
	sqlite3_bind_text(q, 3, ctx->actor.name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc == SQLITE_CONSTRAINT)
		return km_fail(e, KM_EEXISTS, "a key named '%s' exists already", name);
	if (rc != SQLITE_DONE)
		return km_db_fail(ctx->db, e, "creating the key");
	int64_t id = sqlite3_last_insert_rowid(ctx->db);
	json_t *set = json_object(), *removed = json_array();
	json_t *d = json_pack("{s:i,s:s}", "version", 1, "state", "active");
	st = kek_version_insert(ctx, id, 1, wrapped, wlen, d, e);
	if (!st)
		st = set_tags(ctx, id, tags, ntags, set, removed, e);
	if (!st)
		st = kek_summary_refresh(ctx, id, e);
	json_decref(removed);
	json_object_set_new(d, "tags", set);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_KEY_CREATE), obj, "ok", d, e);
	else
		json_decref(d);
	return st;
}

#define INSERT_KEY_SQL "INSERT INTO keys(name, created, created_by) VALUES(?, ?, ?)"

/* Validated and authorised: create the keys in one transaction. */
static km_status km_key_create_bulk_authorised(km_ctx *ctx, const char *const *names, size_t n,
                                               const km_tag *tags, size_t ntags, km_err *e)
{
	km_status st = km_tx_begin(ctx, e);
	if (st)
		return st;
	sqlite3_stmt *q = NULL;
	st = km_db_prepare(ctx->db, INSERT_KEY_SQL, &q, e);
	for (size_t i = 0; !st && i < n; i++)
		st = insert_new_key(ctx, q, names[i], tags, ntags, e);
	sqlite3_finalize(q);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

static km_status key_create_impl(km_ctx *ctx, const char *name, const km_tag *tags, size_t ntags, km_err *e)
{
	km_status st = km_key_name_validate(name, e);
	if (!st)
		st = tags_validate(tags, ntags, e);
	if (st)
		return st;
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	if ((st = km_authorize(ctx, KM_ACT_KEY_CREATE, obj, e)))
		return st;
	return km_key_create_bulk_authorised(ctx, &name, 1, tags, ntags, e);
}

km_status km_key_create(km_ctx *ctx, const char *name, const km_tag *tags, size_t ntags, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_object(obj, sizeof obj, name ? name : "", 0);
	km_op_begin(ctx, KM_ACT_KEY_CREATE, obj);
	return km_op_end(ctx, key_create_impl(ctx, name, tags, ntags, e), e);
}

static km_status key_create_bulk_impl(km_ctx *ctx, const char *const *names, size_t n,
                             const km_tag *tags, size_t ntags, km_err *e)
{
	km_status st = tags_validate(tags, ntags, e);
	for (size_t i = 0; !st && i < n; i++)
		st = km_key_name_validate(names[i], e);
	if (st)
		return st;
	if ((st = km_authorize(ctx, KM_ACT_KEY_CREATE, "key:*", e)))
		return st;
	return km_key_create_bulk_authorised(ctx, names, n, tags, ntags, e);
}

km_status km_key_create_bulk(km_ctx *ctx, const char *const *names, size_t n,
                             const km_tag *tags, size_t ntags, km_err *e)
{
	km_op_begin(ctx, KM_ACT_KEY_CREATE, "key:*");
	return km_op_end(ctx, key_create_bulk_impl(ctx, names, n, tags, ntags, e), e);
}

static km_status key_tag_impl(km_ctx *ctx, const char *name, const km_tag *tags, size_t ntags, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	km_status st = tags_validate(tags, ntags, e);
	if (st)
		return st;
	if (ntags == 0)
		return km_fail(e, KM_EUSAGE, "no tags given");
	if ((st = km_authorize(ctx, KM_ACT_KEY_TAG, obj, e)))
		return st;
	if ((st = km_tx_begin(ctx, e)))
		return st;
	int64_t id;
	json_t *set = json_object(), *removed = json_array();
	st = kek_lookup_id(ctx, name, &id, e);
	if (!st)
		st = set_tags(ctx, id, tags, ntags, set, removed, e);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_KEY_TAG), obj, "ok",
		                 json_pack("{s:O,s:O}", "set", set, "removed", removed), e);
	json_decref(set);
	json_decref(removed);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_tx_commit(ctx, e);
}

km_status km_key_tag(km_ctx *ctx, const char *name, const km_tag *tags, size_t ntags, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_object(obj, sizeof obj, name ? name : "", 0);
	km_op_begin(ctx, KM_ACT_KEY_TAG, obj);
	return km_op_end(ctx, key_tag_impl(ctx, name, tags, ntags, e), e);
}

/* ---- reads ------------------------------------------------------------- */

#define KEY_COLS "k.id, k.name, k.cur_version, k.cur_state, k.created, k.cur_created, k.assets, " \
	"k.last_used, k.created_by, (SELECT group_concat(tag || '=' || value, ', ') FROM " \
	"(SELECT tag, value FROM key_tags WHERE key_id = k.id ORDER BY tag))"

static void key_row(sqlite3_stmt *q, km_key_info *k)
{
	memset(k, 0, sizeof *k);
	k->id = sqlite3_column_int64(q, 0);
	snprintf(k->name, sizeof k->name, "%s", (const char *)sqlite3_column_text(q, 1));
	k->current_version = (uint32_t)sqlite3_column_int64(q, 2);
	km_err ignored;
	if (km_state_parse((const char *)sqlite3_column_text(q, 3), &k->current_state, &ignored))
		k->current_state = KS_PENDING;
	k->created = sqlite3_column_int64(q, 4);
	k->current_created = sqlite3_column_int64(q, 5);
	k->assets = (uint64_t)sqlite3_column_int64(q, 6);
	k->last_used = sqlite3_column_int64(q, 7);
	snprintf(k->created_by, sizeof k->created_by, "%s", (const char *)sqlite3_column_text(q, 8));
	const unsigned char *tags = sqlite3_column_text(q, 9);
	snprintf(k->tags, sizeof k->tags, "%s", tags ? (const char *)tags : "");
}

static km_status key_get_impl(km_ctx *ctx, const char *name, km_key_info *out, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, obj, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT " KEY_COLS " FROM keys k WHERE k.name = ?", &q, e)))
		return st;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		key_row(q, out);
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no key named '%s'", name);
	else
		st = km_db_fail(ctx->db, e, "reading the key");
	sqlite3_finalize(q);
	return st;
}

km_status km_key_get(km_ctx *ctx, const char *name, km_key_info *out, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_object(obj, sizeof obj, name ? name : "", 0);
	km_op_begin(ctx, KM_ACT_KEY_READ, obj);
	return km_op_end(ctx, key_get_impl(ctx, name, out, e), e);
}

static km_status key_versions_impl(km_ctx *ctx, const char *name,
                          int (*cb)(void *c, const km_key_version_info *v), void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, obj, e);
	int64_t id;
	if (st || (st = kek_lookup_id(ctx, name, &id, e)))
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT version, state, created, activated, deactivated, destroy_after, "
	                        "destroyed, wraps, assets, last_used FROM key_versions WHERE key_id = ? "
	                        "ORDER BY version DESC", &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, id);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_key_version_info v = {0};
		km_err ignored;
		v.version = (uint32_t)sqlite3_column_int64(q, 0);
		km_state_parse((const char *)sqlite3_column_text(q, 1), &v.state, &ignored);
		v.created = sqlite3_column_int64(q, 2);
		v.activated = sqlite3_column_int64(q, 3);
		v.deactivated = sqlite3_column_int64(q, 4);
		v.destroy_after = sqlite3_column_int64(q, 5);
		v.destroyed = sqlite3_column_int64(q, 6);
		v.wraps = (uint64_t)sqlite3_column_int64(q, 7);
		v.assets = (uint64_t)sqlite3_column_int64(q, 8);
		v.last_used = sqlite3_column_int64(q, 9);
		if (cb(cbctx, &v))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading versions");
	sqlite3_finalize(q);
	return st;
}

km_status km_key_versions(km_ctx *ctx, const char *name,
                          int (*cb)(void *c, const km_key_version_info *v), void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_object(obj, sizeof obj, name ? name : "", 0);
	km_op_begin(ctx, KM_ACT_KEY_READ, obj);
	return km_op_end(ctx, key_versions_impl(ctx, name, cb, cbctx, e), e);
}

static km_status key_tags_impl(km_ctx *ctx, const char *name, int (*cb)(void *c, const km_tag *t),
                      void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 16];
	key_object(obj, sizeof obj, name, 0);
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, obj, e);
	int64_t id;
	if (st || (st = kek_lookup_id(ctx, name, &id, e)))
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT tag, value FROM key_tags WHERE key_id = ? ORDER BY tag", &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, id);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_tag t;
		snprintf(t.key, sizeof t.key, "%s", (const char *)sqlite3_column_text(q, 0));
		snprintf(t.value, sizeof t.value, "%s", (const char *)sqlite3_column_text(q, 1));
		if (cb(cbctx, &t))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading tags");
	sqlite3_finalize(q);
	return st;
}

km_status km_key_tags(km_ctx *ctx, const char *name, int (*cb)(void *c, const km_tag *t),
                      void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	key_object(obj, sizeof obj, name ? name : "", 0);
	km_op_begin(ctx, KM_ACT_KEY_READ, obj);
	return km_op_end(ctx, key_tags_impl(ctx, name, cb, cbctx, e), e);
}

/* Sort columns: the SQL expression, and whether "ascending" for the user
 * means descending in the column (age: youngest first). */
static const struct {
	const char *name, *col;
	int invert;
} key_sorts[KM_KEY_SORT_COUNT] = {
	[KM_KEY_SORT_NAME] = {"name", "k.name", 0},
	[KM_KEY_SORT_VERSION] = {"version", "k.cur_version", 0},
	[KM_KEY_SORT_STATE] = {"state", "k.cur_state", 0},
	[KM_KEY_SORT_AGE] = {"age", "k.cur_created", 1},
	[KM_KEY_SORT_ASSETS] = {"assets", "k.assets", 0},
	[KM_KEY_SORT_LAST_USE] = {"last-use", "k.last_used", 1},
};

const char *km_key_sort_name(km_key_sort s)
{
	return (unsigned)s < KM_KEY_SORT_COUNT ? key_sorts[s].name : "name";
}

/* WHERE clause for a filter; binds start at ?10. */
static const char *filter_sql(const char *f, char *tag, size_t tcap, char *val, size_t vcap, char *like, size_t lcap)
{
	if (!f || !*f)
		return "1";
	const char *colon = strchr(f, ':');
	if (colon) {
		snprintf(tag, tcap, "%.*s", (int)(colon - f), f);
		snprintf(val, vcap, "%s", colon + 1);
		return "EXISTS (SELECT 1 FROM key_tags t WHERE t.key_id = k.id AND t.tag = ?10 AND t.value = ?11)";
	}
	size_t j = 0;
	like[j++] = '%';
	for (const char *p = f; *p && j + 3 < lcap; p++) {
		if (*p == '%' || *p == '_' || *p == '\\')
			like[j++] = '\\';
		like[j++] = *p;
	}
	like[j++] = '%';
	like[j] = '\0';
	return "k.name LIKE ?12 ESCAPE '\\'";
}

static void bind_filter(sqlite3_stmt *q, const char *tag, const char *val, const char *like)
{
	if (tag[0]) {
		sqlite3_bind_text(q, 10, tag, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 11, val, -1, SQLITE_TRANSIENT);
	}
	if (like[0])
		sqlite3_bind_text(q, 12, like, -1, SQLITE_TRANSIENT);
}

static km_status key_count_impl(km_ctx *ctx, const char *filter, uint64_t *n, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, "", e);
	if (st)
		return st;
	char tag[KM_TAG_KEY_MAX + 1] = "", val[KM_TAG_VALUE_MAX + 1] = "", like[2 * KM_KEY_NAME_MAX + 8] = "";
	char sql[512];
	if (!filter || !*filter)
		return km_db_int64(ctx->db, "SELECT n FROM counts WHERE name = 'keys'", (int64_t *)n, e);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM keys k WHERE %s LIMIT %d)",
	         filter_sql(filter, tag, sizeof tag, val, sizeof val, like, sizeof like), KM_KEY_COUNT_CAP + 1);
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, sql, &q, e)))
		return st;
	bind_filter(q, tag, val, like);
	if (sqlite3_step(q) == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(q, 0);
	else
		st = km_db_fail(ctx->db, e, "counting keys");
	sqlite3_finalize(q);
	return st;
}

km_status km_key_count(km_ctx *ctx, const char *filter, uint64_t *n, km_err *e)
{
	km_op_begin(ctx, KM_ACT_KEY_READ, "key:*");
	return km_op_end(ctx, key_count_impl(ctx, filter, n, e), e);
}

static km_status key_list_impl(km_ctx *ctx, const km_key_query *qy,
                      int (*cb)(void *c, const km_key_info *k), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_KEY_READ, "", e);
	if (st)
		return st;
	km_key_sort s = (unsigned)qy->sort < KM_KEY_SORT_COUNT ? qy->sort : KM_KEY_SORT_NAME;
	/* Effective SQL direction: user's choice, inverted for age-like
	 * columns, flipped again when paging backwards. */
	int desc = (qy->descending != 0) ^ key_sorts[s].invert ^ (qy->backwards != 0);
	char tag[KM_TAG_KEY_MAX + 1] = "", val[KM_TAG_VALUE_MAX + 1] = "", like[2 * KM_KEY_NAME_MAX + 8] = "";
	const char *where = filter_sql(qy->filter, tag, sizeof tag, val, sizeof val, like, sizeof like);
	char cursor[160] = "";
	if (qy->cursor) {
		if (s == KM_KEY_SORT_NAME)
			snprintf(cursor, sizeof cursor, " AND k.name %s ?2", desc ? "<" : ">");
		else
			snprintf(cursor, sizeof cursor, " AND (%s, k.name) %s (?1, ?2)", key_sorts[s].col, desc ? "<" : ">");
	}
	char sql[1024];
	if (s == KM_KEY_SORT_NAME)
		snprintf(sql, sizeof sql, "SELECT " KEY_COLS " FROM keys k WHERE %s%s ORDER BY k.name %s LIMIT ?3",
		         where, cursor, desc ? "DESC" : "ASC");
	else
		snprintf(sql, sizeof sql, "SELECT " KEY_COLS " FROM keys k WHERE %s%s ORDER BY %s %s, k.name %s LIMIT ?3",
		         where, cursor, key_sorts[s].col, desc ? "DESC" : "ASC", desc ? "DESC" : "ASC");
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, sql, &q, e)))
		return st;
	if (qy->cursor) {
		const km_key_info *c = qy->cursor;
		switch (s) {
		case KM_KEY_SORT_VERSION: sqlite3_bind_int64(q, 1, c->current_version); break;
		case KM_KEY_SORT_STATE: sqlite3_bind_text(q, 1, km_state_name(c->current_state), -1, SQLITE_STATIC); break;
		case KM_KEY_SORT_AGE: sqlite3_bind_int64(q, 1, c->current_created); break;
		case KM_KEY_SORT_ASSETS: sqlite3_bind_int64(q, 1, (int64_t)c->assets); break;
		case KM_KEY_SORT_LAST_USE: sqlite3_bind_int64(q, 1, c->last_used); break;
		default: break;
		}
		sqlite3_bind_text(q, 2, c->name, -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int(q, 3, qy->limit > 0 ? qy->limit : 100);
	bind_filter(q, tag, val, like);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_key_info k;
		key_row(q, &k);
		if (cb(cbctx, &k))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing keys");
	sqlite3_finalize(q);
	return st;
}

km_status km_key_list(km_ctx *ctx, const km_key_query *qy,
                      int (*cb)(void *c, const km_key_info *k), void *cbctx, km_err *e)
{
	km_op_begin(ctx, KM_ACT_KEY_READ, "key:*");
	return km_op_end(ctx, key_list_impl(ctx, qy, cb, cbctx, e), e);
}
