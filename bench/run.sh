#!/usr/bin/env bash
# Runs the shared overhead benchmark against Tollway with bench/tollway.toml (keyless: the master
# key only), and with LIMITS=1 also against bench/tollway-limits.toml (a key with a budget, an RPM
# and a TPM limit; in-process counters) and bench/tollway-limits-redis.toml (the same in Redis at
# 127.0.0.1:6379, keys under "tollway-bench:"), all in the same run so the ratios compare.
# With TELEMETRY=1 also against bench/tollway-telemetry-off.toml and bench/tollway-telemetry.toml
# (metrics, OTel export and a billing sink all off / all on; bench/null_receiver.py takes the
# traces and the webhook on 127.0.0.1:14318, on CPU 1, and prints what it got at the end).
# With ROUTING=1 also against bench/tollway-routing.toml (the benchmark models behind [[models]]
# with two deployments each, weighted policy, breakers on, a fallback configured).
# Needs: apt-get install -y wrk nginx-light (and redis-server for LIMITS=1); a venv with tollway
# installed at .venv (or TOLLWAY_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TOLLWAY_BIN:-$PWD/.venv/bin/tollway}
SECS=${SECS:-8}
rm -rf /tmp/tollway-bench /tmp/tollway-bench-limits /tmp/tollway-bench-limits-redis
targets=(--target "tollway=$BIN serve --config $PWD/bench/tollway.toml --port 8940|http://127.0.0.1:8940/health|http://127.0.0.1:8940/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream")
if [[ "${LIMITS:-0}" == "1" ]]; then
  # a fresh budget window for every run: forget the previous run's counters (our prefix only)
  if command -v redis-cli >/dev/null; then
    redis-cli -h 127.0.0.1 --scan --pattern 'tollway-bench:*' | xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null
  fi
  targets+=(--target "limits=$BIN serve --config $PWD/bench/tollway-limits.toml --port 8941|http://127.0.0.1:8941/health|http://127.0.0.1:8941/v1|bench-limited-key|gpt-4o-mini|gpt-4o-mini-stream")
  targets+=(--target "limits-redis=$BIN serve --config $PWD/bench/tollway-limits-redis.toml --port 8942|http://127.0.0.1:8942/health|http://127.0.0.1:8942/v1|bench-limited-key|gpt-4o-mini|gpt-4o-mini-stream")
fi
if [[ "${ROUTING:-0}" == "1" ]]; then
  rm -rf /tmp/tollway-bench-routing
  targets+=(--target "routing=$BIN serve --config $PWD/bench/tollway-routing.toml --port 8945|http://127.0.0.1:8945/health|http://127.0.0.1:8945/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream")
fi
if [[ "${TELEMETRY:-0}" == "1" ]]; then
  rm -rf /tmp/tollway-bench-telemetry /tmp/tollway-bench-telemetry-off
  taskset -c 1 python3 bench/null_receiver.py --port 14318 --report-secs 3600 > /tmp/tollway-null-receiver.log &
  receiver=$!
  trap 'kill $receiver 2>/dev/null || true; sleep 0.5; cat /tmp/tollway-null-receiver.log' EXIT
  targets+=(--target "telemetry-off=$BIN serve --config $PWD/bench/tollway-telemetry-off.toml --port 8943|http://127.0.0.1:8943/health|http://127.0.0.1:8943/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream")
  targets+=(--target "telemetry-on=$BIN serve --config $PWD/bench/tollway-telemetry.toml --port 8944|http://127.0.0.1:8944/health|http://127.0.0.1:8944/v1|bench-master-key|gpt-4o-mini|gpt-4o-mini-stream")
  python3 ../shared/bench/overhead.py --secs "$SECS" --json /tmp/tollway-bench.json "${targets[@]}" "$@"
  exit
fi
exec python3 ../shared/bench/overhead.py --secs "$SECS" --json /tmp/tollway-bench.json "${targets[@]}" "$@"
