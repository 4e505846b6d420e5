#!/usr/bin/env bash
# Builds what the demo needs, starts the bundled simulator, and runs every venue's flow
# against it over real TLS from Rust, C and Python, printing each step (never a secret).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "building the library, the simulator and the Rust example (first run: several minutes)"
cargo build --locked -p tradeauth-sim -p tradeauth -p tradeauth-cli --bin tradeauth-sim \
  --example walkthrough --bin tradeauth

step "starting the simulator"
start_sim
echo "$SIM_JSON"

step "Rust: core/examples/walkthrough.rs"
"$CARGO_TARGET_DIR/debug/examples/walkthrough"

bash scripts/demo_c.sh
bash scripts/demo_python.sh

step "From the shell: tradeauth check, every venue (the demo accounts in the environment)"
(
  export TRADEAUTH_CA_CERT="$SIM_CA"
  export CADENZA_EMAIL=demo@cadenza.test CADENZA_PASSWORD=demo-password CADENZA_BASE_URL="$SIM_CADENZA"
  export PARTNER_CLIENT_ID=demo-client PARTNER_SECRET_KEY=demo-partner-secret-key-0123456789abcdef PARTNER_BASE_URL="$SIM_PARTNER"
  export CASCADE_DEPOSIT_ADDRESS=0x70997970C51812dc3A010C7d01b50e0d17dc79C8 CASCADE_BASE_URL="$SIM_CASCADE"
  # Hardhat/Anvil development account #0: a public test key, never used for anything real.
  export CASCADE_DELEGATE_PRIVATE_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
  export EXCHANGE_API_KEY=exch_1d4208be6fa84b8cb0a2e5cfa9508d5f EXCHANGE_BASE_URL="$SIM_EXCHANGE"
  for venue in cadenza partner cascade exchange; do
    "$CARGO_TARGET_DIR/debug/tradeauth" check "$venue"
  done
  echo
  echo "  tradeauth request cadenza GET /api/v3/user/profile:"
  "$CARGO_TARGET_DIR/debug/tradeauth" request cadenza GET /api/v3/user/profile | cut -c1-100
  echo "  tradeauth header cascade | tradeauth token inspect (claims and times; never the signature):"
  "$CARGO_TARGET_DIR/debug/tradeauth" header cascade | "$CARGO_TARGET_DIR/debug/tradeauth" token inspect \
    | grep -E '^(expires|status|signature)'
)

step "what the simulator counted"
python3 - <<'PY'
import json, os, ssl, urllib.request
context = ssl.create_default_context(cafile=os.environ["SIM_CA"])
with urllib.request.urlopen(os.environ["SIM_CONTROL"] + "/stats", context=context) as reply:
    for venue, counters in json.load(reply).items():
        shown = ", ".join(f"{k}={v}" for k, v in counters.items() if v)
        print(f"  {venue}: {shown}")
PY
