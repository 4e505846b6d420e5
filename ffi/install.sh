#!/usr/bin/env bash
# Builds libtradeauth and installs it with its headers, a pkg-config file and a CMake
# package config, or packs the same tree into a relocatable tarball:
#
#   ffi/install.sh PREFIX [release|debug]              (default: release)
#   ffi/install.sh --tarball OUTDIR [release|debug]
#       -> OUTDIR/tradeauth-VERSION-linux-ARCH.tar.gz, top dir tradeauth-VERSION-linux-ARCH/
#
#   PREFIX/include/tradeauth.h, tradeauth.hpp
#   PREFIX/lib/libtradeauth.so.VERSION                the shared library (SONAME libtradeauth.so.0)
#   PREFIX/lib/libtradeauth.so.0 -> libtradeauth.so.VERSION   what programs load (their NEEDED)
#   PREFIX/lib/libtradeauth.so -> libtradeauth.so.0   what -ltradeauth finds at link time
#   PREFIX/lib/libtradeauth.a
#   PREFIX/lib/pkgconfig/tradeauth.pc                 pkg-config --cflags --libs tradeauth
#   PREFIX/lib/cmake/tradeauth/tradeauthConfig.cmake  find_package(tradeauth) -> tradeauth::tradeauth
#                                                     (and tradeauth::static)
#   PREFIX/LICENSE                                    (tarball only)
#
# Nothing in the tree records PREFIX: the pkg-config file and the CMake config find the
# prefix from their own location, so the tree can be moved or unpacked anywhere.
set -euo pipefail
usage() {
  echo "usage: $0 PREFIX [release|debug]" >&2
  echo "       $0 --tarball OUTDIR [release|debug]" >&2
  exit 2
}
TARBALL=0
if [ "${1:-}" = --tarball ]; then
  TARBALL=1
  shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] || usage
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
DEST="$(cd "$1" && pwd)"
PROFILE="${2:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$PROFILE" in
  release) (cd "$REPO" && cargo build --release -p tradeauth-ffi) ;;
  debug) (cd "$REPO" && cargo build -p tradeauth-ffi) ;;
  *) echo "profile must be release or debug" >&2; exit 2 ;;
esac
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)"
SO="$TARGET_DIR/$PROFILE/libtradeauth.so"
# The SONAME comes from ffi/build.rs; reading it from the library keeps one source of
# truth, and refuses a library built without it (its programs would need the dev symlink).
SONAME="$(readelf -d "$SO" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
case "$SONAME" in
  libtradeauth.so.*) ;;
  *) echo "$SO has no libtradeauth.so.N SONAME (got '$SONAME'); see ffi/build.rs" >&2; exit 1 ;;
esac
# What a static link needs besides libtradeauth.a (rustc --print native-static-libs).
STATIC_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

# Installs the whole tree under $1.
install_tree() {
  local prefix="$1"
  install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/tradeauth"
  install -m 0644 "$REPO/include/tradeauth.h" "$REPO/include/tradeauth.hpp" "$prefix/include/"
  install -m 0755 "$SO" "$prefix/lib/libtradeauth.so.$VERSION"
  # Relative links, so they survive moving the tree; -n replaces an old link in place
  # instead of following it.
  ln -sfn "libtradeauth.so.$VERSION" "$prefix/lib/$SONAME"
  ln -sfn "$SONAME" "$prefix/lib/libtradeauth.so"
  install -m 0644 "$TARGET_DIR/$PROFILE/libtradeauth.a" "$prefix/lib/"

  cat > "$prefix/lib/pkgconfig/tradeauth.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: tradeauth
Description: Trading venues' authentication (Cadenza, Partner, Cascade, Exchange), C ABI
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -ltradeauth
Libs.private: $STATIC_LIBS
PC

  # IMPORTED_LOCATION is the real file and IMPORTED_SONAME its SONAME, as CMake's own
  # exported targets do, so consumers record NEEDED libtradeauth.so.0.
  cat > "$prefix/lib/cmake/tradeauth/tradeauthConfig.cmake" <<CMAKE
# CMake package config for libtradeauth: find_package(tradeauth) gives
#   tradeauth::tradeauth  the shared library (libtradeauth.so, SONAME $SONAME)
#   tradeauth::static     the static library (libtradeauth.a) with its system libraries
get_filename_component(_tradeauth_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET tradeauth::tradeauth)
  add_library(tradeauth::tradeauth SHARED IMPORTED)
  set_target_properties(tradeauth::tradeauth PROPERTIES
    IMPORTED_LOCATION "\${_tradeauth_prefix}/lib/libtradeauth.so.$VERSION"
    IMPORTED_SONAME "$SONAME"
    INTERFACE_INCLUDE_DIRECTORIES "\${_tradeauth_prefix}/include")
endif()
if(NOT TARGET tradeauth::static)
  add_library(tradeauth::static STATIC IMPORTED)
  set_target_properties(tradeauth::static PROPERTIES
    IMPORTED_LOCATION "\${_tradeauth_prefix}/lib/libtradeauth.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_tradeauth_prefix}/include"
    INTERFACE_LINK_LIBRARIES "$(echo "$STATIC_LIBS" | sed 's/-l//g; s/ /;/g')")
endif()
set(tradeauth_FOUND TRUE)
unset(_tradeauth_prefix)
CMAKE

  cat > "$prefix/lib/cmake/tradeauth/tradeauthConfigVersion.cmake" <<CMAKE
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
}

if [ "$TARBALL" = 0 ]; then
  install_tree "$DEST"
  echo "installed tradeauth $VERSION ($PROFILE) into $DEST"
  exit 0
fi

NAME="tradeauth-$VERSION-linux-$(uname -m)"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-tarball.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
install_tree "$STAGE/$NAME"
install -m 0644 "$REPO/LICENSE" "$STAGE/$NAME/"
# Sorted names, root-owned entries, every mtime set to the last commit's time and no
# gzip timestamp: the same build gives the same tarball bytes, whoever packs it and when.
MTIME="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" \
  -cf - "$NAME" | gzip -n > "$DEST/$NAME.tar.gz"
echo "packed tradeauth $VERSION ($PROFILE) into $DEST/$NAME.tar.gz"
