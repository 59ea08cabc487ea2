#!/usr/bin/env bash
# console_lineage_jumps.sh — on the demo's own lineage graph: from a node of
# the lineage screen, K goes to the key version that protects it, A to its
# catalogue asset, E to the audit events of that key version; i opens the
# impact view from the keys screen and from a request on the approvals
# screen (as carol, an approver without need-to-know: pseudonyms only); at
# 120x40 and at 80x24.  And `key compromise` counts the impact.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home

for size in 120x40 80x24; do
	step "$size: :lineage on the compromised key version reaches a model and an endpoint"
	tmux_start --size "$size" "$KEYWARD_BIN"
	wait_for "features/credit-risk"
	keys : ; keys -l "lineage inference/scoring-api@2" ; keys Enter
	wait_for "downstream of key inference/scoring-api@2"
	wait_for "credit-scorer-v3@3.0.0-rc1"
	screen | grep -qF "[endpoint]" || fail "the demo's impact reaches no endpoint"

	step "$size: K on a node downstream goes to the key that protected its start"
	keys / ; keys -l "credit-scorer-v3" ; keys Enter
	wait_for "credit-scorer-v3"
	keys K
	wait_for "Versions"
	screen | grep -qF "inference/scoring-api" || fail "K did not select the key"
	screen | grep -E "^ +2 +compromised" >/dev/null || fail "version 2 is not in the pane"
	echo "keys screen, inference/scoring-api, pane open"

	step "$size: E shows the audit events of that key version"
	keys 6
	wait_for "downstream of key inference/scoring-api@2"
	keys E
	wait_for "key:inference/scoring-api@2"
	screen | grep -qF "key.compr" || fail "the version's compromise event is not listed"
	echo "audit screen filtered to the key version"

	step "$size: A on an asset node shows its record; on an endpoint it says why not"
	keys 6
	wait_for "downstream of key inference/scoring-api@2"
	keys g
	keys A
	wait_for "asset #"
	screen | grep -qF "scoring-api/requests@2026-11-21 under" || fail "the asset's record is not shown"
	keys 6
	wait_for "downstream of key inference/scoring-api@2"
	keys / ; keys C-u ; keys -l "credit-score-canary" ; keys Enter
	keys A
	wait_for "is not a catalogue asset"
	echo "asset record, and the refusal"

	step "$size: i on the keys screen opens the impact of the selected key's current version"
	keys 1
	keys / ; keys C-u ; keys -l "features/credit-risk" ; keys Enter
	wait_for "features/credit-risk"
	keys q
	keys i
	wait_for "downstream of key features/credit-risk@3"
	wait_for "credit-scorer-v3"
	echo "impact from the keys screen"
	keys Q
	wait_for "[exited"
	tmux_stop
done

step "carol (approver): i on the emergency rotation's request opens its impact, redacted"
tmux_start --size 120x40 KEYWARD_USER=carol "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 4
wait_for "request"
keys / ; keys -l "scoring-api" ; keys Enter
wait_for "emergency-rotate"
keys i
wait_for "downstream of key inference/scoring-api@2"
wait_for "names are pseudonyms"
wait_for "[endpoint]"
for name in credit-scorer-v3 credit-score-canary training/credit-feedback scoring-api/requests feedback_build; do
	screen | grep -qF "$name" && fail "carol sees \"$name\" (need-to-know)"
done
keys g
keys A
wait_for "withheld from your role"
echo "redacted impact: no original name on the screen"
keys Q
tmux_stop

step "key compromise counts what its data went into"
out=$("$KEYWARD_BIN" key compromise features/credit-risk@3 --reason "test: leaked" 2>&1) ||
	fail "compromise failed: $out"
echo "$out" | grep -E "impact: [1-9][0-9]* lineage nodes downstream \([1-9][0-9]* models?, [1-9][0-9]* endpoints?\)" >/dev/null ||
	fail "no impact count after the compromise: $out"
echo "$out" | grep -F "impact:"
