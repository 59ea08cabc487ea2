#!/usr/bin/env bash
# console_help.sh — the help overlay (?) lists every action of the action
# table, as `keyward help keys` prints it, with the keys in force; and
# docs/keys.md is exactly that output (it cannot drift).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

step "docs/keys.md equals keyward help keys"
"$KEYWARD_BIN" help keys >"$KW_TMP/keys.md" || fail "keyward help keys failed"
diff -u "$KW_REPO/docs/keys.md" "$KW_TMP/keys.md" ||
	fail "docs/keys.md is stale: run build/keyward help keys > docs/keys.md"
mapfile -t actions < <(sed -n 's/^| `\([a-z-]*\)` |.*/\1/p' "$KW_TMP/keys.md")
[ "${#actions[@]}" -ge 20 ] || fail "only ${#actions[@]} actions in help keys"
echo "docs/keys.md is current; ${#actions[@]} actions"

kw_demo_home
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "? lists every action"
keys "?"
wait_for "Help: keys in force"
shown=$(screen)
# the table outgrew one 40-row page: read the next page too
keys PageDown
sleep 0.3
shown+=$'\n'$(screen)
for a in "${actions[@]}"; do
	grep -qE "(^|[^a-z-])$a([^a-z-]|\$)" <<<"$shown" || fail "help overlay lacks the action $a"
done
grep -qE "j Down +move-down" <<<"$shown" || fail "help overlay lacks the keys of move-down"
echo "all ${#actions[@]} actions shown with their keys"

step "scrolling reaches the commands, any other key closes"
wait_for ":rotate NAME"
keys x
wait_gone "Help: keys in force"
echo PASS
