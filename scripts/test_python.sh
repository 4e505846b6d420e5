#!/usr/bin/env bash
# The Python wheel's checks: build the release wheel a release ships (manylinux2014
# x86_64, abi3, linked by zig against glibc 2.17) with the pinned maturin, inspect it
# (files, metadata, tag, no OpenSSL / libpython linked, `auditwheel show`), pip-install it
# into a fresh venv with the pinned test dependencies, check the stubs (mypy.stubtest,
# mypy --strict on the examples and tests), and run pytest against the installed wheel
# and the simulator over TLS. Then the two source installs a user runs: `pip wheel
# ./python` must build the release profile, and the sdist must build and install.
# Assumes `cargo build --workspace` has run (it builds the simulator if it is missing).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$REPO/python/wheel.sh"

WHEEL_VENV="$CARGO_TARGET_DIR/pyvenv-wheel"
SIM_BIN="${TRADEAUTH_SIM_BIN:-$CARGO_TARGET_DIR/debug/tradeauth-sim}"

step "Python: build the release wheel (maturin --release --zig: manylinux2014 x86_64, abi3, rustls)"
[ -x "$SIM_BIN" ] || cargo build --locked -p tradeauth-sim
build_wheel manylinux2014
echo "built $(basename "$WHEEL")"

step "Python: inspect the wheel"
python3 - "$WHEEL" <<'PY'
import sys, zipfile
wheel = sys.argv[1]
names = set(zipfile.ZipFile(wheel).namelist())
want = {"tradeauth/__init__.py", "tradeauth/_native.pyi", "tradeauth/py.typed",
        "tradeauth/_native.abi3.so", "tradeauth/requests.py", "tradeauth/httpx.py"}
missing = want - names
assert not missing, f"missing from the wheel: {sorted(missing)}"
stray = [n for n in names if n.startswith(("tests/", "src/")) or n.endswith((".rs", ".toml"))]
assert not stray, f"unexpected files in the wheel: {stray}"
assert "-cp39-abi3-" in wheel, f"not an abi3 (CPython >= 3.9) wheel: {wheel}"
print(f"{len(names)} files: " + ", ".join(sorted(n for n in names if n.startswith("tradeauth/"))))
# The metadata an index page and a resolver read (PEP 621/639 through maturin).
info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
assert f"{info}/licenses/LICENSE" in names, "the license text is not in the wheel"
meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
fields = [line.split(": ", 1) for line in meta.split("\n\n", 1)[0].splitlines() if ": " in line]
def values(key):
    return [v for k, v in fields if k == key]
want_fields = {"License-Expression": ["Apache-2.0"], "License-File": ["LICENSE"],
               "Requires-Python": [">=3.9"]}
for key, want_value in want_fields.items():
    assert values(key) == want_value, f"METADATA {key}: {values(key)}"
assert values("Summary") == ["Trading venues' authentication (Cadenza, Partner, Cascade, Exchange), implemented once in Rust."], f"Summary: {values('Summary')}"
assert values("Description-Content-Type")[0].startswith("text/markdown"), "README not markdown"
assert "# tradeauth (Python)" in meta.split("\n\n", 1)[1], "README is not the description"
classifiers = set(values("Classifier"))
for minor in range(9, 15):
    assert f"Programming Language :: Python :: 3.{minor}" in classifiers, f"no 3.{minor} classifier"
assert "Typing :: Typed" in classifiers, "no Typing :: Typed classifier"
urls = {v.split(", ", 1)[0] for v in values("Project-URL")}
assert {"Homepage", "Repository", "Documentation", "Changelog"} <= urls, f"project URLs: {urls}"
print(f"metadata: {values('Name')[0]} {values('Version')[0]}, {len(classifiers)} classifiers, "
      f"license {values('License-Expression')[0]}, URLs {sorted(urls)}")
PY
unpacked="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-wheel.XXXXXX")"
python3 -m zipfile -e "$WHEEL" "$unpacked"
linked="$(ldd "$unpacked/tradeauth/_native.abi3.so")"
rm -rf "$unpacked"
if grep -Eiq 'libssl|libcrypto|libpython' <<< "$linked"; then
  echo "the native module links OpenSSL or libpython:" >&2
  echo "$linked" >&2
  exit 1
fi
echo "links only: $(awk '{print $1}' <<< "$linked" | tr '\n' ' ')"

step "Python: auditwheel show (manylinux2014: glibc 2.17, no external library)"
audit_wheel "$WHEEL" manylinux_2_17_x86_64

step "Python: pip install the wheel into a fresh venv"
fresh_venv_with_wheel "$WHEEL_VENV"
"$WHEEL_VENV/bin/python" -c 'import tradeauth; print("tradeauth", tradeauth.__version__, "from", tradeauth.__file__)'

step "Python: stubs (mypy.stubtest) and mypy --strict on the examples and tests"
"$WHEEL_VENV/bin/python" -m mypy.stubtest tradeauth
"$WHEEL_VENV/bin/python" -m mypy --strict --cache-dir "$CARGO_TARGET_DIR/mypy-cache" \
  examples/python python/tests

step "Python: pytest against the installed wheel and the simulator"
TRADEAUTH_SIM_BIN="$SIM_BIN" "$WHEEL_VENV/bin/python" -m pytest -q -p no:cacheprovider python/tests

# A user's own build: the PEP 517 backend (pip's isolated build with maturin from PyPI).
# It shares the target dir, so it rebuilds only what differs from the release wheel above
# (the C parts zig compiled there, and what depends on them).
SRC_WORK="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-pip.XXXXXX")"
trap 'rm -rf "$SRC_WORK"' EXIT

step "Python: pip wheel ./python builds the release profile"
python3 -m venv "$SRC_WORK/pip-venv"
"$SRC_WORK/pip-venv/bin/pip" wheel --disable-pip-version-check --no-deps -v \
  -w "$SRC_WORK/wheel" ./python > "$SRC_WORK/pip-wheel.log" 2>&1 || {
  tail -n 40 "$SRC_WORK/pip-wheel.log" >&2
  exit 1
}
# What cargo reports for the build that made the extension: the profile name and kind.
grep -E '^ *Finished `[a-z-]+` profile' "$SRC_WORK/pip-wheel.log" | tee "$SRC_WORK/profile"
if ! grep -q 'Finished `release` profile \[optimized\]' "$SRC_WORK/profile" \
  || grep -qv 'Finished `release` profile \[optimized\]' "$SRC_WORK/profile"; then
  echo "pip wheel ./python did not build (only) the optimised release profile" >&2
  exit 1
fi

step "Python: the sdist (maturin sdist) builds and installs into a fresh venv"
"$TOOLS_VENV/bin/maturin" sdist -m "$PY_DIR/Cargo.toml" --out "$SRC_WORK/sdist"
SDIST="$(ls "$SRC_WORK"/sdist/tradeauth-*.tar.gz)"
echo "built $(basename "$SDIST")"
python3 -m venv "$SRC_WORK/sdist-venv"
"$SRC_WORK/sdist-venv/bin/pip" install --disable-pip-version-check --quiet "$SDIST" \
  > "$SRC_WORK/sdist.log" 2>&1 || { tail -n 40 "$SRC_WORK/sdist.log" >&2; exit 1; }
"$SRC_WORK/sdist-venv/bin/python" - <<'PY'
import tradeauth
# A real call into the native module, not only the import: mint and check a token.
token = tradeauth.generate_token("sdist-check", "sdist-check-secret-0123456789abcdef")
assert token.count(".") == 2, "generate_token did not return a JWT"
print("the sdist installs: tradeauth", tradeauth.__version__, "from", tradeauth.__file__)
PY

step "Python: all checks passed"
