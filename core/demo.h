/*
 * demo.h — demo content, made through the public core API only (so the
 * demo's audit log is exactly what real use would produce).
 */
#ifndef KM_DEMO_H
#define KM_DEMO_H

#include "keyward.h"

typedef struct km_demo_opts {
	uint64_t extra_keys;    /* generated keys beyond the showcase ones */
	uint64_t extra_events;  /* approximate audit events to add (bulk asset
	                           registrations, each one event) */
	void (*progress)(void *c, const char *what, uint64_t done, uint64_t total);
	void *pctx;
} km_demo_opts;

/* Showcase keys (features/, feature-groups/, datasets/, models/,
 * inference/) with versions in several states, a few dozen protected
 * assets, demo users — then the extras, in large transactions. */
km_status km_demo_fill(km_ctx *ctx, const km_demo_opts *o, km_err *e);

#endif
