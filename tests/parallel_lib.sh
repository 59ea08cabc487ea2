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
# par_run ITEM...: returns non-zero if any item failed.

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
