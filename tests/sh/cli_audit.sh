#!/usr/bin/env bash
# cli_audit.sh — `audit verify` against a tamper table applied with the
# sqlite3 shell: each case runs on a fresh copy of one deployment's
# database and must exit 5 naming the expected first bad sequence number;
# the untouched log must pass.  Also audit tail / show / pubkey.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/cli-audit --tag owner=audit-test
kw_rotate_done features/cli-audit || fail "rotation through its request"

step "an untouched log verifies"
ok audit verify
has "$OUT" "intact"
grep -qE '^entries checked: +[0-9]+ of [0-9]+$' "$OUT" || fail "entries line"
grep -qE '^newest signed head: size [0-9]+, root [0-9a-f]{64}, time [0-9-]+T[0-9:]+Z$' "$OUT" || fail "head line"
ok audit verify --json
jeq "$OUT" 'd["intact"]' true
jeq "$OUT" 'd["first_bad_seq"]' null
jeq "$OUT" 'd["entries_checked"] == d["entries_total"]' true
jeq "$OUT" 'len(d["head"]["root"])' 64
ok audit verify --entry 3
has "$OUT" "intact"
expect 3 audit verify --entry 999999
ok status --json
jeq "$OUT" 'd["last_verified_intact"]' true

step "audit tail / show / pubkey"
ok audit tail -n 5 --json
jeq "$OUT" 'len(d)' 5
jeq "$OUT" '[e["seq"] for e in d] == sorted(e["seq"] for e in d)' true
ok audit tail -n 10 --key features/cli-audit --json
jeq "$OUT" '[e["action"] for e in d]' '["key.create", "request.open", "request.execute"]'
ok audit tail --action request.execute --json
jeq "$OUT" 'all(e["action"] == "request.execute" for e in d)' true
jeq "$OUT" 'len(d) >= 1' true
ok audit tail --outcome denied --json
jeq "$OUT" 'all(e["outcome"] == "denied" for e in d)' true
ok audit tail --actor "$(id -un)" -n 2
[ "$(wc -l <"$OUT")" = 2 ] || fail "audit tail -n 2 printed $(wc -l <"$OUT") lines"
ok audit show 1 --json
jeq "$OUT" 'd["seq"]' 1
jeq "$OUT" 'd["event"]["seq"]' 1
jeq "$OUT" 'json.dumps(d["event"], sort_keys=True, separators=(",", ":")) == d["json"]' true
ok audit show 2
has "$OUT" "seq:        2"
has "$OUT" "leaf hash:  "
expect 3 audit show 99999999
expect 2 audit show -3
ok audit pubkey
has "$OUT" "-----BEGIN PUBLIC KEY-----"
openssl pkey -pubin -in "$OUT" -noout -text 2>/dev/null | grep -q "prime256v1\|P-256" || fail "not a P-256 public key"

# ---------------------------------------------------------------- tampering
sqlite3 "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
cp "$DB" "$W/pristine.db"
# The HSM's state goes with it: its anchor records the log's size, and a
# catalogue put back without it is a truncation (trust_personal.sh).
cp -a "$KEYWARD_HOME/tokens" "$W/pristine-tokens"
restore() {
	rm -f "$DB-wal" "$DB-shm"
	cp "$W/pristine.db" "$DB"
	rm -rf "$KEYWARD_HOME/tokens"
	cp -a "$W/pristine-tokens" "$KEYWARD_HOME/tokens"
}
n=$(sqlite3 "$DB" 'SELECT max(seq) FROM audit_events')
[ "$n" -gt 30 ] || fail "only $n audit events to tamper with"
M=$((n / 2)) # a middle entry

# tamper NAME EXPECTED_FIRST_BAD SQL: fresh copy, apply, verify.  Every
# case runs (in a subshell); the failures are counted and reported at the end.
failed_cases=()
tamper() {
	step "tamper: $1 (expect entry $2)"
	(tamper_case "$@") || failed_cases+=("$1")
}
tamper_case() {
	local name=$1 want=$2 sql=$3 rc=0
	restore
	sqlite3 "$DB" "$sql" || fail "sqlite3 could not apply: $sql"
	"$KEYWARD_BIN" audit verify >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" = 5 ] || fail "$name: audit verify exited $rc, expected 5"
	grep -q "^FAILED at entry $want: " "$OUT" || fail "$name: output does not name entry $want"
	has "$ERR" "entry $want"
	# --json says the same
	rc=0
	"$KEYWARD_BIN" audit verify --json >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" = 5 ] || fail "$name: audit verify --json exited $rc"
	jeq "$OUT" 'd["intact"]' false
	jeq "$OUT" 'd["first_bad_seq"]' "$want"
}

tamper modify "$M" \
	"UPDATE audit_events SET json = replace(json, '\"outcome\":\"ok\"', '\"outcome\":\"denied\"') WHERE seq = $M;
	 UPDATE audit_events SET json = replace(json, '\"actor\":\"', '\"actor\":\"x') WHERE seq = $M;"
tamper delete "$M" "DELETE FROM audit_events WHERE seq = $M;"
tamper insert "$M" \
	"UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= $M;
	 UPDATE audit_events SET seq = seq - 1000000 + 1 WHERE seq >= 1000000;
	 INSERT INTO audit_events(seq, json, leaf_hash)
	   SELECT $M, replace(json, '\"actor\":\"', '\"actor\":\"mallory'), leaf_hash FROM audit_events WHERE seq = $((M + 1));"
tamper duplicate "$M" \
	"UPDATE audit_events SET json = (SELECT json FROM audit_events WHERE seq = $((M + 1))),
	        leaf_hash = (SELECT leaf_hash FROM audit_events WHERE seq = $((M + 1))) WHERE seq = $M;"
# reorder: swap two rows' text and hashes
tamper reorder "$M" \
	"CREATE TEMP TABLE t AS SELECT seq, json, leaf_hash FROM audit_events WHERE seq IN ($M, $((M + 1)));
	 UPDATE audit_events SET json = (SELECT json FROM t WHERE seq = $((M + 1))),
	        leaf_hash = (SELECT leaf_hash FROM t WHERE seq = $((M + 1))) WHERE seq = $M;
	 UPDATE audit_events SET json = (SELECT json FROM t WHERE seq = $M),
	        leaf_hash = (SELECT leaf_hash FROM t WHERE seq = $M) WHERE seq = $((M + 1));"
tamper truncate "$((M + 1))" "DELETE FROM audit_events WHERE seq > $M;"
H=$(sqlite3 "$W/pristine.db" "SELECT size FROM audit_tree_heads WHERE size > $M ORDER BY size LIMIT 1")
P=$(sqlite3 "$W/pristine.db" "SELECT coalesce(max(size), 0) FROM audit_tree_heads WHERE size < $H")
tamper forge-head "$((P + 1))" "UPDATE audit_tree_heads SET root = randomblob(32) WHERE size = $H;"

[ ${#failed_cases[@]} = 0 ] || fail "tamper cases failed: ${failed_cases[*]}"

step "the pristine log still verifies"
restore
ok audit verify
has "$OUT" "intact"
echo "cli_audit: ok"
