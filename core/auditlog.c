/*
 * auditlog.c — authorised access to the audit log for the front ends.
 */
#include "auditlog.h"
#include "ctx.h"
#include "db.h"
#include "hsm.h"
#include "kek_int.h"
#include "lifecycle.h"
#include "job_int.h"
#include "request_int.h"
#include "rowmac.h"
#include "user_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

struct km_verify_job {
	char db_path[PATH_MAX];
	EVP_PKEY *pub;
	audit_anchor anchor; /* from the HSM, read before the snapshot */
};

static km_status audit_query_impl(km_ctx *ctx, const audit_filter *f, uint64_t before_seq, int limit,
                         int (*row_cb)(void *c, const audit_row *row), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit", e);
	if (st)
		return st;
	return audit_query(ctx->db, f, before_seq, limit, row_cb, cbctx, e);
}

km_status km_audit_query(km_ctx *ctx, const audit_filter *f, uint64_t before_seq, int limit,
                         int (*row_cb)(void *c, const audit_row *row), void *cbctx, km_err *e)
{
	const char *obj = "audit";
	km_op_begin(ctx, KM_ACT_AUDIT_READ, obj);
	return km_op_end(ctx, audit_query_impl(ctx, f, before_seq, limit, row_cb, cbctx, e), e);
}

static km_status audit_get_impl(km_ctx *ctx, uint64_t seq, audit_row *out, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit", e);
	if (st)
		return st;
	return audit_get(ctx->db, seq, out, e);
}

km_status km_audit_get(km_ctx *ctx, uint64_t seq, audit_row *out, km_err *e)
{
	char obj[48];
	snprintf(obj, sizeof obj, "audit:%llu", (unsigned long long)seq);
	km_op_begin(ctx, KM_ACT_AUDIT_READ, obj);
	return km_op_end(ctx, audit_get_impl(ctx, seq, out, e), e);
}

static km_status audit_verify_start_impl(km_ctx *ctx, km_verify_job **job, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_VERIFY, "audit", e);
	if (st)
		return st;
	km_verify_job *j = calloc(1, sizeof *j);
	if (!j)
		return km_fail(e, KM_ENOMEM, "out of memory");
	snprintf(j->db_path, sizeof j->db_path, "%s", ctx->cfg.db_path);
	if (EVP_PKEY_up_ref(ctx->audit_pub) != 1) {
		free(j);
		return km_fail(e, KM_EINTERNAL, "cannot reference the audit public key");
	}
	j->pub = ctx->audit_pub;
	if ((st = km_anchor_load(ctx, &j->anchor, e))) {
		km_audit_verify_abandon(j);
		return st;
	}
	*job = j;
	return KM_OK;
}

km_status km_audit_verify_start(km_ctx *ctx, km_verify_job **job, km_err *e)
{
	const char *obj = "audit";
	km_op_begin(ctx, KM_ACT_AUDIT_VERIFY, obj);
	return km_op_end(ctx, audit_verify_start_impl(ctx, job, e), e);
}

static km_status verify_run(km_verify_job *job, audit_progress_fn progress, void *pctx, audit_visit_fn visit,
                            void *vctx, audit_verify_result *r, km_err *e)
{
	sqlite3 *db = NULL;
	/* Its own connection, inside one read transaction: a consistent
	 * snapshot even while other sessions append. */
	km_status st = km_db_open_readonly(job->db_path, &db, e);
	if (st)
		return st;
	if (!(st = km_db_exec(db, "BEGIN", e))) {
		/* The anchor was read before this snapshot began (in start):
		 * a commit in between only makes the log longer than it. */
		st = audit_verify_visit(db, job->pub, &job->anchor, progress, pctx, visit, vctx, r, e);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return st;
}

km_status km_audit_verify_run(km_verify_job *job, audit_progress_fn progress, void *pctx,
                              audit_verify_result *r, km_err *e)
{
	return verify_run(job, progress, pctx, NULL, NULL, r, e);
}

void km_audit_verify_abandon(km_verify_job *job)
{
	if (job) {
		EVP_PKEY_free(job->pub);
		free(job);
	}
}

km_status km_audit_verify_finish(km_ctx *ctx, km_verify_job *job, const audit_verify_result *r, km_err *e)
{
	km_audit_verify_abandon(job);
	return km_record_verification(ctx, r->intact, r->first_bad_seq, r->problem, e);
}

km_status km_audit_verify(km_ctx *ctx, audit_progress_fn progress, void *pctx,
                          audit_verify_result *r, km_err *e)
{
	return km_audit_verify_visit(ctx, progress, pctx, NULL, NULL, r, e);
}

km_status km_audit_verify_visit(km_ctx *ctx, audit_progress_fn progress, void *pctx, audit_visit_fn visit,
                                void *vctx, audit_verify_result *r, km_err *e)
{
	km_verify_job *job;
	km_status st = km_audit_verify_start(ctx, &job, e);
	if (st)
		return st;
	if ((st = verify_run(job, progress, pctx, visit, vctx, r, e))) {
		km_audit_verify_abandon(job);
		return st;
	}
	st = km_audit_verify_finish(ctx, job, r, e);
	/* A damaged log may refuse to record its own verdict; the verdict
	 * in *r is what the caller needs. */
	if (st == KM_EINTEGRITY && !r->intact) {
		km_err_clear(e);
		return KM_OK;
	}
	return st;
}

static km_status audit_verify_entry_impl(km_ctx *ctx, uint64_t seq, audit_verify_result *r, km_err *e)
{
	char obj[48];
	snprintf(obj, sizeof obj, "audit:%llu", (unsigned long long)seq);
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_VERIFY, obj, e);
	if (st)
		return st;
	audit_anchor a;
	if ((st = km_anchor_load(ctx, &a, e)))
		return st;
	return audit_verify_entry(ctx->db, ctx->audit_pub, &a, seq, r, e);
}

km_status km_audit_verify_entry(km_ctx *ctx, uint64_t seq, audit_verify_result *r, km_err *e)
{
	char obj[48];
	snprintf(obj, sizeof obj, "audit:%llu", (unsigned long long)seq);
	km_op_begin(ctx, KM_ACT_AUDIT_VERIFY, obj);
	return km_op_end(ctx, audit_verify_entry_impl(ctx, seq, r, e), e);
}

static km_status audit_pubkey_pem_impl(km_ctx *ctx, char **pem, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit-key", e);
	if (st)
		return st;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b || PEM_write_bio_PUBKEY(b, ctx->audit_pub) != 1) {
		BIO_free(b);
		return km_fail(e, KM_EINTERNAL, "cannot encode the audit public key");
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	*pem = malloc((size_t)n + 1);
	if (*pem) {
		memcpy(*pem, data, (size_t)n);
		(*pem)[n] = '\0';
	}
	BIO_free(b);
	return *pem ? KM_OK : km_fail(e, KM_ENOMEM, "out of memory");
}

km_status km_audit_pubkey_pem(km_ctx *ctx, char **pem, km_err *e)
{
	const char *obj = "audit";
	km_op_begin(ctx, KM_ACT_AUDIT_READ, obj);
	return km_op_end(ctx, audit_pubkey_pem_impl(ctx, pem, e), e);
}

static km_status verify_rows_impl(km_ctx *ctx, km_rows_result *r, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_VERIFY, NULL, e);
	memset(r, 0, sizeof *r);
	json_t *recorded = NULL;
	/* Each row against its seal and against the newest digest the log
	 * recorded for it: an older copy put back has a genuine seal. */
	if (!st)
		st = km_sealed_recorded(ctx, &recorded, e);
	if (!st)
		st = user_rows_verify(ctx, recorded, &r->checked, &r->bad, r->problem, sizeof r->problem, e);
	if (!st)
		st = kek_versions_verify(ctx, recorded, &r->checked, &r->bad, r->problem, sizeof r->problem, e);
	if (!st)
		st = policy_rows_verify(ctx, recorded, &r->checked, &r->bad, r->problem, sizeof r->problem, e);
	if (!st)
		st = request_rows_verify(ctx, recorded, &r->checked, &r->bad, r->problem, sizeof r->problem, e);
	if (!st)
		st = job_rows_verify(ctx, recorded, &r->checked, &r->bad, r->problem, sizeof r->problem, e);
	json_decref(recorded);
	return st;
}

km_status km_audit_verify_rows(km_ctx *ctx, km_rows_result *r, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_VERIFY, "rows");
	return km_op_end(ctx, verify_rows_impl(ctx, r, e), e);
}
