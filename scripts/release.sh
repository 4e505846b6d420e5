#!/usr/bin/env bash
# Builds what a release ships into dist/ (issue #18):
#
#   dist/tradeauth-<version>-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#   dist/tradeauth-<version>-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl
#   dist/tradeauth-<version>.tar.gz                        the sdist
#   dist/tradeauth-<version>-linux-x86_64.tar.gz           the C library (ffi/install.sh)
#
# Both wheels are release builds linked by zig against glibc 2.17 (RHEL/Rocky 8, Amazon
# Linux 2 and later); the aarch64 one is cross-compiled the same way. `auditwheel show`
# checks each wheel's tag and that it needs no library outside the manylinux policy.
# Not in CI: the aarch64 cross-build is a second full release build (slow on 2 cores);
# scripts/test_python.sh builds, audits and tests the x86_64 wheel and the sdist.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$REPO/python/wheel.sh"
started=$SECONDS
DIST="$REPO/dist"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)"

step "tools: maturin, zig (ziglang), auditwheel; the aarch64 Rust target"
ensure_maturin
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
rm -rf "$DIST"
mkdir -p "$DIST"

for arch in x86_64 aarch64; do
  step "wheel: $arch manylinux2014 (release, zig)"
  maturin_zig build --quiet -m "$PY_DIR/Cargo.toml" --out "$DIST" --locked \
    --release --zig --compatibility manylinux2014 --target "$arch-unknown-linux-gnu"
done

step "sdist"
"$TOOLS_VENV/bin/maturin" sdist -m "$PY_DIR/Cargo.toml" --out "$DIST"

step "C library tarball"
ffi/install.sh --tarball "$DIST" release

step "auditwheel show"
for arch in x86_64 aarch64; do
  audit_wheel "$DIST/tradeauth-$VERSION-cp39-abi3-manylinux2014_$arch.manylinux_2_17_$arch.whl" \
    "manylinux_2_17_$arch"
done

step "dist/ ($((SECONDS - started)) s)"
ls -l "$DIST"
(cd "$DIST" && sha256sum -- *)
