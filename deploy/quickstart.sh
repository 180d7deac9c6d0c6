#!/usr/bin/env bash
# From a fresh machine to a running demo: RabbitMQ (installed from the OS packages if
# nothing answers on 127.0.0.1:5672), a release build, and `billflow demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

source deploy/lib/rabbitmq.sh
ensure_rabbitmq

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust from https://rustup.rs first." >&2
  exit 1
fi
echo "building billflow (release)"
cargo build --release --locked --quiet
exec ./target/release/billflow demo "$@"
