#!/usr/bin/env bash
# A keyward process killed in the middle of its work leaves a state the next
# run recovers: protect killed mid-stream leaves an asset marked incomplete
# and a log that verifies; unprotect killed mid-stream leaves a temp file of
# partial plaintext that the next write to that destination removes.  That
# sweep removes only what nobody holds: a FIFO named like a temp file does
# not hang it, and a live writer's temp file survives it.
# FIFOs hold the writers mid-stream, so nothing here depends on timing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kw_demo_home
W=$KW_TMP/work
mkdir -p "$W"

# killed PID: send SIGKILL and check the writer died of it (status 137),
# i.e. it really was stopped mid-stream rather than finishing first.
killed() {
	local rc=0
	kill -9 "$1"
	wait "$1" 2>/dev/null || rc=$?
	[ "$rc" = 137 ] || fail "the writer was not killed mid-stream (exit status $rc)"
}

# wait_file GLOB: until a non-empty file matches (10 s at most)
wait_file() {
	for _ in $(seq 1 200); do
		for f in $1; do [ -s "$f" ] && return 0; done
		sleep 0.05
	done
	fail "no file matching $1 appeared"
}

# unprotect_midstream ENVELOPE OUT: an unprotect into OUT reading from a
# FIFO, fed the first 2 MB of ENVELOPE and left waiting for the rest, its
# temp file written; sets pid (the writer) and feed (the FIFO's fd);
# its messages go to $W/err.$(basename OUT).
unprotect_midstream() {
	local fifo out=$2
	fifo="$W/fifo.$(basename "$out")"
	mkfifo "$fifo"
	"$KEYWARD_BIN" unprotect "$fifo" "$out" 2>"$W/err.$(basename "$out")" &
	pid=$!
	exec {feed}>"$fifo"
	head -c 2000000 "$1" >&"$feed"
	wait_file "$(dirname "$out")/.$(basename "$out").kwtmp.*"
}

step "protect killed mid-stream"
mkfifo "$W/in"
"$KEYWARD_BIN" protect --key features/credit-risk --asset feature:recovery/a@1 "$W/in" "$W/a.kwe" 2>"$W/err.p" &
pid=$!
exec 3>"$W/in"
head -c 3000000 /dev/urandom >&3
wait_file "$W/.a.kwe.kwtmp.*"
killed "$pid"
exec 3>&-
[ ! -e "$W/a.kwe" ] || fail "a partial envelope reached its final name"
"$KEYWARD_BIN" asset list --limit 50 >"$W/assets"
grep 'feature:recovery/a@1' "$W/assets" | grep -q incomplete || { cat "$W/assets"; fail "the interrupted asset is not marked incomplete"; }
"$KEYWARD_BIN" audit verify >"$W/v" || { cat "$W/v"; fail "log does not verify after a killed protect"; }

step "the next protect to that destination removes the stale temp file and works"
head -c 100000 /dev/urandom >"$W/plain"
"$KEYWARD_BIN" protect --key features/credit-risk --asset feature:recovery/a@2 "$W/plain" "$W/a.kwe" 2>/dev/null
ls -a "$W" | grep -q '\.a\.kwe\.kwtmp\.' && fail "stale temp file left beside a.kwe"
"$KEYWARD_BIN" unprotect "$W/a.kwe" 2>/dev/null | cmp -s - "$W/plain" || fail "round trip after recovery"

step "unprotect killed mid-stream leaves partial plaintext only in a temp file, swept next time"
head -c 3000000 /dev/urandom >"$W/big"
"$KEYWARD_BIN" protect --key features/credit-risk --asset feature:recovery/b@1 "$W/big" "$W/b.kwe" 2>/dev/null
unprotect_midstream "$W/b.kwe" "$W/b.out"
killed "$pid"
exec {feed}>&-
[ ! -e "$W/b.out" ] || fail "partial plaintext reached its final name"
ls -a "$W" | grep -q '\.b\.out\.kwtmp\.' || fail "expected the killed writer's temp file (test setup)"
"$KEYWARD_BIN" unprotect "$W/b.kwe" "$W/b.out" 2>/dev/null || fail "unprotect after recovery"
cmp -s "$W/b.out" "$W/big" || fail "recovered output differs"
ls -a "$W" | grep -q '\.b\.out\.kwtmp\.' && fail "stale partial plaintext left beside b.out"

step "a FIFO named like a temp file neither hangs the next write nor is removed"
mkfifo "$W/.c.out.kwtmp.FIFO01"
rc=0
timeout 20 "$KEYWARD_BIN" unprotect "$W/b.kwe" "$W/c.out" 2>"$W/err.c" || rc=$?
[ "$rc" = 0 ] || fail "unprotect beside a FIFO failed or hung (status $rc): $(cat "$W/err.c")"
cmp -s "$W/c.out" "$W/big" || fail "output written beside a FIFO differs"
[ -p "$W/.c.out.kwtmp.FIFO01" ] || fail "the sweep removed a FIFO"

step "a live writer's temp file survives another writer's sweep of the same destination"
unprotect_midstream "$W/b.kwe" "$W/d.out"
live=$(ls "$W"/.d.out.kwtmp.*)
"$KEYWARD_BIN" unprotect "$W/b.kwe" "$W/d.out" 2>/dev/null || fail "the second writer failed"
[ -e "$live" ] || fail "the second writer's sweep removed the live writer's temp file"
tail -c +2000001 "$W/b.kwe" >&"$feed"
exec {feed}>&-
wait "$pid" || fail "the first writer failed after the sweep: $(cat "$W/err.d.out")"
cmp -s "$W/d.out" "$W/big" || fail "the first writer's output differs"
ls -a "$W" | grep -q '\.d\.out\.kwtmp\.' && fail "temp file left beside d.out"
"$KEYWARD_BIN" audit verify >"$W/v" || { cat "$W/v"; fail "log does not verify at the end"; }
echo "ok: killed writers recovered"
