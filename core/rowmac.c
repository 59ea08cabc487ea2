/*
 * rowmac.c — canonical row text and its HSM MAC.
 */
#include "rowmac.h"
#include "db.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ["keyward-row/1", deployment, table, field...], compact, sorted, ASCII:
 * the same row always gives the same bytes, and no two tables or
 * deployments share a text. */
static char *canonical(km_ctx *ctx, const char *table, const json_t *fields)
{
	json_t *a = json_pack("[s,s,s]", "keyward-row/1", ctx->deployment_id, table);
	if (!a)
		return NULL;
	json_array_extend(a, (json_t *)fields);
	char *t = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_SORT_KEYS);
	json_decref(a);
	return t;
}

km_status km_rowmac(km_ctx *ctx, const char *table, json_t *fields, uint8_t mac[KM_ROWMAC_BYTES],
                    km_err *e)
{
	if (!fields || !json_is_array(fields)) {
		/* Jansson takes only UTF-8: a row that is not was written by
		 * someone other than keyward, whose names are validated. */
		json_decref(fields);
		return km_fail(e, KM_EINTEGRITY, "a %s row holds text that is not UTF-8: it was changed "
		               "outside keyward, so it is not used", table);
	}
	char *t = canonical(ctx, table, fields);
	json_decref(fields);
	if (!t)
		return km_fail(e, KM_ENOMEM, "out of memory for a row MAC");
	km_status st = hsm_mac(ctx->h, t, strlen(t), mac, e);
	free(t);
	return st;
}

km_status km_rowmac_check(km_ctx *ctx, const char *table, const char *what, json_t *fields,
                          const void *mac, size_t mac_len, km_err *e)
{
	uint8_t want[KM_ROWMAC_BYTES];
	km_status st = km_rowmac(ctx, table, fields, want, e);
	if (st == KM_EINTEGRITY)
		return km_fail(e, KM_EINTEGRITY, "the %s row %s holds text that is not UTF-8: it was changed "
		               "outside keyward, so it is not used", table, what);
	if (st)
		return st;
	if (!mac || mac_len != KM_ROWMAC_BYTES || CRYPTO_memcmp(want, mac, KM_ROWMAC_BYTES) != 0)
		return km_fail(e, KM_EINTEGRITY, "the %s row %s fails its HSM MAC: it was changed "
		               "outside keyward, so it is not used; run `keyward audit verify`", table, what);
	return KM_OK;
}

void km_rowmac_digest(km_ctx *ctx, const char *table, const json_t *fields, char hex[65])
{
	uint8_t d[32];
	unsigned int n = 0;
	char *t = canonical(ctx, table, fields);
	hex[0] = '\0';
	if (!t)
		return;
	if (EVP_Digest(t, strlen(t), d, &n, EVP_sha256(), NULL) == 1 && n == 32)
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
	free(t);
}

json_t *km_rowmac_blob(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *h = malloc(2 * n + 1);
	if (!h)
		return NULL;
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h[2 * i] = digits[b[i] >> 4];
		h[2 * i + 1] = digits[b[i] & 15];
	}
	h[2 * n] = '\0';
	json_t *s = json_string(h);
	free(h);
	return s;
}

void km_sealed_note(json_t *details, const char *table, const char *key, const char *digest)
{
	json_t *list = json_object_get(details, "sealed");
	if (!list) {
		list = json_array();
		json_object_set_new(details, "sealed", list);
	}
	json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "table", table, "row", key, "digest", digest));
}

km_status km_sealed_recorded(km_ctx *ctx, json_t **out, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, "SELECT json FROM audit_events "
	                             "WHERE instr(json, '\"sealed\":[') > 0 ORDER BY seq", &q, e);
	if (st)
		return st;
	json_t *map = json_object();
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *ev = json_loads((const char *)sqlite3_column_text(q, 0), 0, NULL);
		json_t *list = json_object_get(json_object_get(ev, "details"), "sealed");
		size_t i;
		json_t *it;
		json_array_foreach(list, i, it) {
			const char *t = json_string_value(json_object_get(it, "table"));
			const char *k = json_string_value(json_object_get(it, "row"));
			json_t *d = json_object_get(it, "digest");
			if (!t || !k || !json_is_string(d))
				continue;
			char *mk = malloc(strlen(t) + strlen(k) + 2);
			if (mk) {
				sprintf(mk, "%s\n%s", t, k);
				json_object_set(map, mk, d);
				free(mk);
			}
		}
		json_decref(ev);
	}
	if (rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading the audit log");
	sqlite3_finalize(q);
	if (st)
		json_decref(map);
	else
		*out = map;
	return st;
}

km_status km_rowmac_scan(km_ctx *ctx, const km_rowmac_table *t, const json_t *recorded,
                         uint64_t *checked, uint64_t *bad, char *problem, size_t cap, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(ctx->db, t->sql, &q, e);
	if (st)
		return st;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		char what[300], key[300], mk[400], digest[65];
		km_err rowerr;
		t->name(q, what, sizeof what);
		km_status r = km_rowmac_check(ctx, t->table, what, t->fields(q), sqlite3_column_blob(q, t->mac_col),
		                              (size_t)sqlite3_column_bytes(q, t->mac_col), &rowerr);
		if (!r && recorded) {
			/* A genuine MAC on an old copy: compare with the log. */
			json_t *f = t->recorded(q);
			t->key(q, key, sizeof key);
			snprintf(mk, sizeof mk, "%s\n%s", t->table, key);
			km_rowmac_digest(ctx, t->table, f, digest);
			json_decref(f);
			const char *want = json_string_value(json_object_get(recorded, mk));
			if (!want)
				r = km_fail(&rowerr, KM_EINTEGRITY, "the %s row %s is not recorded in the audit "
				            "log: it was not made by keyward", t->table, what);
			else if (strcmp(want, digest) != 0)
				r = km_fail(&rowerr, KM_EINTEGRITY, "the %s row %s is not the one the audit log "
				            "last recorded: an older copy was put back", t->table, what);
		}
		(*checked)++;
		if (r == KM_EINTEGRITY) {
			if (!(*bad)++)
				snprintf(problem, cap, "%s", rowerr.msg);
		} else if (r) {
			*e = rowerr;
			st = r;
			break;
		}
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading sealed rows");
	sqlite3_finalize(q);
	return st;
}
