#!/usr/bin/env bash
# cli_init_status.sh — plain init with PINs from the environment, status in
# text and JSON, refusing a second init, and the demo deployment's PIN file.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
# A home that init itself must create (kw_setup's exists already).
export KEYWARD_HOME=$TEST_DIR/plain
DB=$KEYWARD_HOME/keyward.db

step "plain init"
kw_init_plain
has "$ERR" "initialised the personal deployment at $KEYWARD_HOME"
[ -f "$KEYWARD_HOME/config.json" ] || fail "no config.json"
[ ! -e "$KEYWARD_HOME/demo-pin.DEMO-ONLY" ] || fail "plain init wrote a demo PIN file"
for f in "$KEYWARD_HOME" "$KEYWARD_HOME/config.json" "$DB"; do
	perms=$(stat -c %a "$f")
	case $perms in 700 | 600) ;; *) fail "$(basename "$f") has mode $perms" ;; esac
done

step "status"
export KEYWARD_PIN=$PIN
ok status
has "$OUT" "deployment: $KEYWARD_HOME"
has "$OUT" "token:      keyward"
has "$OUT" "user:       $(id -un) (admin)"
ok status --json
jeq "$OUT" 'd["token"]' keyward
jeq "$OUT" 'd["user"]' "$(id -un)"
jeq "$OUT" 'd["roles"]' admin
jeq "$OUT" 'd["keys"]' 0
jeq "$OUT" 'd["hsm_logged_in"]' true
ok --json status
jeq "$OUT" 'd["home"]' "$KEYWARD_HOME"
ok --home "$KEYWARD_HOME" status --json
jeq "$OUT" 'd["home"]' "$KEYWARD_HOME"

step "admin is not an officer: key create denied (exit 4), and audited"
expect 4 key create features/x
has "$ERR" "key.create"
ok audit tail -n 1 --json
jeq "$OUT" 'd[0]["outcome"]' denied
jeq "$OUT" 'd[0]["action"]' key.create

step "user list / user add"
KEYWARD_NEW_PASSPHRASE=alice-first-passphrase ok user add alice --role officer
has "$OUT" "added user alice (officer)"
expect 2 user add bob
has "$ERR" "--role"
ok user list --json
jeq "$OUT" 'sorted(u["name"] for u in d)' "[\"alice\", \"$(id -un)\"]"

step "a second init is refused and changes nothing"
cp "$KEYWARD_HOME/config.json" "$W/config.before"
audit_snapshot "$W/audit.before"
KEYWARD_SO_PIN=x expect 9 init --softhsm2-conf "$CONF"
has "$ERR" "already a keyward deployment"
cmp "$W/config.before" "$KEYWARD_HOME/config.json" || fail "config.json changed"
audit_snapshot "$W/audit.after"
cmp "$W/audit.before" "$W/audit.after" || fail "audit log changed"

step "init without a PIN and without a terminal fails cleanly"
unset KEYWARD_PIN
export KEYWARD_HOME=$TEST_DIR/kw2
rc=0
setsid -w "$KEYWARD_BIN" init --softhsm2-conf "$CONF" </dev/null >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" = 2 ] || fail "init without a PIN exited $rc, expected 2"
has "$ERR" "KEYWARD_PIN"
[ ! -e "$KEYWARD_HOME/config.json" ] || fail "config.json written"

step "init --pin-file, token adopted (no SO PIN needed)"
printf '# a comment\n%s\n' "$PIN" >"$W/pin"
chmod 644 "$W/pin"
export KEYWARD_TOKEN=keyward2
expect 7 init --pin-file "$W/pin" --softhsm2-conf "$CONF"
has "$ERR" "can be read by others (mode 644)"
chmod 600 "$W/pin"
# A long comment line is a comment, whole: its tail is never the PIN.
{ printf '#'; head -c 2000 /dev/zero | tr '\0' x; printf '\n%s\n' "$PIN"; } >"$W/pin"
KEYWARD_SO_PIN=so-pin-5678 expect 0 init --pin-file "$W/pin" --softhsm2-conf "$CONF"
ok --pin-file "$W/pin" status --json
jeq "$OUT" 'd["token"]' keyward2
unset KEYWARD_TOKEN

step "init --demo"
export KEYWARD_HOME=$TEST_DIR/demo KEYWARD_TOKEN=demo
kw_init_demo
f=$KEYWARD_HOME/demo-pin.DEMO-ONLY
[ "$(stat -c %a "$f")" = 600 ] || fail "demo PIN file mode $(stat -c %a "$f")"
head -n1 "$f" | grep -q '^# DEMO ONLY' || fail "demo PIN file has no DEMO ONLY comment"
[ -n "$PIN" ] || fail "demo PIN file holds no PIN"
grep -qF "demo-pin.DEMO-ONLY" "$KEYWARD_HOME/config.json" || fail "config.json does not record the PIN file"
ok status --json
jeq "$OUT" 'd["roles"]' officer,auditor
k=$(jget "$OUT" 'd["keys"]')
[ "$k" -gt 5 ] || fail "demo has only $k keys"
a=$(jget "$OUT" 'd["assets"]')
[ "$a" -gt 10 ] || fail "demo has only $a assets"
ok user list --json
has "$OUT" '"alice"'
step "--user (personal mode): act as another demo person; the OS user is recorded"
ok --user dave status --json
jeq "$OUT" 'd["user"]' dave
jeq "$OUT" 'd["roles"]' auditor
jeq "$OUT" 'd["os_user"]' "$(id -un)"
jeq "$OUT" 'd["mode"]' personal
expect 4 --user dave key create features/as-test
has "$ERR" "dave"
has "$ERR" "key.create"
expect 4 --user svc-feature-store audit tail
expect 2 --as dave status
ok audit tail -n 6 --outcome denied --json
jeq "$OUT" '[(e["actor"], e["action"]) for e in d][-2:]' '[["dave", "key.create"], ["svc-feature-store", "audit.read"]]'
expect 3 key show features/as-test
ok demo --keys 3 --events 50
ok status --json
k2=$(jget "$OUT" 'd["keys"]')
[ "$k2" -ge $((k + 3)) ] || fail "demo --keys 3: $k -> $k2 keys"
echo "cli_init_status: ok"
