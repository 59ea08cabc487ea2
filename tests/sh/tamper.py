#!/usr/bin/env python3
"""tamper.py — attacks on a keyward catalogue by someone who can write the
SQLite file but cannot use the HSM.  Test code only.

  tamper.py DB rewrite K ACTOR   rewrite event K's actor, then make every
                                 stored hash agree with the rewritten log:
                                 leaf hash, tree heads >= K deleted, frontier
                                 and stored nodes rebuilt from the leaves
  tamper.py DB truncate H        cut the log exactly at its signed head of
                                 size H, with heads, frontier and nodes to match

RFC 6962 hashing: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || l || r).
"""
import hashlib
import json
import sqlite3
import sys


def leaf_hash(b):
    return hashlib.sha256(b"\x00" + b).digest()


def node_hash(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def rebuild(db):
    """Frontier and stored perfect-subtree nodes from the stored leaf hashes."""
    leaves = [bytes(r[0]) for r in db.execute("SELECT leaf_hash FROM audit_events ORDER BY seq")]
    frontier = {}
    nodes = []
    for i, h in enumerate(leaves):
        level, carry = 0, h
        while (i >> level) & 1:
            carry = node_hash(frontier.pop(level), carry)
            level += 1
            nodes.append((level, (i + 1) // (1 << level) - 1, carry))
        frontier[level] = carry
    db.execute("DELETE FROM audit_frontier")
    for level, h in frontier.items():
        db.execute("INSERT INTO audit_frontier(level, hash) VALUES(?, ?)", (level, h))
    if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_nodes'").fetchone()[0]:
        db.execute("DELETE FROM audit_nodes")
        db.executemany("INSERT INTO audit_nodes(level, idx, hash) VALUES(?, ?, ?)", nodes)


def rewrite(db, k, actor):
    (text,) = db.execute("SELECT json FROM audit_events WHERE seq = ?", (k,)).fetchone()
    ev = json.loads(text)
    ev["actor"] = actor
    new = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    db.execute("UPDATE audit_events SET json = ?, leaf_hash = ? WHERE seq = ?",
               (new, leaf_hash(new.encode()), k))
    db.execute("DELETE FROM audit_tree_heads WHERE size >= ?", (k,))
    rebuild(db)


def truncate(db, h):
    if not db.execute("SELECT count(*) FROM audit_tree_heads WHERE size = ?", (h,)).fetchone()[0]:
        sys.exit("no signed head of size %d" % h)
    db.execute("DELETE FROM audit_events WHERE seq > ?", (h,))
    db.execute("DELETE FROM audit_tree_heads WHERE size > ?", (h,))
    rebuild(db)


def main():
    db = sqlite3.connect(sys.argv[1])
    if sys.argv[2] == "rewrite":
        rewrite(db, int(sys.argv[3]), sys.argv[4])
    elif sys.argv[2] == "truncate":
        truncate(db, int(sys.argv[3]))
    else:
        sys.exit("unknown attack " + sys.argv[2])
    db.commit()


if __name__ == "__main__":
    main()
