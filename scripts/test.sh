#!/usr/bin/env bash
# Runs every test: formatting, lints, Rust unit + integration tests (the simulator over
# real TLS), and the Python page-fidelity tests against the standalone simulator.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (once; every later step reuses this target dir)"
cargo build --workspace --all-targets --locked

step "Rust tests"
cargo test --workspace --locked

step "Python: page-style clients against the standalone simulator"
ensure_venv
TRADEAUTH_SIM_BIN="$CARGO_TARGET_DIR/debug/tradeauth-sim" "$PY" -m pytest -q -p no:cacheprovider sim/tests/python

step "all tests passed"
