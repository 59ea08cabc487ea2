#!/usr/bin/env bash
# cli_report.sh — `keyward report` on the demo deployment, read back as an
# auditor would: the JSON with json, the CSV with csv, the HTML with
# html.parser, each compared with the database queried here directly
# (sqlite3), the cited events' inclusion proofs checked against the signed
# checkpoint by an RFC 9162 verifier written here; redaction checked by
# searching every redacted report for every person's name and key owner;
# bad --from / --to / --format / --role named; who may run it; --out atomic.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/report-test --tag owner=zz-report-owner-team
# a denial whose object the log stores with escapes (quote, backslash,
# \u00e9): key use is counted from the event text, which must decode them
kw --user svc-scoring-api key show 'features/q"u\ote é' && fail "a service read a key"
grep -qF "not allowed" "$ERR" || fail "the service's read was not refused: $(cat "$ERR")"
sleep 1
T0=$(date -u +%Y-%m-%dT%H:%M:%SZ) # every event above is before T0, every later one at or after it
sleep 1
q() { sqlite3 "$DB" "$@"; }

step "JSON: sections match the database"
ok report --from 2020-01-01 --to "$T0" --format json
cp "$OUT" "$W/r.json"
q "SELECT seq, time, action, outcome, object, hex(leaf_hash), json_extract(json, '\$.details.kind') FROM audit_events" >"$W/events.txt"
q "SELECT name, cur_state, cur_version FROM keys" >"$W/keys.txt"
q "SELECT actor, object, action, outcome, time FROM audit_events" >"$W/use.txt"
q "SELECT id, created FROM requests" >"$W/requests.txt"
q "SELECT request_id, approver FROM approvals" >"$W/approvals.txt"
python3 - "$W" "$T0" <<'EOF' || fail "the JSON report disagrees with the database"
import base64, hashlib, json, sys, collections, datetime
w, t0 = sys.argv[1], sys.argv[2]
d = json.load(open(w + "/r.json"))
hi = t0.replace("Z", ".000Z")
ev = []
for line in open(w + "/events.txt"):
    seq, time, action, outcome, obj, leaf, kind = line.rstrip("\n").split("|")
    if "2020-01-01" <= time < hi:
        ev.append(dict(seq=int(seq), time=time, action=action, outcome=outcome, obj=obj, leaf=leaf, kind=kind))
assert d["period"]["to"] == hi, d["period"]
assert d["summary"]["events"] == len(ev), (d["summary"]["events"], len(ev))
days = collections.Counter(e["time"][:10] for e in ev)
assert {x["day"]: x["events"] for x in d["events_per_day"]} == dict(days)
keys = {l.split("|")[0]: l.split("|")[1] for l in open(w + "/keys.txt").read().split("\n") if l}
assert {k["key"]: k["state"] for k in d["keys"]} == keys
assert any(k["owner"] == "zz-report-owner-team" for k in d["keys"]), "officer sees owners"
rot = [e["seq"] for e in ev if e["action"] == "request.execute" and e["kind"] == "rotate" and e["outcome"] == "ok"]
assert [r["seq"] for r in d["rotations"]] == rot and rot, (d["rotations"], rot)
for r in d["rotations"]:
    age = (datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")) -
           datetime.datetime.fromisoformat(r["previous_activated"].replace("Z", "+00:00"))).days
    assert r["age_days"] == age and r["within_policy"] == (age <= r["cryptoperiod_days"]), r
assert d["summary"]["rotations_outside_policy"] == sum(not r["within_policy"] for r in d["rotations"])
comp = [e["seq"] for e in ev if e["action"] == "key.compromise" and e["outcome"] == "ok"]
assert [c["seq"] for c in d["compromises"]] == comp and comp
reqs = {l.split("|")[0] for l in open(w + "/requests.txt").read().split("\n") if l}
assert {a["request"] for a in d["approvals"]} == reqs
signers = collections.defaultdict(set)
for l in open(w + "/approvals.txt").read().split("\n"):
    if l:
        signers[l.split("|")[0]].add(l.split("|")[1])
for a in d["approvals"]:
    assert {s["signer"] for s in a["signers"]} == signers[a["request"]], a
    assert a["verified"] and all(s["signature_valid"] for s in a["signers"]), a
prot = sum(e["action"] == "protect" and e["outcome"] == "ok" for e in ev)
assert sum(a["count"] for a in d["access_by_actor"] if a["action"] == "protect" and a["outcome"] == "ok") == prot
assert sum(k["protect"] for k in d["access_by_key"]) == prot
den = sum(e["outcome"] == "denied" for e in ev)
# key use: every (actor, object, action, outcome) group and its count, as SQL's GROUP BY
use = collections.Counter()
for l in open(w + "/use.txt"):
    actor, obj, action, outcome, time = l.rstrip("\n").split("|")
    if "2020-01-01" <= time < hi and (action in ("protect", "unprotect", "unprotect.override") or outcome == "denied"):
        use[(actor, obj, action, outcome)] += 1
got = {(a["actor"], a["object"], a["action"], a["outcome"]): a["count"] for a in d["access_by_actor"]}
assert got == dict(use), (sorted(set(got.items()) ^ set(use.items())))[:10]
assert list(got) == sorted(got, key=lambda g: tuple(x.encode() for x in g)), "key use is not in (actor, object, action, outcome) order"
assert ("svc-scoring-api", 'key:features/q"u\\ote \u00e9', "key.read", "denied") in got, "the escaped denial is not counted"
assert d["summary"]["denials"] == den and den > 0
assert d["summary"]["anomalies"] == sum(e["action"].startswith("anomaly") for e in ev)
ids = [c["control"] for c in d["controls"]]
assert ids == ["pci-3.6.1"] + ["pci-3.7.%d" % i for i in range(1, 10)] + ["nist-cryptoperiod", "nist-states"], ids
v = d["verification"]
assert v["intact"] and v["anchor_checked"] and v["problem"] == ""
note = v["checkpoint"]["note"].split("\n")
size, root = int(note[1]), base64.b64decode(note[2])
assert size == v["checkpoint"]["size"] and root.hex() == v["checkpoint"]["root_hash"]
leaf = {e["seq"]: bytes.fromhex(e["leaf"]) for e in ev}

def verify(index, n, h, path, want):  # RFC 9162, 2.1.3.2
    fn, sn, r = index, n - 1, h
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == want

cited = 0
by_seq = {e["seq"]: e for e in ev}
for c in d["controls"]:
    if c["status"] == "evidenced":
        assert c["events"], c
    for s in c["events"]:
        assert s in by_seq, (c["control"], s)
        p = d["proofs"][str(s)]
        assert p["status"] == "proven" and p["tree_size"] == size and p["leaf_index"] == s - 1
        assert bytes.fromhex(p["leaf_hash"]) == leaf[s], s
        assert verify(s - 1, size, leaf[s], [bytes.fromhex(x) for x in p["path"]], root), "proof of %d" % s
        cited += 1
assert cited >= 20, cited
# what each control cites is of the kind it claims
kinds = {"pci-3.7.1": {"key.create"}, "pci-3.7.4": {"request.execute"}, "pci-3.7.6": {"request.approve"}}
for c in d["controls"]:
    for s in c["events"]:
        if c["control"] in kinds:
            assert by_seq[s]["action"] in kinds[c["control"]], (c["control"], by_seq[s])
EOF
# a damaged proof path must fail the check above: flip one hash and re-run the verifier part
python3 - "$W/r.json" <<'EOF' || fail "the proof check accepts a damaged path"
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["proofs"].values():
    if p["status"] == "proven" and p["path"]:
        p["path"][0] = ("0" if p["path"][0][0] != "0" else "1") + p["path"][0][1:]
        break
json.dump(d, open(sys.argv[1] + ".bad", "w"))
EOF
cp "$W/r.json" "$W/r.good" && cp "$W/r.json.bad" "$W/r.json"
if python3 - "$W/r.json" <<'EOF' 2>/dev/null; then fail "a flipped proof hash still verified"; fi
import base64, hashlib, json, sys
d = json.load(open(sys.argv[1]))
note = d["verification"]["checkpoint"]["note"].split("\n")
size, root = int(note[1]), base64.b64decode(note[2])
for p in d["proofs"].values():
    fn, sn, r = p["leaf_index"], size - 1, bytes.fromhex(p["leaf_hash"])
    for x in map(bytes.fromhex, p["path"]):
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + x + r).digest()
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1; sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + x).digest()
        fn >>= 1; sn >>= 1
    assert r == root
EOF
cp "$W/r.good" "$W/r.json"

step "CSV: the same facts, one header row per section"
ok report --from 2020-01-01 --to "$T0" --format csv
python3 - "$OUT" "$W/r.json" <<'EOF' || fail "the CSV report disagrees with the JSON one"
import csv, json, sys, collections
d = json.load(open(sys.argv[2]))
rows = list(csv.reader(open(sys.argv[1], newline="")))
hdr, sec = {}, collections.defaultdict(list)
for r in rows:
    if r[0].startswith("#"):
        hdr[r[0][1:]] = r[1:]
    else:
        assert r[0] in hdr, "row before its header: %r" % r
        assert len(r) == len(hdr[r[0]]) + 1, r
        sec[r[0]].append(dict(zip(hdr[r[0]], r[1:])))
for s in ("keys", "versions", "rotations", "approvals", "compromises", "access_by_actor", "controls", "events_per_day"):
    assert len(sec[s]) == len(d[s]), (s, len(sec[s]), len(d[s]))
assert [int(r["seq"]) for r in sec["rotations"]] == [r["seq"] for r in d["rotations"]]
assert {r["key"]: r["state"] for r in sec["keys"]} == {k["key"]: k["state"] for k in d["keys"]}
summ = {r["field"]: r["value"] for r in sec["summary"]}
assert int(summ["events"]) == d["summary"]["events"]
assert {r["field"]: r["value"] for r in sec["verification"]}["intact"] == "yes"
assert [r["control"] for r in sec["controls"]] == [c["control"] for c in d["controls"]]
assert len(sec["proofs"]) == len(d["proofs"])
EOF

step "HTML: self-contained, charts and tables read back with html.parser"
ok report --from 2020-01-01 --to "$T0" --format html
python3 - "$OUT" "$W/r.json" <<'EOF' || fail "the HTML report disagrees with the JSON one"
import json, sys
from html.parser import HTMLParser
d = json.load(open(sys.argv[2]))
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svg, self.stack, self.rows, self.bars, self.dots, self.ext, self.text = [], [], {}, 0, [], [], []
        self.table = None
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag in ("script", "link", "img", "iframe", "object"):
            self.ext.append(tag)
        for k in ("src", "href"):
            if k in a:
                self.ext.append(a[k])
        if tag == "svg":
            self.svg.append(a.get("id"))
        if tag == "rect" and a.get("class") == "bar":
            self.bars += 1
        if tag == "circle" and "rotation" in a.get("class", ""):
            self.dots.append(a["class"].split()[1])
        if tag == "table":
            self.table = a.get("class")
        if tag == "tr" and self.table and "tbody" in self.stack:
            self.rows[self.table] = self.rows.get(self.table, 0) + 1
        self.stack.append(tag)
    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass
    def handle_data(self, t):
        self.text.append(t)
p = P()
p.feed(open(sys.argv[1]).read())
assert not p.ext, "external assets: %r" % p.ext
assert p.svg == ["chart-per-day", "chart-rotations"], p.svg
assert p.bars == len(d["events_per_day"]), (p.bars, len(d["events_per_day"]))
assert p.dots == ["ok" if r["within_policy"] else "late" for r in d["rotations"]], p.dots
for s in ("keys", "rotations", "approvals", "controls", "access_by_key", "proofs"):
    n = len(d[s])
    assert p.rows.get(s) == n, (s, p.rows.get(s), n)
text = "".join(p.text)
import base64, re
m = re.search(r"keyward/" + d["deployment"] + r"\n(\d+)\n(\S+)\ntime \d+\n\n\u2014 keyward/", text)
assert m and int(m.group(1)) >= d["verification"]["checkpoint"]["size"], "checkpoint note missing or mangled"
assert len(base64.b64decode(m.group(2))) == 32
assert "The audit log verifies" in text
EOF

step "redaction: no person's name and no owner in any redacted report"
q "SELECT name FROM users; SELECT DISTINCT value FROM key_tags WHERE tag = 'owner'" >"$W/hidden"
[ "$(wc -l <"$W/hidden")" -ge 15 ] || fail "too few hidden strings: $(cat "$W/hidden")"
grep -qx zz-report-owner-team "$W/hidden" || fail "the test's owner is not among the hidden strings"
# Names are searched as whole tokens: base64 (the signed note) may hold
# any short letter run, but never one set apart by other characters.
cat >"$W/search.py" <<'EOF'
import re, sys
doc = open(sys.argv[1]).read()
found = [n for n in open(sys.argv[2]).read().split("\n")
         if n and re.search(r"(?<![A-Za-z0-9+/=_-])" + re.escape(n) + r"(?![A-Za-z0-9+/=_-])", doc)]
print(" ".join(found))
sys.exit(1 if found else 0)
EOF
# the search finds them in a report with names (so it can fail)
python3 "$W/search.py" "$W/r.json" "$W/hidden" >"$W/found" && fail "names not found in the officer's report"
grep -q bob "$W/found" && grep -q zz-report-owner-team "$W/found" || fail "officer's report lacks: $(cat "$W/found")"
for who in "--user dave|" "|--role auditor" "--user erin|--role approver"; do
	for fmt in json csv html; do
		# shellcheck disable=SC2086
		ok ${who%|*} report --from 2020-01-01 --to "$T0" --format $fmt ${who#*|}
		has "$OUT" "edacted"
		python3 "$W/search.py" "$OUT" "$W/hidden" >"$W/found" ||
			fail "redacted report ($who, $fmt) holds: $(cat "$W/found")"
	done
done
# stable pseudonyms: the same signer is the same pseudonym for dave and for root --role auditor
ok --user dave report --from 2020-01-01 --to "$T0"
p1=$(jget "$OUT" 'd["approvals"][0]["signers"][0]["signer"]')
ok report --from 2020-01-01 --to "$T0" --role auditor
p2=$(jget "$OUT" 'd["approvals"][0]["signers"][0]["signer"]')
[ "$p1" = "$p2" ] || fail "pseudonyms differ: $p1 / $p2"
case $p1 in person-??????????) ;; *) fail "not a pseudonym: $p1" ;; esac
jeq "$OUT" 'd["compromises"][0]["reason"]' "[redacted]"
# an auditor cannot lift redaction by asking for an officer's view
ok --user dave report --from 2020-01-01 --to "$T0" --role officer
jeq "$OUT" 'd["redacted"]' true
# an admin (need-to-know) sees names
ok --user erin report --from 2020-01-01 --to "$T0"
jeq "$OUT" 'd["redacted"]' false

step "bad input is named"
expect 2 report --from yesterday
has "$ERR" "--from"
has "$ERR" "yesterday"
expect 2 report --to 2026-13-45
has "$ERR" "--to"
expect 2 report --format pdf
has "$ERR" "--format"
has "$ERR" "pdf"
expect 2 report --role janitor
has "$ERR" "--role"
expect 2 report --from 2026-06-01 --to 2026-05-01
has "$ERR" "--from must be before --to"

step "who may run it, and the audit trail"
expect 4 --user bob report
expect 4 --user svc-feature-store report
ok --user dave report --from 2020-01-01 --to "$T0"
q "SELECT actor, outcome FROM audit_events WHERE action = 'report.read' ORDER BY seq" >"$W/trail"
grep -qx "bob|denied" "$W/trail" || fail "bob's denial not recorded: $(cat "$W/trail")"
grep -qx "svc-feature-store|denied" "$W/trail" || fail "the service's denial not recorded"
[ "$(grep -c '^dave|ok$' "$W/trail")" -ge 5 ] || fail "dave's reports not recorded: $(cat "$W/trail")"

step "--out writes atomically, mode 0600"
mkdir -p "$W/out"
ok --user dave report --format html --out "$W/out/report.html"
[ -s "$W/out/report.html" ] || fail "no report written"
[ "$(stat -c %a "$W/out/report.html")" = 600 ] || fail "mode $(stat -c %a "$W/out/report.html")"
[ "$(ls -A "$W/out")" = report.html ] || fail "left behind: $(ls -A "$W/out")"
[ ! -s "$OUT" ] || fail "--out also printed to stdout"
if kw --user dave report --format csv --out "$W/missing-dir/r.csv"; then fail "wrote into a missing directory"; fi
has "$ERR" "missing-dir"
[ ! -e "$W/missing-dir/r.csv" ] || fail "a report appeared in a directory that does not exist"

step "a log edited behind keyward's back: the report says so and counts only what was proven"
# an attacker with write access to the catalogue rewrites who ran a report:
# the hashed text and its column copy
bad=$(q "SELECT seq FROM audit_events WHERE action = 'report.read' AND actor = 'dave' ORDER BY seq LIMIT 1")
total=$(q "SELECT max(seq) FROM audit_events")
[ -n "$bad" ] && [ "$bad" -gt 1 ] && [ "$bad" -lt "$total" ] || fail "no event of dave's in the middle of the log ($bad of $total)"
q "UPDATE audit_events SET json = replace(json, '\"actor\":\"dave\"', '\"actor\":\"eve\"'), actor = 'eve' WHERE seq = $bad"
q "SELECT json FROM audit_events WHERE seq = $bad" | grep -qF '"actor":"eve"' || fail "the text edit did not take"
kw --user dave report --format json || true
[ "$(jget "$OUT" 'd["verification"]["intact"]')" = false ] || fail "the report calls an edited log intact"
[ "$(jget "$OUT" 'd["verification"]["first_bad_seq"]')" = "$bad" ] || fail "first bad entry is not $bad"
[ "$(jget "$OUT" 'd["verification"]["counted_entries"]')" = "$((bad - 1))" ] ||
	fail "counted $(jget "$OUT" 'd["verification"]["counted_entries"]') entries, not the $((bad - 1)) before the edit"
jget "$OUT" 'd["verification"]["counts_from"]' | grep -qF "before the first bad one" ||
	fail "counts_from does not say the counts stop at the bad entry"

# the text put back, its column copy left edited: every text is proven and
# counted, and the report says the damage is in the columns
q "UPDATE audit_events SET json = replace(json, '\"actor\":\"eve\"', '\"actor\":\"dave\"') WHERE seq = $bad"
[ "$(q "SELECT actor FROM audit_events WHERE seq = $bad")" = eve ] || fail "the column edit is gone"
kw --user dave report --format json || true
[ "$(jget "$OUT" 'd["verification"]["intact"]')" = false ] || fail "the report calls a log with edited columns intact"
[ "$(jget "$OUT" 'd["verification"]["first_bad_seq"]')" = "$bad" ] || fail "first bad entry is not $bad (columns)"
[ "$(jget "$OUT" 'd["verification"]["counted_entries"]')" -gt "$bad" ] || fail "a column edit stopped the counts"
jget "$OUT" 'd["verification"]["counts_from"]' | grep -qF "stored filter columns" ||
	fail "counts_from does not say the counts read the proven texts: $(jget "$OUT" 'd["verification"]["counts_from"]')"
echo "ok"
