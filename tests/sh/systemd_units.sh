#!/usr/bin/env bash
# systemd_units.sh — the unit files docs/ ships (the rotation scheduler's
# service + timer, the audit forwarder's service) are valid for systemd:
# `systemd-analyze verify` on copies whose ExecStart names the binary under
# test, and every ExecStart's command line is one keyward accepts (its
# options checked by the binary's own --help).  Without systemd-analyze the
# test says SKIPPED and passes: the files cannot be checked here.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIPPED: systemd-analyze is not installed; the unit files in docs/ were NOT checked" >&2
	exit 0
fi
U=$KW_TMP/units
mkdir -p "$U"
units=(keyward-rotate.service keyward-rotate.timer keyward-forward.service)
for u in "${units[@]}"; do
	[ -f "$KW_REPO/docs/$u" ] || fail "docs/$u is missing"
	sed "s#/usr/local/bin/keyward#$KEYWARD_BIN#g" "$KW_REPO/docs/$u" >"$U/$u"
done

step "systemd-analyze verify: no complaint about any unit"
(cd "$U" && systemd-analyze verify "${units[@]/#/./}") >"$KW_TMP/verify.out" 2>&1 || true
# verify's exit status ignores some problems; its output names each one
if [ -s "$KW_TMP/verify.out" ]; then
	cat "$KW_TMP/verify.out" >&2
	fail "systemd-analyze verify complained"
fi

step "a broken unit is caught (the check can fail)"
printf '[Service]\nType=oneshott\nExecStart=%s status\n' "$KEYWARD_BIN" >"$U/broken.service"
(cd "$U" && systemd-analyze verify ./broken.service) >"$KW_TMP/broken.out" 2>&1 || true
grep -q "oneshott" "$KW_TMP/broken.out" || fail "verify did not name the bad Type: $(cat "$KW_TMP/broken.out")"

step "the timer fires hourly"
grep -q '^OnCalendar=hourly$' "$U/keyward-rotate.timer" || fail "the timer is not hourly"
grep -q '^Unit=keyward-rotate.service$' "$U/keyward-rotate.timer" || fail "the timer starts another unit"

step "each ExecStart runs: the scheduler's for real (--dry-run) on a demo deployment"
kw_demo_home
mkdir -p "$KW_TMP/creds"
printf '%s\n' "$KEYWARD_PASSPHRASE" >"$KW_TMP/creds/passphrase"
exec_line() { # the unit's ExecStart, its ${CREDENTIALS_DIRECTORY} filled in
	sed -n 's/^ExecStart=//p' "$U/$1" | sed "s#\${CREDENTIALS_DIRECTORY}#$KW_TMP/creds#g"
}
read -r -a argv <<<"$(exec_line keyward-rotate.service)"
[ "${argv[0]}" = "$KEYWARD_BIN" ] || fail "the scheduler does not start keyward: ${argv[0]}"
# no passphrase but the credential file's
KEYWARD_PASSPHRASE= "${argv[@]}" --dry-run >"$KW_TMP/rotate.out" 2>&1 ||
	fail "the scheduler's ExecStart failed: $(cat "$KW_TMP/rotate.out")"
python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines, "no JSON lines"
' "$KW_TMP/rotate.out" || fail "the scheduler did not print JSON lines: $(cat "$KW_TMP/rotate.out")"
# the forwarder follows until stopped: SIGTERM ends it cleanly
read -r -a argv <<<"$(exec_line keyward-forward.service)"
[ "${argv[0]}" = "$KEYWARD_BIN" ] || fail "the forwarder does not start keyward: ${argv[0]}"
"${argv[@]:0:1}" "${argv[@]:1}" --help >/dev/null 2>&1 || fail "the forwarder's command line is not one keyward takes"
echo ok
