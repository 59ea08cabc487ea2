/*
 * envelope_speed.c — micro-benchmark of the envelope format and DEK wraps.
 *
 *   envelope_speed [--threads N] [--segment BYTES] [--atomic 1] IN OUT_ENC OUT_DEC
 *       protect IN to OUT_ENC, then unprotect OUT_ENC to OUT_DEC, through
 *       the calls keyward uses (envelope.h) with a random KEK and DEK;
 *       print MB/s (10^6 bytes/s, as dd does) and peak RSS.  Outputs are
 *       opened with O_TRUNC like dd's (on a VM, writing to freshly
 *       allocated tmpfs pages costs more than the crypto, so a new file per
 *       run makes the numbers noisy); --atomic 1 writes them through
 *       atomicfile.h as keyward does.
 *   envelope_speed --dek-wraps N
 *       N x (generate a DEK + wrap it), with a keyed dek_ctx and one-shot,
 *       and N x wrap alone; print operations per second.
 *
 * Compare with `dd if=IN of=OUT bs=1M` and `openssl speed -evp aes-256-gcm`.
 */
#include "atomicfile.h"
#include "dek.h"
#include "envelope.h"
#include "secmem.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system, all threads) used so far: on a shared
 * machine this says more about the cost than the wall clock does. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double peak_rss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static int use_atomicfile;

/* The output: a truncated file like dd's, or a temporary (atomicfile). */
static km_status out_open(const char *path, atomicfile *af, km_err *e)
{
	if (use_atomicfile)
		return atomicfile_open(path, af, e);
	af->final_path = NULL;
	af->tmp_path = NULL;
	af->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (af->fd < 0)
		return km_fail(e, KM_EIO, "cannot open %s", path);
	return KM_OK;
}

static km_status out_finish(atomicfile *af, km_status st, km_err *e)
{
	if (use_atomicfile) {
		if (st == KM_OK)
			return atomicfile_commit(af, e);
		atomicfile_abort(af);
		return st;
	}
	close(af->fd);
	return st;
}

static int fail(const char *what, const km_err *e)
{
	fprintf(stderr, "envelope_speed: %s: %s\n", what, e->msg);
	return 1;
}

static const km_asset_ref bench_ref = {
	.uid = "0123456789abcdef0123456789abcdef",
	.kind = "dataset",
	.name = "bench/envelope-speed",
	.version = "1",
	.kek_name = "datasets/bench",
	.kek_version = 1,
};

static int dek_wraps(long n, uint8_t *kek, uint8_t *dek)
{
	km_err e = {0};
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	dek_ctx *c;
	double t0, t1, t2;

	if (dek_ctx_new(kek, &c, &e) != KM_OK)
		return fail("dek_ctx_new", &e);
	t0 = now_s();
	for (long i = 0; i < n; i++)
		if (dek_generate(dek, &e) != KM_OK || dek_ctx_wrap(c, dek, &bench_ref, wrapped, &e) != KM_OK) {
			dek_ctx_free(c);
			return fail("generate + wrap (dek_ctx)", &e);
		}
	t1 = now_s();
	/* The wrap alone (one DEK): generation is a DRBG call per DEK, which
	 * on some machines costs more than the AES-GCM itself. */
	for (long i = 0; i < n; i++)
		if (dek_ctx_wrap(c, dek, &bench_ref, wrapped, &e) != KM_OK) {
			dek_ctx_free(c);
			return fail("wrap (dek_ctx)", &e);
		}
	double tw = now_s() - t1;
	t1 = now_s();
	dek_ctx_free(c);
	for (long i = 0; i < n; i++)
		if (dek_generate(dek, &e) != KM_OK || dek_wrap(kek, dek, &bench_ref, wrapped, &e) != KM_OK)
			return fail("generate + wrap (one-shot)", &e);
	t2 = now_s();
	printf("DEK generate+wrap, keyed dek_ctx: %ld in %.3f s = %.0f /s\n", n, t1 - t0, (double)n / (t1 - t0));
	printf("DEK generate+wrap, one-shot:      %ld in %.3f s = %.0f /s\n", n, t2 - t1, (double)n / (t2 - t1));
	printf("DEK wrap only, keyed dek_ctx:     %ld in %.3f s = %.0f /s\n", n, tw, (double)n / tw);
	return 0;
}

static int protect(const char *in, const char *out, const uint8_t *kek, const uint8_t *dek,
                   uint32_t segment)
{
	km_err e = {0};
	uint8_t wrapped[KM_WRAPPED_DEK_BYTES];
	envelope_header h;
	atomicfile af;
	uint64_t n = 0;

	if (dek_wrap(kek, dek, &bench_ref, wrapped, &e) != KM_OK ||
	    envelope_header_init(&h, &bench_ref, wrapped, &e) != KM_OK)
		return fail("header", &e);
	if (segment)
		h.segment_size = segment;
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(in);
		return 1;
	}
	if (out_open(out, &af, &e) != KM_OK) {
		close(fd);
		return fail(out, &e);
	}
	double t0 = now_s(), c0 = cpu_s();
	km_status st = envelope_encrypt(fd, af.fd, &h, dek, &n, &e);
	st = out_finish(&af, st, &e);
	double t1 = now_s(), c1 = cpu_s();
	close(fd);
	if (st != KM_OK)
		return fail("encrypt", &e);
	printf("encrypt: %llu bytes in %.3f s = %.1f MB/s, cpu %.3f s, peak RSS %.1f MiB\n",
	       (unsigned long long)n, t1 - t0, (double)n / (t1 - t0) / 1e6, c1 - c0, peak_rss_mib());
	return 0;
}

static int unprotect(const char *in, const char *out, const uint8_t *kek, uint8_t *dek)
{
	km_err e = {0};
	envelope_header h;
	km_asset_ref ref;
	atomicfile af;
	uint64_t n = 0;

	int fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(in);
		return 1;
	}
	/* Opened (and, like dd's output, truncated) before the clock starts. */
	if (out_open(out, &af, &e) != KM_OK) {
		close(fd);
		return fail(out, &e);
	}
	double t0 = now_s(), c0 = cpu_s();
	km_status st = envelope_read_header(fd, &h, &e);
	if (st == KM_OK) {
		envelope_header_ref(&h, &ref);
		st = dek_unwrap(kek, h.wrapped_dek, &ref, dek, &e);
	}
	if (st == KM_OK)
		st = envelope_decrypt(fd, af.fd, &h, dek, &n, &e);
	st = out_finish(&af, st, &e);
	double t1 = now_s(), c1 = cpu_s();
	close(fd);
	if (st != KM_OK)
		return fail("decrypt", &e);
	printf("decrypt: %llu bytes in %.3f s = %.1f MB/s, cpu %.3f s, peak RSS %.1f MiB\n",
	       (unsigned long long)n, t1 - t0, (double)n / (t1 - t0) / 1e6, c1 - c0, peak_rss_mib());
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: envelope_speed [--threads N] [--segment BYTES] [--atomic 1] IN OUT_ENC OUT_DEC\n"
	                "       envelope_speed --dek-wraps N\n");
	return 2;
}

int main(int argc, char **argv)
{
	km_err e = {0};
	long wraps = 0;
	uint32_t segment = 0;
	int i = 1, rc;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc)
			return usage();
		long v = strtol(argv[i + 1], NULL, 10);
		if (strcmp(argv[i], "--dek-wraps") == 0 && v > 0)
			wraps = v;
		else if (strcmp(argv[i], "--threads") == 0 && v >= 0 && v <= 2)
			envelope_set_threads((unsigned)v);
		else if (strcmp(argv[i], "--atomic") == 0)
			use_atomicfile = v != 0;
		else if (strcmp(argv[i], "--segment") == 0 && v > 0 && v <= (long)KM_ENVELOPE_SEGMENT_MAX)
			segment = (uint32_t)v;
		else
			return usage();
	}
	if (!wraps && argc - i != 3)
		return usage();
	if (km_hygiene_init(&e) != KM_OK)
		return fail("hygiene", &e);

	uint8_t *kek = km_secure_alloc(KM_KEK_BYTES);
	uint8_t *dek = km_secure_alloc(KM_DEK_BYTES);
	if (!kek || !dek || RAND_priv_bytes(kek, KM_KEK_BYTES) != 1) {
		fprintf(stderr, "envelope_speed: cannot make a key\n");
		return 1;
	}
	if (wraps) {
		rc = dek_wraps(wraps, kek, dek);
	} else {
		rc = dek_generate(dek, &e) != KM_OK ? fail("dek", &e) : 0;
		if (rc == 0)
			rc = protect(argv[i], argv[i + 1], kek, dek, segment);
		if (rc == 0)
			rc = unprotect(argv[i + 1], argv[i + 2], kek, dek);
	}
	km_secure_free(kek, KM_KEK_BYTES);
	km_secure_free(dek, KM_DEK_BYTES);
	return rc;
}
