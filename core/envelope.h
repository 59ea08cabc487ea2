/*
 * envelope.h — keyward's protected-file format: an authenticated header,
 * then a stream of fixed-size AES-256-GCM segments (the STREAM construction
 * of online authenticated encryption, as in Tink's streaming AEAD).
 *
 * The byte layout, the limits and what each mechanism detects are specified
 * in docs/format.md; this header and that document change together.
 *
 * Contracts that hold for every function here:
 *   - Work on file descriptors (files, pipes, sockets) in constant memory,
 *     whatever the size of the data; short reads/writes and EINTR are
 *     handled.  SIGPIPE is the caller's business (ignore it to get KM_EIO).
 *   - Decryption never writes a segment's plaintext before that segment
 *     authenticated in its position; on failure the output holds exactly
 *     the plaintext of the segments before the first bad one.
 *   - The DEK is read only from the caller's secure buffer and lives in
 *     OpenSSL cipher contexts during a call (freed with
 *     EVP_CIPHER_CTX_free, which cleanses).  Plaintext staging buffers are
 *     cleansed before they are freed.
 *   - Encryption and decryption may use one helper thread (see
 *     envelope_set_threads); it blocks all signals and is joined before
 *     the call returns.
 */
#ifndef KM_ENVELOPE_H
#define KM_ENVELOPE_H

#include "dek.h"

#define KM_ENVELOPE_FORMAT_VERSION 1
#define KM_ENVELOPE_MAGIC_BYTES 8         /* "KWENV" 0x0D 0x0A 0x1A */
#define KM_ENVELOPE_NONCE_PREFIX_BYTES 7
#define KM_ENVELOPE_TAG_BYTES 16

/* Plaintext bytes per segment. */
#define KM_ENVELOPE_SEGMENT_DEFAULT 65536u
#define KM_ENVELOPE_SEGMENT_MIN 4096u
#define KM_ENVELOPE_SEGMENT_MAX (16u * 1024u * 1024u)

/* At most 2^32 - 1 segments (indices 0 .. 2^32 - 2): with the default
 * segment size, 256 TiB of plaintext.  Beyond: KM_ELIMIT. */
#define KM_ENVELOPE_MAX_SEGMENTS 4294967295u

/* Header: magic(8) version(1) header_len(4) segment_size(4), the identity
 * block (km_asset_ref_encode), wrapped DEK, nonce prefix. */
#define KM_ENVELOPE_HEADER_FIXED 17
#define KM_ENVELOPE_HEADER_MIN \
	(KM_ENVELOPE_HEADER_FIXED + 5 * 2 + KM_ASSET_UID_LEN + 4 + KM_WRAPPED_DEK_BYTES + \
	 KM_ENVELOPE_NONCE_PREFIX_BYTES)
#define KM_ENVELOPE_HEADER_MAX \
	(KM_ENVELOPE_HEADER_FIXED + KM_ASSET_REF_ENCODED_MAX + KM_WRAPPED_DEK_BYTES + \
	 KM_ENVELOPE_NONCE_PREFIX_BYTES)

typedef struct envelope_header {
	uint8_t version;                   /* KM_ENVELOPE_FORMAT_VERSION */
	uint32_t segment_size;             /* MIN..MAX above */
	char uid[KM_ASSET_UID_LEN + 1];
	char kind[KM_ASSET_KIND_MAX + 1];
	char name[KM_ASSET_NAME_MAX + 1];
	char version_str[KM_ASSET_VERSION_MAX + 1];
	char kek_name[KM_ASSET_KEK_NAME_MAX + 1];
	uint32_t kek_version;
	uint8_t wrapped_dek[KM_WRAPPED_DEK_BYTES];
	uint8_t nonce_prefix[KM_ENVELOPE_NONCE_PREFIX_BYTES];
} envelope_header;

/* Fill *h for a new envelope: the identity from ref (validated), the
 * wrapped DEK, a random nonce prefix, the default segment size.  The
 * caller may then set h->segment_size to any value in MIN..MAX. */
km_status envelope_header_init(envelope_header *h, const km_asset_ref *ref,
                               const uint8_t wrapped_dek[KM_WRAPPED_DEK_BYTES], km_err *e);

/* A view of the identity in *h (pointers into h), e.g. for dek_unwrap. */
void envelope_header_ref(const envelope_header *h, km_asset_ref *ref);

/* The exact header bytes for *h (validated: KM_EINVAL if a field breaks a
 * rule).  out must hold KM_ENVELOPE_HEADER_MAX bytes; *len gets the size. */
km_status envelope_header_encode(const envelope_header *h, uint8_t out[KM_ENVELOPE_HEADER_MAX],
                                 size_t *len, km_err *e);

/* Write the header, then the segments of everything read from in_fd until
 * end of input.  dek: KM_DEK_BYTES in secure memory, the key h->wrapped_dek
 * wraps (not checked here).  *plain_bytes (may be NULL) gets the plaintext
 * bytes consumed.  On failure the output is partial: write it through
 * atomicfile.h so that nothing partial is ever kept. */
km_status envelope_encrypt(int in_fd, int out_fd, const envelope_header *h, const uint8_t *dek,
                           uint64_t *plain_bytes, km_err *e);

/* Read exactly the header's bytes from in_fd (never a byte more, so a pipe
 * is left at the first segment) and validate every field.  Errors, all
 * KM_EINVAL: "not a keyward envelope (bad magic)"; "envelope header
 * truncated ..."; "unsupported envelope format version N ..."; a field out
 * of range or malformed, named.  KM_EIO if reading fails. */
km_status envelope_read_header(int in_fd, envelope_header *h, km_err *e);

/* Continue on in_fd after envelope_read_header: authenticate and decrypt
 * every segment to out_fd.  KM_EINTEGRITY: "segment N failed
 * authentication", "envelope truncated after segment N", "envelope
 * truncated inside segment N", "envelope truncated after the header",
 * "... trailing data after its final segment N" (segments count from 0).
 * *plain_bytes (may be NULL) gets the plaintext bytes written, which on
 * failure are exactly those of the segments before the bad one. */
km_status envelope_decrypt(int in_fd, int out_fd, const envelope_header *h, const uint8_t *dek,
                           uint64_t *plain_bytes, km_err *e);

/* Tuning for tests and benchmarks: how many threads an encryption or
 * decryption uses (1 or 2; 0 = automatic: 2 when two CPUs are online).
 * Process-wide; takes effect at the next call. */
void envelope_set_threads(unsigned n);

#endif
