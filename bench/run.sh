#!/usr/bin/env bash
# keyward benchmarks: each figure beside its peer's, measured in this run on
# the same files, with the ratio.  Results also go to $BUILD/bench-results.md.
#
#   1. protect / unprotect 1 GiB (in /dev/shm) vs dd copy, age, openssl speed
#   2. DEK generate + wrap per second vs openssl speed aes-256-gcm 64 B
#   3. registering 100k assets vs raw sqlite3 inserts in one transaction
#   4. audit verify of 1M events vs openssl dgst -sha256 and sha256sum
#   5. console: first screen and keystroke latency on 100k keys / 1M events
set -euo pipefail
KW=${KEYWARD_BIN:?KEYWARD_BIN must name the keyward binary}
BUILD=${BUILD:-build}
SIZE_MB=${BENCH_SIZE_MB:-1024}
ASSETS=${BENCH_ASSETS:-100000}
EVENTS=${BENCH_EVENTS:-1000000}
KEYS=${BENCH_KEYS:-100000}
here=$(cd "$(dirname "$0")" && pwd)
M="python3 $here/measure.py"
shm=$(mktemp -d /dev/shm/kwbench.XXXXXX)
work=$(mktemp -d /tmp/kwbench.XXXXXX)
out="$BUILD/bench-results.md"
trap 'rm -rf "$shm" "$work"' EXIT
: > "$out"

say() { printf '%s\n' "$*" | tee -a "$out"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
# best3 CMD...: the fastest of three runs (seconds), for sub-second figures.
best3() {
	local b="" r t
	for _ in 1 2 3; do
		r=$($M --out /dev/null "$@") || return 1
		t=$(field "$r" seconds)
		b=$(python3 -c "import sys; a=sys.argv[1]; print(min(float(a), float(sys.argv[2])) if a else sys.argv[2])" "$b" "$t")
	done
	echo "$b"
}
mbps() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.0f}')" "$1" "$2"; }

new_home() {
	local h="$work/$1"
	mkdir -p "$h/tokens"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$h" > "$h/softhsm2.conf"
	KEYWARD_HOME="$h" SOFTHSM2_CONF="$h/softhsm2.conf" "$KW" init --demo --softhsm2-conf "$h/softhsm2.conf" >/dev/null
	echo "$h"
}

say "# keyward benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -m))"
say ""

# ---------------------------------------------------------------- 1. bulk data
say "## 1. protect / unprotect ${SIZE_MB} MiB in /dev/shm"
home=$(new_home data)
export KEYWARD_HOME="$home"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$shm/plain"
bytes=$((SIZE_MB * 1024 * 1024))
mb=$SIZE_MB
cp_r=$($M dd if="$shm/plain" of="$shm/copy" bs=1M status=none); rm -f "$shm/copy"
p_r=$($M "$KW" protect --key features/credit-risk --asset dataset:bench/blob@1 "$shm/plain" "$shm/env")
u_r=$($M "$KW" unprotect "$shm/env" "$shm/back")
cmp "$shm/plain" "$shm/back" || { say "round trip FAILED"; exit 1; }
rm -f "$shm/back" "$shm/env"
age-keygen -o "$work/age.key" 2>/dev/null
recip=$(grep -o 'age1[0-9a-z]*' "$work/age.key" | head -1)
ae_r=$($M age -r "$recip" -o "$shm/plain.age" "$shm/plain")
ad_r=$($M age -d -i "$work/age.key" -o "$shm/back" "$shm/plain.age")
rm -f "$shm/back" "$shm/plain.age"
ossl=$(openssl speed -evp aes-256-gcm -seconds 2 -bytes 16384 2>/dev/null | awk 'tolower($1) == "aes-256-gcm" {print $NF}' | tr -d k)
ossl_mbps=$(python3 -c "print(f'{float(\"$ossl\")*1000/1048576:.0f}')")
cp_s=$(field "$cp_r" seconds); p_s=$(field "$p_r" seconds); u_s=$(field "$u_r" seconds)
ae_s=$(field "$ae_r" seconds); ad_s=$(field "$ad_r" seconds)
say ""
say "| what | MiB/s | peak RSS (MiB) | vs dd copy | vs age |"
say "|---|---|---|---|---|"
say "| dd bs=1M copy (ceiling) | $(mbps $mb $cp_s) | - | 1.00 | - |"
say "| keyward protect | $(mbps $mb $p_s) | $(( $(field "$p_r" rss_kib) / 1024 )) | $(ratio $cp_s $p_s) | $(ratio $ae_s $p_s) |"
say "| keyward unprotect | $(mbps $mb $u_s) | $(( $(field "$u_r" rss_kib) / 1024 )) | $(ratio $cp_s $u_s) | $(ratio $ad_s $u_s) |"
say "| age encrypt | $(mbps $mb $ae_s) | - | $(ratio $cp_s $ae_s) | 1.00 |"
say "| age decrypt | $(mbps $mb $ad_s) | - | $(ratio $cp_s $ad_s) | 1.00 |"
say "| openssl speed aes-256-gcm 16 KiB, 1 core (cipher ceiling) | $ossl_mbps | - | - | - |"
say ""
say "Targets: >= 0.60 x copy speed; faster than age; < 32 MiB RSS.  (RSS includes process start and HSM login.)"
rm -f "$shm/plain"
say ""

# ---------------------------------------------------------------- 2. DEK wraps
say "## 2. DEK generate + wrap"
if [ -x "$BUILD/bench/envelope_speed" ]; then
	dek_out=$("$BUILD/bench/envelope_speed" --dek-wraps 1000000)
dek=$(printf '%s\n' "$dek_out" | awk '/generate\+wrap, keyed/ {print $(NF-1)}')
wrap_only=$(printf '%s\n' "$dek_out" | awk '/wrap only/ {print $(NF-1)}')
	o64=$(openssl speed -evp aes-256-gcm -seconds 2 -bytes 64 2>/dev/null | awk 'tolower($1) == "aes-256-gcm" {print $NF}' | tr -d k)
	o64_ops=$(python3 -c "print(f'{float(\"$o64\")*1000/64:.0f}')")
	say ""
	say "| what | per second | ratio |"
	say "|---|---|---|"
	say "| keyward DEK generate + AES-256-GCM wrap (60-byte output, AAD-bound) | ${dek%.*} | $(ratio ${dek} ${o64_ops}) |"
	say "| keyward DEK wrap alone (same key context) | ${wrap_only%.*} | $(ratio ${wrap_only} ${o64_ops}) |"
	say "| openssl speed -evp aes-256-gcm, 64-byte blocks | $o64_ops | 1.00 |"
	say ""
	say "Generating the DEK (RAND_priv_bytes, which makes a getpid() system call per request in OpenSSL 3.0) is the limit, not the wrap."
fi
say ""

# ---------------------------------------------------------------- 3. catalogue
say "## 3. registering $ASSETS assets (DEK, catalogue row, audit event each)"
home=$(new_home cat)
export KEYWARD_HOME="$home"
reg_r=$($M "$KW" demo --events "$ASSETS")
reg_s=$(field "$reg_r" seconds)
# The peer: the same rows (asset + audit event) inserted by the sqlite3 shell in one transaction.
sqlite3 "$home/keyward.db" ".schema counts" ".schema assets" ".schema audit_events" > "$work/schema.sql"
echo "INSERT INTO counts VALUES('assets', 0);" >> "$work/schema.sql"
python3 - "$work/rows.sql" "$ASSETS" <<'PY'
import os, sys, json
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("BEGIN;\n")
    for i in range(n):
        uid = os.urandom(16).hex()
        dek = os.urandom(60).hex()
        ev = json.dumps({"action": "protect", "actor": "root", "details": {"asset_id": i, "kind": "dataset",
             "name": "bulk/partition-%d" % (i // 1000), "size": 0, "uid": uid, "version": str(i % 1000)},
             "object": "key:datasets/bulk-events@1", "outcome": "ok", "seq": i + 1,
             "time": "2026-11-23T12:00:00.000Z"}, sort_keys=True, separators=(",", ":"))
        f.write("INSERT INTO assets(uid,kind,name,version,key_id,kek_version,wrapped_dek,size,created,created_by) "
                "VALUES('%s','dataset','bulk/partition-%d','%d',1,1,x'%s',0,1763900000,'root');\n" % (uid, i // 1000, i % 1000, dek))
        f.write("INSERT INTO audit_events(seq,json,leaf_hash) VALUES(%d,'%s',randomblob(32));\n" % (i + 1, ev.replace("'", "''")))
    f.write("COMMIT;\n")
PY
# Foreign keys stay declared (the sqlite3 shell does not enforce them, and
# keyward's check is part of what keyward pays).
grep -v '^CREATE INDEX' "$work/schema.sql" > "$work/schema2.sql"
rm -f "$work/raw.db"
sqlite3 "$work/raw.db" < "$work/schema2.sql"
sqlite3 "$work/raw.db" "PRAGMA journal_mode=WAL;" >/dev/null
grep '^CREATE INDEX' "$work/schema.sql" | sqlite3 "$work/raw.db"
raw_r=$($M --in "$work/rows.sql" sqlite3 "$work/raw.db")
raw_s=$(field "$raw_r" seconds)
# A stronger peer: the same rows through one prepared statement per table
# (executemany in Python's C sqlite3 module), one transaction.
rm -f "$work/raw2.db"
sqlite3 "$work/raw2.db" < "$work/schema2.sql"
sqlite3 "$work/raw2.db" "PRAGMA journal_mode=WAL;" >/dev/null
grep '^CREATE INDEX' "$work/schema.sql" | sqlite3 "$work/raw2.db"
cat > "$work/prep.py" <<'PY'
import json, os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
n = int(sys.argv[2])
assets, events = [], []
for i in range(n):
    uid = os.urandom(16).hex()
    assets.append((uid, "bulk/partition-%d" % (i // 1000), str(i % 1000), os.urandom(60)))
    events.append((i + 1, json.dumps({"action": "protect", "actor": "root", "details": {"asset_id": i,
        "kind": "dataset", "name": "bulk/partition-%d" % (i // 1000), "uid": uid, "version": str(i % 1000)},
        "object": "key:datasets/bulk-events@1", "outcome": "ok", "seq": i + 1,
        "time": "2026-11-23T12:00:00.000Z"}, sort_keys=True, separators=(",", ":")), os.urandom(32)))
t = time.perf_counter()
db.execute("BEGIN")
db.executemany("INSERT INTO assets(uid,kind,name,version,key_id,kek_version,wrapped_dek,size,created,created_by) "
               "VALUES(?,'dataset',?,?,1,1,?,0,1763900000,'root')", assets)
db.executemany("INSERT INTO audit_events(seq,json,leaf_hash) VALUES(?,?,?)", events)
db.execute("COMMIT")
print(time.perf_counter() - t)
PY
prep_s=$(python3 "$work/prep.py" "$work/raw2.db" "$ASSETS")
say ""
say "| what | seconds | per second | ratio (keyward / sqlite3) |"
say "|---|---|---|---|"
say "| keyward demo --events $ASSETS (10k per transaction, signed tree head each) | $(printf %.2f $reg_s) | $(mbps $ASSETS $reg_s) | $(ratio $reg_s $raw_s) |"
say "| sqlite3 shell: same rows as SQL text, one transaction, same indexes | $(printf %.2f $raw_s) | $(mbps $ASSETS $raw_s) | 1.00 |"
say "| prepared inserts (one statement per table, executemany), one transaction, same indexes; insert time only | $(printf %.2f $prep_s) | $(mbps $ASSETS $prep_s) | $(ratio $reg_s $prep_s) (keyward / this) |"
say ""
say "Target: within 3x.  keyward's figure includes process start, HSM login, DEK generation and wrapping, canonical JSON and Merkle hashing."
say ""

# ---------------------------------------------------------------- 4. audit verify
say "## 4. audit verify of $EVENTS events"
home=$(new_home audit)
export KEYWARD_HOME="$home"
"$KW" demo --events "$EVENTS" >/dev/null
n=$(sqlite3 "$home/keyward.db" "SELECT count(*) FROM audit_events")
sqlite3 "$home/keyward.db" "SELECT json FROM audit_events ORDER BY seq" > "$shm/events.json"
"$KW" audit verify >/dev/null || { say "audit verify FAILED on an untouched log"; exit 1; }
v_s=$(best3 "$KW" audit verify)
v_alone=""
for _ in 1 2 3; do
	t=$("$KW" --json audit verify | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
	v_alone=$(python3 -c "import sys; a=sys.argv[1]; print(min(float(a), float(sys.argv[2])) if a else sys.argv[2])" "$v_alone" "$t")
done
d_s=$(best3 openssl dgst -sha256 "$shm/events.json")
s_s=$(best3 sha256sum "$shm/events.json")
say ""
say "| what ($n events, $(( $(stat -c %s "$shm/events.json") / 1048576 )) MiB of event JSON; best of 3) | seconds | ratio vs openssl |"
say "|---|---|---|"
say "| keyward audit verify, whole command (incl. process start, HSM login, login event) | $(printf %.3f $v_s) | $(ratio $v_s $d_s) |"
say "| keyward audit verify, the verification itself (every leaf, root and tree head signature) | $(printf %.3f $v_alone) | $(ratio $v_alone $d_s) |"
say "| openssl dgst -sha256 over the concatenated events | $(printf %.3f $d_s) | 1.00 |"
say "| sha256sum over the same file | $(printf %.3f $s_s) | $(ratio $s_s $d_s) |"
say ""
say "Target: within 3x of the openssl figure."
rm -f "$shm/events.json"
say ""

# ---------------------------------------------------------------- 5. console
if [ -x "$here/console_scale.sh" ]; then
	say "## 5. console at scale ($KEYS keys, the audit log above)"
	"$KW" demo --keys "$KEYS" >/dev/null
	bash "$here/console_scale.sh" | tee -a "$out"
fi
echo "results written to $out"
