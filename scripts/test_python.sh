#!/usr/bin/env bash
# The Python wheel's checks: build the abi3 wheel with the pinned maturin, inspect it
# (files, tag, no OpenSSL / libpython linked), pip-install it into a fresh venv with the
# pinned test dependencies, check the stubs (mypy.stubtest, mypy --strict on the examples
# and tests), and run pytest against the installed wheel and the simulator over TLS.
# Assumes `cargo build --workspace` has run (it builds the simulator if it is missing).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$REPO/python/wheel.sh"

WHEEL_VENV="$CARGO_TARGET_DIR/pyvenv-wheel"
SIM_BIN="${TRADEAUTH_SIM_BIN:-$CARGO_TARGET_DIR/debug/tradeauth-sim}"

step "Python: build the wheel (maturin, abi3, rustls)"
[ -x "$SIM_BIN" ] || cargo build --locked -p tradeauth-sim
build_wheel
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

step "Python: pip install the wheel into a fresh venv"
fresh_venv_with_wheel "$WHEEL_VENV"
"$WHEEL_VENV/bin/python" -c 'import tradeauth; print("tradeauth", tradeauth.__version__, "from", tradeauth.__file__)'

step "Python: stubs (mypy.stubtest) and mypy --strict on the examples and tests"
"$WHEEL_VENV/bin/python" -m mypy.stubtest tradeauth
"$WHEEL_VENV/bin/python" -m mypy --strict --cache-dir "$CARGO_TARGET_DIR/mypy-cache" \
  examples/python python/tests

step "Python: pytest against the installed wheel and the simulator"
TRADEAUTH_SIM_BIN="$SIM_BIN" "$WHEEL_VENV/bin/python" -m pytest -q -p no:cacheprovider python/tests

step "Python: all checks passed"
