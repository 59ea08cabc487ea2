/*
 * p11uri.c — the RFC 7512 "pkcs11:" URI subset keyward accepts where a user
 * names a token or an object.
 *
 * Pure string handling: it never loads a module, never talks to a token, and
 * never copies a query attribute other than module-path (pin-value and
 * pin-source are dropped, so a PIN written into a URI goes no further).
 */
#include "hsm.h"

#include <errno.h>
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

/* Query attributes we keep; the rest (pin-source, pin-value, module-name,
 * vendor extensions) are skipped on purpose. */
static const struct uri_attr query_attrs[] = {
	{"module-path", URI_TEXT, URI_FIELD(module_path)},
};

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

static km_status store_value(const struct uri_attr *a, const char *val, size_t len, hsm_uri *out,
                             km_err *e)
{
	uint8_t buf[sizeof out->module_path]; /* the largest field */
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
		memset(out, 0, sizeof *out);
		out->slot_id = -1;
	}
	return st;
}
