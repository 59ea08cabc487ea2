/*
 * lineage_pull.c — fetching OpenLineage events from a Marquez-compatible
 * HTTP API with libcurl, for km_lineage_pull (lineage.h).
 *
 * GET BASE/api/v1/events/lineage?limit=N&offset=K&sortDirection=asc
 * [&after=T], page after page, until a page comes back shorter than N.
 * A page is {"events": [...]} (Marquez) or a bare array.  TLS is always
 * verified (peer and host; nothing here can turn that off); only http and
 * https, redirects included; each request has a connect and a total
 * timeout and a floor on the transfer rate.  A 429, a 5xx, a timeout or a
 * refused connection is tried again: after the Retry-After the server
 * asked for (up to max_wait_s), else after an exponential backoff.  The
 * events come back as JSON lines (one event per line, in the server's
 * order), so the importer names a bad one by its position in the pull.
 * Nothing is written here; the caller imports the whole pull as one
 * transaction.
 */
#include "lineage_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One page's body is bounded; the whole pull too. */
#define PAGE_MAX ((size_t)64 << 20)
#define PULL_MAX ((size_t)512 << 20)
#define PAGES_MAX 1000000u

typedef struct buf {
	char *p;
	size_t n, cap;
	int too_big;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *c)
{
	buf *b = c;
	size_t n = size * nmemb;
	if (b->n + n > PAGE_MAX) {
		b->too_big = 1;
		return 0;
	}
	return buf_add(b, data, n) ? 0 : n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Transient: worth another attempt. */
static int curl_transient(CURLcode rc)
{
	return rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
	       rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
	       rc == CURLE_COULDNT_RESOLVE_HOST;
}

static int curl_tls(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
	       rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM;
}

/* One page, with its retries.  *body owns the page's text on success. */
static km_status get_page(CURL *h, const char *url, const km_lineage_pull_opts *o, buf *body,
                          lineage_pull_stats *stats, km_err *e)
{
	uint64_t backoff_ms = o->backoff_ms ? o->backoff_ms : 500;
	for (uint32_t attempt = 1;; attempt++) {
		body->n = 0;
		body->too_big = 0;
		char errbuf[CURL_ERROR_SIZE] = "";
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
		stats->requests++;
		CURLcode rc = curl_easy_perform(h);
		long code = 0;
		curl_off_t retry_after = 0;
		if (rc == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
			curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
			if (code == 200)
				return KM_OK;
		}
		if (body->too_big)
			return km_fail(e, KM_ELIMIT, "%s: a page larger than %zu MiB", url, PAGE_MAX >> 20);
		if (rc != CURLE_OK && curl_tls(rc))
			return km_fail(e, KM_EINTEGRITY, "%s: TLS verification failed (%s): nothing was imported",
			               url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		int again = rc == CURLE_OK ? (code == 429 || code >= 500) : curl_transient(rc);
		char what[CURL_ERROR_SIZE + 64];
		if (rc == CURLE_OK)
			snprintf(what, sizeof what, "HTTP %ld", code);
		else
			snprintf(what, sizeof what, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
		if (!again)
			return km_fail(e, rc == CURLE_OK ? KM_EINVAL : KM_EIO, "%s: %s: nothing was imported", url, what);
		if (attempt >= (o->attempts ? o->attempts : 5))
			return km_fail(e, KM_EIO, "%s: %s, %" PRIu32 " attempts: nothing was imported", url, what,
			               attempt);
		uint64_t wait_ms = backoff_ms;
		if (retry_after > 0) {
			uint32_t max_wait = o->max_wait_s ? o->max_wait_s : 60;
			if ((uint64_t)retry_after > max_wait)
				return km_fail(e, KM_EBUSY, "%s: the server asks to wait %" PRId64 " s (Retry-After), "
				               "more than %" PRIu32 " s: nothing was imported; try later", url,
				               (int64_t)retry_after, max_wait);
			wait_ms = (uint64_t)retry_after * 1000;
			stats->retry_after_waits++;
		} else {
			backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
		}
		stats->retries++;
		sleep_ms(wait_ms);
	}
}

/* The events of one page appended as JSON lines; *count how many. */
static km_status page_events(const char *url, const buf *body, buf *out, size_t *count, km_err *e)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body->p ? body->p : "", body->n, 0, &jerr);
	if (!doc)
		return km_fail(e, KM_EINVAL, "%s: the answer is not JSON (line %d: %s): nothing was imported",
		               url, jerr.line, jerr.text);
	json_t *arr = json_is_array(doc) ? doc : json_object_get(doc, "events");
	if (!json_is_array(arr)) {
		json_decref(doc);
		return km_fail(e, KM_EINVAL, "%s: the answer has no \"events\" array: nothing was imported", url);
	}
	*count = json_array_size(arr);
	km_status st = KM_OK;
	for (size_t i = 0; !st && i < *count; i++) {
		char *s = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s || buf_add(out, s, strlen(s)) || buf_add(out, "\n", 1))
			st = km_fail(e, KM_ENOMEM, "out of memory");
		free(s);
		if (!st && out->n > PULL_MAX)
			st = km_fail(e, KM_ELIMIT, "%s: more than %zu MiB of events in one pull: use --since",
			             url, PULL_MAX >> 20);
	}
	json_decref(doc);
	return st;
}

km_status lineage_pull_fetch(const char *base, const km_lineage_pull_opts *o, char **text, size_t *len,
                             lineage_pull_stats *stats, km_err *e)
{
	memset(stats, 0, sizeof *stats);
	*text = NULL;
	*len = 0;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
		return km_fail(e, KM_EUSAGE, "'%.200s' is not an http:// or https:// URL", base);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return km_fail(e, KM_EINTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_rc));
	CURL *h = curl_easy_init();
	if (!h)
		return km_fail(e, KM_ENOMEM, "libcurl: cannot make a handle");
	uint32_t timeout = o->timeout_s ? o->timeout_s : 30;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(timeout < 10 ? timeout : 10));
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "keyward/" KEYWARD_VERSION);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);

	size_t base_len = strlen(base);
	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	uint32_t limit = o->page_size ? o->page_size : 100;
	char after[64] = "";
	if (o->since) {
		char t[32];
		km_time_format(o->since, t);
		snprintf(after, sizeof after, "&after=%s", t);
	}
	buf body = {0}, out = {0};
	km_status st = KM_OK;
	for (uint64_t offset = 0; !st; offset += limit) {
		if (stats->pages >= PAGES_MAX) {
			st = km_fail(e, KM_ELIMIT, "%s: more than %u pages", base, PAGES_MAX);
			break;
		}
		char url[4096];
		if (snprintf(url, sizeof url, "%.*s/api/v1/events/lineage?limit=%" PRIu32 "&offset=%" PRIu64
		             "&sortDirection=asc%s", (int)base_len, base, limit, offset, after) >= (int)sizeof url) {
			st = km_fail(e, KM_EUSAGE, "the URL is too long");
			break;
		}
		size_t n = 0;
		if ((st = get_page(h, url, o, &body, stats, e)) || (st = page_events(url, &body, &out, &n, e)))
			break;
		stats->pages++;
		stats->events += n;
		if (n < limit)
			break;
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(body.p);
	if (st) {
		free(out.p);
		return st;
	}
	*text = out.p ? out.p : strdup("");
	*len = out.n;
	return *text ? KM_OK : km_fail(e, KM_ENOMEM, "out of memory");
}
