#!/usr/bin/env bash
# Runs every benchmark of issue #7 (see BENCHMARKS.md for the figures and the targets):
#   1. Rust (criterion): hot-path header read, HS256 mint, EIP-191 sign, one machine step
#      (core/benches/hot_path.rs) and Cadenza/Cascade login round trips against the
#      in-process simulator (core/benches/login.rs);
#   2. C: tradeauth_session_header through the C ABI, 1 and 8 threads
#      (ffi/benches/header_bench.c);
#   3. Python: python/bench/bench.py (tradeauth vs PyJWT, eth_account, a page-style
#      requests client; import time, RSS, wheel size) — one table of ratios;
#   4. WebSocket (issue #16): Python messages/s, tradeauth `async for` vs the
#      `websockets` package (python/bench/ws_bench.py), and the C callback's per-message
#      latency vs a bare tokio-tungstenite reader, p50/p99 (ffi/benches/ws_latency.c,
#      sim/examples/ws_latency_bare.rs), on stamped deltas spaced 1 ms apart (latency)
#      and sent back to back (queueing), against a simulator of its own (release build
#      in the full run).
#   5. Scale (issue #21): 10,000 Cadenza + 10,000 Exchange sessions in one process from
#      Rust and from Python, shared pool vs a pool per session (scripts/bench_scale.sh;
#      the smoke run asserts connections, threads and concurrent renewals stay bounded).
#
# Usage: scripts/bench.sh [--smoke]
#   (full)   release builds (cargo bench, libtradeauth, a release wheel in its own venv
#            target/pyvenv-bench); takes ~15 min after the first release build.
#   --smoke  checks every bench runs, not how fast (CI): criterion in test mode (each
#            bench once, dev profile), the C bench with a few thousand calls against the
#            debug library, the Python bench with tiny N against the wheel that
#            scripts/test_python.sh installed (target/pyvenv-wheel). Under 2 minutes once
#            the workspace, the C library and the wheel are built.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--smoke]" >&2; exit 2 ;;
esac

# Nothing secret is printed by any bench, but keep library logs quiet.
export RUST_LOG="${RUST_LOG:-warn}"
BENCH_WORK="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-bench.XXXXXX")"

if [ "$SMOKE" = 1 ]; then
  PROFILE_DIR="$CARGO_TARGET_DIR/debug"
  step "Rust benches (criterion, test mode: each bench runs once)"
  # Named targets only: the library's own libtest harness would reject criterion flags.
  cargo test -p tradeauth --bench hot_path --bench login
  step "C ABI bench: build against the debug libtradeauth"
  cargo build -p tradeauth-ffi
  [ -x "$CARGO_TARGET_DIR/debug/tradeauth-sim" ] || cargo build -p tradeauth-sim
  step "WebSocket benches: the simulator and the bare Rust reader (debug)"
  # Always asked (a no-op when fresh): the WebSocket benches need the stamping simulator.
  cargo build -p tradeauth-sim --bin tradeauth-sim --example ws_latency_bare
  WS_SIM_BIN="$CARGO_TARGET_DIR/debug/tradeauth-sim"
  WS_BARE="$CARGO_TARGET_DIR/debug/examples/ws_latency_bare"
  # COUNT INTERVAL_US ROUNDS: spaced (latency) and back to back (queueing).
  WS_SPACED=(50 1000 1)
  WS_BURST=(200 0 1)
  WS_PAIRS=1
  WS_PY_ARGS=(--smoke)
  BENCH_PY_VENV="$CARGO_TARGET_DIR/pyvenv-wheel"
  C_ITER=20000
  PY_ARGS=(--smoke)
  if [ ! -x "$BENCH_PY_VENV/bin/python" ]; then
    source "$REPO/python/wheel.sh"
    build_wheel
    fresh_venv_with_wheel "$BENCH_PY_VENV"
  fi
else
  PROFILE_DIR="$CARGO_TARGET_DIR/release"
  step "Rust benches (criterion, release)"
  echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  cargo bench -p tradeauth --bench hot_path --bench login
  step "C ABI bench: build the release libtradeauth"
  cargo build --release -p tradeauth-ffi
  [ -x "$CARGO_TARGET_DIR/debug/tradeauth-sim" ] || cargo build -p tradeauth-sim
  step "WebSocket benches: release simulator and bare Rust reader"
  cargo build --release -p tradeauth-sim --bin tradeauth-sim --example ws_latency_bare
  WS_SIM_BIN="$CARGO_TARGET_DIR/release/tradeauth-sim"
  WS_BARE="$CARGO_TARGET_DIR/release/examples/ws_latency_bare"
  WS_SPACED=(3000 1000 3)
  WS_BURST=(20000 0 3)
  WS_PAIRS=2
  WS_PY_ARGS=(--count 200000 --rounds 5)
  step "Python: release wheel into target/pyvenv-bench"
  source "$REPO/python/wheel.sh"
  ensure_maturin
  rm -rf "$BENCH_WORK/wheel"
  "$TOOLS_VENV/bin/maturin" build --quiet --release -m "$PY_DIR/Cargo.toml" \
    --out "$BENCH_WORK/wheel" --interpreter python3 --strip --locked
  WHEEL="$(ls "$BENCH_WORK"/wheel/tradeauth-*-cp39-abi3-*.whl)"
  BENCH_PY_VENV="$CARGO_TARGET_DIR/pyvenv-bench"
  rm -rf "$BENCH_PY_VENV"
  python3 -m venv "$BENCH_PY_VENV"
  "$BENCH_PY_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r python/bench/requirements.txt "$WHEEL"
  C_ITER=2000000
  PY_ARGS=(--wheel "$WHEEL")
fi

# The full run's venue is the release simulator: a client benchmark must not measure how
# fast a debug build of the venue answers (with arequest that was the limit).
TRADEAUTH_SIM_BIN="$WS_SIM_BIN" start_sim

step "C ABI bench: tradeauth_session_header, 1 and 8 threads"
# The programs below need the SONAME link next to the library they are linked against.
link_soname "$PROFILE_DIR"
cc -O2 -std=c11 -Wall -Wextra -Werror -I"$REPO/include" ffi/benches/header_bench.c \
  -L"$PROFILE_DIR" -ltradeauth -Wl,-rpath,"$PROFILE_DIR" -lpthread -o "$BENCH_WORK/header_bench"
"$BENCH_WORK/header_bench" "$C_ITER" 8

step "Python bench (python/bench/bench.py)"
"$BENCH_PY_VENV/bin/python" python/bench/bench.py "${PY_ARGS[@]}"

step "WebSocket benches (issue #16), against a simulator of their own"
cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic -I"$REPO/include" ffi/benches/ws_latency.c \
  -L"$PROFILE_DIR" -ltradeauth -Wl,-rpath,"$PROFILE_DIR" -lpthread -o "$BENCH_WORK/ws_latency"
(
  # A subshell: its own simulator (stopped when the subshell exits), so the benches above
  # keep theirs and these run on the release build in the full run.
  export TRADEAUTH_SIM_BIN="$WS_SIM_BIN"
  start_sim
  echo "simulator: $WS_SIM_BIN; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  step "WebSocket latency, deltas ${WS_SPACED[1]} us apart: C callback vs bare tokio-tungstenite (alternating)"
  for _ in $(seq "$WS_PAIRS"); do
    "$BENCH_WORK/ws_latency" "${WS_SPACED[@]}"
    "$WS_BARE" "${WS_SPACED[@]}"
  done
  step "WebSocket queueing, ${WS_BURST[0]} deltas back to back: C callback vs bare tokio-tungstenite"
  "$BENCH_WORK/ws_latency" "${WS_BURST[@]}"
  "$WS_BARE" "${WS_BURST[@]}"
  step "WebSocket messages/s from Python: tradeauth vs websockets (python/bench/ws_bench.py)"
  "$BENCH_PY_VENV/bin/python" python/bench/ws_bench.py "${WS_PY_ARGS[@]}"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
)

# 5. Many accounts in one process (issue #21), simulators of their own.
source "$REPO/scripts/bench_scale.sh"

rm -rf "$BENCH_WORK"
step "benchmarks ran"
