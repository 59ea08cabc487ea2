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
#   6. the trust boundary per commit: HSM row MAC, HSM anchor read / write,
#      one commit, vs OpenSSL HMAC and a raw SQLite commit
#   7. Argon2id at keyward's defaults vs the argon2 command-line tool
#   8. login (`keyward status`): personal vs system deployment (root only)
#   9. a signed request end to end (open, 2 approvals, execute) vs 3 Ed25519
#      signatures + a SQLite transaction, in process and with the tools
#  10. rewrap of REWRAP_ASSETS (default 1,000,000) DEKs as a job vs a bare
#      SQLite UPDATE of as many 60-byte blobs (bench/rewrap_speed)
#  11. lineage: impact walk over 100k nodes / 1M edges vs the same recursive
#      CTE in the sqlite3 shell; import of 100k OpenLineage events
#
# BENCH_ROUNDS (default 5) rounds for the quick comparisons, BENCH_ROUNDS_SLOW
# (default 3) for the ones that take a minute a round (3 and 5).
# BENCH_ONLY="3 6" runs only those sections (5 brings 4, whose log it reads).
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
ONLY=" ${BENCH_ONLY:-1 2 3 4 5 6 7 8 9 10 11} "
case "$ONLY" in *" 5 "*) ONLY="$ONLY 4 " ;; esac
want() { case "$ONLY" in *" $1 "*) return 0 ;; esac; return 1; }
# The demo deployments' people all have this passphrase (DEMO ONLY): changes
# in a personal deployment ask for it (step-up), and `demo` makes a key.
export KEYWARD_PASSPHRASE=keyward-demo
[ "$ROUNDS" -ge 3 ] && [ "$ROUNDS_SLOW" -ge 3 ] || { echo "bench: at least 3 rounds" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
M="python3 $here/measure.py"
shm=$(mktemp -d /dev/shm/kwbench.XXXXXX)
work=$(mktemp -d /tmp/kwbench.XXXXXX)
MD=$work/series
mkdir -p "$MD"
S="python3 $here/stats.py $MD"
out="$BUILD/bench-results.md"
login_dir=
login_users=
cleanup() {
	for u in $login_users; do userdel "$u" >/dev/null 2>&1 || true; done
	rm -rf "$shm" "$work" ${login_dir:+"$login_dir"}
}
trap cleanup EXIT
: > "$out"

say() { printf '%s\n' "$*" | tee -a "$out"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
# rec NAME VALUE: one round's value of the series NAME
rec() { printf '%s\n' "$2" >> "$MD/$1"; }
# timed NAME [--in F] [--out F] CMD...: one run; seconds to NAME, CPU
# seconds (user + system) to NAME.cpu, peak RSS (KiB) to NAME.rss
timed() {
	local name=$1 r
	shift
	r=$($M "$@" 2>>"$work/commands.err") || { cat "$work/commands.err" >&2; return 1; }
	rec "$name" "$(field "$r" seconds)"
	rec "$name.cpu" "$(field "$r" cpu_s)"
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
if want 1; then
say "## 1. protect / unprotect ${SIZE_MB} MiB in /dev/shm ($ROUNDS rounds; load average $(load))"
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
fi # 1

# ---------------------------------------------------------------- 2. DEK wraps
if want 2; then
say "## 2. DEK generate + wrap ($ROUNDS rounds of $DEK_WRAPS; load average $(load))"
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
fi # 2

# ---------------------------------------------------------------- 3. catalogue
if want 3; then
say "## 3. registering $ASSETS assets (DEK, catalogue row, audit event each; $ROUNDS_SLOW rounds; load average $(load))"
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
        # the filter columns too: keyward stores them beside the text (schema 13)
        f.write("INSERT INTO audit_events(seq,json,leaf_hash,time,actor,action,object,outcome) VALUES(%d,'%s',"
                "randomblob(32),'2026-11-23T12:00:00.000Z','root','protect','key:datasets/bulk-events@1','ok');\n"
                % (i + 1, ev.replace("'", "''")))
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
db.executemany("INSERT INTO audit_events(seq,json,leaf_hash,time,actor,action,object,outcome) "
               "VALUES(?,?,?,'2026-11-23T12:00:00.000Z','root','protect','key:datasets/bulk-events@1','ok')", events)
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
say "Target: within 1.5x of the sqlite3 shell.  keyward's figure includes process start, HSM login, DEK generation and wrapping, canonical JSON and Merkle hashing."
say ""
fi # 3

# ---------------------------------------------------------------- 4. audit verify
if want 4; then
say "## 4. audit verify of $EVENTS events ($ROUNDS rounds; load average $(load))"
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
fi # 4

# ---------------------------------------------------------------- 5. console
if want 5; then
if [ -x "$here/console_scale.sh" ]; then
	say "## 5. console at scale ($KEYS keys, the audit log above; $ROUNDS_SLOW rounds; load average $(load))"
	"$KW" demo --keys "$KEYS" >/dev/null 2>>"$work/commands.err"
	ROUNDS=$ROUNDS_SLOW bash "$here/console_scale.sh" | tee -a "$out"
	say ""
fi
fi # 5

# ---------------------------------------------------------------- 6. trust boundary per commit
if want 6; then
say "## 6. the trust boundary per commit ($ROUNDS rounds; load average $(load))"
# Each round: a fresh personal deployment in $work (the disk a catalogue
# lives on), then one in /dev/shm (no disk: what is left is the HSM and
# the CPU); every measure in 10 blocks, ours then the peer's in each
# block; a round's figure is the median operation.
for r in $(seq 1 "$ROUNDS"); do
	for where in disk shm; do
		dir=$work
		[ $where = disk ] || dir=$shm
		"$BUILD/bench/trust_speed" --dir "$dir" > "$work/trust.$where.$r" 2>>"$work/commands.err" ||
			{ cat "$work/commands.err" >&2; exit 1; }
		while read -r name us; do rec "$name.$where" "$us"; done < "$work/trust.$where.$r"
	done
done
us="--fmt .1f"
# row6 LABEL OURS PEER-LABEL PEER: the disk figures, the tmpfs best beside
row6() {
	say "| $1 | $($S best "$2.disk" $us) | $($S range "$2.disk" $us) | $3 | $($S best "$4.disk" $us) |" \
		"$($S ratio "$2.disk" "$4.disk") | $($S best "$2.shm" $us) / $($S best "$4.shm" $us) |"
}
say ""
say "| what (one operation, median of a round; catalogue and token on $(df --output=fstype "$work" | tail -1)) | µs, best round | range (spread) | peer | peer µs, best | ours ÷ peer (bests) | in /dev/shm: ours / peer µs, bests |"
say "|---|---|---|---|---|---|---|"
row6 "hsm_mac: HMAC-SHA256 in the HSM of a 100-byte row text" mac_hsm "OpenSSL HMAC-SHA256 in process, key context kept" mac_ossl
row6 "hsm_anchor_read" anchor_read "the same 44 bytes from a SQLite row (prepared SELECT)" row_read
row6 "hsm_anchor_write (a new token object, the old one destroyed)" anchor_write "the same 44 bytes to a SQLite row, one transaction, WAL, synchronous=FULL" row_write
row6 "commit of one audit event: km_tx_begin + km_tx_audit + km_tx_commit" commit "raw SQLite: one transaction inserting the same event text, WAL, synchronous=FULL" sqlite_commit
row6 "the same commit without the anchor steps (no anchor read or proof, nothing stored in the HSM)" commit_noanchor "the same raw SQLite transaction" sqlite_commit
share() {
	python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.0f}')" \
		"$($S best "commit.$1" --fmt .3f)" "$($S best "commit_noanchor.$1" --fmt .3f)"
}
say ""
say "The anchor's share of a commit (difference of the bests): $(share disk) µs on disk, $(share shm) µs in /dev/shm.  A commit reads the anchor, proves the log extends it, signs a tree head in the HSM, COMMITs, then takes HOME/.anchor.lock, reads the anchor again and writes the new one.  A protect also re-seals its key version first, in a transaction of its own (a MAC check and a new MAC, both in the HSM)."
say ""
fi # 6

# ---------------------------------------------------------------- 7. Argon2id
if want 7; then
say "## 7. Argon2id at keyward's defaults: t=3, 64 MiB, p=1, 64-byte output ($ROUNDS rounds; load average $(load))"
salt=keyward-bench-salt
printf '%s' "bench passphrase" > "$work/pass"
for r in $(seq 1 "$ROUNDS"); do
	timed a2_kw --in "$work/pass" --out "$work/a2_kw.out" "$BUILD/bench/trust_speed" --argon2 "$salt"
	rec a2_kw_call "$(awk '$1 == "argon2id_s" {print $2}' "$work/a2_kw.out")"
	timed a2_cli --in "$work/pass" --out "$work/a2_cli.out" argon2 "$salt" -id -t 3 -m 16 -p 1 -l 64 -r
	[ "$(head -1 "$work/a2_kw.out")" = "$(cat "$work/a2_cli.out")" ] ||
		{ say "Argon2id outputs DIFFER: keyward and the argon2 tool did not compute the same thing"; exit 1; }
done
sec="--fmt .3f"
say ""
say "| what | seconds, best | range (spread) | CPU s, best | peak RSS (MiB, worst) | ÷ argon2 tool (bests) |"
say "|---|---|---|---|---|---|"
say "| keyward: km_cred_argon2id, the call alone | $($S best a2_kw_call $sec) | $($S range a2_kw_call $sec) | - | - | $($S ratio a2_kw_call a2_cli) |"
say "| keyward: the same in a process of its own (bench/trust_speed --argon2) | $($S best a2_kw $sec) | $($S range a2_kw $sec) | $($S best a2_kw.cpu $sec) | $($S max a2_kw.rss --div 1024 --fmt .0f) | $($S ratio a2_kw a2_cli) |"
say "| argon2 $salt -id -t 3 -m 16 -p 1 -l 64 -r (Debian's argon2, the reference implementation) | $($S best a2_cli $sec) | $($S range a2_cli $sec) | $($S best a2_cli.cpu $sec) | $($S max a2_cli.rss --div 1024 --fmt .0f) | 1.00 |"
say ""
say "Both print the same 64 bytes for the same passphrase and salt (checked every round).  One run is what an unlock (step-up) costs."
say ""
fi # 7

# ---------------------------------------------------------------- 8. login
if want 8; then
say "## 8. login: keyward status, personal vs system deployment ($ROUNDS rounds; load average $(load))"
if [ "$(id -u)" != 0 ]; then
	say ""
	say "SKIPPED (not root: a system deployment needs useradd, a set-user-ID install and runuser)"
else
	# As tests/sh/system_mode.sh: a temp prefix and system home, its own
	# build directory (the home is fixed at build time), a service account
	# and a person; both deployments are used through runuser as that person.
	login_dir=$(mktemp -d /tmp/kwlogin.XXXXXX)
	chmod 0755 "$login_dir"
	svc=kwbench-svc
	who=kwbench-person
	for u in $who $svc; do id -u "$u" >/dev/null 2>&1 || login_users="$login_users $u"; done
	id -u $who >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh $who
	make -s -C "$here/.." NODEPS=1 BUILD="$login_dir/build-system" SYSTEM_HOME="$login_dir/syshome" \
		SERVICE_USER=$svc PREFIX="$login_dir/prefix" install >/dev/null 2>>"$work/commands.err" ||
		{ cat "$work/commands.err" >&2; exit 1; }
	sysbin=$login_dir/prefix/bin/keyward
	pass="bench login passphrase"
	(cd / && KEYWARD_PASSPHRASE="$pass" "$sysbin" init --system --admin $who) >/dev/null 2>>"$work/commands.err"
	install -d -o $who -m 0700 "$login_dir/personal"
	head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$login_dir/personal/pin"
	chown $who "$login_dir/personal/pin" && chmod 0600 "$login_dir/personal/pin"
	phome=$login_dir/personal/home
	(cd / && runuser -u $who -- env KEYWARD_PASSPHRASE="$pass" "$KW" --home "$phome" \
		--pin-file "$login_dir/personal/pin" init) >/dev/null 2>>"$work/commands.err"
	status_personal() {
		timed login_personal --out "$work/status.p" runuser -u $who -- "$KW" --home "$phome" \
			--pin-file "$login_dir/personal/pin" status
	}
	status_system() { timed login_system --out "$work/status.s" runuser -u $who -- "$sysbin" status; }
	# Which goes first alternates: a commit's fsync also waits for the
	# previous process's writes still in flight on the same file system.
	for r in $(seq 1 "$ROUNDS"); do
		cd /
		if [ $((r % 2)) = 1 ]; then status_personal; status_system; else status_system; status_personal; fi
		timed runuser_true runuser -u $who -- /bin/true
		cd - >/dev/null
	done
	grep -q "system deployment" "$work/status.s" || { say "the system status did not reach the system deployment"; exit 1; }
	grep -q "system deployment" "$work/status.p" && { say "the personal status reached a system deployment"; exit 1; }
	sec="--fmt .3f"
	say ""
	say "| what (as $who, through runuser) | seconds, best | range (spread) | CPU s, best | peak RSS (MiB, worst) | ÷ personal (bests) |"
	say "|---|---|---|---|---|---|"
	say "| keyward status, personal deployment (its own SoftHSM2 token in the home; PIN file) | $($S best login_personal $sec) | $($S range login_personal $sec) | $($S best login_personal.cpu $sec) | $($S max login_personal.rss --div 1024 --fmt .0f) | 1.00 |"
	say "| keyward status, system deployment (set-user-ID to $svc; token and PIN in the system home) | $($S best login_system $sec) | $($S range login_system $sec) | $($S best login_system.cpu $sec) | $($S max login_system.rss --div 1024 --fmt .0f) | $($S ratio login_system login_personal) |"
	say "| runuser -u $who -- /bin/true (the floor) | $($S best runuser_true $sec) | $($S range runuser_true $sec) | $($S best runuser_true.cpu $sec) | - | $($S ratio runuser_true login_personal) |"
	say ""
	say "Each status is a whole process: start, HSM login, the login event committed (anchor read, signed head, COMMIT, anchor write), the summary."
fi
say ""
fi # 8
# ---------------------------------------------------------------- 9. requests
if want 9; then
say "## 9. Request + 2 approvals + execute, end to end ($ROUNDS rounds of 20; load average $(load))"
for r in $(seq 1 "$ROUNDS"); do
	rq=$("$BUILD/bench/request_speed" --rounds 20)
	rec rq_e2e "$(printf '%s\n' "$rq" | awk '$1 == "request_e2e" {print $2}')"
	rec rq_inproc "$(printf '%s\n' "$rq" | awk '$1 == "peer_inproc" {print $2}')"
	rec rq_cli "$(printf '%s\n' "$rq" | awk '$1 == "peer_cli" {print $2}')"
done
sec="--fmt .4f"
say ""
say "| what (median of a round, seconds) | best round | range (spread) | keyward ÷ this (bests; above 1: keyward slower) |"
say "|---|---|---|---|"
say "| keyward: open a rotation request, 2 approvals (Ed25519 over the digest), execute; 4 commits with HSM-signed heads, a KEK version generated | $($S best rq_e2e $sec) | $($S range rq_e2e $sec) | 1.00 |"
say "| peer: 3 x Ed25519 sign (EVP) + 1 SQLite transaction, in process | $($S best rq_inproc $sec) | $($S range rq_inproc $sec) | $($S ratio rq_e2e rq_inproc) |"
say "| peer: 3 x openssl pkeyutl -sign -rawin + 1 sqlite3 transaction (processes) | $($S best rq_cli $sec) | $($S range rq_cli $sec) | $($S ratio rq_e2e rq_cli) |"
say ""
say "Target: under 1 s.  Argon2id is excluded: its floor cost, and each session steps up once before timing."
say ""
fi # 9
# ---------------------------------------------------------------- 10. rewrap
if want 10; then
REWRAP_ASSETS=${BENCH_REWRAP_ASSETS:-1000000}
REWRAP_BATCH=${BENCH_REWRAP_BATCH:-20000}
say "## 10. rewrap of $REWRAP_ASSETS DEKs vs a bare SQLite UPDATE of $REWRAP_ASSETS 60-byte blobs ($ROUNDS_SLOW rounds, batches of $REWRAP_BATCH; load average $(load))"
# The rounds interleave inside one process (ours, then the peer's), on one
# deployment and one peer database beside its catalogue.
"$BUILD/bench/rewrap_speed" -n "$REWRAP_ASSETS" --batch "$REWRAP_BATCH" --rounds "$ROUNDS_SLOW" \
	--dir "$work" >"$work/rewrap.out" 2>>"$work/commands.err" || { cat "$work/commands.err" >&2; exit 1; }
say ""
say '```'
while IFS= read -r line; do say "$line"; done <"$work/rewrap.out"
say '```'
say ""
say "Ours: km_job_run of a rewrap job (unwrap under the old version, wrap under the new one, catalogue row, counters, cursor, one audit event and HSM-signed head per batch). Peer: one prepared UPDATE of a 60-byte blob per row by id, committed every batch, WAL, synchronous=FULL. Target: ours within 3x of the peer, goal 2x."
fi # 10
say ""
# ---------------------------------------------------------------- 11. lineage
if want 11; then
say "## 11. lineage: impact over 100k nodes / 1M edges, import of 100k events ($ROUNDS rounds; load average $(load))"
LS=$BUILD/bench/lineage_speed
home=$(new_home lineage)
export KEYWARD_HOME="$home"
"$KW" key create bench/narrow >/dev/null 2>>"$work/commands.err"
"$KW" key create bench/wide >/dev/null 2>>"$work/commands.err"
"$LS" graph --db "$home/keyward.db" > "$work/graph.json"
for k in narrow wide; do "$LS" cte --db "$home/keyward.db" --key bench/$k > "$work/cte_$k.sql"; done
# The shell's own timer (no process start) on the same cache size as keyward's.
cte_time() {
	{ echo "PRAGMA cache_size = -16384;"; echo ".timer on"; cat "$1"; } |
		sqlite3 "$home/keyward.db" | awk '/^Run Time/ {print $4}' | tail -1
}
for r in $(seq 1 "$ROUNDS"); do
	for k in narrow wide; do
		j=$("$LS" impact --key bench/$k --runs 1)
		rec "impact_$k" "$(field "$j" seconds)"
		echo "$j" > "$work/impact_$k.json"
		rec "cte_$k" "$(cte_time "$work/cte_$k.sql")"
	done
done
# a frame of the lineage screen (^R on it: the walk, the tree, the paint)
screen_narrow=$(ROUNDS=$ROUNDS KEYWARD_BIN="$KW" bash "$here/lineage_screen.sh" bench/narrow)
screen_wide=$(ROUNDS=$ROUNDS KEYWARD_BIN="$KW" bash "$here/lineage_screen.sh" bench/wide)
"$LS" events --out "$shm/events.jsonl" -n 100000
ln_clear() {
	sqlite3 "$home/keyward.db" "DELETE FROM lineage_events; DELETE FROM lineage_edges WHERE src IN
	    (SELECT id FROM lineage_nodes WHERE namespace IN ('s3://lake', 'airflow'));
	    DELETE FROM lineage_nodes WHERE namespace IN ('s3://lake', 'airflow');"
}
# The import's peer: the rows one import writes (its nodes, events and
# edges, in the order it wrote them), as plain INSERT statements in one
# transaction, run by the sqlite3 shell with keyward's page cache for an
# import and its foreign keys: storing the same rows without parsing,
# checking or mapping anything.
ln_clear
"$KW" lineage import "$shm/events.jsonl" >/dev/null 2>>"$work/commands.err"
lake="SELECT id FROM lineage_nodes WHERE namespace IN ('s3://lake', 'airflow')"
{
	echo "PRAGMA foreign_keys = ON; PRAGMA cache_size = -262144; BEGIN;"
	sqlite3 "$home/keyward.db" ".mode insert lineage_nodes" "SELECT * FROM lineage_nodes WHERE id IN ($lake) ORDER BY id"
	sqlite3 "$home/keyward.db" ".mode insert lineage_events" "SELECT * FROM lineage_events ORDER BY rowid"
	sqlite3 "$home/keyward.db" ".mode insert lineage_edges" \
		"SELECT * FROM lineage_edges WHERE src IN ($lake) ORDER BY first_seen, src, dst"
	echo "COMMIT;"
} > "$shm/peer_rows.sql"
# The same without the schema's CHECK on kind (as keyward's import
# statements run: it checks kinds in C): the cost of storing the rows.
sed '1s/^/PRAGMA ignore_check_constraints = ON; /' "$shm/peer_rows.sql" > "$shm/peer_rows_nocheck.sql"
for r in $(seq 1 "$ROUNDS"); do
	ln_clear
	timed import "$KW" lineage import "$shm/events.jsonl"
	timed reimport "$KW" lineage import "$shm/events.jsonl"
	ln_clear
	timed import_peer --in "$shm/peer_rows.sql" sqlite3 "$home/keyward.db"
	ln_clear
	timed import_floor --in "$shm/peer_rows_nocheck.sql" sqlite3 "$home/keyward.db"
done
sec="--fmt .3f"
nn=$(field "$(cat "$work/impact_narrow.json")" nodes)
nw=$(field "$(cat "$work/impact_wide.json")" nodes)
say ""
say "Graph: $(cat "$work/graph.json") (10 layers; edges to +-60 positions of the next layer)."
say ""
say "| what | seconds, best | range (spread) | keyward ÷ sqlite3 shell (bests) |"
say "|---|---|---|---|"
say "| keyward impact, bench/narrow v1 (10 assets; reaches $nn nodes), in process, with a shortest path per node | $($S best impact_narrow $sec) | $($S range impact_narrow $sec) | $($S ratio impact_narrow cte_narrow) |"
say "| sqlite3 shell, the same reach as a recursive CTE (counts by kind, no paths) | $($S best cte_narrow $sec) | $($S range cte_narrow $sec) | 1.00 |"
say "| keyward impact, bench/wide v1 (1000 assets; reaches $nw nodes) | $($S best impact_wide $sec) | $($S range impact_wide $sec) | $($S ratio impact_wide cte_wide) |"
say "| sqlite3 shell, the same CTE | $($S best cte_wide $sec) | $($S range cte_wide $sec) | 1.00 |"
say "| keyward lineage import, 100,000 events (whole command) | $($S best import $sec) | $($S range import $sec) | $($S best import --rate 100000 --fmt .0f) events/s |"
say "| the same import, CPU seconds (user + system) | $($S best import.cpu $sec) | $($S range import.cpu $sec) | $($S best import.cpu --rate 100000 --fmt .0f) events per CPU second |"
say "| the same file again (all duplicates) | $($S best reimport $sec) | $($S range reimport $sec) | $($S best reimport --rate 100000 --fmt .0f) events/s |"
say "| sqlite3 shell, the same rows as INSERTs in one transaction (whole command) | $($S best import_peer $sec) | $($S range import_peer $sec) | $($S best import_peer --rate 100000 --fmt .0f) events/s; keyward ÷ peer $($S ratio import import_peer) |"
say "| the same, CPU seconds | $($S best import_peer.cpu $sec) | $($S range import_peer.cpu $sec) | keyward ÷ peer $($S ratio import.cpu import_peer.cpu) |"
say "| sqlite3 shell, the same INSERTs without the kind CHECK (whole command) | $($S best import_floor $sec) | $($S range import_floor $sec) | $($S best import_floor --rate 100000 --fmt .0f) events/s; keyward ÷ this $($S ratio import import_floor) |"
say "| the same, CPU seconds | $($S best import_floor.cpu $sec) | $($S range import_floor.cpu $sec) | keyward ÷ this $($S ratio import.cpu import_floor.cpu) |"
say ""
say "| the lineage screen, one frame (^R: walk, tree, paint), ms | best | median |"
say "|---|---|---|"
say "| bench/narrow v1 ($nn nodes) | ${screen_narrow% *} | ${screen_narrow#* } |"
say "| bench/wide v1 ($nw nodes; the screen loads the first 2,000, the rest on unfold or /) | ${screen_wide% *} | ${screen_wide#* } |"
say ""
say "Targets: impact under 0.1 s and within 1.5x of the CTE; import >= 10,000 events/s; the screen's first frame under 50 ms."
rm -f "$shm/events.jsonl"
say ""
fi # 11
say "Load average $(load) at the end."
echo "results written to $out"
