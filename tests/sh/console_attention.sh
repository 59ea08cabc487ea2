#!/usr/bin/env bash
# console_attention.sh — the inventory's "needs attention" marker: the demo's
# key with a compromised version still protecting assets says so in ATTN
# (not just "active"); ! shows only the keys that need attention, most
# urgent first, as many as `keyward schedule` lists; ! again shows all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
sched=$KW_TMP/schedule.json
"$KEYWARD_BIN" schedule --json >"$sched"
py() { python3 -c "import json,sys; d=json.load(open('$sched')); $1"; }
n=$(py 'print(len(d))')
first=$(py 'print(d[0]["key"])')
comp=$(py 'print([e["key"] for e in d if "compromised" in e["attention"]][0])')
calm=$("$KEYWARD_BIN" key list --json | python3 -c "
import json,sys
flagged = {e['key'] for e in json.load(open('$sched'))}
print([k['name'] for k in json.load(sys.stdin) if k['name'] not in flagged][0])")
[ "$n" -gt 0 ] || fail "the demo has no key needing attention"

tmux_start "$KEYWARD_BIN"
wait_for "$comp"
screen | grep -E "^ $comp " | grep -qF "compromised" || fail "$comp shows no compromised marker"
screen | grep -E "^ $calm " | grep -qE "compromised|overdue|due|request|job" &&
	fail "$calm is marked though the schedule does not list it"
echo "$comp marked compromised, $calm unmarked"

step "! shows only those, most urgent first"
keys '!'
wait_for "needing attention, most urgent first"
screen | sed -n 2p | grep -qE "^ $n keys? needing attention" || fail "count is not the schedule's $n"
screen | sed -n 4p | grep -qE "^ $first " || fail "the first row is not $first, the schedule's first"
screen | grep -qE "^ $calm " && fail "$calm listed among the keys needing attention"
rows=$(screen | sed -n '4,37p' | grep -cE "^ [a-z]" || true)
[ "$rows" = "$n" ] || fail "$rows rows for $n keys"
echo "$n keys, $first first"
keys '!'
wait_for "sorted by name"
screen | grep -qE "^ $calm " || fail "! again does not show every key"
keys Q
wait_for "[exited 0]"
echo PASS
