#!/usr/bin/env bash
# Runs the shared overhead benchmark against Tollway with bench/tollway.toml, or, with
# `bench/run.sh telemetry`, against bench/tollway-telemetry-off.toml and
# bench/tollway-telemetry.toml in one run (metrics, OTel export and a billing sink off / on;
# bench/null_receiver.py takes the traces and the webhook on :14318, on CPU 1).
# Needs: apt-get install -y wrk nginx-light; a venv with tollway installed at .venv (or TOLLWAY_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TOLLWAY_BIN:-$PWD/.venv/bin/tollway}
SECS=${SECS:-8}
target() {  # name config port
  echo "$1=$BIN serve --config $PWD/bench/$2 --port $3|http://127.0.0.1:$3/health|http://127.0.0.1:$3/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream"
}
if [ "${1:-}" = telemetry ]; then
  shift
  rm -rf /tmp/tollway-bench-telemetry /tmp/tollway-bench-telemetry-off
  taskset -c 1 python3 bench/null_receiver.py --port 14318 --report-secs 3600 > /tmp/tollway-null-receiver.log &
  RECEIVER=$!
  trap 'kill $RECEIVER 2>/dev/null || true; cat /tmp/tollway-null-receiver.log' EXIT
  python3 ../shared/bench/overhead.py --secs "$SECS" --json /tmp/tollway-bench-telemetry.json \
    --target "$(target tw-off tollway-telemetry-off.toml 8941)" --target "$(target tw-telem tollway-telemetry.toml 8942)" "$@"
  exit
fi
rm -rf /tmp/tollway-bench
exec python3 ../shared/bench/overhead.py --secs "$SECS" --json /tmp/tollway-bench.json \
  --target "$(target tollway tollway.toml 8940)" "$@"
