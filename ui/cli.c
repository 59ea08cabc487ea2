/*
 * cli.c — the command table, the argument parser, help, docs and dispatch.
 *
 * ui_cli_commands[] is the only list of commands.  Dispatch, `--help`
 * (global and per command) and the Markdown reference (docs/cli.md, made by
 * `keyward help markdown`) are all generated from it, and the exit-code
 * table from the core's km_status_name()/km_status_exit_code().
 */
#include "cli.h"
#include "prompt.h"
#include "kek.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* ---------------------------------------------------------------- table */

#define OPTS(...) ((const ui_opt[]){__VA_ARGS__, {NULL, 0, NULL, NULL}})

static const ui_cmd ui_cli_commands[] = {
	{"init", NULL, "", 0, 0,
	 "create a deployment: token, HSM keys, database, first user",
	 "A personal deployment (the default) lives in --home, KEYWARD_HOME or "
	 "~/.local/share/keyward; the OS user who owns it is its boundary.  With the "
	 "default SoftHSM2 module it gets a token directory of its own inside the "
	 "home.  init creates the token, the root AES-256 key, the EC P-256 "
	 "audit-signing key and the row-MAC key inside it, the catalogue, config.json "
	 "and the first user (you, or --user NAME) with a passphrase.  The user PIN "
	 "comes from --pin-file, KEYWARD_PIN or a prompt (asked twice); an SO PIN is "
	 "asked for only when an existing module's token must be created; the "
	 "passphrase from --passphrase-file, KEYWARD_PASSPHRASE or a prompt.  With "
	 "--demo, the PIN is random and written to HOME/demo-pin.DEMO-ONLY (mode "
	 "0600), demo people are enrolled with the passphrase keyward-demo, and demo "
	 "content is added - for demonstrations only.  With --system (as root, "
	 "through the installed set-user-ID keyward) the system deployment is made in "
	 KM_SYSTEM_HOME ", owned by the service account, with a random PIN kept "
	 "there; --admin names the first administrator's login.",
	 OPTS({"demo", 0, NULL, "demo deployment: generated PIN in a file, demo people and content"},
	      {"system", 0, NULL, "the system deployment (root only, set-user-ID keyward)"},
	      {"argon2-memory", 0, "KIB", "Argon2id memory for passphrases (default 65536 = 64 MiB)"},
	      {"argon2-passes", 0, "N", "Argon2id passes for passphrases (default 3)"},
	      {"admin", 0, "LOGIN", "with --system: the first administrator"},
	      {"pin-file", 0, "FILE", "read the user PIN from FILE (first non-comment line)"},
	      {"so-pin-file", 0, "FILE", "read the token's SO PIN from FILE"},
	      {"module", 0, "PATH", "PKCS#11 module (default " KM_DEFAULT_MODULE ")"},
	      {"token", 0, "LABEL|URI", "token label or RFC 7512 pkcs11: URI (default keyward)"},
	      {"softhsm2-conf", 0, "FILE", "SoftHSM2 configuration to record in config.json"}),
	 0, ui_cmd_init},
	{"status", NULL, "", 0, 0,
	 "show the deployment, the HSM token, counts and the audit log's state", NULL,
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_status},
	{"key", "create", "NAME", 1, 1,
	 "create a key-encryption key with version 1 active",
	 "NAME is a scope such as features/credit-risk or models/fraud-v4: "
	 "segments of [a-z0-9._-] separated by '/'.",
	 OPTS({"tag", 't', "K=V", "set a tag (repeatable)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_create},
	{"key", "list", "", 0, 0, "list keys",
	 "--filter TEXT matches names containing TEXT; --filter TAG:VALUE matches "
	 "keys whose tag TAG equals VALUE.  Sort columns: name, version, state, age, "
	 "assets, last-use.",
	 OPTS({"filter", 'f', "F", "name substring, or TAG:VALUE"},
	      {"sort", 's', "COL", "sort column (default name)"},
	      {"desc", 0, NULL, "sort descending"},
	      {"limit", 'n', "N", "at most N keys"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_list},
	{"key", "show", "NAME", 1, 1,
	 "show a key: tags, versions, and its latest audit events", NULL,
	 OPTS({"events", 0, "N", "how many recent audit events (default 10)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_show},
	{"key", "tag", "NAME K=V...", 2, -1,
	 "set tags on a key (K= removes tag K)", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_tag},
	{"key", "rotate", "NAME", 1, 1,
	 "open a request to rotate a key (new active version, the previous one decrypt-only)",
	 "Rotation needs the approval of someone other than you (request.h): this "
	 "prints the request's id; an approver signs it with `keyward request approve "
	 "ID`, and once its quorum is met `keyward request execute ID` carries it out.",
	 OPTS({"reason", 0, "TEXT", "why (recorded in the signed request)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_rotate},
	{"key", "state", "NAME VERSION STATE", 3, 3,
	 "open a request to change a key version's state",
	 "States: pending, active, decrypt-only, retired.  Only the transitions of "
	 "the life cycle are allowed; a refused change lists the allowed ones.  "
	 "Compromise, destruction and its cancellation have commands of their own.  "
	 "The change waits for its approvals (`keyward request ...`).",
	 OPTS({"reason", 0, "TEXT", "why (recorded in the signed request)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_state},
	{"key", "compromise", "NAME@VERSION", 1, 1,
	 "mark a version compromised at once and open its emergency rotation",
	 "Takes effect immediately (step-up): nothing more is encrypted under the "
	 "version and decrypting under it needs an explicit override.  An emergency "
	 "rotation that re-encrypts the affected assets opens as a request with the "
	 "policy's expedited quorum.",
	 OPTS({"reason", 0, "TEXT", "what happened (required)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_compromise},
	{"key", "destroy", "NAME@VERSION", 1, 1,
	 "open a request to destroy a retired or compromised version after its waiting period",
	 "Lists the assets that become unrecoverable, asks you to type the key name "
	 "(or --yes), then opens the request.  Executed, the version is "
	 "destroy-scheduled and stays cancellable (`key cancel-destroy`) until the "
	 "waiting period ends; `keyward rotate --due` then erases the material.",
	 OPTS({"reason", 0, "TEXT", "why (recorded in the signed request)"},
	      {"yes", 'y', NULL, "confirm without a terminal"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_destroy},
	{"key", "cancel-destroy", "NAME@VERSION", 1, 1,
	 "open a request to cancel a scheduled destruction (the version returns to retired)", NULL,
	 OPTS({"reason", 0, "TEXT", "why (recorded in the signed request)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_key_cancel_destroy},
	{"protect", NULL, "[IN [OUT]]", 0, 2,
	 "encrypt a file into a keyward envelope under a key's active version",
	 "IN and OUT default to stdin and stdout (\"-\" also means them).  With OUT, "
	 "the envelope is written to a temporary file beside it and renamed when "
	 "complete.  KIND is feature, dataset, model or inference-log.",
	 OPTS({"key", 'k', "NAME", "the key-encryption key (required)"},
	      {"asset", 'a', "KIND:NAME[@VERSION]", "what is being protected (required)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_protect},
	{"unprotect", NULL, "[IN [OUT]]", 0, 2,
	 "decrypt a keyward envelope",
	 "IN and OUT default to stdin and stdout (\"-\" also means them).  To OUT, "
	 "the plaintext is written to a temporary file and renamed only when every "
	 "segment authenticated; to stdout, only authenticated segments are written "
	 "and a truncated or damaged envelope ends with exit code 5.  An asset under "
	 "a compromised key version is refused unless --override-compromised is "
	 "given (officer or service, with step-up; audited as an override).",
	 OPTS({"override-compromised", 0, NULL, "decrypt even under a compromised version (audited)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_unprotect},
	{"asset", "list", "", 0, 0, "list protected assets, newest first", NULL,
	 OPTS({"key", 'k', "NAME", "only assets under this key"},
	      {"kind", 0, "K", "only assets of this kind"},
	      {"limit", 'n', "N", "at most N assets (default 100)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_asset_list},
	{"asset", "show", "ID", 1, 1, "show one asset", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_asset_show},
	{"audit", "verify", "", 0, 0,
	 "verify the audit log: every leaf, the root, every signed tree head",
	 "Prints the entries and tree heads checked, the newest signed tree head, "
	 "and \"intact\" - or the first bad entry and what is wrong with it (exit "
	 "code 5).  --entry SEQ checks one entry's inclusion in the newest signed "
	 "tree head.",
	 OPTS({"entry", 0, "SEQ", "verify one entry only"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_verify},
	{"audit", "tail", "", 0, 0, "show the latest audit events, oldest first",
	 "Each row shows what the event changed (old -> new state or version, the "
	 "asset's name, the reason); `audit show SEQ` prints one event in full.  "
	 "Session (login) events are left out unless --sessions is given.  "
	 "--since and --until take an RFC 3339 UTC time or a prefix of one "
	 "(2026-03, 2026-03-01T10:30), both inclusive.",
	 OPTS({"lines", 'n', "N", "how many events (default 20)"},
	      {"key", 0, "K", "only events about key K"},
	      {"object", 0, "O", "only events about exactly this object (e.g. user:bob)"},
	      {"actor", 0, "A", "only events by user A"},
	      {"action", 0, "A", "only this action (e.g. key.rotate)"},
	      {"outcome", 0, "O", "only this outcome (e.g. ok, denied)"},
	      {"since", 0, "TIME", "only events at or after TIME (UTC)"},
	      {"until", 0, "TIME", "only events at or before TIME (UTC)"},
	      {"sessions", 0, NULL, "include session (login) events"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_tail},
	{"audit", "show", "SEQ", 1, 1, "show one audit event with its canonical JSON", NULL,
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_show},
	{"audit", "pubkey", "", 0, 0,
	 "print the audit-signing public key (PEM) for outside verifiers", NULL, NULL,
	 UI_CMD_SESSION, ui_cmd_audit_pubkey},
	{"audit", "checkpoint", "", 0, 0,
	 "print the newest signed tree head as a C2SP checkpoint (signed note)",
	 "The note's text is the tlog-checkpoint body (origin, size, base64 root, a "
	 "time extension line); its signature line is the HSM audit key's ECDSA "
	 "P-256 signature, signed-note type 0x02, key ID from SHA-256 of the public "
	 "key (docs/audit.md).  --json adds the verifier key.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_checkpoint},
	{"audit", "prove", "[SEQ]", 0, 1,
	 "print an RFC 9162 inclusion proof (SEQ) or consistency proof (--from N --to M) as JSON",
	 "Inclusion: entry SEQ in the tree of the first --size N entries (default: the "
	 "newest signed tree head).  Consistency: from the tree of N entries to the tree "
	 "of M (default: the newest signed head).  Hashes are base64, leaf-most first; "
	 "each tree's signed checkpoint is included when a head was signed at its size.",
	 OPTS({"size", 0, "N", "inclusion in the tree of the first N entries"},
	      {"from", 0, "N", "consistency: the older tree size"},
	      {"to", 0, "M", "consistency: the newer tree size (default: newest signed head)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_prove},
	{"audit", "export", "DIR", 1, 1,
	 "export events, checkpoints, the public key and proofs for an offline check",
	 "Writes events.jsonl (the hashed event texts), checkpoint (newest signed head), "
	 "checkpoint.start (the head before the range), audit-pub.pem, audit-key.vkey "
	 "and proofs.json into DIR, which must be new or empty; DIR is mode 0700 and "
	 "appears complete or not at all.  Check it with docs/verify_audit_export.py.  "
	 "Auditors and administrators only; recorded as audit.export.",
	 OPTS({"since", 0, "T", "from the first event at or after T (RFC 3339 or a prefix: 2026-11-23)"},
	      {"from-size", 0, "N", "also prove consistency from a checkpoint of N entries you kept"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_export},
	{"audit", "forward", "", 0, 0,
	 "deliver the audit log to the sinks of config.json (webhook, JSON-lines file, witness)",
	 "Sends every sink the events after its cursor, in batches, and moves the "
	 "cursor once the sink acknowledged them (HTTP 2xx; file written and "
	 "fsync'ed): at least once, seq is the idempotency key, and a run killed "
	 "at any point re-sends at most its last batch.  A witness (C2SP "
	 "tlog-witness) gets the newest signed tree head with a consistency proof "
	 "from the size it last cosigned; its cosignature is verified with "
	 "verifier_key and kept, and a witness holding a larger or another tree "
	 "is an alarm (exit 5, an audit.witness event).  A 429, a 5xx, a timeout or a refused connection is "
	 "tried again after the Retry-After asked for or an exponential backoff with "
	 "jitter; other refusals stop that sink.  Without --follow it runs once (for "
	 "cron or a systemd timer) and exits 0 when every sink caught up; with "
	 "--follow it keeps delivering new events until SIGTERM or Ctrl-C, never "
	 "giving up on a batch (docs/keyward-forward.service).  Sinks are described "
	 "in docs/audit.md (Forwarding).",
	 OPTS({"follow", 'f', NULL, "keep delivering new events until stopped"},
	      {"sink", 0, "NAME", "only this sink"},
	      {"interval", 0, "MS", "with --follow: wait when caught up (default 1000)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_forward},
	{"audit", "scan", "", 0, 0, "scan the new audit events for anomalies (run it from cron)",
	 "Applies the anomaly rules (docs/audit.md) to the events appended since the "
	 "last scan; each finding becomes an `anomaly` event naming the events that "
	 "evidence it, and an `audit.scan` event records how far the scan read, so "
	 "the next scan starts there.  Thresholds: the \"anomaly\" object of "
	 "config.json.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_audit_scan},
	{"anomaly", "list", "", 0, 0, "list the anomalies found by `audit scan`, newest first",
	 "Each line: the anomaly event's seq and time, the rule, whom it is about, "
	 "what it touched, the evidence (seqs of the events behind it) and why.",
	 OPTS({"lines", 'n', "N", "how many (default 50)"},
	      {"rule", 0, "R", "only this rule (decrypt-spike, first-use, off-hours, mass-decrypt, "
	                      "denial-burst, version-use)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_anomaly_list},
	{"user", "list", "", 0, 0, "list keyward users and their roles", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_user_list},
	{"user", "add", "NAME", 1, 1, "enrol a user",
	 "Roles: admin, officer, approver, auditor, service.  Separation of duties: "
	 "admin cannot be combined with officer or service.  A service needs "
	 "--scope: the key-name prefixes it may protect and unprotect with.  The new "
	 "user's first passphrase comes from --new-passphrase-file, "
	 "KEYWARD_NEW_PASSPHRASE or a prompt (services get none unless a file is "
	 "given).  Needs your own passphrase (step-up).",
	 OPTS({"role", 'r', "R[,R]", "roles (required)"},
	      {"scope", 0, "P[,P]", "key-name prefixes, e.g. features/ (required for services)"},
	      {"new-passphrase-file", 0, "FILE", "the new user's first passphrase"},
	      {"reason", 0, "TEXT", "why (recorded in the signed request)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_user_add},
	{"user", "role", "grant|revoke NAME R[,R]", 3, 3,
	 "open a request to grant or revoke roles (a second administrator approves)",
	 "Nobody may change their own roles.  Separation of duties is checked when "
	 "the request opens and again when it executes.",
	 OPTS({"reason", 0, "TEXT", "why (recorded in the signed request)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_user_role},
	{"user", "passwd", "", 0, 0, "change your passphrase",
	 "Asks for your current passphrase (step-up), then the new one twice "
	 "(or --new-passphrase-file, KEYWARD_NEW_PASSPHRASE).  Your signing key stays "
	 "the same.",
	 OPTS({"new-passphrase-file", 0, "FILE", "the new passphrase"}),
	 UI_CMD_SESSION, ui_cmd_user_passwd},
	{"user", "totp", "enrol|disable [NAME]", 1, 2, "enrol or remove a TOTP second factor",
	 "enrol: makes a secret for your authenticator app (RFC 6238: SHA-1, 6 digits, "
	 "30 s) and shows it once; from then on every step-up also asks for a code "
	 "(KEYWARD_OTP or a prompt), and a code is good once.  disable: removes your "
	 "own, or (administrator) NAME's, e.g. for a lost device.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_user_totp},
	{"user", "lock", "NAME", 1, 1, "lock a user out (administrator)", NULL, NULL,
	 UI_CMD_SESSION, ui_cmd_user_lock},
	{"user", "unlock", "NAME", 1, 1,
	 "lift a lock, or a lockout after failed passphrases (administrator)", NULL, NULL,
	 UI_CMD_SESSION, ui_cmd_user_unlock},
	{"user", "pubkey", "[NAME]", 0, 1,
	 "print a user's Ed25519 signing public key (PEM) for openssl pkeyutl -verify", NULL, NULL,
	 UI_CMD_SESSION, ui_cmd_user_pubkey},
	{"request", "list", "", 0, 0, "list open requests (pending and approved), newest first",
	 "--inbox: only those you may sign now; --all: every request, decided ones too.",
	 OPTS({"inbox", 0, NULL, "only requests you may approve or reject now"},
	      {"all", 0, NULL, "every request, not only open ones"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_list},
	{"request", "show", "ID", 1, 1,
	 "show a request: what changes, affected assets, risk with its factors, signatures", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_show},
	{"request", "approve", "ID", 1, 1, "sign a request with your own key (passphrase, + TOTP)",
	 "Your Ed25519 key signs the SHA-256 digest of the request's canonical body "
	 "(docs/approvals.md).  Refused for your own request, a second signature, an "
	 "expired or decided request, and a role or scope that does not allow it.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_approve},
	{"request", "reject", "ID", 1, 1, "reject a request with a reason (one rejection vetoes it)", NULL,
	 OPTS({"reason", 0, "TEXT", "why (required)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_reject},
	{"request", "execute", "ID", 1, 1, "carry out an approved request",
	 "Every signature and every approver's role and scope are checked again now; "
	 "the change and its audit event commit together.  Of two executors one wins; "
	 "the other is told the request was executed (exit code 8).",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_execute},
	{"request", "cancel", "ID", 1, 1, "withdraw your own open request (administrators: any)", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_cancel},
	{"request", "verify", "ID", 1, 1,
	 "check a request's digest and every signature against the signers' keys and the audit log", NULL,
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_request_verify},
	{"request", "export", "ID DIR", 2, 2,
	 "write a request, its digest, signatures and public keys for an offline openssl check",
	 "DIR gets request.json, digest.bin, NAME.sig and NAME.pub.pem per approver, and "
	 "VERIFY.txt with the openssl commands (docs/approvals.md).",
	 NULL, UI_CMD_SESSION, ui_cmd_request_export},
	{"demo", NULL, "", 0, 0,
	 "add demo content (and scale content) to an existing deployment", NULL,
	 OPTS({"keys", 0, "N", "extra generated keys (default 0)"},
	      {"events", 0, "N", "approximate extra audit events (default 0)"}),
	 UI_CMD_SESSION, ui_cmd_demo},
	{"console", NULL, "", 0, 0,
	 "open the interactive console (also: keyward with no command)", NULL,
	 OPTS({"theme", 0, "NAME", "colour theme"}),
	 UI_CMD_SESSION, ui_cmd_console},
	{"policy", "show", "KEY", 1, 1,
	 "show a key's effective rotation policy: each field, its value and where it came from",
	 "Each field comes from the most specific policy that sets it: the key's own, "
	 "then the longest prefix covering it (\"features/\" covers features/x), then "
	 "the global policy, then the built-in default.  SOURCE names that policy's "
	 "scope, \"global\" or \"default\".  The key need not exist yet.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_policy_show},
	{"policy", "list", "", 0, 0, "list the stored rotation policies, global first", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_policy_list},
	{"policy", "set", "SCOPE", 1, 1,
	 "open a request to set the policy of a key, a prefix or the whole deployment",
	 "SCOPE is a key name, a prefix ending in '/' (features/), or global.  The "
	 "fields given replace the stored policy at SCOPE as a whole; fields it does not "
	 "set are inherited.  Fields: cadence_days (1-3650), usage_bound (encryptions "
	 "per version, 1-2147483648), transition_days (0-3650), deprecation_days "
	 "(0-3650), destroy_wait_days (1-365), reencrypt (0 rewrap, 1 re-encrypt), "
	 "quorum (1-16), expedited_quorum (1-16), require_totp (0/1), "
	 "request_ttl_hours (1-720).  A policy change is itself a request: this prints "
	 "its id, and the change applies when approvers have signed it and it is "
	 "executed.  The global policy is the administrator's; key and prefix "
	 "policies are the officers'.",
	 OPTS({"set", 0, "FIELD=VALUE", "a field of the policy (repeatable)"},
	      {"reason", 0, "TEXT", "why, shown to the approvers"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_policy_set},
	{"policy", "unset", "SCOPE", 1, 1,
	 "open a request to remove the policy stored at SCOPE (key, prefix/ or global)", NULL,
	 OPTS({"reason", 0, "TEXT", "why, shown to the approvers"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_policy_unset},
	{"schedule", NULL, "", 0, 0,
	 "list keys needing attention: compromised, overdue, due, near their usage bound",
	 "A key is due when its policy's cadence has passed since its current version "
	 "became active, or when that version has used 90% of its usage bound; "
	 "overdue past twice the cadence or at the bound.  Compromised versions still "
	 "wrapping assets, open requests and unfinished jobs are flagged too.  "
	 "Compromised keys come first, then overdue ones, then by due date.  --all "
	 "lists every key in the same order.",
	 OPTS({"all", 0, NULL, "every key, not only those needing attention"},
	      {"limit", 'n', "N", "at most N keys"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_schedule},
	{"rotate", NULL, "--due", 0, 0,
	 "for cron: open requests for due keys, execute approved ones, apply waiting periods",
	 "One run: expires requests past their expiry, executes approved requests, "
	 "resumes interrupted jobs, opens a rotation request for each due key that "
	 "has none, retires decrypt-only versions with no assets left once their "
	 "transition window has passed, and destroys versions whose destruction "
	 "waiting period has ended.  Each action is authorised and audited on its "
	 "own; one that fails does not stop the others.  --dry-run only reports.  "
	 "Prints one line per action (with --json one JSON object per line).  Exit "
	 "code 0 when every action succeeded, else the first failure's code.  "
	 "docs/rotation.md has a systemd timer for it.",
	 OPTS({"due", 0, NULL, "act on what is due (required)"},
	      {"dry-run", 0, NULL, "report what would be done, change nothing"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_rotate},
	{"job", "list", "", 0, 0, "list rewrap and re-encryption jobs (running, paused, queued, failed)",
	 "--all adds finished and cancelled jobs.  RATE and ETA are from each job's "
	 "last run.",
	 OPTS({"all", 'a', NULL, "every job, finished ones too"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_job_list},
	{"job", "show", "ID", 1, 1, "show one job: progress, rate, ETA, who runs it", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_job_show},
	{"job", "run", "ID", 1, 1, "run or resume a job until it is done or paused",
	 "Resumes from the job's cursor after a pause, a failure or a killed run; "
	 "an asset already moved is never moved twice.  If another process runs the "
	 "job, exits with the busy code naming it.  Progress goes to stderr: a bar on "
	 "a terminal, else one JSON line per second "
	 "({\"job\":..,\"done\":..,\"total\":..,\"rate\":..,\"eta_s\":..}).  Ctrl-C "
	 "pauses after the batch in flight.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_job_run},
	{"job", "pause", "ID", 1, 1, "pause a job (a running one stops after its batch)", NULL, NULL,
	 UI_CMD_SESSION, ui_cmd_job_pause},
	{"job", "cancel", "ID", 1, 1, "cancel a queued or paused job",
	 "Assets the job had not moved stay under their old version, decryptable "
	 "while that version allows it.", NULL,
	 UI_CMD_SESSION, ui_cmd_job_cancel},
	{"job", "unreachable", "ID", 1, 1,
	 "list the assets a re-encryption could not reach, with the reason", NULL, NULL,
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_job_unreachable},
	{"lineage", "import", "FILE|DIR|-", 1, 1,
	 "import OpenLineage run events (spec 2-0-2) into the lineage graph",
	 "FILE holds JSON lines (one event each) or one JSON array of events; DIR "
	 "is read file by file (*.json, *.jsonl, in name order); - is standard "
	 "input.  Every event is checked in full first; a bad one is named by file, "
	 "line and field, and then nothing of the import is written.  An event "
	 "imported before (same run id, eventType and eventTime) changes nothing.  "
	 "Datasets are joined to keyward assets by the lineage_mappings rules of "
	 "config.json; the others become dataset nodes of their own.  The import is "
	 "one audit event with its counts.",
	 NULL, UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_import},
	{"lineage", "pull", "URL", 1, 1,
	 "pull OpenLineage events from a Marquez-compatible HTTP API and import them",
	 "Reads URL/api/v1/events/lineage page by page (oldest first) and imports "
	 "everything as one import, exactly as `lineage import` does.  TLS is always "
	 "verified.  A 429 or 5xx answer, a timeout or a refused connection is tried "
	 "again, after the Retry-After the server asks for (up to 60 s) or an "
	 "exponential backoff; when the attempts run out nothing is imported.",
	 OPTS({"since", 0, "T", "only events after T (2026-11-30 or an RFC 3339 time)"},
	      {"timeout", 0, "SECONDS", "per request (default 30)"},
	      {"page-size", 0, "N", "events per request (default 100)"},
	      {"attempts", 0, "N", "tries per page (default 5)"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_pull},
	{"lineage", "impact", "KEY[@VERSION]", 1, 1,
	 "what a key version (or every version of a key) protects and everything downstream",
	 "Lists every asset the version protected up to the date, then every "
	 "dataset, feature, model, job and endpoint derived from them, with counts "
	 "by kind and, for each node, one shortest path from the key that explains "
	 "why it is there.  The first step out of an asset counts only if it was "
	 "seen while that version protected it, so data protected again under a "
	 "newer version after a rotation is not charged to the old one.  --as-of "
	 "takes an RFC 3339 time or a date (UTC) and shows the graph as it was "
	 "then.  Cycles are followed once and reported.",
	 OPTS({"as-of", 0, "T", "as it was at T (2026-11-30 or 2026-11-30T12:00:00Z)"},
	      {"redact", 0, NULL, "pseudonyms for dataset, job, namespace and owner names, whatever your roles"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_impact},
	{"lineage", "provenance", "MODEL@VERSION", 1, 1,
	 "every upstream input of a model version and the key version that protected it",
	 "MODEL is the model's OpenLineage dataset name or its keyward asset name.  "
	 "For each input: when it was consumed, the key version that protected it "
	 "then, that version's state now, the rotations of its key since, and the "
	 "requests behind that version (the rotation that made it, state changes, "
	 "rotations since) with their kind, state and approvers.  Roles without "
	 "need-to-know (neither officer nor admin), or --redact, see pseudonyms "
	 "for dataset, job, namespace and owner names.",
	 OPTS({"redact", 0, NULL, "pseudonyms for dataset, job, namespace and owner names, whatever your roles"}), UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_provenance},
	{"lineage", "report", "provenance|impact SUBJECT", 2, 2,
	 "a provenance or compromise-impact report, as JSON or self-contained HTML",
	 "SUBJECT is MODEL@VERSION (provenance) or KEY[@VERSION] (impact).  The "
	 "report carries the newest signed tree head and the sequence numbers of "
	 "the audit events it rests on; the HTML has no external assets and draws "
	 "the graph as inline SVG.  Roles without need-to-know (neither officer nor "
	 "admin), or --redact, get dataset, job, namespace and owner names replaced "
	 "by stable pseudonyms.",
	 OPTS({"format", 0, "json|html", "output format (default json)"},
	      {"as-of", 0, "T", "impact as it was at T"},
	      {"redact", 0, NULL, "pseudonyms for names, whatever your roles"}),
	 UI_CMD_SESSION, ui_cmd_lineage_report},
	{"report", NULL, "", 0, 0,
	 "an auditor report for a period: keys, rotations, approvals, access, anomalies, controls",
	 "Covers the period [--from, --to) (a bare --to date includes its day; default: "
	 "the whole log up to now): the key inventory with states and cryptoperiods, "
	 "rotations against policy and the overdue keys, approvals with their signers "
	 "and verified signatures, compromises and destructions, key use by actor and by "
	 "key, anomalies, a full verification of the log with the newest checkpoint, and "
	 "a control map tying PCI DSS v4 3.6.1 and 3.7.1-3.7.9 and the NIST SP 800-57 "
	 "cryptoperiod and state rules to the events that evidence them, each with its "
	 "RFC 9162 inclusion proof.  CSV has one header row per section (\"#section,...\"); "
	 "the HTML has no external assets and inline SVG charts.  Roles without "
	 "need-to-know (neither officer nor admin), or --role such a role, get people "
	 "and key owners as stable pseudonyms and no free text.  --out writes the file "
	 "atomically.  Auditors, officers and admins; recorded as report.read.",
	 OPTS({"from", 0, "T", "period start (RFC 3339 time or date)"},
	      {"to", 0, "T", "period end, excluded (a date: through that day)"},
	      {"format", 0, "json|csv|html", "output format (default json)"},
	      {"role", 0, "R", "render as role R sees it (never more than you see)"},
	      {"out", 'o', "FILE", "write to FILE (temp + rename) instead of stdout"}),
	 UI_CMD_SESSION, ui_cmd_report},
	{"lineage", "show", "NODE", 1, 1,
	 "one lineage node: kind, facets, edges in and out, protection",
	 "NODE is #ID, KIND:NAME[@VERSION] for a keyward asset, or NAME[@VERSION] "
	 "(an ambiguous name lists the candidates).  Roles without need-to-know, or "
	 "--redact, see pseudonyms for names and no facets.",
	 OPTS({"redact", 0, NULL, "pseudonyms for dataset, job, namespace and owner names, whatever your roles"}), UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_show},
	{"lineage", "export", "", 0, 0,
	 "the whole lineage graph as Graphviz DOT or JSON",
	 "Roles without need-to-know, or --redact, see pseudonyms for names.",
	 OPTS({"format", 0, "dot|json", "output format (default dot, json with --json)"},
	      {"redact", 0, NULL, "pseudonyms for dataset, job, namespace and owner names, whatever your roles"}),
	 UI_CMD_SESSION | UI_CMD_JSON, ui_cmd_lineage_export},
	{"help", NULL, "[COMMAND [SUB] | keys | markdown]", 0, 2,
	 "help on a command; `help keys`: console key bindings; `help markdown`: docs/cli.md",
	 NULL, NULL, 0, ui_cmd_help},
};

static const ui_opt ui_global_opts[] = {
	{"home", 0, "DIR", "deployment directory (default $KEYWARD_HOME, else $XDG_DATA_HOME/keyward)"},
	{"pin-file", 0, "FILE", "read the HSM user PIN from FILE (else KEYWARD_PIN, config, prompt)"},
	{"user", 'u', "NAME", "personal deployments: act as keyward user NAME (else KEYWARD_USER, "
	                      "else who ran init); changes ask for NAME's passphrase"},
	{"passphrase-file", 0, "FILE", "step-up: read your passphrase from FILE (else "
	                               "KEYWARD_PASSPHRASE, else a prompt)"},
	{"json", 0, NULL, "JSON output on listings and shows"},
	{"version", 0, NULL, "print the version"},
	{"help", 'h', NULL, "this help"},
	{NULL, 0, NULL, NULL},
};

/* Options every command has. */
static const ui_opt ui_help_opt = {"help", 'h', NULL, "help on this command"};
static const ui_opt ui_json_opt = {"json", 0, NULL, "JSON output"};

/* ---------------------------------------------------------------- parsing */

static const ui_opt *opt_find_long(const ui_opt *opts, const char *name, size_t len)
{
	for (size_t i = 0; opts && opts[i].name; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

static const ui_opt *opt_find_short(const ui_opt *opts, char c)
{
	for (size_t i = 0; opts && opts[i].name; i++)
		if (opts[i].short_name == c)
			return &opts[i];
	return NULL;
}

/* Look an option up in the command's own table, then the common ones. */
static const ui_opt *cmd_opt_long(const ui_cmd *c, const char *name, size_t len)
{
	const ui_opt *o = opt_find_long(c->opts, name, len);
	if (!o && strlen(ui_help_opt.name) == len && strncmp(name, ui_help_opt.name, len) == 0)
		o = &ui_help_opt;
	if (!o && (c->flags & UI_CMD_JSON) && strlen(ui_json_opt.name) == len &&
	    strncmp(name, ui_json_opt.name, len) == 0)
		o = &ui_json_opt;
	return o;
}

static const ui_opt *cmd_opt_short(const ui_cmd *c, char ch)
{
	const ui_opt *o = opt_find_short(c->opts, ch);
	if (!o && ch == ui_help_opt.short_name)
		o = &ui_help_opt;
	return o;
}

static void cmd_title(const ui_cmd *c, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");
}

/* Parse argv[0..argc) for command c: options anywhere, "--" ends them, a
 * lone "-" is positional.  a->opts and a->pos point into argv. */
static km_status args_parse(const ui_cmd *c, int argc, char **argv, ui_args *a, km_err *e)
{
	char title[64];
	cmd_title(c, title, sizeof title);
	memset(a, 0, sizeof *a);
	a->cmd = c;
	a->opts = calloc((size_t)argc + 1, sizeof *a->opts);
	a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
	if (!a->opts || !a->pos)
		return km_fail(e, KM_ENOMEM, "out of memory");
	int only_pos = 0;
	for (int i = 0; i < argc; i++) {
		char *s = argv[i];
		if (only_pos || s[0] != '-' || s[1] == '\0') {
			a->pos[a->npos++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_pos = 1;
			continue;
		}
		const ui_opt *o;
		const char *val = NULL;
		if (s[1] == '-') {
			const char *name = s + 2;
			const char *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			o = cmd_opt_long(c, name, len);
			if (!o)
				return km_fail(e, KM_EUSAGE, "%s: unknown option --%.*s", title,
				               (int)len, name);
			if (eq) {
				if (!o->arg)
					return km_fail(e, KM_EUSAGE, "%s: --%s takes no value", title, o->name);
				val = eq + 1;
			}
		} else {
			o = cmd_opt_short(c, s[1]);
			if (!o)
				return km_fail(e, KM_EUSAGE, "%s: unknown option -%c", title, s[1]);
			if (s[2] != '\0') {
				if (!o->arg)
					return km_fail(e, KM_EUSAGE, "%s: -%c takes no value", title, s[1]);
				val = s + 2;
			}
		}
		if (o->arg && !val) {
			if (i + 1 >= argc)
				return km_fail(e, KM_EUSAGE, "%s: --%s needs a value (%s)", title,
				               o->name, o->arg);
			val = argv[++i];
		}
		a->opts[a->nopts].opt = o;
		a->opts[a->nopts].val = val ? val : "";
		a->nopts++;
	}
	return KM_OK;
}

static void args_free(ui_args *a)
{
	free(a->opts);
	free(a->pos);
	a->opts = NULL;
	a->pos = NULL;
}

const char *ui_arg(const ui_args *a, const char *name)
{
	const char *v = NULL;
	for (size_t i = 0; i < a->nopts; i++)
		if (strcmp(a->opts[i].opt->name, name) == 0)
			v = a->opts[i].val;
	return v;
}

int ui_arg_flag(const ui_args *a, const char *name)
{
	return ui_arg(a, name) != NULL;
}

size_t ui_arg_all(const ui_args *a, const char *name, const char **out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < a->nopts; i++)
		if (strcmp(a->opts[i].opt->name, name) == 0) {
			if (n < cap)
				out[n] = a->opts[i].val;
			n++;
		}
	return n;
}

km_status ui_parse_u64(const char *s, const char *what, uint64_t min, uint64_t max,
                       uint64_t *out, km_err *e)
{
	char *end = NULL;
	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		return km_fail(e, KM_EUSAGE, "%s must be a number, not \"%s\"", what, s ? s : "");
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return km_fail(e, KM_EUSAGE, "%s must be a number, not \"%s\"", what, s);
	if (v < min || v > max)
		return km_fail(e, KM_EUSAGE, "%s must be between %" PRIu64 " and %" PRIu64, what,
		               min, max);
	*out = (uint64_t)v;
	return KM_OK;
}

km_status ui_arg_u64(const ui_args *a, const char *name, uint64_t def, uint64_t min,
                     uint64_t max, uint64_t *out, km_err *e)
{
	const char *v = ui_arg(a, name);
	if (!v) {
		*out = def;
		return KM_OK;
	}
	char what[64];
	snprintf(what, sizeof what, "--%s", name);
	return ui_parse_u64(v, what, min, max, out, e);
}

/* ---------------------------------------------------------------- help */

static void opt_synopsis(const ui_opt *o, char *buf, size_t cap)
{
	if (o->short_name)
		snprintf(buf, cap, "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
		         o->arg ? o->arg : "");
	else
		snprintf(buf, cap, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

static void cmd_usage(const ui_cmd *c, char *buf, size_t cap)
{
	char title[64];
	cmd_title(c, title, sizeof title);
	size_t n = (size_t)snprintf(buf, cap, "keyward %s", title);
	for (size_t i = 0; c->opts && c->opts[i].name && n < cap; i++) {
		const ui_opt *o = &c->opts[i];
		n += (size_t)snprintf(buf + n, cap - n, " [--%s%s%s]", o->name, o->arg ? " " : "",
		                      o->arg ? o->arg : "");
	}
	if (c->args[0] && n < cap)
		snprintf(buf + n, cap - n, " %s", c->args);
}

/* Word-wrap text at width, every line indented. */
static void print_wrapped(FILE *f, const char *text, int indent, int width)
{
	int col = 0;
	const char *p = text;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t w = strcspn(p, " ");
		if (w == 0)
			break;
		if (col > indent && col + 1 + (int)w > width) {
			fputc('\n', f);
			col = 0;
		}
		if (col == 0) {
			fprintf(f, "%*s", indent, "");
			col = indent;
		} else {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)w, p);
		col += (int)w;
		p += w;
	}
	if (col)
		fputc('\n', f);
}

static void print_opts(FILE *f, const ui_opt *opts, int with_common, unsigned flags)
{
	char syn[96];
	for (size_t i = 0; opts && opts[i].name; i++) {
		opt_synopsis(&opts[i], syn, sizeof syn);
		fprintf(f, "  %-28s %s\n", syn, opts[i].help);
	}
	if (with_common) {
		if (flags & UI_CMD_JSON) {
			opt_synopsis(&ui_json_opt, syn, sizeof syn);
			fprintf(f, "  %-28s %s\n", syn, ui_json_opt.help);
		}
		opt_synopsis(&ui_help_opt, syn, sizeof syn);
		fprintf(f, "  %-28s %s\n", syn, ui_help_opt.help);
	}
}

/* Exit codes grouped: one row per code, the statuses that map to it. */
typedef void (*exit_row_fn)(FILE *f, int code, const char *names);

static void exit_codes_each(FILE *f, exit_row_fn row)
{
	int maxcode = 2; /* usage errors are 2 even without a status row */
	for (int s = 0; s < KM_STATUS_COUNT; s++)
		if (km_status_exit_code((km_status)s) > maxcode)
			maxcode = km_status_exit_code((km_status)s);
	for (int code = 0; code <= maxcode; code++) {
		char names[256] = "";
		size_t n = 0;
		for (int s = 0; s < KM_STATUS_COUNT; s++) {
			if (km_status_exit_code((km_status)s) != code)
				continue;
			n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "",
			                      km_status_name((km_status)s));
			if (n >= sizeof names)
				break;
		}
		if (names[0])
			row(f, code, names);
	}
}

static void exit_row_text(FILE *f, int code, const char *names)
{
	fprintf(f, "  %-3d %s\n", code, names);
}

static void exit_row_md(FILE *f, int code, const char *names)
{
	fprintf(f, "| %d | %s |\n", code, names);
}

static void help_global(FILE *f)
{
	fprintf(f, "keyward %s - HSM-rooted key management for ML data and models\n\n",
	        KEYWARD_VERSION);
	fprintf(f, "Usage: keyward [GLOBAL OPTIONS] COMMAND [ARGS]\n"
	           "       keyward [GLOBAL OPTIONS]            open the console\n\n");
	fprintf(f, "Global options (before the command):\n");
	print_opts(f, ui_global_opts, 0, 0);
	fprintf(f, "\nCommands:\n");
	for (size_t i = 0; i < KM_ARRAY_LEN(ui_cli_commands); i++) {
		const ui_cmd *c = &ui_cli_commands[i];
		if (c->flags & UI_CMD_HIDDEN)
			continue;
		char title[64];
		cmd_title(c, title, sizeof title);
		fprintf(f, "  %-16s %s\n", title, c->summary);
	}
	fprintf(f, "\n`keyward COMMAND --help` shows a command's options.\n"
	           "Messages go to stderr, data to stdout.\n\nExit codes:\n");
	exit_codes_each(f, exit_row_text);
	fprintf(f, "\nEnvironment: KEYWARD_HOME, KEYWARD_PIN, KEYWARD_SO_PIN (init), "
	           "KEYWARD_PKCS11_MODULE, KEYWARD_TOKEN, KEYWARD_DB.\n");
}

static void help_command(FILE *f, const ui_cmd *c)
{
	char usage[512];
	cmd_usage(c, usage, sizeof usage);
	fprintf(f, "Usage: %s\n\n", usage);
	print_wrapped(f, c->summary, 2, 78);
	if (c->help) {
		fputc('\n', f);
		print_wrapped(f, c->help, 2, 78);
	}
	fprintf(f, "\nOptions:\n");
	print_opts(f, c->opts, 1, c->flags);
}

/* Help for a group ("keyward key"): its subcommands. */
static void help_group(FILE *f, const char *name)
{
	fprintf(f, "Usage: keyward %s SUBCOMMAND ...\n\nSubcommands:\n", name);
	for (size_t i = 0; i < KM_ARRAY_LEN(ui_cli_commands); i++) {
		const ui_cmd *c = &ui_cli_commands[i];
		if (strcmp(c->name, name) == 0 && c->sub && !(c->flags & UI_CMD_HIDDEN))
			fprintf(f, "  %-10s %s\n", c->sub, c->summary);
	}
	fprintf(f, "\n`keyward %s SUBCOMMAND --help` shows its options.\n", name);
}

/* A Markdown table cell: '|' would end the cell, even inside backticks. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void md_opt_row(FILE *f, const ui_opt *o)
{
	char syn[96];
	opt_synopsis(o, syn, sizeof syn);
	fputs("| `", f);
	md_cell(f, syn);
	fputs("` | ", f);
	md_cell(f, o->help);
	fputs(" |\n", f);
}

static void help_markdown(FILE *f)
{
	fprintf(f, "# keyward command line\n\n"
	           "<!-- Generated by `keyward help markdown` from the command table in "
	           "ui/cli.c; do not edit by hand. -->\n\n"
	           "```\nkeyward [GLOBAL OPTIONS] COMMAND [ARGS]\n"
	           "keyward [GLOBAL OPTIONS]        # opens the console\n```\n\n"
	           "Messages go to stderr as `keyward: <message>`, data to stdout.  "
	           "Every listing and show takes `--json` (one JSON document on stdout; "
	           "a listing is an array).  Every command takes `--help`.\n\n"
	           "## Global options\n\n| option | meaning |\n|---|---|\n");
	for (size_t i = 0; ui_global_opts[i].name; i++)
		md_opt_row(f, &ui_global_opts[i]);
	fprintf(f, "\nEnvironment: `KEYWARD_HOME`, `KEYWARD_PIN`, `KEYWARD_SO_PIN` (init), "
	           "`KEYWARD_PKCS11_MODULE`, `KEYWARD_TOKEN`, `KEYWARD_DB`.\n\n"
	           "## Exit codes\n\n| code | statuses |\n|---|---|\n");
	exit_codes_each(f, exit_row_md);
	fprintf(f, "\nA usage error (unknown option, missing argument) exits with 2.\n\n"
	           "## Commands\n");
	for (size_t i = 0; i < KM_ARRAY_LEN(ui_cli_commands); i++) {
		const ui_cmd *c = &ui_cli_commands[i];
		if (c->flags & UI_CMD_HIDDEN)
			continue;
		char title[64], usage[512];
		cmd_title(c, title, sizeof title);
		cmd_usage(c, usage, sizeof usage);
		fprintf(f, "\n### %s\n\n```\n%s\n```\n\n%s.\n", title, usage, c->summary);
		if (c->help)
			fprintf(f, "\n%s\n", c->help);
		if ((c->opts && c->opts[0].name) || (c->flags & UI_CMD_JSON)) {
			fprintf(f, "\n| option | meaning |\n|---|---|\n");
			for (size_t j = 0; c->opts && c->opts[j].name; j++)
				md_opt_row(f, &c->opts[j]);
			if (c->flags & UI_CMD_JSON)
				md_opt_row(f, &ui_json_opt);
		}
	}
}

/* ---------------------------------------------------------------- help command */

/* ui/actions.h from the console: the key-binding table as Markdown. */
#if __has_include("actions.h")
#include "actions.h"
#define UI_HAVE_ACTIONS 1
#endif
#if __has_include("console.h")
#include "console.h"
#define UI_HAVE_CONSOLE 1
#endif

static int group_exists(const char *name)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(ui_cli_commands); i++)
		if (strcmp(ui_cli_commands[i].name, name) == 0 && ui_cli_commands[i].sub)
			return 1;
	return 0;
}

static const ui_cmd *cmd_find(const char *name, const char *sub)
{
	for (size_t i = 0; i < KM_ARRAY_LEN(ui_cli_commands); i++) {
		const ui_cmd *c = &ui_cli_commands[i];
		if (strcmp(c->name, name) != 0)
			continue;
		if (!c->sub || (sub && strcmp(c->sub, sub) == 0))
			return c;
	}
	return NULL;
}

/* `keyward help TOPIC`: documents generated from tables. */
static const struct {
	const char *topic;
	void (*print)(FILE *f);
} ui_help_topics[] = {
	{"markdown", help_markdown}, /* docs/cli.md, from ui_cli_commands[] */
#ifdef UI_HAVE_ACTIONS
	{"keys", ui_actions_markdown}, /* docs/keys.md, from the console's action table */
#endif
};

km_status ui_cmd_help(ui_cli *cli, const ui_args *a, km_err *e)
{
	(void)cli;
	if (a->npos == 0) {
		help_global(stdout);
		return KM_OK;
	}
	const char *what = a->pos[0];
	for (size_t i = 0; a->npos == 1 && i < KM_ARRAY_LEN(ui_help_topics); i++)
		if (strcmp(what, ui_help_topics[i].topic) == 0) {
			ui_help_topics[i].print(stdout);
			return KM_OK;
		}
	const ui_cmd *c = cmd_find(what, a->npos > 1 ? a->pos[1] : NULL);
	if (c) {
		help_command(stdout, c);
		return KM_OK;
	}
	if (group_exists(what) && a->npos == 1) {
		help_group(stdout, what);
		return KM_OK;
	}
	return km_fail(e, KM_EUSAGE, "no command or help topic \"%s%s%s\"", what,
	               a->npos > 1 ? " " : "", a->npos > 1 ? a->pos[1] : "");
}

km_status ui_cmd_console(ui_cli *cli, const ui_args *a, km_err *e)
{
#ifdef UI_HAVE_CONSOLE
	const char *theme = ui_arg(a, "theme");
	int rc = ui_console_run(cli->ctx, theme);
	if (rc != 0)
		return km_fail(e, KM_EINTERNAL, "the console could not run (see the message above)");
	return KM_OK;
#else
	(void)cli;
	(void)a;
	return km_fail(e, KM_EUSAGE, "this build has no console yet; see keyward --help");
#endif
}

/* ---------------------------------------------------------------- session */

km_status ui_cli_open(ui_cli *cli, const char *pin_file, km_err *e)
{
	km_open_opts o = {
		.home = cli->home,
		.pin_file = pin_file ? pin_file : cli->pin_file,
		.user = cli->user,
		.passphrase_file = cli->passphrase_file,
		.prompt = ui_prompt_secret,
		.prompt_ctx = NULL,
		.clock = cli->clock,
		.clock_ctx = cli->clock_ctx,
	};
	return km_open(&o, &cli->ctx, e);
}

/* ---------------------------------------------------------------- dispatch */

static int usage_exit(const char *hint, const km_err *e)
{
	ui_note("%s", e->msg); /* cleaned: it may quote what was typed */
	if (hint)
		ui_note("see `%s`", hint);
	return km_status_exit_code(KM_EUSAGE);
}

static int run_command(ui_cli *cli, const ui_cmd *c, int argc, char **argv)
{
	km_err e;
	km_err_clear(&e);
	ui_args a;
	char title[64], hint[96];
	cmd_title(c, title, sizeof title);
	snprintf(hint, sizeof hint, "keyward %s --help", title);

	km_status st = args_parse(c, argc, argv, &a, &e);
	if (st != KM_OK) {
		args_free(&a);
		return usage_exit(hint, &e);
	}
	if (ui_arg_flag(&a, "help")) {
		help_command(stdout, c);
		args_free(&a);
		return 0;
	}
	if (a.npos < c->min_args || (c->max_args >= 0 && a.npos > c->max_args)) {
		if (a.npos < c->min_args)
			km_fail(&e, KM_EUSAGE, "%s: missing argument (%s)", title, c->args);
		else
			km_fail(&e, KM_EUSAGE, "%s: unexpected argument \"%s\"", title,
			        a.pos[c->max_args]);
		args_free(&a);
		return usage_exit(hint, &e);
	}
	if (ui_arg_flag(&a, "json"))
		cli->json = 1;

	if (c->flags & UI_CMD_SESSION)
		st = ui_cli_open(cli, NULL, &e);
	if (st == KM_OK)
		st = c->run(cli, &a, &e);
	if (cli->ctx) {
		km_close(cli->ctx);
		cli->ctx = NULL;
	}
	args_free(&a);
	if (fflush(stdout) != 0 && st == KM_OK)
		st = km_fail(&e, KM_EIO, "writing to stdout: %s", strerror(errno));
	if (st != KM_OK) {
		/* cleaned: the core's messages quote names and input */
		ui_note("%s", e.msg[0] ? e.msg : km_status_name(st));
		if (st == KM_EUSAGE)
			ui_note("see `%s`", hint);
	}
	return km_status_exit_code(st);
}

static const ui_cmd ui_global_cmd = {"keyward", NULL, "", 0, -1, "", NULL, ui_global_opts,
                                     0, NULL};

int ui_cli_main(int argc, char **argv)
{
	ui_cli cli = {.prog = argc > 0 ? argv[0] : "keyward", .stderr_tty = isatty(2)};
	km_err e;
	km_err_clear(&e);

	/* Global options: everything before the first word that is not an
	 * option or an option's value. */
	int i = 1;
	for (; i < argc; i++) {
		const char *s = argv[i];
		if (s[0] != '-' || s[1] == '\0' || strcmp(s, "--") == 0)
			break;
		const ui_opt *o = s[1] == '-' ? opt_find_long(ui_global_opts, s + 2, strcspn(s + 2, "="))
		                              : opt_find_short(ui_global_opts, s[1]);
		if (o && o->arg && !strchr(s, '=') && s[1] == '-')
			i++; /* its value */
	}
	if (i > argc)
		i = argc;
	ui_args g;
	km_status st = args_parse(&ui_global_cmd, i - 1, argv + 1, &g, &e);
	if (st != KM_OK) {
		args_free(&g);
		return usage_exit("keyward --help", &e);
	}
	cli.home = ui_arg(&g, "home");
	cli.pin_file = ui_arg(&g, "pin-file");
	cli.user = ui_arg(&g, "user");
	cli.passphrase_file = ui_arg(&g, "passphrase-file");
	cli.json = ui_arg_flag(&g, "json");
	int want_version = ui_arg_flag(&g, "version");
	int want_help = ui_arg_flag(&g, "help");
	args_free(&g);
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (want_version) {
		printf("keyward %s\n", KEYWARD_VERSION);
		return 0;
	}
	if (want_help) {
		help_global(stdout);
		return 0;
	}

	if (i >= argc) /* no command: the console */
		return run_command(&cli, cmd_find("console", NULL), 0, argv + argc);

	const char *name = argv[i];
	const char *sub = i + 1 < argc ? argv[i + 1] : NULL;
	if (group_exists(name)) {
		if (sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
			help_group(stdout, name);
			return 0;
		}
		const ui_cmd *c = sub ? cmd_find(name, sub) : NULL;
		if (!c) {
			if (sub)
				ui_note("%s: unknown subcommand \"%s\"", name, sub);
			else
				ui_note("%s: which subcommand?", name);
			help_group(stderr, name);
			return km_status_exit_code(KM_EUSAGE);
		}
		return run_command(&cli, c, argc - i - 2, argv + i + 2);
	}
	const ui_cmd *c = cmd_find(name, NULL);
	if (!c) {
		km_fail(&e, KM_EUSAGE, "unknown command \"%s\"", name);
		return usage_exit("keyward --help", &e);
	}
	return run_command(&cli, c, argc - i - 1, argv + i + 1);
}
