#!/usr/bin/env bash
# console_hints.sh — the hint line names the current screen's main actions
# with the keys in force: generated from the action table, so it changes
# with the screen and follows a rebinding in config.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
last() { screen | tail -n 1; }

tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
for h in "r rotate" "x state" "c create" "/ filter" "? help"; do
	last | grep -qF "$h" || fail "keys screen hint line lacks \"$h\": $(last)"
done
last | grep -qF "V verify" && fail "the audit screen's verify shows on the keys screen"
keys 2
wait_for "newest first"
for h in "V verify" "f filter form" "/ filter"; do
	last | grep -qF "$h" || fail "audit hint line lacks \"$h\": $(last)"
done
last | grep -qF "r rotate" && fail "rotate offered on the audit screen"
keys 3
wait_for "most urgent first"
last | grep -qF "r rotate" || fail "schedule hint line lacks r rotate: $(last)"
keys 4
wait_for "you may sign now"
for h in "a approve" "d reject" "H history"; do
	last | grep -qF "$h" || fail "approvals hint line lacks \"$h\": $(last)"
done
keys 5
wait_for "unfinished job"
for h in "p pause" "u resume" "X cancel"; do
	last | grep -qF "$h" || fail "operations hint line lacks \"$h\": $(last)"
done
last | grep -qF "a approve" && fail "approve offered on the operations screen"
echo "hints per screen"
keys Q
wait_for "[exited 0]"
tmux_stop

step "a rebinding shows in the hints"
python3 - "$KEYWARD_HOME/config.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["keys"] = {"rotate-key": "R"}
json.dump(d, open(p, "w"))
PY
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
last | grep -qF "R rotate" || fail "rebound rotate-key not in the hints: $(last)"
last | grep -qF "r rotate" && fail "the old key still hinted"
echo "R rotate after rebinding"
keys Q
wait_for "[exited 0]"
echo PASS
