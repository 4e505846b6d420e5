#!/usr/bin/env bash
# The shared credential store's Redis tests (issue #8) against a real redis-server:
# installs it from the distribution's packages if missing, starts one on 127.0.0.1 (a
# free port, a random password, no persistence), exports TRADEAUTH_TEST_REDIS_URL and
# runs `cargo test -p tradeauth --test store_redis`. The file-store tests need nothing
# and run with every `cargo test`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

step "starting redis-server on 127.0.0.1"
REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tradeauth-redis.XXXXXX")"
REDIS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
REDIS_PASS="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --requirepass "$REDIS_PASS" \
  --save '' --appendonly no --dir "$REDIS_DIR" > "$REDIS_DIR/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; rm -rf "$REDIS_DIR"' EXIT
for _ in $(seq 100); do
  if redis-cli -p "$REDIS_PORT" -a "$REDIS_PASS" --no-auth-warning ping 2>/dev/null | grep -q PONG; then
    break
  fi
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" -a "$REDIS_PASS" --no-auth-warning ping | grep -q PONG || {
  echo "redis-server did not start; its log:" >&2
  cat "$REDIS_DIR/redis.log" >&2
  exit 1
}
export TRADEAUTH_TEST_REDIS_URL="redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0"

step "Redis credential store tests"
cargo test -p tradeauth --test store_redis

step "Redis store tests passed"
