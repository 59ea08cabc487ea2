# lib.sh — helpers for the shell tests that drive the real binary (sourced,
# never run).  Console tests run keyward in a private tmux server and read
# the screen with capture-pane; CLI tests may use the deployment helpers.
#
#   kw_fresh_home     temp KEYWARD_HOME with a SoftHSM2 conf + token dir, no init
#   kw_demo_home      the same, then `keyward init --demo` (prints nothing)
#   tmux_start [ENV=VAL...] -- CMD...   start CMD in a 120x40 tmux window
#   wait_for TEXT [SECONDS]             poll the screen until TEXT shows (fixed string)
#   wait_gone TEXT [SECONDS]            poll until TEXT is gone
#   screen [-e]                         the screen now (-e: with colour escapes)
#   keys KEY...                         tmux send-keys
#   tmux_stop                           kill the tmux server (also on exit)
#   fail MSG                            print MSG and the screen, exit 1
#
# Everything lives under one temp dir removed on exit (KEEP=1 keeps it).

: "${KEYWARD_BIN:?set KEYWARD_BIN to the keyward binary}"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC
unset KEYWARD_PIN KEYWARD_SO_PIN KEYWARD_TOKEN KEYWARD_PKCS11_MODULE KEYWARD_DB SOFTHSM2_CONF \
	KEYWARD_THEME KEYWARD_THEMES_DIR NO_COLOR
KW_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KW_TMUX_SOCK=kwtest-$$
KW_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kwsh.XXXXXX")

kw_lib_cleanup() {
	tmux -L "$KW_TMUX_SOCK" kill-server 2>/dev/null || true
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
	cat >"$KEYWARD_HOME/softhsm2.conf" <<EOF
directories.tokendir = $KEYWARD_HOME/tokens
objectstore.backend = file
log.level = ERROR
