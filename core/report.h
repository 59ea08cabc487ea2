/*
 * report.h — the auditor report: one period of the log, the key inventory
 * and the approvals, tied to the controls they evidence (docs/audit.md,
 * "Reports for auditors").
 *
 * The report is one JSON document; the CLI renders it as JSON, CSV or a
 * self-contained HTML page from that document only, so every form holds
 * the same facts.  Sections:
 *   keys          the inventory now: state, version, cryptoperiod (the
 *                 effective policy's cadence), due and overdue
 *   versions      every key version with its state and life-cycle times
 *   rotations     rotations executed in the period, each against the
 *                 cryptoperiod the previous version had (within_policy)
 *   overdue       keys past their cryptoperiod now (schedule.h)
 *   approvals     requests opened in the period, with every signer, each
 *                 signature checked, and the request verified as a whole
 *                 (km_request_verify)
 *   compromises, destructions   the events in the period
 *   access_by_actor, access_by_key   key use (protect, unprotect,
 *                 override) and denials, counted from the entries the
 *                 verification proves, in its pass (so, with a damaged
 *                 log, only up to the first bad entry)
 *   anomalies     events whose action is "anomaly" (or starts with it),
 *                 with their rule, subject and evidence
 *   events_per_day  counted as key use is
 *   verification  a full audit_verify now, and the newest checkpoint;
 *                 counts_from says in words what the counts rest on,
 *                 counted_entries how many entries they saw
 *   controls      PCI DSS v4 3.6.1 and 3.7.1-3.7.9, NIST SP 800-57
 *                 cryptoperiod and state rules, each with the events of
 *                 the period that evidence it (at most
 *                 KM_REPORT_CITED_MAX cited per control) or why events
 *                 cannot evidence it
 *   proofs        an RFC 9162 inclusion proof of every cited event in the
 *                 newest checkpoint (hex hashes, leaf-most first)
 *
 * Redaction: as the lineage reports (pseudonym.h).  A reader without
 * need-to-know (neither officer nor administrator), or a report rendered
 * for such a role (--role), sees people's names (actors, requesters,
 * signers, user objects) and key owners as stable pseudonyms, and no free
 * text (reasons); key names, versions, states, times and hashes stay.
 *
 * Authorisation: KM_ACT_REPORT_READ ("report.read"; auditors, officers,
 * administrators), recorded as a report.read event when it succeeds,
 * after the checkpoint it cites.  The verification inside is recorded as
 * an audit.verify event of its own.
 */
#ifndef KM_REPORT_H
#define KM_REPORT_H

#include "keyward.h"
#include "audit_types.h"

#include <jansson.h>
#include <stdint.h>

#define KM_REPORT_CITED_MAX 5        /* events cited (and proven) per control */
#define KM_REPORT_ROWS_MAX 10000     /* rows per event-list section */

/* The phases of a report, in the order they run.  Rendering is the front
 * end's (the document is rendered outside the core); it reports it through
 * the same callback so one progress display covers the whole report. */
typedef enum km_report_phase {
	KM_REPORT_AGGREGATES,            /* inventory, life cycle, approvals, anomalies */
	KM_REPORT_VERIFICATION,          /* the log verified, key use and per day counted
	                                  * in the same pass (done/total: entries) */
	KM_REPORT_PROOFS,                /* inclusion proofs of the cited events */
	KM_REPORT_RENDERING,             /* JSON, CSV or HTML written (the front end's) */
	KM_REPORT_PHASES
} km_report_phase;

/* Progress of one phase: done of total units (total 0: unknown yet).
 * Called from the thread running km_report, never more than a few hundred
 * times per report; a nonzero return cancels the report, which then
 * returns KM_EBUSY ("report cancelled"), recorded as any failure is: a
 * report.read event with outcome "error" and that message. */
typedef int (*km_report_progress_fn)(void *pctx, km_report_phase phase, uint64_t done, uint64_t total);

/* "aggregates", "verification", "proofs", "rendering". */
const char *km_report_phase_name(km_report_phase p);

typedef struct km_report_opts {
	int64_t from_ms, to_ms;          /* [from, to) in Unix ms; 0: log start / now */
	const char *role;                /* NULL: the caller's roles; else render as this
	                                  * role sees it (never more than the caller sees) */
	km_report_progress_fn progress;  /* may be NULL */
	void *pctx;
} km_report_opts;

/* The report as a JSON document (*out, new reference).  KM_EUSAGE names a
 * bad period or role; KM_EDENIED for roles without report.read; KM_EBUSY
 * when the progress callback cancelled it. */
km_status km_report(km_ctx *ctx, const km_report_opts *o, json_t **out, km_err *e);

/* Parse --from / --to: RFC 3339 date-time, or a bare date (midnight UTC;
 * as an end, the end of that day).  KM_EUSAGE naming the option. */
km_status km_report_time_parse(const char *opt, const char *s, int is_end, int64_t *ms, km_err *e);

#endif
