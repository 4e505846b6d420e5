# Sourced by scripts/test_python.sh, scripts/demo_python.sh and scripts/release.sh (after
# scripts/common.sh): builds the tradeauth wheel with the pinned maturin (and zig for the
# manylinux2014 ones), audits it, and installs it into a venv.

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

# Builds the abi3 wheel into $WHEEL_DIR and sets WHEEL to its path. With no argument: the
# dev profile (scripts/demo_python.sh: it reuses the workspace's compiled dependencies;
# nobody ships it). With `manylinux2014`: what a release ships and what
# scripts/test_python.sh tests, the release profile linked by zig against glibc 2.17
# (RHEL/Rocky 8, Amazon Linux 2), tagged manylinux_2_17 (manylinux2014).
build_wheel() {
  ensure_maturin
  rm -f "$WHEEL_DIR"/tradeauth-*.whl
  if [ "${1:-}" = manylinux2014 ]; then
    maturin_zig build --quiet -m "$PY_DIR/Cargo.toml" --out "$WHEEL_DIR" --locked \
      --release --zig --compatibility manylinux2014
  else
    # --profile overrides pyproject.toml's `profile = "release"` for the demo only.
    "$TOOLS_VENV/bin/maturin" build --quiet -m "$PY_DIR/Cargo.toml" --out "$WHEEL_DIR" \
      --interpreter python3 --strip --locked --profile dev
  fi
  WHEEL="$(ls "$WHEEL_DIR"/tradeauth-*-cp39-abi3-*.whl)"
  export WHEEL
}

# maturin with the pinned zig (the `ziglang` package) on its PATH: `--zig` runs
# `python -m ziglang`, found through the tools venv's python.
maturin_zig() {
  PATH="$TOOLS_VENV/bin:$PATH" "$TOOLS_VENV/bin/maturin" "$@"
}

# `auditwheel show` on wheel $1 (printed as auditwheel words it), then its JSON report
# checked: the symbols allow tag $2 (e.g. manylinux_2_17_x86_64), the file carries that
# tag, and nothing outside the manylinux policy's libraries (glibc's) is linked, so
# nothing would have to be vendored into the wheel.
audit_wheel() {
  local wheel="$1" tag="$2"
  "$TOOLS_VENV/bin/auditwheel" show "$wheel"
  "$TOOLS_VENV/bin/auditwheel" show --json "$wheel" | python3 -c '
import json, os, sys
wheel, tag = sys.argv[1], sys.argv[2]
report = json.load(sys.stdin)
problems = []
allowed, external = report.get("overall_tag"), sorted(report.get("external_libs") or {})
if allowed != tag:
    problems.append(f"auditwheel allows {allowed!r}, not {tag!r}")
if external:
    problems.append(f"links libraries outside the policy: {external}")
if tag not in os.path.basename(wheel):
    problems.append(f"the file name does not carry {tag}")
if problems:
    sys.exit(f"auditwheel: {os.path.basename(wheel)}: " + "; ".join(problems))
print(f"auditwheel: {os.path.basename(wheel)}: {tag}, no external library")
' "$wheel" "$tag"
}

# Makes a fresh venv at $1 and pip-installs the wheel plus the pinned test dependencies.
fresh_venv_with_wheel() {
  local venv="$1"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$PY_DIR/requirements-test.txt" "$WHEEL"
}
