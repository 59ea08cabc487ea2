/*
 * reportfile.h — the auditor report (core/report.h) rendered as JSON, CSV
 * or self-contained HTML, for both front ends: `keyward report` and the
 * console's report form (reportrun.h).  One renderer, so the console's
 * file and the CLI's hold the same facts in the same form.
 *
 * Every form is rendered from the core's document only, after redaction,
 * so no form can hold a name the document does not.
 */
#ifndef UI_REPORTFILE_H
#define UI_REPORTFILE_H

#include "km.h"

#include <jansson.h>
#include <stdio.h>

/* fmt is "json", "csv" or "html" (anything else: KM_EUSAGE naming it). */
km_status ui_report_check_format(const char *fmt, km_err *e);

/* Render doc as fmt on f.  KM_EIO when the stream fails. */
km_status ui_report_render(FILE *f, const char *fmt, json_t *doc, km_err *e);

/* Render doc as fmt into path atomically (atomicfile.h: a temporary beside
 * it, then rename): the path never holds a partial report.  stop (may be
 * NULL) is asked once the content is written and before the rename; when
 * it says 1 the temporary is removed, path is untouched, and KM_EBUSY
 * ("report cancelled") is returned. */
km_status ui_report_write(const char *path, const char *fmt, json_t *doc, int (*stop)(void *c), void *sc,
                          km_err *e);

#endif
