/*
 * lineage_adj.h — internal to core/: the packed out-edge table that impact
 * walks read instead of lineage_edges.
 *
 * lineage_out holds one row per node with outgoing flow edges: src, and in
 * `packed` all of src's edges in lineage_edges' primary-key order (dst, then
 * kind as text), each with its kind; lineage_out_times holds the same
 * edges' first_seen and last_seen, read only by a walk that needs them.  A
 * walk then reads one row per node it expands instead of one per edge (an
 * impact that reached most of 100k nodes stepped 865k edge rows: 1.53 G of
 * its 1.85 G instructions).
 *
 * It is a cache of lineage_edges, never a second truth:
 *  - triggers on lineage_edges (db.c) mark a source's row stale (packed
 *    NULL, inserting the row if need be) in the same statement as any
 *    insert, update or delete of one of its edges, whoever writes it (a
 *    migration, the sqlite3 shell: anyone with triggers on);
 *  - a walk that meets a stale row, or one it cannot decode (its times row
 *    missing or not matching it included), reads that node's edges from
 *    lineage_edges as before, so a stale or damaged row costs speed, not
 *    correctness;
 *  - no row at all means no outgoing edges (every edge insert makes one);
 *  - the import, which runs with triggers off and lists the sources it
 *    wrote itself, repacks those and any stale rows at its end, in its
 *    transaction (lineage_adj_refresh), both tables; the migration that
 *    split the times off (v16) builds them whole (lineage_adj_build).
 * Someone who can write the catalogue file can change what lineage says
 * either way (lineage_edges is no better protected): lineage informs, and
 * the one decision it feeds, a request's downstream risk factor, moves by
 * at most 2 points (docs/architecture.md).
 */
#ifndef KM_LINEAGE_ADJ_H
#define KM_LINEAGE_ADJ_H

#include "km.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* The first byte of every packed row; a row with another is read as stale.
 * 2: the times in lineage_out_times (1 had them in the row). */
#define LINEAGE_ADJ_FORMAT 2

/* Edge kinds as packed; anything else lineage_edges holds is OTHER, shown
 * as "unknown" (as the SQL walk shows it). */
enum { LINEAGE_EK_DERIVED, LINEAGE_EK_CONSUMED, LINEAGE_EK_SERVED, LINEAGE_EK_OTHER };

typedef struct lineage_adj_edge {
	int64_t dst, first_seen, last_seen;
	unsigned kind; /* LINEAGE_EK_* */
} lineage_adj_edge;

/* The static name of a packed kind ("derived-from", ..., "unknown"). */
const char *lineage_adj_kind_name(unsigned kind);

/* A packed row's edges into *buf (grown as needed, *cap its room), *n of
 * them.  Their times too, from `times` (the row's lineage_out_times.times),
 * when want_times or when some edge was first seen after as_of (*timed 1);
 * else *timed is 0 and first_seen and last_seen are 0: every edge was
 * first seen by as_of, and a walk past its first hop needs no more.
 * 0: done; 2: the times are needed and times is NULL (call again with
 * them); 1: not a row this format can read (wrong format byte, truncated,
 * trailing bytes, a count that does not fit, times that do not match the
 * count); -1: out of memory. */
int lineage_adj_decode(const void *blob, size_t len, const void *times, size_t times_len, int64_t as_of,
                       int want_times, lineage_adj_edge **buf, size_t *cap, size_t *n, int *timed);

/* Repack every stale row, and the rows of the n sources in also (a
 * writer that ran with triggers off names what it wrote; duplicates are
 * fine), from lineage_edges, deleting the rows of sources left with no
 * edges.  Call inside the writer's transaction. */
km_status lineage_adj_refresh(sqlite3 *db, const int64_t *also, size_t n, km_err *e);

/* Rebuild the whole table from lineage_edges in one ordered scan: for the
 * migration that adds it, and for tools that wrote lineage_edges in bulk
 * (bench/lineage_speed).  Inside the caller's transaction if it has one. */
km_status lineage_adj_build(sqlite3 *db, km_err *e);

/* Compare every row with a fresh packing of lineage_edges: *stale rows
 * marked stale, *wrong rows that are neither stale nor equal to the fresh
 * packing (a source with edges and no row counts as wrong too).  Reads
 * only; the tests call it (no command does yet). */
km_status lineage_adj_check(sqlite3 *db, uint64_t *stale, uint64_t *wrong, km_err *e);

/* A walk's reader of lineage_out: one row per call, or, once a walk has
 * proved wide, the whole table read in one scan and kept in memory; a
 * row's times read from lineage_out_times, a seek each, only when wanted. */
typedef struct lineage_adj_reader {
	sqlite3 *db;
	sqlite3_stmt *rowq;         /* SELECT packed FROM lineage_out WHERE src = ? */
	sqlite3_stmt *timesq;       /* SELECT times FROM lineage_out_times WHERE src = ? */
	lineage_adj_edge *edges;    /* the last node's edges */
	size_t cap;
	/* The whole table (lineage_adj_reader_load_all): sorted srcs, each
	 * row's bytes at data + off[i] .. off[i + 1]; a stale row's length
	 * is 0 (a packed row never is). */
	int64_t *src;
	size_t *off;
	unsigned char *data;
	size_t nsrc, rows_cap;      /* rows, and room for them */
	size_t data_len;
	/* What each array was sized to, to free it by (bigbuf.h). */
	size_t src_bytes, off_bytes, data_bytes;
	int all;
} lineage_adj_reader;

km_status lineage_adj_reader_open(sqlite3 *db, lineage_adj_reader *r, km_err *e);
void lineage_adj_reader_close(lineage_adj_reader *r);

/* Read every row now, in one scan of the table. */
km_status lineage_adj_reader_load_all(lineage_adj_reader *r, km_err *e);

/* The edges of node into r->edges[0..*n-1], times as lineage_adj_decode
 * (as_of, want_times, *timed): 1 when the packed table answered (*n 0 when
 * it has no row), 0 when its row is stale or cannot be decoded (the caller
 * reads lineage_edges instead), -1 on a database or memory failure (e set). */
int lineage_adj_reader_edges(lineage_adj_reader *r, int64_t node, int64_t as_of, int want_times, size_t *n,
                             int *timed, km_err *e);

#endif
