#!/usr/bin/env bash
# console_jobs.sh — running operations: the screen lists the jobs the CLI
# lists, each with a progress bar; u runs one in the background on its own
# session (its step-up asked in the console's dialog) until the CLI says
# it is done and the bar is full; X cancels another after confirmation; p
# pauses a job while it runs (small batches, so there is time), and u
# resumes it to done.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kw_demo_home
# small batches: a run takes many transactions, so p can land in one
python3 - "$KEYWARD_HOME/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["job_batch"] = 5
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
jobs=$KW_TMP/jobs.json
"$KEYWARD_BIN" job list --json >"$jobs"
n=$(jq_py 'len(d)' <"$jobs")
# jobs that can run to done: their old version still decrypts (the demo
# also queues rewraps away from versions it then retires, which fail)
movable=$KW_TMP/movable.json
python3 - "$jobs" "$KEYWARD_BIN" >"$movable" <<'PY'
import json, subprocess, sys
jobs = json.load(open(sys.argv[1]))
out = []
for j in jobs:
    k = json.loads(subprocess.run([sys.argv[2], "key", "show", j["key"], "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    st = [v["state"] for v in k["versions"] if v["version"] == j["from_version"]][0]
    if st in ("active", "decrypt-only"):
        out.append(j)
json.dump(out, sys.stdout)
PY
[ "$(jq_py 'len(d)' <"$movable")" -ge 2 ] || fail "fewer than two demo jobs can run"
[ "$n" -ge 3 ] || fail "the demo has $n unfinished jobs"
# the shortest run to watch to its end, the longest to pause in flight
by_left='sorted(d, key=lambda j: j["total"] - j["done"])'
run_id=$(jq_py "$by_left[0]['id']" <"$movable")
run_key=$(jq_py "$by_left[0]['key']" <"$movable")
run_total=$(jq_py "$by_left[0]['total']" <"$movable")
pause_id=$(jq_py "$by_left[-1]['id']" <"$movable")
pause_key=$(jq_py "$by_left[-1]['key']" <"$movable")
cancel_id=$(jq_py '[j["id"] for j in d if j["id"] not in ("'"$run_id"'", "'"$pause_id"'")][0]' <"$jobs")
cancel_key=$(jq_py '[j["key"] for j in d if j["id"] == "'"$cancel_id"'"][0]' <"$jobs")

tmux_start KEYWARD_PASSPHRASE= "$KEYWARD_BIN"
wait_for "features/credit-risk"
keys 5
wait_for "unfinished job"
screen | sed -n 2p | grep -qE "^ $n unfinished jobs?" || fail "count is not the CLI's $n"
bars=$(screen | grep -c "%$" || true)
[ "$bars" -ge "$n" ] || [ "$bars" -ge 15 ] || fail "$bars progress bars for $n jobs"
echo "$n jobs with their bars"

step "u runs the job in the background; its session's step-up is asked here"
keys /
keys -l "$run_key"
keys Enter
wait_for "${run_id:0:16}"
keys u
wait_for "Step-up for the job" 20
keys -l keyward-demo
keys Enter
for _ in $(seq 1 100); do
	st=$("$KEYWARD_BIN" job show "$run_id" --json | jq_py 'd["state"]')
	[ "$st" = done ] && break
	sleep 0.2
done
[ "$st" = done ] || fail "the job is $st, not done"
wait_for "the run ended" 20
keys Enter   # every job, finished ones too
wait_for "${run_id:0:16}"
screen | grep -A1 -F "${run_id:0:16}" | grep -qE "100 %$" || fail "the done job's bar is not full"
screen | grep -F "${run_id:0:16}" | grep -qF "$run_total/$run_total" || fail "done count not $run_total/$run_total"
echo "job $run_id done ($run_total/$run_total), bar full"

step "X cancels a queued job after confirmation"
keys Enter
keys /
keys C-u
keys -l "$cancel_key"
keys Enter
wait_for "${cancel_id:0:16}"
keys X
wait_for "Cancel job"
keys y
screen | grep -qF "Step-up" && { keys -l keyward-demo; keys Enter; }
wait_for "cancelled"
st=$("$KEYWARD_BIN" job show "$cancel_id" --json | jq_py 'd["state"]')
[ "$st" = cancelled ] || fail "the CLI says $st"
echo "job $cancel_id cancelled"
step "p pauses a job while it runs; u resumes it to done"
keys /
keys C-u
keys -l "$pause_key"
keys Enter
wait_for "${pause_id:0:16}"
done0=$("$KEYWARD_BIN" job show "$pause_id" --json | jq_py 'd["done"]')
keys u
wait_for "Step-up for the job" 20
keys -l keyward-demo
keys Enter
# p as soon as the screen shows the run (its row says running): watching
# the CLI first took seconds a call on a loaded machine, long enough for the
# whole run to end before p.  A p that lands before the worker's claim is
# honoured too (the worker reads the flag after its first batch).
for _ in $(seq 1 200); do
	screen | grep -F "${pause_id:0:16}" | grep -qE ' running +[0-9]' && break
	sleep 0.1
done
screen | grep -F "${pause_id:0:16}" | grep -qE ' running +[0-9]' || fail "the screen does not show the run"
keys p   # "pauses after its batch", soon replaced by "the run ended"
# One press.  Each `job show` here is a session of its own (a login event, a
# write), so on a loaded machine the batches crawl: allow time.  (A run that
# met a locked catalogue once ended and left the job "running" under the
# console's live pid, so p recorded a request nobody would honour: core/job.c
# now lets such a claim go, and a run that is not under way holds nothing.)
for _ in $(seq 1 300); do
	st=$("$KEYWARD_BIN" job show "$pause_id" --json | jq_py 'd["state"]')
	[ "$st" = paused ] && break
	sleep 0.1
done
[ "$st" = paused ] || fail "the CLI says $st after p"
left=$("$KEYWARD_BIN" job show "$pause_id" --json | jq_py 'd["total"] - d["done"]')
done1=$("$KEYWARD_BIN" job show "$pause_id" --json | jq_py 'd["done"]')
[ "$left" -gt 0 ] && [ "$done1" -gt "$done0" ] || fail "paused with $left left after $done0 -> $done1: not in flight"
wait_for "the run ended" 20
screen | grep -F "${pause_id:0:16}" | grep -qF paused || fail "the screen does not say paused"
keys u
wait_for "Step-up for the job" 20
keys -l keyward-demo
keys Enter
for _ in $(seq 1 200); do
	st=$("$KEYWARD_BIN" job show "$pause_id" --json | jq_py 'd["state"]')
	[ "$st" = done ] && break
	sleep 0.2
done
[ "$st" = done ] || fail "the resumed job is $st"
echo "job $pause_id paused in flight ($done0 -> $done1 done, $left left), then resumed to done"
keys Q
wait_for "[exited 0]"
echo PASS
