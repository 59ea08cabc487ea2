/*
 * authz.c — the policy table: which roles may perform which action.
 *
 * One row per action.  Keep this the only place that knows it; the
 * decision itself (with the audit of denials) is km_authorize().
 */
#include "authz.h"

#include <stdio.h>
#include <string.h>

#define R_ALL (KM_ROLE_ADMIN | KM_ROLE_OFFICER | KM_ROLE_APPROVER | KM_ROLE_AUDITOR | KM_ROLE_SERVICE)
#define R_STAFF (KM_ROLE_ADMIN | KM_ROLE_OFFICER | KM_ROLE_APPROVER | KM_ROLE_AUDITOR)

static const char *const action_names[KM_ACT_COUNT] = {
#define ACT_NAME(e, name) [e] = name,
	KM_ACTIONS(ACT_NAME)
#undef ACT_NAME
};

/* Separation of duties from the brief: administrators manage people, not
 * keys; services use keys in their scopes but never manage them or read the
 * audit log; auditors only read. */
#define CHANGE KM_POL_CHANGE
#define STEPUP (KM_POL_CHANGE | KM_POL_STEPUP)
#define SCOPED KM_POL_SCOPED

/* Step-up: key state changes, rotation, user and role changes always ask
 * for the passphrase (+ TOTP when enrolled); in a personal deployment every
 * change does, because the OS login does not tell its people apart.  Reads
 * and routine use (protect, unprotect, listings) never do.  Recording a
 * verification is bookkeeping of a read, not a change. */
static const struct {
	unsigned roles;
	unsigned flags;
} policy[KM_ACT_COUNT] = {
	[KM_ACT_STATUS] = {R_ALL, 0},
	[KM_ACT_KEY_READ] = {R_STAFF, 0},
	[KM_ACT_KEY_CREATE] = {KM_ROLE_OFFICER, CHANGE},
	[KM_ACT_KEY_TAG] = {KM_ROLE_OFFICER, CHANGE},
	[KM_ACT_KEY_ROTATE] = {KM_ROLE_OFFICER, STEPUP},
	[KM_ACT_KEY_STATE] = {KM_ROLE_OFFICER, STEPUP},
	[KM_ACT_PROTECT] = {KM_ROLE_OFFICER | KM_ROLE_SERVICE, SCOPED},
	[KM_ACT_UNPROTECT] = {KM_ROLE_OFFICER | KM_ROLE_SERVICE, SCOPED},
	[KM_ACT_ASSET_READ] = {KM_ROLE_OFFICER | KM_ROLE_APPROVER | KM_ROLE_AUDITOR | KM_ROLE_SERVICE, 0},
	[KM_ACT_AUDIT_READ] = {R_STAFF, 0},
	[KM_ACT_AUDIT_VERIFY] = {R_STAFF, 0},
	/* Scanning for anomalies appends findings, but is a reading of the
	 * log, like verification: any staff role. */
	[KM_ACT_AUDIT_SCAN] = {R_STAFF, 0},
	[KM_ACT_USER_READ] = {KM_ROLE_ADMIN | KM_ROLE_AUDITOR, 0},
	[KM_ACT_USER_ADD] = {KM_ROLE_ADMIN, STEPUP},
	[KM_ACT_USER_PASSWD] = {R_ALL, STEPUP},
	[KM_ACT_USER_TOTP] = {R_ALL, STEPUP},
	[KM_ACT_USER_LOCK] = {KM_ROLE_ADMIN, STEPUP},
	[KM_ACT_USER_UNLOCK] = {KM_ROLE_ADMIN, STEPUP},
	/* Opening a request for a role grant or revoke; the change itself
	 * waits for a second administrator's signature (request.h). */
	[KM_ACT_USER_ROLE] = {KM_ROLE_ADMIN, STEPUP},
	/* Compromise takes effect at once: any officer, with step-up. */
	[KM_ACT_KEY_COMPROMISE] = {KM_ROLE_OFFICER, STEPUP},
	[KM_ACT_KEY_DESTROY] = {KM_ROLE_OFFICER, STEPUP},
	/* Decrypting under a compromised version: explicit and audited. */
	[KM_ACT_UNPROTECT_OVERRIDE] = {KM_ROLE_OFFICER | KM_ROLE_SERVICE, STEPUP | SCOPED},
	[KM_ACT_POLICY_READ] = {R_STAFF, 0},
	/* A policy change is a request; global policy is the admin's. */
	[KM_ACT_POLICY_SET] = {KM_ROLE_OFFICER | KM_ROLE_ADMIN, STEPUP},
	[KM_ACT_REQUEST_READ] = {R_STAFF, 0},
	/* Approvals are signatures made with the person's own key, so they
	 * always unlock it: step-up in every mode. */
	[KM_ACT_REQUEST_APPROVE] = {KM_ROLE_APPROVER | KM_ROLE_ADMIN, STEPUP | SCOPED},
	[KM_ACT_REQUEST_REJECT] = {KM_ROLE_APPROVER | KM_ROLE_ADMIN, STEPUP | SCOPED},
	[KM_ACT_REQUEST_EXECUTE] = {KM_ROLE_OFFICER | KM_ROLE_ADMIN, STEPUP},
	[KM_ACT_REQUEST_CANCEL] = {KM_ROLE_OFFICER | KM_ROLE_ADMIN, CHANGE},
	/* The scheduler: opens requests for due keys and executes approved
	 * ones; the quorum's signatures are the authority, so no step-up
	 * beyond the personal-mode passphrase. */
	[KM_ACT_ROTATE_DUE] = {KM_ROLE_OFFICER, CHANGE},
	[KM_ACT_JOB_READ] = {R_STAFF, 0},
	[KM_ACT_JOB_RUN] = {KM_ROLE_OFFICER, CHANGE},
	/* Lineage: the graph names datasets and models but holds no key
	 * material, so every member of staff may read it; feeding it is the
	 * officers' (who run pipelines) and the administrators' (who wire the
	 * deployment to a lineage server). */
	[KM_ACT_LINEAGE_READ] = {R_STAFF, 0},
	[KM_ACT_LINEAGE_IMPORT] = {KM_ROLE_OFFICER | KM_ROLE_ADMIN, CHANGE},
	/* Checkpoints and proofs are reads (KM_ACT_AUDIT_READ); an export
	 * takes the whole evidence off the host in one go, which is the
	 * auditors' job (and the administrators', who wire up collection).
	 * Officers, whose actions the log holds, and approvers read it in
	 * place; no step-up: nothing changes. */
	[KM_ACT_AUDIT_EXPORT] = {KM_ROLE_AUDITOR | KM_ROLE_ADMIN, 0},
	/* Forwarding reads the log out to its configured sinks and moves only
	 * their cursors: staff, and the service account a systemd unit runs
	 * as; no step-up, or cron could not run it. */
	[KM_ACT_AUDIT_FORWARD] = {R_STAFF | KM_ROLE_SERVICE, 0},
	/* An auditor report (report.h) gathers the log, the inventory and the
	 * approvals for one period: the auditors' reading, and the officers'
	 * and administrators' who answer to them.  Approvers and services have
	 * no use for it. */
	[KM_ACT_REPORT_READ] = {KM_ROLE_AUDITOR | KM_ROLE_ADMIN | KM_ROLE_OFFICER, 0},
};

static const struct {
	unsigned bit;
	const char *name;
} roles[] = {
#define ROLE_ROW(e, bit, name) {e, name},
	KM_ROLES(ROLE_ROW)
#undef ROLE_ROW
};

/* Pairs of roles one person must never hold together. */
static const struct {
	unsigned a, b;
} exclusive[] = {
	{KM_ROLE_ADMIN, KM_ROLE_OFFICER},
	{KM_ROLE_ADMIN, KM_ROLE_SERVICE},
	{KM_ROLE_AUDITOR, KM_ROLE_SERVICE},
};

const char *km_action_name(km_action a)
{
	return (unsigned)a < KM_ACT_COUNT ? action_names[a] : "unknown";
}

int km_policy_allows(unsigned r, km_action a)
{
	return (unsigned)a < KM_ACT_COUNT && (policy[a].roles & r) != 0;
}

unsigned km_policy_flags(km_action a)
{
	return (unsigned)a < KM_ACT_COUNT ? policy[a].flags : 0;
}

int km_scope_contains(const char *scopes, const char *key_name)
{
	const char *p = scopes ? scopes : "";
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n > 0 && strncmp(key_name, p, n) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

km_status km_scopes_validate(const char *scopes, km_err *e)
{
	const char *p = scopes ? scopes : "";
	if (!*p)
		return km_fail(e, KM_EINVAL, "no scope given: name key-name prefixes such as features/");
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n > 128)
			return km_fail(e, KM_EINVAL, "scope %zu of \"%s\" must be 1 to 128 characters",
			               (size_t)(p - scopes) + 1, scopes);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
			    !strchr("._-/", c))
				return km_fail(e, KM_EINVAL, "scope \"%.*s\": character %zu is not allowed "
				               "(letters, digits, '.', '_', '-', '/')", (int)n, p, i + 1);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return KM_OK;
}

void km_roles_format(unsigned r, char *buf, size_t cap)
{
	size_t used = 0;
	if (cap == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < KM_ARRAY_LEN(roles); i++) {
		if (!(r & roles[i].bit))
			continue;
		int w = snprintf(buf + used, cap - used, "%s%s", used ? "," : "", roles[i].name);
		if (w < 0 || (size_t)w >= cap - used)
			return;
		used += (size_t)w;
	}
	if (used == 0)
		snprintf(buf, cap, "none");
}

void km_policy_roles_for(km_action a, char *buf, size_t cap)
{
	km_roles_format((unsigned)a < KM_ACT_COUNT ? policy[a].roles : 0, buf, cap);
}

km_status km_roles_parse(const char *list, unsigned *out, km_err *e)
{
	unsigned r = 0;
	const char *p = list ? list : "";
	while (*p) {
		size_t n = strcspn(p, ",");
		size_t i;
		for (i = 0; i < KM_ARRAY_LEN(roles); i++)
			if (strlen(roles[i].name) == n && strncmp(p, roles[i].name, n) == 0)
				break;
		if (i == KM_ARRAY_LEN(roles))
			return km_fail(e, KM_EUSAGE, "unknown role '%.*s'; roles are admin, officer, "
			               "approver, auditor, service", (int)n, p);
		r |= roles[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	if (r == 0)
		return km_fail(e, KM_EUSAGE, "no role given");
	*out = r;
	return KM_OK;
}

km_status km_roles_check_separation(unsigned r, km_err *e)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(exclusive); i++) {
		if ((r & exclusive[i].a) && (r & exclusive[i].b)) {
			char a[32], b[32];
			km_roles_format(exclusive[i].a, a, sizeof a);
			km_roles_format(exclusive[i].b, b, sizeof b);
			return km_fail(e, KM_EDENIED, "separation of duties: one user cannot be both %s and %s", a, b);
		}
	}
	return KM_OK;
}
