/*
 * lineage.h — where protected data went: a graph from key versions to the
 * datasets, features, models and endpoints derived from what they protect.
 *
 * Nodes are sources, jobs, datasets, feature groups, features (versioned),
 * models (versioned) and endpoints, identified as OpenLineage identifies a
 * dataset: (namespace, name), plus a version.  Every catalogue asset is a
 * node of its own, ("keyward", "KIND:NAME", VERSION), and so is its
 * unversioned form ("keyward", "KIND:NAME", "") that events which do not
 * carry keyward's version join to; it stands for the newest version
 * registered, so its protection moves to a new version's key version when
 * that version is protected.  Edges:
 *   derived-from   a run's input -> each of its outputs
 *   consumed-by    a run's input -> its job
 *   served-by      a model -> an endpoint (an output mapped to an endpoint,
 *                  produced from a model)
 *   protected-by   asset -> key version, over the interval during which that
 *                  version wrapped the asset's DEK (kept by the catalogue
 *                  itself, in the same transaction as the asset row)
 * Flow edges remember when an event first and last showed them; that is
 * what "as of" and "consumed while protected" are decided by.
 *
 * Cycles (a job that reads what it writes) are stored as they come; every
 * walk visits a node once and reports the back edges it met.
 *
 * Everything here authorises through km_authorize (lineage.read,
 * lineage.import) and an import is one audited transaction: nothing of a
 * file set that holds a bad event is written.  The core never prints.
 */
#ifndef KM_LINEAGE_H
#define KM_LINEAGE_H

#include "keyward.h"

#include <jansson.h>
#include <stdint.h>

/* X(enum, name) — the node kinds, as stored and shown. */
#define KM_LINEAGE_KINDS(X)                     \
	X(KM_LN_SOURCE,        "source")        \
	X(KM_LN_JOB,           "job")           \
	X(KM_LN_DATASET,       "dataset")       \
	X(KM_LN_FEATURE_GROUP, "feature-group") \
	X(KM_LN_FEATURE,       "feature")       \
	X(KM_LN_MODEL,         "model")         \
	X(KM_LN_ENDPOINT,      "endpoint")

typedef enum km_lineage_kind {
#define KM_LN_ENUM(e, name) e,
	KM_LINEAGE_KINDS(KM_LN_ENUM)
#undef KM_LN_ENUM
	KM_LN_KIND_COUNT
} km_lineage_kind;

const char *km_lineage_kind_name(km_lineage_kind k);
/* -1 when s names no kind. */
int km_lineage_kind_parse(const char *s);

#define KM_LINEAGE_NS_MAX 256
#define KM_LINEAGE_NAME_MAX 512
#define KM_LINEAGE_VERSION_MAX 128

typedef struct km_lineage_node {
	int64_t id;
	km_lineage_kind kind;
	char namespace_[KM_LINEAGE_NS_MAX + 1];
	char name[KM_LINEAGE_NAME_MAX + 1];
	char version[KM_LINEAGE_VERSION_MAX + 1];
	int64_t asset_id;     /* the catalogue asset it stands for, 0 if none */
	int64_t first_seen;
} km_lineage_node;

/* "NAMESPACE NAME[@VERSION]" for people; "KIND:NAME@V" for keyward's own. */
void km_lineage_node_label(const km_lineage_node *n, char *buf, size_t cap);

/* ---- import ------------------------------------------------------------ */

typedef struct km_lineage_import_result {
	uint64_t files;       /* files read (1 for a file or "-") */
	uint64_t events;      /* events read and valid */
	uint64_t imported;    /* new events written */
	uint64_t duplicates;  /* already imported (run id + type + time): unchanged */
	uint64_t nodes;       /* nodes the import added */
	uint64_t edges;       /* edges the import added */
	uint64_t mapped;      /* dataset references a mapping rule joined to an asset */
	uint64_t unmapped;    /* dataset references no rule matched (still nodes) */
	uint64_t audit_seq;   /* the import's audit event */
} km_lineage_import_result;

/* Import OpenLineage run events (spec 2-0-2) from path: a file, a
 * directory (its regular files *.json and *.jsonl in name order, not
 * recursive), or "-" for standard input.  A file holds JSON lines (one
 * event per line, blank lines skipped) or one JSON array of events.
 *
 * Every event is checked in full before anything of it is written: the
 * fields 2-0-2 requires (eventTime as RFC 3339, producer, schemaURL,
 * run.runId as a UUID, job.namespace and job.name), eventType when present
 * one of START RUNNING COMPLETE ABORT FAIL OTHER, inputs and outputs arrays
 * of objects with string namespace and name, facets objects.  A bad event
 * ends the import with KM_EINVAL and "FILE:LINE: FIELD ..." in the message,
 * and nothing of the whole import is written (one transaction).  An event
 * already imported (same run.runId, eventType and eventTime) changes
 * nothing.  Datasets are joined to assets by the config's lineage_mappings
 * (first rule whose namespace and name patterns match, fnmatch(3)); the
 * rest become dataset nodes in their own namespace.  Files are opened with
 * the caller's rights.  One audit event "lineage.import" with the counts.
 * Needs lineage.import. */
km_status km_lineage_import(km_ctx *ctx, const char *path, km_lineage_import_result *out,
                            km_err *e);

/* The same from a buffer; origin names it in messages and the audit event.
 * Used by the pull and by tests. */
km_status km_lineage_import_buffer(km_ctx *ctx, const char *buf, size_t len,
                                   const char *origin, km_lineage_import_result *out,
                                   km_err *e);

/* Pull from a Marquez-compatible HTTP API (BASE/api/v1/events/lineage,
 * paged with limit and offset, oldest first) and import what it returns as
 * one import (as above: checked in full, one transaction, audited with
 * object "lineage:URL").  TLS is always verified; 429 and 5xx answers,
 * timeouts and refused connections are tried again (Retry-After honoured
 * up to max_wait_s, else exponential backoff from backoff_ms).  A failure
 * after the last attempt imports nothing.  Needs lineage.import. */
typedef struct km_lineage_pull_opts {
	int64_t since;        /* 0: every event; else only events after (Unix s) */
	uint32_t page_size;   /* events per request; 0: 100 */
	uint32_t timeout_s;   /* per request; 0: 30 */
	uint32_t attempts;    /* per page; 0: 5 */
	uint32_t max_wait_s;  /* the longest Retry-After honoured; 0: 60 */
	uint32_t backoff_ms;  /* first backoff; 0: 500 */
} km_lineage_pull_opts;

typedef struct km_lineage_pull_result {
	km_lineage_import_result import;
	uint64_t pages, requests, retries, retry_after_waits;
} km_lineage_pull_result;

km_status km_lineage_pull(km_ctx *ctx, const char *url, const km_lineage_pull_opts *o,
                          km_lineage_pull_result *out, km_err *e);

/* ---- queries ----------------------------------------------------------- */

/* One step of an explanation: the node reached and the edge that reached
 * it ("protected-by" for the first step: the asset under the key version). */
typedef struct km_lineage_step {
	int64_t node;
	const char *edge;    /* static string */
} km_lineage_step;

/* A node reached by a walk, with one shortest path from the start. */
typedef struct km_lineage_hit {
	km_lineage_node node;
	uint32_t depth;              /* edges from the start (assets: 0) */
	size_t path_len;
	const km_lineage_step *path; /* path[0] the asset, path[path_len-1] this node */
	/* Impact: the protection that put it there (assets only, else 0;
	 * kek_version 0 too when several versions of the key protected it,
	 * the interval then spanning all of theirs). */
	uint32_t kek_version;
	int64_t protected_from, protected_to; /* to: INT64_MAX while it lasts */
} km_lineage_hit;

typedef struct km_lineage_impact_summary {
	char key[129];
	uint32_t version;                 /* 0: every version of the key */
	int64_t as_of;
	uint64_t counts[KM_LN_KIND_COUNT]; /* nodes reached, by kind */
	uint64_t total;
	uint64_t cycles;                  /* back edges met (a cycle each) */
	char cycle_example[512];          /* "a -> b -> a", or "" */
} km_lineage_impact_summary;

/* Impact of key_name (version 0: all its versions) as of as_of (0: now):
 * every asset node it protected at some time up to as_of, then everything
 * downstream along derived-from, consumed-by and served-by edges first
 * seen by as_of; the first hop out of an asset only along edges seen while
 * the version protected it (first_seen before the protection ended and
 * last_seen after it began), so data re-protected under a newer version
 * after a rotation does not count against the old one.  Breadth first, so
 * each node's path is a shortest one.  cb gets every node (return nonzero
 * to stop); paths live until cb returns.  Needs lineage.read. */
km_status km_lineage_impact(km_ctx *ctx, const char *key_name, uint32_t version,
                            int64_t as_of,
                            int (*cb)(void *c, const km_lineage_hit *h), void *cbctx,
                            km_lineage_impact_summary *sum, km_err *e);

/* The same walk step by step, for a reader that shows a little of a large
 * graph at a time (the console's tree).  A walk's visits are numbered in
 * breadth-first order, 0 being the first start; visit i's children (the
 * nodes whose shortest path goes through it) are all known once visits
 * 0..i are expanded.  Expanded to the end, the visits in order are
 * exactly km_lineage_impact's hits, paths and all, however the expansion
 * was split.  The walk keeps no transaction or statement between calls:
 * as_of (0: now) is fixed when it begins, and each call reads the graph
 * as of that time.  Every call needs lineage.read.
 *
 * km_lineage_walk_impact: the walk of key_name (version 0: all its
 * versions) begun: its starts known, nothing expanded.
 * km_lineage_walk_expand: expand every visit up to and including
 * `through` (SIZE_MAX: all), and visits after it only while fewer than
 * max_known (0: no limit) nodes are known.
 * km_lineage_walk_hits: cb (nonzero stops) for visits from..to-1 that are
 * known, each node loaded, with its path; paths live until cb returns. */
typedef struct km_lineage_walk km_lineage_walk;
km_status km_lineage_walk_impact(km_ctx *ctx, const char *key_name, uint32_t version, int64_t as_of,
                                 km_lineage_walk **out, km_err *e);
km_status km_lineage_walk_expand(km_ctx *ctx, km_lineage_walk *w, size_t through, size_t max_known,
                                 km_err *e);
km_status km_lineage_walk_hits(km_ctx *ctx, km_lineage_walk *w, size_t from, size_t to,
                               int (*cb)(void *c, const km_lineage_hit *h), void *cbctx, km_err *e);
size_t km_lineage_walk_known(const km_lineage_walk *w);    /* visits known */
size_t km_lineage_walk_expanded(const km_lineage_walk *w); /* visits 0..n-1 expanded */
int64_t km_lineage_walk_as_of(const km_lineage_walk *w);
uint64_t km_lineage_walk_cycles(const km_lineage_walk *w); /* back edges met so far */
void km_lineage_walk_free(km_lineage_walk *w);

/* One upstream input of a model version and the key version that
 * protected it when it was consumed (key "" when none did). */
typedef struct km_lineage_input {
	km_lineage_hit hit;          /* path from the model upstream */
	int64_t consumed;            /* first time the edge into the path was seen */
	char key[129];
	uint32_t kek_version;
	char state[24];              /* that version's state now */
	int64_t activated, deactivated;
	uint32_t later_versions;     /* rotations of the key since */
	int64_t next_rotation;       /* created time of the next version, 0 if none */
	/* The requests behind that key version (km_lineage_version_approvals),
	 * filled by km_lineage_provenance; valid until cb returns. */
	size_t napprovals;
	const struct km_lineage_approval *approvals;
} km_lineage_input;

typedef struct km_lineage_provenance_summary {
	km_lineage_node model;
	uint64_t inputs;
	uint64_t protected_inputs;
	uint64_t cycles;
	char cycle_example[512];
} km_lineage_provenance_summary;

/* Provenance of MODEL@VERSION (model_spec: "NAME@VERSION", NAME either an
 * OpenLineage dataset name or a catalogue model name): every node upstream
 * of it along flow edges, breadth first, each with the key version that
 * protected it at the time of the consumption on its path and the
 * requests behind that version (km_lineage_version_approvals), each row
 * through its seal.  Redacted for roles without need-to-know (below).
 * Needs lineage.read. */
km_status km_lineage_provenance(km_ctx *ctx, const char *model_spec,
                                int (*cb)(void *c, const km_lineage_input *in), void *cbctx,
                                km_lineage_provenance_summary *sum, km_err *e);

/* ---- reports ----------------------------------------------------------- */

typedef enum km_lineage_report_kind {
	KM_LINEAGE_REPORT_PROVENANCE,  /* subject: MODEL@VERSION */
	KM_LINEAGE_REPORT_IMPACT,      /* subject: KEY[@VERSION]; "compromise-impact" */
} km_lineage_report_kind;

typedef struct km_lineage_report_opts {
	km_lineage_report_kind kind;
	const char *subject;
	int64_t as_of;   /* impact: 0 now */
	int redact;      /* 1: always; 0: by role (only officers and admins see names) */
} km_lineage_report_opts;

/* A report as one JSON document (*out, new reference): the query's nodes
 * with their paths, a summary, "tree_head" (the newest signed tree head:
 * size, root, time, signature) and "audit_events" (the seqs of the imports
 * that built the graph and of every event about the keys it names).
 * Redacted ("redacted": true) for every role without need-to-know (neither
 * officer nor admin) or when asked: dataset, job and namespace names and
 * key owners are replaced by stable pseudonyms (an HSM MAC of the name), so
 * the document holds none of them.  Needs lineage.read. */
km_status km_lineage_report(km_ctx *ctx, const km_lineage_report_opts *o, json_t **out, km_err *e);

/* ---- browsing ---------------------------------------------------------- */

/* A node by "#ID" (or a bare number), "KIND:NAME[@VERSION]" (catalogue
 * assets), or "NAME[@VERSION]" (any namespace; KM_EINVAL listing the
 * candidates when more than one node has that name). */
km_status km_lineage_node_find(km_ctx *ctx, const char *spec, km_lineage_node *out, km_err *e);

typedef struct km_lineage_edge {
	int64_t src, dst;
	const char *kind;     /* "derived-from", "consumed-by", "served-by" */
	int64_t first_seen, last_seen;
	int64_t job;          /* 0 if none */
} km_lineage_edge;

typedef struct km_lineage_protection {
	int64_t node;
	int64_t asset_id;
	char key[129];
	uint32_t kek_version;
	int64_t valid_from, valid_to; /* to: INT64_MAX while it lasts */
} km_lineage_protection;

/* A node's neighbourhood: facets (JSON text or NULL), edges in and out,
 * its protections.  Callbacks may be NULL.  Needs lineage.read. */
typedef struct km_lineage_show_cbs {
	void (*node)(void *c, const km_lineage_node *n, const char *facets);
	void (*edge)(void *c, const km_lineage_edge *ed, const km_lineage_node *other, int incoming);
	void (*protection)(void *c, const km_lineage_protection *p);
	void *c;
} km_lineage_show_cbs;
km_status km_lineage_show(km_ctx *ctx, const char *spec, const km_lineage_show_cbs *cbs,
                          km_err *e);

/* The whole graph, nodes first, then edges, then protections.  Needs
 * lineage.read. */
typedef struct km_lineage_export_cbs {
	int (*node)(void *c, const km_lineage_node *n);
	int (*edge)(void *c, const km_lineage_edge *ed);
	int (*protection)(void *c, const km_lineage_protection *p);
	void *c;
} km_lineage_export_cbs;
km_status km_lineage_export(km_ctx *ctx, const km_lineage_export_cbs *cbs, km_err *e);

/* ---- approvals behind a key version ------------------------------------ */

#define KM_LINEAGE_APPROVERS_MAX 8

/* One request that decided about a key version, with who signed it. */
typedef struct km_lineage_approval {
	char request_id[40];
	char kind[24];              /* "rotate", "emergency-rotate", "state", ... */
	char state[16];             /* "executed", "pending", "rejected", ... (as read now) */
	char object[160];           /* "key:NAME" or "key:NAME@V" */
	int64_t created, decided;   /* decided 0 while open */
	size_t napprovers;          /* approvals and rejections recorded */
	struct km_lineage_approver {
		char name[64];
		int approve;             /* 1 approved, 0 rejected */
		int64_t time;
	} approvers[KM_LINEAGE_APPROVERS_MAX]; /* the first KM_LINEAGE_APPROVERS_MAX */
} km_lineage_approval;

/* The requests that decided about KEY@VERSION, oldest first: those on the
 * version itself (state changes, destruction, the emergency rotation a
 * compromise opens) and the key-wide ones (rotations) opened since the
 * version before it was created, so the rotation that made this version
 * and every rotation since.  Each request and approval row is read through
 * its HSM seal (KM_EINTEGRITY naming the first that fails).  Approver
 * names are people, not data, and are never redacted.  Needs lineage.read. */
km_status km_lineage_version_approvals(km_ctx *ctx, const char *key, uint32_t version,
                                       int (*cb)(void *c, const km_lineage_approval *a), void *cbctx,
                                       km_err *e);

/* ---- need-to-know redaction --------------------------------------------- */

/* Roles without need-to-know (every role but officer and admin) never see
 * dataset, job, feature, model, endpoint or namespace names, nor key
 * owners: each is replaced by a stable pseudonym "KIND-xxxxxxxxxx", the
 * first bytes of an HSM MAC (row-MAC key) over the name, so the same name
 * is the same pseudonym in every answer and report of the deployment and
 * cannot be guessed back without the HSM.  keyward's own asset nodes keep
 * their kind prefix ("feature:feature-0123456789@7").  Key names,
 * versions, states and times are not redacted.
 *
 * km_lineage_impact, km_lineage_provenance, km_lineage_show (facets are
 * withheld: they hold names), km_lineage_export, km_lineage_node_find and
 * km_lineage_report all apply it in the core, so no front end holds a
 * redacted name. */

/* 1 when this session's lineage answers are redacted. */
int km_lineage_redacting(km_ctx *ctx);
/* Ask for redaction although the role may see names (on = 1); on = 0
 * returns to the role's rule (it never lifts redaction from a role). */
void km_lineage_set_redact(km_ctx *ctx, int on);
/* The pseudonym of name as a `what` ("dataset", "namespace", "owner", a
 * kind name).  Names are cached for the session.  An HSM failure is an
 * error, never the name. */
km_status km_lineage_pseudonym(km_ctx *ctx, const char *what, const char *name, char *out, size_t cap,
                               km_err *e);
/* Redact a node in place when the session is redacting (else unchanged). */
km_status km_lineage_node_redact(km_ctx *ctx, km_lineage_node *n, km_err *e);

/* ---- helpers ----------------------------------------------------------- */

/* RFC 3339 date-time ("2026-11-30T12:00:00.123+01:00", "Z" or an offset;
 * a lowercase t or z too) to Unix milliseconds.  KM_EINVAL if malformed.
 * Also accepts a bare date "2026-11-30" (midnight UTC) when date_only_ok. */
km_status km_lineage_time_parse(const char *s, int date_only_ok, int64_t *ms, km_err *e);

#endif
