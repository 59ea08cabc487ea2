/*
 * job_int.h — internal to core/: what audit verification needs of job.c.
 */
#ifndef KM_JOB_INT_H
#define KM_JOB_INT_H

#include "ctx.h"

/* Check every jobs row's seal and compare it with the newest digest the
 * audit log recorded for it (km_rowmac_scan), as kek_versions_verify does. */
km_status job_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                          char *problem, size_t cap, km_err *e);

#endif
