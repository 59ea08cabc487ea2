#!/usr/bin/env bash
# console_layout.sh — the key list's layout: at 80 columns every demo key's
# name shows in full (names get the space, tags give way first); after a
# resize the selected row stays selected and visible, and a taller window
# fills from above instead of leaving blank rows; at 80 columns every tab
# shows, its title shortened, and the anomalies screen shows the demo's
# planted findings.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
for i in $(seq -w 1 40); do "$KEYWARD_BIN" key create "zz/k$i" >/dev/null; done

step "80x24: full names"
tmux_start --size 80x24 "$KEYWARD_BIN"
wait_for "datasets/claims-2024"
for name in feature-groups/customer-360 datasets/transactions-eu features/churn-propensity \
	models/credit-scorer-v2; do
	screen | grep -qE "^ $name +[0-9]" || fail "$name is cut at 80 columns"
done
echo "names whole at 80 columns"
# every screen's tab stays on the title bar, shortened to fit
title="$(screen | sed -n 1p) " # capture-pane drops trailing blanks
for t in "1 Keys" "2 Audit" "3 Sched" "4 Appr" "5 Ops" "6 Lineage" "7 Anom"; do
	case "$title" in *" $t "*) ;; *) fail "tab '$t' is not on the 80-column title bar: $title" ;; esac
done
# the anomalies screen opens on the demo's planted incidents (init --demo
# scans its history), each row's rule and object whole at 80 columns
keys 7
wait_for "5 anomalies"
for row in "denial-burst +svc-scoring-api +user:svc-scoring-api( |…)" "off-hours +alice +key:datasets/claims-2025@1( |…)" \
	"version-use +alice +key:inference/scoring-api@2( |…)" "first-use +alice +key:inference/scoring-api( |…)" \
	"first-use +alice +key:datasets/claims-2025( |…)"; do
	screen | grep -qE "$row" || fail "no row '$row' whole on the anomalies screen at 80 columns: $(screen | sed -n 2,9p)"
done
bar=$(screen | sed -n 23p)
case "$bar" in *"5 anom"*"HSM ok"*" due "*" late"*) ;; *) fail "the 80-column status bar lacks a fact: $bar" ;; esac
case "$bar" in *"…"*) fail "the 80-column status bar is cut: $bar" ;; esac
echo "the anomalies screen shows the 5 planted findings"
tmux_stop

step "resize keeps the selection visible"
tmux_start --size 100x40 "$KEYWARD_BIN"
wait_for "datasets/claims-2024"
screen | sed -n 1p | grep -qF " 7 Anomalies" || fail "full tab titles at 100 columns: $(screen | sed -n 1p)"
keys G
wait_for "zz/k40"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 100 -y 25
wait_gone "zz/k16"          # the window is smaller now
screen | grep -qF "zz/k40" || fail "the selected last row scrolled out of view after shrinking"
keys Enter                  # the detail pane names the selected key
wait_for "── zz/k40 "
keys Enter
wait_gone "── zz/k40 "
echo "zz/k40 still selected and visible at 25 rows"

step "a taller window fills from above: no blank rows"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 100 -y 45
wait_for "zz/k04"
# rows between the header and the status bar are all keys
body=$(screen | sed -n '4,43p')  # 45 rows: title, info, header, 40 rows, status, message
blank=$(printf '%s\n' "$body" | grep -c '^ *$' || true)
[ "$blank" = 0 ] || fail "$blank blank rows in a window with keys to show"
screen | sed -n '43p' | grep -qF "zz/k40" || fail "the selected row is not at the bottom after growing"
keys Enter
wait_for "── zz/k40 "
echo "filled from above, zz/k40 still selected"
keys Q
wait_for "[exited 0]"
echo PASS
