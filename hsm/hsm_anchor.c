/*
 * hsm_anchor.c — the audit anchor: a few bytes the core keeps on the token,
 * where only a holder of the user PIN can change them.
 *
 * An anchor object is never modified, only replaced (hsm.h, hsm_anchor_write,
 * says why): a write creates a new object, then destroys the ones it saw.  So
 * the token can hold more than one anchor for a moment, or for good after a
 * kill.  Each stored value therefore carries a generation number, and a
 * reader takes the highest.  It also carries a SHA-256 of itself, so that a
 * value the module hands back half-written is recognised and read again
 * instead of being returned.  That digest is for tearing only: anyone who
 * can write the object can recompute it.
 *
 * This file must never destroy an anchor before its successor is on the
 * token, and never return bytes whose digest does not hold.
 */
#include "hsm_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

static const char anchor_label[] = "keyward-anchor";
static const char anchor_app[] = "keyward";

/* The stored CKA_VALUE:
 *   "KWA1" | generation, 8 bytes big-endian | length, 2 bytes big-endian |
 *   the core's bytes | SHA-256 of everything before it */
static const uint8_t anchor_magic[4] = {'K', 'W', 'A', '1'};
#define ANCHOR_HEAD (sizeof anchor_magic + 8 + 2)
#define ANCHOR_DIGEST 32
#define ANCHOR_RAW_MAX (ANCHOR_HEAD + HSM_ANCHOR_MAX + ANCHOR_DIGEST)

/* More than this many anchors is not something a crash leaves behind (each
 * killed write adds at most one, and the next write removes them all). */
#define ANCHOR_OBJECTS_MAX 32

typedef struct anchor_value {
	uint64_t gen;
	size_t len;
	uint8_t data[HSM_ANCHOR_MAX];
} anchor_value;

/* What one look at the token found. */
typedef struct anchor_scan {
	CK_OBJECT_HANDLE objs[ANCHOR_OBJECTS_MAX];
	size_t count;     /* objects that matched the search */
	size_t valid;     /* of those, values that decoded */
	size_t bad;       /* values that did not decode: torn or corrupt */
	size_t gone;      /* objects destroyed between the search and the read */
	int conflict;     /* two valid values of the best generation differ */
	anchor_value best; /* the highest generation, if valid > 0 */
} anchor_scan;

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int sha256(const uint8_t *p, size_t n, uint8_t out[ANCHOR_DIGEST])
{
	unsigned int len = 0;
	return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == ANCHOR_DIGEST;
}

/* Build the stored form; returns its length, 0 if the digest failed. */
static size_t anchor_encode(uint64_t gen, const uint8_t *data, size_t len, uint8_t raw[ANCHOR_RAW_MAX])
{
	memcpy(raw, anchor_magic, sizeof anchor_magic);
	put_be(raw + sizeof anchor_magic, gen, 8);
	put_be(raw + sizeof anchor_magic + 8, len, 2);
	if (len)
		memcpy(raw + ANCHOR_HEAD, data, len);
	if (!sha256(raw, ANCHOR_HEAD + len, raw + ANCHOR_HEAD + len))
		return 0;
	return ANCHOR_HEAD + len + ANCHOR_DIGEST;
}

/* 1 if raw is a whole, untorn stored anchor; fills *v. */
static int anchor_decode(const uint8_t *raw, size_t raw_len, anchor_value *v)
{
	uint8_t digest[ANCHOR_DIGEST];
	size_t len;

	if (raw_len < ANCHOR_HEAD + ANCHOR_DIGEST || memcmp(raw, anchor_magic, sizeof anchor_magic) != 0)
		return 0;
	len = (size_t)get_be(raw + sizeof anchor_magic + 8, 2);
	if (len > HSM_ANCHOR_MAX || raw_len != ANCHOR_HEAD + len + ANCHOR_DIGEST)
		return 0;
	if (!sha256(raw, ANCHOR_HEAD + len, digest) ||
	    CRYPTO_memcmp(digest, raw + ANCHOR_HEAD + len, ANCHOR_DIGEST) != 0)
		return 0;
	v->gen = get_be(raw + sizeof anchor_magic, 8);
	v->len = len;
	memcpy(v->data, raw + ANCHOR_HEAD, len);
	return 1;
}

static km_status anchor_find(hsm *h, anchor_scan *sc, km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR(CKA_LABEL, anchor_label, strlen(anchor_label)),
		ATTR(CKA_APPLICATION, anchor_app, strlen(anchor_app)),
	};
	CK_OBJECT_HANDLE extra;
	CK_ULONG count = 0, more = 0;
	CK_RV rv;

	rv = h->fl->C_FindObjectsInit(h->session, tmpl, KM_ARRAY_LEN(tmpl));
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "searching the HSM token for the audit anchor failed",
		                    "C_FindObjectsInit");
	rv = h->fl->C_FindObjects(h->session, sc->objs, ANCHOR_OBJECTS_MAX, &count);
	if (rv == CKR_OK && count == ANCHOR_OBJECTS_MAX)
		rv = h->fl->C_FindObjects(h->session, &extra, 1, &more);
	h->fl->C_FindObjectsFinal(h->session);
	if (rv != CKR_OK)
		return hsm_p11_fail(e, rv, "searching the HSM token for the audit anchor failed", "C_FindObjects");
	if (more)
		return km_fail(e, KM_EHSM, "the HSM token holds more than %d audit anchors (\"%s\"); "
		               "something other than keyward writes them", ANCHOR_OBJECTS_MAX, anchor_label);
	sc->count = count;
	return KM_OK;
}

/* One look: find every anchor and read each value. */
static km_status anchor_scan_once(hsm *h, anchor_scan *sc, km_err *e)
{
	uint8_t raw[ANCHOR_RAW_MAX];
	anchor_value v;
	km_status st;

	memset(sc, 0, sizeof *sc);
	st = anchor_find(h, sc, e);
	for (size_t i = 0; st == KM_OK && i < sc->count; i++) {
		CK_ATTRIBUTE value = ATTR(CKA_VALUE, raw, sizeof raw);
		CK_RV rv = h->fl->C_GetAttributeValue(h->session, sc->objs[i], &value, 1);
		if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_GENERAL_ERROR) {
			/* Destroyed by a writer since the search, or the module's
			 * file race (hsm_int.h): look again. */
			sc->gone++;
		} else if (rv == CKR_BUFFER_TOO_SMALL) {
			sc->bad++; /* too long to be one of ours */
		} else if (rv != CKR_OK) {
			st = hsm_p11_fail(e, rv, "reading the audit anchor failed", "C_GetAttributeValue");
		} else if (!anchor_decode(raw, value.ulValueLen, &v)) {
			sc->bad++;
		} else if (sc->valid++ == 0 || v.gen > sc->best.gen) {
			sc->best = v;
			sc->conflict = 0;
		} else if (v.gen == sc->best.gen &&
		           (v.len != sc->best.len || memcmp(v.data, sc->best.data, v.len) != 0)) {
			sc->conflict = 1;
		}
	}
	OPENSSL_cleanse(raw, sizeof raw);
	OPENSSL_cleanse(&v, sizeof v);
	return st;
}

/* A search that races another process's write can miss objects that exist
 * (the SoftHSM2 race in hsm_int.h).  Measured with one process replacing an
 * anchor in a tight loop: 4 of 17,802 searches saw none, and the very next
 * search always saw it.  So "no anchor" is believed after this many empty
 * looks (20 + 40 ms of backoff), which keeps a token that really has none
 * from paying the full HSM_TRIES wait on every call. */
#define ANCHOR_EMPTY_LOOKS 3

/* Look until the view is settled: nothing torn, nothing vanished under us,
 * and an empty token seen ANCHOR_EMPTY_LOOKS times.  After HSM_TRIES looks,
 * what remains is the answer: bad values then mean corruption, not a race. */
static km_status anchor_settle(hsm *h, anchor_scan *sc, km_err *e)
{
	km_status st = KM_OK;
	int empty = 0;

	for (int i = 0; i < HSM_TRIES; i++) {
		hsm_backoff(i);
		st = anchor_scan_once(h, sc, e);
		if (st != KM_OK && st != KM_EHSM)
			return st;
		if (st == KM_OK && sc->count == 0 && ++empty >= ANCHOR_EMPTY_LOOKS)
			return KM_OK;
		if (st == KM_OK && sc->count > 0 && sc->bad == 0 && sc->gone == 0)
			return KM_OK;
	}
	return st;
}

km_status hsm_anchor_count(hsm *h, unsigned *count, km_err *e)
{
	anchor_scan sc;
	km_status st = KM_OK;

	*count = 0;
	for (int i = 0; i < ANCHOR_EMPTY_LOOKS; i++) {
		hsm_backoff(i);
		memset(&sc, 0, sizeof sc);
		st = anchor_find(h, &sc, e);
		if (st != KM_OK && st != KM_EHSM)
			return st;
		if (st == KM_OK && sc.count > 0)
			break;
	}
	if (st == KM_OK)
		*count = (unsigned)sc.count;
	return st;
}

/* Private objects vanish when the token logs us out behind our back; an
 * empty search then means that, not "no anchor". */
static km_status still_logged_in(hsm *h, km_err *e)
{
	CK_SESSION_INFO si;

	if (h->fl->C_GetSessionInfo(h->session, &si) == CKR_OK && si.state != CKS_RW_USER_FUNCTIONS &&
	    si.state != CKS_RO_USER_FUNCTIONS)
		return km_fail(e, KM_ESTATE, "the HSM session is no longer logged in; log in again");
	return KM_OK;
}

km_status hsm_anchor_read(hsm *h, uint8_t *buf, size_t cap, size_t *len, int *found, km_err *e)
{
	anchor_scan sc;
	km_status st;

	if (!buf || !len || !found)
		return km_fail(e, KM_EUSAGE, "hsm_anchor_read: NULL argument");
	*len = 0;
	*found = 0;
	st = hsm_need_login(h, "reading the audit anchor", e);
	if (st == KM_OK)
		st = anchor_settle(h, &sc, e);
	if (st == KM_OK && sc.count == 0)
		return still_logged_in(h, e);
	/* What is still wrong after every retry is not a race.  An anchor that
	 * cannot be read might be the newest, so nothing is returned then. */
	if (st == KM_OK && sc.bad > 0)
		st = km_fail(e, KM_EINTEGRITY, "%zu of the %zu audit anchors on the HSM token are damaged "
		             "(their checksum fails)", sc.bad, sc.count);
	else if (st == KM_OK && sc.gone > 0)
		st = km_fail(e, KM_EHSM, "%zu of the %zu audit anchors on the HSM token could not be read "
		             "(C_GetAttributeValue kept failing, or they kept vanishing)", sc.gone, sc.count);
	else if (st == KM_OK && sc.conflict)
		st = km_fail(e, KM_EINTEGRITY, "the HSM token holds two different audit anchors of "
		             "generation %llu: two writers ran at once without the lock; the next "
		             "anchor write replaces both", (unsigned long long)sc.best.gen);
	else if (st == KM_OK && sc.best.len > cap)
		st = km_fail(e, KM_EUSAGE, "the audit anchor is %zu bytes; the buffer holds %zu",
		             sc.best.len, cap);
	if (st == KM_OK) {
		memcpy(buf, sc.best.data, sc.best.len);
		*len = sc.best.len;
		*found = 1;
	}
	OPENSSL_cleanse(&sc, sizeof sc);
	return st;
}

km_status hsm_anchor_write(hsm *h, const uint8_t *buf, size_t len, km_err *e)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	uint8_t raw[ANCHOR_RAW_MAX];
	size_t raw_len;
	CK_ATTRIBUTE tmpl[] = {
		ATTR_VAR(CKA_CLASS, cls),
		ATTR_BOOL(CKA_TOKEN, 1),
		ATTR_BOOL(CKA_PRIVATE, 1),
		/* Replaced, never rewritten: an in-place rewrite is the one
		 * path on which SoftHSM2 can lose the object. */
		ATTR_BOOL(CKA_MODIFIABLE, 0),
		ATTR(CKA_LABEL, anchor_label, strlen(anchor_label)),
		ATTR(CKA_APPLICATION, anchor_app, strlen(anchor_app)),
		ATTR(CKA_VALUE, raw, 0), /* length set below */
	};
	CK_OBJECT_HANDLE obj;
	anchor_scan sc;
	uint64_t gen;
	km_status st;
	CK_RV rv;

	if (!buf && len > 0)
		return km_fail(e, KM_EUSAGE, "hsm_anchor_write: NULL argument");
	if (len > HSM_ANCHOR_MAX)
		return km_fail(e, KM_EUSAGE, "an audit anchor holds at most %d bytes, not %zu", HSM_ANCHOR_MAX,
		               len);
	st = hsm_need_login(h, "writing the audit anchor", e);
	if (st == KM_OK)
		st = anchor_settle(h, &sc, e);
	if (st == KM_OK && sc.count == 0)
		st = still_logged_in(h, e);
	if (st != KM_OK)
		return st;

	/* Above every anchor that decoded.  Damaged ones have no readable
	 * generation; they are destroyed below all the same. */
	gen = sc.valid ? sc.best.gen + 1 : 1;
	raw_len = anchor_encode(gen, buf, len, raw);
	if (raw_len == 0)
		return km_fail(e, KM_EINTERNAL, "hashing the audit anchor failed");
	tmpl[KM_ARRAY_LEN(tmpl) - 1].ulValueLen = (CK_ULONG)raw_len;
	rv = h->fl->C_CreateObject(h->session, tmpl, KM_ARRAY_LEN(tmpl), &obj);
	OPENSSL_cleanse(raw, sizeof raw);
	if (rv != CKR_OK) {
		OPENSSL_cleanse(&sc, sizeof sc);
		return hsm_p11_fail(e, rv, "storing the audit anchor on the HSM token failed", "C_CreateObject");
	}
	/* The new anchor is on the token and outranks the old ones, so from
	 * here on a failure or a kill leaves only clutter, which the next
	 * write removes. */
	for (size_t i = 0; i < sc.count; i++)
		h->fl->C_DestroyObject(h->session, sc.objs[i]);
	OPENSSL_cleanse(&sc, sizeof sc);
	return KM_OK;
}
