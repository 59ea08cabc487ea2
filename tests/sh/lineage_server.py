#!/usr/bin/env python3
"""A Marquez-like lineage API for cli_lineage_pull.sh (127.0.0.1, a free port).

    lineage_server.py EVENTS.jsonl PORT_FILE LOG_FILE

GET /ok/api/v1/events/lineage?limit=N&offset=K answers {"events": [...]} with
events K..K+N of EVENTS.jsonl, except that the second page fails first with
a 500, then with a 429 carrying Retry-After: 1, and only the third time
answers.  /slow/... answers after 5 s.  /down/... always answers 503.  Each
request is logged as "SECONDS STATUS PATH" to LOG_FILE.
"""
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

events = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
port_file, log_file = sys.argv[2], sys.argv[3]
second_page_tries = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        with open(log_file, "a") as f:
            f.write(f"{time.time():.3f} {status} {self.path}\n")
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the slow case): as a real server sees it

    def do_GET(self):
        global second_page_tries
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        limit, offset = int(q["limit"][0]), int(q["offset"][0])
        if url.path.startswith("/slow/"):
            time.sleep(5)
        if url.path.startswith("/down/"):
            return self.answer(503, {"error": "down"})
        if url.path.startswith("/ok/") and offset == limit:
            second_page_tries += 1
            if second_page_tries == 1:
                return self.answer(500, {"error": "boom"})
            if second_page_tries == 2:
                return self.answer(429, {"error": "slow down"}, [("Retry-After", "1")])
        self.answer(200, {"events": events[offset:offset + limit], "totalCount": len(events)})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
