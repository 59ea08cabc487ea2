/*
 * job_queue_stub.c — TEMPORARY stand-in for job.c's job_queue until the
 * wt-job branch is merged; the lead drops this file at that merge.
 *
 * It queues nothing: rotation then leaves every asset under its old
 * version (still decryptable while that version allows it), exactly as
 * before jobs existed.
 */
#include "lifecycle.h"

km_status job_queue(km_ctx *ctx, km_job_kind kind, int64_t key_id, uint32_t from_version,
                    uint32_t to_version, const char *request_id, char id[KM_REQUEST_ID_MAX], km_err *e)
{
	(void)ctx, (void)kind, (void)key_id, (void)from_version, (void)to_version, (void)request_id, (void)e;
	id[0] = '\0';
	return KM_OK;
}
