/*
 * html.c — HTML escaping shared by the reports (html.h).
 */
#include "html.h"
#include "cli.h"

void ui_html_text(FILE *f, const char *s)
{
	char clean[2400];
	ui_clean(s ? s : "", clean, sizeof clean);
	for (const char *p = clean; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*p, f);
		}
	}
}
