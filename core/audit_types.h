/*
 * audit_types.h — the audit log's values as the front ends see them: one
 * event row, a query filter and a verification result.  Public (ui/ may
 * include it); the storage and hashing layer underneath is audit.h, which
 * only core/ sees.
 */
#ifndef KM_AUDIT_TYPES_H
#define KM_AUDIT_TYPES_H

#include "km.h"

#define AUDIT_HASH_BYTES 32   /* SHA-256: leaf hashes and tree roots */
#define AUDIT_TIME_LEN 24     /* "2026-11-23T12:45:13.123Z" */

/* One event.  Every string points into one block owned by the row (json
 * first); object is NULL when the event has none.  From audit_get() the
 * caller owns the row (audit_row_free); inside an audit_query() callback the
 * row is borrowed and valid only until the callback returns — keep a copy
 * with audit_row_copy(). */
typedef struct audit_row {
	uint64_t seq;
	char *json;        /* the event text exactly as stored and hashed */
	uint8_t leaf_hash[AUDIT_HASH_BYTES];
	char *time;        /* RFC 3339 UTC, milliseconds */
	char *actor;
	char *action;
	char *object;      /* NULL when none */
	char *outcome;
} audit_row;

/* An owned deep copy of src (free with audit_row_free). */
km_status audit_row_copy(const audit_row *src, audit_row *dst, km_err *e);

/* Free what a row owns and zero it; NULL and zeroed rows are fine. */
void audit_row_free(audit_row *row);

/* Filters for audit_query; NULL or "" means "any".  All given filters must
 * match (AND). */
typedef struct audit_filter {
	const char *object;        /* exact object name */
	const char *object_prefix; /* object starts with this ("features/") */
	const char *actor;         /* exact */
	const char *action;        /* exact */
	const char *outcome;       /* exact: ok, denied, error */
	const char *time_from;     /* RFC 3339 prefix, inclusive: "2026-03" */
	const char *time_to;       /* RFC 3339 prefix, inclusive: "2026-03-31" */
	const char *object_contains; /* object has this substring ("credit"): the
	                            * audit screen's bare word, as the keys
	                            * screen matches names; never drives the
	                            * plan (no index can serve it) */
	const char *hide_action;   /* leave out events with exactly this action
	                            * ("login": the session events that make up
	                            * most of a log); never drives the plan */
} audit_filter;

/* The action of session (login) events, which the audit screen and
 * `audit tail` hide unless asked. */
#define AUDIT_SESSION_ACTION "login"

/* Is s a time filter audit_query understands: an RFC 3339 UTC time or a
 * prefix of one cut after a field ("2026", "2026-03", "2026-03-01",
 * "2026-03-01T10", "2026-03-01T10:30", "2026-03-01T10:30:00",
 * "2026-03-01T10:30:00.123", any of the last four with "Z"), with every
 * field in range (no 2026-02-30)?  KM_OK with the prefix to filter by in
 * out (a "Z" dropped unless milliseconds precede it: stored times always
 * carry them, so "...:00Z" would sort after "...:00.123Z"), or KM_EUSAGE
 * with a sentence naming `what` ("--since") and showing the accepted
 * shape.  out holds AUDIT_TIME_LEN + 1 bytes. */
km_status audit_time_prefix_check(const char *s, const char *what, char out[AUDIT_TIME_LEN + 1],
                                  km_err *e);

/* Callback per row; return nonzero to stop early (not an error). */
typedef int (*audit_row_fn)(void *ctx, const audit_row *row);

typedef struct audit_verify_result {
	uint64_t entries_total;   /* rows in audit_events */
	uint64_t entries_checked; /* entries that checked out, in order from 1 */
	uint64_t heads_total;     /* rows in audit_tree_heads */
	uint64_t heads_checked;   /* heads whose root and signature checked out */
	int intact;               /* 1: everything checked out */
	uint64_t first_bad_seq;   /* 0 when intact; see docs/audit.md */
	char problem[256];        /* one sentence; "" when intact */
	uint64_t head_size;       /* the newest head that checked out (0: none) */
	uint8_t head_root[AUDIT_HASH_BYTES];
	int64_t head_time;
	int anchor_checked;       /* 1: the log matched the HSM anchor at its size */
} audit_verify_result;

/* Progress: called about every 4096 entries and at the end; nonzero
 * cancels (audit_verify then returns KM_EBUSY, "verification cancelled"). */
typedef int (*audit_progress_fn)(void *ctx, uint64_t checked, uint64_t total);

/* Called by verification for every entry it has just proven (leaf hash
 * recomputed from text and matched; text in keyward's canonical form), in
 * seq order, on the thread that checks: text is the stored event, not
 * NUL-terminated, valid only during the call.  Lets one pass over the log
 * both verify it and compute what a caller needs from the same bytes. */
typedef void (*audit_visit_fn)(void *ctx, uint64_t seq, const char *text, size_t len);

#endif
