#!/usr/bin/env python3
"""Run a command, print wall seconds and the child's peak RSS (KiB) as JSON.

Used by bench/run.sh so every figure (ours and the peers') is measured the
same way.  stdin/stdout of the command can be redirected with --in/--out.
"""
import json
import resource
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    stdin = stdout = None
    while args and args[0] in ("--in", "--out"):
        flag, path = args[0], args[1]
        args = args[2:]
        if flag == "--in":
            stdin = open(path, "rb")
        else:
            stdout = open(path, "wb")
    t0 = time.perf_counter()
    proc = subprocess.run(args, stdin=stdin, stdout=stdout)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": dt, "rss_kib": rss, "rc": proc.returncode}))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
