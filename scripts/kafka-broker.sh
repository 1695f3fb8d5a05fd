#!/usr/bin/env bash
# Makes sure a Kafka-protocol broker answers for the tests: the `tansu` broker from crates.io with
# its SQLite storage engine, on 127.0.0.1:19092 (or TEST_KAFKA_BROKERS). Installs tansu when it
# is missing (a ~10 minute build on 2 cores, once per machine), starts it in the background when
# nothing answers, and prints the address to export as TEST_KAFKA_BROKERS.
set -euo pipefail
brokers="${TEST_KAFKA_BROKERS:-127.0.0.1:19092}"
host="${brokers%:*}"; port="${brokers##*:}"

up() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if up; then
  echo "$brokers"
  exit 0
fi
tansu="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
if [ ! -x "$tansu" ]; then
  echo "installing tansu (cargo install tansu --locked --features libsql; ~10 minutes)" >&2
  cargo install tansu --locked --features libsql >&2
  tansu="$HOME/.cargo/bin/tansu"
fi
# The SQLite memory engine is wrong about end offsets in tansu 0.6.0; SQLite on disk is not.
dir="${TANSU_DIR:-$HOME/.cache/queue-autoscaler/tansu}"
mkdir -p "$dir"
cd "$dir"
nohup "$tansu" broker --listener-url "tcp://$host:$port" --advertised-listener-url "tcp://$host:$port" \
  --storage-engine sqlite://tansu.db > tansu.log 2>&1 &
for _ in $(seq 1 100); do
  if up; then
    echo "$brokers"
    exit 0
  fi
  sleep 0.2
done
echo "tansu did not start on $brokers; see $dir/tansu.log" >&2
exit 1
