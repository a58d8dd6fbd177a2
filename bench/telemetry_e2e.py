"""Quick end-to-end check: CPU per request of a running Tollway, telemetry off vs on.

    python bench/telemetry_e2e.py                     # 5 s per case, 8 connections
    python bench/telemetry_e2e.py --customer --stream --secs 3

Starts its own nginx mock provider (../shared/bench/mock_upstream.conf on free ports) and
bench/null_receiver.py, then for bench/tollway-telemetry-off.toml and
bench/tollway-telemetry.toml (ports rewritten, data under a temporary directory) starts
`tollway serve` pinned to CPU 0, drives it with wrk on CPU 1 at low concurrency, and reads
the server process's user + system CPU time (/proc) around the load: µs of CPU per request,
background tasks and threads included. Not the throughput benchmark (that is
`bench/run.sh telemetry`): a short, gentle load for a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
# ../shared/bench from the repository root (a checkout beside `shared/`, or a worktree one level deeper)
SHARED = next((p for p in (HERE.parent.parent / "shared" / "bench", HERE.parent.parent.parent / "shared" / "bench")
               if (p / "overhead.py").exists()), HERE.parent.parent / "shared" / "bench")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_split(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime: all threads


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, body: str, headers: dict[str, str], conns: int, secs: float, workdir: Path) -> int:
    lua = workdir / "req.lua"
    text = "wrk.method='POST'\nwrk.body=" + json.dumps(body) + "\n"
    for k, v in headers.items():
        text += f"wrk.headers[{json.dumps(k)}]={json.dumps(v)}\n"
    text += "done = function(s, l, r) io.write(string.format('REQS %d ERRS %d\\n', s.requests, " \
            "s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout + s.errors.status)) end\n"
    lua.write_text(text)
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(secs))}s", "-s", str(lua), url],
                         capture_output=True, text=True).stdout
    m = re.search(r"REQS (\d+) ERRS (\d+)", out)
    if not m:
        raise RuntimeError("wrk failed: " + out[-400:])
    if int(m.group(2)):
        print(f"  ! {m.group(2)} errors", file=sys.stderr)
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--customer", action="store_true", help="send x-tollway-customer (billing events are made)")
    ap.add_argument("--stream", action="store_true", help="also the 39-event stream")
    ap.add_argument("--bin", default=str(HERE.parent / ".venv" / "bin" / "tollway"))
    ap.add_argument("--configs", default="tollway-telemetry-off.toml,tollway-telemetry.toml")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the configs this many times (medians)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tw-e2e-"))
    up, up_stream, recv, port = free_port(), free_port(), free_port(), free_port()
    www = work / "www" / "v1"
    www.mkdir(parents=True)
    sys.path.insert(0, str(SHARED))
    import overhead  # the shared benchmark's stream body

    overhead.STREAM_FILE = str(www / "chat" / "completions")
    os.makedirs(www / "chat", exist_ok=True)
    overhead.write_stream_file()
    conf = (SHARED / "mock_upstream.conf").read_text()
    conf = (conf.replace("18080", str(up)).replace("18081", str(up_stream)).replace("/tmp/bench_www", str(work / "www"))
            .replace("/tmp/bench_nginx.pid", str(work / "nginx.pid"))
            .replace("/tmp/bench_nginx_error.log", str(work / "nginx_error.log")))
    (work / "nginx.conf").write_text(conf)
    procs = [subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(work / "nginx.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen(["taskset", "-c", "1", sys.executable, str(HERE / "null_receiver.py"), "--port", str(recv),
                               "--report-secs", "3600"], stdout=open(work / "receiver.log", "w"))]
    results: dict[str, dict[str, list[float]]] = {}
    try:
        wait_http(f"http://127.0.0.1:{up}/v1/models", 10)
        for name in a.configs.split(",") * a.rounds:
            cfg = (HERE / name).read_text().replace("18080", str(up)).replace("18081", str(up_stream))
            cfg = cfg.replace("14318", str(recv))
            cfg = re.sub(r'data_dir = ".*"', f'data_dir = "{work / (name + ".data")}"', cfg)
            (work / name).write_text(cfg)
            log = open(work / (name + ".log"), "w")
            p = subprocess.Popen(["taskset", "-c", "0", a.bin, "serve", "--config", str(work / name), "--port", str(port)],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_http(f"http://127.0.0.1:{port}/health", 60)
                base = f"http://127.0.0.1:{port}/v1/chat/completions"
                h = {"Content-Type": "application/json", "Authorization": "Bearer bench-master-key"}
                if a.customer:
                    h["x-tollway-customer"] = "acme"
                cases = {"chat": json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]})}
                if a.stream:
                    cases["stream"] = json.dumps({"model": "gpt-4o-mini-stream", "stream": True,
                                                  "messages": [{"role": "user", "content": "Hello"}]})
                for case, body in cases.items():
                    wrk(base, body, h, a.conns, 1, work)  # warm-up
                    time.sleep(1.0)  # let background work of the warm-up finish
                    c0 = cpu_seconds(p.pid)
                    u0, s0 = cpu_split(p.pid)
                    n = wrk(base, body, h, a.conns, a.secs, work)
                    u1, s1 = cpu_split(p.pid)
                    time.sleep(1.5)  # background work the load caused (exports, outbox) counts too
                    c1 = cpu_seconds(p.pid)
                    idle0 = cpu_seconds(p.pid)
                    time.sleep(1.5)
                    idle = cpu_seconds(p.pid) - idle0  # what an idle second costs, taken off
                    cpu = (c1 - c0) - idle / 1.5 * (a.secs + 1.5)
                    results.setdefault(case, {}).setdefault(name, []).append(cpu / n * 1e6)
                    print(f"{name:32} {case:7} {n:7d} requests  {n / a.secs:7.0f} req/s  "
                          f"{cpu / n * 1e6:7.1f} µs CPU/request (during load: user {(u1 - u0) / n * 1e6:.0f}, "
                          f"system {(s1 - s0) / n * 1e6:.0f})", flush=True)
            finally:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM if proc is procs[1] else signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("receiver:", (work / "receiver.log").read_text().strip().splitlines()[-1:])
        if os.environ.get("KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    names = a.configs.split(",")
    for case, r in results.items():
        for name in names:
            print(f"{case:7} {name:32} median {statistics.median(r[name]):7.1f} µs CPU/request of "
                  + ", ".join(f"{v:.1f}" for v in r[name]))
        if len(names) == 2:
            off, on = statistics.median(r[names[0]]), statistics.median(r[names[1]])
            if off and on:
                print(f"{case}: telemetry adds {on - off:.1f} µs CPU/request ({on / off:.3f}× the CPU; "
                      f"throughput bound ≈ {off / on:.3f}×)")


if __name__ == "__main__":
    main()
