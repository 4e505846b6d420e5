#!/usr/bin/env bash
# Runs every examples/python/ flow (one per venue page, plus asyncio) against the
# simulator with the built wheel, printing what happens. No secret is printed.
# Uses an already started simulator when SIM_CADENZA etc. are exported (scripts/demo.sh),
# else starts one. Assumes `cargo build --workspace` has run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$REPO/python/wheel.sh"

DEMO_VENV="$CARGO_TARGET_DIR/pyvenv-demo"
export PYTHONUNBUFFERED=1  # keep the examples' prints and log lines in order

step "Python: build the wheel and install it"
build_wheel
if [ ! -x "$DEMO_VENV/bin/python" ]; then
  python3 -m venv "$DEMO_VENV"
fi
stamp="$DEMO_VENV/.requirements.sha256"
want="$(sha256sum "$PY_DIR/requirements-test.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$DEMO_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PY_DIR/requirements-test.txt"
  echo "$want" > "$stamp"
fi
"$DEMO_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"

if [ -z "${SIM_CADENZA:-}" ]; then
  step "Python: start the simulator"
  start_sim
fi

# The simulator's demo accounts (public test values; the Cascade key is Hardhat's #0).
export TRADEAUTH_CA_CERT="$SIM_CA"
export CADENZA_EMAIL="demo@cadenza.test" CADENZA_PASSWORD="demo-password" CADENZA_BASE_URL="$SIM_CADENZA"
export PARTNER_CLIENT_ID="demo-client" PARTNER_SECRET_KEY="demo-partner-secret-key-0123456789abcdef"
export PARTNER_BASE_URL="$SIM_PARTNER"
export DEPOSIT_ADDRESS="0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
export DELEGATE_PRIVATE_KEY="0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
export CASCADE_BASE_URL="$SIM_CASCADE"
export EXCHANGE_API_KEY="exch_1d4208be6fa84b8cb0a2e5cfa9508d5f" EXCHANGE_ADMIN_TOKEN="demo-admin-token"
export EXCHANGE_BASE_URL="$SIM_EXCHANGE"

for example in cadenza partner cascade signer exchange websocket asyncio_demo shared_store; do
  step "Python: examples/python/$example.py"
  "$DEMO_VENV/bin/python" "examples/python/$example.py"
done
step "Python: every example ran"
