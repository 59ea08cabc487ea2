/*
 * request_open_stub.c — STAND-IN, NOT FOR MAIN.  What is left of wt-pol's
 * stand-in after wt-ui merged wt-pol, wt-req and wt-job: the functions neither has
 * yet (request_expire, which wt-req has not yet written).  Keeping any of
 * them next to the real ones gives duplicate symbols on purpose, so the
 * lead notices and drops this file when the real functions arrive.
 */
#include "ctx.h"
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
