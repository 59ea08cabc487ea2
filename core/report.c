/*
 * report.c — the auditor report (report.h).
 *
 * Cost: one pass over the whole log, the verification's, which also
 * counts key use and events per day from the entries it proves (a
 * visitor: km_audit_verify_visit); the few life-cycle actions and the
 * anomalies come through the action index; the inventory, approvals and
 * proofs are small.  Nothing is loaded into memory but the groups and
 * days counted (docs/audit.md, "Reports for auditors", Cost).
 *
 * Redaction happens while the document is built (pseudonym.h), so no
 * renderer ever holds a hidden name.
 */
#include "report.h"
#include "auditlog.h"
#include "auditproof.h"
#include "authz.h"
#include "ctx.h"
#include "db.h"
#include "keystate.h"
#include "lineage.h"
#include "policy.h"
#include "pseudonym.h"
#include "request.h"
#include "schedule.h"

#include <inttypes.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rep {
	km_ctx *ctx;
	km_pseudonyms *ps;
	char from[32], to[32];     /* audit time strings, [from, to) */
	json_t *doc;
	json_t *cited;             /* control id -> array of seqs */
	km_status st;
	km_err *e;
	const km_report_opts *o;
	int cancelled;             /* the progress callback asked to stop */
} rep;

static const char *const phase_names[KM_REPORT_PHASES] = {"aggregates", "verification", "proofs", "rendering"};

const char *km_report_phase_name(km_report_phase p)
{
	return (unsigned)p < KM_REPORT_PHASES ? phase_names[p] : "?";
}

/* Progress to the caller; KM_EBUSY once it asks to stop. */
static km_status tell(rep *r, km_report_phase ph, uint64_t done, uint64_t total)
{
	if (r->o->progress && !r->cancelled && r->o->progress(r->o->pctx, ph, done, total))
		r->cancelled = 1;
	return r->cancelled ? km_fail(r->e, KM_EBUSY, "report cancelled") : KM_OK;
}

/* ---------------------------------------------------------------- helpers */

static json_t *time_json(int64_t t)
{
	if (t <= 0 || t == INT64_MAX)
		return json_null();
	char b[32];
	km_time_format(t, b);
	return json_string(b);
}

/* Audit time text of Unix ms: "2026-11-23T12:45:13.123Z" (the form the
 * log's time column holds, so text order is time order). */
static void audit_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms < 0 || !gmtime_r(&t, &tm)) {
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
		return;
	}
	char b[80];
	snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	snprintf(out, 32, "%.31s", b);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* A person's name as shown (pseudonym "person-..." when redacting). */
static json_t *person(rep *r, const char *name)
{
	char b[128];
	const char *s = km_pseudonym(r->ps, "person", name, b, sizeof b);
	if (!r->st)
		r->st = km_pseudonyms_status(r->ps, r->e);
	return json_string(s);
}

/* An event object as shown: "user:NAME" hides the name, the rest stays. */
static json_t *object_shown(rep *r, const char *obj)
{
	if (obj && strncmp(obj, "user:", 5) == 0 && km_pseudonyms_redacting(r->ps)) {
		char b[128], o[160];
		const char *s = km_pseudonym(r->ps, "person", obj + 5, b, sizeof b);
		if (!r->st)
			r->st = km_pseudonyms_status(r->ps, r->e);
		snprintf(o, sizeof o, "user:%s", s);
		return json_string(o);
	}
	return json_string(obj ? obj : "");
}

/* Free text (reasons) may name anyone: none when redacting. */
static json_t *free_text(rep *r, const char *s)
{
	if (km_pseudonyms_redacting(r->ps))
		return json_string("[redacted]");
	return json_string(s ? s : "");
}

/* "key:NAME@V" or "key:NAME" -> NAME, version (0: none). */
static int key_of(const char *obj, char *name, size_t cap, uint32_t *version)
{
	*version = 0;
	if (!obj || strncmp(obj, "key:", 4) != 0)
		return 0;
	const char *k = obj + 4, *at = strrchr(k, '@');
	size_t n = at ? (size_t)(at - k) : strlen(k);
	if (n == 0 || n >= cap)
		return 0;
	memcpy(name, k, n);
	name[n] = '\0';
	if (at)
		*version = (uint32_t)strtoul(at + 1, NULL, 10);
	return 1;
}

static void cite(rep *r, const char *control, int64_t seq)
{
	json_t *a = json_object_get(r->cited, control);
	if (!a) {
		a = json_array();
		json_object_set_new(r->cited, control, a);
	}
	if (json_array_size(a) < KM_REPORT_CITED_MAX)
		json_array_append_new(a, json_integer(seq));
}

static json_t *section(rep *r, const char *name)
{
	json_t *a = json_array();
	json_object_set_new(r->doc, name, a);
	return a;
}

static km_status bind_period(rep *r, sqlite3_stmt *q)
{
	sqlite3_bind_text(q, 1, r->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, r->to, -1, SQLITE_STATIC);
	return KM_OK;
}

/* ------------------------------------------------------------- inventory */

static int schedule_row(void *c, const km_schedule_entry *s)
{
	json_t *bykey = c;
	json_object_set_new(bykey, s->key,
	                    json_pack("{s:I,s:o,s:o,s:b,s:b,s:s}", "cryptoperiod_days", (json_int_t)s->cadence_days,
	                              "last_rotation", time_json(s->last_rotation), "due", time_json(s->due),
	                              "due_now", (s->attention & KM_ATTN_DUE) != 0, "overdue",
	                              (s->attention & KM_ATTN_OVERDUE) != 0, "policy_source", s->policy_source));
	return 0;
}

static km_status inventory(rep *r)
{
	km_err *e = r->e;
	json_t *sched = json_object();
	km_status st = km_schedule_list(r->ctx, 1, 0, schedule_row, sched, e);
	if (st) {
		json_decref(sched);
		return st;
	}
	sqlite3 *db = km_db(r->ctx);
	sqlite3_stmt *q;
	if ((st = km_db_prepare(db, "SELECT k.name, k.cur_version, k.cur_state, k.created, "
	                        "(SELECT value FROM key_tags t WHERE t.key_id = k.id AND t.tag = 'owner') "
	                        "FROM keys k ORDER BY k.name", &q, e))) {
		json_decref(sched);
		return st;
	}
	json_t *keys = section(r, "keys"), *overdue = section(r, "overdue");
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		const char *owner = (const char *)sqlite3_column_text(q, 4);
		char ob[128];
		const char *owner_shown = owner ? km_pseudonym(r->ps, "owner", owner, ob, sizeof ob) : NULL;
		json_t *s = json_object_get(sched, name);
		json_t *k = json_pack("{s:s,s:o,s:I,s:s,s:o}", "key", name, "owner",
		                      owner_shown ? json_string(owner_shown) : json_null(), "version",
		                      (json_int_t)sqlite3_column_int64(q, 1), "state",
		                      (const char *)sqlite3_column_text(q, 2), "created",
		                      time_json(sqlite3_column_int64(q, 3)));
		if (s)
			json_object_update(k, s);
		json_array_append_new(keys, k);
		if (s && json_is_true(json_object_get(s, "overdue")))
			json_array_append_new(overdue, json_pack("{s:s,s:I,s:O,s:O,s:O}", "key", name, "version",
			                                         (json_int_t)sqlite3_column_int64(q, 1),
			                                         "cryptoperiod_days", json_object_get(s, "cryptoperiod_days"),
			                                         "last_rotation", json_object_get(s, "last_rotation"),
			                                         "due", json_object_get(s, "due")));
	}
	sqlite3_finalize(q);
	json_decref(sched);
	if (rc != SQLITE_DONE)
		return km_db_fail(db, e, "report (inventory)");
	if (r->st)
		return r->st;
	if ((st = km_db_prepare(db, "SELECT k.name, v.version, v.state, v.created, v.activated, v.deactivated, "
	                        "v.destroyed, v.assets FROM key_versions v JOIN keys k ON k.id = v.key_id "
	                        "ORDER BY k.name, v.version", &q, e)))
		return st;
	json_t *versions = section(r, "versions");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		json_array_append_new(versions,
		                      json_pack("{s:s,s:I,s:s,s:o,s:o,s:o,s:o,s:I}", "key",
		                                (const char *)sqlite3_column_text(q, 0), "version",
		                                (json_int_t)sqlite3_column_int64(q, 1), "state",
		                                (const char *)sqlite3_column_text(q, 2), "created",
		                                time_json(sqlite3_column_int64(q, 3)), "activated",
		                                time_json(sqlite3_column_int64(q, 4)), "deactivated",
		                                time_json(sqlite3_column_int64(q, 5)), "destroyed",
		                                time_json(sqlite3_column_int64(q, 6)), "assets",
		                                (json_int_t)sqlite3_column_int64(q, 7)));
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return km_db_fail(db, e, "report (key versions)");
	return KM_OK;
}

/* -------------------------------------------------- life-cycle events */

/* Activation of version v of key (Unix s, 0 unknown). */
static int64_t activated_at(sqlite3 *db, const char *key, int64_t v)
{
	sqlite3_stmt *q;
	km_err ig;
	int64_t t = 0;
	if (km_db_prepare(db, "SELECT v.activated FROM key_versions v JOIN keys k ON k.id = v.key_id "
	                  "WHERE k.name = ? AND v.version = ?", &q, &ig))
		return 0;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, v);
	if (sqlite3_step(q) == SQLITE_ROW)
		t = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return t;
}

static int64_t parse_event_time(const char *t)
{
	struct tm tm = {0};
	if (!t || !strptime(t, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static km_status lifecycle(rep *r)
{
	sqlite3 *db = km_db(r->ctx);
	km_err *e = r->e;
	sqlite3_stmt *q;
	/* The action index, then the period: these actions are few. */
	km_status st = km_db_prepare(
	    db, "SELECT seq, time, actor, action, object, outcome, json_extract(json, '$.details') FROM audit_events "
	        "WHERE action IN ('key.create', 'request.execute', 'key.compromise', 'key.destroy', 'key.state', "
	        "'user.add', 'user.role', 'request.approve', 'request.reject') "
	        "AND +time >= ?1 AND +time < ?2 ORDER BY seq LIMIT ?3", &q, e);
	if (st)
		return st;
	bind_period(r, q);
	sqlite3_bind_int(q, 3, KM_REPORT_ROWS_MAX * 4);
	json_t *rot = section(r, "rotations"), *comp = section(r, "compromises"), *destr = section(r, "destructions");
	json_t *created = json_array();
	int rc;
	uint64_t rotations = 0, late = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(q, 0);
		const char *time = (const char *)sqlite3_column_text(q, 1);
		const char *actor = (const char *)sqlite3_column_text(q, 2);
		const char *action = (const char *)sqlite3_column_text(q, 3);
		const char *object = (const char *)sqlite3_column_text(q, 4);
		const char *outcome = (const char *)sqlite3_column_text(q, 5);
		json_t *d = json_loads((const char *)sqlite3_column_text(q, 6) ? (const char *)sqlite3_column_text(q, 6)
		                                                                   : "{}", 0, NULL);
		if (!d)
			d = json_object();
		const char *kind = json_string_value(json_object_get(d, "kind"));
		const char *to = json_string_value(json_object_get(d, "to"));
		int ok = outcome && strcmp(outcome, "ok") == 0;
		char key[160];
		uint32_t ver;
		int is_key = key_of(object, key, sizeof key, &ver);
		if (!ok) {
			/* Refused or failed key-management operations: access control at work. */
			if (strncmp(action, "key.", 4) == 0 || strcmp(action, "request.execute") == 0)
				cite(r, "pci-3.6.1", seq);
		} else if (strcmp(action, "key.create") == 0) {
			cite(r, "pci-3.7.1", seq);
			cite(r, "pci-3.7.3", seq);
			cite(r, "nist-states", seq);
			json_array_append_new(created, json_integer(seq));
		} else if (strcmp(action, "request.execute") == 0 && kind && strcmp(kind, "rotate") == 0 && is_key) {
			int64_t prev = json_integer_value(json_object_get(d, "previous_version"));
			int64_t now_v = json_integer_value(json_object_get(d, "new_version"));
			int64_t t = parse_event_time(time);
			int64_t act = activated_at(db, key, prev);
			km_policy_effective pol;
			km_err ig;
			int64_t cadence_days = km_policy_effective_get(r->ctx, key, &pol, &ig) == KM_OK
			                           ? pol.v[KM_PF_CADENCE] : 0;
			int64_t age_days = act && t >= act ? (t - act) / 86400 : -1;
			int within = age_days >= 0 && cadence_days > 0 && age_days <= cadence_days;
			rotations++;
			late += !within;
			json_t *approvers = json_array();
			json_t *ap;
			size_t i;
			json_array_foreach(json_object_get(d, "approvers"), i, ap)
				json_array_append_new(approvers, person(r, json_string_value(ap)));
			json_array_append_new(rot, json_pack("{s:I,s:s,s:s,s:I,s:I,s:o,s:I,s:I,s:b,s:O?,s:o,s:o}", "seq",
			                                     (json_int_t)seq, "time", time, "key", key,
			                                     "from_version", (json_int_t)prev, "to_version",
			                                     (json_int_t)now_v, "previous_activated", time_json(act),
			                                     "age_days", (json_int_t)age_days, "cryptoperiod_days",
			                                     (json_int_t)cadence_days, "within_policy", within,
			                                     "request", json_object_get(d, "request"), "by",
			                                     person(r, actor), "approvers", approvers));
			cite(r, "pci-3.7.4", seq);
			cite(r, "nist-cryptoperiod", seq);
			cite(r, "pci-3.7.7", seq);
		} else if (strcmp(action, "key.compromise") == 0 ||
		           (to && strcmp(to, "compromised") == 0)) {
			json_array_append_new(comp, json_pack("{s:I,s:s,s:s,s:I,s:o,s:o}", "seq", (json_int_t)seq, "time",
			                                      time, "key", is_key ? key : "", "version",
			                                      (json_int_t)(ver ? ver : json_integer_value(json_object_get(d, "version"))),
			                                      "by", person(r, actor), "reason",
			                                      free_text(r, json_string_value(json_object_get(d, "reason")))));
			cite(r, "pci-3.7.5", seq);
			cite(r, "nist-states", seq);
		} else if (strcmp(action, "key.destroy") == 0 ||
		           (to && (strcmp(to, "destroyed") == 0 || strcmp(to, "destroy-scheduled") == 0))) {
			json_array_append_new(destr, json_pack("{s:I,s:s,s:s,s:I,s:s,s:o}", "seq", (json_int_t)seq, "time",
			                                       time, "key", is_key ? key : "", "version", (json_int_t)ver,
			                                       "to", to ? to : "destroyed", "by", person(r, actor)));
			cite(r, "pci-3.7.5", seq);
			cite(r, "nist-states", seq);
		} else if (strcmp(action, "key.state") == 0 || (strcmp(action, "request.execute") == 0 && kind &&
		                                               strcmp(kind, "state") == 0)) {
			cite(r, "pci-3.7.5", seq);
			cite(r, "nist-states", seq);
		} else if (strcmp(action, "request.approve") == 0) {
			cite(r, "pci-3.7.6", seq);
			cite(r, "pci-3.7.7", seq);
		} else if (strcmp(action, "user.add") == 0 || strcmp(action, "user.role") == 0) {
			cite(r, "pci-3.7.8", seq);
			cite(r, "pci-3.6.1", seq);
		}
		json_decref(d);
	}
	sqlite3_finalize(q);
	json_decref(created);
	if (rc != SQLITE_DONE)
		return km_db_fail(db, e, "report (life-cycle events)");
	json_object_set_new(json_object_get(r->doc, "summary"), "rotations", json_integer((json_int_t)rotations));
	json_object_set_new(json_object_get(r->doc, "summary"), "rotations_outside_policy",
	                    json_integer((json_int_t)late));
	return r->st;
}

/* ------------------------------------------------------------- approvals */

typedef struct req_list {
	json_t *ids;
	int64_t from_s, to_s;
} req_list;

static int request_row(void *c, const km_request_info *ri)
{
	req_list *l = c;
	if (ri->created >= l->from_s && ri->created < l->to_s)
		json_array_append_new(l->ids, json_string(ri->id));
	return 0;
}

typedef struct sig_list {
	rep *r;
	json_t *signers;
} sig_list;

static int approval_row(void *c, const km_approval_info *a)
{
	sig_list *s = c;
	json_array_append_new(s->signers, json_pack("{s:o,s:o,s:s,s:b,s:s}", "signer", person(s->r, a->approver),
	                                            "time", time_json(a->time), "decision",
	                                            a->approve ? "approve" : "reject", "signature_valid",
	                                            a->valid, "problem", a->problem));
	return 0;
}

static km_status approvals(rep *r, int64_t from_ms, int64_t to_ms)
{
	km_err *e = r->e;
	req_list l = {.ids = json_array(), .from_s = from_ms / 1000, .to_s = (to_ms + 999) / 1000};
	km_request_query qq = {0};
	km_status st = km_request_list(r->ctx, &qq, request_row, &l, e);
	json_t *out = section(r, "approvals");
	size_t i;
	json_t *idj;
	uint64_t verified = 0, failed = 0;
	json_array_foreach(l.ids, i, idj) {
		if (st || i >= KM_REPORT_ROWS_MAX)
			break;
		const char *id = json_string_value(idj);
		km_request_info ri;
		if ((st = km_request_get(r->ctx, id, &ri, e)))
			break;
		sig_list s = {.r = r, .signers = json_array()};
		if ((st = km_request_approvals(r->ctx, id, approval_row, &s, e))) {
			json_decref(s.signers);
			break;
		}
		char vr[512] = "";
		km_err ve;
		km_status vst = km_request_verify(r->ctx, id, vr, sizeof vr, &ve);
		if (vst == KM_OK)
			verified++;
		else
			failed++;
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:s,s:o,s:b,s:s}", "request", id,
		                                     "kind", km_request_kind_name(ri.kind), "state",
		                                     km_request_state_name(ri.state), "object",
		                                     object_shown(r, ri.object), "requester",
		                                     person(r, ri.requester), "created", time_json(ri.created),
		                                     "quorum", (json_int_t)ri.quorum, "approvals",
		                                     (json_int_t)ri.approvals, "digest", ri.digest, "signers",
		                                     s.signers, "verified", vst == KM_OK, "verification",
		                                     vst == KM_OK ? "digest and every signature verify"
		                                                  : ve.msg));
	}
	json_decref(l.ids);
	json_t *sum = json_object_get(r->doc, "summary");
	json_object_set_new(sum, "requests", json_integer((json_int_t)(verified + failed)));
	json_object_set_new(sum, "requests_failing_verification", json_integer((json_int_t)failed));
	return st ? st : r->st;
}

/* ------------------------------------------------- key use, per day */

/* Key use and events per day are counted from the entries the verification
 * proves, in its one pass over the log (km_audit_verify_visit): the log is
 * read once, not once to verify and again (through the JSON of every row,
 * which the generated columns re-parse) to count, and the counts come from
 * the very bytes that were proven. */

/* A top-level string member of an event: where its text is in the entry. */
typedef struct span {
	const char *p;
	size_t n;
	int present, escaped;
} span;

enum { EF_ACTION, EF_ACTOR, EF_OBJECT, EF_OUTCOME, EF_TIME, EF_COUNT };
/* Longest member kept whole (the writer caps objects at 200 bytes, names
 * and actions are shorter; a longer one is cut here, grouped by its head). */
#define KM_REPORT_FIELD_MAX 512
static const char *const ef_names[EF_COUNT] = {"action", "actor", "object", "outcome", "time"};
static const size_t ef_lens[EF_COUNT] = {6, 5, 6, 7, 4};

/* p at a '"': past the closing one (NULL if none); *escaped if a backslash. */
static const char *skip_string(const char *p, const char *end, int *escaped)
{
	for (p++; p < end;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			return NULL;
		if (memchr(p, '\\', (size_t)(q - p))) {
			/* escapes: step through them to find the real end */
			*escaped = 1;
			for (; p < end; p++) {
				if (*p == '\\')
					p++;
				else if (*p == '"')
					return p + 1;
			}
			return NULL;
		}
		return q + 1;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end)
{
	int ig = 0, depth = 0;
	while (p && p < end) {
		if (*p == '"') {
			p = skip_string(p, end, &ig);
			if (depth == 0)
				return p;
			continue;
		}
		if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 && *p == ',') {
			return p;
		}
		p++;
	}
	return NULL;
}

/* The members of the event's top-level object (the canonical form: compact,
 * so no whitespace); 0 if it is not that shape. */
static int event_fields(const char *t, size_t n, span f[EF_COUNT])
{
	const char *p = t, *end = t + n;
	memset(f, 0, sizeof(span) * EF_COUNT);
	if (n < 2 || *p != '{')
		return 0;
	p++;
	while (p < end && *p != '}') {
		int kesc = 0;
		if (*p != '"')
			return 0;
		const char *k = p + 1, *ke = skip_string(p, end, &kesc);
		if (!ke || ke >= end || *ke != ':')
			return 0;
		size_t kn = (size_t)(ke - 1 - k);
		int which = -1;
		for (int i = 0; i < EF_COUNT && !kesc; i++)
			if (ef_lens[i] == kn && memcmp(ef_names[i], k, kn) == 0)
				which = i;
		p = ke + 1;
		if (which >= 0 && p < end && *p == '"') {
			int esc = 0;
			const char *ve = skip_string(p, end, &esc);
			if (!ve)
				return 0;
			f[which] = (span){p + 1, (size_t)(ve - 1 - (p + 1)), 1, esc};
			p = ve;
		} else if (!(p = skip_value(p, end))) {
			return 0;
		}
		if (p < end && *p == ',')
			p++;
	}
	return p < end;
}

typedef struct use_group {
	char *f[4]; /* actor, object, action, outcome; NULL: absent (as SQL NULL) */
	int64_t count, min_seq;
} use_group;

typedef struct use_acc {
	char from[32], to[32];
	json_t *index;      /* group key -> position in g */
	use_group *g;
	size_t n, cap;
	json_t *days;       /* "YYYY-MM-DD" -> count */
	uint64_t visited;   /* entries seen (all proven) */
	int oom;
	/* the log is in time order and runs of one kind are long: the last
	 * day's counter and the last group, checked before any lookup */
	char last_day[16];
	json_t *last_day_count;
	size_t last_group;  /* + 1; 0: none */
} use_acc;

/* A member's text as a C string: copied, or decoded when it has escapes. */
static char *span_str(const span *s, char *buf, size_t cap)
{
	if (!s->present)
		return NULL;
	if (!s->escaped && s->n < cap) {
		memcpy(buf, s->p, s->n);
		buf[s->n] = '\0';
		return buf;
	}
	json_t *j = json_loadb(s->p - 1, s->n + 2, JSON_DECODE_ANY, NULL);
	const char *v = json_string_value(j);
	if (v)
		snprintf(buf, cap, "%s", v);
	json_decref(j);
	return v ? buf : NULL;
}

static void count_day(use_acc *u, const char *time)
{
	char day[16];
	size_t n = strnlen(time, 10);
	memcpy(day, time, n);
	day[n] = '\0';
	json_t *c = u->last_day_count && strcmp(day, u->last_day) == 0 ? u->last_day_count
	                                                                : json_object_get(u->days, day);
	if (!c) {
		if (json_object_set_new(u->days, day, json_integer(0)) || !(c = json_object_get(u->days, day))) {
			u->oom = 1;
			return;
		}
	}
	json_integer_set(c, json_integer_value(c) + 1);
	memcpy(u->last_day, day, n + 1);
	u->last_day_count = c;
}

static int field_cmp(const char *a, const char *b);

static int same_group(const use_group *g, char *const v[4])
{
	for (int i = 0; i < 4; i++)
		if (field_cmp(g->f[i], v[i]) != 0)
			return 0;
	return 1;
}

static void count_use(use_acc *u, char *const v[4], uint64_t seq)
{
	if (u->last_group && same_group(&u->g[u->last_group - 1], v)) {
		u->g[u->last_group - 1].count++;
		return;
	}
	/* the key: each field length-prefixed, "-" for absent */
	char key[4 * (KM_REPORT_FIELD_MAX + 8)];
	size_t o = 0;
	for (int i = 0; i < 4; i++)
		o += (size_t)snprintf(key + o, sizeof key - o, v[i] ? "%zu:%s|" : "-|", v[i] ? strlen(v[i]) : 0,
		                      v[i] ? v[i] : "");
	json_t *at = json_object_get(u->index, key);
	if (at) {
		u->last_group = (size_t)json_integer_value(at) + 1;
		u->g[u->last_group - 1].count++;
		return;
	}
	if (u->n == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 64;
		use_group *ng = realloc(u->g, cap * sizeof *ng);
		if (!ng) {
			u->oom = 1;
			return;
		}
		u->g = ng;
		u->cap = cap;
	}
	use_group *g = &u->g[u->n];
	memset(g, 0, sizeof *g);
	for (int i = 0; i < 4; i++)
		if (v[i] && !(g->f[i] = strdup(v[i])))
			u->oom = 1;
	g->count = 1;
	g->min_seq = (int64_t)seq;
	if (json_object_set_new(u->index, key, json_integer((json_int_t)u->n)))
		u->oom = 1;
	u->last_group = ++u->n;
}

/* The verification's visitor: the same filter as
 *   WHERE time >= from AND time < to
 *     AND (action IN ('protect', 'unprotect', 'unprotect.override') OR outcome = 'denied')
 *   GROUP BY actor, object, action, outcome
 * and per day substr(time, 1, 10), on the proven text. */
static void use_visit(void *c, uint64_t seq, const char *text, size_t len)
{
	use_acc *u = c;
	span f[EF_COUNT];
	char b[EF_COUNT][KM_REPORT_FIELD_MAX];
	char *v[EF_COUNT];
	json_t *parsed = NULL;
	u->visited++;
	if (event_fields(text, len, f)) {
		for (int i = 0; i < EF_COUNT; i++)
			v[i] = span_str(&f[i], b[i], sizeof b[i]);
	} else {
		/* not the compact canonical shape: the general parser */
		parsed = json_loadb(text, len, 0, NULL);
		for (int i = 0; i < EF_COUNT; i++) {
			const char *s = json_string_value(json_object_get(parsed, ef_names[i]));
			v[i] = s ? (snprintf(b[i], sizeof b[i], "%s", s), b[i]) : NULL;
		}
	}
	const char *t = v[EF_TIME];
	if (t && strcmp(t, u->from) >= 0 && strcmp(t, u->to) < 0) {
		count_day(u, t);
		const char *a = v[EF_ACTION], *oc = v[EF_OUTCOME];
		if ((a && (strcmp(a, "protect") == 0 || strcmp(a, "unprotect") == 0 ||
		           strcmp(a, "unprotect.override") == 0)) ||
		    (oc && strcmp(oc, "denied") == 0)) {
			char *g[4] = {v[EF_ACTOR], v[EF_OBJECT], v[EF_ACTION], v[EF_OUTCOME]};
			count_use(u, g, seq);
		}
	}
	json_decref(parsed);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int field_cmp(const char *a, const char *b)
{
	if (!a || !b)
		return a ? 1 : b ? -1 : 0; /* absent first, as SQL orders NULL */
	return strcmp(a, b);
}

static int group_cmp(const void *x, const void *y)
{
	const use_group *a = x, *b = y;
	for (int i = 0; i < 4; i++) {
		int c = field_cmp(a->f[i], b->f[i]);
		if (c)
			return c;
	}
	return 0;
}

static void use_acc_free(use_acc *u)
{
	for (size_t i = 0; i < u->n; i++)
		for (int j = 0; j < 4; j++)
			free(u->g[i].f[j]);
	free(u->g);
	json_decref(u->index);
	json_decref(u->days);
}

static km_status access(rep *r, use_acc *u)
{
	km_err *e = r->e;
	json_t *by_actor = section(r, "access_by_actor");
	json_t *keys = json_object(); /* key -> {protect, unprotect, override, denied, actors{}} */
	uint64_t denials = 0;
	if (u->n)
		qsort(u->g, u->n, sizeof *u->g, group_cmp);
	for (size_t gi = 0; gi < u->n; gi++) {
		const char *actor = u->g[gi].f[0];
		const char *object = u->g[gi].f[1];
		const char *action = u->g[gi].f[2] ? u->g[gi].f[2] : "";
		const char *outcome = u->g[gi].f[3] ? u->g[gi].f[3] : "";
		int64_t n = u->g[gi].count, first = u->g[gi].min_seq;
		char key[160];
		uint32_t ver;
		int is_key = key_of(object, key, sizeof key, &ver);
		if (json_array_size(by_actor) < KM_REPORT_ROWS_MAX)
			json_array_append_new(by_actor, json_pack("{s:o,s:s,s:o,s:s,s:s,s:I}", "actor", person(r, actor),
			                                          "action", action, "object", object_shown(r, object),
			                                          "key", is_key ? key : "", "outcome", outcome,
			                                          "count", (json_int_t)n));
		if (strcmp(outcome, "denied") == 0) {
			denials += (uint64_t)n;
			cite(r, "pci-3.6.1", first);
		} else if (strcmp(action, "unprotect.override") == 0) {
			cite(r, "nist-states", first);
		}
		if (!is_key)
			continue;
		json_t *k = json_object_get(keys, key);
		if (!k) {
			k = json_pack("{s:s,s:I,s:I,s:I,s:I,s:{}}", "key", key, "protect", (json_int_t)0, "unprotect",
			              (json_int_t)0, "override", (json_int_t)0, "denied", (json_int_t)0, "actors");
			json_object_set_new(keys, key, k);
		}
		const char *col = strcmp(outcome, "denied") == 0 ? "denied"
		                  : strcmp(action, "protect") == 0 ? "protect"
		                  : strcmp(action, "unprotect") == 0 ? "unprotect"
		                  : strcmp(action, "unprotect.override") == 0 ? "override" : NULL;
		if (col)
			json_object_set_new(k, col, json_integer(json_integer_value(json_object_get(k, col)) + n));
		json_object_set_new(json_object_get(k, "actors"), actor ? actor : "", json_true());
	}
	json_t *by_key = section(r, "access_by_key");
	const char *name;
	json_t *k;
	json_object_foreach(keys, name, k) {
		json_t *actors = json_object_get(k, "actors");
		json_object_set_new(k, "actors", json_integer((json_int_t)json_object_size(actors)));
		json_array_append(by_key, k);
	}
	json_decref(keys);
	json_object_set_new(json_object_get(r->doc, "summary"), "denials", json_integer((json_int_t)denials));
	/* Events per day, in day order. */
	size_t nd = json_object_size(u->days), i = 0;
	const char **days = calloc(nd ? nd : 1, sizeof *days);
	if (!days)
		return km_fail(e, KM_ENOMEM, "out of memory for the report");
	json_t *c;
	json_object_foreach(u->days, name, c)
		days[i++] = name;
	qsort(days, nd, sizeof *days, str_cmp);
	json_t *per_day = section(r, "events_per_day");
	uint64_t total = 0;
	for (i = 0; i < nd; i++) {
		json_int_t ev = json_integer_value(json_object_get(u->days, days[i]));
		total += (uint64_t)ev;
		json_array_append_new(per_day, json_pack("{s:s,s:I}", "day", days[i], "events", ev));
	}
	free(days);
	json_object_set_new(json_object_get(r->doc, "summary"), "events", json_integer((json_int_t)total));
	return r->st;
}

/* ------------------------------------------------- anomalies, per day */

static km_status anomalies(rep *r)
{
	sqlite3 *db = km_db(r->ctx);
	sqlite3_stmt *q;
	/* wt-anom's detector appends action "anomaly" (KM_ANOMALY_ACTION);
	 * any action under that name ("anomaly.*") counts as well, so rules
	 * added later appear without a change here.  The action index's range
	 * (not the time index: the period may hold every event) finds them. */
	km_status st = km_db_prepare(
	    db, "SELECT seq, time, action, json_extract(json, '$.details.rule'), "
	        "json_extract(json, '$.details.subject'), json_extract(json, '$.details.evidence') "
	        "FROM audit_events WHERE action >= 'anomaly' AND action < 'anomaly/' "
	        "AND (action = 'anomaly' OR action LIKE 'anomaly.%') "
	        "AND +time >= ?1 AND +time < ?2 ORDER BY seq", &q, r->e);
	if (st)
		return st;
	bind_period(r, q);
	json_t *out = section(r, "anomalies");
	int rc;
	uint64_t n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		n++;
		if (json_array_size(out) >= KM_REPORT_ROWS_MAX)
			continue;
		const char *subject = (const char *)sqlite3_column_text(q, 4);
		const char *evid = (const char *)sqlite3_column_text(q, 5);
		json_t *ev = evid ? json_loads(evid, 0, NULL) : NULL;
		/* A subject naming a person is shown like any person. */
		json_t *subj;
		if (subject && strncmp(subject, "actor:", 6) == 0 && km_pseudonyms_redacting(r->ps)) {
			json_t *p = person(r, subject + 6);
			char b[160];
			snprintf(b, sizeof b, "actor:%s", json_string_value(p));
			json_decref(p);
			subj = json_string(b);
		} else if (subject && strchr(subject, ':') == NULL && km_pseudonyms_redacting(r->ps)) {
			subj = person(r, subject);
		} else {
			subj = object_shown(r, subject);
		}
		const char *rule = (const char *)sqlite3_column_text(q, 3);
		json_array_append_new(out, json_pack("{s:I,s:s,s:s,s:o,s:o}", "seq", (json_int_t)sqlite3_column_int64(q, 0),
		                                     "time", (const char *)sqlite3_column_text(q, 1), "rule",
		                                     rule ? rule : (const char *)sqlite3_column_text(q, 2), "subject",
		                                     subj, "evidence", ev ? ev : json_array()));
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return km_db_fail(db, r->e, "report (anomalies)");
	json_object_set_new(json_object_get(r->doc, "summary"), "anomalies", json_integer((json_int_t)n));
	return r->st;
}

/* ---------------------------------------------------- verification, map */

static int verify_progress(void *c, uint64_t checked, uint64_t total)
{
	return tell(c, KM_REPORT_VERIFICATION, checked, total) != KM_OK;
}

/* The verification, which also counts key use and events per day from
 * the entries it proves (use_visit), then those sections. */
static km_status verification(rep *r, km_audit_checkpoint *cp, int *have_cp)
{
	audit_verify_result vr;
	use_acc u = {.index = json_object(), .days = json_object()};
	memcpy(u.from, r->from, sizeof u.from);
	memcpy(u.to, r->to, sizeof u.to);
	if (!u.index || !u.days) {
		use_acc_free(&u);
		return km_fail(r->e, KM_ENOMEM, "out of memory for the report");
	}
	km_status st = km_audit_verify_visit(r->ctx, verify_progress, r, use_visit, &u, &vr, r->e);
	if (!st && u.oom)
		st = km_fail(r->e, KM_ENOMEM, "out of memory counting key use for the report");
	if (!st)
		st = access(r, &u);
	uint64_t visited = u.visited;
	use_acc_free(&u);
	if (st && r->cancelled)
		return km_fail(r->e, KM_EBUSY, "report cancelled");
	if (st)
		return st;
	char rh[2 * AUDIT_HASH_BYTES + 1];
	hex(vr.head_root, sizeof vr.head_root, rh);
	json_t *v = json_pack("{s:b,s:I,s:I,s:I,s:I,s:b,s:I,s:s,s:o}", "intact", vr.intact, "entries_total",
	                      (json_int_t)vr.entries_total, "entries_checked", (json_int_t)vr.entries_checked,
	                      "heads_checked", (json_int_t)vr.heads_checked, "first_bad_seq",
	                      (json_int_t)vr.first_bad_seq, "anchor_checked", vr.anchor_checked, "head_size",
	                      (json_int_t)vr.head_size, "problem", vr.problem, "head_root_hash",
	                      vr.head_size ? json_string(rh) : json_null());
	km_err ce;
	*have_cp = km_audit_checkpoint_get(r->ctx, cp, &ce) == KM_OK;
	if (*have_cp) {
		hex(cp->root, sizeof cp->root, rh);
		json_object_set_new(v, "checkpoint", json_pack("{s:I,s:s,s:o,s:s}", "size", (json_int_t)cp->size,
		                                               "root_hash", rh, "time", time_json(cp->time), "note",
		                                               cp->note));
	} else {
		json_object_set_new(v, "checkpoint", json_null());
	}
	/* What the counts rest on, in words the reader can check. */
	json_object_set_new(v, "counted_entries", json_integer((json_int_t)visited));
	/* A damaged copy of the filter columns leaves every text proven, and
	 * counted: the sentence must say which of the two happened. */
	const char *counts_from =
		vr.intact ? "key use and events per day were counted from the entries this verification proved, "
		            "in the same pass over the log"
		: visited >= vr.first_bad_seq
		          ? "key use and events per day were counted from every entry's text, which this "
		            "verification proved; the damage is in the stored filter columns, which the counts do not read"
		          : "key use and events per day were counted from the entries proven before the first bad "
		            "one; later entries are not counted";
	json_object_set_new(v, "counts_from", json_string(counts_from));
	json_object_set_new(r->doc, "verification", v);
	return KM_OK;
}

/* The controls.  Facts paraphrased from PCI DSS v4.0 requirement 3.6-3.7
 * and NIST SP 800-57 Part 1 (cryptoperiods, section 5.3; key states and
 * transitions, section 7); "evidence" names what keyward records for it;
 * events_can_evidence 0: procedural, outside what the log can show. */
static const struct control {
	const char *id, *framework, *ref, *requires, *evidence;
	int events_can_evidence;
} controls[] = {
    {"pci-3.6.1", "PCI DSS v4.0", "3.6.1",
     "procedures protect keys for stored account data from disclosure and misuse: few custodians, "
     "key-encrypting keys at least as strong as the keys they protect and kept apart from them, keys "
     "held securely in as few places and forms as possible",
     "refused key operations and role changes (access limited to authorised roles); every KEK is "
     "wrapped by the HSM-held master key", 1},
    {"pci-3.7.1", "PCI DSS v4.0", "3.7.1", "key-management procedures cover generating strong keys",
     "key.create events (keys generated by the HSM-backed core)", 1},
    {"pci-3.7.2", "PCI DSS v4.0", "3.7.2", "key-management procedures cover distributing keys securely",
     "by design: keyward has no operation that exports a KEK; DEKs leave only wrapped", 0},
    {"pci-3.7.3", "PCI DSS v4.0", "3.7.3", "key-management procedures cover storing keys securely",
     "key.create events (sealed, HSM-wrapped versions) and the verification of the log", 1},
    {"pci-3.7.4", "PCI DSS v4.0", "3.7.4",
     "keys are changed when their cryptoperiod ends, the period being set from industry guidance "
     "such as NIST SP 800-57",
     "rotations executed (request.execute, kind rotate) against each key's cadence; overdue keys", 1},
    {"pci-3.7.5", "PCI DSS v4.0", "3.7.5",
     "keys are retired, replaced or destroyed at the end of their cryptoperiod, when their integrity is "
     "weakened, or when compromise is known or suspected; retired keys are not used to encrypt",
     "compromise, state-change and destruction events", 1},
    {"pci-3.7.6", "PCI DSS v4.0", "3.7.6",
     "manual cleartext key operations, where any exist, use split knowledge and dual control",
     "request.approve events: signed approvals by other people before a key operation executes "
     "(dual control); no cleartext key operation exists", 1},
    {"pci-3.7.7", "PCI DSS v4.0", "3.7.7", "procedures prevent unauthorised substitution of keys",
     "rotations only through approved, signed requests; approvals with verified signatures", 1},
    {"pci-3.7.8", "PCI DSS v4.0", "3.7.8",
     "key custodians formally acknowledge, in writing or electronically, their responsibilities",
     "user.add and user.role events show who was made a custodian; the acknowledgement itself is kept "
     "outside keyward", 1},
    {"pci-3.7.9", "PCI DSS v4.0", "3.7.9",
     "service providers sharing keys with customers give them documented guidance on transmitting, "
     "storing and updating those keys",
     "not evidenced by events: keyward shares no keys with customers", 0},
    {"nist-cryptoperiod", "NIST SP 800-57 Part 1", "5.3",
     "each key has a cryptoperiod set from its use and risk, after which it is no longer used to "
     "apply protection",
     "rotations against the effective policy's cadence; overdue keys", 1},
    {"nist-states", "NIST SP 800-57 Part 1", "7",
     "keys move through defined states (pre-activation, active, deactivated, compromised, destroyed) "
     "by allowed transitions only; deactivated keys only process already-protected data",
     "key.create, state changes, compromises, destructions and audited overrides on compromised "
     "versions", 1},
};

static km_status control_map(rep *r, const km_audit_checkpoint *cp, int have_cp)
{
	json_t *out = section(r, "controls");
	json_t *proofs = json_object();
	json_object_set_new(r->doc, "proofs", proofs);
	km_status st = KM_OK;
	const size_t nc = sizeof controls / sizeof controls[0];
	for (size_t i = 0; i < nc && !st; i++) {
		if ((st = tell(r, KM_REPORT_PROOFS, i, nc)))
			break;
		const struct control *c = &controls[i];
		json_t *seqs = json_object_get(r->cited, c->id);
		size_t n = json_array_size(seqs);
		const char *status = !c->events_can_evidence ? "not evidenced by events"
		                     : n ? "evidenced" : "no evidence in the period";
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "control", c->id, "framework",
		                                     c->framework, "requirement", c->ref, "requires", c->requires,
		                                     "evidence", c->evidence, "status", status, "events",
		                                     seqs ? json_incref(seqs) : json_array()));
		size_t j;
		json_t *sj;
		json_array_foreach(seqs, j, sj) {
			int64_t seq = json_integer_value(sj);
			char k[24];
			snprintf(k, sizeof k, "%" PRId64, seq);
			if (json_object_get(proofs, k))
				continue;
			if (!have_cp || (uint64_t)seq > cp->size) {
				json_object_set_new(proofs, k, json_pack("{s:s}", "status",
				                                         "after the newest checkpoint; prove it once a "
				                                         "newer one is signed"));
				continue;
			}
			km_audit_proof *p = malloc(sizeof *p);
			if (!p)
				return km_fail(r->e, KM_ENOMEM, "out of memory for an inclusion proof");
			if ((st = km_audit_prove_inclusion(r->ctx, (uint64_t)seq, cp->size, p, r->e))) {
				free(p);
				break;
			}
			char h[2 * AUDIT_HASH_BYTES + 1];
			hex(p->leaf_hash, sizeof p->leaf_hash, h);
			json_t *path = json_array();
			for (size_t x = 0; x < p->len; x++) {
				char ph[2 * AUDIT_HASH_BYTES + 1];
				hex(p->path[x], AUDIT_HASH_BYTES, ph);
				json_array_append_new(path, json_string(ph));
			}
			json_object_set_new(proofs, k, json_pack("{s:s,s:I,s:I,s:s,s:o}", "status", "proven", "leaf_index",
			                                         (json_int_t)(seq - 1), "tree_size", (json_int_t)p->cp.size,
			                                         "leaf_hash", h, "path", path));
			free(p);
		}
	}
	if (!st)
		st = tell(r, KM_REPORT_PROOFS, nc, nc);
	return st;
}

/* ------------------------------------------------------------------ entry */

km_status km_report_time_parse(const char *opt, const char *s, int is_end, int64_t *ms, km_err *e)
{
	km_err ig;
	if (!s || km_lineage_time_parse(s, 1, ms, &ig) != KM_OK)
		return km_fail(e, KM_EUSAGE, "--%s \"%.40s\" is not a date (2026-11-30) or an RFC 3339 time "
		               "(2026-11-30T12:00:00Z)", opt, s ? s : "");
	if (is_end && strlen(s) == 10)
		*ms += 86400000; /* a bare end date includes its day */
	return KM_OK;
}

static km_status report_impl(km_ctx *ctx, const km_report_opts *o, json_t **out, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_REPORT_READ, "audit", e);
	if (st)
		return st;
	const km_actor *who = km_actor_get(ctx);
	unsigned view = who->roles;
	if (o->role) {
		unsigned want;
		km_err ig;
		if (km_roles_parse(o->role, &want, &ig) != KM_OK || want == 0)
			return km_fail(e, KM_EUSAGE, "--role \"%.40s\" is not a role (admin, officer, approver, auditor, "
			               "service)", o->role);
		/* Rendered for another role: never more than the caller sees. */
		view = km_role_need_to_know(who->roles) ? want : who->roles;
	}
	int64_t now_ms = km_ctx_now(ctx) * 1000;
	int64_t from = o->from_ms > 0 ? o->from_ms : 0, to = o->to_ms > 0 ? o->to_ms : now_ms + 1000;
	if (from >= to)
		return km_fail(e, KM_EUSAGE, "--from must be before --to (the period is empty)");
	int redact = !km_role_need_to_know(view);
	rep r = {.ctx = ctx, .ps = km_pseudonyms_new(ctx, redact), .doc = json_object(), .cited = json_object(),
	         .e = e, .o = o};
	if (!r.ps || !r.doc || !r.cited) {
		km_pseudonyms_free(r.ps);
		json_decref(r.doc);
		json_decref(r.cited);
		return km_fail(e, KM_ENOMEM, "out of memory for the report");
	}
	audit_time(from, r.from);
	audit_time(to, r.to);
	char now[32], roles[128];
	km_time_format(km_ctx_now(ctx), now);
	km_roles_format(view, roles, sizeof roles);
	json_object_set_new(r.doc, "report", json_string("audit"));
	json_object_set_new(r.doc, "deployment", json_string(ctx->deployment_id));
	json_object_set_new(r.doc, "generated", json_string(now));
	json_object_set_new(r.doc, "generated_by", person(&r, who->name));
	json_object_set_new(r.doc, "rendered_for", json_string(roles));
	json_object_set_new(r.doc, "redacted", json_boolean(redact));
	json_object_set_new(r.doc, "period", json_pack("{s:s,s:s}", "from", r.from, "to", r.to));
	json_object_set_new(r.doc, "summary", json_object());
	km_audit_checkpoint *cp = calloc(1, sizeof *cp);
	int have_cp = 0;
	if (!cp)
		st = km_fail(e, KM_ENOMEM, "out of memory for the report");
	if (!st)
		st = tell(&r, KM_REPORT_AGGREGATES, 0, 4);
	if (!st)
		st = inventory(&r);
	if (!st && !(st = tell(&r, KM_REPORT_AGGREGATES, 1, 4)))
		st = lifecycle(&r);
	if (!st && !(st = tell(&r, KM_REPORT_AGGREGATES, 2, 4)))
		st = approvals(&r, from, to);
	if (!st && !(st = tell(&r, KM_REPORT_AGGREGATES, 3, 4)))
		st = anomalies(&r);
	if (!st)
		st = tell(&r, KM_REPORT_AGGREGATES, 4, 4);
	if (!st)
		st = verification(&r, cp, &have_cp);
	if (!st)
		st = control_map(&r, cp, have_cp);
	if (!st && r.st)
		st = r.st;
	if (!st) {
		json_t *sum = json_object_get(r.doc, "summary");
		json_object_set_new(sum, "keys", json_integer((json_int_t)json_array_size(json_object_get(r.doc, "keys"))));
		json_object_set_new(sum, "overdue",
		                    json_integer((json_int_t)json_array_size(json_object_get(r.doc, "overdue"))));
		json_object_set_new(sum, "compromises",
		                    json_integer((json_int_t)json_array_size(json_object_get(r.doc, "compromises"))));
		json_object_set_new(sum, "destructions",
		                    json_integer((json_int_t)json_array_size(json_object_get(r.doc, "destructions"))));
	}
	free(cp);
	km_pseudonyms_free(r.ps);
	json_decref(r.cited);
	if (st) {
		json_decref(r.doc);
		return st;
	}
	*out = r.doc;
	return KM_OK;
}

km_status km_report(km_ctx *ctx, const km_report_opts *o, json_t **out, km_err *e)
{
	*out = NULL;
	km_op_begin(ctx, KM_ACT_REPORT_READ, "audit");
	km_report_opts none = {0};
	km_status st = report_impl(ctx, o ? o : &none, out, e);
	/* The sections call other entry points, which end the operation:
	 * take it up again so the outcome is recorded as report.read. */
	km_op_begin(ctx, KM_ACT_REPORT_READ, "audit");
	if (st == KM_OK) {
		json_t *d = json_object_get(*out, "period");
		km_err ae;
		st = km_audit_event(ctx, "report.read", "audit", "ok",
		                    json_pack("{s:O,s:O,s:O}", "period", d, "redacted", json_object_get(*out, "redacted"),
		                              "rendered_for", json_object_get(*out, "rendered_for")),
		                    &ae);
		ctx->op_recorded = 1;
		if (st) {
			*e = ae;
			json_decref(*out);
			*out = NULL;
		}
	} else if (ctx->op_recorded == 0 && st == KM_EDENIED) {
		ctx->op_recorded = 1; /* km_authorize recorded the denial */
	}
	return km_op_end(ctx, st, e);
}
