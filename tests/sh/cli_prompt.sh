#!/usr/bin/env bash
# cli_prompt.sh — the PIN prompt on a real terminal (a pty): echo is off
# while a secret is typed, two different answers are refused, and SIGINT
# during the prompt ends keyward with the terminal's echo restored.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup

KW_ME=$(id -un) python3 - "$KEYWARD_BIN" "$CONF" <<'EOF'
import os, pty, signal, sys, termios, time

keyward, conf = sys.argv[1], sys.argv[2]

def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)

def start():
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(keyward, [keyward, "init", "--softhsm2-conf", conf])
    return pid, fd

def read_until(fd, text, out, limit=10.0):
    """Read from the pty until `text` shows; wait for a condition, not a guess."""
    end = time.time() + limit
    while text not in out:
        if time.time() > end:
            fail("no %r on the terminal; got %r" % (text, out))
        try:
            out += os.read(fd, 1024)
        except OSError:
            break
    return out

def echo_on(fd):
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)

def finish(pid, fd, out):
    try:
        while True:
            d = os.read(fd, 1024)
            if not d:
                break
            out += d
    except OSError:
        pass
    return os.waitpid(pid, 0)[1], out

print("== echo off while typing; different answers refused")
pid, fd = start()
out = read_until(fd, b"New user PIN: ", b"")
if echo_on(fd):
    fail("echo is on during the PIN prompt")
os.write(fd, b"first-secret-1\n")
out = read_until(fd, b"(again): ", out)
os.write(fd, b"second-secret-2\n")
status, out = finish(pid, fd, out)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 2:
    fail("mismatched PINs: status %r" % status)
if b"the two answers differ" not in out:
    fail("no mismatch message: %r" % out)
if b"secret" in out:
    fail("a typed PIN was echoed: %r" % out)

print("== SIGINT at the prompt restores echo")
pid, fd = start()
out = read_until(fd, b"New user PIN: ", b"")
if echo_on(fd):
    fail("echo is on during the PIN prompt")
os.kill(pid, signal.SIGINT)
status, out = finish(pid, fd, out)
if not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGINT:
    fail("keyward did not end by SIGINT: status %r" % status)
if not echo_on(fd):
    fail("echo left off after SIGINT")

print("== a full interactive init: user PIN and SO PIN, each twice")
pid, fd = start()
out = b""
for prompt, answer in [(b"New user PIN: ", b"1234-user"), (b"New user PIN (again): ", b"1234-user"),
                       (b"its SO PIN: ", b"5678-so"), (b"its SO PIN (again): ", b"5678-so")]:
    out = read_until(fd, prompt, out)
    if echo_on(fd):
        fail("echo is on at %r" % prompt)
    os.write(fd, answer + b"\n")
status, out = finish(pid, fd, out)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("interactive init: status %r, output %r" % (status, out))
if b"1234-user" in out or b"5678-so" in out:
    fail("a PIN was echoed: %r" % out)

print("== step-up on a terminal: your passphrase, then the new user's twice")
env = dict(os.environ, KEYWARD_PIN="1234-user")
env.pop("KEYWARD_PASSPHRASE", None)
me = os.environ["KW_ME"]
pid, fd = pty.fork()
if pid == 0:
    os.execve(keyward, [keyward, "user", "add", "bob", "--role", "approver"], env)
out = b""
for prompt, answer in [(("Passphrase for %s: " % me).encode(), b"keyward-demo"),
                       (b"New passphrase for bob: ", b"bobs-first-1"),
                       (b"New passphrase for bob (again): ", b"bobs-first-1")]:
    out = read_until(fd, prompt, out)
    if echo_on(fd):
        fail("echo is on at %r" % prompt)
    os.write(fd, answer + b"\n")
status, out = finish(pid, fd, out)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("user add with step-up: status %r, output %r" % (status, out))
if b"keyward-demo" in out or b"bobs-first" in out:
    fail("a passphrase was echoed: %r" % out)
EOF
[ -f "$KEYWARD_HOME/config.json" ] || fail "interactive init wrote no config.json"
KEYWARD_PIN=1234-user ok status --json
jeq "$OUT" 'd["roles"]' admin
echo "cli_prompt: ok"
