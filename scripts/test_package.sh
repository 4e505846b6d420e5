#!/usr/bin/env bash
# Checks what the Rust crates would publish (issue #18): each publishable crate's file
# list against scripts/package-lists/<crate>.txt, that its package (manifest and
# lockfile) can be made, that the docs build without warnings, and that the declared
# minimum Rust version still builds the library with the locked dependencies.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
started=$SECONDS
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-package.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The crates without `publish = false`, so one that becomes publishable is checked (and
# fails until it has an allow-list) instead of being skipped silently.
mapfile -t crates < <(cargo metadata --no-deps --locked --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] is None:
        print(p["name"])')
# The workspace's `rust-version`: the oldest toolchain the locked dependencies accept.
msrv="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"

# Cargo warns about every test, bench and example the include list leaves out (on
# purpose here: users build the lib only) and cannot be told not to
# (rust-lang/cargo#14290). Any other warning fails the check.
check_warnings() {
  local other
  other="$(grep '^warning:' "$1" | grep -Ev '^warning: ignoring (test|benchmark|example) `[^`]+` as `[^`]+` is not included in the published package$' || true)"
  if [ -n "$other" ]; then
    cat "$1" >&2
    echo "cargo package warned (see above)" >&2
    return 1
  fi
}

for crate in "${crates[@]}"; do
  t=$SECONDS
  step "cargo package --list: $crate against scripts/package-lists/$crate.txt"
  cargo package -p "$crate" --list --locked --allow-dirty > "$tmp/list" 2> "$tmp/err" || {
    cat "$tmp/err" >&2
    exit 1
  }
  check_warnings "$tmp/err"
  # The lists hold what cargo 1.95 prints, Cargo.toml.orig, .cargo_vcs_info.json and
  # Cargo.lock included (older cargos list some of those differently).
  LC_ALL=C sort "$tmp/list" > "$tmp/actual"
  if ! LC_ALL=C sort "scripts/package-lists/$crate.txt" | diff -u - "$tmp/actual"; then
    echo "$crate would publish other files than scripts/package-lists/$crate.txt (- listed, + packaged);" >&2
    echo "fix the include list in its Cargo.toml, or the allow-list if the change is meant" >&2
    exit 1
  fi
  echo "($((SECONDS - t)) s)"

  t=$SECONDS
  step "cargo package: $crate (the published manifest and its lockfile)"
  # This resolves the manifest cargo would upload against crates.io, so it catches a
  # dependency that is not published (a dev-dependency on the simulator with a version
  # once did). --no-verify: verifying builds the tarball from scratch, and without the
  # workspace's profiles every dependency rebuilds too, a full extra build in CI; the
  # lib's sources are the ones every other step builds.
  cargo package -p "$crate" --locked --allow-dirty --no-verify 2> "$tmp/err" || {
    cat "$tmp/err" >&2
    exit 1
  }
  check_warnings "$tmp/err"
  echo "($((SECONDS - t)) s)"
done

t=$SECONDS
step "cargo doc (warnings are errors)"
# The crates this part of the workspace owns; tradeauth with `metrics`, as docs.rs builds
# it (see [package.metadata.docs.rs]).
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --no-deps --locked \
  -p tradeauth -p tradeauth-sim -p tradeauth-cli --features tradeauth/metrics
echo "($((SECONDS - t)) s)"

t=$SECONDS
step "the minimum supported Rust version ($msrv): cargo check -p tradeauth --lib"
# A machine whose rustup cannot fetch another toolchain says so and skips the check
# (issue #18: "build with that toolchain if installable here, else say so"); any other
# failure fails the run.
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1 \
  && ! rustup toolchain install "$msrv" --profile minimal; then
  echo "SKIPPED: Rust $msrv cannot be installed on this machine; the MSRV was not checked" >&2
else
  # Its own target dir, so the other toolchain's artifacts do not evict the shared ones.
  # From scratch this checks every dependency and builds aws-lc's C (minutes; seconds
  # when warm). The MSRV is the newest `rust-version` among the locked dependencies
  # (alloy 2.5 asks for 1.94.1).
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/msrv" cargo "+$msrv" check -p tradeauth --locked --lib
fi
echo "($((SECONDS - t)) s)"

step "package checks passed in $((SECONDS - started)) s"
