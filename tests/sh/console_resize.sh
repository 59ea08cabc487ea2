#!/usr/bin/env bash
# console_resize.sh — below 80x24 the console says how big it must be and
# how big it is; growing the window back restores the screen.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "shrink to 60x20"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 60 -y 20
wait_for "Terminal too small: 60x20"
screen | grep -qF "at least 80x24" || fail "the size message does not say the size needed"
screen | grep -qF "features/credit-risk" && fail "the key list is drawn into a too-small window"
echo "size message shown"

step "grow back to 120x40"
tmux -L "$KW_TMUX_SOCK" resize-window -t kw -x 120 -y 40
wait_for "features/credit-risk"
wait_gone "Terminal too small"
screen | grep -qF "HSM keyward: logged in" || fail "status bar not restored"
echo "screen restored"

step "keys still work after the resize"
keys 2
wait_for "newest first"
keys q
wait_for "features/credit-risk"
keys q
wait_for "[exited 0]"
echo PASS
