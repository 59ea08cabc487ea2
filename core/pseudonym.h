/*
 * pseudonym.h — stable pseudonyms for the names a reader without
 * need-to-know must not see, shared by every report (lineage reports,
 * auditor reports).
 *
 * A pseudonym is "KIND-xxxxxxxxxx": the first five bytes of an HSM MAC
 * (the row-MAC key, purpose "lineage-pseudonym") over [KIND, NAME].  So the
 * same name is the same pseudonym in every report of the deployment, of
 * any kind, and it cannot be guessed back without the HSM.  The purpose
 * string is kept from the lineage reports so pseudonyms already handed out
 * stay valid.
 *
 * Must never: fall back to the name when the MAC cannot be made (the
 * pseudonym is then "KIND-unavailable" and the first failure is kept for
 * the caller, who must fail the report).
 */
#ifndef KM_PSEUDONYM_H
#define KM_PSEUDONYM_H

#include "keyward.h"

#include <stddef.h>

/* Who may see names: officers and administrators (need-to-know). */
int km_role_need_to_know(unsigned roles);

typedef struct km_pseudonyms km_pseudonyms;

/* One report's view (pseudonyms are cached per session, lineage.h
 * km_lineage_pseudonym).  redact 0: km_pseudonym returns names as they
 * are.  NULL when out of memory. */
km_pseudonyms *km_pseudonyms_new(km_ctx *ctx, int redact);
void km_pseudonyms_free(km_pseudonyms *p);
int km_pseudonyms_redacting(const km_pseudonyms *p);

/* The name as the report shows it: itself, or its pseudonym (copied into
 * buf).  NULL or "" is shown as "". */
const char *km_pseudonym(km_pseudonyms *p, const char *what, const char *name, char *buf, size_t cap);

/* KM_OK, or the first MAC failure (filled into *e). */
km_status km_pseudonyms_status(const km_pseudonyms *p, km_err *e);

#endif
