#!/usr/bin/env bash
# Builds the C examples against libtradeauth and runs one per venue against the
# simulator, then a WebSocket per WebSocket venue from C and from C++ (tradeauth.hpp),
# printing what each does (never a secret). Uses a running simulator if
# SIM_CADENZA etc. are already exported (e.g. from scripts/demo.sh), else starts one.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LIBDIR="$CARGO_TARGET_DIR/debug"
OUT="$CARGO_TARGET_DIR/examples-c"

step "build libtradeauth, the C examples and the C++ WebSocket examples"
cargo build -p tradeauth-ffi
link_soname "$LIBDIR"
test -x "$CARGO_TARGET_DIR/debug/tradeauth-sim" || cargo build -p tradeauth-sim
mkdir -p "$OUT"
C_EXAMPLES=(cadenza partner cascade exchange ws_cascade ws_exchange)
# cascade_signer's stand-in HSM is OpenSSL's libcrypto (libtradeauth does not link it):
# built and run when its headers are installed (libssl-dev; scripts/test_c.sh installs it).
if [ -f /usr/include/openssl/evp.h ]; then
  C_EXAMPLES+=(cascade_signer)
else
  echo "note: libssl-dev is not installed: skipping examples/c/cascade_signer.c"
fi
CPP_EXAMPLES=(ws_cascade ws_exchange)
for ex in "${C_EXAMPLES[@]}"; do
  extra=()
  [ "$ex" = cascade_signer ] && extra=(-lcrypto)
  gcc -std=c99 -Wall -Wextra -Werror -pedantic -I"$REPO/include" "examples/c/$ex.c" \
    -L"$LIBDIR" -ltradeauth -Wl,-rpath,"$LIBDIR" -lpthread "${extra[@]}" -o "$OUT/$ex"
done
for ex in "${CPP_EXAMPLES[@]}"; do
  g++ -std=c++17 -Wall -Wextra -Werror -pedantic -I"$REPO/include" "examples/cpp/$ex.cpp" \
    -L"$LIBDIR" -ltradeauth -Wl,-rpath,"$LIBDIR" -lpthread -o "$OUT/${ex}_cpp"
done
echo "built in $OUT: ${C_EXAMPLES[*]} (C), ${CPP_EXAMPLES[*]/%/_cpp} (C++)"

if [ -z "${SIM_CADENZA:-}" ] || [ -z "${SIM_CA:-}" ]; then
  step "start the simulator"
  start_sim
  echo "simulator: $SIM_JSON"
fi

for ex in "${C_EXAMPLES[@]}"; do
  step "C example: examples/c/$ex.c"
  "$OUT/$ex"
done
for ex in "${CPP_EXAMPLES[@]}"; do
  step "C++ example: examples/cpp/$ex.cpp"
  "$OUT/${ex}_cpp"
done
