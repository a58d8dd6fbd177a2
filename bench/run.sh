#!/usr/bin/env bash
# Runs the shared overhead benchmark against Tollway with bench/tollway.toml.
# Needs: apt-get install -y wrk nginx-light; a venv with tollway installed at .venv (or TOLLWAY_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TOLLWAY_BIN:-$PWD/.venv/bin/tollway}
SECS=${SECS:-8}
rm -rf /tmp/tollway-bench
exec python3 ../shared/bench/overhead.py --secs "$SECS" --json /tmp/tollway-bench.json \
  --target "tollway=$BIN serve --config $PWD/bench/tollway.toml --port 8940|http://127.0.0.1:8940/health|http://127.0.0.1:8940/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream" "$@"
