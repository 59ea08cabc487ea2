/*
 * request_row.c — the requests and approvals tables as sealed rows.
 *
 * A decision never uses a row whose HSM MAC fails; a row copied back from
 * an older state carries a genuine MAC, which `audit verify` catches by the
 * digest each change's event recorded (km_sealed_note).
 */
#include "request_int.h"
#include "db.h"
#include "rowmac.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQ_COLS "id, kind, state, requester, object, summary, body, digest, quorum, created, " \
	"expires, decided, job_id, mac"
#define REQ_MAC_COL 13
#define APPR_COLS "request_id, approver, time, approve, reason, signature, mac"
#define APPR_MAC_COL 6

static const char *const kind_names[KM_REQ_KIND_COUNT] = {
#define RK_NAME(e, name, act, roles) [e] = name,
	KM_REQUEST_KINDS(RK_NAME)
#undef RK_NAME
};
static const km_action kind_actions[KM_REQ_KIND_COUNT] = {
#define RK_ACT(e, name, act, roles) [e] = act,
	KM_REQUEST_KINDS(RK_ACT)
#undef RK_ACT
};
static const unsigned kind_roles[KM_REQ_KIND_COUNT] = {
#define RK_ROLES(e, name, act, roles) [e] = roles,
	KM_REQUEST_KINDS(RK_ROLES)
#undef RK_ROLES
};
static const char *const state_names[KM_RS_COUNT] = {
#define RS_NAME(e, name) [e] = name,
	KM_REQUEST_STATES(RS_NAME)
#undef RS_NAME
};

const char *km_request_kind_name(km_request_kind k)
{
	return (unsigned)k < KM_REQ_KIND_COUNT ? kind_names[k] : "unknown";
}

km_action req_kind_action(km_request_kind k)
{
	return (unsigned)k < KM_REQ_KIND_COUNT ? kind_actions[k] : KM_ACT_COUNT;
}

unsigned req_kind_roles(km_request_kind k)
{
	return (unsigned)k < KM_REQ_KIND_COUNT ? kind_roles[k] : 0;
}

km_status km_request_kind_parse(const char *name, km_request_kind *out, km_err *e)
{
	for (int k = 0; k < KM_REQ_KIND_COUNT; k++)
		if (name && strcmp(name, kind_names[k]) == 0) {
			*out = (km_request_kind)k;
			return KM_OK;
		}
	return km_fail(e, KM_EINVAL, "unknown request kind '%s'; kinds are rotate, emergency-rotate, state, "
	               "destroy, cancel-destroy, policy, role-grant, role-revoke, user-add", name ? name : "");
}

const char *km_request_state_name(km_request_state s)
{
	return (unsigned)s < KM_RS_COUNT ? state_names[s] : "unknown";
}

static int state_parse(const char *name, km_request_state *out)
{
	for (int s = 0; s < KM_RS_COUNT; s++)
		if (name && strcmp(name, state_names[s]) == 0) {
			*out = (km_request_state)s;
			return 0;
		}
	return -1;
}

km_request_state req_effective_state(const req_row *r, int64_t now)
{
	if ((r->state == KM_RS_PENDING || r->state == KM_RS_APPROVED) && now >= r->expires)
		return KM_RS_EXPIRED;
	return r->state;
}

void req_digest(const char *text, char hex[65], uint8_t raw[32])
{
	uint8_t d[32];
	unsigned n = 0;
	hex[0] = '\0';
	if (EVP_Digest(text, strlen(text), d, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	if (raw)
		memcpy(raw, d, 32);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int req_hex_decode(const char *hex, uint8_t *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void req_hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
	out[2 * n] = '\0';
}

const char *req_object_key(const char *object, char *buf, size_t cap)
{
	if (!object || strncmp(object, "key:", 4) != 0)
		return NULL;
	snprintf(buf, cap, "%s", object + 4);
	char *at = strrchr(buf, '@');
	if (at)
		*at = '\0';
	return buf;
}

/* ---- requests ---------------------------------------------------------- */

static json_t *req_fields(const req_row *r)
{
	return json_pack("[s,s,s,s,s,s,s,s,I,I,I,I,s]", r->id, km_request_kind_name(r->kind),
	                 km_request_state_name(r->state), r->requester, r->object, r->summary,
	                 r->body ? r->body : "", r->digest, (json_int_t)r->quorum, (json_int_t)r->created,
	                 (json_int_t)r->expires, (json_int_t)r->decided, r->job_id);
}

static const char *col_text(sqlite3_stmt *q, int i)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	return t ? (const char *)t : "";
}

/* A row as stored; an unknown kind or state is an edited row. */
static km_status req_from_stmt(sqlite3_stmt *q, req_row *r, km_err *e)
{
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", col_text(q, 0));
	km_err ignored;
	int bad = km_request_kind_parse(col_text(q, 1), &r->kind, &ignored) != KM_OK;
	bad |= state_parse(col_text(q, 2), &r->state) != 0;
	snprintf(r->requester, sizeof r->requester, "%s", col_text(q, 3));
	snprintf(r->object, sizeof r->object, "%s", col_text(q, 4));
	snprintf(r->summary, sizeof r->summary, "%s", col_text(q, 5));
	r->body = strdup(col_text(q, 6));
	snprintf(r->digest, sizeof r->digest, "%s", col_text(q, 7));
	r->quorum = (unsigned)sqlite3_column_int64(q, 8);
	r->created = sqlite3_column_int64(q, 9);
	r->expires = sqlite3_column_int64(q, 10);
	r->decided = sqlite3_column_int64(q, 11);
	snprintf(r->job_id, sizeof r->job_id, "%s", col_text(q, 12));
	if (!r->body)
		return km_fail(e, KM_ENOMEM, "out of memory");
	if (bad)
		return km_fail(e, KM_EINTEGRITY, "the requests row '%s' has an unknown kind or state: it was "
		               "changed outside keyward, so it is not used", r->id);
	return KM_OK;
}

void req_row_clear(req_row *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
}

km_status req_row_load(km_ctx *ctx, const char *id, req_row *r, km_err *e)
{
	sqlite3_stmt *q;
	memset(r, 0, sizeof *r);
	km_status st = km_db_prepare(ctx->db, "SELECT " REQ_COLS " FROM requests WHERE id = ?", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		st = req_from_stmt(q, r, e);
		if (!st) {
			char what[KM_REQUEST_ID_MAX + 4];
			snprintf(what, sizeof what, "'%s'", r->id);
			st = km_rowmac_check(ctx, "requests", what, req_fields(r), sqlite3_column_blob(q, REQ_MAC_COL),
			                     (size_t)sqlite3_column_bytes(q, REQ_MAC_COL), e);
		}
		if (st)
			req_row_clear(r);
	} else if (rc == SQLITE_DONE) {
		st = km_fail(e, KM_ENOTFOUND, "no request '%s' (see `keyward request list --all`)", id);
	} else {
		st = km_db_fail(ctx->db, e, "reading requests");
	}
	sqlite3_finalize(q);
	return st;
}

km_status req_row_save(km_ctx *ctx, const req_row *r, int insert, json_t *details, km_err *e)
{
	uint8_t mac[KM_ROWMAC_BYTES];
	char digest[65];
	json_t *f = req_fields(r);
	km_rowmac_digest(ctx, "requests", f, digest);
	km_status st = km_rowmac(ctx, "requests", f, mac, e);
	if (st)
		return st;
	if (details)
		km_sealed_note(details, "requests", r->id, digest);
	sqlite3_stmt *q;
	st = km_db_prepare(ctx->db, insert ?
	                   "INSERT INTO requests(" REQ_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)" :
	                   "UPDATE requests SET kind = ?2, state = ?3, requester = ?4, object = ?5, summary = ?6, "
	                   "body = ?7, digest = ?8, quorum = ?9, created = ?10, expires = ?11, decided = ?12, "
	                   "job_id = ?13, mac = ?14 WHERE id = ?1", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, km_request_kind_name(r->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, km_request_state_name(r->state), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, r->requester, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, r->object, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, r->summary, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, r->body ? r->body : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 8, r->digest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 9, r->quorum);
	sqlite3_bind_int64(q, 10, r->created);
	sqlite3_bind_int64(q, 11, r->expires);
	sqlite3_bind_int64(q, 12, r->decided);
	sqlite3_bind_text(q, 13, r->job_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 14, mac, sizeof mac, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_CONSTRAINT)
		st = km_fail(e, KM_EEXISTS, "request '%s' exists already", r->id);
	else if (rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "writing the request");
	else if (!insert && sqlite3_changes(ctx->db) != 1)
		st = km_fail(e, KM_ENOTFOUND, "no request '%s'", r->id);
	sqlite3_finalize(q);
	return st;
}

/* ---- approvals --------------------------------------------------------- */

static json_t *appr_fields(const char *id, const req_approval *a)
{
	return json_pack("[s,s,I,b,s,s]", id, a->approver, (json_int_t)a->time, a->approve, a->reason,
	                 a->signature);
}

static void appr_from_stmt(sqlite3_stmt *q, req_approval *a)
{
	memset(a, 0, sizeof *a);
	snprintf(a->approver, sizeof a->approver, "%s", col_text(q, 1));
	a->time = sqlite3_column_int64(q, 2);
	a->approve = sqlite3_column_int(q, 3) != 0;
	snprintf(a->reason, sizeof a->reason, "%s", col_text(q, 4));
	snprintf(a->signature, sizeof a->signature, "%s", col_text(q, 5));
}

km_status req_approvals_load(km_ctx *ctx, const char *id, req_approval **out, size_t *n, km_err *e)
{
	sqlite3_stmt *q;
	*out = NULL;
	*n = 0;
	km_status st = km_db_prepare(ctx->db, "SELECT " APPR_COLS " FROM approvals WHERE request_id = ? "
	                             "ORDER BY time, approver", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 4;
			req_approval *grown = realloc(*out, cap * sizeof **out);
			if (!grown) {
				st = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			*out = grown;
		}
		req_approval *a = &(*out)[*n];
		appr_from_stmt(q, a);
		char what[KM_REQUEST_ID_MAX + 80];
		snprintf(what, sizeof what, "'%s' of request '%s'", a->approver, id);
		st = km_rowmac_check(ctx, "approvals", what, appr_fields(id, a), sqlite3_column_blob(q, APPR_MAC_COL),
		                     (size_t)sqlite3_column_bytes(q, APPR_MAC_COL), e);
		(*n)++;
	}
	if (!st && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading approvals");
	sqlite3_finalize(q);
	if (st) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return st;
}

km_status req_approval_insert(km_ctx *ctx, const char *id, const req_approval *a, json_t *details,
                              km_err *e)
{
	uint8_t mac[KM_ROWMAC_BYTES];
	char digest[65], key[KM_REQUEST_ID_MAX + 70];
	json_t *f = appr_fields(id, a);
	km_rowmac_digest(ctx, "approvals", f, digest);
	km_status st = km_rowmac(ctx, "approvals", f, mac, e);
	if (st)
		return st;
	snprintf(key, sizeof key, "%s/%s", id, a->approver);
	km_sealed_note(details, "approvals", key, digest);
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, "INSERT INTO approvals(" APPR_COLS ") VALUES(?,?,?,?,?,?,?)", &q, e)))
		return st;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, a->approver, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, a->time);
	sqlite3_bind_int(q, 4, a->approve);
	sqlite3_bind_text(q, 5, a->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, a->signature, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 7, mac, sizeof mac, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_CONSTRAINT)
		st = km_fail(e, KM_EDENIED, "%s has already signed request '%s'", a->approver, id);
	else if (rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "writing the approval");
	sqlite3_finalize(q);
	return st;
}

/* ---- audit verify ------------------------------------------------------ */

static json_t *req_stmt_fields(sqlite3_stmt *q)
{
	req_row r;
	km_err ignored;
	json_t *f = req_from_stmt(q, &r, &ignored) == KM_OK ? req_fields(&r) : NULL;
	req_row_clear(&r);
	return f;
}

static void req_stmt_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s'", col_text(q, 0));
}

static void req_stmt_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", col_text(q, 0));
}

static json_t *appr_stmt_fields(sqlite3_stmt *q)
{
	req_approval a;
	appr_from_stmt(q, &a);
	return appr_fields(col_text(q, 0), &a);
}

static void appr_stmt_name(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "'%s' of request '%s'", col_text(q, 1), col_text(q, 0));
}

static void appr_stmt_key(sqlite3_stmt *q, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s", col_text(q, 0), col_text(q, 1));
}

km_status request_rows_verify(km_ctx *ctx, const json_t *recorded, uint64_t *checked, uint64_t *bad,
                              char *problem, size_t cap, km_err *e)
{
	static const km_rowmac_table reqs = {
		"requests", "SELECT " REQ_COLS " FROM requests ORDER BY created, id", req_stmt_fields, req_stmt_name,
		REQ_MAC_COL, req_stmt_key, req_stmt_fields,
	};
	static const km_rowmac_table apprs = {
		"approvals", "SELECT " APPR_COLS " FROM approvals ORDER BY request_id, approver", appr_stmt_fields,
		appr_stmt_name, APPR_MAC_COL, appr_stmt_key, appr_stmt_fields,
	};
	km_status st = km_rowmac_scan(ctx, &reqs, recorded, checked, bad, problem, cap, e);
	return st ? st : km_rowmac_scan(ctx, &apprs, recorded, checked, bad, problem, cap, e);
}
