#!/usr/bin/env bash
# console_lineage_lazy.sh — the lineage screen on a graph larger than what
# it loads at first (2,000 nodes): the header says how far the walk got,
# a node whose children are not known yet shows "+" and unfolds by running
# the walk on through it, and / finds a node the first load did not reach
# (the walk run to the end), with the same shortest path the CLI gives.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
python3 - "$KEYWARD_HOME/config.json" <<'EOF2'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["lineage_mappings"] = [
    {"namespace": "s3://lake", "name": "credit-risk/*", "asset": "feature:{name}"},
    {"namespace": "s3://lake", "name": "models/*", "kind": "model"},
]
json.dump(c, open(p, "w"))
EOF2
# income -> wide/t0000 .. wide/t2499 (one run); wide/t2499 -> models/deep;
# models/deep -> models/deeper.  The first load stops among the t's.
python3 - "$KW_TMP/ev.jsonl" <<'EOF2'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
def ev(i, job, ins, outs):
    return {"eventType": "COMPLETE", "eventTime": now,
            "run": {"runId": "00000000-0000-4000-8000-%012d" % i},
            "job": {"namespace": "airflow", "name": job},
            "inputs": [{"namespace": "s3://lake", "name": n} for n in ins],
            "outputs": [{"namespace": "s3://lake", "name": n} for n in outs],
            "producer": "https://example.com/p",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
with open(sys.argv[1], "w") as f:
    f.write(json.dumps(ev(1, "fan-out", ["credit-risk/income"], ["wide/t%04d" % i for i in range(2500)])) + "\n")
    f.write(json.dumps(ev(2, "train", ["wide/t2499"], ["models/deep"])) + "\n")
    f.write(json.dumps(ev(3, "distil", ["models/deep"], ["models/deeper"])) + "\n")
EOF2
sleep 1 # event times after the demo's protection, to the second
"$KEYWARD_BIN" lineage import "$KW_TMP/ev.jsonl" 2>"$KW_TMP/import.err" ||
	fail "import failed: $(cat "$KW_TMP/import.err")"
# What the whole walk says (the CLI runs it at once), for comparison.
"$KEYWARD_BIN" lineage impact features/credit-risk --json > "$KW_TMP/impact.json"
total=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total'])" "$KW_TMP/impact.json")
[ "$total" -gt 2500 ] || fail "the graph is smaller than the test needs: $total nodes"
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "the first load stops early and says so"
keys : ; keys -l "lineage features/credit-risk" ; keys Enter
wait_for "nodes so far"
screen | grep -qF "s3://lake models/deep" && fail "models/deep shown before the walk reached it"
echo "partial tree, header says so"

step "a node not expanded yet shows + and unfolds through the walk"
keys / ; keys -l "wide/t2499" ; keys Enter
wait_for "reached by derived-from, depth 1"
screen | grep -E '^\s*\+ s3://lake wide/t2499' >/dev/null ||
	screen | grep -F "+ s3://lake wide/t2499" >/dev/null || fail "wide/t2499 is not marked +"
keys Enter
keys j ; keys j ; keys j
wait_for "s3://lake models/deep "
screen | grep -qF "+ s3://lake models/deep " || fail "models/deep, not expanded yet, is not marked +"
screen | grep -qF "s3://lake models/deeper" && fail "a grandchild appeared before its parent was unfolded"
echo "unfolded on demand"

step "/ finds what the first load did not reach, by the walk's shortest path"
keys C-r
wait_for "nodes so far"
keys / ; keys C-u ; keys -l "models/deeper" ; keys Enter
wait_for "reached by derived-from, depth 3"
screen | grep -qF "derived-from s3://lake models/deep" || fail "the path does not go through models/deep"
wait_for "downstream of key features/credit-risk: $total nodes"
screen | grep -qF "so far" && fail "the header still says so far after the whole walk"
echo "found at depth 3; header has the whole count ($total)"
keys Q
