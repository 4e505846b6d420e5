#!/usr/bin/env bash
# Builds what the demo needs, starts the bundled simulator and walks every venue's
# authentication flow against it over real TLS, printing each step (never a secret).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "building the simulator"
cargo build --locked -p tradeauth-sim --bin tradeauth-sim
ensure_venv

step "walking each venue's flow with plain HTTPS clients, the way the venue pages do"
"$PY" scripts/demo_pages.py "$CARGO_TARGET_DIR/debug/tradeauth-sim"
