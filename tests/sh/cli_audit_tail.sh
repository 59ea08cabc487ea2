#!/usr/bin/env bash
# cli_audit_tail.sh — `audit tail` as a new user meets it: session (login)
# events left out unless --sessions; --since/--until/--action/--actor/
# --object select exactly what a naive filter over the whole log (read
# with --sessions --json) selects; bad times are refused naming the flag;
# rows say what changed instead of printing the details JSON; `audit show`
# prints the event indented.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok status # one more login
ALL=$KW_TMP/all.json
ok audit tail --sessions -n 1000000 --json
cp "$OUT" "$ALL"

# same_as FILTER_PY ARGS...: tail ARGS --json lists exactly the events of
# the whole log for which the Python expression (over e) holds, in order.
same_as() {
	local expr=$1
	shift
	ok audit tail -n 1000000 --json "$@"
	python3 - "$ALL" "$OUT" "$expr" "$*" <<'PY' || fail "audit tail $*: not what the log holds"
import json, sys
every = json.load(open(sys.argv[1])); got = json.load(open(sys.argv[2]))
want = [e["seq"] for e in every if eval(sys.argv[3], {}, {"e": e})]
# each run logs in: events after the snapshot are not the oracle's
seqs = [e["seq"] for e in got if e["seq"] <= every[-1]["seq"]]
if seqs != want:
    print(f"{sys.argv[4]}: {len(seqs)} events, want {len(want)}; first extra/missing:",
          sorted(set(seqs) ^ set(want))[:5], file=sys.stderr)
    sys.exit(1)
if not want:
    print(f"{sys.argv[4]}: the oracle selects nothing; the test proves nothing", file=sys.stderr)
    sys.exit(1)
PY
}

step "sessions: hidden by default, --sessions and --action login show them"
n_login=$(jget "$ALL" 'len([e for e in d if e["action"] == "login"])')
[ "$n_login" -ge 3 ] || fail "only $n_login logins in the demo"
same_as 'e["action"] != "login"'
same_as 'True' --sessions
same_as 'e["action"] == "login"' --action login

step "--since / --until (inclusive prefixes), --actor, --object, --action"
mid=$(jget "$ALL" 'd[len(d)//2]["time"]')
day=${mid:0:10}
same_as "e['action'] != 'login' and e['time'] >= '$mid'" --since "$mid"
same_as "e['action'] != 'login' and e['time'][:10] <= '$day'" --until "$day"
same_as "e['time'][:10] == '$day'" --since "$day" --until "$day" --sessions
# a Z after whole seconds means the same second (stored times carry milliseconds)
sec=${mid:0:19}
same_as "e['action'] != 'login' and e['time'][:19] >= '$sec'" --since "${sec}Z"
same_as 'e["actor"] == "bob" and e["action"] != "login"' --actor bob
same_as 'e["object"] == "key:inference/scoring-api@2"' --object key:inference/scoring-api@2
same_as 'e["action"] == "key.compromise"' --action key.compromise
same_as "e['actor'] == 'root' and e['action'] == 'protect' and e['time'] <= '$mid'" \
	--actor root --action protect --until "$mid"

step "bad times are refused, naming the flag"
for bad in 2026-13 2026-02-30 yesterday "2026-03-01 10:00" 2026-03-01T25; do
	expect 2 audit tail --since "$bad"
	has "$ERR" "--since '$bad' is not a UTC time"
done
expect 2 audit tail --until 2026-1
has "$ERR" "--until '2026-1' is not a UTC time"
expect 2 audit tail --since 2026-12 --until 2026-11
has "$ERR" "is after --until"

step "rows say what changed; show prints the event indented"
ok audit tail --action key.compromise
has "$OUT" "key:inference/scoring-api@2  active -> compromised"
lacks "$OUT" '"sealed"'
lacks "$OUT" '{'
ok audit tail --action protect -n 1
grep -qE 'key:[^ ]+@[0-9]+  asset [^ ]+ version [^ ]' "$OUT" || fail "protect row names no asset: $(cat "$OUT")"
seq=$(jget "$ALL" '[e for e in d if e["action"] == "key.compromise"][0]["seq"]')
ok audit show "$seq"
has "$OUT" "change:     active -> compromised"
grep -qE '^    "details": \{$' "$OUT" || fail "event not indented: $(cat "$OUT")"
grep -qE '^      "to": "compromised",?$' "$OUT" || fail "details not one key a line"
ok audit show "$seq" --json
jeq "$OUT" 'd["json"].startswith("{\"action\":\"key.compromise\"")' true
echo PASS
