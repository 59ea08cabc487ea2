/*
 * pseudonym.c — stable pseudonyms for redacted reports (pseudonym.h).
 */
#include "pseudonym.h"
#include "authz.h"
#include "rowmac.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct km_pseudonyms {
	km_ctx *ctx;
	int redact;
	json_t *cache;  /* "what\nname" -> pseudonym */
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
	if (!(p->cache = json_object())) {
		free(p);
		return NULL;
	}
	return p;
}

void km_pseudonyms_free(km_pseudonyms *p)
{
	if (!p)
		return;
	json_decref(p->cache);
	free(p);
}

int km_pseudonyms_redacting(const km_pseudonyms *p)
{
	return p && p->redact;
}

const char *km_pseudonym(km_pseudonyms *p, const char *what, const char *name, char *buf, size_t cap)
{
	if (!p->redact || !name || !*name)
		return name ? name : "";
	char key[1200];
	snprintf(key, sizeof key, "%s\n%s", what, name);
	const char *have = json_string_value(json_object_get(p->cache, key));
	if (!have) {
		uint8_t mac[KM_ROWMAC_BYTES];
		km_err e;
		if (km_rowmac(p->ctx, "lineage-pseudonym", json_pack("[s,s]", what, name), mac, &e) != KM_OK) {
			/* Never fall back to the name. */
			if (!p->st) {
				p->st = e.code;
				p->err = e;
			}
			snprintf(buf, cap, "%s-unavailable", what);
			return buf;
		}
		char ps[64];
		int n = snprintf(ps, sizeof ps, "%s-", what);
		for (int i = 0; i < 5 && n < (int)sizeof ps - 2; i++)
			n += snprintf(ps + n, sizeof ps - (size_t)n, "%02x", mac[i]);
		json_object_set_new(p->cache, key, json_string(ps));
		have = json_string_value(json_object_get(p->cache, key));
	}
	snprintf(buf, cap, "%s", have ? have : "");
	return buf;
}

km_status km_pseudonyms_status(const km_pseudonyms *p, km_err *e)
{
	if (p->st && e)
		*e = p->err;
	return p->st;
}
