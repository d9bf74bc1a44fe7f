#!/usr/bin/env bash
# Builds (release) and runs the hule tool with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hule-target}"
cargo build --release --quiet -p hule-cli
exec "$CARGO_TARGET_DIR/release/hule" "$@"
