/*
 * db.c — opening the catalogue and migrating its schema.
 */
#include "db.h"
#include "audit.h"
#include "forward_int.h"
#include "lineage_adj.h"

#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* The catalogue's own tables.  The audit tables come from audit.c
 * (audit_schema_sql) so the audit layer owns its storage. */
static const char schema_v1_catalogue[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE users("
	"  name TEXT PRIMARY KEY,"
	"  roles INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL);"
	/* keys.cur_* summarise the current version so the inventory can be
	 * sorted and paged by any column with an index (keyset pagination);
	 * kek.c refreshes them in the same transaction as every change. */
	"CREATE TABLE keys("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  cur_version INTEGER NOT NULL DEFAULT 0,"
	"  cur_state TEXT NOT NULL DEFAULT 'pending',"
	"  cur_created INTEGER NOT NULL DEFAULT 0,"
	"  assets INTEGER NOT NULL DEFAULT 0,"
	"  last_used INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX keys_by_version ON keys(cur_version, name);"
	"CREATE INDEX keys_by_state ON keys(cur_state, name);"
	"CREATE INDEX keys_by_age ON keys(cur_created, name);"
	"CREATE INDEX keys_by_assets ON keys(assets, name);"
	"CREATE INDEX keys_by_last_use ON keys(last_used, name);"
	"CREATE TABLE key_tags("
	"  key_id INTEGER NOT NULL REFERENCES keys(id),"
	"  tag TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY(key_id, tag)) WITHOUT ROWID;"
	"CREATE INDEX key_tags_by_value ON key_tags(tag, value, key_id);"
	"CREATE TABLE key_versions("
	"  key_id INTEGER NOT NULL REFERENCES keys(id),"
	"  version INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK(state IN ('pending','active','decrypt-only','retired',"
	"                                      'destroy-scheduled','destroyed','compromised')),"
	"  wrapped BLOB," /* KEK wrapped by the HSM root; NULL once destroyed */
	"  created INTEGER NOT NULL,"
	"  activated INTEGER NOT NULL DEFAULT 0,"
	"  deactivated INTEGER NOT NULL DEFAULT 0,"
	"  destroy_after INTEGER NOT NULL DEFAULT 0,"
	"  destroyed INTEGER NOT NULL DEFAULT 0,"
	"  wraps INTEGER NOT NULL DEFAULT 0,"
	"  assets INTEGER NOT NULL DEFAULT 0,"
	"  last_used INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY(key_id, version),"
	"  CHECK((state = 'destroyed') = (wrapped IS NULL))) WITHOUT ROWID;"
	"CREATE TABLE assets("
	"  id INTEGER PRIMARY KEY,"
	"  uid TEXT NOT NULL UNIQUE,"
	"  kind TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  key_id INTEGER NOT NULL,"
	"  kek_version INTEGER NOT NULL,"
	"  wrapped_dek BLOB NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  FOREIGN KEY(key_id, kek_version) REFERENCES key_versions(key_id, version));"
	"CREATE INDEX assets_by_key ON assets(key_id, kek_version, id);"
	"CREATE INDEX assets_by_kind ON assets(kind, id);";

/* v2: indexes shaped for the status bar's due/overdue counts and for the
 * assets of a key across all its versions, newest first. */
static const char schema_v2_indexes[] =
	"CREATE INDEX keys_by_state_age ON keys(cur_state, cur_created);"
	"CREATE INDEX key_versions_by_wraps ON key_versions(state, wraps);"
	"CREATE INDEX assets_by_key_id ON assets(key_id, id);";

/* v3: row counts kept by triggers in the same transaction as the rows, so
 * the status bar costs the same on 100 keys and on 100,000. */
#define COUNT_TRIGGERS(table, name)                                                        \
	"CREATE TRIGGER " table "_count_ins AFTER INSERT ON " table " BEGIN "                 \
	"UPDATE counts SET n = n + 1 WHERE name = '" name "'; END;"                           \
	"CREATE TRIGGER " table "_count_del AFTER DELETE ON " table " BEGIN "                 \
	"UPDATE counts SET n = n - 1 WHERE name = '" name "'; END;"
static const char schema_v3_counts[] =
	"CREATE TABLE counts(name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO counts SELECT 'keys', count(*) FROM keys;"
	"INSERT INTO counts SELECT 'versions', count(*) FROM key_versions;"
	"INSERT INTO counts SELECT 'assets', count(*) FROM assets;"
	COUNT_TRIGGERS("keys", "keys")
	COUNT_TRIGGERS("key_versions", "versions")
	COUNT_TRIGGERS("assets", "assets");

/* v5: the trust boundary.  Users get scopes, a credential record, the
 * failure counter and locks; users and key versions get the HSM MAC that
 * seals them (rowmac.h).  A catalogue of v4 or older has unsealed rows,
 * which every decision refuses: it must be initialised anew. */
static const char schema_v5_sealed[] =
	"ALTER TABLE users ADD COLUMN scopes TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE users ADD COLUMN cred TEXT;"
	"ALTER TABLE users ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT -1;"
	"ALTER TABLE users ADD COLUMN mac BLOB;"
	"ALTER TABLE key_versions ADD COLUMN mac BLOB;";

/* v6: requests and their approvals (request.h), sealed rows.  The body is
 * the canonical JSON the approvers sign (by its digest); the other columns
 * repeat what listings filter on and are sealed with it.  One approval or
 * rejection per person and request, by the primary key. */
static const char schema_v6_requests[] =
	"CREATE TABLE requests("
	"  id TEXT PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  requester TEXT NOT NULL,"
	"  object TEXT NOT NULL,"
	"  summary TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  digest TEXT NOT NULL,"
	"  quorum INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  decided INTEGER NOT NULL DEFAULT 0,"
	"  job_id TEXT NOT NULL DEFAULT '',"
	"  mac BLOB) WITHOUT ROWID;"
	"CREATE INDEX requests_by_state ON requests(state, created);"
	"CREATE INDEX requests_by_object ON requests(object, created);"
	"CREATE TABLE approvals("
	"  request_id TEXT NOT NULL REFERENCES requests(id),"
	"  approver TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  approve INTEGER NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  signature TEXT NOT NULL DEFAULT '',"
	"  mac BLOB,"
	"  PRIMARY KEY(request_id, approver)) WITHOUT ROWID;";

/* v7: rotation policies (policy.c), sealed rows like users and versions;
 * and the schedule kept on each key (schedule.c), so the status bar's
 * due/overdue counts are index ranges, not a policy evaluation per key:
 * cadence_s and usage_bound are the key's effective policy values,
 * due_at / overdue_at when the current version's cadence (twice it) runs
 * out, attention the flags that do not depend on the time (schedule_int.h).
 * Every change to a key's versions refreshes them in its transaction
 * (kek_summary_refresh), a policy change recomputes the keys it covers. */
static const char schema_v7_policies[] =
	"CREATE TABLE policies("
	"  scope TEXT PRIMARY KEY,"
	"  body TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  mac BLOB);"
	"ALTER TABLE keys ADD COLUMN cadence_s INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE keys ADD COLUMN usage_bound INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE keys ADD COLUMN due_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE keys ADD COLUMN overdue_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE keys ADD COLUMN attention INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX keys_by_due ON keys(due_at);"
	"CREATE INDEX keys_by_overdue ON keys(overdue_at);"
	"CREATE INDEX keys_by_attention ON keys(attention) WHERE attention != 0;";
/* v8: persistent jobs (job.c).  A job is a sealed row (rowmac.h): its
 * state, cursor, counts and lease decide what a run does.  Assets record
 * the file protect wrote (NULL: none, e.g. bulk registration) so that a
 * re-encryption can find it; job_unreachable lists the files a
 * re-encryption could not reach, so none is skipped silently. */
static const char schema_v8_jobs[] =
	"ALTER TABLE assets ADD COLUMN path TEXT;"
	"CREATE TABLE jobs("
	"  id TEXT PRIMARY KEY,"
	"  kind TEXT NOT NULL CHECK(kind IN ('rewrap','re-encrypt')),"
	"  key_id INTEGER NOT NULL REFERENCES keys(id),"
	"  from_version INTEGER NOT NULL,"
	"  to_version INTEGER NOT NULL,"
	"  request_id TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK(state IN ('queued','running','paused','done','failed','cancelled')),"
	"  cursor INTEGER NOT NULL DEFAULT 0,"
	"  total INTEGER NOT NULL DEFAULT 0,"
	"  done INTEGER NOT NULL DEFAULT 0,"
	"  unreachable INTEGER NOT NULL DEFAULT 0,"
	"  pause INTEGER NOT NULL DEFAULT 0,"
	"  holder TEXT NOT NULL DEFAULT '',"
	"  holder_host TEXT NOT NULL DEFAULT '',"
	"  holder_pid INTEGER NOT NULL DEFAULT 0,"
	"  holder_start INTEGER NOT NULL DEFAULT 0,"
	"  lease_until INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  started INTEGER NOT NULL DEFAULT 0,"
	"  updated INTEGER NOT NULL DEFAULT 0,"
	"  finished INTEGER NOT NULL DEFAULT 0,"
	"  run_started INTEGER NOT NULL DEFAULT 0,"
	"  run_done INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT NOT NULL DEFAULT '',"
	"  mac BLOB);"
	"CREATE INDEX jobs_by_state ON jobs(state, created);"
	"CREATE TABLE job_unreachable("
	"  job_id TEXT NOT NULL,"
	"  asset_id INTEGER NOT NULL,"
	"  path TEXT,"
	"  why TEXT NOT NULL,"
	"  PRIMARY KEY(job_id, asset_id)) WITHOUT ROWID;";
/* v9: lineage (lineage.h).  Nodes are identified by (namespace, name,
 * version) as OpenLineage identifies datasets; a catalogue asset is the node
 * ("keyward", "KIND:NAME", VERSION) and, so that events which do not carry
 * our version still join, also ("keyward", "KIND:NAME", ""), which stands
 * for the newest version registered.  Edges carry
 * the first and last time an event showed them: impact as of T follows an
 * edge only if it was first seen by T.  Protection (asset -> key version)
 * is kept by triggers in the same transaction as the catalogue row, with
 * the interval during which that version wrapped the asset's DEK: a new
 * row for the same KIND:NAME@VERSION, or a rewrap (an UPDATE of the key
 * columns), ends it.  Events are kept whole (facets included) under their
 * idempotence key. */
#define LINEAGE_FOREVER "9223372036854775807"
#define LINEAGE_ASSET_NODE(ver, cond)                                                     \
	"INSERT INTO lineage_nodes(kind, namespace, name, version, asset_id, first_seen) "    \
	"SELECT CASE NEW.kind WHEN 'feature' THEN 'feature' WHEN 'model' THEN 'model' "      \
	"ELSE 'dataset' END, 'keyward', NEW.kind || ':' || NEW.name, " ver ", NEW.id, "      \
	"NEW.created WHERE " cond " ON CONFLICT(namespace, name, version) WHERE kind <> 'job' DO UPDATE SET "     \
	"asset_id = excluded.asset_id;"                                                       \
	"INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, valid_from, "    \
	"valid_to) SELECT id, NEW.id, NEW.key_id, NEW.kek_version, NEW.created, "             \
	LINEAGE_FOREVER " FROM lineage_nodes WHERE namespace = 'keyward' AND "                \
	"name = NEW.kind || ':' || NEW.name AND version = " ver " AND kind <> 'job' AND " cond ";"
static const char schema_v9_lineage[] =
	"CREATE TABLE lineage_nodes("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL CHECK(kind IN ('source','job','dataset','feature-group',"
	"                                    'feature','model','endpoint')),"
	"  namespace TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL DEFAULT '',"
	"  asset_id INTEGER,"          /* newest catalogue asset this node stands for */
	"  facets TEXT,"               /* newest dataset or job facets (JSON) */
	"  first_seen INTEGER NOT NULL);"
	/* A job and a dataset may share a namespace and a name. */
	"CREATE UNIQUE INDEX lineage_nodes_identity ON lineage_nodes(namespace, name, version) "
	"WHERE kind <> 'job';"
	"CREATE UNIQUE INDEX lineage_jobs_identity ON lineage_nodes(namespace, name, version) "
	"WHERE kind = 'job';"
	"CREATE INDEX lineage_nodes_by_name ON lineage_nodes(name, version);"
	"CREATE TABLE lineage_edges("
	"  src INTEGER NOT NULL REFERENCES lineage_nodes(id),"
	"  dst INTEGER NOT NULL REFERENCES lineage_nodes(id),"
	"  kind TEXT NOT NULL CHECK(kind IN ('derived-from','consumed-by','served-by')),"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  job INTEGER,"               /* the job of the run that first showed it */
	"  PRIMARY KEY(src, dst, kind)) WITHOUT ROWID;"
	/* Downstream walks read (src -> dst, first_seen) from the primary key;
	 * upstream walks need the reverse. */
	"CREATE INDEX lineage_edges_in ON lineage_edges(dst, kind, first_seen, src);"
	"CREATE TABLE lineage_protection("
	"  node INTEGER NOT NULL REFERENCES lineage_nodes(id),"
	"  asset_id INTEGER NOT NULL,"
	"  key_id INTEGER NOT NULL,"
	"  kek_version INTEGER NOT NULL,"
	"  valid_from INTEGER NOT NULL,"
	"  valid_to INTEGER NOT NULL);"
	"CREATE INDEX lineage_protection_by_key ON lineage_protection(key_id, kek_version, valid_from, node);"
	"CREATE INDEX lineage_protection_by_node ON lineage_protection(node, valid_to, valid_from);"
	"CREATE INDEX lineage_protection_by_asset ON lineage_protection(asset_id, valid_to);"
	"CREATE INDEX assets_by_identity ON assets(kind, name, version, id);"
	"CREATE TABLE lineage_events("
	"  run_id TEXT NOT NULL,"
	"  event_type TEXT NOT NULL,"  /* '' when the event has none (optional in 2-0-2) */
	"  event_time_ms INTEGER NOT NULL,"
	"  job INTEGER NOT NULL REFERENCES lineage_nodes(id),"
	"  imported INTEGER NOT NULL,"
	"  body TEXT NOT NULL,"        /* the event's text exactly as received */
	"  UNIQUE(run_id, event_type, event_time_ms));";
/* Separate strings: C11 compilers need not take a literal over 4095
 * bytes, and v12 puts back the first with a narrower second. */
static const char schema_lineage_ins_trigger[] =
	"CREATE TRIGGER assets_lineage_ins AFTER INSERT ON assets BEGIN "
	"UPDATE lineage_protection SET valid_to = NEW.created WHERE valid_to = " LINEAGE_FOREVER
	" AND asset_id IN (SELECT id FROM assets WHERE kind = NEW.kind AND name = NEW.name"
	" AND version = NEW.version AND id <> NEW.id);"
	/* The unversioned node stands for the newest version. */
	"UPDATE lineage_protection SET valid_to = NEW.created WHERE valid_to = " LINEAGE_FOREVER
	" AND node IN (SELECT id FROM lineage_nodes WHERE namespace = 'keyward' AND"
	" name = NEW.kind || ':' || NEW.name AND version = '' AND kind <> 'job');"
	LINEAGE_ASSET_NODE("NEW.version", "1")
	LINEAGE_ASSET_NODE("''", "NEW.version <> ''")
	"END;";
static const char schema_v9_lineage_rewrap_trigger[] =
	/* A rewrap moves the asset to another key version from now on (a
	 * rewrap job does this set-wise per batch instead: kw_bulk(),
	 * lineage_rewrapped). */
	"CREATE TRIGGER assets_lineage_rewrap AFTER UPDATE OF key_id, kek_version ON assets "
	"WHEN (OLD.key_id <> NEW.key_id OR OLD.kek_version <> NEW.kek_version) AND NOT kw_bulk() BEGIN "
	"UPDATE lineage_protection SET valid_to = kw_now() "
	"WHERE asset_id = NEW.id AND valid_to = " LINEAGE_FOREVER ";"
	"INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, valid_from, valid_to) "
	"SELECT id, NEW.id, NEW.key_id, NEW.kek_version, kw_now(), "
	LINEAGE_FOREVER " FROM lineage_nodes WHERE namespace = 'keyward' AND "
	"name = NEW.kind || ':' || NEW.name AND version IN (NEW.version, '') AND kind <> 'job';"
	"END;";

/* v12: the jobs, the only writers of assets.kek_version, keep the
 * intervals themselves in the same transaction (lineage_rewrapped): a
 * trigger on that column cost a rewrap 6 us of its ~11 us UPDATE a row,
 * even when its WHEN clause let it stand aside (measured at 100,000
 * assets).  Moving an asset to another key is no product path; the
 * trigger stays for that, so a hand edit of key_id still moves it. */
static const char schema_v12_lineage_rekey_trigger[] =
	"CREATE TRIGGER assets_lineage_rekey AFTER UPDATE OF key_id ON assets "
	"WHEN OLD.key_id <> NEW.key_id BEGIN "
	"UPDATE lineage_protection SET valid_to = kw_now() "
	"WHERE asset_id = NEW.id AND valid_to = " LINEAGE_FOREVER ";"
	"INSERT INTO lineage_protection(node, asset_id, key_id, kek_version, valid_from, valid_to) "
	"SELECT id, NEW.id, NEW.key_id, NEW.kek_version, kw_now(), "
	LINEAGE_FOREVER " FROM lineage_nodes WHERE namespace = 'keyward' AND "
	"name = NEW.kind || ':' || NEW.name AND version IN (NEW.version, '') AND kind <> 'job';"
	"END;";

static km_status v9_lineage_triggers(sqlite3 *db, km_err *e)
{
	km_status s = km_db_exec(db, schema_lineage_ins_trigger, e);
	return s ? s : km_db_exec(db, schema_v9_lineage_rewrap_trigger, e);
}

static km_status v12_lineage_triggers(sqlite3 *db, km_err *e)
{
	km_status s = km_db_exec(db, schema_lineage_ins_trigger, e);
	return s ? s : km_db_exec(db, schema_v12_lineage_rekey_trigger, e);
}

/* v11: when a version last entered retired (sealed with the version row,
 * kek.c), so that the policy's deprecation_days can hold destruction back
 * for that long after retirement (lifecycle.c). */
static const char schema_v11_retired[] =
	"ALTER TABLE key_versions ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;";

/* v12: the protection intervals clustered by asset.  Same columns and
 * rows, so readers see what they saw; what changed is what a rewrap batch
 * pays per asset (measured, docs/benchmarks.md section 10): the table is
 * a b-tree keyed by asset (a batch's id range is one contiguous scan, and
 * closing an interval rewrites its row in place), the by-asset index is
 * gone with it, and by_node no longer carries valid_to, which every close
 * moved.  The triggers that write the table are dropped around the swap
 * and put back, the rewrap one narrowed (v12_lineage_triggers). */
static const char schema_v12_protection[] =
	"DROP TRIGGER assets_lineage_ins;"
	"DROP TRIGGER assets_lineage_rewrap;"
	"CREATE TABLE lineage_protection_v12("
	"  node INTEGER NOT NULL REFERENCES lineage_nodes(id),"
	"  asset_id INTEGER NOT NULL,"
	"  key_id INTEGER NOT NULL,"
	"  kek_version INTEGER NOT NULL,"
	"  valid_from INTEGER NOT NULL,"
	"  valid_to INTEGER NOT NULL,"
	"  PRIMARY KEY(asset_id, node, key_id, kek_version, valid_from)) WITHOUT ROWID;"
	"INSERT INTO lineage_protection_v12 SELECT node, asset_id, key_id, kek_version, valid_from, valid_to "
	"FROM lineage_protection;"
	"DROP TABLE lineage_protection;"
	"ALTER TABLE lineage_protection_v12 RENAME TO lineage_protection;"
	"CREATE INDEX lineage_protection_by_key ON lineage_protection(key_id, kek_version, valid_from, node);"
	"CREATE INDEX lineage_protection_by_node ON lineage_protection(node, valid_from);";

/* v1's audit tables (audit.c owns them), after the catalogue's. */
static km_status v1_audit_tables(sqlite3 *db, km_err *e)
{
	return km_db_exec(db, audit_schema_v1_sql, e);
}

/* v4: the audit log's stored tree nodes (proofs in O(log n) lookups, and
 * the signer's anchor check), filled from the leaf hashes already there. */
static km_status v4_audit_nodes(sqlite3 *db, km_err *e)
{
	km_status s = km_db_exec(db, audit_schema_v4_sql, e);
	return s ? s : audit_nodes_backfill(db, e);
}

/* v10: the audit forwarding cursors (forward.c). */
static km_status v10_audit_forward(sqlite3 *db, km_err *e)
{
	return km_db_exec(db, forward_schema_sql, e);
}

/* v13: the witnesses' cosignatures (forward.c). */
static km_status v13_audit_cosignatures(sqlite3 *db, km_err *e)
{
	return km_db_exec(db, forward_cosign_schema_sql, e);
}

/* v15: the packed out-edge table impact walks read (lineage_adj.h): one
 * row per source instead of one per edge.  A cache of lineage_edges kept
 * honest by these triggers, which mark a source's row stale (packed NULL,
 * made if need be) whenever one of its edges is written by anyone with
 * triggers on; a walk reads a stale row's edges from lineage_edges.  The
 * import, which turns triggers off for its loop, repacks the sources it
 * wrote and every stale row before it commits.  No foreign key: a row left
 * by a deleted node is stale and goes at the next repack. */
#define LINEAGE_OUT_STALE(row)                                                             \
	"INSERT INTO lineage_out(src, packed) VALUES(" row ".src, NULL) "                     \
	"ON CONFLICT(src) DO UPDATE SET packed = NULL WHERE packed IS NOT NULL;"
static const char schema_v15_lineage_out[] =
	"CREATE TABLE lineage_out("
	"  src INTEGER PRIMARY KEY,"
	"  packed BLOB);"
	"CREATE INDEX lineage_out_stale ON lineage_out(src) WHERE packed IS NULL;"
	"CREATE TRIGGER lineage_edges_out_ins AFTER INSERT ON lineage_edges BEGIN "
	LINEAGE_OUT_STALE("NEW") " END;"
	/* An update moves the edge off OLD.src only if it changes src: the
	 * import's (first_seen, last_seen) updates pay for one row, not two. */
	"CREATE TRIGGER lineage_edges_out_upd AFTER UPDATE OF src, dst, kind, first_seen, last_seen "
	"ON lineage_edges BEGIN "
	"INSERT INTO lineage_out(src, packed) SELECT OLD.src, NULL WHERE OLD.src <> NEW.src "
	"ON CONFLICT(src) DO UPDATE SET packed = NULL WHERE packed IS NOT NULL;"
	LINEAGE_OUT_STALE("NEW") " END;"
	"CREATE TRIGGER lineage_edges_out_del AFTER DELETE ON lineage_edges BEGIN "
	LINEAGE_OUT_STALE("OLD") " END;";

/* Existing deployments: every source's row made stale, so that walks read
 * lineage_edges until v16, which comes in the same upgrade, builds the
 * rows (a v15 build would write the times v16 moved to a table of their
 * own). */
static km_status v15_lineage_out(sqlite3 *db, km_err *e)
{
	return km_db_exec(db, "INSERT INTO lineage_out(src, packed) SELECT DISTINCT src, NULL FROM lineage_edges", e);
}

/* v16: the packed rows' times in a table of their own (format 2,
 * lineage_adj.c): a walk as of now reads ids and kinds only, a third of
 * the pages.  Kept in step with lineage_out by the one writer that packs
 * (lineage_adj_refresh); the triggers above already make a row stale for
 * any edge write, and a stale row's times are never read.  Format 1 rows
 * read as stale until the build below replaces them. */
static const char schema_v16_lineage_out_times[] =
	"CREATE TABLE lineage_out_times("
	"  src INTEGER PRIMARY KEY,"
	"  times BLOB NOT NULL);";

static km_status v16_lineage_out_times(sqlite3 *db, km_err *e)
{
	return lineage_adj_build(db, e);
}

/* Migration steps; index i takes the schema from version i to i + 1: its
 * SQL (may be NULL), then its C step (may be NULL), in one transaction. */
static const struct migration {
	const char *sql;
	km_status (*run)(sqlite3 *db, km_err *e);
} migrations[] = {
	{schema_v1_catalogue, v1_audit_tables},
	{schema_v2_indexes, NULL},
	{schema_v3_counts, NULL},
	{NULL, v4_audit_nodes},
	{schema_v5_sealed, NULL},
	{schema_v6_requests, NULL},
	{schema_v7_policies, NULL},
	{schema_v8_jobs, NULL},
	{schema_v9_lineage, v9_lineage_triggers},
	{NULL, v10_audit_forward},
	{schema_v11_retired, NULL},
	{schema_v12_protection, v12_lineage_triggers},
	{NULL, v13_audit_cosignatures},
	{audit_schema_v14_sql, NULL},
	{schema_v15_lineage_out, v15_lineage_out},
	{schema_v16_lineage_out_times, v16_lineage_out_times},
};

int km_db_schema_version(void) { return (int)KM_ARRAY_LEN(migrations); }

km_status km_db_fail(sqlite3 *db, km_err *e, const char *what)
{
	int rc = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
	km_status code = ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) ? KM_EBUSY : KM_EDB;
	if (code == KM_EBUSY)
		return km_fail(e, code, "%s: the catalogue is locked by another keyward process "
		               "(waited %d s); try again", what, KM_DB_BUSY_TIMEOUT_MS / 1000);
	return km_fail(e, code, "%s: %s", what, db ? sqlite3_errmsg(db) : "cannot allocate");
}

km_status km_db_exec(sqlite3 *db, const char *sql, km_err *e)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return km_db_fail(db, e, "database");
	return KM_OK;
}

km_status km_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, km_err *e)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return km_db_fail(db, e, "database (prepare)");
	return KM_OK;
}

km_status km_db_begin(sqlite3 *db, km_err *e)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return km_db_fail(db, e, "cannot start a transaction");
	return KM_OK;
}

km_status km_db_commit(sqlite3 *db, km_err *e)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		km_status st = km_db_fail(db, e, "cannot commit");
		km_db_rollback(db);
		return st;
	}
	return KM_OK;
}

void km_db_rollback(sqlite3 *db)
{
	if (db && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

km_status km_db_int64(sqlite3 *db, const char *sql, int64_t *out, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = km_db_prepare(db, sql, &st, e);
	if (s)
		return s;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;
	else
		s = km_db_fail(db, e, "database (read)");
	sqlite3_finalize(st);
	return s;
}

km_status km_db_meta_get(sqlite3 *db, const char *key, char *buf, size_t cap, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = km_db_prepare(db, "SELECT value FROM meta WHERE key = ?", &st, e);
	if (s)
		return s;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	else if (rc == SQLITE_DONE)
		s = km_fail(e, KM_ENOTFOUND, "catalogue has no '%s' (not a keyward database?)", key);
	else
		s = km_db_fail(db, e, "database (meta)");
	sqlite3_finalize(st);
	return s;
}

km_status km_db_meta_set(sqlite3 *db, const char *key, const char *value, km_err *e)
{
	sqlite3_stmt *st;
	km_status s = km_db_prepare(db, "INSERT INTO meta(key, value) VALUES(?, ?) "
	                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st, e);
	if (s)
		return s;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		s = km_db_fail(db, e, "database (meta)");
	sqlite3_finalize(st);
	return s;
}

static km_status migrate(sqlite3 *db, km_err *e)
{
	int64_t have;
	km_status s = km_db_int64(db, "PRAGMA user_version", &have, e);
	if (s)
		return s;
	int want = km_db_schema_version();
	if (have > want)
		return km_fail(e, KM_EDB, "the catalogue has schema version %lld but this keyward "
		               "knows only up to %d: upgrade keyward", (long long)have, want);
	for (int v = (int)have; v < want; v++) {
		if ((s = km_db_begin(db, e)))
			return s;
		/* Re-check inside the write lock: another process may have
		 * migrated while we waited. */
		int64_t now_v;
		if ((s = km_db_int64(db, "PRAGMA user_version", &now_v, e))) {
			km_db_rollback(db);
			return s;
		}
		if (now_v > v) {
			km_db_rollback(db);
			continue;
		}
		char pragma[64];
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
		if ((migrations[v].sql && (s = km_db_exec(db, migrations[v].sql, e))) ||
		    (migrations[v].run && (s = migrations[v].run(db, e))) ||
		    (s = km_db_exec(db, pragma, e))) {
			km_db_rollback(db);
			return km_wrap(e, "schema migration to version %d failed", v + 1);
		}
		if ((s = km_db_commit(db, e)))
			return s;
	}
	return KM_OK;
}

static km_status configure(sqlite3 *db, int readonly, km_err *e)
{
	sqlite3_busy_timeout(db, KM_DB_BUSY_TIMEOUT_MS);
	/* 16 MiB of page cache: bulk registrations stop spilling mid-transaction;
	 * pages are only cached once touched, so a console stays small. */
	/* temp_store=MEMORY: a statement whose triggers change several
	 * tables (an asset row keeps its lineage protection) keeps a statement
	 * journal; in a temporary file that cost a write per page per row
	 * (measured 10 s for 4000 assets), in memory 0.3 s. */
	if (sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA cache_size = -16384; "
	                 "PRAGMA temp_store = MEMORY;",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return km_db_fail(db, e, "database setup");
	if (!readonly) {
		/* WAL lets readers (the console, a verifier) run beside a writer;
		 * synchronous=FULL because a committed audit event must survive a
		 * power cut. */
		if (sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;", NULL, NULL, NULL) != SQLITE_OK)
			return km_db_fail(db, e, "database setup (WAL)");
	}
	return KM_OK;
}

/* kw_now(): the session's clock in SQL, for triggers that stamp times
 * (lineage's protection intervals), so that they agree with every other
 * time the core records (km_ctx_now). */
typedef struct db_clock {
	int64_t (*fn)(void *c);
	void *c;
} db_clock;

static void sql_kw_now(sqlite3_context *q, int argc, sqlite3_value **argv)
{
	(void)argc, (void)argv;
	const db_clock *k = sqlite3_user_data(q);
	sqlite3_result_int64(q, k && k->fn ? k->fn(k->c) : (sqlite3_int64)time(NULL));
}

km_status km_db_set_clock(sqlite3 *db, int64_t (*fn)(void *c), void *c, km_err *e)
{
	db_clock *k = calloc(1, sizeof *k);
	if (!k)
		return km_fail(e, KM_ENOMEM, "out of memory");
	k->fn = fn;
	k->c = c;
	if (sqlite3_create_function_v2(db, "kw_now", 0, SQLITE_UTF8, k, sql_kw_now, NULL, NULL, free) != SQLITE_OK)
		return km_db_fail(db, e, "database setup (kw_now)");
	return KM_OK;
}

/* SQL's kw_bulk(), always 0 now: only v9's rewrap trigger names it, and
 * a catalogue migrating through v9 must be able to create that trigger
 * before v12 replaces it. */
static void sql_kw_bulk(sqlite3_context *q, int argc, sqlite3_value **argv)
{
	(void)argc, (void)argv;
	sqlite3_result_int(q, 0);
}

static km_status register_kw_bulk(sqlite3 *db, km_err *e)
{
	if (sqlite3_create_function_v2(db, "kw_bulk", 0, SQLITE_UTF8, NULL, sql_kw_bulk, NULL, NULL, NULL) !=
	    SQLITE_OK)
		return km_db_fail(db, e, "database setup (kw_bulk)");
	return KM_OK;
}

km_status km_db_open(const char *path, int create, sqlite3 **out, km_err *e)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		km_status s = km_fail(e, create ? KM_EDB : KM_ECONFIG, "cannot open the catalogue %s: %s",
		                      path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return s;
	}
	/* A new catalogue gets 16 KiB pages (settable only before the first
	 * table, and before WAL): a full audit verification reads a quarter
	 * as many pages, measured 22% faster on a million events. */
	km_status s = KM_OK;
	if (create && sqlite3_exec(db, "PRAGMA page_size = 16384", NULL, NULL, NULL) != SQLITE_OK)
		s = km_db_fail(db, e, "database setup (page size)");
	if (!s)
		s = configure(db, 0, e);
	if (!s)
		s = km_db_set_clock(db, NULL, NULL, e);
	if (!s)
		s = register_kw_bulk(db, e);
	if (!s)
		s = migrate(db, e);
	if (s) {
		sqlite3_close(db);
		return s;
	}
	*out = db;
	return KM_OK;
}

km_status km_db_open_readonly(const char *path, sqlite3 **out, km_err *e)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		km_status s = km_fail(e, KM_EDB, "cannot open the catalogue %s: %s", path,
		                      db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return s;
	}
	km_status s = configure(db, 1, e);
	if (s) {
		sqlite3_close(db);
		return s;
	}
	*out = db;
	return KM_OK;
}
