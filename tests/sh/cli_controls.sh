#!/usr/bin/env bash
# cli_controls.sh — text planted in the catalogue with the sqlite3 shell
# (as someone with write access to the database file could) never reaches
# the terminal raw: ESC and CSI/OSC sequences, C1 controls as UTF-8, a raw
# 0x9B byte, bidi overrides and isolates, LF/TAB, DEL, overlong forms,
# surrogates and truncated sequences in key names, tag values, asset names,
# versions, creators and audit events.  `key show/list`, `asset show/list`,
# `user list`, `audit tail/show`, the create/tag/rotate confirmations and
# the error messages print each one in its escaped form (core/text.h), and
# --json carries them as \u escapes (pure ASCII).  At input, `key tag` and
# `key create --tag` refuse such values and name the character and byte.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo

# One payload per class, and how it must look once escaped.
P=(
	$'\e[38;2;1;2;3m'          # SGR: would colour the terminal
	$'\e]2;PWNED\a'            # OSC: would set the window title
	$'\xc2\x9b2J'              # U+009B CSI as UTF-8: would clear the screen
	$'\xc2\x9d0;PWNED2\a'      # U+009D OSC as UTF-8
	$'\x9b31m'                 # a raw 0x9B byte (not UTF-8): CSI to an 8-bit terminal
	$'\xe2\x80\xaegpj.exe'     # U+202E RIGHT-TO-LEFT OVERRIDE
	$'\xe2\x81\xa6x'           # U+2066 LEFT-TO-RIGHT ISOLATE
	$'a\xe2\x80\x8fb'          # U+200F RIGHT-TO-LEFT MARK
	$'a\nb\tc'                 # LF and TAB
	$'d\x7f'                   # DEL
	$'o\xc0\xaf'               # overlong '/'
	$'s\xed\xa0\x80'           # a surrogate
	$'t\xe6\x97'               # a truncated sequence
	'b\u202e'                  # typed text that looks like an escape
)
X=(
	'\x1b[38;2;1;2;3m'
	'\x1b]2;PWNED\x07'
	'\u009b2J'
	'\u009d0;PWNED2\x07'
	'\x9b31m'
	'\u202egpj.exe'
	'\u2066x'
	'a\u200fb'
	'a\x0ab\x09c'
	'd\x7f'
	'o\xc0\xaf'
	's\xed\xa0\x80'
	't\xe6\x97'
	'b\\u202e'
)
N=${#P[@]}
[ "${#X[@]}" = "$N" ] || fail "payload table out of step"

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
# SQL text literal holding exactly the payload's bytes
sqltext() { printf "CAST(X'%s' AS TEXT)" "$(hex "$1")"; }

# no_raw FILE: none of the bytes a terminal acts on (LF aside), and UTF-8.
no_raw() {
	local f=$1 what
	what=$(basename "$1")
	if LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f]' "$f"; then
		echo "--- od of the offending lines:" >&2
		LC_ALL=C grep -aP '[\x00-\x09\x0b-\x1f\x7f]' "$f" | head -n 3 | od -c | head -n 20 >&2
		fail "$what holds a raw C0 control or DEL"
	fi
	LC_ALL=C grep -qaP '\xc2[\x80-\x9f]' "$f" && fail "$what holds a raw C1 control"
	LC_ALL=C grep -qaP '\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]|\xd8\x9c' "$f" &&
		fail "$what holds a raw bidi control or line separator"
	python3 -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$f" 2>/dev/null ||
		fail "$what is not UTF-8: a raw byte such as 0x9B got through"
	return 0
}

# ascii_json FILE: JSON output is printable ASCII and newlines only.
ascii_json() {
	LC_ALL=C grep -qaP '[^\x20-\x7e\n]' "$1" && fail "$(basename "$1"): JSON output is not pure ASCII"
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" || fail "$(basename "$1"): not JSON"
}

# has_all FILE PREFIX: every escaped payload appears after PREFIX.
has_all() {
	local i
	for ((i = 0; i < N; i++)); do
		has "$1" "$2$i-${X[i]}"
	done
}

step "plant every class in key names, tag values, assets, creators, users, audit"
{
	echo "BEGIN;"
	for ((i = 0; i < N; i++)); do
		echo "INSERT INTO keys(name, created, created_by) VALUES($(sqltext "planted/$i-${P[i]}"), 1767225600, 'planted');"
		echo "INSERT INTO key_tags(key_id, tag, value) SELECT id, 'p$i', $(sqltext "$i-${P[i]}") FROM keys WHERE name = 'features/credit-risk';"
		echo "UPDATE assets SET name = $(sqltext "n$i-${P[i]}") WHERE id = $((i + 1));"
		echo "UPDATE assets SET version = $(sqltext "v$i-${P[i]}") WHERE id = $((i + 1 + N));"
	done
	echo "UPDATE keys SET created_by = $(sqltext "${P[1]}") WHERE name = 'features/credit-risk';"
	echo "UPDATE assets SET created_by = $(sqltext "${P[2]}") WHERE id = 1;"
	echo "UPDATE users SET created_by = $(sqltext "${P[0]}${P[4]}") WHERE name = 'dave';"
	# the stored event stays JSON (SQLite's generated columns parse it): ESC,
	# BEL and U+009B as JSON escapes, which decode to the raw characters,
	# and a raw 0x9B byte
	echo "UPDATE audit_events SET json = replace(json, '\"ok\"', '\"ok\\u001b]2;PWNED\\u0007\\u009b' || CAST(X'9b' AS TEXT) || '\"') WHERE seq = 3;"
	echo "COMMIT;"
} >"$W/plant.sql"
sqlite3 "$DB" <"$W/plant.sql" || fail "sqlite3 could not plant the payloads"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM keys WHERE name LIKE 'planted/%'")" = "$N" ] ||
	fail "the planted keys are not all there"
LC_ALL=C grep -qaF "$(printf '\x9b31m')" <(sqlite3 "$DB" "SELECT name FROM keys") ||
	fail "the raw 0x9B byte did not make it into the database"

step "key list: every planted name and tag escaped"
ok key list
no_raw "$OUT"
has_all "$OUT" "planted/"
for ((i = 0; i < N; i++)); do has "$OUT" "p$i=$i-${X[i]}"; done
[ "$(wc -l <"$OUT")" = "$(($(sqlite3 "$DB" 'SELECT count(*) FROM keys') + 1))" ] ||
	fail "key list: a planted line break split a row"
echo "$N classes escaped in names and tags"

step "key show: tags, creator, and each planted key by its name"
ok key show features/credit-risk
no_raw "$OUT"
has "$OUT" "created:    "
has "$OUT" "by ${X[1]}"
for ((i = 0; i < N; i++)); do has "$OUT" " p$i=$i-${X[i]}"; done
for ((i = 0; i < N; i++)); do
	ok key show "planted/$i-${P[i]}"
	no_raw "$OUT"
	has "$OUT" "key:        planted/$i-${X[i]}"
done
echo "key show cleans the name, the tags and the creator"

step "asset list / asset show: names, versions, creators"
ok asset list --limit 100
no_raw "$OUT"
has_all "$OUT" ":n"
has_all "$OUT" "@v"
has "$OUT" "${X[2]}"
for ((i = 0; i < N; i++)); do
	ok asset show $((i + 1))
	no_raw "$OUT"
	has "$OUT" ":n$i-${X[i]}"
done
ok asset show 1
has "$OUT" "by ${X[2]}"
ok asset show $((N + 1))
has "$OUT" "@v0-${X[0]}"
echo "asset names, versions and creators escaped"

step "confirmations of tag and rotate quote the planted tags escaped"
ok key tag features/credit-risk region=eu
no_raw "$OUT"
has "$OUT" "tagged features/credit-risk"
has "$OUT" "p1=1-${X[1]}"
ok key rotate features/credit-risk
no_raw "$OUT"
has "$OUT" "opened: rotate features/credit-risk"
ok request list
no_raw "$OUT"
has "$OUT" "rotate features/credit-risk"

step "user list, audit tail and audit show"
ok user list
no_raw "$OUT"
has "$OUT" "${X[0]}${X[4]}"
ok audit tail -n 1000
no_raw "$OUT"
has "$OUT" 'ok\x1b]2;PWNED\x07\u009b\x9b'
ok audit show 3
no_raw "$OUT"
has "$OUT" 'outcome:    ok\x1b]2;PWNED\x07\u009b\x9b'
has "$OUT" '"outcome":"ok\u001b]2;PWNED\u0007\u009b\x9b"' # JSON text: its own escapes

step "--json: faithful, and pure ASCII (C1 and bidi as \\u escapes, DEL too)"
ok key list --json
ascii_json "$OUT"
has "$OUT" '\u009B2J'
has "$OUT" '\u202Egpj.exe'
has "$OUT" 'd\u007F'
python3 - "$OUT" "$W/plant.sql" <<'EOF' || fail "key list --json does not carry the planted names"
import json, sys
keys = {k["name"]: k for k in json.load(open(sys.argv[1]))}
# every planted name that is UTF-8 comes back exactly; the others in escaped form
planted = [n for n in keys if n.startswith("planted/")]
assert len(planted) == 14, planted
assert "planted/5-\u202egpj.exe" in keys
assert "planted/2-\u009b2J" in keys
assert "planted/9-d\x7f" in keys
assert "planted/4-\\x9b31m" in keys, planted
assert keys["features/credit-risk"]["tags"]["p8"] == "8-a\nb\tc"
EOF
ok key show features/credit-risk --json
ascii_json "$OUT"
jeq "$OUT" 'd["tags"]["p6"] == "6-\u2066x"' true
jeq "$OUT" 'd["created_by"] == "\x1b]2;PWNED\x07"' true
ok asset show 5 --json
ascii_json "$OUT"
jeq "$OUT" 'd["name"]' 'n4-\x9b31m'
ok asset list --limit 100 --json
ascii_json "$OUT"
ok user list --json
ascii_json "$OUT"
ok audit show 3 --json
ascii_json "$OUT"
echo "JSON escapes every class"

step "error messages quote input escaped"
expect 3 key show $'nosuch\e]2;PWNED\a'
no_raw "$ERR"
has "$ERR" 'nosuch\x1b]2;PWNED\x07'
expect 2 key create $'bad\xc2\x9bname'
no_raw "$ERR"
has "$ERR" 'bad\u009bname'
expect 2 key $'\e[2J\x9b'
no_raw "$ERR"
has "$ERR" 'unknown subcommand "\x1b[2J\x9b"'
expect 2 key list --limit $'\xe2\x80\xae9'
no_raw "$ERR"
has "$ERR" '\u202e9'

step "input: tag values with controls are refused, naming the character and byte"
expect 2 key tag features/churn-propensity $'owner=a\xc2\x9bb'
has "$ERR" "tag 'owner': the value contains a control character U+009B at byte 2"
no_raw "$ERR"
expect 2 key tag features/churn-propensity $'owner=a\x9bb'
has "$ERR" "tag 'owner': the value is not valid UTF-8: byte 0x9B at byte 2"
expect 2 key tag features/churn-propensity $'owner=\xe2\x80\xaeevil'
has "$ERR" "tag 'owner': the value contains a bidirectional control U+202E at byte 1"
expect 2 key tag features/churn-propensity $'owner=\e]2;x\a'
has "$ERR" "tag 'owner': the value contains a control character U+001B at byte 1"
expect 2 key tag features/churn-propensity $'owner=a\tb'
has "$ERR" "U+0009 at byte 2"
ok key show features/churn-propensity --json
jeq "$OUT" 'd["tags"]["owner"]' growth-ml
expect 2 key create features/controls-new --tag $'x=\xc2\x9d0;t\a'
has "$ERR" "U+009D at byte 1"
expect 3 key show features/controls-new
ok key tag features/churn-propensity $'owner=\xe6\x97\xa5\xe6\x9c\xac-team' 'path=C:\data'
has "$OUT" $'owner=\xe6\x97\xa5\xe6\x9c\xac-team'
has "$OUT" 'path=C:\\data'
echo "refused at input; good UTF-8 accepted and shown as typed"

step "a terminal that is not UTF-8 (LC_ALL=C) gets ASCII only"
LC_ALL=C "$KEYWARD_BIN" key show features/churn-propensity >"$OUT" 2>"$ERR" || fail "key show in the C locale"
has "$OUT" 'owner=\u65e5\u672c-team'
LC_ALL=C "$KEYWARD_BIN" key list >"$OUT" 2>"$ERR" || fail "key list in the C locale"
has "$OUT" 'planted/5-\u202egpj.exe'
LC_ALL=C grep -qaP '[^\x20-\x7e\n]' "$OUT" && fail "non-ASCII output in the C locale"
echo PASS
