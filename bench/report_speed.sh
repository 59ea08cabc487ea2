#!/usr/bin/env bash
# report_speed.sh — `keyward report` over a log of EVENTS events (default
# 1,000,000), target under 5 s.  Builds a demo deployment and grows it with
# `keyward demo --events` (real protect events, signed heads, the HSM
# anchor kept), then times ROUNDS (default 3) reports per format, each a
# new process (HSM login, full verification, the period's aggregates,
# proofs of the cited events).  The peer is the sqlite3 shell running the
# report's own aggregate queries over the same period, and the full log
# read once (SELECT sum(length(json))), both on the same database.
set -euo pipefail
EVENTS=${EVENTS:-1000000}
ROUNDS=${ROUNDS:-3}
source "$(dirname "$0")/../tests/sh/lib.sh"
kw_demo_home
t0=$(date +%s.%N)
"$KEYWARD_BIN" demo --events "$EVENTS" >/dev/null
t1=$(date +%s.%N)
n=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events")
echo "# report over $n events ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)); log built in $(echo "$t1 - $t0" | bc) s"
best() { sort -n | head -1; }
span() { sort -n | sed -n '1p;$p' | paste -sd- ; }
for fmt in json csv html; do
	: >"$KW_TMP/t.$fmt"
	for _ in $(seq 1 "$ROUNDS"); do
		s=$(date +%s.%N)
		"$KEYWARD_BIN" report --format "$fmt" --out "$KW_TMP/r.$fmt"
		e=$(date +%s.%N)
		echo "$e - $s" | bc >>"$KW_TMP/t.$fmt"
	done
	echo "| keyward report --format $fmt | $(best <"$KW_TMP/t.$fmt") s | $(span <"$KW_TMP/t.$fmt") | $(stat -c %s "$KW_TMP/r.$fmt") bytes |"
done
: >"$KW_TMP/t.peer"
for _ in $(seq 1 "$ROUNDS"); do
	s=$(date +%s.%N)
	sqlite3 "$KW_DB" >/dev/null <<'SQL'
SELECT substr(time, 1, 10), count(*) FROM audit_events WHERE time >= '1970' AND time < '9999' GROUP BY 1;
SELECT actor, object, action, outcome, count(*), min(seq) FROM audit_events WHERE time >= '1970' AND time < '9999'
  AND (action IN ('protect', 'unprotect', 'unprotect.override') OR outcome = 'denied') GROUP BY 1, 2, 3, 4;
SELECT sum(length(json)) FROM audit_events;
SQL
	e=$(date +%s.%N)
	echo "$e - $s" | bc >>"$KW_TMP/t.peer"
done
echo "| peer: sqlite3 shell, the report's aggregates + one read of the log | $(best <"$KW_TMP/t.peer") s | $(span <"$KW_TMP/t.peer") | - |"
echo "Target: keyward report under 5 s at 1M events."
