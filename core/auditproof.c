/*
 * auditproof.c — signed checkpoints, RFC 9162 proofs and the audit export
 * (auditproof.h).  The hashing and the proofs are merkle.c's, the storage
 * audit.c's; this file authorises, formats, checks what it hands out
 * against the signed roots, and writes the export directory.
 */
#include "auditproof.h"
#include "ctx.h"
#include "hsm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define HB AUDIT_HASH_BYTES
#define ORIGIN_CAP 256
#define EM_DASH "\xe2\x80\x94" /* U+2014, which opens a signed note's signature line */
#define NOTE_SIG_ECDSA 0x02    /* signed-note signature type: ECDSA, SHA-256, DER */

/* ---------------------------------------------------------------- helpers */

static void b64(const uint8_t *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* One snapshot for everything a call reads, whatever the audit readers
 * would open on their own. */
static km_status snap_begin(sqlite3 *db, int *opened, km_err *e)
{
	*opened = 0;
	if (!sqlite3_get_autocommit(db))
		return KM_OK;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return km_fail(e, KM_EDB, "starting a read transaction: %s", sqlite3_errmsg(db));
	*opened = 1;
	return KM_OK;
}

static void snap_end(sqlite3 *db, int opened)
{
	if (opened)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* DER SubjectPublicKeyInfo of the audit key (malloc'd). */
static km_status pub_der(EVP_PKEY *pub, unsigned char **der, size_t *len, km_err *e)
{
	*der = NULL;
	int n = i2d_PUBKEY(pub, der);
	if (n <= 0)
		return km_fail(e, KM_EINTERNAL, "cannot encode the audit public key");
	*len = (size_t)n;
	return KM_OK;
}

/* Signed-note key ID for type 0x02: SHA-256 of the DER SPKI, first four
 * bytes, big-endian (c2sp.org/signed-note, "Signature types"). */
static km_status note_key_id(EVP_PKEY *pub, uint32_t *id, km_err *e)
{
	unsigned char *der;
	size_t len = 0;
	uint8_t d[32];
	km_status s = pub_der(pub, &der, &len, e);
	if (s != KM_OK)
		return s;
	if (EVP_Digest(der, len, d, NULL, EVP_sha256(), NULL) != 1)
		s = km_fail(e, KM_EINTERNAL, "SHA-256 failed");
	OPENSSL_free(der);
	*id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
	return s;
}

km_status km_audit_note_vkey(km_ctx *ctx, char *vkey, size_t cap, uint32_t *key_id, km_err *e)
{
	char origin[ORIGIN_CAP];
	unsigned char *der, *buf;
	size_t len = 0;
	km_status s = audit_origin(ctx->db, origin, sizeof origin, e);
	if (s != KM_OK || (s = note_key_id(ctx->audit_pub, key_id, e)) != KM_OK ||
	    (s = pub_der(ctx->audit_pub, &der, &len, e)) != KM_OK)
		return s;
	buf = malloc(len + 1);
	char *enc = malloc(4 * ((len + 3) / 3) + 1);
	if (!buf || !enc) {
		s = km_fail(e, KM_ENOMEM, "out of memory");
	} else {
		buf[0] = NOTE_SIG_ECDSA;
		memcpy(buf + 1, der, len);
		b64(buf, len + 1, enc);
		int n = snprintf(vkey, cap, "%s+%08" PRIx32 "+%s", origin, *key_id, enc);
		if (n < 0 || (size_t)n >= cap)
			s = km_fail(e, KM_EUSAGE, "the note verifier key needs %d bytes", n + 1);
	}
	free(buf);
	free(enc);
	OPENSSL_free(der);
	return s;
}

/* The signed note of head h, its signature checked with the audit key
 * first: a stored head is data like any other. */
km_status audit_head_note(EVP_PKEY *pub, const char *origin, const audit_head *h, km_audit_checkpoint *cp,
                          km_err *e)
{
	char text[KM_AUDIT_NOTE_MAX];
	uint8_t der[HSM_SIG_DER_MAX], sigbuf[4 + HSM_SIG_DER_MAX];
	char sig64[4 * ((sizeof sigbuf + 2) / 3) + 1];
	size_t der_len, tlen;
	uint32_t id;
	km_status s;

	memset(cp, 0, sizeof *cp);
	cp->size = h->size;
	memcpy(cp->root, h->root, HB);
	cp->time = h->time;
	if (!(tlen = audit_checkpoint_text(origin, h->size, h->root, h->time, text, sizeof text)))
		return km_fail(e, KM_EINTEGRITY, "the audit origin \"%.64s\" cannot make a checkpoint", origin);
	if ((s = hsm_sig_to_der(h->sig, der, sizeof der, &der_len, e)) != KM_OK)
		return s;
	EVP_MD_CTX *v = EVP_MD_CTX_new();
	int ok = v && EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL, pub) == 1 &&
	         EVP_DigestVerify(v, der, der_len, (const unsigned char *)text, tlen) == 1;
	EVP_MD_CTX_free(v);
	if (!ok)
		return km_fail(e, KM_EINTEGRITY, "the stored tree head at size %" PRIu64 " does not carry a "
		               "valid signature by the audit key; nothing was handed out (run audit verify)",
		               h->size);
	if ((s = note_key_id(pub, &id, e)) != KM_OK)
		return s;
	sigbuf[0] = (uint8_t)(id >> 24);
	sigbuf[1] = (uint8_t)(id >> 16);
	sigbuf[2] = (uint8_t)(id >> 8);
	sigbuf[3] = (uint8_t)id;
	memcpy(sigbuf + 4, der, der_len);
	b64(sigbuf, 4 + der_len, sig64);
	int n = snprintf(cp->note, sizeof cp->note, "%s\n" EM_DASH " %s %s\n", text, origin, sig64);
	if (n < 0 || (size_t)n >= sizeof cp->note)
		return km_fail(e, KM_EINTERNAL, "the checkpoint note does not fit %zu bytes", sizeof cp->note);
	cp->is_signed = 1;
	return KM_OK;
}

/* The tree of the first `size` entries: its signed head's note when one
 * was made at exactly that size, else its root from the stored nodes. */
static km_status checkpoint_at(km_ctx *ctx, const char *origin, uint64_t size, km_audit_checkpoint *cp,
                               km_err *e)
{
	audit_head h;
	int have;
	km_status s = audit_head_at_most(ctx->db, size, &h, &have, e);
	if (s != KM_OK)
		return s;
	if (have && h.size == size)
		return audit_head_note(ctx->audit_pub, origin, &h, cp, e);
	memset(cp, 0, sizeof *cp);
	cp->size = size;
	return audit_root_at(ctx->db, size, cp->root, e);
}

static km_status newest(km_ctx *ctx, const char *origin, km_audit_checkpoint *cp, km_err *e)
{
	audit_head h;
	int have;
	km_status s = audit_head_at_most(ctx->db, UINT64_MAX, &h, &have, e);
	if (s == KM_OK && !have)
		s = km_fail(e, KM_ENOTFOUND, "the audit log has no signed tree head yet");
	return s == KM_OK ? audit_head_note(ctx->audit_pub, origin, &h, cp, e) : s;
}

/* ---------------------------------------------------------------- checkpoint */

static km_status checkpoint_impl(km_ctx *ctx, km_audit_checkpoint *out, km_err *e)
{
	char origin[ORIGIN_CAP];
	int opened;
	km_status s = km_authorize(ctx, KM_ACT_AUDIT_READ, "audit:checkpoint", e);
	if (s != KM_OK || (s = snap_begin(ctx->db, &opened, e)) != KM_OK)
		return s;
	if ((s = audit_origin(ctx->db, origin, sizeof origin, e)) == KM_OK)
		s = newest(ctx, origin, out, e);
	snap_end(ctx->db, opened);
	return s;
}

km_status km_audit_checkpoint_get(km_ctx *ctx, km_audit_checkpoint *out, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_READ, "audit:checkpoint");
	return km_op_end(ctx, checkpoint_impl(ctx, out, e), e);
}

/* ---------------------------------------------------------------- proofs */

/* Inclusion proof of seq in cp's tree, verified against cp's root. */
static km_status inclusion(km_ctx *ctx, merkle_hasher *mh, uint64_t seq, km_audit_proof *p, km_err *e)
{
	audit_row row;
	km_status s;

	if (seq == 0 || seq > p->cp.size)
		return km_fail(e, KM_EUSAGE, "entry %" PRIu64 " is not in a tree of %" PRIu64 " entries",
		               seq, p->cp.size);
	memset(&row, 0, sizeof row);
	if ((s = audit_get(ctx->db, seq, &row, e)) != KM_OK)
		return s;
	/* The leaf from the text, not the stored hash: what is proven is the
	 * event an auditor reads. */
	s = merkle_leaf_hash(mh, row.json, strlen(row.json), p->leaf_hash, e);
	audit_row_free(&row);
	p->seq = seq;
	if (s == KM_OK)
		s = audit_inclusion_proof(ctx->db, seq, p->cp.size, p->path, &p->len, e);
	if (s == KM_OK &&
	    merkle_verify_inclusion(mh, p->leaf_hash, seq - 1, p->cp.size, (const uint8_t(*)[HB])p->path,
	                            p->len, p->cp.root, e) != KM_OK)
		s = km_fail(e, KM_EINTEGRITY, "entry %" PRIu64 " cannot be proven to be in the tree of %" PRIu64
		            " entries: the entry or a stored node on its path was altered (run audit verify)",
		            seq, p->cp.size);
	return s;
}

static km_status consistency(km_ctx *ctx, merkle_hasher *mh, const char *origin, uint64_t first,
                             km_audit_proof *p, km_err *e)
{
	km_status s;
	if (first > p->cp.size)
		return km_fail(e, KM_EUSAGE, "a consistency proof goes from a smaller tree to a larger one: "
		               "%" PRIu64 " is larger than %" PRIu64, first, p->cp.size);
	p->first = first;
	if ((s = checkpoint_at(ctx, origin, first, &p->first_cp, e)) != KM_OK ||
	    (s = audit_consistency_proof(ctx->db, first, p->cp.size, p->path, &p->len, e)) != KM_OK)
		return s;
	if (merkle_verify_consistency(mh, first, p->cp.size, p->first_cp.root, p->cp.root,
	                              (const uint8_t(*)[HB])p->path, p->len, e) != KM_OK)
		return km_fail(e, KM_EINTEGRITY, "the tree of %" PRIu64 " entries cannot be proven consistent "
		               "with the tree of %" PRIu64 ": entries or stored nodes were altered "
		               "(run audit verify)", first, p->cp.size);
	return KM_OK;
}

typedef enum { PROVE_INCLUSION, PROVE_CONSISTENCY } prove_kind;

static km_status prove_impl(km_ctx *ctx, prove_kind kind, uint64_t a, uint64_t size, km_audit_proof *p,
                            const char *obj, km_err *e)
{
	char origin[ORIGIN_CAP];
	merkle_hasher *mh = NULL;
	uint64_t n;
	int opened;
	km_status s = km_authorize(ctx, KM_ACT_AUDIT_READ, obj, e);

	memset(p, 0, sizeof *p);
	if (s != KM_OK || (s = snap_begin(ctx->db, &opened, e)) != KM_OK)
		return s;
	if ((s = audit_origin(ctx->db, origin, sizeof origin, e)) != KM_OK ||
	    (s = audit_size(ctx->db, &n, e)) != KM_OK || (s = merkle_hasher_new(&mh, e)) != KM_OK)
		goto out;
	if (size == 0) {
		s = newest(ctx, origin, &p->cp, e);
	} else if (size > n) {
		s = km_fail(e, KM_EUSAGE, "the audit log has %" PRIu64 " entries; there is no tree of %" PRIu64,
		            n, size);
	} else {
		s = checkpoint_at(ctx, origin, size, &p->cp, e);
	}
	if (s == KM_OK)
		s = kind == PROVE_INCLUSION ? inclusion(ctx, mh, a, p, e) : consistency(ctx, mh, origin, a, p, e);
out:
	merkle_hasher_free(mh);
	snap_end(ctx->db, opened);
	return s;
}

km_status km_audit_prove_inclusion(km_ctx *ctx, uint64_t seq, uint64_t size, km_audit_proof *out, km_err *e)
{
	char obj[48];
	snprintf(obj, sizeof obj, "audit:%" PRIu64, seq);
	km_op_begin(ctx, KM_ACT_AUDIT_READ, obj);
	return km_op_end(ctx, prove_impl(ctx, PROVE_INCLUSION, seq, size, out, obj, e), e);
}

km_status km_audit_prove_consistency(km_ctx *ctx, uint64_t first, uint64_t second, km_audit_proof *out,
                                     km_err *e)
{
	const char *obj = "audit:consistency";
	km_op_begin(ctx, KM_ACT_AUDIT_READ, obj);
	return km_op_end(ctx, prove_impl(ctx, PROVE_CONSISTENCY, first, second, out, obj, e), e);
}

/* ---------------------------------------------------------------- export */

typedef struct exp_dir {
	char tmp[PATH_MAX];
	int dfd;
} exp_dir;

/* A new file in the private temporary directory, mode 0600. */
static km_status exp_open(exp_dir *d, const char *name, FILE **f, km_err *e)
{
	int fd = openat(d->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(*f = fdopen(fd, "w"))) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return km_fail(e, KM_EIO, "cannot create %s/%s: %s", d->tmp, name, strerror(err));
	}
	return KM_OK;
}

static km_status exp_close(exp_dir *d, const char *name, FILE *f, km_err *e)
{
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	int err = errno;
	bad |= fclose(f) != 0;
	if (bad)
		return km_fail(e, KM_EIO, "cannot write %s/%s: %s", d->tmp, name, strerror(err ? err : errno));
	return KM_OK;
}

static km_status exp_write(exp_dir *d, const char *name, const char *text, km_err *e)
{
	FILE *f;
	km_status s = exp_open(d, name, &f, e);
	if (s != KM_OK)
		return s;
	fputs(text, f);
	return exp_close(d, name, f, e);
}

static km_status exp_json(exp_dir *d, const char *name, json_t *doc, km_err *e)
{
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(doc);
	if (!text)
		return km_fail(e, KM_ENOMEM, "out of memory writing %s", name);
	size_t n = strlen(text);
	char *t = realloc(text, n + 2);
	if (!t) {
		free(text);
		return km_fail(e, KM_ENOMEM, "out of memory writing %s", name);
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	km_status s = exp_write(d, name, t, e);
	free(t);
	return s;
}

static json_t *hashes_json(const uint8_t (*h)[HB], size_t n)
{
	json_t *a = json_array();
	char buf[4 * ((HB + 2) / 3) + 1];
	for (size_t i = 0; i < n; i++) {
		b64(h[i], HB, buf);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *hash_json(const uint8_t h[HB])
{
	char buf[4 * ((HB + 2) / 3) + 1];
	b64(h, HB, buf);
	return json_string(buf);
}

typedef struct exp_events {
	FILE *f;
	uint64_t n, next;
	km_status st;
	km_err *e;
} exp_events;

static int exp_event_cb(void *c, const audit_row *r)
{
	exp_events *x = c;
	/* The canonical text never holds a newline (JSON_COMPACT escapes
	 * them); one would split the line the verifier hashes. */
	if (strchr(r->json, '\n')) {
		x->st = km_fail(x->e, KM_EINTEGRITY, "entry %" PRIu64 " holds a raw newline: it is not "
		                "keyward's canonical text (run audit verify)", r->seq);
		return 1;
	}
	fputs(r->json, x->f);
	fputc('\n', x->f);
	x->n++;
	return 0;
}

/* checkpoint.witnessed: the newest head at or below size that a witness
 * cosigned (forward.c keeps only verified cosignatures), as one signed note
 * carrying keyward's signature and the witnesses' lines.  *wsize = 0 and
 * no file when there is none. */
static km_status export_witnessed(km_ctx *ctx, exp_dir *d, const char *origin, uint64_t size,
                                  uint64_t *wsize, km_err *e)
{
	sqlite3_stmt *q = NULL;
	km_status s = KM_OK;
	*wsize = 0;
	if (sqlite3_prepare_v2(ctx->db, "SELECT size, line FROM audit_cosignatures WHERE size = "
	                       "(SELECT max(size) FROM audit_cosignatures WHERE size <= ?1) "
	                       "ORDER BY witness, key_id", -1, &q, NULL) != SQLITE_OK)
		return km_fail(e, KM_EDB, "reading the witnesses' cosignatures: %s", sqlite3_errmsg(ctx->db));
	sqlite3_bind_int64(q, 1, (sqlite3_int64)size);
	char *note = NULL;
	size_t len = 0;
	int rc;
	while (s == KM_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(q, 1);
		if (!note) {
			audit_head h;
			int have;
			km_audit_checkpoint cp;
			*wsize = (uint64_t)sqlite3_column_int64(q, 0);
			if ((s = audit_head_at_most(ctx->db, *wsize, &h, &have, e)) != KM_OK)
				break;
			if (!have || h.size != *wsize) {
				s = km_fail(e, KM_EINTEGRITY, "a witness cosigned a tree of %" PRIu64 " entries, but "
				            "there is no signed head of that size (run audit verify)", *wsize);
				break;
			}
			if ((s = audit_head_note(ctx->audit_pub, origin, &h, &cp, e)) != KM_OK)
				break;
			len = strlen(cp.note);
			if (!(note = malloc(len + 1))) {
				s = km_fail(e, KM_ENOMEM, "out of memory");
				break;
			}
			memcpy(note, cp.note, len + 1);
		}
		size_t ll = line ? strlen(line) : 0;
		char *grown = realloc(note, len + ll + 2);
		if (!grown) {
			s = km_fail(e, KM_ENOMEM, "out of memory");
			break;
		}
		note = grown;
		memcpy(note + len, line, ll);
		len += ll;
		note[len++] = '\n';
		note[len] = '\0';
	}
	sqlite3_finalize(q);
	if (s == KM_OK && note)
		s = exp_write(d, "checkpoint.witnessed", note, e);
	free(note);
	return s;
}

/* Everything but the events' scan, into the open temporary directory. */
static km_status export_files(km_ctx *ctx, exp_dir *d, const char *since, uint64_t from_size,
                              km_audit_export_result *r, km_err *e)
{
	char origin[ORIGIN_CAP], vkey[KM_AUDIT_VKEY_MAX];
	km_audit_checkpoint top, start;
	merkle_hasher *mh = NULL;
	km_audit_proof *p = NULL;
	uint8_t prefix[MERKLE_MAX_LEVELS][HB];
	size_t nprefix;
	uint32_t id;
	char *pem = NULL;
	json_t *doc = NULL;
	km_status s;

	if ((s = audit_origin(ctx->db, origin, sizeof origin, e)) != KM_OK || (s = newest(ctx, origin, &top, e)) != KM_OK)
		return s;
	uint64_t n = top.size, first = 1;
	if (since) {
		/* Stored times end in ".mmmZ"; a trailing Z on a whole second
		 * would sort after them. */
		char t[AUDIT_TIME_LEN + 1];
		snprintf(t, sizeof t, "%s", since);
		size_t tl = strlen(t);
		if (tl && t[tl - 1] == 'Z')
			t[tl - 1] = '\0';
		if ((s = audit_first_since(ctx->db, t, &first, e)) != KM_OK)
			return s;
	}
	if (first == 0 || first > n)
		first = n + 1; /* nothing in the range: the checkpoints alone */
	if (from_size > n)
		return km_fail(e, KM_EUSAGE, "--from-size %" PRIu64 " is beyond the newest signed tree head "
		               "(%" PRIu64 " entries)", from_size, n);
	r->first_seq = first;
	r->last_seq = n;

	/* events.jsonl */
	FILE *f;
	if ((s = exp_open(d, "events.jsonl", &f, e)) != KM_OK)
		return s;
	exp_events x = {.f = f, .e = e};
	if (first <= n)
		s = audit_scan(ctx->db, first, n, exp_event_cb, &x, e);
	if (s == KM_OK)
		s = x.st;
	km_status cs = exp_close(d, "events.jsonl", f, e);
	if (s == KM_OK)
		s = cs;
	if (s != KM_OK)
		return s;
	r->events = x.n;
	if (x.n != n + 1 - first)
		return km_fail(e, KM_EINTEGRITY, "entries %" PRIu64 "..%" PRIu64 " should be %" PRIu64
		               " events but the log holds %" PRIu64 ": entries are missing (run audit verify)",
		               first, n, n + 1 - first, x.n);

	/* checkpoints and key */
	audit_head sh;
	int have;
	if ((s = exp_write(d, "checkpoint", top.note, e)) != KM_OK ||
	    (s = audit_head_at_most(ctx->db, first - 1, &sh, &have, e)) != KM_OK)
		return s;
	memset(&start, 0, sizeof start);
	if (have && (s = audit_head_note(ctx->audit_pub, origin, &sh, &start, e)) == KM_OK)
		s = exp_write(d, "checkpoint.start", start.note, e);
	r->start_size = start.size;
	if (s != KM_OK || (s = export_witnessed(ctx, d, origin, n, &r->witnessed_size, e)) != KM_OK ||
	    (s = km_audit_note_vkey(ctx, vkey, sizeof vkey, &id, e)) != KM_OK)
		return s;
	strcat(vkey, "\n");
	if ((s = exp_write(d, "audit-key.vkey", vkey, e)) != KM_OK)
		return s;
	{
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long len;
		if (!b || PEM_write_bio_PUBKEY(b, ctx->audit_pub) != 1 || (len = BIO_get_mem_data(b, &data)) <= 0 ||
		    !(pem = strndup(data, (size_t)len)))
			s = km_fail(e, KM_EINTERNAL, "cannot encode the audit public key");
		BIO_free(b);
		if (s == KM_OK)
			s = exp_write(d, "audit-pub.pem", pem, e);
		free(pem);
		if (s != KM_OK)
			return s;
	}

	/* proofs.json */
	if ((s = audit_prefix_subtrees(ctx->db, first - 1, prefix, &nprefix, e)) != KM_OK ||
	    (s = merkle_hasher_new(&mh, e)) != KM_OK)
		goto out;
	if (!(p = malloc(sizeof *p))) {
		s = km_fail(e, KM_ENOMEM, "out of memory");
		goto out;
	}
	doc = json_pack("{s:s,s:s,s:I,s:I,s:I,s:{s:I,s:o},s:[],s:[]}", "format", "keyward-audit-export/1",
	                "origin", origin, "tree_size", (json_int_t)n, "first_seq", (json_int_t)first,
	                "last_seq", (json_int_t)n, "prefix", "size", (json_int_t)(first - 1), "subtrees",
	                hashes_json((const uint8_t(*)[HB])prefix, nprefix), "consistency", "inclusion");
	if (!doc) {
		s = km_fail(e, KM_ENOMEM, "out of memory");
		goto out;
	}
	uint64_t froms[3] = {start.size, from_size, r->witnessed_size};
	for (size_t i = 0; i < 3 && s == KM_OK; i++) {
		if (froms[i] == 0 || (i >= 1 && froms[i] == froms[0]) || (i == 2 && froms[2] == froms[1]))
			continue;
		memset(p, 0, sizeof *p);
		p->cp = top;
		if ((s = consistency(ctx, mh, origin, froms[i], p, e)) == KM_OK)
			json_array_append_new(json_object_get(doc, "consistency"),
			                      json_pack("{s:I,s:I,s:o,s:o,s:o}", "first", (json_int_t)froms[i],
			                                "second", (json_int_t)n, "first_root", hash_json(p->first_cp.root),
			                                "second_root", hash_json(top.root), "proof",
			                                hashes_json((const uint8_t(*)[HB])p->path, p->len)));
	}
	uint64_t seqs[2] = {first, n};
	for (size_t i = 0; i < 2 && s == KM_OK && first <= n; i++) {
		if (i == 1 && n == first)
			break;
		memset(p, 0, sizeof *p);
		p->cp = top;
		if ((s = inclusion(ctx, mh, seqs[i], p, e)) == KM_OK)
			json_array_append_new(json_object_get(doc, "inclusion"),
			                      json_pack("{s:I,s:I,s:I,s:o,s:o}", "seq", (json_int_t)seqs[i], "leaf_index",
			                                (json_int_t)(seqs[i] - 1), "tree_size", (json_int_t)n,
			                                "leaf_hash", hash_json(p->leaf_hash), "proof",
			                                hashes_json((const uint8_t(*)[HB])p->path, p->len)));
	}
	if (s == KM_OK) {
		s = exp_json(d, "proofs.json", doc, e);
		doc = NULL;
	}
out:
	json_decref(doc);
	free(p);
	merkle_hasher_free(mh);
	return s;
}

/* Remove the temporary directory and what export_files put in it. */
static void exp_discard(exp_dir *d)
{
	static const char *const names[] = {"events.jsonl", "checkpoint", "checkpoint.start", "audit-key.vkey",
	                                    "audit-pub.pem", "proofs.json", "checkpoint.witnessed"};
	for (size_t i = 0; i < KM_ARRAY_LEN(names); i++)
		unlinkat(d->dfd, names[i], 0);
	close(d->dfd);
	rmdir(d->tmp);
}

static int dir_is_empty(const char *path, int *exists)
{
	struct stat sb;
	*exists = lstat(path, &sb) == 0;
	if (!*exists)
		return 1;
	if (!S_ISDIR(sb.st_mode))
		return 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dp) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	struct dirent *de;
	int empty = 1;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(dp);
	return empty;
}

static km_status export_impl(km_ctx *ctx, const char *dir, const char *since, uint64_t from_size,
                             km_audit_export_result *r, km_err *e)
{
	km_status s = km_authorize(ctx, KM_ACT_AUDIT_EXPORT, "audit", e);
	exp_dir d = {.dfd = -1};
	int exists, opened = 0;

	memset(r, 0, sizeof *r);
	if (s != KM_OK)
		return s;
	if (!dir || !*dir)
		return km_fail(e, KM_EUSAGE, "no export directory given");
	if (since && (!*since || strlen(since) > AUDIT_TIME_LEN || strspn(since, "0123456789-T:.Z") != strlen(since)))
		return km_fail(e, KM_EUSAGE, "--since \"%.40s\" is not an RFC 3339 UTC time or prefix of one "
		               "(e.g. 2026-11-23 or 2026-11-23T12:00:00Z)", since);
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (dl + 32 >= sizeof d.tmp)
		return km_fail(e, KM_EUSAGE, "the export directory's path is too long");
	if (!dir_is_empty(dir, &exists))
		return km_fail(e, KM_EEXISTS, "%s exists and is not an empty directory: an export goes into a "
		               "new or empty directory, never over other files", dir);
	snprintf(d.tmp, sizeof d.tmp, "%.*s.kwexport.XXXXXX", (int)dl, dir);
	if (!mkdtemp(d.tmp)) /* mode 0700 */
		return km_fail(e, KM_EIO, "cannot create a temporary directory beside %s: %s", dir, strerror(errno));
	if ((d.dfd = open(d.tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		s = km_fail(e, KM_EIO, "cannot open %s: %s", d.tmp, strerror(errno));
		rmdir(d.tmp);
		return s;
	}
	if ((s = snap_begin(ctx->db, &opened, e)) == KM_OK) {
		s = export_files(ctx, &d, since, from_size, r, e);
		snap_end(ctx->db, opened);
	}
	if (s == KM_OK && fsync(d.dfd) != 0)
		s = km_fail(e, KM_EIO, "cannot write %s: %s", d.tmp, strerror(errno));
	/* An empty directory is replaced by the rename; a non-empty one (made
	 * meanwhile) refuses it with ENOTEMPTY / EEXIST. */
	if (s == KM_OK && rename(d.tmp, dir) != 0) {
		int err = errno;
		s = (err == ENOTEMPTY || err == EEXIST)
		        ? km_fail(e, KM_EEXISTS, "%s was filled while the export was written; nothing was "
		                  "replaced", dir)
		        : km_fail(e, KM_EIO, "cannot move the export into %s: %s", dir, strerror(err));
	}
	if (s != KM_OK) {
		exp_discard(&d);
		return s;
	}
	close(d.dfd);
	chmod(dir, 0700);
	/* The parent's entry: the rename is durable once its directory is. */
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%.*s", (int)dl, dir);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		parent[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(parent, sizeof parent, ".");
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0) {
		fsync(pfd);
		close(pfd);
	}
	json_t *details = json_pack("{s:I,s:I,s:I,s:I}", "first_seq", (json_int_t)r->first_seq, "last_seq",
	                            (json_int_t)r->last_seq, "events", (json_int_t)r->events, "start_size",
	                            (json_int_t)r->start_size);
	if (details && since)
		json_object_set_new(details, "since", json_string(since));
	/* Recorded after the files are in place: the event is in the next
	 * checkpoint, not in the one it exported. */
	s = km_audit_event(ctx, "audit.export", "audit", "ok", details, e);
	ctx->op_recorded = 1;
	return s;
}

km_status km_audit_export(km_ctx *ctx, const char *dir, const char *since, uint64_t from_size,
                          km_audit_export_result *r, km_err *e)
{
	km_op_begin(ctx, KM_ACT_AUDIT_EXPORT, "audit");
	return km_op_end(ctx, export_impl(ctx, dir, since, from_size, r, e), e);
}
