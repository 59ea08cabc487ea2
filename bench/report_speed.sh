#!/usr/bin/env bash
# report_speed.sh — `keyward report` over a log of EVENTS events (default
# 1,000,000), target under 5 s.  Builds a demo deployment and grows it with
# `keyward demo --events` (real protect events, signed heads, the HSM
# anchor kept), then times ROUNDS (default 3) reports per format, each a
# new process (HSM login, full verification with the key-use and per-day
# counts taken in its pass, the period's life-cycle events, proofs of the
# cited events).  The peer is the sqlite3 shell counting key use and
# events per day in SQL over the same period, and the full log read once
# (SELECT sum(length(json))), both on the same database.
#
# REPORT_HOME=DIR reuses a deployment grown before (a KEYWARD_HOME with
# its softhsm2.conf inside): growing 1M events takes many minutes on a
# loaded machine.  Rounds interleave the formats and the peer, so all see
# the same load; each row gives wall and CPU (user + system) seconds, min
# and max over the rounds: on a shared machine, compare the CPU.
set -euo pipefail
EVENTS=${EVENTS:-1000000}
ROUNDS=${ROUNDS:-3}
source "$(dirname "$0")/../tests/sh/lib.sh"
if [ -n "${REPORT_HOME:-}" ]; then
	export KEYWARD_HOME=$REPORT_HOME SOFTHSM2_CONF=$REPORT_HOME/softhsm2.conf
	KW_DB=$KEYWARD_HOME/keyward.db
	built="reusing $REPORT_HOME"
else
	kw_demo_home
	t0=$(date +%s.%N)
	"$KEYWARD_BIN" demo --events "$EVENTS" >/dev/null
	t1=$(date +%s.%N)
	built="log built in $(echo "$t1 - $t0" | bc) s"
fi
n=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events")
echo "# report over $n events ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)); $built"

peer() {
	sqlite3 "$KW_DB" >/dev/null <<'SQL'
SELECT substr(time, 1, 10), count(*) FROM audit_events WHERE time >= '1970' AND time < '9999' GROUP BY 1;
SELECT actor, object, action, outcome, count(*), min(seq) FROM audit_events WHERE time >= '1970' AND time < '9999'
  AND (action IN ('protect', 'unprotect', 'unprotect.override') OR outcome = 'denied') GROUP BY 1, 2, 3, 4;
SELECT sum(length(json)) FROM audit_events;
SQL
}

# timed LABEL CMD...: one run; appends "WALL CPU" to $KW_TMP/t.LABEL
timed() {
	local label=$1
	shift
	/usr/bin/time -f '%e %U %S' -o "$KW_TMP/one" "$@"
	awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$KW_TMP/one" >>"$KW_TMP/t.$label"
}

# row LABEL TEXT: "| TEXT | wall min-max | CPU min-max |"
row() {
	local w c
	w=$(cut -d' ' -f1 <"$KW_TMP/t.$1" | sort -n | sed -n '1p;$p' | paste -sd-)
	c=$(cut -d' ' -f2 <"$KW_TMP/t.$1" | sort -n | sed -n '1p;$p' | paste -sd-)
	echo "| $2 | $w s | $c s |"
}

export KW_DB
export -f peer
for _ in $(seq 1 "$ROUNDS"); do
	for fmt in json csv html; do
		timed "$fmt" "$KEYWARD_BIN" report --format "$fmt" --out "$KW_TMP/r.$fmt"
	done
	timed peer bash -c peer
done
echo "| what | wall | CPU |"
echo "|---|---|---|"
for fmt in json csv html; do
	row "$fmt" "keyward report --format $fmt ($(stat -c %s "$KW_TMP/r.$fmt") bytes)"
done
row peer "peer: sqlite3 shell, key use and per-day counts in SQL + one read of the log"
echo "Target: keyward report under 5 s at 1M events."
