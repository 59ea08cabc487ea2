#!/usr/bin/env bash
# Console at scale: first frame after the HSM login, time per keystroke
# (dispatch + paint + doupdate, logged by the console itself through
# KEYWARD_CONSOLE_TIMING) and peak RSS, on the deployment in KEYWARD_HOME.
# The peer is the sqlite3 shell running the first screen's query.  ROUNDS
# rounds (default 3), each the console's session and then the peer's
# query; every figure is the best round's, with the range beside it.
set -euo pipefail
: "${KEYWARD_HOME:?}"
home=$KEYWARD_HOME
rounds=${ROUNDS:-3}
source "$(dirname "$0")/../tests/sh/lib.sh"
export KEYWARD_HOME=$home
log=$KW_TMP/timing.log
lines() { wc -l < "$log"; }
press() { # one key, then wait until the console has logged it
	local before; before=$(lines)
	keys "$1"
	for _ in $(seq 1 200); do [ "$(lines)" -gt "$before" ] && return 0; sleep 0.02; done
	echo "no timing line after key $1" >&2
}
for r in $(seq 1 "$rounds"); do
	: > "$log"
	tmux_start KEYWARD_CONSOLE_TIMING="$log" -- "$KEYWARD_BIN"
	for _ in $(seq 1 300); do grep -q first-frame "$log" && break; sleep 0.05; done
	wait_for "keys" 30
	for _ in $(seq 1 20); do press j; done
	for _ in 1 2 3 4 5; do press NPage; done
	press G; press g; press s; press S; press s
	keys /; sleep 0.2  # the filter line is modal: its characters are timed, not the opening key
	for c in t e a m - 0 4; do press "$c"; done; keys Enter; sleep 0.2
	press Tab; for _ in $(seq 1 10); do press j; done; for _ in 1 2 3; do press NPage; done
	press G; press g
	# the new columns and screens: every key row carries its attention
	# flags; ! lists the keys needing attention; the schedule, approvals
	# and operations screens
	press 1; for _ in $(seq 1 10); do press j; done; press NPage; press G; press g
	press '!'; for _ in 1 2 3 4 5; do press j; done; press '!'
	press 3; for _ in 1 2 3; do press j; done
	press 4; press j; press 5; press j; press 1
	keys Q
	for _ in $(seq 1 100); do grep -q max-rss "$log" && break; sleep 0.05; done
	tmux_stop
	cp "$log" "$KW_TMP/timing.$r.log"
	python3 - "$home/keyward.db" >> "$KW_TMP/peer.ms" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
t = time.perf_counter()
db.execute("SELECT k.id, k.name, k.cur_version, k.cur_state, k.cur_created, k.assets, k.last_used, "
           "(SELECT group_concat(tag || '=' || value, ', ') FROM key_tags WHERE key_id = k.id) "
           "FROM keys k ORDER BY k.name LIMIT 40").fetchall()
print(f"{(time.perf_counter() - t) * 1000:.3f}")
PY
done
cat "$KW_TMP"/timing.*.log > "${BUILD:-build}/console-timing.log" 2>/dev/null || true
python3 - "$KW_TMP" "$rounds" <<'PY'
import re, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
first, median, slowest, rss, nkeys = [], [], [], [], []
for r in range(1, rounds + 1):
    text = open(f"{tmp}/timing.{r}.log").read()
    f = re.findall(r"first-frame ([0-9.]+) ms", text)
    keys = [float(x) for x in re.findall(r"key \S+ ([0-9.]+) ms", text)]
    m = re.findall(r"max-rss ([0-9]+) KiB", text)
    if f:
        first.append(float(f[0]))
    if keys:
        median.append(statistics.median(keys))
        slowest.append(max(keys))
        nkeys.append(len(keys))
    if m:
        rss.append(int(m[0]) / 1024)
peer = [float(x) for x in open(f"{tmp}/peer.ms").read().split()]

def cell(v, fmt=".1f"):
    if not v:
        return "n/a | n/a"
    b, w = min(v), max(v)
    return f"{b:{fmt}} ms | {b:{fmt}}–{w:{fmt}} ({(w - b) / b * 100 if b else 0:.0f} %)"

print("")
print("| what | best | range (spread) | target |")
print("|---|---|---|---|")
print(f"| first frame after HSM login | {cell(first)} | < 300 ms |")
n = f"{min(nkeys)}" if nkeys else "?"
print(f"| keystroke (move, page, sort, filter char, attention view, screen switch): median of {n} | {cell(median)} | < 16 ms |")
print(f"| keystroke, slowest | {cell(slowest)} | < 30 ms |")
print(f"| peak RSS (worst round) | {max(rss):.0f} MiB | - | < 64 MiB |" if rss else "| peak RSS | n/a | - | |")
print(f"| peer: sqlite3 (Python) running the first page's query alone | {cell(peer, '.2f')} | |")
if first and peer:
    print(f"\nFirst frame ÷ the peer's query (bests): {min(first) / min(peer):.1f}")
PY
