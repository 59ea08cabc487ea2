/*
 * forward_int.h — internal to core/ (and the benchmark): one sink's
 * delivery over a bare connection, without a session.  km_forward()
 * (forward.h) authorises, audits and loops over these.
 */
#ifndef KM_FORWARD_INT_H
#define KM_FORWARD_INT_H

#include "forward.h"

#include <openssl/evp.h>
#include <sqlite3.h>

/* The cursor table (catalogue migration v10): one row per sink name that
 * ever delivered.  Unsealed on purpose: see forward.h. */
extern const char forward_schema_sql[];

/* The witnesses' verified cosignatures (catalogue migration v13), one row
 * per (size, witness key).  Unsealed: each row carries its own Ed25519
 * signature, which is what an auditor checks, and nothing reads it to
 * decide anything. */
extern const char forward_cosign_schema_sql[];

typedef struct forward_run_opts {
	int patient;                    /* never give up on a batch (follow mode) */
	volatile sig_atomic_t *stop;    /* may be NULL */
	km_forward_progress_fn progress;
	void *pctx;
	EVP_PKEY *audit_pub;            /* checks a head before it goes to a witness as a
	                                 * signed note; a witness sink needs it */
} forward_run_opts;

/* Deliver sink s from its cursor to the end of the log (webhook, file) or
 * submit the newest signed tree head to the witness (add-checkpoint) if it
 * is newer than the cursor, then return.  origin is the log's origin line.  r is filled
 * (name, counts, cursor, lag, status).  KM_EIO when the sink failed, its
 * message in e and r->error; KM_EBUSY if another forwarder moved the
 * cursor meanwhile; KM_EINTEGRITY if the log has a gap, a witness's
 * cosignature does not verify, or (r->alarm set) the witness holds a tree
 * this log does not extend. */
km_status forward_sink_run(sqlite3 *db, const char *origin, const km_sink *s,
                           const forward_run_opts *o, km_forward_sink_result *r, km_err *e);

/* The sink's cursor (0 if it never delivered) and its lag now. */
km_status forward_sink_lag(sqlite3 *db, const km_sink *s, uint64_t *cursor, uint64_t *lag,
                           km_err *e);

#endif
