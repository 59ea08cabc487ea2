#!/usr/bin/env bash
# cli_bad_input.sh — each bad input gets its exit code and a message that
# says what is wrong, and changes nothing: wrong PIN, wrong module path,
# missing token, broken SoftHSM2 config, malformed config.json, a file that
# is not an envelope, a truncated envelope, an unknown key, an illegal
# state change.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/cli-bad
pattern "$W/plain" 100000
ok protect --key features/cli-bad --asset dataset:bad@1 "$W/plain" "$W/env"

# State that must not change: keys (but last_used: an unwrap that was tried
# is a use, and audited), assets, and -- for failures before the session
# opens -- the audit log byte for byte.
snap() {
	"$KEYWARD_BIN" key list --json 2>/dev/null | python3 -c '
import json, sys
keys = json.load(sys.stdin)
for k in keys: k.pop("last_used")
json.dump(keys, sys.stdout, indent=1)' >"$W/$1.keys" || fail "key list for snapshot"
	"$KEYWARD_BIN" asset list --limit 100000 --json >"$W/$1.assets" 2>/dev/null || fail "asset list for snapshot"
	sqlite3 "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
	audit_snapshot "$W/$1.audit"
}
# unchanged_catalogue: keys and assets as before.
unchanged_catalogue() {
	snap after
	cmp -s "$W/before.keys" "$W/after.keys" || fail "keys changed: $(diff "$W/before.keys" "$W/after.keys" | head -8)"
	cmp -s "$W/before.assets" "$W/after.assets" || fail "assets changed"
}
# unchanged_log: not one audit event added (the session never opened).
unchanged_log() {
	sqlite3 "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
	audit_snapshot "$W/now.audit"
	cmp -s "$W/before.audit" "$W/now.audit" || fail "the audit log changed: $(diff "$W/before.audit" "$W/now.audit" | head -5)"
}
step "wrong PIN: exit 4, the message says PIN, nothing logged or changed"
snap before
KEYWARD_PIN=wrong-pin-0000 expect 4 key create features/should-not-exist
has "$ERR" "PIN"
lacks "$ERR" "wrong-pin-0000"
unchanged_log
unchanged_catalogue

step "wrong module path: exit 7, the message names the path"
snap before
KEYWARD_PKCS11_MODULE=/nonexistent/libpkcs11.so expect 7 key list
has "$ERR" "/nonexistent/libpkcs11.so"
unchanged_log
KEYWARD_PKCS11_MODULE=/etc/hostname expect 7 status
has "$ERR" "/etc/hostname"
unchanged_log

step "missing token: exit 3, the message names it"
KEYWARD_TOKEN=nope expect 3 status
has "$ERR" "nope"
unchanged_log

step "a SOFTHSM2_CONF left in the environment is not followed"
SOFTHSM2_CONF=$W/missing.conf expect 0 status
snap before
step "broken SoftHSM2 configuration: the message names it"
cp "$KEYWARD_HOME/config.json" "$W/config.conf-good"
python3 - "$KEYWARD_HOME/config.json" "$W/missing.conf" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["softhsm2_conf"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
EOF
rc=0
"$KEYWARD_BIN" status >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" != 0 ] || fail "status with a missing SoftHSM2 config succeeded"
has "$ERR" "missing.conf"
cp "$W/config.conf-good" "$KEYWARD_HOME/config.json"
unchanged_log

step "malformed config.json: exit 7, the message names the problem"
cp "$KEYWARD_HOME/config.json" "$W/config.good"
printf '{"token": "keyward", ' >"$KEYWARD_HOME/config.json"
expect 7 status
has "$ERR" "config.json"
python3 - "$W/config.good" "$KEYWARD_HOME/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); c["token"] = 5
json.dump(c, open(sys.argv[2], "w"))
EOF
expect 7 key list
has "$ERR" "token"
python3 - "$W/config.good" "$KEYWARD_HOME/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); c["colour_of_sky"] = "blue"
json.dump(c, open(sys.argv[2], "w"))
EOF
expect 7 key list
has "$ERR" "colour_of_sky"
unchanged_log
cp "$W/config.good" "$KEYWARD_HOME/config.json"
expect 7 --home "$W/no-such-home" status
has "$ERR" "keyward init"
unchanged_catalogue

step "not an envelope: exit 2, no OUT, no asset"
snap before
expect 2 unprotect "$W/plain" "$W/out1"
has "$ERR" "not a keyward envelope"
[ ! -e "$W/out1" ] || fail "OUT written"
: >"$W/empty"
expect 2 unprotect "$W/empty" "$W/out1"
[ ! -e "$W/out1" ] || fail "OUT written for an empty file"
unchanged_catalogue

step "truncated envelope: exit 5, no OUT"
snap before
head -c 50000 "$W/env" >"$W/trunc"
expect 5 unprotect "$W/trunc" "$W/out2"
[ ! -e "$W/out2" ] || fail "OUT written for a truncated envelope"
head -c 40 "$W/env" >"$W/stub"
rc=0
"$KEYWARD_BIN" unprotect "$W/stub" >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" = 5 ] || [ "$rc" = 2 ] || fail "an envelope cut inside its header exited $rc"
[ ! -s "$OUT" ] || fail "bytes released from a header-only envelope"
unchanged_catalogue

step "unknown key: exit 3 for show, rotate, tag, state, protect"
snap before
expect 3 key show features/unknown
has "$ERR" "features/unknown"
expect 3 key rotate features/unknown
expect 3 key tag features/unknown a=b
expect 3 key state features/unknown 1 retired
expect 3 protect --key features/unknown --asset dataset:x "$W/plain" "$W/out3"
[ ! -e "$W/out3" ] || fail "OUT written for an unknown key"
unchanged_catalogue

step "illegal state change: exit 8, the message lists the allowed states"
snap before
expect 8 key state features/cli-bad 1 pending
has "$ERR" "allowed"
has "$ERR" "decrypt-only"
expect 8 key state features/cli-bad 1 retired
expect 2 key state features/cli-bad 1 destroyed
has "$ERR" "rotate --due"
unchanged_catalogue
ok key show features/cli-bad --json
jeq "$OUT" 'd["versions"][0]["state"]' active

step "protect refuses a version that cannot encrypt: exit 8, no OUT"
ok key compromise features/cli-bad@1 --reason "test: leaked"
has "$OUT" "emergency rotation"
snap before
expect 8 protect --key features/cli-bad --asset dataset:bad@2 "$W/plain" "$W/out4"
[ ! -e "$W/out4" ] || fail "OUT written under a compromised key"
unchanged_catalogue
# decrypt stays possible so data can be moved away from it
ok unprotect "$W/env" "$W/back"
cmp "$W/plain" "$W/back" || fail "decrypt under a compromised version"
echo "cli_bad_input: ok"
