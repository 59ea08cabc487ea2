#!/usr/bin/env bash
# console_forward.sh — the status bar shows each audit sink's lag: a sink
# that caught up shows a small number, one that never ran the whole log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
python3 - "$KEYWARD_HOME/config.json" "$KW_TMP/audit.jsonl" <<'P'
import json, sys
c = json.load(open(sys.argv[1]))
c["audit_sinks"] = [{"name": "ship", "type": "file", "path": sys.argv[2]},
                    {"name": "idle", "type": "file", "path": sys.argv[2] + ".2"}]
json.dump(c, open(sys.argv[1], "w"))
P
"$KEYWARD_BIN" audit forward --sink ship >"$KW_TMP/fwd.out" 2>&1 || fail "audit forward: $(cat "$KW_TMP/fwd.out")"
total=$(sqlite3 "$KW_DB" 'SELECT max(seq) FROM audit_events')

step "the status bar names both sinks with their lag"
tmux_start --size 220x30 "$KEYWARD_BIN"
wait_for "fwd ship"
bar=$(screen | grep -o 'fwd ship [0-9]* idle [0-9]*') || fail "no lag segment: $(screen | tail -3)"
ship=$(echo "$bar" | awk '{print $3}')
idle=$(echo "$bar" | awk '{print $5}')
[ "$ship" -le 3 ] || fail "the sink that caught up shows lag $ship"
[ "$idle" -ge "$total" ] || fail "the sink that never ran shows lag $idle, the log has $total entries"
echo "status bar: $bar"
tmux_stop
echo ok
