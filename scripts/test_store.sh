#!/usr/bin/env bash
# The shared credential store's Redis tests (issue #8) against a real redis-server:
# installs it from the distribution's packages if missing, starts one on 127.0.0.1 (a
# free port, a random password, no persistence), exports TRADEAUTH_TEST_REDIS_URL and
# runs the `#[ignore]`d tests of `cargo test -p tradeauth --test store_redis`. The
# file-store tests need nothing and run with every `cargo test`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start_redis

step "Redis credential store tests"
cargo test -p tradeauth --test store_redis -- --include-ignored
cargo test -p tradeauth-cli --test cli -- --ignored store_status_lists_a_redis_store

step "Redis store tests passed"
