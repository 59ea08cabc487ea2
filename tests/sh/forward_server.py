#!/usr/bin/env python3
"""An audit receiver for cli_forward.sh (127.0.0.1, a free port).

    forward_server.py DIR [SECRET_FILE]

With FWD_TLS_CERT and FWD_TLS_KEY in the environment it serves https.

Writes its port to DIR/port.  Every request is logged to DIR/requests as
"SECONDS STATUS PATH FIRST LAST".  A batch it accepts has each event's exact
text appended to DIR/events (one per line, in arrival order), so the test
can compare it with the audit log byte for byte.  With SECRET_FILE, a batch
whose X-Keyward-Signature is not HMAC-SHA256(secret, body) is refused (401)
and logged as such.  Each batch is checked: after_seq == first_seq - 1,
its events numbered first_seq..last_seq without a gap, X-Keyward-Seq
matching; a malformed batch is answered 400 and logged to DIR/problems.

Paths:
  /ok        200
  /chaos     seeded random answers: 500, 503, 429 (Retry-After: 1, at most
             twice), one stall of 4 s (the third request), else 200
  /slowack   waits 0.15 s, logs the batch, waits 0.15 s, answers 200: a
             client killed in the first wait has a batch in flight that
             was not taken (it must not count as delivered), in the second
             one delivered without knowing it (it will be sent again)
  /down      always 503
  /reject    always 400
"""
import hashlib
import hmac
import json
import os
import random
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = sys.argv[1]
secret = None
if len(sys.argv) > 2:
    secret = open(sys.argv[2], "rb").read().rstrip(b"\r\n")
rng = random.Random(11)
lock = threading.Lock()
state = {"chaos": 0, "429": 0}


def log(name, line):
    with lock, open(os.path.join(out, name), "a") as f:
        f.write(line)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, first="-", last="-", headers=()):
        log("requests", f"{time.time():.3f} {status} {self.path} {first} {last}\n")
        data = b"{}"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if secret is not None:
            want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, self.headers.get("X-Keyward-Signature", "")):
                return self.answer(401)
        path = self.path
        try:
            batch = json.loads(body)
            first, last = batch["first_seq"], batch["last_seq"]
            seqs = [e["seq"] for e in batch["events"]]
            assert batch["after_seq"] == first - 1, "after_seq"
            assert seqs == list(range(first, last + 1)), "numbering"
            assert self.headers["X-Keyward-Seq"] == f"{first}-{last}", "header"
        except (ValueError, KeyError, AssertionError) as x:
            log("problems", f"{path}: {x!r}\n")
            return self.answer(400)
        if path == "/down":
            return self.answer(503, first, last)
        if path == "/reject":
            return self.answer(400, first, last)
        if path == "/chaos":
            with lock:
                state["chaos"] += 1
                n = state["chaos"]
                r = rng.random()
            if n == 3:
                time.sleep(4)  # longer than the client's timeout
                return self.answer(200, first, last)  # too late: the client gave up
            if r < 0.15:
                return self.answer(500, first, last)
            if r < 0.30:
                return self.answer(503, first, last)
            if r < 0.40 and state["429"] < 2:
                state["429"] += 1
                return self.answer(429, first, last, [("Retry-After", "1")])
        if path == "/slowack":
            time.sleep(0.15)  # a batch in flight, not yet taken
            if self.client_gone():
                return  # the client died first: the batch was never taken
        # Events are kept in arrival order, exactly as sent.
        texts = self.raw_events(body)
        log("events", "".join(t + "\n" for t in texts))
        if path == "/slowack":
            time.sleep(0.15)  # taken, not yet acknowledged
        self.answer(200, first, last)

    def client_gone(self):
        """The client closed its end (killed): readable with nothing to read."""
        r, _, _ = select.select([self.connection], [], [], 0)
        try:
            return bool(r) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    @staticmethod
    def raw_events(body):
        """The event texts as the bytes sent (not re-serialised)."""
        s = body.decode()
        start = s.index('"events":[') + len('"events":[')
        dec = json.JSONDecoder()
        texts, i = [], start
        while s[i] != "]":
            _, j = dec.raw_decode(s, i)
            texts.append(s[i:j])
            i = j + 1 if s[j] == "," else j
        return texts


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if os.environ.get("FWD_TLS_CERT"):  # serve https with this certificate
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["FWD_TLS_CERT"], os.environ["FWD_TLS_KEY"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
server.serve_forever()
