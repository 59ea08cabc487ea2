#!/usr/bin/env bash
# console_controls.sh — key names and tag values planted in the catalogue
# with the sqlite3 shell reach the console's pane only in escaped form:
# an SGR colour, an OSC window title, C1 CSI/OSC as UTF-8, a raw 0x9B byte,
# a bidi override and LF/TAB show as \x1b, \u009b, \x9b, \u202e, \x0a ...;
# the pane (captured with its escapes, -e) carries none of their effects:
# no planted colour, no changed title, no C1 or bidi character, nothing
# that is not UTF-8.  Checked on the keys list and on the detail pane.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home

# name suffix (bytes) -> how the console must show it
P=(
	$'\e[38;2;1;2;3mRED'
	$'\e]2;PWNED\a'
	$'\xc2\x9b2J'
	$'\x9b38;2;4;5;6m'
	$'\xe2\x80\xaeabc'
	$'n\nt\t'
)
X=(
	'\x1b[38;2;1;2;3mRED'
	'\x1b]2;PWNED\x07'
	'\u009b2J'
	'\x9b38;2;4;5;6m'
	'\u202eabc'
	'n\x0at\x09'
)
N=${#P[@]}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
sqltext() { printf "CAST(X'%s' AS TEXT)" "$(hex "$1")"; }

step "plant names and tag values"
{
	echo "BEGIN;"
	for ((i = 0; i < N; i++)); do
		echo "INSERT INTO keys(name, created, created_by) VALUES($(sqltext "aa$i/${P[i]}"), 1767225600, 'planted');"
		echo "INSERT INTO key_tags(key_id, tag, value) SELECT id, 't$i', $(sqltext "${P[i]}") FROM keys WHERE name = $(sqltext "aa0/${P[0]}");"
	done
	echo "COMMIT;"
} >"$KW_TMP/plant.sql"
sqlite3 "$KW_DB" <"$KW_TMP/plant.sql" || fail "sqlite3 could not plant the names"

# pane_clean: the pane with its escapes carries nothing planted.
pane_clean() {
	local f=$KW_TMP/pane
	screen -e >"$f"
	# tmux writes the attributes of what it shows as SGR sequences: a planted
	# colour that took effect would be among them
	LC_ALL=C grep -qaP '\x1b\[[0-9;:]*38[;:]2[;:]+1[;:]2[;:]3' "$f" &&
		fail "the planted SGR colour reached the terminal"
	LC_ALL=C grep -qaP '\x1b\[[0-9;:]*38[;:]2[;:]+4[;:]5[;:]6' "$f" &&
		fail "the planted 8-bit CSI colour reached the terminal"
	LC_ALL=C grep -qaP '\xc2[\x80-\x9f]' "$f" && fail "a C1 control reached the pane"
	LC_ALL=C grep -qaP '\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]' "$f" &&
		fail "a bidi control reached the pane"
	python3 -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$f" 2>/dev/null ||
		fail "the pane holds bytes that are not UTF-8"
	local title
	title=$(tmux -L "$KW_TMUX_SOCK" display-message -p -t kw '#{pane_title}')
	case $title in *PWNED*) fail "the planted OSC set the window title to \"$title\"" ;; esac
	return 0
}

tmux_start "$KEYWARD_BIN"
wait_for "features/credit-risk"

step "keys list: nothing planted in effect, every planted name escaped"
wait_for "aa$((N - 1))/"
pane_clean
for ((i = 0; i < N; i++)); do
	screen | grep -qF "aa$i/${X[i]}" || fail "aa$i/ is not shown as aa$i/${X[i]}"
done
# the row of each planted key still starts at the list's left edge
for ((i = 0; i < N; i++)); do
	screen | grep -qE "^.{1,3}aa$i/" || fail "the row of aa$i/ moved: a planted byte shifted the layout"
done
echo "$N planted names escaped; no colour, title, C1, bidi or invalid byte reached the pane"

step "detail pane: title and tags escaped"
keys g
keys Enter
wait_for "Versions"
wait_for " aa0/${X[0]} "
wait_for "t1=${X[1]}"
screen | grep -qF "t2=${X[2]}" || fail "tag t2 not shown escaped"
pane_clean
echo "the detail pane shows the planted name and tags escaped"

keys q
wait_gone "Versions"
keys q q
wait_for "[exited 0]"
echo PASS
