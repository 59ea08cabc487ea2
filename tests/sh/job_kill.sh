#!/usr/bin/env bash
# job_kill.sh — kill -9 a running `keyward job run` at 50+ random points of
# a rewrap and 50+ of a re-encryption, resuming each time; at the end every
# asset decrypts, the catalogue holds each asset once under the newest
# version, every job is done and `audit verify` is intact.
#
# Rotations go through their requests (approved by the demo's bob and
# carol): executing one queues the job and runs it, and a killed execution
# or run is carried on by `request execute` / `job run`.  Small batches
# (job_batch in config.json) so that kills land between and inside many
# transactions.  A job that finishes before enough kills landed is
# followed by another rotation, so every kill hits real work.
# tests/tool_jobs registers the rewrap's assets in bulk and checks every
# catalogue DEK at the end.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
TOOL=${KEYWARD_TOOL_JOBS:-$(dirname "$KEYWARD_BIN")/tests/tool_jobs}
[ -x "$TOOL" ] || fail "no $TOOL (make shtest builds it)"
KILLS=${JOB_KILLS:-50}
python3 - "$KEYWARD_HOME/config.json" <<'P'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["job_batch"] = 20
json.dump(c, open(p, "w"), indent=2)
P

job_state() {
	"$KEYWARD_BIN" job show "$1" --json >"$OUT" 2>"$ERR" || fail "job show $1"
	jget "$OUT" 'd["state"]'
}

# A rotation through its request, approved by the demo's approvers but not
# executed: rewrap for `key rotate`, re-encryption for the emergency
# rotation that `key compromise` opens.  Its id in RID.
open_rotation() {
	local key=$1 kind=$2 who
	if [ "$kind" = rewrap ]; then
		ok key rotate "$key" --reason "kill test" --json
	else
		ok key compromise "$key@$V" --reason "kill test" --json
	fi
	RID=$(jget "$OUT" 'd["id"]')
	for who in bob carol; do
		[ "$(kw_request_state "$RID")" = pending ] || break
		ok --user "$who" request approve "$RID"
	done
	[ "$(kw_request_state "$RID")" = approved ] || fail "request $RID was not approved"
	V=$((V + 1))
}

# kill_loop KEY KIND: open a rotation, then over and over start what
# carries it on -- `request execute` (which queues the job and runs it)
# until the request is executed, then `job run` of its job -- and, once the
# run reported its first batch, kill -9 it after a further random 0..0.2 s;
# until KILLS kills hit a live run.  A rotation whose job finishes is
# followed by the next one.  Leaves V at the newest version, its job run
# to the end.
#
# Why after the first report and not from the process start: SoftHSM2's
# file store rewrites token.object in place (ftruncate, then write) at
# every C_Login, so a kill in that window destroys the token whatever
# keyward does (seen with JOB_KILL_ANYWHERE=1, which kills from the start).
kill_loop() {
	local key=$1 kind=$2 kills=0 runs=0 pid rc jid="" log=$W/run.$2.log
	V=1
	open_rotation "$key" "$kind"
	while [ "$kills" -lt "$KILLS" ]; do
		: >"$log"
		if [ -n "$jid" ]; then
			"$KEYWARD_BIN" job run "$jid" >/dev/null 2>"$log" &
		else
			"$KEYWARD_BIN" request execute "$RID" >/dev/null 2>"$log" &
		fi
		pid=$!
		if [ "${JOB_KILL_ANYWHERE:-0}" != 1 ]; then
			for _ in $(seq 1 500); do
				grep -q '"done"' "$log" 2>/dev/null && break
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.01
			done
		fi
		sleep "0.$(printf '%03d' $((RANDOM % 200)))"
		if kill -9 "$pid" 2>/dev/null; then
			kills=$((kills + 1))
			wait "$pid" 2>/dev/null || true
		else
			rc=0
			wait "$pid" || rc=$?
			[ "$rc" = 0 ] || { cat "$log" >&2; fail "$kind: run for $RID exited $rc"; }
		fi
		runs=$((runs + 1))
		[ "$runs" -lt $((KILLS * 4)) ] || fail "$kind: $runs runs for $kills kills"
		# A progress line means the request was executed and names its
		# job; without one (killed early), the request says.
		if [ -z "$jid" ]; then
			jid=$(sed -n 's/^{"job":"\([^"]*\)".*/\1/p' "$log" | head -n1)
			if [ -z "$jid" ] && [ "$(kw_request_state "$RID")" = executed ]; then
				ok request show "$RID" --json
				jid=$(jget "$OUT" 'd["job"]')
			fi
		fi
		# finished on its own: the next rotation gives the next kills work
		if [ "${rc:-1}" = 0 ] && [ "$kills" -lt "$KILLS" ]; then
			open_rotation "$key" "$kind"
			jid=""
		fi
		rc=1
	done
	# the last rotation carried to its end without interruption
	if [ -z "$jid" ]; then
		[ "$(kw_request_state "$RID")" = executed ] || ok request execute "$RID"
		ok request show "$RID" --json
		jid=$(jget "$OUT" 'd["job"]')
	fi
	ok job run "$jid"
	[ "$(job_state "$jid")" = done ] || fail "$kind job $jid did not finish: $(cat "$OUT")"
	echo "$kind: $kills kills over $runs runs, up to version $V"
}

step "rewrap: 3000 assets, kill -9 at $KILLS+ random points"
ok key create features/kill
"$TOOL" register features/kill 3000 >/dev/null || fail "register"
kill_loop features/kill rewrap
"$TOOL" check features/kill >"$OUT" || fail "check"
read -r _ n _ _ _ unwrapped vname vcount <"$OUT"
[ "$n" = 3000 ] && [ "$unwrapped" = 3000 ] && [ "$vname" = "v$V" ] && [ "$vcount" = 3000 ] ||
	fail "after rewrap: $(cat "$OUT") (want 3000 assets, all under v$V and unwrapping)"

step "re-encryption: 24 files, kill -9 at $KILLS+ random points"
ok key create datasets/kill
for i in $(seq 1 24); do
	head -c $((RANDOM * 8 + i)) /dev/urandom >"$W/plain.$i"
	ok protect --key datasets/kill --asset "dataset:kill/part-$i" "$W/plain.$i" "$W/part.$i.kw"
done
kill_loop datasets/kill re-encrypt
"$TOOL" check datasets/kill >"$OUT" || fail "check"
read -r _ n _ _ _ unwrapped vname vcount <"$OUT"
[ "$n" = 24 ] && [ "$unwrapped" = 24 ] && [ "$vname" = "v$V" ] && [ "$vcount" = 24 ] ||
	fail "after re-encryption: $(cat "$OUT") (want 24 assets under v$V)"
for i in $(seq 1 24); do
	ok unprotect "$W/part.$i.kw" "$W/back.$i"
	cmp -s "$W/plain.$i" "$W/back.$i" || fail "file $i does not decrypt to its plaintext"
done
# every file's header names the newest version (re-encrypted, not only recorded)
python3 - "$V" "$W"/part.*.kw <<'P' || fail "a file's header does not name v$V"
import struct, sys
for path in sys.argv[2:]:
    b = open(path, "rb").read(700)
    off = 17
    for _ in range(5):
        (n,) = struct.unpack(">H", b[off:off + 2])
        off += 2 + n
    (v,) = struct.unpack(">I", b[off:off + 4])
    if v != int(sys.argv[1]):
        sys.exit(path + ": v%d" % v)
P
ls -a "$W" | grep -q '\.kwtmp\.' && fail "a temporary file was left behind: $(ls -a "$W")"

step "every job done, nothing unreachable, the log intact"
ok job list --all --json
python3 - "$OUT" <<'P' || fail "jobs: $(cat "$OUT")"
import json, sys
# this test's jobs (the demo leaves some of its own paused midway)
jobs = [j for j in json.load(open(sys.argv[1])) if j["key"] in ("features/kill", "datasets/kill")]
assert jobs, "no jobs"
for j in jobs:
    assert j["state"] == "done", j
    assert j["unreachable"] == 0, j
    assert j["done"] <= j["total"], j
P
ok audit verify
has "$OUT" intact
has "$OUT" "0 failing"
echo "PASS"
