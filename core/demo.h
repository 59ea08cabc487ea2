/*
 * demo.h — demo content, made through the public core API only (so the
 * demo's audit log is exactly what real use would produce).
 */
#ifndef KM_DEMO_H
#define KM_DEMO_H

#include "keyward.h"
#include "anomaly.h"

typedef struct km_demo_opts {
	uint64_t extra_keys;    /* generated keys beyond the showcase ones */
	uint64_t extra_events;  /* approximate audit events to add (bulk asset
	                           registrations, each one event) */
	void (*progress)(void *c, const char *what, uint64_t done, uint64_t total);
	void *pctx;
} km_demo_opts;

/* The demo's history is backdated: a timeline that starts
 * KM_DEMO_HISTORY_DAYS before `present`, which km_demo_fill moves forward
 * to the present as the story unfolds (key births, rotations months apart,
 * a compromise two days ago).  `init --demo` passes km_demo_clock with a
 * timeline to km_init_opts and km_open_opts; nothing else does but tests,
 * which choose the present (03:00 on a Monday, say) to build the same demo
 * at any hour.  Audit times never decrease, so the demo's events are in
 * order and end before real use.
 *
 * Every backdated event falls in working time by the anomaly scanner's
 * calendar (anomaly.h: working days and hours in its time zone; the
 * defaults at init, the deployment's "anomaly" config in km_demo_fill): a
 * day of the story that is not a working day moves back to the working day
 * before it, and the steps of one day are spread over its morning and
 * early afternoon, at minutes derived from their order (no randomness: the
 * same present gives the same history).  So the scanner's findings on the
 * demo are the anomalies it plants on purpose (docs/audit.md, "The demo's
 * anomalies"), whatever hour init ran at. */
#define KM_DEMO_HISTORY_DAYS 240
typedef struct km_demo_timeline {
	int64_t now;       /* the demo clock's reading */
	int64_t present;   /* the real time the history counts back from */
	km_anomaly_config calendar; /* working days and hours to keep to */
	int64_t day;       /* local day number (days since 1970-01-01) of now */
	unsigned steps;    /* moves so far: the spread of a day's steps */
} km_demo_timeline;
/* A timeline ending at `present` (km_now() for a real init), on the
 * scanner's default calendar; the clock reads the history's first working
 * morning. */
void km_demo_timeline_start(km_demo_timeline *t, int64_t present);
int64_t km_demo_clock(void *timeline);

/* The demo's people's step-up prompt (a km_secret_prompt_fn): every
 * question answered with KM_DEMO_PASSPHRASE.  For sessions on a demo
 * deployment made by code (the fill's own people, tests). */
km_status km_demo_prompt(void *c, const char *question, char *buf, size_t cap, km_err *e);

/* Showcase keys (features/, feature-groups/, datasets/, models/,
 * inference/) with versions in several states, a few dozen protected
 * assets, demo users — then the extras, in large transactions. */
km_status km_demo_fill(km_ctx *ctx, const km_demo_opts *o, km_err *e);

#endif
