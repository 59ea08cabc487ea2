#!/usr/bin/env bash
# cli_keys.sh — key create / list / show / tag / rotate / state, text and
# JSON, on a demo deployment (the invoking user is officer + auditor).
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"
kw_setup
kw_init_demo

step "key create with tags"
ok key create features/cli-test-a --tag sensitivity=high --tag owner=ml-platform
has "$OUT" "created features/cli-test-a: version 1 active"
ok key create datasets/cli-test-b -t sensitivity=low --json
jeq "$OUT" 'd["name"]' datasets/cli-test-b
jeq "$OUT" 'd["current_version"]' 1
jeq "$OUT" 'd["current_state"]' active
jeq "$OUT" 'd["tags"]' '{"sensitivity": "low"}'
jeq "$OUT" 'd["created"][-1]' Z
expect 9 key create features/cli-test-a
has "$ERR" "keyward: "
expect 2 key create 'Bad Name'
expect 2 key create features/x --tag 'no-equals-sign'

step "key list: filter, tag filter, sort, limit"
ok key list --filter cli-test --json
jeq "$OUT" '[k["name"] for k in d]' '["datasets/cli-test-b", "features/cli-test-a"]'
jeq "$OUT" 'd[1]["tags"]["owner"]' ml-platform
ok key list --filter sensitivity:high --json
jeq "$OUT" '"features/cli-test-a" in [k["name"] for k in d]' true
jeq "$OUT" '"datasets/cli-test-b" in [k["name"] for k in d]' false
jeq "$OUT" 'all(k["tags"].get("sensitivity") == "high" for k in d)' true
ok key list --filter cli-test --sort name --desc --json
jeq "$OUT" '[k["name"] for k in d]' '["features/cli-test-a", "datasets/cli-test-b"]'
ok key list --limit 3 --json
jeq "$OUT" 'len(d)' 3
ok key list --json
total=$(jget "$OUT" 'len(d)')
ok status --json
jeq "$OUT" 'd["keys"]' "$total"
ok key list
head -n1 "$OUT" | grep -q '^NAME  *VER  *STATE  *AGE  *ASSETS  *LAST USE  *TAGS$' || fail "key list header"
[ "$(wc -l <"$OUT")" = $((total + 1)) ] || fail "key list: $(wc -l <"$OUT") lines for $total keys"
expect 2 key list --sort colour
has "$ERR" "columns: name, version, state, age, assets, last-use"
expect 2 key list --limit 0
expect 2 key list --limit ten

step "key tag: set and remove"
ok key tag features/cli-test-a region=eu owner=
has "$OUT" "tagged features/cli-test-a"
ok key show features/cli-test-a --json
jeq "$OUT" 'd["tags"]' '{"region": "eu", "sensitivity": "high"}'

step "key rotate: opens a request; nothing changes until it is approved and executed"
ok key rotate features/cli-test-a --json
jeq "$OUT" 'd["kind"]' rotate
jeq "$OUT" 'd["state"]' pending
jeq "$OUT" 'd["quorum"] >= 1' true
RID=$(jget "$OUT" 'd["id"]')
ok key show features/cli-test-a --json
jeq "$OUT" 'd["current_version"]' 1
expect 9 key rotate features/cli-test-a
has "$ERR" "already open"
kw_request_done "$RID" || fail "approving and executing the rotation"
ok key show features/cli-test-a --json
jeq "$OUT" 'd["current_version"]' 2
jeq "$OUT" '[(v["version"], v["state"]) for v in d["versions"]]' '[[2, "active"], [1, "decrypt-only"]]'
jeq "$OUT" 'd["versions"][1]["activated"] is not None' true
jeq "$OUT" '[(e["action"], e["outcome"]) for e in d["events"]][-4:]' '[["key.tag", "ok"], ["request.open", "ok"], ["key.rotate", "error"], ["request.execute", "ok"]]'
jeq "$OUT" 'all(e["object"].startswith("key:features/cli-test-a") for e in d["events"])' true

step "key state: legal and illegal changes"
ok key state features/cli-test-a 1 retired --json
kw_request_done "$(jget "$OUT" 'd["id"]')" || fail "approving and executing the state change"
expect 8 key state features/cli-test-a 1 active
has "$ERR" "cannot change a retired version to active; allowed from retired: "
has "$ERR" "destroy-scheduled"
ok key show features/cli-test-a --json
jeq "$OUT" 'd["versions"][1]["state"]' retired
expect 2 key state features/cli-test-a 1 sideways
expect 2 key state features/cli-test-a x retired
expect 3 key state features/cli-test-a 9 retired
expect 3 key state features/nope 1 retired
has "$ERR" "features/nope"

step "key show: text"
ok key show features/cli-test-a
has "$OUT" "key:        features/cli-test-a"
has "$OUT" "current:    version 2 (active)"
has "$OUT" "tags:       region=eu sensitivity=high"
has "$OUT" "versions:"
grep -qE '^2 +active ' "$OUT" || fail "version 2 row"
grep -qE '^1 +retired ' "$OUT" || fail "version 1 row"
has "$OUT" "latest events:"
has "$OUT" "key.state"
expect 3 key show features/does-not-exist
has "$ERR" "features/does-not-exist"
echo "cli_keys: ok"
