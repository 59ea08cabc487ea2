/*
 * html.h — the pieces every self-contained HTML report shares (lineage
 * reports, auditor reports): text escaping.  Reports carry no external
 * assets; charts are inline SVG written by each report.
 */
#ifndef UI_HTML_H
#define UI_HTML_H

#include <stdio.h>

/* Text for HTML (element content and quoted attribute values): the
 * display form (control characters escaped, as on a terminal), then the
 * five characters HTML gives meaning to. */
void ui_html_text(FILE *f, const char *s);

#endif
