/*
 * progress.h — progress of long work (jobs) for the CLI.
 *
 * On a terminal: one line redrawn in place, a bar with done/total, rate
 * and ETA, clipped to the terminal's width.  Otherwise (a pipe, a log, a
 * cron job): one JSON object per line, at most one per second and one at
 * the end:
 *   {"job":"job-..","done":N,"total":N,"rate":R,"eta_s":S}
 * (rate in assets per second, eta_s -1 while unknown).  Both go to the
 * stream given (the CLI gives stderr: stdout carries only data).
 *
 * ui_progress_cb has the core's km_progress_fn shape; it asks the job to
 * pause (returns 1) once ui_progress_interrupt() was called, which the
 * CLI's SIGINT handler does: Ctrl-C pauses a job after its batch.
 */
#ifndef UI_PROGRESS_H
#define UI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct ui_progress ui_progress;

/* tty: draw a bar (else JSON lines).  job: the id the JSON lines name;
 * done_before: what the job had done when this run began (rate and ETA
 * are this run's). */
ui_progress *ui_progress_new(FILE *f, int tty, const char *job, uint64_t done_before);
int ui_progress_cb(void *p, uint64_t done, uint64_t total, const char *what);
/* Final line (the bar's line ended with a newline); frees p. */
void ui_progress_end(ui_progress *p);

/* Async-signal-safe: only sets a flag. */
void ui_progress_interrupt(void);
int ui_progress_interrupted(void);

/* The bar's text for a width, without control characters (for tests and
 * for ui_progress_cb): "[####....]  45%  4,520/10,000  1,234/s  ETA 0:04". */
void ui_progress_format(char *buf, size_t cap, unsigned width, uint64_t done, uint64_t total, double rate,
                        int64_t eta_s);

#endif
