/*
 * cli_request.c — `keyward request ...` and the commands that open
 * requests: key rotate/state/compromise/destroy/cancel-destroy and
 * user role grant|revoke.
 *
 * Thin: parse, call request.h, print what happened and what comes next.
 * The core authorises, checks the quorum and audits.
 */
#include "cli.h"
#include "lineage.h"
#include "asset.h"
#include "kek.h"
#include "request.h"
#include "progress.h"

#include <unistd.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- output */

static json_t *request_json(const km_request_info *r)
{
	json_t *o = json_object(), *f = json_array();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "kind", json_string(km_request_kind_name(r->kind)));
	json_object_set_new(o, "state", json_string(km_request_state_name(r->state)));
	ui_json_set_text(o, "requester", r->requester);
	ui_json_set_text(o, "object", r->object);
	ui_json_set_text(o, "summary", r->summary);
	ui_json_set_text(o, "reason", r->reason);
	json_object_set_new(o, "created", ui_json_time(r->created));
	json_object_set_new(o, "expires", ui_json_time(r->expires));
	json_object_set_new(o, "decided", ui_json_time(r->decided));
	json_object_set_new(o, "quorum", json_integer(r->quorum));
	json_object_set_new(o, "approvals", json_integer(r->approvals));
	json_object_set_new(o, "digest", json_string(r->digest));
	json_object_set_new(o, "assets", json_integer((json_int_t)r->assets));
	json_object_set_new(o, "job", r->job_id[0] ? json_string(r->job_id) : json_null());
	json_object_set_new(o, "can_sign", json_boolean(r->can_sign));
	for (size_t i = 0; i < r->risk.nfactors; i++) {
		json_t *x = json_object();
		ui_json_set_text(x, "name", r->risk.factors[i].name);
		ui_json_set_text(x, "detail", r->risk.factors[i].detail);
		json_object_set_new(x, "points", json_integer(r->risk.factors[i].points));
		json_array_append_new(f, x);
	}
	json_object_set_new(o, "risk", json_pack("{s:i,s:s,s:o}", "score", r->risk.score, "tier", r->risk.tier,
	                                         "factors", f));
	return o;
}

/* After opening: the id, and what has to happen next. */
static km_status opened(ui_cli *cli, const char *id, km_err *e)
{
	km_request_info r;
	km_status st = km_request_get(cli->ctx, id, &r, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(request_json(&r), e);
	ui_print_line("request %s opened: %s", r.id, r.summary);
	ui_print_line("risk %s (%d); it needs %u approval%s by someone other than you "
	              "(`keyward request approve %s`), then `keyward request execute %s`",
	              r.risk.tier, r.risk.score, r.quorum, r.quorum == 1 ? "" : "s", r.id, r.id);
	return KM_OK;
}

/* "KEY@V" into its parts. */
static km_status key_at_version(const char *s, char *key, size_t cap, uint32_t *v, km_err *e)
{
	const char *at = strrchr(s, '@');
	if (!at || at == s)
		return km_fail(e, KM_EUSAGE, "'%s': name the version as KEY@VERSION, e.g. features/x@3", s);
	uint64_t n;
	km_status st = ui_parse_u64(at + 1, "VERSION", 1, UINT32_MAX, &n, e);
	if (st != KM_OK)
		return st;
	snprintf(key, cap, "%.*s", (int)(at - s), s);
	*v = (uint32_t)n;
	return KM_OK;
}

/* ---------------------------------------------------------------- opening */

km_status ui_cmd_key_rotate(ui_cli *cli, const ui_args *a, km_err *e)
{
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_request_rotate(cli->ctx, a->pos[0], ui_arg(a, "reason"), id, e);
	return st != KM_OK ? st : opened(cli, id, e);
}

km_status ui_cmd_key_state(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t v;
	km_key_state to;
	char id[KM_REQUEST_ID_MAX];
	km_status st = ui_parse_u64(a->pos[1], "VERSION", 1, UINT32_MAX, &v, e);
	if (st == KM_OK)
		st = km_state_parse(a->pos[2], &to, e);
	if (st == KM_OK)
		st = km_request_set_state(cli->ctx, a->pos[0], (uint32_t)v, to, ui_arg(a, "reason"), id, e);
	return st != KM_OK ? st : opened(cli, id, e);
}

km_status ui_cmd_key_compromise(ui_cli *cli, const ui_args *a, km_err *e)
{
	char key[KM_KEY_NAME_MAX + 1], id[KM_REQUEST_ID_MAX];
	uint32_t v;
	km_status st = key_at_version(a->pos[0], key, sizeof key, &v, e);
	if (st == KM_OK)
		st = km_key_compromise(cli->ctx, key, v, ui_arg(a, "reason"), id, e);
	if (st != KM_OK)
		return st;
	if (!cli->json) {
		ui_print_line("%s version %u is compromised: nothing more is encrypted under it, and "
		              "decrypting needs an explicit override", key, v);
		/* what its data went into: the lineage impact, counted (the
		 * compromise stands even if the count cannot be made) */
		km_lineage_impact_summary sum;
		km_err ie;
		km_err_clear(&ie);
		if (km_lineage_impact(cli->ctx, key, v, 0, NULL, NULL, &sum, &ie) == KM_OK)
			ui_print_line("impact: %" PRIu64 " lineage node%s downstream (%" PRIu64 " model%s, %" PRIu64
			              " endpoint%s); see keyward lineage impact %s@%u", sum.total,
			              sum.total == 1 ? "" : "s", sum.counts[KM_LN_MODEL],
			              sum.counts[KM_LN_MODEL] == 1 ? "" : "s", sum.counts[KM_LN_ENDPOINT],
			              sum.counts[KM_LN_ENDPOINT] == 1 ? "" : "s", key, v);
	}
	return opened(cli, id, e);
}

static int print_asset(void *c, const km_asset_info *as)
{
	json_t *arr = c;
	if (arr) {
		json_t *o = json_object();
		json_object_set_new(o, "id", json_integer(as->id));
		ui_json_set_text(o, "kind", as->kind);
		ui_json_set_text(o, "name", as->name);
		ui_json_set_text(o, "version", as->version);
		json_array_append_new(arr, o);
	} else {
		ui_print_line("  %s:%s@%s (asset %" PRId64 ")", as->kind, as->name, as->version, as->id);
	}
	return 0;
}

/* What a destruction makes unrecoverable, then a typed confirmation
 * (or --yes). */
static km_status confirm_destroy(ui_cli *cli, const ui_args *a, const char *key, uint32_t v, km_err *e)
{
	km_asset_query q = {.key_name = key, .kek_version = v, .limit = 1000};
	if (!cli->json)
		ui_print_line("destroying %s version %u makes these assets unrecoverable:", key, v);
	json_t *arr = cli->json ? json_array() : NULL;
	km_status st = km_asset_list(cli->ctx, &q, print_asset, arr, e);
	if (st == KM_OK && arr)
		st = ui_json_print(json_pack("{s:o}", "unrecoverable", arr), e);
	else
		json_decref(arr);
	if (st != KM_OK || ui_arg_flag(a, "yes"))
		return st;
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty)
		return km_fail(e, KM_EUSAGE, "key destroy asks for confirmation on a terminal; give --yes to "
		               "confirm without one");
	char line[KM_KEY_NAME_MAX + 8] = "";
	fprintf(tty, "Type the key name (%s) to open the destruction request: ", key);
	fflush(tty);
	if (!fgets(line, sizeof line, tty))
		line[0] = '\0';
	fclose(tty);
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, key) != 0)
		return km_fail(e, KM_EUSAGE, "not confirmed: nothing was requested");
	return KM_OK;
}

km_status ui_cmd_key_destroy(ui_cli *cli, const ui_args *a, km_err *e)
{
	char key[KM_KEY_NAME_MAX + 1], id[KM_REQUEST_ID_MAX];
	uint32_t v;
	km_status st = key_at_version(a->pos[0], key, sizeof key, &v, e);
	if (st == KM_OK)
		st = confirm_destroy(cli, a, key, v, e);
	if (st == KM_OK)
		st = km_request_destroy(cli->ctx, key, v, ui_arg(a, "reason"), id, e);
	return st != KM_OK ? st : opened(cli, id, e);
}

km_status ui_cmd_key_cancel_destroy(ui_cli *cli, const ui_args *a, km_err *e)
{
	char key[KM_KEY_NAME_MAX + 1], id[KM_REQUEST_ID_MAX];
	uint32_t v;
	km_status st = key_at_version(a->pos[0], key, sizeof key, &v, e);
	if (st == KM_OK)
		st = km_request_cancel_destroy(cli->ctx, key, v, ui_arg(a, "reason"), id, e);
	return st != KM_OK ? st : opened(cli, id, e);
}

km_status ui_cmd_user_role(ui_cli *cli, const ui_args *a, km_err *e)
{
	int grant = strcmp(a->pos[0], "grant") == 0;
	if (!grant && strcmp(a->pos[0], "revoke") != 0)
		return km_fail(e, KM_EUSAGE, "user role: say grant or revoke, not '%s'", a->pos[0]);
	unsigned roles;
	char id[KM_REQUEST_ID_MAX];
	km_status st = km_roles_parse(a->pos[2], &roles, e);
	if (st == KM_OK)
		st = km_request_role(cli->ctx, a->pos[1], roles, grant, ui_arg(a, "reason"), id, e);
	return st != KM_OK ? st : opened(cli, id, e);
}

/* ---------------------------------------------------------------- reading */

typedef struct listing {
	json_t *arr;
	ui_table *t;
	km_status st;
	km_err *e;
} listing;

static int list_row(void *c, const km_request_info *r)
{
	listing *l = c;
	if (l->arr) {
		json_array_append_new(l->arr, request_json(r));
		return 0;
	}
	char created[32], sigs[32];
	snprintf(sigs, sizeof sigs, "%u/%u", r->approvals, r->quorum);
	const char *cells[] = {r->id, km_request_kind_name(r->kind), km_request_state_name(r->state), sigs,
	                       r->risk.tier, r->requester, ui_time_str(r->created, created), r->summary};
	l->st = ui_table_add(l->t, cells, l->e);
	return l->st != KM_OK;
}

km_status ui_cmd_request_list(ui_cli *cli, const ui_args *a, km_err *e)
{
	static const char *const hdr[] = {"ID", "KIND", "STATE", "SIGNED", "RISK", "REQUESTER", "CREATED", "WHAT"};
	km_request_query q = {.inbox = ui_arg_flag(a, "inbox"), .pending_only = !ui_arg_flag(a, "all")};
	listing l = {cli->json ? json_array() : NULL, cli->json ? NULL : ui_table_new(8, hdr), KM_OK, e};
	km_status st = km_request_list(cli->ctx, &q, list_row, &l, e);
	if (st == KM_OK)
		st = l.st;
	if (st == KM_OK)
		return ui_listing_emit(l.arr, l.t, e);
	json_decref(l.arr);
	ui_table_free(l.t);
	return st;
}

static int approval_json(void *c, const km_approval_info *ap)
{
	json_t *o = json_object();
	ui_json_set_text(o, "approver", ap->approver);
	json_object_set_new(o, "time", ui_json_time(ap->time));
	json_object_set_new(o, "decision", json_string(ap->approve ? "approve" : "reject"));
	ui_json_set_text(o, "reason", ap->reason);
	json_object_set_new(o, "signature", ap->signature[0] ? json_string(ap->signature) : json_null());
	json_object_set_new(o, "valid", json_boolean(ap->valid));
	ui_json_set_text(o, "problem", ap->problem);
	json_array_append_new(c, o);
	return 0;
}

static int approval_text(void *c, const km_approval_info *ap)
{
	char t[32];
	(void)c;
	if (ap->approve)
		ui_print_line("  %s approved at %s: %s%s%s", ap->approver, ui_time_str(ap->time, t),
		              ap->valid ? "valid" : "NOT VALID", ap->valid ? "" : " - ", ap->problem);
	else
		ui_print_line("  %s rejected at %s: %s", ap->approver, ui_time_str(ap->time, t), ap->reason);
	return 0;
}

/* Assets under the request's key version(s), for show. */
static void affected(ui_cli *cli, const km_request_info *r, json_t *doc)
{
	char key[KM_KEY_NAME_MAX + 1];
	km_err ignored;
	if (strncmp(r->object, "key:", 4) != 0)
		return;
	snprintf(key, sizeof key, "%s", r->object + 4);
	char *at = strrchr(key, '@');
	uint32_t v = at ? (uint32_t)strtoul(at + 1, NULL, 10) : 0;
	if (at)
		*at = '\0';
	km_asset_query q = {.key_name = key, .kek_version = v, .limit = 20};
	json_t *arr = doc ? json_array() : NULL;
	if (!doc)
		ui_print_line("affected assets (%" PRIu64 ", the newest 20 shown):", r->assets);
	km_asset_list(cli->ctx, &q, print_asset, arr, &ignored);
	if (doc)
		json_object_set_new(doc, "affected_assets", arr);
}

km_status ui_cmd_request_show(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_request_info r;
	km_status st = km_request_get(cli->ctx, a->pos[0], &r, e);
	if (st != KM_OK)
		return st;
	if (cli->json) {
		json_t *doc = request_json(&r), *sigs = json_array();
		st = km_request_approvals(cli->ctx, r.id, approval_json, sigs, e);
		json_object_set_new(doc, "signatures", sigs);
		affected(cli, &r, doc);
		if (st != KM_OK) {
			json_decref(doc);
			return st;
		}
		return ui_json_print(doc, e);
	}
	char t1[32], t2[32];
	ui_print_line("request %s: %s, %s", r.id, km_request_kind_name(r.kind), km_request_state_name(r.state));
	ui_print_line("what changes: %s", r.summary);
	ui_print_line("requested by %s at %s%s%s", r.requester, ui_time_str(r.created, t1), r.reason[0] ? ": " : "",
	              r.reason);
	ui_print_line("expires %s; digest %s", ui_time_str(r.expires, t2), r.digest);
	ui_print_line("risk %s (score %d):", r.risk.tier, r.risk.score);
	for (size_t i = 0; i < r.risk.nfactors; i++)
		ui_print_line("  %-12s %+d  %s", r.risk.factors[i].name, r.risk.factors[i].points, r.risk.factors[i].detail);
	affected(cli, &r, NULL);
	ui_print_line("signatures: %u valid of %u needed", r.approvals, r.quorum);
	return km_request_approvals(cli->ctx, r.id, approval_text, NULL, e);
}

/* ---------------------------------------------------------------- deciding */

/* The request as it is after a decision. */
static km_status decided(ui_cli *cli, const char *id, const char *verb, km_err *e)
{
	km_request_info r;
	km_status st = km_request_get(cli->ctx, id, &r, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(request_json(&r), e);
	ui_print_line("%s request %s: now %s, %u of %u approvals", verb, r.id, km_request_state_name(r.state),
	              r.approvals, r.quorum);
	if (r.state == KM_RS_APPROVED && strcmp(verb, "executed") != 0)
		ui_print_line("the quorum is met: `keyward request execute %s` carries it out", r.id);
	return KM_OK;
}

km_status ui_cmd_request_approve(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_request_approve(cli->ctx, a->pos[0], e);
	return st != KM_OK ? st : decided(cli, a->pos[0], "approved", e);
}

km_status ui_cmd_request_reject(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_request_reject(cli->ctx, a->pos[0], ui_arg(a, "reason"), e);
	return st != KM_OK ? st : decided(cli, a->pos[0], "rejected", e);
}

km_status ui_cmd_request_cancel(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_request_cancel(cli->ctx, a->pos[0], e);
	return st != KM_OK ? st : decided(cli, a->pos[0], "cancelled", e);
}

km_status ui_cmd_request_execute(ui_cli *cli, const ui_args *a, km_err *e)
{
	/* A rotation's job runs inside; its progress on stderr (progress.h). */
	ui_progress *p = ui_progress_new(stderr, isatty(STDERR_FILENO), NULL, 0);
	km_status st = km_request_execute(cli->ctx, a->pos[0], p ? ui_progress_cb : NULL, p, e);
	ui_progress_end(p);
	return st != KM_OK ? st : decided(cli, a->pos[0], "executed", e);
}

km_status ui_cmd_request_verify(ui_cli *cli, const ui_args *a, km_err *e)
{
	char report[4096];
	km_status st = km_request_verify(cli->ctx, a->pos[0], report, sizeof report, e);
	if (st != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(json_pack("{s:s,s:b,s:s}", "id", a->pos[0], "intact", 1, "report", report), e);
	for (char *save = NULL, *line = strtok_r(report, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		ui_print_line("%s", line);
	ui_print_line("request %s: intact", a->pos[0]);
	return KM_OK;
}

km_status ui_cmd_request_export(ui_cli *cli, const ui_args *a, km_err *e)
{
	km_status st = km_request_export(cli->ctx, a->pos[0], a->pos[1], e);
	if (st != KM_OK)
		return st;
	ui_print_line("wrote request.json, digest.bin, the signatures and public keys, and VERIFY.txt to %s",
	              a->pos[1]);
	return KM_OK;
}
