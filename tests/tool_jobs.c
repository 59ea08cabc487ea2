/*
 * tool_jobs.c — a test helper for tests/sh/job_kill.sh, never installed:
 * what the shipped CLI does not offer before rotation requests exist
 * (core/lifecycle.h queues jobs when a rotation executes).
 *
 *   tool_jobs register KEY N [PREFIX]      N assets without files (km_asset_register_bulk)
 *   tool_jobs queue KIND KEY FROM TO       queue a job (job_queue), print its id
 *   tool_jobs check KEY                    every catalogue DEK of KEY unwraps under the
 *                                          version the catalogue names; prints
 *                                          "assets N distinct N unwrapped N v<V> N ..."
 *
 * The deployment comes from KEYWARD_HOME / KEYWARD_PIN like the CLI's.
 */
#include "asset.h"
#include "ctx.h"
#include "db.h"
#include "dek.h"
#include "job.h"
#include "kek_int.h"
#include "lifecycle.h"
#include "secmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what, const km_err *e)
{
	fprintf(stderr, "tool_jobs: %s: %s\n", what, e->msg);
	return 1;
}

static int do_register(km_ctx *ctx, const char *key, long n, const char *prefix)
{
	enum { CHUNK = 20000 };
	char **specs = calloc(CHUNK, sizeof *specs);
	km_err e;
	for (long done = 0; done < n;) {
		size_t k = (size_t)(n - done < CHUNK ? n - done : CHUNK);
		for (size_t i = 0; i < k; i++) {
			specs[i] = malloc(96);
			snprintf(specs[i], 96, "feature:%s/%ld", prefix, done + (long)i);
		}
		km_status st = km_asset_register_bulk(ctx, key, (const char *const *)specs, k, &e);
		for (size_t i = 0; i < k; i++)
			free(specs[i]);
		if (st)
			return die("register", &e);
		done += (long)k;
	}
	free(specs);
	return 0;
}

static int do_queue(km_ctx *ctx, const char *kind, const char *key, uint32_t from, uint32_t to)
{
	km_err e;
	int64_t key_id;
	char id[KM_REQUEST_ID_MAX];
	km_job_kind k = strcmp(kind, "re-encrypt") == 0 ? KM_JOB_REENCRYPT : KM_JOB_REWRAP;
	if (kek_lookup_id(ctx, key, &key_id, &e) || km_tx_begin(ctx, &e))
		return die("queue", &e);
	if (job_queue(ctx, k, key_id, from, to, "", id, &e)) {
		km_tx_rollback(ctx);
		return die("queue", &e);
	}
	if (km_tx_commit(ctx, &e))
		return die("queue", &e);
	printf("%s\n", id);
	return 0;
}

static int do_check(km_ctx *ctx, const char *key)
{
	km_err e;
	sqlite3_stmt *q;
	if (km_db_prepare(km_db(ctx), "SELECT a.uid, a.kind, a.name, a.version, a.kek_version, a.wrapped_dek "
	                  "FROM assets a JOIN keys k ON k.id = a.key_id WHERE k.name = ? ORDER BY a.kek_version",
	                  &q, &e))
		return die("check", &e);
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	long n = 0, ok = 0, per[64] = {0};
	while (sqlite3_step(q) == SQLITE_ROW) {
		km_asset_ref ref = {(const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
		                    (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3), key,
		                    (uint32_t)sqlite3_column_int64(q, 4)};
		kek_version_row row;
		const uint8_t *kek;
		n++;
		if (ref.kek_version < 64)
			per[ref.kek_version]++;
		if (kek_version_load(ctx, key, ref.kek_version, &row, &e) || kek_material(ctx, &row, &kek, &e))
			return die("check", &e);
		if (sqlite3_column_bytes(q, 5) == KM_WRAPPED_DEK_BYTES &&
		    dek_unwrap(kek, sqlite3_column_blob(q, 5), &ref, dek, &e) == KM_OK)
			ok++;
	}
	sqlite3_finalize(q);
	km_secure_free(dek, KM_DEK_BYTES);
	int64_t distinct = 0;
	km_db_int64(km_db(ctx), "SELECT count(DISTINCT uid) FROM assets", &distinct, &e);
	printf("assets %ld distinct %lld unwrapped %ld", n, (long long)distinct, ok);
	for (int v = 1; v < 64; v++)
		if (per[v])
			printf(" v%d %ld", v, per[v]);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: tool_jobs register KEY N | queue KIND KEY FROM TO | check KEY\n");
		return 2;
	}
	km_open_opts o = {0};
	km_ctx *ctx;
	km_err e;
	if (km_open(&o, &ctx, &e))
		return die("open", &e);
	int rc = 2;
	if (strcmp(argv[1], "register") == 0 && argc >= 4)
		rc = do_register(ctx, argv[2], atol(argv[3]), argc > 4 ? argv[4] : "bulk");
	else if (strcmp(argv[1], "queue") == 0 && argc == 6)
		rc = do_queue(ctx, argv[2], argv[3], (uint32_t)atol(argv[4]), (uint32_t)atol(argv[5]));
	else if (strcmp(argv[1], "check") == 0)
		rc = do_check(ctx, argv[2]);
	km_close(ctx);
	return rc;
}
