#!/usr/bin/env bash
# console_lineage.sh — the lineage screen in tmux: :lineage KEY draws the
# downstream tree with the side pane, / finds a node (its branch unfolded),
# Enter folds a branch, u goes upstream from a model and back, :asof moves
# the view in time.
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
    {"namespace": "serving", "name": "*", "kind": "endpoint"},
]
json.dump(c, open(p, "w"))
EOF2
python3 - "$KW_TMP/ev.jsonl" <<'EOF2'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
def ev(i, job, ins, outs):
    return {"eventType": "COMPLETE", "eventTime": now,
            "run": {"runId": "00000000-0000-4000-8000-%012d" % i},
            "job": {"namespace": "airflow", "name": job},
            "inputs": [{"namespace": ns, "name": n} for ns, n in ins],
            "outputs": [{"namespace": ns, "name": n, "facets": {"version": {"_producer": "p", "_schemaURL": "s",
                         "datasetVersion": v}}} if v else {"namespace": ns, "name": n} for ns, n, v in outs],
            "producer": "https://example.com/p",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
with open(sys.argv[1], "w") as f:
    f.write(json.dumps(ev(1, "train-scorer", [("s3://lake", "credit-risk/income"), ("s3://lake", "credit-risk/debt-ratio")],
                          [("s3://lake", "models/scorer", "7")])) + "\n")
    m = ev(2, "ship-scorer", [("s3://lake", "models/scorer")], [("serving", "scorer-api", None)])
    m["inputs"][0]["facets"] = {"version": {"_producer": "p", "_schemaURL": "s", "datasetVersion": "7"}}
    f.write(json.dumps(m) + "\n")
EOF2
sleep 1 # event times after the demo's protection, to the second
"$KEYWARD_BIN" lineage import "$KW_TMP/ev.jsonl" 2>"$KW_TMP/import.err" ||
	fail "import failed: $(cat "$KW_TMP/import.err")"
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step ":lineage KEY shows the downstream tree"
keys : ; keys -l "lineage features/credit-risk" ; keys Enter
wait_for "downstream of key features/credit-risk"
wait_for "s3://lake models/scorer@7"
screen | grep -qF "Lineage" || fail "no Lineage tab"
screen | grep -qF "[model]" || fail "kinds not shown"
echo "tree drawn"

step "/ finds a node and the side pane explains it"
keys / ; keys -l "scorer-api" ; keys Enter
wait_for "reached by served-by, depth 2"
screen | grep -qF "served-by serving scorer-api" || fail "the path does not end at the endpoint"
echo "found, path shown"

step "Enter folds the branch above"
keys / ; keys C-u ; keys -l "models/scorer@7" ; keys Enter
wait_for "reached by derived-from, depth 1"
keys Enter
wait_gone "serving scorer-api"
keys Enter
wait_for "serving scorer-api"
echo "fold and unfold"

step "u: upstream of the selected model, and back"
keys / ; keys C-u ; keys -l "models/scorer@7" ; keys Enter
wait_for "reached by derived-from, depth 1"
keys w
wait_for "inputs,"
wait_for "feature:credit-risk/debt-ratio"
keys j
wait_for "protected by features/credit-risk v"
keys w
wait_for "downstream of key features/credit-risk"
echo "up and down"

step ":asof moves the view in time"
keys : ; keys -l "asof 2020-01-01" ; keys Enter
wait_for "Nothing reached."
screen | grep -qF "as of 2020-01-01" || fail "the date is not shown"
keys : ; keys -l "asof now" ; keys Enter
wait_for "s3://lake models/scorer@7"
echo "as of 2020: nothing; now: the tree"
keys Q
