/*
 * reportrun.h — the console starts an auditor report (core/report.h) and
 * shows its progress: R on the audit screen, or `:report`.
 *
 * A form asks for the period (default: the last 30 days, today included),
 * the format (html, json, csv), the role to render for (default: the
 * user's own view) and the output file (default: keyward-report-FROM_TO.FMT
 * in the directory the console was started in).  The report then runs on
 * a worker thread with its own session (km_open: its own catalogue
 * connection and HSM session), as jobs do (view_jobs.c): the screen stays
 * live, the core's progress callback only stores the phase and numbers
 * under a mutex, and the console's 10 Hz tick shows them.  The worker's
 * km_report makes the same authorisation decision and records the same
 * report.read event as `keyward report`.
 *
 * Esc cancels: the callback answers 1, the core stops at its next report
 * (KM_EBUSY, recorded as a failed report.read), and a render already under
 * way is written to a temporary that is removed instead of renamed
 * (reportfile.h): a cancelled report never leaves a file, whole or
 * partial.  One report runs at a time per console.
 *
 * Must never: run the report on the console's own session (it would block
 * the screen), or ask for a secret from the worker (a report needs no
 * step-up; the worker's prompt refuses).
 */
#ifndef UI_REPORTRUN_H
#define UI_REPORTRUN_H

#include "ui.h"

/* Open the form and, when it is submitted, start the report. */
void ui_report_start(ui_console *c);

/* The tick: pick up progress; when the worker is done, join it and say
 * where the file is (or why there is none). */
void ui_report_tick(ui_console *c);

/* Draw the progress (or the last outcome) in a; returns the rows used
 * (0: nothing to show). */
int ui_report_draw(ui_console *c, ui_rect a);

/* The rows ui_report_draw will use now. */
int ui_report_rows(void);

/* Ask a running report to stop; 0 if none was running. */
int ui_report_cancel(ui_console *c);

/* The console closes: cancel, and wait for the worker. */
void ui_report_shutdown(void);

#endif
