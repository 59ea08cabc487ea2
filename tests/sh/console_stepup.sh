#!/usr/bin/env bash
# console_stepup.sh — step-up inside the console: a change asks for the
# passphrase in a dialog that shows only stars; a wrong one is refused with
# the core's message and changes nothing; the right one lets the change
# through; Esc cancels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
ME=$(id -un)
# An empty KEYWARD_PASSPHRASE: the console must ask.
tmux_start KEYWARD_PASSPHRASE= -- "$KEYWARD_BIN"
wait_for "features/credit-risk"

create() {
	keys c
	wait_for "Create key"
	keys -l "$1"
	keys Enter
}

step "a wrong passphrase: refused with the reason, nothing created"
create features/stepup-one
wait_for "Passphrase for $ME"
keys -l "not-the-passphrase"
wait_for "******************"
screen | grep -qF "not-the-passphrase" && fail "the passphrase is shown in clear"
keys Enter
wait_for "wrong passphrase"
keys Escape
wait_gone "Create key"
if "$KEYWARD_BIN" key show features/stepup-one >/dev/null 2>&1; then fail "a key was created after a wrong passphrase"; fi
echo "wrong passphrase refused"

step "Esc at the dialog cancels"
create features/stepup-two
wait_for "Passphrase for $ME"
keys Escape
wait_for "cancelled"
keys Escape
wait_gone "Create key"
if "$KEYWARD_BIN" key show features/stepup-two >/dev/null 2>&1; then fail "a key was created after a cancelled step-up"; fi
echo "cancelled"

step "the right passphrase: created"
create features/stepup-three
wait_for "Passphrase for $ME"
keys -l "keyward-demo"
keys Enter
wait_for "created features/stepup-three"
"$KEYWARD_BIN" key show features/stepup-three >/dev/null || fail "the key is not there"
echo "created after step-up"

step "the refusals are on record"
n=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events WHERE action = 'key.create' AND outcome = 'denied'")
[ "$n" -ge 2 ] || fail "$n denied key.create events, expected the wrong passphrase and the cancel"
echo PASS
