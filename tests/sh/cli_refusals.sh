#!/usr/bin/env bash
# cli_refusals.sh — one failure path: every refused or failed command leaves
# exactly one event with its outcome (besides its session's login), whatever
# refused it: exists, not found, bad identity, wrong passphrase, wrong or
# replayed one-time code, lockout, out of scope.  Also: a PIN inside a token
# URI is found nowhere in the deployment.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"

kw_setup
kw_init_demo
ME=$(id -un)

events() { sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE action != 'login'"; }
last() { sqlite3 "$DB" "SELECT action || ' ' || outcome FROM audit_events WHERE action != 'login' ORDER BY seq DESC LIMIT 1"; }
# refused CODE ACTION OUTCOME ARGS...: exit CODE, one new event ACTION OUTCOME.
refused() {
	local code=$1 action=$2 outcome=$3
	shift 3
	local before
	before=$(events)
	expect "$code" "$@"
	[ "$(events)" = $((before + 1)) ] || fail "keyward $*: $(($(events) - before)) events instead of one"
	[ "$(last)" = "$action $outcome" ] || fail "keyward $*: last event is '$(last)', expected '$action $outcome'"
}

step "finding 7: exists, not found, refused identity"
refused 9 key.create error key create features/credit-risk
refused 3 key.tag error key tag features/nosuch owner=x
refused 3 key.rotate error key rotate features/nosuch
KEYWARD_NEW_PASSPHRASE=another-one refused 9 user.add error --user erin user add alice --role officer
before=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events")
expect 4 --user nobody status
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit_events")" = $((before + 1)) ] || fail "an unknown user left no single event"
[ "$(sqlite3 "$DB" "SELECT action || ' ' || outcome FROM audit_events ORDER BY seq DESC LIMIT 1")" = "login denied" ] ||
	fail "an unknown user's refusal is not a denied login"
grep -q "nobody is not a keyward user" "$ERR" || fail "the refusal does not name the user"
echo "exists, not found and unknown users each leave one event"

step "role and bad input"
refused 4 key.create denied --user dave key create features/by-auditor
refused 2 key.create error key create "Bad Name"

step "wrong passphrase, then lockout after five, audited, lifted by an administrator"
for i in 1 2 3 4; do
	KEYWARD_PASSPHRASE=wrong refused 4 key.rotate denied --user alice key rotate features/credit-risk
	grep -q "wrong passphrase" "$ERR" || fail "attempt $i: the refusal does not say why"
done
KEYWARD_PASSPHRASE=wrong expect 4 --user alice key rotate features/credit-risk
grep -q "locked out" "$ERR" || fail "the fifth failure does not say alice is locked out"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE action = 'user.lockout'")" = 1 ] || fail "the lockout is not audited"
before=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events")
expect 4 --user alice key rotate features/credit-risk
grep -q "locked out" "$ERR" || fail "the right passphrase got through a lockout"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit_events")" = $((before + 1)) ] || fail "a locked-out session left no single event"
sqlite3 "$DB" "SELECT json FROM audit_events ORDER BY seq DESC LIMIT 1" | grep -q '"action":"login".*"outcome":"denied"' ||
	fail "a locked-out session is not a denied login"
expect 0 --user erin user unlock alice
expect 0 --user alice key rotate features/credit-risk
echo "lockout and unlock work and are audited"

step "out of scope"
echo data >"$W/in"
refused 4 protect denied --user svc-scoring-api protect --key features/credit-risk --asset feature:x/y@1 "$W/in" "$W/o.kwe"
grep -q "outside svc-scoring-api's scopes" "$ERR" || fail "the refusal does not name the scopes"
expect 0 --user svc-scoring-api protect --key models/fraud-v4 --asset model:x/y@1 "$W/in" "$W/o2.kwe"
expect 0 --user svc-scoring-api unprotect "$W/o2.kwe" "$W/back"
cmp -s "$W/in" "$W/back" || fail "the in-scope round trip lost data"
refused 4 unprotect denied --user svc-feature-store unprotect "$W/o2.kwe" "$W/back2"
echo "scopes are enforced both ways"

step "TOTP: enrol, a code is good once, a wrong code counts"
expect 0 --user bob --json user totp enrol
SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$OUT")
code() {
	python3 - "$SECRET" "${1:-0}" <<'PY'
import base64, hashlib, hmac, struct, sys, time
s = sys.argv[1]
key = base64.b32decode(s + "=" * (-len(s) % 8))
step = int(time.time()) // 30 + int(sys.argv[2])
h = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
o = h[-1] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000))
PY
}
printf 'keyward-demo\n' >"$W/np"
chmod 600 "$W/np"
expect 4 --user bob user passwd --new-passphrase-file "$W/np"
grep -q "one-time code" "$ERR" || fail "a step-up without the code is not refused for it"
C=$(code)
KEYWARD_OTP=$C expect 0 --user bob user passwd --new-passphrase-file "$W/np"
KEYWARD_OTP=$C refused 4 user.passwd denied --user bob user passwd --new-passphrase-file "$W/np"
grep -q "wrong or reused one-time code\|already used\|one-time code" "$ERR" || fail "a replayed code is not refused as such"
KEYWARD_OTP=000000 refused 4 user.passwd denied --user bob user passwd --new-passphrase-file "$W/np"
KEYWARD_OTP=$(code 1) expect 0 --user bob user totp disable
echo "a code is good once"

step "a PIN inside a token URI is found nowhere in the deployment"
SECRET_PIN=pin-in-uri-7f3k9
export KEYWARD_HOME=$TEST_DIR/uri-home
KEYWARD_PIN=$SECRET_PIN expect 0 init --token "pkcs11:token=uritok;pin-value=$SECRET_PIN"
KEYWARD_PIN=$SECRET_PIN expect 0 status
if grep -r -a -q "$SECRET_PIN" "$KEYWARD_HOME"; then fail "the PIN from the URI was stored: $(grep -r -a -l "$SECRET_PIN" "$KEYWARD_HOME")"; fi
grep -q "uritok" "$KEYWARD_HOME/config.json" || fail "the token was not recorded"
echo "the URI's PIN is stripped before anything is stored"
echo PASS
