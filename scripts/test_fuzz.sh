#!/usr/bin/env bash
# Fuzzes the parsers of venue input (responses, WebSocket replies) and of caller input
# (keys, addresses, tokens) for a bounded time per target: FUZZ_SECS (default 30).
# A longer run: FUZZ_SECS=300 bash scripts/test_fuzz.sh  (see RELIABILITY.md).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  step "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# cargo fuzz needs nightly-only flags (-Zsanitizer); the stable toolchain accepts them
# with RUSTC_BOOTSTRAP. Only this script's builds see it.
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECS:-30}"
cd core
for target in $(cargo fuzz list); do
  step "fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  log="$CARGO_TARGET_DIR/fuzz-$target.log"
  rc=0
  cargo fuzz run --target-dir "$CARGO_TARGET_DIR/fuzz" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed (exit $rc); a crashing input is kept in core/fuzz/artifacts/$target (make it a regression test)" >&2
    exit 1
  fi
done
step "fuzzing: no crashes"
