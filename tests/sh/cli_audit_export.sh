#!/usr/bin/env bash
# cli_audit_export.sh — `audit checkpoint`, `audit prove` and `audit export`
# checked from outside: the signed note's key ID and signature with openssl,
# the proofs against an RFC 9162 reference written here in Python (the
# recursive PATH / PROOF definitions over all leaves, nothing shared with
# keyward or the shipped verifier), and docs/verify_audit_export.py on a
# good export and on exports with each kind of tampering, each of which
# must fail naming its problem.  Also who may export, and the directory rules.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
VERIFY=$KW_REPO/docs/verify_audit_export.py
kw_setup
kw_init_demo
ok key create features/cli-export --tag owner=export-test
kw_rotate_done features/cli-export || fail "rotation through its request"

step "audit checkpoint is a C2SP signed note by the audit key"
ok audit pubkey
cp "$OUT" "$W/pub.pem"
ok audit checkpoint
cp "$OUT" "$W/old.ckpt"
python3 - "$W/old.ckpt" "$W/pub.pem" "$W" <<'EOF' || fail "checkpoint note format"
import base64, hashlib, subprocess, sys
note = open(sys.argv[1], "rb").read().decode("utf-8")
lines = note.split("\n")
assert note.endswith("\n") and lines[-1] == "", "note must end with a newline"
origin, size, root, ext, blank, sig = lines[:6]
assert len(lines) == 7, lines
assert origin.startswith("keyward/") and " " not in origin and "+" not in origin, origin
assert size.isdigit() and not size.startswith("0"), size
assert len(base64.b64decode(root, validate=True)) == 32
assert ext.startswith("time ") and ext[5:].isdigit(), ext
assert blank == ""
assert sig.startswith("\u2014 " + origin + " "), sig
raw = base64.b64decode(sig.split(" ")[2], validate=True)
pem = open(sys.argv[2]).read().split("\n")
der = base64.b64decode("".join(pem[1:pem.index("-----END PUBLIC KEY-----")]))
assert raw[:4] == hashlib.sha256(der).digest()[:4], "key ID is not SHA-256(DER SPKI)[:4]"
open(sys.argv[3] + "/note.text", "w").write("\n".join(lines[:4]) + "\n")
open(sys.argv[3] + "/note.sig", "wb").write(raw[4:])
EOF
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/note.sig" "$W/note.text" >/dev/null ||
	fail "openssl does not verify the checkpoint's signature"
ok audit checkpoint --json
jeq "$OUT" 'd["signed"]' true
jeq "$OUT" 'd["verifier_key"].split("+", 2)[1] == d["key_id"]' true
jeq "$OUT" '__import__("base64").b64decode(d["verifier_key"].split("+", 2)[2])[0]' 2

step "audit prove against an RFC 9162 reference computed from every leaf"
ok key create features/cli-export-2
ok audit export "$W/all"
N=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree_size"])' "$W/all/proofs.json")
[ "$N" -gt 40 ] || fail "only $N events"
cases=()
for sz in 1 2 3 4 5 7 8 9 16 17 31 32 33 "$N"; do
	for m in 1 2 $(((sz + 1) / 2)) "$sz"; do
		[ "$m" -le "$sz" ] && cases+=("$m:$sz")
	done
done
: >"$W/inc.jsonl"
for c in $(printf '%s\n' "${cases[@]}" | sort -u); do
	ok audit prove "${c%%:*}" --size "${c##*:}"
	tr -d '\n' <"$OUT" >>"$W/inc.jsonl"
	echo >>"$W/inc.jsonl"
done
: >"$W/cons.jsonl"
for c in 0:5 1:1 1:2 3:7 4:8 4:9 6:8 8:8 8:16 9:33 16:17 17:"$N" 32:"$N" "$N":"$N"; do
	ok audit prove --from "${c%%:*}" --to "${c##*:}"
	tr -d '\n' <"$OUT" >>"$W/cons.jsonl"
	echo >>"$W/cons.jsonl"
done
ok audit prove 3
tr -d '\n' <"$OUT" >"$W/newest.json"
python3 - "$W/all/events.jsonl" "$W/inc.jsonl" "$W/cons.jsonl" "$W/newest.json" <<'EOF' || fail "proofs differ from the reference"
import base64, hashlib, json, sys
H = lambda b: hashlib.sha256(b).digest()
leaves = [H(b"\x00" + l[:-1]) for l in open(sys.argv[1], "rb")]
def k_of(n):
    k = 1
    while k * 2 < n: k *= 2
    return k
def mth(d):
    if not d: return H(b"")
    if len(d) == 1: return d[0]
    k = k_of(len(d)); return H(b"\x01" + mth(d[:k]) + mth(d[k:]))
def path(m, d):                                   # RFC 9162 2.1.3.1
    if len(d) == 1: return []
    k = k_of(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]
def subproof(m, d, b):                            # RFC 9162 2.1.4.1
    n = len(d)
    if m == n: return [] if b else [mth(d)]
    k = k_of(n)
    return subproof(m, d[:k], b) + [mth(d[k:])] if m <= k else subproof(m - k, d[k:], False) + [mth(d[:k])]
dec = lambda a: [base64.b64decode(x) for x in a]
n_inc = n_cons = 0
for line in open(sys.argv[2]):
    p = json.loads(line); seq, n = p["seq"], p["tree_size"]
    assert p["leaf_index"] == seq - 1
    assert base64.b64decode(p["leaf_hash"]) == leaves[seq - 1], ("leaf", seq)
    assert base64.b64decode(p["tree"]["root"]) == mth(leaves[:n]), ("root", n)
    assert dec(p["proof"]) == path(seq - 1, leaves[:n]), ("inclusion", seq, n)
    n_inc += 1
for line in open(sys.argv[3]):
    p = json.loads(line); m, n = p["first"], p["second"]
    assert base64.b64decode(p["first_tree"]["root"]) == mth(leaves[:m])
    assert base64.b64decode(p["second_tree"]["root"]) == mth(leaves[:n])
    want = [] if m in (0, n) else subproof(m, leaves[:n], True)
    assert dec(p["proof"]) == want, ("consistency", m, n)
    n_cons += 1
p = json.load(open(sys.argv[4]))                  # default: the newest signed head
assert p["tree"]["signed"] and p["tree_size"] >= len(leaves), p["tree_size"]
assert p["tree"]["checkpoint"].split("\n")[1] == str(p["tree_size"])
print("reference agrees on %d inclusion and %d consistency proofs" % (n_inc, n_cons))
EOF
expect 2 audit prove 0
expect 2 audit prove 5 --size 3
expect 2 audit prove 5 --size 99999999
expect 2 audit prove --from 9 --to 3
expect 2 audit prove 3 --from 1 --to 4
has "$ERR" "not both"

step "the shipped verifier passes a good export and the auditor's older checkpoint"
python3 "$VERIFY" "$W/all" --pubkey "$W/pub.pem" --old-checkpoint "$W/old.ckpt" >"$OUT" 2>"$ERR" ||
	fail "verifier refused a good export"
has "$OUT" "ok: keyward/"
has "$OUT" "consistent with the old checkpoint"
[ "$(stat -c %a "$W/all")" = 700 ] || fail "export dir mode $(stat -c %a "$W/all")"
ls -A "$W" | grep -q kwexport && fail "a temporary export directory was left behind"
# a later export from a time: it starts at a checkpoint before the range
# T is a second after every event so far (events are stamped to the
# second): the range then starts after the old checkpoint for sure
sleep 1.1
T=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ok key tag features/cli-export stage=later
OLDN=$(sed -n 2p "$W/old.ckpt")
ok audit export "$W/since" --since "$T" --from-size "$OLDN"
[ -f "$W/since/checkpoint.start" ] || fail "no start checkpoint"
python3 "$VERIFY" "$W/since" --pubkey "$W/pub.pem" --old-checkpoint "$W/old.ckpt" >"$OUT" 2>"$ERR" ||
	fail "verifier refused a --since export"
ok audit export "$W/since2" --since "$T"
python3 "$VERIFY" "$W/since2" --pubkey "$W/pub.pem" --old-checkpoint "$W/old.ckpt" >"$OUT" 2>"$ERR" &&
	fail "an old checkpoint before the range passed without a proof"
has "$OUT" "export again with --from-size $OLDN"

step "export refuses a non-empty directory, fills an empty one, and is for auditors and admins"
mkdir "$W/full" && echo x >"$W/full/keep"
expect 9 audit export "$W/full"
has "$ERR" "not an empty directory"
[ "$(cat "$W/full/keep")" = x ] || fail "a non-empty directory was touched"
mkdir "$W/empty"
ok audit export "$W/empty"
[ -s "$W/empty/events.jsonl" ] || fail "the empty directory was not filled"
expect 4 --user alice audit export "$W/by-officer"
has "$ERR" "audit.export"
[ ! -e "$W/by-officer" ] || fail "a refused export left a directory"
ok --user dave audit export "$W/by-auditor"
ok --user erin audit export "$W/by-admin"
ok --user alice audit prove 1
ok audit tail --action audit.export --json
jeq "$OUT" '[e["outcome"] for e in d if e["actor"] == "alice"]' '["denied"]'
jeq "$OUT" 'sorted(e["actor"] for e in d if e["outcome"] == "ok") == sorted(["root"] * 4 + ["dave", "erin"])' true

# ---------------------------------------------------------------- tampering
# tamper NAME EXPECTED-MESSAGE PYTHON: a fresh copy of the good export, the
# Python edit applied (d = the copy's path), the verifier must exit 1 with
# a line naming the problem.
failed=()
tamper() {
	step "tamper: $1"
	(tamper_case "$@") || failed+=("$1")
}
tamper_case() {
	local name=$1 want=$2 code=$3 rc=0
	rm -rf "$W/t" && cp -a "$W/all" "$W/t"
	python3 -c "import sys, re, base64; d = sys.argv[1]; $code" "$W/t" || fail "$name: edit failed"
	python3 "$VERIFY" "$W/t" --pubkey "${PUB:-$W/pub.pem}" ${OLD:+--old-checkpoint "$OLD"} >"$OUT" 2>"$ERR" || rc=$?
	[ "$rc" = 1 ] || fail "$name: verifier exited $rc, expected 1"
	grep -q "^FAILED: .*$want" "$OUT" || fail "$name: no FAILED line containing: $want"
}
EV='L = open(d + "/events.jsonl").readlines()'
WR='open(d + "/events.jsonl", "w").writelines(L)'
tamper "changed event" "do not reproduce the checkpoint's root at size" \
	"$EV; L[20] = L[20].replace('\"outcome\":\"ok\"', '\"outcome\":\"denied\"', 1).replace('\"actor\":\"', '\"actor\":\"x', 1); $WR"
tamper "dropped event" "entry 21 is missing" "$EV; del L[20]; $WR"
tamper "reordered events" "where entry 22 belongs (entry 22 comes later): events were reordered" "$EV; L[21], L[22] = L[22], L[21]; $WR"
tamper "truncated events" "are missing: events.jsonl ends at entry" "$EV; del L[-3:]; $WR"
tamper "changed checkpoint root" "signature does not verify" \
	"p = d + '/checkpoint'; t = open(p).read().split('\n'); t[2] = base64.b64encode(b'\x11' * 32).decode(); open(p, 'w').write('\n'.join(t))"
grep -q "do not reproduce the checkpoint's root" "$OUT" || fail "changed root: the root mismatch is not named"
tamper "bad signature" "checkpoint (size [0-9]*): the signature does not verify" \
	"p = d + '/checkpoint'; t = open(p).read().split('\n'); s = base64.b64decode(t[5].split(' ')[2]); s = s[:-3] + bytes([s[-3] ^ 1]) + s[-2:]; t[5] = ' '.join(t[5].split(' ')[:2] + [base64.b64encode(s).decode()]); open(p, 'w').write('\n'.join(t))"
tamper "signed by another key" "no signature by the audit key" \
	"p = d + '/checkpoint'; t = open(p).read().split('\n'); s = base64.b64decode(t[5].split(' ')[2]); s = b'\x00\x00\x00\x00' + s[4:]; t[5] = ' '.join(t[5].split(' ')[:2] + [base64.b64encode(s).decode()]); open(p, 'w').write('\n'.join(t))"
tamper "altered prefix proof" "inclusion proof does not verify" \
	"import json; p = d + '/proofs.json'; j = json.load(open(p)); j['inclusion'][0]['proof'][0] = base64.b64encode(b'\x22' * 32).decode(); json.dump(j, open(p, 'w'))"
OLD=$W/since/checkpoint tamper "old checkpoint newer than the export" \
	"is newer than the export's checkpoint" "pass"

# An inconsistent old checkpoint cannot be made with the HSM's key (keyward
# refuses to sign a fork), so this case re-signs a copy of the export with
# a test key: the export itself stays valid, and the auditor's "old"
# checkpoint at a smaller size carries a different root, signed by the same
# key - a fork.  resign.py KEY PUB FILE [fork]: re-sign the note FILE in
# place with KEY (and a made-up root with "fork").
openssl ecparam -name prime256v1 -genkey -noout -out "$W/fork.key" 2>/dev/null
openssl ec -in "$W/fork.key" -pubout -out "$W/fork.pub" 2>/dev/null
cat >"$W/resign.py" <<'EOF2'
import base64, hashlib, subprocess, sys
key, pub, path = sys.argv[1:4]
note = open(path, encoding="utf-8").read()
t = note[:note.rfind("\n\n") + 1].split("\n")
if sys.argv[4:] == ["fork"]:
    t[2] = base64.b64encode(hashlib.sha256(b"forked history").digest()).decode()
text = "\n".join(t)
pem = open(pub).read().split("\n")
der = base64.b64decode("".join(pem[1:pem.index("-----END PUBLIC KEY-----")]))
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=text.encode(),
                     capture_output=True, check=True).stdout
kid = hashlib.sha256(der).digest()[:4]
open(path, "w", encoding="utf-8").write(text + "\n\u2014 %s %s\n" % (t[0], base64.b64encode(kid + sig).decode()))
EOF2
resign() { python3 "$W/resign.py" "$W/fork.key" "$W/fork.pub" "$@" || fail "re-signing $1"; }
cp "$W/old.ckpt" "$W/fork-old.ckpt"
resign "$W/fork-old.ckpt" fork
OLD=$W/fork-old.ckpt PUB=$W/fork.pub tamper "inconsistent old checkpoint" \
	"not consistent with the export: the log's history up to entry [0-9]* was rewritten" \
	"import subprocess; subprocess.run(['python3', '$W/resign.py', '$W/fork.key', '$W/fork.pub', d + '/checkpoint'], check=True)"
# The same re-signed export with the genuine old root passes: the failure
# above is the fork, not the re-signing.
rm -rf "$W/t" && cp -a "$W/all" "$W/t"
resign "$W/t/checkpoint"
cp "$W/old.ckpt" "$W/t-old.ckpt"
resign "$W/t-old.ckpt"
python3 "$VERIFY" "$W/t" --pubkey "$W/fork.pub" --old-checkpoint "$W/t-old.ckpt" >"$OUT" 2>"$ERR" ||
	fail "the re-signed export with the genuine old root was refused"
# and the real key no longer verifies the re-signed one
python3 "$VERIFY" "$W/t" --pubkey "$W/pub.pem" >"$OUT" 2>"$ERR" && fail "a checkpoint signed by another key passed"
has "$OUT" "no signature by the audit key"

[ ${#failed[@]} = 0 ] || fail "tamper cases failed: ${failed[*]}"
echo "cli_audit_export: ok"
