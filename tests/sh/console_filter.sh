#!/usr/bin/env bash
# console_filter.sh — `/` means the same on every screen: a bare word
# selects by key name (keys whose name contains it; audit events about that
# key and its versions), field:value by a field; and the header's count
# follows the filter (the count the CLI gives for the same selection).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
key=features/credit-risk
# events about the key, as the CLI counts them (the console's login adds none about it)
n_cli=$("$KEYWARD_BIN" audit tail --key $key --lines 100000 --json |
	python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
[ "$n_cli" -gt 2 ] || fail "the demo has only $n_cli events about $key"
n_denied=$("$KEYWARD_BIN" audit tail --outcome denied --lines 100000 --json |
	python3 -c "import json,sys; print(len(json.load(sys.stdin)))")

tmux_start "$KEYWARD_BIN"
wait_for "$key"

step "keys: a word is a key name"
keys /
keys -l credit-risk
keys Enter
wait_for '1 key matching "credit-risk"'
screen | grep -qF "features/fraud-signals" && fail "a key without the word is listed"
keys -l /
keys C-u
keys -l sensitivity:high
keys Enter
wait_for 'matching "sensitivity:high"'
screen | grep -qF "$key" || fail "tag filter lost $key (sensitivity=high in the demo)"

step "audit: the same word is the same key; the count follows the filter"
keys 2
wait_for "newest first"
screen | sed -n 2p | grep -qE "^ [0-9]+ of [0-9]+ events, newest first; logins hidden" || fail "unfiltered header"
keys /
keys -l $key
keys Enter
# the unfiltered header also has "of": wait for the filtered count itself
wait_for "$n_cli of " 15
screen | sed -n 2p | grep -qF "$n_cli of " ||
	fail "header count is not the $n_cli events the CLI counts: $(screen | sed -n 2p)"
screen | sed -n 2p | grep -qF "events match \"$key\"" || fail "header does not name the filter"
# every listed event is about that key (OBJECT column)
others=$(screen | sed -n '5,30p' | grep -E "^ +[0-9]+ 20" | grep -vcF "key:features/cre" || true)
[ "$others" = 0 ] || fail "$others events about other objects listed"
echo "$n_cli events about $key, as the CLI counts"

step "field:value on audit, and q clears"
keys /
keys C-u
keys -l outcome:denied
keys Enter
wait_for 'events match "outcome:denied"'
screen | sed -n 2p | grep -qE "^ $n_denied of [0-9]+ events match" ||
	fail "not the $n_denied denials the CLI counts: $(screen | sed -n 2p)"
keys q
wait_for "events, newest first"
keys Q
wait_for "[exited 0]"
echo PASS
