#!/usr/bin/env bash
# A scripted on-call session, as an operator woken at 3 a.m. would run it, on a one-node Kafka of its own (ports
# 24092/24192, directory $HULE_3AM_DIR or a temporary one) and the PostgreSQL of scripts/setup.sh:
#
#   poison and duplicates (hule demo), what failed (dlq list), one request's dead letters (--correlation-id), the
#   broker restarted under the operator (lag and dlq list straight after), a dry run, a replay, the same replay
#   again (nothing is sent twice), and the replayed records on their topic (tail).
#
# Each step prints the command and its output, then checks its exit status and what it must say; the first wrong
# answer stops the session with exit 1. Usage: scripts/three-am.sh [HULE_BINARY] (default: the release build).
# The test suite runs it (crates/hule-cli/tests/three_am.rs) with the test build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
hule_bin="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/hule-target}/release/hule}"
db="${HULE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
dir="${HULE_3AM_DIR:-$(mktemp -d)}"
port=24092
# A session killed before its clean-up (SIGKILL, a lost machine) leaves its broker on the port: stop it first.
stale="${TMPDIR:-/tmp}/hule-3am-kafka"
"$root/scripts/kafka.sh" stop --dir "$stale" >/dev/null 2>&1 || true
rm -rf "$stale"
ln -sfn "$dir/kafka" "$stale"
export NO_COLOR=1

stop() { "$root/scripts/kafka.sh" stop --dir "$dir/kafka" >/dev/null 2>&1 || true; }
trap stop EXIT

fail() { echo "3am: FAILED: $*" >&2; exit 1; }

# `step EXPECTED_STATUS hule ARGS…`: prints the command and its output (stdout and stderr), checks the status, and
# leaves the output in $said.
step() {
  local want="$1"; shift
  printf '\n$ hule %s\n' "$*"
  set +e
  said="$("$hule_bin" "$@" 2>&1)"
  local got=$?
  set -e
  printf '%s\n' "$said"
  [ "$got" = "$want" ] || fail "\`hule $*\` exited $got, not $want"
  if grep -q "panicked" <<<"$said"; then fail "\`hule $*\` panicked"; fi
}

# `field KEY`: KEY of the JSON document in the last step's output (after any log lines).
field() {
  python3 -c '
import json, sys
text = sys.stdin.read()
doc, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
print(doc[sys.argv[1]])' "$1" <<<"$said"
}

# `says TEXT`: the last step's output contains TEXT.
says() { grep -qF -- "$1" <<<"$said" || fail "expected \"$1\" in the output above"; }

echo "3am: a Kafka of its own on 127.0.0.1:$port ($dir/kafka)"
brokers="$("$root/scripts/kafka.sh" start --port "$port" --dir "$dir/kafka" 2>/dev/null | tail -n 1)"
[ -n "$brokers" ] || fail "the session's Kafka did not start"

step 0 topics apply --brokers "$brokers" --partitions 3 --replication 1
says "created"

# The night's traffic: a fifth of the records are poison, a fifth arrive twice.
step 0 demo --brokers "$brokers" --database-url "$db" --batches 6 --essays 8 --poison-rate 0.2 \
  --duplicate-rate 0.2 --no-progress --max-time 120
says "all counts reconcile"

step 0 dlq list --brokers "$brokers"
says "fingerprint"
# The first group whose records are JSON (a wrong payload, not bytes that are not JSON at all).
fingerprint="$(awk 'NR > 1 && $3 != "-" { print $1; exit }' <<<"$said")"
[ -n "$fingerprint" ] || fail "no fingerprint in dlq list"

# One student's request: its correlation id, from a dead letter.
step 0 dlq show --brokers "$brokers" --fingerprint "$fingerprint" --limit 1
correlation="$(python3 -c '
import json, sys
text = sys.stdin.read()
doc, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
print(doc["record"]["original_event"]["correlation_id"])' <<<"$said")"
[ -n "$correlation" ] || fail "no correlation id in the dead letter"

step 0 dlq list --brokers "$brokers" --correlation-id "$correlation"
says "$correlation"

# The broker is restarted under the operator; the commands straight after it (its group coordinator still loading)
# must answer, not fail.
echo
echo "3am: restarting the broker"
"$root/scripts/kafka.sh" kill-node 1 --dir "$dir/kafka"
"$root/scripts/kafka.sh" start-node 1 --dir "$dir/kafka" >/dev/null 2>&1
step 0 lag --brokers "$brokers" --summary
step 0 dlq list --brokers "$brokers" --correlation-id "$correlation"
says "$correlation"

# Repair: a dry run, the replay, and the same replay again (a second operator, a double click): sent once.
step 0 dlq replay --brokers "$brokers" --fingerprint "$fingerprint" --dry-run
says "would be replayed"
step 0 dlq replay --brokers "$brokers" --fingerprint "$fingerprint" --note "3am session" --json
replayed="$(field replayed)"
[ "$replayed" -ge 1 ] || fail "the replay sent nothing"
step 0 dlq replay --brokers "$brokers" --fingerprint "$fingerprint" --json
[ "$(field replayed)" = 0 ] || fail "the second replay sent records again"
[ "$(field already_replayed)" = "$replayed" ] || fail "the second replay did not find the first in the ledger"

# The replayed records on their topic, read to its end.
topic="$("$hule_bin" dlq list --brokers "$brokers" --fingerprint "$fingerprint" --json 2>/dev/null \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["groups"][0]["dlq_topic"].removesuffix(".dlq.v1"))')"
printf '\n$ hule tail --brokers %s %s --from beginning --until-end --json | (the replayed records)\n' "$brokers" "$topic"
marked="$("$hule_bin" tail --brokers "$brokers" "$topic" --from beginning --until-end --json 2>/dev/null | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    r = json.loads(line)
    origin = r.get("headers", {}).get("X-Replayed-From")
    if origin:
        n += 1
        print("%s[%s]@%s key=%s replayed from %s" % (r["topic"], r["partition"], r["offset"], r["key"], origin), file=sys.stderr)
print(n)')"
[ "$marked" = "$replayed" ] || fail "$marked replayed record(s) on $topic, not $replayed"

echo
echo "3am: the session read cleanly: $replayed record(s) replayed once, the second replay sent none"
