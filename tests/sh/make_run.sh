#!/usr/bin/env bash
# make_run.sh — the README's first command on a machine that has run other
# demos: `make run`'s set-up (the demo target) twice with a distclean in
# between, with a foreign token labelled "keyward" in the SoftHSM2
# configuration the environment names, and as a non-root user; then the
# console opens on the demo at 80x24 through `make run` itself.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BUILD_DIR=${BUILD:-build}
MODULE=${KEYWARD_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

step "a foreign token labelled keyward, named by SOFTHSM2_CONF"
mkdir -p "$KW_TMP/foreign/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$KW_TMP/foreign/tokens" >"$KW_TMP/foreign/softhsm2.conf"
export SOFTHSM2_CONF=$KW_TMP/foreign/softhsm2.conf
softhsm2-util --init-token --free --label keyward --so-pin 87654321 --pin 12345678 >/dev/null ||
	fail "cannot make the foreign token"

demo() { # demo DEMO_HOME [runuser -u USER --]
	local home=$1
	shift
	"$@" make -s -C "$KW_REPO" BUILD="$BUILD_DIR" NODEPS=1 DEMO_HOME="$home" demo >"$KW_TMP/demo.out" 2>&1 ||
		fail "make demo failed: $(cat "$KW_TMP/demo.out")"
}
check_demo() { # check_demo DEMO_HOME [runuser -u USER --]
	local home=$1
	shift
	"$@" "$KW_REPO/$BUILD_DIR/keyward" --home "$home" status >"$KW_TMP/status.out" 2>&1 ||
		fail "status on the demo failed: $(cat "$KW_TMP/status.out")"
	grep -q "personal deployment" "$KW_TMP/status.out" || fail "status does not state the trust boundary"
	grep -q "^keys: *1[0-9]" "$KW_TMP/status.out" || fail "the demo has no keys: $(cat "$KW_TMP/status.out")"
}

step "make run's set-up, twice with a distclean between"
D=$KW_TMP/demo-root
demo "$D"
check_demo "$D"
[ -f "$D/softhsm2.conf" ] && [ -d "$D/tokens" ] || fail "the demo has no token directory of its own"
rm -rf "$D" # what make distclean does to ./.keyward
demo "$D"
check_demo "$D"
demo "$D" # a third run finds the demo in place and leaves it
check_demo "$D"
echo "twice after distclean, beside a foreign keyward token: fine"

step "a demo half-made by a killed init is moved aside, not fatal"
D2=$KW_TMP/demo-killed
mkdir -p "$D2/tokens" && echo junk >"$D2/keyward.db"
demo "$D2"
check_demo "$D2"
ls -d "$D2".old-* >/dev/null 2>&1 || fail "the broken demo was not kept aside"

if [ "$(id -u)" != 0 ]; then
	echo "SKIPPED: make run as a separate non-root user needs root to create that user (CI runs it)"
	echo PASS
	exit 0
fi

step "as a non-root user"
U=kwdemo-user
id -u $U >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh $U
trap 'userdel $U >/dev/null 2>&1 || true; kw_lib_cleanup' EXIT
chmod 0755 "$KW_TMP"
mkdir -p "$KW_TMP/user"
chown $U "$KW_TMP/user"
chmod -R a+rX "$KW_TMP/foreign"
U_HOME=$KW_TMP/user/.keyward
# The checkout may sit where the user cannot reach (a CI clone under /root):
# then the user gets a copy, timestamps kept so that make builds nothing.
if ! runuser -u $U -- test -r "$KW_REPO/Makefile"; then
	mkdir -p "$KW_TMP/repo"
	tar -C "$KW_REPO" --exclude=./.git --exclude=./build-system -cf - . | tar -C "$KW_TMP/repo" -xf -
	chmod -R a+rX "$KW_TMP/repo"
	KW_REPO=$KW_TMP/repo
fi
demo "$U_HOME" runuser -u $U -- env SOFTHSM2_CONF="$SOFTHSM2_CONF" HOME="$KW_TMP/user"
check_demo "$U_HOME" runuser -u $U --
[ "$(stat -c %U "$U_HOME/keyward.db")" = $U ] || fail "the demo does not belong to $U"

export KEYWARD_HOME=$U_HOME
step "make run opens the console at 80x24"
tmux_start --size 80x24 -- runuser -u $U -- make -s -C "$KW_REPO" BUILD="$BUILD_DIR" NODEPS=1 \
	DEMO_HOME="$U_HOME" run
wait_for "features/credit-risk" 60
screen | grep -q "$U (officer,auditor)" || fail "the status bar does not name $U"
keys Q
wait_for "[exited 0]" 20
echo PASS
