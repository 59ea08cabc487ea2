/*
 * test_envelope.c — DEK wrapping, the envelope format and atomic output files.
 *
 * Table-driven: round trips over sizes around segment boundaries (files and
 * pipes, one and two threads), a tampering table where every row says which
 * status, which message and exactly how much plaintext may come out, the
 * identity rules of km_asset_ref_validate, and a known-answer vector that
 * pins the byte layout documented in docs/format.md.
 */
#include "atomicfile.h"
#include "dek.h"
#include "envelope.h"
#include "secmem.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

/* ------------------------------------------------------------ fixtures */

static uint8_t *kek, *dek, *dek_b;

static void keys_setup(void)
{
	kek = km_secure_alloc(KM_KEK_BYTES);
	dek = km_secure_alloc(KM_DEK_BYTES);
	dek_b = km_secure_alloc(KM_DEK_BYTES);
	ck_assert(kek && dek && dek_b);
	ck_assert_int_eq(RAND_bytes(kek, KM_KEK_BYTES), 1);
	ck_assert_int_eq(dek_generate(dek, NULL), KM_OK);
	ck_assert_int_eq(dek_generate(dek_b, NULL), KM_OK);
	envelope_set_threads(0);
}

static void keys_teardown(void)
{
	km_secure_free(kek, KM_KEK_BYTES);
	km_secure_free(dek, KM_DEK_BYTES);
	km_secure_free(dek_b, KM_DEK_BYTES);
}

static const km_asset_ref ref_a = {
	.uid = "00112233445566778899aabbccddeeff",
	.kind = "dataset",
	.name = "claims/2025",
	.version = "3",
	.kek_name = "datasets/claims-2025",
	.kek_version = 2,
};

static const km_asset_ref ref_b = {
	.uid = "ffeeddccbbaa99887766554433221100",
	.kind = "dataset",
	.name = "claims/2024",
	.version = "3",
	.kek_name = "datasets/claims-2025",
	.kek_version = 2,
};

/* Deterministic, segment-distinct plaintext. */
static uint8_t *make_plain(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	uint64_t x = 0x9e3779b97f4a7c15ull ^ n;
	ck_assert(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* ------------------------------------------------------------ byte sources and sinks */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

typedef struct feeder {
	pthread_t thread;
	int started;
	int fd;
	const uint8_t *p;
	size_t n;
} feeder;

/* Writes in odd-sized pieces so the reader sees short reads. */
static void *feeder_main(void *arg)
{
	feeder *f = arg;
	size_t off = 0;
	while (off < f->n) {
		size_t k = f->n - off < 7919 ? f->n - off : 7919;
		if (write_all(f->fd, f->p + off, k) != 0)
			break; /* the reader stopped early: EPIPE */
		off += k;
	}
	close(f->fd);
	return NULL;
}

/* A readable fd holding p[0..n): a memfd, or a pipe fed by a thread. */
static int source_open(const uint8_t *p, size_t n, int use_pipe, feeder *f)
{
	memset(f, 0, sizeof *f);
	if (!use_pipe) {
		int fd = memfd_create("source", MFD_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write_all(fd, p, n), 0);
		ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
		return fd;
	}
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	f->fd = pfd[1];
	f->p = p;
	f->n = n;
	ck_assert_int_eq(pthread_create(&f->thread, NULL, feeder_main, f), 0);
	f->started = 1;
	return pfd[0];
}

static void source_close(int fd, feeder *f)
{
	close(fd); /* a blocked feeder now gets EPIPE */
	if (f->started)
		pthread_join(f->thread, NULL);
}

typedef struct sink {
	pthread_t thread;
	int use_pipe;
	int rfd, wfd;
	uint8_t *p;
	size_t n, cap;
} sink;

static void sink_append(sink *s, const uint8_t *p, size_t n)
{
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2 + 4096;
		s->p = realloc(s->p, s->cap);
		ck_assert(s->p);
	}
	memcpy(s->p + s->n, p, n);
	s->n += n;
}

static void *sink_main(void *arg)
{
	sink *s = arg;
	uint8_t buf[10007];
	for (;;) {
		ssize_t r = read(s->rfd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		sink_append(s, buf, (size_t)r);
	}
	return NULL;
}

/* A writable fd whose content sink_finish() collects into s->p, s->n. */
static int sink_open(sink *s, int use_pipe)
{
	memset(s, 0, sizeof *s);
	s->use_pipe = use_pipe;
	if (!use_pipe) {
		s->wfd = memfd_create("sink", MFD_CLOEXEC);
		ck_assert_int_ge(s->wfd, 0);
		return s->wfd;
	}
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	s->rfd = pfd[0];
	s->wfd = pfd[1];
	ck_assert_int_eq(pthread_create(&s->thread, NULL, sink_main, s), 0);
	return s->wfd;
}

static void sink_finish(sink *s)
{
	if (s->use_pipe) {
		close(s->wfd);
		pthread_join(s->thread, NULL);
		close(s->rfd);
		return;
	}
	struct stat st;
	ck_assert_int_eq(fstat(s->wfd, &st), 0);
	s->n = 0;
	if (st.st_size > 0) {
		uint8_t *p = malloc((size_t)st.st_size);
		ck_assert(p);
		ck_assert_int_eq(pread(s->wfd, p, (size_t)st.st_size, 0), st.st_size);
		sink_append(s, p, (size_t)st.st_size);
		free(p);
	}
	close(s->wfd);
}

/* ------------------------------------------------------------ protect / unprotect */

static void make_header(envelope_header *h, const km_asset_ref *ref, const uint8_t *key, uint32_t seg)
{
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	km_err e = {0};
	ck_assert_msg(dek_wrap(kek, key, ref, wrapped, &e) == KM_OK, "%s", e.msg);
	ck_assert_msg(envelope_header_init(h, ref, wrapped, &e) == KM_OK, "%s", e.msg);
	if (seg)
		h->segment_size = seg;
}

/* Envelope of plain[0..n) for ref under key; *out malloc'd. */
static void protect_bytes(const km_asset_ref *ref, const uint8_t *key, uint32_t seg,
                          const uint8_t *plain, size_t n, int use_pipe, uint8_t **out, size_t *out_n)
{
	envelope_header h;
	feeder f;
	sink s;
	km_err e = {0};
	uint64_t consumed = 0;

	make_header(&h, ref, key, seg);
	int in = source_open(plain, n, use_pipe, &f);
	int outfd = sink_open(&s, use_pipe);
	km_status st = envelope_encrypt(in, outfd, &h, key, &consumed, &e);
	source_close(in, &f);
	sink_finish(&s);
	ck_assert_msg(st == KM_OK, "encrypt: %s", e.msg);
	ck_assert_uint_eq(consumed, n);
	*out = s.p;
	*out_n = s.n;
}

/* The whole unprotect path: header, unwrap with the KEK, decrypt. */
static km_status unprotect_bytes(const uint8_t *env, size_t n, int use_pipe, sink *s, km_err *e)
{
	envelope_header h;
	km_asset_ref ref;
	feeder f;
	uint64_t written = 0;
	uint8_t *key = km_secure_alloc(KM_DEK_BYTES);

	ck_assert(key);
	int in = source_open(env, n, use_pipe, &f);
	int out = sink_open(s, use_pipe);
	km_status st = envelope_read_header(in, &h, e);
	if (st == KM_OK) {
		envelope_header_ref(&h, &ref);
		st = dek_unwrap(kek, h.wrapped_dek, &ref, key, e);
	}
	if (st == KM_OK) {
		st = envelope_decrypt(in, out, &h, key, &written, e);
		sink_finish(s);
		ck_assert_uint_eq(written, s->n);
	} else {
		sink_finish(s);
	}
	source_close(in, &f);
	km_secure_free(key, KM_DEK_BYTES);
	return st;
}

static size_t header_len_of(const uint8_t *env)
{
	return (size_t)env[9] << 24 | (size_t)env[10] << 16 | (size_t)env[11] << 8 | env[12];
}

static size_t segments_for(size_t n, size_t seg)
{
	return n == 0 ? 1 : (n + seg - 1) / seg;
}

/* ------------------------------------------------------------ round trips */

static const struct roundtrip_row {
	uint32_t seg;
	long size;       /* >= 0: bytes; < 0: -k means k*seg + size_adj */
	long size_adj;
} roundtrip_rows[] = {
	{4096, 0, 0},
	{4096, 1, 0},
	{4096, -1, -1},  /* seg - 1 */
	{4096, -1, 0},   /* seg */
	{4096, -1, 1},   /* seg + 1 */
	{4096, -2, 0},   /* 2 seg */
	{4096, -2, 1},
	{4096, -256, 0}, /* exactly one 1 MiB batch */
	{4096, -256, 1},
	{4096, 5 * MiB + 3, 0},
	{65536, 0, 0},
	{65536, 1, 0},
	{65536, -1, -1},
	{65536, -1, 0},
	{65536, -1, 1},
	{65536, -2, 0},
	{65536, -16, 0}, /* one batch */
	{65536, -17, 0},
	{65536, 5 * MiB + 3, 0},
};

/* Loop index: row x {file, pipe} x {1 thread, 2 threads}. */
START_TEST(test_roundtrip)
{
	const struct roundtrip_row *r = &roundtrip_rows[_i / 4];
	int use_pipe = _i & 1;
	unsigned threads = (_i & 2) ? 2 : 1;
	size_t n = r->size >= 0 ? (size_t)r->size : (size_t)(-r->size * (long)r->seg + r->size_adj);
	uint8_t *plain = make_plain(n), *env;
	size_t env_n;
	sink s;
	km_err e = {0};

	envelope_set_threads(threads);
	protect_bytes(&ref_a, dek, r->seg, plain, n, use_pipe, &env, &env_n);
	size_t segs = segments_for(n, r->seg);
	ck_assert_uint_eq(env_n, header_len_of(env) + n + segs * KM_ENVELOPE_TAG_BYTES);

	km_status st = unprotect_bytes(env, env_n, use_pipe, &s, &e);
	ck_assert_msg(st == KM_OK, "size %zu seg %u pipe %d threads %u: %s", n, r->seg, use_pipe, threads, e.msg);
	ck_assert_uint_eq(s.n, n);
	ck_assert(n == 0 || memcmp(s.p, plain, n) == 0);
	free(s.p);
	free(env);
	free(plain);
}
END_TEST

/* Two envelopes of the same data differ (random nonce prefix and DEK wrap). */
START_TEST(test_envelopes_differ)
{
	uint8_t *plain = make_plain(10000), *a, *b;
	size_t an, bn;
	protect_bytes(&ref_a, dek, 4096, plain, 10000, 0, &a, &an);
	protect_bytes(&ref_a, dek, 4096, plain, 10000, 0, &b, &bn);
	ck_assert_uint_eq(an, bn);
	ck_assert(memcmp(a, b, an) != 0);
	free(a);
	free(b);
	free(plain);
}
END_TEST

/* ------------------------------------------------------------ tampering */

typedef enum mut_kind {
	M_FLIP,        /* env[at] ^= x */
	M_SET,         /* env[at] = x */
	M_TRUNCATE,    /* keep env[0..at) */
	M_APPEND,      /* append x bytes of 0xAA */
	M_SWAP,        /* swap segments seg and seg+1 */
	M_DUP,         /* insert a copy of segment seg after it */
	M_DROP,        /* remove segment seg */
	M_WRONG_ASSET, /* asset B's envelope carrying asset A's wrapped DEK */
	M_REPLACE,     /* input is the text `text` */
} mut_kind;

typedef enum mut_at {
	AT_MAGIC,      /* offset delta */
	AT_VERSION,
	AT_HEADER_LEN, /* last byte of the length */
	AT_SEGSIZE,    /* third byte of the segment size */
	AT_NAME,       /* first byte of the asset name */
	AT_KEKVER,     /* last byte of the KEK version */
	AT_WRAPPED,    /* wrapped DEK byte delta */
	AT_PREFIX,     /* nonce prefix byte delta */
	AT_HEADER_END, /* header length + delta */
	AT_SEGMENT,    /* segment seg, byte delta */
	AT_TAG,        /* segment seg's tag, byte delta */
} mut_at;

/* The base envelopes: seg 4096, 5 segments; PARTIAL: the last holds 1000
 * bytes; FULL: all five are full (so the last segment is a full one). */
#define T_SEG 4096u
#define T_PARTIAL (4 * T_SEG + 1000)
#define T_FULL (5 * T_SEG)

static const struct tamper_row {
	const char *label;
	mut_kind kind;
	mut_at at;
	int seg;
	long delta;
	uint8_t x;
	int full;          /* base: T_FULL instead of T_PARTIAL */
	const char *text;  /* M_REPLACE */
	km_status expect;
	const char *msg;   /* substring of the error message */
	int released;      /* segments whose plaintext may come out; -1: nothing */
} tamper_rows[] = {
	{"magic byte", M_FLIP, AT_MAGIC, 0, 0, 0x01, 0, NULL, KM_EINVAL, "not a keyward envelope (bad magic)", -1},
	{"magic last byte", M_FLIP, AT_MAGIC, 0, 7, 0x01, 0, NULL, KM_EINVAL, "bad magic", -1},
	{"format version", M_SET, AT_VERSION, 0, 0, 2, 0, NULL, KM_EINVAL, "unsupported envelope format version 2", -1},
	{"header length", M_FLIP, AT_HEADER_LEN, 0, 0, 0x01, 0, NULL, KM_EINVAL, "envelope header", -1},
	{"segment size (still in range)", M_FLIP, AT_SEGSIZE, 0, 0, 0x01, 0, NULL, KM_EINTEGRITY, "segment 0 failed authentication", 0},
	{"segment size (out of range)", M_SET, AT_SEGSIZE, 0, 0, 0x00, 0, NULL, KM_EINVAL, "segment size 0 is out of range", -1},
	{"asset name", M_FLIP, AT_NAME, 0, 0, 0x01, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"asset name (bad character)", M_SET, AT_NAME, 0, 0, ' ', 0, NULL, KM_EINVAL, "asset name", -1},
	{"kek version", M_FLIP, AT_KEKVER, 0, 0, 0x01, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"wrapped DEK nonce", M_FLIP, AT_WRAPPED, 0, 0, 0x80, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"wrapped DEK ciphertext", M_FLIP, AT_WRAPPED, 0, 20, 0x01, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"wrapped DEK tag", M_FLIP, AT_WRAPPED, 0, 59, 0x01, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"nonce prefix", M_FLIP, AT_PREFIX, 0, 3, 0x01, 0, NULL, KM_EINTEGRITY, "segment 0 failed authentication", 0},
	{"body of segment 0", M_FLIP, AT_SEGMENT, 0, 0, 0x01, 0, NULL, KM_EINTEGRITY, "segment 0 failed authentication", 0},
	{"body of segment 2", M_FLIP, AT_SEGMENT, 2, 100, 0x40, 0, NULL, KM_EINTEGRITY, "segment 2 failed authentication", 2},
	{"body of the last segment", M_FLIP, AT_SEGMENT, 4, 999, 0x01, 0, NULL, KM_EINTEGRITY, "segment 4 failed authentication", 4},
	{"tag of segment 1", M_FLIP, AT_TAG, 1, 15, 0x01, 0, NULL, KM_EINTEGRITY, "segment 1 failed authentication", 1},
	{"tag of the last segment", M_FLIP, AT_TAG, 4, 0, 0x01, 0, NULL, KM_EINTEGRITY, "segment 4 failed authentication", 4},
	{"segments 1 and 2 swapped", M_SWAP, AT_SEGMENT, 1, 0, 0, 0, NULL, KM_EINTEGRITY, "segment 1 failed authentication", 1},
	{"segment 1 duplicated", M_DUP, AT_SEGMENT, 1, 0, 0, 0, NULL, KM_EINTEGRITY, "segment 2 failed authentication", 2},
	{"segment 1 dropped", M_DROP, AT_SEGMENT, 1, 0, 0, 0, NULL, KM_EINTEGRITY, "segment 1 failed authentication", 1},
	{"last segment dropped", M_DROP, AT_SEGMENT, 4, 0, 0, 0, NULL, KM_EINTEGRITY, "envelope truncated after segment 3", 3},
	{"cut at a boundary", M_TRUNCATE, AT_SEGMENT, 2, 0, 0, 0, NULL, KM_EINTEGRITY, "envelope truncated after segment 1", 1},
	{"cut inside segment 2", M_TRUNCATE, AT_SEGMENT, 2, 100, 0, 0, NULL, KM_EINTEGRITY, "segment 2 failed authentication", 2},
	{"cut inside segment 2's tag", M_TRUNCATE, AT_SEGMENT, 2, 10, 0, 0, NULL, KM_EINTEGRITY, "envelope truncated inside segment 2", 2},
	{"cut inside the last tag", M_TRUNCATE, AT_TAG, 4, 8, 0, 0, NULL, KM_EINTEGRITY, "segment 4 failed authentication", 4},
	{"cut right after the header", M_TRUNCATE, AT_HEADER_END, 0, 0, 0, 0, NULL, KM_EINTEGRITY, "truncated after the header", 0},
	{"cut inside the header", M_TRUNCATE, AT_HEADER_END, 0, -5, 0, 0, NULL, KM_EINVAL, "envelope header truncated", -1},
	{"cut inside the magic", M_TRUNCATE, AT_MAGIC, 0, 4, 0, 0, NULL, KM_EINVAL, "envelope header truncated", -1},
	{"cut before the version", M_TRUNCATE, AT_VERSION, 0, 0, 0, 0, NULL, KM_EINVAL, "envelope header truncated", -1},
	{"appended byte (partial last)", M_APPEND, AT_SEGMENT, 0, 0, 1, 0, NULL, KM_EINTEGRITY, "segment 4 failed authentication", 4},
	{"appended byte (full last)", M_APPEND, AT_SEGMENT, 0, 0, 1, 1, NULL, KM_EINTEGRITY, "trailing data after its final segment 4", 4},
	{"appended segment-size bytes", M_APPEND, AT_SEGMENT, 0, 0, 200, 1, NULL, KM_EINTEGRITY, "trailing data", 4},
	{"full last segment dropped", M_DROP, AT_SEGMENT, 4, 0, 0, 1, NULL, KM_EINTEGRITY, "envelope truncated after segment 3", 3},
	{"wrapped DEK of another asset", M_WRONG_ASSET, AT_WRAPPED, 0, 0, 0, 0, NULL, KM_EINTEGRITY, "does not unwrap", -1},
	{"plain text", M_REPLACE, AT_MAGIC, 0, 0, 0, 0, "just some text, not an envelope\n", KM_EINVAL, "not a keyward envelope (bad magic)", -1},
	{"empty input", M_REPLACE, AT_MAGIC, 0, 0, 0, 0, "", KM_EINVAL, "not a keyward envelope (bad magic)", -1},
	/* Shares "\r\n\x1a" with our magic: the whole magic is compared. */
	{"a PNG file", M_REPLACE, AT_MAGIC, 0, 0, 0, 0, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", KM_EINVAL, "bad magic", -1},
	{"magic, then other bytes", M_REPLACE, AT_MAGIC, 0, 0, 0, 0, "KWENV\r\n\x1b", KM_EINVAL, "bad magic", -1},
};

typedef struct header_offsets {
	size_t len, name, kek_version, wrapped, prefix;
} header_offsets;

static header_offsets offsets_of(const uint8_t *env)
{
	header_offsets o;
	size_t pos = KM_ENVELOPE_HEADER_FIXED;
	o.len = header_len_of(env);
	for (int field = 0; field < 5; field++) {
		if (field == 2)
			o.name = pos + 2;
		pos += 2 + ((size_t)env[pos] << 8 | env[pos + 1]);
	}
	o.kek_version = pos;
	o.wrapped = pos + 4;
	o.prefix = o.wrapped + KM_WRAPPED_DEK_BYTES;
	ck_assert_uint_eq(o.prefix + KM_ENVELOPE_NONCE_PREFIX_BYTES, o.len);
	return o;
}

static size_t resolve(const uint8_t *env, size_t plain_n, const struct tamper_row *r)
{
	header_offsets o = offsets_of(env);
	size_t chunk = T_SEG + KM_ENVELOPE_TAG_BYTES;
	size_t seg_start = o.len + (size_t)r->seg * chunk;
	size_t seg_plain = plain_n - (size_t)r->seg * T_SEG < T_SEG ? plain_n - (size_t)r->seg * T_SEG : T_SEG;
	size_t base = 0;
	switch (r->at) {
	case AT_MAGIC: base = 0; break;
	case AT_VERSION: base = 8; break;
	case AT_HEADER_LEN: base = 12; break;
	case AT_SEGSIZE: base = 15; break;
	case AT_NAME: base = o.name; break;
	case AT_KEKVER: base = o.kek_version + 3; break;
	case AT_WRAPPED: base = o.wrapped; break;
	case AT_PREFIX: base = o.prefix; break;
	case AT_HEADER_END: base = o.len; break;
	case AT_SEGMENT: base = seg_start; break;
	case AT_TAG: base = seg_start + seg_plain; break;
	}
	return (size_t)((long)base + r->delta);
}

/* Apply row r to env (malloc'd, *n bytes); may reallocate. */
static uint8_t *mutate(uint8_t *env, size_t *n, size_t plain_n, const struct tamper_row *r)
{
	header_offsets o = offsets_of(env);
	size_t chunk = T_SEG + KM_ENVELOPE_TAG_BYTES;
	size_t at = resolve(env, plain_n, r);
	size_t s0 = o.len + (size_t)r->seg * chunk;

	switch (r->kind) {
	case M_FLIP:
		ck_assert_uint_lt(at, *n);
		env[at] ^= r->x;
		break;
	case M_SET:
		ck_assert_uint_lt(at, *n);
		if (r->at == AT_SEGSIZE) /* the whole field: 0 */
			memset(env + 13, r->x, 4);
		else
			env[at] = r->x;
		break;
	case M_TRUNCATE:
		ck_assert_uint_le(at, *n);
		*n = at;
		break;
	case M_APPEND:
		env = realloc(env, *n + r->x);
		ck_assert(env);
		memset(env + *n, 0xAA, r->x);
		*n += r->x;
		break;
	case M_SWAP: {
		uint8_t tmp[T_SEG + KM_ENVELOPE_TAG_BYTES];
		ck_assert_uint_le(s0 + 2 * chunk, *n);
		memcpy(tmp, env + s0, chunk);
		memmove(env + s0, env + s0 + chunk, chunk);
		memcpy(env + s0 + chunk, tmp, chunk);
		break;
	}
	case M_DUP:
		ck_assert_uint_le(s0 + chunk, *n);
		env = realloc(env, *n + chunk);
		ck_assert(env);
		memmove(env + s0 + chunk, env + s0, *n - s0);
		*n += chunk;
		break;
	case M_DROP: {
		size_t len = *n - s0 < chunk ? *n - s0 : chunk;
		memmove(env + s0, env + s0 + len, *n - s0 - len);
		*n -= len;
		break;
	}
	case M_WRONG_ASSET: {
		/* Asset B's own envelope, with A's wrapped DEK pasted in. */
		uint8_t *plain = make_plain(plain_n), *b;
		size_t bn;
		protect_bytes(&ref_b, dek_b, T_SEG, plain, plain_n, 0, &b, &bn);
		header_offsets ob = offsets_of(b);
		memcpy(b + ob.wrapped, env + o.wrapped, KM_WRAPPED_DEK_BYTES);
		free(plain);
		free(env);
		*n = bn;
		return b;
	}
	case M_REPLACE: {
		size_t tn = strlen(r->text);
		memcpy(env, r->text, tn);
		*n = tn;
		break;
	}
	}
	return env;
}

/* Loop index: row x {file, pipe}. */
START_TEST(test_tamper)
{
	const struct tamper_row *r = &tamper_rows[_i / 2];
	int use_pipe = _i & 1;
	size_t plain_n = r->full ? T_FULL : T_PARTIAL;
	uint8_t *plain = make_plain(plain_n), *env;
	size_t n;
	sink s;
	km_err e = {0};

	envelope_set_threads(use_pipe ? 2 : 1);
	protect_bytes(&ref_a, dek, T_SEG, plain, plain_n, 0, &env, &n);
	env = mutate(env, &n, plain_n, r);

	km_status st = unprotect_bytes(env, n, use_pipe, &s, &e);
	ck_assert_msg(st == r->expect, "%s: status %s, expected %s (%s)", r->label, km_status_name(st),
	              km_status_name(r->expect), e.msg);
	ck_assert_msg(strstr(e.msg, r->msg) != NULL, "%s: message \"%s\" lacks \"%s\"", r->label, e.msg, r->msg);
	size_t allowed = r->released < 0 ? 0 : (size_t)r->released * T_SEG;
	ck_assert_msg(s.n == allowed, "%s: %zu plaintext bytes came out, expected %zu", r->label, s.n, allowed);
	ck_assert(allowed == 0 || memcmp(s.p, plain, allowed) == 0);
	free(s.p);
	free(env);
	free(plain);
}
END_TEST

/* Every header byte is bound to the segments, not only through the DEK
 * wrap: with the right DEK in hand, a changed identity still fails the
 * first segment. */
START_TEST(test_header_bound_to_segments)
{
	static const mut_at regions[] = {AT_NAME, AT_KEKVER, AT_WRAPPED, AT_SEGSIZE, AT_PREFIX};
	uint8_t *plain = make_plain(T_PARTIAL);

	for (size_t k = 0; k < KM_ARRAY_LEN(regions); k++) {
		struct tamper_row r = {"", M_FLIP, regions[k], 0, 0, 0x01, 0, NULL, KM_OK, "", 0};
		uint8_t *env;
		size_t n;
		envelope_header h;
		feeder f;
		sink s;
		km_err e = {0};

		protect_bytes(&ref_a, dek, T_SEG, plain, T_PARTIAL, 0, &env, &n);
		env = mutate(env, &n, T_PARTIAL, &r);
		int in = source_open(env, n, 0, &f);
		ck_assert_msg(envelope_read_header(in, &h, &e) == KM_OK, "%s", e.msg);
		int out = sink_open(&s, 0);
		km_status st = envelope_decrypt(in, out, &h, dek, NULL, &e);
		sink_finish(&s);
		source_close(in, &f);
		ck_assert_msg(st == KM_EINTEGRITY, "region %zu: %s", k, e.msg);
		ck_assert_str_eq(e.msg, "segment 0 failed authentication");
		ck_assert_uint_eq(s.n, 0);
		free(s.p);
		free(env);
	}
	free(plain);
}
END_TEST

/* The wrong DEK (right header) fails the first segment; nothing comes out. */
START_TEST(test_wrong_dek)
{
	uint8_t *plain = make_plain(3 * T_SEG), *env;
	size_t n;
	envelope_header h;
	feeder f;
	sink s;
	km_err e = {0};

	protect_bytes(&ref_a, dek, T_SEG, plain, 3 * T_SEG, 0, &env, &n);
	int in = source_open(env, n, 0, &f);
	ck_assert_int_eq(envelope_read_header(in, &h, &e), KM_OK);
	int out = sink_open(&s, 0);
	ck_assert_int_eq(envelope_decrypt(in, out, &h, dek_b, NULL, &e), KM_EINTEGRITY);
	sink_finish(&s);
	source_close(in, &f);
	ck_assert_str_eq(e.msg, "segment 0 failed authentication");
	ck_assert_uint_eq(s.n, 0);
	free(s.p);
	free(env);
	free(plain);
}
END_TEST

/* ------------------------------------------------------------ header codec */

START_TEST(test_header_roundtrip_and_position)
{
	envelope_header h, back;
	uint8_t bytes[KM_ENVELOPE_HEADER_MAX];
	size_t len;
	km_err e = {0};

	make_header(&h, &ref_a, dek, 8192);
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, &e), KM_OK);
	ck_assert_uint_ge(len, KM_ENVELOPE_HEADER_MIN);
	ck_assert_uint_le(len, KM_ENVELOPE_HEADER_MAX);

	/* Followed by more bytes: the reader must stop exactly at the end. */
	uint8_t file[KM_ENVELOPE_HEADER_MAX + 3];
	memcpy(file, bytes, len);
	memcpy(file + len, "xyz", 3);
	feeder f;
	int fd = source_open(file, len + 3, 0, &f);
	ck_assert_msg(envelope_read_header(fd, &back, &e) == KM_OK, "%s", e.msg);
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), (off_t)len);
	source_close(fd, &f);
	ck_assert_mem_eq(&h, &back, sizeof h);

	km_asset_ref r;
	envelope_header_ref(&back, &r);
	ck_assert_str_eq(r.uid, ref_a.uid);
	ck_assert_str_eq(r.kind, ref_a.kind);
	ck_assert_str_eq(r.name, ref_a.name);
	ck_assert_str_eq(r.version, ref_a.version);
	ck_assert_str_eq(r.kek_name, ref_a.kek_name);
	ck_assert_uint_eq(r.kek_version, ref_a.kek_version);
}
END_TEST

START_TEST(test_header_limits)
{
	envelope_header h;
	uint8_t bytes[KM_ENVELOPE_HEADER_MAX];
	size_t len;
	km_err e = {0};
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES] = {0};
	km_asset_ref bad = ref_a;

	bad.name = "a//b";
	ck_assert_int_eq(envelope_header_init(&h, &bad, wrapped, &e), KM_EINVAL);

	make_header(&h, &ref_a, dek, 0);
	ck_assert_uint_eq(h.segment_size, KM_ENVELOPE_SEGMENT_DEFAULT);
	h.segment_size = KM_ENVELOPE_SEGMENT_MIN - 1;
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, &e), KM_EINVAL);
	ck_assert_int_eq(envelope_encrypt(0, 1, &h, dek, NULL, &e), KM_EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "segment size"));
	h.segment_size = KM_ENVELOPE_SEGMENT_MAX + 1;
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, &e), KM_EINVAL);
	h.segment_size = KM_ENVELOPE_SEGMENT_MAX;
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, &e), KM_OK);

	/* Longest identity: the header stays within KM_ENVELOPE_HEADER_MAX. */
	char name[KM_ASSET_NAME_MAX + 1], version[KM_ASSET_VERSION_MAX + 1], kn[KM_ASSET_KEK_NAME_MAX + 1];
	memset(name, 'n', KM_ASSET_NAME_MAX);
	name[KM_ASSET_NAME_MAX] = '\0';
	memset(version, 'v', KM_ASSET_VERSION_MAX);
	version[KM_ASSET_VERSION_MAX] = '\0';
	memset(kn, 'k', KM_ASSET_KEK_NAME_MAX);
	kn[KM_ASSET_KEK_NAME_MAX] = '\0';
	km_asset_ref big = {ref_a.uid, "inference-log", name, version, kn, UINT32_MAX};
	make_header(&h, &big, dek, 0);
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, &e), KM_OK);
	ck_assert_uint_eq(len, KM_ENVELOPE_HEADER_FIXED + 5 * 2 + 32 + 13 + KM_ASSET_NAME_MAX +
	                  KM_ASSET_VERSION_MAX + KM_ASSET_KEK_NAME_MAX + 4 + 60 + 7);
	ck_assert_uint_le(len, KM_ENVELOPE_HEADER_MAX);
}
END_TEST

/* Known answer: fixed key, identity, wrapped-DEK bytes, nonce prefix and
 * plaintext give these exact bytes.  The same vector is in docs/format.md
 * and was checked with an independent implementation (Python
 * `cryptography`), so a change to the format cannot pass silently. */
static const char kat_hex[] =
	"4b57454e560d0a1a01000000a900001000"                                 /* magic .. segment size */
	"00203030313132323333343435353636373738383939616162626363646465656666" /* uid */
	"000764617461736574"                                                 /* kind */
	"000b636c61696d732f32303235"                                         /* name */
	"000133"                                                             /* version */
	"001464617461736574732f636c61696d732d32303235"                       /* kek name */
	"00000002"                                                           /* kek version */
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"   /* wrapped DEK */
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadb"
	"f0f1f2f3f4f5f6";                                                    /* nonce prefix */

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	ck_assert_uint_le(n, cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Builds the KAT header (fields in docs/format.md, "Example"). */
static void kat_header(envelope_header *h)
{
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	for (size_t i = 0; i < sizeof wrapped; i++)
		wrapped[i] = (uint8_t)(0xa0 + i);
	ck_assert_int_eq(envelope_header_init(h, &ref_a, wrapped, NULL), KM_OK);
	h->segment_size = 4096;
	for (size_t i = 0; i < KM_ENVELOPE_NONCE_PREFIX_BYTES; i++)
		h->nonce_prefix[i] = (uint8_t)(0xf0 + i);
}

START_TEST(test_known_answer_header)
{
	envelope_header h;
	uint8_t bytes[KM_ENVELOPE_HEADER_MAX], want[KM_ENVELOPE_HEADER_MAX];
	size_t len;

	kat_header(&h);
	ck_assert_int_eq(envelope_header_encode(&h, bytes, &len, NULL), KM_OK);
	size_t want_n = unhex(kat_hex, want, sizeof want);
	ck_assert_uint_eq(len, want_n);
	ck_assert_mem_eq(bytes, want, len);
}
END_TEST

/* Segments of the KAT envelope: DEK = 00 01 .. 1f, plaintext 4096 x 'a'
 * then "hello" (two segments, the second the last).  From the independent
 * implementation: segment 0's tag, and all of segment 1 (ct || tag). */
static const char kat_tag0_hex[] = "2c6d4176e95d4138fb5ddc7b63f70092";
static const char kat_seg1_hex[] = "4443cefe31" "3de1812f1c408e80d9862b3a53a65ac1";

START_TEST(test_known_answer_segments)
{
	envelope_header h;
	uint8_t *key = km_secure_alloc(KM_DEK_BYTES);
	uint8_t plain[4096 + 5];
	uint8_t *env;
	size_t n;
	sink s;
	feeder f;
	km_err e = {0};

	ck_assert(key);
	for (size_t i = 0; i < KM_DEK_BYTES; i++)
		key[i] = (uint8_t)i;
	memset(plain, 'a', 4096);
	memcpy(plain + 4096, "hello", 5);
	kat_header(&h);
	int in = source_open(plain, sizeof plain, 0, &f);
	int out = sink_open(&s, 0);
	ck_assert_msg(envelope_encrypt(in, out, &h, key, NULL, &e) == KM_OK, "%s", e.msg);
	source_close(in, &f);
	sink_finish(&s);
	env = s.p;
	n = s.n;

	size_t hl = header_len_of(env);
	ck_assert_uint_eq(n, hl + 4096 + 16 + 5 + 16);
	uint8_t tag0[16], seg1[5 + 16];
	ck_assert_uint_eq(unhex(kat_tag0_hex, tag0, sizeof tag0), 16);
	ck_assert_uint_eq(unhex(kat_seg1_hex, seg1, sizeof seg1), sizeof seg1);
	ck_assert_mem_eq(env + hl + 4096, tag0, 16);
	ck_assert_mem_eq(env + hl + 4096 + 16, seg1, sizeof seg1);
	free(env);
	km_secure_free(key, KM_DEK_BYTES);
}
END_TEST

/* A DEK wrapped by the independent implementation (KEK = 40 41 .. 5f,
 * nonce 10 11 .. 1b, DEK 00 01 .. 1f, identity ref_a) unwraps here: the
 * AAD encoding matches docs/format.md. */
static const char kat_wrapped_hex[] =
	"101112131415161718191a1b"
	"793b3fd252941224a6afdc5be7f501b9150696da12045c1c6077d3cac774accf"
	"bebe8036d6041f48adac97b3ddce415b";

START_TEST(test_known_answer_dek_wrap)
{
	uint8_t *k = km_secure_alloc(KM_KEK_BYTES), *d = km_secure_alloc(KM_DEK_BYTES);
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	km_err e = {0};

	ck_assert(k && d);
	for (size_t i = 0; i < KM_KEK_BYTES; i++)
		k[i] = (uint8_t)(0x40 + i);
	ck_assert_uint_eq(unhex(kat_wrapped_hex, wrapped, sizeof wrapped), KM_WRAPPED_DEK_BYTES);
	ck_assert_msg(dek_unwrap(k, wrapped, &ref_a, d, &e) == KM_OK, "%s", e.msg);
	for (size_t i = 0; i < KM_DEK_BYTES; i++)
		ck_assert_uint_eq(d[i], i);
	km_secure_free(k, KM_KEK_BYTES);
	km_secure_free(d, KM_DEK_BYTES);
}
END_TEST

/* ------------------------------------------------------------ DEK wrapping */

START_TEST(test_dek_roundtrip)
{
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES], wrapped2[KM_WRAPPED_DEK_BYTES];
	uint8_t *back = km_secure_alloc(KM_DEK_BYTES);
	dek_ctx *c;
	km_err e = {0};

	ck_assert(back);
	ck_assert_int_eq(dek_wrap(kek, dek, &ref_a, wrapped, &e), KM_OK);
	ck_assert_int_eq(dek_unwrap(kek, wrapped, &ref_a, back, &e), KM_OK);
	ck_assert_mem_eq(back, dek, KM_DEK_BYTES);

	/* The keyed context interoperates with the one-shot calls. */
	ck_assert_int_eq(dek_ctx_new(kek, &c, &e), KM_OK);
	ck_assert_int_eq(dek_ctx_wrap(c, dek, &ref_a, wrapped2, &e), KM_OK);
	ck_assert(memcmp(wrapped, wrapped2, KM_WRAPPED_DEK_BYTES) != 0); /* fresh nonce */
	memset(back, 0, KM_DEK_BYTES);
	ck_assert_int_eq(dek_unwrap(kek, wrapped2, &ref_a, back, &e), KM_OK);
	ck_assert_mem_eq(back, dek, KM_DEK_BYTES);
	memset(back, 0, KM_DEK_BYTES);
	ck_assert_int_eq(dek_ctx_unwrap(c, wrapped, &ref_a, back, &e), KM_OK);
	ck_assert_mem_eq(back, dek, KM_DEK_BYTES);
	/* Alternating directions on one context. */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(dek_ctx_wrap(c, dek_b, &ref_b, wrapped2, &e), KM_OK);
		ck_assert_int_eq(dek_ctx_unwrap(c, wrapped2, &ref_b, back, &e), KM_OK);
		ck_assert_mem_eq(back, dek_b, KM_DEK_BYTES);
	}
	ck_assert_int_eq(dek_ctx_unwrap(c, wrapped2, &ref_a, back, &e), KM_EINTEGRITY);

	/* Past the context's pool of nonces: every wrap has its own nonce. */
	enum { MANY = 200 };
	static uint8_t nonces[MANY][12];
	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(dek_ctx_wrap(c, dek, &ref_a, wrapped2, &e), KM_OK);
		ck_assert_int_eq(dek_unwrap(kek, wrapped2, &ref_a, back, &e), KM_OK);
		ck_assert_mem_eq(back, dek, KM_DEK_BYTES);
		memcpy(nonces[i], wrapped2, 12);
		for (int k = 0; k < i; k++)
			ck_assert(memcmp(nonces[k], nonces[i], 12) != 0);
	}
	dek_ctx_free(c);
	dek_ctx_free(NULL);
	km_secure_free(back, KM_DEK_BYTES);
}
END_TEST

/* One identity field changed per row: the wrapped DEK must not unwrap. */
static const struct binding_row {
	const char *label;
	km_asset_ref ref;
} binding_rows[] = {
	{"uid", {"00112233445566778899aabbccddeefe", "dataset", "claims/2025", "3", "datasets/claims-2025", 2}},
	{"kind", {"00112233445566778899aabbccddeeff", "model", "claims/2025", "3", "datasets/claims-2025", 2}},
	{"name", {"00112233445566778899aabbccddeeff", "dataset", "claims/2026", "3", "datasets/claims-2025", 2}},
	{"version", {"00112233445566778899aabbccddeeff", "dataset", "claims/2025", "4", "datasets/claims-2025", 2}},
	{"version empty", {"00112233445566778899aabbccddeeff", "dataset", "claims/2025", "", "datasets/claims-2025", 2}},
	{"kek name", {"00112233445566778899aabbccddeeff", "dataset", "claims/2025", "3", "datasets/claims-2024", 2}},
	{"kek version", {"00112233445566778899aabbccddeeff", "dataset", "claims/2025", "3", "datasets/claims-2025", 3}},
	/* Field boundaries move but the concatenation is the same: the length
	 * prefixes keep them apart. */
	{"name/version shift", {"00112233445566778899aabbccddeeff", "dataset", "claims/20253", "", "datasets/claims-2025", 2}},
};

START_TEST(test_dek_binding)
{
	const struct binding_row *r = &binding_rows[_i];
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	uint8_t *back = km_secure_alloc(KM_DEK_BYTES);
	km_err e = {0};

	ck_assert(back);
	ck_assert_int_eq(dek_wrap(kek, dek, &ref_a, wrapped, &e), KM_OK);
	ck_assert_int_eq(km_asset_ref_validate(&r->ref, &e), KM_OK);
	memset(back, 0x5a, KM_DEK_BYTES);
	ck_assert_msg(dek_unwrap(kek, wrapped, &r->ref, back, &e) == KM_EINTEGRITY, "%s", r->label);
	ck_assert_str_eq(e.msg, "the data key does not unwrap: wrong key version, "
	                        "or the envelope belongs to another asset");
	for (size_t i = 0; i < KM_DEK_BYTES; i++)
		ck_assert_uint_eq(back[i], 0); /* nothing unauthenticated left */
	km_secure_free(back, KM_DEK_BYTES);
}
END_TEST

START_TEST(test_dek_wrong_kek_and_tamper)
{
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	uint8_t *other = km_secure_alloc(KM_KEK_BYTES), *back = km_secure_alloc(KM_DEK_BYTES);
	km_err e = {0};

	ck_assert(other && back);
	ck_assert_int_eq(RAND_bytes(other, KM_KEK_BYTES), 1);
	ck_assert_int_eq(dek_wrap(kek, dek, &ref_a, wrapped, &e), KM_OK);
	ck_assert_int_eq(dek_unwrap(other, wrapped, &ref_a, back, &e), KM_EINTEGRITY);
	for (size_t i = 0; i < KM_WRAPPED_DEK_BYTES; i++) {
		wrapped[i] ^= 0x01;
		ck_assert_int_eq(dek_unwrap(kek, wrapped, &ref_a, back, &e), KM_EINTEGRITY);
		wrapped[i] ^= 0x01;
	}
	ck_assert_int_eq(dek_unwrap(kek, wrapped, &ref_a, back, &e), KM_OK);
	/* An invalid identity is refused before any crypto. */
	km_asset_ref bad = ref_a;
	bad.kind = "features";
	ck_assert_int_eq(dek_wrap(kek, dek, &bad, wrapped, &e), KM_EINVAL);
	ck_assert_int_eq(dek_unwrap(kek, wrapped, &bad, back, &e), KM_EINVAL);
	km_secure_free(other, KM_KEK_BYTES);
	km_secure_free(back, KM_DEK_BYTES);
}
END_TEST

START_TEST(test_dek_generate_and_uid)
{
	uint8_t *a = km_secure_alloc(KM_DEK_BYTES), *b = km_secure_alloc(KM_DEK_BYTES);
	char u1[KM_ASSET_UID_LEN + 1], u2[KM_ASSET_UID_LEN + 1];

	ck_assert(a && b);
	ck_assert_int_eq(dek_generate(a, NULL), KM_OK);
	ck_assert_int_eq(dek_generate(b, NULL), KM_OK);
	ck_assert(memcmp(a, b, KM_DEK_BYTES) != 0);
	ck_assert_int_eq(km_asset_uid_new(u1, NULL), KM_OK);
	ck_assert_int_eq(km_asset_uid_new(u2, NULL), KM_OK);
	ck_assert_str_ne(u1, u2);
	km_asset_ref r = ref_a;
	r.uid = u1;
	ck_assert_int_eq(km_asset_ref_validate(&r, NULL), KM_OK);
	km_secure_free(a, KM_DEK_BYTES);
	km_secure_free(b, KM_DEK_BYTES);
}
END_TEST

/* ------------------------------------------------------------ identity validation */

typedef enum gen_field { GEN_NONE, GEN_NAME, GEN_VERSION, GEN_KEK } gen_field;

static const struct validate_row {
	const char *uid, *kind, *name, *version, *kek_name;
	uint32_t kek_version;
	gen_field gen;      /* replace this field by gen_len repeated 'a' */
	size_t gen_len;
	km_status expect;
	const char *msg;
} validate_rows[] = {
	{"00112233445566778899aabbccddeeff", "dataset", "claims/2025", "3", "datasets/claims-2025", 2, GEN_NONE, 0, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "feature", "credit-risk/income_bucket", "7", "features/credit-risk", 1, GEN_NONE, 0, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "model", "Fraud.V4", "1.2.3+build_5", "models/fraud-v4", 9, GEN_NONE, 0, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "inference-log", "scoring-api", "", "inference/scoring-api", 1, GEN_NONE, 0, KM_OK, ""},
	/* uid */
	{"00112233445566778899aabbccddeef", "dataset", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "uid"},
	{"00112233445566778899aabbccddeeff0", "dataset", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "uid"},
	{"00112233445566778899AABBCCDDEEFF", "dataset", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "position 21"},
	{"0011223344556677889xaabbccddeeff", "dataset", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "uid"},
	{NULL, "dataset", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "uid"},
	/* kind */
	{"00112233445566778899aabbccddeeff", "features", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "kind"},
	{"00112233445566778899aabbccddeeff", "", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "kind"},
	{"00112233445566778899aabbccddeeff", NULL, "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "kind"},
	{"00112233445566778899aabbccddeeff", "Model", "x", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "kind"},
	/* name */
	{"00112233445566778899aabbccddeeff", "dataset", "", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name is empty"},
	{"00112233445566778899aabbccddeeff", "dataset", NULL, "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name"},
	{"00112233445566778899aabbccddeeff", "dataset", "/a", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "empty '/'-segment at position 1"},
	{"00112233445566778899aabbccddeeff", "dataset", "a/", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "empty '/'-segment"},
	{"00112233445566778899aabbccddeeff", "dataset", "a//b", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "empty '/'-segment at position 3"},
	{"00112233445566778899aabbccddeeff", "dataset", "a/../b", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "\"..\""},
	{"00112233445566778899aabbccddeeff", "dataset", "./a", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "\".\""},
	{"00112233445566778899aabbccddeeff", "dataset", "a b", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "position 2"},
	{"00112233445566778899aabbccddeeff", "dataset", "a\x01", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name"},
	{"00112233445566778899aabbccddeeff", "dataset", "a:b", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name"},
	{"00112233445566778899aabbccddeeff", "dataset", "a@b", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name"},
	{"00112233445566778899aabbccddeeff", "dataset", "caf\xc3\xa9", "", "k", 1, GEN_NONE, 0, KM_EINVAL, "asset name"},
	{"00112233445566778899aabbccddeeff", "dataset", NULL, "", "k", 1, GEN_NAME, 255, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "dataset", NULL, "", "k", 1, GEN_NAME, 256, KM_EINVAL, "longer than 255"},
	/* version */
	{"00112233445566778899aabbccddeeff", "dataset", "x", NULL, "k", 1, GEN_NONE, 0, KM_EINVAL, "version"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "-1", "k", 1, GEN_NONE, 0, KM_EINVAL, "version"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "v 1", "k", 1, GEN_NONE, 0, KM_EINVAL, "position 2"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "1/2", "k", 1, GEN_NONE, 0, KM_EINVAL, "version"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", NULL, "k", 1, GEN_VERSION, 127, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "dataset", "x", NULL, "k", 1, GEN_VERSION, 128, KM_EINVAL, "longer than 127"},
	/* kek name and version */
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", "Datasets/claims", 1, GEN_NONE, 0, KM_EINVAL, "key name"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", "", 1, GEN_NONE, 0, KM_EINVAL, "key name is empty"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", "datasets//claims", 1, GEN_NONE, 0, KM_EINVAL, "key name"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", NULL, 1, GEN_KEK, 128, KM_OK, ""},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", NULL, 1, GEN_KEK, 129, KM_EINVAL, "longer than 128"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", "k", 0, GEN_NONE, 0, KM_EINVAL, "key version"},
	{"00112233445566778899aabbccddeeff", "dataset", "x", "", "k", UINT32_MAX, GEN_NONE, 0, KM_OK, ""},
};

START_TEST(test_validate)
{
	const struct validate_row *r = &validate_rows[_i];
	char gen[512];
	km_asset_ref ref = {r->uid, r->kind, r->name, r->version, r->kek_name, r->kek_version};
	km_err e = {0};

	if (r->gen != GEN_NONE) {
		memset(gen, 'a', r->gen_len);
		gen[r->gen_len] = '\0';
		if (r->gen == GEN_NAME)
			ref.name = gen;
		else if (r->gen == GEN_VERSION)
			ref.version = gen;
		else
			ref.kek_name = gen;
	}
	km_status st = km_asset_ref_validate(&ref, &e);
	ck_assert_msg(st == r->expect, "row %d: %s (%s)", _i, km_status_name(st), e.msg);
	ck_assert_msg(strstr(e.msg, r->msg) != NULL, "row %d: \"%s\" lacks \"%s\"", _i, e.msg, r->msg);
	if (st == KM_OK) {
		uint8_t enc[KM_ASSET_REF_ENCODED_MAX];
		ck_assert_uint_gt(km_asset_ref_encode(&ref, enc, sizeof enc), 0);
	}
}
END_TEST

START_TEST(test_validate_null_and_kinds)
{
	ck_assert_int_eq(km_asset_ref_validate(NULL, NULL), KM_EUSAGE);
	size_t n = 0;
	for (; km_asset_kinds[n]; n++)
		ck_assert(km_asset_kind_valid(km_asset_kinds[n]));
	ck_assert_uint_eq(n, 4);
	ck_assert(!km_asset_kind_valid(NULL));
	ck_assert(!km_asset_kind_valid("inference"));
}
END_TEST

/* ------------------------------------------------------------ atomic files */

static char *temp_dir(void)
{
	char *d = strdup("/tmp/kw-test-atomic-XXXXXX");
	ck_assert(d && mkdtemp(d));
	return d;
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	ck_assert(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(test_atomicfile)
{
	char *dir = temp_dir(), path[512], buf[16];
	atomicfile af;
	struct stat st;
	km_err e = {0};

	snprintf(path, sizeof path, "%s/out.kwe", dir);

	/* Abort: nothing left anywhere. */
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_OK);
	ck_assert_int_eq(write(af.fd, "partial", 7), 7);
	ck_assert_int_ne(stat(path, &st), 0);
	atomicfile_abort(&af);
	atomicfile_abort(&af); /* twice is fine */
	ck_assert_int_eq(dir_entries(dir), 0);

	/* Commit: the file appears whole, mode 0600, no temporary left. */
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_OK);
	ck_assert_int_eq(write(af.fd, "first", 5), 5);
	ck_assert_int_ne(stat(path, &st), 0); /* not before commit */
	ck_assert_msg(atomicfile_commit(&af, &e) == KM_OK, "%s", e.msg);
	atomicfile_abort(&af); /* after commit: a no-op */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(dir_entries(dir), 1);

	/* Replacing: the old content stays until the commit. */
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_OK);
	ck_assert_int_eq(write(af.fd, "second", 6), 6);
	int fd = open(path, O_RDONLY);
	ck_assert_int_eq(read(fd, buf, sizeof buf), 5);
	close(fd);
	ck_assert_int_eq(atomicfile_commit(&af, &e), KM_OK);
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(read(fd, buf, sizeof buf), 6);
	close(fd);
	ck_assert_mem_eq(buf, "second", 6);
	ck_assert_int_eq(dir_entries(dir), 1);

	/* Failures. */
	snprintf(path, sizeof path, "%s/missing/out.kwe", dir);
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_EIO);
	atomicfile_abort(&af);
	ck_assert_int_eq(atomicfile_open("", &af, &e), KM_EUSAGE);
	snprintf(path, sizeof path, "%s/", dir);
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_EUSAGE);
	ck_assert_int_eq(atomicfile_commit(&af, &e), KM_EUSAGE);

	snprintf(path, sizeof path, "%s/out.kwe", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
}
END_TEST

/* A failed decryption written through atomicfile leaves no output file. */
START_TEST(test_atomicfile_with_failed_decrypt)
{
	char *dir = temp_dir(), path[512];
	uint8_t *plain = make_plain(3 * T_SEG), *env;
	size_t n;
	envelope_header h;
	atomicfile af;
	feeder f;
	km_err e = {0};
	struct stat st;

	protect_bytes(&ref_a, dek, T_SEG, plain, 3 * T_SEG, 0, &env, &n);
	env[n - 1] ^= 1;
	int in = source_open(env, n, 0, &f);
	ck_assert_int_eq(envelope_read_header(in, &h, &e), KM_OK);
	snprintf(path, sizeof path, "%s/plain.bin", dir);
	ck_assert_int_eq(atomicfile_open(path, &af, &e), KM_OK);
	km_status s = envelope_decrypt(in, af.fd, &h, dek, NULL, &e);
	ck_assert_int_eq(s, KM_EINTEGRITY);
	atomicfile_abort(&af);
	source_close(in, &f);
	ck_assert_int_ne(stat(path, &st), 0);
	ck_assert_int_eq(dir_entries(dir), 0);
	rmdir(dir);
	free(dir);
	free(env);
	free(plain);
}
END_TEST

/* ---- the sweep of stale temporaries ---- */

static void make_file(const char *dir, const char *name, const char *content, time_t age_s)
{
	char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", p, strerror(errno));
	size_t n = strlen(content);
	ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
	close(fd);
	if (age_s) {
		struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
		ck_assert_int_eq(utimensat(AT_FDCWD, p, t, 0), 0);
	}
}

static int exists_in(const char *dir, const char *name)
{
	char p[600];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

/* rm -rf dir, then free it (from temp_dir). */
static void remove_dir(char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(dir);
}

/* Run one atomicfile_open + commit of `path` in a child; 0 if it
 * finished with KM_OK within limit_s, -1 if it had to be killed. */
static int write_in_child(const char *path, int limit_s)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		atomicfile af;
		km_err e;
		if (atomicfile_open(path, &af, &e) != KM_OK || write(af.fd, "ok", 2) != 2 ||
		    atomicfile_commit(&af, &e) != KM_OK)
			_exit(1);
		_exit(0);
	}
	int status = 0;
	for (int i = 0; i < limit_s * 100; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* Names like temporaries that are not regular files are left alone, and
 * the sweep never waits on them: a FIFO opened for reading without
 * O_NONBLOCK would block until someone writes. */
START_TEST(test_atomicfile_sweep_skips_fifos)
{
	char *dir = temp_dir(), path[512], p[600], target[600];
	snprintf(path, sizeof path, "%s/out.kwe", dir);
	snprintf(p, sizeof p, "%s/.out.kwe.kwtmp.FIFO01", dir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	snprintf(p, sizeof p, "%s/.out.kwe.kwnew.FIFO02", dir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	make_file(dir, "target", "keep", 0);
	snprintf(target, sizeof target, "%s/target", dir);
	snprintf(p, sizeof p, "%s/.out.kwe.kwtmp.LINK01", dir);
	ck_assert_int_eq(symlink(target, p), 0);

	ck_assert_msg(write_in_child(path, 5) == 0, "the write beside a FIFO hung or failed");
	ck_assert(exists_in(dir, "out.kwe"));
	ck_assert(exists_in(dir, ".out.kwe.kwtmp.FIFO01"));
	ck_assert(exists_in(dir, ".out.kwe.kwnew.FIFO02"));
	ck_assert(exists_in(dir, ".out.kwe.kwtmp.LINK01"));
	ck_assert(exists_in(dir, "target"));
	ck_assert_int_eq(dir_entries(dir), 5);

	remove_dir(dir);
}
END_TEST

/* What the sweep removes: temporaries nobody holds (a killed writer's),
 * and old empty pending files.  What it keeps: a temporary another
 * process holds, a fresh pending file (a writer between creating and
 * locking it), anything not belonging to this destination. */
START_TEST(test_atomicfile_sweep_rules)
{
	char *dir = temp_dir(), path[512], held[600];
	snprintf(path, sizeof path, "%s/out.kwe", dir);
	make_file(dir, ".out.kwe.kwtmp.killed", "partial plaintext", 0);
	make_file(dir, ".out.kwe.kwtmp.helddd", "a live writer's", 0);
	make_file(dir, ".out.kwe.kwnew.fresh0", "", 0);
	make_file(dir, ".out.kwe.kwnew.old000", "", 2 * ATOMICFILE_PENDING_GRACE_S);
	make_file(dir, ".out.kwe.kwnew.full00", "not empty", 2 * ATOMICFILE_PENDING_GRACE_S);
	make_file(dir, ".other.kwe.kwtmp.killed", "another destination", 0);
	make_file(dir, ".out.kwe.kwtmp.toolong7", "not a name we make", 0);

	/* a second process holds its temporary, as a live writer does */
	int to_child[2], from_child[2];
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(from_child), 0);
	snprintf(held, sizeof held, "%s/.out.kwe.kwtmp.helddd", dir);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(held, O_RDWR);
		char c = fd >= 0 && flock(fd, LOCK_EX) == 0 ? 'L' : 'x';
		if (write(from_child[1], &c, 1) != 1 || read(to_child[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	char c = 0;
	ck_assert_int_eq(read(from_child[0], &c, 1), 1);
	ck_assert_int_eq(c, 'L');

	ck_assert_int_eq(write_in_child(path, 5), 0);
	ck_assert(!exists_in(dir, ".out.kwe.kwtmp.killed"));
	ck_assert(exists_in(dir, ".out.kwe.kwtmp.helddd"));
	ck_assert(exists_in(dir, ".out.kwe.kwnew.fresh0"));
	ck_assert(!exists_in(dir, ".out.kwe.kwnew.old000"));
	ck_assert(exists_in(dir, ".out.kwe.kwnew.full00"));
	ck_assert(exists_in(dir, ".other.kwe.kwtmp.killed"));
	ck_assert(exists_in(dir, ".out.kwe.kwtmp.toolong7"));
	ck_assert(exists_in(dir, "out.kwe"));

	/* once its holder is gone, the next write removes it */
	ck_assert_int_eq(write(to_child[1], "q", 1), 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(write_in_child(path, 5), 0);
	ck_assert(!exists_in(dir, ".out.kwe.kwtmp.helddd"));
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);

	remove_dir(dir);
}
END_TEST

static double mono_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Two processes writing the same destination over and over, each
 * sweeping before every write: neither may ever lose its temporary to the
 * other's sweep (between creating and locking it, or between letting the
 * lock go and renaming).  Before the fix this failed about five times a
 * second here. */
START_TEST(test_atomicfile_concurrent_writers)
{
	char *dir = temp_dir(), path[512];
	snprintf(path, sizeof path, "%s/out.kwe", dir);
	pid_t pid[2];
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		ck_assert_int_ge(pid[i], 0);
		if (pid[i] == 0) {
			int failures = 0, rounds = 0;
			double end = mono_seconds() + 2.0;
			while (mono_seconds() < end || rounds < 200) {
				atomicfile af;
				km_err e;
				rounds++;
				if (atomicfile_open(path, &af, &e) != KM_OK) {
					failures++;
					continue;
				}
				if (write(af.fd, i ? "two" : "one", 3) != 3)
					failures++;
				if (atomicfile_commit(&af, &e) != KM_OK) {
					if (!failures)
						fprintf(stderr, "writer %d: %s\n", i, e.msg);
					failures++;
				}
			}
			_exit(failures > 100 ? 100 : failures);
		}
	}
	for (int i = 0; i < 2; i++) {
		int status;
		ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
		ck_assert(WIFEXITED(status));
		ck_assert_msg(WEXITSTATUS(status) == 0, "writer %d lost its temporary %d times", i,
		              WEXITSTATUS(status));
	}
	ck_assert_int_eq(dir_entries(dir), 1); /* out.kwe, nothing left over */

	remove_dir(dir);
}
END_TEST

/* ------------------------------------------------------------ I/O errors */

START_TEST(test_io_errors)
{
	envelope_header h;
	km_err e = {0};
	uint8_t *plain = make_plain(100);
	feeder f;
	sink s;

	make_header(&h, &ref_a, dek, T_SEG);
	int in = source_open(plain, 100, 0, &f);
	ck_assert_int_eq(envelope_encrypt(in, -1, &h, dek, NULL, &e), KM_EIO);
	ck_assert_ptr_nonnull(strstr(e.msg, "cannot write the envelope"));
	source_close(in, &f);
	int out = sink_open(&s, 0);
	ck_assert_int_eq(envelope_encrypt(-1, out, &h, dek, NULL, &e), KM_EIO);
	ck_assert_ptr_nonnull(strstr(e.msg, "cannot read the input"));
	sink_finish(&s);
	free(s.p);
	ck_assert_int_eq(envelope_read_header(-1, &h, &e), KM_EIO);
	free(plain);
}
END_TEST

/* ------------------------------------------------------------ main */

static Suite *envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc;

	tc = tcase_create("dek");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_test(tc, test_dek_roundtrip);
	tcase_add_loop_test(tc, test_dek_binding, 0, (int)KM_ARRAY_LEN(binding_rows));
	tcase_add_test(tc, test_dek_wrong_kek_and_tamper);
	tcase_add_test(tc, test_dek_generate_and_uid);
	tcase_add_loop_test(tc, test_validate, 0, (int)KM_ARRAY_LEN(validate_rows));
	tcase_add_test(tc, test_validate_null_and_kinds);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_test(tc, test_header_roundtrip_and_position);
	tcase_add_test(tc, test_header_limits);
	tcase_add_test(tc, test_known_answer_header);
	tcase_add_test(tc, test_known_answer_segments);
	tcase_add_test(tc, test_known_answer_dek_wrap);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_roundtrip, 0, (int)KM_ARRAY_LEN(roundtrip_rows) * 4);
	tcase_add_test(tc, test_envelopes_differ);
	suite_add_tcase(s, tc);

	tc = tcase_create("tamper");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_tamper, 0, (int)KM_ARRAY_LEN(tamper_rows) * 2);
	tcase_add_test(tc, test_header_bound_to_segments);
	tcase_add_test(tc, test_wrong_dek);
	tcase_add_test(tc, test_io_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("atomicfile");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_atomicfile);
	tcase_add_test(tc, test_atomicfile_with_failed_decrypt);
	tcase_add_test(tc, test_atomicfile_sweep_skips_fifos);
	tcase_add_test(tc, test_atomicfile_sweep_rules);
	tcase_add_test(tc, test_atomicfile_concurrent_writers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	km_err e = {0};

	/* A reader that stops early makes the test's pipe feeder see EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (km_hygiene_init(&e) != KM_OK) {
		fprintf(stderr, "test_envelope: %s\n", e.msg);
		return 1;
	}
	SRunner *sr = srunner_create(envelope_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
