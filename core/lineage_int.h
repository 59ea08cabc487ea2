/*
 * lineage_int.h — internal to core/: the HTTP fetch behind km_lineage_pull.
 */
#ifndef KM_LINEAGE_INT_H
#define KM_LINEAGE_INT_H

#include "lineage.h"

typedef struct lineage_pull_stats {
	uint64_t pages, events, requests, retries, retry_after_waits;
} lineage_pull_stats;

/* Every event the server has (after o->since), page by page, as JSON lines
 * in *text (malloc'd, NUL-terminated, *len bytes).  Writes nothing. */
km_status lineage_pull_fetch(const char *base_url, const km_lineage_pull_opts *o, char **text,
                             size_t *len, lineage_pull_stats *stats, km_err *e);

#endif
