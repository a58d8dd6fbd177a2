#!/usr/bin/env python3
"""CPU per request of several configs, measured interleaved: the robust way to compare them
on a machine others are using.

    python3 bench/cpu_ab.py bench/tollway-telemetry-off.toml bench/tollway-telemetry.toml
    python3 bench/cpu_ab.py --stream A.toml B.toml            # c=16 streams instead of c=64 calls
    python3 bench/cpu_ab.py A.toml "A.toml@/tmp/old/src"      # the same config on other code (PYTHONPATH)
    python3 bench/cpu_ab.py A.toml "A.toml|OTEL_BSP_MAX_EXPORT_BATCH_SIZE=128"   # with a variable set
    ROUNDS=12 BURST=2 PORT_BASE=18960 python3 bench/cpu_ab.py ...   # servers on PORT_BASE, PORT_BASE+1, ...

`bench/cpu_per_request.py` measures one config after the other, so a change in the machine's
load between two configs shows up as a difference between them (±15 % here). This starts a
server per config at once (each pinned to CPU 0, each on a fresh empty data_dir), then drives
them in turn with short wrk bursts (BURST seconds, ROUNDS rounds, order alternating) and adds
up each server's CPU time (user + system, /proc) and requests over its own bursts: a drift in
load hits every config alike. Prints CPU µs per request (total and median burst) and the ratio
to the first config (the expected throughput ratio on one core), then each burst's figure.
The mock provider is the shared benchmark's nginx (started here unless one is running).
Each config is driven with BENCH_KEY if set, else its first [[keys]] key with the user role
(bench/tollway-limits.toml: the key that carries the limits), else its master key.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import shutil
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
sys.path.insert(0, SHARED)
import overhead  # noqa: E402  (the shared benchmark: its mock provider)
from cpu_per_request import fresh_data_dir  # noqa: E402  (beside this file)

TICK = os.sysconf("SC_CLK_TCK")
BIN = os.environ.get("TOLLWAY_BIN", os.path.join(HERE, "..", ".venv", "bin", "tollway"))


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wrk(lua: str, port: int, conns: int, secs: str) -> int:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "-s", lua,
                          f"http://127.0.0.1:{port}/v1/chat/completions"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if m is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk on :{port} reported errors:\n{out}")
    return int(m.group(1))


def key_of(cfg: str) -> str:
    """The key a config is driven with: BENCH_KEY, else its first [[keys]] key with the user role
    (so a config whose key carries limits is measured with them), else its master key."""
    if os.environ.get("BENCH_KEY"):
        return os.environ["BENCH_KEY"]
    with open(cfg, "rb") as f:
        conf = tomllib.load(f)
    for k in conf.get("keys", []):
        if isinstance(k.get("key"), str) and "user" in k.get("roles", ["user"]):
            return k["key"]
    return conf.get("server", {}).get("master_key", "")


def main() -> None:
    stream = "--stream" in sys.argv
    specs = [a for a in sys.argv[1:] if a != "--stream"]
    rounds, burst = int(os.environ.get("ROUNDS", "10")), os.environ.get("BURST", "2")
    tmp = tempfile.mkdtemp(prefix="tollway-ab-")
    ngx = None
    if not overhead.wait_http("http://127.0.0.1:18080/v1/models", 1):
        overhead.write_stream_file()
        ngx = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", os.path.join(SHARED, "mock_upstream.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert overhead.wait_http("http://127.0.0.1:18080/v1/models", 10), "mock upstream did not start"
    servers = []
    body = {"model": "gpt-4o-mini-stream" if stream else "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hello"}], **({"stream": True} if stream else {})}
    try:
        for i, spec in enumerate(specs):
            env, name = dict(os.environ), spec
            if "|" in spec:
                spec, assignment = spec.split("|", 1)
                var, value = assignment.split("=", 1)
                env[var] = value
            if "@" in spec:
                spec, env["PYTHONPATH"] = spec.split("@", 1)
            port = int(os.environ.get("PORT_BASE", "18960")) + i
            log = open(os.path.join(tmp, f"server-{i}.log"), "w")
            p = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--config", fresh_data_dir(spec, tmp, f"config-{i}.toml"),
                                  "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            lua = os.path.join(tmp, f"request-{i}.lua")
            with open(lua, "w") as f:
                f.write(f"wrk.method='POST'\nwrk.body={json.dumps(json.dumps(body))}\n"
                        f"wrk.headers['Content-Type']='application/json'\n"
                        f"wrk.headers['Authorization']='Bearer {key_of(spec)}'\n")
            servers.append((f"{name} #{i}", port, p, lua))
        conns = 16 if stream else 64
        for name, port, _, lua in servers:
            if not overhead.wait_http(f"http://127.0.0.1:{port}/health", 120):
                raise RuntimeError(f"{name} did not come up; see {tmp}")
            wrk(lua, port, 4, "2")  # warm-up
        bursts: dict[str, list[float]] = {name: [] for name, _, _, _ in servers}
        totals = {name: [0.0, 0] for name, _, _, _ in servers}
        for r in range(rounds):
            for name, port, p, lua in servers if r % 2 == 0 else servers[::-1]:
                c0 = cpu_s(p.pid)
                n = wrk(lua, port, conns, burst)
                used = cpu_s(p.pid) - c0
                if n == 0:  # a stalled burst (the machine is shared): nothing to divide by
                    print(f"{name}: a burst served no request; skipped", file=sys.stderr)
                    continue
                bursts[name].append(used / n * 1e6)
                totals[name][0] += used
                totals[name][1] += n
        unit = "µs/stream" if stream else "µs/req"
        base = None
        for name, _, _, _ in servers:
            v = totals[name][0] / totals[name][1] * 1e6
            base = base or v
            print(f"{name:48} {v:7.1f} {unit}  median burst {statistics.median(bursts[name]):7.1f}  "
                  f"ratio {base / v:5.3f}")
        print(f"(load average {os.getloadavg()[0]:.1f}; each burst's {unit}:)")
        for name, values in bursts.items():
            print(f"  {name}: " + " ".join(f"{v:.0f}" for v in values))
    finally:
        for _, _, p, _ in servers:
            os.killpg(p.pid, signal.SIGTERM)
        for _, _, p, _ in servers:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if ngx is not None:
            ngx.send_signal(signal.SIGQUIT)
            ngx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
