#!/usr/bin/env bash
# console_nocolor.sh — NO_COLOR=1 produces no colour escapes at all
# (capture-pane -e), while the default theme does (the check can fail).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# SGR colour parameters: 30-37, 38;..., 40-47, 48;..., 90-97, 100-107
colour_sgr='\x1b\[([0-9]*;)*(3[0-8]|4[0-8]|9[0-7]|10[0-7])(;[0-9]*)*m'

kw_demo_home

step "default theme: colour escapes present"
tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"
screen -e | grep -qP "$colour_sgr" || fail "no colour escapes with the default theme"
tmux_stop
echo "colour with the default theme"

step "NO_COLOR=1: none"
tmux_start NO_COLOR=1 -- "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys Enter
wait_for "Versions"
if screen -e | grep -qP "$colour_sgr"; then
	screen -e | grep -P "$colour_sgr" | head -3 | cat -v >&2
	fail "colour escapes with NO_COLOR=1"
fi
screen -e | grep -qP '\x1b\[[0-9;]*7m|\x1b\[[0-9;]*1m' || fail "mono theme shows no attributes at all"
echo "no colour escapes with NO_COLOR=1 (bold/reverse only)"
echo PASS
