#!/usr/bin/env bash
# cli_protect.sh — protect / unprotect round trips through files and pipes
# at the segment boundaries (64 KiB segments) and several MiB; a tampered
# envelope to a file leaves no OUT; a truncated one to stdout exits 5; the
# asset catalogue (asset list / show).
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo
ok key create features/cli-protect

step "round trips: files and pipes"
for size in 0 1 65535 65536 65537 $((5 * 1024 * 1024)); do
	in=$W/plain.$size
	pattern "$in" "$size"
	# files: IN and OUT given
	ok protect --key features/cli-protect --asset "feature:cli/rt@$size" "$in" "$W/env.$size"
	has "$ERR" "protected feature:cli/rt@$size"
	[ -s "$W/env.$size" ] || fail "no envelope for $size bytes"
	ok unprotect "$W/env.$size" "$W/back.$size"
	cmp "$in" "$W/back.$size" || fail "file round trip of $size bytes differs"
	# pipes: stdin to stdout, both ways
	cat "$in" | "$KEYWARD_BIN" protect --key features/cli-protect --asset "dataset:cli/pipe@$size" 2>"$ERR" |
		cat >"$W/piped.$size" || fail "protect in a pipe, $size bytes"
	cat "$W/piped.$size" | "$KEYWARD_BIN" unprotect 2>"$ERR" | cmp - "$in" ||
		fail "pipe round trip of $size bytes differs"
	# "-" means stdin / stdout too
	"$KEYWARD_BIN" protect --key features/cli-protect --asset "model:cli/dash@$size" - - <"$in" >"$W/dash.$size" 2>"$ERR" ||
		fail "protect - - of $size bytes"
	"$KEYWARD_BIN" unprotect - <"$W/dash.$size" 2>"$ERR" | cmp - "$in" || fail "unprotect - of $size bytes differs"
done
[ "$(stat -c %s "$W/env.0")" -gt 0 ] || fail "empty plaintext gave an empty envelope"

step "--json reports the asset when OUT is a file"
ok protect --key features/cli-protect --asset feature:cli/json@1 --json "$W/plain.1" "$W/env.json"
jeq "$OUT" 'd["kind"]' feature
jeq "$OUT" 'd["name"]' cli/json
jeq "$OUT" 'd["version"]' 1
jeq "$OUT" 'd["key"]' features/cli-protect
jeq "$OUT" 'd["key_version"]' 1
jeq "$OUT" 'd["size"]' 1
id=$(jget "$OUT" 'd["id"]')
ok unprotect --json "$W/env.json" "$W/back.json"
jeq "$OUT" 'd["id"]' "$id"

step "asset list / show"
ok asset show "$id" --json
jeq "$OUT" 'd["name"]' cli/json
jeq "$OUT" 'd["created"][-1]' Z
ok asset show "$id"
has "$OUT" "what:       feature:cli/json@1"
has "$OUT" "key:        features/cli-protect version 1"
ok asset list --key features/cli-protect --json
jeq "$OUT" 'len(d)' 19
jeq "$OUT" 'd[0]["id"]' "$id"
jeq "$OUT" 'all(a["key"] == "features/cli-protect" for a in d)' true
ok asset list --key features/cli-protect --kind model --json
jeq "$OUT" 'len(d)' 6
jeq "$OUT" 'sorted(a["version"] for a in d)' '["0", "1", "5242880", "65535", "65536", "65537"]'
ok asset list --key features/cli-protect --limit 2 --json
jeq "$OUT" 'len(d)' 2
ok asset list --limit 100000 --json
n=$(jget "$OUT" 'len(d)')
ok status --json
jeq "$OUT" 'd["assets"]' "$n"
ok asset list --key features/cli-protect
head -n1 "$OUT" | grep -q '^ID  *ASSET  *KEY  *SIZE  *CREATED  *BY$' || fail "asset list header"
expect 3 asset show 999999
expect 2 asset show abc

step "protect refuses without --key / --asset, and an unknown key"
expect 2 protect --asset feature:x "$W/plain.1" "$W/x"
has "$ERR" "--key NAME is required"
expect 2 protect --key features/cli-protect "$W/plain.1" "$W/x"
expect 3 protect --key features/nope --asset feature:x "$W/plain.1" "$W/x"
[ ! -e "$W/x" ] || fail "a failed protect left its OUT"

step "tampered envelope to a file: exit 5, no OUT"
size=$((5 * 1024 * 1024))
cp "$W/env.$size" "$W/tampered"
mid=$(($(stat -c %s "$W/tampered") / 2))
orig=$(dd if="$W/tampered" bs=1 skip=$mid count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(((orig + 1) % 256)))" | dd of="$W/tampered" bs=1 seek=$mid count=1 conv=notrunc 2>/dev/null
cmp -s "$W/tampered" "$W/env.$size" && fail "tampering changed nothing"
expect 5 unprotect "$W/tampered" "$W/tampered.out"
[ ! -e "$W/tampered.out" ] || fail "unprotect of a tampered envelope left its OUT"
ls "$W" | grep -q 'tampered.out' && fail "a temporary file was left behind: $(ls "$W")"

step "tampered envelope to stdout: exit 5, nothing after the damage"
rc=0
"$KEYWARD_BIN" unprotect "$W/tampered" >"$W/tampered.stdout" 2>"$ERR" || rc=$?
[ "$rc" = 5 ] || fail "unprotect of a tampered envelope to stdout exited $rc"
out_size=$(stat -c %s "$W/tampered.stdout")
[ "$out_size" -le "$mid" ] || fail "$out_size bytes released, damage at $mid"
cmp -s -n "$out_size" "$W/tampered.stdout" "$W/plain.$size" || fail "released bytes are not the plaintext prefix"

step "truncated envelope: exit 5 to stdout and to a file"
full=$(stat -c %s "$W/env.$size")
head -c $((full - 1000)) "$W/env.$size" >"$W/trunc"
rc=0
"$KEYWARD_BIN" unprotect <"$W/trunc" >"$W/trunc.stdout" 2>"$ERR" || rc=$?
[ "$rc" = 5 ] || fail "truncated envelope to stdout exited $rc, expected 5"
# at a segment boundary: cut whole segments off the end
head -c $((full - 3 * (65536 + 16))) "$W/env.$size" >"$W/trunc2"
expect 5 unprotect "$W/trunc2" "$W/trunc2.out"
[ ! -e "$W/trunc2.out" ] || fail "a truncated envelope left its OUT"

step "not an envelope"
expect 2 unprotect "$W/plain.65535" "$W/nope.out"
has "$ERR" "not a keyward envelope"
[ ! -e "$W/nope.out" ] || fail "OUT written for a non-envelope"
expect 1 unprotect "$W/does-not-exist"
has "$ERR" "does-not-exist"
step "one pipeline: cat | protect | unprotect | cmp"
for size in 0 1 65535 65536 65537 $((5 * 1024 * 1024)); do
	in=$W/plain.$size
	rm -f "$ERR.1" "$ERR.2"
	cat "$in" | "$KEYWARD_BIN" protect --key features/cli-protect --asset "inference-log:cli/line@$size" 2>"$ERR.1" |
		"$KEYWARD_BIN" unprotect 2>"$ERR.2" | cmp - "$in" ||
		{ cat "$ERR.1" "$ERR.2" >"$ERR"; fail "pipeline round trip of $size bytes"; }
done

echo "cli_protect: ok"
