/*
 * caller.h — the person who started keyward, as the kernel names them, and
 * files opened with that person's rights.
 *
 * In a system deployment keyward runs set-user-ID to its service account:
 * the effective uid can open the catalogue, the PIN and the token; the real
 * uid names the person.  Files the person names on the command line
 * (protect and unprotect input and output, a passphrase file) are opened
 * with the person's own rights (setfsuid), so keyward never reads or
 * writes a file its caller could not.  In a personal deployment both uids
 * are the same and these functions are plain open() and getpwuid().
 */
#ifndef KM_CALLER_H
#define KM_CALLER_H

#include "km.h"

#include <sys/types.h>

/* First thing in main(), after km_hygiene_init().  For a privileged
 * (set-user-ID) process: refuses to run inside a non-initial user namespace
 * and reduces the environment to a short list of harmless variables
 * (terminal, locale, time zone, colours, and the caller's own passphrase
 * and one-time code).  For any process: refuses when keyward is installed
 * set-user-ID but runs without that privilege (a user namespace, a nosuid
 * mount, a debugger), since it would then act on the caller's files as if
 * they were the deployment's. */
km_status km_process_check(km_err *e);

/* The login name of the real uid.  KM_EDENIED when it has no passwd
 * entry. */
km_status km_caller_name(char *out, size_t cap, km_err *e);

/* open(2) with the real uid's rights (O_CLOEXEC added).  Errors name the
 * path and the reason: KM_EIO, or KM_EDENIED for EACCES/EPERM. */
km_status km_caller_open(const char *path, int flags, mode_t mode, int *fd, km_err *e);

#endif
