#!/usr/bin/env bash
# Many accounts in one process (issue #21): N Cadenza + N Exchange sessions against a
# simulator of their own with N users and N traders, from Rust (core/examples/scale.rs)
# and from Python (python/bench/scale_bench.py). Sourced by scripts/bench.sh, which sets
# SMOKE, BENCH_WORK, BENCH_PY_VENV and the profile.
#
#   full:  10,000 + 10,000 sessions, access tokens of 60 s, 300 s, release builds; the
#          shared pool (today) and --private-pool (a pool per session, as before) side
#          by side, from Rust and from Python. ~25 min.
#   smoke: 300 + 300 sessions, 8 s tokens, 10 s (every session renews at least once);
#          asserts counts only: the venue sees <= 4 connections open at once, <= 40
#          threads, <= max_concurrent_renewals renewal requests in flight, and no failed
#          login, request or renewal and no hot-path read without a credential.

if [ "$SMOKE" = 1 ]; then
  SCALE_N=300
  SCALE_TTL=8
  SCALE_SECS=10
  SCALE_PROFILE=()
  SCALE_BIN="$CARGO_TARGET_DIR/debug/examples/scale"
  SCALE_MODES=("")
else
  SCALE_N=10000
  SCALE_TTL=60
  SCALE_SECS=300
  SCALE_PROFILE=(--release)
  SCALE_BIN="$CARGO_TARGET_DIR/release/examples/scale"
  SCALE_MODES=("" --private-pool)
fi
# Counts, not timings: what the smoke run asserts (and the full run reports).
SCALE_LIMITS=(--max-connections 4 --max-threads 40
  --max-renewals "${TRADEAUTH_MAX_CONCURRENT_RENEWALS:-8}")

step "Scale (issue #21): build core/examples/scale.rs"
cargo build "${SCALE_PROFILE[@]}" -p tradeauth --example scale

(
  # Ten thousand private pools need ~20,000 sockets on each side.
  ulimit -n 65536 2>/dev/null || true
  python3 - "$SCALE_N" "$SCALE_TTL" > "$BENCH_WORK/scale.json" <<'EOF'
import json, sys
n, ttl = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({
    "cadenza": {"users": [{"email": f"scale-{i}@scale.test", "password": f"scale-pw-{i}"}
                          for i in range(n)], "access_ttl_secs": ttl},
    "exchange": {"traders": [{"username": f"scale-trader-{i}", "api_key": f"exch_{i:032x}"}
                             for i in range(n)]},
}))
EOF
  export TRADEAUTH_SIM_BIN="${WS_SIM_BIN:-$CARGO_TARGET_DIR/debug/tradeauth-sim}"
  echo "simulator: $TRADEAUTH_SIM_BIN, $SCALE_N users and $SCALE_N traders, tokens of ${SCALE_TTL} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for mode in "${SCALE_MODES[@]}"; do
    limits=()
    if [ -z "$mode" ]; then limits=("${SCALE_LIMITS[@]}"); fi
    # Each run gets a simulator of its own (a subshell stops it), so its counts are its own.
    step "Scale from Rust: $SCALE_N Cadenza + $SCALE_N Exchange sessions, ${SCALE_SECS} s ${mode:-(shared pool)}"
    (
      start_sim --config "$BENCH_WORK/scale.json"
      # shellcheck disable=SC2086 # an empty mode is no argument
      "$SCALE_BIN" --cadenza "$SCALE_N" --exchange "$SCALE_N" --secs "$SCALE_SECS" $mode "${limits[@]}"
    )
    step "Scale from Python: $SCALE_N CadenzaClient + $SCALE_N ExchangeClient, ${SCALE_SECS} s ${mode:-(shared pool)}"
    (
      start_sim --config "$BENCH_WORK/scale.json"
      # shellcheck disable=SC2086
      "$BENCH_PY_VENV/bin/python" python/bench/scale_bench.py --cadenza "$SCALE_N" \
        --exchange "$SCALE_N" --secs "$SCALE_SECS" $mode "${limits[@]}"
    )
  done
)
