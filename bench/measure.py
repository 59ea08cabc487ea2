#!/usr/bin/env python3
"""Run a command, print wall seconds, the CPU seconds (user + system) and
peak RSS (KiB) of the command and every descendant it waited for, as JSON.

Used by bench/run.sh so every figure (ours and the peers') is measured the
same way.  stdin/stdout of the command can be redirected with --in/--out.

The command runs under /usr/bin/time (Debian's `time`), which reports its
child's peak RSS.  Asking the kernel from here would not do: a process
started by this interpreter carries the interpreter's own peak RSS (about
14 MiB) as its floor, because Linux counts the memory a task had before
exec.  CPU comes from wait4 on the time process (its own share is a
millisecond), not from getrusage(RUSAGE_CHILDREN), which also counts what
this interpreter's launcher (a version-manager shim) waited for before it
exec'd python.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


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
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"measure.py: {GNU_TIME} is missing (apt-get install time)")
    with tempfile.NamedTemporaryFile("r", prefix="kwmeasure.") as rss_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen([GNU_TIME, "-q", "-f", "%M", "-o", rss_file.name, *args],
                                stdin=stdin, stdout=stdout)
        _, status, ru = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        lines = rss_file.read().split()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    print(json.dumps({"seconds": dt, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_kib": rss, "rc": rc}))
    sys.exit(rc)


if __name__ == "__main__":
    main()
