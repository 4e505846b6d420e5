#!/usr/bin/env bash
# Builds the C examples against libtradeauth and runs one per venue against the
# simulator, printing what each does (never a secret). Uses a running simulator if
# SIM_CADENZA etc. are already exported (e.g. from scripts/demo.sh), else starts one.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LIBDIR="$CARGO_TARGET_DIR/debug"
OUT="$CARGO_TARGET_DIR/examples-c"

step "build libtradeauth and the C examples"
cargo build -p tradeauth-ffi
test -x "$CARGO_TARGET_DIR/debug/tradeauth-sim" || cargo build -p tradeauth-sim
mkdir -p "$OUT"
for ex in cadenza partner cascade exchange ws; do
  gcc -std=c99 -Wall -Wextra -Werror -pedantic -I"$REPO/include" "examples/c/$ex.c" \
    -L"$LIBDIR" -ltradeauth -Wl,-rpath,"$LIBDIR" -lpthread -o "$OUT/$ex"
done
echo "built $OUT/{cadenza,partner,cascade,exchange,ws}"

if [ -z "${SIM_CADENZA:-}" ] || [ -z "${SIM_CA:-}" ]; then
  step "start the simulator"
  start_sim
  echo "simulator: $SIM_JSON"
fi

for ex in cadenza partner cascade exchange ws; do
  step "C example: $ex"
  "$OUT/$ex"
done
