/*
 * policy_stub.c — TEMPORARY stand-in for policy.c's policy_apply until the
 * wt-pol branch is merged; the lead drops this file at that merge.
 *
 * Until then no policy request can be opened (km_policy_propose is
 * wt-pol's), so nothing reaches this; it refuses rather than pretend.
 */
#include "lifecycle.h"

km_status policy_apply(km_ctx *ctx, const json_t *change, json_t *details, km_err *e)
{
	(void)ctx, (void)change, (void)details;
	return km_fail(e, KM_EINTERNAL, "policy changes need the policy module, which this build lacks");
}
