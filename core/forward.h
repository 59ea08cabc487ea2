/*
 * forward.h — delivering the audit log off the host: webhooks, JSON-lines
 * files and checkpoint witnesses.  docs/audit.md ("Forwarding") explains
 * the design.
 *
 * The outbox is the log itself.  Events are already durable, ordered and
 * numbered the moment their transaction commits, so the only state a sink
 * needs is how far it got: a cursor (the highest seq it acknowledged) per
 * sink, in audit_forward.  Nothing is added to the append path, and an
 * event is "in the outbox" in exactly the transaction that appends it.
 *
 * Delivery is at least once, in seq order, in batches; seq is the
 * idempotency key.  The cursor moves only after the sink acknowledged a
 * batch (an HTTP 2xx; a file written and fsync'ed), with a compare-and-set
 * so two forwarders never both advance it.  A forwarder killed at any point
 * re-sends at most the batch it had in flight.
 *
 * The cursor decides nothing about security: tampering with it can only
 * re-send events (harmless, dropped by seq) or skip some, which the
 * receiver sees, because every batch names the seq it follows
 * ("after_seq") and a receiver holding batch k expects after_seq == the
 * last seq it holds.  So the cursor is a plain row, not a sealed one.
 *
 * A witness sink speaks the C2SP tlog-witness protocol (c2sp.org/
 * tlog-witness, "add-checkpoint"): its cursor is the tree size the witness
 * last cosigned, and each run sends "old <cursor>", an RFC 9162 consistency
 * proof from there to the newest signed head, and that head as a signed
 * note.  A witness that holds a larger tree than the log, or a different
 * one, is an alarm (KM_EINTEGRITY, and an audit.witness event), never a
 * silent resync.  With the witness's verifier key configured, its
 * cosignature is verified (Ed25519, c2sp.org/tlog-cosignature) before the
 * cursor moves, and kept in audit_cosignatures for `audit export`.
 *
 * Sinks come from config.json's "audit_sinks" array (km_sinks_parse).  A
 * webhook's HMAC secret is read from its file for each run, kept in locked
 * memory and cleansed; it is never printed.  TLS is always verified.
 */
#ifndef KM_FORWARD_H
#define KM_FORWARD_H

#include "km.h"
#include "keyward.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <jansson.h>

#define KM_SINK_NAME_MAX 32   /* [a-z0-9_-], 1..31 characters */
#define KM_SINKS_MAX 8
#define KM_WITNESS_NAME_MAX 256  /* a witness key name, NUL included */

typedef enum km_sink_kind {
	KM_SINK_WEBHOOK = 0,  /* POST JSON batches of events */
	KM_SINK_FILE = 1,     /* append JSON lines, fsync */
	KM_SINK_WITNESS = 2,  /* tlog-witness add-checkpoint of each new signed tree head */
} km_sink_kind;

/* One sink, as config.json describes it (defaults filled). */
typedef struct km_sink {
	char name[KM_SINK_NAME_MAX];
	km_sink_kind kind;
	char url[1024];                    /* webhook: http(s) URL; witness: its submission
	                                    * prefix (keyward posts to URL/add-checkpoint) */
	char path[PATH_MAX];               /* file */
	char hmac_secret_file[PATH_MAX];   /* "" none: X-Keyward-Signature */
	char client_cert[PATH_MAX];        /* "" none: TLS client certificate (PEM) */
	char client_key[PATH_MAX];         /* "" none: its key (PEM), else in client_cert */
	char ca_file[PATH_MAX];            /* "" system CAs */
	uint32_t batch;                    /* events per batch (default 1000) */
	uint32_t connect_timeout_s;        /* default 10 */
	uint32_t timeout_s;                /* whole request, default 30 */
	uint32_t attempts;                 /* tries per batch in a one-shot run (default 8) */
	uint32_t backoff_ms;               /* first retry wait (default 500), doubling */
	uint32_t backoff_max_s;            /* cap of a wait, Retry-After included (default 60) */
	/* witness: its cosignature key, from "verifier_key" (a signed-note
	 * verifier key "name+hex key ID+base64(0x04 || Ed25519 key)"); has_vkey
	 * 0: the witness's 200 is taken on trust and nothing is stored */
	int has_vkey;
	char vkey_name[KM_WITNESS_NAME_MAX];
	uint32_t vkey_id;
	uint8_t vkey_pub[32];
} km_sink;

/* Check config.json's "audit_sinks" value (an array of objects) and fill
 * out[0..*n) (cap entries).  Relative paths resolve against home.  Unknown
 * fields, wrong types, a missing url/path, a URL that is not http(s), a
 * duplicate name, client_key without client_cert, a verifier_key on
 * another sink than a witness, or one that is not a well-formed type 0x04
 * key whose key ID matches its name and key: KM_ECONFIG naming the
 * sink by index and the field, e.g.
 *   config.json: "audit_sinks"[1].url must be an http:// or https:// URL
 * spec NULL: no sinks (*n = 0). */
km_status km_sinks_parse(const json_t *spec, const char *home, const char *origin,
                         km_sink *out, size_t cap, size_t *n, km_err *e);

/* What one sink's delivery did in this run. */
typedef struct km_forward_sink_result {
	char name[KM_SINK_NAME_MAX];
	km_sink_kind kind;
	uint64_t delivered;        /* events (witness: heads) acknowledged this run */
	uint64_t batches;          /* requests or writes acknowledged */
	uint64_t retries;          /* tries after the first, all batches */
	uint64_t retry_after_waits;/* waits a Retry-After header set */
	uint64_t cursor;           /* seq (witness: tree size) acknowledged, after the run */
	uint64_t lag;              /* events (witness: entries) not yet acknowledged */
	uint64_t conflicts;        /* witness: 409 answers resolved by resending from its size */
	uint64_t cosignatures;     /* witness: cosignatures verified and stored */
	int alarm;                 /* witness: it holds a tree this log does not extend */
	uint64_t witness_size;     /* witness: the size it last said it holds (0: unknown) */
	km_status status;          /* KM_OK, or why the sink stopped */
	char error[KM_ERR_MSG_MAX];
} km_forward_sink_result;

typedef struct km_forward_opts {
	const char *sink;                 /* only this sink (NULL: every sink) */
	int follow;                       /* loop until *stop, polling for new events */
	uint32_t poll_ms;                 /* follow: wait when caught up (default 1000) */
	volatile sig_atomic_t *stop;      /* may be NULL; checked between batches and waits */
} km_forward_opts;

/* Called after every acknowledged batch and every failure (may be NULL). */
typedef void (*km_forward_progress_fn)(void *pctx, const km_forward_sink_result *r);

/* `keyward audit forward`: authorise audit.forward, record one audit.forward
 * event naming the sinks (before delivering, so it travels with this run),
 * then deliver every sink (or o->sink) from its cursor to the end of the
 * log, batch by batch; with o->follow keep going until *o->stop.  Per
 * batch: a 429, a 5xx, a timeout or a refused connection is tried again
 * after the Retry-After the server asks for (capped) or an exponential
 * backoff with jitter; in a one-shot run a batch gives up after the sink's
 * attempts, in follow mode it never gives up (waits stay capped).  Any
 * other answer (a 4xx, a TLS failure) stops that sink.  One sink failing
 * does not stop the others.  A witness sink in alarm (r->alarm: it holds a
 * larger tree, or another tree of a size this log has) is recorded as one
 * audit.witness event (outcome "error", details alarm, sink, url,
 * witness_size, message) per sink and run.  results[0..*n) (cap
 * KM_SINKS_MAX) report each sink.  Returns the first failing sink's status (KM_EIO for delivery),
 * KM_ENOTFOUND if o->sink names no sink, KM_ECONFIG when there are none. */
km_status km_forward(km_ctx *ctx, const km_forward_opts *o, km_forward_progress_fn progress,
                     void *pctx, km_forward_sink_result *results, size_t *n, km_err *e);

/* Each configured sink's cursor and lag, for `keyward status` and the status
 * bar (no authorisation of its own: callers hold audit.read or status).
 * A sink never delivered has cursor 0. */
typedef struct km_sink_lag {
	char name[KM_SINK_NAME_MAX];
	km_sink_kind kind;
	uint64_t cursor;
	uint64_t lag;
} km_sink_lag;
km_status km_forward_lags(km_ctx *ctx, km_sink_lag *out, size_t cap, size_t *n, km_err *e);

const char *km_sink_kind_name(km_sink_kind k);

#endif
