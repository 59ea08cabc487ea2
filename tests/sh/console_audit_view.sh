#!/usr/bin/env bash
# console_audit_view.sh — the audit screen as a new user meets it, at
# 80x24: session (login) events hidden at first and L toggles them, the
# header's count follows (the CLI's count for the same selection), `/`
# filters while typing as on the keys screen (Esc restores), rows say what
# changed, and the detail pane shows the event indented with long strings
# wrapped at word boundaries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
count() { # count ARGS...: events `audit tail ARGS` lists (its own login is later)
	"$KEYWARD_BIN" audit tail -n 1000000 --json "$@" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"
}
n_bob=$(count --actor bob)
reason=$("$KEYWARD_BIN" audit tail --actor svc-scoring-api --outcome denied -n 1 --json |
	python3 -c "import json,sys; print(json.load(sys.stdin)[0]['details']['reason'])")
[ ${#reason} -gt 100 ] || fail "the demo's denial reason is too short to wrap: $reason"

tmux_start --size 80x24 "$KEYWARD_BIN"
wait_for "1 Keys"
keys 2
wait_for "logins hidden (L shows)"

step "logins hidden; L shows them and the count follows"
hdr=$(screen | sed -n 2p)
shown=$(echo "$hdr" | sed -E 's/^ ([0-9]+) of ([0-9]+) events.*/\1/')
total=$(echo "$hdr" | sed -E 's/^ ([0-9]+) of ([0-9]+) events.*/\2/')
logins=$("$KEYWARD_BIN" audit tail --action login -n 1000000 --json |
	python3 -c "import json,sys; print(len([e for e in json.load(sys.stdin) if e['seq'] <= $total]))")
[ "$((total - logins))" = "$shown" ] || fail "header says $shown of $total, but $total - $logins logins is $((total - logins))"
screen | sed -n '4,22p' | grep -qE '^ +[0-9]+ [0-9-]+ [0-9:]+ +[^ ]+ +login ' && fail "a login row is listed"
keys L
wait_for "session (login) events shown"
screen | sed -n 2p | grep -qE "^ $total events, newest first$" || fail "header with logins: $(screen | sed -n 2p)"
screen | sed -n 4p | grep -qE ' login +ok ' || fail "the console's own login is not the newest row"
keys L
wait_for "logins hidden (L shows)"

step "/ filters while typing, Esc restores, Enter keeps and counts"
keys /
keys -l actor:bob
sleep 0.5 # no Enter yet: the list must already be bob's
rows=$(screen | sed -n '4,22p' | grep -E '^ +[0-9]+ [0-9]{2}-[0-9]{2} ' || true)
[ -n "$rows" ] || fail "no rows while typing"
echo "$rows" | grep -vqE '^ +[0-9]+ [0-9-]+ [0-9:]+ bob ' && fail "rows by others while typing actor:bob"
keys Escape
# The typing header also says "logins hidden", so wait for the filter to go:
# ncurses holds a lone Esc for ESCDELAY before it reports it.
wait_gone "events match" 5
screen | sed -n 2p | grep -qE "^ [0-9]+ of [0-9]+ events, newest first; logins hidden" ||
	fail "Esc did not restore the unfiltered header: $(screen | sed -n 2p)"
keys /
keys -l actor:bob
keys Enter
wait_for "events match \"actor:bob\""
screen | sed -n 2p | grep -qE "^ $n_bob of [0-9]+ events match \"actor:bob\", newest first; logins hidden" ||
	fail "header is not the $n_bob events the CLI counts: $(screen | sed -n 2p)"

step "a bare word selects the keys whose names contain it, as on the keys screen"
# "credit" is inside features/credit-risk and models/credit-scorer-v2; as a
# name prefix it would match nothing at all
n_credit=$(sqlite3 "$KW_DB" "SELECT count(*) FROM audit_events WHERE object LIKE 'key:%' AND instr(object, 'credit') > 0 AND action != 'login'")
[ "$n_credit" -gt 0 ] || fail "the demo has no events about a credit key"
keys /
keys C-u
keys -l credit
keys Enter
wait_for 'events match "credit"'
screen | sed -n 2p | grep -qE "^ $n_credit of [0-9]+ events match \"credit\", newest first" ||
	fail "header is not the $n_credit events about keys named *credit*: $(screen | sed -n 2p)"

step "rows say what changed"
keys /
keys C-u
keys -l action:key.compromise
keys Enter
wait_for 'match "action:key.compromise"'
screen | grep -qF "active -> compromised" || fail "the compromise row does not say active -> compromised"

step "detail: indented, long strings wrapped at word boundaries"
keys /
keys C-u
keys -l "actor:svc-scoring-api outcome:denied"
keys Enter
wait_for 'match "actor:svc-scoring-api outcome:denied"'
keys Enter
wait_for '"details": {'
screen | grep -qE '^   "needs": ' || fail "details not indented under their key"
# the reason's lines, joined with single spaces, are the reason: no word cut
got=$(screen | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
out, on = [], False
for l in lines:
    s = l.strip()
    if s.startswith("\"reason\": \""):
        on = True; s = s[len("\"reason\": \""):]
    elif on and (s.startswith("\"") or s.startswith("}")):
        break
    if on:
        out.append(s)
print(" ".join(out).rstrip(",").rstrip("\""))')
[ "$got" = "$reason" ] || fail "wrapped reason reads back as: $got"
keys Q
wait_for "[exited 0]"
echo PASS
