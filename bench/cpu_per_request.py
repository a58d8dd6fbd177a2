#!/usr/bin/env python3
"""CPU time Tollway spends per request, for comparing configurations on a busy machine.

Throughput (bench/run.sh, the shared overhead benchmark) is the number that counts, but it needs
a quiet machine. The proxy's own CPU time per request is what limits its throughput on one
core, and it moves far less with what else runs on the machine, so ratios between
configurations measured in the same run are a fair preview of the throughput ratios.

Starts the shared benchmark's nginx mock provider, then each config in turn (pinned to CPU 0),
drives it with wrk (c=64 non-streamed, c=16 streamed, SECS seconds each) and reads the CPU time
(user + system, whole process tree) the server used during each run from /proc.

  python3 bench/cpu_per_request.py bench/tollway.toml bench/tollway-limits.toml ...
  (each config: its [server] port must be free; the key is taken from BENCH_KEY or the first
  key with the user role, else the master key; its data_dir is replaced by a fresh empty one).
  An argument `NAME=PORT=COMMAND` runs another
  server instead (e.g. the shared benchmark's floor proxy:
  "floor=18931=cd ../shared/bench && uvicorn floor_proxy:app --port 18931 --loop uvloop --http httptools --no-access-log").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
sys.path.insert(0, SHARED)
import overhead  # noqa: E402  (the shared benchmark: its mock provider and wrk driver)

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """user + system seconds of pid and all its descendants (live ones)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            pass
        stack += kids.get(p, [])
    return total


def fresh_data_dir(cfg: str, tmp: str, name: str | None = None) -> str:
    """A copy of `cfg` whose [server] data_dir is a new empty directory under `tmp`: the
    bench configs' data_dir is a fixed path under /tmp that every checkout on the machine
    shares (a store another branch migrated further fails to start, and a store grown by
    earlier runs costs more per request than a fresh one), so each config starts empty. The
    copy is `tmp/<name>` (default: the config's own file name)."""
    with open(cfg) as f:
        text = f.read()
    data = tempfile.mkdtemp(prefix="data-", dir=tmp)
    text, n = re.subn(r'(?m)^data_dir\s*=.*$', f"data_dir = {json.dumps(data)}", text, count=1)
    if not n:
        text = text.replace("[server]\n", f"[server]\ndata_dir = {json.dumps(data)}\n", 1)
    path = os.path.join(tmp, name or os.path.basename(cfg))
    with open(path, "w") as f:
        f.write(text)
    return path


def measure(pid: int, url: str, body: str, headers: dict, conns: int, secs: int) -> dict:
    c0 = tree_cpu_s(pid)
    r = overhead.wrk(url, body, headers, conns, secs)
    used = tree_cpu_s(pid) - c0
    return {"reqs": r["reqs"], "errs": r["errs"] + r["non2xx"], "cpu_s": used,
            "us_per_req": used / max(r["reqs"], 1) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--secs", type=int, default=int(os.environ.get("SECS", "6")))
    ap.add_argument("--bin", default=os.environ.get("TOLLWAY_BIN", os.path.join(HERE, "..", ".venv", "bin", "tollway")))
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--stream-model", default="gpt-4o-mini-stream")
    a = ap.parse_args()
    overhead.write_stream_file()
    ngx = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", os.path.join(SHARED, "mock_upstream.conf")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    tmp = tempfile.mkdtemp(prefix="tollway-cpu-")
    try:
        assert overhead.wait_http("http://127.0.0.1:18080/v1/models", 10), "mock upstream did not start"
        for cfg in a.configs:
            if "=" in cfg:
                name, port_s, command = cfg.split("=", 2)
                port, key = int(port_s), os.environ.get("BENCH_KEY", "none")
                cmd = ["taskset", "-c", "0", "bash", "-c", command]
            else:
                conf = tomllib.load(open(cfg, "rb"))
                port = conf.get("server", {}).get("port", 8930)
                key = os.environ.get("BENCH_KEY") or conf.get("server", {}).get("master_key", "")
                for k in conf.get("keys", []):
                    if isinstance(k.get("key"), str) and "user" in k.get("roles", ["user"]):
                        key = os.environ.get("BENCH_KEY") or k["key"]
                        break
                name = os.path.basename(cfg)
                cmd = ["taskset", "-c", "0", a.bin, "serve", "--config", fresh_data_dir(cfg, tmp), "--port", str(port)]
            log = open(f"/tmp/cpu_{name}.log", "w")
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                if not overhead.wait_http(f"http://127.0.0.1:{port}/health", 120):
                    raise RuntimeError(f"{name} did not come up; see /tmp/cpu_{name}.log")
                h = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                body = json.dumps({"model": a.model, "messages": [{"role": "user", "content": "Hello"}]})
                sbody = json.dumps({"model": a.stream_model, "stream": True,
                                    "messages": [{"role": "user", "content": "Hello"}]})
                overhead.wrk(url, body, h, 4, 2)  # warm-up
                rows.append((name, measure(p.pid, url, body, h, 64, a.secs), measure(p.pid, url, sbody, h, 16, a.secs)))
            finally:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
    finally:
        ngx.send_signal(signal.SIGQUIT)
        ngx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]
    print(f"{'config':32} {'µs/req':>8} {'ratio':>6} {'µs/stream':>10} {'ratio':>6} {'errors':>7}")
    for name, c, s in rows:
        print(f"{name:32} {c['us_per_req']:8.0f} {base[1]['us_per_req'] / c['us_per_req']:6.2f} "
              f"{s['us_per_req']:10.0f} {base[2]['us_per_req'] / s['us_per_req']:6.2f} {c['errs'] + s['errs']:7d}")
    print("(CPU time of the server per request, c=64 non-streamed and c=16 streamed; ratio = first config's "
          "CPU per request / this one's, i.e. the expected throughput ratio on one core; load average "
          f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
