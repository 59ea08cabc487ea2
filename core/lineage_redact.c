/*
 * lineage_redact.c — need-to-know redaction of lineage answers, and the
 * approvals behind a key version (lineage.h).
 *
 * Redaction is applied where the public queries hand results out (the
 * trampolines below wrap the caller's callbacks), not inside the walks, so
 * the walks stay as fast as they are and no front end ever holds a name it
 * must not show.  A pseudonym is an HSM MAC of the name, so it is stable
 * across answers and reports and cannot be checked against a guess without
 * the HSM.
 */
#include "lineage.h"
#include "lineage_int.h"
#include "pseudonym.h"
#include "ctx.h"
#include "db.h"
#include "request_int.h"
#include "rowmac.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- redaction ---------------------------------------------------------- */

int km_lineage_redacting(km_ctx *ctx)
{
	return ctx->lineage_redact || !km_role_need_to_know(km_actor_get(ctx)->roles);
}

void km_lineage_set_redact(km_ctx *ctx, int on)
{
	ctx->lineage_redact = on != 0;
}

km_status km_lineage_pseudonym(km_ctx *ctx, const char *what, const char *name, char *out, size_t cap,
                               km_err *e)
{
	if (!name || !*name) {
		snprintf(out, cap, "%s", name ? name : "");
		return KM_OK;
	}
	char key[KM_LINEAGE_NAME_MAX + 64];
	snprintf(key, sizeof key, "%s\n%s", what, name);
	const char *have = json_string_value(json_object_get(ctx->lineage_pseudonyms, key));
	if (have) {
		snprintf(out, cap, "%s", have);
		return KM_OK;
	}
	uint8_t mac[KM_ROWMAC_BYTES];
	km_status st = km_rowmac(ctx, "lineage-pseudonym", json_pack("[s,s]", what, name), mac, e);
	if (st) {
		/* never fall back to the name */
		snprintf(out, cap, "%s-unavailable", what);
		return km_wrap(e, "a pseudonym for a lineage name could not be made");
	}
	char p[64];
	int n = snprintf(p, sizeof p, "%s-", what);
	for (int i = 0; i < 5 && n < (int)sizeof p - 2; i++)
		n += snprintf(p + n, sizeof p - (size_t)n, "%02x", mac[i]);
	if (!ctx->lineage_pseudonyms)
		ctx->lineage_pseudonyms = json_object();
	if (ctx->lineage_pseudonyms)
		json_object_set_new(ctx->lineage_pseudonyms, key, json_string(p));
	snprintf(out, cap, "%s", p);
	return KM_OK;
}

/* Namespace "keyward" holds keyward's own assets, named KIND:NAME: the
 * NAME part is a data name like any other, the kind prefix stays. */
static km_status node_redact(km_ctx *ctx, km_lineage_node *n, km_err *e)
{
	const char *kind = km_lineage_kind_name(n->kind);
	char buf[64]; /* a pseudonym: "feature-group-" and ten hex digits */
	km_status st;
	if (strcmp(n->namespace_, "keyward") != 0) {
		if ((st = km_lineage_pseudonym(ctx, "namespace", n->namespace_, buf, sizeof buf, e)))
			return st;
		snprintf(n->namespace_, sizeof n->namespace_, "%s", buf);
		if ((st = km_lineage_pseudonym(ctx, kind, n->name, buf, sizeof buf, e)))
			return st;
		snprintf(n->name, sizeof n->name, "%s", buf);
		return KM_OK;
	}
	const char *colon = strchr(n->name, ':');
	size_t prefix = colon ? (size_t)(colon - n->name) + 1 : 0;
	if ((st = km_lineage_pseudonym(ctx, kind, n->name + prefix, buf, sizeof buf, e)))
		return st;
	if (prefix > 40)
		prefix = 40; /* a kind, never longer in keyward's own names */
	char out[128];
	snprintf(out, sizeof out, "%.*s%s", (int)prefix, n->name, buf);
	snprintf(n->name, sizeof n->name, "%s", out);
	return KM_OK;
}

km_status km_lineage_node_redact(km_ctx *ctx, km_lineage_node *n, km_err *e)
{
	return km_lineage_redacting(ctx) ? node_redact(ctx, n, e) : KM_OK;
}

/* A walk's summary names nodes in its cycle example. */
#define CYCLE_WITHHELD "(names withheld: need-to-know)"

static void trampoline_fail(lineage_trampoline *t, const km_err *e)
{
	if (!t->st) {
		t->st = e->code ? e->code : KM_EINTERNAL;
		t->err = *e;
	}
}

int lineage_trampoline_hit(void *c, const km_lineage_hit *h)
{
	lineage_trampoline *t = c;
	km_lineage_hit copy = *h;
	km_err e;
	km_err_clear(&e);
	if (t->redact && node_redact(t->ctx, &copy.node, &e)) {
		trampoline_fail(t, &e);
		return 1;
	}
	return t->hit_cb ? t->hit_cb(t->c, &copy) : 0;
}

/* Approvals of one key version, cached for the walk: inputs share few
 * key versions. */
typedef struct approvals_of {
	char key[129];
	uint32_t version;
	km_lineage_approval *a;
	size_t n;
} approvals_of;

static int collect_approval(void *c, const km_lineage_approval *a)
{
	approvals_of *o = c;
	km_lineage_approval *n = realloc(o->a, (o->n + 1) * sizeof *n);
	if (!n)
		return 1;
	o->a = n;
	o->a[o->n++] = *a;
	return 0;
}

static const approvals_of *approvals_cached(lineage_trampoline *t, const char *key, uint32_t version,
                                            km_err *e)
{
	approvals_of *cache = t->approvals;
	for (size_t i = 0; i < t->napprovals; i++)
		if (cache[i].version == version && strcmp(cache[i].key, key) == 0)
			return &cache[i];
	approvals_of *grown = realloc(cache, (t->napprovals + 1) * sizeof *grown);
	if (!grown) {
		km_fail(e, KM_ENOMEM, "out of memory");
		return NULL;
	}
	t->approvals = grown;
	approvals_of *o = &grown[t->napprovals];
	memset(o, 0, sizeof *o);
	snprintf(o->key, sizeof o->key, "%s", key);
	o->version = version;
	if (lineage_version_approvals_run(t->ctx, key, version, collect_approval, o, e)) {
		free(o->a);
		return NULL;
	}
	t->napprovals++;
	return o;
}

int lineage_trampoline_input(void *c, const km_lineage_input *in)
{
	lineage_trampoline *t = c;
	km_lineage_input copy = *in;
	km_err e;
	km_err_clear(&e);
	if (t->redact && node_redact(t->ctx, &copy.hit.node, &e)) {
		trampoline_fail(t, &e);
		return 1;
	}
	if (copy.key[0]) {
		const approvals_of *o = approvals_cached(t, copy.key, copy.kek_version, &e);
		if (!o) {
			trampoline_fail(t, &e);
			return 1;
		}
		copy.approvals = o->a;
		copy.napprovals = o->n;
	}
	return t->input_cb ? t->input_cb(t->c, &copy) : 0;
}

km_status lineage_trampoline_end(lineage_trampoline *t, km_status st, char *cycle_example, size_t cap,
                                 km_err *e)
{
	approvals_of *cache = t->approvals;
	for (size_t i = 0; i < t->napprovals; i++)
		free(cache[i].a);
	free(cache);
	t->approvals = NULL;
	t->napprovals = 0;
	if (!st && t->st) {
		*e = t->err;
		st = t->st;
	}
	if (t->redact && cycle_example && cycle_example[0])
		snprintf(cycle_example, cap, "%s", CYCLE_WITHHELD);
	return st;
}

/* ---- approvals behind a key version --------------------------------------- */

km_status lineage_version_approvals_run(km_ctx *ctx, const char *key, uint32_t version,
                                        int (*cb)(void *c, const km_lineage_approval *a), void *cbctx,
                                        km_err *e)
{
	km_status st = km_authorize(ctx, KM_ACT_LINEAGE_READ, NULL, e);
	if (st)
		return st;
	sqlite3 *db = km_db(ctx);
	sqlite3_stmt *q;
	/* Key-wide requests (rotations) count from just after the creation of
	 * the version before this one: the rotation that made this version
	 * (opened after that one existed), and every one since. */
	if ((st = km_db_prepare(db, "SELECT r.id FROM requests r WHERE r.object = 'key:' || ?1 || '@' || ?2 "
	                        "UNION SELECT r.id FROM requests r WHERE r.object = 'key:' || ?1 AND "
	                        "r.created > coalesce((SELECT kv.created FROM key_versions kv JOIN keys k "
	                        "ON k.id = kv.key_id WHERE k.name = ?1 AND kv.version = ?2 - 1), 0)",
	                        &q, e)))
		return st;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, version);
	size_t n = 0, cap = 0;
	char (*ids)[KM_REQUEST_ID_MAX] = NULL;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			char (*g)[KM_REQUEST_ID_MAX] = realloc(ids, nc * sizeof *g);
			if (!g) {
				sqlite3_finalize(q);
				free(ids);
				return km_fail(e, KM_ENOMEM, "out of memory");
			}
			ids = g;
			cap = nc;
		}
		snprintf(ids[n++], KM_REQUEST_ID_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		free(ids);
		return km_db_fail(db, e, "lineage (approvals)");
	}
	km_lineage_approval *out = calloc(n ? n : 1, sizeof *out);
	if (!out) {
		free(ids);
		return km_fail(e, KM_ENOMEM, "out of memory");
	}
	int64_t now = km_ctx_now(ctx);
	for (size_t i = 0; i < n && !st; i++) {
		req_row r;
		memset(&r, 0, sizeof r);
		if ((st = req_row_load(ctx, ids[i], &r, e)))
			break;
		km_lineage_approval *a = &out[i];
		snprintf(a->request_id, sizeof a->request_id, "%s", r.id);
		snprintf(a->kind, sizeof a->kind, "%s", km_request_kind_name(r.kind));
		snprintf(a->state, sizeof a->state, "%s", km_request_state_name(req_effective_state(&r, now)));
		snprintf(a->object, sizeof a->object, "%s", r.object);
		a->created = r.created;
		a->decided = r.decided;
		req_row_clear(&r);
		req_approval *ap = NULL;
		size_t nap = 0;
		if ((st = req_approvals_load(ctx, ids[i], &ap, &nap, e)))
			break;
		a->napprovers = nap;
		for (size_t j = 0; j < nap && j < KM_LINEAGE_APPROVERS_MAX; j++) {
			snprintf(a->approvers[j].name, sizeof a->approvers[j].name, "%s", ap[j].approver);
			a->approvers[j].approve = ap[j].approve;
			a->approvers[j].time = ap[j].time;
		}
		free(ap);
	}
	free(ids);
	if (!st) {
		/* oldest first (ids are random; order by opening time, then id) */
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && (out[j - 1].created > out[j].created ||
			                             (out[j - 1].created == out[j].created &&
			                              strcmp(out[j - 1].request_id, out[j].request_id) > 0)); j--) {
				km_lineage_approval tmp = out[j];
				out[j] = out[j - 1];
				out[j - 1] = tmp;
			}
		for (size_t i = 0; i < n; i++)
			if (cb && cb(cbctx, &out[i]))
				break;
	}
	free(out);
	return st;
}

km_status km_lineage_version_approvals(km_ctx *ctx, const char *key, uint32_t version,
                                       int (*cb)(void *c, const km_lineage_approval *a), void *cbctx,
                                       km_err *e)
{
	char obj[200];
	snprintf(obj, sizeof obj, "key:%s@%" PRIu32, key ? key : "", version);
	km_op_begin(ctx, KM_ACT_LINEAGE_READ, obj);
	if (!key || !*key || version == 0)
		return km_op_end(ctx, km_fail(e, KM_EUSAGE, "name a key version: KEY@VERSION"), e);
	return km_op_end(ctx, lineage_version_approvals_run(ctx, key, version, cb, cbctx, e), e);
}
