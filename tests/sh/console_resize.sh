#!/usr/bin/env bash
# console_resize.sh — below 80x24 the console says how big it must be and
# how big it is; growing the window back restores the screen; at 80x24
# the status bar compacts its facts and the operations screen keeps key
# names whole, progress on the bar's line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "shrink to 60x20"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 60 -y 20
wait_for "Terminal too small: 60x20"
screen | grep -qF "at least 80x24" || fail "the size message does not say the size needed"
screen | grep -qF "features/credit-risk" && fail "the key list is drawn into a too-small window"
echo "size message shown"

step "grow back to 120x40"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 120 -y 40
wait_for "features/credit-risk"
wait_gone "Terminal too small"
# (the demo's 5 anomalies take room: at 120 columns the HSM fact is compact)
screen | sed -n 39p | grep -qE "5 anomalies │ HSM (keyward: logged in|ok) │ audit [0-9]+ events, never verified │ 4 due, 4 overdue" ||
	fail "status bar not restored: $(screen | sed -n 39p)"
echo "screen restored"

step "at 80x24 the status bar says every fact, compacted, cut nowhere"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 80 -y 24
wait_for "HSM ok"
bar=$(screen | sed -n 23p)
for t in "root (" "5 anom" "HSM ok" " unverified" " due " " late"; do
	case "$bar" in *"$t"*) ;; *) fail "the 80-column status bar lacks '$t': $bar" ;; esac
done
case "$bar" in *"…"*) fail "the 80-column status bar is cut: $bar" ;; esac
step "on the operations screen at 80x24 key names and progress show whole"
keys 5
wait_for "unfinished job"
"$KEYWARD_BIN" job list --json | python3 -c '
import json, sys
for j in json.load(sys.stdin):
    print(j["key"], "%d/%d" % (j["done"], j["total"]))' | while read -r key prog; do
	screen | grep -qE " $key +v[0-9]+ -> v[0-9]+ " || fail "$key is cut on the operations screen at 80 columns"
	screen | grep -qE " %  $prog( |\$)" || fail "progress $prog of $key is not on its bar's line"
done
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 120 -y 40
keys 1
wait_for "4 due, 4 overdue"

step "keys still work after the resize"
keys 2
wait_for "newest first"
keys q
wait_for "features/credit-risk"
keys q
wait_for "[exited 0]"
echo PASS
