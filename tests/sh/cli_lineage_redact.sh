#!/usr/bin/env bash
# cli_lineage_redact.sh — need-to-know redaction of every lineage answer, on
# the demo's graph: an auditor (dave) and an officer asking --redact get
# pseudonyms in `lineage show`, `impact`, `provenance`, `export` (text and
# --json) and in both report forms, and no output holds any original
# dataset, job, feature, model, endpoint, namespace or owner name; the
# officer without --redact sees the names; pseudonyms are stable across
# commands.  Also: provenance names the requests and approvers behind each
# input's key version, and reports list those requests' audit events.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
kw() { "$KEYWARD_BIN" "$@"; }
py() { python3 -c "$@"; }

step "the original names, as the officer sees them"
kw lineage export --format json >"$KW_TMP/graph.json"
py '
import json, sys
g = json.load(open(sys.argv[1]))
names = set()
for n in g["nodes"]:
    if n["namespace"] != "keyward":
        names.add(n["namespace"]); names.add(n["name"])
    else:
        names.add(n["name"].split(":", 1)[1])
names.update(["risk-ml", "fraud-ml", "customer-data", "claims-analytics"])  # key owners
print("\n".join(sorted(names)))
' "$KW_TMP/graph.json" >"$KW_TMP/names"
n=$(wc -l <"$KW_TMP/names")
[ "$n" -ge 30 ] || fail "the demo graph has only $n names"
grep -qx "credit-scorer-v3" "$KW_TMP/names" || fail "the demo graph lacks credit-scorer-v3"
echo "$n names"

# leaks FILE: the original names FILE holds as whole words (a key name such
# as models/credit-scorer-v2 is not redacted and holds the endpoint name
# credit-score, and feature-groups/customer-360 the feature group name
# groups/customer-360, only as part of a word)
leaks() {
	py '
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
# a plain substring test first (fast), the word test only for those found
names = [n for n in open(sys.argv[2]).read().split("\n") if n and n in text]
for name in names:
    if re.search(r"(?<![A-Za-z0-9_/-])" + re.escape(name) + r"(?![A-Za-z0-9_/-])", text):
        print(name)
' "$1" "$KW_TMP/names"
}

runs=(
	"lineage impact inference/scoring-api@2"
	"lineage impact inference/scoring-api@2 --json"
	"lineage impact features/credit-risk"
	"lineage provenance credit-scorer-v2/weights@2.3.1"
	"lineage provenance credit-scorer-v2/weights@2.3.1 --json"
	"lineage show feature:credit-risk/income@1"
	"lineage show feature:credit-risk/income@1 --json"
	"lineage show #1 --json"
	"lineage export --format json"
	"lineage export --format dot"
	"lineage report provenance credit-scorer-v2/weights@2.3.1"
	"lineage report provenance credit-scorer-v2/weights@2.3.1 --format html"
	"lineage report impact inference/scoring-api@2 --format html"
)

step "the officer sees the names (so the search below can find them)"
kw lineage impact inference/scoring-api@2 >"$KW_TMP/officer.out"
[ -n "$(leaks "$KW_TMP/officer.out")" ] || fail "the officer's impact holds no original name: the search is blind"
echo "names shown"

for who in dave officer-redact; do
	step "$who: every answer is redacted"
	i=0
	for r in "${runs[@]}"; do
		i=$((i + 1))
		out=$KW_TMP/$who.$i
		# shellcheck disable=SC2086
		if [ "$who" = dave ]; then
			KEYWARD_USER=dave kw $r >"$out" 2>&1 || fail "dave: $r failed: $(cat "$out")"
		else
			kw $r --redact >"$out" 2>&1 || fail "--redact: $r failed: $(cat "$out")"
		fi
		[ -s "$out" ] || fail "$who: $r printed nothing"
		found=$(leaks "$out")
		[ -z "$found" ] || fail "$who: $r shows original names: $(echo $found)"
	done
	grep -qE "dataset-[0-9a-f]{10}" "$KW_TMP/$who.1" || fail "$who: no pseudonym in the impact"
	echo "$i answers, no original name"
done

step "pseudonyms are stable: the same in impact, export and reports, for dave and --redact"
p1=$(grep -oE "model-[0-9a-f]{10}@3.0.0-rc1" "$KW_TMP/dave.1" | head -1)
[ -n "$p1" ] || fail "no model pseudonym in dave's impact"
grep -qF "$p1" "$KW_TMP/officer-redact.1" || fail "--redact gives another pseudonym than dave's"
grep -qF "${p1%@*}" "$KW_TMP/dave.9" || fail "the export gives another pseudonym"
grep -qF "${p1%@*}" "$KW_TMP/dave.13" || fail "the report gives another pseudonym"
py 'import json,sys; d=json.load(open(sys.argv[1])); assert d["redacted"] is True, d' "$KW_TMP/dave.2"
py 'import json,sys; d=json.load(open(sys.argv[1])); assert d["facets"] is None, "facets shown"' "$KW_TMP/dave.7"
echo "stable: $p1"

step "provenance names the requests and approvers behind each input's key version"
kw lineage provenance credit-scorer-v2/weights@2.3.1 --json >"$KW_TMP/prov.json"
py '
import json, sys
d = json.load(open(sys.argv[1]))
prot = [u for u in d["upstream"] if u["protected_by"]]
assert prot, "no protected input"
v1 = [u for u in prot if u["protected_by"]["key"] == "features/credit-risk"]
assert v1, "credit-risk inputs missing"
ap = v1[0]["protected_by"]["approvals"]
kinds = sorted(a["kind"] for a in ap)
assert kinds.count("rotate") == 2, kinds          # the two rotations since v1
assert "state" in kinds, kinds                      # v1 retired by request
for a in ap:
    assert len(a["request"]) == 32 and a["approvers"], a
    assert all(w["approver"] in ("bob", "carol", "frank") for w in a["approvers"]), a
print(len(ap), "requests:", ", ".join("%s %s by %s" % (a["kind"], a["request"][:8],
      "+".join(w["approver"] for w in a["approvers"])) for a in ap))
' "$KW_TMP/prov.json"
kw lineage provenance credit-scorer-v2/weights@2.3.1 | grep -E "rotate [0-9a-f]{12} executed \((bob|carol|frank)" >/dev/null ||
	fail "the table shows no approvals"

step "the report lists those requests, and their audit events among the evidence"
kw lineage report provenance credit-scorer-v2/weights@2.3.1 >"$KW_TMP/report.json"
kw audit tail --lines 100000 --json >"$KW_TMP/audit.json"
py '
import json, sys
r = json.load(open(sys.argv[1]))
seqs = set(r["audit_events"])
ids = set()
for u in r["upstream"]:
    pb = u["protected_by"]
    if pb:
        for a in pb["approvals"]:
            ids.add(a["request"])
assert ids, "no approvals in the report"
assert r["tree_head"] and r["tree_head"]["signature"], "no signed tree head"
ev = json.load(open(sys.argv[2]))
ev = ev["events"] if isinstance(ev, dict) else ev
approve = [e for e in ev if e.get("object", "").startswith("request:") and e["object"][8:] in ids]
assert approve, "no audit event on those requests to compare with"
missing = [e["seq"] for e in approve if e["seq"] not in seqs]
assert not missing, "events of the requests not in the report: %s" % missing
print(len(ids), "requests,", len(approve), "of their events in the report")
' "$KW_TMP/report.json" "$KW_TMP/audit.json"
