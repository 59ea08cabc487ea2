#!/usr/bin/env bash
# run-shell-tests.sh — run every tests/sh/*.sh against the real binary.
#
# Each test is a bash script that makes its own deployment (SoftHSM2 token
# directory, database) in a temp dir, so they run in parallel (JOBS at a
# time, default 2).  Prints each test's name and PASS/FAIL; a failing test's
# output is kept in $BUILD/shtest/NAME.log and shown; the last line is
# "N passed, N failed".  Exit status non-zero if any test failed.
#
# Usage: KEYWARD_BIN=/path/to/keyward tests/run-shell-tests.sh [NAME...]
#   NAME: a test's file name without .sh (default: all but SHTESTS_EXCEPT,
#   a space-separated list of names).  LABEL, if set, starts each line.
#   Libraries (lib.sh, *_lib.sh) are sourced by tests, never run.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${KEYWARD_BIN:?set KEYWARD_BIN to the keyward binary}"
export KEYWARD_BIN
[ -x "$KEYWARD_BIN" ] || { echo "run-shell-tests: $KEYWARD_BIN is not executable" >&2; exit 2; }
JOBS=${JOBS:-2}
logdir=${BUILD:-build}/shtest
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)

tests=()
if [ $# -gt 0 ]; then
	for n in "$@"; do tests+=("$here/sh/${n%.sh}.sh"); done
else
	for t in "$here"/sh/*.sh; do
		case $(basename "$t") in lib.sh | *_lib.sh) continue ;; esac
		case " ${SHTESTS_EXCEPT:-} " in *" $(basename "$t" .sh) "*) continue ;; esac
		tests+=("$t")
	done
fi

# One test: run it with its output in a log; record the verdict in a file.
run_one() {
	local t=$1 name
	name=$(basename "$t" .sh)
	local start=$SECONDS
	if (cd "$here/.." && timeout "${TEST_TIMEOUT:-600}" bash "$t") >"$logdir/$name.log" 2>&1; then
		echo PASS >"$logdir/$name.verdict"
	else
		echo "FAIL (exit $?)" >"$logdir/$name.verdict"
	fi
	printf '%s%-40s %s (%ds)\n' "${LABEL:+[$LABEL] }" "$name" "$(cat "$logdir/$name.verdict")" $((SECONDS - start))
}

running=0
for t in "${tests[@]}"; do
	rm -f "$logdir/$(basename "$t" .sh).verdict"
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

passed=0
failed=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	if [ "$(cat "$logdir/$name.verdict" 2>/dev/null)" = PASS ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo
		echo "---- ${LABEL:+[$LABEL] }$name failed; its output ($logdir/$name.log, last 60 lines):"
		tail -n 60 "$logdir/$name.log"
	fi
done
echo
echo "${LABEL:+[$LABEL] }shell tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
