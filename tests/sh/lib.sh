# lib.sh — helpers for the shell tests that drive the real binary (sourced,
# never run).  Console tests run keyward in a private tmux server and read
# the screen with capture-pane; CLI tests may use the deployment helpers.
#
#   kw_fresh_home     temp KEYWARD_HOME with a SoftHSM2 conf + token dir, no init
#   kw_demo_home      the same, then `keyward init --demo` (prints nothing): a copy of the
#                     runner's demo template when there is one (see kw_demo_template_make)
#   tmux_start [VAR=VAL...] [--size CxR] [--] CMD...   start CMD in a tmux window (120x40)
#   wait_for TEXT [SECONDS]             poll the screen until TEXT shows (fixed string)
#   wait_gone TEXT [SECONDS]            poll until TEXT is gone
#   screen [-e]                         the screen now (-e: with colour escapes)
#   keys KEY...                         tmux send-keys
#   tmux_stop                           kill the tmux server (also done on exit)
#   fail MSG                            print MSG and the screen, exit 1
#   kw_request_done ID                  the demo's bob (and carol, frank, if the quorum asks)
#                                       approve request ID, then it is executed
#   kw_rotate_done KEY                  a rotation through its request, approved and executed
#
# Everything lives under one temp dir removed on exit (KEEP=1 keeps it).

: "${KEYWARD_BIN:?set KEYWARD_BIN to the keyward binary}"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC
unset KEYWARD_PIN KEYWARD_SO_PIN KEYWARD_TOKEN KEYWARD_PKCS11_MODULE KEYWARD_DB SOFTHSM2_CONF \
	KEYWARD_THEME KEYWARD_THEMES_DIR NO_COLOR KEYWARD_USER KEYWARD_OTP KEYWARD_NEW_PASSPHRASE
# Every test person's passphrase: the demo's.  Deployments made by tests
# use a cheap Argon2id (KW_ARGON2) so that a step-up costs milliseconds;
# make_run.sh and test_cred run the default cost.
export KEYWARD_PASSPHRASE=keyward-demo
KW_ARGON2="--argon2-memory 64 --argon2-passes 1"
KW_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KW_TMUX_SOCK=kwtest-$$
KW_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kwsh.XXXXXX")
# The system's python3 where there is one: a version manager's shim (pyenv)
# costs a few bash processes per call, and the tests call python3 hundreds
# of times to read JSON.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	mkdir -p "$KW_TMP/bin"
	ln -s /usr/bin/python3 "$KW_TMP/bin/python3"
	PATH=$KW_TMP/bin:$PATH
fi

kw_lib_cleanup() {
	tmux_stop
	# a killed server can leave its socket file behind
	rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$KW_TMUX_SOCK"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $KW_TMP" >&2
	else
		rm -rf "$KW_TMP"
	fi
}
trap kw_lib_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	if tmux -L "$KW_TMUX_SOCK" has-session 2>/dev/null; then
		echo "--- screen:" >&2
		tmux -L "$KW_TMUX_SOCK" capture-pane -p -t kw >&2 || true
	fi
	exit 1
}

step() { echo "== $*"; }

kw_fresh_home() {
	export KEYWARD_HOME=$KW_TMP/home
	mkdir -p "$KEYWARD_HOME/tokens"
	printf '%s\n' "directories.tokendir = $KEYWARD_HOME/tokens" "objectstore.backend = file" \
		"log.level = ERROR" >"$KEYWARD_HOME/softhsm2.conf"
	KW_CONF=$KEYWARD_HOME/softhsm2.conf
}

kw_demo_home() {
	kw_fresh_home
	if ! kw_demo_from_template "$KW_TMP/init.out" "$KW_TMP/init.out"; then
		"$KEYWARD_BIN" init --demo $KW_ARGON2 --softhsm2-conf "$KW_CONF" >"$KW_TMP/init.out" 2>&1 ||
			fail "keyward init --demo failed: $(cat "$KW_TMP/init.out")"
	fi
	KW_DB=$KEYWARD_HOME/keyward.db
}

# The demo template: `init --demo` costs seconds of CPU (under ASan most of
# a test's set-up), the same in every test, so the shell test runner makes
# it once per run, before the tests (KW_DEMO_TEMPLATE is its directory:
# home/ as kw_fresh_home makes it, and init's stdout and stderr), and each
# test copies it.  The copy is the test's own: its own token directory,
# database and PIN file, which it may change at will.  Made with the same
# binary minutes before, so the demo's history ("days ago") still holds.

# kw_demo_template_make DIR: `init --demo` into DIR/home, as kw_demo_home
# would, then mark DIR ready.  Run by the runner (lib.sh sourced in a shell
# of its own).
kw_demo_template_make() {
	local dir=$1
	rm -rf "$dir"
	mkdir -p "$dir/home/tokens"
	printf '%s\n' "directories.tokendir = $dir/home/tokens" "objectstore.backend = file" \
		"log.level = ERROR" >"$dir/home/softhsm2.conf"
	KEYWARD_HOME=$dir/home "$KEYWARD_BIN" init --demo $KW_ARGON2 --softhsm2-conf "$dir/home/softhsm2.conf" \
		>"$dir/init.stdout" 2>"$dir/init.stderr" || {
		cat "$dir/init.stdout" "$dir/init.stderr" >&2
		return 1
	}
	# the binary it was made with: a template from another build is never used
	cksum <"$KEYWARD_BIN" >"$dir/binary"
	touch "$dir/ready"
}

# kw_demo_from_template OUT ERR: if there is a template made by this
# binary, copy it into the fresh $KEYWARD_HOME (kw_fresh_home's) and put
# init's output, with the test's home in it, into OUT and ERR (may be the
# same file).  Non-zero (and nothing done) if there is none.
kw_demo_from_template() {
	local t=${KW_DEMO_TEMPLATE:-}
	[ -n "$t" ] && [ -f "$t/ready" ] && [ "$(cksum <"$KEYWARD_BIN")" = "$(cat "$t/binary")" ] || return 1
	[ "$KEYWARD_HOME" = "$KW_TMP/home" ] || return 1
	local from=$t/home
	rm -rf "$KEYWARD_HOME"
	cp -a "$from" "$KEYWARD_HOME" || fail "cannot copy the demo template $from"
	# what holds the home's absolute path: the SoftHSM2 conf (its token
	# directory) and the demo assets' file paths
	printf '%s\n' "directories.tokendir = $KEYWARD_HOME/tokens" "objectstore.backend = file" \
		"log.level = ERROR" >"$KEYWARD_HOME/softhsm2.conf"
	sqlite3 "$KEYWARD_HOME/keyward.db" "UPDATE assets SET path = '$KEYWARD_HOME' || substr(path, $((${#from} + 1)))
		WHERE substr(path, 1, $((${#from} + 1))) = '$from/';" || fail "cannot move the demo template's asset paths"
	if grep -rqF -- "$from" "$KEYWARD_HOME"; then
		fail "the demo template's home $from is still named in $(grep -rlF -- "$from" "$KEYWARD_HOME")"
	fi
	sed "s|$from|$KEYWARD_HOME|g" "$t/init.stdout" >"$1"
	if [ "$1" = "$2" ]; then
		sed "s|$from|$KEYWARD_HOME|g" "$t/init.stderr" >>"$2"
	else
		sed "s|$from|$KEYWARD_HOME|g" "$t/init.stderr" >"$2"
	fi
}

# tmux_start [VAR=VALUE...] [--size COLSxROWS] [--] COMMAND [ARGS...]
# Runs COMMAND with KEYWARD_HOME, LANG=C.UTF-8, TZ=UTC, TERM=xterm-256color,
# KEYWARD_THEMES_DIR=<repo>/themes and the given variables, in directory
# $KW_CWD (default: the repo).  The pane stays after the program ends so
# its last words stay readable ("[exited N]").
tmux_start() {
	local envs=() size=120x40
	while [ $# -gt 0 ]; do
		case $1 in
		--) shift; break ;;
		--size) size=$2; shift 2 ;;
		*=*) envs+=("$1"); shift ;;
		*) break ;;
		esac
	done
	local cmd
	printf -v cmd '%q ' env -u NO_COLOR KEYWARD_HOME="$KEYWARD_HOME" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
		TZ=UTC TERM=xterm-256color KEYWARD_THEMES_DIR="$KW_REPO/themes" "${envs[@]}" "$@"
	local try
	for try in 1 2 3 4 5; do
		tmux -L "$KW_TMUX_SOCK" -f /dev/null new-session -d -s kw -x "${size%x*}" -y "${size#*x}" \
			-c "${KW_CWD:-$KW_REPO}" "$cmd; echo \"[exited \$?]\"; sleep 600" && return 0
		sleep 0.2 # a server still shutting down after tmux_stop
	done
	fail "cannot start tmux"
}

screen() {
	if [ "${1:-}" = -e ]; then
		tmux -L "$KW_TMUX_SOCK" capture-pane -p -e -t kw
	else
		tmux -L "$KW_TMUX_SOCK" capture-pane -p -t kw
	fi
}

keys() { tmux -L "$KW_TMUX_SOCK" send-keys -t kw "$@"; }

# wait_for TEXT [SECONDS]: the screen shows TEXT (fixed string) within the bound.
wait_for() {
	local text=$1 limit=${2:-10} i=0
	local n=$((limit * 10))
	while [ "$i" -lt "$n" ]; do
		screen | grep -qF -- "$text" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	fail "\"$text\" did not appear within ${limit}s"
}

# wait_gone TEXT [SECONDS]: TEXT leaves the screen within the bound.
wait_gone() {
	local text=$1 limit=${2:-10} i=0
	local n=$((limit * 10))
	while [ "$i" -lt "$n" ]; do
		screen | grep -qF -- "$text" || return 0
		sleep 0.1
		i=$((i + 1))
	done
	fail "\"$text\" still on screen after ${limit}s"
}

# tmux_stop: kill the server and wait (bounded) until it is gone.
tmux_stop() {
	tmux -L "$KW_TMUX_SOCK" kill-server 2>/dev/null || true
	local i=0
	while [ $i -lt 50 ] && tmux -L "$KW_TMUX_SOCK" has-session 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
}

# The request's state, from `request show --json`.
kw_request_state() {
	"$KEYWARD_BIN" request show "$1" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])'
}

# kw_request_done ID: approvals by the demo's approvers until the quorum is
# met, then execution by the caller (what two or three people would do).
kw_request_done() {
	local id=$1 who
	# three: a high-sensitivity key's policy asks for two, a high risk one more
	for who in bob carol frank; do
		[ "$(kw_request_state "$id")" = pending ] || break
		"$KEYWARD_BIN" --user "$who" request approve "$id" >/dev/null || return 1
	done
	"$KEYWARD_BIN" request execute "$id" >/dev/null
}

# kw_rotate_done KEY [ARGS...]: open a rotation request, have it approved
# and executed.  Its id is left in KW_REQUEST_ID.
kw_rotate_done() {
	KW_REQUEST_ID=$("$KEYWARD_BIN" key rotate "$@" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') ||
		return 1
	kw_request_done "$KW_REQUEST_ID"
}
