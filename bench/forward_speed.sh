#!/usr/bin/env bash
# forward_speed.sh — the outbox and the forwarder against their peers, in one
# run (bench/forward_speed.c does the timing):
#   1. durable append through the audit writer with the forwarding tables
#      present, against raw sqlite3 inserts of the same rows, at FWD_BATCHES
#      events per transaction (default "1000 10000");
#   2. forwarding the log to a local HTTP receiver (keep-alive, answers 200
#      to every POST), HMAC-signed, FWD_FORWARD_BATCH events per batch
#      (default 1000), against curl posting the very same batch bodies to the
#      same receiver in one process (`curl -K`, one connection reused).
# Every figure is printed with its peer's; on a shared machine compare the
# ratios and the per-CPU-second rates, not the wall-clock rates alone.
#
#   BUILD=build bash bench/forward_speed.sh       (after make NODEPS=1 build/bench/forward_speed)
set -euo pipefail
BUILD=${BUILD:-build}
BIN=$BUILD/bench/forward_speed
EVENTS=${FWD_EVENTS:-200000}
ROUNDS=${FWD_ROUNDS:-3}
BATCHES=${FWD_BATCHES:-1000 10000}
FBATCH=${FWD_FORWARD_BATCH:-1000}
[ -x "$BIN" ] || { echo "build $BIN first (make NODEPS=1 BUILD=$BUILD $BIN)" >&2; exit 2; }
command -v curl >/dev/null || { echo "the peer needs curl" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/kw-fwd-bench.XXXXXX")
recv=
trap '[ -n "$recv" ] && kill $recv 2>/dev/null; rm -rf "$T"' EXIT

echo "== 1. durable append with the outbox vs raw sqlite3 inserts ($EVENTS events)"
for b in $BATCHES; do
	"$BIN" append -n "$EVENTS" --batch "$b" --rounds "$ROUNDS" --db "$T/log.db" | sed -n '/^append/,$p'
done

echo "== 2. forwarding to a local receiver vs curl posting the same batches"
python3 - "$T/port" <<'EOF' &
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers["Content-Length"])
        while n > 0:
            n -= len(self.rfile.read(min(n, 1 << 20)))
        # one write: status, headers and body together (two small writes
        # would meet Nagle and delayed ACKs, 40 ms a request)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
s = HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
recv=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
url=http://127.0.0.1:$(cat "$T/port")/ingest
head -c 32 /dev/urandom | base64 >"$T/secret"
mkdir -p "$T/batches"
# the log from part 1 (the last batch size's), delivered from cursor 0
"$BIN" forward --db "$T/log.db" --url "$url" --batch "$FBATCH" --secret "$T/secret" \
	--dump "$T/batches" --rounds "$ROUNDS" | tee "$T/ours.txt"
ours=$(sed -n 's/^forward (best of [0-9]*): \([0-9]*\) events\/s.*/\1/p' "$T/ours.txt")
n=$(sqlite3 "$T/log.db" 'SELECT count(*) FROM audit_events')
: >"$T/curl.cfg"
for f in "$T"/batches/batch-*.json; do
	[ -s "$T/curl.cfg" ] && echo next >>"$T/curl.cfg"
	printf 'url = "%s"\ndata-binary = "@%s"\nheader = "Content-Type: application/json"\noutput = "/dev/null"\n' \
		"$url" "$f" >>"$T/curl.cfg"
done
best=
for r in $(seq 1 "$ROUNDS"); do
	t0=$(date +%s.%N)
	curl -sS --fail -K "$T/curl.cfg"
	t=$(echo "$(date +%s.%N) - $t0" | bc -l)
	echo "round $r: curl posted $n events in $(ls "$T/batches" | wc -l) batches: $(echo "$n / $t" | bc) events/s"
	if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
done
peer=$(echo "$n / $best" | bc)
echo "forward (best of $ROUNDS, $n events, $FBATCH per batch):"
printf '  keyward audit forward (HMAC)  %8s events/s\n' "$ours"
printf '  curl -K, same bodies (no HMAC) %7s events/s\n' "$peer"
printf '  ratio (ours / peer)           %8s\n' "$(echo "scale=2; $ours / $peer" | bc)"
