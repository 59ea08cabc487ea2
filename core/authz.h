/*
 * authz.h — roles, actions and the single authorisation decision.
 *
 * Every core entry point that reads or changes the deployment calls
 * km_authorize() (keyward.h) with one of these actions before it touches
 * anything.  The policy is the table in authz.c: action -> roles allowed.
 * A denial is itself audited.
 */
#ifndef KM_AUTHZ_H
#define KM_AUTHZ_H

#include "km.h"

/* X(enum, bit, name) */
#define KM_ROLES(X)                    \
	X(KM_ROLE_ADMIN,    0, "admin")    \
	X(KM_ROLE_OFFICER,  1, "officer")  \
	X(KM_ROLE_APPROVER, 2, "approver") \
	X(KM_ROLE_AUDITOR,  3, "auditor")  \
	X(KM_ROLE_SERVICE,  4, "service")

enum {
#define ROLE_ENUM(e, bit, name) e = 1u << bit,
	KM_ROLES(ROLE_ENUM)
#undef ROLE_ENUM
};

/* X(enum, name) — the name is what the audit log records. */
#define KM_ACTIONS(X)                       \
	X(KM_ACT_STATUS,       "status")        \
	X(KM_ACT_KEY_READ,     "key.read")      \
	X(KM_ACT_KEY_CREATE,   "key.create")    \
	X(KM_ACT_KEY_TAG,      "key.tag")       \
	X(KM_ACT_KEY_ROTATE,   "key.rotate")    \
	X(KM_ACT_KEY_STATE,    "key.state")     \
	X(KM_ACT_PROTECT,      "protect")       \
	X(KM_ACT_UNPROTECT,    "unprotect")     \
	X(KM_ACT_ASSET_READ,   "asset.read")    \
	X(KM_ACT_AUDIT_READ,   "audit.read")    \
	X(KM_ACT_AUDIT_VERIFY, "audit.verify")  \
	X(KM_ACT_USER_READ,    "user.read")     \
	X(KM_ACT_USER_ADD,     "user.add")      \
	X(KM_ACT_USER_PASSWD,  "user.passwd")   \
	X(KM_ACT_USER_TOTP,    "user.totp")     \
	X(KM_ACT_USER_LOCK,    "user.lock")     \
	X(KM_ACT_USER_UNLOCK,  "user.unlock")   \
	X(KM_ACT_USER_ROLE,    "user.role")     \
	X(KM_ACT_KEY_COMPROMISE, "key.compromise") \
	X(KM_ACT_KEY_DESTROY,  "key.destroy")   \
	X(KM_ACT_UNPROTECT_OVERRIDE, "unprotect.override") \
	X(KM_ACT_POLICY_READ,  "policy.read")   \
	X(KM_ACT_POLICY_SET,   "policy.set")    \
	X(KM_ACT_REQUEST_READ, "request.read")  \
	X(KM_ACT_REQUEST_APPROVE, "request.approve") \
	X(KM_ACT_REQUEST_REJECT,  "request.reject")  \
	X(KM_ACT_REQUEST_EXECUTE, "request.execute") \
	X(KM_ACT_REQUEST_CANCEL,  "request.cancel")  \
	X(KM_ACT_ROTATE_DUE,   "rotate.due")    \
	X(KM_ACT_JOB_READ,     "job.read")      \
	X(KM_ACT_JOB_RUN,      "job.run")       \
	X(KM_ACT_LINEAGE_READ, "lineage.read")  \
	X(KM_ACT_LINEAGE_IMPORT, "lineage.import") \
	X(KM_ACT_AUDIT_EXPORT, "audit.export") \
	X(KM_ACT_AUDIT_FORWARD, "audit.forward") \
	X(KM_ACT_AUDIT_SCAN,   "audit.scan") \
	X(KM_ACT_REPORT_READ,  "report.read")

typedef enum km_action {
#define ACT_ENUM(e, name) e,
	KM_ACTIONS(ACT_ENUM)
#undef ACT_ENUM
	KM_ACT_COUNT
} km_action;

const char *km_action_name(km_action a);

/* Role bit set <-> "officer,auditor". */
km_status km_roles_parse(const char *list, unsigned *roles, km_err *e);
void km_roles_format(unsigned roles, char *buf, size_t cap);

/* Separation of duties: admin excludes officer and service. */
km_status km_roles_check_separation(unsigned roles, km_err *e);

/* The policy: 1 if any of `roles` may perform `a`. */
int km_policy_allows(unsigned roles, km_action a);

/* What else the policy asks of an action, beside a role. */
enum {
	KM_POL_CHANGE = 1u << 0, /* changes the deployment: step-up in personal mode */
	KM_POL_STEPUP = 1u << 1, /* step-up (passphrase, + TOTP) in every mode */
	KM_POL_SCOPED = 1u << 2, /* the object's key must lie in the user's scopes */
};
unsigned km_policy_flags(km_action a);

/* Does `key_name` lie in `scopes` (comma-separated key-name prefixes, e.g.
 * "features/,models/fraud")?  An empty list contains nothing. */
int km_scope_contains(const char *scopes, const char *key_name);

/* Scopes as given by a person: a comma-separated list of key-name
 * prefixes, each 1..128 of the key-name characters.  KM_EINVAL naming the
 * bad entry. */
km_status km_scopes_validate(const char *scopes, km_err *e);

/* Roles that may perform `a`, formatted, for denial messages. */
void km_policy_roles_for(km_action a, char *buf, size_t cap);

#endif
