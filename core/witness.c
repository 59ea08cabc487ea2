/*
 * witness.c — tlog-witness request bodies and cosignature checks
 * (witness.h).  The proofs are audit.c's stored nodes and merkle.c's
 * verification; the signatures are OpenSSL's Ed25519.
 */
#include "witness.h"
#include "audit.h"
#include "merkle.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH "\xe2\x80\x94"
#define NOTE_SIG_COSIGN 0x04         /* signed-note type: timestamped Ed25519 cosignature */
#define COSIG_BYTES (4 + 8 + 64)     /* key ID, timestamp, Ed25519 signature */

static int b64_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

/* Standard base64 with padding, strictly (no spaces, no stray '='); returns
 * the decoded length, or -1.  out holds at least 3 * n / 4 bytes. */
static long b64_decode(const char *in, size_t n, uint8_t *out)
{
	if (n == 0 || n % 4 != 0)
		return -1;
	size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_char((unsigned char)in[i]))
			return -1;
	int got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (got < 0)
		return -1;
	return (long)got - (long)pad;
}

static void key_id(const char *name, const uint8_t pub[32], uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	uint8_t t = NOTE_SIG_COSIGN;
	memset(out, 0, 32);
	if (m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(m, name, strlen(name)) == 1 && EVP_DigestUpdate(m, "\n", 1) == 1 &&
	    EVP_DigestUpdate(m, &t, 1) == 1 && EVP_DigestUpdate(m, pub, 32) == 1)
		EVP_DigestFinal_ex(m, out, NULL);
	EVP_MD_CTX_free(m);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A key name: non-empty, no spaces, controls or '+' (c2sp.org/signed-note). */
static int good_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == '+' || s[i] == 0x7f)
			return 0;
	return 1;
}

km_status witness_vkey_parse(const char *vkey, char *name, size_t cap, uint32_t *id, uint8_t pub[32],
                             km_err *e)
{
	const char *p1 = strchr(vkey, '+');
	const char *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
	if (!p1 || !p2)
		return km_fail(e, KM_EUSAGE, "a verifier key has the form NAME+KEYID+BASE64 (the witness "
		               "operator gives it)");
	size_t nl = (size_t)(p1 - vkey);
	if (!good_name(vkey, nl) || nl >= cap)
		return km_fail(e, KM_EUSAGE, "the key name before the first '+' must be 1 to %zu characters "
		               "without spaces", cap - 1);
	if (p2 - p1 - 1 != 8)
		return km_fail(e, KM_EUSAGE, "the key ID between the '+' signs must be 8 hex digits");
	uint32_t want = 0;
	for (const char *h = p1 + 1; h < p2; h++) {
		int c = (unsigned char)*h, v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return km_fail(e, KM_EUSAGE, "the key ID between the '+' signs must be 8 lower-case "
			               "hex digits");
		want = want << 4 | (uint32_t)v;
	}
	uint8_t raw[64];
	size_t bl = strlen(p2 + 1);
	long n = bl <= 4 * (sizeof raw / 3) ? b64_decode(p2 + 1, bl, raw) : -1;
	if (n < 0)
		return km_fail(e, KM_EUSAGE, "the key after the second '+' is not base64");
	if (n != 33 || raw[0] != NOTE_SIG_COSIGN)
		return km_fail(e, KM_EUSAGE, "the key is not an Ed25519 cosignature key (signature type "
		               "0x04 and 32 bytes, c2sp.org/tlog-cosignature)");
	memcpy(name, vkey, nl);
	name[nl] = '\0';
	uint8_t d[32];
	key_id(name, raw + 1, d);
	if (be32(d) != want)
		return km_fail(e, KM_EUSAGE, "the key ID %08" PRIx32 " does not belong to this name and key "
		               "(it should be %08" PRIx32 "): the verifier key was altered or mis-copied",
		               want, be32(d));
	*id = want;
	memcpy(pub, raw + 1, 32);
	return KM_OK;
}

km_status witness_request(sqlite3 *db, uint64_t old, uint64_t size, const uint8_t root[32],
                          const char *note, char **body, size_t *len, km_err *e)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_BYTES];
	size_t plen = 0;
	km_status s = KM_OK;
	*body = NULL;
	*len = 0;
	if (old > size)
		return km_fail(e, KM_EUSAGE, "a witness request goes from an older size to a newer one: %" PRIu64
		               " is larger than %" PRIu64, old, size);
	if (old > 0 && old < size) {
		uint8_t old_root[MERKLE_HASH_BYTES];
		merkle_hasher *mh = NULL;
		if ((s = audit_consistency_proof(db, old, size, proof, &plen, e)) != KM_OK ||
		    (s = audit_root_at(db, old, old_root, e)) != KM_OK || (s = merkle_hasher_new(&mh, e)) != KM_OK)
			return s;
		s = merkle_verify_consistency(mh, old, size, old_root, root,
		                              (const uint8_t(*)[MERKLE_HASH_BYTES])proof, plen, e);
		merkle_hasher_free(mh);
		if (s != KM_OK)
			return km_fail(e, KM_EINTEGRITY, "the log cannot prove that its tree of %" PRIu64 " entries "
			               "extends its tree of %" PRIu64 ": entries or stored nodes were altered "
			               "(run `keyward audit verify`)", size, old);
		if (plen > WITNESS_PROOF_LINES_MAX)
			return km_fail(e, KM_EINTERNAL, "a consistency proof of %zu hashes is longer than the "
			               "witness protocol allows", plen);
	}
	size_t nl = strlen(note);
	size_t cap = 32 + plen * 46 + 1 + nl + 1;
	char *b = malloc(cap);
	if (!b)
		return km_fail(e, KM_ENOMEM, "no memory for a witness request");
	size_t at = (size_t)snprintf(b, cap, "old %" PRIu64 "\n", old);
	for (size_t i = 0; i < plen; i++) {
		at += (size_t)EVP_EncodeBlock((unsigned char *)b + at, proof[i], MERKLE_HASH_BYTES);
		b[at++] = '\n';
	}
	b[at++] = '\n';
	memcpy(b + at, note, nl + 1);
	*body = b;
	*len = at + nl;
	return KM_OK;
}

int witness_parse_size(const char *body, size_t len, uint64_t *size)
{
	if (len < 2 || len > 21 || body[len - 1] != '\n' || (body[0] == '0' && len > 2))
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (body[i] < '0' || body[i] > '9')
			return -1;
		unsigned d = (unsigned)(body[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*size = v;
	return 0;
}

/* Ed25519 over "cosignature/v1\ntime <t>\n" || text. */
static int cosig_verifies(const uint8_t pub[32], uint64_t t, const char *text, size_t text_len,
                          const uint8_t sig[64])
{
	char head[64];
	int hl = snprintf(head, sizeof head, "cosignature/v1\ntime %" PRIu64 "\n", t);
	char *msg = malloc((size_t)hl + text_len);
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *v = EVP_MD_CTX_new();
	int ok = 0;
	if (msg && k && v) {
		memcpy(msg, head, (size_t)hl);
		memcpy(msg + hl, text, text_len);
		ok = EVP_DigestVerifyInit(v, NULL, NULL, NULL, k) == 1 &&
		     EVP_DigestVerify(v, sig, 64, (const unsigned char *)msg, (size_t)hl + text_len) == 1;
	}
	EVP_MD_CTX_free(v);
	EVP_PKEY_free(k);
	free(msg);
	return ok;
}

km_status witness_check_cosignatures(const char *answer, size_t len, const char *text, size_t text_len,
                                     const char *name, uint32_t id, const uint8_t pub[32], int64_t now,
                                     witness_cosig *out, size_t cap, size_t *n, km_err *e)
{
	size_t lines = 0, mine = 0;
	const size_t dl = sizeof EM_DASH - 1;
	*n = 0;
	if (len == 0 || answer[len - 1] != '\n')
		return km_fail(e, KM_EIO, "the witness answered 200 without signature lines");
	for (size_t at = 0; at < len;) {
		const char *l = answer + at;
		const char *nlp = memchr(l, '\n', len - at);
		size_t ll = (size_t)(nlp - l);
		at += ll + 1;
		/* "— NAME BASE64" */
		const char *sp = ll > dl + 1 ? memchr(l + dl + 1, ' ', ll - dl - 1) : NULL;
		if (ll >= WITNESS_LINE_MAX || !sp || memcmp(l, EM_DASH " ", dl + 1) != 0 ||
		    !good_name(l + dl + 1, (size_t)(sp - l) - dl - 1))
			return km_fail(e, KM_EIO, "the witness's answer is not note signature lines (line %zu: "
			               "\"%.*s\")", lines + 1, (int)(ll < 60 ? ll : 60), l);
		lines++;
		if (lines > WITNESS_COSIG_MAX)
			return km_fail(e, KM_EIO, "the witness's answer has more than %d signature lines",
			               WITNESS_COSIG_MAX);
		const char *kn = l + dl + 1;
		size_t knl = (size_t)(sp - kn);
		const char *b64 = sp + 1;
		size_t bl = ll - (size_t)(b64 - l);
		uint8_t raw[WITNESS_LINE_MAX];
		long rl = b64_decode(b64, bl, raw);
		if (rl < 4)
			return km_fail(e, KM_EIO, "the witness's signature line %zu is not base64 of a key ID "
			               "and a signature", lines);
		/* Other keys' lines are ignored, as the spec requires. */
		if (!name || strlen(name) != knl || memcmp(name, kn, knl) != 0 || be32(raw) != id)
			continue;
		mine++;
		if (rl != COSIG_BYTES)
			return km_fail(e, KM_EINTEGRITY, "the cosignature by %s is %ld bytes, not the %d of a "
			               "timestamped Ed25519 cosignature", name, rl - 4, COSIG_BYTES - 4);
		uint64_t t = (uint64_t)be32(raw + 4) << 32 | be32(raw + 8);
		if (t > INT64_MAX || (int64_t)t > now + WITNESS_FUTURE_SKEW)
			return km_fail(e, KM_EINTEGRITY, "the cosignature by %s is dated %" PRIu64 ", in the future "
			               "(now %" PRId64 ")", name, t, now);
		if (!cosig_verifies(pub, t, text, text_len, raw + 12))
			return km_fail(e, KM_EINTEGRITY, "the cosignature by %s (key ID %08" PRIx32 ") does not "
			               "verify over this checkpoint: it was altered in transit or made by another "
			               "key; nothing was stored and the cursor stays", name, id);
		if (*n < cap) {
			out[*n].time = (int64_t)t;
			snprintf(out[*n].line, sizeof out[*n].line, "%.*s", (int)ll, l);
			(*n)++;
		}
	}
	if (name && mine == 0)
		return km_fail(e, KM_EINTEGRITY, "the witness answered 200 but with no cosignature by %s "
		               "(key ID %08" PRIx32 "): check verifier_key", name, id);
	return KM_OK;
}
