#!/usr/bin/env bash
# Runs every test of queue-autoscaler: the policy purity guard, formatting, clippy, then all
# unit, config, source (real Redis) and end-to-end (real binary + test API server) tests.
#
# Needs Redis on 127.0.0.1:6379 (or TEST_REDIS_URL). Tests that cannot reach it fail and say how
# to start it; they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "policy purity: src/policy uses std only, nothing asynchronous"
if grep -rnE '\b(tokio|futures|kube|k8s_openapi|redis|rdkafka|sqlx|metrics|tracing|serde)::|\basync\b' src/policy.rs src/policy \
    | grep -vE '^[^:]+:[0-9]+:\s*//'; then
  echo "src/policy must stay pure: the lines above import I/O, async, logging or serde" >&2
  exit 1
fi

step "services"
redis_url="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
redis_hostport="${redis_url#*://}"; redis_hostport="${redis_hostport##*@}"; redis_hostport="${redis_hostport%%/*}"
if ! (exec 3<>"/dev/tcp/${redis_hostport%:*}/${redis_hostport##*:}") 2>/dev/null; then
  echo "Redis is not reachable at $redis_hostport. Start it with:" >&2
  echo "  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no" >&2
  echo "or set TEST_REDIS_URL. The Celery and end-to-end tests need it." >&2
  exit 1
fi
echo "redis: $redis_hostport reachable"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-features

echo
echo "all tests passed"
