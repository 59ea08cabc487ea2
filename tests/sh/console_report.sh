#!/usr/bin/env bash
# console_report.sh — the console starts an auditor report at 80x24:
# `:report` opens the form, the report runs in the background with its
# phase and percent, and the file's path is shown at the end.  The JSON it
# wrote is parsed back and is the report `keyward report` makes for the
# same period and role (the generation time, the verification counts and
# the proofs' tree size aside: the log grows between the two).  Esc
# cancels a report: no file (not even a temporary) is left, and the
# attempt is in the log as a failed report.read.  A role without
# report.read is refused by the same check as the CLI's, and recorded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
out=$KW_TMP/out
mkdir -p "$out"
# A closed period: the demo's history, and nothing the test itself adds.
to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1

KW_CWD=$out tmux_start --size 80x24 KEYWARD_PASSPHRASE= "$KEYWARD_BIN"
wait_for "features/credit-risk"

step ":report opens the form with defaults; the report runs with its phase and percent"
keys : ; wait_for ":"
keys "report" Enter
wait_for "Auditor report"
today=$(date -u +%Y-%m-%d)
screen | grep -qF "$today" || fail "the form's To is not today ($today)"
screen | grep -qF "html" || fail "the form's format is not html by default"
# From, To, Format, Role, Output: ^U clears a field
keys C-u "2000-01-01" Tab C-u "$to" Tab C-u "json" Tab "auditor" Tab "console.json" Enter
# one capture per look, so the line checked is the line seen while it runs
seen=0
for _ in $(seq 1 100); do
	if screen | grep -qE "Report: (aggregates|verification|proofs|rendering) \(phase [1-4] of 4\) +[0-9]+%"; then
		seen=1
		break
	fi
	screen | grep -qF "Report written" && break
	sleep 0.1
done
[ $seen = 1 ] || fail "no phase and percent on the progress line while the report ran"
wait_for "Report written" 30
screen | grep -qF "report written: $out/console.json" || fail "the message line does not say where the file is"
[ -s "$out/console.json" ] || fail "no file at $out/console.json"

step "the file parses, and is the CLI's report for the same period and role"
"$KEYWARD_BIN" report --from 2000-01-01 --to "$to" --role auditor --format json --out "$KW_TMP/cli.json"
python3 - "$out/console.json" "$KW_TMP/cli.json" <<'PY' || fail "the console's report differs from the CLI's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["report"] == "audit" and a["redacted"] is True, (a["report"], a["redacted"])
assert a["summary"]["events"] > 1000, a["summary"]
for d in (a, b):
    d.pop("generated")
    v = d.pop("verification")
    assert v["intact"] is True, v
    for p in d["proofs"].values():
        p.pop("path", None)
        p.pop("tree_size", None)
diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
assert not diff, "sections differ: %s" % diff
print("same report: %d sections, %d events in the period" % (len(a), a["summary"]["events"]))
PY
"$KEYWARD_BIN" audit tail --action report.read --json >"$KW_TMP/reads.json"
python3 - "$KW_TMP/reads.json" <<'PY' || fail "the console's report is not recorded as report.read"
import json, sys
ev = json.load(open(sys.argv[1]))
ok = [e for e in ev if e["outcome"] == "ok"]
assert len(ok) == 2, ev  # the console's, then the CLI's
assert ok[0]["details"]["rendered_for"] == "auditor", ok[0]
PY

step "Esc cancels a running report: no file, and a failed report.read"
cancelled=0
for try in 1 2 3; do
	keys R
	wait_for "Auditor report"
	keys Tab Tab C-u "csv" Tab Tab "cancel.csv"
	# Enter and Esc together: the Esc reaches the console while the
	# worker is still opening its session
	keys Enter Escape
	wait_for "Report " 30
	i=0
	while ! screen | grep -qE "Report (cancelled|written|failed)"; do
		sleep 0.1
		i=$((i + 1))
		[ $i -lt 300 ] || fail "the report neither ended nor was cancelled"
	done
	if screen | grep -qF "Report cancelled; no file written"; then
		cancelled=1
		break
	fi
	echo "try $try: the report ended before Esc reached it; again" >&2
	rm -f "$out/cancel.csv"
done
[ $cancelled = 1 ] || fail "Esc never cancelled a report"
[ ! -e "$out/cancel.csv" ] || fail "a cancelled report left $out/cancel.csv"
left=$(find "$out" -name '*cancel.csv*' | wc -l)
[ "$left" = 0 ] || fail "a cancelled report left $left file(s): $(find "$out" -name '*cancel.csv*')"
"$KEYWARD_BIN" audit tail --action report.read --outcome error --json >"$KW_TMP/err.json"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); assert any("report cancelled" in x["details"]["message"] for x in e), e' \
	"$KW_TMP/err.json" || fail "the cancelled report is not recorded"

step "an approver has no report.read: refused before the form, and recorded"
tmux_stop
tmux_start --size 80x24 KEYWARD_USER=bob KEYWARD_PASSPHRASE= "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys : ; wait_for ":"
keys "report" Enter
wait_for "not allowed to report.read"
screen | grep -qF "Auditor report" && fail "the form opened for a role without report.read"
"$KEYWARD_BIN" audit tail --action report.read --outcome denied --json >"$KW_TMP/den.json"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); assert [x for x in e if x["actor"] == "bob"], e' \
	"$KW_TMP/den.json" || fail "the refusal is not recorded"
echo "PASS"
