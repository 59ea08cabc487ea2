/*
 * request_read.c — reading requests: listings, one request with its
 * signatures, the inbox, verification against the audit log, and the
 * export for an offline check with nothing but openssl.
 *
 * Every row read here goes through its seal: a listing that met an edited
 * row stops with KM_EINTEGRITY naming it rather than show it.
 */
#include "request_int.h"
#include <sys/stat.h>
#include "atomicfile.h"
#include "caller.h"
#include "cred.h"
#include "db.h"
#include "user_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void req_obj(char *buf, size_t cap, const char *id)
{
	snprintf(buf, cap, "request:%.*s", KM_REQUEST_ID_MAX, id ? id : "");
}

/* Could this session's person sign it now (before step-up)? */
static int can_sign(km_ctx *ctx, const req_row *r, const req_approval *a, size_t n)
{
	km_request_state s = req_effective_state(r, km_ctx_now(ctx));
	if ((s != KM_RS_PENDING && s != KM_RS_APPROVED) || strcmp(r->requester, ctx->actor.name) == 0 ||
	    !(ctx->actor.roles & req_kind_roles(r->kind)))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].approver, ctx->actor.name) == 0)
			return 0;
	char kb[160];
	const char *key = req_object_key(r->object, kb, sizeof kb);
	return !key || !ctx->scopes[0] || km_scope_contains(ctx->scopes, key);
}

static void info_from(km_ctx *ctx, const req_row *r, const req_approval *a, size_t n, km_request_info *o)
{
	memset(o, 0, sizeof *o);
	snprintf(o->id, sizeof o->id, "%s", r->id);
	o->kind = r->kind;
	o->state = req_effective_state(r, km_ctx_now(ctx));
	snprintf(o->requester, sizeof o->requester, "%s", r->requester);
	snprintf(o->object, sizeof o->object, "%s", r->object);
	snprintf(o->summary, sizeof o->summary, "%s", r->summary);
	o->created = r->created;
	o->expires = r->expires;
	o->decided = r->decided;
	o->quorum = r->quorum;
	snprintf(o->digest, sizeof o->digest, "%s", r->digest);
	snprintf(o->job_id, sizeof o->job_id, "%s", r->job_id);
	char problem[128];
	o->approvals = req_count_valid(ctx, r, a, n, problem, sizeof problem);
	o->can_sign = can_sign(ctx, r, a, n);
	json_t *body = json_loads(r->body, 0, NULL);
	const char *reason = json_string_value(json_object_get(body, "reason"));
	snprintf(o->reason, sizeof o->reason, "%s", reason ? reason : "");
	o->assets = (uint64_t)json_integer_value(json_object_get(body, "assets"));
	json_t *risk = json_object_get(body, "risk"), *f;
	o->risk.score = (int)json_integer_value(json_object_get(risk, "score"));
	const char *tier = json_string_value(json_object_get(risk, "tier"));
	snprintf(o->risk.tier, sizeof o->risk.tier, "%s", tier ? tier : "");
	size_t i;
	json_array_foreach(json_object_get(risk, "factors"), i, f) {
		if (o->risk.nfactors >= KM_RISK_FACTORS_MAX)
			break;
		km_risk_factor *rf = &o->risk.factors[o->risk.nfactors++];
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *detail = json_string_value(json_object_get(f, "detail"));
		snprintf(rf->name, sizeof rf->name, "%s", name ? name : "");
		snprintf(rf->detail, sizeof rf->detail, "%s", detail ? detail : "");
		rf->points = (int)json_integer_value(json_object_get(f, "points"));
	}
	json_decref(body);
}

static km_status load_info(km_ctx *ctx, const char *id, km_request_info *out, km_err *e)
{
	req_row r;
	req_approval *a = NULL;
	size_t n = 0;
	km_status st = req_row_load(ctx, id, &r, e);
	if (!st && !(st = req_approvals_load(ctx, id, &a, &n, e)))
		info_from(ctx, &r, a, n, out);
	free(a);
	req_row_clear(&r);
	return st;
}

static km_status list_impl(km_ctx *ctx, const km_request_query *qy,
                           int (*cb)(void *c, const km_request_info *r), void *cbctx, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	if (st)
		return st;
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT id FROM requests WHERE %s AND substr(object, 1, length(?1)) = ?1 "
	         "ORDER BY created DESC, id", qy->inbox || qy->pending_only ? "state IN ('pending', 'approved')" : "1");
	sqlite3_stmt *q;
	if ((st = km_db_prepare(ctx->db, sql, &q, e)))
		return st;
	sqlite3_bind_text(q, 1, qy->object ? qy->object : "", -1, SQLITE_TRANSIENT);
	int rc, shown = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		km_request_info info;
		if ((st = load_info(ctx, (const char *)sqlite3_column_text(q, 0), &info, e)))
			break;
		if ((qy->inbox && !info.can_sign) ||
		    (qy->pending_only && info.state != KM_RS_PENDING && info.state != KM_RS_APPROVED))
			continue;
		if (cb(cbctx, &info) || (qy->limit > 0 && ++shown >= qy->limit))
			break;
	}
	if (!st && rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "listing requests");
	sqlite3_finalize(q);
	return st;
}

km_status km_request_list(km_ctx *ctx, const km_request_query *q,
                          int (*cb)(void *c, const km_request_info *r), void *cbctx, km_err *e)
{
	km_request_query none = {0};
	km_op_begin(ctx, KM_ACT_REQUEST_READ, "requests");
	return km_op_end(ctx, list_impl(ctx, q ? q : &none, cb, cbctx, e), e);
}

static int count_cb(void *c, const km_request_info *r)
{
	(void)r;
	(*(uint64_t *)c)++;
	return 0;
}

km_status km_request_inbox_count(km_ctx *ctx, uint64_t *n, km_err *e)
{
	km_request_query q = {.inbox = 1};
	*n = 0;
	km_op_begin(ctx, KM_ACT_REQUEST_READ, "requests");
	return km_op_end(ctx, list_impl(ctx, &q, count_cb, n, e), e);
}

static km_status get_impl(km_ctx *ctx, const char *id, km_request_info *out, km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	return st ? st : load_info(ctx, id, out, e);
}

km_status km_request_get(km_ctx *ctx, const char *id, km_request_info *out, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_READ, obj);
	return km_op_end(ctx, get_impl(ctx, id ? id : "", out, e), e);
}

static km_status body_impl(km_ctx *ctx, const char *id, char **body, km_err *e)
{
	req_row r;
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	if (st || (st = req_row_load(ctx, id, &r, e)))
		return st;
	*body = r.body;
	r.body = NULL;
	req_row_clear(&r);
	return KM_OK;
}

km_status km_request_body(km_ctx *ctx, const char *id, char **body, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_READ, obj);
	return km_op_end(ctx, body_impl(ctx, id ? id : "", body, e), e);
}

static km_status approvals_impl(km_ctx *ctx, const char *id, int (*cb)(void *c, const km_approval_info *a),
                                void *cbctx, km_err *e)
{
	req_row r;
	req_approval *a = NULL;
	size_t n = 0;
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	if (st || (st = req_row_load(ctx, id, &r, e)))
		return st;
	if (!(st = req_approvals_load(ctx, id, &a, &n, e))) {
		for (size_t i = 0; i < n; i++) {
			km_approval_info o = {0};
			snprintf(o.approver, sizeof o.approver, "%s", a[i].approver);
			o.time = a[i].time;
			o.approve = a[i].approve;
			snprintf(o.reason, sizeof o.reason, "%s", a[i].reason);
			snprintf(o.signature, sizeof o.signature, "%s", a[i].signature);
			o.valid = a[i].approve && req_approval_valid(ctx, &r, &a[i], o.problem, sizeof o.problem);
			if (!a[i].approve)
				o.problem[0] = '\0';
			if (cb(cbctx, &o))
				break;
		}
	}
	free(a);
	req_row_clear(&r);
	return st;
}

km_status km_request_approvals(km_ctx *ctx, const char *id,
                               int (*cb)(void *c, const km_approval_info *a), void *cbctx, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_READ, obj);
	return km_op_end(ctx, approvals_impl(ctx, id ? id : "", cb, cbctx, e), e);
}

/* ---- verify ------------------------------------------------------------ */

/* The value of details.<field> in the newest ok event `action` about
 * request id (on object obj, or with details.request = id), by actor
 * (NULL: anyone); "" when the log has none. */
static km_status logged(km_ctx *ctx, const char *action, const char *id, const char *actor,
                        const char *field, char *out, size_t cap, km_err *e)
{
	sqlite3_stmt *q;
	char path[64], obj[KM_REQUEST_ID_MAX + 16];
	snprintf(path, sizeof path, "$.details.%s", field);
	req_obj(obj, sizeof obj, id);
	km_status st = km_db_prepare(ctx->db, "SELECT json_extract(json, ?4) FROM audit_events WHERE action = ?2 "
	                             "AND +outcome = 'ok' AND (object = ?1 OR json_extract(json, '$.details.request') = ?5) "
	                             "AND (?3 IS NULL OR actor = ?3) ORDER BY seq DESC LIMIT 1", &q, e);
	if (st)
		return st;
	sqlite3_bind_text(q, 1, obj, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, action, -1, SQLITE_STATIC);
	if (actor)
		sqlite3_bind_text(q, 3, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, id, -1, SQLITE_STATIC);
	out[0] = '\0';
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && sqlite3_column_text(q, 0))
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(q, 0));
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		st = km_db_fail(ctx->db, e, "reading the audit log");
	sqlite3_finalize(q);
	return st;
}

static void say(char *report, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *report, size_t cap, const char *fmt, ...)
{
	size_t used = strlen(report);
	if (used + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(report + used, cap - used, fmt, ap);
	va_end(ap);
}

/* One signature: against the signer's sealed key, and as logged. */
static km_status verify_one(km_ctx *ctx, const req_row *r, const req_approval *a, const uint8_t digest[32],
                            char *report, size_t cap, km_err *e)
{
	user_row u;
	uint8_t pub[KM_CRED_PUBKEY_BYTES], sig[KM_CRED_SIG_BYTES];
	char logsig[160];
	km_err ve;
	km_status st = user_row_load(ctx, a->approver, &u, &ve);
	if (!st && (!u.cred || km_cred_public_key(u.cred, pub, &ve) != KM_OK))
		st = km_fail(&ve, KM_EINTEGRITY, "%s has no signing key", a->approver);
	user_row_clear(&u);
	if (!st && (req_hex_decode(a->signature, sig, sizeof sig) != 0 ||
	            km_cred_verify(pub, digest, 32, sig, &ve) != KM_OK))
		st = km_fail(&ve, KM_EINTEGRITY, "%s's signature does not verify over the digest", a->approver);
	if (st)
		return km_fail(e, KM_EINTEGRITY, "request %s: %s", r->id, ve.msg);
	if ((st = logged(ctx, "request.approve", r->id, a->approver, "signature", logsig, sizeof logsig, e)))
		return st;
	if (strcmp(logsig, a->signature) != 0)
		return km_fail(e, KM_EINTEGRITY, "request %s: %s's signature is not the one the audit log recorded",
		               r->id, a->approver);
	say(report, cap, "signature by %s: verifies, matches the audit log\n", a->approver);
	return KM_OK;
}

static km_status verify_impl(km_ctx *ctx, const char *id, char *report, size_t cap, km_err *e)
{
	req_row r;
	req_approval *a = NULL;
	size_t n = 0;
	char obj[KM_REQUEST_ID_MAX + 16], hex[65], opened[80];
	uint8_t digest[32];
	req_obj(obj, sizeof obj, id);
	if (cap)
		report[0] = '\0';
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	if (st || (st = req_row_load(ctx, id, &r, e)))
		return st;
	if ((st = req_approvals_load(ctx, id, &a, &n, e))) {
		req_row_clear(&r);
		return st;
	}
	req_digest(r.body, hex, digest);
	if (strcmp(hex, r.digest) != 0)
		st = km_fail(e, KM_EINTEGRITY, "request %s: the body's SHA-256 is %s, not the digest %s", id, hex, r.digest);
	if (!st && !(st = logged(ctx, "request.open", id, NULL, "digest", opened, sizeof opened, e)) &&
	    strcmp(opened, r.digest) != 0)
		st = km_fail(e, KM_EINTEGRITY, "request %s: the digest is not the one the audit log recorded at opening",
		             id);
	if (!st)
		say(report, cap, "digest %s: the body hashes to it, as the audit log recorded\n", r.digest);
	unsigned signatures = 0;
	for (size_t i = 0; !st && i < n; i++)
		if (a[i].approve && !(st = verify_one(ctx, &r, &a[i], digest, report, cap, e)))
			signatures++;
	if (!st)
		say(report, cap, "%u signature%s of %u needed\n", signatures, signatures == 1 ? "" : "s", r.quorum);
	free(a);
	req_row_clear(&r);
	return st;
}

km_status km_request_verify(km_ctx *ctx, const char *id, char *report, size_t cap, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_READ, obj);
	return km_op_end(ctx, verify_impl(ctx, id ? id : "", report, cap, e), e);
}

/* ---- export ------------------------------------------------------------ */

typedef struct export_file {
	char name[96];
	const void *data;
	size_t len;
} export_file;

static km_status write_all(int fd, const void *p, size_t n, km_err *e)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return km_fail(e, KM_EIO, "writing the export: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
	return KM_OK;
}

/* Files the person named: written with their rights, each atomically. */
static km_status write_files(const char *dir, const export_file *f, size_t n, km_err *e)
{
	km_status st = KM_OK;
	km_caller_rights_begin();
	/* The directory is made when missing (0700: the signatures are not
	 * secret, but the request names people and keys), with the caller's
	 * rights like the files. */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		st = km_fail(e, KM_EIO, "cannot create the directory %s: %s", dir, strerror(errno));
	for (size_t i = 0; !st && i < n; i++) {
		char path[PATH_MAX];
		atomicfile af;
		snprintf(path, sizeof path, "%s/%s", dir, f[i].name);
		if (!(st = atomicfile_open(path, &af, e))) {
			if ((st = write_all(af.fd, f[i].data, f[i].len, e)))
				atomicfile_abort(&af);
			else
				st = atomicfile_commit(&af, e);
		}
	}
	km_caller_rights_end();
	return st;
}

static km_status export_impl(km_ctx *ctx, const char *id, const char *dir, km_err *e)
{
	req_row r;
	req_approval *a = NULL;
	size_t n = 0;
	km_status st = km_authorize(ctx, KM_ACT_REQUEST_READ, NULL, e);
	if (st || (st = req_row_load(ctx, id, &r, e)))
		return st;
	if ((st = req_approvals_load(ctx, id, &a, &n, e))) {
		req_row_clear(&r);
		return st;
	}
	size_t nf = 0, cap = 3 + 2 * n;
	export_file *f = calloc(cap, sizeof *f);
	uint8_t (*sigs)[KM_CRED_SIG_BYTES] = calloc(n + 1, KM_CRED_SIG_BYTES);
	char (*pems)[KM_CRED_PEM_MAX] = calloc(n + 1, KM_CRED_PEM_MAX);
	uint8_t digest[32];
	char hex[65], verify[4096] = "";
	if (!f || !sigs || !pems)
		st = km_fail(e, KM_ENOMEM, "out of memory");
	req_digest(r.body ? r.body : "", hex, digest);
	size_t vlen = (size_t)snprintf(verify, sizeof verify,
		"# Request %s (%s), checked offline with OpenSSL 3:\n"
		"openssl dgst -sha256 -binary request.json | cmp - digest.bin && echo digest OK\n", r.id,
		km_request_kind_name(r.kind));
	if (!st) {
		f[nf++] = (export_file){"request.json", r.body, strlen(r.body)};
		f[nf++] = (export_file){"digest.bin", digest, sizeof digest};
	}
	for (size_t i = 0; !st && i < n; i++) {
		if (!a[i].approve)
			continue;
		user_row u;
		uint8_t pub[KM_CRED_PUBKEY_BYTES];
		if (!(st = user_row_load(ctx, a[i].approver, &u, e))) {
			if (!u.cred)
				st = km_fail(e, KM_ESTATE, "%s has no signing key", u.name);
			if (!st)
				st = km_cred_public_key(u.cred, pub, e);
			if (!st)
				st = km_cred_public_key_pem(pub, pems[i], KM_CRED_PEM_MAX, e);
			user_row_clear(&u);
		}
		if (!st && req_hex_decode(a[i].signature, sigs[i], KM_CRED_SIG_BYTES) != 0)
			st = km_fail(e, KM_EINTEGRITY, "request %s: %s's stored signature is not 64 bytes of hex", id,
			             a[i].approver);
		if (st)
			break;
		export_file *s = &f[nf++], *p = &f[nf++];
		snprintf(s->name, sizeof s->name, "%s.sig", a[i].approver);
		s->data = sigs[i];
		s->len = KM_CRED_SIG_BYTES;
		snprintf(p->name, sizeof p->name, "%s.pub.pem", a[i].approver);
		p->data = pems[i];
		p->len = strlen(pems[i]);
		if (vlen < sizeof verify)
			vlen += (size_t)snprintf(verify + vlen, sizeof verify - vlen,
			                         "openssl pkeyutl -verify -pubin -inkey %s.pub.pem -rawin -in digest.bin "
			                         "-sigfile %s.sig\n", a[i].approver, a[i].approver);
	}
	if (!st) {
		f[nf++] = (export_file){"VERIFY.txt", verify, strlen(verify)};
		st = write_files(dir, f, nf, e);
	}
	free(f);
	free(sigs);
	free(pems);
	free(a);
	req_row_clear(&r);
	return st;
}

km_status km_request_export(km_ctx *ctx, const char *id, const char *dir, km_err *e)
{
	char obj[KM_REQUEST_ID_MAX + 16];
	req_obj(obj, sizeof obj, id);
	km_op_begin(ctx, KM_ACT_REQUEST_READ, obj);
	if (!dir || !*dir)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name the directory to export to"), e);
	return km_op_end(ctx, export_impl(ctx, id ? id : "", dir, e), e);
}
