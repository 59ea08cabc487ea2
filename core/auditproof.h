/*
 * auditproof.h — evidence that leaves the host: signed checkpoints, RFC 9162
 * proofs and the audit export, for auditors who check them elsewhere with
 * nothing but the audit public key (docs/audit.md, "Evidence for
 * outsiders"; docs/verify_audit_export.py is the offline checker).
 *
 * A checkpoint is a C2SP signed note (c2sp.org/signed-note) whose text is
 * the C2SP tlog-checkpoint body keyward's tree heads already sign:
 *
 *   keyward/<deployment id>          origin (also the note's key name)
 *   <tree size>
 *   <base64 root>
 *   time <unix seconds>              extension line
 *   <blank line>
 *   — keyward/<deployment id> base64(key ID[4] || DER ECDSA signature)
 *
 * The signature is the stored head's own (ECDSA P-256 over SHA-256 of the
 * text, made by the HSM audit key), converted from raw r||s to DER: signed
 * note type 0x02, whose key ID is the first four bytes of SHA-256 of the
 * DER SubjectPublicKeyInfo.  Nothing is signed anew: the HSM is not used.
 *
 * Authorisation: checkpoints and proofs are reads of the log
 * (KM_ACT_AUDIT_READ, audited when refused or failed, like every read);
 * an export is KM_ACT_AUDIT_EXPORT (auditors and administrators) and is
 * recorded as an audit.export event when it succeeds.
 *
 * Every proof handed out has been verified against its root first (the
 * stored nodes are derived data); a proof that does not verify is
 * KM_EINTEGRITY, never output.
 */
#ifndef KM_AUDITPROOF_H
#define KM_AUDITPROOF_H

#include "keyward.h"
#include "audit_types.h"

#define KM_AUDIT_PROOF_MAX 65        /* hashes in the longest proof */
#define KM_AUDIT_NOTE_MAX 1024       /* a checkpoint note, NUL included */
#define KM_AUDIT_VKEY_MAX 512        /* a note verifier key, NUL included */

/* A tree head as an outsider sees it. */
typedef struct km_audit_checkpoint {
	uint64_t size;
	uint8_t root[AUDIT_HASH_BYTES];
	int64_t time;                    /* Unix seconds, from the extension line */
	int is_signed;                   /* 1: a stored head at this size; note is set */
	char note[KM_AUDIT_NOTE_MAX];    /* the signed note ("" when not signed) */
} km_audit_checkpoint;

/* The newest signed tree head as a signed note.  KM_ENOTFOUND when the log
 * has no signed head yet. */
km_status km_audit_checkpoint_get(km_ctx *ctx, km_audit_checkpoint *out, km_err *e);

/* The signed-note verifier key of the audit key,
 *   "<origin>+<8 hex digits of the key ID>+base64(0x02 || DER SPKI)"
 * (the form note verifiers in the Go ecosystem take), and its key ID. */
km_status km_audit_note_vkey(km_ctx *ctx, char *vkey, size_t cap, uint32_t *key_id, km_err *e);

/* An RFC 9162 proof, hashes leaf-most first. */
typedef struct km_audit_proof {
	uint64_t seq;                    /* inclusion: the entry (leaf index seq - 1) */
	uint8_t leaf_hash[AUDIT_HASH_BYTES];
	uint64_t first;                  /* consistency: the older size */
	km_audit_checkpoint first_cp;    /* consistency: the older tree */
	km_audit_checkpoint cp;          /* the tree proven against (size = tree size) */
	size_t len;
	uint8_t path[KM_AUDIT_PROOF_MAX][AUDIT_HASH_BYTES];
} km_audit_proof;

/* Inclusion proof of entry seq in the tree of the first `size` entries
 * (0: the newest signed head's size).  out->cp carries that tree's root:
 * the signed head's when one was made at exactly that size (with its note),
 * else the root computed from the stored nodes (is_signed 0).  Reads
 * O(log size) stored nodes.  KM_EUSAGE: seq 0 or beyond size, size beyond
 * the log; KM_ENOTFOUND: no signed head yet (size 0); KM_EINTEGRITY: a
 * stored node is missing or damaged. */
km_status km_audit_prove_inclusion(km_ctx *ctx, uint64_t seq, uint64_t size, km_audit_proof *out,
                                   km_err *e);

/* Consistency proof from the tree of the first `first` entries to the
 * first `second` (0: the newest signed head's size); both roots in out
 * (first_cp, cp).  KM_EUSAGE if first > second or second beyond the log. */
km_status km_audit_prove_consistency(km_ctx *ctx, uint64_t first, uint64_t second,
                                     km_audit_proof *out, km_err *e);

typedef struct km_audit_export_result {
	uint64_t first_seq;              /* first exported entry (last_seq + 1: none) */
	uint64_t last_seq;               /* = the newest checkpoint's size */
	uint64_t start_size;             /* size of checkpoint.start (0: none) */
	uint64_t witnessed_size;         /* size of checkpoint.witnessed (0: none) */
	uint64_t events;
} km_audit_export_result;

/* Write the evidence for entries from the first whose time is at or after
 * `since` (an RFC 3339 prefix; NULL: from entry 1) up to the newest signed
 * head into directory dir:
 *   events.jsonl        one event per line, exactly the stored (hashed) text
 *   checkpoint          the newest signed head (signed note)
 *   checkpoint.start    the newest signed head before the range, if any
 *   audit-pub.pem       the audit public key; audit-key.vkey its note key
 *   proofs.json         the prefix subtrees before the range, the
 *                       consistency proof start -> newest, and inclusion
 *                       proofs of the range's first and last entries
 *   (from_size > 0: also a consistency proof from_size -> newest, for an
 *   auditor who kept a checkpoint of that size from before the range)
 *   checkpoint.witnessed  the newest head at or below the newest that a
 *                       witness cosigned (forward.h), with the witnesses'
 *                       signature lines; proofs.json then also holds the
 *                       consistency proof from its size to the newest
 * dir must not exist or be empty.  The files are written into a private
 * temporary directory next to it (mode 0700) and renamed into place in
 * one step, so dir never holds half an export.  KM_EEXISTS: dir is not
 * empty; KM_ENOTFOUND: no signed head yet; KM_EIO: a file system error. */
km_status km_audit_export(km_ctx *ctx, const char *dir, const char *since, uint64_t from_size,
                          km_audit_export_result *r, km_err *e);

#endif
