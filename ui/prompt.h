/*
 * prompt.h — asking the person at the terminal for a secret.
 *
 * Reads from /dev/tty (never stdin, which may carry data being protected)
 * with echo off.  The terminal is restored on every path, including when
 * SIGINT, SIGTERM, SIGHUP or SIGQUIT arrives while we wait: the handler only
 * sets a flag; the reader restores the terminal and then re-raises the
 * signal with its previous disposition.
 */
#ifndef UI_PROMPT_H
#define UI_PROMPT_H

#include "km.h"

#include <stddef.h>

/* km_secret_prompt_fn (keyward.h).  ctx, when not NULL, is a string saying
 * how else the secret can be given, for the message when there is no
 * terminal.  buf receives a NUL-terminated line without its newline; on
 * failure buf is cleansed.  KM_EUSAGE when there is no terminal to ask;
 * KM_EINVAL when the answer is longer than cap - 1 bytes or empty. */
km_status ui_prompt_secret(void *ctx, const char *question, char *buf, size_t cap,
                           km_err *e);

/* Read a secret from a file: the first line that is neither empty nor a
 * comment ('#').  For --pin-file.  buf cleansed on failure. */
km_status ui_secret_from_file(const char *path, char *buf, size_t cap, km_err *e);

#endif
