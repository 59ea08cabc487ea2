/*
 * p11uri.c — the RFC 7512 "pkcs11:" URI subset keyward accepts where a user
 * names a token or an object.
 *
 * Pure string handling: it never loads a module and never talks to a token.
 * A PIN given as pin-value goes only into hsm_uri.pin_value, for the caller's
 * one login; every buffer it passed through is wiped, and no message quotes
 * a query attribute's value.  pin-source is skipped (keyward reads PINs its
 * own way).  hsm_uri_strip_secrets makes a URI fit to store and log.
 */
#include "hsm.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URI_SCHEME "pkcs11:"

enum uri_kind {
	URI_TEXT,    /* NUL-terminated string; an embedded NUL is refused */
	URI_BYTES,   /* raw bytes (CKA_ID); length goes to id_len */
	URI_SLOT_ID, /* decimal CK_SLOT_ID */
	URI_TYPE,    /* one of the RFC 7512 object types */
};

#define URI_FIELD(f) offsetof(hsm_uri, f), sizeof(((hsm_uri *)0)->f)

/* RFC 7512 path attributes keyward understands.  Anything else in the path is
 * refused rather than ignored: silently dropping e.g. slot-description would
 * widen the match and could pick the wrong token. */
static const struct uri_attr {
	const char *name;
	enum uri_kind kind;
	size_t offset;
	size_t cap;
} path_attrs[] = {
	{"token", URI_TEXT, URI_FIELD(token)},
	{"manufacturer", URI_TEXT, URI_FIELD(manufacturer)},
	{"model", URI_TEXT, URI_FIELD(model)},
	{"serial", URI_TEXT, URI_FIELD(serial)},
	{"slot-id", URI_SLOT_ID, URI_FIELD(slot_id)},
	{"object", URI_TEXT, URI_FIELD(object)},
	{"id", URI_BYTES, URI_FIELD(id)},
	{"type", URI_TYPE, URI_FIELD(type)},
};

/* Query attributes we keep; the rest (pin-source, module-name, vendor
 * extensions) are skipped on purpose. */
static const struct uri_attr query_attrs[] = {
	{"module-path", URI_TEXT, URI_FIELD(module_path)},
	{"pin-value", URI_TEXT, URI_FIELD(pin_value)},
};

/* Attributes that carry or point at a PIN: never stored, never logged. */
static const char *const secret_attrs[] = {"pin-value", "pin-source"};

static const char *const object_types[] = {"public", "private", "cert", "secret-key", "data"};

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode src[0..len) into dst, which holds at most max bytes. */
static km_status percent_decode(const char *name, const char *src, size_t len, uint8_t *dst,
                                size_t max, size_t *out_len, km_err *e)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int byte = (unsigned char)src[i];
		if (src[i] == '%') {
			int hi = i + 2 < len ? hex_value(src[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(src[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return km_fail(e, KM_EINVAL,
				               "PKCS#11 URI attribute \"%s\": bad percent-encoding "
				               "(expected %%XX with two hex digits)", name);
			byte = hi * 16 + lo;
			i += 2;
		}
		if (n >= max)
			return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"%s\" is too long (at most %zu bytes)",
			               name, max);
		dst[n++] = (uint8_t)byte;
	}
	*out_len = n;
	return KM_OK;
}

#define SLOT_ID_DIGITS_MAX 20 /* ULONG_MAX has 20 decimal digits */

/* buf holds the decoded value; store_value wipes it (it may be a PIN). */
static km_status store_decoded(const struct uri_attr *a, const char *val, size_t len, hsm_uri *out,
                               uint8_t *buf, km_err *e)
{
	size_t max, n = 0;
	km_status st;
	char *field = (char *)out + a->offset;

	/* Text fields keep a byte for the NUL; CKA_ID is raw bytes. */
	max = a->kind == URI_BYTES ? a->cap : a->kind == URI_SLOT_ID ? SLOT_ID_DIGITS_MAX : a->cap - 1;
	st = percent_decode(a->name, val, len, buf, max, &n, e);
	if (st != KM_OK)
		return st;

	if (a->kind == URI_BYTES) {
		memcpy(field, buf, n);
		out->id_len = n;
		return KM_OK;
	}

	if (memchr(buf, '\0', n))
		return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"%s\" contains a NUL byte", a->name);

	if (a->kind == URI_SLOT_ID) {
		char digits[SLOT_ID_DIGITS_MAX + 1];
		char *end = NULL;
		long v;
		memcpy(digits, buf, n);
		digits[n] = '\0';
		if (n == 0 || strspn(digits, "0123456789") != n)
			return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"slot-id\" must be a decimal number");
		errno = 0;
		v = strtol(digits, &end, 10);
		if (errno == ERANGE || *end != '\0')
			return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"slot-id\" is out of range");
		out->slot_id = v;
		return KM_OK;
	}

	memcpy(field, buf, n);
	field[n] = '\0';

	if (a->kind == URI_TYPE) {
		for (size_t i = 0; i < KM_ARRAY_LEN(object_types); i++)
			if (strcmp(field, object_types[i]) == 0)
				return KM_OK;
		return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"type\" must be one of public, private, "
		               "cert, secret-key, data");
	}
	return KM_OK;
}

static km_status store_value(const struct uri_attr *a, const char *val, size_t len, hsm_uri *out,
                             km_err *e)
{
	uint8_t buf[sizeof out->module_path]; /* the largest field */
	km_status st = store_decoded(a, val, len, out, buf, e);
	OPENSSL_cleanse(buf, sizeof buf);
	return st;
}

/* Parse "name=value" components separated by sep from [p, end).  Unknown
 * names are refused when strict, skipped otherwise.  seen[] guards against
 * repeats, which RFC 7512 forbids. */
static km_status parse_attrs(const char *p, const char *end, char sep, const struct uri_attr *attrs,
                             size_t nattrs, int strict, hsm_uri *out, km_err *e)
{
	unsigned seen = 0;

	while (p < end) {
		const char *next = memchr(p, sep, (size_t)(end - p));
		const char *stop = next ? next : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		size_t name_len;
		size_t i;

		if (stop == p) { /* tolerate empty components ("a=1;;b=2", trailing ';') */
			p = stop + 1;
			continue;
		}
		/* A query component may be a PIN someone typed without its
		 * name: never quote one. */
		if (!eq && sep == '&')
			return km_fail(e, KM_EINVAL, "a PKCS#11 URI query component has no '='");
		if (!eq)
			return km_fail(e, KM_EINVAL, "PKCS#11 URI component \"%.*s\" has no '='",
			               (int)((stop - p) > 40 ? 40 : (stop - p)), p);
		name_len = (size_t)(eq - p);
		for (i = 0; i < nattrs; i++)
			if (strlen(attrs[i].name) == name_len && memcmp(attrs[i].name, p, name_len) == 0)
				break;
		if (i == nattrs) {
			if (strict)
				return km_fail(e, KM_EINVAL,
				               "unknown PKCS#11 URI attribute \"%.*s\" (keyward understands token, "
				               "manufacturer, model, serial, slot-id, object, id, type)",
				               (int)(name_len > 40 ? 40 : name_len), p);
		} else {
			if (seen & (1u << i))
				return km_fail(e, KM_EINVAL, "PKCS#11 URI attribute \"%s\" appears twice",
				               attrs[i].name);
			seen |= 1u << i;
			km_status st = store_value(&attrs[i], eq + 1, (size_t)(stop - eq - 1), out, e);
			if (st != KM_OK)
				return st;
		}
		p = next ? next + 1 : end;
	}
	return KM_OK;
}

km_status hsm_uri_parse(const char *uri, hsm_uri *out, km_err *e)
{
	const char *path, *query, *end;
	km_status st;

	if (!uri || !out)
		return km_fail(e, KM_EUSAGE, "hsm_uri_parse: NULL argument");
	memset(out, 0, sizeof *out);
	out->slot_id = -1;

	if (strncasecmp(uri, URI_SCHEME, strlen(URI_SCHEME)) != 0)
		return km_fail(e, KM_EINVAL, "not a PKCS#11 URI (it must start with \"pkcs11:\")");
	path = uri + strlen(URI_SCHEME);
	end = path + strlen(path);
	query = strchr(path, '?');

	st = parse_attrs(path, query ? query : end, ';', path_attrs, KM_ARRAY_LEN(path_attrs), 1, out, e);
	if (st == KM_OK && query)
		st = parse_attrs(query + 1, end, '&', query_attrs, KM_ARRAY_LEN(query_attrs), 0, out, e);
	if (st != KM_OK) {
		/* Leave nothing half-filled for a caller that ignores the status. */
		hsm_uri_cleanse(out);
		memset(out, 0, sizeof *out);
		out->slot_id = -1;
	}
	return st;
}

void hsm_uri_cleanse(hsm_uri *u)
{
	if (u)
		OPENSSL_cleanse(u->pin_value, sizeof u->pin_value);
}

/* Is the component [p, stop) one of secret_attrs?  The name is compared
 * after percent-decoding and ignoring case: a lenient parser elsewhere might
 * accept "PIN%2Dvalue", so the stripper must not keep it. */
static int is_secret_component(const char *p, const char *stop)
{
	const char *eq = memchr(p, '=', (size_t)(stop - p));
	const char *name_end = eq ? eq : stop;
	char name[32];
	size_t n = 0;

	for (const char *c = p; c < name_end; c++) {
		int byte = (unsigned char)*c;
		if (*c == '%' && name_end - c > 2 && hex_value(c[1]) >= 0 && hex_value(c[2]) >= 0) {
			byte = hex_value(c[1]) * 16 + hex_value(c[2]);
			c += 2;
		}
		if (n + 1 >= sizeof name)
			return 0; /* longer than any secret attribute's name */
		name[n++] = (char)byte;
	}
	name[n] = '\0';
	for (size_t i = 0; i < KM_ARRAY_LEN(secret_attrs); i++)
		if (strcasecmp(name, secret_attrs[i]) == 0)
			return 1;
	return 0;
}

typedef struct out_buf {
	char *p;
	size_t cap, len;
	int overflow;
} out_buf;

static void out_append(out_buf *o, const char *s, size_t n)
{
	if (o->overflow || o->len + n >= o->cap) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* Append the components of [p, end) separated by sep, minus the secret and
 * the empty ones, led by `lead` if any is kept. */
static void append_kept(out_buf *o, const char *p, const char *end, char sep, const char *lead)
{
	int kept = 0;

	while (p < end) {
		const char *next = memchr(p, sep, (size_t)(end - p));
		const char *stop = next ? next : end;
		if (stop > p && !is_secret_component(p, stop)) {
			if (kept++)
				out_append(o, &sep, 1);
			else if (lead)
				out_append(o, lead, strlen(lead));
			out_append(o, p, (size_t)(stop - p));
		}
		p = next ? next + 1 : end;
	}
}

km_status hsm_uri_strip_secrets(const char *in, char *out, size_t cap)
{
	out_buf o = {out, cap, 0, 0};
	const char *path, *query, *end;

	if (!out || cap == 0)
		return KM_EUSAGE;
	out[0] = '\0';
	if (!in)
		return KM_EUSAGE;
	if (strncasecmp(in, URI_SCHEME, strlen(URI_SCHEME)) != 0) {
		out_append(&o, in, strlen(in)); /* a label: nothing to strip */
	} else {
		path = in + strlen(URI_SCHEME);
		end = path + strlen(path);
		query = strchr(path, '?');
		out_append(&o, in, strlen(URI_SCHEME));
		/* RFC 7512 puts PINs in the query only; a path that has one is
		 * refused by hsm_uri_parse, but must not be logged either. */
		append_kept(&o, path, query ? query : end, ';', NULL);
		if (query)
			append_kept(&o, query + 1, end, '&', "?");
	}
	if (o.overflow) {
		out[0] = '\0';
		return KM_EUSAGE;
	}
	return KM_OK;
}
