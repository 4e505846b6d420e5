# Shared by scripts/demo.sh and scripts/test.sh: paths and the Python venv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="$CARGO_TARGET_DIR/venv"
PY="$VENV/bin/python"

step() { printf '\n==> %s\n' "$*"; }

ensure_venv() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  # Re-installs only when the requirements file changed since the last install.
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(sha256sum scripts/requirements-dev.txt | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-dev.txt
    echo "$want" > "$stamp"
  fi
}
