#!/usr/bin/env bash
# Runs every test: formatting, lints, Rust unit + integration tests (the simulator over
# real TLS), the Python page-fidelity tests, the C ABI (plain, ASan+UBSan, valgrind) and
# its install tarball, the release Python wheel (manylinux2014, auditwheel) and the
# source installs (pip wheel ./python, the sdist), the crates' package lists, docs and
# minimum Rust version, the shared credential stores, the benchmarks (smoke mode), a bounded
# fuzzing run, and mutation testing of the decision code changed since its last full run.
# It installs what it needs (cbindgen, cargo-fuzz, pip packages, npm packages, apt
# packages) and builds once into one target dir that every step reuses.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
started=$SECONDS
# One build from a clean clone gains nothing from incremental caches; they cost ~1.6 GB.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo build (once; every later step reuses this target dir)"
cargo build --workspace --all-targets --locked

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The TLS-floor test runs OpenSSL's s_server as a TLS 1.0/1.1-only peer.
if ! command -v openssl >/dev/null; then
  step "installing openssl (the old-TLS test peer)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl
fi

step "Rust tests (machines, sessions and the simulator, over real TLS)"
cargo test --workspace --locked

step "the optional metrics feature: clippy, and the facade against the simulator"
cargo clippy -p tradeauth --features metrics --all-targets --locked -- -D warnings
cargo test -p tradeauth --features metrics --locked --test metrics_facade

step "Python: page-style clients against the standalone simulator"
ensure_venv
TRADEAUTH_SIM_BIN="$CARGO_TARGET_DIR/debug/tradeauth-sim" "$PY" -m pytest -q -p no:cacheprovider sim/tests/python

bash scripts/test_c.sh
bash scripts/test_python.sh
bash scripts/test_package.sh
if [ -f scripts/test_store.sh ]; then
  bash scripts/test_store.sh
fi
# The benchmarks must run (not meet a timing) in CI; BENCHMARKS.md has the real figures.
bash scripts/bench.sh --smoke
FUZZ_SECS="${FUZZ_SECS:-30}" bash scripts/test_fuzz.sh

# Mutation testing of the decision code (issue #20): only the mutants on lines changed
# since each group's last full run (core/mutants-full-run.txt); a missed one fails CI.
# Last: the mutated copies build into the shared target dir under the tree's own
# artifact names, so a step after this one could test the last mutant instead of the
# code (a bench once failed on `exp_seconds -> Some(1)` that way).
bash scripts/mutants.sh --in-diff

step "all tests passed in $((SECONDS - started)) s"
