/*
 * request_open_stub.c — STAND-IN, NOT FOR MAIN.  The lead drops this file
 * when merging wt-pol (the real functions come from wt-req's request.c /
 * lifecycle.c and wt-job's job.c; keeping both gives duplicate symbols on
 * purpose, so it cannot survive a merge unnoticed).
 *
 * It exists only so that branch wt-pol links before those branches are
 * merged: request_open records a "request.open" event and hands back an
 * id, without storing a request; every other call says it is not there.
 */
#include "ctx.h"
#include "job.h"
#include "lifecycle.h"
#include "request.h"

static km_status missing(km_err *e, const char *what)
{
	return km_fail(e, KM_EINTERNAL, "%s is not in this build (branch wt-pol stand-in)", what);
}

static const char *const kind_names[KM_REQ_KIND_COUNT] = {
#define RK_NAME(e, name, act, roles) [e] = name,
	KM_REQUEST_KINDS(RK_NAME)
#undef RK_NAME
};

const char *km_request_kind_name(km_request_kind k)
{
	return (unsigned)k < KM_REQ_KIND_COUNT ? kind_names[k] : "unknown";
}

km_status request_open(km_ctx *ctx, km_request_kind kind, const char *object, json_t *change,
                       const char *reason, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	km_status st = km_random_hex(id, 16, e);
	if (st)
		return st;
	return km_audit_event(ctx, "request.open", object, "ok",
	                      json_pack("{s:s,s:s,s:O,s:s,s:b}", "id", id, "kind", km_request_kind_name(kind),
	                                "change", change, "reason", reason, "stand_in", 1),
	                      e);
}

km_status km_request_list(km_ctx *ctx, const km_request_query *q,
                          int (*cb)(void *c, const km_request_info *r), void *cbctx, km_err *e)
{
	(void)q, (void)cb, (void)cbctx;
	return km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
}

km_status km_request_rotate(km_ctx *ctx, const char *key, const char *reason, char id[KM_REQUEST_ID_MAX],
                            km_err *e)
{
	(void)ctx, (void)key, (void)reason, (void)id;
	return missing(e, "km_request_rotate");
}

km_status km_request_execute(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e)
{
	(void)ctx, (void)id, (void)progress, (void)pctx;
	return missing(e, "km_request_execute");
}

km_status request_expire(km_ctx *ctx, const char *id, km_err *e)
{
	(void)ctx, (void)id;
	return missing(e, "request_expire");
}

km_status lifecycle_set_state(km_ctx *ctx, const char *key, uint32_t version, km_key_state to,
                              json_t *details, km_err *e)
{
	(void)ctx, (void)key, (void)version, (void)to, (void)details;
	return missing(e, "lifecycle_set_state");
}

km_status km_job_list(km_ctx *ctx, int active_only, int (*cb)(void *c, const km_job_info *j), void *cbctx,
                      km_err *e)
{
	(void)active_only, (void)cb, (void)cbctx;
	return km_authorize(ctx, KM_ACT_JOB_READ, NULL, e);
}

km_status km_job_get(km_ctx *ctx, const char *id, km_job_info *out, km_err *e)
{
	(void)ctx, (void)id, (void)out;
	return missing(e, "km_job_get");
}

km_status km_job_run(km_ctx *ctx, const char *id, km_progress_fn progress, void *pctx, km_err *e)
{
	(void)ctx, (void)id, (void)progress, (void)pctx;
	return missing(e, "km_job_run");
}

const char *km_job_kind_name(km_job_kind k) { return k == KM_JOB_REWRAP ? "rewrap" : "re-encrypt"; }
