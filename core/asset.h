/*
 * asset.h — protecting and unprotecting data, and the asset catalogue.
 *
 * Protect: authorise, take the key's active version from the KEK cache,
 * reserve one wrap on its durable counter, generate and wrap a DEK bound to
 * the asset's identity, stream the envelope (envelope.h), then record the
 * asset and its audit event in one transaction.  Unprotect: read the
 * envelope header, authorise, audit the key use, unwrap and stream out only
 * authenticated plaintext.  Output files are written then renamed.
 */
#ifndef KM_ASSET_H
#define KM_ASSET_H

#include "keyward.h"

#include <limits.h>

#define KM_ASSET_SIZE_PENDING UINT64_MAX

typedef struct km_asset_info {
	int64_t id;
	char uid[33];
	char kind[32];
	char name[256];
	char version[128];
	char kek_name[129];
	uint32_t kek_version;
	uint64_t size;        /* plaintext bytes; KM_ASSET_SIZE_PENDING while being written
	                         (or if the writer was killed) */
	int64_t created;
	char created_by[64];
	char path[PATH_MAX];  /* the file protect wrote (absolute), "" if none:
	                         written to a descriptor, or bulk-registered */
} km_asset_info;

/* Parse "KIND:NAME[@VERSION]", e.g. "feature:credit-risk/income@7". */
km_status km_asset_spec_parse(const char *spec, char kind[32], char name[256],
                              char version[128], km_err *e);

/* in_fd -> envelope on out_fd.  out_path, when not NULL, is where out_fd's
 * data must end up: the core writes to a temporary file beside it and
 * renames only after success (out_fd is then ignored). */
km_status km_protect(km_ctx *ctx, const char *key_name, const char *asset_spec,
                     int in_fd, int out_fd, const char *out_path,
                     km_asset_info *out, km_err *e);

/* Envelope on in_fd -> plaintext on out_fd (or out_path, as above).  To a
 * descriptor, a segment is written only after it authenticated, and a
 * truncated stream ends in KM_EINTEGRITY.
 *
 * The catalogue's wrapped DEK is the authority (docs/format.md): the
 * header must name the same asset as the catalogue row (uid, kind, name,
 * version, key), and the DEK is unwrapped from the catalogue under the
 * catalogue's version, so a rewrapped asset decrypts without its file
 * being touched.  The header's own wrap is used only when the header names
 * a newer version than the catalogue: a re-encryption that replaced the
 * file and was stopped before it recorded the new version (job.c).
 *
 * A compromised version (the catalogue's, or the header's, whose wrap may
 * have exposed the DEK) is refused with KM_ESTATE naming the override;
 * km_unprotect_ex with override_compromised decrypts anyway, authorised as
 * KM_ACT_UNPROTECT_OVERRIDE (step-up) and audited with the override. */
km_status km_unprotect(km_ctx *ctx, int in_fd, int out_fd, const char *out_path,
                       km_asset_info *out, km_err *e);

typedef struct km_unprotect_opts {
	int override_compromised; /* decrypt under a compromised version (audited) */
} km_unprotect_opts;

/* km_unprotect with options (o may be NULL: none). */
km_status km_unprotect_ex(km_ctx *ctx, int in_fd, int out_fd, const char *out_path,
                          const km_unprotect_opts *o, km_asset_info *out, km_err *e);

km_status km_asset_get(km_ctx *ctx, int64_t id, km_asset_info *out, km_err *e);

typedef struct km_asset_query {
	const char *key_name;   /* NULL: any */
	uint32_t kek_version;   /* 0: any version of key_name */
	const char *kind;       /* NULL: any */
	int64_t before_id;      /* 0: newest first from the top */
	int limit;
} km_asset_query;

km_status km_asset_list(km_ctx *ctx, const km_asset_query *q,
                        int (*cb)(void *c, const km_asset_info *a), void *cbctx,
                        km_err *e);

/* Register n assets under key_name in one transaction: a DEK generated and
 * wrapped, a catalogue row and an audit event for each, no file written.
 * Used by bulk imports, the demo and the benchmark.  names[i] is a spec as
 * in km_asset_spec_parse. */
km_status km_asset_register_bulk(km_ctx *ctx, const char *key_name,
                                 const char *const *specs, size_t n, km_err *e);

#endif
