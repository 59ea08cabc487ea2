#!/usr/bin/env bash
# cli_witness.sh — the witness sink against a C2SP tlog-witness started here
# (tests/sh/witness_server.py), which checks each add-checkpoint on its own:
# the log's ECDSA signature with openssl, the RFC 9162 consistency proof
# with its own verifier, the old size against what it last cosigned; and
# answers with Ed25519 cosignatures made by openssl.
#   - happy path: old 0, then growing logs with proofs of many shapes, every
#     one accepted by the witness; cosignatures verified and stored, other
#     witnesses' lines ignored; the cursor is the size the witness holds;
#   - 409: a cursor the witness does not hold (lost, behind, ahead of a
#     witness that lost state) is resolved by resending from the witness's
#     size, with a proof from there;
#   - a cosignature altered in transit is refused: the cursor does not move,
#     nothing is stored; the next run recovers;
#   - a witness holding a larger tree, or another tree of a size the log
#     has (409 at equal size, 422 on the proof): ALARM, exit 5, the cursor
#     stays, and an audit.witness event records it;
#   - a url that is not a witness's submission prefix (404) is said so;
#   - audit export carries the newest cosigned checkpoint, which openssl and
#     the shipped verifier (--witness-key) check, refusing an altered one;
#   - config: a malformed verifier_key, one whose key ID does not match,
#     and one on a webhook are refused naming the field.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok demo --events 40

ok audit checkpoint --json
origin=$(jget "$OUT" 'd["checkpoint"].split("\n")[0]')
ok audit pubkey
cp "$OUT" "$W/pub.pem"
R=$W/wit
mkdir -p "$R"
python3 "$KW_REPO/tests/sh/witness_server.py" "$R" "$origin" "$W/pub.pem" &
server=$!
trap 'kill $server 2>/dev/null || true; kw_lib_cleanup' EXIT
for _ in $(seq 1 100); do [ -s "$R/port" ] && break; sleep 0.05; done
[ -s "$R/port" ] || fail "the witness did not start"
base=http://127.0.0.1:$(cat "$R/port")
vkey=$(cat "$R/vkey")
CFG=$KEYWARD_HOME/config.json
cp "$CFG" "$W/config.orig"

sinks() {
	python3 - "$W/config.orig" "$CFG" "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["audit_sinks"] = json.loads(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
}
witness() { # PREFIX [VKEY]: one witness sink
	if [ -n "${2:-}" ]; then
		sinks '[{"name":"w","type":"witness","url":"'"$base/$1"'","verifier_key":"'"$2"'","attempts":2,"backoff_ms":10}]'
	else
		sinks '[{"name":"w","type":"witness","url":"'"$base/$1"'","attempts":2,"backoff_ms":10}]'
	fi
}
cursor() { sqlite3 "$DB" "SELECT coalesce((SELECT delivered FROM audit_forward WHERE sink = 'w'), 0)"; }
head_size() { sqlite3 "$DB" 'SELECT max(size) FROM audit_tree_heads'; }
cosigs() { sqlite3 "$DB" "SELECT count(*) FROM audit_cosignatures"; }
wstate() { cut -d' ' -f1 "$R/state"; }
# the witness's last request line: "PATH CODE OLD SIZE PROOF_LINES [why]"
lastreq() { tail -n1 "$R/requests"; }
# the root of the signed head at SIZE in base64, as the witness's state keeps it
root_at() { sqlite3 "$DB" "SELECT hex(root) FROM audit_tree_heads WHERE size = $1" | xxd -r -p | base64; }

step "config: verifier_key must be a well-formed cosignature key of its own name"
bad() { # SINKS_JSON TEXT
	sinks "$1"
	expect 7 audit forward
	has "$ERR" "$2"
}
name=${vkey%%+*}
rest=${vkey#*+}
kid=${rest%%+*}
key=${rest#*+}
bad '[{"name":"w","type":"witness","url":"'"$base"'/w","verifier_key":"nonsense"}]' \
	'"audit_sinks"[0].verifier_key: a verifier key has the form NAME+KEYID+BASE64'
bad '[{"name":"w","type":"witness","url":"'"$base"'/w","verifier_key":"other.test/w2+'"$kid+$key"'"}]' \
	'does not belong to this name and key'
bad '[{"name":"w","type":"witness","url":"'"$base"'/w","verifier_key":"'"$name+$kid"'+AAAA"}]' \
	'is not an Ed25519 cosignature key'
bad '[{"name":"w","type":"webhook","url":"'"$base"'/w","verifier_key":"'"$vkey"'"}]' \
	'"audit_sinks"[0].verifier_key applies to a witness sink only'

step "first checkpoint: old 0, no proof; the cosignature is verified and kept"
witness w "$vkey"
ok audit forward --json
jeq "$OUT" 'd[0]["error"]' null
jeq "$OUT" 'd[0]["delivered"]' 1
jeq "$OUT" 'd[0]["cosignatures"]' 1
jeq "$OUT" 'd[0]["conflicts"]' 0
jeq "$OUT" 'd[0]["lag"]' 0
h=$(head_size)
[ "$(cursor)" = "$h" ] || fail "cursor $(cursor), newest head $h"
[ "$(wstate)" = "$h" ] || fail "the witness holds $(wstate), not $h"
[ "$(lastreq)" = "/w/add-checkpoint 200 0 $h 0" ] || fail "request: $(lastreq)"
[ "$(cosigs)" = 1 ] || fail "$(cosigs) cosignatures stored"
# the stored line is the witness's own (not the other witness's, ignored)
stored=$(sqlite3 "$DB" "SELECT line FROM audit_cosignatures WHERE size = $h")
[ "$stored" = "$(tail -n1 "$R/cosigned")" ] || fail "stored '$stored', sent '$(tail -n1 "$R/cosigned")'"
sqlite3 "$DB" "SELECT witness FROM audit_cosignatures" | grep -qx "$name" || fail "witness name not kept"
sqlite3 "$DB" "SELECT line FROM audit_cosignatures" | grep -q other.test && fail "another witness's line was kept"

step "a growing log: each run proves consistency from the witness's size, the witness checks it"
for grow in 1 2 3 5 8 13 21; do
	for _ in $(seq 1 "$grow"); do ok key create "grow/k$grow-$RANDOM"; done
	before=$(cursor)
	ok audit forward --json
	jeq "$OUT" 'd[0]["error"]' null
	h=$(head_size)
	set -- $(lastreq)
	[ "$2" = 200 ] && [ "$3" = "$before" ] && [ "$4" = "$h" ] || fail "request: $(lastreq), cursor was $before, head $h"
	[ "$5" -ge 1 ] || fail "no proof lines from $before to $h"
	[ "$(cursor)" = "$h" ] && [ "$(wstate)" = "$h" ] || fail "cursor $(cursor), witness $(wstate), head $h"
done
grep -q badproof "$R/requests" && fail "the witness refused a proof: $(grep badproof "$R/requests")"
[ "$(cosigs)" = 8 ] || fail "$(cosigs) cosignatures after 8 cosigned checkpoints"
h1=$(head_size)
ok audit forward --json
jeq "$OUT" 'd[0]["delivered"]' 1
per_run=$(( $(head_size) - h1 )) # what one run appends (its login, audit.forward)

step "a url that is not the witness's submission prefix: 404, said so, the cursor stays"
before=$(cursor)
witness nope "$vkey"
expect 1 audit forward
has "$ERR" "does not know the origin $origin (404)"
has "$ERR" "submission prefix"
[ "$(cursor)" = "$before" ] || fail "a 404 moved the cursor"
witness w "$vkey"

step "409: a cursor the witness does not hold is resolved from the witness's size"
held=$(wstate)
sqlite3 "$DB" "UPDATE audit_forward SET delivered = 7 WHERE sink = 'w'"
ok audit forward --json
jeq "$OUT" 'd[0]["error"]' null
jeq "$OUT" 'd[0]["conflicts"]' 1
h=$(head_size)
tail -n2 "$R/requests" | head -n1 | grep -qx "/w/add-checkpoint 409 7 $h [0-9]*" || fail "no 409: $(tail -n2 "$R/requests")"
set -- $(lastreq)
[ "$2 $3 $4" = "200 $held $h" ] || fail "the resend was not from the witness's size $held: $(lastreq)"
[ "$(cursor)" = "$h" ] || fail "cursor $(cursor) after the 409, head $h"
# a lost cursor: old 0, the witness says its size, the resend proves from it
held=$(wstate)
sqlite3 "$DB" "DELETE FROM audit_forward WHERE sink = 'w'"
ok audit forward --json
jeq "$OUT" 'd[0]["conflicts"]' 1
set -- $(lastreq)
[ "$2 $3" = "200 $held" ] || fail "a lost cursor was not resolved: $(tail -n2 "$R/requests")"
# a witness that lost state back to an older head this log has: proof from there
old=$(sqlite3 "$DB" "SELECT size FROM audit_tree_heads WHERE size < $(cursor) ORDER BY size LIMIT 1 OFFSET 3")
echo "$old $(root_at "$old")" >"$R/state"
ok audit forward --json
jeq "$OUT" 'd[0]["error"]' null
set -- $(lastreq)
[ "$2 $3" = "200 $old" ] && [ "$5" -ge 1 ] || fail "not resent from the witness's older size $old: $(lastreq)"

step "a cosignature altered in transit: refused, the cursor stays, nothing stored"
ok key create tamper/one
before=$(cursor)
n=$(cosigs)
witness tamper "$vkey"
expect 5 audit forward --json
has "$ERR" "does not verify over this checkpoint"
[ "$(cursor)" = "$before" ] || fail "a bad cosignature moved the cursor to $(cursor)"
[ "$(cosigs)" = "$n" ] || fail "a bad cosignature was stored"
[ "$(wstate)" -gt "$before" ] || fail "the tampering witness did not record the checkpoint"
# without a verifier key the same answer is taken on trust, and nothing is stored
witness tamper
ok audit forward --json
jeq "$OUT" 'd[0]["cosignatures"]' 0
[ "$(cosigs)" = "$n" ] || fail "an unverified cosignature was stored"
witness w "$vkey"
ok audit forward --json
jeq "$OUT" 'd[0]["error"]' null
[ "$(cursor)" = "$(head_size)" ] || fail "no recovery after the tampered answer"
[ "$(cosigs)" = $((n + 1)) ] || fail "the recovered cosignature was not stored"

step "audit export: the newest cosigned checkpoint, its cosignature checked here with openssl"
ok audit export "$W/exp" --json
ws=$(jget "$OUT" 'd["witnessed_size"]')
[ "$ws" = "$(sqlite3 "$DB" 'SELECT max(size) FROM audit_cosignatures')" ] || fail "witnessed_size $ws"
python3 - "$W/exp" "$vkey" "$ws" <<'EOF' || fail "checkpoint.witnessed does not carry a valid cosignature"
import base64, json, os, subprocess, sys
d, vkey, ws = sys.argv[1], sys.argv[2], int(sys.argv[3])
note = open(os.path.join(d, "checkpoint.witnessed")).read()
cut = note.rfind("\n\n")
text, sigs = note[:cut + 1], note[cut + 2:].splitlines()
assert int(text.split("\n")[1]) == ws, text
name, kid, key = vkey.split("+", 2)
raw_key = base64.b64decode(key)[1:]
mine = [l for l in sigs if l.split(" ")[1] == name]
assert len(mine) == 1 and len(sigs) == 2, sigs  # keyward's own signature, and the witness's
raw = base64.b64decode(mine[0].split(" ")[2])
assert raw[:4].hex() == kid, "key ID"
t = int.from_bytes(raw[4:12], "big")
tmp = os.path.dirname(d)
open(tmp + "/msg", "wb").write(b"cosignature/v1\ntime %d\n" % t + text.encode())
open(tmp + "/sig", "wb").write(raw[12:])
der = bytes.fromhex("302a300506032b6570032100") + raw_key
pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"
open(tmp + "/w.pem", "w").write(pem)
subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", tmp + "/w.pem", "-rawin", "-in",
                tmp + "/msg", "-sigfile", tmp + "/sig"], check=True, capture_output=True)
proofs = json.load(open(os.path.join(d, "proofs.json")))
assert any(c["first"] == ws for c in proofs["consistency"]), proofs["consistency"]
EOF
python3 "$KW_REPO/docs/verify_audit_export.py" "$W/exp" --witness-key "$vkey" >"$OUT" 2>&1 ||
	fail "the shipped verifier refuses the export"
has "$OUT" "cosigned at size $ws by $name"
# the shipped verifier catches an altered cosignature, and a key that did not sign
cp -r "$W/exp" "$W/exp2"
python3 - "$W/exp2/checkpoint.witnessed" "$name" <<'EOF'
import sys
p, name = sys.argv[1], sys.argv[2]
lines = open(p).read().split("\n")
i = next(i for i, l in enumerate(lines) if l.startswith("\u2014 " + name + " "))
c = lines[i][-6]
lines[i] = lines[i][:-6] + ("A" if c != "A" else "B") + lines[i][-5:]
open(p, "w").write("\n".join(lines))
EOF
python3 "$KW_REPO/docs/verify_audit_export.py" "$W/exp2" --witness-key "$vkey" >"$OUT" 2>&1 &&
	fail "the verifier accepted an altered cosignature"
has "$OUT" "the cosignature by $name does not verify"
python3 "$KW_REPO/docs/verify_audit_export.py" "$W/exp" --witness-key "other.test/w2+$kid+$key" >"$OUT" 2>&1 &&
	fail "the verifier accepted a witness key whose key ID does not match"
has "$OUT" "the key ID does not match"

step "a witness holding a larger tree: ALARM, audited, the cursor stays"
before=$(cursor)
echo "999999 $(cut -d' ' -f2 "$R/state")" >"$R/state"
expect 5 audit forward --json
has "$ERR" "ALARM"
has "$ERR" "a tree of 999999 entries"
jeq "$OUT" 'd[0]["alarm"]' true
jeq "$OUT" 'd[0]["witness_size"]' 999999
[ "$(cursor)" = "$before" ] || fail "the alarm moved the cursor"
ev=$(sqlite3 "$DB" "SELECT json FROM audit_events WHERE action = 'audit.witness' ORDER BY seq DESC LIMIT 1")
[ -n "$ev" ] || fail "no audit.witness event"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["outcome"]=="error" and d["details"]["alarm"] and d["details"]["witness_size"]==999999, d' "$ev" ||
	fail "the audit.witness event does not say it: $ev"

step "a witness holding another tree of a size this log has: ALARM (409 at that size, 422 on a proof)"
# the next run's own events make its head per_run larger
next=$(( $(head_size) + per_run ))
echo "$next $(printf 'x%.0s' $(seq 32) | base64)" >"$R/state"
expect 5 audit forward
has "$ERR" "holds a different tree of $next entries"
before=$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE action = 'audit.witness'")
small=$(sqlite3 "$DB" "SELECT min(size) FROM audit_tree_heads WHERE size > 5")
echo "$small $(printf 'y%.0s' $(seq 32) | base64)" >"$R/state"
expect 5 audit forward
has "$ERR" "refused the consistency proof from $small"
grep -q " 422 $small .* badproof" "$R/requests" || fail "the witness did not answer 422: $(tail -n3 "$R/requests")"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit_events WHERE action = 'audit.witness'")" = $((before + 1)) ] ||
	fail "the split view was not audited"
ok audit verify
echo ok
