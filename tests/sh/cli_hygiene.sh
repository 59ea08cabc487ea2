#!/usr/bin/env bash
# cli_hygiene.sh — after protect / unprotect work: the plaintext never lands
# in the deployment (files, token directory, database, WAL), the PIN never in
# the audit log or database, the HSM keys are sensitive and never
# extractable, and a running keyward cannot dump core and creates private
# files.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/cli-hygiene
unit=KEYWARD-PLAINTEXT-PATTERN

step "protect and unprotect a recognisable pattern"
pattern "$W/plain" $((3 * 65536 + 123))
ok protect --key features/cli-hygiene --asset feature:hygiene@1 "$W/plain" "$W/env"
ok unprotect "$W/env" "$W/back"
cmp "$W/plain" "$W/back" || fail "round trip differs"
cat "$W/plain" | "$KEYWARD_BIN" protect --key features/cli-hygiene --asset feature:hygiene@2 >"$W/env2" 2>"$ERR"
"$KEYWARD_BIN" unprotect <"$W/env2" 2>"$ERR" | cmp - "$W/plain" || fail "pipe round trip differs"
ok key rotate features/cli-hygiene
ok unprotect "$W/env" "$W/back2"

step "no plaintext anywhere in the deployment or the token directory"
grep -c -F "$unit" "$W/env" >/dev/null && fail "the envelope contains plaintext"
hits=$(grep -r -l -a -F "$unit" "$KEYWARD_HOME" "$TOKENS" || true)
[ -z "$hits" ] || fail "plaintext found in: $hits"
for f in "$DB" "$DB-wal"; do
	[ -e "$f" ] || continue
	[ "$(grep -c -a -F "$unit" "$f" || true)" = 0 ] || fail "plaintext in $(basename "$f")"
done

step "the PIN is not in the audit log, the database, its WAL or the tokens"
sqlite3 "$DB" 'SELECT json FROM audit_events' >"$W/events"
[ -s "$W/events" ] || fail "no audit events"
lacks "$W/events" "$PIN"
hits=$(grep -r -l -a -F "$PIN" "$KEYWARD_HOME" "$TOKENS" | grep -v 'demo-pin.DEMO-ONLY$' || true)
[ -z "$hits" ] || fail "the PIN found in: $hits"

step "pkcs11-tool: root and audit keys sensitive, never extractable"
SOFTHSM2_CONF=$CONF pkcs11-tool --module "$MODULE" --token-label keyward --login --pin "$PIN" \
	--list-objects >"$OUT" 2>"$ERR" || fail "pkcs11-tool failed"
# One block per object, from its type line to the next.
block() { awk -v l="label:      $1" '/Object;/{b=$0; next} {b=b "\n" $0} index($0, l){f=1} f&&/Access:/{print b; exit}' "$OUT"; }
root=$(block keyward-root)
[ -n "$root" ] || fail "no keyward-root object"
grep -q "Secret Key Object; AES length 32" <<<"$root" || fail "keyward-root is not AES-256: $root"
grep -q "Access: .*always sensitive" <<<"$root" || fail "keyward-root not always sensitive: $root"
grep -q "Access: .*never extractable" <<<"$root" || fail "keyward-root extractable: $root"
grep -q "Usage: *wrap, unwrap$" <<<"$root" || fail "keyward-root has more usages than wrap/unwrap: $root"
priv=$(awk '/Private Key Object/{p=1} p' "$OUT" | sed -n '1,/Access:/p')
grep -q "keyward-audit" <<<"$priv" || fail "no keyward-audit private key"
grep -q "never extractable" <<<"$priv" || fail "the audit private key is extractable: $priv"
mac=$(block keyward-mac)
[ -n "$mac" ] || fail "no keyward-mac object (the row-MAC key)"
grep -q "Secret Key Object; Generic secret length 32" <<<"$mac" || fail "keyward-mac is not a 32-byte secret: $mac"
grep -q "Access: .*always sensitive" <<<"$mac" || fail "keyward-mac not always sensitive: $mac"
grep -q "Access: .*never extractable" <<<"$mac" || fail "keyward-mac extractable: $mac"
# Nothing else secret lives on the token: KEKs are session objects only.
n=$(grep -c "Secret Key Object" "$OUT")
[ "$n" = 2 ] || fail "$n secret keys on the token, expected only the root and the row-MAC key"

step "a running keyward: no core dumps, umask 077"
mkfifo "$W/fifo"
"$KEYWARD_BIN" protect --key features/cli-hygiene --asset feature:hygiene@3 <"$W/fifo" >"$W/env3" 2>"$ERR" &
pid=$!
exec 3>"$W/fifo" # keyward now waits for input on the FIFO
for _ in $(seq 100); do
	grep -q '^Max core file size *0 *0' "/proc/$pid/limits" 2>/dev/null && break
	sleep 0.1
done
grep -q '^Max core file size *0 *0' "/proc/$pid/limits" || fail "core dumps are not off: $(grep core "/proc/$pid/limits")"
grep -q '^Umask:.*0077' "/proc/$pid/status" || fail "umask: $(grep Umask "/proc/$pid/status")"
exec 3>&- # end of input: keyward finishes
wait "$pid" || fail "protect from a FIFO failed"
perms=$(stat -c %a "$DB")
[ "$perms" = 600 ] || fail "database mode $perms"
echo "cli_hygiene: ok"
