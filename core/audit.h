/*
 * audit.h — keyward's tamper-evident audit log: storage, tree heads,
 * verification and queries.  docs/audit.md explains the design.
 *
 * Every event is one canonical JSON object, stored with its RFC 6962 leaf
 * hash; the log is an RFC 6962 / 9162 Merkle tree over those leaves, and its
 * tree heads are C2SP tlog-checkpoint texts signed by the HSM audit key
 * (ECDSA P-256 over SHA-256 of the text).  audit_verify() recomputes
 * everything from the event bytes and reports the first entry that does not
 * check out, in a sentence a person understands.
 *
 * The database is writable by whoever can reach the file, so nothing read
 * from it is trusted by itself.  What is trusted: the audit public key, and
 * the anchor — the newest (size, root) keyward signed, kept by the caller
 * where the database cannot reach it (a private object in the HSM token).
 * Before signing a new head the writer proves, against the anchored root,
 * that the log only grew since; a rewritten or truncated history is refused
 * and never signed.
 *
 * The caller owns the connection and the transaction.  audit_append() and
 * audit_sign_head() must run inside the caller's write transaction
 * (BEGIN IMMEDIATE): that is how an event lands atomically with the change
 * it records, and how two processes never hand out the same sequence
 * number.  The readers (verify, proofs, queries) open a read transaction of
 * their own when the caller has none, so they see one consistent snapshot.
 *
 * This module must never: store key material in an event (details with
 * key-material names are refused), change or delete an event, or write
 * anything during verification (auditors verify read-only).
 */
#ifndef KM_AUDIT_H
#define KM_AUDIT_H

#include "km.h"
#include "merkle.h"
#include "audit_types.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

/* The audit tables as this version creates them (several statements;
 * sqlite3_exec them once on an empty database).  Filter columns are
 * generated from the JSON, so they can never disagree with what was hashed.
 * The catalogue's migrations run the same text in its two historical steps:
 * audit_schema_v1_sql (events, heads, frontier, meta) and, at catalogue
 * schema 4, audit_schema_v4_sql (the stored tree nodes) followed by
 * audit_nodes_backfill(). */
extern const char audit_schema_sql[];
extern const char audit_schema_v1_sql[];
extern const char audit_schema_v4_sql[];

/* Fill audit_nodes from the stored leaf hashes (a log written before nodes
 * were stored): every node of level >= 1 the log has, replacing whatever
 * the table held.  Runs inside the caller's write transaction (the
 * migration's); O(n) hashes and inserts.  Stops quietly at the first gap or
 * damaged leaf hash: nodes past it cannot be derived, and audit_verify
 * reports the damage.  KM_EUSAGE outside a write transaction. */
km_status audit_nodes_backfill(sqlite3 *db, km_err *e);

_Static_assert(AUDIT_HASH_BYTES == MERKLE_HASH_BYTES, "audit hashes are Merkle hashes");

#define AUDIT_SIG_BYTES 64    /* ECDSA P-256 raw r||s, as hsm_audit_sign() makes */

/* ------------------------------------------------------------ writing */

typedef struct audit_event {
	const char *actor;   /* who: a user name, "system", a service id; non-empty */
	const char *action;  /* what: "key.rotate", "audit.verify"...; non-empty */
	const char *object;  /* what it touched: "features/credit-risk"; NULL for none */
	const char *outcome; /* "ok" | "denied" | "error" */
	json_t *details;     /* borrowed, may be NULL; a JSON object of strings,
	                      * integers, booleans, null, arrays and objects —
	                      * no real numbers, never key material */
} audit_event;

/* Append one event at seq = last seq + 1 (1-based, contiguous).  The event
 * text is
 *   {"action":..,"actor":..,"details":{..},"object":..,"outcome":..,"seq":N,"time":".."}
 * serialised by Jansson with JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII
 * (sorted keys, no whitespace, pure ASCII); time is the current UTC time,
 * RFC 3339 with milliseconds, but never earlier than the previous event's.
 * Stores the leaf hash, the tree nodes the leaf completes (audit_nodes) and
 * advances the stored Merkle frontier.
 *   KM_EUSAGE       not inside a write transaction; missing field; outcome
 *                   not one of the three
 *   KM_EINVAL       details not an object, holds a real number, nests
 *                   deeper than 32, or a string is not UTF-8
 *   KM_EINTERNAL    details has a key named key, dek, kek, secret, pin,
 *                   passphrase or plaintext (any case): a caller bug that
 *                   would leak key material into the log
 *   KM_EINTEGRITY   the stored frontier does not match the log, or a node
 *                   the leaf completes is already stored (tampered or
 *                   damaged; run audit_verify)
 * *seq_out (may be NULL) receives the new sequence number. */
km_status audit_append(sqlite3 *db, const audit_event *ev, uint64_t *seq_out, km_err *e);

/* A writer for many appends in one transaction: statements prepared once,
 * the frontier kept in memory and written back by audit_writer_sign_head.
 * It remembers the frontier the log had when the transaction began (its
 * first append or sign), which is what the anchor check proves, and signs
 * a root computed from that proven state plus its own appends — never a
 * root read back from the database.  Call audit_writer_reset whenever a
 * transaction ends (commit or rollback); free it before closing the
 * connection.  audit_append is a one-event writer.  After an error from
 * any writer call, roll the transaction back. */
typedef struct audit_writer audit_writer;
km_status audit_writer_new(sqlite3 *db, audit_writer **out, km_err *e);
void audit_writer_free(audit_writer *w);
void audit_writer_reset(audit_writer *w);
/* Event times from this clock (Unix seconds) instead of the real one: the
 * session's injected clock (km_set_clock).  Times still never decrease. */
void audit_writer_set_clock(audit_writer *w, int64_t (*clock)(void *c), void *clock_ctx);
/* As audit_append, and also stores the nodes the new leaf completes
 * (KM_EINTEGRITY if one is already there: tampered or damaged). */
km_status audit_writer_append(audit_writer *w, const audit_event *ev, uint64_t *seq_out, km_err *e);

/* Sign digest (SHA-256 of the checkpoint text) with the audit key: raw
 * r||s.  hsm_audit_sign() has this shape once ctx is bound to the hsm. */
typedef km_status (*audit_sign_fn)(void *ctx, const uint8_t digest[32],
                                   uint8_t sig[AUDIT_SIG_BYTES], km_err *e);

/* The newest tree keyward vouched for, kept outside the database (the
 * caller stores it in the HSM token after every commit).  have = 0: no
 * anchor is known, and nothing is checked against one (a deployment made
 * before anchors existed, until its first commit stores one).  An anchor of
 * size 0 must carry the empty tree's root, SHA-256(""). */
typedef struct audit_anchor {
	int have;
	uint64_t size;
	uint8_t root[MERKLE_HASH_BYTES];
} audit_anchor;

/* Prove that the log extends the anchor a (may be NULL: none), then, if the
 * log is longer than its newest tree head, sign a head for the whole log:
 * checkpoint text (see audit_checkpoint_text) with the time now, signed
 * through sign(sign_ctx, ...), stored in audit_tree_heads.  Nothing to sign
 * (KM_OK) when the newest head already covers the log.  Call it inside the
 * write transaction, just before every COMMIT, so that every committed
 * event is covered by a signed head.
 *
 * The proof, with n0 the log's size when the transaction began and m the
 * anchored size: n0 == m: the root at n0 must be the anchored root.
 * n0 > m (the anchor lags, e.g. a process died between COMMIT and storing
 * the anchor): an RFC 9162 consistency proof m -> n0 built from the stored
 * nodes must verify against the anchored root and the root at n0, and a
 * tree head at exactly n0 with that root must carry a valid signature by
 * pub (the audit public key) — so entries an attacker appended past the
 * anchor are never signed.  n0 < m: entries were deleted.  Any failure:
 * KM_EINTEGRITY naming the size that disagrees, and nothing is signed.
 * The signed root is the proven root extended by this transaction's own
 * appends.  pub may be NULL only while the log is at the anchored size or
 * there is no anchor (KM_EUSAGE otherwise).
 *   KM_EUSAGE       not inside a write transaction; pub missing (above)
 *   KM_ECONFIG      audit_meta has no 'origin'
 *   KM_EINTEGRITY   the proof failed (above); the log is shorter than its
 *                   newest head (entries were deleted); the frontier does
 *                   not match the log, or a stored node is missing
 *   whatever sign() returns (the head is not stored then) */
km_status audit_writer_sign_head(audit_writer *w, const audit_anchor *a, EVP_PKEY *pub,
                                 audit_sign_fn sign, void *sign_ctx, km_err *e);

/* After audit_writer_sign_head succeeded in this transaction: the anchor to
 * store once the transaction has committed (never before: an anchor ahead
 * of the log would refuse every later commit) — the head just signed, or,
 * when there was nothing to sign, the proven state of the log (which moves
 * a lagging anchor forward).  Size 0 gives the empty tree's root.  With no
 * anchor given to the sign call, it is the log as found (trust on first
 * use).  An anchor must never move to a smaller size: the caller keeps the
 * larger when two processes race.  KM_EUSAGE if no sign call succeeded
 * since the last reset or append. */
km_status audit_writer_anchor(const audit_writer *w, audit_anchor *out, km_err *e);

/* audit_writer_sign_head for a caller that appended with audit_append: it
 * cannot tell which entries this transaction added, so it takes every
 * entry after the newest signed head (or after the anchor, if that is
 * newer) as the caller's own.  The base (the newer of the anchor and the
 * newest head) is proven as above, and the stored frontier must extend it
 * (a consistency proof from the stored nodes).  keyward itself signs
 * through a writer; this is for tools and tests. */
km_status audit_sign_head(sqlite3 *db, const audit_anchor *a, EVP_PKEY *pub,
                          audit_sign_fn sign, void *sign_ctx, km_err *e);

/* The checkpoint text that a tree head signs, in the C2SP tlog-checkpoint
 * shape:
 *   "<origin>\n<size>\n<base64 root>\ntime <unix seconds>\n"
 * (the last line is an extension line).  Writes at most cap bytes including
 * the terminating NUL; returns the text length, or 0 if cap is too small or
 * the origin is empty or holds a newline. */
size_t audit_checkpoint_text(const char *origin, uint64_t size, const uint8_t root[32],
                             int64_t time, char *buf, size_t cap);

/* The log's origin line from audit_meta, e.g. "keyward/3f9c...".
 * KM_ENOTFOUND if not set; KM_EUSAGE if cap is too small. */
km_status audit_origin(sqlite3 *db, char *buf, size_t cap, km_err *e);

/* ------------------------------------------------------------ reading */


/* Event `seq`; KM_ENOTFOUND if there is none. */
km_status audit_get(sqlite3 *db, uint64_t seq, audit_row *out, km_err *e);


/* Number of events: the highest sequence number (0 for an empty log). */
km_status audit_size(sqlite3 *db, uint64_t *n, km_err *e);

/* The newest signed tree head.  *have = 0 (and the rest zeroed) if none. */
km_status audit_latest_head(sqlite3 *db, uint64_t *size, uint8_t root[MERKLE_HASH_BYTES],
                            int64_t *time, uint8_t sig[AUDIT_SIG_BYTES], int *have, km_err *e);



/* Events matching f (may be NULL), newest first, with seq < before_seq
 * (0 = from the newest), at most limit rows (limit <= 0: 50).  Keyset
 * pagination: pass the last row's seq as before_seq to get the next page.
 * Walks the index of the most selective filter (probed first), and turns a
 * time range into a seq range (times never decrease along the log): a few
 * milliseconds on a million events. */
km_status audit_query(sqlite3 *db, const audit_filter *f, uint64_t before_seq, int limit,
                      audit_row_fn row_cb, void *ctx, km_err *e);

/* ------------------------------------------------------------ verifying */



/* Verify the whole log against the audit public key `pub` and the anchor
 * `a`, streaming every event in sequence order in constant memory,
 * read-only.  Checks: sequence numbers contiguous from 1; each event's own
 * "seq" equals its row; the event text has the canonical shape; recomputed
 * leaf hash equals the stored one; at each tree head's size the recomputed
 * root equals the head's root and the head's signature verifies over its
 * checkpoint text; at the anchored size the recomputed root equals the
 * anchored root, and the log is not shorter than the anchor; no head is
 * beyond the end of the log; every entry is covered by a signed head; times
 * never decrease; every stored tree node equals the recomputed one and none
 * lies beyond the log; the stored frontier matches the entries.  Stops at
 * the first problem.
 *
 * a == NULL (or a->have == 0) means no anchor is known: everything else is
 * checked, r->anchor_checked stays 0, and a log truncated exactly at one of
 * its heads cannot be told from a shorter log.  keyward always passes the
 * anchor from its HSM; NULL is for verifiers holding only the public key.
 * Read the anchor before opening the snapshot verified: anchors are stored
 * after COMMIT, so one read first is never ahead of the snapshot.
 *
 * Returns KM_OK with r->intact 0 or 1 when verification ran; an error
 * status only when it could not run (database error; KM_EBUSY when
 * cancelled).  For logs of more than 4096 entries it runs a helper thread
 * for hashing; the connection is only ever used on the calling thread (fine
 * with SQLITE_OPEN_NOMUTEX).  See docs/audit.md for the problems it reports
 * and their first_bad_seq. */
km_status audit_verify(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a,
                       audit_progress_fn progress, void *pctx,
                       audit_verify_result *r, km_err *e);

/* audit_verify, and visit (may be NULL) is called with every entry once it
 * is proven, in seq order; after a problem no further entry is visited. */
km_status audit_verify_visit(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a,
                             audit_progress_fn progress, void *pctx, audit_visit_fn visit,
                             void *vctx, audit_verify_result *r, km_err *e);

/* Verify one entry: its text is canonical (re-serialised by Jansson) and its
 * own "seq" matches, its leaf hash matches the text, it is included in the
 * newest signed tree head (inclusion proof from the stored nodes), that
 * head's signature verifies, and (with an anchor, see audit_verify) that
 * head is provably consistent with the anchor — an RFC 9162 consistency
 * proof between the two, whichever is larger.  KM_OK with r->intact 0/1 as
 * above (r->entries_* count this one entry); KM_ENOTFOUND if there is no
 * such entry. */
km_status audit_verify_entry(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a, uint64_t seq,
                             audit_verify_result *r, km_err *e);

/* Inclusion proof of entry `seq` (1-based) in the tree of the first
 * tree_size entries, leaf-most hash first, for an auditor to check with
 * merkle_verify_inclusion(leaf_hash, seq - 1, tree_size, ...) against a
 * signed head of that size.  proof must hold MERKLE_PROOF_MAX hashes.
 * Reads O(log tree_size) stored nodes.  KM_EUSAGE if seq is 0 or beyond
 * tree_size, or tree_size beyond the log; KM_EINTEGRITY if a node it needs
 * is missing or damaged (a damaged node gives a proof that fails to verify;
 * audit_verify finds both). */
km_status audit_inclusion_proof(sqlite3 *db, uint64_t seq, uint64_t tree_size,
                                uint8_t (*proof)[MERKLE_HASH_BYTES], size_t *proof_len, km_err *e);

/* Consistency proof between the trees of the first `first` and the first
 * `second` entries (RFC 9162): lets a SIEM holding an old signed head check
 * that the current head extends it.  Same conventions as above. */
km_status audit_consistency_proof(sqlite3 *db, uint64_t first, uint64_t second,
                                  uint8_t (*proof)[MERKLE_HASH_BYTES], size_t *proof_len,
                                  km_err *e);

/* ------------------------------------------------------------ evidence for outsiders */

/* One stored tree head: the checkpoint text it signs is
 * audit_checkpoint_text(origin, size, root, time). */
typedef struct audit_head {
	uint64_t size;
	uint8_t root[MERKLE_HASH_BYTES];
	int64_t time;
	uint8_t sig[AUDIT_SIG_BYTES]; /* raw r||s by the audit key */
} audit_head;

/* The stored tree head with the largest size <= max_size (UINT64_MAX: the
 * newest).  *have = 0 (and *out zeroed) when there is none.  Nothing is
 * checked: verify the signature before trusting it.  KM_EINTEGRITY if the
 * row is malformed. */
km_status audit_head_at_most(sqlite3 *db, uint64_t max_size, audit_head *out, int *have, km_err *e);

/* The perfect subtrees that tile entries 1..size, largest (leftmost)
 * first, one per set bit of size (at most 64): the compact frontier of the
 * tree of the first size entries, read from the stored nodes (level 0: the
 * stored leaf hash).  With them, whoever holds entries size+1..n can
 * recompute the root at n without the entries before.  KM_EUSAGE if size
 * is beyond the log; KM_EINTEGRITY if a node is missing or damaged. */
km_status audit_prefix_subtrees(sqlite3 *db, uint64_t size, uint8_t (*hashes)[MERKLE_HASH_BYTES],
                                size_t *n, km_err *e);

/* MTH of the first size entries, folded from audit_prefix_subtrees
 * (SHA-256("") for 0).  Derived data: compare it with a signed root. */
km_status audit_root_at(sqlite3 *db, uint64_t size, uint8_t root[MERKLE_HASH_BYTES], km_err *e);

/* Events first..last (1-based, inclusive) oldest first, one snapshot;
 * rows are borrowed as in audit_query; nonzero from row_cb stops. */
km_status audit_scan(sqlite3 *db, uint64_t first, uint64_t last, audit_row_fn row_cb, void *ctx,
                     km_err *e);

/* The first entry whose time is at or after `since` (an RFC 3339 prefix,
 * compared as text: "2026-11-23" is that day's start).  *seq = 0: none. */
km_status audit_first_since(sqlite3 *db, const char *since, uint64_t *seq, km_err *e);

/* The signed note (c2sp.org/signed-note, type 0x02) of stored head h under
 * `origin`, its signature checked with pub first: a stored head is data
 * like any other (KM_EINTEGRITY when it does not verify).  For
 * auditproof.c's checkpoints and the forwarder's witness sink. */
struct km_audit_checkpoint;
km_status audit_head_note(EVP_PKEY *pub, const char *origin, const audit_head *h,
                          struct km_audit_checkpoint *cp, km_err *e);
#endif
