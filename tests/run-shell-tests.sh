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
#   The tests' temp dirs go to memory when it can (par_tmpdir); the demo
#   deployment is made once per run and copied by each test (lib.sh).
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

source "$here/parallel_lib.sh"
par_tmpdir

# The demo template (see lib.sh): made afresh each run, so never stale,
# when two or more of the tests would run `init --demo`; a test copies it.
# KW_DEMO_TEMPLATE=none: every test runs its own init.
if [ "${KW_DEMO_TEMPLATE:-}" = none ]; then
	unset KW_DEMO_TEMPLATE
elif [ "$(grep -lE '^[^#]*(kw_demo_home|kw_init_demo)' "${tests[@]}" | wc -l)" -ge 2 ]; then
	KW_DEMO_TEMPLATE=${PAR_TMPDIR:-$logdir}/demo-template
	start=$SECONDS
	if (cd "$here/.." && bash -c 'source tests/sh/lib.sh && kw_demo_template_make "$1"' _ "$KW_DEMO_TEMPLATE") \
		>"$logdir/demo-template.log" 2>&1; then
		echo "${LABEL:+[$LABEL] }demo template made ($((SECONDS - start))s)"
		export KW_DEMO_TEMPLATE
	else
		echo "${LABEL:+[$LABEL] }demo template FAILED ($logdir/demo-template.log); every test runs init --demo:"
		cat "$logdir/demo-template.log"
		unset KW_DEMO_TEMPLATE
	fi
fi

# One test, from the repository's root, bounded in time.
par_name() { basename "$1" .sh; }
par_item() { cd "$here/.." && timeout "${TEST_TIMEOUT:-600}" bash "$1"; }
par_note() { :; }
par_show() { echo "(last 60 lines)"; tail -n 60 "$1"; }

PAR_LOGDIR=$logdir PAR_WHAT="shell tests"
par_run "${tests[@]}"
