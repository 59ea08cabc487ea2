#!/usr/bin/env bash
# console_actions.sh — the key actions go through the core like the CLI:
# :rotate (confirmed) opens a rotation request (nothing rotates until it is
# approved and executed); x offers only the legal states of the selected
# version, and a destructive one is requested only after the key's name is
# typed exactly; the core's refusal of an illegal :state shows verbatim.
# The CLI confirms every request.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
key=features/credit-risk
v0=$("$KEYWARD_BIN" key show $key --json | jq_py 'd["current_version"]')

tmux_start "$KEYWARD_BIN"
wait_for "$key"

step ":rotate asks, then opens a request"
reqs() { "$KEYWARD_BIN" request list --json | python3 -c "
import json,sys
print(sum(1 for r in json.load(sys.stdin) if r['kind'] == '$1' and r['object'].startswith('key:$key')))"; }
[ "$(reqs rotate)" = 0 ] || fail "the demo already has a rotation request for $key"
keys :
keys -l "rotate $key"
keys Enter
wait_for "Rotate key"
keys y
wait_for "opened (rotate $key: v$v0 -> v$((v0 + 1))"
[ "$(reqs rotate)" = 1 ] || fail "the CLI does not list the rotation request"
v1=$("$KEYWARD_BIN" key show $key --json | jq_py 'd["current_version"]')
[ "$v1" = "$v0" ] || fail "the key rotated before any approval (version $v1)"
echo "rotation request open, still version $v0"

step "x on a retired version offers only legal targets; destructive needs the name"
keys /
keys -l credit-risk
keys Enter
wait_for 'matching "credit-risk"'
keys Enter
wait_for "Versions"
keys l G   # focus the versions, the oldest (retired) one
keys x
wait_for "Change version state"
screen | grep -qF "is retired" || fail "the dialog is not about the retired version"
screen | grep -qF "destroy-scheduled   (destructive)" || fail "destroy-scheduled not offered as destructive"
screen | grep -qE "│ +active +│" && fail "active offered for a retired version"
keys j   # destroy-scheduled (after decrypt-only)
keys Enter
wait_for "Destructive change"
keys -l "features/credit"
keys Enter
wait_for "that is not $key"
keys C-u
keys -l "$key"
keys Enter
wait_for "opened ("
[ "$(reqs destroy)" = 1 ] || fail "the CLI does not list the destroy request"
state=$("$KEYWARD_BIN" key show $key --json | jq_py '[v["state"] for v in d["versions"] if v["version"]==1][0]')
[ "$state" = retired ] || fail "version 1 is $state before any approval"
echo "destroy request open after typing the name; version 1 still retired"

step "an illegal change: the core's message, verbatim"
keys :
keys -l "state $key 2 pending"
keys Enter
wait_for "cannot change a"
echo PASS
