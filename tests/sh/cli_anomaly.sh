#!/usr/bin/env bash
# cli_anomaly.sh — `keyward audit scan` and `keyward anomaly list` on the
# demo's history: the findings are the anomalies the demo plants (and
# nothing of its ordinary working-hours history, whatever hour init ran),
# anomaly events whose evidence seqs name real events of the rule's kind; a second scan starts after the first
# (durable cursor in the log) and finds nothing new; a malformed threshold
# is refused naming the field; a service may not scan; the console lists
# the anomalies on screen 7 and counts them in the status bar.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo

step "init --demo's scan found the demo's planted anomalies, and only those"
ok audit tail --action audit.scan --json
jeq "$OUT" 'len(d)' 1
jeq "$OUT" 'd[0]["details"]["from"]' 1
found=$(jget "$OUT" 'd[0]["details"]["anomalies"]')
through=$(jget "$OUT" 'd[0]["details"]["through"]')
[ "$found" -eq 5 ] || fail "the demo's history raised $found anomalies, not the 5 planted"
ok anomaly list -n 1000 --json
cp "$OUT" "$KW_TMP/list.json"
jeq "$KW_TMP/list.json" 'len(d)' "$found"
# docs/audit.md, "The demo's anomalies"
jeq "$KW_TMP/list.json" 'sorted(a["rule"] + " " + a["object"] + " " + a["subject"] for a in d)' \
	'["denial-burst user:svc-scoring-api svc-scoring-api", "first-use key:datasets/claims-2025 alice", "first-use key:inference/scoring-api alice", "off-hours key:datasets/claims-2025@1 alice", "version-use key:inference/scoring-api@2 alice"]'
jeq "$KW_TMP/list.json" 'all(len(a["evidence"]) >= 1 for a in d)' true
jeq "$KW_TMP/list.json" 'sorted({a["rule"] for a in d} - {"first-use", "off-hours", "decrypt-spike", "mass-decrypt", "denial-burst", "version-use"})' '[]'
# every first-use names an event of its actor using the key; every seq is below the cursor
python3 - "$KW_TMP/list.json" "$through" >"$KW_TMP/checks" <<'PY'
import json, sys
for a in json.load(open(sys.argv[1])):
    for s in a["evidence"]:
        assert s <= int(sys.argv[2]), (a, s)
    if a["rule"] == "first-use":
        print(a["evidence"][0], a["subject"], a["object"])
PY
[ -s "$KW_TMP/checks" ] || fail "no first-use finding to check"
while read -r seq actor object; do
	ok audit show "$seq" --json
	jeq "$OUT" 'd["event"]["actor"]' "$actor"
	jeq "$OUT" 'd["event"]["action"] in ("protect", "unprotect")' true
	jeq "$OUT" 'd["event"]["object"].startswith("'"$object"'@")' true
done <"$KW_TMP/checks"
ok anomaly list --rule first-use
grep -qE '^ +[0-9]+  [0-9T:.-]+Z  first-use +[^ ]+ +key:[^ ]+  evidence [0-9]' "$OUT" || fail "text list: $(head -2 "$OUT")"
lacks "$OUT" "off-hours"
expect 2 anomaly list --rule first_use
has "$ERR" '--rule "first_use" is not a rule'

step "the cursor: a second scan starts after the first and finds nothing new"
ok audit scan --json
jeq "$OUT" 'd["from"]' $((through + 1))
jeq "$OUT" 'd["anomalies"]' 0
ok audit tail --action audit.scan --json
jeq "$OUT" '[e["details"]["through"] for e in d][:1]' "[$through]"

step "thresholds are checked, naming the field; a service may not scan"
cp "$KEYWARD_HOME/config.json" "$KW_TMP/config.bak"
python3 - "$KEYWARD_HOME/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["anomaly"] = {"working_hours": "18:00-08:00"}
json.dump(c, open(sys.argv[1], "w"))
PY
expect 7 status
has "$ERR" '"anomaly.working_hours" "18:00-08:00" must be HH:MM-HH:MM'
cp "$KW_TMP/config.bak" "$KEYWARD_HOME/config.json"
KEYWARD_USER=svc-scoring-api expect 4 audit scan
has "$ERR" "not allowed to audit.scan"

step "console: screen 7 lists them, the status bar counts them"
n=$(jget "$KW_TMP/list.json" 'len(d)')
tmux_start "$KEYWARD_BIN"
wait_for "$n anomalies │"
keys 7
wait_for "$n anomalies, newest first"
first=$(jget "$KW_TMP/list.json" 'd[0]["seq"]')
screen | sed -n 4p | grep -qE "^ +$first " || fail "newest anomaly $first is not first"
keys /
keys -l first-use
keys Enter
n_first=$(jget "$KW_TMP/list.json" 'len([a for a in d if a["rule"] == "first-use"])')
wait_for "$n_first anomal"
keys Enter
wait_for "Evidence: the audit events"
keys Q
wait_for "[exited 0]"
echo PASS
