#!/usr/bin/env python3
"""A C2SP tlog-witness (c2sp.org/tlog-witness) for cli_witness.sh, written
from the specs alone, sharing no code with keyward:

    witness_server.py DIR ORIGIN LOG_PUB_PEM

It trusts one log: ORIGIN, whose checkpoints must carry a signed-note
signature of type 0x02 (ECDSA P-256 over SHA-256, key ID = SHA-256 of the
DER SubjectPublicKeyInfo, first 4 bytes) by LOG_PUB_PEM, checked with
`openssl dgst -sha256 -verify`.  Consistency proofs are checked with an
RFC 9162 (2.1.4.2) verifier written here.  It cosigns with an Ed25519 key
it makes with `openssl genpkey` and signs with `openssl pkeyutl -rawin`
(cosignature/v1, signed-note type 0x04, c2sp.org/tlog-cosignature).

Files in DIR:
  port       its port (127.0.0.1)
  vkey       its verifier key NAME+KEYID+BASE64(0x04||key), for keyward
  state      "SIZE BASE64ROOT" of the latest checkpoint it cosigned (none: 0);
             the test may rewrite it to stage a witness that holds another view
  requests   one line per request: "PATH CODE OLD SIZE PROOF_LINES"
  cosigned   every checkpoint it cosigned, with its cosignature line appended

Paths (the submission prefix is the first path segment):
  /w/add-checkpoint        the witness, by the book
  /tamper/add-checkpoint   the same, but one bit of the signature it sends
                           back is flipped after signing (it still records
                           the checkpoint, as a witness whose answer was
                           altered in transit would have)
"""
import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out, ORIGIN, LOG_PEM = sys.argv[1], sys.argv[2], sys.argv[3]
NAME = "witness.test/w1"
EM = "\u2014"
lock = threading.Lock()
tmp = tempfile.mkdtemp(prefix="kw-witness-")
KEY = os.path.join(tmp, "w.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", KEY], check=True,
               capture_output=True)
der = subprocess.run(["openssl", "pkey", "-in", KEY, "-pubout", "-outform", "DER"], check=True,
                     capture_output=True).stdout
PUB = der[-32:]
KEY_ID = hashlib.sha256(NAME.encode() + b"\n" + b"\x04" + PUB).digest()[:4]


def log_key_id():
    lines = [l for l in open(LOG_PEM) if not l.startswith("-----")]
    spki = base64.b64decode("".join(lines))
    return hashlib.sha256(spki).digest()[:4]


LOG_KEY_ID = log_key_id()


def h_node(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162, 2.1.4.2, step by step."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # tlog-witness: the proof must be empty from 0
    if first > second or not proof:
        return False
    if first & (first - 1) == 0:  # an exact power of 2
        proof = [first_root] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = h_node(c, fr)
            sr = h_node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = h_node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def ecdsa_ok(text, der_sig):
    with tempfile.NamedTemporaryFile(dir=tmp) as t, tempfile.NamedTemporaryFile(dir=tmp) as s:
        t.write(text)
        t.flush()
        s.write(der_sig)
        s.flush()
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", LOG_PEM, "-signature", s.name,
                            t.name], capture_output=True)
        return r.returncode == 0


def ed25519_sign(msg):
    with tempfile.NamedTemporaryFile(dir=tmp) as m:
        m.write(msg)
        m.flush()
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", KEY, "-rawin", "-in", m.name],
                              check=True, capture_output=True).stdout


def read_state():
    try:
        size, root = open(os.path.join(out, "state")).read().split()
        return int(size), base64.b64decode(root)
    except FileNotFoundError:
        return 0, None


def write_state(size, root):
    p = os.path.join(out, "state")
    with open(p + ".tmp", "w") as f:
        f.write(f"{size} {base64.b64encode(root).decode()}\n")
    os.rename(p + ".tmp", p)


class Bad(Exception):
    def __init__(self, code, why):
        self.code, self.why = code, why


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="text/plain; charset=utf-8", note=""):
        with open(os.path.join(out, "requests"), "a") as f:
            f.write(f"{self.path} {code} {note}\n")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        prefix, _, rest = self.path.lstrip("/").partition("/")
        if rest != "add-checkpoint" or prefix not in ("w", "tamper"):
            return self.reply(404, b"no such endpoint\n")
        with lock:  # the check and the update are one step (the spec's race)
            try:
                old, size, root, text, proof = self.parse(body)
            except Bad as b:
                return self.reply(b.code, (b.why + "\n").encode(), note=b.why)
            note = f"{old} {size} {len(proof)}"
            have, have_root = read_state()
            if old > size:
                return self.reply(400, b"old size beyond the checkpoint\n", note=note)
            if old != have:
                return self.reply(409, f"{have}\n".encode(), "text/x.tlog.size", note=note)
            if old == size and have_root is not None and have_root != root:
                return self.reply(409, f"{have}\n".encode(), "text/x.tlog.size", note=note + " root")
            if old > 0 and old != size and not verify_consistency(old, size, have_root, root, proof):
                return self.reply(422, b"the consistency proof does not verify\n",
                                  note=note + " badproof")
            write_state(size, root)
            t = int(time.time())
            sig = ed25519_sign(b"cosignature/v1\ntime %d\n" % t + text)
            if prefix == "tamper":
                sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
            line = f"{EM} {NAME} " + base64.b64encode(KEY_ID + t.to_bytes(8, "big") + sig).decode()
            # a line by another witness, which keyward must ignore
            other = f"{EM} other.test/w9 " + base64.b64encode(b"\0\0\0\0" + bytes(72)).decode()
            with open(os.path.join(out, "cosigned"), "a") as f:
                f.write(text.decode() + "\n" + line + "\n")
            return self.reply(200, (other + "\n" + line + "\n").encode(), note=note)

    @staticmethod
    def parse(body):
        try:
            s = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad(400, "not UTF-8")
        lines = s.split("\n")
        if not lines[0].startswith("old "):
            raise Bad(400, "no old size line")
        o = lines[0][4:]
        if not o.isdigit() or (o != "0" and o.startswith("0")):
            raise Bad(400, "bad old size")
        old = int(o)
        proof, i = [], 1
        while i < len(lines) and lines[i] != "":
            h = base64.b64decode(lines[i], validate=True)
            if len(h) != 32:
                raise Bad(400, "a proof line is not a SHA-256 hash")
            proof.append(h)
            i += 1
        if i >= len(lines) or len(proof) > 63:
            raise Bad(400, "no empty line after the proof")
        if old == 0 and proof:
            raise Bad(400, "a proof from size 0")
        note = "\n".join(lines[i + 1:])
        cut = note.rfind("\n\n")
        if cut < 0 or not note.endswith("\n"):
            raise Bad(400, "the checkpoint is not a signed note")
        text = note[:cut + 1]
        sigs = note[cut + 2:].rstrip("\n").split("\n")
        tl = text.split("\n")
        if len(tl) < 4 or tl[0] != ORIGIN:
            raise Bad(404, "unknown origin")
        size, root = int(tl[1]), base64.b64decode(tl[2])
        ok = False
        for sl in sigs:
            if not sl.startswith(EM + " "):
                raise Bad(400, "a malformed signature line")
            name, _, b64 = sl[2:].partition(" ")
            raw = base64.b64decode(b64)
            if name == ORIGIN and raw[:4] == LOG_KEY_ID:
                if not ecdsa_ok(text.encode(), raw[4:]):
                    raise Bad(403, "the log's signature does not verify")
                ok = True
        if not ok:
            raise Bad(403, "no signature by the log's key")
        return old, size, root, text.encode(), proof


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
VKEY = NAME + "+" + KEY_ID.hex() + "+" + base64.b64encode(b"\x04" + PUB).decode()
with open(os.path.join(out, "vkey"), "w") as f:
    f.write(VKEY + "\n")
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
server.serve_forever()
