#!/usr/bin/env bash
# console_theme.sh — a malformed theme gives a message naming the file and
# the problem, and the console still opens (on the default theme): a broken
# default.json found through KEYWARD_THEMES_DIR, and --theme NAME with a
# broken NAME.json.  A good theme loads silently; :theme switches.  Without
# KEYWARD_THEMES_DIR the binary finds the themes beside it (build/keyward ->
# themes/), and a themes/ directory in the current directory is never read.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
themes=$KW_TMP/badthemes
mkdir -p "$themes"
printf '{"elements": {"title": {"fg": "purple"}}}\n' >"$themes/default.json"
printf '{"elements": {"title": \n' >"$themes/broken.json"
# run outside the repo; KW_TMP/themes holds planted files that must never load
export KW_CWD=$KW_TMP
mkdir -p "$KW_TMP/themes"
printf '{"elements": {"title": {"fg": "planted-in-cwd"}}}\n' >"$KW_TMP/themes/light.json"

step "broken default.json via KEYWARD_THEMES_DIR"
tmux_start KEYWARD_THEMES_DIR="$themes" -- "$KEYWARD_BIN"
wait_for "features/credit-risk"
wait_for "default.json: element \"title\": fg is not a colour"
screen | grep -qF "$themes/default.json" || fail "the message does not name the file"
screen | grep -qF "using the default theme" || fail "the message does not say what happens"
keys j
wait_gone "default.json"
keys Q
wait_for "[exited 0]"
tmux_stop
echo "message names $themes/default.json; console open"

step "--theme broken"
tmux_start KEYWARD_THEMES_DIR="$themes" -- "$KEYWARD_BIN" console --theme broken
wait_for "features/credit-risk"
wait_for "broken.json: line"
keys Q
wait_for "[exited 0]"
tmux_stop
echo "message names broken.json; console open"

step "a good theme loads without a message; :theme switches"
tmux_start "$KEYWARD_BIN" console --theme light
wait_for "features/credit-risk"
screen | tail -n1 | grep -q "theme" && fail "unexpected theme message: $(screen | tail -n1)"
keys :
keys -l "theme high-contrast"
keys Enter
wait_for "theme high-contrast"
keys :
keys -l "theme nosuch"
keys Enter
wait_for 'theme "nosuch" not found'
keys Q
wait_for "[exited 0]"
tmux_stop

step "no KEYWARD_THEMES_DIR: the themes beside the binary, not ./themes"
tmux_start KEYWARD_THEMES_DIR= -- "$KEYWARD_BIN" console --theme light
wait_for "features/credit-risk"
screen | grep -q "planted-in-cwd" && fail "a theme was read from the current directory"
screen | tail -n1 | grep -q "theme" && fail "unexpected theme message: $(screen | tail -n1)"
keys :
keys -l "theme high-contrast"
keys Enter
wait_for "theme high-contrast"
echo PASS
