#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts PostgreSQL and Redis, runs every test, lint and the
# benchmark smoke test. This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hule-target}"
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
cargo build --release --quiet -p hule-cli
"$CARGO_TARGET_DIR/release/hule" check --baseline contracts/schema-baseline.json
"$CARGO_TARGET_DIR/release/hule" bench --quick --json "$CARGO_TARGET_DIR/bench-quick.json"
