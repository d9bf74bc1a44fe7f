#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for a bounded time and fails on the first crash, leak or timeout.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]      (default: 20 seconds each, every target)
#
# Uses the nightly toolchain (libFuzzer needs it) and cargo-fuzz, installing cargo-fuzz from crates.io when it is
# missing. New inputs that libFuzzer finds go to a scratch directory, not into the committed seed corpus
# (fuzz/corpus/<target>/); a crashing input is kept under fuzz/artifacts/<target>/ and printed. The build is cached
# in $HULE_FUZZ_TARGET_DIR (default ~/.cache/hule-fuzz-target).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
target_dir="${HULE_FUZZ_TARGET_DIR:-$HOME/.cache/hule-fuzz-target}"

say() { echo "fuzz: $*" >&2; }
rustup toolchain list | grep -q '^nightly' || { say "installing the nightly toolchain"; rustup toolchain install nightly --profile minimal; }
command -v cargo-fuzz >/dev/null || { say "installing cargo-fuzz"; cargo install cargo-fuzz --locked; }

say "building ${#targets[@]} targets"
cargo +nightly fuzz build --target-dir "$target_dir"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  say "$t for ${seconds}s"
  # -rss_limit_mb: a decoder must not blow up memory on one input; -timeout: nor hang on one.
  if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      > "$scratch/$t.log" 2>&1; then
    tail -n 40 "$scratch/$t.log" >&2
    say "$t FAILED; the input is under fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$t.log" | tr '\n' ' ' >&2 || true
  echo >&2
done
say "all ${#targets[@]} targets ran ${seconds}s each without a crash"
