#!/usr/bin/env python3
"""verify_audit_export.py - check a `keyward audit export` directory offline.

Needs only Python 3's standard library and the `openssl` command; never
keyward or its database.  What it checks (docs/audit.md, "Evidence for
outsiders"):

  * the checkpoint is a C2SP signed note signed by the audit key
    (signature type 0x02: ECDSA P-256 over SHA-256 of the note text, DER;
    key ID = first 4 bytes of SHA-256 of the DER public key), checked with
    `openssl dgst -sha256 -verify`;
  * every event line: its seq follows the previous one, times never go
    backwards, and its leaf hash SHA-256(0x00 || line bytes) goes into the
    RFC 6962 / 9162 Merkle tree;
  * the prefix subtrees (the tree before the range) plus every exported
    leaf give exactly the checkpoint's root;
  * the start checkpoint's signature and its RFC 9162 consistency proof to
    the newest checkpoint; the inclusion proofs in proofs.json;
  * with --old-checkpoint FILE: a checkpoint the auditor kept from before
    is signed by the same key, and the exported log is consistent with it
    (it only grew);
  * checkpoint.witnessed, when a witness cosigned: the audit key's signature
    and its consistency proof to the newest checkpoint; with --witness-key
    VKEY (the witness's signed-note verifier key NAME+KEYID+BASE64, type
    0x04), its timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature)
    over "cosignature/v1\ntime T\n" + the checkpoint text, checked with
    `openssl pkeyutl -verify -rawin`.

Pass the audit public key you trust with --pubkey (from `keyward audit
pubkey` at enrolment time); without it the key in the export is used and a
warning says so - an export made by an attacker could carry its own key.

Exit status 0 when everything checks out, 1 with one line per problem.
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile

EM_DASH = "\u2014"
SIG_TYPE_ECDSA = 0x02
SIG_TYPE_COSIGNATURE = 0x04
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)


# ---------------------------------------------------------------- Merkle (RFC 9162)

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The compact state of an append-only tree: one perfect subtree per
    set bit of size, largest first (index by level)."""

    def __init__(self, size, subtrees):
        self.size = size
        self.by_level = {}
        levels = [l for l in range(64, -1, -1) if (size >> l) & 1]
        if len(levels) != len(subtrees):
            raise ValueError("the prefix lists %d subtrees; a tree of %d entries has %d"
                             % (len(subtrees), size, len(levels)))
        for l, h in zip(levels, subtrees):
            self.by_level[l] = h

    def append(self, leaf):
        h, l = leaf, 0
        while (self.size >> l) & 1:
            h = node_hash(self.by_level.pop(l), h)
            l += 1
        self.by_level[l] = h
        self.size += 1

    def root(self):
        if self.size == 0:
            return hashlib.sha256(b"").digest()
        r = None
        for l in sorted(self.by_level):  # smallest (rightmost) first
            r = self.by_level[l] if r is None else node_hash(self.by_level[l], r)
        return r


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162 section 2.1.4.2 (plus the trivial cases first == second and
    first == 0, which need an empty proof)."""
    if first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# ---------------------------------------------------------------- keys and notes

def pem_to_der(pem_text):
    lines = [l.strip() for l in pem_text.splitlines()]
    try:
        a = lines.index("-----BEGIN PUBLIC KEY-----")
        b = lines.index("-----END PUBLIC KEY-----")
    except ValueError:
        raise ValueError("not a PEM public key")
    return base64.b64decode("".join(lines[a + 1:b]), validate=True)


class Checkpoint:
    def __init__(self, path, what):
        self.path, self.what = path, what
        raw = open(path, "rb").read()
        try:
            note = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("%s is not UTF-8" % what)
        cut = note.rfind("\n\n")
        if cut < 0 or not note.endswith("\n"):
            raise ValueError("%s is not a signed note (no blank line before the signatures)" % what)
        self.text = note[:cut + 1].encode("utf-8")
        self.sig_lines = note[cut + 2:].splitlines()
        body = note[:cut].split("\n")
        if len(body) < 3:
            raise ValueError("%s has fewer than three lines of text" % what)
        self.origin = body[0]
        if not body[1].isdigit() or (body[1] != "0" and body[1].startswith("0")):
            raise ValueError("%s: the size line %r is not a decimal number" % (what, body[1]))
        self.size = int(body[1])
        try:
            self.root = base64.b64decode(body[2], validate=True)
        except ValueError:
            raise ValueError("%s: the root line is not base64" % what)
        if len(self.root) != 32:
            raise ValueError("%s: the root is %d bytes, not 32" % (what, len(self.root)))
        self.extensions = body[3:]

    def verify(self, pub_pem_path, key_id, problems):
        """One signature line by the audit key must verify (openssl)."""
        mine = []
        for line in self.sig_lines:
            if not line.startswith(EM_DASH + " "):
                problems.add("%s: malformed signature line %r" % (self.what, line[:60]))
                return False
            parts = line[2:].split(" ")
            if len(parts) != 2:
                problems.add("%s: malformed signature line %r" % (self.what, line[:60]))
                return False
            try:
                sig = base64.b64decode(parts[1], validate=True)
            except ValueError:
                problems.add("%s: the signature is not base64" % self.what)
                return False
            if parts[0] == self.origin and len(sig) > 4 and sig[:4] == key_id:
                mine.append(sig[4:])
        if not mine:
            problems.add("%s: no signature by the audit key (key name %s, key ID %s): signed by "
                         "another key, or its signature line was altered"
                         % (self.what, self.origin, key_id.hex()))
            return False
        with tempfile.TemporaryDirectory() as td:
            tf, sf = os.path.join(td, "text"), os.path.join(td, "sig")
            with open(tf, "wb") as f:
                f.write(self.text)
            for der in mine:
                with open(sf, "wb") as f:
                    f.write(der)
                r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub_pem_path,
                                    "-signature", sf, tf], capture_output=True)
                if r.returncode != 0:
                    problems.add("%s (size %d): the signature does not verify: the checkpoint's "
                                 "text (origin, size, root, time) or its signature was altered"
                                 % (self.what, self.size))
                    return False
        return True


def parse_witness_key(vkey):
    """NAME+KEYID+BASE64(0x04 || Ed25519 key) -> (name, key ID bytes, key)."""
    try:
        name, kid, key = vkey.strip().split("+", 2)
        raw = base64.b64decode(key, validate=True)
        kid_b = bytes.fromhex(kid)
    except ValueError:
        raise ValueError("--witness-key %r is not NAME+KEYID+BASE64" % vkey[:60])
    if len(raw) != 33 or raw[0] != SIG_TYPE_COSIGNATURE or len(kid_b) != 4:
        raise ValueError("--witness-key %s is not an Ed25519 cosignature key (type 0x04)" % name)
    if hashlib.sha256(name.encode() + b"\n" + raw[:1] + raw[1:]).digest()[:4] != kid_b:
        raise ValueError("--witness-key %s: the key ID does not match the name and key" % name)
    return name, kid_b, raw[1:]


def verify_cosignature(cp, name, kid, key, problems):
    """The witness's cosignature lines on checkpoint cp: at least one, all valid."""
    found = 0
    with tempfile.TemporaryDirectory() as td:
        pem = os.path.join(td, "w.pem")
        with open(pem, "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n"
                    % base64.b64encode(ED25519_SPKI_PREFIX + key).decode())
        for line in cp.sig_lines:
            parts = line[2:].split(" ")
            if len(parts) != 2 or parts[0] != name:
                continue
            try:
                sig = base64.b64decode(parts[1], validate=True)
            except ValueError:
                problems.add("%s: a signature line of %s is not base64" % (cp.what, name))
                return False
            if sig[:4] != kid:
                continue
            found += 1
            if len(sig) != 4 + 8 + 64:
                problems.add("%s: the cosignature by %s is not a timestamped Ed25519 one" % (cp.what, name))
                return False
            t = int.from_bytes(sig[4:12], "big")
            mf, sf = os.path.join(td, "msg"), os.path.join(td, "sig")
            with open(mf, "wb") as f:
                f.write(b"cosignature/v1\ntime %d\n" % t + cp.text)
            with open(sf, "wb") as f:
                f.write(sig[12:])
            r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin",
                                "-in", mf, "-sigfile", sf], capture_output=True)
            if r.returncode != 0:
                problems.add("%s (size %d): the cosignature by %s does not verify: the checkpoint or "
                             "the cosignature was altered" % (cp.what, cp.size, name))
                return False
    if not found:
        problems.add("%s carries no cosignature by %s (key ID %s)" % (cp.what, name, kid.hex()))
        return False
    return True


def seq_later(f, seq):
    """Does a later line of f hold entry seq?  (Tells a reordering from a
    drop; reads the rest of the file.)"""
    for raw in f:
        try:
            if json.loads(raw)["seq"] == seq:
                return True
        except (ValueError, KeyError, TypeError):
            pass
    return False


def b64d(s):
    return base64.b64decode(s, validate=True)


# ---------------------------------------------------------------- the check

def check(args):
    P = Problems()
    d = args.dir

    def path(name):
        return os.path.join(d, name)

    for name in ("events.jsonl", "checkpoint", "proofs.json"):
        if not os.path.isfile(path(name)):
            P.add("%s is missing from the export" % name)
    if P.items:
        return P
    if args.pubkey:
        pub = args.pubkey
    else:
        pub = path("audit-pub.pem")
        print("warning: using the public key inside the export; pass --pubkey with the key "
              "you obtained from keyward yourself", file=sys.stderr)
    try:
        der = pem_to_der(open(pub).read())
    except (OSError, ValueError) as e:
        P.add("audit public key %s: %s" % (pub, e))
        return P
    key_id = hashlib.sha256(der).digest()[:4]

    try:
        top = Checkpoint(path("checkpoint"), "checkpoint")
    except ValueError as e:
        P.add(str(e))
        return P
    top.verify(pub, key_id, P)

    try:
        proofs = json.load(open(path("proofs.json")))
        first_seq = int(proofs["first_seq"])
        tree_size = int(proofs["tree_size"])
        prefix = proofs["prefix"]
        prefix_hashes = [b64d(h) for h in prefix["subtrees"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        P.add("proofs.json is malformed: %s" % e)
        return P
    if tree_size != top.size:
        P.add("proofs.json describes a tree of %d entries but the checkpoint has %d"
              % (tree_size, top.size))
    if int(prefix["size"]) != first_seq - 1:
        P.add("proofs.json: the prefix covers %d entries but the events start at %d"
              % (int(prefix["size"]), first_seq))
        return P
    try:
        fr = Frontier(first_seq - 1, prefix_hashes)
    except ValueError as e:
        P.add("proofs.json: %s" % e)
        return P

    old = None
    if args.old_checkpoint:
        try:
            old = Checkpoint(args.old_checkpoint, "old checkpoint")
        except (OSError, ValueError) as e:
            P.add(str(e))
            old = None
        if old:
            if old.origin != top.origin:
                P.add("old checkpoint is from log %s, the export from %s" % (old.origin, top.origin))
            old.verify(pub, key_id, P)
    old_root_seen = None
    if old and old.size == first_seq - 1:
        old_root_seen = fr.root()

    # Every event: sequence, order, leaf hash into the tree.
    leaves = {}
    want = set()
    for inc in proofs.get("inclusion", []):
        want.add(int(inc["seq"]))
    expected = first_seq
    prev_time = None
    stop = False
    with open(path("events.jsonl"), "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                P.add("events.jsonl line %d is cut off (no newline)" % lineno)
                stop = True
                break
            line = raw[:-1]
            try:
                ev = json.loads(line.decode("ascii"))
                seq = ev["seq"]
                t = ev["time"]
                if not isinstance(seq, int) or not isinstance(t, str):
                    raise ValueError("seq or time has the wrong type")
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                P.add("events.jsonl line %d (entry %d) is not a keyward event: %s" % (lineno, expected, e))
                stop = True
                break
            if seq != expected:
                later = seq > expected and seq_later(f, expected)
                if later:
                    P.add("events.jsonl line %d holds entry %d where entry %d belongs (entry %d "
                          "comes later): events were reordered" % (lineno, seq, expected, expected))
                elif seq > expected:
                    P.add("entry %d is missing: events.jsonl line %d holds entry %d "
                          "(the sequence jumps from %d to %d: events were dropped)"
                          % (expected, lineno, seq, expected - 1, seq))
                else:
                    P.add("events.jsonl line %d holds entry %d where entry %d belongs: events "
                          "were reordered or duplicated" % (lineno, seq, expected))
                stop = True
                break
            if prev_time is not None and t < prev_time:
                P.add("entry %d: its time %s is earlier than entry %d's %s (events reordered or "
                      "rewritten)" % (seq, t, seq - 1, prev_time))
                stop = True
                break
            prev_time = t
            lh = leaf_hash(line)
            if seq in want:
                leaves[seq] = lh
            fr.append(lh)
            expected += 1
            if old and fr.size == old.size:
                old_root_seen = fr.root()
    if not stop and expected - 1 != tree_size:
        if expected - 1 < tree_size:
            P.add("entries %d..%d are missing: events.jsonl ends at entry %d but the checkpoint "
                  "covers %d (the export was truncated)" % (expected, tree_size, expected - 1, tree_size))
        else:
            P.add("events.jsonl holds %d entries beyond the checkpoint's %d (events were added)"
                  % (expected - 1 - tree_size, tree_size))
        stop = True
    if not stop and fr.root() != top.root:
        P.add("the events do not reproduce the checkpoint's root at size %d: an event was "
              "changed (or the prefix hashes or the checkpoint's root were altered)" % top.size)

    # The start checkpoint and its consistency proof to the newest.
    cons = {}
    for c in proofs.get("consistency", []):
        try:
            if int(c["second"]) != top.size:
                raise ValueError("proves to size %s, not %d" % (c["second"], top.size))
            cons[int(c["first"])] = [b64d(h) for h in c["proof"]]
        except (ValueError, KeyError, TypeError) as e:
            P.add("proofs.json: a consistency proof is malformed: %s" % e)
    if os.path.isfile(path("checkpoint.start")):
        try:
            start = Checkpoint(path("checkpoint.start"), "start checkpoint")
        except ValueError as e:
            P.add(str(e))
            start = None
        if start:
            start.verify(pub, key_id, P)
            if start.size not in cons:
                P.add("proofs.json has no consistency proof from the start checkpoint (size %d)"
                      % start.size)
            elif not verify_consistency(start.size, top.size, start.root, top.root, cons[start.size]):
                P.add("the start checkpoint (size %d) is not consistent with the checkpoint at size "
                      "%d: the log's history was rewritten in between" % (start.size, top.size))

    # The checkpoint a witness cosigned, and its consistency proof.
    witnessed = None
    if os.path.isfile(path("checkpoint.witnessed")):
        try:
            witnessed = Checkpoint(path("checkpoint.witnessed"), "witnessed checkpoint")
        except ValueError as e:
            P.add(str(e))
        if witnessed:
            witnessed.verify(pub, key_id, P)
            if witnessed.origin != top.origin:
                P.add("witnessed checkpoint is from log %s, the export from %s"
                      % (witnessed.origin, top.origin))
            if witnessed.size > top.size:
                P.add("witnessed checkpoint (size %d) is newer than the export's checkpoint (size %d)"
                      % (witnessed.size, top.size))
            elif witnessed.size not in cons:
                P.add("proofs.json has no consistency proof from the witnessed checkpoint (size %d)"
                      % witnessed.size)
            elif not verify_consistency(witnessed.size, top.size, witnessed.root, top.root,
                                        cons[witnessed.size]):
                P.add("the witnessed checkpoint (size %d) is not consistent with the checkpoint at "
                      "size %d: the log's history was rewritten after the witness saw it"
                      % (witnessed.size, top.size))
            for vk in args.witness_key or []:
                try:
                    verify_cosignature(witnessed, *parse_witness_key(vk), P)
                except ValueError as e:
                    P.add(str(e))
            if not args.witness_key:
                print("warning: checkpoint.witnessed has %d signature line(s) besides the audit "
                      "key's; pass --witness-key to check the witness's cosignature"
                      % (len(witnessed.sig_lines) - 1), file=sys.stderr)
    elif args.witness_key:
        P.add("--witness-key given, but the export has no checkpoint.witnessed (no witness "
              "cosigned a checkpoint at or below size %d)" % top.size)

    # Inclusion proofs.
    for inc in proofs.get("inclusion", []):
        try:
            seq = int(inc["seq"])
            pr = [b64d(h) for h in inc["proof"]]
            lh = b64d(inc["leaf_hash"])
        except (ValueError, KeyError, TypeError) as e:
            P.add("proofs.json: an inclusion proof is malformed: %s" % e)
            continue
        if seq in leaves and leaves[seq] != lh:
            P.add("entry %d: its text does not hash to the leaf its inclusion proof proves" % seq)
        elif not verify_inclusion(lh, seq - 1, top.size, pr, top.root):
            P.add("entry %d: its inclusion proof does not verify against the checkpoint's root" % seq)

    # The auditor's own older checkpoint.
    if old:
        if old.size > top.size:
            P.add("old checkpoint (size %d) is newer than the export's checkpoint (size %d): the "
                  "log was truncated, or the export is stale" % (old.size, top.size))
        elif old.size >= first_seq - 1:
            if old_root_seen is None and not stop:
                old_root_seen = fr.root() if fr.size == old.size else None
            if old_root_seen is None:
                P.add("old checkpoint (size %d) could not be compared: the events are damaged" % old.size)
            elif old_root_seen != old.root:
                P.add("old checkpoint (size %d) is not consistent with the export: the log's "
                      "history up to entry %d was rewritten since that checkpoint (a fork)"
                      % (old.size, old.size))
        elif old.size not in cons:
            P.add("old checkpoint (size %d) lies before the exported range (from entry %d) and the "
                  "export has no consistency proof from it: export again with --from-size %d"
                  % (old.size, first_seq, old.size))
        elif not verify_consistency(old.size, top.size, old.root, top.root, cons[old.size]):
            P.add("old checkpoint (size %d) is not consistent with the export's checkpoint (size "
                  "%d): the log's history was rewritten since that checkpoint (a fork)"
                  % (old.size, top.size))
    if not P.items:
        print("ok: %s, entries %d..%d, checkpoint size %d, root %s%s%s"
              % (top.origin, first_seq, top.size, top.size, base64.b64encode(top.root).decode(),
                 ", consistent with the old checkpoint at size %d" % old.size if old else "",
                 ", cosigned at size %d by %s" % (witnessed.size, ", ".join(
                     parse_witness_key(v)[0] for v in args.witness_key))
                 if witnessed and args.witness_key else ""))
    return P


def main():
    ap = argparse.ArgumentParser(description="Check a keyward audit export offline.")
    ap.add_argument("dir", help="the directory `keyward audit export` wrote")
    ap.add_argument("--pubkey", help="the audit public key (PEM) you trust")
    ap.add_argument("--old-checkpoint", metavar="FILE",
                    help="a checkpoint you kept earlier: the export must be consistent with it")
    ap.add_argument("--witness-key", metavar="VKEY", action="append",
                    help="a witness's verifier key (NAME+KEYID+BASE64): checkpoint.witnessed "
                         "must carry its valid cosignature (repeatable)")
    args = ap.parse_args()
    problems = check(args)
    for p in problems.items:
        print("FAILED: " + p)
    sys.exit(1 if problems.items else 0)


if __name__ == "__main__":
    main()
