#!/usr/bin/env bash
# console_create.sh — create a key through the form (c): the CLI then shows
# it with its tags; a form with a bad name shows the core's message under
# the field, stays open, and creates nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
before=$("$KEYWARD_BIN" key list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

step "a bad name: the core's message under the field, nothing created"
keys c
wait_for "Create key"
keys -l "Bad Name!"
keys Enter
wait_for "character 1 ('B') is not allowed"
screen | grep -qF "Create key" || fail "the form closed on a refused name"
keys Escape
wait_gone "Create key"
if "$KEYWARD_BIN" key show "Bad Name!" >/dev/null 2>&1; then fail "a key named 'Bad Name!' exists"; fi
after=$("$KEYWARD_BIN" key list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$before" = "$after" ] || fail "key count changed from $before to $after"
echo "refused with the core's message; $after keys as before"

step "a bad tag: the message is under the tags field"
keys c
wait_for "Create key"
keys -l "models/console-test"
keys Tab
keys -l "Owner=x"
keys Enter
wait_for "key character 'O' is not allowed"
keys C-u
keys -l "owner=qa, sensitivity=low"
keys Enter
wait_for "created models/console-test"
echo "form accepted after fixing the tag"

step "the CLI confirms the key"
"$KEYWARD_BIN" key show models/console-test --json >"$KW_TMP/show.json" || fail "key show failed"
python3 - "$KW_TMP/show.json" <<'PY' || fail "key show does not match: $(cat "$KW_TMP/show.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "models/console-test", d["name"]
assert d["current_version"] == 1 and d["current_state"] == "active", d
assert d["tags"] == {"owner": "qa", "sensitivity": "low"}, d["tags"]
PY
echo "key show --json: version 1 active, tags owner=qa sensitivity=low"

step "the new key is in the list"
keys /
keys -l console-test
wait_for 'matching "console-test"'
screen | grep -qF "models/console-test" || fail "new key not listed"
keys Enter
echo PASS
