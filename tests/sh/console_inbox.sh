#!/usr/bin/env bash
# console_inbox.sh — the approvals inbox, as the demo's approver carol: the
# status bar's badge counts what waits for her; the demo's half-approved
# emergency rotation shows what changes, its assets, the risk with its
# factors and bob's signature (whole at 80x24 too); a approves through the step-up dialog
# (passphrase typed there) and the quorum is met, as the CLI confirms;
# d rejects a rotation request with a reason, which the history then shows.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
emerg=$("$KEYWARD_BIN" request list --json | jq_py '[r["id"] for r in d if r["kind"]=="emergency-rotate"][0]')
key=$("$KEYWARD_BIN" request show "$emerg" --json | jq_py 'd["object"].split(":")[1].split("@")[0]')
n_inbox=$(KEYWARD_USER=carol "$KEYWARD_BIN" request list --inbox --json | jq_py 'len(d)')
[ "$n_inbox" -ge 1 ] || fail "carol has nothing to sign in the demo"

# the passphrase is typed in the console's dialog, not taken from the environment
tmux_start KEYWARD_USER=carol KEYWARD_PASSPHRASE= "$KEYWARD_BIN"
wait_for "features/credit-risk"
wait_for "$n_inbox to approve"
echo "badge: $n_inbox to approve"

step "the inbox shows what changes, assets, risk factors, signatures"
keys 4
wait_for "you may sign now"
screen | sed -n 2p | grep -qE "^ $n_inbox requests? you may sign now" || fail "count is not the CLI's $n_inbox"
keys /
keys -l "$key"
keys Enter
wait_for "emergency-rotate request ${emerg:0:12}"
for t in "What changes" "Affected assets: " "Risk high" "compromise" "sensitivity" "Signatures 1 of 2" \
	"bob        approved"; do
	screen | grep -qF "$t" || fail "the detail lacks \"$t\""
done
echo "detail complete"

step "at 80x24 the detail wraps: the digest and the reason read back whole"
digest=$("$KEYWARD_BIN" request show "$emerg" --json | jq_py 'd["digest"]')
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 80 -y 24
wait_for "│Risk high"
# the left half of the pane from the "Digest" line down, joined
got=$(screen | python3 -c '
import sys
out, on = "", False
for l in sys.stdin.read().split("\n"):
    if l[40:41] != "\u2502":  # the pane divider: below it, the status bar
        if on:
            break
        continue
    left = l[:40].strip()
    if left.startswith("Digest"):
        on = True; left = left[len("Digest"):].strip()
    elif on and not left:
        break
    if on:
        out += left
print(out)')
[ "$got" = "$digest" ] || fail "the digest at 80 columns reads back as '$got', not '$digest'"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 120 -y 40
wait_for "Signatures 1 of 2"
echo "digest whole at 80 columns"

step "approve: confirmation, then the passphrase in the step-up dialog"
keys a
wait_for "Approve request"
keys y
wait_for "Step-up"
keys -l keyward-demo
keys Enter
wait_for "approved ${emerg:0:12}: 2 of 2 signatures; quorum met"
st=$("$KEYWARD_BIN" request show "$emerg" --json | jq_py 'd["state"]')
[ "$st" = approved ] || fail "the CLI says the request is $st"
wait_gone "$n_inbox to approve"
echo "approved by carol; the CLI says approved"
keys Q
wait_for "[exited 0]"
tmux_stop

step "reject with a reason; the history shows it"
rid=$("$KEYWARD_BIN" key rotate features/fraud-signals --json | jq_py 'd["id"]')
tmux_start KEYWARD_USER=carol KEYWARD_PASSPHRASE= "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 4
wait_for "you may sign now"
keys /
keys -l fraud-signals
keys Enter
wait_for "rotate request ${rid:0:12}"
keys d
wait_for "Reject ${rid:0:12}"
keys Enter
wait_for "a rejection needs a reason"
keys -l "not during the quarter close"
keys Enter
screen | grep -qF "Step-up" && { keys -l keyward-demo; keys Enter; }
wait_for "rejected ${rid:0:12}: not during the quarter close"
st=$("$KEYWARD_BIN" request show "$rid" --json | jq_py 'd["state"]')
[ "$st" = rejected ] || fail "the CLI says the request is $st"
keys H
wait_for "decided request"
screen | grep -E "^ ${rid:0:12} " | grep -qF rejected || fail "history does not list the rejection"
screen | grep -qF "not during the quarter close" || fail "the reason is not shown"
echo "rejected; in the history with its reason"
keys Q
wait_for "[exited 0]"
echo PASS
