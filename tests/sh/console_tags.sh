#!/usr/bin/env bash
# console_tags.sh — the detail pane can show every tag of a key: wrapped,
# with "N more" when the pane is short, and PgDn in the pane scrolls to the
# rest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
key=features/credit-risk
args=()
for i in $(seq -w 1 40); do args+=("zt$i=value-$i"); done
"$KEYWARD_BIN" key tag $key "${args[@]}" >/dev/null
ntags=$("$KEYWARD_BIN" key show $key --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)['tags']))")

tmux_start --size 80x24 "$KEYWARD_BIN"
wait_for "$key"
keys /
keys -l credit-risk
keys Enter
wait_for '1 key matching'
keys Enter
wait_for "Tags ($ntags)"
wait_for "more tags"
step "scroll to every tag"
keys l
seen=$KW_TMP/seen
: >"$seen"
for _ in 1 2 3 4 5 6 7 8; do
	screen | grep -oE "zt[0-9]+=value-[0-9]+" >>"$seen" || true
	keys NPage
	sleep 0.2
done
n=$(sort -u "$seen" | wc -l)
[ "$n" = 40 ] || fail "only $n of the 40 zt tags could be seen"
echo "all 40 added tags seen ($ntags in all)"
keys Q
wait_for "[exited 0]"
echo PASS
