#!/usr/bin/env bash
# system_mode.sh — the system deployment end to end, as CI runs it (root):
# a service account owns the home; the installed keyward is set-user-ID to
# it; people act as themselves (runuser).  Checks: an officer creates keys
# and an approver cannot; an unenrolled user is refused; nobody reads the
# database, the PIN or the token directory; KEYWARD_PKCS11_MODULE,
# SOFTHSM2_CONF and KEYWARD_HOME set by the caller are ignored (a module
# whose constructor writes a marker is never loaded); protect of a file the
# person cannot read is refused; `unshare --map-root-user` gets nothing.
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "SKIPPED: system_mode needs root (useradd, set-user-ID install, runuser); CI runs it as root" >&2
	echo "SKIPPED (not root)"
	exit 0
fi

kw_setup
SVC=kwsvc-test
PEOPLE="kwadmin kwofficer kwapprover kwoutsider"
chmod 0755 "$KW_TMP"
SYSHOME=$KW_TMP/syshome
PREFIX=$KW_TMP/prefix
BIN=$PREFIX/bin/keyward
cleanup_users() {
	for u in $PEOPLE $SVC; do userdel "$u" >/dev/null 2>&1 || true; done
}
trap 'cleanup_users; kw_lib_cleanup' EXIT
for u in $PEOPLE; do
	id -u "$u" >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh "$u"
done

step "install into a temporary prefix with a temporary system home"
# Its own build directory: the system home is fixed at build time.
# A plain build whatever pass of `make check` runs this (no SAN=1 from the
# calling make): the set-user-ID binary is what gets installed.
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u SAN -u CFLAGS -u LDFLAGS \
	make -s -C "$KW_REPO" NODEPS=1 SAN= BUILD="$KW_REPO/build-system" SYSTEM_HOME="$SYSHOME" \
	SERVICE_USER=$SVC PREFIX="$PREFIX" install >"$OUT" 2>"$ERR" || fail "make install failed"
id -u $SVC >/dev/null || fail "install did not create the service account"
[ "$(stat -c '%U %a' "$BIN")" = "$SVC 4755" ] || fail "keyward is not set-user-ID to $SVC: $(stat -c '%U %a' "$BIN")"
[ "$(stat -c '%U %a' "$SYSHOME")" = "$SVC 700" ] || fail "the system home is not $SVC's, 0700"

# as USER ARGS...: run the installed keyward as USER, output to $OUT/$ERR.
as() {
	local who=$1
	shift
	(cd / && runuser -u "$who" -- env KEYWARD_PASSPHRASE="$PASS" "$BIN" "$@") >"$OUT" 2>"$ERR"
}
expect_as() {
	local want=$1 got=0
	shift
	as "$@" || got=$?
	[ "$got" = "$want" ] || fail "keyward ${*:2} as $1: exit $got, expected $want"
}
PASS="system test passphrase"

step "init --system (root) with a first administrator"
(cd / && KEYWARD_PASSPHRASE="$PASS" "$BIN" init --system --admin kwadmin) >"$OUT" 2>"$ERR" ||
	fail "init --system failed"
for f in keyward.db pin tokens softhsm2.conf config.json; do
	[ "$(stat -c %U "$SYSHOME/$f")" = $SVC ] || fail "$f is not owned by $SVC"
done

step "the administrator enrols an officer, an approver"
(cd / && runuser -u kwadmin -- env KEYWARD_PASSPHRASE="$PASS" KEYWARD_NEW_PASSPHRASE="$PASS" \
	"$BIN" user add kwofficer --role officer) >"$OUT" 2>"$ERR" || fail "enrolling the officer failed"
(cd / && runuser -u kwadmin -- env KEYWARD_PASSPHRASE="$PASS" KEYWARD_NEW_PASSPHRASE="$PASS" \
	"$BIN" user add kwapprover --role approver) >"$OUT" 2>"$ERR" || fail "enrolling the approver failed"

step "an officer can create keys, an approver cannot, an outsider is refused"
expect_as 0 kwofficer key create features/system-test
expect_as 4 kwapprover key create features/approver-try
expect_as 4 kwoutsider status
grep -q "kwoutsider is not a keyward user" "$ERR" || fail "the outsider's refusal does not say why"
expect_as 0 kwadmin audit tail -n 50
grep -q "kwapprover" "$OUT" || true
expect_as 0 kwofficer status
grep -q "system deployment" "$OUT" || fail "status does not say it is a system deployment"

step "no person can read the database, the PIN or the token directory"
for u in kwofficer kwadmin; do
	for f in "$SYSHOME/keyward.db" "$SYSHOME/pin" "$SYSHOME/config.json"; do
		if runuser -u $u -- cat "$f" >/dev/null 2>&1; then fail "$u can read $f"; fi
	done
	if runuser -u $u -- ls "$SYSHOME/tokens" >/dev/null 2>&1; then fail "$u can list the token directory"; fi
done

step "the caller's environment chooses no path or library"
cat >"$W/evil.c" <<'C'
#include <stdio.h>
__attribute__((constructor)) static void evil(void)
{
	FILE *f = fopen(MARKER, "w");
	if (f) fclose(f);
}
C
MARKER=$KW_TMP/evil-loaded
cc -shared -fPIC -DMARKER="\"$MARKER\"" -o "$W/evil.so" "$W/evil.c"
chmod 0755 "$W" "$W/evil.so"
mkdir -p "$W/evilhome" && chmod 0777 "$W/evilhome"
printf 'directories.tokendir = %s\n' "$W/evilhome" >"$W/evil.conf" && chmod 0644 "$W/evil.conf"
(cd / && runuser -u kwofficer -- env KEYWARD_PASSPHRASE="$PASS" KEYWARD_PKCS11_MODULE="$W/evil.so" \
	SOFTHSM2_CONF="$W/evil.conf" KEYWARD_HOME="$W/evilhome" LD_PRELOAD="$W/evil.so" "$BIN" key list) \
	>"$OUT" 2>"$ERR" || fail "keyward with a hostile environment did not reach its deployment"
grep -q "features/system-test" "$OUT" || fail "keyward did not list the system deployment's keys"
[ ! -e "$MARKER" ] || fail "a library named by the caller was loaded"
expect_as 2 kwofficer --home "$W/evilhome" status
expect_as 2 kwofficer --user kwadmin status

step "protect of a file the person cannot read is refused"
echo "secret of the service account" >"$W/svc-only"
chown $SVC "$W/svc-only" && chmod 0600 "$W/svc-only"
expect_as 4 kwofficer protect --key features/system-test --asset feature:t/x@1 "$W/svc-only" "$W/out.kwe"
[ ! -e "$W/out.kwe" ] || fail "an envelope was written from a file the officer cannot read"
echo hello >"$W/mine" && chown kwofficer "$W/mine" && chmod 0600 "$W/mine"
mkdir -p "$W/officer-out" && chown kwofficer "$W/officer-out"
expect_as 0 kwofficer protect --key features/system-test --asset feature:t/x@1 "$W/mine" "$W/officer-out/x.kwe"
[ "$(stat -c %U "$W/officer-out/x.kwe")" = kwofficer ] || fail "the envelope does not belong to the officer"
expect_as 4 kwofficer protect --key features/system-test --asset feature:t/y@1 "$W/mine" "$SYSHOME/planted.kwe"
[ ! -e "$SYSHOME/planted.kwe" ] || fail "the officer wrote into the system home"

step "unshare --map-root-user gets nothing"
if runuser -u kwofficer -- unshare --map-root-user true 2>/dev/null; then
	got=0
	(cd / && runuser -u kwofficer -- unshare --map-root-user "$BIN" status) >"$OUT" 2>"$ERR" || got=$?
	[ "$got" != 0 ] || fail "keyward ran inside a user namespace"
	grep -q "namespace\|set-user-ID" "$ERR" || fail "the refusal does not explain itself"
else
	echo "SKIPPED: unprivileged user namespaces are off on this machine; nothing to attack"
fi
echo PASS
