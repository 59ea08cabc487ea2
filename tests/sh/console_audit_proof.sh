#!/usr/bin/env bash
# console_audit_proof.sh — the audit screen's detail pane shows the selected
# event's RFC 9162 inclusion proof: the tree size of the newest signed head
# and the same hashes `keyward audit prove SEQ --size N` prints; damaged
# stored nodes are reported instead of a proof.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home

step "detail pane of the newest event: its proof"
tmux_start --size 120x60 "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 2
wait_for "newest first"
keys Enter
wait_for "Inclusion proof (RFC 9162)" 20
seq=$(screen | grep -oE 'Event [0-9]+' | head -n1 | cut -d' ' -f2)
[ -n "$seq" ] || fail "no event in the detail pane"
size=$(screen | grep -oE 'signed tree head of [0-9]+ entries' | grep -oE '[0-9]+')
[ -n "$size" ] || fail "no tree size shown"
shown=$(screen | grep -E '^ +[0-9]+  [A-Za-z0-9+/]{43}=' | awk '{print $2}')
[ -n "$shown" ] || fail "no proof hashes shown"
keys Q
wait_for "[exited 0]"
tmux_stop
# the proof of (seq, size) never changes as the log grows
"$KEYWARD_BIN" audit prove "$seq" --size "$size" >"$KW_TMP/proof.json" || fail "audit prove failed"
want=$(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["proof"]))' "$KW_TMP/proof.json")
[ "$shown" = "$want" ] || fail "the pane's proof differs from audit prove's: $shown / $want"
echo "the pane shows audit prove's hashes"

step "damaged stored nodes: no proof, the problem named"
sqlite3 "$KW_DB" "UPDATE audit_nodes SET hash = zeroblob(32)" || fail "sqlite3"
tmux_start --size 120x60 "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 2
wait_for "newest first"
keys Enter
wait_for "Inclusion proof: entry" 20
screen | grep -qF "cannot be proven to be in the tree" || fail "the damaged path is not named"
screen | grep -qE '^ +1  [A-Za-z0-9+/]{43}=' && fail "hashes shown for an unprovable entry"
keys Q
tmux_stop
echo PASS
