/*
 * witness.h — the log's side of the C2SP tlog-witness protocol
 * (c2sp.org/tlog-witness, "add-checkpoint"), without the network: verifier
 * keys, request bodies, the size a 409 names, and the check of the
 * cosignatures a 200 carries (c2sp.org/tlog-cosignature, Ed25519, signed
 * note type 0x04).  forward.c sends what these build; docs/audit.md
 * ("Forwarding", witness) describes the exchange.
 *
 * Nothing here is secret: the witness's key is public, and so are the
 * checkpoints and proofs.
 */
#ifndef KM_WITNESS_H
#define KM_WITNESS_H

#include "km.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define WITNESS_PROOF_LINES_MAX 63   /* the spec's cap on consistency proof lines */
#define WITNESS_COSIG_MAX 16         /* signature lines read from one answer */
#define WITNESS_LINE_MAX 512         /* one signature line, NUL included */
#define WITNESS_FUTURE_SKEW 600      /* seconds a cosignature's time may be ahead */

/* Parse a signed-note verifier key for Ed25519 cosignatures,
 *   "<name>+<8 hex digits: key ID>+base64(0x04 || 32-byte Ed25519 key)",
 * and check that the key ID is SHA-256(name || "\n" || 0x04 || key)[:4]
 * (c2sp.org/tlog-cosignature, "Format").  name gets the key name (cap
 * bytes).  KM_EUSAGE with the reason (no key material is secret, so the
 * message may quote the part that is wrong). */
km_status witness_vkey_parse(const char *vkey, char *name, size_t cap, uint32_t *id,
                             uint8_t pub[32], km_err *e);

/* The add-checkpoint request body (c2sp.org/tlog-witness):
 *   "old <old>\n", the RFC 9162 consistency proof from old to size as one
 *   base64 hash per line (none when old is 0 or equals size), "\n", then
 *   note (the checkpoint as a signed note, ending in "\n").
 * The proof comes from the log's stored nodes and is verified here against
 * the root at old (from the stored nodes) and root (the signed head's)
 * before it is sent, so a witness refusing it (422) holds another tree.
 * *body is malloc'd.  KM_EUSAGE if old > size; KM_EINTEGRITY if the proof
 * does not verify (run audit verify). */
km_status witness_request(sqlite3 *db, uint64_t old, uint64_t size, const uint8_t root[32],
                          const char *note, char **body, size_t *len, km_err *e);

/* The body of a 409 answer: a decimal size with no leading zero, then
 * "\n" (text/x.tlog.size).  0 on success, -1 if it is anything else. */
int witness_parse_size(const char *body, size_t len, uint64_t *size);

/* One verified cosignature. */
typedef struct witness_cosig {
	int64_t time;                  /* its timestamp (Unix seconds) */
	char line[WITNESS_LINE_MAX];   /* the signature line, without its newline */
} witness_cosig;

/* Check a 200 answer: one or more note signature lines
 * ("\xe2\x80\x94 <name> <base64>\n").  Lines of other keys are ignored (the
 * spec says to); with a key (name != NULL) every line with its name and key
 * ID must be a valid Ed25519 cosignature over
 *   "cosignature/v1\ntime <t>\n" || text
 * where text is the checkpoint's note text (up to, not including, the
 * blank line), with a time no more than WITNESS_FUTURE_SKEW seconds after
 * now, and at least one must be there.  The verified ones go to
 * out[0..*n).  KM_EIO: the answer is not signature lines at all;
 * KM_EINTEGRITY: a cosignature by the key does not verify, is from the
 * future, or there is none.  Without a key: the lines are only checked
 * for shape, *n = 0. */
km_status witness_check_cosignatures(const char *answer, size_t len, const char *text,
                                     size_t text_len, const char *name, uint32_t id,
                                     const uint8_t pub[32], int64_t now, witness_cosig *out,
                                     size_t cap, size_t *n, km_err *e);

#endif
