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

here=$(cd "$(dirname "$0")" && pwd)
par_name() { basename "$1"; }
par_item() { CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} "$1"; }
par_note() { grep -o '[0-9]*%: Checks: [0-9]*' "$1" | tail -n 1; }
par_show() { cat "$1"; }

PAR_LOGDIR=$logdir PAR_WHAT="unit suites"
source "$here/parallel_lib.sh"
par_tmpdir
par_run "$@"
