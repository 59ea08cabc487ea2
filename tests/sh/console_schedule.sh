#!/usr/bin/env bash
# console_schedule.sh — the rotation schedule screen lists what
# `keyward schedule` lists, most urgent first (the demo's compromised key
# first, with its policy source and open request), the due dates, and the
# overdue in red; r on a key without a request opens a rotation request,
# which the CLI then lists and the screen shows.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
sched=$KW_TMP/schedule.json
"$KEYWARD_BIN" schedule --json >"$sched"
n=$(jq_py 'len(d)' <"$sched")
first=$(jq_py 'd[0]["key"]' <"$sched")
first_src=$(jq_py 'd[0]["policy_source"]' <"$sched")
first_req=$(jq_py '(d[0]["request"] or "-")[:8]' <"$sched")
first_due=$(jq_py '(d[0]["due"] or "-")[:10]' <"$sched")
calm=$(jq_py '[e["key"] for e in d if not e["request"]][0]' <"$sched")
[ "$n" -gt 1 ] || fail "the demo's schedule has $n keys"

tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 3
wait_for "most urgent first"
screen | sed -n 2p | grep -qE "^ $n keys? due" || fail "count is not the CLI's $n"
row=$(screen | sed -n 4p)
case $row in " $first "*) ;; *) fail "first row is not $first: $row" ;; esac
for t in "$first_src" "$first_req" "$first_due" compromised; do
	printf '%s\n' "$row" | grep -qF -- "$t" || fail "the first row lacks \"$t\": $row"
done
echo "$n keys, $first first with policy $first_src, request $first_req, due $first_due"

step "overdue in red"
# the status bar counts overdue keys; each one's ATTENTION or DUE cell is red (31/91)
n_over=$(jq_py 'sum(1 for e in d if "overdue" in e["attention"] or "compromised" in e["attention"])' <"$sched")
keys G   # the selection's own colour would hide a red row: select the last, calm one
sleep 0.3
red=$(screen -e | sed -n '4,30p' | grep -cE $'\e\\[([0-9]+;)*(31|91|41|101)m' || true)
[ "$red" -ge "$n_over" ] || fail "$red red rows for $n_over overdue or compromised keys"
echo "$red red rows"

step "r requests a rotation from the schedule"
keys /
keys -l "$calm"
keys Enter
wait_for "matching \"$calm\""
keys r
wait_for "Request a rotation of $calm"
keys y
wait_for "opened (rotate $calm"
id=$("$KEYWARD_BIN" request list --json | jq_py "[r['id'] for r in d if r['kind']=='rotate' and r['object']=='key:$calm'][0]")
wait_for "${id:0:8}"
echo "request $id opened and shown"
keys Q
wait_for "[exited 0]"
echo PASS
