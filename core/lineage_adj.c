/*
 * lineage_adj.c — the packed out-edge table (lineage_adj.h).
 *
 * A packed row (lineage_out.packed): the format byte, the edge count, the
 * latest first_seen of its edges, then two columns, each edge in
 * lineage_edges' primary-key order (dst, then kind as text):
 *   count x varint  zigzag(dst - previous dst)          (first: dst - 0)
 *   count x byte    kind (LINEAGE_EK_*)
 * Its times (lineage_out_times.times, same src), two more columns:
 *   count x varint  zigzag(first_seen - previous first_seen)
 *   count x varint  zigzag(last_seen - first_seen)
 * Varints are little-endian base 128.  Differences are taken modulo 2^64,
 * so every int64 round-trips.  The times are two thirds of the bytes and
 * a walk as of a time after every edge of a row (the header says) never
 * needs them: in a table of their own, a wide walk as of now reads a third
 * of the pages (format 1 kept them in the row).
 */
#include "lineage_adj.h"
#include "bigbuf.h"
#include "db.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const ek_names[] = {"derived-from", "consumed-by", "served-by", "unknown"};

const char *lineage_adj_kind_name(unsigned kind)
{
	return ek_names[kind <= LINEAGE_EK_OTHER ? kind : LINEAGE_EK_OTHER];
}

static unsigned kind_code(const unsigned char *s)
{
	for (unsigned k = 0; k < LINEAGE_EK_OTHER; k++)
		if (s && strcmp((const char *)s, ek_names[k]) == 0)
			return k;
	return LINEAGE_EK_OTHER;
}

/* ---------------------------------------------------------------- encoding */

typedef struct buf {
	unsigned char *p;
	size_t len, cap;
} buf;

static int buf_room(buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t nc = b->cap ? b->cap : 256;
	while (nc < b->len + more)
		nc *= 2;
	unsigned char *np = realloc(b->p, nc);
	if (!np)
		return -1;
	b->p = np;
	b->cap = nc;
	return 0;
}

static void put_varint(buf *b, uint64_t v)
{
	while (v >= 0x80) {
		b->p[b->len++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	b->p[b->len++] = (unsigned char)v;
}

static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }
static uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

/* edges[0..n-1] packed into b and their times into t (both reset first). */
static int pack(buf *b, buf *t, const lineage_adj_edge *edges, size_t n)
{
	b->len = t->len = 0;
	if (buf_room(b, 21 + n * 11) || buf_room(t, n * 20))
		return -1;
	b->p[b->len++] = LINEAGE_ADJ_FORMAT;
	put_varint(b, n);
	int64_t max_first = INT64_MIN;
	for (size_t i = 0; i < n; i++)
		if (edges[i].first_seen > max_first)
			max_first = edges[i].first_seen;
	put_varint(b, zigzag((uint64_t)(n ? max_first : 0)));
	uint64_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		put_varint(b, zigzag((uint64_t)edges[i].dst - prev));
		prev = (uint64_t)edges[i].dst;
	}
	for (size_t i = 0; i < n; i++)
		b->p[b->len++] = (unsigned char)edges[i].kind;
	prev = 0;
	for (size_t i = 0; i < n; i++) {
		put_varint(t, zigzag((uint64_t)edges[i].first_seen - prev));
		prev = (uint64_t)edges[i].first_seen;
	}
	for (size_t i = 0; i < n; i++)
		put_varint(t, zigzag((uint64_t)edges[i].last_seen - (uint64_t)edges[i].first_seen));
	return 0;
}

/* Inlined, with the one- and two-byte cases first: ids a row apart and
 * kinds are most of what a walk decodes (a loop per byte was a fifth of a
 * wide walk). */
static inline __attribute__((always_inline)) int get_varint(const unsigned char **p, const unsigned char *end,
                                                            uint64_t *v)
{
	const unsigned char *q = *p;
	if (q < end && q[0] < 0x80) {
		*v = q[0];
		*p = q + 1;
		return 0;
	}
	if (end - q >= 2 && q[1] < 0x80) {
		*v = (uint64_t)(q[0] & 0x7f) | (uint64_t)q[1] << 7;
		*p = q + 2;
		return 0;
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Up to 8 bytes at once: the stop byte found by its clear high bit,
	 * the 7-bit groups put together without a loop (times are 3 to 6). */
	if (end - q >= 8) {
		uint64_t word;
		memcpy(&word, q, 8);
		uint64_t stops = ~word & 0x8080808080808080ull;
		if (stops) {
			unsigned len = ((unsigned)__builtin_ctzll(stops) >> 3) + 1;
			if (len < 8)
				word &= (1ull << (8 * len)) - 1;
			*v = (word & 0x7full) | ((word >> 1) & (0x7full << 7)) | ((word >> 2) & (0x7full << 14)) |
			     ((word >> 3) & (0x7full << 21)) | ((word >> 4) & (0x7full << 28)) |
			     ((word >> 5) & (0x7full << 35)) | ((word >> 6) & (0x7full << 42)) |
			     ((word >> 7) & (0x7full << 49));
			*p = q + len;
			return 0;
		}
	}
#endif
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64 && q < end; shift += 7) {
		unsigned char c = *q++;
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			*p = q;
			return 0;
		}
	}
	return -1;
}

static int edges_room(lineage_adj_edge **buf_, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < n)
		nc *= 2;
	lineage_adj_edge *nb = realloc(*buf_, nc * sizeof *nb);
	if (!nb)
		return -1;
	*buf_ = nb;
	*cap = nc;
	return 0;
}

int lineage_adj_decode(const void *blob, size_t len, const void *times, size_t times_len, int64_t as_of,
                       int want_times, lineage_adj_edge **out, size_t *cap, size_t *n, int *timed)
{
	const unsigned char *p = blob, *end = p + len;
	uint64_t count, mf;
	*n = 0;
	*timed = 0;
	if (len < 3 || *p++ != LINEAGE_ADJ_FORMAT || get_varint(&p, end, &count) || get_varint(&p, end, &mf))
		return 1;
	/* An edge takes at least 2 bytes (an id, a kind): a count the row
	 * cannot hold is damage, not a reason to allocate. */
	if (count > (size_t)(end - p) / 2)
		return 1;
	if (edges_room(out, cap, (size_t)count))
		return -1;
	lineage_adj_edge *ed = *out;
	uint64_t acc = 0;
	for (size_t i = 0; i < count; i++) {
		uint64_t d;
		if (get_varint(&p, end, &d))
			return 1;
		acc += unzigzag(d);
		ed[i].dst = (int64_t)acc;
	}
	if ((size_t)(end - p) != count)
		return 1;
	for (size_t i = 0; i < count; i++) {
		if (p[i] > LINEAGE_EK_OTHER)
			return 1;
		ed[i].kind = p[i];
	}
	int64_t max_first = (int64_t)unzigzag(mf);
	if (!want_times && max_first <= as_of) {
		for (size_t i = 0; i < count; i++)
			ed[i].first_seen = ed[i].last_seen = 0;
		*n = (size_t)count;
		return 0;
	}
	if (!times)
		return 2;
	const unsigned char *q = times, *tend = q + times_len;
	acc = 0;
	for (size_t i = 0; i < count; i++) {
		uint64_t f;
		if (get_varint(&q, tend, &f))
			return 1;
		acc += unzigzag(f);
		ed[i].first_seen = (int64_t)acc;
	}
	for (size_t i = 0; i < count; i++) {
		uint64_t l;
		if (get_varint(&q, tend, &l))
			return 1;
		ed[i].last_seen = (int64_t)((uint64_t)ed[i].first_seen + unzigzag(l));
	}
	if (q != tend)
		return 1;
	*n = (size_t)count;
	*timed = 1;
	return 0;
}

/* ---------------------------------------------------------------- writing */

#define EDGES_OF_SQL "SELECT dst, kind, first_seen, last_seen FROM lineage_edges WHERE src = ?1 " \
                     "ORDER BY dst, kind"

static void edge_from_row(sqlite3_stmt *q, int c, lineage_adj_edge *ed)
{
	ed->dst = sqlite3_column_int64(q, c);
	ed->kind = kind_code(sqlite3_column_text(q, c + 1));
	ed->first_seen = sqlite3_column_int64(q, c + 2);
	ed->last_seen = sqlite3_column_int64(q, c + 3);
}

/* src's edges from lineage_edges, packed into b and t; *n of them. */
static km_status pack_fresh(sqlite3_stmt *edgeq, int64_t src, lineage_adj_edge **edges, size_t *cap,
                            size_t *n, buf *b, buf *t, km_err *e)
{
	sqlite3_reset(edgeq);
	sqlite3_bind_int64(edgeq, 1, src);
	int rc;
	*n = 0;
	while ((rc = sqlite3_step(edgeq)) == SQLITE_ROW) {
		if (edges_room(edges, cap, *n + 1)) {
			sqlite3_reset(edgeq);
			return km_fail(e, KM_ENOMEM, "out of memory packing lineage edges");
		}
		edge_from_row(edgeq, 0, &(*edges)[(*n)++]);
	}
	sqlite3_reset(edgeq);
	if (rc != SQLITE_DONE)
		return km_db_fail(sqlite3_db_handle(edgeq), e, "lineage (packing edges)");
	return pack(b, t, *edges, *n) ? km_fail(e, KM_ENOMEM, "out of memory packing lineage edges") : KM_OK;
}

static km_status step_done(sqlite3_stmt *q, const char *what, km_err *e)
{
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? KM_OK : km_db_fail(sqlite3_db_handle(q), e, what);
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

km_status lineage_adj_refresh(sqlite3 *db, const int64_t *also, size_t n_also, km_err *e)
{
	sqlite3_stmt *staleq = NULL, *edgeq = NULL, *updq = NULL, *updtq = NULL, *delq = NULL, *deltq = NULL;
	int64_t *stale = NULL;
	size_t nstale = 0, stale_cap = 0, ecap = 0, n;
	lineage_adj_edge *edges = NULL;
	buf b = {0}, t = {0};
	km_status st;
	if ((st = km_db_prepare(db, "SELECT src FROM lineage_out WHERE packed IS NULL", &staleq, e)))
		goto out;
	/* Collected first: the rows change under the scan otherwise. */
	int rc;
	while ((rc = sqlite3_step(staleq)) == SQLITE_ROW) {
		if (nstale == stale_cap) {
			size_t nc = stale_cap ? stale_cap * 2 : 256;
			int64_t *ns = realloc(stale, nc * sizeof *ns);
			if (!ns) {
				st = km_fail(e, KM_ENOMEM, "out of memory packing lineage edges");
				goto out;
			}
			stale = ns;
			stale_cap = nc;
		}
		stale[nstale++] = sqlite3_column_int64(staleq, 0);
	}
	if (rc != SQLITE_DONE) {
		st = km_db_fail(db, e, "lineage (stale packed rows)");
		goto out;
	}
	if (n_also) {
		int64_t *ns = realloc(stale, (nstale + n_also) * sizeof *ns);
		if (!ns) {
			st = km_fail(e, KM_ENOMEM, "out of memory packing lineage edges");
			goto out;
		}
		stale = ns;
		memcpy(stale + nstale, also, n_also * sizeof *also);
		nstale += n_also;
		qsort(stale, nstale, sizeof *stale, id_cmp);
		size_t k = 0;
		for (size_t i = 0; i < nstale; i++)
			if (!k || stale[i] != stale[k - 1])
				stale[k++] = stale[i];
		nstale = k;
	}
	if (!nstale)
		goto out;
	/* An upsert: a source the import wrote may have no row yet. */
	if ((st = km_db_prepare(db, EDGES_OF_SQL, &edgeq, e)) ||
	    (st = km_db_prepare(db, "INSERT INTO lineage_out(src, packed) VALUES(?1, ?2) "
	                        "ON CONFLICT(src) DO UPDATE SET packed = excluded.packed", &updq, e)) ||
	    (st = km_db_prepare(db, "INSERT INTO lineage_out_times(src, times) VALUES(?1, ?2) "
	                        "ON CONFLICT(src) DO UPDATE SET times = excluded.times", &updtq, e)) ||
	    (st = km_db_prepare(db, "DELETE FROM lineage_out WHERE src = ?1", &delq, e)) ||
	    (st = km_db_prepare(db, "DELETE FROM lineage_out_times WHERE src = ?1", &deltq, e)))
		goto out;
	for (size_t i = 0; i < nstale && !st; i++) {
		if ((st = pack_fresh(edgeq, stale[i], &edges, &ecap, &n, &b, &t, e)))
			break;
		if (!n) {
			sqlite3_bind_int64(delq, 1, stale[i]);
			sqlite3_bind_int64(deltq, 1, stale[i]);
			if (!(st = step_done(delq, "lineage (packed row)", e)))
				st = step_done(deltq, "lineage (packed times)", e);
			continue;
		}
		sqlite3_bind_int64(updq, 1, stale[i]);
		sqlite3_bind_blob(updq, 2, b.p, (int)b.len, SQLITE_STATIC);
		sqlite3_bind_int64(updtq, 1, stale[i]);
		sqlite3_bind_blob(updtq, 2, t.p, (int)t.len, SQLITE_STATIC);
		if (!(st = step_done(updq, "lineage (packed row)", e)))
			st = step_done(updtq, "lineage (packed times)", e);
	}
out:
	sqlite3_finalize(staleq);
	sqlite3_finalize(edgeq);
	sqlite3_finalize(updq);
	sqlite3_finalize(updtq);
	sqlite3_finalize(delq);
	sqlite3_finalize(deltq);
	free(stale);
	free(edges);
	free(b.p);
	free(t.p);
	return st;
}

km_status lineage_adj_build(sqlite3 *db, km_err *e)
{
	sqlite3_stmt *allq = NULL, *insq = NULL, *instq = NULL;
	lineage_adj_edge *edges = NULL;
	size_t ecap = 0, n = 0;
	int64_t src = 0;
	buf b = {0}, t = {0};
	km_status st;
	if ((st = km_db_exec(db, "DELETE FROM lineage_out; DELETE FROM lineage_out_times", e)) ||
	    (st = km_db_prepare(db, "SELECT src, dst, kind, first_seen, last_seen FROM lineage_edges "
	                        "ORDER BY src, dst, kind", &allq, e)) ||
	    (st = km_db_prepare(db, "INSERT INTO lineage_out(src, packed) VALUES(?1, ?2)", &insq, e)) ||
	    (st = km_db_prepare(db, "INSERT INTO lineage_out_times(src, times) VALUES(?1, ?2)", &instq, e)))
		goto out;
	int rc;
	for (;;) {
		rc = sqlite3_step(allq);
		int64_t s = rc == SQLITE_ROW ? sqlite3_column_int64(allq, 0) : 0;
		if (n && (rc != SQLITE_ROW || s != src)) {
			if (pack(&b, &t, edges, n)) {
				st = km_fail(e, KM_ENOMEM, "out of memory packing lineage edges");
				break;
			}
			sqlite3_bind_int64(insq, 1, src);
			sqlite3_bind_blob(insq, 2, b.p, (int)b.len, SQLITE_STATIC);
			sqlite3_bind_int64(instq, 1, src);
			sqlite3_bind_blob(instq, 2, t.p, (int)t.len, SQLITE_STATIC);
			if ((st = step_done(insq, "lineage (packed row)", e)) ||
			    (st = step_done(instq, "lineage (packed times)", e)))
				break;
			n = 0;
		}
		if (rc != SQLITE_ROW)
			break;
		src = s;
		if (edges_room(&edges, &ecap, n + 1)) {
			st = km_fail(e, KM_ENOMEM, "out of memory packing lineage edges");
			break;
		}
		edge_from_row(allq, 1, &edges[n++]);
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(db, e, "lineage (packing edges)");
out:
	sqlite3_finalize(allq);
	sqlite3_finalize(insq);
	sqlite3_finalize(instq);
	free(edges);
	free(b.p);
	free(t.p);
	return st;
}

km_status lineage_adj_check(sqlite3 *db, uint64_t *stale, uint64_t *wrong, km_err *e)
{
	sqlite3_stmt *rowq = NULL, *edgeq = NULL;
	lineage_adj_edge *edges = NULL;
	size_t ecap = 0, n;
	buf b = {0}, t = {0};
	*stale = *wrong = 0;
	int64_t missing = 0, orphans = 0;
	km_status st;
	if ((st = km_db_prepare(db, "SELECT o.src, o.packed, t.times FROM lineage_out o "
	                        "LEFT JOIN lineage_out_times t ON t.src = o.src", &rowq, e)) ||
	    (st = km_db_prepare(db, EDGES_OF_SQL, &edgeq, e)))
		goto out;
	int rc;
	while ((rc = sqlite3_step(rowq)) == SQLITE_ROW) {
		if (sqlite3_column_type(rowq, 1) == SQLITE_NULL) {
			(*stale)++;
			continue;
		}
		if ((st = pack_fresh(edgeq, sqlite3_column_int64(rowq, 0), &edges, &ecap, &n, &b, &t, e)))
			goto out;
		const void *have = sqlite3_column_blob(rowq, 1);
		size_t have_len = (size_t)sqlite3_column_bytes(rowq, 1);
		const void *have_t = sqlite3_column_blob(rowq, 2);
		size_t have_t_len = (size_t)sqlite3_column_bytes(rowq, 2);
		if (!n || have_len != b.len || memcmp(have, b.p, b.len) != 0 ||
		    sqlite3_column_type(rowq, 2) == SQLITE_NULL || have_t_len != t.len ||
		    (t.len && memcmp(have_t, t.p, t.len) != 0))
			(*wrong)++;
	}
	if (rc != SQLITE_DONE) {
		st = km_db_fail(db, e, "lineage (packed rows)");
		goto out;
	}
	if (!(st = km_db_int64(db, "SELECT count(DISTINCT src) FROM lineage_edges WHERE src NOT IN "
	                       "(SELECT src FROM lineage_out)", &missing, e)) &&
	    !(st = km_db_int64(db, "SELECT count(*) FROM lineage_out_times WHERE src NOT IN "
	                       "(SELECT src FROM lineage_out)", &orphans, e)))
		*wrong += (uint64_t)missing + (uint64_t)orphans;
out:
	sqlite3_finalize(rowq);
	sqlite3_finalize(edgeq);
	free(edges);
	free(b.p);
	free(t.p);
	return st;
}

/* ---------------------------------------------------------------- reading */

km_status lineage_adj_reader_open(sqlite3 *db, lineage_adj_reader *r, km_err *e)
{
	memset(r, 0, sizeof *r);
	r->db = db;
	km_status st = km_db_prepare(db, "SELECT packed FROM lineage_out WHERE src = ?1", &r->rowq, e);
	if (!st && (st = km_db_prepare(db, "SELECT times FROM lineage_out_times WHERE src = ?1", &r->timesq, e))) {
		sqlite3_finalize(r->rowq);
		r->rowq = NULL;
	}
	return st;
}

/* *p (of *bytes) grown to want bytes (bigbuf.h): 0, or -1 with *p as it was. */
#define grow(p, bytes, want) grow_bytes((void **)(void *)(p), (bytes), (want))
static int grow_bytes(void **p, size_t *bytes, size_t want)
{
	void *np = km_big_realloc(*p, *bytes, want);
	if (!np)
		return -1;
	*p = np;
	*bytes = want;
	return 0;
}

/* The whole-table copy freed, at the sizes it was grown to. */
static void reader_rows_free(lineage_adj_reader *r)
{
	km_big_free(r->src, r->src_bytes);
	km_big_free(r->off, r->off_bytes);
	km_big_free(r->data, r->data_bytes);
	r->src = NULL;
	r->off = NULL;
	r->data = NULL;
	r->src_bytes = r->off_bytes = r->data_bytes = 0;
	r->rows_cap = r->data_len = r->nsrc = 0;
}

void lineage_adj_reader_close(lineage_adj_reader *r)
{
	sqlite3_finalize(r->rowq);
	sqlite3_finalize(r->timesq);
	free(r->edges);
	reader_rows_free(r);
	memset(r, 0, sizeof *r);
}

km_status lineage_adj_reader_load_all(lineage_adj_reader *r, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(r->db, "SELECT src, packed FROM lineage_out ORDER BY src", &q, e);
	if (st)
		return st;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (r->nsrc + 1 >= r->rows_cap) {
			size_t nc = r->rows_cap ? r->rows_cap * 2 : 4096;
			if (grow(&r->src, &r->src_bytes, nc * sizeof *r->src) ||
			    grow(&r->off, &r->off_bytes, (nc + 1) * sizeof *r->off)) {
				st = km_fail(e, KM_ENOMEM, "out of memory reading the lineage graph");
				break;
			}
			r->rows_cap = nc;
		}
		const unsigned char *blob = sqlite3_column_blob(q, 1);
		size_t len = blob ? (size_t)sqlite3_column_bytes(q, 1) : 0;
		if (r->data_len + len > r->data_bytes) {
			size_t nc = r->data_bytes ? r->data_bytes : (size_t)1 << 20;
			while (nc < r->data_len + len)
				nc *= 2;
			if (grow(&r->data, &r->data_bytes, nc)) {
				st = km_fail(e, KM_ENOMEM, "out of memory reading the lineage graph");
				break;
			}
		}
		if (len)
			memcpy(r->data + r->data_len, blob, len);
		r->src[r->nsrc] = sqlite3_column_int64(q, 0);
		r->off[r->nsrc++] = r->data_len;
		r->data_len += len;
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(r->db, e, "lineage (packed rows)");
	sqlite3_finalize(q);
	if (!st && !r->off && grow(&r->off, &r->off_bytes, sizeof *r->off))
		st = km_fail(e, KM_ENOMEM, "out of memory reading the lineage graph");
	if (st) {
		reader_rows_free(r);
		return st;
	}
	r->off[r->nsrc] = r->data_len;
	r->all = 1;
	return KM_OK;
}

/* The packed row of node: 1 with *blob, *len (len 0: stale) valid until
 * the next call; 0: no row (no outgoing edges); -1: e set. */
static int packed_row(lineage_adj_reader *r, int64_t node, const void **blob, size_t *len, km_err *e)
{
	if (r->all) {
		size_t lo = 0, hi = r->nsrc;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (r->src[mid] < node)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == r->nsrc || r->src[lo] != node)
			return 0;
		*blob = r->data + r->off[lo];
		*len = r->off[lo + 1] - r->off[lo];
		return 1;
	}
	sqlite3_reset(r->rowq);
	sqlite3_bind_int64(r->rowq, 1, node);
	int rc = sqlite3_step(r->rowq);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW) {
		km_db_fail(r->db, e, "lineage (packed row)");
		return -1;
	}
	*blob = sqlite3_column_blob(r->rowq, 0);
	*len = *blob ? (size_t)sqlite3_column_bytes(r->rowq, 0) : 0;
	return 1;
}

int lineage_adj_reader_edges(lineage_adj_reader *r, int64_t node, int64_t as_of, int want_times, size_t *n,
                             int *timed, km_err *e)
{
	*n = 0;
	*timed = 1;
	const void *blob = NULL;
	size_t len = 0;
	int got = packed_row(r, node, &blob, &len, e), ret;
	if (got <= 0) {
		ret = got < 0 ? -1 : 1;
		goto done;
	}
	if (!len) {
		ret = 0; /* stale */
		goto done;
	}
	int dec = lineage_adj_decode(blob, len, NULL, 0, as_of, want_times, &r->edges, &r->cap, n, timed);
	if (dec == 2) {
		/* The times are wanted: one seek into their table.  No row there
		 * (a writer that forgot it) reads as stale. */
		sqlite3_reset(r->timesq);
		sqlite3_bind_int64(r->timesq, 1, node);
		int rc = sqlite3_step(r->timesq);
		if (rc == SQLITE_ROW)
			dec = lineage_adj_decode(blob, len, sqlite3_column_blob(r->timesq, 0),
			                         (size_t)sqlite3_column_bytes(r->timesq, 0), as_of, want_times, &r->edges,
			                         &r->cap, n, timed);
		else if (rc == SQLITE_DONE)
			dec = 1;
		else {
			km_db_fail(r->db, e, "lineage (packed times)");
			dec = -3;
		}
		sqlite3_reset(r->timesq);
	}
	if (dec == -1) {
		km_fail(e, KM_ENOMEM, "out of memory reading the lineage graph");
		ret = -1;
	} else {
		ret = dec == -3 ? -1 : dec == 0;
	}
done:
	if (!r->all)
		sqlite3_reset(r->rowq);
	return ret;
}
