# Sourced by scripts/test_python.sh and scripts/demo_python.sh (after scripts/common.sh):
# builds the tradeauth wheel with the pinned maturin and installs it into a venv.

PY_DIR="$REPO/python"
TOOLS_VENV="$CARGO_TARGET_DIR/pyvenv-tools"
WHEEL_DIR="$CARGO_TARGET_DIR/wheels"

# Installs the pinned maturin into its own venv (again only when the pin changes).
ensure_maturin() {
  if [ ! -x "$TOOLS_VENV/bin/python" ]; then
    python3 -m venv "$TOOLS_VENV"
  fi
  local stamp="$TOOLS_VENV/.requirements.sha256" want
  want="$(sha256sum "$PY_DIR/requirements-build.txt" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PY_DIR/requirements-build.txt"
    echo "$want" > "$stamp"
  fi
}

# Builds the abi3 wheel (dev profile: it reuses the workspace's compiled dependencies)
# into $WHEEL_DIR and sets WHEEL to its path.
build_wheel() {
  ensure_maturin
  rm -f "$WHEEL_DIR"/tradeauth-*.whl
  "$TOOLS_VENV/bin/maturin" build --quiet -m "$PY_DIR/Cargo.toml" --out "$WHEEL_DIR" \
    --interpreter python3 --strip --locked
  WHEEL="$(ls "$WHEEL_DIR"/tradeauth-*-cp39-abi3-*.whl)"
  export WHEEL
}

# Makes a fresh venv at $1 and pip-installs the wheel plus the pinned test dependencies.
fresh_venv_with_wheel() {
  local venv="$1"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$PY_DIR/requirements-test.txt" "$WHEEL"
}
