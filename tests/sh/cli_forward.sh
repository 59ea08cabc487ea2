#!/usr/bin/env bash
# cli_forward.sh — `keyward audit forward` against a local receiver started
# here (tests/sh/forward_server.py), which checks each batch's numbering and
# HMAC and keeps the event texts it accepted:
#   - a receiver that fails at random (500, 503), answers 429 with
#     Retry-After (waited out) and stalls once (the timeout cuts it short):
#     one run still delivers everything;
#   - kill -9 of keyward mid-batch, six times (a batch not yet taken, or
#     taken and not yet acknowledged): the receiver's log, compared
#     seq by seq with the audit log, has no gap, the exact stored bytes, and
#     duplicates only within one batch per kill;
#   - a wrong HMAC secret, a receiver that stays down, one that refuses:
#     the cursor does not move, the secret is never printed;
#   - a JSON-lines file sink: byte-identical lines, a torn last line cut,
#     a crash between fsync and cursor not written twice;
#   (the witness sink has its own test, cli_witness.sh);
#   - `status` shows each sink's lag; malformed sink config is refused
#     naming the field.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
# A few thousand events to forward.
ok demo --events 1500

R=$W/recv
mkdir -p "$R"
head -c 32 /dev/urandom | base64 >"$W/secret"
chmod 600 "$W/secret"
python3 "$KW_REPO/tests/sh/forward_server.py" "$R" "$W/secret" &
server=$!
fpid=
trap 'kill $server $fpid 2>/dev/null || true; kw_lib_cleanup' EXIT
for _ in $(seq 1 100); do [ -s "$R/port" ] && break; sleep 0.05; done
[ -s "$R/port" ] || fail "the test server did not start"
base=http://127.0.0.1:$(cat "$R/port")
CFG=$KEYWARD_HOME/config.json
cp "$CFG" "$W/config.orig"

# sinks JSON -> config.json (the rest of the original kept)
sinks() {
	python3 - "$W/config.orig" "$CFG" "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["audit_sinks"] = json.loads(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
}
cursor() { sqlite3 "$DB" "SELECT coalesce((SELECT delivered FROM audit_forward WHERE sink = '$1'), 0)"; }

# The receiver's events against the audit log: every seq from 1 to the
# cursor, each text byte-identical to the stored one, no gap; a duplicate
# only inside one batch of at most BATCH events per allowed re-send.
compare() { # EVENTS_FILE CURSOR BATCH RESENDS
	sqlite3 "$DB" "SELECT json FROM audit_events WHERE seq <= $2 ORDER BY seq" >"$W/log.txt"
	python3 - "$1" "$W/log.txt" "$3" "$4" <<'EOF' || fail "the receiver's log does not match the audit log"
import json, sys
got = [l.rstrip("\n") for l in open(sys.argv[1])]
log = [l.rstrip("\n") for l in open(sys.argv[2])]
batch, resends = int(sys.argv[3]), int(sys.argv[4])
seen = {}
for t in got:
    s = json.loads(t)["seq"]
    assert 1 <= s <= len(log), f"seq {s} is not in the log"
    assert t == log[s - 1], f"seq {s}: the text differs from the stored event"
    seen[s] = seen.get(s, 0) + 1
missing = [s for s in range(1, len(log) + 1) if s not in seen]
assert not missing, f"gap: {missing[:5]}"
dups = sorted(s for s, n in seen.items() if n > 1)
assert all(n <= 1 + resends for n in seen.values()), "an event came more than once per re-send"
assert len(dups) <= batch * resends, f"{len(dups)} duplicates, more than {resends} batch(es) of {batch}"
# duplicates form at most `resends` runs, each within one batch.  A run is
# a re-send as the receiver saw it: events it had already had, in a row, in
# the order they came (two re-sends of adjacent batches are two runs, though
# their seqs adjoin: a run of adjacent seqs would count them as one).
runs = []
top = 0
cur = None
for t in got:
    s = json.loads(t)["seq"]
    if s <= top:
        if cur is not None and s == cur[1] + 1:
            cur[1] = s
        else:
            cur = [s, s]
            runs.append(cur)
    else:
        cur = None
        top = s
assert sum(b - a + 1 for a, b in runs) == sum(n - 1 for n in seen.values()), "a duplicate outside every re-send"
assert len(runs) <= resends and all(b - a < batch for a, b in runs), f"duplicate runs {runs}"
print(f"{len(got)} received, {len(seen)} distinct, {len(dups)} duplicates in {len(runs)} run(s)")
EOF
}

step "config errors name the field"
bad() { # SINKS_JSON TEXT
	sinks "$1"
	expect 7 audit forward
	has "$ERR" "$2"
}
bad '{"name":"x"}' '"audit_sinks" must be an array'
bad '[{"name":"x","type":"webhook","url":"ftp://h/x"}]' '"audit_sinks"[0].url must be an http:// or https:// URL'
bad '[{"name":"x","type":"file"}]' '"audit_sinks"[0].path is missing'
bad '[{"name":"x","type":"pigeon","url":"http://h/"}]' '"audit_sinks"[0].type must be'
bad '[{"type":"file","path":"f"}]' '"audit_sinks"[0].name is missing'
bad '[{"name":"Bad Name","type":"file","path":"f"}]' '"audit_sinks"[0].name must be 1 to 31'
bad '[{"name":"a","type":"file","path":"f","batch":0}]' '"audit_sinks"[0].batch must be an integer from 1'
bad '[{"name":"a","type":"file","path":"f","colour":"red"}]' '"audit_sinks"[0]: unknown field "colour"'
bad '[{"name":"a","type":"file","path":"f","ca_file":"x"}]' '"audit_sinks"[0].ca_file does not apply to a file sink'
bad '[{"name":"a","type":"webhook","url":"https://h/","client_key":"k"}]' '"audit_sinks"[0].client_key needs client_cert'
bad '[{"name":"a","type":"file","path":"f"},{"name":"a","type":"file","path":"g"}]' '"audit_sinks"[1].name "a" is already'
sinks '[]'
expect 7 audit forward
has "$ERR" "no audit sinks are configured"
sinks '[{"name":"a","type":"file","path":"f"}]'
expect 3 audit forward --sink nosuch
has "$ERR" 'no audit sink is named "nosuch"'

step "random failures, 429 with Retry-After, a stall: one run delivers everything"
sinks '[{"name":"chaos","type":"webhook","url":"'"$base"'/chaos","hmac_secret_file":"'"$W/secret"'",
        "batch":200,"attempts":60,"backoff_ms":20,"backoff_max_seconds":2,"timeout_seconds":1}]'
ok audit forward --json
jeq "$OUT" 'd[0]["error"]' null
jeq "$OUT" 'd[0]["lag"]' 0
jeq "$OUT" 'd[0]["retry_after_waits"] >= 1' true
jeq "$OUT" 'd[0]["retries"] >= 3' true
n=$(cursor chaos)
[ "$n" -ge 1500 ] || fail "cursor $n after a full run"
compare "$R/events" "$n" 200 0
[ ! -s "$R/problems" ] || fail "malformed batches: $(cat "$R/problems")"
# the stalled request is logged when the server's 4 s sleep ends, which
# can be after a fast run finished: give it until then
for _ in $(seq 1 60); do
	[ "$(grep -c ' 200 /chaos ' "$R/requests")" -gt "$(grep ' 200 /chaos ' "$R/requests" | awk '{print $4}' | sort -u | wc -l)" ] && break
	sleep 0.1
done
python3 - "$R/requests" <<'EOF' || fail "the failures were not all seen or Retry-After not honoured: $(cat "$R/requests")"
import sys
rows = [l.split() for l in open(sys.argv[1]) if "/chaos" in l]
codes = [r[1] for r in rows]
for c in ("500", "503", "429", "200"):
    assert c in codes, c
# the stalled third request answered (200) after the client had given up
# and sent its batch again, which was answered 200 too
oks = [r[3] for r in rows if r[1] == "200"]
assert any(oks.count(f) == 2 for f in oks), "no stalled batch was sent again"
for i, r in enumerate(rows[:-1]):
    if r[1] == "429":
        assert float(rows[i + 1][0]) - float(r[0]) >= 0.95, (r, rows[i + 1])
EOF
lacks "$OUT" "$(cat "$W/secret")"
lacks "$ERR" "$(cat "$W/secret")"

step "status shows the sink's lag"
ok status --json
jeq "$OUT" 'd["audit_sinks"]["chaos"]["lag"] <= 2' true
ok key create lag/one
ok status --json
jeq "$OUT" 'd["audit_sinks"]["chaos"]["lag"] >= 1' true
ok status
has "$OUT" "forwarding: chaos:"

step "kill -9 mid-batch, six times: no gap, duplicates only within the batch in flight"
: >"$R/events"
sinks '[{"name":"slow","type":"webhook","url":"'"$base"'/slowack","hmac_secret_file":"'"$W/secret"'","batch":100}]'
for delay in 0.55 1.2 1.75 2.3 2.85 3.4; do
	"$KEYWARD_BIN" audit forward >"$W/fwd.out" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null ||
		fail "keyward had finished before the kill (too fast for the test): $(cat "$W/fwd.out")"
	wait "$pid" 2>/dev/null || true
	c=$(cursor slow)
	last=0
	[ -s "$R/events" ] &&
		last=$(tail -n1 "$R/events" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["seq"])')
	[ "$last" -ge "$c" ] || fail "the cursor ($c) is ahead of what the receiver has ($last)"
	[ $((last - c)) -le 100 ] || fail "more than one batch in flight: receiver $last, cursor $c"
done
ok audit forward --json
jeq "$OUT" 'd[0]["lag"]' 0
compare "$R/events" "$(cursor slow)" 100 6

step "--follow delivers new events as they come, and stops cleanly on SIGTERM"
"$KEYWARD_BIN" audit forward --follow --interval 100 >"$W/follow.out" 2>&1 &
pid=$!
fpid=$pid
for _ in $(seq 1 200); do [ "$(cursor slow)" -ge "$(sqlite3 "$DB" 'SELECT max(seq) FROM audit_events')" ] && break; sleep 0.1; done
ok key create follow/one
want=$(sqlite3 "$DB" "SELECT max(seq) FROM audit_events WHERE action = 'key.create' AND object LIKE '%follow/one%'")
[ -n "$want" ] || fail "no key.create event for follow/one"
for _ in $(seq 1 100); do [ "$(cursor slow)" -ge "$want" ] && break; sleep 0.1; done
[ "$(cursor slow)" -ge "$want" ] || fail "--follow did not deliver entry $want (cursor $(cursor slow))"
grep -qF 'follow/one' "$R/events" || fail "the receiver did not get the new event"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
fpid=
[ "$rc" = 0 ] || fail "--follow exited $rc on SIGTERM: $(cat "$W/follow.out")"
compare "$R/events" "$(cursor slow)" 100 6

step "a wrong HMAC secret is refused by the receiver; the cursor stays"
head -c 32 /dev/urandom | base64 >"$W/wrong"
sinks '[{"name":"chaos","type":"webhook","url":"'"$base"'/ok","hmac_secret_file":"'"$W/wrong"'","attempts":2,"backoff_ms":10}]'
ok key create lag/two
before=$(cursor chaos)
expect 1 audit forward
has "$ERR" "HTTP 401"
[ "$(cursor chaos)" = "$before" ] || fail "a refused batch moved the cursor"
lacks "$ERR" "$(cat "$W/wrong")"
sqlite3 "$DB" "SELECT json FROM audit_events" | grep -qF "$(cat "$W/wrong")" && fail "the secret reached the audit log"

step "a receiver that stays down: the attempts run out, the next run catches up"
sinks '[{"name":"chaos","type":"webhook","url":"'"$base"'/down","hmac_secret_file":"'"$W/secret"'","attempts":3,"backoff_ms":10}]'
expect 1 audit forward
has "$ERR" "HTTP 503, 3 attempts"
[ "$(cursor chaos)" = "$before" ] || fail "a failed run moved the cursor"
sinks '[{"name":"chaos","type":"webhook","url":"'"$base"'/ok","hmac_secret_file":"'"$W/secret"'"}]'
ok audit forward --json
jeq "$OUT" 'd[0]["lag"]' 0
sinks '[{"name":"chaos","type":"webhook","url":"'"$base"'/reject","hmac_secret_file":"'"$W/secret"'","attempts":5}]'
ok key create lag/three
expect 1 audit forward
has "$ERR" "HTTP 400"
[ "$(grep -c ' /reject ' "$R/requests")" = 1 ] || fail "a 400 was tried again"

step "https: TLS is verified; ca_file names whom to trust"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tls.key" \
	-out "$W/tls.crt" -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1
mkdir -p "$W/tlsrecv"
FWD_TLS_CERT=$W/tls.crt FWD_TLS_KEY=$W/tls.key python3 "$KW_REPO/tests/sh/forward_server.py" "$W/tlsrecv" &
tls=$!
for _ in $(seq 1 100); do [ -s "$W/tlsrecv/port" ] && break; sleep 0.05; done
turl=https://localhost:$(cat "$W/tlsrecv/port")/ok
sinks '[{"name":"tls","type":"webhook","url":"'"$turl"'","attempts":1}]'
expect 1 audit forward
has "$ERR" "TLS is always verified: give the server's CA in ca_file"
[ "$(cursor tls)" = 0 ] || fail "an unverified TLS peer got events"
[ ! -s "$W/tlsrecv/events" ] || fail "events reached an unverified TLS peer"
sinks '[{"name":"tls","type":"webhook","url":"'"$turl"'","ca_file":"'"$W/tls.crt"'","attempts":1}]'
ok audit forward --json
jeq "$OUT" 'd[0]["lag"]' 0
compare "$W/tlsrecv/events" "$(cursor tls)" 1000 0
kill $tls 2>/dev/null || true

step "JSON-lines file: the stored bytes, a torn line cut, no line written twice"
F=$W/audit.jsonl
sinks '[{"name":"file","type":"file","path":"'"$F"'","batch":300}]'
ok audit forward --json
jeq "$OUT" 'd[0]["lag"]' 0
[ "$(stat -c %a "$F")" = 600 ] || fail "the file is not mode 0600"
compare "$F" "$(cursor file)" 300 0
# a crash after the fsync, before the cursor moved: the file is ahead
ok key create file/one
ok audit forward
sqlite3 "$DB" "UPDATE audit_forward SET delivered = delivered - 5 WHERE sink = 'file'"
# and a crash inside write(): a torn last line
printf '{"action":"torn' >>"$F"
ok key create file/two
ok audit forward --json
jeq "$OUT" 'd[0]["lag"]' 0
compare "$F" "$(cursor file)" 300 0
lacks "$F" '"torn'

echo ok
