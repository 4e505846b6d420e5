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
link_soname "$LIBDIR"
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

step "libtradeauth.so: SONAME libtradeauth.so.0, only tradeauth_* exported"
# rustc's own version script exports exactly the #[no_mangle] functions (ffi/build.rs
# says why no second script is passed): this catches a dependency or a new function that
# would put another name into the ABI.
readelf -d "$LIBDIR/libtradeauth.so" | grep -F 'Library soname: [libtradeauth.so.0]'
EXPORTS="$(nm -D --defined-only "$LIBDIR/libtradeauth.so" | awk '{print $NF}')"
if grep -v '^tradeauth_' <<<"$EXPORTS"; then
  echo "libtradeauth.so exports the symbols above, which are not tradeauth_*" >&2
  exit 1
fi
echo "$(wc -l <<<"$EXPORTS") defined dynamic symbols, all tradeauth_*"

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
# Packed here, for the tarball step below: after the export, cargo would see a new
# PKG_CONFIG_PATH (build scripts such as aws-lc-sys rerun on it) and rebuild the library.
ffi/install.sh --tarball "$WORK/dist" debug >/dev/null
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

step "relocatable tarball: ffi/install.sh --tarball, unpacked elsewhere; C and C++, shared and static, via pkg-config and CMake"
TARBALLS=("$WORK"/dist/tradeauth-*-linux-"$(uname -m)".tar.gz)
# `if`, not `[ ] && [ ]`: set -e does not stop on the first test of an && list.
if [ "${#TARBALLS[@]}" != 1 ] || [ ! -f "${TARBALLS[0]}" ]; then
  echo "expected one tarball in $WORK/dist, got: ${TARBALLS[*]}" >&2
  exit 1
fi
# A fresh prefix that is not where the tarball was staged: nothing may point back there.
mkdir "$WORK/unpacked"
tar -C "$WORK/unpacked" -xzf "${TARBALLS[0]}"
TB="$WORK/unpacked/$(basename "${TARBALLS[0]}" .tar.gz)"
for f in LICENSE include/tradeauth.h include/tradeauth.hpp lib/libtradeauth.a \
  lib/pkgconfig/tradeauth.pc lib/cmake/tradeauth/tradeauthConfig.cmake \
  lib/cmake/tradeauth/tradeauthConfigVersion.cmake; do
  test -f "$TB/$f" || { echo "tarball lacks $f" >&2; exit 1; }
done
test "$(readlink "$TB/lib/libtradeauth.so")" = libtradeauth.so.0
SO_REAL="$(readlink "$TB/lib/libtradeauth.so.0")"
if ! [[ "$SO_REAL" =~ ^libtradeauth\.so\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || [ ! -f "$TB/lib/$SO_REAL" ]; then
  echo "lib/libtradeauth.so.0 points at '$SO_REAL', not an installed libtradeauth.so.X.Y.Z" >&2
  exit 1
fi
if grep -rlF -e "$REPO" -e tradeauth-tarball. "$TB/lib/pkgconfig" "$TB/lib/cmake"; then
  echo "the files above record a build path: the tarball would not be relocatable" >&2
  exit 1
fi
TB_WORK="$WORK/tarball-consumers"
mkdir "$TB_WORK"
(
  # No Rust toolchain at link time: the C side of a firm needs only a C/C++ compiler.
  PATH="$(tr ':' '\n' <<<"$PATH" | while read -r d; do
    [ -x "$d/cargo" ] || [ -x "$d/rustc" ] || printf '%s\n' "$d"
  done | paste -sd: -)"
  if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "cargo/rustc still on PATH: the link below would not prove it needs no Rust" >&2
    exit 1
  fi
  export PKG_CONFIG_PATH="$TB/lib/pkgconfig"
  SMOKE="$REPO/ffi/tests/install"
  # Not CFLAGS/CXXFLAGS: their -I"$REPO/include" would hide the tarball's headers.
  TB_CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic)
  TB_CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic)
  TB_LIB="$(pkg-config --variable=libdir tradeauth)"
  # shellcheck disable=SC2046 # pkg-config output is meant to split into flags
  {
    # Shared without an rpath (run with LD_LIBRARY_PATH below) and with one.
    gcc "${TB_CFLAGS[@]}" "$SMOKE/smoke.c" $(pkg-config --cflags --libs tradeauth) \
      -o "$TB_WORK/pc_c_shared"
    g++ "${TB_CXXFLAGS[@]}" "$SMOKE/smoke.cpp" $(pkg-config --cflags --libs tradeauth) \
      -Wl,-rpath,"$TB_LIB" -o "$TB_WORK/pc_cpp_shared"
    gcc "${TB_CFLAGS[@]}" $(pkg-config --cflags tradeauth) "$SMOKE/smoke.c" "$TB_LIB/libtradeauth.a" \
      $(pkg-config --static --libs-only-l tradeauth | sed 's/-ltradeauth//') -o "$TB_WORK/pc_c_static"
    g++ "${TB_CXXFLAGS[@]}" $(pkg-config --cflags tradeauth) "$SMOKE/smoke.cpp" "$TB_LIB/libtradeauth.a" \
      $(pkg-config --static --libs-only-l tradeauth | sed 's/-ltradeauth//') -o "$TB_WORK/pc_cpp_static"
  }
  cmake -S "$SMOKE" -B "$TB_WORK/cmake" -DCMAKE_PREFIX_PATH="$TB" >/dev/null
  cmake --build "$TB_WORK/cmake" -j 2 >/dev/null
)
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }
for bin in pc_c_shared pc_cpp_shared cmake/smoke_c_shared cmake/smoke_cpp_shared; do
  needed "$TB_WORK/$bin" | grep -qx libtradeauth.so.0 || {
    echo "$bin does not record NEEDED libtradeauth.so.0:" >&2; needed "$TB_WORK/$bin" >&2; exit 1; }
done
for bin in pc_c_static pc_cpp_static cmake/smoke_c_static cmake/smoke_cpp_static; do
  if needed "$TB_WORK/$bin" | grep libtradeauth; then
    echo "$bin is meant to be linked statically" >&2; exit 1
  fi
done
# Each shared program must load the unpacked library, not the build dir's: through
# LD_LIBRARY_PATH (no rpath) or through its rpath (pkg-config -Wl,-rpath, CMake's build
# rpath), with nothing else on the search path.
run_unpacked() {
  local llp="$1" bin="$TB_WORK/$2"
  local loaded
  # ldd prints the path as found (pkg-config's libdir is .../lib/pkgconfig/../../lib).
  loaded="$(env -u LD_LIBRARY_PATH ${llp:+LD_LIBRARY_PATH="$llp"} ldd "$bin" |
    sed -n 's/^[[:space:]]*libtradeauth\.so\.0 => \(.*\) (0x.*/\1/p')"
  if [ -z "$loaded" ] || [ "$(realpath "$loaded")" != "$(realpath "$TB/lib/libtradeauth.so.0")" ]; then
    echo "$bin loads libtradeauth.so.0 from '$loaded', not from $TB/lib" >&2
    exit 1
  fi
  env -u LD_LIBRARY_PATH ${llp:+LD_LIBRARY_PATH="$llp"} "$bin"
}
run_unpacked "$TB/lib" pc_c_shared
for bin in pc_cpp_shared cmake/smoke_c_shared cmake/smoke_cpp_shared; do
  run_unpacked "" "$bin"
done
for bin in pc_c_static pc_cpp_static cmake/smoke_c_static cmake/smoke_cpp_static; do
  env -u LD_LIBRARY_PATH "$TB_WORK/$bin"
done
echo "tarball: NEEDED libtradeauth.so.0, loaded from the unpacked lib/; static links need no Rust toolchain"

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
