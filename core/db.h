/*
 * db.h — the SQLite catalogue: opening, migrations, transactions.
 *
 * WAL journal, foreign keys on, secure_delete on (destroyed key material is
 * overwritten, not left in free pages), a busy timeout so several processes
 * share one deployment.  Every multi-step change runs in one
 * BEGIN IMMEDIATE transaction; the schema is versioned with
 * PRAGMA user_version and migrated forward in a transaction per step.
 */
#ifndef KM_DB_H
#define KM_DB_H

#include "km.h"

#include <sqlite3.h>

#define KM_DB_BUSY_TIMEOUT_MS 15000

/* Open (create == 1: may create the file) and migrate to the newest schema. */
km_status km_db_open(const char *path, int create, sqlite3 **out, km_err *e);
/* SQL's kw_now() on this connection: fn(c), or the real clock (fn NULL,
 * as km_db_open sets it).  Triggers stamp times with it. */
km_status km_db_set_clock(sqlite3 *db, int64_t (*fn)(void *c), void *c, km_err *e);

/* A second, read-only connection (for verification on another thread). */
km_status km_db_open_readonly(const char *path, sqlite3 **out, km_err *e);

/* Schema version this build writes. */
int km_db_schema_version(void);

/* Turn the connection's last error into a km_err: "what: sqlite message". */
km_status km_db_fail(sqlite3 *db, km_err *e, const char *what);

km_status km_db_exec(sqlite3 *db, const char *sql, km_err *e);
km_status km_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, km_err *e);

km_status km_db_begin(sqlite3 *db, km_err *e);   /* BEGIN IMMEDIATE */
km_status km_db_commit(sqlite3 *db, km_err *e);
void km_db_rollback(sqlite3 *db);                /* never fails visibly */

/* Small helpers for single-value reads. */
km_status km_db_int64(sqlite3 *db, const char *sql, int64_t *out, km_err *e);
km_status km_db_meta_get(sqlite3 *db, const char *key, char *buf, size_t cap, km_err *e);
km_status km_db_meta_set(sqlite3 *db, const char *key, const char *value, km_err *e);

#endif
