/*
 * asset.c — protect, unprotect and the asset catalogue.
 *
 * Order of protect, and why:
 *   1. authorise; load the active version;
 *   2. DEK generated and wrapped in locked memory;
 *   3. reserve one wrap on its durable counter (own transaction), so the
 *      count never undercounts DEKs that exist, even after a crash;
 *   4. one transaction: catalogue row (size -1: being written), counters,
 *      audit event, signed head — before any envelope byte leaves, so the
 *      other end of a pipe can unprotect at once;
 *   5. envelope streamed (to a temp file renamed into place, or the fd),
 *      then the size recorded; on failure the entry is withdrawn, audited.
 * Unprotect audits the key use before any plaintext is released.
 */
#include "asset.h"
#include "kek.h"
#include "kek_int.h"
#include "atomicfile.h"
#include "db.h"
#include "envelope.h"
#include "secmem.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

km_status km_asset_spec_parse(const char *spec, char kind[32], char name[256],
                              char version[128], km_err *e)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	if (!colon || colon == spec)
		return km_fail(e, KM_EINVAL, "asset '%s' must be written KIND:NAME[@VERSION], e.g. "
		               "feature:credit-risk/income@7", spec ? spec : "");
	size_t kl = (size_t)(colon - spec);
	if (kl > KM_ASSET_KIND_MAX)
		return km_fail(e, KM_EINVAL, "asset kind '%.*s' is too long", (int)kl, spec);
	memcpy(kind, spec, kl);
	kind[kl] = '\0';
	const char *rest = colon + 1, *at = strrchr(rest, '@');
	size_t nl = at ? (size_t)(at - rest) : strlen(rest);
	if (nl > KM_ASSET_NAME_MAX)
		return km_fail(e, KM_EINVAL, "asset name in '%s' is longer than %d bytes", spec, KM_ASSET_NAME_MAX);
	memcpy(name, rest, nl);
	name[nl] = '\0';
	const char *v = at ? at + 1 : "";
	if (strlen(v) > KM_ASSET_VERSION_MAX)
		return km_fail(e, KM_EINVAL, "asset version in '%s' is longer than %d bytes", spec, KM_ASSET_VERSION_MAX);
	snprintf(version, 128, "%s", v);
	if (!km_asset_kind_valid(kind)) {
		char kinds[128] = "";
		for (size_t i = 0; km_asset_kinds[i]; i++) {
			strncat(kinds, i ? ", " : "", sizeof kinds - strlen(kinds) - 1);
			strncat(kinds, km_asset_kinds[i], sizeof kinds - strlen(kinds) - 1);
		}
		return km_fail(e, KM_EINVAL, "unknown asset kind '%s'; kinds are %s", kind, kinds);
	}
	return KM_OK;
}

/* Count n wraps against the version before any DEK it wraps leaves: in a
 * transaction of its own, through the version's seal (an edited counter
 * is refused, never carried forward), refused past kek_max_wraps. */
static km_status reserve_wraps(km_ctx *ctx, const kek_version_row *row, const char *kek_name,
                               uint64_t n, km_err *e)
{
	km_status st = km_tx_begin(ctx, e);
	if (st)
		return st;
	kek_version_row cur;
	st = kek_version_load(ctx, kek_name, row->version, &cur, e);
	if (!st && cur.key_id != row->key_id)
		st = km_fail(e, KM_ESTATE, "key '%s' changed while in use; try again", kek_name);
	if (!st && !km_state_can_encrypt(cur.state))
		st = km_fail(e, KM_ESTATE, "version %u of key '%s' is %s now: it can no longer encrypt",
		             cur.version, kek_name, km_state_name(cur.state));
	if (!st && cur.wraps + n > ctx->cfg.kek_max_wraps)
		st = km_fail(e, KM_ELIMIT, "version %u of key '%s' has wrapped %llu data keys; the bound is "
		             "%llu (kek_max_wraps, far below the 2^32 random-nonce limit of AES-GCM): rotate "
		             "the key", row->version, kek_name, (unsigned long long)cur.wraps,
		             (unsigned long long)ctx->cfg.kek_max_wraps);
	if (!st) {
		char sql[160];
		snprintf(sql, sizeof sql, "UPDATE key_versions SET wraps = wraps + %llu WHERE key_id = %lld AND version = %u",
		         (unsigned long long)n, (long long)row->key_id, row->version);
		st = km_db_exec(ctx->db, sql, e);
	}
	if (!st)
		st = kek_version_seal(ctx, row->key_id, row->version, NULL, e);
	if (st) {
		km_tx_rollback(ctx);
		return st;
	}
	return km_db_commit(ctx->db, e);
}

/* The catalogue records where protect wrote, as an absolute path: a
 * re-encryption job runs later, from anywhere. */
static km_status absolute_path(const char *path, char *out, size_t cap, km_err *e)
{
	int n;
	if (path[0] == '/') {
		n = snprintf(out, cap, "%s", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return km_fail(e, KM_EIO, "cannot tell the current directory to record %s", path);
		n = snprintf(out, cap, "%s/%s", cwd, path);
	}
	if (n < 0 || (size_t)n >= cap)
		return km_fail(e, KM_EUSAGE, "the output path %s is too long", path);
	return KM_OK;
}

static km_status insert_asset(km_ctx *ctx, sqlite3_stmt *q, const km_asset_ref *ref, int64_t key_id,
                              const uint8_t *wrapped, uint64_t size, const char *path, km_err *e)
{
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, ref->uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, ref->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, ref->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, ref->version, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, key_id);
	sqlite3_bind_int64(q, 6, ref->kek_version);
	sqlite3_bind_blob(q, 7, wrapped, KM_WRAPPED_DEK_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(q, 8, size == UINT64_MAX ? -1 : (int64_t)size);
	sqlite3_bind_int64(q, 9, km_ctx_now(ctx));
	sqlite3_bind_text(q, 10, ctx->actor.name, -1, SQLITE_STATIC);
	if (path)
		sqlite3_bind_text(q, 11, path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 11);
	if (sqlite3_step(q) != SQLITE_DONE)
		return km_db_fail(ctx->db, e, "recording the asset");
	return KM_OK;
}

#define INSERT_ASSET_SQL "INSERT INTO assets(uid, kind, name, version, key_id, kek_version, " \
	"wrapped_dek, size, created, created_by, path) VALUES(?,?,?,?,?,?,?,?,?,?,?)"

static km_status count_use(km_ctx *ctx, int64_t key_id, uint32_t version, uint64_t new_assets, km_err *e)
{
	char sql[200];
	/* new_assets == UINT64_MAX takes one back (a withdrawn protect). */
	snprintf(sql, sizeof sql, "UPDATE key_versions SET assets = assets + %lld, last_used = %lld "
	         "WHERE key_id = %lld AND version = %u", new_assets == UINT64_MAX ? -1LL : (long long)new_assets,
	         (long long)km_ctx_now(ctx), (long long)key_id, version);
	km_status st = km_db_exec(ctx->db, sql, e);
	return st ? st : kek_summary_refresh(ctx, key_id, e);
}

static json_t *asset_details(const km_asset_ref *ref, int64_t id)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:I}", "uid", ref->uid, "kind", ref->kind, "name", ref->name,
	                 "version", ref->version, "asset_id", (json_int_t)id);
}

/* One envelope pass (envelope_encrypt or envelope_decrypt) to out_fd, or
 * to out_path through a temporary file renamed only on success. */
typedef km_status (*envelope_pass_fn)(int in_fd, int out_fd, const envelope_header *h,
                                      const uint8_t *dek, uint64_t *bytes, km_err *e);

static km_status stream_out(envelope_pass_fn pass, int in_fd, int out_fd, const char *out_path,
                            const envelope_header *h, const uint8_t *dek, uint64_t *bytes, km_err *e)
{
	atomicfile af = {-1, NULL, NULL};
	km_status st;
	if (out_path) {
		if ((st = atomicfile_open(out_path, &af, e)))
			return st;
		out_fd = af.fd;
	}
	st = pass(in_fd, out_fd, h, dek, bytes, e);
	if (out_path) {
		if (!st)
			st = atomicfile_commit(&af, e);
		else
			atomicfile_abort(&af);
	}
	return st;
}

/* Withdraw the catalogue entry of a protect that produced nothing usable,
 * recording why; *e is kept for the caller. */
static void protect_withdraw(km_ctx *ctx, const kek_version_row *row, const char *obj,
                             const char *uid, int64_t id, km_err *e)
{
	km_err ignored;
	char sql[160];
	snprintf(sql, sizeof sql, "DELETE FROM assets WHERE id = %lld", (long long)id);
	if (km_tx_begin(ctx, &ignored) != KM_OK)
		return;
	if (km_db_exec(ctx->db, sql, &ignored) == KM_OK &&
	    count_use(ctx, row->key_id, row->version, UINT64_MAX, &ignored) == KM_OK &&
	    km_tx_audit(ctx, km_action_name(KM_ACT_PROTECT), obj, "error",
	                json_pack("{s:s,s:I,s:s}", "uid", uid, "asset_id", (json_int_t)id,
	                          "message", e->msg), &ignored) == KM_OK)
		km_tx_commit(ctx, &ignored);
	else
		km_tx_rollback(ctx);
}

static km_status protect_impl(km_ctx *ctx, const char *key_name, const char *asset_spec, int in_fd,
                              int out_fd, const char *out_path, km_asset_info *out, km_err *e)
{
	char kind[32], name[256], version[128], uid[KM_ASSET_UID_LEN + 1];
	char obj[KM_KEY_NAME_MAX + 32];
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	uint8_t *dek = NULL;
	int64_t id = 0;
	uint64_t size = 0;
	kek_version_row row;
	const uint8_t *kek;
	sqlite3_stmt *q = NULL;
	envelope_header h;
	char abs_out[PATH_MAX] = "";

	assert(ctx && key_name && asset_spec);
	km_status st = km_asset_spec_parse(asset_spec, kind, name, version, e);
	if (!st)
		st = km_key_name_validate(key_name, e);
	if (!st && out_path)
		st = absolute_path(out_path, abs_out, sizeof abs_out, e);
	if (st)
		return st;
	snprintf(obj, sizeof obj, "key:%s", key_name);
	if ((st = km_authorize(ctx, KM_ACT_PROTECT, obj, e)) ||
	    (st = kek_version_load(ctx, key_name, 0, &row, e)))
		return st;
	snprintf(obj, sizeof obj, "key:%s@%u", key_name, row.version);
	snprintf(ctx->op_object, sizeof ctx->op_object, "%s", obj);
	if ((st = km_asset_uid_new(uid, e)))
		return st;
	km_asset_ref ref = {uid, kind, name, version, key_name, row.version};
	if ((st = km_asset_ref_validate(&ref, e)) || (st = kek_material(ctx, &row, &kek, e)))
		return st;

	/* From here on the DEK exists: every path leaves through `out`. */
	if (!(dek = km_secure_alloc(KM_DEK_BYTES)))
		return km_fail(e, KM_ENOMEM, "locked memory exhausted");
	if ((st = dek_generate(dek, e)) || (st = dek_wrap(kek, dek, &ref, wrapped, e)))
		goto out;
	/* The asset exists in the catalogue (size -1: being written) and
	 * its protect event is on record before the first envelope byte
	 * leaves, so a reader at the other end of a pipe can already
	 * unprotect it. */
	if ((st = reserve_wraps(ctx, &row, key_name, 1, e)) || (st = km_tx_begin(ctx, e)))
		goto out;
	st = km_db_prepare(ctx->db, INSERT_ASSET_SQL, &q, e);
	if (!st)
		st = insert_asset(ctx, q, &ref, row.key_id, wrapped, UINT64_MAX, abs_out[0] ? abs_out : NULL, e);
	sqlite3_finalize(q);
	if (!st)
		id = sqlite3_last_insert_rowid(ctx->db);
	if (!st)
		st = count_use(ctx, row.key_id, row.version, 1, e);
	if (!st)
		st = km_tx_audit(ctx, km_action_name(KM_ACT_PROTECT), obj, "ok", asset_details(&ref, id), e);
	if (!st)
		st = km_tx_commit(ctx, e);
	else {
		km_tx_rollback(ctx);
		id = 0;
	}
	if (st)
		goto out;
	if (!(st = envelope_header_init(&h, &ref, wrapped, e))) {
		st = stream_out(envelope_encrypt, in_fd, out_fd, out_path, &h, dek, &size, e);
		/* cache_max_bytes: what passed under this unwrap, finished or not. */
		kek_cache_charge_bytes(ctx->cache, row.key_id, row.version, size);
	}
	if (st) {
		/* Nothing usable was produced: withdraw the catalogue entry. */
		protect_withdraw(ctx, &row, obj, uid, id, e);
		goto out;
	}
	char sql[160];
	snprintf(sql, sizeof sql, "UPDATE assets SET size = %llu WHERE id = %lld", (unsigned long long)size, (long long)id);
	if ((st = km_db_exec(ctx->db, sql, e))) {
		km_wrap(e, "the envelope is complete but its size was not recorded");
		goto out;
	}
	if (out) {
		memset(out, 0, sizeof *out);
		out->id = id;
		snprintf(out->uid, sizeof out->uid, "%s", uid);
		snprintf(out->kind, sizeof out->kind, "%s", kind);
		snprintf(out->name, sizeof out->name, "%s", name);
		snprintf(out->version, sizeof out->version, "%s", version);
		snprintf(out->kek_name, sizeof out->kek_name, "%s", key_name);
		out->kek_version = row.version;
		out->size = size;
		out->created = km_ctx_now(ctx);
		snprintf(out->created_by, sizeof out->created_by, "%s", ctx->actor.name);
		snprintf(out->path, sizeof out->path, "%s", abs_out);
	}
out:
	km_secure_free(dek, KM_DEK_BYTES);
	OPENSSL_cleanse(wrapped, sizeof wrapped);
	return st;
}

km_status km_protect(km_ctx *ctx, const char *key_name, const char *asset_spec,
                     int in_fd, int out_fd, const char *out_path, km_asset_info *out, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	snprintf(obj, sizeof obj, "key:%s", key_name ? key_name : "");
	km_op_begin(ctx, KM_ACT_PROTECT, obj);
	return km_op_end(ctx, protect_impl(ctx, key_name, asset_spec, in_fd, out_fd, out_path, out, e), e);
}

#define ASSET_COLS "a.id, a.uid, a.kind, a.name, a.version, k.name, a.kek_version, a.size, a.created, " \
	"a.created_by, a.path"

static void asset_row(sqlite3_stmt *q, km_asset_info *a)
{
	memset(a, 0, sizeof *a);
	a->id = sqlite3_column_int64(q, 0);
	snprintf(a->uid, sizeof a->uid, "%s", (const char *)sqlite3_column_text(q, 1));
	snprintf(a->kind, sizeof a->kind, "%s", (const char *)sqlite3_column_text(q, 2));
	snprintf(a->name, sizeof a->name, "%s", (const char *)sqlite3_column_text(q, 3));
	snprintf(a->version, sizeof a->version, "%s", (const char *)sqlite3_column_text(q, 4));
	snprintf(a->kek_name, sizeof a->kek_name, "%s", (const char *)sqlite3_column_text(q, 5));
	a->kek_version = (uint32_t)sqlite3_column_int64(q, 6);
	a->size = (uint64_t)sqlite3_column_int64(q, 7);
	a->created = sqlite3_column_int64(q, 8);
	snprintf(a->created_by, sizeof a->created_by, "%s", (const char *)sqlite3_column_text(q, 9));
	const unsigned char *path = sqlite3_column_text(q, 10);
	snprintf(a->path, sizeof a->path, "%s", path ? (const char *)path : "");
}

/* The catalogue row for an envelope's uid, which must agree with the
 * header on the asset and the key; the version may differ (a rewrap moved
 * the catalogue's wrap to a newer version, or a stopped re-encryption
 * left the file one step ahead).  wrapped gets the catalogue's wrap. */
static km_status catalogue_match(km_ctx *ctx, const km_asset_ref *ref, km_asset_info *a,
                                 uint8_t wrapped[KM_WRAPPED_DEK_BYTES], km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT " ASSET_COLS ", a.wrapped_dek FROM assets a "
	                             "JOIN keys k ON k.id = a.key_id WHERE a.uid = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, ref->uid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		asset_row(q, a);
		if (strcmp(a->kind, ref->kind) || strcmp(a->name, ref->name) || strcmp(a->version, ref->version) ||
		    strcmp(a->kek_name, ref->kek_name))
			st = km_fail(e, KM_EINTEGRITY, "the envelope's header does not match catalogue entry %lld "
			             "(%s:%s): it was altered or belongs to another asset", (long long)a->id, a->kind, a->name);
		else if (sqlite3_column_bytes(q, 11) != KM_WRAPPED_DEK_BYTES)
			st = km_fail(e, KM_EINTEGRITY, "catalogue entry %lld holds a malformed wrapped data key",
			             (long long)a->id);
		else
			memcpy(wrapped, sqlite3_column_blob(q, 11), KM_WRAPPED_DEK_BYTES);
	} else if (rc == SQLITE_DONE) {
		st = km_fail(e, KM_EINTEGRITY, "the envelope names asset %s, which this deployment's catalogue "
		             "does not hold", ref->uid);
	} else {
		st = km_db_fail(ctx->db, e, "reading the catalogue");
	}
	sqlite3_finalize(q);
	return st;
}

static km_status unprotect_impl(km_ctx *ctx, int in_fd, int out_fd, const char *out_path,
                                const km_unprotect_opts *o, km_asset_info *out, km_err *e)
{
	envelope_header h;
	km_status st = envelope_read_header(in_fd, &h, e);
	if (st)
		return st;
	km_asset_ref ref;
	envelope_header_ref(&h, &ref);
	char obj[KM_KEY_NAME_MAX + 32];
	snprintf(obj, sizeof obj, "key:%s@%u", h.kek_name, h.kek_version);
	snprintf(ctx->op_object, sizeof ctx->op_object, "%s", obj);
	if ((st = km_authorize(ctx, KM_ACT_UNPROTECT, obj, e)))
		return st;
	kek_version_row hrow, row;
	km_asset_info a;
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	if ((st = kek_version_load(ctx, h.kek_name, h.kek_version, &hrow, e)) ||
	    (st = catalogue_match(ctx, &ref, &a, wrapped, e)))
		return st;
	/* Which wrap opens the DEK: the catalogue's (the authority), unless
	 * the file is ahead of it (a re-encryption stopped between its
	 * rename and its catalogue update: only a holder of the newer KEK
	 * could have made that header's wrap). */
	km_asset_ref use = ref;
	if (h.kek_version > a.kek_version) {
		row = hrow;
		memcpy(wrapped, h.wrapped_dek, sizeof wrapped);
	} else {
		use.kek_version = a.kek_version;
		if (a.kek_version == h.kek_version)
			row = hrow;
		else if ((st = kek_version_load(ctx, h.kek_name, a.kek_version, &row, e)))
			return st;
	}
	if (!km_state_can_decrypt(row.state))
		return km_fail(e, KM_ESTATE, "version %u of key '%s' is %s: it can no longer decrypt", row.version,
		               h.kek_name, km_state_name(row.state));
	/* Compromise: the version that wraps the DEK now, or the one whose
	 * wrap the file carries (that wrap may have exposed the DEK). */
	uint32_t bad = row.state == KS_COMPROMISED ? row.version : hrow.state == KS_COMPROMISED ? hrow.version : 0;
	if (bad && !(o && o->override_compromised))
		return km_fail(e, KM_ESTATE, "version %u of key '%s' is compromised: decryption under it needs "
		               "an explicit, audited override (`keyward unprotect --override-compromised`, "
		               "with step-up); the emergency rotation re-encrypts the asset", bad, h.kek_name);
	if (bad && (st = km_authorize(ctx, KM_ACT_UNPROTECT_OVERRIDE, obj, e)))
		return st;
	const uint8_t *kek;
	if ((st = kek_material(ctx, &row, &kek, e)))
		return st;
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	if (!dek)
		return km_fail(e, KM_ENOMEM, "locked memory exhausted");
	if ((st = dek_unwrap(kek, wrapped, &use, dek, e))) {
		km_secure_free(dek, KM_DEK_BYTES);
		return st;
	}
	/* The key use is on record before any plaintext leaves. */
	if (!(st = km_tx_begin(ctx, e))) {
		st = count_use(ctx, row.key_id, row.version, 0, e);
		json_t *d = asset_details(&ref, a.id);
		if (row.version != h.kek_version)
			json_object_set_new(d, "kek_version", json_integer(row.version));
		if (bad) {
			json_object_set_new(d, "override", json_string("compromised"));
			json_object_set_new(d, "compromised_version", json_integer(bad));
		}
		if (!st)
			st = km_tx_audit(ctx, km_action_name(KM_ACT_UNPROTECT), obj, "ok", d, e);
		else
			json_decref(d);
		if (!st)
			st = km_tx_commit(ctx, e);
		else
			km_tx_rollback(ctx);
	}
	uint64_t size = 0;
	if (!st)
		st = stream_out(envelope_decrypt, in_fd, out_fd, out_path, &h, dek, &size, e);
	km_secure_free(dek, KM_DEK_BYTES);
	kek_cache_charge_bytes(ctx->cache, row.key_id, row.version, size);
	if (st) {
		/* The use is on record as ok; a stream that fails to
		 * authenticate is recorded too. */
		if (st == KM_EINTEGRITY)
			ctx->op_recorded = 0;
		return st;
	}
	if (out) {
		*out = a;
		out->size = size; /* what came out, even if the writer is still at work */
	}
	return KM_OK;
}

km_status km_unprotect_ex(km_ctx *ctx, int in_fd, int out_fd, const char *out_path,
                          const km_unprotect_opts *o, km_asset_info *out, km_err *e)
{
	km_op_begin(ctx, KM_ACT_UNPROTECT, "envelope");
	return km_op_end(ctx, unprotect_impl(ctx, in_fd, out_fd, out_path, o, out, e), e);
}

km_status km_unprotect(km_ctx *ctx, int in_fd, int out_fd, const char *out_path,
                       km_asset_info *out, km_err *e)
{
	return km_unprotect_ex(ctx, in_fd, out_fd, out_path, NULL, out, e);
}

static km_status asset_get_impl(km_ctx *ctx, int64_t id, km_asset_info *out, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_ASSET_READ, NULL, e);
	if (st)
		return st;
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "SELECT " ASSET_COLS " FROM assets a JOIN keys k ON k.id = a.key_id "
	                        "WHERE a.id = ?", &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, id);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		asset_row(q, out);
	else if (rc == SQLITE_DONE)
		st = km_fail(e, KM_ENOTFOUND, "no asset with id %lld", (long long)id);
	else
		st = km_db_fail(ctx->db, e, "reading the asset");
	sqlite3_finalize(q);
	return st;
}

km_status km_asset_get(km_ctx *ctx, int64_t id, km_asset_info *out, km_err *e)
{
	char obj[48];
	snprintf(obj, sizeof obj, "asset:%lld", (long long)id);
	km_op_begin(ctx, KM_ACT_ASSET_READ, obj);
	return km_op_end(ctx, asset_get_impl(ctx, id, out, e), e);
}

static km_status asset_list_impl(km_ctx *ctx, const km_asset_query *qy,
                                 int (*cb)(void *c, const km_asset_info *a), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_ASSET_READ, NULL, e);
	if (st)
		return st;
	int64_t key_id = 0;
	if (qy->key_name && (st = kek_lookup_id(ctx, qy->key_name, &key_id, e)))
		return st;
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT " ASSET_COLS " FROM assets a JOIN keys k ON k.id = a.key_id WHERE 1%s%s%s%s "
	         "ORDER BY a.id DESC LIMIT ?5",
	         key_id ? " AND a.key_id = ?1" : "", qy->kek_version ? " AND a.kek_version = ?2" : "",
	         qy->kind ? " AND a.kind = ?3" : "", qy->before_id ? " AND a.id < ?4" : "");
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, sql, &q, e)))
		return st;
	sqlite3_bind_int64(q, 1, key_id);
	sqlite3_bind_int64(q, 2, qy->kek_version);
	if (qy->kind)
		sqlite3_bind_text(q, 3, qy->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, qy->before_id);
	sqlite3_bind_int(q, 5, qy->limit > 0 ? qy->limit : 100);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_asset_info a;
		asset_row(q, &a);
		if (cb(cbctx, &a))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing assets");
	sqlite3_finalize(q);
	return st;
}

km_status km_asset_list(km_ctx *ctx, const km_asset_query *qy,
                        int (*cb)(void *c, const km_asset_info *a), void *cbctx, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	snprintf(obj, sizeof obj, "%s%s", qy->key_name ? "key:" : "assets", qy->key_name ? qy->key_name : "");
	km_op_begin(ctx, KM_ACT_ASSET_READ, obj);
	return km_op_end(ctx, asset_list_impl(ctx, qy, cb, cbctx, e), e);
}

static km_status register_bulk_impl(km_ctx *ctx, const char *key_name, const char *const *specs,
                                    size_t n, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	snprintf(obj, sizeof obj, "key:%s", key_name);
	km_status st = km_authorize(ctx, KM_ACT_PROTECT, obj, e);
	if (st)
		return st;
	kek_version_row row;
	if ((st = kek_version_load(ctx, key_name, 0, &row, e)))
		return st;
	snprintf(obj, sizeof obj, "key:%s@%u", key_name, row.version);
	if ((st = reserve_wraps(ctx, &row, key_name, n, e)))
		return st;
	const uint8_t *kek;
	if ((st = kek_material(ctx, &row, &kek, e)))
		return st;
	dek_ctx *dc = NULL;
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	if (!dek)
		return km_fail(e, KM_ENOMEM, "locked memory exhausted");
	if ((st = dek_ctx_new(kek, &dc, e))) {
		km_secure_free(dek, KM_DEK_BYTES);
		return st;
	}
	sqlite3_stmt *q = NULL;
	if (!(st = km_tx_begin(ctx, e))) {
		st = km_db_prepare(ctx->db, INSERT_ASSET_SQL, &q, e);
		for (size_t i = 0; !st && i < n; i++) {
			char kind[32], name[256], version[128], uid[KM_ASSET_UID_LEN + 1];
			uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
			st = km_asset_spec_parse(specs[i], kind, name, version, e);
			km_asset_ref ref = {uid, kind, name, version, key_name, row.version};
			if (!st)
				st = km_asset_uid_new(uid, e);
			if (!st)
				st = km_asset_ref_validate(&ref, e);
			if (!st)
				st = dek_generate(dek, e);
			if (!st)
				st = dek_ctx_wrap(dc, dek, &ref, wrapped, e);
			if (!st)
				st = insert_asset(ctx, q, &ref, row.key_id, wrapped, 0, NULL, e);
			if (!st)
				st = km_tx_audit(ctx, km_action_name(KM_ACT_PROTECT), obj, "ok",
				                 asset_details(&ref, sqlite3_last_insert_rowid(ctx->db)), e);
		}
		sqlite3_finalize(q);
		if (!st)
			st = count_use(ctx, row.key_id, row.version, n, e);
		if (!st)
			st = km_tx_commit(ctx, e);
		else
			km_tx_rollback(ctx);
	}
	dek_ctx_free(dc);
	km_secure_free(dek, KM_DEK_BYTES);
	return st;
}

km_status km_asset_register_bulk(km_ctx *ctx, const char *key_name, const char *const *specs,
                                 size_t n, km_err *e)
{
	char obj[KM_KEY_NAME_MAX + 32];
	snprintf(obj, sizeof obj, "key:%s", key_name ? key_name : "");
	km_op_begin(ctx, KM_ACT_PROTECT, obj);
	return km_op_end(ctx, register_bulk_impl(ctx, key_name, specs, n, e), e);
}
