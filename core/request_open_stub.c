/*
 * request_open_stub.c — STAND-IN, NOT FOR MAIN.  The lead drops this file
 * when merging wt-pol together with wt-job: the real km_job_list,
 * km_job_get, km_job_run and km_job_kind_name are wt-job's job.c (keeping
 * both gives duplicate symbols on purpose, so it cannot survive a merge
 * unnoticed).  wt-req's request functions replaced the rest of it.
 *
 * Here only so that branch wt-pol links: no jobs exist, so the scheduler
 * finds none to resume and no key shows the job flag.
 */
#include "ctx.h"
#include "job.h"

static km_status missing(km_err *e, const char *what)
{
	return km_fail(e, KM_EINTERNAL, "%s is not in this build (branch wt-pol stand-in)", what);
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
