/*
 * cli_auditproof.c — `keyward audit checkpoint|prove|export`: the evidence
 * an auditor takes away (core/auditproof.h does the work; this file words
 * it).  Proofs are JSON whatever --json says: they are for programs.
 */
#include "cli.h"
#include "auditproof.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static json_t *b64_hash(const uint8_t h[AUDIT_HASH_BYTES])
{
	char buf[4 * ((AUDIT_HASH_BYTES + 2) / 3) + 1];
	EVP_EncodeBlock((unsigned char *)buf, h, AUDIT_HASH_BYTES);
	return json_string(buf);
}

static json_t *b64_path(const km_audit_proof *p)
{
	json_t *a = json_array();
	for (size_t i = 0; i < p->len; i++)
		json_array_append_new(a, b64_hash(p->path[i]));
	return a;
}

/* A tree as printed: size, root, and the signed note when there is one. */
static json_t *tree_json(const km_audit_checkpoint *cp)
{
	json_t *o = json_pack("{s:I,s:o,s:b}", "size", (json_int_t)cp->size, "root", b64_hash(cp->root),
	                      "signed", cp->is_signed);
	if (cp->is_signed)
		json_object_set_new(o, "checkpoint", json_string(cp->note));
	return o;
}

km_status ui_cmd_audit_checkpoint(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)a;
	km_audit_checkpoint *cp = malloc(sizeof *cp);
	if (!cp)
		return km_fail(e, KM_ENOMEM, "out of memory");
	km_status st = km_audit_checkpoint_get(cli->ctx, cp, e);
	if (st == KM_OK) {
		if (cli->json) {
			char vkey[KM_AUDIT_VKEY_MAX];
			uint32_t id;
			if ((st = km_audit_note_vkey(cli->ctx, vkey, sizeof vkey, &id, e)) == KM_OK) {
				char idh[9];
				snprintf(idh, sizeof idh, "%08" PRIx32, id);
				json_t *o = tree_json(cp);
				json_object_set_new(o, "time", json_integer((json_int_t)cp->time));
				json_object_set_new(o, "key_id", json_string(idh));
				json_object_set_new(o, "verifier_key", json_string(vkey));
				st = ui_json_print(o, e);
			}
		} else {
			/* The note is ASCII but for the em dash of its signature
			 * line, which the format requires: printed as it is. */
			fputs(cp->note, stdout);
		}
	}
	free(cp);
	return st;
}

km_status ui_cmd_audit_prove(ui_cli *cli, const ui_args *a, km_err *e)
{
	const char *from = ui_arg(a, "from"), *to = ui_arg(a, "to"), *size = ui_arg(a, "size");
	uint64_t x = 0, y = 0;
	km_status st;

	if (from || to) {
		if (a->npos > 0 || size)
			return km_fail(e, KM_EUSAGE, "give either SEQ [--size N] (inclusion) or --from N --to M "
			               "(consistency), not both");
		if (!from)
			return km_fail(e, KM_EUSAGE, "--to needs --from: the older tree size");
		if ((st = ui_parse_u64(from, "--from", 0, UINT64_MAX, &x, e)) != KM_OK ||
		    (to && (st = ui_parse_u64(to, "--to", 1, UINT64_MAX, &y, e)) != KM_OK))
			return st;
	} else {
		if (a->npos != 1)
			return km_fail(e, KM_EUSAGE, "give the entry to prove (SEQ), or --from N --to M for a "
			               "consistency proof");
		if ((st = ui_parse_u64(a->pos[0], "SEQ", 1, UINT64_MAX, &x, e)) != KM_OK ||
		    (size && (st = ui_parse_u64(size, "--size", 1, UINT64_MAX, &y, e)) != KM_OK))
			return st;
	}
	km_audit_proof *p = malloc(sizeof *p);
	if (!p)
		return km_fail(e, KM_ENOMEM, "out of memory");
	json_t *o = NULL;
	if (from) {
		if ((st = km_audit_prove_consistency(cli->ctx, x, y, p, e)) == KM_OK)
			o = json_pack("{s:s,s:I,s:I,s:o,s:o,s:o}", "type", "consistency", "first", (json_int_t)p->first,
			              "second", (json_int_t)p->cp.size, "first_tree", tree_json(&p->first_cp),
			              "second_tree", tree_json(&p->cp), "proof", b64_path(p));
	} else {
		if ((st = km_audit_prove_inclusion(cli->ctx, x, y, p, e)) == KM_OK)
			o = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o,s:o}", "type", "inclusion", "seq", (json_int_t)p->seq,
			              "leaf_index", (json_int_t)(p->seq - 1), "tree_size", (json_int_t)p->cp.size,
			              "leaf_hash", b64_hash(p->leaf_hash), "tree", tree_json(&p->cp), "proof",
			              b64_path(p));
	}
	free(p);
	return st == KM_OK ? ui_json_print(o, e) : st;
}

km_status ui_cmd_audit_export(ui_cli *cli, const ui_args *a, km_err *e)
{
	uint64_t from_size;
	km_status st = ui_arg_u64(a, "from-size", 0, 1, UINT64_MAX, &from_size, e);
	if (st != KM_OK)
		return st;
	km_audit_export_result r;
	if ((st = km_audit_export(cli->ctx, a->pos[0], ui_arg(a, "since"), from_size, &r, e)) != KM_OK)
		return st;
	if (cli->json)
		return ui_json_print(json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "dir", a->pos[0], "first_seq",
		                               (json_int_t)r.first_seq, "last_seq", (json_int_t)r.last_seq,
		                               "events", (json_int_t)r.events, "start_size",
		                               (json_int_t)r.start_size, "witnessed_size",
		                               (json_int_t)r.witnessed_size),
		                     e);
	if (r.events)
		ui_print_line("exported entries %" PRIu64 "..%" PRIu64 " (%" PRIu64 " events) to %s", r.first_seq,
		              r.last_seq, r.events, a->pos[0]);
	else
		ui_print_line("no events in the range; exported the checkpoints to %s", a->pos[0]);
	if (r.start_size)
		ui_print_line("checkpoints: size %" PRIu64 " (newest) and %" PRIu64 " (before the range)",
		              r.last_seq, r.start_size);
	else
		ui_print_line("checkpoint: size %" PRIu64, r.last_seq);
	if (r.witnessed_size)
		ui_print_line("cosigned by a witness: size %" PRIu64 " (checkpoint.witnessed)", r.witnessed_size);
	ui_print_line("check it anywhere: python3 verify_audit_export.py %s", a->pos[0]);
	return KM_OK;
}
