/*
 * test_request.c — signed M-of-N requests on a real deployment: every
 * quorum refusal of issue #9, the brief's "must never"s about requests,
 * two concurrent executors, compromise, role grants and enrolment, and
 * tampered rows caught by their seals.
 *
 * People: the deployment's first user is an officer ("the officer");
 * bob and carol approve; dave approves only within models/; erin and
 * frank administer.  Everyone's passphrase is TH_PASSPHRASE.
 */
#include "th_deploy.h"
#include "asset.h"
#include "auditlog.h"
#include "ctx.h"
#include "db.h"
#include "kek.h"
#include "request.h"
#include "request_int.h"
#include "rowmac.h"
#include "user.h"
#include "user_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static th_deploy D;

static void teardown(void) { th_deploy_teardown(&D); }

static int64_t count(km_ctx *ctx, const char *sql)
{
	int64_t v;
	km_err e;
	ck_assert_msg(km_db_int64(km_db(ctx), sql, &v, &e) == KM_OK, "%s", e.msg);
	return v;
}

static void exec_sql(km_ctx *ctx, const char *sql)
{
	km_err e;
	ck_assert_msg(km_db_exec(km_db(ctx), sql, &e) == KM_OK, "%s", e.msg);
}

/* The officer's session, with bob and carol (approvers), dave (approver
 * scoped to models/) and erin, frank (administrators) enrolled. */
static km_ctx *setup_people(void)
{
	th_deploy_setup(&D, KM_ROLE_OFFICER | KM_ROLE_AUDITOR, NULL);
	km_ctx *ctx = th_deploy_open(&D, NULL);
	th_deploy_user(&D, ctx, "bob", KM_ROLE_APPROVER | KM_ROLE_AUDITOR, NULL);
	th_deploy_user(&D, ctx, "carol", KM_ROLE_APPROVER, NULL);
	th_deploy_user(&D, ctx, "dave", KM_ROLE_APPROVER, "models/");
	th_deploy_user(&D, ctx, "erin", KM_ROLE_ADMIN, NULL);
	th_deploy_user(&D, ctx, "frank", KM_ROLE_ADMIN, NULL);
	return ctx;
}

/* One approval in a session of its own. */
static km_status approve_as(const char *who, const char *id, km_err *e)
{
	km_ctx *s = th_deploy_open(&D, who);
	km_status st = km_request_approve(s, id, e);
	km_close(s);
	return st;
}

static km_request_info get(km_ctx *ctx, const char *id)
{
	km_request_info r;
	km_err e;
	ck_assert_msg(km_request_get(ctx, id, &r, &e) == KM_OK, "%s", e.msg);
	return r;
}

/* A fresh key and a rotation request on it. */
static void open_rotation(km_ctx *ctx, const char *key, char id[KM_REQUEST_ID_MAX])
{
	km_err e;
	ck_assert_msg(km_key_create(ctx, key, NULL, 0, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(km_request_rotate(ctx, key, "cadence", id, &e) == KM_OK, "%s", e.msg);
}

static uint32_t current_version(km_ctx *ctx, const char *key)
{
	km_key_info k;
	km_err e;
	ck_assert_int_eq(km_key_get(ctx, key, &k, &e), KM_OK);
	return k.current_version;
}

START_TEST(rotation_needs_a_second_person)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	/* Opening changed nothing but the requests table. */
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	km_request_info r = get(ctx, id);
	ck_assert_int_eq(r.state, KM_RS_PENDING);
	ck_assert_uint_eq(r.quorum, 1);
	ck_assert_str_eq(r.risk.tier, "low");
	/* The body is canonical and its SHA-256 is the digest. */
	char *body = NULL, hex[65];
	ck_assert_int_eq(km_request_body(ctx, id, &body, &e), KM_OK);
	req_digest(body, hex, NULL);
	ck_assert_str_eq(hex, r.digest);
	ck_assert_ptr_nonnull(strstr(body, "\"type\":\"keyward.request.v1\""));
	json_t *parsed = json_loads(body, 0, NULL);
	char *again = json_dumps(parsed, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
	ck_assert_str_eq(again, body); /* canonical: a round trip gives the same bytes */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(parsed, "change"), "key")), "features/x");
	free(again);
	json_decref(parsed);
	free(body);
	/* Not yet approved: cannot execute. */
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE);
	ck_assert_ptr_nonnull(strstr(e.msg, "0 of its 1 approvals"));
	/* must never: an officer approves their own request */
	ck_assert_int_eq(km_request_approve(ctx, id, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "their own request"));
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_APPROVED);
	/* must never: an approver approves twice */
	ck_assert_int_eq(approve_as("bob", id, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "already signed"));
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM approvals"), 1);
	/* The approval's event keeps the approver, digest and signature. */
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_events WHERE action = 'request.approve' AND "
	         "outcome = 'ok' AND json_extract(json, '$.details.digest') = '%s' AND "
	         "length(json_extract(json, '$.details.signature')) = 128 AND "
	         "json_extract(json, '$.details.approver') = 'bob'", r.digest);
	ck_assert_int_eq(count(ctx, sql), 1);
	ck_assert_msg(km_request_execute(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(current_version(ctx, "features/x"), 2);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 1 AND state = 'decrypt-only'"), 1);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_EXECUTED);
	/* Executed once only. */
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE);
	ck_assert_uint_eq(current_version(ctx, "features/x"), 2);
	char report[2048];
	ck_assert_msg(km_request_verify(ctx, id, report, sizeof report, &e) == KM_OK, "%s", e.msg);
	ck_assert_ptr_nonnull(strstr(report, "signature by bob: verifies"));
	km_rows_result rows;
	ck_assert_int_eq(km_audit_verify_rows(ctx, &rows, &e), KM_OK);
	ck_assert_msg(rows.bad == 0, "%s", rows.problem);
	km_close(ctx);
}
END_TEST

START_TEST(roles_decide_who_signs)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	/* An administrator never signs a key change; an approver out of scope
	 * is refused. */
	ck_assert_int_eq(approve_as("erin", id, &e), KM_EDENIED);
	ck_assert_int_eq(approve_as("dave", id, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "outside dave's scopes"));
	/* dave signs within his scope */
	char mid[KM_REQUEST_ID_MAX];
	open_rotation(ctx, "models/m", mid);
	ck_assert_msg(approve_as("dave", mid, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM approvals"), 1);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_PENDING);
	/* An administrator cannot carry out a key change either. */
	km_ctx *erin = th_deploy_open(&D, "erin");
	ck_assert_int_eq(km_request_execute(erin, mid, NULL, NULL, &e), KM_EDENIED);
	km_close(erin);
	ck_assert_uint_eq(current_version(ctx, "models/m"), 1);
	km_close(ctx);
}
END_TEST

static int64_t clock_offset;
static int64_t shifted_clock(void *c)
{
	(void)c;
	return km_now() + clock_offset;
}

START_TEST(expired_requests_are_refused)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	char late[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_request_rotate(ctx, "features/x", "x", late, &e), KM_EEXISTS); /* one at a time */
	/* 72 h later (the default request_ttl_hours) both approving and
	 * executing are refused. */
	clock_offset = 72 * 3600 + 1;
	km_set_clock(ctx, shifted_clock, NULL);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_EXPIRED);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE);
	ck_assert_ptr_nonnull(strstr(e.msg, "expired"));
	km_ctx *carol = th_deploy_open(&D, "carol");
	km_set_clock(carol, shifted_clock, NULL);
	/* must never: approve after expiry */
	ck_assert_int_eq(km_request_approve(carol, id, &e), KM_ESTATE);
	km_close(carol);
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	/* An expired request no longer blocks a new one. */
	ck_assert_int_eq(km_request_rotate(ctx, "features/x", "again", late, &e), KM_OK);
	km_close(ctx);
}
END_TEST

/* Re-seal an approval as a writer holding the row-MAC key would: the
 * signature check alone must then refuse it. */
static void replace_approval(km_ctx *ctx, const char *id, const req_approval *a)
{
	km_err e;
	char sql[256];
	snprintf(sql, sizeof sql, "DELETE FROM approvals WHERE request_id = '%s' AND approver = '%s'", id, a->approver);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	exec_sql(ctx, sql);
	json_t *d = json_object();
	ck_assert_msg(req_approval_insert(ctx, id, a, d, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_tx_audit(ctx, "test.reseal", "request", "ok", d, &e), KM_OK);
	ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
}

static req_approval approval_of(km_ctx *ctx, const char *id, const char *who)
{
	req_approval *a = NULL, out;
	size_t n = 0;
	km_err e;
	ck_assert_msg(req_approvals_load(ctx, id, &a, &n, &e) == KM_OK, "%s", e.msg);
	memset(&out, 0, sizeof out);
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].approver, who) == 0)
			out = a[i];
	free(a);
	ck_assert_str_eq(out.approver, who);
	return out;
}

START_TEST(forged_signatures_are_refused)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX], other[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	open_rotation(ctx, "features/y", other);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	ck_assert_int_eq(approve_as("carol", other, &e), KM_OK);

	/* 1. The stored signature edited in SQLite: the row's seal fails. */
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE approvals SET signature = '00' || substr(signature, 3) "
	         "WHERE request_id = '%s'", id);
	req_approval good = approval_of(ctx, id, "bob");
	exec_sql(ctx, sql);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "fails its HSM MAC"));
	km_rows_result rows;
	ck_assert_int_eq(km_audit_verify_rows(ctx, &rows, &e), KM_OK);
	ck_assert_uint_ge(rows.bad, 1);

	/* 2. A forged signature under a genuine seal: refused by the check. */
	req_approval forged = good;
	forged.signature[0] = forged.signature[0] == '0' ? '1' : '0';
	replace_approval(ctx, id, &forged);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "does not verify"));

	/* 3. A genuine signature, but over another request's digest. */
	req_approval moved = approval_of(ctx, other, "carol");
	snprintf(sql, sizeof sql, "DELETE FROM approvals WHERE request_id = '%s'", id);
	exec_sql(ctx, sql);
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	json_t *d = json_object();
	ck_assert_int_eq(req_approval_insert(ctx, id, &moved, d, &e), KM_OK);
	ck_assert_int_eq(km_tx_audit(ctx, "test.reseal", "request", "ok", d, &e), KM_OK);
	ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "does not verify"));
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	char report[1024];
	ck_assert_int_eq(km_request_verify(ctx, id, report, sizeof report, &e), KM_EINTEGRITY);

	/* The untouched request still executes. */
	ck_assert_msg(km_request_execute(ctx, other, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_close(ctx);
}
END_TEST

START_TEST(self_approval_and_duplicates_refused_at_execution)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	/* A sealed row naming the requester as approver (as a writer with the
	 * MAC key might insert) does not count: the requester never approves. */
	req_approval self = approval_of(ctx, id, "bob");
	snprintf(self.approver, sizeof self.approver, "%s", km_actor_get(ctx)->name);
	replace_approval(ctx, id, &self);
	char sql[256];
	snprintf(sql, sizeof sql, "DELETE FROM approvals WHERE request_id = '%s' AND approver = 'bob'", id);
	exec_sql(ctx, sql);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "cannot approve it"));
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	km_close(ctx);
}
END_TEST

START_TEST(approver_who_lost_the_role_no_longer_counts)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX], rid[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_APPROVED);
	/* erin revokes bob's approver role; frank approves; erin executes. */
	km_ctx *erin = th_deploy_open(&D, "erin");
	ck_assert_msg(km_request_role(erin, "bob", KM_ROLE_APPROVER, 0, "left the team", rid, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(km_request_approve(erin, rid, &e), KM_EDENIED); /* own request */
	ck_assert_int_eq(approve_as("frank", rid, &e), KM_OK);
	ck_assert_msg(km_request_execute(erin, rid, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_close(erin);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "no longer holds the role approver"));
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	/* carol's signature restores the quorum. */
	ck_assert_int_eq(approve_as("carol", id, &e), KM_OK);
	ck_assert_msg(km_request_execute(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_close(ctx);
}
END_TEST

/* Scopes narrowed after signing (re-sealed, as any change to a users row
 * is): the signature no longer counts at execution. */
START_TEST(approver_out_of_scope_at_execution_no_longer_counts)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	user_row u;
	char digest[65];
	ck_assert_int_eq(user_row_load(ctx, "bob", &u, &e), KM_OK);
	snprintf(u.scopes, sizeof u.scopes, "models/");
	ck_assert_int_eq(km_tx_begin(ctx, &e), KM_OK);
	ck_assert_int_eq(user_row_save(ctx, &u, 0, digest, &e), KM_OK);
	json_t *d = json_object();
	km_sealed_note(d, "users", "bob", digest);
	ck_assert_int_eq(km_tx_audit(ctx, "test.scope", "user:bob", "ok", d, &e), KM_OK);
	ck_assert_int_eq(km_tx_commit(ctx, &e), KM_OK);
	user_row_clear(&u);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EDENIED);
	ck_assert_ptr_nonnull(strstr(e.msg, "outside bob's scopes"));
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	km_close(ctx);
}
END_TEST

START_TEST(admins_never_change_their_own_roles)
{
	km_ctx *ctx = setup_people();
	km_err e;
	char id[KM_REQUEST_ID_MAX];
	km_ctx *erin = th_deploy_open(&D, "erin");
	/* must never: an administrator grants themselves a role */
	ck_assert_int_eq(km_request_role(erin, "erin", KM_ROLE_AUDITOR, 1, "me", id, &e), KM_EDENIED);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM requests"), 0);
	/* nor may an officer grant anyone anything */
	ck_assert_int_eq(km_request_role(ctx, "carol", KM_ROLE_AUDITOR, 1, "x", id, &e), KM_EDENIED);
	/* separation of duties is checked when the grant opens */
	ck_assert_int_eq(km_request_role(erin, "frank", KM_ROLE_OFFICER, 1, "x", id, &e), KM_EDENIED);
	/* a grant to someone else needs a second administrator */
	ck_assert_int_eq(km_request_role(erin, "carol", KM_ROLE_AUDITOR, 1, "audits", id, &e), KM_OK);
	ck_assert_int_eq(km_request_execute(erin, id, NULL, NULL, &e), KM_ESTATE);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_EDENIED); /* approvers do not sign role changes */
	ck_assert_int_eq(approve_as("frank", id, &e), KM_OK);
	ck_assert_msg(km_request_execute(erin, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT roles FROM users WHERE name = 'carol'"),
	                 KM_ROLE_APPROVER | KM_ROLE_AUDITOR);
	km_close(erin);
	km_close(ctx);
}
END_TEST

START_TEST(enrolment_is_a_request_when_another_admin_exists)
{
	km_ctx *ctx = setup_people();
	km_err e;
	char id[KM_REQUEST_ID_MAX];
	km_ctx *erin = th_deploy_open(&D, "erin");
	ck_assert_int_eq(km_request_user_add(erin, "gina", KM_ROLE_APPROVER, NULL, "gina's own passphrase", "new hire",
	                                     id, &e), KM_OK);
	ck_assert_str_ne(id, "");
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM users WHERE name = 'gina'"), 0);
	/* The change carries the credential record, never the passphrase. */
	char *body = NULL;
	ck_assert_int_eq(km_request_body(ctx, id, &body, &e), KM_OK);
	ck_assert_ptr_nonnull(strstr(body, "\"credential\":{"));
	ck_assert_ptr_null(strstr(body, "own passphrase"));
	free(body);
	ck_assert_int_eq(approve_as("frank", id, &e), KM_OK);
	ck_assert_msg(km_request_execute(erin, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	km_close(erin);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM users WHERE name = 'gina'"), 1);
	km_open_opts o = {.home = D.home, .user = "gina", .passphrase_file = NULL};
	km_ctx *gina = NULL;
	ck_assert_msg(km_open(&o, &gina, &e) == KM_OK, "%s", e.msg);
	km_close(gina);
	km_close(ctx);
}
END_TEST

START_TEST(rejection_vetoes_and_cancel)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX], id2[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	km_ctx *carol = th_deploy_open(&D, "carol");
	ck_assert_int_eq(km_request_reject(carol, id, NULL, &e), KM_EUSAGE);
	ck_assert_int_eq(km_request_reject(carol, id, "not during the freeze", &e), KM_OK);
	km_close(carol);
	ck_assert_int_eq(get(ctx, id).state, KM_RS_REJECTED);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_ESTATE);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE);
	/* Cancel: the requester yes, another person no. */
	ck_assert_int_eq(km_request_rotate(ctx, "features/x", "again", id2, &e), KM_OK);
	km_ctx *bob = th_deploy_open(&D, "bob");
	ck_assert_int_eq(km_request_cancel(bob, id2, &e), KM_EDENIED);
	km_close(bob);
	ck_assert_int_eq(km_request_cancel(ctx, id2, &e), KM_OK);
	ck_assert_int_eq(get(ctx, id2).state, KM_RS_CANCELLED);
	ck_assert_int_eq(approve_as("bob", id2, &e), KM_ESTATE);
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	km_close(ctx);
}
END_TEST

START_TEST(compromise_acts_at_once_and_opens_the_emergency_rotation)
{
	km_ctx *ctx = setup_people();
	km_err e;
	char id[KM_REQUEST_ID_MAX];
	km_tag sens = {"sensitivity", "high"};
	ck_assert_int_eq(km_key_create(ctx, "inference/api", &sens, 1, &e), KM_OK);
	const char *specs[] = {"inference-log:api/requests@1"};
	ck_assert_int_eq(km_asset_register_bulk(ctx, "inference/api", specs, 1, &e), KM_OK);
	ck_assert_int_eq(km_key_compromise(ctx, "inference/api", 1, NULL, id, &e), KM_EUSAGE); /* a reason */
	ck_assert_msg(km_key_compromise(ctx, "inference/api", 1, "leaked in a log", id, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE state = 'compromised'"), 1);
	/* encryption under it stops at once */
	ck_assert_int_eq(km_asset_register_bulk(ctx, "inference/api", specs, 1, &e), KM_ESTATE);
	km_request_info r = get(ctx, id);
	ck_assert_int_eq(r.kind, KM_REQ_EMERGENCY_ROTATE);
	ck_assert_str_eq(r.risk.tier, "high");          /* compromise + sensitivity */
	ck_assert_uint_eq(r.quorum, 2);                 /* expedited 1, + 1 for high */
	ck_assert_uint_eq(r.assets, 1);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_ESTATE); /* half-approved */
	ck_assert_int_eq(approve_as("carol", id, &e), KM_OK);
	ck_assert_msg(km_request_execute(ctx, id, NULL, NULL, &e) == KM_OK, "%s", e.msg);
	ck_assert_uint_eq(current_version(ctx, "inference/api"), 2);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 2 AND state = 'active'"), 1);
	km_close(ctx);
}
END_TEST

START_TEST(tampered_request_row_is_caught)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE requests SET quorum = 0, state = 'approved' WHERE id = '%s'", id);
	exec_sql(ctx, sql);
	ck_assert_int_eq(km_request_execute(ctx, id, NULL, NULL, &e), KM_EINTEGRITY);
	ck_assert_ptr_nonnull(strstr(e.msg, "requests row"));
	km_request_info r;
	ck_assert_int_eq(km_request_get(ctx, id, &r, &e), KM_EINTEGRITY);
	km_rows_result rows;
	ck_assert_int_eq(km_audit_verify_rows(ctx, &rows, &e), KM_OK);
	ck_assert_uint_ge(rows.bad, 1);
	ck_assert_ptr_nonnull(strstr(rows.problem, "requests"));
	ck_assert_uint_eq(current_version(ctx, "features/x"), 1);
	km_close(ctx);
}
END_TEST

/* Two processes execute one approved request at the same moment. */
START_TEST(two_concurrent_executors_one_wins)
{
	km_ctx *ctx = setup_people();
	char id[KM_REQUEST_ID_MAX];
	km_err e;
	open_rotation(ctx, "features/x", id);
	ck_assert_int_eq(approve_as("bob", id, &e), KM_OK);
	km_close(ctx);
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			km_open_opts o = {.home = D.home};
			km_ctx *c = NULL;
			km_err ce;
			char b;
			if (km_open(&o, &c, &ce) != KM_OK)
				_exit(100);
			close(go[1]);
			if (read(go[0], &b, 1) < 0) /* released together when the pipe closes */
				_exit(101);
			km_status st = km_request_execute(c, id, NULL, NULL, &ce);
			km_close(c);
			_exit((int)st);
		}
	}
	close(go[0]);
	usleep(300000);
	close(go[1]);
	int codes[2];
	for (int i = 0; i < 2; i++) {
		int status;
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert(WIFEXITED(status));
		codes[i] = WEXITSTATUS(status);
	}
	ck_assert_msg((codes[0] == KM_OK && codes[1] == KM_ESTATE) || (codes[0] == KM_ESTATE && codes[1] == KM_OK),
	              "exit codes %d and %d", codes[0], codes[1]);
	ctx = th_deploy_open(&D, NULL);
	ck_assert_uint_eq(current_version(ctx, "features/x"), 2);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions"), 2);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM audit_events WHERE action = 'request.execute' AND outcome = 'ok'"), 1);
	km_close(ctx);
}
END_TEST

START_TEST(destroy_and_cancel_destroy)
{
	km_ctx *ctx = setup_people();
	km_err e;
	char id[KM_REQUEST_ID_MAX];
	ck_assert_int_eq(km_key_create(ctx, "datasets/old", NULL, 0, &e), KM_OK);
	/* only retired or compromised versions may be scheduled */
	ck_assert_int_eq(km_request_destroy(ctx, "datasets/old", 1, "x", id, &e), KM_ESTATE);
	ck_assert_int_eq(th_rotate(&D, ctx, "datasets/old", NULL, &e), KM_OK);
	ck_assert_int_eq(th_policy_apply(ctx, "datasets/old", "{\"deprecation_days\":0}", &e), KM_OK);
	ck_assert_int_eq(th_set_state(&D, ctx, "datasets/old", 1, KS_RETIRED, &e), KM_OK);
	ck_assert_int_eq(km_request_cancel_destroy(ctx, "datasets/old", 1, "x", id, &e), KM_ESTATE);
	ck_assert_int_eq(km_request_destroy(ctx, "datasets/old", 1, "retention ended", id, &e), KM_OK);
	ck_assert_int_eq(th_request_done(&D, ctx, id, &e), KM_OK);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 1 AND state = "
	                       "'destroy-scheduled' AND destroy_after > 0 AND wrapped IS NOT NULL"), 1);
	ck_assert_int_eq(km_request_cancel_destroy(ctx, "datasets/old", 1, "still needed", id, &e), KM_OK);
	ck_assert_int_eq(th_request_done(&D, ctx, id, &e), KM_OK);
	ck_assert_int_eq(count(ctx, "SELECT count(*) FROM key_versions WHERE version = 1 AND state = 'retired'"), 1);
	km_close(ctx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("request");
	TCase *t = tcase_create("request");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, rotation_needs_a_second_person);
	tcase_add_test(t, roles_decide_who_signs);
	tcase_add_test(t, expired_requests_are_refused);
	tcase_add_test(t, forged_signatures_are_refused);
	tcase_add_test(t, self_approval_and_duplicates_refused_at_execution);
	tcase_add_test(t, approver_who_lost_the_role_no_longer_counts);
	tcase_add_test(t, approver_out_of_scope_at_execution_no_longer_counts);
	tcase_add_test(t, admins_never_change_their_own_roles);
	tcase_add_test(t, enrolment_is_a_request_when_another_admin_exists);
	tcase_add_test(t, rejection_vetoes_and_cancel);
	tcase_add_test(t, compromise_acts_at_once_and_opens_the_emergency_rotation);
	tcase_add_test(t, tampered_request_row_is_caught);
	tcase_add_test(t, two_concurrent_executors_one_wins);
	tcase_add_test(t, destroy_and_cancel_destroy);
	suite_add_tcase(s, t);
	return th_run_suite(s);
}
