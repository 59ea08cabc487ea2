#!/usr/bin/env bash
# cli_basic.sh — help, version, usage errors, and docs/cli.md being the
# table's own output.  Needs no deployment except for the usage checks.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup

step "--version and --help"
ok --version
grep -qE '^keyward [0-9]+\.[0-9]+\.[0-9]+$' "$OUT" || fail "--version output"
ok --help
for word in "Exit codes:" "init" "key create" "protect" "audit verify" "--json" "--home DIR"; do
	has "$OUT" "$word"
done
# The exit-code table comes from the core's status table.
grep -qE '^  5 +integrity-failure' "$OUT" || fail "exit code 5 row"
grep -qE '^  4 +denied' "$OUT" || fail "exit code 4 row"
grep -qE '^  3 +not-found' "$OUT" || fail "exit code 3 row"
grep -qE '^  2 +usage' "$OUT" || fail "exit code 2 row"
grep -qE '^  6 +hsm-failure' "$OUT" || fail "exit code 6 row"

step "every command has --help"
commands=$(sed -n '/^Commands:/,/^$/p' "$OUT" | awk 'NR>1 && NF {print $1 (($2 ~ /^[a-z]+$/ && $1 ~ /^(key|asset|audit|user)$/) ? " " $2 : "")}')
[ "$(echo "$commands" | wc -l)" -ge 18 ] || fail "too few commands listed: $commands"
while read -r cmd; do
	[ -n "$cmd" ] || continue
	# shellcheck disable=SC2086
	ok $cmd --help
	has "$OUT" "Usage: keyward $cmd"
	has "$OUT" "--help"
done <<<"$commands"
ok key list --help
has "$OUT" "--json"
has "$OUT" "--filter F"

step "usage errors exit 2"
expect 2 frobnicate
has "$ERR" 'unknown command "frobnicate"'
expect 2 key
has "$ERR" "which subcommand"
expect 2 key explode
has "$ERR" 'unknown subcommand "explode"'
expect 2 key create
has "$ERR" "missing argument"
expect 2 key create a b
has "$ERR" 'unexpected argument "b"'
expect 2 key list --bogus
has "$ERR" "unknown option --bogus"
expect 2 key list --limit
has "$ERR" "needs a value"
expect 2 --nope status
expect 2 audit pubkey --json
[ ! -s "$OUT" ] || fail "usage errors must print nothing on stdout"

step "docs/cli.md is generated from the table"
ok help markdown
if [ -f docs/cli.md ]; then
	diff -u docs/cli.md "$OUT" || fail "docs/cli.md is stale: regenerate with keyward help markdown > docs/cli.md"
else
	fail "docs/cli.md is missing"
fi
ok help keys
has "$OUT" "Console keys"
ok help key rotate
has "$OUT" "Usage: keyward key rotate [--reason TEXT] NAME"
ok help audit
has "$OUT" "Subcommands:"
echo "cli_basic: ok"
