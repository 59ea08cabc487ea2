#!/usr/bin/env bash
# keyward benchmarks: each figure beside its peer's, measured in this run on
# the same files.  Every comparison runs in rounds, and each round runs ours
# and then the peer's, so a slow spell of a shared machine hits both
# alike; each figure is the best of its rounds, with the range and spread
# ((worst - best) / best) beside it, and ratios are ratios of the bests.
# Results also go to $BUILD/bench-results.md.
#
#   1. protect / unprotect 1 GiB (in /dev/shm) vs dd copy, age, openssl speed
#   2. DEK generate + wrap per second vs openssl speed aes-256-gcm 64 B
#   3. registering 100k assets vs raw sqlite3 inserts in one transaction
#   4. audit verify of 1M events vs openssl dgst -sha256 and sha256sum
#   5. console: first screen and keystroke latency on 100k keys / 1M events
#
# BENCH_ROUNDS (default 5) rounds for the quick comparisons, BENCH_ROUNDS_SLOW
# (default 3) for the ones that take a minute a round (3 and 5).
set -euo pipefail
KW=${KEYWARD_BIN:?KEYWARD_BIN must name the keyward binary}
BUILD=${BUILD:-build}
SIZE_MB=${BENCH_SIZE_MB:-1024}
ASSETS=${BENCH_ASSETS:-100000}
EVENTS=${BENCH_EVENTS:-1000000}
KEYS=${BENCH_KEYS:-100000}
DEK_WRAPS=${BENCH_DEK_WRAPS:-300000}
ROUNDS=${BENCH_ROUNDS:-5}
ROUNDS_SLOW=${BENCH_ROUNDS_SLOW:-3}
[ "$ROUNDS" -ge 3 ] && [ "$ROUNDS_SLOW" -ge 3 ] || { echo "bench: at least 3 rounds" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
M="python3 $here/measure.py"
shm=$(mktemp -d /dev/shm/kwbench.XXXXXX)
work=$(mktemp -d /tmp/kwbench.XXXXXX)
MD=$work/series
mkdir -p "$MD"
S="python3 $here/stats.py $MD"
out="$BUILD/bench-results.md"
trap 'rm -rf "$shm" "$work"' EXIT
: > "$out"

say() { printf '%s\n' "$*" | tee -a "$out"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
# rec NAME VALUE: one round's value of the series NAME
rec() { printf '%s\n' "$2" >> "$MD/$1"; }
# timed NAME [--in F] [--out F] CMD...: one run; seconds to NAME, peak RSS (KiB) to NAME.rss
timed() {
	local name=$1 r
	shift
	r=$($M "$@" 2>>"$work/commands.err") || { cat "$work/commands.err" >&2; return 1; }
	rec "$name" "$(field "$r" seconds)"
	rec "$name.rss" "$(field "$r" rss_kib)"
}
# openssl speed's figure for the largest block size asked for, in bytes/s
ossl_speed() {
	openssl speed -evp aes-256-gcm -seconds 1 -bytes "$1" 2>/dev/null |
		awk 'tolower($1) == "aes-256-gcm" {v = $NF; sub(/k$/, "", v); print v * 1000}'
}
mbps() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.0f}')" "$1" "$2"; }

new_home() {
	local h="$work/$1"
	mkdir -p "$h/tokens"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$h" > "$h/softhsm2.conf"
	KEYWARD_HOME="$h" SOFTHSM2_CONF="$h/softhsm2.conf" "$KW" init --demo --softhsm2-conf "$h/softhsm2.conf" \
		>/dev/null 2>>"$work/commands.err"
	echo "$h"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
say "# keyward benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -m), load average $(load) at the start)"
say ""

# ---------------------------------------------------------------- 1. bulk data
say "## 1. protect / unprotect ${SIZE_MB} MiB in /dev/shm ($ROUNDS rounds)"
home=$(new_home data)
export KEYWARD_HOME="$home"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$shm/plain"
age-keygen -o "$work/age.key" 2>/dev/null
recip=$(grep -o 'age1[0-9a-z]*' "$work/age.key" | head -1)
for r in $(seq 1 "$ROUNDS"); do
	timed protect "$KW" protect --key features/credit-risk --asset "dataset:bench/blob@$r" "$shm/plain" "$shm/env"
	timed dd dd if="$shm/plain" of="$shm/copy" bs=1M status=none
	rm -f "$shm/copy"
	timed age_enc age -r "$recip" -o "$shm/plain.age" "$shm/plain"
	timed unprotect "$KW" unprotect "$shm/env" "$shm/back"
	cmp "$shm/plain" "$shm/back" || { say "round trip FAILED"; exit 1; }
	rm -f "$shm/back"
	timed age_dec age -d -i "$work/age.key" -o "$shm/back" "$shm/plain.age"
	rm -f "$shm/back" "$shm/plain.age" "$shm/env"
	rec ossl16k "$(python3 -c "import sys; print(float(sys.argv[1]) / 1048576)" "$(ossl_speed 16384)")"
done
# row1 LABEL SERIES [AGE-PEER]: MiB/s from the times; keyward rows get RSS and ratios
row1() {
	local rate="--rate $SIZE_MB --fmt .0f" rss="-" vd va="-"
	vd=$($S ratio dd "$2")
	if [ -n "${3:-}" ]; then
		rss=$($S max "$2.rss" --div 1024 --fmt .0f)
		va=$($S ratio "$3" "$2")
	fi
	say "| $1 | $($S best "$2" $rate) | $($S range "$2" $rate) | $rss | $vd | $va |"
}
say ""
say "| what | MiB/s, best | range (spread) | peak RSS (MiB, worst) | vs dd copy | vs age |"
say "|---|---|---|---|---|---|"
row1 "dd bs=1M copy (ceiling)" dd
row1 "keyward protect" protect age_enc
row1 "keyward unprotect" unprotect age_dec
row1 "age encrypt" age_enc
row1 "age decrypt" age_dec
say "| openssl speed aes-256-gcm 16 KiB, 1 core (cipher ceiling) | $($S best ossl16k --higher --fmt .0f) | $($S range ossl16k --higher --fmt .0f) | - | - | - |"
say ""
say "Ratios are of the bests (a time ratio: above 1 = faster than the peer)."
say "Targets: >= 0.60 x copy speed; faster than age; < 32 MiB RSS.  (RSS includes process start and HSM login.)"
rm -f "$shm/plain"
say ""

# ---------------------------------------------------------------- 2. DEK wraps
say "## 2. DEK generate + wrap ($ROUNDS rounds of $DEK_WRAPS)"
if [ -x "$BUILD/bench/envelope_speed" ]; then
	for r in $(seq 1 "$ROUNDS"); do
		dek_out=$("$BUILD/bench/envelope_speed" --dek-wraps "$DEK_WRAPS")
		rec dek_gen "$(printf '%s\n' "$dek_out" | awk '/generate\+wrap, keyed/ {print $(NF-1)}')"
		rec dek_wrap "$(printf '%s\n' "$dek_out" | awk '/wrap only/ {print $(NF-1)}')"
		rec o64 "$(python3 -c "import sys; print(float(sys.argv[1]) / 64)" "$(ossl_speed 64)")"
	done
	hi="--higher --fmt .0f"
	say ""
	say "| what | per second, best | range (spread) | vs openssl (bests) |"
	say "|---|---|---|---|"
	say "| keyward DEK generate + AES-256-GCM wrap (60-byte output, AAD-bound) | $($S best dek_gen $hi) | $($S range dek_gen $hi) | $($S ratio dek_gen o64 --higher) |"
	say "| keyward DEK wrap alone (same key context) | $($S best dek_wrap $hi) | $($S range dek_wrap $hi) | $($S ratio dek_wrap o64 --higher) |"
	say "| openssl speed -evp aes-256-gcm, 64-byte blocks | $($S best o64 $hi) | $($S range o64 $hi) | 1.00 |"
	say ""
	say "Generating the DEK (RAND_priv_bytes, which makes a getpid() system call per request in OpenSSL 3.0) is the limit, not the wrap."
fi
say ""

# ---------------------------------------------------------------- 3. catalogue
say "## 3. registering $ASSETS assets (DEK, catalogue row, audit event each; $ROUNDS_SLOW rounds)"
# The peers' rows: the same shape (asset + audit event), written once.
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
# raw_db PATH: an empty catalogue with keyward's tables and indexes.  Foreign
# keys stay declared (the sqlite3 shell does not enforce them, and keyward's
# check is part of what keyward pays).
raw_db() {
	rm -f "$1" "$1-wal" "$1-shm"
	sqlite3 "$1" < "$work/schema2.sql"
	sqlite3 "$1" "PRAGMA journal_mode=WAL;" >/dev/null
	grep '^CREATE INDEX' "$work/schema.sql" | sqlite3 "$1"
}
for r in $(seq 1 "$ROUNDS_SLOW"); do
	home=$(new_home "cat$r")
	export KEYWARD_HOME="$home"
	timed reg "$KW" demo --events "$ASSETS"
	if [ "$r" = 1 ]; then
		sqlite3 "$home/keyward.db" ".schema counts" ".schema assets" ".schema audit_events" > "$work/schema.sql"
		echo "INSERT INTO counts VALUES('assets', 0);" >> "$work/schema.sql"
		grep -v '^CREATE INDEX' "$work/schema.sql" > "$work/schema2.sql"
	fi
	rm -rf "$home"
	# peer 1: the sqlite3 shell, the same rows as SQL text, one transaction
	raw_db "$work/raw.db"
	timed raw --in "$work/rows.sql" sqlite3 "$work/raw.db"
	# peer 2 (stronger): one prepared statement per table (executemany in
	# Python's C sqlite3 module), one transaction; insert time only
	raw_db "$work/raw2.db"
	rec prep "$(python3 "$work/prep.py" "$work/raw2.db" "$ASSETS")"
done
rm -f "$work"/raw*.db*
sec="--fmt .2f"
ps="--rate $ASSETS --fmt .0f"
say ""
say "| what | seconds, best | range (spread) | per second, best | keyward ÷ this (bests) |"
say "|---|---|---|---|---|"
say "| keyward demo --events $ASSETS (10k per transaction, signed tree head each) | $($S best reg $sec) | $($S range reg $sec) | $($S best reg $ps) | - |"
say "| sqlite3 shell: same rows as SQL text, one transaction, same indexes | $($S best raw $sec) | $($S range raw $sec) | $($S best raw $ps) | $($S ratio reg raw) |"
say "| prepared inserts (one statement per table, executemany), one transaction, same indexes; insert time only | $($S best prep $sec) | $($S range prep $sec) | $($S best prep $ps) | $($S ratio reg prep) |"
say ""
say "Target: within 3x.  keyward's figure includes process start, HSM login, DEK generation and wrapping, canonical JSON and Merkle hashing."
say ""

# ---------------------------------------------------------------- 4. audit verify
say "## 4. audit verify of $EVENTS events ($ROUNDS rounds)"
home=$(new_home audit)
export KEYWARD_HOME="$home"
"$KW" demo --events "$EVENTS" >/dev/null 2>>"$work/commands.err"
n=$(sqlite3 "$home/keyward.db" "SELECT count(*) FROM audit_events")
sqlite3 "$home/keyward.db" "SELECT json FROM audit_events ORDER BY seq" > "$shm/events.json"
"$KW" audit verify >/dev/null || { say "audit verify FAILED on an untouched log"; exit 1; }
for r in $(seq 1 "$ROUNDS"); do
	timed verify --out /dev/null "$KW" audit verify
	rec verify_alone "$("$KW" --json audit verify | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])")"
	timed dgst --out /dev/null openssl dgst -sha256 "$shm/events.json"
	timed sha --out /dev/null sha256sum "$shm/events.json"
done
sec="--fmt .3f"
say ""
say "| what ($n events, $(( $(stat -c %s "$shm/events.json") / 1048576 )) MiB of event JSON) | seconds, best | range (spread) | ratio vs openssl (bests) |"
say "|---|---|---|---|"
say "| keyward audit verify, whole command (incl. process start, HSM login, login event) | $($S best verify $sec) | $($S range verify $sec) | $($S ratio verify dgst) |"
say "| keyward audit verify, the verification itself (every leaf, root and tree head signature) | $($S best verify_alone $sec) | $($S range verify_alone $sec) | $($S ratio verify_alone dgst) |"
say "| openssl dgst -sha256 over the concatenated events | $($S best dgst $sec) | $($S range dgst $sec) | 1.00 |"
say "| sha256sum over the same file | $($S best sha $sec) | $($S range sha $sec) | $($S ratio sha dgst) |"
say ""
say "Target: within 3x of the openssl figure."
rm -f "$shm/events.json"
say ""

# ---------------------------------------------------------------- 5. console
if [ -x "$here/console_scale.sh" ]; then
	say "## 5. console at scale ($KEYS keys, the audit log above; $ROUNDS_SLOW rounds)"
	"$KW" demo --keys "$KEYS" >/dev/null 2>>"$work/commands.err"
	ROUNDS=$ROUNDS_SLOW bash "$here/console_scale.sh" | tee -a "$out"
fi
say ""
say "Load average $(load) at the end."
echo "results written to $out"
