/*
 * request_open_stub.c — STAND-IN, NOT FOR MAIN.  What is left of wt-pol's
 * stand-in after wt-ui merged wt-pol and wt-req: the functions neither has
 * yet (request_expire: wt-req; the job calls: wt-job).  Keeping any of
 * them next to the real ones gives duplicate symbols on purpose, so the
 * lead notices and drops this file when the real functions arrive.
 */
#include "ctx.h"
#include "job.h"
#include "lifecycle.h"
#include "request.h"

static km_status missing(km_err *e, const char *what)
{
	return km_fail(e, KM_EINTERNAL, "%s is not in this build (stand-in)", what);
}

km_status request_expire(km_ctx *ctx, const char *id, km_err *e)
{
	(void)ctx, (void)id;
	return missing(e, "request_expire");
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
