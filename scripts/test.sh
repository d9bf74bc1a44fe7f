#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts PostgreSQL, Redis and a real Kafka broker, runs every test,
# lint, the benchmark smoke test and a bounded run of every fuzz target, then stops the broker it started. This is
# the README's test command and exactly what .ci/run runs.
#
# HULE_TEST_KAFKA=host:port points the suite at an existing Kafka cluster instead (nothing is started or stopped;
# the tests create and delete topics there). Two tests start clusters of their own through scripts/kafka.sh: the
# three-node fault test on ports 29092–29094 and 29192–29194, the SASL/TLS test on 19092, 19192, 19292 and 19392, the
# scripted on-call session (scripts/three-am.sh) on 24092 and 24192, the console's browser test on 27092 and 27192
# (all below the ephemeral port range, so no client socket of another test can hold them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hule-target}"
# Incremental artefacts of a suite that runs on clean clones only fill the disk (31 GB seen).
export CARGO_INCREMENTAL=0
scripts/setup.sh

if [ -z "${HULE_TEST_KAFKA:-}" ]; then
  # The broker starts in the background while the build and lint run; its address is read after. A broker that was
  # already running (scripts/kafka.sh start by hand) is used and left running.
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    trap 'scripts/kafka.sh stop' EXIT
  fi
  scripts/kafka.sh start >"${TMPDIR:-/tmp}/hule-kafka-start.out" 2>"${TMPDIR:-/tmp}/hule-kafka-start.err" &
  kafka_start=$!
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --no-run --quiet

if [ -z "${HULE_TEST_KAFKA:-}" ]; then
  wait "$kafka_start" || { cat "${TMPDIR:-/tmp}/hule-kafka-start.err" >&2; echo "test.sh: Kafka did not start" >&2; exit 1; }
  HULE_TEST_KAFKA="$(tail -n1 "${TMPDIR:-/tmp}/hule-kafka-start.out")"
  export HULE_TEST_KAFKA
fi
echo "test.sh: real Kafka at $HULE_TEST_KAFKA" >&2

cargo test --quiet
cargo build --release --quiet -p hule-cli
"$CARGO_TARGET_DIR/release/hule" check --baseline contracts/schema-baseline.json
"$CARGO_TARGET_DIR/release/hule" bench --quick --json "$CARGO_TARGET_DIR/bench-quick.json"
# Every fuzz target for a bounded time (scripts/fuzz.sh; HULE_FUZZ_SECONDS per target, default 20): a crash fails CI.
scripts/fuzz.sh "${HULE_FUZZ_SECONDS:-20}"
