#!/usr/bin/env bash
# Builds libtradeauth and installs it with its headers, a pkg-config file and a CMake
# package config:
#
#   ffi/install.sh PREFIX [release|debug]      (default: release)
#
#   PREFIX/include/tradeauth.h, tradeauth.hpp
#   PREFIX/lib/libtradeauth.so, libtradeauth.a
#   PREFIX/lib/pkgconfig/tradeauth.pc                 pkg-config --cflags --libs tradeauth
#   PREFIX/lib/cmake/tradeauth/tradeauthConfig.cmake  find_package(tradeauth) -> tradeauth::tradeauth
#                                                     (and tradeauth::static)
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 PREFIX [release|debug]" >&2
  exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
PREFIX="$(cd "$1" && pwd)"
PROFILE="${2:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$PROFILE" in
  release) (cd "$REPO" && cargo build --release -p tradeauth-ffi) ;;
  debug) (cd "$REPO" && cargo build -p tradeauth-ffi) ;;
  *) echo "profile must be release or debug" >&2; exit 2 ;;
esac
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)"
# What a static link needs besides libtradeauth.a (rustc --print native-static-libs).
STATIC_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

install -d "$PREFIX/include" "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake/tradeauth"
install -m 0644 "$REPO/include/tradeauth.h" "$REPO/include/tradeauth.hpp" "$PREFIX/include/"
install -m 0755 "$TARGET_DIR/$PROFILE/libtradeauth.so" "$PREFIX/lib/"
install -m 0644 "$TARGET_DIR/$PROFILE/libtradeauth.a" "$PREFIX/lib/"

cat > "$PREFIX/lib/pkgconfig/tradeauth.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: tradeauth
Description: Trading venues' authentication (Cadenza, Partner, Cascade, Exchange), C ABI
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -ltradeauth
Libs.private: $STATIC_LIBS
PC

cat > "$PREFIX/lib/cmake/tradeauth/tradeauthConfig.cmake" <<'CMAKE'
# CMake package config for libtradeauth: find_package(tradeauth) gives
#   tradeauth::tradeauth  the shared library (libtradeauth.so)
#   tradeauth::static     the static library (libtradeauth.a) with its system libraries
get_filename_component(_tradeauth_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET tradeauth::tradeauth)
  add_library(tradeauth::tradeauth SHARED IMPORTED)
  set_target_properties(tradeauth::tradeauth PROPERTIES
    IMPORTED_LOCATION "${_tradeauth_prefix}/lib/libtradeauth.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_tradeauth_prefix}/include")
endif()
if(NOT TARGET tradeauth::static)
  add_library(tradeauth::static STATIC IMPORTED)
  set_target_properties(tradeauth::static PROPERTIES
    IMPORTED_LOCATION "${_tradeauth_prefix}/lib/libtradeauth.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_tradeauth_prefix}/include"
    INTERFACE_LINK_LIBRARIES "gcc_s;util;rt;pthread;m;dl;c")
endif()
set(tradeauth_FOUND TRUE)
unset(_tradeauth_prefix)
CMAKE

cat > "$PREFIX/lib/cmake/tradeauth/tradeauthConfigVersion.cmake" <<CMAKE
set(PACKAGE_VERSION "$VERSION")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CMAKE

echo "installed tradeauth $VERSION ($PROFILE) into $PREFIX"
