/*
 * anomaly.c — anomaly detection over key use (anomaly.h).
 *
 * A scan loads the new events of one batch into memory, runs each rule
 * over them, asking the log (through its indexes) for the history a rule
 * needs — a baseline, an earlier use, the events just before the batch —
 * and appends the findings and the cursor event in one transaction.
 */
#include "anomaly.h"
#include "authz.h"
#include "ctx.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ config */

void km_anomaly_config_defaults(km_anomaly_config *c)
{
	memset(c, 0, sizeof *c);
	c->spike_factor = 5;
	c->spike_min = 20;
	c->baseline_hours = 168;
	c->learn_hours = 24;
	c->first_use = 1;
	c->off_hours = 1;
	c->work_start_min = 8 * 60;
	c->work_end_min = 18 * 60;
	c->work_days = 0x3e; /* Monday to Friday */
	snprintf(c->time_zone, sizeof c->time_zone, "UTC");
	c->mass_assets = 50;
	c->mass_window_s = 600;
	c->denials = 10;
	c->denials_window_s = 300;
}

/* The positive-integer members: one row each. */
static const struct {
	const char *name;
	size_t off;
	uint32_t max;
} anomaly_ints[] = {
	{"spike_factor", offsetof(km_anomaly_config, spike_factor), 1000000},
	{"spike_min", offsetof(km_anomaly_config, spike_min), 1000000000},
	{"baseline_hours", offsetof(km_anomaly_config, baseline_hours), 24 * 366},
	{"learn_hours", offsetof(km_anomaly_config, learn_hours), 24 * 366},
	{"mass_assets", offsetof(km_anomaly_config, mass_assets), 1000000000},
	{"mass_window_seconds", offsetof(km_anomaly_config, mass_window_s), 7 * 86400},
	{"denials", offsetof(km_anomaly_config, denials), 1000000000},
	{"denials_window_seconds", offsetof(km_anomaly_config, denials_window_s), 7 * 86400},
};

static const struct {
	const char *name;
	size_t off;
} anomaly_bools[] = {
	{"first_use", offsetof(km_anomaly_config, first_use)},
	{"off_hours", offsetof(km_anomaly_config, off_hours)},
};

static const char *const weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int weekday_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && strncmp(s, weekdays[i], 3) == 0)
			return i;
	return -1;
}

/* "mon-fri", "sat,sun", "mon-wed,fri": a bit per day. */
static int parse_days(const char *s, unsigned *out)
{
	unsigned days = 0;
	const char *p = s;
	while (*p) {
		const char *end = p + strcspn(p, ",");
		const char *dash = memchr(p, '-', (size_t)(end - p));
		int a = weekday_index(p, (size_t)((dash ? dash : end) - p));
		int b = dash ? weekday_index(dash + 1, (size_t)(end - dash - 1)) : a;
		if (a < 0 || b < 0)
			return 0;
		for (int d = a;; d = (d + 1) % 7) {
			days |= 1u << d;
			if (d == b)
				break;
		}
		p = *end ? end + 1 : end;
	}
	*out = days;
	return days != 0;
}

static int parse_hhmm(const char *s, int *min)
{
	if (strlen(s) != 5 || s[2] != ':')
		return 0;
	for (int i = 0; i < 5; i++)
		if (i != 2 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return 0;
	*min = h * 60 + m;
	return 1;
}

km_status km_anomaly_config_parse(const json_t *obj, km_anomaly_config *c, km_err *e)
{
	km_anomaly_config_defaults(c);
	if (!obj)
		return KM_OK;
	if (!json_is_object(obj))
		return km_fail(e, KM_ECONFIG, "\"anomaly\" must be an object of thresholds");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		size_t i;
		for (i = 0; i < KM_ARRAY_LEN(anomaly_ints); i++)
			if (strcmp(k, anomaly_ints[i].name) == 0)
				break;
		if (i < KM_ARRAY_LEN(anomaly_ints)) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
			    json_integer_value(v) > anomaly_ints[i].max)
				return km_fail(e, KM_ECONFIG, "\"anomaly.%s\" must be an integer from 1 to %u",
				               k, anomaly_ints[i].max);
			uint32_t x = (uint32_t)json_integer_value(v);
			memcpy((char *)c + anomaly_ints[i].off, &x, sizeof x);
			continue;
		}
		for (i = 0; i < KM_ARRAY_LEN(anomaly_bools); i++)
			if (strcmp(k, anomaly_bools[i].name) == 0)
				break;
		if (i < KM_ARRAY_LEN(anomaly_bools)) {
			if (!json_is_boolean(v))
				return km_fail(e, KM_ECONFIG, "\"anomaly.%s\" must be true or false", k);
			int x = json_is_true(v);
			memcpy((char *)c + anomaly_bools[i].off, &x, sizeof x);
			continue;
		}
		const char *s = json_string_value(v);
		if (strcmp(k, "working_hours") == 0) {
			char a[8], b[8];
			const char *dash = s ? strchr(s, '-') : NULL;
			if (!dash || dash - s >= (long)sizeof a || strlen(dash + 1) >= sizeof b)
				return km_fail(e, KM_ECONFIG, "\"anomaly.working_hours\" must be HH:MM-HH:MM "
				               "(e.g. \"08:00-18:00\")");
			snprintf(a, sizeof a, "%.*s", (int)(dash - s), s);
			snprintf(b, sizeof b, "%s", dash + 1);
			if (!parse_hhmm(a, &c->work_start_min) || !parse_hhmm(b, &c->work_end_min) ||
			    c->work_start_min >= c->work_end_min)
				return km_fail(e, KM_ECONFIG, "\"anomaly.working_hours\" \"%s\" must be "
				               "HH:MM-HH:MM with the start before the end (e.g. \"08:00-18:00\")", s);
		} else if (strcmp(k, "working_days") == 0) {
			if (!s || !parse_days(s, &c->work_days))
				return km_fail(e, KM_ECONFIG, "\"anomaly.working_days\" must name days as "
				               "\"mon-fri\" or \"mon,tue,sat\" (sun mon tue wed thu fri sat)");
		} else if (strcmp(k, "time_zone") == 0) {
			int32_t off;
			if (!s || strlen(s) >= sizeof c->time_zone)
				return km_fail(e, KM_ECONFIG, "\"anomaly.time_zone\" must be a time zone "
				               "name (\"UTC\", \"Europe/Berlin\")");
			km_status st = km_anomaly_tz_offset(s, 0, &off, e);
			if (st)
				return st;
			snprintf(c->time_zone, sizeof c->time_zone, "%s", s);
		} else {
			return km_fail(e, KM_ECONFIG, "unknown setting \"anomaly.%s\"", k);
		}
	}
	return KM_OK;
}

/* ------------------------------------------------------------ time */

/* A TZif file: transition times and the offset in force after each. */
typedef struct tzdata {
	int64_t *at;
	int32_t *off;
	size_t n;
	int32_t first_off; /* before the first transition */
} tzdata;

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void tz_free(tzdata *z)
{
	free(z->at);
	free(z->off);
	memset(z, 0, sizeof *z);
}

/* Zone names are paths under the zoneinfo directory: only the characters
 * IANA uses, and never "..". */
static int tz_name_ok(const char *name)
{
	if (!name[0] || name[0] == '/' || strstr(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      strchr("/_+-", *p)))
			return 0;
	return 1;
}

static km_status tz_load(const char *name, tzdata *z, km_err *e)
{
	memset(z, 0, sizeof *z);
	if (strcmp(name, "UTC") == 0)
		return KM_OK;
	if (!tz_name_ok(name))
		return km_fail(e, KM_ECONFIG, "\"anomaly.time_zone\" \"%s\" is not a time zone name", name);
	char path[512];
	snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);
	size_t len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
	if (f)
		fclose(f);
	km_status st = km_fail(e, KM_ECONFIG, "\"anomaly.time_zone\" \"%s\" is not a time zone this "
	                       "system knows (no TZif file at %s)", name, path);
	/* version 2+: skip the 32-bit body, read the 64-bit one */
	if (len >= 44 && memcmp(buf, "TZif", 4) == 0 && buf[4] >= '2') {
		uint64_t c[6];
		for (int i = 0; i < 6; i++)
			c[i] = be(buf + 20 + 4 * i, 4);
		size_t skip = 44 + c[3] * 4 + c[3] + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
		if (skip + 44 <= len && memcmp(buf + skip, "TZif", 4) == 0) {
			const uint8_t *h = buf + skip;
			for (int i = 0; i < 6; i++)
				c[i] = be(h + 20 + 4 * i, 4);
			size_t timecnt = c[3], typecnt = c[4];
			const uint8_t *times = h + 44, *idx = times + timecnt * 8, *types = idx + timecnt;
			if (typecnt > 0 && (size_t)(types + typecnt * 6 - buf) <= len) {
				z->at = calloc(timecnt + 1, sizeof *z->at);
				z->off = calloc(timecnt + 1, sizeof *z->off);
				if (z->at && z->off) {
					for (size_t i = 0; i < timecnt; i++) {
						z->at[i] = (int64_t)be(times + 8 * i, 8);
						uint8_t t = idx[i] < typecnt ? idx[i] : 0;
						z->off[i] = (int32_t)be(types + 6 * t, 4);
					}
					z->n = timecnt;
					z->first_off = (int32_t)be(types, 4);
					st = KM_OK;
				} else {
					tz_free(z);
					st = km_fail(e, KM_ENOMEM, "out of memory reading a time zone");
				}
			}
		}
	}
	free(buf);
	return st;
}

static int32_t tz_at(const tzdata *z, int64_t t)
{
	size_t lo = 0, hi = z->n;
	while (lo < hi) { /* the last transition at or before t */
		size_t mid = (lo + hi) / 2;
		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? z->first_off : z->off[lo - 1];
}

km_status km_anomaly_tz_offset(const char *tz, int64_t t, int32_t *offset, km_err *e)
{
	tzdata z;
	km_status st = tz_load(tz, &z, e);
	if (st)
		return st;
	*offset = tz_at(&z, t);
	tz_free(&z);
	return KM_OK;
}

/* "2026-03-01T10:30:00.123Z" -> Unix seconds; -1 if malformed. */
static int64_t time_parse(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

/* Unix seconds -> the log's time form, for range bounds. */
static void time_text(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* ------------------------------------------------------------ the batch */

typedef struct scan_ev {
	uint64_t seq;
	int64_t t;
	char *actor, *action, *object, *outcome;
	char *asset;        /* details.name, or the asset id; NULL if none */
	int override;       /* details.override == "compromised" */
	int64_t version;    /* the version used: details.kek_version, else the object's */
} scan_ev;

typedef struct finding {
	char object[256];
	json_t *details;
} finding;

typedef struct scan {
	km_ctx *ctx;
	sqlite3 *db;
	const km_anomaly_config *cfg;
	tzdata tz;
	scan_ev *ev;
	size_t n;
	uint64_t cursor;        /* events up to here were scanned before */
	uint64_t through;       /* this batch ends here */
	int64_t learn_end;      /* no findings before this time */
	int64_t log_start;
	finding *found;
	size_t nfound, capfound;
	km_status st;
	km_err *e;
} scan;

static int is_use(const scan_ev *v)
{
	return strcmp(v->outcome, "ok") == 0 &&
	       (strcmp(v->action, "unprotect") == 0 || strcmp(v->action, "protect") == 0) &&
	       strncmp(v->object, "key:", 4) == 0;
}

static int is_decrypt(const scan_ev *v)
{
	return is_use(v) && strcmp(v->action, "unprotect") == 0;
}

/* "key:NAME@3" -> "NAME" */
static void key_of(const char *object, char *out, size_t cap)
{
	snprintf(out, cap, "%s", strncmp(object, "key:", 4) == 0 ? object + 4 : object);
	char *at = strrchr(out, '@');
	if (at)
		*at = '\0';
}

static char *dup_col(sqlite3_stmt *q, int i)
{
	const unsigned char *s = sqlite3_column_text(q, i);
	return strdup(s ? (const char *)s : "");
}

static void batch_free(scan *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->ev[i].actor);
		free(s->ev[i].action);
		free(s->ev[i].object);
		free(s->ev[i].outcome);
		free(s->ev[i].asset);
	}
	free(s->ev);
	s->ev = NULL;
	s->n = 0;
	for (size_t i = 0; i < s->nfound; i++)
		json_decref(s->found[i].details);
	free(s->found);
	s->found = NULL;
	s->nfound = s->capfound = 0;
}

static km_status batch_load(scan *s, uint64_t from, uint64_t through, km_err *e)
{
	sqlite3_stmt *q;
	km_status st = km_db_prepare(s->db,
		"SELECT seq, time, actor, action, coalesce(object, ''), outcome, "
		"coalesce(json_extract(json, '$.details.name'), json_extract(json, '$.details.asset_id')), "
		"json_extract(json, '$.details.override'), json_extract(json, '$.details.kek_version') "
		"FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq", &q, e);
	if (st)
		return st;
	s->ev = calloc((size_t)(through - from + 1), sizeof *s->ev);
	if (!s->ev) {
		sqlite3_finalize(q);
		return km_fail(e, KM_ENOMEM, "out of memory scanning the audit log");
	}
	sqlite3_bind_int64(q, 1, (int64_t)from);
	sqlite3_bind_int64(q, 2, (int64_t)through);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && s->n <= through - from) {
		scan_ev *v = &s->ev[s->n++];
		v->seq = (uint64_t)sqlite3_column_int64(q, 0);
		v->t = time_parse((const char *)sqlite3_column_text(q, 1));
		v->actor = dup_col(q, 2);
		v->action = dup_col(q, 3);
		v->object = dup_col(q, 4);
		v->outcome = dup_col(q, 5);
		v->asset = sqlite3_column_type(q, 6) == SQLITE_NULL ? NULL : dup_col(q, 6);
		const unsigned char *ov = sqlite3_column_text(q, 7);
		v->override = ov && strcmp((const char *)ov, "compromised") == 0;
		const char *at = strrchr(v->object, '@');
		v->version = sqlite3_column_type(q, 8) != SQLITE_NULL ? sqlite3_column_int64(q, 8)
		             : at ? strtoll(at + 1, NULL, 10) : 0;
		if (!v->actor || !v->action || !v->object || !v->outcome) {
			sqlite3_finalize(q);
			return km_fail(e, KM_ENOMEM, "out of memory scanning the audit log");
		}
	}
	st = rc == SQLITE_ROW || rc == SQLITE_DONE ? KM_OK : km_db_fail(s->db, e, "reading the audit log");
	sqlite3_finalize(q);
	return st;
}

/* Record a finding: rule, the actor it is about, a sentence, evidence. */
static json_t *finding_add(scan *s, const char *rule, const char *object, const char *subject,
                           const uint64_t *seqs, size_t nseqs, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static json_t *finding_add(scan *s, const char *rule, const char *object, const char *subject,
                           const uint64_t *seqs, size_t nseqs, const char *fmt, ...)
{
	if (s->nfound == s->capfound) {
		size_t cap = s->capfound ? s->capfound * 2 : 16;
		finding *f = realloc(s->found, cap * sizeof *f);
		if (!f) {
			s->st = km_fail(s->e, KM_ENOMEM, "out of memory recording anomalies");
			return NULL;
		}
		s->found = f;
		s->capfound = cap;
	}
	char reason[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	json_t *ev = json_array();
	size_t first = nseqs > KM_ANOMALY_EVIDENCE_MAX ? nseqs - KM_ANOMALY_EVIDENCE_MAX : 0;
	for (size_t i = first; i < nseqs; i++)
		json_array_append_new(ev, json_integer((json_int_t)seqs[i]));
	json_t *d = json_pack("{s:s,s:s,s:s,s:o,s:I}", "rule", rule, "subject", subject, "reason", reason,
	                      "evidence", ev, "evidence_total", (json_int_t)nseqs);
	finding *f = &s->found[s->nfound++];
	snprintf(f->object, sizeof f->object, "%s", object);
	f->details = d;
	return d;
}

/* ------------------------------------------------------------ history */

/* A history statement, prepared with its text binds, then its integer
 * binds; NULL (the scan's status set) if it could not be. */
static sqlite3_stmt *sql_bound(scan *s, const char *sql, const char *const *texts, size_t nt,
                               const int64_t *ints, size_t ni)
{
	sqlite3_stmt *q;
	if (s->st || (s->st = km_db_prepare(s->db, sql, &q, s->e)))
		return NULL;
	int p = 1;
	for (size_t i = 0; i < nt; i++)
		sqlite3_bind_text(q, p++, texts[i], -1, SQLITE_TRANSIENT);
	for (size_t i = 0; i < ni; i++)
		sqlite3_bind_int64(q, p++, ints[i]);
	return q;
}

/* count(*) of a statement with the given binds. */
static int64_t sql_count(scan *s, const char *sql, const char *const *texts, size_t nt,
                         const int64_t *ints, size_t ni)
{
	sqlite3_stmt *q = sql_bound(s, sql, texts, nt, ints, ni);
	int64_t n = 0;
	if (!q)
		return 0;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		n = sqlite3_column_int64(q, 0);
	else if (rc != SQLITE_DONE)
		s->st = km_db_fail(s->db, s->e, "reading the audit log's history");
	sqlite3_finalize(q);
	return n;
}

/* Seqs a statement returns (first column), at most cap. */
static size_t sql_seqs(scan *s, const char *sql, const char *const *texts, size_t nt,
                       const int64_t *ints, size_t ni, uint64_t *out, size_t cap)
{
	sqlite3_stmt *q = sql_bound(s, sql, texts, nt, ints, ni);
	size_t n = 0;
	if (!q)
		return 0;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < cap)
		out[n++] = (uint64_t)sqlite3_column_int64(q, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		s->st = km_db_fail(s->db, s->e, "reading the audit log's history");
	sqlite3_finalize(q);
	return n;
}

/* Has this (subject, bucket) been seen in the batch already?  A small
 * linear set: the batch's distinct subjects per hour are few. */
typedef struct seen_set {
	char **items;
	size_t n, cap;
} seen_set;

static int seen_add(seen_set *ss, const char *item)
{
	for (size_t i = 0; i < ss->n; i++)
		if (strcmp(ss->items[i], item) == 0)
			return 0;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 64;
		char **it = realloc(ss->items, cap * sizeof *it);
		if (!it)
			return 0;
		ss->items = it;
		ss->cap = cap;
	}
	ss->items[ss->n] = strdup(item);
	if (!ss->items[ss->n])
		return 0;
	ss->n++;
	return 1;
}

static void seen_free(seen_set *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->items[i]);
	free(ss->items);
	memset(ss, 0, sizeof *ss);
}

/* ------------------------------------------------------------ rules */

/* decrypt-spike: per key and per actor, per UTC hour. */
static void rule_spike(scan *s)
{
	seen_set done = {0};
	for (size_t i = 0; i < s->n && !s->st; i++) {
		const scan_ev *v = &s->ev[i];
		if (!is_decrypt(v) || v->t < s->learn_end)
			continue;
		int64_t hour = v->t - v->t % 3600;
		char key[256], lo[32], hi[32], blo[32], klo[300], khi[300], tag[400];
		key_of(v->object, key, sizeof key);
		time_text(hour, lo);
		time_text(hour + 3600, hi);
		int64_t span = (int64_t)s->cfg->baseline_hours * 3600;
		if (hour - s->log_start < span)
			span = hour - s->log_start;
		int64_t span_h = span / 3600 > 0 ? span / 3600 : 1;
		time_text(hour - span, blo);
		snprintf(klo, sizeof klo, "key:%s@", key);
		snprintf(khi, sizeof khi, "key:%s@\xff", key);
		for (int by_actor = 0; by_actor < 2; by_actor++) {
			snprintf(tag, sizeof tag, "%d %s %lld", by_actor, by_actor ? v->actor : key, (long long)hour);
			if (!seen_add(&done, tag))
				continue;
			static const char *const where[2] = {
				"action = 'unprotect' AND outcome = 'ok' AND object >= ?1 AND object < ?2",
				"action = 'unprotect' AND outcome = 'ok' AND actor = ?1 AND ?2 IS NOT NULL",
			};
			char sql[400], sql_seqs_text[400];
			snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_events WHERE %s AND time >= ?3 AND "
			         "time < ?4 AND seq <= ?5", where[by_actor]);
			const char *t_hour[4] = {by_actor ? v->actor : klo, khi, lo, hi};
			const char *t_base[4] = {by_actor ? v->actor : klo, khi, blo, lo};
			int64_t upto_all = (int64_t)s->through, upto_before = (int64_t)s->cursor;
			int64_t total = sql_count(s, sql, t_hour, 4, &upto_all, 1);
			int64_t before = sql_count(s, sql, t_hour, 4, &upto_before, 1);
			int64_t base = sql_count(s, sql, t_base, 4, &upto_all, 1);
			int64_t thr = (int64_t)s->cfg->spike_factor * base / span_h + 1;
			if (thr < (int64_t)s->cfg->spike_min)
				thr = s->cfg->spike_min;
			if (s->st || total < thr || before >= thr)
				continue;
			uint64_t seqs[KM_ANOMALY_EVIDENCE_MAX];
			snprintf(sql_seqs_text, sizeof sql_seqs_text, "SELECT seq FROM audit_events WHERE %s AND "
			         "time >= ?3 AND time < ?4 AND seq <= ?5 ORDER BY seq LIMIT %d", where[by_actor],
			         KM_ANOMALY_EVIDENCE_MAX);
			size_t ns = sql_seqs(s, sql_seqs_text, t_hour, 4, &upto_all, 1, seqs, KM_ANOMALY_EVIDENCE_MAX);
			char object[300];
			snprintf(object, sizeof object, "%s%s", by_actor ? "user:" : "key:", by_actor ? v->actor : key);
			json_t *d = finding_add(s, "decrypt-spike", object, v->actor, seqs, ns,
			                        "%lld decrypts %s %s in the hour from %.13s:00Z, against %lld in the %lld "
			                        "hours before (threshold %lld)", (long long)total,
			                        by_actor ? "by" : "under", by_actor ? v->actor : key, lo,
			                        (long long)base, (long long)span_h, (long long)thr);
			if (d) {
				json_object_set_new(d, "count", json_integer(total));
				json_object_set_new(d, "threshold", json_integer(thr));
				json_object_set_new(d, "key_name", by_actor ? json_null() : json_string(key));
			}
		}
	}
	seen_free(&done);
}

/* first-use: no earlier use of the key by the actor. */
static void rule_first_use(scan *s)
{
	if (!s->cfg->first_use)
		return;
	seen_set done = {0};
	for (size_t i = 0; i < s->n && !s->st; i++) {
		const scan_ev *v = &s->ev[i];
		if (!is_use(v))
			continue;
		char key[256], tag[600], klo[300], khi[300];
		key_of(v->object, key, sizeof key);
		snprintf(tag, sizeof tag, "%s\n%s", v->actor, key);
		if (!seen_add(&done, tag) || v->t < s->learn_end)
			continue;
		snprintf(klo, sizeof klo, "key:%s@", key);
		snprintf(khi, sizeof khi, "key:%s@\xff", key);
		const char *texts[3] = {v->actor, klo, khi};
		int64_t before = (int64_t)v->seq;
		if (sql_count(s, "SELECT count(*) FROM (SELECT 1 FROM audit_events WHERE actor = ?1 AND "
		              "object >= ?2 AND object < ?3 AND action IN ('protect', 'unprotect') AND "
		              "outcome = 'ok' AND seq < ?4 LIMIT 1)", texts, 3, &before, 1) > 0 || s->st)
			continue;
		/* The key's creator protecting its first assets is how every key
		 * starts: the creation is the audited, authorised act, and the
		 * first use by the same person says nothing new. */
		char kobj[300];
		snprintf(kobj, sizeof kobj, "key:%s", key);
		const char *created[2] = {kobj, v->actor};
		if (sql_count(s, "SELECT count(*) FROM (SELECT 1 FROM audit_events WHERE object = ?1 AND "
		              "action = 'key.create' AND outcome = 'ok' AND actor = ?2 AND seq < ?3 LIMIT 1)",
		              created, 2, &before, 1) > 0 || s->st)
			continue;
		json_t *d = finding_add(s, "first-use", kobj, v->actor, &v->seq, 1,
		                        "%s used key %s for the first time (%s)", v->actor, key, v->action);
		if (d)
			json_object_set_new(d, "key_name", json_string(key));
	}
	seen_free(&done);
}

/* Grouped per (actor, object, hour): the findings of off-hours and
 * version-use.  A group already begun before the batch was reported then. */
typedef int (*group_pred)(scan *s, const scan_ev *v, char *why, size_t cap);

static void rule_grouped(scan *s, const char *rule, group_pred pred)
{
	seen_set done = {0};
	uint64_t *seqs = calloc(s->n ? s->n : 1, sizeof *seqs);
	if (!seqs) {
		s->st = km_fail(s->e, KM_ENOMEM, "out of memory scanning the audit log");
		return;
	}
	for (size_t i = 0; i < s->n && !s->st; i++) {
		const scan_ev *v = &s->ev[i];
		char why[200];
		if (!is_use(v) || v->t < s->learn_end || !pred(s, v, why, sizeof why))
			continue;
		int64_t hour = v->t - v->t % 3600;
		char tag[800];
		snprintf(tag, sizeof tag, "%s\n%s\n%lld", v->actor, v->object, (long long)hour);
		if (!seen_add(&done, tag))
			continue;
		/* uses by the actor of this object earlier in the hour, before
		 * this batch: the group began then and was reported then (both
		 * rules' conditions hold for a whole hour, but for working hours
		 * that end mid-hour) */
		int reported = 0;
		char lo[32];
		time_text(hour, lo);
		const char *texts[3] = {v->actor, v->object, lo};
		int64_t cur = (int64_t)s->cursor;
		if (s->cursor && sql_count(s, "SELECT count(*) FROM audit_events WHERE actor = ?1 AND object = ?2 "
		                           "AND time >= ?3 AND action IN ('protect', 'unprotect') AND outcome = 'ok' "
		                           "AND seq <= ?4", texts, 3, &cur, 1) > 0)
			reported = 1;
		if (reported || s->st)
			continue;
		size_t ns = 0;
		for (size_t j = i; j < s->n; j++) {
			const scan_ev *w = &s->ev[j];
			char why2[200];
			if (w->t - w->t % 3600 == hour && strcmp(w->actor, v->actor) == 0 &&
			    strcmp(w->object, v->object) == 0 && is_use(w) && pred(s, w, why2, sizeof why2))
				seqs[ns++] = w->seq;
		}
		char key[256];
		key_of(v->object, key, sizeof key);
		json_t *d = finding_add(s, rule, v->object, v->actor, seqs, ns, "%s: %zu use%s of %s by %s in the "
		                        "hour from %.13s:00Z", why, ns, ns == 1 ? "" : "s", v->object, v->actor, lo);
		if (d)
			json_object_set_new(d, "key_name", json_string(key));
	}
	free(seqs);
	seen_free(&done);
}

static int pred_off_hours(scan *s, const scan_ev *v, char *why, size_t cap)
{
	int64_t local = v->t + tz_at(&s->tz, v->t);
	int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	int wday = (int)((day + 4) % 7); /* 1970-01-01 was a Thursday */
	if (wday < 0)
		wday += 7;
	int min = (int)((local - day * 86400) / 60);
	int working_day = (s->cfg->work_days >> wday) & 1;
	if (working_day && min >= s->cfg->work_start_min && min < s->cfg->work_end_min)
		return 0;
	snprintf(why, cap, "outside working hours (%s %02d:%02d %s)", weekdays[wday], min / 60, min % 60,
	         s->cfg->time_zone);
	return 1;
}

static int pred_version(scan *s, const scan_ev *v, char *why, size_t cap)
{
	if (strcmp(v->action, "unprotect") != 0)
		return 0;
	if (v->override) {
		snprintf(why, cap, "decrypted under a compromised version (override)");
		return 1;
	}
	char key[256];
	key_of(v->object, key, sizeof key);
	sqlite3_stmt *q;
	if (km_db_prepare(s->db, "SELECT v.state, v.deactivated FROM key_versions v JOIN keys k ON "
	                  "k.id = v.key_id WHERE k.name = ? AND v.version = ?", &q, s->e) != KM_OK) {
		s->st = s->e->code;
		return 0;
	}
	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, v->version);
	int hit = 0;
	if (sqlite3_step(q) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(q, 0);
		int64_t since = sqlite3_column_int64(q, 1);
		/* the version left active before this use, and is decrypt-only
		 * (or worse) now: it was decrypt-only when used */
		if (state && strcmp(state, "active") != 0 && strcmp(state, "pending") != 0 && since > 0 &&
		    since <= v->t) {
			snprintf(why, cap, "decrypted under version %lld, %s since %lld", (long long)v->version,
			         strcmp(state, "compromised") == 0 ? "compromised" : "decrypt-only", (long long)since);
			hit = 1;
		}
	}
	sqlite3_finalize(q);
	return hit;
}

/* Items in the window and how often each occurs: open addressing over
 * the item strings (never removed; a count of 0 is an absent item). */
typedef struct item_slot {
	const char *item;
	uint32_t count;
} item_slot;

static size_t item_find(item_slot *t, size_t mask, const char *item)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *p = item; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	size_t i = (size_t)h & mask;
	while (t[i].item && strcmp(t[i].item, item) != 0)
		i = (i + 1) & mask;
	return i;
}

/* Sliding window per actor: distinct `keys` (assets; or each denial) in
 * window seconds reaching `threshold`.  Fires when the window crosses it
 * with an event of this batch. */
typedef struct win_ev {
	uint64_t seq;
	int64_t t;
	char *item;
} win_ev;

static void rule_window(scan *s, const char *rule, int denials)
{
	uint32_t threshold = denials ? s->cfg->denials : s->cfg->mass_assets;
	int64_t window = denials ? s->cfg->denials_window_s : s->cfg->mass_window_s;
	seen_set actors = {0};
	for (size_t i = 0; i < s->n && !s->st; i++) {
		const scan_ev *v = &s->ev[i];
		int hit = denials ? strcmp(v->outcome, "denied") == 0 : is_decrypt(v) && v->asset;
		if (!hit || !seen_add(&actors, v->actor))
			continue;
		/* this actor's qualifying events from one window before the batch */
		char from[32];
		time_text(s->ev[0].t - window, from);
		sqlite3_stmt *q;
		const char *sql = denials
			/* "<> 'ok'" lets SQLite use the index of rare outcomes */
			? "SELECT seq, time, CAST(seq AS TEXT) FROM audit_events WHERE actor = ?1 AND outcome = 'denied' "
			  "AND outcome <> 'ok' AND time >= ?2 AND seq <= ?3 ORDER BY seq"
			: "SELECT seq, time, coalesce(json_extract(json, '$.details.name'), "
			  "json_extract(json, '$.details.asset_id')) FROM audit_events WHERE actor = ?1 AND "
			  "action = 'unprotect' AND outcome = 'ok' AND time >= ?2 AND seq <= ?3 ORDER BY seq";
		if ((s->st = km_db_prepare(s->db, sql, &q, s->e)))
			break;
		sqlite3_bind_text(q, 1, v->actor, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 2, from, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 3, (int64_t)s->through);
		win_ev *w = NULL;
		size_t n = 0, cap = 0;
		int rc;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			if (sqlite3_column_type(q, 2) == SQLITE_NULL)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				win_ev *nw = realloc(w, cap * sizeof *nw);
				if (!nw) {
					s->st = km_fail(s->e, KM_ENOMEM, "out of memory scanning the audit log");
					break;
				}
				w = nw;
			}
			w[n].seq = (uint64_t)sqlite3_column_int64(q, 0);
			w[n].t = time_parse((const char *)sqlite3_column_text(q, 1));
			w[n].item = strdup((const char *)sqlite3_column_text(q, 2));
			n++;
		}
		sqlite3_finalize(q);
		/* slide: lo..k is the window ending at event k */
		size_t tcap = 16;
		while (tcap < 2 * n + 2)
			tcap *= 2;
		item_slot *tab = calloc(tcap, sizeof *tab);
		if (!tab && !s->st)
			s->st = km_fail(s->e, KM_ENOMEM, "out of memory scanning the audit log");
		for (size_t k = 0; k < n && !s->st; k++)
			if (!w[k].item)
				s->st = km_fail(s->e, KM_ENOMEM, "out of memory scanning the audit log");
		size_t lo = 0, prev_distinct = 0, distinct = 0;
		for (size_t k = 0; k < n && !s->st; k++) {
			while (w[k].t - w[lo].t >= window) {
				item_slot *o = &tab[item_find(tab, tcap - 1, w[lo].item)];
				if (--o->count == 0)
					distinct--;
				lo++;
			}
			prev_distinct = distinct;
			item_slot *in = &tab[item_find(tab, tcap - 1, w[k].item)];
			in->item = w[k].item;
			if (in->count++ == 0)
				distinct++;
			if (distinct >= threshold && prev_distinct < threshold && w[k].seq > s->cursor) {
				uint64_t seqs[KM_ANOMALY_EVIDENCE_MAX];
				size_t ns = 0;
				for (size_t a = k + 1 - (k + 1 - lo > KM_ANOMALY_EVIDENCE_MAX ? KM_ANOMALY_EVIDENCE_MAX : k + 1 - lo);
				     a <= k; a++)
					seqs[ns++] = w[a].seq;
				char object[300];
				snprintf(object, sizeof object, "user:%s", v->actor);
				json_t *d = finding_add(s, rule, object, v->actor, seqs, ns,
				                        denials ? "%zu denials of %s within %lld s (threshold %u)"
				                                : "%zu distinct assets decrypted by %s within %lld s (threshold %u)",
				                        distinct, v->actor, (long long)window, threshold);
				if (d)
					json_object_set_new(d, "count", json_integer((json_int_t)distinct));
			}
		}
		free(tab);
		for (size_t k = 0; k < n; k++)
			free(w[k].item);
		free(w);
	}
	seen_free(&actors);
}

/* ------------------------------------------------------------ scan */

static km_status read_cursor(sqlite3 *db, uint64_t *through, km_err *e)
{
	int64_t v = 0;
	km_status st = km_db_int64(db, "SELECT coalesce((SELECT json_extract(json, '$.details.through') FROM "
	                           "audit_events WHERE action = '" KM_ANOMALY_SCAN_ACTION "' AND "
	                           "outcome = 'ok' ORDER BY seq DESC LIMIT 1), 0)", &v, e);
	*through = v > 0 ? (uint64_t)v : 0;
	return st;
}

/* Events per transaction: bounded memory and commits of a few seconds. */
#define SCAN_BATCH 50000

static km_status scan_batch(scan *s, km_anomaly_scan_result *r, km_err *e)
{
	km_status st = batch_load(s, s->cursor + 1, s->through, e);
	if (st || s->n == 0)
		return st;
	rule_spike(s);
	rule_first_use(s);
	if (s->cfg->off_hours)
		rule_grouped(s, "off-hours", pred_off_hours);
	rule_grouped(s, "version-use", pred_version);
	rule_window(s, "mass-decrypt", 0);
	rule_window(s, "denial-burst", 1);
	if (s->st)
		return s->st;
	if ((st = km_tx_begin(s->ctx, e)))
		return st;
	for (size_t i = 0; i < s->nfound && !st; i++) {
		json_t *d = s->found[i].details;
		s->found[i].details = NULL;
		st = km_tx_audit(s->ctx, KM_ANOMALY_ACTION, s->found[i].object, "ok", d, e);
	}
	if (!st)
		st = km_tx_audit(s->ctx, KM_ANOMALY_SCAN_ACTION, "audit", "ok",
		                 json_pack("{s:I,s:I,s:I,s:I}", "from", (json_int_t)(s->cursor + 1), "through",
		                           (json_int_t)s->through, "events", (json_int_t)s->n, "anomalies",
		                           (json_int_t)s->nfound), e);
	if (st) {
		km_tx_rollback(s->ctx);
		return st;
	}
	if ((st = km_tx_commit(s->ctx, e)))
		return st;
	if (!r->from)
		r->from = s->cursor + 1;
	r->through = s->through;
	r->events += s->n;
	r->anomalies += s->nfound;
	return KM_OK;
}

static km_status scan_impl(km_ctx *ctx, km_anomaly_scan_result *r, km_err *e)
{
	memset(r, 0, sizeof *r);
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_SCAN, "audit", e);
	if (st)
		return st;
	km_anomaly_config cfg;
	if ((st = km_anomaly_config_parse(ctx->cfg.anomaly, &cfg, e)))
		return st;
	scan s;
	memset(&s, 0, sizeof s);
	s.ctx = ctx;
	s.db = ctx->db;
	s.cfg = &cfg;
	s.e = e;
	if ((st = tz_load(cfg.time_zone, &s.tz, e)))
		return st;
	uint64_t end = 0;
	int64_t n = 0, start = 0;
	char first_time[40] = "";
	if (!(st = km_db_int64(ctx->db, "SELECT coalesce(max(seq), 0) FROM audit_events", &n, e)))
		end = (uint64_t)n;
	if (!st) {
		sqlite3_stmt *q;
		if (!(st = km_db_prepare(ctx->db, "SELECT time FROM audit_events WHERE seq = 1", &q, e))) {
			if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
				snprintf(first_time, sizeof first_time, "%s", (const char *)sqlite3_column_text(q, 0));
			sqlite3_finalize(q);
		}
		start = time_parse(first_time);
	}
	s.log_start = start;
	s.learn_end = start + (int64_t)cfg.learn_hours * 3600;
	if (!st)
		st = read_cursor(ctx->db, &s.cursor, e);
	while (!st && s.cursor < end) {
		s.through = end - s.cursor > SCAN_BATCH ? s.cursor + SCAN_BATCH : end;
		st = scan_batch(&s, r, e);
		batch_free(&s);
		s.cursor = s.through;
	}
	batch_free(&s);
	tz_free(&s.tz);
	return st;
}

km_status km_anomaly_scan(km_ctx *ctx, km_anomaly_scan_result *r, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_SCAN, "audit");
	return km_op_end(ctx, scan_impl(ctx, r, e), e);
}

static km_status cursor_impl(km_ctx *ctx, uint64_t *through, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit", e);
	return st ? st : read_cursor(ctx->db, through, e);
}

km_status km_anomaly_cursor(km_ctx *ctx, uint64_t *through, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_READ, "audit");
	return km_op_end(ctx, cursor_impl(ctx, through, e), e);
}

static km_status count_impl(km_ctx *ctx, uint64_t *n, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit", e);
	if (st)
		return st;
	int64_t v = 0;
	st = km_db_int64(ctx->db, "SELECT count(*) FROM audit_events WHERE action = '" KM_ANOMALY_ACTION "'", &v, e);
	*n = v > 0 ? (uint64_t)v : 0;
	return st;
}

km_status km_anomaly_count(km_ctx *ctx, uint64_t *n, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_READ, "audit");
	return km_op_end(ctx, count_impl(ctx, n, e), e);
}
