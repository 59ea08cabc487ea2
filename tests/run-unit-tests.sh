#!/usr/bin/env bash
# run-unit-tests.sh — run Check test binaries, JOBS at a time (default: the
# number of cores), each with its output in a log.
#
# Every suite makes its own SoftHSM2 token directory and database under its
# own temp dir, so suites do not share state and may run side by side.  Prints
# each suite's name, PASS/FAIL and seconds as it ends; a failing suite's log
# is shown in full at the end; the last line is "N passed, N failed".  Exit
# status non-zero if any suite failed.
#
# Usage: BUILD=build tests/run-unit-tests.sh BINARY...   (LABEL, if set, starts each line)
set -uo pipefail

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
logdir=${BUILD:-build}/unit
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
[ $# -gt 0 ] || { echo "usage: run-unit-tests.sh BINARY..." >&2; exit 2; }

run_one() {
	local bin=$1 name start=$SECONDS
	name=$(basename "$bin")
	if CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} "$bin" >"$logdir/$name.log" 2>&1; then
		echo PASS >"$logdir/$name.verdict"
	else
		echo "FAIL (exit $?)" >"$logdir/$name.verdict"
	fi
	printf '%s%-40s %s (%ds) %s\n' "${LABEL:+[$LABEL] }" "$name" "$(cat "$logdir/$name.verdict")" $((SECONDS - start)) \
		"$(grep -o '[0-9]*%: Checks: [0-9]*' "$logdir/$name.log" | tail -n 1)"
}

running=0
for bin in "$@"; do
	rm -f "$logdir/$(basename "$bin").verdict"
	run_one "$bin" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

passed=0
failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	if [ "$(cat "$logdir/$name.verdict" 2>/dev/null)" = PASS ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo
		echo "---- ${LABEL:+[$LABEL] }$name failed; its output ($logdir/$name.log):"
		cat "$logdir/$name.log"
	fi
done
echo
echo "${LABEL:+[$LABEL] }unit suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
