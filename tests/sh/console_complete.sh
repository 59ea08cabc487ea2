#!/usr/bin/env bash
# console_complete.sh — the `:` line completes with Tab: command names, key
# names (one seek in name order, so at any size), states and screens; and
# `:rotate nosuch/key` says the key does not exist before it asks anything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
last() { screen | tail -n 1; }
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "command name"
keys :
keys -l ro
keys Tab
keys -l "|"   # capture-pane drops trailing spaces: mark where the line ends
wait_for ":rotate |"
keys BSpace
step "key name: common prefix, then the choices"
keys -l fea
keys Tab
wait_for ":rotate feature"
last | grep -qF "feature-groups/customer-360" || fail "choices not shown: $(last)"
last | grep -qF "features/churn-propensity" || fail "choices not shown: $(last)"
last | grep -qF "datasets/" && fail "a key without the prefix offered: $(last)"
keys -l s/cr
keys Tab
keys -l "|"
wait_for ":rotate features/credit-risk |"
keys Escape
wait_gone ":rotate"

step "state names for :state"
keys :
keys -l "state features/credit-risk 1 decr"
keys Tab
keys -l "|"
wait_for ":state features/credit-risk 1 decrypt-only |"
keys C-u
keys -l "screen au"
keys Tab
keys -l "|"
wait_for ":screen audit |"
keys C-u
keys -l "rotate zzz"
keys Tab
wait_for "(no match)"
keys Escape

step ":rotate of a key that does not exist: said at once, no dialog"
keys :
keys -l "rotate nosuch/key"
keys Enter
wait_for "no key named 'nosuch/key'"
screen | grep -qF "Rotate key" && fail "a confirmation was asked for a key that does not exist"
keys Q
wait_for "[exited 0]"
echo PASS
