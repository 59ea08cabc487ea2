/*
 * err.c — km_err helpers and the one table from status to name and exit code.
 */
#include "km.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One row per status: the name used in JSON output and the exit code.
 * Exit codes are part of the CLI contract (docs/cli.md). */
static const struct {
	km_status status;
	const char *name;
	int exit_code;
} status_table[] = {
	{KM_OK, "ok", 0},
	{KM_EINTERNAL, "internal", 1},
	{KM_EUSAGE, "usage", 2},
	{KM_EINVAL, "invalid-input", 2},
	{KM_ENOTFOUND, "not-found", 3},
	{KM_EEXISTS, "exists", 9},
	{KM_EDENIED, "denied", 4},
	{KM_ESTATE, "illegal-state", 8},
	{KM_ELIMIT, "limit-reached", 8},
	{KM_EINTEGRITY, "integrity-failure", 5},
	{KM_EHSM, "hsm-failure", 6},
	{KM_ECONFIG, "config-error", 7},
	{KM_EDB, "database-error", 1},
	{KM_EIO, "io-error", 1},
	{KM_ENOMEM, "out-of-memory", 1},
	{KM_EBUSY, "busy", 10},
};

const char *km_status_name(km_status s)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(status_table); i++)
		if (status_table[i].status == s)
			return status_table[i].name;
	return "unknown";
}

int km_status_exit_code(km_status s)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(status_table); i++)
		if (status_table[i].status == s)
			return status_table[i].exit_code;
	return 1;
}

km_status km_fail(km_err *e, km_status code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
		e->code = code;
	}
	return code;
}

km_status km_wrap(km_err *e, const char *fmt, ...)
{
	if (!e)
		return KM_EINTERNAL;
	char joined[2 * KM_ERR_MSG_MAX + 2];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(joined, KM_ERR_MSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	size_t used = strlen(joined);
	memcpy(joined + used, ": ", 2);
	memcpy(joined + used + 2, e->msg, strnlen(e->msg, KM_ERR_MSG_MAX - 1) + 1);
	joined[sizeof joined - 1] = '\0';
	size_t len = strnlen(joined, KM_ERR_MSG_MAX - 1);
	memcpy(e->msg, joined, len);
	e->msg[len] = '\0';
	return e->code;
}

void km_err_clear(km_err *e)
{
	if (e) {
		e->code = KM_OK;
		e->msg[0] = '\0';
	}
}

size_t km_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t n = strlen(src);
	if (cap) {
		size_t c = n < cap - 1 ? n : cap - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}
