#!/usr/bin/env bash
# Tests the C ABI: header drift, header compilation, the C ABI test program, the C, C++,
# ctypes and Node examples, plain, under ASan + UBSan, and under valgrind, against the
# simulator; plus the install step (pkg-config and CMake find_package).
#
# Assumes `cargo build --workspace` (debug) has run (target/debug/tradeauth-sim); builds
# tradeauth-ffi itself. Installs what it needs if missing: cbindgen (pinned below),
# valgrind, cmake. Takes about 2 minutes on 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The cbindgen that generated include/tradeauth.h. Bumping it may change the header:
# regenerate and commit both together.
CBINDGEN_VERSION=0.29.4

# A test panic prints Rust's panic message; a backtrace would only be noise.
export RUST_BACKTRACE=0
LIBDIR="$CARGO_TARGET_DIR/debug"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-test-c.XXXXXX")"
# common.sh's start_sim sets its own EXIT trap later; this one covers failures before it.
trap 'rm -rf "$WORK"' EXIT

CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -g -I"$REPO/include")
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -g -I"$REPO/include")
LINK=(-L"$LIBDIR" -ltradeauth -Wl,-rpath,"$LIBDIR" -lpthread)
# The external-signer test and example sign with OpenSSL's libcrypto (libtradeauth does
# not link it): only they add this.
CRYPTO=(-lcrypto)
# The sanitizers instrument the C/C++ side; the executable links libasan first, so the
# Rust library's malloc/free are intercepted without LD_PRELOAD.
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Memory errors of every kind fail the run, and so does a definite leak. "Possibly lost"
# blocks are not counted: the library's runtime is leaked on purpose (fork safety, see
# core/src/runtime.rs) and its threads still hold connection tasks that are closing when
# the process exits; valgrind sees their interior pointers as "possibly lost", and how
# many depends on timing. LeakSanitizer (the ASan runs) checks reachability as well.
VALGRIND=(valgrind --quiet --leak-check=full --error-exitcode=1 --fair-sched=yes
  --errors-for-leak-kinds=definite --show-leak-kinds=definite
  --suppressions="$REPO/ffi/tests/valgrind.supp")

apt_install() {
  if ! apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "$@" >/dev/null
  fi
}

step "cargo build -p tradeauth-ffi"
cargo build -p tradeauth-ffi
test -x "$CARGO_TARGET_DIR/debug/tradeauth-sim" || cargo build -p tradeauth-sim

step "tools: cbindgen $CBINDGEN_VERSION, valgrind, cmake, libssl-dev"
if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen $CBINDGEN_VERSION" ]; then
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --force
fi
command -v valgrind >/dev/null || apt_install valgrind
command -v cmake >/dev/null || apt_install cmake
test -f /usr/include/openssl/evp.h || apt_install libssl-dev

step "include/tradeauth.h is what cbindgen $CBINDGEN_VERSION generates"
cbindgen --quiet --config ffi/cbindgen.toml --crate tradeauth-ffi --output "$WORK/tradeauth.h" ffi
if ! diff -u include/tradeauth.h "$WORK/tradeauth.h"; then
  echo "include/tradeauth.h is stale: regenerate it with" >&2
  echo "  cbindgen --config ffi/cbindgen.toml --crate tradeauth-ffi --output include/tradeauth.h ffi" >&2
  exit 1
fi

step "the headers compile as C99 and C++17 (-Wall -Wextra -Werror -pedantic)"
printf '#include "tradeauth.h"\nint main(void) { return tradeauth_version() == 0; }\n' > "$WORK/h.c"
gcc "${CFLAGS[@]}" -c "$WORK/h.c" -o "$WORK/h_c.o"
cp "$WORK/h.c" "$WORK/h.cpp"
g++ "${CXXFLAGS[@]}" -c "$WORK/h.cpp" -o "$WORK/h_cpp.o"
printf '#include "tradeauth.hpp"\nint main() { return tradeauth::version().empty(); }\n' > "$WORK/hpp.cpp"
g++ "${CXXFLAGS[@]}" -c "$WORK/hpp.cpp" -o "$WORK/hpp.o"

step "build the ABI test and the examples (plain and ASan+UBSan)"
C_EXAMPLES=(cadenza partner cascade exchange ws_cascade ws_exchange)
gcc "${CFLAGS[@]}" ffi/tests/c/test_abi.c "${LINK[@]}" -o "$WORK/test_abi"
gcc "${CFLAGS[@]}" "${SAN[@]}" ffi/tests/c/test_abi.c "${LINK[@]}" -o "$WORK/test_abi_asan"
gcc "${CFLAGS[@]}" ffi/tests/c/test_redaction.c "${LINK[@]}" -o "$WORK/test_redaction"
gcc "${CFLAGS[@]}" "${SAN[@]}" ffi/tests/c/test_redaction.c "${LINK[@]}" -o "$WORK/test_redaction_asan"
gcc "${CFLAGS[@]}" ffi/tests/c/test_lifecycle.c "${LINK[@]}" -o "$WORK/test_lifecycle"
gcc "${CFLAGS[@]}" "${SAN[@]}" ffi/tests/c/test_lifecycle.c "${LINK[@]}" -o "$WORK/test_lifecycle_asan"
gcc "${CFLAGS[@]}" ffi/tests/c/test_ws.c "${LINK[@]}" -o "$WORK/test_ws"
gcc "${CFLAGS[@]}" "${SAN[@]}" ffi/tests/c/test_ws.c "${LINK[@]}" -o "$WORK/test_ws_asan"
gcc "${CFLAGS[@]}" ffi/tests/c/test_signer.c "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/test_signer"
gcc "${CFLAGS[@]}" "${SAN[@]}" ffi/tests/c/test_signer.c "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/test_signer_asan"
g++ "${CXXFLAGS[@]}" ffi/tests/cpp/test_signer.cpp "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/test_signer_cpp"
g++ "${CXXFLAGS[@]}" "${SAN[@]}" ffi/tests/cpp/test_signer.cpp "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/test_signer_cpp_asan"
gcc "${CFLAGS[@]}" examples/c/cascade_signer.c "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/cascade_signer"
gcc "${CFLAGS[@]}" "${SAN[@]}" examples/c/cascade_signer.c "${LINK[@]}" "${CRYPTO[@]}" -o "$WORK/cascade_signer_asan"
for ex in "${C_EXAMPLES[@]}"; do
  gcc "${CFLAGS[@]}" "examples/c/$ex.c" "${LINK[@]}" -o "$WORK/$ex"
  gcc "${CFLAGS[@]}" "${SAN[@]}" "examples/c/$ex.c" "${LINK[@]}" -o "$WORK/${ex}_asan"
done
g++ "${CXXFLAGS[@]}" "${SAN[@]}" examples/cpp/engine.cpp "${LINK[@]}" -o "$WORK/engine_asan"
for ex in ws_cascade ws_exchange; do
  g++ "${CXXFLAGS[@]}" "${SAN[@]}" "examples/cpp/$ex.cpp" "${LINK[@]}" -o "$WORK/${ex}_cpp_asan"
done

step "install step: ffi/install.sh, then pkg-config and find_package(tradeauth) consumers"
ffi/install.sh "$WORK/prefix" debug >/dev/null
export PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig"
# shellcheck disable=SC2046 # pkg-config output is meant to split into flags
gcc -std=c99 examples/c/exchange.c $(pkg-config --cflags --libs tradeauth) \
  -Wl,-rpath,"$WORK/prefix/lib" -o "$WORK/pc_exchange"
# shellcheck disable=SC2046
gcc -std=c99 $(pkg-config --cflags tradeauth) examples/c/partner.c "$WORK/prefix/lib/libtradeauth.a" \
  $(pkg-config --static --libs-only-l tradeauth | sed 's/-ltradeauth//') -o "$WORK/static_partner"
cmake -S ffi/tests/cmake -B "$WORK/cmake" -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/cmake" -j 2 >/dev/null
echo "pkg-config (shared, static) and CMake (tradeauth::tradeauth, tradeauth::static) consumers built"

step "start the simulator"
start_sim
trap 'kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
reset_sim() { curl -fsS --cacert "$SIM_CA" -X POST "$SIM_CONTROL/reset" >/dev/null; }

step "C ABI test (plain)"
"$WORK/test_abi"
step "C ABI test (ASan + UBSan)"
reset_sim
"$WORK/test_abi_asan"

step "C last-error redaction: an echoed key never reaches the last error (plain, ASan + UBSan)"
"$WORK/test_redaction"
"$WORK/test_redaction_asan"

step "C lifecycle test: free during calls, fork mid-refresh (plain, ASan + UBSan)"
reset_sim
"$WORK/test_lifecycle"
reset_sim
"$WORK/test_lifecycle_asan"

step "C WebSocket client test: tradeauth_ws_* (plain, ASan + UBSan)"
reset_sim
"$WORK/test_ws"
reset_sim
"$WORK/test_ws_asan"

step "C external signer, keystore and rotation test: tradeauth_cascade_new_with_signer etc. (plain, ASan + UBSan)"
reset_sim
"$WORK/test_signer"
reset_sim
"$WORK/test_signer_asan"

step "C++ external signer test: Session::cascade_with_signer etc. (plain, ASan + UBSan)"
reset_sim
"$WORK/test_signer_cpp"
reset_sim
"$WORK/test_signer_cpp_asan"

step "C examples (ASan + UBSan)"
for ex in "${C_EXAMPLES[@]}" cascade_signer; do
  echo "--- $ex"
  "$WORK/${ex}_asan"
done
echo "--- consumers built through pkg-config / the static library / CMake"
"$WORK/pc_exchange" >/dev/null
"$WORK/static_partner" >/dev/null
"$WORK/cmake/consumer_static" >/dev/null
echo "ok"

step "ctypes example (Python stdlib only)"
python3 examples/ctypes/tradeauth_ctypes.py

step "Node example (koffi)"
(cd examples/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
NODE_EXTRA_CA_CERTS="$SIM_CA" node examples/node/example.js

step "valgrind: C ABI test and the partner example"
reset_sim
TRADEAUTH_TEST_HEADER_READS=200 TRADEAUTH_TEST_READERS_YIELD=1 TRADEAUTH_TEST_SETTLE_MS=1500 "${VALGRIND[@]}" "$WORK/test_abi"
"${VALGRIND[@]}" "$WORK/partner" >/dev/null
reset_sim
TRADEAUTH_TEST_SETTLE_MS=1500 "${VALGRIND[@]}" "$WORK/test_lifecycle"
reset_sim
TRADEAUTH_TEST_SETTLE_MS=1500 "${VALGRIND[@]}" "$WORK/test_ws"
reset_sim
TRADEAUTH_TEST_SLOW=1 TRADEAUTH_TEST_HEADER_READS=200 TRADEAUTH_TEST_SETTLE_MS=1500 "${VALGRIND[@]}" "$WORK/test_signer"
reset_sim
"${VALGRIND[@]}" "$WORK/test_signer_cpp"
echo "valgrind: 0 memory errors, 0 definite leaks"

step "C++ engine example (ASan + UBSan; background refresh under hot-path readers)"
reset_sim
"$WORK/engine_asan" 5
reset_sim

step "C++ WebSocket examples, Cascade and Exchange (ASan + UBSan; tradeauth::WebSocket)"
"$WORK/ws_cascade_cpp_asan"
"$WORK/ws_exchange_cpp_asan"
reset_sim

echo
echo "test_c: all C ABI checks passed"
