#!/usr/bin/env bash
# Builds the fully static binary the container image ships (x86_64 musl), then checks that it
# is static and runs: `scripts/static-build.sh` (the Dockerfile runs the same cargo command).
#
# Needs the Rust musl target and musl-gcc (for ring's C parts); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
command -v musl-gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq musl-tools; }

cargo build --release --locked --target "$target" --bin queue-autoscaler
binary="${CARGO_TARGET_DIR:-target}/$target/release/queue-autoscaler"

# Static: no program interpreter, no dynamic section.
if readelf -l "$binary" | grep -q "Requesting program interpreter"; then
  echo "$binary is dynamically linked" >&2
  exit 1
fi
if readelf -d "$binary" 2>/dev/null | grep -q "(NEEDED)"; then
  echo "$binary needs shared libraries" >&2
  exit 1
fi
"$binary" --version
"$binary" validate --config config.example.toml
echo "static binary: $binary ($(du -h "$binary" | cut -f1))"
