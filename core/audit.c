/*
 * audit.c — the audit log: canonical events, Merkle frontier, signed tree
 * heads, verification, proofs and filtered queries.
 *
 * The tables are the truth about what the log holds, not about what was
 * signed: anyone who can write the file can rewrite them, derived tables
 * (frontier, nodes) included.  So everything read from them is an input to
 * a proof checked against a root that is trusted — a head signature that
 * verifies, or the anchor the caller keeps in the HSM — and the signer only
 * signs a root it computed from a proven state plus its own appends.
 * Nothing is cached between transactions: the frontier (at most 64 rows) is
 * read inside the caller's write transaction, so several processes
 * appending to one database never disagree.
 *
 * Verification is the hot path (a million events must verify within a small
 * multiple of hashing their bytes).  It splits into a reader, which steps
 * SQLite, copies rows into batches and hashes a share of the leaves, and a
 * checker, which hashes the rest and does every comparison; the two run on
 * two threads and overlap.  Every decision is the checker's, so problems are
 * reported strictly in log order.
 */
#include "audit.h"
#include "hsm.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The audit tables of catalogue schema 1 ... */
#define AUDIT_SCHEMA_V1                                                                              \
	"CREATE TABLE audit_events(seq INTEGER PRIMARY KEY, json TEXT NOT NULL, leaf_hash BLOB NOT NULL, " \
	"time TEXT GENERATED ALWAYS AS (json_extract(json,'$.time')) VIRTUAL, "                       \
	"actor TEXT GENERATED ALWAYS AS (json_extract(json,'$.actor')) VIRTUAL, "                     \
	"action TEXT GENERATED ALWAYS AS (json_extract(json,'$.action')) VIRTUAL, "                   \
	"object TEXT GENERATED ALWAYS AS (json_extract(json,'$.object')) VIRTUAL, "                   \
	"outcome TEXT GENERATED ALWAYS AS (json_extract(json,'$.outcome')) VIRTUAL);\n"              \
	"CREATE INDEX audit_events_object ON audit_events(object, seq);\n"                           \
	"CREATE INDEX audit_events_actor ON audit_events(actor, seq);\n"                             \
	"CREATE INDEX audit_events_action ON audit_events(action, seq);\n"                           \
	"CREATE INDEX audit_events_outcome ON audit_events(outcome, seq);\n"                         \
	"CREATE INDEX audit_events_time ON audit_events(time);\n"                                    \
	"CREATE TABLE audit_tree_heads(size INTEGER PRIMARY KEY, root BLOB NOT NULL, "                \
	"time INTEGER NOT NULL, signature BLOB NOT NULL);\n"                                          \
	"CREATE TABLE audit_frontier(level INTEGER PRIMARY KEY, hash BLOB NOT NULL);\n"               \
	"CREATE TABLE audit_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"

/* ... and of schema 4: node (level, idx) of the Merkle tree for every
 * level >= 1 (level 0, the leaves, is audit_events.leaf_hash), so proofs
 * cost O(log n) lookups.  Keyed by (level, idx) with no rowid: each level's
 * nodes are appended in order, and a lookup is one b-tree descent. */
#define AUDIT_SCHEMA_V4                                                                      \
	"CREATE TABLE audit_nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, " \
	"PRIMARY KEY(level, idx)) WITHOUT ROWID;\n"

/* ... and of schema 14: the filter columns become ordinary columns that
 * the writer fills from the event it serialises.  As generated columns,
 * every index entry re-parsed the event text with json_extract (SQLite
 * 3.40 caches no parse across them); now they cost nothing to compute.
 * They are copies, not the evidence: audit verify checks each row's
 * columns against its hashed text.  The rebuild keeps every row as it is
 * (json_extract of the old generated columns, once).  The outcome index
 * keeps only the rare outcomes (denied, error): "ok" is most of the log, so
 * an index of it never narrowed a query, and it cost a B-tree insert per
 * event. */
#define AUDIT_EVENTS_V13                                                                        \
	"CREATE TABLE audit_events_v14(seq INTEGER PRIMARY KEY, json TEXT NOT NULL, "                 \
	"leaf_hash BLOB NOT NULL, time TEXT, actor TEXT, action TEXT, object TEXT, outcome TEXT);\n"
#define AUDIT_INDEXES_V14                                                                      \
	"CREATE INDEX audit_events_object ON audit_events(object, seq);\n"                           \
	"CREATE INDEX audit_events_actor ON audit_events(actor, seq);\n"                             \
	"CREATE INDEX audit_events_action ON audit_events(action, seq);\n"                           \
	"CREATE INDEX audit_events_outcome ON audit_events(outcome, seq) WHERE outcome <> 'ok';\n"   \
	"CREATE INDEX audit_events_time ON audit_events(time);\n"
#define AUDIT_SCHEMA_V13                                                                       \
	AUDIT_EVENTS_V13                                                                           \
	"INSERT INTO audit_events_v14(seq, json, leaf_hash, time, actor, action, object, outcome) "   \
	"SELECT seq, json, leaf_hash, time, actor, action, object, outcome FROM audit_events;\n"    \
	"DROP TABLE audit_events;\n"                                                                \
	"ALTER TABLE audit_events_v14 RENAME TO audit_events;\n" AUDIT_INDEXES_V14

const char audit_schema_v1_sql[] = AUDIT_SCHEMA_V1;
const char audit_schema_v4_sql[] = AUDIT_SCHEMA_V4;
const char audit_schema_v14_sql[] = AUDIT_SCHEMA_V13;
const char audit_schema_sql[] = AUDIT_SCHEMA_V1 AUDIT_SCHEMA_V4 AUDIT_SCHEMA_V13;

#define HB MERKLE_HASH_BYTES
#define JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define DETAILS_MAX_DEPTH 32
#define PROGRESS_EVERY 4096
/* Bulk verification re-serialises one entry in this many with Jansson (the
 * full canonical check); every entry gets the cheap shape check. */
#define CANONICAL_SAMPLE 256

/* Field names that would mean someone is logging key material. */
static const char *const key_material_names[] = {
	"key", "dek", "kek", "secret", "pin", "passphrase", "plaintext",
};

static const char *const outcomes[] = {"ok", "denied", "error"};

/* ------------------------------------------------------------ small helpers */

static km_status db_fail(sqlite3 *db, km_err *e, const char *what)
{
	int rc = sqlite3_errcode(db);
	km_status s = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? KM_EBUSY : KM_EDB;
	return km_fail(e, s, "%s: %s", what, sqlite3_errmsg(db));
}

static km_status prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, km_err *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_fail(db, e, "audit log query");
	}
	return KM_OK;
}

/* Inside a transaction that holds the write lock? */
static km_status require_write_txn(sqlite3 *db, const char *fn, km_err *e)
{
	if (sqlite3_get_autocommit(db) || sqlite3_txn_state(db, "main") != SQLITE_TXN_WRITE)
		return km_fail(e, KM_EUSAGE, "%s must run inside the caller's write transaction "
		               "(BEGIN IMMEDIATE)", fn);
	return KM_OK;
}

/* Readers: open a read transaction when the caller has none, so every
 * statement sees the same snapshot.  *opened says whether to end it. */
static km_status read_begin(sqlite3 *db, int *opened, km_err *e)
{
	*opened = 0;
	if (!sqlite3_get_autocommit(db))
		return KM_OK;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, e, "starting a read transaction on the audit log");
	*opened = 1;
	return KM_OK;
}

static void read_end(sqlite3 *db, int opened)
{
	if (opened)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* One integer (or *out = dflt for NULL / no row). */
static km_status query_int64(sqlite3 *db, const char *sql, int64_t dflt, int64_t *out, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, sql, &st, e);
	if (s != KM_OK)
		return s;
	int rc = sqlite3_step(st);
	*out = dflt;
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = db_fail(db, e, "reading the audit log");
	sqlite3_finalize(st);
	return s;
}

static size_t col_bytes(sqlite3_stmt *st, int col)
{
	int n = sqlite3_column_bytes(st, col);
	return n > 0 ? (size_t)n : 0;
}

/* Now as "2026-11-23T12:45:13.123Z"; clock_s >= 0 replaces the real
 * clock's seconds (the session's injected clock: see audit_writer_set_clock). */
static void fmt_time_ms_at(char out[AUDIT_TIME_LEN + 8], int64_t clock_s)
{
	struct timespec ts;
	struct tm tm;
	char secs[24];
	clock_gettime(CLOCK_REALTIME, &ts);
	if (clock_s >= 0) {
		ts.tv_sec = (time_t)clock_s;
		ts.tv_nsec = 0;
	}
	/* The seconds part changes once a second, appends come thousands of
	 * times a second: format it only when it changed (per thread). */
	static _Thread_local time_t cached_sec = -1;
	static _Thread_local char cached[24];
	if (ts.tv_sec != cached_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
		memcpy(cached, secs, 20);
		cached_sec = ts.tv_sec;
	}
	int ms = (int)(ts.tv_nsec / 1000000) % 1000;
	memcpy(out, cached, 19);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}


/* "dddd-dd-ddTdd:dd:dd.dddZ" */
static int time_shape_ok(const char *t)
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	for (size_t i = 0; i < AUDIT_TIME_LEN; i++) {
		if (pattern[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pattern[i])
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ canonical events */

static int is_key_material_name(const char *k)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(key_material_names); i++)
		if (strcasecmp(k, key_material_names[i]) == 0)
			return 1;
	return 0;
}

/* details: no real numbers, no key-material names, bounded depth. */
static km_status check_details(const json_t *v, const char *name, int depth, km_err *e)
{
	const char *k;
	json_t *child;
	size_t i;

	if (depth > DETAILS_MAX_DEPTH)
		return km_fail(e, KM_EINVAL, "audit details nest deeper than %d levels", DETAILS_MAX_DEPTH);
	if (json_is_real(v))
		return km_fail(e, KM_EINVAL, "audit details field \"%s\" is a real number; "
		               "events record integers or strings only", name);
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, child) {
			km_status s;
			if (is_key_material_name(k))
				return km_fail(e, KM_EINTERNAL, "refusing to log a details field named \"%s\": "
				               "audit events must never carry key material", k);
			if ((s = check_details(child, k, depth + 1, e)) != KM_OK)
				return s;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			km_status s = check_details(child, name, depth + 1, e);
			if (s != KM_OK)
				return s;
		}
	}
	return KM_OK;
}

static int outcome_ok(const char *o)
{
	for (size_t i = 0; o && i < KM_ARRAY_LEN(outcomes); i++)
		if (strcmp(o, outcomes[i]) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------ canonical text
 *
 * The canonical text is what Jansson's json_dumps(JSON_FLAGS) makes of the
 * event object, byte for byte (verification re-serialises a sample with
 * Jansson and compares).  Building a Jansson object and dumping it cost a
 * fifth of an append (key sorting, a malloc per token), so the writer
 * emits the same bytes itself: strings of printable ASCII without '"' or
 * '\\' are copied (Jansson copies those unchanged too), integers printed,
 * objects' keys sorted bytewise as Jansson sorts them.  Anything else (a
 * string needing an escape, a key with a NUL) is handed to Jansson itself,
 * so the rare cases are Jansson's by construction. */
typedef struct cbuf {
	char *p;
	size_t len, cap;
	int oom;
} cbuf;

static void cb_put(cbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

#define CB_LIT(b, lit) cb_put((b), (lit), sizeof(lit) - 1)

/* Bytes Jansson copies into a string unescaped under JSON_FLAGS. */
static int plain_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

/* A JSON string; 0, or -1 if it is not valid UTF-8. */
static int cb_string(cbuf *b, const char *s, size_t n)
{
	if (plain_ascii(s, n)) {
		CB_LIT(b, "\"");
		cb_put(b, s, n);
		CB_LIT(b, "\"");
		return 0;
	}
	json_t *j = json_stringn(s, n);
	char *t = j ? json_dumps(j, JSON_FLAGS | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (!t)
		return j ? (b->oom = 1, 0) : -1;
	cb_put(b, t, strlen(t));
	free(t);
	return 0;
}

static void cb_int(cbuf *b, json_int_t v)
{
	char tmp[24], *p = tmp + sizeof tmp;
	/* through unsigned so that the most negative value negates */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	cb_put(b, p, (size_t)(tmp + sizeof tmp - p));
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* details in canonical form; -1: a case left to Jansson (whole value). */
static int cb_value(cbuf *b, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (!plain_ascii(s, n))
			return -1;
		return cb_string(b, s, n);
	}
	case JSON_INTEGER:
		cb_int(b, json_integer_value(v));
		return 0;
	case JSON_TRUE:
		CB_LIT(b, "true");
		return 0;
	case JSON_FALSE:
		CB_LIT(b, "false");
		return 0;
	case JSON_NULL:
		CB_LIT(b, "null");
		return 0;
	case JSON_ARRAY: {
		size_t i;
		json_t *c;
		CB_LIT(b, "[");
		json_array_foreach(v, i, c) {
			if (i)
				CB_LIT(b, ",");
			if (cb_value(b, c))
				return -1;
		}
		CB_LIT(b, "]");
		return 0;
	}
	case JSON_OBJECT: {
		const char *small[16], **keys = small, *k;
		size_t n = json_object_size(v), i = 0, klen;
		json_t *c;
		int rc = 0;
		if (n > KM_ARRAY_LEN(small) && !(keys = malloc(n * sizeof *keys))) {
			b->oom = 1;
			return 0;
		}
		json_object_keylen_foreach((json_t *)v, k, klen, c) {
			if (i == n || klen != strlen(k) || !plain_ascii(k, klen)) {
				rc = -1;
				break;
			}
			keys[i++] = k;
		}
		if (!rc && i == n) {
			qsort(keys, n, sizeof *keys, key_cmp);
			CB_LIT(b, "{");
			for (i = 0; i < n && !rc; i++) {
				if (i)
					CB_LIT(b, ",");
				cb_string(b, keys[i], strlen(keys[i]));
				CB_LIT(b, ":");
				rc = cb_value(b, json_object_get(v, keys[i]));
			}
			CB_LIT(b, "}");
		} else {
			rc = -1;
		}
		if (keys != small)
			free(keys);
		return rc;
	}
	default: /* reals: validate_event refuses them; Jansson's format is its own */
		return -1;
	}
}

static km_status bad_utf8(km_err *e, const char *field)
{
	return km_fail(e, KM_EINVAL, "audit event field \"%s\" is not valid UTF-8", field);
}

/* The canonical text of an event (malloc'd). */
static km_status event_text(const audit_event *ev, uint64_t seq, const char *time, char **out,
                            km_err *e)
{
	cbuf b = {0};
	km_status s = KM_OK;

	*out = NULL;
	CB_LIT(&b, "{\"action\":");
	if (cb_string(&b, ev->action, strlen(ev->action)))
		s = bad_utf8(e, "action");
	CB_LIT(&b, ",\"actor\":");
	if (!s && cb_string(&b, ev->actor, strlen(ev->actor)))
		s = bad_utf8(e, "actor");
	CB_LIT(&b, ",\"details\":");
	if (!ev->details) {
		CB_LIT(&b, "{}");
	} else if (!s) {
		size_t mark = b.len;
		if (cb_value(&b, ev->details)) {
			char *t = json_dumps(ev->details, JSON_FLAGS);
			if (!t)
				s = km_fail(e, KM_EINVAL, "audit event cannot be serialised (invalid UTF-8 in details?)");
			b.len = mark;
			if (t)
				cb_put(&b, t, strlen(t));
			free(t);
		}
	}
	CB_LIT(&b, ",\"object\":");
	if (!ev->object)
		CB_LIT(&b, "null");
	else if (!s && cb_string(&b, ev->object, strlen(ev->object)))
		s = bad_utf8(e, "object");
	CB_LIT(&b, ",\"outcome\":");
	if (!s && cb_string(&b, ev->outcome, strlen(ev->outcome)))
		s = bad_utf8(e, "outcome");
	CB_LIT(&b, ",\"seq\":");
	cb_int(&b, (json_int_t)seq);
	CB_LIT(&b, ",\"time\":");
	if (!s && cb_string(&b, time, strlen(time)))
		s = bad_utf8(e, "time");
	CB_LIT(&b, "}");
	if (!s && b.oom)
		s = km_fail(e, KM_ENOMEM, "out of memory building an audit event");
	if (s) {
		free(b.p);
		return s;
	}
	*out = b.p;
	return KM_OK;
}

static km_status validate_event(const audit_event *ev, km_err *e)
{
	if (!ev || !ev->actor || !*ev->actor || !ev->action || !*ev->action)
		return km_fail(e, KM_EUSAGE, "an audit event needs an actor and an action");
	if (!outcome_ok(ev->outcome))
		return km_fail(e, KM_EUSAGE, "audit outcome \"%s\" is not ok, denied or error",
		               ev->outcome ? ev->outcome : "(null)");
	if (ev->details && !json_is_object(ev->details))
		return km_fail(e, KM_EINVAL, "audit details must be a JSON object");
	return ev->details ? check_details(ev->details, "details", 1, e) : KM_OK;
}

/* Full canonical check of a stored event: parses with Jansson (duplicate keys
 * refused), checks the seven fields and their types, and re-serialises: the
 * bytes must come back identical.  0 = canonical; else why in buf. */
static int canonical_problem(const char *text, size_t len, int64_t seq, char *why, size_t cap)
{
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	int bad = 1;
	km_err e;

	if (!o) {
		snprintf(why, cap, "it is not valid JSON (%.80s)", jerr.text);
		return 1;
	}
	json_t *t = json_object_get(o, "time");
	if (!json_is_object(o) || json_object_size(o) != 7 ||
	    !json_is_string(json_object_get(o, "action")) || !json_is_string(json_object_get(o, "actor")) ||
	    !json_is_object(json_object_get(o, "details")) ||
	    !(json_is_string(json_object_get(o, "object")) || json_is_null(json_object_get(o, "object"))) ||
	    !outcome_ok(json_string_value(json_object_get(o, "outcome"))) ||
	    !json_is_integer(json_object_get(o, "seq")) || !json_is_string(t) ||
	    json_string_length(t) != AUDIT_TIME_LEN || !time_shape_ok(json_string_value(t))) {
		snprintf(why, cap, "its fields are not the seven an event has");
	} else if (json_integer_value(json_object_get(o, "seq")) != seq) {
		snprintf(why, cap, "its text says it is entry %lld (rows were renumbered, reordered or swapped)",
		         (long long)json_integer_value(json_object_get(o, "seq")));
	} else if (check_details(json_object_get(o, "details"), "details", 1, &e) != KM_OK) {
		snprintf(why, cap, "its details break the event rules (%.100s)", e.msg);
	} else {
		char *again = json_dumps(o, JSON_FLAGS);
		if (!again)
			snprintf(why, cap, "it cannot be re-serialised");
		else if (strlen(again) != len || memcmp(again, text, len) != 0)
			snprintf(why, cap, "it is not in canonical form (sorted keys, no whitespace, ASCII)");
		else
			bad = 0;
		free(again);
	}
	json_decref(o);
	return bad;
}

/* ------------------------------------------------------------ frontier storage */

static km_status frontier_load(sqlite3 *db, merkle_frontier *f, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT level, hash FROM audit_frontier ORDER BY level", &st, e);
	int rc;

	merkle_frontier_init(f);
	if (s != KM_OK)
		return s;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t level = sqlite3_column_int64(st, 0);
		if (level < 0 || level >= MERKLE_MAX_LEVELS || col_bytes(st, 1) != HB) {
			s = km_fail(e, KM_EINTEGRITY, "the stored audit frontier is damaged (level %lld); "
			            "run audit verify", (long long)level);
			break;
		}
		memcpy(f->hash[level], sqlite3_column_blob(st, 1), HB);
		f->size |= UINT64_C(1) << level;
	}
	if (s == KM_OK && rc != SQLITE_DONE)
		s = db_fail(db, e, "reading the audit frontier");
	sqlite3_finalize(st);
	return s;
}

static km_status log_size(sqlite3 *db, uint64_t *n, km_err *e)
{
	int64_t v;
	km_status s = query_int64(db, "SELECT max(seq) FROM audit_events", 0, &v, e);
	*n = (s == KM_OK && v > 0) ? (uint64_t)v : 0;
	return s;
}

static km_status frontier_mismatch(const merkle_frontier *f, uint64_t n, km_err *e)
{
	return km_fail(e, KM_EINTEGRITY, "the stored audit frontier covers %llu entries but the log "
	               "has %llu; the log was tampered with or damaged: run audit verify",
	               (unsigned long long)f->size, (unsigned long long)n);
}

/* The frontier, checked against the log's length. */
static km_status frontier_for_log(sqlite3 *db, merkle_frontier *f, uint64_t *n, km_err *e)
{
	km_status s = log_size(db, n, e);
	if (s == KM_OK)
		s = frontier_load(db, f, e);
	if (s == KM_OK && f->size != *n)
		s = frontier_mismatch(f, *n, e);
	return s;
}

/* ------------------------------------------------------------ stored nodes
 *
 * Node (level, idx) is MTH of entries idx * 2^level + 1 .. (idx + 1) * 2^level;
 * level 0 is an entry's own leaf hash.  Proofs, and the signer's anchor
 * check, fetch them here; every one is an input to a proof that is then
 * verified against a trusted root, never trusted by itself. */
typedef struct node_reader {
	sqlite3 *db;
	sqlite3_stmt *leaf, *node;
} node_reader;

static void node_reader_close(node_reader *r)
{
	sqlite3_finalize(r->leaf);
	sqlite3_finalize(r->node);
	memset(r, 0, sizeof *r);
}

static km_status node_reader_open(sqlite3 *db, node_reader *r, km_err *e)
{
	km_status s;
	memset(r, 0, sizeof *r);
	r->db = db;
	if ((s = prepare(db, "SELECT leaf_hash FROM audit_events WHERE seq = ?", &r->leaf, e)) != KM_OK ||
	    (s = prepare(db, "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", &r->node, e)) != KM_OK)
		node_reader_close(r);
	return s;
}

/* merkle_node_fn over the tables. */
static km_status read_node(void *ctx, unsigned level, uint64_t idx, uint8_t out[HB], km_err *e)
{
	node_reader *r = ctx;
	sqlite3_stmt *st = level ? r->node : r->leaf;
	unsigned long long first = (unsigned long long)(idx << level) + 1;
	unsigned long long last = (unsigned long long)((idx + 1) << level);
	km_status s = KM_OK;

	sqlite3_reset(st);
	if (level) {
		sqlite3_bind_int(st, 1, (int)level);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)idx);
	} else {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)(idx + 1));
	}
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && col_bytes(st, 0) == HB)
		memcpy(out, sqlite3_column_blob(st, 0), HB);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = db_fail(r->db, e, "reading the audit tree");
	else if (level == 0)
		s = km_fail(e, KM_EINTEGRITY, rc == SQLITE_DONE ? "entry %llu is missing" :
		            "entry %llu: the stored leaf hash is damaged", first);
	else
		s = km_fail(e, KM_EINTEGRITY, "the stored tree node over entries %llu..%llu (level %u) is %s; "
		            "the log was tampered with or damaged: run audit verify", first, last, level,
		            rc == SQLITE_DONE ? "missing" : "damaged");
	sqlite3_reset(st);
	return s;
}

km_status audit_nodes_backfill(sqlite3 *db, km_err *e)
{
	sqlite3_stmt *leaves = NULL, *put = NULL;
	merkle_hasher *h = NULL;
	merkle_frontier f;
	uint8_t nodes[MERKLE_MAX_LEVELS][HB];
	km_status s;
	int rc;

	if ((s = require_write_txn(db, "audit_nodes_backfill", e)) != KM_OK)
		return s;
	merkle_frontier_init(&f);
	if (sqlite3_exec(db, "DELETE FROM audit_nodes", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, e, "clearing the audit tree nodes");
	if ((s = prepare(db, "SELECT seq, leaf_hash FROM audit_events ORDER BY seq", &leaves, e)) != KM_OK ||
	    (s = prepare(db, "INSERT INTO audit_nodes(level, idx, hash) VALUES(?, ?, ?)", &put, e)) != KM_OK ||
	    (s = merkle_hasher_new(&h, e)) != KM_OK)
		goto out;
	while ((rc = sqlite3_step(leaves)) == SQLITE_ROW) {
		unsigned top = 0;
		if (sqlite3_column_int64(leaves, 0) != (int64_t)(f.size + 1) || col_bytes(leaves, 1) != HB) {
			rc = SQLITE_DONE; /* damaged: audit_verify will say where */
			break;
		}
		if ((s = merkle_frontier_append_nodes(h, &f, sqlite3_column_blob(leaves, 1), nodes, &top, e)) != KM_OK)
			goto out;
		for (unsigned l = 1; l <= top; l++) {
			sqlite3_reset(put);
			sqlite3_bind_int(put, 1, (int)l);
			sqlite3_bind_int64(put, 2, (sqlite3_int64)((f.size >> l) - 1));
			sqlite3_bind_blob(put, 3, nodes[l], HB, SQLITE_STATIC);
			if (sqlite3_step(put) != SQLITE_DONE) {
				s = db_fail(db, e, "storing audit tree nodes");
				goto out;
			}
		}
	}
	if (rc != SQLITE_DONE)
		s = db_fail(db, e, "reading the audit leaf hashes");
out:
	sqlite3_finalize(leaves);
	sqlite3_finalize(put);
	merkle_hasher_free(h);
	return s;
}

/* ------------------------------------------------------------ append */

/* The new event's seq and time, from the newest event in one lookup.  The
 * time is now, but never earlier than the newest event's (a clock stepped
 * back, or another host's clock behind ours): times thus never decrease
 * along the log, which lets a time range become a sequence range
 * (audit_query) and lets verification notice reordering. */
static km_status next_event(sqlite3 *db, uint64_t *n, char now[AUDIT_TIME_LEN + 8], int64_t clock_s, km_err *e)
{
	sqlite3_stmt *st;
	km_status s;

	*n = 0;
	fmt_time_ms_at(now, clock_s);
	if ((s = prepare(db, "SELECT seq, time FROM audit_events ORDER BY seq DESC LIMIT 1", &st, e)) != KM_OK)
		return s;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t last = sqlite3_column_int64(st, 0);
		const char *t = (const char *)sqlite3_column_text(st, 1);
		*n = last > 0 ? (uint64_t)last : 0;
		if (t && col_bytes(st, 1) == AUDIT_TIME_LEN && time_shape_ok(t) &&
		    memcmp(now, t, AUDIT_TIME_LEN) < 0)
			memcpy(now, t, AUDIT_TIME_LEN);
	} else if (rc != SQLITE_DONE) {
		s = db_fail(db, e, "reading the newest audit event");
	}
	sqlite3_finalize(st);
	return s;
}

/* ------------------------------------------------------------ the writer
 *
 * Within one write transaction nobody else can append, so the writer reads
 * the newest seq, its time and the frontier once (priming), keeps them in
 * memory while it appends with statements prepared once, and writes the
 * frontier back in one go before the tree head is signed.  The frontier
 * found at priming (f0) is the state the anchor check proves; the head is
 * signed over f0 extended in memory by this writer's own leaves.  It must
 * be reset whenever a transaction ends (commit or rollback), because
 * another process may append in between. */
struct audit_writer {
	sqlite3 *db;
	sqlite3_stmt *insert, *node_put, *frontier_clear, *frontier_put;
	merkle_hasher *h;
	int primed, dirty;
	uint64_t n;                     /* newest seq */
	char last_time[AUDIT_TIME_LEN + 8];
	merkle_frontier f0;             /* as the transaction found it */
	merkle_frontier f;              /* f0 + this transaction's leaves */
	int anchor_ready;               /* next_anchor is proven or signed */
	audit_anchor next_anchor;
	int64_t (*clock)(void *c);      /* NULL: the real clock */
	void *clock_ctx;
};

void audit_writer_set_clock(audit_writer *w, int64_t (*clock)(void *c), void *clock_ctx)
{
	w->clock = clock;
	w->clock_ctx = clock_ctx;
}

km_status audit_writer_new(sqlite3 *db, audit_writer **out, km_err *e)
{
	audit_writer *w = calloc(1, sizeof *w);
	km_status s;

	if (!w)
		return km_fail(e, KM_ENOMEM, "out of memory");
	w->db = db;
	if ((s = prepare(db, "INSERT INTO audit_events(seq, json, leaf_hash, time, actor, action, object, outcome) "
	                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", &w->insert, e)) != KM_OK ||
	    (s = prepare(db, "INSERT INTO audit_nodes(level, idx, hash) VALUES(?, ?, ?)", &w->node_put, e)) != KM_OK ||
	    (s = prepare(db, "DELETE FROM audit_frontier", &w->frontier_clear, e)) != KM_OK ||
	    (s = prepare(db, "INSERT INTO audit_frontier(level, hash) VALUES(?, ?)", &w->frontier_put, e)) != KM_OK ||
	    (s = merkle_hasher_new(&w->h, e)) != KM_OK) {
		audit_writer_free(w);
		return s;
	}
	*out = w;
	return KM_OK;
}

void audit_writer_free(audit_writer *w)
{
	if (!w)
		return;
	sqlite3_finalize(w->insert);
	sqlite3_finalize(w->node_put);
	sqlite3_finalize(w->frontier_clear);
	sqlite3_finalize(w->frontier_put);
	merkle_hasher_free(w->h);
	free(w);
}

void audit_writer_reset(audit_writer *w)
{
	if (w) {
		w->primed = 0;
		w->dirty = 0;
		w->anchor_ready = 0;
	}
}

static km_status writer_prime(audit_writer *w, km_err *e)
{
	km_status s;
	if ((s = next_event(w->db, &w->n, w->last_time, w->clock ? w->clock(w->clock_ctx) : -1, e)) != KM_OK || (s = frontier_load(w->db, &w->f, e)) != KM_OK)
		return s;
	if (w->f.size != w->n)
		return frontier_mismatch(&w->f, w->n, e);
	w->f0 = w->f;
	w->primed = 1;
	return KM_OK;
}

/* Store the nodes that leaf number `size` (1-based) completed. */
static km_status writer_put_nodes(audit_writer *w, uint64_t size, uint8_t (*nodes)[HB], unsigned top,
                                  km_err *e)
{
	for (unsigned l = 1; l <= top; l++) {
		uint64_t idx = (size >> l) - 1;
		sqlite3_reset(w->node_put);
		sqlite3_bind_int(w->node_put, 1, (int)l);
		sqlite3_bind_int64(w->node_put, 2, (sqlite3_int64)idx);
		sqlite3_bind_blob(w->node_put, 3, nodes[l], HB, SQLITE_STATIC);
		int rc = sqlite3_step(w->node_put);
		sqlite3_reset(w->node_put);
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			return km_fail(e, KM_EINTEGRITY, "a tree node over entries %llu..%llu (level %u) is already "
			               "stored though the log ends before them; the log was tampered with or "
			               "damaged: run audit verify", (unsigned long long)(idx << l) + 1,
			               (unsigned long long)size, l);
		if (rc != SQLITE_DONE)
			return db_fail(w->db, e, "storing audit tree nodes");
	}
	return KM_OK;
}

km_status audit_writer_append(audit_writer *w, const audit_event *ev, uint64_t *seq_out, km_err *e)
{
	uint8_t leaf[HB], nodes[MERKLE_MAX_LEVELS][HB];
	char now[AUDIT_TIME_LEN + 8], *text = NULL;
	unsigned top = 0;
	km_status s;

	if ((s = require_write_txn(w->db, "audit_append", e)) != KM_OK || (s = validate_event(ev, e)) != KM_OK)
		return s;
	if (!w->primed && (s = writer_prime(w, e)) != KM_OK)
		return s;
	/* Times never decrease along the log (see next_event). */
	fmt_time_ms_at(now, w->clock ? w->clock(w->clock_ctx) : -1);
	if (memcmp(now, w->last_time, AUDIT_TIME_LEN) < 0 && time_shape_ok(w->last_time))
		memcpy(now, w->last_time, AUDIT_TIME_LEN);
	if ((s = event_text(ev, w->n + 1, now, &text, e)) != KM_OK)
		return s;
	merkle_frontier next = w->f;
	if ((s = merkle_leaf_hash(w->h, text, strlen(text), leaf, e)) == KM_OK &&
	    (s = merkle_frontier_append_nodes(w->h, &next, leaf, nodes, &top, e)) == KM_OK) {
		sqlite3_reset(w->insert);
		sqlite3_bind_int64(w->insert, 1, (sqlite3_int64)(w->n + 1));
		sqlite3_bind_text(w->insert, 2, text, -1, SQLITE_STATIC);
		sqlite3_bind_blob(w->insert, 3, leaf, HB, SQLITE_STATIC);
		/* the filter columns: the very strings the text was made of */
		sqlite3_bind_text(w->insert, 4, now, AUDIT_TIME_LEN, SQLITE_STATIC);
		sqlite3_bind_text(w->insert, 5, ev->actor, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->insert, 6, ev->action, -1, SQLITE_STATIC);
		if (ev->object)
			sqlite3_bind_text(w->insert, 7, ev->object, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(w->insert, 7);
		sqlite3_bind_text(w->insert, 8, ev->outcome, -1, SQLITE_STATIC);
		if (sqlite3_step(w->insert) != SQLITE_DONE)
			s = db_fail(w->db, e, "appending an audit event");
		sqlite3_reset(w->insert);
	}
	if (s == KM_OK)
		s = writer_put_nodes(w, next.size, nodes, top, e);
	if (s == KM_OK) {
		/* Only a stored event moves the in-memory state forward. */
		w->f = next;
		w->n++;
		memcpy(w->last_time, now, AUDIT_TIME_LEN);
		w->dirty = 1;
		w->anchor_ready = 0;
		if (seq_out)
			*seq_out = w->n;
	}
	free(text);
	return s;
}

/* Write the in-memory frontier: one row per set bit of the size. */
static km_status writer_flush(audit_writer *w, km_err *e)
{
	if (!w->dirty)
		return KM_OK;
	sqlite3_reset(w->frontier_clear);
	if (sqlite3_step(w->frontier_clear) != SQLITE_DONE)
		return db_fail(w->db, e, "updating the audit frontier");
	sqlite3_reset(w->frontier_clear);
	for (unsigned level = 0; level < MERKLE_MAX_LEVELS; level++) {
		if (!(w->f.size >> level & 1))
			continue;
		sqlite3_reset(w->frontier_put);
		sqlite3_bind_int(w->frontier_put, 1, (int)level);
		sqlite3_bind_blob(w->frontier_put, 2, w->f.hash[level], HB, SQLITE_STATIC);
		int rc = sqlite3_step(w->frontier_put);
		sqlite3_reset(w->frontier_put);
		if (rc != SQLITE_DONE)
			return db_fail(w->db, e, "updating the audit frontier");
	}
	w->dirty = 0;
	return KM_OK;
}

km_status audit_append(sqlite3 *db, const audit_event *ev, uint64_t *seq_out, km_err *e)
{
	audit_writer *w;
	km_status s = audit_writer_new(db, &w, e);
	if (s != KM_OK)
		return s;
	s = audit_writer_append(w, ev, seq_out, e);
	if (s == KM_OK)
		s = writer_flush(w, e);
	audit_writer_free(w);
	return s;
}

/* ------------------------------------------------------------ tree heads */

size_t audit_checkpoint_text(const char *origin, uint64_t size, const uint8_t root[32],
                             int64_t time, char *buf, size_t cap)
{
	unsigned char b64[4 * ((HB + 2) / 3) + 1];

	if (!origin || !*origin || strchr(origin, '\n'))
		return 0;
	EVP_EncodeBlock(b64, root, HB);
	int n = snprintf(buf, cap, "%s\n%llu\n%s\ntime %lld\n", origin, (unsigned long long)size,
	                 (const char *)b64, (long long)time);
	return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

km_status audit_origin(sqlite3 *db, char *buf, size_t cap, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT value FROM audit_meta WHERE key = 'origin'", &st, e);
	if (s != KM_OK)
		return s;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = col_bytes(st, 0);
		if (n + 1 > cap) {
			s = km_fail(e, KM_EUSAGE, "the audit origin is longer than %zu bytes", cap);
		} else {
			memcpy(buf, n ? (const char *)sqlite3_column_text(st, 0) : "", n);
			buf[n] = '\0';
		}
	} else if (rc == SQLITE_DONE) {
		s = km_fail(e, KM_ENOTFOUND, "the audit log has no origin (audit_meta 'origin')");
	} else {
		s = db_fail(db, e, "reading the audit origin");
	}
	sqlite3_finalize(st);
	return s;
}

#define ORIGIN_MAX 256
#define CHECKPOINT_MAX (ORIGIN_MAX + 128)

static km_status head_signature_ok(EVP_MD_CTX *vctx, EVP_PKEY *pub, const char *origin, uint64_t size,
                                   const uint8_t root[HB], int64_t time, const uint8_t *sig,
                                   size_t sig_len, int *ok, km_err *e);

static km_status newest_head_size(sqlite3 *db, uint64_t *size, km_err *e)
{
	int64_t v;
	km_status s = query_int64(db, "SELECT max(size) FROM audit_tree_heads", 0, &v, e);
	*size = (s == KM_OK && v > 0) ? (uint64_t)v : 0;
	return s;
}

static km_status heads_beyond_log(uint64_t n, uint64_t head, km_err *e)
{
	return km_fail(e, KM_EINTEGRITY, "the audit log has %llu entries but a signed tree head covers "
	               "%llu: entries were deleted; run audit verify", (unsigned long long)n,
	               (unsigned long long)head);
}

/* Is there a stored tree head at `size` with this root and a signature by
 * pub over its checkpoint text?  *ok = 1 / 0. */
static km_status signed_head_at(sqlite3 *db, EVP_PKEY *pub, uint64_t size, const uint8_t root[HB],
                                int *ok, km_err *e)
{
	char origin[ORIGIN_MAX];
	sqlite3_stmt *st;
	EVP_MD_CTX *vctx = NULL;
	km_status s;

	*ok = 0;
	if ((s = audit_origin(db, origin, sizeof origin, e)) == KM_ENOTFOUND)
		return KM_OK; /* no head can be checked without it */
	if (s != KM_OK || (s = prepare(db, "SELECT root, time, signature FROM audit_tree_heads WHERE size = ?",
	                               &st, e)) != KM_OK)
		return s;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && col_bytes(st, 0) == HB && memcmp(sqlite3_column_blob(st, 0), root, HB) == 0) {
		if (!(vctx = EVP_MD_CTX_new()))
			s = km_fail(e, KM_ENOMEM, "out of memory checking a tree head");
		else
			s = head_signature_ok(vctx, pub, origin, size, root, sqlite3_column_int64(st, 1),
			                      sqlite3_column_blob(st, 2), col_bytes(st, 2), ok, e);
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		s = db_fail(db, e, "reading an audit tree head");
	}
	EVP_MD_CTX_free(vctx);
	sqlite3_finalize(st);
	return s;
}

/* Prove that the tree of the first b entries, with root r_b, is the tree
 * anchored in a or extends it, and, when it is longer, that the audit key
 * signed it.  Only a and pub are trusted; b, r_b and every node come from
 * the database, so r_b is only to be believed once this returns KM_OK.
 * Every refusal ends with "nothing was signed": the callers sign nothing
 * after a failure here. */
static km_status prove_extends_anchor(sqlite3 *db, merkle_hasher *h, const audit_anchor *a, EVP_PKEY *pub,
                                      uint64_t b, const uint8_t r_b[HB], km_err *e)
{
	uint8_t proof[MERKLE_PROOF_MAX][HB], empty[HB];
	unsigned long long m = a ? (unsigned long long)a->size : 0, bb = (unsigned long long)b;
	node_reader nr;
	size_t len = 0;
	int ok = 0;
	km_err pe;
	km_status s;

	if (!a || !a->have)
		return KM_OK;
	if (m == 0) {
		if ((s = merkle_sha256(h, NULL, 0, empty, e)) != KM_OK)
			return s;
		if (memcmp(empty, a->root, HB) != 0)
			return km_fail(e, KM_EINTEGRITY, "the audit anchor in the HSM is damaged (an empty log "
			               "with a root that is not the empty tree's); nothing was signed");
	}
	if (b < a->size)
		return km_fail(e, KM_EINTEGRITY, "the audit log has %llu entries but the anchor in the HSM "
		               "records %llu: entries %llu..%llu were deleted (the log was truncated); nothing "
		               "was signed: run audit verify", bb, m, bb + 1, m);
	if (b == a->size) {
		if (memcmp(r_b, a->root, HB) != 0)
			return km_fail(e, KM_EINTEGRITY, "the audit log at size %llu does not match the root "
			               "anchored in the HSM at size %llu: entries up to %llu were rewritten; "
			               "nothing was signed: run audit verify", m, m, m);
		return KM_OK;
	}
	/* The anchor lags the log: a consistency proof from the stored nodes,
	 * checked against the anchored root. */
	if ((s = node_reader_open(db, &nr, e)) != KM_OK)
		return s;
	s = merkle_consistency_proof_nodes(h, read_node, &nr, a->size, b, proof, MERKLE_PROOF_MAX, &len, &pe);
	if (s == KM_OK)
		s = merkle_verify_consistency(h, a->size, b, a->root, r_b, (const uint8_t(*)[HB])proof, len, &pe);
	node_reader_close(&nr);
	if (s == KM_EINTEGRITY)
		return km_fail(e, KM_EINTEGRITY, "the audit log at size %llu cannot be proven to extend the "
		               "tree anchored in the HSM at size %llu (%s): entries up to %llu were rewritten, "
		               "or the stored tree is damaged; nothing was signed: run audit verify", bb, m,
		               pe.msg, m);
	if (s != KM_OK) {
		if (e)
			*e = pe;
		return s;
	}
	/* Consistent, but only keyward may have put entries past the anchor:
	 * a head it signed at exactly b says so. */
	if (!pub)
		return km_fail(e, KM_EUSAGE, "the audit public key is needed to accept a log that is ahead "
		               "of its anchor");
	if ((s = signed_head_at(db, pub, b, r_b, &ok, e)) != KM_OK)
		return s;
	if (!ok)
		return km_fail(e, KM_EINTEGRITY, "entries %llu..%llu are past the anchor in the HSM (size "
		               "%llu) and no tree head signed by the audit key covers them at size %llu: they "
		               "could have been inserted; nothing was signed: run audit verify", m + 1, bb, m, bb);
	return KM_OK;
}

/* Sign (n, root) now and store the head. */
static km_status sign_and_store(sqlite3 *db, merkle_hasher *h, uint64_t n, const uint8_t root[HB],
                                audit_sign_fn sign, void *sign_ctx, km_err *e)
{
	uint8_t digest[HB], sig[AUDIT_SIG_BYTES];
	char origin[ORIGIN_MAX], text[CHECKPOINT_MAX];
	sqlite3_stmt *ins;
	size_t len;
	km_status s = audit_origin(db, origin, sizeof origin, e);

	if (s == KM_ENOTFOUND)
		return km_fail(e, KM_ECONFIG, "the audit log has no origin (audit_meta 'origin'); "
		               "the deployment was not initialised");
	if (s != KM_OK)
		return s;
	int64_t now = (int64_t)time(NULL);
	len = audit_checkpoint_text(origin, n, root, now, text, sizeof text);
	if (len == 0)
		return km_fail(e, KM_ECONFIG, "the audit origin is empty or malformed");
	if ((s = merkle_sha256(h, text, len, digest, e)) != KM_OK || (s = sign(sign_ctx, digest, sig, e)) != KM_OK)
		return s;
	if ((s = prepare(db, "INSERT INTO audit_tree_heads(size, root, time, signature) VALUES(?, ?, ?, ?)",
	                 &ins, e)) != KM_OK)
		return s;
	sqlite3_bind_int64(ins, 1, (sqlite3_int64)n);
	sqlite3_bind_blob(ins, 2, root, HB, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 3, now);
	sqlite3_bind_blob(ins, 4, sig, AUDIT_SIG_BYTES, SQLITE_STATIC);
	if (sqlite3_step(ins) != SQLITE_DONE)
		s = db_fail(db, e, "storing the audit tree head");
	sqlite3_finalize(ins);
	return s;
}

km_status audit_writer_sign_head(audit_writer *w, const audit_anchor *a, EVP_PKEY *pub,
                                 audit_sign_fn sign, void *sign_ctx, km_err *e)
{
	uint8_t r0[HB], r1[HB];
	uint64_t newest;
	km_status s;

	w->anchor_ready = 0;
	if ((s = require_write_txn(w->db, "audit_sign_head", e)) != KM_OK)
		return s;
	if (!w->primed && (s = writer_prime(w, e)) != KM_OK)
		return s;
	if ((s = writer_flush(w, e)) != KM_OK || (s = newest_head_size(w->db, &newest, e)) != KM_OK)
		return s;
	if (newest > w->f0.size)
		return heads_beyond_log(w->f0.size, newest, e);
	if ((s = merkle_frontier_root(w->h, &w->f0, r0, e)) != KM_OK ||
	    (s = prove_extends_anchor(w->db, w->h, a, pub, w->f0.size, r0, e)) != KM_OK ||
	    (s = merkle_frontier_root(w->h, &w->f, r1, e)) != KM_OK)
		return s;
	if (w->f.size > newest && (s = sign_and_store(w->db, w->h, w->f.size, r1, sign, sign_ctx, e)) != KM_OK)
		return s;
	w->next_anchor.have = 1;
	w->next_anchor.size = w->f.size;
	memcpy(w->next_anchor.root, r1, HB);
	w->anchor_ready = 1;
	return KM_OK;
}

km_status audit_writer_anchor(const audit_writer *w, audit_anchor *out, km_err *e)
{
	memset(out, 0, sizeof *out);
	if (!w || !w->anchor_ready)
		return km_fail(e, KM_EUSAGE, "no audit tree head was signed or proven in this transaction "
		               "(audit_writer_sign_head first)");
	*out = w->next_anchor;
	return KM_OK;
}

km_status audit_sign_head(sqlite3 *db, const audit_anchor *a, EVP_PKEY *pub, audit_sign_fn sign,
                          void *sign_ctx, km_err *e)
{
	merkle_hasher *h = NULL;
	merkle_frontier f;
	uint8_t root[HB], base_root[HB], proof[MERKLE_PROOF_MAX][HB];
	uint64_t n, newest, base;
	node_reader nr = {0};
	size_t len = 0;
	km_err pe;
	km_status s;

	if ((s = require_write_txn(db, "audit_sign_head", e)) != KM_OK)
		return s;
	if ((s = newest_head_size(db, &newest, e)) != KM_OK || (s = frontier_for_log(db, &f, &n, e)) != KM_OK)
		return s;
	if (newest > n)
		return heads_beyond_log(n, newest, e);
	if ((s = merkle_hasher_new(&h, e)) != KM_OK)
		return s;
	if ((s = merkle_frontier_root(h, &f, root, e)) != KM_OK || (s = node_reader_open(db, &nr, e)) != KM_OK)
		goto out;
	if (a && a->have) {
		/* The base: the newer of the anchor and the newest head (if the
		 * log reaches it; if not, the proof below says it was cut). */
		base = newest > a->size ? newest : a->size;
		if (base > n)
			base = n;
		if (base == n)
			memcpy(base_root, root, HB);
		else if (base == 0)
			s = merkle_sha256(h, NULL, 0, base_root, e);
		else
			s = merkle_range_root_nodes(h, read_node, &nr, 0, base, base_root, e);
		if (s != KM_OK || (s = prove_extends_anchor(db, h, a, pub, base, base_root, e)) != KM_OK)
			goto out;
		/* The rest is the caller's: the frontier must extend the base. */
		s = merkle_consistency_proof_nodes(h, read_node, &nr, base, n, proof, MERKLE_PROOF_MAX, &len, &pe);
		if (s == KM_OK)
			s = merkle_verify_consistency(h, base, n, base_root, root, (const uint8_t(*)[HB])proof, len, &pe);
		if (s == KM_EINTEGRITY) {
			s = km_fail(e, KM_EINTEGRITY, "the stored audit frontier does not extend the proven tree at "
			            "size %llu (%s): tampered or damaged; nothing was signed: run audit verify",
			            (unsigned long long)base, pe.msg);
			goto out;
		}
		if (s != KM_OK) {
			if (e)
				*e = pe;
			goto out;
		}
	}
	if (n > newest)
		s = sign_and_store(db, h, n, root, sign, sign_ctx, e);
out:
	node_reader_close(&nr);
	merkle_hasher_free(h);
	return s;
}

km_status audit_size(sqlite3 *db, uint64_t *n, km_err *e)
{
	return log_size(db, n, e);
}

km_status audit_latest_head(sqlite3 *db, uint64_t *size, uint8_t root[HB], int64_t *time_out,
                            uint8_t sig[AUDIT_SIG_BYTES], int *have, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT size, root, time, signature FROM audit_tree_heads "
	                      "ORDER BY size DESC LIMIT 1", &st, e);
	*have = 0;
	*size = 0;
	*time_out = 0;
	memset(root, 0, HB);
	memset(sig, 0, AUDIT_SIG_BYTES);
	if (s != KM_OK)
		return s;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t sz = sqlite3_column_int64(st, 0);
		*size = sz > 0 ? (uint64_t)sz : 0;
		*time_out = sqlite3_column_int64(st, 2);
		if (col_bytes(st, 1) == HB)
			memcpy(root, sqlite3_column_blob(st, 1), HB);
		if (col_bytes(st, 3) == AUDIT_SIG_BYTES)
			memcpy(sig, sqlite3_column_blob(st, 3), AUDIT_SIG_BYTES);
		*have = 1;
	} else if (rc != SQLITE_DONE) {
		s = db_fail(db, e, "reading the newest audit tree head");
	}
	sqlite3_finalize(st);
	return s;
}

/* ------------------------------------------------------------ rows */

/* Rows a person reads (audit_get, audit_query: a page at a time) take
 * their fields from the hashed text itself, so a row can never show what
 * the hash does not cover, even if a stored copy was edited (the copies
 * only select the rows).  Bulk scans read the stored copies (ROW_STORED):
 * json_extract on every row of an export would cost more than the export,
 * and the copies are what audit_verify checks. */
#define ROW_COLUMNS                                                                             \
	"seq, json, leaf_hash, json_extract(json, '$.time'), json_extract(json, '$.actor'), "          \
	"json_extract(json, '$.action'), json_extract(json, '$.object'), json_extract(json, '$.outcome')"
#define ROW_STORED "seq, json, leaf_hash, time, actor, action, object, outcome"

/* Fill *row from a statement selecting ROW_COLUMNS: one block holds every
 * string. */
static km_status row_from_stmt(sqlite3_stmt *st, audit_row *row, km_err *e)
{
	enum { NSTR = 6 };
	static const int cols[NSTR] = {1, 3, 4, 5, 6, 7};
	char **dst[NSTR] = {&row->json, &row->time, &row->actor, &row->action, &row->object, &row->outcome};
	size_t len[NSTR], total = 0, off = 0;
	char *block;

	memset(row, 0, sizeof *row);
	for (int i = 0; i < NSTR; i++) {
		len[i] = col_bytes(st, cols[i]);
		total += len[i] + 1;
	}
	if (!(block = malloc(total)))
		return km_fail(e, KM_ENOMEM, "out of memory reading an audit event");
	for (int i = 0; i < NSTR; i++) {
		const unsigned char *t = sqlite3_column_text(st, cols[i]);
		if (!t && i > 0) /* SQL NULL: e.g. an event without an object */
			continue;
		memcpy(block + off, t ? (const char *)t : "", len[i]);
		block[off + len[i]] = '\0';
		*dst[i] = block + off;
		off += len[i] + 1;
	}
	row->seq = (uint64_t)sqlite3_column_int64(st, 0);
	if (col_bytes(st, 2) == HB)
		memcpy(row->leaf_hash, sqlite3_column_blob(st, 2), HB);
	return KM_OK;
}

void audit_row_free(audit_row *row)
{
	if (!row)
		return;
	free(row->json); /* the block */
	memset(row, 0, sizeof *row);
}

km_status audit_row_copy(const audit_row *src, audit_row *dst, km_err *e)
{
	const char *const from[] = {src->json, src->time, src->actor, src->action, src->object, src->outcome};
	char **to[] = {&dst->json, &dst->time, &dst->actor, &dst->action, &dst->object, &dst->outcome};
	size_t total = 0, off = 0;
	char *block;

	for (size_t i = 0; i < KM_ARRAY_LEN(from); i++)
		total += from[i] ? strlen(from[i]) + 1 : 0;
	memset(dst, 0, sizeof *dst);
	if (!(block = malloc(total ? total : 1)))
		return km_fail(e, KM_ENOMEM, "out of memory copying an audit event");
	block[0] = '\0';
	dst->json = block; /* owner of the block even if src->json was NULL */
	for (size_t i = 0; i < KM_ARRAY_LEN(from); i++) {
		if (!from[i])
			continue;
		size_t n = strlen(from[i]) + 1;
		memcpy(block + off, from[i], n);
		*to[i] = block + off;
		off += n;
	}
	dst->seq = src->seq;
	memcpy(dst->leaf_hash, src->leaf_hash, HB);
	return KM_OK;
}

km_status audit_get(sqlite3 *db, uint64_t seq, audit_row *out, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT " ROW_COLUMNS " FROM audit_events WHERE seq = ?", &st, e);
	memset(out, 0, sizeof *out);
	if (s != KM_OK)
		return s;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		s = row_from_stmt(st, out, e);
	else if (rc == SQLITE_DONE)
		s = km_fail(e, KM_ENOTFOUND, "there is no audit entry %llu", (unsigned long long)seq);
	else
		s = db_fail(db, e, "reading an audit entry");
	sqlite3_finalize(st);
	return s;
}

/* ------------------------------------------------------------ queries */

/* The filters that have an index of their own, (column, seq).  A query
 * walks the one that matches fewest rows (probed with capped index-only
 * counts), so SQLite never falls back to computing json_extract() over a
 * large part of the log. */
typedef enum {
	MATCH_EXACT,
	MATCH_PREFIX,
	MATCH_RARE,  /* exact, for any value but "ok" */
	MATCH_DENSE, /* exact, for "ok" alone; no index */
} match_kind;

static const struct {
	size_t offset;     /* the audit_filter field */
	const char *sql;   /* its predicate */
	match_kind kind;
	const char *index; /* the index that serves it */
} filter_clauses[] = {
	{offsetof(audit_filter, object), " AND object = ?", MATCH_EXACT, "audit_events_object"},
	{offsetof(audit_filter, object_prefix), " AND object >= ? AND object < ?", MATCH_PREFIX,
	 "audit_events_object"},
	{offsetof(audit_filter, actor), " AND actor = ?", MATCH_EXACT, "audit_events_actor"},
	{offsetof(audit_filter, action), " AND action = ?", MATCH_EXACT, "audit_events_action"},
	/* The outcome index holds the rare outcomes alone (the repeated
	 * predicate lets SQLite use it); "ok" is most of the log, and never
	 * drives the plan. */
	{offsetof(audit_filter, outcome), " AND outcome = ? AND outcome <> 'ok'", MATCH_RARE,
	 "audit_events_outcome"},
	{offsetof(audit_filter, outcome), " AND +outcome = ?", MATCH_DENSE, NULL},
};

/* Read exactly n digits at *p into *v. */
static int time_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return 0;
		*v = *v * 10 + (**p - '0');
	}
	return 1;
}

km_status audit_time_prefix_check(const char *s, const char *what, char out[AUDIT_TIME_LEN + 1],
                                  km_err *e)
{
	/* field: separator before it, digits, lowest and highest value */
	static const struct { char sep; int digits, lo, hi; } fields[] = {
		{0, 4, 1, 9999}, {'-', 2, 1, 12}, {'-', 2, 1, 31},
		{'T', 2, 0, 23}, {':', 2, 0, 59}, {':', 2, 0, 60}, {'.', 3, 0, 999},
	};
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s ? s : "";
	int v[KM_ARRAY_LEN(fields)] = {0};
	size_t n = 0;
	int ok = *p != '\0';
	while (ok && n < KM_ARRAY_LEN(fields) && *p && *p != 'Z') {
		if (fields[n].sep && *p++ != fields[n].sep)
			ok = 0;
		else if (!time_digits(&p, fields[n].digits, &v[n]) || v[n] < fields[n].lo || v[n] > fields[n].hi)
			ok = 0;
		else
			n++;
	}
	if (ok && *p == 'Z')
		ok = n >= 4 && p[1] == '\0';
	else if (ok)
		ok = *p == '\0';
	if (ok && n >= 3) {
		int leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
		ok = v[2] <= mdays[v[1] - 1] && !(v[1] == 2 && v[2] == 29 && !leap);
	}
	if (!ok)
		return km_fail(e, KM_EUSAGE, "%s '%.40s' is not a UTC time: give an RFC 3339 time or a prefix "
		               "of one, e.g. 2026-03, 2026-03-01, 2026-03-01T10:30 or 2026-03-01T10:30:00Z",
		               what, s ? s : "");
	/* the shape is checked: at most AUDIT_TIME_LEN bytes */
	size_t len = (size_t)(p - s);
	memcpy(out, s, len);
	out[len] = '\0';
	if (*p == 'Z' && n == KM_ARRAY_LEN(fields))
		memcpy(out + len, "Z", 2);
	return KM_OK;
}

/* A filter matching at least this many rows counts as "dense". */
#define PROBE_CAP 4096

/* The filter's value for clause i, or NULL if that filter is not set. */
static const char *filter_value(const audit_filter *f, size_t i)
{
	const char *v;
	if (!f)
		return NULL;
	memcpy(&v, (const char *)f + filter_clauses[i].offset, sizeof v);
	if (!v || !*v)
		return NULL;
	if (filter_clauses[i].kind == MATCH_RARE || filter_clauses[i].kind == MATCH_DENSE)
		return (strcmp(v, "ok") == 0) == (filter_clauses[i].kind == MATCH_DENSE) ? v : NULL;
	return v;
}

static const char *nonempty(const char *v)
{
	return v && *v ? v : NULL;
}

/* prefix + 0xFF: above every string that starts with prefix (0xFF never
 * occurs in UTF-8), so [prefix, upper) is exactly "starts with prefix". */
static char *prefix_upper(const char *prefix)
{
	size_t n = strlen(prefix);
	char *u = malloc(n + 2);
	if (u) {
		memcpy(u, prefix, n);
		u[n] = '\xff';
		u[n + 1] = '\0';
	}
	return u;
}

/* Bind clause i's values from parameter *param on. */
static void bind_clause(sqlite3_stmt *st, int *param, size_t i, const char *v, const char *upper)
{
	sqlite3_bind_text(st, (*param)++, v, -1, SQLITE_STATIC);
	if (filter_clauses[i].kind == MATCH_PREFIX)
		sqlite3_bind_text(st, (*param)++, upper, -1, SQLITE_STATIC);
}

/* Times never decrease along the log (see event_time), so a time range is
 * a sequence range, found with two descents of the time index:
 * [*lo, *hi) narrows to the events with time_from <= time < to_upper.
 * *lo >= *hi afterwards means nothing matches. */
static km_status time_to_seq(sqlite3 *db, const char *from, const char *to_upper, int64_t *lo,
                             int64_t *hi, km_err *e)
{
	static const char *const sql[2] = {
		"SELECT seq FROM audit_events WHERE time >= ? ORDER BY time, seq LIMIT 1",
		"SELECT seq FROM audit_events WHERE time < ? ORDER BY time DESC, seq DESC LIMIT 1",
	};
	const char *bound[2] = {from, to_upper};
	km_status s = KM_OK;

	for (int i = 0; i < 2 && s == KM_OK && *lo < *hi; i++) {
		sqlite3_stmt *st;
		if (!bound[i])
			continue;
		if ((s = prepare(db, sql[i], &st, e)) != KM_OK)
			break;
		sqlite3_bind_text(st, 1, bound[i], -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			int64_t seq = sqlite3_column_int64(st, 0);
			if (i == 0 && seq > *lo)
				*lo = seq;
			if (i == 1 && seq + 1 < *hi)
				*hi = seq + 1;
		} else if (rc == SQLITE_DONE) {
			*hi = *lo; /* nothing at or after from / before to */
		} else {
			s = db_fail(db, e, "querying the audit log by time");
		}
		sqlite3_finalize(st);
	}
	return s;
}

/* How many rows (capped at PROBE_CAP) clause i matches in [lo, hi). */
static km_status probe_clause(sqlite3 *db, size_t i, const char *v, const char *upper, int64_t lo,
                              int64_t hi, int64_t *count, km_err *e)
{
	char sql[256];
	sqlite3_stmt *st;
	int param = 1;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM audit_events INDEXED BY %s WHERE 1%s "
	         "AND seq >= ? AND seq < ? LIMIT %d)", filter_clauses[i].index, filter_clauses[i].sql, PROBE_CAP);
	km_status s = prepare(db, sql, &st, e);
	if (s != KM_OK)
		return s;
	bind_clause(st, &param, i, v, upper);
	sqlite3_bind_int64(st, param++, lo);
	sqlite3_bind_int64(st, param, hi);
	if (sqlite3_step(st) == SQLITE_ROW)
		*count = sqlite3_column_int64(st, 0);
	else
		s = db_fail(db, e, "querying the audit log");
	sqlite3_finalize(st);
	return s;
}

km_status audit_query(sqlite3 *db, const audit_filter *f, uint64_t before_seq, int limit,
                      audit_row_fn row_cb, void *ctx, km_err *e)
{
	char sql[1024];
	char *uppers[KM_ARRAY_LEN(filter_clauses)] = {NULL};
	char *time_upper = NULL;
	const char *time_from = f ? nonempty(f->time_from) : NULL;
	const char *time_to = f ? nonempty(f->time_to) : NULL;
	const char *hide_action = f ? nonempty(f->hide_action) : NULL;
	const char *contains = f ? nonempty(f->object_contains) : NULL;
	int64_t lo = 1, hi = before_seq && before_seq < INT64_MAX ? (int64_t)before_seq : INT64_MAX;
	int64_t best_count = INT64_MAX;
	size_t best = KM_ARRAY_LEN(filter_clauses);
	sqlite3_stmt *st = NULL;
	int param = 1, rc = SQLITE_DONE, opened;
	km_status s;

	if ((s = read_begin(db, &opened, e)) != KM_OK)
		return s;
	for (size_t i = 0; i < KM_ARRAY_LEN(filter_clauses) && s == KM_OK; i++)
		if (filter_value(f, i) && filter_clauses[i].kind == MATCH_PREFIX &&
		    !(uppers[i] = prefix_upper(filter_value(f, i))))
			s = km_fail(e, KM_ENOMEM, "out of memory building an audit query");
	if (s == KM_OK && time_to && !(time_upper = prefix_upper(time_to)))
		s = km_fail(e, KM_ENOMEM, "out of memory building an audit query");
	if (s == KM_OK)
		s = time_to_seq(db, time_from, time_upper, &lo, &hi, e);

	/* Walk the most selective filter's index; exact matches win ties (their
	 * index is already in seq order, no sort).  A prefix index is walked
	 * only when it matches fewer than PROBE_CAP rows (they are sorted by
	 * seq); a prefix matching more is dense, and so is quicker to meet
	 * walking the rowid newest first, as is no column filter at all. */
	for (size_t i = 0; i < KM_ARRAY_LEN(filter_clauses) && s == KM_OK && lo < hi; i++) {
		int64_t count = 0;
		if (!filter_value(f, i) || !filter_clauses[i].index)
			continue;
		if ((s = probe_clause(db, i, filter_value(f, i), uppers[i], lo, hi, &count, e)) != KM_OK)
			break;
		if (count < best_count || (count == best_count && filter_clauses[i].kind != MATCH_PREFIX)) {
			best_count = count;
			best = i;
		}
	}
	if (s != KM_OK || lo >= hi || best_count == 0)
		goto out;
	if (best < KM_ARRAY_LEN(filter_clauses) && filter_clauses[best].kind == MATCH_PREFIX &&
	    best_count >= PROBE_CAP)
		best = KM_ARRAY_LEN(filter_clauses);

	snprintf(sql, sizeof sql, "SELECT " ROW_COLUMNS " FROM audit_events %s%s WHERE 1",
	         best < KM_ARRAY_LEN(filter_clauses) ? "INDEXED BY " : "NOT INDEXED",
	         best < KM_ARRAY_LEN(filter_clauses) ? filter_clauses[best].index : "");
	for (size_t i = 0; i < KM_ARRAY_LEN(filter_clauses); i++)
		if (filter_value(f, i))
			strcat(sql, filter_clauses[i].sql);
	/* The time predicates stay, exact, but with unary + so they never
	 * drive the plan: the sequence range already did. */
	strcat(sql, " AND seq >= ? AND seq < ?");
	if (hide_action)
		strcat(sql, " AND +action IS NOT ?");
	if (contains)
		strcat(sql, " AND instr(+object, ?) > 0");
	if (time_from)
		strcat(sql, " AND +time >= ?");
	if (time_upper)
		strcat(sql, " AND +time < ?");
	strcat(sql, " ORDER BY seq DESC LIMIT ?");
	if ((s = prepare(db, sql, &st, e)) != KM_OK)
		goto out;
	for (size_t i = 0; i < KM_ARRAY_LEN(filter_clauses); i++)
		if (filter_value(f, i))
			bind_clause(st, &param, i, filter_value(f, i), uppers[i]);
	sqlite3_bind_int64(st, param++, lo);
	sqlite3_bind_int64(st, param++, hi);
	if (hide_action)
		sqlite3_bind_text(st, param++, hide_action, -1, SQLITE_STATIC);
	if (contains)
		sqlite3_bind_text(st, param++, contains, -1, SQLITE_STATIC);
	if (time_from)
		sqlite3_bind_text(st, param++, time_from, -1, SQLITE_STATIC);
	if (time_upper)
		sqlite3_bind_text(st, param++, time_upper, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, param, limit > 0 ? limit : 50);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		audit_row row;
		if ((s = row_from_stmt(st, &row, e)) != KM_OK)
			break;
		int stop = row_cb(ctx, &row);
		audit_row_free(&row);
		if (stop)
			break;
	}
	if (s == KM_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = db_fail(db, e, "querying the audit log");
out:
	sqlite3_finalize(st);
	for (size_t i = 0; i < KM_ARRAY_LEN(uppers); i++)
		free(uppers[i]);
	free(time_upper);
	read_end(db, opened);
	return s;
}

/* ------------------------------------------------------------ signatures */

/* Does sig (raw r||s) verify over the checkpoint text of this head?
 * *ok = 1 / 0; an error status only if OpenSSL could not run at all. */
static km_status head_signature_ok(EVP_MD_CTX *vctx, EVP_PKEY *pub, const char *origin, uint64_t size,
                                   const uint8_t root[HB], int64_t time, const uint8_t *sig,
                                   size_t sig_len, int *ok, km_err *e)
{
	char text[CHECKPOINT_MAX];
	uint8_t der[HSM_SIG_DER_MAX];
	size_t der_len = 0, len;
	km_err ignored;

	*ok = 0;
	len = audit_checkpoint_text(origin, size, root, time, text, sizeof text);
	if (len == 0 || sig_len != AUDIT_SIG_BYTES ||
	    hsm_sig_to_der(sig, der, sizeof der, &der_len, &ignored) != KM_OK)
		return KM_OK;
	EVP_MD_CTX_reset(vctx);
	if (EVP_DigestVerifyInit_ex(vctx, NULL, "SHA256", NULL, NULL, pub, NULL) != 1) {
		ERR_clear_error();
		return km_fail(e, KM_EINTERNAL, "OpenSSL cannot verify with the audit public key "
		               "(is it an EC P-256 key?)");
	}
	*ok = EVP_DigestVerify(vctx, der, der_len, (const unsigned char *)text, len) == 1;
	ERR_clear_error();
	return KM_OK;
}

/* ------------------------------------------------------------ verification: checker */

/* The checker's state: everything it has proven so far. */
typedef struct vstate {
	merkle_hasher *h;
	EVP_MD_CTX *vctx;
	EVP_PKEY *pub;
	const char *origin; /* NULL: no origin stored */
	merkle_frontier f;  /* of the entries proven so far (f.size of them) */
	uint8_t created[MERKLE_MAX_LEVELS][HB]; /* nodes the newest entry completed, */
	unsigned created_top;                   /* levels 1..created_top */
	const audit_anchor *anchor; /* NULL: none known */
	uint64_t last_head; /* size of the newest head proven so far */
	char last_time[AUDIT_TIME_LEN]; /* the previous entry's time */
	int stray;          /* the reader found a node past the log: */
	int64_t stray_level, stray_idx;
	uint64_t cols_bad;  /* the first entry whose filter columns disagree with its
	                     * text: reported once everything else checked out */
	int node_bad;       /* the first stored node that disagreed, held back */
	uint64_t node_first;/* until a head or the anchor proves its entries */
	char node_problem[200];
	int failed;         /* a problem was found (r->problem says which) */
	km_status err;      /* verification itself broke */
	km_err err_msg;
	audit_verify_result *r;
	audit_visit_fn visit; /* every proven entry, or NULL */
	void *visit_ctx;
} vstate;

__attribute__((format(printf, 3, 4)))
static void v_fail(vstate *v, uint64_t first_bad, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->r->problem, sizeof v->r->problem, fmt, ap);
	va_end(ap);
	v->r->first_bad_seq = first_bad;
	v->r->intact = 0;
	v->failed = 1;
}

static void v_error(vstate *v, km_status s)
{
	if (v->err == KM_OK)
		v->err = s;
}

/* "entry 7" or "entries 7..9" */
static void fmt_range(char *buf, size_t cap, uint64_t lo, uint64_t hi)
{
	if (lo == hi)
		snprintf(buf, cap, "entry %llu", (unsigned long long)lo);
	else
		snprintf(buf, cap, "entries %llu..%llu", (unsigned long long)lo, (unsigned long long)hi);
}

/* The filter columns against the text they were copied from.  The text's
 * shape is canonical (sorted keys: action, actor, details, object, outcome,
 * seq, time): action and actor are read from the front, time, outcome and
 * object from the back, so the details in between (anything at all) are
 * never parsed.  A string inside JSON holds no unescaped quote, so the
 * quote that opens a value is found scanning back from the one that closes
 * it.  Anything unexpected counts as a mismatch; the shape and hash checks
 * say more about a malformed text. */

/* Is the JSON string t[0..n) (quotes included) the column value (v, vn)? */
static int json_string_is(const char *t, size_t n, const unsigned char *v, size_t vn)
{
	if (n < 2 || t[0] != '"' || t[n - 1] != '"' || !v)
		return 0;
	if (!memchr(t, '\\', n))
		return n - 2 == vn && memcmp(t + 1, v, vn) == 0;
	json_t *j = json_loadb(t, n, JSON_DECODE_ANY, NULL);
	int same = json_is_string(j) && json_string_length(j) == vn && memcmp(json_string_value(j), v, vn) == 0;
	json_decref(j);
	return same;
}

/* From the opening quote at t[i]: one past the closing quote, or 0. */
static size_t string_end(const char *t, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (t[i] == '\\')
			i++;
		else if (t[i] == '"')
			return i + 1;
	}
	return 0;
}

/* From the closing quote at t[i]: the opening quote's index, or 0. */
static size_t string_start(const char *t, size_t lo, size_t i)
{
	while (i-- > lo) {
		if (t[i] != '"')
			continue;
		size_t bs = 0;
		while (i - bs > lo && t[i - bs - 1] == '\\')
			bs++;
		if (bs % 2 == 0)
			return i;
	}
	return 0;
}

static int ends_with_at(const char *t, size_t end, size_t lo, const char *lit)
{
	size_t n = strlen(lit);
	return end >= lo + n && memcmp(t + end - n, lit, n) == 0;
}

static int columns_match(const char *t, size_t len, sqlite3_stmt *st)
{
	static const char head[] = "{\"action\":";
	const size_t hl = sizeof head - 1;
#define COL(i) sqlite3_column_text(st, i), col_bytes(st, i)
	size_t a, b, c, d;

	/* time: the last value, fixed length */
	if (len < hl + AUDIT_TIME_LEN + 2 || memcmp(t, head, hl) != 0 ||
	    !json_string_is(t + len - AUDIT_TIME_LEN - 3, AUDIT_TIME_LEN + 2, COL(3)))
		return 0;
	/* action, actor */
	if (!(a = string_end(t, len, hl)) || !json_string_is(t + hl, a - hl, COL(5)) ||
	    len - a < 10 || memcmp(t + a, ",\"actor\":\"", 10) != 0 || !(b = string_end(t, len, a + 9)) ||
	    !json_string_is(t + a + 9, b - a - 9, COL(4)))
		return 0;
	/* outcome: the string before ,"seq": */
	const char *sq = NULL;
	for (size_t i = len - AUDIT_TIME_LEN - 3; i > b + 7; i--)
		if (memcmp(t + i - 7, ",\"seq\":", 7) == 0) {
			sq = t + i - 7;
			break;
		}
	if (!sq)
		return 0;
	c = (size_t)(sq - t);
	size_t o = c > b ? string_start(t, b, c - 1) : 0;
	if (!o || !json_string_is(t + o, c - o, COL(7)) || !ends_with_at(t, o, b, ",\"outcome\":"))
		return 0;
	d = o - 11; /* end of the object value */
	if (ends_with_at(t, d, b, "null")) {
		if (sqlite3_column_type(st, 6) == SQLITE_NULL && ends_with_at(t, d - 4, b, ",\"object\":"))
			return 1;
		if (sqlite3_column_type(st, 6) == SQLITE_NULL)
			return 0;
	}
	size_t q = d > b && t[d - 1] == '"' ? string_start(t, b, d - 1) : 0;
	return q && json_string_is(t + q, d - q, COL(6)) && ends_with_at(t, q, b, ",\"object\":");
#undef COL
}

/* The cheap per-entry shape check: the text starts with the first key and
 * ends with exactly ,"seq":<seq>,"time":"<RFC 3339 ms>"} — in the canonical
 * form seq and time are always the last two keys, so this pins the entry's
 * own sequence number without parsing the JSON.  Returns 0 if fine, 1 if
 * the text claims another seq (*claimed set), 2 if malformed. */
static int shape_check(const char *t, size_t len, uint64_t seq, uint64_t *claimed)
{
	static const char head[] = "{\"action\":\"";
	static const char seq_key[] = ",\"seq\":";
	static const char time_key[] = ",\"time\":\"";
	const size_t hl = sizeof head - 1, kl = sizeof seq_key - 1, tl = sizeof time_key - 1;
	const size_t suffix = tl + AUDIT_TIME_LEN + 2;
	const char *tp, *p;
	uint64_t v = 0;

	if (len < hl + kl + 1 + suffix || memcmp(t, head, hl) != 0)
		return 2;
	tp = t + len - suffix;
	if (memcmp(tp, time_key, tl) != 0 || !time_shape_ok(tp + tl) || t[len - 2] != '"' || t[len - 1] != '}')
		return 2;
	for (p = tp; p > t + hl + kl && p[-1] >= '0' && p[-1] <= '9' && tp - p < 19; p--)
		;
	if (p == tp || memcmp(p - kl, seq_key, kl) != 0 || (*p == '0' && tp - p > 1))
		return 2;
	for (const char *d = p; d < tp; d++)
		v = v * 10 + (uint64_t)(*d - '0');
	if (v == seq)
		return 0;
	*claimed = v;
	return 1;
}

/* At the anchored size: the root recomputed from the entries must be the
 * anchored one.  The anchor is the newest head keyward vouched for, kept
 * where the database cannot reach it, so a mismatch means entries up to it
 * were rewritten after they were signed — even if the heads that would
 * have shown it were deleted. */
static void v_node_proven(vstate *v);

static void v_anchor(vstate *v)
{
	uint64_t n = v->f.size, lo = v->last_head + 1;
	uint8_t computed[HB];
	char range[64];
	km_status s;

	if ((s = merkle_frontier_root(v->h, &v->f, computed, &v->err_msg)) != KM_OK) {
		v_error(v, s);
		return;
	}
	if (memcmp(computed, v->anchor->root, HB) == 0) {
		v->r->anchor_checked = 1;
		v_node_proven(v);
		return;
	}
	if (n == 0) {
		v_fail(v, 1, "the anchor in the HSM records an empty log with a root that is not the empty "
		       "tree's (the anchor is damaged)");
		return;
	}
	fmt_range(range, sizeof range, lo, n);
	v_fail(v, lo, "%s %s not match the tree anchored in the HSM at size %llu: entries in this range "
	       "were rewritten (with their hashes recomputed) after they were signed, or rows were "
	       "reordered", range, lo == n ? "does" : "do", (unsigned long long)n);
}

/* precomputed: the entry's leaf hash if the reader already made it, or
 * NULL. */
static void v_entry(vstate *v, int64_t seq, const char *text, size_t len, const uint8_t *stored,
                    size_t stored_len, const uint8_t *precomputed)
{
	uint64_t expect = v->f.size + 1;
	uint8_t leaf[HB];
	uint64_t claimed = 0;
	char why[160];

	if (seq != (int64_t)expect) {
		char range[64];
		if (seq <= 0) {
			v_fail(v, expect, "a row has the impossible sequence number %lld "
			       "(sequence numbers start at 1): rows were renumbered", (long long)seq);
			return;
		}
		fmt_range(range, sizeof range, expect, (uint64_t)seq - 1);
		if (expect == 1)
			v_fail(v, 1, "%s %s missing (the log starts at entry %lld)", range,
			       (uint64_t)seq == expect + 1 ? "is" : "are", (long long)seq);
		else
			v_fail(v, expect, "%s %s missing (the sequence jumps from %llu to %lld)", range,
			       (uint64_t)seq == expect + 1 ? "is" : "are", (unsigned long long)expect - 1,
			       (long long)seq);
		return;
	}
	switch (shape_check(text, len, expect, &claimed)) {
	case 1:
		v_fail(v, expect, "entry %llu: its text says it is entry %llu "
		       "(rows were renumbered, reordered or swapped)", (unsigned long long)expect,
		       (unsigned long long)claimed);
		return;
	case 2:
		v_fail(v, expect, "entry %llu: the event text is malformed (not keyward's canonical form)",
		       (unsigned long long)expect);
		return;
	default:
		break;
	}
	if (expect % CANONICAL_SAMPLE == 1 && canonical_problem(text, len, seq, why, sizeof why)) {
		v_fail(v, expect, "entry %llu: the event text is not canonical: %s", (unsigned long long)expect, why);
		return;
	}
	km_status s = KM_OK;
	if (precomputed)
		memcpy(leaf, precomputed, HB);
	else if ((s = merkle_leaf_hash(v->h, text, len, leaf, &v->err_msg)) != KM_OK) {
		v_error(v, s);
		return;
	}
	if (stored_len != HB || memcmp(leaf, stored, HB) != 0) {
		v_fail(v, expect, "entry %llu: event was modified (leaf hash does not match)",
		       (unsigned long long)expect);
		return;
	}
	/* keyward's writer never lets time go backwards (event_time) */
	const char *t = text + len - AUDIT_TIME_LEN - 2;
	if (expect > 1 && memcmp(t, v->last_time, AUDIT_TIME_LEN) < 0) {
		v_fail(v, expect, "entry %llu: its time %.24s is earlier than entry %llu's %.24s "
		       "(entries were reordered or rewritten)", (unsigned long long)expect, t,
		       (unsigned long long)expect - 1, v->last_time);
		return;
	}
	memcpy(v->last_time, t, AUDIT_TIME_LEN);
	if ((s = merkle_frontier_append_nodes(v->h, &v->f, leaf, v->created, &v->created_top, &v->err_msg)) != KM_OK) {
		v_error(v, s);
		return;
	}
	v->r->entries_checked = v->f.size;
	if (v->anchor && v->f.size == v->anchor->size)
		v_anchor(v);
}

/* A stored node as the reader found it, for the node the entry before it
 * completed (kept apart from the items: there is one per entry on average,
 * and they are small). */
typedef struct vnode {
	int64_t idx;         /* the index expected at this level */
	int64_t stored_idx;  /* the row found (valid if present) */
	uint8_t hash[HB];
	uint8_t level, present, hash_len;
} vnode;

/* The stored node nd against the one the newest entry completed.
 * present = 0: the table has no row there; stored_idx is the row the
 * reader found instead (it reads each level in idx order).
 *
 * A node that disagrees is either damaged or the honest node over entries
 * rewritten since (hashes recomputed): only the next head, or the anchor,
 * tells which.  So the first one is held back; v_node_proven reports it
 * once a signed root proves the entries, and otherwise the head's or the
 * anchor's finding (rewritten entries) is the one reported. */
static void v_node(vstate *v, const vnode *nd)
{
	unsigned level = nd->level;
	int64_t idx = nd->idx;
	uint64_t first = ((uint64_t)idx << level) + 1, last = ((uint64_t)idx + 1) << level;
	const char *what;
	char range[64];

	if (v->node_bad)
		return;
	if (!nd->present || nd->stored_idx != idx)
		what = "is missing; the entries are intact, but proofs that need it cannot be made";
	else if (idx < 0 || level > v->created_top || (uint64_t)idx != (v->f.size >> level) - 1 ||
	         nd->hash_len != HB || memcmp(v->created[level], nd->hash, HB) != 0)
		what = "does not match them; the entries are intact, but proofs built from it fail";
	else
		return;
	fmt_range(range, sizeof range, first, last);
	snprintf(v->node_problem, sizeof v->node_problem, "the stored tree node over %s (level %u) %s "
	         "(tampered or damaged)", range, level, what);
	v->node_bad = 1;
	v->node_first = first;
}

/* A signed root (head or anchor) just proved every entry so far. */
static void v_node_proven(vstate *v)
{
	if (v->node_bad)
		v_fail(v, v->node_first, "%s", v->node_problem);
}

/* verdict: the reader's finding on the signature (1 good, -1 bad), or 0 to
 * check it here. */
static void v_head(vstate *v, int64_t size, const uint8_t *root, size_t root_len, int64_t time,
                   const uint8_t *sig, size_t sig_len, int verdict)
{
	uint64_t n = v->f.size, lo = v->last_head + 1;
	uint8_t computed[HB], root_copy[HB] = {0};
	char range[64];
	int ok = 0;
	km_status s;

	if (size < 0) {
		v_fail(v, lo, "a tree head has the impossible size %lld (forged)", (long long)size);
		return;
	}
	if (!v->origin) {
		v_fail(v, lo, "the log's origin line (audit_meta 'origin') is missing, so no tree head "
		       "signature can be checked");
		return;
	}
	if (root_len == HB)
		memcpy(root_copy, root, HB);
	if (verdict != 0) {
		ok = verdict > 0;
	} else if ((s = head_signature_ok(v->vctx, v->pub, v->origin, (uint64_t)size, root_copy, time, sig,
	                                  sig_len, &ok, &v->err_msg)) != KM_OK) {
		v_error(v, s);
		return;
	}
	if (!ok || root_len != HB) {
		v_fail(v, lo, "tree head at size %lld: signature does not verify (forged or damaged)",
		       (long long)size);
		return;
	}
	if ((uint64_t)size > n) {
		/* A genuine head beyond the last entry: the tail is gone. */
		fmt_range(range, sizeof range, n + 1, (uint64_t)size);
		v_fail(v, n + 1, "%s %s missing: the log ends at entry %llu but a signed tree head covers "
		       "%lld entries (the log was truncated)", range, n + 1 == (uint64_t)size ? "is" : "are",
		       (unsigned long long)n, (long long)size);
		return;
	}
	if ((s = merkle_frontier_root(v->h, &v->f, computed, &v->err_msg)) != KM_OK) {
		v_error(v, s);
		return;
	}
	if (memcmp(computed, root, HB) != 0) {
		fmt_range(range, sizeof range, lo, n);
		v_fail(v, lo, "%s %s not match the signed tree head at size %lld: an entry in this range "
		       "was altered together with its stored hash, or rows were reordered", range,
		       lo == n ? "does" : "do", (long long)size);
		return;
	}
	v->last_head = n;
	v->r->heads_checked++;
	v->r->head_size = n;
	memcpy(v->r->head_root, computed, HB);
	v->r->head_time = time;
	v_node_proven(v);
}

/* After the last entry: everything covered, and the frontier cache true. */
static void v_finish(vstate *v, sqlite3 *db, km_err *e)
{
	uint64_t n = v->f.size;
	merkle_frontier stored;
	char range[64];

	if (n > v->last_head) {
		fmt_range(range, sizeof range, v->last_head + 1, n);
		v_fail(v, v->last_head + 1, "%s %s not covered by any signed tree head "
		       "(they could have been inserted)", range, v->last_head + 1 == n ? "is" : "are");
		return;
	}
	if (v->anchor && n < v->anchor->size) {
		/* The heads after n went with the entries; the anchor did not. */
		fmt_range(range, sizeof range, n + 1, v->anchor->size);
		v_fail(v, n + 1, "%s %s missing: the log ends at entry %llu but the anchor in the HSM records "
		       "%llu entries (the log was truncated)", range, n + 1 == v->anchor->size ? "is" : "are",
		       (unsigned long long)n, (unsigned long long)v->anchor->size);
		return;
	}
	v_node_proven(v); /* every entry is covered: proven */
	if (v->failed)
		return;
	km_status s = frontier_load(db, &stored, e);
	int same = s == KM_OK && stored.size == n;
	for (unsigned l = 0; same && l < MERKLE_MAX_LEVELS; l++)
		same = !(n >> l & 1) || memcmp(stored.hash[l], v->f.hash[l], HB) == 0;
	if (s == KM_EINTEGRITY || (s == KM_OK && !same)) {
		v_fail(v, n + 1, "the stored Merkle frontier does not match entries 1..%llu; the entries are "
		       "intact, but the next tree head would be signed over a wrong root (tampered or "
		       "damaged)", (unsigned long long)n);
		return;
	}
	if (s != KM_OK) {
		v_error(v, s);
		return;
	}
	if (v->stray) {
		v_fail(v, n + 1, "a stored tree node (level %lld, index %lld) lies outside the log's %llu entries; "
		       "the entries are intact (tampered or damaged)", (long long)v->stray_level,
		       (long long)v->stray_idx, (unsigned long long)n);
		return;
	}
	if (v->cols_bad) {
		v_fail(v, v->cols_bad, "entry %llu: its filter columns (time, actor, action, object, outcome) do "
		       "not match its text; the entries are intact, but audit tail filters, reports and "
		       "anomaly scans read those columns (tampered or damaged)", (unsigned long long)v->cols_bad);
		return;
	}
	v->r->intact = 1;
	v->r->first_bad_seq = 0;
	v->r->problem[0] = '\0';
}

/* ------------------------------------------------------------ verification: pipeline */

enum { ITEM_ENTRY, ITEM_HEAD };

/* One row handed from the reader to the checker.  Hashes and signatures are
 * copied with their real stored lengths so a damaged blob is still seen. */
typedef struct vitem {
	int kind;
	int64_t num;       /* entry seq, or head size */
	size_t off, len;   /* entry text in the batch arena */
	size_t hash_len;   /* stored leaf hash / head root */
	uint8_t hash[HB];
	int leaf_done;     /* entry: the reader computed leaf already */
	uint8_t leaf[HB];
	int64_t time;      /* head */
	size_t sig_len;
	uint8_t sig[AUDIT_SIG_BYTES];
	int sig_verdict;   /* head: 1 / -1 the reader found the signature good / bad, 0 not checked */
	unsigned node_first, node_count; /* entry: the stored nodes it completes, in the batch */
	int cols_bad;      /* entry: its filter columns disagree with its text */
} vitem;


/* With a checker thread, the reader hashes this many leaves in every 8
 * itself (reading rows out of SQLite costs a little less than hashing
 * them), and checks every other tree head signature: this evens out the
 * two threads. */
#define READER_LEAF_SHARE 3

#define BATCH_ITEMS 2048
/* k consecutive entries complete at most k + 64 nodes */
#define BATCH_NODES (BATCH_ITEMS + 2 * MERKLE_MAX_LEVELS)
#define BATCH_ARENA (512 * 1024)

typedef struct vbatch {
	vitem item[BATCH_ITEMS];
	size_t count;
	vnode node[BATCH_NODES];
	size_t nodes;
	char *arena;
	size_t used, cap;
} vbatch;

static void batch_run(vstate *v, const vbatch *b)
{
	for (size_t i = 0; i < b->count && !v->failed && v->err == KM_OK; i++) {
		const vitem *it = &b->item[i];
		if (it->kind == ITEM_ENTRY) {
			v_entry(v, it->num, b->arena + it->off, it->len, it->hash, it->hash_len,
			        it->leaf_done ? it->leaf : NULL);
			if (v->visit && !v->failed && v->err == KM_OK)
				v->visit(v->visit_ctx, (uint64_t)it->num, b->arena + it->off, it->len);
			if (it->cols_bad && !v->cols_bad && !v->failed)
				v->cols_bad = (uint64_t)it->num;
			for (unsigned j = 0; j < it->node_count && !v->failed && v->err == KM_OK; j++)
				v_node(v, &b->node[it->node_first + j]);
		} else
			v_head(v, it->num, it->hash, it->hash_len, it->time, it->sig, it->sig_len, it->sig_verdict);
	}
}

static void item_head(vitem *it, sqlite3_stmt *hs)
{
	memset(it, 0, sizeof *it);
	it->kind = ITEM_HEAD;
	it->num = sqlite3_column_int64(hs, 0);
	it->hash_len = col_bytes(hs, 1);
	if (it->hash_len)
		memcpy(it->hash, sqlite3_column_blob(hs, 1), it->hash_len < HB ? it->hash_len : HB);
	it->time = sqlite3_column_int64(hs, 2);
	it->sig_len = col_bytes(hs, 3);
	if (it->sig_len)
		memcpy(it->sig, sqlite3_column_blob(hs, 3),
		       it->sig_len < AUDIT_SIG_BYTES ? it->sig_len : AUDIT_SIG_BYTES);
}

/* Two batches ping-pong between the reader (the caller's thread, which owns
 * the SQLite connection) and the checker thread (hashing, signatures).
 * Without a thread the reader runs each batch itself. */
typedef struct vpipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	vbatch batch[2];
	int full[2];      /* handed to the checker, not yet done */
	int done;         /* reader: no more batches (or cancelled) */
	int stop;         /* checker: found a problem or broke */
	uint64_t checked; /* entries proven so far */
	vstate *v;
	int threaded;
	merkle_hasher *reader_h; /* the reader's own, for its share of leaves */
	EVP_MD_CTX *reader_vctx; /* ... and of head signatures (every other one) */
	uint64_t heads_read;
} vpipe;

static void *checker_main(void *arg)
{
	vpipe *p = arg;
	for (int cur = 0;; cur ^= 1) {
		pthread_mutex_lock(&p->mu);
		while (!p->full[cur] && !p->done)
			pthread_cond_wait(&p->cv, &p->mu);
		int go = p->full[cur];
		pthread_mutex_unlock(&p->mu);
		if (!go)
			break;
		batch_run(p->v, &p->batch[cur]);
		pthread_mutex_lock(&p->mu);
		p->full[cur] = 0;
		p->checked = p->v->f.size;
		p->stop = p->v->failed || p->v->err != KM_OK;
		int stop = p->stop;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (stop)
			break;
	}
	return NULL;
}

/* Hand batch cur over (or run it here when single-threaded). */
static void pipe_submit(vpipe *p, int cur)
{
	if (!p->threaded) {
		batch_run(p->v, &p->batch[cur]);
		p->checked = p->v->f.size;
		p->stop = p->v->failed || p->v->err != KM_OK;
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->full[cur] = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Wait until batch cur may be refilled and empty it; 0 if the checker
 * stopped (nothing more is worth reading). */
static int pipe_acquire(vpipe *p, int cur)
{
	int go;
	if (p->threaded) {
		pthread_mutex_lock(&p->mu);
		while (p->full[cur] && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		go = !p->stop;
		pthread_mutex_unlock(&p->mu);
	} else {
		go = !p->stop;
	}
	p->batch[cur].count = 0;
	p->batch[cur].nodes = 0;
	p->batch[cur].used = 0;
	return go;
}

static uint64_t pipe_checked(vpipe *p)
{
	uint64_t c;
	if (!p->threaded)
		return p->checked;
	pthread_mutex_lock(&p->mu);
	c = p->checked;
	pthread_mutex_unlock(&p->mu);
	return c;
}

/* No more batches: let the checker drain what it has and finish. */
static void pipe_close(vpipe *p, pthread_t thread)
{
	if (!p->threaded)
		return;
	pthread_mutex_lock(&p->mu);
	p->done = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(thread, NULL);
}

/* Cancel: the checker stops after its current batch. */
static void pipe_cancel(vpipe *p, pthread_t thread)
{
	if (p->threaded) {
		pthread_mutex_lock(&p->mu);
		p->full[0] = p->full[1] = 0;
		pthread_mutex_unlock(&p->mu);
	}
	pipe_close(p, thread);
}

/* The stored nodes, read level by level in index order alongside the
 * entries: the nodes of level l are stepped once every 2^l entries, so the
 * whole table is read once, in key order, without a sort. */
typedef struct node_cursors {
	sqlite3_stmt *st[MERKLE_MAX_LEVELS]; /* per level >= 1, opened when first needed */
	int rc[MERKLE_MAX_LEVELS];           /* SQLITE_ROW: a row is waiting */
	unsigned opened;                     /* levels 1..opened have a cursor */
} node_cursors;

/* The stored nodes entry number pos completed (levels 1..ctz(pos)), into
 * the batch after it->node_first. */
static km_status read_nodes(sqlite3 *db, node_cursors *nc, vbatch *b, vitem *it, uint64_t pos, km_err *e)
{
	it->node_first = (unsigned)b->nodes;
	it->node_count = 0;
	for (unsigned l = 1; l < MERKLE_MAX_LEVELS && (pos & ((UINT64_C(1) << l) - 1)) == 0; l++) {
		if (!nc->st[l]) {
			km_status s = prepare(db, "SELECT idx, hash FROM audit_nodes WHERE level = ? ORDER BY idx",
			                      &nc->st[l], e);
			if (s != KM_OK)
				return s;
			sqlite3_bind_int(nc->st[l], 1, (int)l);
			nc->rc[l] = sqlite3_step(nc->st[l]);
			nc->opened = l;
		}
		if (nc->rc[l] != SQLITE_ROW && nc->rc[l] != SQLITE_DONE)
			return db_fail(db, e, "reading audit tree nodes");
		vnode *nd = &b->node[b->nodes++];
		it->node_count++;
		nd->level = (uint8_t)l;
		nd->idx = (int64_t)((pos >> l) - 1);
		nd->present = nc->rc[l] == SQLITE_ROW;
		nd->hash_len = 0;
		if (nd->present) {
			size_t len = col_bytes(nc->st[l], 1);
			nd->stored_idx = sqlite3_column_int64(nc->st[l], 0);
			nd->hash_len = (uint8_t)(len <= HB ? len : HB + 1); /* HB + 1: too long */
			if (len)
				memcpy(nd->hash, sqlite3_column_blob(nc->st[l], 1), len < HB ? len : HB);
			/* a row further on stays for the node it belongs to */
			if (nd->stored_idx <= nd->idx)
				nc->rc[l] = sqlite3_step(nc->st[l]);
		}
	}
	return KM_OK;
}

/* After the last entry: a node left in a cursor, or at a level no cursor
 * reached, lies outside the log. */
static km_status find_stray_node(sqlite3 *db, node_cursors *nc, vstate *v, km_err *e)
{
	sqlite3_stmt *st;
	km_status s;

	for (unsigned l = 1; l <= nc->opened; l++) {
		if (nc->rc[l] == SQLITE_ROW) {
			v->stray = 1;
			v->stray_level = l;
			v->stray_idx = sqlite3_column_int64(nc->st[l], 0);
			return KM_OK;
		}
	}
	if ((s = prepare(db, "SELECT level, idx FROM audit_nodes WHERE level < 1 OR level > ? LIMIT 1", &st, e)) != KM_OK)
		return s;
	sqlite3_bind_int(st, 1, (int)nc->opened);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		v->stray = 1;
		v->stray_level = sqlite3_column_int64(st, 0);
		v->stray_idx = sqlite3_column_int64(st, 1);
	} else if (rc != SQLITE_DONE) {
		s = db_fail(db, e, "reading audit tree nodes");
	}
	sqlite3_finalize(st);
	return s;
}

/* The reader: merge entries (by seq) and heads (by size) into batches.  A
 * head goes right after the entry that brings the log to its size, after
 * the nodes that entry completed; the first head beyond the last entry goes
 * last.  *cancelled on a nonzero progress answer. */
static km_status read_all(sqlite3 *db, vpipe *p, audit_progress_fn progress, void *pctx,
                          uint64_t total, int *cancelled, uint64_t *rows_read, km_err *e)
{
	sqlite3_stmt *es = NULL, *hs = NULL;
	node_cursors nc;
	km_status s;
	int cur = 0, erc, hrc, finished = 0;
	uint64_t rows = 0, next_progress = PROGRESS_EVERY;

	memset(&nc, 0, sizeof nc);

	*cancelled = 0;
	if ((s = prepare(db, "SELECT seq, json, leaf_hash, time, actor, action, object, outcome FROM audit_events "
	                 "ORDER BY seq", &es, e)) != KM_OK ||
	    (s = prepare(db, "SELECT size, root, time, signature FROM audit_tree_heads ORDER BY size",
	                 &hs, e)) != KM_OK)
		goto out;
	hrc = sqlite3_step(hs);
	erc = sqlite3_step(es);
	if (!pipe_acquire(p, cur))
		goto out;
	for (;;) {
		vbatch *b = &p->batch[cur];
		if (hrc != SQLITE_ROW && hrc != SQLITE_DONE) {
			s = db_fail(db, e, "reading audit tree heads");
			break;
		}
		if (erc != SQLITE_ROW && erc != SQLITE_DONE) {
			s = db_fail(db, e, "reading audit events");
			break;
		}
		int head_due = hrc == SQLITE_ROW && sqlite3_column_int64(hs, 0) <= (int64_t)rows;
		int head_beyond = hrc == SQLITE_ROW && !head_due && erc == SQLITE_DONE;
		if (!head_due && !head_beyond && erc == SQLITE_DONE) {
			finished = 1;
			break;
		}
		size_t need = (head_due || head_beyond) ? 0 : col_bytes(es, 1);
		/* room for an entry and the up to 63 nodes it completes */
		if (b->count == BATCH_ITEMS || b->nodes + MERKLE_MAX_LEVELS > BATCH_NODES ||
		    b->used + need > b->cap) {
			pipe_submit(p, cur);
			cur ^= 1;
			if (rows >= next_progress && progress) {
				next_progress = rows + PROGRESS_EVERY;
				if (progress(pctx, pipe_checked(p), total)) {
					*cancelled = 1;
					break;
				}
			}
			if (!pipe_acquire(p, cur))
				break;
			b = &p->batch[cur];
			if (need > b->cap) {
				char *bigger = realloc(b->arena, need);
				if (!bigger) {
					s = km_fail(e, KM_ENOMEM, "out of memory for a %zu-byte audit event", need);
					break;
				}
				b->arena = bigger;
				b->cap = need;
			}
		}
		vitem *it = &b->item[b->count++];
		if (head_due || head_beyond) {
			item_head(it, hs);
			if (p->reader_vctx && p->v->origin && it->num >= 0 && p->heads_read++ % 2 == 0) {
				uint8_t root[HB] = {0};
				int ok;
				km_err ignored; /* on failure the checker checks it, and reports */
				if (it->hash_len == HB)
					memcpy(root, it->hash, HB);
				if (head_signature_ok(p->reader_vctx, p->v->pub, p->v->origin, (uint64_t)it->num, root,
				                      it->time, it->sig, it->sig_len, &ok, &ignored) == KM_OK)
					it->sig_verdict = ok ? 1 : -1;
			}
			hrc = head_beyond ? SQLITE_DONE : sqlite3_step(hs);
			continue;
		}
		it->kind = ITEM_ENTRY;
		it->num = sqlite3_column_int64(es, 0);
		it->off = b->used;
		it->len = need;
		if (need)
			memcpy(b->arena + b->used, sqlite3_column_text(es, 1), need);
		b->used += need;
		it->hash_len = col_bytes(es, 2);
		if (it->hash_len)
			memcpy(it->hash, sqlite3_column_blob(es, 2), it->hash_len < HB ? it->hash_len : HB);
		it->cols_bad = !columns_match(b->arena + it->off, need, es);
		km_err ignored; /* on failure the checker hashes it, and reports */
		it->leaf_done = p->reader_h && (rows & 7) < READER_LEAF_SHARE &&
		                merkle_leaf_hash(p->reader_h, b->arena + it->off, need, it->leaf, &ignored) == KM_OK;
		rows++;
		if ((s = read_nodes(db, &nc, b, it, rows, e)) != KM_OK)
			break;
		erc = sqlite3_step(es);
	}
	if (s == KM_OK && finished)
		s = find_stray_node(db, &nc, p->v, e);
	if (s == KM_OK && !*cancelled && p->batch[cur].count > 0)
		pipe_submit(p, cur);
out:
	*rows_read = rows;
	sqlite3_finalize(es);
	sqlite3_finalize(hs);
	for (unsigned l = 1; l <= nc.opened; l++)
		sqlite3_finalize(nc.st[l]);
	return s;
}

km_status audit_verify(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a,
                       audit_progress_fn progress, void *pctx,
                       audit_verify_result *r, km_err *e)
{
	return audit_verify_visit(db, pub, a, progress, pctx, NULL, NULL, r, e);
}

km_status audit_verify_visit(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a,
                             audit_progress_fn progress, void *pctx, audit_visit_fn visit,
                             void *vctx, audit_verify_result *r, km_err *e)
{
	vpipe *p = NULL;
	vstate v;
	pthread_t thread;
	char origin[ORIGIN_MAX];
	int64_t heads, maxseq, count;
	uint64_t rows = 0;
	int opened, cancelled = 0;
	km_status s;

	memset(r, 0, sizeof *r);
	memset(&v, 0, sizeof v);
	memset(&thread, 0, sizeof thread);
	if (!pub)
		return km_fail(e, KM_EUSAGE, "audit_verify needs the audit public key");
	if ((s = read_begin(db, &opened, e)) != KM_OK)
		return s;
	v.r = r;
	v.pub = pub;
	v.visit = visit;
	v.visit_ctx = vctx;
	v.anchor = a && a->have ? a : NULL;
	merkle_frontier_init(&v.f);
	/* max(seq) is one b-tree descent; count(*) would scan an index, so it
	 * is only computed when verification stops early. */
	if ((s = query_int64(db, "SELECT count(*) FROM audit_tree_heads", 0, &heads, e)) != KM_OK ||
	    (s = query_int64(db, "SELECT max(seq) FROM audit_events", 0, &maxseq, e)) != KM_OK)
		goto out;
	r->heads_total = (uint64_t)heads;
	s = audit_origin(db, origin, sizeof origin, e);
	if (s == KM_OK)
		v.origin = origin;
	else if (s != KM_ENOTFOUND)
		goto out;
	km_err_clear(e);
	if ((s = merkle_hasher_new(&v.h, e)) != KM_OK)
		goto out;
	if (!(v.vctx = EVP_MD_CTX_new()) || !(p = calloc(1, sizeof *p)) ||
	    !(p->batch[0].arena = malloc(BATCH_ARENA)) || !(p->batch[1].arena = malloc(BATCH_ARENA))) {
		s = km_fail(e, KM_ENOMEM, "out of memory for audit verification");
		goto out;
	}
	p->batch[0].cap = p->batch[1].cap = BATCH_ARENA;
	p->v = &v;
	if (v.anchor && v.anchor->size == 0)
		v_anchor(&v); /* before any entry */
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	/* A checker thread pays off beyond a couple of batches; without one
	 * (small log, or no thread to be had) the same work runs inline. */
	p->threaded = maxseq > 2 * BATCH_ITEMS && pthread_create(&thread, NULL, checker_main, p) == 0;
	if (p->threaded && merkle_hasher_new(&p->reader_h, NULL) != KM_OK)
		p->reader_h = NULL;
	if (p->threaded)
		p->reader_vctx = EVP_MD_CTX_new();

	s = read_all(db, p, progress, pctx, maxseq > 0 ? (uint64_t)maxseq : 0, &cancelled, &rows, e);
	if (s != KM_OK || cancelled)
		pipe_cancel(p, thread);
	else
		pipe_close(p, thread);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	if (s != KM_OK)
		goto out;
	if (cancelled) {
		s = km_fail(e, KM_EBUSY, "verification cancelled after %llu entries",
		            (unsigned long long)v.f.size);
		goto out;
	}
	if (v.err != KM_OK) {
		s = v.err;
		if (e)
			*e = v.err_msg;
		goto out;
	}
	if (!v.failed)
		v_finish(&v, db, e);
	if (v.err != KM_OK) {
		s = v.err;
		goto out;
	}
	/* Every row was read unless the checker stopped at a problem. */
	if (!v.failed)
		r->entries_total = rows;
	else if ((s = query_int64(db, "SELECT count(*) FROM audit_events", 0, &count, e)) == KM_OK)
		r->entries_total = (uint64_t)count;
	if (s == KM_OK && progress)
		progress(pctx, r->entries_checked, r->entries_total);
out:
	if (s != KM_OK) {
		uint64_t ht = r->heads_total;
		memset(r, 0, sizeof *r);
		r->heads_total = ht;
	}
	if (p) {
		merkle_hasher_free(p->reader_h);
		EVP_MD_CTX_free(p->reader_vctx);
		free(p->batch[0].arena);
		free(p->batch[1].arena);
		free(p);
	}
	EVP_MD_CTX_free(v.vctx);
	merkle_hasher_free(v.h);
	read_end(db, opened);
	return s;
}

/* ------------------------------------------------------------ proofs */

/* Shared by both proofs: read transaction, bounds, node reader, hasher.
 * Proofs come from the stored nodes, O(log n) lookups. */
typedef enum { PROOF_INCLUSION, PROOF_CONSISTENCY } proof_kind;

static km_status make_proof(sqlite3 *db, proof_kind kind, uint64_t a, uint64_t b,
                            uint8_t (*proof)[HB], size_t *proof_len, km_err *e)
{
	merkle_hasher *h = NULL;
	node_reader nr = {0};
	uint64_t n;
	int opened;
	km_status s;

	*proof_len = 0;
	if ((s = read_begin(db, &opened, e)) != KM_OK)
		return s;
	if ((s = log_size(db, &n, e)) != KM_OK)
		goto out;
	if (b > n) {
		s = km_fail(e, KM_EUSAGE, "the audit log has only %llu entries, not %llu",
		            (unsigned long long)n, (unsigned long long)b);
		goto out;
	}
	if (kind == PROOF_INCLUSION && (a == 0 || a > b)) {
		s = km_fail(e, KM_EUSAGE, "entry %llu is not in a tree of %llu entries",
		            (unsigned long long)a, (unsigned long long)b);
		goto out;
	}
	if ((s = node_reader_open(db, &nr, e)) != KM_OK || (s = merkle_hasher_new(&h, e)) != KM_OK)
		goto out;
	if (kind == PROOF_INCLUSION)
		s = merkle_inclusion_proof_nodes(h, read_node, &nr, a - 1, b, proof, MERKLE_PROOF_MAX, proof_len, e);
	else
		s = merkle_consistency_proof_nodes(h, read_node, &nr, a, b, proof, MERKLE_PROOF_MAX, proof_len, e);
out:
	node_reader_close(&nr);
	merkle_hasher_free(h);
	read_end(db, opened);
	return s;
}

km_status audit_inclusion_proof(sqlite3 *db, uint64_t seq, uint64_t tree_size,
                                uint8_t (*proof)[MERKLE_HASH_BYTES], size_t *proof_len, km_err *e)
{
	return make_proof(db, PROOF_INCLUSION, seq, tree_size, proof, proof_len, e);
}

km_status audit_consistency_proof(sqlite3 *db, uint64_t first, uint64_t second,
                                  uint8_t (*proof)[MERKLE_HASH_BYTES], size_t *proof_len,
                                  km_err *e)
{
	return make_proof(db, PROOF_CONSISTENCY, first, second, proof, proof_len, e);
}

/* ------------------------------------------------------------ one entry */

__attribute__((format(printf, 3, 4)))
static void r_fail(audit_verify_result *r, uint64_t first_bad, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->problem, sizeof r->problem, fmt, ap);
	va_end(ap);
	r->first_bad_seq = first_bad;
	r->intact = 0;
}

/* Is the head (size, root) consistent with the anchor, whichever is larger?
 * *ok = 1 / 0 (why in pe); an error status only if the proof could not be
 * attempted. */
static km_status head_matches_anchor(sqlite3 *db, merkle_hasher *h, const audit_anchor *a, uint64_t size,
                                     const uint8_t root[HB], int *ok, km_err *pe)
{
	uint8_t proof[MERKLE_PROOF_MAX][HB];
	int forward = size >= a->size; /* the head extends the anchor */
	uint64_t first = forward ? a->size : size, second = forward ? size : a->size;
	const uint8_t *r1 = forward ? a->root : root, *r2 = forward ? root : a->root;
	node_reader nr;
	size_t len = 0;
	km_status s;

	*ok = 0;
	if ((s = node_reader_open(db, &nr, pe)) != KM_OK)
		return s;
	s = merkle_consistency_proof_nodes(h, read_node, &nr, first, second, proof, MERKLE_PROOF_MAX, &len, pe);
	if (s == KM_OK)
		s = merkle_verify_consistency(h, first, second, r1, r2, (const uint8_t(*)[HB])proof, len, pe);
	node_reader_close(&nr);
	if (s == KM_OK)
		*ok = 1;
	return s == KM_EINTEGRITY ? KM_OK : s;
}

km_status audit_verify_entry(sqlite3 *db, EVP_PKEY *pub, const audit_anchor *a, uint64_t seq,
                             audit_verify_result *r, km_err *e)
{
	audit_row row = {0};
	merkle_hasher *h = NULL;
	EVP_MD_CTX *vctx = NULL;
	uint8_t leaf[HB], root[HB], sig[AUDIT_SIG_BYTES], proof[MERKLE_PROOF_MAX][HB];
	char origin[ORIGIN_MAX], why[160];
	uint64_t head_size, n;
	int64_t head_time, heads;
	size_t proof_len = 0;
	int have = 0, ok = 0, opened;
	km_err pe;
	km_status s;

	memset(r, 0, sizeof *r);
	if (!pub)
		return km_fail(e, KM_EUSAGE, "audit_verify_entry needs the audit public key");
	if ((s = read_begin(db, &opened, e)) != KM_OK)
		return s;
	if ((s = log_size(db, &n, e)) != KM_OK ||
	    (s = query_int64(db, "SELECT count(*) FROM audit_tree_heads", 0, &heads, e)) != KM_OK ||
	    (s = audit_get(db, seq, &row, e)) != KM_OK)
		goto out;
	r->entries_total = n;
	r->heads_total = (uint64_t)heads;
	if ((s = merkle_hasher_new(&h, e)) != KM_OK)
		goto out;
	if (!(vctx = EVP_MD_CTX_new())) {
		s = km_fail(e, KM_ENOMEM, "out of memory verifying an audit entry");
		goto out;
	}
	size_t len = strlen(row.json);
	if (canonical_problem(row.json, len, (int64_t)seq, why, sizeof why)) {
		r_fail(r, seq, "entry %llu: %s", (unsigned long long)seq, why);
		goto out;
	}
	if ((s = merkle_leaf_hash(h, row.json, len, leaf, e)) != KM_OK)
		goto out;
	if (memcmp(leaf, row.leaf_hash, HB) != 0) {
		r_fail(r, seq, "entry %llu: event was modified (leaf hash does not match)", (unsigned long long)seq);
		goto out;
	}
	if ((s = audit_latest_head(db, &head_size, root, &head_time, sig, &have, e)) != KM_OK)
		goto out;
	if (!have || head_size < seq) {
		r_fail(r, seq, "entry %llu is not covered by any signed tree head (it could have been inserted)",
		       (unsigned long long)seq);
		goto out;
	}
	s = audit_origin(db, origin, sizeof origin, e);
	if (s == KM_ENOTFOUND) {
		s = KM_OK;
		r_fail(r, seq, "the log's origin line (audit_meta 'origin') is missing, so the tree head "
		       "signature cannot be checked");
		goto out;
	}
	if (s != KM_OK || (s = head_signature_ok(vctx, pub, origin, head_size, root, head_time, sig,
	                                         AUDIT_SIG_BYTES, &ok, e)) != KM_OK)
		goto out;
	if (!ok) {
		r_fail(r, seq, "tree head at size %llu: signature does not verify (forged or damaged)",
		       (unsigned long long)head_size);
		goto out;
	}
	if (head_size > n) {
		r_fail(r, n + 1, "entries %llu..%llu are missing: the log ends at entry %llu but a signed "
		       "tree head covers %llu entries (the log was truncated)", (unsigned long long)n + 1,
		       (unsigned long long)head_size, (unsigned long long)n, (unsigned long long)head_size);
		goto out;
	}
	if (a && a->have) {
		if (a->size > n) {
			r_fail(r, n + 1, "entries %llu..%llu are missing: the log ends at entry %llu but the anchor in "
			       "the HSM records %llu entries (the log was truncated)", (unsigned long long)n + 1,
			       (unsigned long long)a->size, (unsigned long long)n, (unsigned long long)a->size);
			goto out;
		}
		if ((s = head_matches_anchor(db, h, a, head_size, root, &ok, &pe)) != KM_OK) {
			if (e)
				*e = pe;
			goto out;
		}
		if (!ok) {
			r_fail(r, seq, "the signed tree head at size %llu cannot be proven consistent with the tree "
			       "anchored in the HSM at size %llu (%s): entries were rewritten, or the stored tree "
			       "is damaged; run a full verification", (unsigned long long)head_size,
			       (unsigned long long)a->size, pe.msg);
			goto out;
		}
		r->anchor_checked = 1;
	}
	s = audit_inclusion_proof(db, seq, head_size, proof, &proof_len, &pe);
	if (s == KM_OK)
		s = merkle_verify_inclusion(h, leaf, seq - 1, head_size, (const uint8_t(*)[HB])proof,
		                            proof_len, root, &pe);
	if (s == KM_EINTEGRITY) {
		s = KM_OK;
		r_fail(r, seq, "entry %llu cannot be proven to be in the signed tree head at size %llu (%s): "
		       "the stored log differs from what was signed; run a full verification",
		       (unsigned long long)seq, (unsigned long long)head_size, pe.msg);
		goto out;
	}
	if (s != KM_OK) {
		if (e)
			*e = pe;
		goto out;
	}
	r->intact = 1;
	r->entries_checked = 1;
	r->heads_checked = 1;
	r->head_size = head_size;
	memcpy(r->head_root, root, HB);
	r->head_time = head_time;
out:
	audit_row_free(&row);
	EVP_MD_CTX_free(vctx);
	merkle_hasher_free(h);
	read_end(db, opened);
	return s;
}

/* ------------------------------------------------------------ evidence for outsiders
 *
 * Readers for checkpoints, proofs and exports (core/auditproof.c).  Like
 * the proofs above, nothing here is trusted by itself: the caller checks
 * what it hands out against a signed root. */

km_status audit_head_at_most(sqlite3 *db, uint64_t max_size, audit_head *out, int *have, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT size, root, time, signature FROM audit_tree_heads "
	                      "WHERE size <= ? ORDER BY size DESC LIMIT 1", &st, e);
	memset(out, 0, sizeof *out);
	*have = 0;
	if (s != KM_OK)
		return s;
	sqlite3_bind_int64(st, 1, max_size > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)max_size);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t sz = sqlite3_column_int64(st, 0);
		if (sz <= 0 || col_bytes(st, 1) != HB || col_bytes(st, 3) != AUDIT_SIG_BYTES) {
			s = km_fail(e, KM_EINTEGRITY, "the stored tree head at size %lld is damaged "
			            "(run audit verify)", (long long)sz);
		} else {
			out->size = (uint64_t)sz;
			memcpy(out->root, sqlite3_column_blob(st, 1), HB);
			out->time = sqlite3_column_int64(st, 2);
			memcpy(out->sig, sqlite3_column_blob(st, 3), AUDIT_SIG_BYTES);
			*have = 1;
		}
	} else if (rc != SQLITE_DONE) {
		s = db_fail(db, e, "reading an audit tree head");
	}
	sqlite3_finalize(st);
	return s;
}

km_status audit_prefix_subtrees(sqlite3 *db, uint64_t size, uint8_t (*hashes)[MERKLE_HASH_BYTES],
                                size_t *n, km_err *e)
{
	node_reader nr;
	uint64_t have;
	int opened;
	km_status s;

	*n = 0;
	if ((s = read_begin(db, &opened, e)) != KM_OK)
		return s;
	if ((s = log_size(db, &have, e)) == KM_OK && size > have)
		s = km_fail(e, KM_EUSAGE, "the audit log has only %llu entries, not %llu",
		            (unsigned long long)have, (unsigned long long)size);
	if (s == KM_OK && (s = node_reader_open(db, &nr, e)) == KM_OK) {
		uint64_t offset = 0;
		for (unsigned l = MERKLE_MAX_LEVELS; l-- > 0 && s == KM_OK;) {
			if (!((size >> l) & 1))
				continue;
			s = read_node(&nr, l, offset >> l, hashes[*n], e);
			if (s == KM_OK)
				(*n)++;
			offset += (uint64_t)1 << l;
		}
		node_reader_close(&nr);
	}
	read_end(db, opened);
	return s;
}

km_status audit_root_at(sqlite3 *db, uint64_t size, uint8_t root[MERKLE_HASH_BYTES], km_err *e)
{
	uint8_t sub[MERKLE_MAX_LEVELS][HB];
	size_t n;
	merkle_hasher *h = NULL;
	km_status s = audit_prefix_subtrees(db, size, sub, &n, e);
	if (s == KM_OK)
		s = merkle_hasher_new(&h, e);
	if (s == KM_OK && n == 0)
		s = merkle_sha256(h, NULL, 0, root, e);
	else if (s == KM_OK) {
		/* fold from the smallest (rightmost) subtree leftwards */
		memcpy(root, sub[n - 1], HB);
		for (size_t i = n - 1; i-- > 0 && s == KM_OK;)
			s = merkle_node_hash(h, sub[i], root, root, e);
	}
	merkle_hasher_free(h);
	return s;
}

km_status audit_scan(sqlite3 *db, uint64_t first, uint64_t last, audit_row_fn row_cb, void *ctx,
                     km_err *e)
{
	sqlite3_stmt *st;
	int opened;
	km_status s = read_begin(db, &opened, e);
	if (s != KM_OK)
		return s;
	if ((s = prepare(db, "SELECT " ROW_STORED " FROM audit_events WHERE seq >= ? AND seq <= ? "
	                 "ORDER BY seq", &st, e)) == KM_OK) {
		sqlite3_bind_int64(st, 1, first > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)first);
		sqlite3_bind_int64(st, 2, last > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)last);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			audit_row row;
			if ((s = row_from_stmt(st, &row, e)) != KM_OK)
				break;
			int stop = row_cb(ctx, &row);
			audit_row_free(&row);
			if (stop)
				break;
		}
		if (s == KM_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
			s = db_fail(db, e, "reading the audit log");
		sqlite3_finalize(st);
	}
	read_end(db, opened);
	return s;
}

km_status audit_first_since(sqlite3 *db, const char *since, uint64_t *seq, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = prepare(db, "SELECT min(seq) FROM audit_events WHERE time >= ?", &st, e);
	*seq = 0;
	if (s != KM_OK)
		return s;
	sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s = db_fail(db, e, "finding the first audit event of a time range");
	sqlite3_finalize(st);
	return s;
}
