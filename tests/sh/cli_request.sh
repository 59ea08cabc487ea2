#!/usr/bin/env bash
# cli_request.sh — signed requests from the command line: a rotation opened
# by the officer, refused to the officer's own signature, approved by bob,
# listed in the inbox, executed once; every listing has --json; an export
# checks offline with nothing but openssl (dgst and pkeyutl -verify), and a
# signature or body changed in the export fails that check; destruction
# lists what becomes unrecoverable; a role grant needs a second admin.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
key=features/churn-propensity

step "key rotate opens a request and says what happens next"
ok key rotate $key --reason "cadence"
has "$OUT" "request "
has "$OUT" "opened: rotate $key"
has "$OUT" "keyward request approve"
ok request list --json
id=$(jget "$OUT" '[r["id"] for r in d if r["object"] == "key:'$key'"][0]')
jeq "$OUT" '[r["state"] for r in d if r["id"] == "'$id'"][0]' pending
ok key show $key --json
jeq "$OUT" 'd["current_version"]' 1

step "the requester cannot sign it; bob sees it in his inbox and signs"
expect 4 request approve "$id"
has "$ERR" "their own request"
ok request list --inbox --json
jeq "$OUT" '[r["id"] for r in d]' '[]'
ok --user bob request list --inbox --json
jeq "$OUT" '"'$id'" in [r["id"] for r in d]' true
ok --user bob request approve "$id"
has "$OUT" "approved request $id: now approved"
expect 4 --user bob request approve "$id"
has "$ERR" "already signed"

step "request show: what changes, affected assets, risk with factors, signatures"
ok request show "$id"
has "$OUT" "what changes: rotate $key"
has "$OUT" "affected assets"
has "$OUT" "feature:churn-propensity/engagement@5"
has "$OUT" "risk low"
has "$OUT" "sensitivity"
has "$OUT" "bob approved at"
ok request show "$id" --json
jeq "$OUT" '[s["approver"] for s in d["signatures"]]' '["bob"]'
jeq "$OUT" 'd["signatures"][0]["valid"]' true
jeq "$OUT" 'len(d["signatures"][0]["signature"])' 128
jeq "$OUT" '[f["name"] for f in d["risk"]["factors"]][:2]' '["assets", "sensitivity"]'

step "execute once; a second execution is refused"
ok request execute "$id"
has "$OUT" "executed request $id: now executed"
expect 8 request execute "$id"
ok key show $key --json
jeq "$OUT" 'd["current_version"]' 2

step "verify, then export and check offline with openssl alone"
ok request verify "$id"
has "$OUT" "signature by bob: verifies, matches the audit log"
has "$OUT" "intact"
ok request verify "$id" --json
jeq "$OUT" 'd["intact"]' true
mkdir -p "$W/exp"
ok request export "$id" "$W/exp"
for f in request.json digest.bin bob.sig bob.pub.pem VERIFY.txt; do [ -s "$W/exp/$f" ] || fail "export lacks $f"; done
( cd "$W/exp"
  openssl dgst -sha256 -binary request.json | cmp -s - digest.bin || fail "request.json does not hash to digest.bin"
  openssl pkeyutl -verify -pubin -inkey bob.pub.pem -rawin -in digest.bin -sigfile bob.sig >"$OUT" 2>&1 ||
	fail "openssl does not verify bob's signature"
  grep -q "Signature Verified Successfully" "$OUT" || fail "openssl said: $(cat "$OUT")"
  # the commands VERIFY.txt gives run as written
  bash -e VERIFY.txt >"$OUT" 2>&1 || fail "VERIFY.txt's commands failed: $(cat "$OUT")"
  # a changed signature or body fails the same check
  cp bob.sig bad.sig
  printf '\xff' | dd of=bad.sig bs=1 seek=7 conv=notrunc 2>/dev/null
  ! openssl pkeyutl -verify -pubin -inkey bob.pub.pem -rawin -in digest.bin -sigfile bad.sig >/dev/null 2>&1 ||
	fail "openssl accepted a changed signature"
  sed 's/"quorum":1/"quorum":0/' request.json > bad.json
  ! openssl dgst -sha256 -binary bad.json | cmp -s - digest.bin || fail "a changed body still hashes to the digest"
  # the public key is the one `user pubkey` gives
  "$KEYWARD_BIN" user pubkey bob | cmp -s - bob.pub.pem || fail "exported key is not bob's"
)

step "a rejection vetoes; the requester cancels their own"
ok key rotate $key
rid=$(sed -n 's/^request \([0-9a-f]*\) opened.*/\1/p' "$OUT")
expect 2 --user carol request reject "$rid"
ok --user carol request reject "$rid" --reason "change freeze"
has "$OUT" "now rejected"
expect 8 --user bob request approve "$rid"
ok key rotate $key
cid=$(sed -n 's/^request \([0-9a-f]*\) opened.*/\1/p' "$OUT")
expect 4 --user bob request cancel "$cid"
ok request cancel "$cid"
has "$OUT" "now cancelled"
ok request list --all --json
jeq "$OUT" 'sorted(r["state"] for r in d if r["object"] == "key:'$key'")' '["cancelled", "executed", "rejected"]'
ok request list --all
has "$OUT" "rejected"

step "key destroy lists what becomes unrecoverable before asking"
expect 8 key destroy $key@1 --yes
has "$ERR" "allowed"
ok key state $key 1 retired --json
kw_request_done "$(jget "$OUT" 'd["id"]')" || fail "retiring version 1"
# just retired: the deprecation period (30 days by default) holds it back,
# and the refusal names the day; policy show says the same
expect 8 key destroy $key@1 --yes --reason "retention ended"
has "$ERR" "30-day deprecation period"
has "$ERR" "may be scheduled from $(date -u -d '+30 days' +%Y-%m-%d)"
ok policy show $key
has "$OUT" "version 1 retired $(date -u +%Y-%m-%d)"
has "$OUT" "destruction may be scheduled from $(date -u -d '+30 days' +%Y-%m-%d)"
ok policy show $key --json
jeq "$OUT" '[(r["version"], r["destroy_allowed"]) for r in d["retired_versions"]]' '[[1, false]]'
# this key's policy lets it go at once
ok policy set $key --set deprecation_days=0 --reason "no deprecation for the test key"
kw_request_done "$(cat "$OUT")" || fail "setting deprecation_days=0"
ok policy show $key --json
jeq "$OUT" '[(r["version"], r["destroy_allowed"]) for r in d["retired_versions"]]' '[[1, true]]'
# without --yes it asks on the terminal; with none (setsid) it refuses
rc=0
setsid -w "$KEYWARD_BIN" key destroy $key@1 </dev/null >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" = 2 ] || fail "key destroy without a terminal or --yes exited $rc, expected 2"
has "$ERR" "--yes"
has "$OUT" "unrecoverable"
# the rotation's rewrap moved engagement@5's DEK to version 2 (the catalogue
# is the authority): destroying version 1 takes nothing with it
lacks "$OUT" "feature:churn-propensity/engagement@5"
ok request list --json
jeq "$OUT" '[r for r in d if r["kind"] == "destroy"]' '[]'
ok key destroy $key@1 --yes --reason "retention ended"
has "$OUT" "opened: destroy $key v1"

step "key compromise acts at once and opens the emergency rotation"
expect 2 key compromise $key@2
ok key compromise $key@2 --reason "leaked in a log"
has "$OUT" "is compromised"
has "$OUT" "emergency rotation"
ok key show $key --json
jeq "$OUT" '[v["state"] for v in d["versions"] if v["version"] == 2][0]' compromised

step "a role grant needs a second administrator; nobody grants themselves"
ok --user erin user role grant carol auditor --reason "audit duty"
gid=$(sed -n 's/^request \([0-9a-f]*\) opened.*/\1/p' "$OUT")
expect 4 --user erin user role grant erin auditor
expect 4 --user erin request approve "$gid"
expect 4 --user bob request approve "$gid"
expect 8 --user erin request execute "$gid"
echo PASS
