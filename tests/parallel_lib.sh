# parallel_lib.sh — the scheduler both test runners share (sourced, never
# run): items run JOBS at a time, each with its output in its own log, a
# line per item as it ends, then the failures' logs and a count.
#
# The runner defines:
#   par_name ITEM      the item's name (its log is $PAR_LOGDIR/NAME.log)
#   par_item ITEM      run the item (stdout and stderr go to its log)
#   par_note LOG       text after the verdict (may print nothing)
#   par_show LOG       what of a failed item's log to show
# and sets JOBS, PAR_LOGDIR (existing), PAR_WHAT ("shell tests"...), and
# optionally LABEL (starts each line).
# par_tmpdir (optional, first): TMPDIR in memory (see below).
# par_run ITEM...: returns non-zero if any item failed.

# par_tmpdir: the tests' temp files (TMPDIR: SoftHSM2 tokens, databases,
# homes) go to a private directory in /dev/shm when TMPDIR is not set and
# /dev/shm is a memory file system with room (2 GB) on which programs run:
# every test commits and fsyncs hundreds of times, which on a shared disk is
# most of a test's wall time and much of its system time; in memory fsync
# returns at once.  The code paths are the same: only the disk is faster.
# KW_TEST_SHM=0 keeps /tmp.  The directory goes when the runner exits.
par_tmpdir() {
	[ -z "${TMPDIR:-}" ] && [ "${KW_TEST_SHM:-1}" != 0 ] || return 0
	[ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || return 0
	[ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 2097152 ] 2>/dev/null || return 0
	local d
	# a short name: console tests show paths in 120 columns
	d=$(mktemp -d /dev/shm/kw.XXXXXX) || return 0
	printf '#!/bin/sh\nexit 0\n' >"$d/exec-probe" && chmod 700 "$d/exec-probe" && "$d/exec-probe" 2>/dev/null || {
		rm -rf "$d"
		return 0
	}
	rm -f "$d/exec-probe"
	# as /tmp is: tests hand directories to another user (make_run's non-root
	# demo), who must reach them
	chmod 1777 "$d"
	PAR_TMPDIR=$d
	export TMPDIR=$d
	trap 'rm -rf "$PAR_TMPDIR"' EXIT
}

par_one() {
	local item=$1 name start=$SECONDS
	name=$(par_name "$item")
	if par_item "$item" >"$PAR_LOGDIR/$name.log" 2>&1; then
		echo PASS >"$PAR_LOGDIR/$name.verdict"
	else
		echo "FAIL (exit $?)" >"$PAR_LOGDIR/$name.verdict"
	fi
	printf '%s%-40s %s (%ds) %s\n' "${LABEL:+[$LABEL] }" "$name" "$(cat "$PAR_LOGDIR/$name.verdict")" \
		$((SECONDS - start)) "$(par_note "$PAR_LOGDIR/$name.log")"
}

par_run() {
	local item name running=0 passed=0 failed=0
	for item in "$@"; do
		rm -f "$PAR_LOGDIR/$(par_name "$item").verdict"
		par_one "$item" &
		running=$((running + 1))
		if [ "$running" -ge "$JOBS" ]; then
			wait -n
			running=$((running - 1))
		fi
	done
	wait
	for item in "$@"; do
		name=$(par_name "$item")
		if [ "$(cat "$PAR_LOGDIR/$name.verdict" 2>/dev/null)" = PASS ]; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			echo
			echo "---- ${LABEL:+[$LABEL] }$name failed; its output ($PAR_LOGDIR/$name.log):"
			par_show "$PAR_LOGDIR/$name.log"
		fi
	done
	echo
	echo "${LABEL:+[$LABEL] }$PAR_WHAT: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
