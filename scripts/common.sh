# Shared by scripts/demo.sh and scripts/test.sh: paths and the Python venv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="$CARGO_TARGET_DIR/venv"
PY="$VENV/bin/python"

# The wall-clock time on each step's line lets a CI log show where the minutes went.
step() { printf '\n==> %s  [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }

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

# Starts the standalone simulator in the background and exports its URLs:
# SIM_CADENZA, SIM_PARTNER, SIM_CASCADE, SIM_EXCHANGE, SIM_CONTROL, SIM_CA (PEM path),
# SIM_JSON (the whole line). It is stopped (SIGTERM) when the calling script exits.
start_sim() {
  local bin="${TRADEAUTH_SIM_BIN:-$CARGO_TARGET_DIR/debug/tradeauth-sim}"
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-sim.XXXXXX")"
  mkfifo "$dir/out"
  "$bin" --ca-out "$dir/ca.pem" "$@" > "$dir/out" 2> "$dir/sim.log" &
  SIM_PID=$!
  trap 'kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true' EXIT
  exec {SIM_FD}< "$dir/out"
  if ! IFS= read -r -t 30 -u "$SIM_FD" SIM_JSON; then
    echo "tradeauth-sim did not start; its log:" >&2
    cat "$dir/sim.log" >&2
    return 1
  fi
  export SIM_JSON
  eval "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("\n".join(f"export SIM_{k.upper()}={v!r}" for k, v in d.items()))' "$SIM_JSON")"
  export SIM_CA="$SIM_CA_CERT"
}

# Installs redis-server from the distribution's packages if missing, starts one on
# 127.0.0.1 (a free port, a random password, no persistence) that stops when the calling
# script exits, and exports TRADEAUTH_TEST_REDIS_URL for the Redis store tests.
start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    step "installing redis-server"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  fi
  step "starting redis-server on 127.0.0.1"
  REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-redis.XXXXXX")"
  REDIS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  local pass
  pass="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --requirepass "$pass" \
    --save '' --appendonly no --dir "$REDIS_DIR" > "$REDIS_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
  local _
  for _ in $(seq 100); do
    if redis-cli -p "$REDIS_PORT" -a "$pass" --no-auth-warning ping 2>/dev/null | grep -q PONG; then
      break
    fi
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" -a "$pass" --no-auth-warning ping | grep -q PONG || {
    echo "redis-server did not start; its log:" >&2
    cat "$REDIS_DIR/redis.log" >&2
    exit 1
  }
  export TRADEAUTH_TEST_REDIS_URL="redis://:$pass@127.0.0.1:$REDIS_PORT/0"
}

# libtradeauth.so has the SONAME libtradeauth.so.0 (ffi/build.rs), so a program linked
# with -L DIR -ltradeauth records NEEDED libtradeauth.so.0 and loads that name: give the
# cargo output DIR (e.g. target/debug) that link, as an installed lib/ has. Run it after
# `cargo build -p tradeauth-ffi`.
link_soname() {
  ln -sfn libtradeauth.so "$1/libtradeauth.so.0"
}
