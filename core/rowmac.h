/*
 * rowmac.h — internal to core/: HSM-made MACs over the rows that
 * authorisation reads (users and their roles, scopes, credentials and
 * lockout counters; key versions' states and counters; sealed records such
 * as the last verification).
 *
 * Anyone who can write the SQLite file can change a row, but only the HSM
 * can make its MAC: HMAC-SHA256 under the deployment's non-extractable
 * "keyward-mac" key over a canonical text that names the deployment, the
 * table and every field of the row.  A decision never uses a row whose MAC
 * fails: it is refused as KM_EINTEGRITY naming the row.  Listings may show
 * rows unchecked.
 *
 * A row copied back from an older state carries an old but valid MAC; the
 * audit log records every sealed change with the row's digest, and
 * `audit verify` compares each row with the newest digest the log holds.
 */
#ifndef KM_ROWMAC_H
#define KM_ROWMAC_H

#include "ctx.h"

#define KM_ROWMAC_BYTES 32

/* MAC of a row: `fields` (a JSON array, stolen) in canonical form, prefixed
 * by the deployment id and table. */
km_status km_rowmac(km_ctx *ctx, const char *table, json_t *fields, uint8_t mac[KM_ROWMAC_BYTES],
                    km_err *e);

/* Check a stored MAC (mac may be NULL or of any length: a missing or short
 * MAC fails).  On failure: KM_EINTEGRITY "the <table> row <what> fails its
 * HSM MAC: it was changed outside keyward".  fields is stolen. */
km_status km_rowmac_check(km_ctx *ctx, const char *table, const char *what, json_t *fields,
                          const void *mac, size_t mac_len, km_err *e);

/* SHA-256 of the row's canonical text, hex: what audit events record so that
 * `audit verify` can tell a current row from a replayed one.  fields is
 * borrowed. */
void km_rowmac_digest(km_ctx *ctx, const char *table, const json_t *fields, char hex[65]);

/* Every change to a sealed row is recorded, in the event of its
 * transaction, as an entry of the details' "sealed" list:
 *   {"table": "users", "row": "dave", "digest": "<hex>"}
 * (for key versions the row is "NAME@VERSION" and the digest covers the
 * sealed fields but the wrap counter).  Append one entry to details. */
void km_sealed_note(json_t *details, const char *table, const char *key, const char *digest);

/* The newest recorded digest of every sealed row, from the whole log:
 * an object "table\nkey" -> digest (new reference). */
km_status km_sealed_recorded(km_ctx *ctx, json_t **out, km_err *e);

/* Check the seal of every row `sql` selects (for `audit verify`): fields()
 * builds a row's field list and name() names it, from the statement;
 * mac_col is the MAC's column.  Adds to *checked and *bad; the first
 * failure's message goes to problem. */
typedef json_t *(*km_rowmac_fields_fn)(sqlite3_stmt *q);
typedef void (*km_rowmac_name_fn)(sqlite3_stmt *q, char *buf, size_t cap);
typedef struct km_rowmac_table {
	const char *table;
	const char *sql;                /* selects every row */
	km_rowmac_fields_fn fields;     /* the sealed fields */
	km_rowmac_name_fn name;         /* for messages: "'dave'" */
	int mac_col;
	km_rowmac_name_fn key;          /* the key its events record */
	km_rowmac_fields_fn recorded;   /* the fields its events' digest covers */
} km_rowmac_table;
/* Also, with `recorded` (from km_sealed_recorded; may be NULL): a row
 * whose MAC holds but whose digest is not the newest one the log recorded
 * for it was put back from an older state. */
km_status km_rowmac_scan(km_ctx *ctx, const km_rowmac_table *t, const json_t *recorded,
                         uint64_t *checked, uint64_t *bad, char *problem, size_t cap, km_err *e);

/* A blob as a JSON string (hex), for field lists. */
json_t *km_rowmac_blob(const void *p, size_t n);

#endif
