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

/* Take on the caller's file-system rights (fsuid, fsgid) for a stretch of
 * file operations on paths the person named (a temporary file, its rename,
 * the directory sweep); a no-op unless privileged.  Not nested; no catalogue
 * or HSM access in between. */
void km_caller_rights_begin(void);
void km_caller_rights_end(void);

/* Read a secret (a PIN, a passphrase) from a file: the first line, or with
 * KM_SECRET_COMMENTS the first line that is neither empty nor a '#'
 * comment; lines are read whole, so a long comment never leaks its tail.
 * The file must be a regular file that only its owner can read (else
 * KM_ECONFIG saying so: a secret others can read is no secret).
 * KM_SECRET_CALLER opens it with the caller's rights (a file the person
 * named).  `what` names the secret in messages ("PIN", "passphrase").  buf
 * is cleansed on failure. */
enum { KM_SECRET_CALLER = 1, KM_SECRET_COMMENTS = 2 };
km_status km_secret_file_read(const char *path, unsigned flags, const char *what, char *buf,
                              size_t cap, km_err *e);

#endif
