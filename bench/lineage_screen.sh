#!/usr/bin/env bash
# The lineage screen at scale: on the deployment in KEYWARD_HOME (section 9
# of run.sh made its 100k-node, 1M-edge graph), open the console, show
# :lineage KEY, then time ^R on that screen ROUNDS times (default 5): the
# console logs each keystroke's dispatch + reload (the walk) + paint +
# doupdate through KEYWARD_CONSOLE_TIMING, so each figure is a whole frame
# of the screen from the catalogue.  Prints "best median" in ms.
#   lineage_screen.sh KEY
set -euo pipefail
: "${KEYWARD_HOME:?}"
key=${1:?KEY}
home=$KEYWARD_HOME
rounds=${ROUNDS:-5}
source "$(dirname "$0")/../tests/sh/lib.sh"
export KEYWARD_HOME=$home
log=$KW_TMP/timing.log
: > "$log"
tmux_start KEYWARD_CONSOLE_TIMING="$log" -- "$KEYWARD_BIN"
wait_for "keys" 60
keys : ; keys -l "lineage $key" ; keys Enter
wait_for "downstream of key" 120
for _ in $(seq 1 "$rounds"); do
	before=$(grep -c '^key \^R' "$log" || true)
	keys C-r
	for _ in $(seq 1 1500); do
		[ "$(grep -c '^key \^R' "$log" || true)" -gt "$before" ] && break
		sleep 0.02
	done
done
keys Q
python3 - "$log" <<'PY'
import re, statistics, sys
v = [float(x) for x in re.findall(r"^key \^R ([0-9.]+) ms", open(sys.argv[1]).read(), re.M)]
print(f"{min(v):.1f} {statistics.median(v):.1f}" if v else "- -")
PY
