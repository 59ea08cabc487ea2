#!/usr/bin/env bash
# cli_policy.sh — policy show / list / set / unset, schedule and
# rotate --due on a demo deployment (the invoking user is officer +
# auditor; erin is an administrator, dave an auditor).
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo

step "--help of each new command"
for c in "policy show" "policy list" "policy set" "policy unset" "schedule" "rotate"; do
	# shellcheck disable=SC2086
	ok $c --help
	has "$OUT" "Usage: keyward $c"
done
ok policy set --help
has "$OUT" "--set FIELD=VALUE"
has "$OUT" "request_ttl_hours (1-720)"
ok rotate --help
has "$OUT" "--dry-run"

step "policy show: each field, its value and its source"
ok policy show inference/scoring-api
has "$OUT" "effective policy of inference/scoring-api"
grep -Eq '^cadence_days +30 +inference/$' "$OUT" || fail "cadence from the prefix"
grep -Eq '^quorum +2 +inference/scoring-api$' "$OUT" || fail "quorum from the key's own policy"
grep -Eq '^request_ttl_hours +120 +global$' "$OUT" || fail "ttl from the global policy"
grep -Eq '^usage_bound +16777216 +default$' "$OUT" || fail "bound from the default"
ok policy show inference/scoring-api --json
jeq "$OUT" 'd["key"]' inference/scoring-api
jeq "$OUT" '[f["field"] for f in d["fields"]][0]' cadence_days
jeq "$OUT" '{f["field"]: f["source"] for f in d["fields"]}["quorum"]' inference/scoring-api
jeq "$OUT" '{f["field"]: f["value"] for f in d["fields"]}["quorum"]' 2
jeq "$OUT" 'len(d["fields"])' 10
# The demo's high-sensitivity keys all ask for two approvers.
for k in features/credit-risk features/fraud-signals feature-groups/customer-360 datasets/claims-2024 \
	datasets/claims-2025 models/credit-scorer-v2 inference/scoring-api; do
	ok policy show "$k" --json
	jeq "$OUT" '{f["field"]: f["value"] for f in d["fields"]}["quorum"]' 2
done
ok policy show features/churn-propensity --json
jeq "$OUT" '{f["field"]: f["value"] for f in d["fields"]}["quorum"]' 1
# A key that does not exist yet still has an effective policy.
ok policy show datasets/not-yet --json
jeq "$OUT" '{f["field"]: f["source"] for f in d["fields"]}["reencrypt"]' datasets/
expect 2 policy show 'Bad Key'
has "$ERR" "keyward: "
expect 2 policy show
ok --user dave policy show features/credit-risk

step "policy list"
ok policy list --json
jeq "$OUT" 'd[0]["scope"]' ""
jeq "$OUT" 'd[0]["fields"]["cadence_days"]' 90
jeq "$OUT" '[p["scope"] for p in d][1:] == sorted(p["scope"] for p in d[1:])' true
ok policy list
head -n1 "$OUT" | grep -Eq '^SCOPE +FIELDS$' || fail "policy list header"
grep -Eq '^global +cadence_days=90 request_ttl_hours=120$' "$OUT" || fail "global row"

step "policy set / unset open requests; nothing changes yet"
before=$(sqlite3 "$DB" "SELECT group_concat(scope || body, ';') FROM policies")
ok policy set features/ --set cadence_days=30 --set quorum=2 --reason "tighter for features"
grep -Eq '^[0-9a-f]{32}$' "$OUT" || fail "policy set prints the request id"
id=$(cat "$OUT")
has "$ERR" "request $id opened"
ok audit tail -n 3 --json
# the event names the policy and the request (whichever is its object)
jeq "$OUT" '[e for e in d if e["action"] == "request.open"][-1]["object"] in ("policy:features/", "request:'"$id"'")' true
jeq "$OUT" '"'"$id"'" in json.dumps([e for e in d if e["action"] == "request.open"][-1])' true
jeq "$OUT" '"policy:features/" in json.dumps([e for e in d if e["action"] == "request.open"][-1])' true
ok request show "$id"
has "$OUT" 'set the features/ policy to {"cadence_days":30,"quorum":2}'
[ "$(sqlite3 "$DB" "SELECT group_concat(scope || body, ';') FROM policies")" = "$before" ] ||
	fail "a proposal changed the stored policies"
ok policy set features/ --set cadence_days=30 --json
jeq "$OUT" 'd["kind"]' policy
jeq "$OUT" 'd["scope"]' features/
jeq "$OUT" 'len(d["request"])' 32
ok policy unset inference/ --reason "back to global"
grep -Eq '^[0-9a-f]{32}$' "$OUT" || fail "policy unset prints the request id"

step "an approved policy request, executed, changes the effective policy"
ok --user bob request approve "$id"
ok request execute "$id"
ok policy show features/churn-propensity --json
jeq "$OUT" '{f["field"]: [f["value"], f["source"]] for f in d["fields"]}["cadence_days"]' '[30, "features/"]'
jeq "$OUT" '{f["field"]: [f["value"], f["source"]] for f in d["fields"]}["quorum"]' '[2, "features/"]'
ok schedule --all --json
jeq "$OUT" '[e["cadence_days"] for e in d if e["key"] == "features/churn-propensity"]' '[30]'
ok audit verify

step "policy set refusals"
expect 4 policy set global --set quorum=2
has "$ERR" "the global policy is the administrator's"
ok --user erin policy set global --set quorum=2
expect 4 --user erin policy set features/ --set quorum=2
has "$ERR" "officers'"
expect 4 --user dave policy set features/ --set quorum=2
expect 2 policy set features/ --set quorum=99
has "$ERR" "quorum=99 is out of range: quorum must be 1 to 16"
expect 2 policy set features/ --set cadance_days=3
has "$ERR" "unknown policy field 'cadance_days'; the fields are cadence_days"
expect 2 policy set features/ --set cadence_days=ten
has "$ERR" "not a whole number"
expect 2 policy set features/
has "$ERR" "at least one --set"
expect 2 policy set Features/ --set quorum=2
expect 3 policy unset models/
has "$ERR" "no models/ policy to remove"
expect 9 policy set inference/scoring-api --set quorum=2
has "$ERR" "already exactly this"

step "schedule: compromised first, JSON and text"
ok schedule --json
jeq "$OUT" 'd[0]["key"]' inference/scoring-api
# the demo's emergency rotation, half-approved, is the open request
jeq "$OUT" 'd[0]["attention"]' '["compromised", "request"]'
jeq "$OUT" 'len(d[0]["request"])' 32
jeq "$OUT" 'd[0]["cadence_days"]' 30
jeq "$OUT" 'd[0]["policy_source"]' inference/
# its current version is the compromised one: no cadence runs on it
jeq "$OUT" 'd[0]["due"]' null
ok schedule
head -n1 "$OUT" | grep -Eq '^KEY +VER +STATE +ATTENTION +DUE +LAST ROTATION +USAGE +CADENCE +POLICY +REQUEST$' ||
	fail "schedule header"
ok schedule --json
cp "$OUT" "$OUT.sched"
SCHED="$OUT.sched"
ok schedule --all --json
total=$(jget "$OUT" 'len(d)')
ok status --json
jeq "$OUT" 'd["keys"]' "$total"
# the status bar's counts agree with the schedule's flags (two code paths)
overdue=$(jget "$SCHED" 'sum(1 for e in d if "overdue" in e["attention"] or "compromised" in e["attention"])')
due=$(jget "$SCHED" 'sum(1 for e in d if "due" in e["attention"] and "overdue" not in e["attention"] and "compromised" not in e["attention"])')
[ "$overdue" -ge 2 ] && [ "$due" -ge 2 ] || fail "the demo should have due and overdue keys ($due, $overdue)"
jeq "$OUT" 'd["keys_overdue"]' "$overdue"
jeq "$OUT" 'd["keys_due"]' "$due"
ok schedule --all --limit 2 --json
jeq "$OUT" 'len(d)' 2
expect 2 schedule --limit x

step "a key past its cadence: schedule, status, rotate --due --dry-run"
# The schedule summary on the keys row (not a sealed field) says when
# the cadence ran out; put it in the past as time passing would.
jeq "$SCHED" '"datasets/transactions-eu" in [e["key"] for e in d]' false
sqlite3 "$DB" "UPDATE keys SET due_at = 1000 WHERE name = 'datasets/transactions-eu'"
ok schedule --json
jeq "$OUT" '[e["attention"] for e in d if e["key"] == "datasets/transactions-eu"]' '[["due"]]'
ok status --json
jeq "$OUT" 'd["keys_due"]' $((due + 1))
before=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE json NOT LIKE '%\"action\":\"login\"%'")
ok rotate --due --dry-run --json
python3 - "$OUT" <<'EOF' || fail "dry-run JSON lines"
import json, sys
acts = [json.loads(line) for line in open(sys.argv[1])]
assert acts, "no action"
for a in acts:
    assert a["outcome"] == "ok" and a["message"].startswith("would"), a
opened = [a["key"] for a in acts if a["action"] == "open-request"]
assert "datasets/transactions-eu" in opened, opened
# a key with a request already open gets no second one
assert "inference/scoring-api" not in opened, opened
EOF
ok rotate --due --dry-run
grep -Eq '^open-request +ok +datasets/transactions-eu: would open a rotation request' "$OUT" || fail "dry-run text"
after=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE json NOT LIKE '%\"action\":\"login\"%'")
[ "$after" = "$before" ] || fail "a dry run recorded $((after - before)) events"
# auditors may look, not act
ok --user dave rotate --due --dry-run
expect 4 --user dave rotate --due
expect 2 rotate
has "$ERR" "rotate takes --due"
expect 2 rotate --due extra

step "rotate --due: a failing action does not stop the others"
# A destroy-scheduled version whose waiting period was edited to be over:
# its seal fails, so destroying it is refused; the due key is still acted on.
sqlite3 "$DB" "UPDATE key_versions SET destroy_after = 1000 WHERE state = 'destroy-scheduled'"
got=0
"$KEYWARD_BIN" rotate --due --json >"$OUT" 2>"$ERR" || got=$?
[ "$got" != 0 ] || fail "rotate --due succeeded with a failing action"
python3 - "$OUT" <<'EOF' || fail "actions after a failure"
import json, sys
acts = [json.loads(l) for l in open(sys.argv[1])]
destroys = [a for a in acts if a["action"] == "destroy"]
assert destroys and all(a["outcome"] != "ok" for a in destroys), acts
assert destroys[0]["key"] == "datasets/claims-2024", acts
assert any(a["action"] == "open-request" and a["key"] == "datasets/transactions-eu" and a["outcome"] == "ok"
           for a in acts), acts
EOF
has "$ERR" "keyward: "
[ "$(sqlite3 "$DB" "SELECT count(*) FROM key_versions WHERE state = 'destroyed'")" = 0 ] ||
	fail "a version with a broken seal was destroyed"
echo PASS
