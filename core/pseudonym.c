/*
 * pseudonym.c — stable pseudonyms for redacted reports (pseudonym.h).
 */
#include "pseudonym.h"
#include "authz.h"
#include "lineage.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct km_pseudonyms {
	km_ctx *ctx;
	int redact;
	km_status st;   /* first failure */
	km_err err;
};

int km_role_need_to_know(unsigned roles)
{
	return (roles & (KM_ROLE_OFFICER | KM_ROLE_ADMIN)) != 0;
}

km_pseudonyms *km_pseudonyms_new(km_ctx *ctx, int redact)
{
	km_pseudonyms *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->ctx = ctx;
	p->redact = redact;
	return p;
}

void km_pseudonyms_free(km_pseudonyms *p)
{
	if (!p)
		return;
	free(p);
}

int km_pseudonyms_redacting(const km_pseudonyms *p)
{
	return p && p->redact;
}

/* One MAC and one cache for every pseudonym of the session: the lineage
 * answers' (lineage_redact.c), so a name reads the same in every report. */
const char *km_pseudonym(km_pseudonyms *p, const char *what, const char *name, char *buf, size_t cap)
{
	if (!p->redact || !name || !*name)
		return name ? name : "";
	km_err e;
	km_err_clear(&e);
	if (km_lineage_pseudonym(p->ctx, what, name, buf, cap, &e) != KM_OK && !p->st) {
		/* buf holds "WHAT-unavailable", never the name */
		p->st = e.code;
		p->err = e;
	}
	return buf;
}

km_status km_pseudonyms_status(const km_pseudonyms *p, km_err *e)
{
	if (p->st && e)
		*e = p->err;
	return p->st;
}
