#!/usr/bin/env bash
# Several keyward processes on one deployment at once (the brief's shared
# admin host): no command may fail, no rotation step or audit entry may be
# lost or duplicated, and the log must verify afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kw_demo_home
W=$KW_TMP/work
mkdir -p "$W"
head -c 300000 /dev/urandom > "$W/plain"

step "one key, 3 writers rotating it 4 times each, 3 writers protecting 4 files each, 2 readers"
# A rotation is a request that bob approves and the officer executes; one
# request per key is open at a time, so a writer that finds one open (exit
# 9) tries again: the contention is on opening, approving and executing.
rotate_until_done() {
	local tries=0 rc
	while :; do
		rc=0
		kw_rotate_done features/contended 2>>"$1" || rc=$?
		[ "$rc" = 0 ] && return 0
		tries=$((tries + 1))
		[ "$tries" -lt 200 ] || return 1
		sleep 0.1
	done
}
"$KEYWARD_BIN" key create features/contended >/dev/null 2>&1 || fail "key create"
before=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events")
pids=()
for w in 1 2 3; do
	( for i in 1 2 3 4; do rotate_until_done "$W/log.rot$w" || exit 1; done ) &
	pids+=($!)
	( for i in 1 2 3 4; do
		"$KEYWARD_BIN" protect --key features/credit-risk --asset "feature:contended/w$w@$i" "$W/plain" "$W/p$w-$i.kwe" 2>>"$W/err.prot$w" || exit 1
	  done ) &
	pids+=($!)
done
for r in 1 2; do
	( for i in 1 2 3; do "$KEYWARD_BIN" key list >/dev/null 2>>"$W/err.read$r" || exit 1; "$KEYWARD_BIN" status >/dev/null 2>>"$W/err.read$r" || exit 1; done ) &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || { cat "$W"/err.* >&2; fail "$failed of ${#pids[@]} concurrent workers failed"; }

step "every rotation landed exactly once: versions 1..13, one active"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM key_versions kv JOIN keys k ON k.id = kv.key_id WHERE k.name = 'features/contended'")" = 13 ] ||
	fail "expected 13 versions"
[ "$(sqlite3 "$KW_DB" "SELECT group_concat(version) FROM (SELECT version FROM key_versions kv JOIN keys k ON k.id = kv.key_id WHERE k.name = 'features/contended' AND state = 'active')")" = 13 ] ||
	fail "expected version 13 alone to be active"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events WHERE action = 'request.execute' AND outcome = 'ok' AND object = 'key:features/contended'")" = 12 ] ||
	fail "expected 12 executed rotations"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM requests WHERE object = 'key:features/contended' AND state = 'executed'")" = 12 ] ||
	fail "expected 12 executed requests"

step "every protect landed exactly once and round-trips"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM assets WHERE name LIKE 'contended/%'")" = 12 ] || fail "expected 12 assets"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events WHERE action = 'protect' AND json LIKE '%contended/%'")" = 12 ] ||
	fail "expected 12 protect events"
for f in "$W"/p*.kwe; do
	"$KEYWARD_BIN" unprotect "$f" 2>/dev/null | cmp -s - "$W/plain" || fail "$f does not round-trip"
done

step "the log is contiguous, covered by signed heads, and verifies"
n=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events")
[ "$(sqlite3 "$KW_DB" "SELECT max(seq) FROM audit_events")" = "$n" ] || fail "sequence has gaps"
[ "$n" -gt "$before" ] || fail "no events were added"
"$KEYWARD_BIN" audit verify >"$W/verify" 2>&1 || { cat "$W/verify" >&2; fail "audit verify failed after concurrent work"; }
grep -q intact "$W/verify" || fail "verify did not say intact"
echo "ok: $(( n - before )) events from 14 concurrent workers, log intact"
