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

/* The demo's history is backdated: a timeline that starts
 * KM_DEMO_HISTORY_DAYS ago, which km_demo_fill moves forward to the present
 * as the story unfolds (key births, rotations months apart, a compromise
 * two days ago).  `init --demo` passes km_demo_clock with a timeline to
 * km_init_opts and km_open_opts; nothing else does.  Audit times never
 * decrease, so the demo's events are in order and end before real use. */
#define KM_DEMO_HISTORY_DAYS 240
typedef struct km_demo_timeline {
	int64_t now;
} km_demo_timeline;
void km_demo_timeline_start(km_demo_timeline *t);
int64_t km_demo_clock(void *timeline);

/* Showcase keys (features/, feature-groups/, datasets/, models/,
 * inference/) with versions in several states, a few dozen protected
 * assets, demo users — then the extras, in large transactions. */
km_status km_demo_fill(km_ctx *ctx, const km_demo_opts *o, km_err *e);

#endif
