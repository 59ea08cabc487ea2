/*
 * forward.c — audit delivery to webhooks, JSON-lines files and checkpoint
 * witnesses (forward.h).  The outbox is audit_events itself plus one cursor
 * per sink; this file reads events after the cursor, hands them over, and
 * moves the cursor only once the sink acknowledged them.
 */
#include "forward_int.h"
#include "audit.h"
#include "auditproof.h"
#include "authz.h"
#include "ctx.h"
#include "secmem.h"
#include "witness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char forward_schema_sql[] =
	"CREATE TABLE audit_forward("
	" sink TEXT PRIMARY KEY,"
	" delivered INTEGER NOT NULL DEFAULT 0," /* highest seq (witness: size) acknowledged */
	" updated INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT"
	") WITHOUT ROWID;";

const char *km_sink_kind_name(km_sink_kind k)
{
	switch (k) {
	case KM_SINK_WEBHOOK: return "webhook";
	case KM_SINK_FILE: return "file";
	case KM_SINK_WITNESS: return "witness";
	}
	return "?";
}

/* ---------------------------------------------------------------- config */

static const char *const sink_fields[] = {
	"name", "type", "url", "path", "hmac_secret_file", "client_cert", "client_key", "ca_file",
	"batch", "connect_timeout_seconds", "timeout_seconds", "attempts", "backoff_ms",
	"backoff_max_seconds", "verifier_key",
};

static km_status sink_path(char *dst, size_t cap, const char *home, const json_t *v,
                           const char *origin, size_t i, const char *field, km_err *e)
{
	const char *s = json_string_value(v);
	if (!s || !*s)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].%s must be a non-empty string (a file path)",
		               origin, i, field);
	int n = s[0] == '/' ? snprintf(dst, cap, "%s", s) : snprintf(dst, cap, "%s/%s", home, s);
	if (n < 0 || (size_t)n >= cap)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].%s is too long", origin, i, field);
	return KM_OK;
}

static km_status sink_uint(uint32_t *dst, const json_t *v, uint32_t lo, uint32_t hi,
                           const char *origin, size_t i, const char *field, km_err *e)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].%s must be an integer from %u to %u",
		               origin, i, field, lo, hi);
	*dst = (uint32_t)json_integer_value(v);
	return KM_OK;
}

static int http_url(const char *u)
{
	return (strncmp(u, "https://", 8) == 0 && u[8]) || (strncmp(u, "http://", 7) == 0 && u[7]);
}

static km_status sink_parse_one(const json_t *o, const char *home, const char *origin, size_t i,
                                km_sink *s, km_err *e)
{
	if (!json_is_object(o))
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu] must be an object", origin, i);
	memset(s, 0, sizeof *s);
	s->batch = 1000;
	s->connect_timeout_s = 10;
	s->timeout_s = 30;
	s->attempts = 8;
	s->backoff_ms = 500;
	s->backoff_max_s = 60;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		size_t j;
		for (j = 0; j < KM_ARRAY_LEN(sink_fields); j++)
			if (strcmp(k, sink_fields[j]) == 0)
				break;
		if (j == KM_ARRAY_LEN(sink_fields))
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu]: unknown field \"%s\" (name, type, "
			               "url, path, hmac_secret_file, client_cert, client_key, ca_file, batch, "
			               "connect_timeout_seconds, timeout_seconds, attempts, backoff_ms, "
			               "backoff_max_seconds, verifier_key)", origin, i, k);
	}
	const char *name = json_string_value(json_object_get(o, "name"));
	if (!name)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].name is missing: give each sink a "
		               "name of 1 to %d characters a-z 0-9 _ -", origin, i, KM_SINK_NAME_MAX - 1);
	size_t nl = strlen(name);
	int good = nl > 0 && nl < KM_SINK_NAME_MAX;
	for (size_t j = 0; good && j < nl; j++)
		good = (name[j] >= 'a' && name[j] <= 'z') || (name[j] >= '0' && name[j] <= '9') ||
		       name[j] == '_' || name[j] == '-';
	if (!good)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].name must be 1 to %d characters "
		               "a-z 0-9 _ -", origin, i, KM_SINK_NAME_MAX - 1);
	memcpy(s->name, name, nl + 1);
	const char *type = json_string_value(json_object_get(o, "type"));
	if (type && strcmp(type, "webhook") == 0)
		s->kind = KM_SINK_WEBHOOK;
	else if (type && strcmp(type, "file") == 0)
		s->kind = KM_SINK_FILE;
	else if (type && strcmp(type, "witness") == 0)
		s->kind = KM_SINK_WITNESS;
	else
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].type must be \"webhook\", \"file\" "
		               "or \"witness\"", origin, i);
	json_t *url = json_object_get(o, "url");
	json_t *path = json_object_get(o, "path");
	km_status st;
	if (s->kind == KM_SINK_FILE) {
		if (url)
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].url does not apply to a file "
			               "sink (give path)", origin, i);
		if (!path)
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].path is missing: a file sink "
			               "needs the file to append to", origin, i);
		if ((st = sink_path(s->path, sizeof s->path, home, path, origin, i, "path", e)))
			return st;
		static const char *const http_only[] = {"hmac_secret_file", "client_cert", "client_key",
		                                        "ca_file", "connect_timeout_seconds",
		                                        "timeout_seconds"};
		for (size_t j = 0; j < KM_ARRAY_LEN(http_only); j++)
			if (json_object_get(o, http_only[j]))
				return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].%s does not apply to a "
				               "file sink", origin, i, http_only[j]);
	} else {
		if (path)
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].path does not apply to a %s "
			               "sink (give url)", origin, i, type);
		const char *u = json_string_value(url);
		if (!u || !http_url(u) || strlen(u) >= sizeof s->url)
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].url must be an http:// or "
			               "https:// URL (under 1024 characters)", origin, i);
		snprintf(s->url, sizeof s->url, "%s", u);
		static const struct { const char *f; size_t off; } files[] = {
			{"hmac_secret_file", offsetof(km_sink, hmac_secret_file)},
			{"client_cert", offsetof(km_sink, client_cert)},
			{"client_key", offsetof(km_sink, client_key)},
			{"ca_file", offsetof(km_sink, ca_file)},
		};
		for (size_t j = 0; j < KM_ARRAY_LEN(files); j++) {
			json_t *fv = json_object_get(o, files[j].f);
			if (fv && (st = sink_path((char *)s + files[j].off, PATH_MAX, home, fv, origin, i,
			                          files[j].f, e)))
				return st;
		}
		if (s->client_key[0] && !s->client_cert[0])
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].client_key needs client_cert",
			               origin, i);
	}
	json_t *vk = json_object_get(o, "verifier_key");
	if (vk && s->kind != KM_SINK_WITNESS)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].verifier_key applies to a witness "
		               "sink only", origin, i);
	if (vk) {
		km_err ve;
		km_err_clear(&ve);
		if (!json_is_string(vk) ||
		    witness_vkey_parse(json_string_value(vk), s->vkey_name, sizeof s->vkey_name, &s->vkey_id,
		                       s->vkey_pub, &ve) != KM_OK)
			return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].verifier_key: %s", origin, i,
			               json_is_string(vk) ? ve.msg : "must be a string (NAME+KEYID+BASE64)");
		s->has_vkey = 1;
	}
	static const struct { const char *f; size_t off; uint32_t lo, hi; } nums[] = {
		{"batch", offsetof(km_sink, batch), 1, 100000},
		{"connect_timeout_seconds", offsetof(km_sink, connect_timeout_s), 1, 600},
		{"timeout_seconds", offsetof(km_sink, timeout_s), 1, 3600},
		{"attempts", offsetof(km_sink, attempts), 1, 1000},
		{"backoff_ms", offsetof(km_sink, backoff_ms), 1, 600000},
		{"backoff_max_seconds", offsetof(km_sink, backoff_max_s), 1, 3600},
	};
	for (size_t j = 0; j < KM_ARRAY_LEN(nums); j++) {
		json_t *nv = json_object_get(o, nums[j].f);
		if (nv && (st = sink_uint((uint32_t *)(void *)((char *)s + nums[j].off), nv, nums[j].lo,
		                          nums[j].hi, origin, i, nums[j].f, e)))
			return st;
	}
	return KM_OK;
}

km_status km_sinks_parse(const json_t *spec, const char *home, const char *origin,
                         km_sink *out, size_t cap, size_t *n, km_err *e)
{
	*n = 0;
	if (!spec)
		return KM_OK;
	if (!json_is_array(spec))
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\" must be an array of sink objects", origin);
	if (json_array_size(spec) > cap)
		return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\" lists %zu sinks; at most %zu", origin,
		               json_array_size(spec), cap);
	for (size_t i = 0; i < json_array_size(spec); i++) {
		km_status st = sink_parse_one(json_array_get(spec, i), home, origin, i, &out[i], e);
		if (st)
			return st;
		for (size_t j = 0; j < i; j++)
			if (strcmp(out[j].name, out[i].name) == 0)
				return km_fail(e, KM_ECONFIG, "%s: \"audit_sinks\"[%zu].name \"%s\" is already the "
				               "name of sink %zu", origin, i, out[i].name, j);
		*n = i + 1;
	}
	return KM_OK;
}

/* ---------------------------------------------------------------- buffers */

typedef struct buf {
	char *p;
	size_t len, cap;
} buf;

static int buf_add(buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 4096;
		while (c < b->len + n + 1)
			c *= 2;
		char *q = realloc(b->p, c);
		if (!q)
			return -1;
		b->p = q;
		b->cap = c;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_str(buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

/* ---------------------------------------------------------------- cursor */

static km_status cursor_get(sqlite3 *db, const char *name, uint64_t *cur, km_err *e)
{
	sqlite3_stmt *q = NULL;
	*cur = 0;
	if (sqlite3_prepare_v2(db, "SELECT delivered FROM audit_forward WHERE sink = ?1", -1, &q, NULL))
		return km_fail(e, KM_EDB, "reading the forwarding cursor: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*cur = (uint64_t)sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return km_fail(e, KM_EDB, "reading the forwarding cursor: %s", sqlite3_errmsg(db));
	return KM_OK;
}

/* Compare-and-set: the cursor moves from `from` to `to` only if nobody
 * moved it meanwhile (a second forwarder on the same sink). */
static km_status cursor_advance(sqlite3 *db, const char *name, uint64_t from, uint64_t to, km_err *e)
{
	sqlite3_stmt *q = NULL;
	const char *sql = from == 0
		? "INSERT INTO audit_forward(sink, delivered, updated) VALUES (?1, ?3, strftime('%s','now')) "
		  "ON CONFLICT(sink) DO UPDATE SET delivered = ?3, updated = excluded.updated, last_error = NULL "
		  "WHERE delivered = ?2"
		: "UPDATE audit_forward SET delivered = ?3, updated = strftime('%s','now'), last_error = NULL "
		  "WHERE sink = ?1 AND delivered = ?2";
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL))
		return km_fail(e, KM_EDB, "moving the forwarding cursor: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)from);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)to);
	int rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return km_fail(e, KM_EDB, "moving the forwarding cursor: %s", sqlite3_errmsg(db));
	if (sqlite3_changes(db) != 1)
		return km_fail(e, KM_EBUSY, "sink %s: another forwarder moved its cursor past %" PRIu64
		               " meanwhile; run one forwarder per sink", name, from);
	return KM_OK;
}

static void cursor_note_error(sqlite3 *db, const char *name, const char *msg)
{
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO audit_forward(sink, last_error) VALUES (?1, ?2) "
	                           "ON CONFLICT(sink) DO UPDATE SET last_error = ?2", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, msg, -1, SQLITE_STATIC);
		sqlite3_step(q);
	}
	sqlite3_finalize(q);
}

static km_status log_ends(sqlite3 *db, uint64_t *size, uint64_t *head, km_err *e)
{
	km_status st = audit_size(db, size, e);
	if (st)
		return st;
	uint8_t root[32], sig[AUDIT_SIG_BYTES];
	int64_t t;
	int have;
	return audit_latest_head(db, head, root, &t, sig, &have, e);
}

km_status forward_sink_lag(sqlite3 *db, const km_sink *s, uint64_t *cursor, uint64_t *lag, km_err *e)
{
	uint64_t size, head;
	km_status st = cursor_get(db, s->name, cursor, e);
	if (!st)
		st = log_ends(db, &size, &head, e);
	if (st)
		return st;
	uint64_t end = s->kind == KM_SINK_WITNESS ? head : size;
	*lag = end > *cursor ? end - *cursor : 0;
	return KM_OK;
}

/* ---------------------------------------------------------------- waits */

static int stopped(const forward_run_opts *o) { return o->stop && *o->stop; }

/* Sleep ms, in slices, returning early when asked to stop. */
static void nap(const forward_run_opts *o, uint64_t ms)
{
	while (ms > 0 && !stopped(o)) {
		uint64_t slice = ms < 50 ? ms : 50;
		struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* Exponential backoff with "equal jitter": half the doubled wait fixed,
 * half random, so retrying forwarders spread out but still back off. */
static uint64_t backoff(const km_sink *s, uint32_t tries)
{
	uint64_t cap = (uint64_t)s->backoff_max_s * 1000;
	uint64_t w = s->backoff_ms;
	for (uint32_t i = 1; i < tries && w < cap; i++)
		w *= 2;
	if (w > cap)
		w = cap;
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = (uint32_t)rand();
	return w / 2 + (w / 2 ? r % (w / 2 + 1) : 0);
}

/* ---------------------------------------------------------------- HTTP */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* An answer's body: a webhook's is not used, a witness's carries its
 * size or its cosignatures; more than this is not a witness's answer. */
#define ANSWER_MAX 65536
static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	buf *b = ud;
	size_t len = sz * n;
	if (b->len < ANSWER_MAX)
		buf_add(b, p, len < ANSWER_MAX - b->len ? len : ANSWER_MAX - b->len);
	return len;
}

typedef struct http {
	CURL *h;
	char errbuf[CURL_ERROR_SIZE];
	unsigned char *secret;  /* km_secure_alloc'ed (SECRET_MAX bytes) HMAC key, or NULL */
	size_t key_len;
} http;

#define SECRET_MAX 4096

static void http_close(http *c)
{
	if (c->h)
		curl_easy_cleanup(c->h);
	km_secure_free(c->secret, SECRET_MAX);
	memset(c, 0, sizeof *c);
}

/* The HMAC key: the whole file, less one trailing newline.  Read per run,
 * held in locked memory, never printed. */
static km_status load_secret(const km_sink *s, http *c, km_err *e)
{
	int fd = open(s->hmac_secret_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_fail(e, KM_ECONFIG, "sink %s: cannot read hmac_secret_file %s: %s", s->name,
		               s->hmac_secret_file, strerror(errno));
	c->secret = km_secure_alloc(SECRET_MAX);
	if (!c->secret) {
		close(fd);
		return km_fail(e, KM_ENOMEM, "no secure memory for the HMAC secret");
	}
	size_t n = 0;
	ssize_t r;
	while (n < SECRET_MAX && (r = read(fd, c->secret + n, SECRET_MAX - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n == SECRET_MAX)
		return km_fail(e, KM_ECONFIG, "sink %s: hmac_secret_file is larger than 4 KiB", s->name);
	while (n > 0 && (c->secret[n - 1] == '\n' || c->secret[n - 1] == '\r'))
		n--;
	if (n < 16)
		return km_fail(e, KM_ECONFIG, "sink %s: the secret in hmac_secret_file is shorter than "
		               "16 bytes", s->name);
	c->key_len = n;
	return KM_OK;
}

static km_status http_open(const km_sink *s, http *c, km_err *e)
{
	memset(c, 0, sizeof *c);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return km_fail(e, KM_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_rc));
	if (s->hmac_secret_file[0]) {
		km_status st = load_secret(s, c, e);
		if (st) {
			http_close(c);
			return st;
		}
	}
	c->h = curl_easy_init();
	if (!c->h) {
		http_close(c);
		return km_fail(e, KM_ENOMEM, "libcurl: cannot make a handle");
	}
	CURL *h = c->h;
	if (s->kind == KM_SINK_WITNESS) {
		/* url is the witness's submission prefix (c2sp.org/tlog-witness) */
		char u[sizeof s->url + 32];
		size_t ul = strlen(s->url);
		snprintf(u, sizeof u, "%.*s/add-checkpoint", (int)(ul && s->url[ul - 1] == '/' ? ul - 1 : ul),
		         s->url);
		curl_easy_setopt(h, CURLOPT_URL, u);
	} else {
		curl_easy_setopt(h, CURLOPT_URL, s->url);
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	/* TLS is always verified; ca_file only narrows whom to trust. */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
	if (s->client_cert[0]) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, s->client_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, s->client_key[0] ? s->client_key : s->client_cert);
	}
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* No redirects: a batch goes where the configuration says, or fails. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)s->connect_timeout_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)s->timeout_s);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "keyward/" KEYWARD_VERSION);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	return KM_OK;
}

static int curl_transient(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING ||
	       rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_PARTIAL_FILE;
}

static int curl_tls(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
	       rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ||
	       rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_CRL_BADFILE;
}

/* What one POST came back with, for a caller that reads answers beyond
 * "2xx or failed" (the witness). */
typedef struct http_answer {
	long code;
	buf body;                    /* at most ANSWER_MAX bytes kept */
	char ctype[128];             /* Content-Type ("" none) */
} http_answer;

/* POST body until the sink acknowledges it (2xx), retrying what may pass
 * later.  `what` names the payload in messages ("events 1..1000"); seqhdr
 * (may be NULL) is an extra header.  A status listed in pass (0-terminated,
 * may be NULL) is handed back in ans (KM_OK) for the caller to judge; ans
 * may be NULL when pass is. */
static km_status http_post(http *c, const km_sink *s, const forward_run_opts *o, const buf *body,
                           const char *ctype, const char *seqhdr, const char *what_sent,
                           const long *pass, http_answer *ans, km_forward_sink_result *r, km_err *e)
{
	char sighdr[128] = "", cthdr[160];
	if (c->secret) {
		unsigned char mac[32];
		size_t maclen = 0;
		if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, c->secret, c->key_len,
		               (const unsigned char *)body->p, body->len, mac, sizeof mac, &maclen))
			return km_fail(e, KM_EINTERNAL, "sink %s: HMAC-SHA256 failed", s->name);
		int n = snprintf(sighdr, sizeof sighdr, "X-Keyward-Signature: sha256=");
		for (size_t i = 0; i < maclen; i++)
			n += snprintf(sighdr + n, sizeof sighdr - (size_t)n, "%02x", mac[i]);
		OPENSSL_cleanse(mac, sizeof mac);
	}
	snprintf(cthdr, sizeof cthdr, "Content-Type: %s", ctype);
	struct curl_slist *hdr = curl_slist_append(NULL, cthdr);
	hdr = curl_slist_append(hdr, "Expect:");
	if (seqhdr)
		hdr = curl_slist_append(hdr, seqhdr);
	if (sighdr[0])
		hdr = curl_slist_append(hdr, sighdr);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body->p);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	buf answer = {0};
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &answer);
	km_status st = KM_OK;
	for (uint32_t tries = 1;; tries++) {
		c->errbuf[0] = '\0';
		answer.len = 0;
		CURLcode rc = curl_easy_perform(c->h);
		long code = 0;
		curl_off_t retry_after = 0;
		int passed = 0;
		if (rc == CURLE_OK) {
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
			curl_easy_getinfo(c->h, CURLINFO_RETRY_AFTER, &retry_after);
			for (size_t i = 0; pass && pass[i]; i++)
				passed |= pass[i] == code;
			if ((code >= 200 && code < 300) || passed) {
				if (ans) {
					char *ct = NULL;
					ans->code = code;
					curl_easy_getinfo(c->h, CURLINFO_CONTENT_TYPE, &ct);
					snprintf(ans->ctype, sizeof ans->ctype, "%s", ct ? ct : "");
					ans->body.len = 0;
					if (buf_add(&ans->body, answer.p ? answer.p : "", answer.len))
						st = km_fail(e, KM_ENOMEM, "no memory for the witness's answer");
				}
				break;
			}
		}
		char what[CURL_ERROR_SIZE + 64];
		if (rc != CURLE_OK)
			snprintf(what, sizeof what, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
		else
			snprintf(what, sizeof what, "HTTP %ld", code);
		int again = rc == CURLE_OK ? (code == 429 || code == 408 || code >= 500) : curl_transient(rc);
		if (!again) {
			st = km_fail(e, KM_EIO, "sink %s: %s refused %s: %s%s", s->name, s->url, what_sent, what,
			             curl_tls(rc) ? " (TLS is always verified: give the server's CA in "
			                            "ca_file, or fix client_cert)" : "");
			break;
		}
		if (!o->patient && tries >= s->attempts) {
			int one = s->kind == KM_SINK_WITNESS;
			st = km_fail(e, KM_EIO, "sink %s: %s: %s, %" PRIu32 " attempts: %s %s not delivered "
			             "(%s will be on the next run)", s->name, s->url, what, tries, what_sent,
			             one ? "was" : "were", one ? "it" : "they");
			break;
		}
		if (o->progress) {
			km_forward_sink_result note = *r;
			note.status = KM_EIO;
			snprintf(note.error, sizeof note.error, "%s, trying again", what);
			o->progress(o->pctx, &note);
		}
		r->retries++;
		uint64_t wait;
		uint64_t cap = (uint64_t)s->backoff_max_s * 1000;
		if (retry_after > 0) {
			r->retry_after_waits++;
			wait = (uint64_t)retry_after * 1000;
			if (wait > cap)
				wait = cap;
		} else {
			wait = backoff(s, tries);
		}
		nap(o, wait);
		if (stopped(o)) {
			st = km_fail(e, KM_EBUSY, "sink %s: stopped while retrying %s", s->name, what_sent);
			break;
		}
	}
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	free(answer.p);
	return st;
}

/* A webhook batch: JSON, with its seq range in a header. */
static km_status http_deliver(http *c, const km_sink *s, const forward_run_opts *o, const buf *body,
                              uint64_t seq_lo, uint64_t seq_hi, km_forward_sink_result *r, km_err *e)
{
	char seqhdr[96], what[96];
	snprintf(seqhdr, sizeof seqhdr, "X-Keyward-Seq: %" PRIu64 "-%" PRIu64, seq_lo, seq_hi);
	snprintf(what, sizeof what, "events %" PRIu64 "..%" PRIu64, seq_lo, seq_hi);
	return http_post(c, s, o, body, "application/json", seqhdr, what, NULL, NULL, r, e);
}

/* ---------------------------------------------------------------- batches */

/* Read events after `after`, at most `max`, into the body: either a JSON
 * batch object (webhook) or JSON lines (file).  The event texts are the
 * stored canonical bytes, untouched, so a receiver can hash them into the
 * same leaves.  *last is the last seq read (== after when none). */
typedef struct reader {
	sqlite3_stmt *q;
} reader;

static km_status read_batch(sqlite3 *db, reader *rd, uint64_t after, uint32_t max, int lines,
                            const char *origin, const char *sink, buf *body, uint64_t *last, km_err *e)
{
	if (!rd->q && sqlite3_prepare_v2(db, "SELECT seq, json FROM audit_events WHERE seq > ?1 "
	                                     "ORDER BY seq LIMIT ?2", -1, &rd->q, NULL))
		return km_fail(e, KM_EDB, "reading the audit log: %s", sqlite3_errmsg(db));
	sqlite3_reset(rd->q);
	sqlite3_bind_int64(rd->q, 1, (sqlite3_int64)after);
	sqlite3_bind_int64(rd->q, 2, (sqlite3_int64)max);
	body->len = 0;
	*last = after;
	int rc, bad = 0;
	char head[256];
	if (!lines) {
		snprintf(head, sizeof head, "{\"after_seq\":%" PRIu64 ",\"origin\":\"", after);
		/* origin and sink are [printable, no quote] by construction */
		if (buf_str(body, head) || buf_str(body, origin) || buf_str(body, "\",\"sink\":\"") ||
		    buf_str(body, sink) || buf_str(body, "\",\"events\":["))
			bad = 1;
	}
	while (!bad && (rc = sqlite3_step(rd->q)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(rd->q, 0);
		if (seq != *last + 1) {
			sqlite3_reset(rd->q);
			return km_fail(e, KM_EINTEGRITY, "the audit log has no entry %" PRIu64 " (the next is %"
			               PRIu64 "): nothing past it is forwarded; run `keyward audit verify`",
			               *last + 1, seq);
		}
		const void *t = sqlite3_column_text(rd->q, 1);
		size_t n = (size_t)sqlite3_column_bytes(rd->q, 1);
		if ((!lines && seq != after + 1 && buf_add(body, ",", 1)) || buf_add(body, t, n) ||
		    (lines && buf_add(body, "\n", 1)))
			bad = 1;
		*last = seq;
	}
	sqlite3_reset(rd->q);
	if (bad)
		return km_fail(e, KM_ENOMEM, "no memory for a batch of events");
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return km_fail(e, KM_EDB, "reading the audit log: %s", sqlite3_errmsg(db));
	if (!lines) {
		snprintf(head, sizeof head, "],\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 "}",
		         after + 1, *last);
		if (buf_str(body, head))
			return km_fail(e, KM_ENOMEM, "no memory for a batch of events");
	}
	return KM_OK;
}

static void report(const forward_run_opts *o, km_forward_sink_result *r)
{
	if (o->progress)
		o->progress(o->pctx, r);
}

static km_status run_webhook(sqlite3 *db, const char *origin, const km_sink *s, const forward_run_opts *o,
                             km_forward_sink_result *r, km_err *e)
{
	http c;
	km_status st = http_open(s, &c, e);
	if (st)
		return st;
	reader rd = {0};
	buf body = {0};
	uint64_t cur = r->cursor, last;
	while (!st && !stopped(o)) {
		if ((st = read_batch(db, &rd, cur, s->batch, 0, origin, s->name, &body, &last, e)) || last == cur)
			break;
		if ((st = http_deliver(&c, s, o, &body, cur + 1, last, r, e)))
			break;
		if ((st = cursor_advance(db, s->name, cur, last, e)))
			break;
		r->delivered += last - cur;
		r->batches++;
		r->cursor = cur = last;
		report(o, r);
	}
	sqlite3_finalize(rd.q);
	free(body.p);
	http_close(&c);
	return st;
}

/* ---------------------------------------------------------------- file */

/* A file sink after a crash: a torn last line (the process died inside
 * write()) is cut off, and the seq of the last whole line is returned
 * (0 when there is none) so a batch written but not yet recorded in the
 * cursor is not written twice. */
static km_status file_recover(int fd, const km_sink *s, uint64_t *last_seq, km_err *e)
{
	*last_seq = 0;
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		return km_fail(e, KM_EIO, "sink %s: %s: %s", s->name, s->path, strerror(errno));
	if (sb.st_size == 0)
		return KM_OK;
	size_t win = sb.st_size < (1 << 20) ? (size_t)sb.st_size : (size_t)1 << 20;
	char *b = malloc(win + 1);
	if (!b)
		return km_fail(e, KM_ENOMEM, "no memory to read %s", s->path);
	off_t base = sb.st_size - (off_t)win;
	ssize_t got = pread(fd, b, win, base);
	if (got != (ssize_t)win) {
		free(b);
		return km_fail(e, KM_EIO, "sink %s: cannot read %s: %s", s->name, s->path, strerror(errno));
	}
	size_t end = win; /* one past the last '\n' */
	while (end > 0 && b[end - 1] != '\n')
		end--;
	if (end == 0 && base > 0) {
		free(b);
		return km_fail(e, KM_EIO, "sink %s: %s ends with a line longer than 1 MiB that is not "
		               "an audit event; move the file aside", s->name, s->path);
	}
	if (end < win && ftruncate(fd, base + (off_t)end) != 0) {
		free(b);
		return km_fail(e, KM_EIO, "sink %s: cannot cut the torn last line of %s: %s", s->name,
		               s->path, strerror(errno));
	}
	if (end > 0) {
		size_t start = end - 1;
		while (start > 0 && b[start - 1] != '\n')
			start--;
		json_t *ev = json_loadb(b + start, end - 1 - start, 0, NULL);
		json_t *seq = json_object_get(ev, "seq");
		if (json_is_integer(seq) && json_integer_value(seq) > 0)
			*last_seq = (uint64_t)json_integer_value(seq);
		json_decref(ev);
	}
	free(b);
	return KM_OK;
}

static km_status write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KM_EIO;
		p += w;
		n -= (size_t)w;
	}
	return KM_OK;
}

static km_status run_file(sqlite3 *db, const char *origin, const km_sink *s, const forward_run_opts *o,
                          km_forward_sink_result *r, km_err *e)
{
	struct stat sb;
	int existed = stat(s->path, &sb) == 0;
	int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return km_fail(e, KM_EIO, "sink %s: cannot open %s: %s", s->name, s->path, strerror(errno));
	int rfd = open(s->path, O_RDWR | O_CLOEXEC);
	uint64_t in_file = 0;
	km_status st = rfd < 0 ? km_fail(e, KM_EIO, "sink %s: cannot open %s: %s", s->name, s->path,
	                                  strerror(errno))
	                       : file_recover(rfd, s, &in_file, e);
	if (rfd >= 0)
		close(rfd);
	if (!existed && !st) {
		/* the new file's name must survive a crash too */
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", s->path);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*(slash == dir ? slash + 1 : slash) = '\0';
			int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
	}
	/* The file already holds events past the cursor: a run died after its
	 * fsync and before the cursor moved.  Move the cursor, write nothing
	 * twice.  (A file holding less — rotated by a log shipper — is fine.) */
	if (!st && in_file > r->cursor) {
		uint64_t size;
		if ((st = audit_size(db, &size, e)) == KM_OK && in_file > size)
			st = km_fail(e, KM_EINTEGRITY, "sink %s: %s ends with entry %" PRIu64 " but the audit "
			             "log has only %" PRIu64 " entries (another log's file, or the log was "
			             "truncated)", s->name, s->path, in_file, size);
		if (!st && !(st = cursor_advance(db, s->name, r->cursor, in_file, e)))
			r->cursor = in_file;
	}
	reader rd = {0};
	buf body = {0};
	uint64_t cur = r->cursor, last;
	while (!st && !stopped(o)) {
		if ((st = read_batch(db, &rd, cur, s->batch, 1, origin, s->name, &body, &last, e)) || last == cur)
			break;
		if (write_all(fd, body.p, body.len) || fsync(fd) != 0) {
			st = km_fail(e, KM_EIO, "sink %s: cannot append to %s: %s", s->name, s->path,
			             strerror(errno));
			break;
		}
		if ((st = cursor_advance(db, s->name, cur, last, e)))
			break;
		r->delivered += last - cur;
		r->batches++;
		r->cursor = cur = last;
		report(o, r);
	}
	sqlite3_finalize(rd.q);
	free(body.p);
	close(fd);
	return st;
}

/* ---------------------------------------------------------------- witness */

const char forward_cosign_schema_sql[] =
	"CREATE TABLE audit_cosignatures("
	" size INTEGER NOT NULL,"          /* the tree size cosigned (a signed head's) */
	" witness TEXT NOT NULL,"          /* the witness's key name */
	" key_id INTEGER NOT NULL,"        /* its signed-note key ID */
	" time INTEGER NOT NULL,"          /* the cosignature's own timestamp */
	" sink TEXT NOT NULL,"             /* the sink it came through */
	" line TEXT NOT NULL,"             /* the note signature line as received */
	" received INTEGER NOT NULL,"
	" PRIMARY KEY(size, witness, key_id)"
	") WITHOUT ROWID;";

/* Conflicts (409) resolved in one run before giving up: the witness can
 * only move forward, so more means another client is racing this one. */
#define WITNESS_CONFLICTS_MAX 4

/* The cursor moves and the cosignatures are stored in one transaction:
 * a stored cosignature always belongs to a size the cursor reached. */
static km_status witness_ack(sqlite3 *db, const km_sink *s, uint64_t from, uint64_t size,
                             const witness_cosig *cs, size_t n, km_err *e)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return km_fail(e, KM_EDB, "storing the witness's cosignature: %s", sqlite3_errmsg(db));
	km_status st = cursor_advance(db, s->name, from, size, e);
	sqlite3_stmt *q = NULL;
	if (!st && n > 0 &&
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO audit_cosignatures(size, witness, key_id, time, "
	                           "sink, line, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%s','now'))",
	                       -1, &q, NULL) != SQLITE_OK)
		st = km_fail(e, KM_EDB, "storing the witness's cosignature: %s", sqlite3_errmsg(db));
	for (size_t i = 0; !st && i < n; i++) {
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, (sqlite3_int64)size);
		sqlite3_bind_text(q, 2, s->vkey_name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (sqlite3_int64)s->vkey_id);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)cs[i].time);
		sqlite3_bind_text(q, 5, s->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 6, cs[i].line, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE)
			st = km_fail(e, KM_EDB, "storing the witness's cosignature: %s", sqlite3_errmsg(db));
	}
	sqlite3_finalize(q);
	if (!st && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		st = km_fail(e, KM_EDB, "storing the witness's cosignature: %s", sqlite3_errmsg(db));
	if (st)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return st;
}

/* The witness holds a tree this log does not extend: say so loudly.  The
 * caller (km_forward) records it as an audit.witness event. */
static km_status witness_alarm(km_forward_sink_result *r, uint64_t theirs, km_err *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static km_status witness_alarm(km_forward_sink_result *r, uint64_t theirs, km_err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[KM_ERR_MSG_MAX];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->alarm = 1;
	r->witness_size = theirs;
	return km_fail(e, KM_EINTEGRITY, "%s", msg);
}

/* add-checkpoint (c2sp.org/tlog-witness): send the newest signed head
 * with "old <cursor>" and a consistency proof from there; on 409 resend
 * from the size the witness holds, if it is one this log has; on 200
 * check the cosignatures (with a verifier key) and move the cursor. */
static km_status run_witness(sqlite3 *db, const char *origin, const km_sink *s, const forward_run_opts *o,
                             km_forward_sink_result *r, km_err *e)
{
	audit_head h;
	int have;
	km_status st = audit_head_at_most(db, UINT64_MAX, &h, &have, e);
	if (st || !have || h.size <= r->cursor)
		return st;
	if (!o->audit_pub)
		return km_fail(e, KM_EUSAGE, "sink %s: the witness sink needs the audit public key "
		               "to check the head and present it as a signed note", s->name);
	km_audit_checkpoint cp;
	if ((st = audit_head_note(o->audit_pub, origin, &h, &cp, e)))
		return st;
	/* the note's text: everything before the blank line */
	const char *blank = strstr(cp.note, "\n\n");
	size_t text_len = blank ? (size_t)(blank - cp.note) + 1 : 0;
	if (!text_len)
		return km_fail(e, KM_EINTERNAL, "the checkpoint note has no text");
	http c;
	if ((st = http_open(s, &c, e)))
		return st;
	static const long pass[] = {400, 403, 404, 409, 422, 0};
	http_answer ans = {0};
	uint64_t old = r->cursor;
	unsigned conflicts = 0;
	char what[96];
	snprintf(what, sizeof what, "the checkpoint of size %" PRIu64, h.size);
	for (;;) {
		char *req = NULL;
		size_t rlen = 0;
		if ((st = witness_request(db, old, h.size, h.root, cp.note, &req, &rlen, e)))
			break;
		buf body = {req, rlen, rlen + 1};
		st = http_post(&c, s, o, &body, "text/plain; charset=utf-8", NULL, what, pass, &ans, r, e);
		free(req);
		if (st)
			break;
		const char *ab = ans.body.p ? ans.body.p : "";
		if (ans.code == 409) {
			uint64_t theirs;
			if (strncmp(ans.ctype, "text/x.tlog.size", 16) != 0 ||
			    witness_parse_size(ab, ans.body.len, &theirs) != 0) {
				st = km_fail(e, KM_EIO, "sink %s: %s answered 409 without its size (a text/x.tlog.size "
				             "body): is url the witness's submission prefix?", s->name, s->url);
				break;
			}
			r->witness_size = theirs;
			if (theirs > h.size) {
				st = witness_alarm(r, theirs, e, "sink %s: ALARM: the witness %s has cosigned a tree "
				                   "of %" PRIu64 " entries for %s, but this log's newest signed head "
				                   "has %" PRIu64 ": the log was truncated or rolled back, or another "
				                   "log signs with this origin and key", s->name, s->url, theirs,
				                   origin, h.size);
				break;
			}
			if (theirs == old) {
				/* it holds exactly the size we sent and still refuses: at
				 * old == size its root differs (the spec's same-size 409) */
				st = witness_alarm(r, theirs, e, "sink %s: ALARM: the witness %s holds a different "
				                   "tree of %" PRIu64 " entries for %s than this log: the log was "
				                   "rewritten after the witness saw it (a split view)", s->name,
				                   s->url, theirs, origin);
				break;
			}
			r->conflicts++;
			if (++conflicts > WITNESS_CONFLICTS_MAX) {
				st = km_fail(e, KM_EBUSY, "sink %s: the witness's size kept changing (%u "
				             "conflicts): is another forwarder sending to it?", s->name,
				             conflicts - 1);
				break;
			}
			old = theirs;
			continue;
		}
		if (ans.code == 422) {
			/* the proof verified here against our root at old: the
			 * witness's tree of that size is another one */
			st = witness_alarm(r, old, e, "sink %s: ALARM: the witness %s refused the consistency "
			                   "proof from %" PRIu64 " to %" PRIu64 " entries (422), which verifies "
			                   "against this log's own tree of %" PRIu64 ": the witness holds another "
			                   "tree of that size for %s (the log was rewritten, a split view)",
			                   s->name, s->url, old, h.size, old, origin);
			break;
		}
		if (ans.code == 403) {
			st = km_fail(e, KM_EIO, "sink %s: the witness %s does not trust this log's key (403): "
			             "give its operator the verifier key from `keyward audit checkpoint --json` "
			             "(verifier_key)", s->name, s->url);
			break;
		}
		if (ans.code == 404) {
			st = km_fail(e, KM_EIO, "sink %s: the witness %s does not know the origin %s (404): ask "
			             "its operator to add this log; url must be the witness's submission "
			             "prefix (keyward posts to URL/add-checkpoint)", s->name, s->url, origin);
			break;
		}
		if (ans.code == 400) {
			st = km_fail(e, KM_EIO, "sink %s: the witness %s refused the request as malformed "
			             "(400): %.120s", s->name, s->url, ab);
			break;
		}
		/* 2xx: cosigned */
		witness_cosig cs[WITNESS_COSIG_MAX];
		size_t nc = 0;
		if ((st = witness_check_cosignatures(ab, ans.body.len, cp.note, text_len,
		                                     s->has_vkey ? s->vkey_name : NULL, s->vkey_id, s->vkey_pub,
		                                     km_now(), cs, KM_ARRAY_LEN(cs), &nc, e))) {
			char inner[KM_ERR_MSG_MAX];
			snprintf(inner, sizeof inner, "%s", e->msg);
			km_fail(e, st, "sink %s: %s: %s", s->name, s->url, inner);
			break;
		}
		if ((st = witness_ack(db, s, r->cursor, h.size, cs, nc, e)))
			break;
		r->delivered++;
		r->batches++;
		r->cosignatures += nc;
		r->witness_size = h.size;
		r->cursor = h.size;
		report(o, r);
		break;
	}
	free(ans.body.p);
	http_close(&c);
	return st;
}

/* ---------------------------------------------------------------- runs */

km_status forward_sink_run(sqlite3 *db, const char *origin, const km_sink *s,
                           const forward_run_opts *o, km_forward_sink_result *r, km_err *e)
{
	snprintf(r->name, sizeof r->name, "%s", s->name);
	r->kind = s->kind;
	km_status st = cursor_get(db, s->name, &r->cursor, e);
	/* A sink that acknowledged more than the log now holds saw entries
	 * that are gone: the log was truncated or replaced.  Say so rather
	 * than wait for the log to grow back over the hole. */
	uint64_t size = 0, head = 0;
	if (!st)
		st = log_ends(db, &size, &head, e);
	if (!st && r->cursor > (s->kind == KM_SINK_WITNESS ? head : size)) {
		if (s->kind == KM_SINK_WITNESS) {
			/* the witness cosigned a tree this log no longer has */
			r->alarm = 1;
			r->witness_size = r->cursor;
		}
		st = km_fail(e, KM_EINTEGRITY, "sink %s has acknowledged %s %" PRIu64 ", but the log's %s is "
		             "%" PRIu64 ": the audit log was truncated or replaced (run `keyward audit verify`)",
		             s->name, s->kind == KM_SINK_WITNESS ? "a tree head of size" : "entries up to",
		             r->cursor, s->kind == KM_SINK_WITNESS ? "newest signed head" : "size",
		             s->kind == KM_SINK_WITNESS ? head : size);
	}
	if (!st) {
		if (s->kind == KM_SINK_WEBHOOK)
			st = run_webhook(db, origin, s, o, r, e);
		else if (s->kind == KM_SINK_FILE)
			st = run_file(db, origin, s, o, r, e);
		else
			st = run_witness(db, origin, s, o, r, e);
	}
	km_err ig;
	uint64_t cur;
	if (forward_sink_lag(db, s, &cur, &r->lag, &ig) == KM_OK)
		r->cursor = cur;
	r->status = st;
	if (st) {
		snprintf(r->error, sizeof r->error, "%s", e->msg);
		cursor_note_error(db, s->name, e->msg);
	} else {
		r->error[0] = '\0';
	}
	return st;
}

static km_status load_sinks(km_ctx *ctx, km_sink *sinks, size_t *n, km_err *e)
{
	return km_sinks_parse(ctx->cfg.audit_sinks, ctx->cfg.home, ctx->cfg.config_path, sinks,
	                      KM_SINKS_MAX, n, e);
}

km_status km_forward_lags(km_ctx *ctx, km_sink_lag *out, size_t cap, size_t *n, km_err *e)
{
	km_sink sinks[KM_SINKS_MAX];
	size_t ns = 0;
	*n = 0;
	km_status st = load_sinks(ctx, sinks, &ns, e);
	for (size_t i = 0; !st && i < ns && i < cap; i++) {
		memcpy(out[i].name, sinks[i].name, sizeof out[i].name);
		out[i].kind = sinks[i].kind;
		if (!(st = forward_sink_lag(ctx->db, &sinks[i], &out[i].cursor, &out[i].lag, e)))
			*n = i + 1;
	}
	return st;
}

km_status km_forward(km_ctx *ctx, const km_forward_opts *o, km_forward_progress_fn progress,
                     void *pctx, km_forward_sink_result *results, size_t *n, km_err *e)
{
	static const km_forward_opts none = {0};
	if (!o)
		o = &none;
	*n = 0;
	km_op_begin(ctx, KM_ACT_AUDIT_FORWARD, o->sink ? o->sink : "");
	km_status st = km_authorize(ctx, KM_ACT_AUDIT_FORWARD, NULL, e);
	km_sink sinks[KM_SINKS_MAX];
	size_t ns = 0;
	if (!st)
		st = load_sinks(ctx, sinks, &ns, e);
	if (!st && ns == 0)
		st = km_fail(e, KM_ECONFIG, "no audit sinks are configured: add \"audit_sinks\" to %s "
		             "(docs/audit.md, Forwarding)", ctx->cfg.config_path);
	size_t only = SIZE_MAX;
	if (!st && o->sink) {
		for (size_t i = 0; i < ns; i++)
			if (strcmp(sinks[i].name, o->sink) == 0)
				only = i;
		if (only == SIZE_MAX)
			st = km_fail(e, KM_ENOTFOUND, "no audit sink is named \"%s\" in %s", o->sink,
			             ctx->cfg.config_path);
	}
	char origin[256];
	if (!st)
		st = audit_origin(ctx->db, origin, sizeof origin, e);
	if (!st) {
		/* Recorded before delivering, so the event travels in this run. */
		json_t *names = json_array();
		for (size_t i = 0; i < ns; i++)
			if (only == SIZE_MAX || only == i)
				json_array_append_new(names, json_string(sinks[i].name));
		st = km_audit_event(ctx, "audit.forward", o->sink ? o->sink : "", "ok",
		                    json_pack("{s:o, s:b}", "sinks", names, "follow", o->follow), e);
	}
	if (st)
		return km_op_end(ctx, st, e);
	ctx->op_recorded = 1; /* the run is recorded; a sink failing is reported, not re-audited */

	forward_run_opts ro = {o->follow, o->stop, progress, pctx, ctx->audit_pub};
	int64_t next_try[KM_SINKS_MAX] = {0};
	int alarmed[KM_SINKS_MAX] = {0};
	km_status first = KM_OK;
	for (;;) {
		uint64_t moved = 0;
		for (size_t i = 0; i < ns; i++) {
			if (only != SIZE_MAX && i != only)
				continue;
			if (ro.stop && *ro.stop)
				break;
			km_forward_sink_result *r = &results[i];
			if (o->follow && next_try[i] > km_now())
				continue;
			uint64_t before = r->delivered;
			km_forward_sink_result fresh = {0};
			fresh.delivered = r->delivered;
			fresh.batches = r->batches;
			fresh.retries = r->retries;
			fresh.retry_after_waits = r->retry_after_waits;
			fresh.conflicts = r->conflicts;
			fresh.cosignatures = r->cosignatures;
			*r = fresh;
			km_err se;
			km_err_clear(&se);
			km_status s = forward_sink_run(ctx->db, origin, &sinks[i], &ro, r, &se);
			moved += r->delivered - before;
			if (r->alarm && !alarmed[i]) {
				/* A witness holding a tree this log does not extend is
				 * evidence of tampering: it goes into the log itself
				 * (once per run and sink), not only to stderr. */
				alarmed[i] = 1;
				km_err ae;
				km_audit_event(ctx, "audit.witness", sinks[i].name, "error",
				               json_pack("{s:b, s:s, s:s, s:I, s:s}", "alarm", 1, "sink",
				                         sinks[i].name, "url", sinks[i].url, "witness_size",
				                         (json_int_t)r->witness_size, "message", se.msg), &ae);
			}
			if (s && !o->follow && !first) {
				first = s;
				*e = se;
			}
			if (s && o->follow) {
				/* a sink that refuses waits its longest backoff, then tries again */
				next_try[i] = km_now() + (int64_t)sinks[i].backoff_max_s;
				if (progress)
					progress(pctx, r);
			}
		}
		if (!o->follow || (ro.stop && *ro.stop))
			break;
		if (moved == 0)
			nap(&ro, o->poll_ms ? o->poll_ms : 1000);
	}
	*n = only == SIZE_MAX ? ns : 0;
	if (only != SIZE_MAX) {
		results[0] = results[only];
		*n = 1;
	}
	return km_op_end(ctx, first, e);
}

_Static_assert(KM_SINKS_MAX <= sizeof ((km_status_info *)0)->sink / sizeof ((km_status_info *)0)->sink[0],
               "km_status_info holds every sink");
_Static_assert(KM_SINK_NAME_MAX <= sizeof ((km_status_info *)0)->sink[0].name, "sink names fit");
