#!/usr/bin/env bash
# console_tamper.sh — on a database whose audit log was altered with the
# sqlite3 shell, the audit screen's verify (V) runs in the background and
# shows the first bad sequence number (5) and what is wrong, and the list
# jumps to that entry; an untouched log verifies intact with its signed
# tree head.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home

step "untouched log: intact, signed tree head shown"
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 2
wait_for "newest first"
keys V
wait_for "Audit log intact" 60
screen | grep -qE "Signed tree head: size [0-9]+ +root [0-9a-f]{16}" || fail "no signed tree head shown"
wait_for "s ago ✓"
screen | grep -qE "verified [0-9]s ago" || fail "the status bar does not show a fresh verification"
keys Q
wait_for "[exited 0]"
tmux_stop
echo "intact, with the signed tree head"

step "tamper with entry 5"
sqlite3 "$KW_DB" "UPDATE audit_events SET json=replace(json,'\"ok\"','\"OK\"') WHERE seq=5" ||
	fail "sqlite3 update failed"
[ "$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events WHERE seq=5 AND json LIKE '%\"OK\"%'")" = 1 ] ||
	fail "the tampering did not take"

tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 2
wait_for "newest first"
keys V
wait_for "first bad entry 5" 60
screen | grep -qF "audit log damaged at entry 5" || fail "message line lacks the bad entry"
wait_for "Event 5"
# the list now starts at the bad entry, selected, with its detail open
screen | grep -qE '^ +5 [0-9]{4}-' || fail "the list did not jump to entry 5"
# the altered value, from the stored text: in the row and in the pane's event
screen | grep -qE '^ +5 [0-9-]+ [0-9:]+ +root +user.add +OK ' || fail "the row does not show the altered outcome"
screen | grep -qF '"action": "user.add",' || fail "the detail pane does not show the event"
echo "verify names entry 5 and the list jumps to it"
echo PASS
