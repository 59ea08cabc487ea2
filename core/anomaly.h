/*
 * anomaly.h — anomaly detection over key use, from the audit log.
 *
 * A scan reads the events appended since the previous scan and applies six
 * rules (below).  Each finding is appended to the log itself as an event
 * with action "anomaly", through the one audit-append path (km_tx_audit),
 * with the sequence numbers of the events that evidence it; so anomalies
 * are signed, verified, forwarded and listed like any event.  The scan ends
 * with an "audit.scan" event whose details say how far it read
 * ("through"): that event is the durable cursor — in the hashed log, so a
 * cursor moved by hand is tamper-evident — and the next scan starts after
 * it.  Nothing runs at append time: the append path pays nothing
 * (docs/audit.md, "Anomaly detection", says why).
 *
 * The rules (thresholds from config.json "anomaly", km_anomaly_config):
 *   decrypt-spike   decrypts of one key, or by one actor, in one UTC hour
 *                   reach max(spike_min, spike_factor x the hourly mean of
 *                   the baseline_hours before it)
 *   first-use       an actor protects or decrypts under a key for the
 *                   first time (but for the actor who created the key)
 *   off-hours       key use outside the working hours and days, in the
 *                   configured time zone (IANA name, read from the
 *                   system's zoneinfo; one finding per actor and hour)
 *   mass-decrypt    one actor decrypts mass_assets distinct assets within
 *                   mass_window_seconds
 *   denial-burst    one actor is denied `denials` times within
 *                   denials_window_seconds
 *   version-use     a decrypt under a compromised version (the audited
 *                   override) or under a version that was decrypt-only
 *                   when it was used (one finding per actor, version, hour)
 * During the log's first learn_hours nothing is reported: every use is a
 * first use and no baseline exists yet.
 *
 * Each finding is raised once: rules over windows fire when the window
 * crosses its threshold with an event this scan read, so scanning in two
 * steps finds what one scan finds.
 *
 * Must never: change or remove an event; report from anything but the
 * log's events (and the version states, for version-use); run inside the
 * append path.
 */
#ifndef KM_ANOMALY_H
#define KM_ANOMALY_H

#include "keyward.h"

#include <jansson.h>
#include <stdint.h>

#define KM_ANOMALY_ACTION "anomaly"      /* the findings' events */
#define KM_ANOMALY_SCAN_ACTION "audit.scan" /* the cursor's events */
#define KM_ANOMALY_EVIDENCE_MAX 50       /* seqs listed per finding */

typedef struct km_anomaly_config {
	uint32_t spike_factor;       /* default 5 */
	uint32_t spike_min;          /* default 20 decrypts in the hour */
	uint32_t baseline_hours;     /* default 168 */
	uint32_t learn_hours;        /* default 24 */
	int first_use;               /* default 1 */
	int off_hours;               /* default 1 */
	int work_start_min;          /* minutes after local midnight, default 480 (08:00) */
	int work_end_min;            /* default 1080 (18:00), exclusive */
	unsigned work_days;          /* bit d = weekday d (0 Sunday); default Mon-Fri */
	char time_zone[64];          /* IANA name or "UTC", default "UTC" */
	uint32_t mass_assets;        /* default 50 */
	uint32_t mass_window_s;      /* default 600 */
	uint32_t denials;            /* default 10 */
	uint32_t denials_window_s;   /* default 300 */
} km_anomaly_config;

void km_anomaly_config_defaults(km_anomaly_config *c);

/* The "anomaly" object of config.json over the defaults (obj NULL: the
 * defaults).  Members: spike_factor, spike_min, baseline_hours,
 * learn_hours, mass_assets, mass_window_seconds, denials,
 * denials_window_seconds (positive integers); first_use, off_hours
 * (booleans); working_hours ("08:00-18:00"); working_days ("mon-fri" or
 * "mon,tue,sat"); time_zone ("UTC", "Europe/Berlin": must exist).
 * KM_ECONFIG naming the member ("anomaly.working_hours must be HH:MM-HH:MM
 * ...") for an unknown member, a wrong type or a bad value. */
km_status km_anomaly_config_parse(const json_t *obj, km_anomaly_config *c, km_err *e);

/* The offset from UTC, in seconds, of time zone `tz` at Unix time t
 * (`tz` as in the config; "UTC" is 0).  KM_ECONFIG if the zone is unknown.
 * Reads /usr/share/zoneinfo (TZif); past its last transition the last
 * offset holds. */
km_status km_anomaly_tz_offset(const char *tz, int64_t t, int32_t *offset, km_err *e);

typedef struct km_anomaly_scan_result {
	uint64_t from;       /* first seq read (0: nothing new) */
	uint64_t through;    /* last seq read: the new cursor */
	uint64_t events;     /* events read */
	uint64_t anomalies;  /* findings appended */
} km_anomaly_scan_result;

/* Scan the events after the cursor up to the log's end as it is when the
 * scan starts, in batches (one transaction each: its findings and its
 * audit.scan event).  Authorised as audit.scan (staff roles).  Nothing new:
 * KM_OK, r->events 0, and nothing is appended. */
km_status km_anomaly_scan(km_ctx *ctx, km_anomaly_scan_result *r, km_err *e);

/* The cursor: the seq the last scan read through (0: never scanned).
 * Authorised as audit.read. */
km_status km_anomaly_cursor(km_ctx *ctx, uint64_t *through, km_err *e);

/* The number of anomaly events in the log (the status bar's count).
 * Authorised as audit.read. */
km_status km_anomaly_count(km_ctx *ctx, uint64_t *n, km_err *e);

#endif
