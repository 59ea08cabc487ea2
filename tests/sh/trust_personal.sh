#!/usr/bin/env bash
# trust_personal.sh — a personal deployment attacked by someone who can
# write its files but does not use the HSM: a rewritten and re-hashed
# history, a truncation at an older signed head, a role edit, a
# compromised->active edit and an inserted user.  Each is refused or
# detected (exit 5, naming what is wrong), and the untouched parts keep
# working.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
TAMPER="python3 $(dirname "$0")/tamper.py"

# A new demo with its own token directory (what make run makes).
fresh() {
	rm -rf "$KEYWARD_HOME"
	"$KEYWARD_BIN" init --demo $KW_ARGON2 >"$OUT" 2>"$ERR" || fail "init --demo exited $?"
}

kw_setup
fresh
expect 0 audit verify
grep -q '^intact' "$OUT" || fail "a fresh demo does not verify intact"

step "finding 1: an event rewritten, its hashes made consistent, newer heads deleted"
K=12
$TAMPER "$DB" rewrite $K mallory
# The next command of any kind must not get a head signed over the rewrite.
expect 5 key create features/after-rewrite
grep -q "anchor\|anchored\|extend" "$ERR" || fail "the refusal does not say the log no longer extends the anchor"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM keys WHERE name = 'features/after-rewrite'")" = 0 ] ||
	fail "a change was made on a rewritten log"
expect 5 audit verify
grep -qE "FAILED" "$OUT" || fail "verify does not report the rewrite"
grep -qE "size [0-9]+|entry [0-9]+" "$ERR" || fail "verify does not name where the log disagrees"
echo "rewrite refused and detected"

step "truncation exactly at an older signed head"
fresh
H=$(sqlite3 "$DB" "SELECT size FROM audit_tree_heads ORDER BY size LIMIT 1 OFFSET 3")
N=$(sqlite3 "$DB" "SELECT max(seq) FROM audit_events")
[ "$H" -lt "$N" ] || fail "no older head to cut at"
$TAMPER "$DB" truncate "$H"
expect 5 audit verify
grep -q "the log was truncated" "$ERR" || fail "verify does not say the log was truncated"
grep -q "records $N entries" "$ERR" || fail "verify does not name the anchored size $N"
grep -qE "FAILED" "$OUT" || fail "verify does not report the truncation"
expect 5 key create features/after-truncation
echo "truncation detected"

step "a role edited in the users table"
fresh
sqlite3 "$DB" "UPDATE users SET roles = 31 WHERE name = 'dave'"
expect 5 --user dave key list
grep -q "users row 'dave' fails its HSM MAC" "$ERR" || fail "dave's edited row is not named"
expect 5 audit verify
grep -q "dave" "$OUT" || fail "verify does not name the edited row"
echo "role edit refused, and verify names the row"

step "a compromised version set back to active"
fresh
sqlite3 "$DB" "UPDATE key_versions SET state = 'active' WHERE version = 1 AND key_id =
	(SELECT id FROM keys WHERE name = 'inference/scoring-api');
	UPDATE key_versions SET state = 'retired' WHERE version = 2 AND key_id =
	(SELECT id FROM keys WHERE name = 'inference/scoring-api')"
echo data >"$W/in"
expect 5 protect --key inference/scoring-api --asset inference-log:x/y@1 "$W/in" "$W/out.kwe"
grep -q "inference/scoring-api' version" "$ERR" || fail "the edited version is not named"
[ ! -e "$W/out.kwe" ] || fail "an envelope was written under an edited version"
echo "compromised->active edit refused"

step "a wrap counter reset"
fresh
sqlite3 "$DB" "UPDATE key_versions SET wraps = 0 WHERE key_id = (SELECT id FROM keys WHERE name = 'models/fraud-v4') AND version = 2"
expect 5 protect --key models/fraud-v4 --asset model:fraud-v4/x@1 "$W/in" "$W/out2.kwe"
echo "counter reset refused"

step "an inserted user"
fresh
sqlite3 "$DB" "INSERT INTO users(name, roles, created, created_by) VALUES('mallory', 2, 0, 'x')"
expect 5 --user mallory key create features/mallory
grep -q "mallory" "$ERR" || fail "the inserted row is not named"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM keys WHERE name = 'features/mallory'")" = 0 ] ||
	fail "the inserted user made a key"
echo "inserted user refused"

step "a users row put back from before a lock (a genuine MAC) is caught by verify"
fresh
sqlite3 "$DB" "CREATE TABLE old_users AS SELECT * FROM users WHERE name = 'dave'"
expect 0 --user erin user lock dave
expect 4 --user dave status
sqlite3 "$DB" "DELETE FROM users WHERE name = 'dave'; INSERT INTO users SELECT * FROM old_users; DROP TABLE old_users"
expect 5 audit verify
grep -q "the users row 'dave' is not the one the audit log last recorded" "$OUT" ||
	fail "verify does not catch dave's replayed row"
echo "replayed users row detected"

step "a key version put back from before its compromise is caught by verify"
fresh
expect 0 key create features/replay
sqlite3 "$DB" "CREATE TABLE old_kv AS SELECT * FROM key_versions WHERE key_id = (SELECT id FROM keys WHERE name = 'features/replay')"
expect 0 key compromise features/replay@1 --reason "test: leaked"
sqlite3 "$DB" "DELETE FROM key_versions WHERE key_id = (SELECT id FROM keys WHERE name = 'features/replay');
	INSERT INTO key_versions SELECT * FROM old_kv; DROP TABLE old_kv"
expect 5 audit verify
grep -q "the key_versions row 'features/replay' version 1 is not the one the audit log last recorded" "$OUT" ||
	fail "verify does not catch the replayed version"
echo "replayed key version detected"

step "a request put back from before its approval (a genuine MAC) is caught by verify"
fresh
expect 0 key create features/replay2
expect 0 key rotate features/replay2 --json
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
sqlite3 "$DB" "CREATE TABLE old_rq AS SELECT * FROM requests WHERE id = '$rid'"
expect 0 --user bob request approve "$rid"
sqlite3 "$DB" "DELETE FROM requests WHERE id = '$rid'; INSERT INTO requests SELECT * FROM old_rq; DROP TABLE old_rq"
expect 5 audit verify
grep -q "the requests row '$rid' is not the one the audit log last recorded" "$OUT" ||
	fail "verify does not catch the replayed request"
echo "replayed request detected"

step "the verified line of status comes from a sealed record"
fresh
expect 0 audit verify
sqlite3 "$DB" "UPDATE meta SET value = replace(value, '\"intact\":true', '\"intact\":false') WHERE key = 'last_verified'"
expect 0 status
grep -q "verified:   never" "$OUT" || fail "status shows an edited verification record"
echo "edited verification record not shown"
echo PASS
