#!/usr/bin/env bash
# console_open.sh — the console opens on demo data and shows the keys; the
# status bar shows the session; `/` narrows the list as you type (by name
# and by tag:value); Enter opens the detail pane with the key's versions.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
tmux_start "$KEYWARD_BIN"

step "opens on the demo keys"
wait_for "features/credit-risk"
for k in models/fraud-v4 datasets/claims-2025 inference/scoring-api; do
	screen | grep -qF "$k" || fail "key $k not listed"
done
# (in full, "HSM keyward: logged in", where the demo's anomaly badge leaves room)
screen | grep -qE "HSM (keyward: logged in|ok) │" || fail "status bar lacks the HSM state"
screen | grep -qE "\(officer,auditor\)" || fail "status bar lacks the user's roles"
screen | grep -qE "audit [0-9]+ events" || fail "status bar lacks the audit log size"
screen | grep -qE "[0-9]+ due, [0-9]+ overdue" || fail "status bar lacks due/overdue counts"
echo "keys, user, roles, HSM state, audit size and due counts shown"

step "filter narrows the list incrementally"
keys /
keys -l fraud
wait_for 'matching "fraud"'
screen | grep -qF "models/fraud-v4" || fail "models/fraud-v4 missing from the filtered list"
screen | grep -qF "features/fraud-signals" || fail "features/fraud-signals missing from the filtered list"
screen | grep -qF "features/credit-risk" && fail "filter did not narrow: features/credit-risk still listed"
keys Enter
echo "/fraud keeps only the fraud keys"

step "filter by tag:value"
keys /
keys C-u
keys -l "sensitivity:medium"
wait_for 'matching "sensitivity:medium"'
screen | grep -qF "datasets/transactions-eu" || fail "datasets/transactions-eu (sensitivity=medium) missing"
screen | grep -qF "datasets/claims-2025" && fail "datasets/claims-2025 (sensitivity=high) still listed"
keys Enter
echo "tag filter works"

step "q clears the filter"
keys q
wait_gone 'matching "'
wait_for "features/credit-risk"

step "detail pane shows the versions"
keys /
keys -l credit-risk
wait_for 'matching "credit-risk"'
keys Enter
sleep 0.2
keys Enter
wait_for "Versions"
for s in active decrypt-only retired; do
	screen | sed -n '/Versions/,$p' | grep -qF "$s" || fail "detail pane lacks a $s version"
done
screen | grep -qF "Latest audit events" || fail "detail pane lacks the audit events"
screen | grep -qF "Assets (" || fail "detail pane lacks the assets"
echo "versions (active, decrypt-only, retired), assets and events shown"

step "q closes the pane, then quits"
keys q
wait_gone "Versions"
keys q q
wait_for "[exited 0]"
echo PASS
