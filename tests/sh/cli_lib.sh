# cli_lib.sh — helpers for the CLI shell tests (sourced, never run).
#
# kw_setup makes a private temp dir per test: a SoftHSM2 conf and token
# directory, the deployment (KEYWARD_HOME) and a scratch dir, all removed on
# exit unless KEEP=1.  Every command's stdout/stderr lands in $OUT / $ERR so
# a failing check can show them.

# Builds on lib.sh (the shared temp dir, cleanup, environment and
# kw_fresh_home); adds output capture and JSON checks.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODULE=${KEYWARD_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

# fail MSG: print MSG and the last command's stdout / stderr, exit 1.
fail() {
	echo "FAIL: $*" >&2
	if [ -n "${OUT:-}" ] && [ -s "$OUT" ]; then echo "--- stdout:" >&2; head -c 4000 "$OUT" >&2; echo >&2; fi
	if [ -n "${ERR:-}" ] && [ -s "$ERR" ]; then echo "--- stderr:" >&2; head -c 4000 "$ERR" >&2; echo >&2; fi
	exit 1
}

# kw_setup: a fresh home (not initialised) plus a scratch dir.
#   TEST_DIR  the test's temp dir (removed on exit unless KEEP=1)
#   CONF      its SoftHSM2 conf; TOKENS its token directory
#   W         scratch files; OUT / ERR the last command's output
#   DB        the deployment's database
kw_setup() {
	kw_fresh_home
	TEST_DIR=$KW_TMP
	CONF=$KW_CONF
	TOKENS=$KEYWARD_HOME/tokens
	export HOME=$TEST_DIR
	W=$TEST_DIR/work
	mkdir -p "$W"
	OUT=$TEST_DIR/out
	ERR=$TEST_DIR/err
	DB=$KEYWARD_HOME/keyward.db
}

# The demo deployment: officer + auditor for the invoking user, PIN in a file.
# A copy of the runner's demo template (lib.sh) when the home is kw_setup's
# and the token the default; otherwise (and without a template) a real init.
kw_init_demo() {
	if [ -n "${KEYWARD_TOKEN:-}" ] || [ "$CONF" != "$KEYWARD_HOME/softhsm2.conf" ] ||
		! kw_demo_from_template "$OUT" "$ERR"; then
		"$KEYWARD_BIN" init --demo $KW_ARGON2 --softhsm2-conf "$CONF" >"$OUT" 2>"$ERR" || fail "init --demo exited $?"
	fi
	PIN=$(grep -v '^#' "$KEYWARD_HOME/demo-pin.DEMO-ONLY" | head -n1)
}

# A plain deployment with PINs from the environment.
kw_init_plain() {
	PIN=user-pin-1234
	KEYWARD_PIN=$PIN KEYWARD_SO_PIN=so-pin-5678 "$KEYWARD_BIN" init $KW_ARGON2 --softhsm2-conf "$CONF" \
		>"$OUT" 2>"$ERR" || fail "init exited $?"
}

# kw ARGS...: run keyward, stdout to $OUT, stderr to $ERR; returns its status.
kw() {
	"$KEYWARD_BIN" "$@" >"$OUT" 2>"$ERR"
}

# expect CODE ARGS...: run keyward and require exit status CODE.
expect() {
	local want=$1 got=0
	shift
	"$KEYWARD_BIN" "$@" >"$OUT" 2>"$ERR" || got=$?
	[ "$got" = "$want" ] || fail "keyward $* exited $got, expected $want"
}

# ok ARGS...: keyward must succeed.
ok() { expect 0 "$@"; }

# has FILE TEXT / lacks FILE TEXT: fixed-string search.
has() { grep -qF -- "$2" "$1" || fail "$(basename "$1") does not contain: $2"; }
lacks() { ! grep -qF -- "$2" "$1" || fail "$(basename "$1") contains: $2"; }

# jget FILE EXPR: evaluate a Python expression over the JSON document d.
jget() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1" "$2" ||
		fail "cannot evaluate $2 over $(basename "$1")"
}

# jeq FILE EXPR VALUE: require a JSON field's value.
jeq() {
	local got
	got=$(jget "$1" "$2")
	[ "$got" = "$3" ] || fail "$2 is '$got', expected '$3'"
}

# pattern FILE SIZE: a deterministic, recognisable test pattern of SIZE bytes.
pattern() {
	python3 - "$1" "$2" <<'EOF'
import sys
n = int(sys.argv[2])
unit = b"KEYWARD-PLAINTEXT-PATTERN-0123456789abcdef|"
data = (unit * (n // len(unit) + 1))[:n]
open(sys.argv[1], "wb").write(data)
EOF
}

# The audit log as text, for before/after comparisons.
audit_snapshot() {
	sqlite3 "$DB" 'SELECT seq, json FROM audit_events ORDER BY seq' >"$1"
}
