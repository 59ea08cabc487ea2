/*
 * envelope.c — the envelope format: header codec and segment streaming.
 *
 * Layout and rules: docs/format.md.  The streaming engine reads the input
 * in batches of whole segments; each batch is sealed or opened by the
 * thread that read it, and written in stream order.  With two threads the
 * reads, the AES-GCM work and the writes of neighbouring batches overlap
 * (reads are taken in turn, writes are made in turn, the crypto runs in
 * parallel).  A segment's position (index, last flag) is decided at read
 * time, so the crypto needs no shared state.
 *
 * Must never: write plaintext of a segment that has not authenticated; read
 * past the header in envelope_read_header; keep a copy of the DEK.
 */
#include "envelope.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t envelope_magic[KM_ENVELOPE_MAGIC_BYTES] = {
	'K', 'W', 'E', 'N', 'V', 0x0d, 0x0a, 0x1a,
};

/* Header offsets (docs/format.md, "Header"). */
#define OFF_VERSION 8
#define OFF_HEADER_LEN 9
#define OFF_SEGMENT_SIZE 13

#define AAD_BYTES 32       /* SHA-256 of the header */
#define NONCE_BYTES 12     /* prefix(7) || index(4) || last(1) */

/* Plaintext per batch: 16 default segments.  Measured with
 * bench/envelope_speed.c; see docs/format.md "Performance". */
#ifndef KM_ENVELOPE_BATCH_BYTES
#define KM_ENVELOPE_BATCH_BYTES (1024u * 1024u)
#endif
#define ENVELOPE_MAX_THREADS 2

static _Atomic unsigned envelope_threads_setting;

void envelope_set_threads(unsigned n)
{
	atomic_store(&envelope_threads_setting, n > ENVELOPE_MAX_THREADS ? ENVELOPE_MAX_THREADS : n);
}

/* ------------------------------------------------------------ bytes and I/O */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Read until n bytes or end of input.  0 and *got on success, -1 (errno). */
static int read_full(int fd, uint8_t *buf, size_t n, size_t *got)
{
	size_t have = 0;
	while (have < n) {
		ssize_t r = read(fd, buf + have, n - have);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*got = have;
			return -1;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	*got = have;
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, buf, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ------------------------------------------------------------ header */

static km_status segment_size_check(uint32_t seg, km_err *e)
{
	if (seg < KM_ENVELOPE_SEGMENT_MIN || seg > KM_ENVELOPE_SEGMENT_MAX)
		return km_fail(e, KM_EINVAL, "envelope segment size %u is out of range (%u..%u bytes)",
		               seg, KM_ENVELOPE_SEGMENT_MIN, KM_ENVELOPE_SEGMENT_MAX);
	return KM_OK;
}

void envelope_header_ref(const envelope_header *h, km_asset_ref *ref)
{
	ref->uid = h->uid;
	ref->kind = h->kind;
	ref->name = h->name;
	ref->version = h->version_str;
	ref->kek_name = h->kek_name;
	ref->kek_version = h->kek_version;
}

/* Copy a validated string into a fixed field (validation bounds the size). */
static void copy_field(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

km_status envelope_header_init(envelope_header *h, const km_asset_ref *ref,
                               const uint8_t wrapped_dek[KM_WRAPPED_DEK_BYTES], km_err *e)
{
	if (!h || !wrapped_dek)
		return km_fail(e, KM_EUSAGE, "envelope_header_init: missing header or wrapped key");
	km_status st = km_asset_ref_validate(ref, e);
	if (st != KM_OK)
		return st;
	memset(h, 0, sizeof *h);
	h->version = KM_ENVELOPE_FORMAT_VERSION;
	h->segment_size = KM_ENVELOPE_SEGMENT_DEFAULT;
	copy_field(h->uid, sizeof h->uid, ref->uid);
	copy_field(h->kind, sizeof h->kind, ref->kind);
	copy_field(h->name, sizeof h->name, ref->name);
	copy_field(h->version_str, sizeof h->version_str, ref->version);
	copy_field(h->kek_name, sizeof h->kek_name, ref->kek_name);
	h->kek_version = ref->kek_version;
	memcpy(h->wrapped_dek, wrapped_dek, KM_WRAPPED_DEK_BYTES);
	if (RAND_bytes(h->nonce_prefix, KM_ENVELOPE_NONCE_PREFIX_BYTES) != 1)
		return km_fail(e, KM_EINTERNAL, "the random generator failed (nonce prefix)");
	return KM_OK;
}

km_status envelope_header_encode(const envelope_header *h, uint8_t out[KM_ENVELOPE_HEADER_MAX],
                                 size_t *len, km_err *e)
{
	km_asset_ref ref;
	km_status st;

	if (!h || !out || !len)
		return km_fail(e, KM_EUSAGE, "envelope_header_encode: missing argument");
	if (h->version != KM_ENVELOPE_FORMAT_VERSION)
		return km_fail(e, KM_EINVAL, "unsupported envelope format version %u (this build writes version %d)",
		               h->version, KM_ENVELOPE_FORMAT_VERSION);
	if ((st = segment_size_check(h->segment_size, e)) != KM_OK)
		return st;
	envelope_header_ref(h, &ref);
	if ((st = km_asset_ref_validate(&ref, e)) != KM_OK)
		return st;

	memcpy(out, envelope_magic, KM_ENVELOPE_MAGIC_BYTES);
	out[OFF_VERSION] = h->version;
	put_be32(out + OFF_SEGMENT_SIZE, h->segment_size);
	size_t pos = KM_ENVELOPE_HEADER_FIXED;
	size_t n = km_asset_ref_encode(&ref, out + pos, KM_ENVELOPE_HEADER_MAX - pos);
	if (n == 0)
		return km_fail(e, KM_EINTERNAL, "cannot encode the asset identity");
	pos += n;
	memcpy(out + pos, h->wrapped_dek, KM_WRAPPED_DEK_BYTES);
	pos += KM_WRAPPED_DEK_BYTES;
	memcpy(out + pos, h->nonce_prefix, KM_ENVELOPE_NONCE_PREFIX_BYTES);
	pos += KM_ENVELOPE_NONCE_PREFIX_BYTES;
	put_be32(out + OFF_HEADER_LEN, (uint32_t)pos);
	*len = pos;
	return KM_OK;
}

/* Read n more header bytes at buf; a short read means a truncated header. */
static km_status read_header_part(int fd, uint8_t *buf, size_t n, const char *what, km_err *e)
{
	size_t got;
	if (read_full(fd, buf, n, &got) != 0)
		return km_fail(e, KM_EIO, "cannot read the envelope: %s", strerror(errno));
	if (got < n)
		return km_fail(e, KM_EINVAL, "envelope header truncated: the input ends inside the %s", what);
	return KM_OK;
}

/* One length-prefixed string of the identity block into dst[max + 1]. */
static km_status parse_field(const uint8_t *buf, size_t *pos, size_t end, char *dst, size_t max,
                             const char *what, km_err *e)
{
	if (end - *pos < 2)
		return km_fail(e, KM_EINVAL, "envelope header is malformed: it ends before the %s", what);
	size_t n = (size_t)buf[*pos] << 8 | buf[*pos + 1];
	if (n > max)
		return km_fail(e, KM_EINVAL, "envelope header is malformed: the %s is %zu bytes (at most %zu)",
		               what, n, max);
	if (end - *pos - 2 < n)
		return km_fail(e, KM_EINVAL, "envelope header is malformed: the %s runs past the header", what);
	if (memchr(buf + *pos + 2, 0, n))
		return km_fail(e, KM_EINVAL, "envelope header is malformed: the %s contains a NUL byte", what);
	memcpy(dst, buf + *pos + 2, n);
	dst[n] = '\0';
	*pos += 2 + n;
	return KM_OK;
}

km_status envelope_read_header(int in_fd, envelope_header *h, km_err *e)
{
	uint8_t buf[KM_ENVELOPE_HEADER_MAX];
	uint8_t again[KM_ENVELOPE_HEADER_MAX];
	size_t got, again_len;
	km_status st;

	if (!h)
		return km_fail(e, KM_EUSAGE, "envelope_read_header: no header");
	memset(h, 0, sizeof *h);

	if (read_full(in_fd, buf, KM_ENVELOPE_MAGIC_BYTES, &got) != 0)
		return km_fail(e, KM_EIO, "cannot read the envelope: %s", strerror(errno));
	if (got == 0 || memcmp(buf, envelope_magic, got) != 0)
		return km_fail(e, KM_EINVAL, "not a keyward envelope (bad magic)");
	if (got < KM_ENVELOPE_MAGIC_BYTES)
		return km_fail(e, KM_EINVAL, "envelope header truncated: the input ends inside the magic");

	if ((st = read_header_part(in_fd, buf + OFF_VERSION, 1, "format version", e)) != KM_OK)
		return st;
	if (buf[OFF_VERSION] != KM_ENVELOPE_FORMAT_VERSION)
		return km_fail(e, KM_EINVAL, "unsupported envelope format version %u (this build reads version %d)",
		               buf[OFF_VERSION], KM_ENVELOPE_FORMAT_VERSION);

	if ((st = read_header_part(in_fd, buf + OFF_HEADER_LEN, 4, "header length", e)) != KM_OK)
		return st;
	uint32_t header_len = get_be32(buf + OFF_HEADER_LEN);
	if (header_len < KM_ENVELOPE_HEADER_MIN || header_len > KM_ENVELOPE_HEADER_MAX)
		return km_fail(e, KM_EINVAL, "envelope header length %u is out of range (%d..%d bytes)",
		               header_len, KM_ENVELOPE_HEADER_MIN, KM_ENVELOPE_HEADER_MAX);
	if ((st = read_header_part(in_fd, buf + OFF_SEGMENT_SIZE, header_len - OFF_SEGMENT_SIZE,
	                           "header", e)) != KM_OK)
		return st;

	h->version = buf[OFF_VERSION];
	h->segment_size = get_be32(buf + OFF_SEGMENT_SIZE);
	if ((st = segment_size_check(h->segment_size, e)) != KM_OK)
		return st;

	size_t pos = KM_ENVELOPE_HEADER_FIXED, end = header_len;
	if ((st = parse_field(buf, &pos, end, h->uid, KM_ASSET_UID_LEN, "asset uid", e)) != KM_OK ||
	    (st = parse_field(buf, &pos, end, h->kind, KM_ASSET_KIND_MAX, "asset kind", e)) != KM_OK ||
	    (st = parse_field(buf, &pos, end, h->name, KM_ASSET_NAME_MAX, "asset name", e)) != KM_OK ||
	    (st = parse_field(buf, &pos, end, h->version_str, KM_ASSET_VERSION_MAX, "asset version", e)) != KM_OK ||
	    (st = parse_field(buf, &pos, end, h->kek_name, KM_ASSET_KEK_NAME_MAX, "key name", e)) != KM_OK)
		return st;
	if (end - pos != 4 + KM_WRAPPED_DEK_BYTES + KM_ENVELOPE_NONCE_PREFIX_BYTES)
		return km_fail(e, KM_EINVAL, "envelope header is malformed: %zu bytes where the key version, "
		               "wrapped key and nonce prefix take %d", end - pos,
		               4 + KM_WRAPPED_DEK_BYTES + KM_ENVELOPE_NONCE_PREFIX_BYTES);
	h->kek_version = get_be32(buf + pos);
	pos += 4;
	memcpy(h->wrapped_dek, buf + pos, KM_WRAPPED_DEK_BYTES);
	pos += KM_WRAPPED_DEK_BYTES;
	memcpy(h->nonce_prefix, buf + pos, KM_ENVELOPE_NONCE_PREFIX_BYTES);

	km_asset_ref ref;
	envelope_header_ref(h, &ref);
	if ((st = km_asset_ref_validate(&ref, e)) != KM_OK) {
		if (e)
			km_wrap(e, "envelope header");
		return st;
	}

	/* The segments authenticate the encoding of *h; it must be these very
	 * bytes.  The parser above admits one encoding per header, so this
	 * only guards the codec against drifting apart. */
	if ((st = envelope_header_encode(h, again, &again_len, e)) != KM_OK)
		return st;
	if (again_len != header_len || memcmp(again, buf, header_len) != 0)
		return km_fail(e, KM_EINTERNAL, "envelope header codec mismatch (a bug)");
	return KM_OK;
}

/* ------------------------------------------------------------ streaming */

typedef struct env_job {
	/* fixed for the job */
	int in_fd, out_fd;
	int decrypt;
	const uint8_t *dek;
	uint8_t aad[AAD_BYTES];
	uint8_t prefix[KM_ENVELOPE_NONCE_PREFIX_BYTES];
	size_t seg;        /* plaintext bytes per full segment */
	size_t in_unit;    /* input bytes per full segment */
	size_t out_unit;   /* output bytes per full segment */
	size_t batch_segs; /* segments per batch */

	/* reading: one thread at a time, in stream order */
	pthread_mutex_t read_mu;
	int input_done;    /* end of input reached, or reading failed */
	int have_carry;    /* one byte read ahead to learn that more follows */
	uint8_t carry;
	uint64_t next_index;
	uint64_t next_seq;

	/* writing: in stream order */
	pthread_mutex_t mu;
	pthread_cond_t turn_cv;
	uint64_t write_turn;
	int failed;        /* once set: nothing more is read or written */
	km_err err;        /* the first failure in stream order */
	uint64_t plain_bytes;
} env_job;

typedef struct env_worker {
	env_job *job;
	EVP_CIPHER_CTX *cipher;
	uint8_t *in, *out;
	size_t plain_used; /* high-water mark of the plaintext buffer, to cleanse */
	pthread_t thread;
	int started;
} env_worker;

typedef struct env_batch {
	uint64_t seq;
	uint64_t first_index;
	size_t nsegs;
	size_t in_len;
	int final;         /* the input ends in this batch */
	size_t out_len;    /* bytes ready to write (the authenticated prefix) */
	uint64_t plain;    /* plaintext bytes those represent */
	km_status st;
	km_err err;
} env_batch;

static void make_nonce(uint8_t iv[NONCE_BYTES], const env_job *j, uint64_t index, int last)
{
	memcpy(iv, j->prefix, KM_ENVELOPE_NONCE_PREFIX_BYTES);
	put_be32(iv + KM_ENVELOPE_NONCE_PREFIX_BYTES, (uint32_t)index);
	iv[NONCE_BYTES - 1] = last ? 1 : 0;
}

/* Segment ct || tag from len bytes of plaintext.  1 on success. */
static int seal_segment(EVP_CIPHER_CTX *c, const env_job *j, uint64_t index, int last,
                        const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t iv[NONCE_BYTES];
	int n = 0, m = 0;

	make_nonce(iv, j, index, last);
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, 1) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, j->aad, AAD_BYTES) != 1)
		return 0;
	if (len > 0 && (EVP_CipherUpdate(c, out, &n, pt, (int)len) != 1 || (size_t)n != len))
		return 0;
	if (EVP_CipherFinal_ex(c, out + len, &m) != 1 || m != 0)
		return 0;
	return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, KM_ENVELOPE_TAG_BYTES, out + len) == 1;
}

/* Open len bytes of ct || tag (len >= tag) into out.  1 if authentic.  On
 * failure out may hold unauthenticated bytes: the caller cleanses them. */
static int open_segment(EVP_CIPHER_CTX *c, const env_job *j, uint64_t index, int last,
                        const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t iv[NONCE_BYTES];
	uint8_t tag[KM_ENVELOPE_TAG_BYTES];
	uint8_t scratch[16];
	size_t ptlen = len - KM_ENVELOPE_TAG_BYTES;
	int n = 0, m = 0;

	make_nonce(iv, j, index, last);
	memcpy(tag, ct + ptlen, sizeof tag);
	if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, 0) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, j->aad, AAD_BYTES) != 1)
		return 0;
	if (ptlen > 0 && (EVP_CipherUpdate(c, out, &n, ct, (int)ptlen) != 1 || (size_t)n != ptlen))
		return 0;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, KM_ENVELOPE_TAG_BYTES, tag) != 1)
		return 0;
	return EVP_CipherFinal_ex(c, scratch, &m) == 1;
}

static size_t ceil_div(size_t a, size_t b)
{
	return a / b + (a % b != 0);
}

/* Called with read_mu held.  Fills w->in with the next batch and decides
 * every segment's index and whether it is the last: a batch that fills its
 * buffer reads one byte more, which proves that more input follows and is
 * carried to the next batch. */
static void batch_read(env_job *j, env_worker *w, env_batch *b)
{
	size_t cap = j->batch_segs * j->in_unit;
	size_t pos = 0, got;

	if (j->have_carry) {
		w->in[0] = j->carry;
		pos = 1;
		j->have_carry = 0;
	}
	if (read_full(j->in_fd, w->in + pos, cap + 1 - pos, &got) != 0) {
		b->st = km_fail(&b->err, KM_EIO, "cannot read the %s: %s",
		                j->decrypt ? "envelope" : "input", strerror(errno));
		j->input_done = 1;
		return;
	}
	size_t have = pos + got;
	if (have == cap + 1) {
		j->carry = w->in[cap];
		j->have_carry = 1;
		have = cap;
		b->final = 0;
		b->nsegs = j->batch_segs;
	} else {
		b->final = 1;
		j->input_done = 1;
		if (j->decrypt)
			b->nsegs = ceil_div(have, j->in_unit);
		else
			b->nsegs = have == 0 ? 1 : ceil_div(have, j->in_unit);
	}
	b->in_len = have;
	b->first_index = j->next_index;
	if (j->next_index + b->nsegs > KM_ENVELOPE_MAX_SEGMENTS) {
		j->input_done = 1;
		if (j->decrypt)
			b->st = km_fail(&b->err, KM_EINTEGRITY, "the envelope has more than %u segments",
			                KM_ENVELOPE_MAX_SEGMENTS);
		else
			b->st = km_fail(&b->err, KM_ELIMIT, "the input is too large for one envelope "
			                "(more than %u segments of %zu bytes)", KM_ENVELOPE_MAX_SEGMENTS, j->seg);
		return;
	}
	j->next_index += b->nsegs;
}

static void batch_encrypt(env_job *j, env_worker *w, env_batch *b)
{
	size_t off = 0, out = 0;

	for (size_t s = 0; s < b->nsegs; s++) {
		size_t len = b->in_len - off < j->seg ? b->in_len - off : j->seg;
		int last = b->final && s + 1 == b->nsegs;
		if (!seal_segment(w->cipher, j, b->first_index + s, last, w->in + off, len, w->out + out)) {
			b->st = km_fail(&b->err, KM_EINTERNAL, "AES-GCM failed in OpenSSL (segment %llu)",
			                (unsigned long long)(b->first_index + s));
			return;
		}
		off += len;
		out += len + KM_ENVELOPE_TAG_BYTES;
	}
	if (b->in_len > w->plain_used)
		w->plain_used = b->in_len;
	b->out_len = out;
	b->plain = b->in_len;
}

/* A chunk that does not open in its position: say why, as precisely as the
 * evidence allows.  Opening it with the other last flag tells a cut at a
 * segment boundary, or data appended after the final segment, from damage. */
static void chunk_failed(env_job *j, env_worker *w, env_batch *b, uint64_t index, int last,
                         const uint8_t *ct, size_t len, uint8_t *out)
{
	int other = open_segment(w->cipher, j, index, !last, ct, len, out);
	OPENSSL_cleanse(out, len - KM_ENVELOPE_TAG_BYTES);
	unsigned long long n = (unsigned long long)index;
	if (other && last)
		b->st = km_fail(&b->err, KM_EINTEGRITY, "envelope truncated after segment %llu", n);
	else if (other)
		b->st = km_fail(&b->err, KM_EINTEGRITY,
		                "envelope has trailing data after its final segment %llu", n);
	else if (last && len < j->in_unit)
		b->st = km_fail(&b->err, KM_EINTEGRITY, "segment %llu failed authentication "
		                "(damaged, or the envelope is cut inside it)", n);
	else
		b->st = km_fail(&b->err, KM_EINTEGRITY, "segment %llu failed authentication", n);
}

static void batch_decrypt(env_job *j, env_worker *w, env_batch *b)
{
	size_t off = 0, out = 0;

	if (b->final && b->in_len == 0) {
		/* Only the first batch can be empty: a full batch leaves a carry. */
		b->st = km_fail(&b->err, KM_EINTEGRITY, "envelope truncated after the header (no segments)");
		return;
	}
	for (size_t s = 0; s < b->nsegs; s++) {
		size_t len = b->in_len - off < j->in_unit ? b->in_len - off : j->in_unit;
		int last = b->final && s + 1 == b->nsegs;
		uint64_t index = b->first_index + s;
		if (len < KM_ENVELOPE_TAG_BYTES) {
			b->st = km_fail(&b->err, KM_EINTEGRITY, "envelope truncated inside segment %llu",
			                (unsigned long long)index);
			break;
		}
		if (out + len - KM_ENVELOPE_TAG_BYTES > w->plain_used)
			w->plain_used = out + len - KM_ENVELOPE_TAG_BYTES;
		if (!open_segment(w->cipher, j, index, last, w->in + off, len, w->out + out)) {
			chunk_failed(j, w, b, index, last, w->in + off, len, w->out + out);
			break;
		}
		off += len;
		out += len - KM_ENVELOPE_TAG_BYTES;
	}
	b->out_len = out;
	b->plain = out;
}

static int job_failed(env_job *j)
{
	pthread_mutex_lock(&j->mu);
	int f = j->failed;
	pthread_mutex_unlock(&j->mu);
	return f;
}

static void *worker_main(void *arg)
{
	env_worker *w = arg;
	env_job *j = w->job;
	env_batch b;

	for (;;) {
		pthread_mutex_lock(&j->read_mu);
		if (j->input_done || job_failed(j)) {
			pthread_mutex_unlock(&j->read_mu);
			break;
		}
		memset(&b, 0, sizeof b);
		b.seq = j->next_seq++;
		batch_read(j, w, &b);
		pthread_mutex_unlock(&j->read_mu);

		if (b.st == KM_OK) {
			if (j->decrypt)
				batch_decrypt(j, w, &b);
			else
				batch_encrypt(j, w, &b);
		}

		pthread_mutex_lock(&j->mu);
		while (j->write_turn != b.seq)
			pthread_cond_wait(&j->turn_cv, &j->mu);
		int skip = j->failed;
		pthread_mutex_unlock(&j->mu);

		if (!skip && b.out_len > 0 && write_all(j->out_fd, w->out, b.out_len) != 0) {
			km_status st = km_fail(&b.err, KM_EIO, "cannot write the %s: %s",
			                       j->decrypt ? "plaintext" : "envelope", strerror(errno));
			b.st = st;
			b.plain = 0;
		}

		pthread_mutex_lock(&j->mu);
		if (!skip) {
			j->plain_bytes += b.plain;
			if (b.st != KM_OK) {
				j->failed = 1;
				j->err = b.err;
			}
		}
		j->write_turn++;
		pthread_cond_broadcast(&j->turn_cv);
		int stop = j->failed;
		pthread_mutex_unlock(&j->mu);
		if (stop)
			break;
	}
	return NULL;
}

static unsigned thread_count(void)
{
	unsigned n = atomic_load(&envelope_threads_setting);
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus >= 2 ? 2 : 1;
	}
	return n;
}

static void worker_release(env_worker *w, int decrypt)
{
	if (w->in || w->out) {
		uint8_t *plain = decrypt ? w->out : w->in;
		if (plain)
			OPENSSL_cleanse(plain, w->plain_used);
	}
	free(w->in);
	free(w->out);
	EVP_CIPHER_CTX_free(w->cipher); /* cleanses the key schedule */
	memset(w, 0, sizeof *w);
}

static km_status worker_setup(env_worker *w, env_job *j, km_err *e)
{
	w->job = j;
	w->in = malloc(j->batch_segs * j->in_unit + 1);
	w->out = malloc(j->batch_segs * j->out_unit);
	w->cipher = EVP_CIPHER_CTX_new();
	if (!w->in || !w->out || !w->cipher)
		return km_fail(e, KM_ENOMEM, "out of memory (envelope buffers)");
	if (EVP_CipherInit_ex(w->cipher, EVP_aes_256_gcm(), NULL, j->dek, NULL, j->decrypt ? 0 : 1) != 1)
		return km_fail(e, KM_EINTERNAL, "cannot key AES-256-GCM in OpenSSL");
	return KM_OK;
}

/* Run the job on this thread and, when allowed, one helper thread. */
static km_status run_job(env_job *j, uint64_t *plain_bytes, km_err *e)
{
	env_worker workers[ENVELOPE_MAX_THREADS];
	unsigned n = thread_count();
	km_status st = KM_OK;

	memset(workers, 0, sizeof workers);
	j->batch_segs = KM_ENVELOPE_BATCH_BYTES / j->seg;
	if (j->batch_segs == 0)
		j->batch_segs = 1;
	pthread_mutex_init(&j->read_mu, NULL);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->turn_cv, NULL);

	for (unsigned i = 0; i < n && st == KM_OK; i++)
		st = worker_setup(&workers[i], j, e);
	if (st == KM_OK) {
		/* The helper takes no signals: handlers run on the caller's thread. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (unsigned i = 1; i < n; i++)
			workers[i].started = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		/* A helper that could not start is no error: this thread does it all. */
		worker_main(&workers[0]);
		for (unsigned i = 1; i < n; i++)
			if (workers[i].started)
				pthread_join(workers[i].thread, NULL);
		if (j->failed) {
			if (e)
				*e = j->err;
			st = j->err.code;
		}
	}
	for (unsigned i = 0; i < n; i++)
		worker_release(&workers[i], j->decrypt);
	pthread_cond_destroy(&j->turn_cv);
	pthread_mutex_destroy(&j->mu);
	pthread_mutex_destroy(&j->read_mu);
	if (plain_bytes)
		*plain_bytes = j->plain_bytes;
	return st;
}

/* Common set-up: the header's bytes (and from them the segments' AAD). */
static km_status job_init(env_job *j, const envelope_header *h, const uint8_t *dek,
                          uint8_t hdr[KM_ENVELOPE_HEADER_MAX], size_t *hdr_len, km_err *e)
{
	if (!h || !dek)
		return km_fail(e, KM_EUSAGE, "envelope: missing header or data key");
	km_status st = envelope_header_encode(h, hdr, hdr_len, e);
	if (st != KM_OK)
		return st;
	memset(j, 0, sizeof *j);
	if (EVP_Digest(hdr, *hdr_len, j->aad, NULL, EVP_sha256(), NULL) != 1)
		return km_fail(e, KM_EINTERNAL, "SHA-256 failed in OpenSSL");
	memcpy(j->prefix, h->nonce_prefix, sizeof j->prefix);
	j->dek = dek;
	j->seg = h->segment_size;
	return KM_OK;
}

km_status envelope_encrypt(int in_fd, int out_fd, const envelope_header *h, const uint8_t *dek,
                           uint64_t *plain_bytes, km_err *e)
{
	env_job j;
	uint8_t hdr[KM_ENVELOPE_HEADER_MAX];
	size_t hdr_len;

	if (plain_bytes)
		*plain_bytes = 0;
	km_status st = job_init(&j, h, dek, hdr, &hdr_len, e);
	if (st != KM_OK)
		return st;
	if (write_all(out_fd, hdr, hdr_len) != 0)
		return km_fail(e, KM_EIO, "cannot write the envelope: %s", strerror(errno));
	j.in_fd = in_fd;
	j.out_fd = out_fd;
	j.decrypt = 0;
	j.in_unit = j.seg;
	j.out_unit = j.seg + KM_ENVELOPE_TAG_BYTES;
	return run_job(&j, plain_bytes, e);
}

km_status envelope_decrypt(int in_fd, int out_fd, const envelope_header *h, const uint8_t *dek,
                           uint64_t *plain_bytes, km_err *e)
{
	env_job j;
	uint8_t hdr[KM_ENVELOPE_HEADER_MAX];
	size_t hdr_len;

	if (plain_bytes)
		*plain_bytes = 0;
	km_status st = job_init(&j, h, dek, hdr, &hdr_len, e);
	if (st != KM_OK)
		return st;
	j.in_fd = in_fd;
	j.out_fd = out_fd;
	j.decrypt = 1;
	j.in_unit = j.seg + KM_ENVELOPE_TAG_BYTES;
	j.out_unit = j.seg;
	return run_job(&j, plain_bytes, e);
}
