#!/usr/bin/env bash
# Builds what the demo needs, starts the bundled simulator, and runs every venue's flow
# against it over real TLS from Rust, C and Python, printing each step (never a secret).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "building the library, the simulator and the Rust example (first run: several minutes)"
cargo build --locked -p tradeauth-sim -p tradeauth --bin tradeauth-sim --example walkthrough

step "starting the simulator"
start_sim
echo "$SIM_JSON"

step "Rust: core/examples/walkthrough.rs"
"$CARGO_TARGET_DIR/debug/examples/walkthrough"

bash scripts/demo_c.sh
bash scripts/demo_python.sh

step "what the simulator counted"
python3 - <<'PY'
import json, os, ssl, urllib.request
context = ssl.create_default_context(cafile=os.environ["SIM_CA"])
with urllib.request.urlopen(os.environ["SIM_CONTROL"] + "/stats", context=context) as reply:
    for venue, counters in json.load(reply).items():
        shown = ", ".join(f"{k}={v}" for k, v in counters.items() if v)
        print(f"  {venue}: {shown}")
PY
