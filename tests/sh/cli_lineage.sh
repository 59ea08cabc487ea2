#!/usr/bin/env bash
# cli_lineage.sh — `keyward lineage ...` through the real binary: import
# from a file, a directory and stdin (mapping rules from config.json), a
# bad event named by file, line and field with nothing written, re-import
# changing nothing, impact with paths and counts, --as-of across a
# rotation, provenance with the key version's state, show, export as DOT
# and JSON, and the audit events of imports.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/lin

# Mapping rules: lake features are keyward features, lake models are
# models, serving names are endpoints.
python3 - "$KEYWARD_HOME/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["lineage_mappings"] = [
    {"namespace": "s3://lake", "name": "features/*", "asset": "feature:{name}"},
    {"namespace": "s3://lake", "name": "models/*", "kind": "model"},
    {"namespace": "serving", "name": "*", "kind": "endpoint"},
]
json.dump(c, open(p, "w"), indent=2)
EOF

# events FILE SEQ JOB IN[@V] OUT[@V]...: one OpenLineage COMPLETE event per
# call, appended as a JSON line, at the current time.  A dataset is
# "NS|NAME" (default namespace s3://lake) with an optional "@VERSION".
event() {
	python3 - "$@" <<'EOF'
import json, sys, datetime
f, seq, job, inp, *outs = sys.argv[1:]
def ds(s):
    ns, _, rest = s.rpartition("|")
    name, _, ver = rest.partition("@")
    d = {"namespace": ns or "s3://lake", "name": name}
    if ver:
        d["facets"] = {"version": {"_producer": "p", "_schemaURL": "s", "datasetVersion": ver}}
    return d
ev = {"eventType": "COMPLETE",
      "eventTime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "run": {"runId": "00000000-0000-4000-8000-%012d" % int(seq)},
      "job": {"namespace": "airflow", "name": job},
      "inputs": [ds(inp)], "outputs": [ds(o) for o in outs],
      "producer": "https://example.com/pipeline",
      "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
open(f, "a").write(json.dumps(ev) + "\n")
EOF
}

step "import: rules join datasets to assets; unmapped ones stay nodes"
echo "entity,income" >"$W/in1"
ok protect --key features/lin --asset feature:features/income@1 "$W/in1" "$W/env1"
sleep 1 # the events below must come after the protection, to the second
event "$W/ev1.jsonl" 1 train-fraud "features/income" "models/fraud@1"
event "$W/ev1.jsonl" 2 ship-fraud "models/fraud@1" "serving|fraud-api"
event "$W/ev1.jsonl" 3 clean-clicks "raw-zone|clicks" "features/income"
ok lineage import "$W/ev1.jsonl"
has "$ERR" "imported 3 of 3 events from 1 file (0 already there)"
ok lineage import --json "$W/ev1.jsonl"
jeq "$OUT" 'd["imported"]' 0
jeq "$OUT" 'd["duplicates"]' 3
jeq "$OUT" 'd["nodes"]' 0
jeq "$OUT" 'd["edges"]' 0
t1=$(date -u +%Y-%m-%dT%H:%M:%SZ)

step "a bad event: named by file, line and field; nothing written"
sqlite3 "$DB" 'SELECT count(*) FROM lineage_events' >"$W/before"
event "$W/bad.jsonl" 10 other "a" "b"
python3 - "$W/bad.jsonl" <<'EOF'
import json, sys
ev = json.loads(open(sys.argv[1]).read())
del ev["run"]["runId"]
open(sys.argv[1], "a").write(json.dumps(ev) + "\n")
EOF
expect 2 lineage import "$W/bad.jsonl"
has "$ERR" "bad.jsonl:2: run.runId is missing"
sqlite3 "$DB" 'SELECT count(*) FROM lineage_events' >"$W/after"
cmp -s "$W/before" "$W/after" || fail "a refused import wrote events"
printf '{"eventType": "START", "eventTime": ' >"$W/cut.json"
expect 2 lineage import "$W/cut.json"
has "$ERR" "cut.json:1: not valid JSON"
ok audit tail --action lineage.import --json
# the demo's own lineage sync first, then this test's two imports and two refusals
jeq "$OUT" '[e["outcome"] for e in d]' '["ok", "ok", "ok", "error", "error"]'
jeq "$OUT" 'd[0]["object"]' 'lineage:demo:lineage-sync'

step "impact: counts by kind and a shortest path per node"
ok lineage impact features/lin@1 --json
jeq "$OUT" 'd["counts"]["model"]' 1
jeq "$OUT" 'd["counts"]["endpoint"]' 1
jeq "$OUT" 'd["counts"]["feature"]' 2
jeq "$OUT" '[s["edge"] for n in d["nodes"] if n["name"] == "fraud-api" for s in n["path"]]' \
	'["protected-by", "derived-from", "served-by"]'
jeq "$OUT" '[n["depth"] for n in d["nodes"] if n["name"] == "fraud-api"]' '[2]'
# raw clicks is upstream, not downstream
jeq "$OUT" '[n for n in d["nodes"] if n["name"] == "clicks"]' '[]'
ok lineage impact features/lin
has "$OUT" "impact of key features/lin (every version)"
has "$OUT" "serving fraud-api"
has "$OUT" "key:features/lin -protected-by-> feature:features/income -derived-from-> s3://lake models/fraud@1 -served-by-> serving fraud-api"
expect 3 lineage impact no/such-key
expect 3 lineage impact features/lin@7
expect 2 lineage impact features/lin --as-of yesterday

step "--as-of across a rotation"
sleep 1
kw_rotate_done features/lin || fail "rotating features/lin through a request"
ok protect --key features/lin --asset feature:features/income@2 "$W/in1" "$W/env2"
sleep 1
event "$W/ev2.jsonl" 4 train-fraud "features/income" "models/fraud@2"
# from a directory, and from stdin
mkdir "$W/dir" && cp "$W/ev2.jsonl" "$W/dir/a.jsonl" && echo ignored >"$W/dir/notes.txt"
ok lineage import "$W/dir"
has "$ERR" "imported 1 of 1 events from 1 file"
ok lineage import - <"$W/ev2.jsonl"
has "$ERR" "(1 already there)"
ok lineage impact features/lin@2 --as-of "$t1" --json
jeq "$OUT" 'd["total"]' 0
ok lineage impact features/lin@2 --json
jeq "$OUT" 'sorted(n["name"] + "@" + str(n["version"]) for n in d["nodes"] if n["kind"] == "model")' \
	'["models/fraud@2"]'
ok lineage impact features/lin@1 --json
jeq "$OUT" 'sorted(n["name"] + "@" + str(n["version"]) for n in d["nodes"] if n["kind"] == "model")' \
	'["models/fraud@1"]'

step "provenance: the key version at consumption, its state now"
ok lineage provenance models/fraud@1 --json
jeq "$OUT" 'd["inputs"]' 2
jeq "$OUT" '[u["protected_by"]["version"] for u in d["upstream"] if u["protected_by"]]' '[1]'
jeq "$OUT" '[u["protected_by"]["state"] for u in d["upstream"] if u["protected_by"]]' '["decrypt-only"]'
jeq "$OUT" '[u["protected_by"]["rotations_since"] for u in d["upstream"] if u["protected_by"]]' '[1]'
ok lineage provenance models/fraud@2
has "$OUT" "features/lin v2 (active)"
expect 2 lineage provenance models/fraud

step "show and export"
ok lineage show fraud-api --json
jeq "$OUT" 'd["kind"]' endpoint
jeq "$OUT" '[u["edge"] for u in d["upstream"]]' '["served-by"]'
ok lineage show feature:features/income@1
has "$OUT" "protected-by features/lin v1"
expect 3 lineage show nothing-here
ok lineage export --format dot
head -n1 "$OUT" | grep -q '^digraph lineage {' || fail "not DOT"
has "$OUT" 'label="served-by"'
has "$OUT" '"key:features/lin@2"'
ok lineage export --json
# this test's one served-by edge (the demo's graph has its own)
jeq "$OUT" 'len([e for e in d["edges"] if e["kind"] == "served-by" and
	[n for n in d["nodes"] if n["id"] == e["dst"]][0]["name"] == "fraud-api"])' 1
jeq "$OUT" 'len(d["protected_by"]) >= 4' true
expect 2 lineage export --format svg

step "reports: evidence, HTML without external assets, redaction"
ok key tag features/lin owner=risk-modelling-team
ok lineage report provenance models/fraud@1
jeq "$OUT" 'd["report"]' provenance
jeq "$OUT" 'd["redacted"]' false
jeq "$OUT" 'd["subject"]["name"]' models/fraud
jeq "$OUT" 'd["upstream"][0]["protected_by"]["owner"]' risk-modelling-team
jeq "$OUT" 'd["upstream"][0]["path"][0]["label"]' "s3://lake models/fraud@1"
size=$(sqlite3 "$DB" 'SELECT max(size) FROM audit_tree_heads')
jeq "$OUT" 'd["tree_head"]["size"]' "$size"
jeq "$OUT" 'len(d["tree_head"]["signature"]) == 128' true
# every import and the key's own events (create, protect, rotate, tag)
imports=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE action = 'lineage.import' AND outcome = 'ok'")
jeq "$OUT" "len([s for s in d['audit_events']]) >= $imports + 4" true
seq=$(jget "$OUT" 'd["audit_events"][0]')
ok audit verify --entry "$seq"
ok lineage report impact features/lin@1 --format html
head -c 15 "$OUT" | grep -q '<!DOCTYPE html>' || fail "not HTML"
has "$OUT" "<svg"
has "$OUT" "served-by"
has "$OUT" "serving fraud-api"
! grep -Eiq '(src|href)=|<script|<link|url\(' "$OUT" || fail "the HTML refers to something outside itself"
# Every name the graph holds, and the key's owner: none may be in a
# redacted report, JSON or HTML, asked for (--redact) or by role (dave is
# an auditor: no need to know).
ok lineage export --json
python3 - "$OUT" >"$W/names" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
names = set()
for n in d["nodes"]:
    if n["namespace"] != "keyward":
        names.add(n["namespace"])
        names.add(n["name"])
    elif not n["name"].startswith(("feature:credit-risk", "feature:fraud", "feature:customer", "feature:churn",
                                   "dataset:claims", "dataset:transactions", "model:fraud-v4",
                                   "model:credit-scorer", "inference-log:")):
        names.add(n["name"].split(":", 1)[1])
names.add("risk-modelling-team")
print("\n".join(sorted(names)))
EOF2
[ "$(wc -l <"$W/names")" -ge 10 ] || fail "too few names to check: $(cat "$W/names")"
for report in "provenance models/fraud@1" "impact features/lin"; do
	for fmt in json html; do
		for who in "" "--user dave"; do
			if [ -z "$who" ]; then extra=--redact; else extra=; fi
			# shellcheck disable=SC2086
			ok $who lineage report $report --format $fmt $extra
			has "$OUT" "edacted"
			# one pass over the report for every name (the demo's bulk keys
			# give over a thousand: a grep each costs minutes)
			leaked=$(python3 -c '
import sys
text = open(sys.argv[2], encoding="utf-8").read()
print("\n".join(n for n in open(sys.argv[1], encoding="utf-8").read().splitlines() if n and n in text))
' "$W/names" "$OUT")
			[ -z "$leaked" ] || fail "redacted $report ($fmt, ${who:-officer}) holds: $(echo "$leaked" | head -n 5)"
		done
	done
done
# the same name is the same pseudonym in every report
ok --user dave lineage report impact features/lin
p1=$(jget "$OUT" '[n["name"] for n in d["nodes"] if n["kind"] == "endpoint"][0]')
ok lineage report impact features/lin@1 --redact
p2=$(jget "$OUT" '[n["name"] for n in d["nodes"] if n["kind"] == "endpoint"][0]')
[ "$p1" = "$p2" ] || fail "pseudonyms differ: $p1 / $p2"
case $p1 in endpoint-??????????) ;; *) fail "not a pseudonym: $p1" ;; esac
echo "ok"
