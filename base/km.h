/*
 * km.h — status codes and error values shared by every keyward module.
 *
 * Every fallible function in core/ and hsm/ returns a km_status and, when it
 * is not KM_OK, fills a caller-supplied km_err with a sentence a person can
 * act on.  The core never prints, never exits and never reads the terminal:
 * the front ends (ui/) decide what to show and which exit code to use.
 *
 * A message must never contain key material, a PIN, or a passphrase.
 */
#ifndef KM_H
#define KM_H

#include <stddef.h>
#include <stdint.h>

typedef enum km_status {
	KM_OK = 0,
	KM_EINTERNAL,  /* a bug or an unexpected library failure */
	KM_EUSAGE,     /* the caller asked for something malformed */
	KM_EINVAL,     /* bad input data: malformed file, name, tag, JSON */
	KM_ENOTFOUND,  /* no such key, version, asset, event, user */
	KM_EEXISTS,    /* the thing to create exists already */
	KM_EDENIED,    /* authorisation refused the action */
	KM_ESTATE,     /* illegal state transition, or state forbids the use */
	KM_ELIMIT,     /* a configured bound was reached (e.g. wraps per key) */
	KM_EINTEGRITY, /* authentication / integrity check failed */
	KM_EHSM,       /* the PKCS#11 module or token failed */
	KM_ECONFIG,    /* deployment configuration missing or malformed */
	KM_EDB,        /* the SQLite catalogue failed */
	KM_EIO,        /* file or pipe I/O failed */
	KM_ENOMEM,     /* allocation (including secure heap) failed */
	KM_EBUSY,      /* another process holds what we need; retry later */
	KM_STATUS_COUNT
} km_status;

#define KM_ERR_MSG_MAX 512

typedef struct km_err {
	km_status code;
	char msg[KM_ERR_MSG_MAX];
} km_err;

/* Fill *e (which may be NULL) and return code.  printf-style message. */
km_status km_fail(km_err *e, km_status code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "ctx: old message".  Keeps e->code. */
km_status km_wrap(km_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reset *e to KM_OK with an empty message. */
void km_err_clear(km_err *e);

/* Short stable name of a status ("denied", "not-found", ...), for JSON. */
const char *km_status_name(km_status s);

/* Process exit code for a status; documented in `keyward --help`. */
int km_status_exit_code(km_status s);

/* Copy with truncation, always NUL-terminated; returns strlen(src). */
size_t km_strlcpy(char *dst, const char *src, size_t cap);

#define KM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
