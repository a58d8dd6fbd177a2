#!/usr/bin/env python3
"""CPU µs per request of the whole app in-process (no HTTP server), and of the policy stage alone.

    python bench/limits_micro.py bench/tollway.toml bench/tollway-limits.toml [...]
    python bench/limits_micro.py --stage bench/tollway-limits.toml     # the policy stage only
    python bench/limits_micro.py --stage --hot bench/tollway-limits.toml   # the same, warm (steadier)

Whole app: each config is opened in a fresh subprocess (its [server] data_dir is replaced by a
temporary one, a Redis prefix gets the process id) and called through its ASGI entry point, 32 calls at a time, with the shared
benchmark's nginx mock as the provider (started here if :18080 does not answer). What is
measured is time.process_time() of the process (every thread: the ledger's writer included)
per call, so other load on the machine hardly moves it; the HTTP server's parsing (uvicorn,
httptools) is not included. Configs are run in turn, `--repeat` times, to show the noise.

`--stage`: the policy stage's before() + after() alone on a realistic context (a routed,
answered chat call of the config's first user key), N times: what the limits cost, without the
rest of the request around it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "bench"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'


def _key_of(conf: dict[str, Any]) -> str:
    for k in conf.get("keys", []):
        if isinstance(k.get("key"), str) and "user" in k.get("roles", ["user"]):
            return k["key"]
    return conf.get("server", {}).get("master_key", "")


async def _open(path: str, data_dir: str) -> tuple[Any, Any]:
    from tollway.app import TollwayApp
    from tollway.config import load_settings

    text = re.sub(r'(?m)^data_dir = .*$', f'data_dir = "{data_dir}"', Path(path).read_text())  # noqa: ASYNC240 (start-up of a bench)
    text = re.sub(r'(?m)^prefix = "(.*)"$', lambda m: f'prefix = "{m[1]}{os.getpid()}:"', text)  # own Redis keys
    conf = Path(data_dir) / "tollway.toml"
    conf.write_text(text)
    settings = load_settings(conf)
    app = TollwayApp(settings)
    started = asyncio.get_running_loop().create_future()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})

    async def send(msg: dict[str, Any]) -> None:
        if not started.done():
            started.set_result(msg)

    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
    msg = await started
    assert msg["type"] == "lifespan.startup.complete", msg
    return app, (task, inbox)


def _scope(key: str, body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8930),
            "headers": [(b"host", b"127.0.0.1:8930"), (b"content-type", b"application/json"),
                        (b"authorization", b"Bearer " + key.encode()), (b"content-length", str(len(body)).encode())]}


async def whole(path: str, n: int, conc: int) -> float:
    conf = tomllib.load(open(path, "rb"))  # noqa: ASYNC230
    key = _key_of(conf)
    with tempfile.TemporaryDirectory() as tmp:
        app, (task, inbox) = await _open(path, tmp)
        scope = _scope(key, BODY)
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                statuses.append(msg["status"])

        async def worker(k: int) -> None:
            for _ in range(k):
                await app(dict(scope), receive, send)

        await asyncio.gather(*(worker(50) for _ in range(conc)))  # warm-up
        gc.collect()
        statuses.clear()
        gc_time, gc_start = [0.0, 0, 0, 0], [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_start[0] = time.process_time()
            else:
                gc_time[0] += time.process_time() - gc_start[0]
                gc_time[1 + info["generation"]] += 1

        gc.callbacks.append(on_gc)
        t0 = time.process_time()
        await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
        used = time.process_time() - t0
        gc.callbacks.remove(on_gc)
        print(f"gc: {gc_time[0] / len(statuses) * 1e6:.1f} µs/call, collections by generation {gc_time[1:]}",
              file=sys.stderr)
        bad = sum(1 for s in statuses if s != 200)
        assert not bad, f"{bad} calls of {len(statuses)} were not 200"
        await inbox.put({"type": "lifespan.shutdown"})
        await task
        return used / len(statuses) * 1e6


async def _hot(stage: Any, ctxs: list[Any], n: int) -> dict[str, float]:
    """before() + after() on 64 contexts used in turn (admission and headers reset each time),
    the best of 10 runs of n/10: the stage's own cost with warm caches, steadier than a cold run."""
    from decimal import Decimal

    from tollway.usage import Usage

    for ctx in ctxs:
        ctx.status, ctx.usage, ctx.cost, ctx.metered = 200, Usage(12, 9), Decimal("0.0000072"), True
    first = len(ctxs[0].response_headers)

    async def run(k: int) -> float:
        t0 = time.process_time()
        for i in range(k):
            ctx = ctxs[i & 63]
            ctx.admission = None
            del ctx.response_headers[first:]
            ctx.trace_id = f"hot-{i}"
            await stage.before(ctx)
            await stage.after(ctx)
        return (time.process_time() - t0) / k * 1e6

    await run(2000)
    gc.collect()
    return {"policy before+after (hot)": min([await run(max(n // 10, 1)) for _ in range(10)])}


async def stage_only(path: str, n: int, hot: bool = False) -> dict[str, float]:
    from tollway.pipeline.context import RequestContext
    from tollway.pipeline.policy import PolicyStage
    from tollway.usage import Usage

    conf = tomllib.load(open(path, "rb"))  # noqa: ASYNC230
    key = _key_of(conf)
    with tempfile.TemporaryDirectory() as tmp:
        app, (task, inbox) = await _open(path, tmp)
        state = app.state
        stage = next(s for s in state.call_stages if isinstance(s, PolicyStage))
        auth, route = None, None
        for s in state.call_stages:
            if type(s).__name__ == "AuthStage":
                auth = s
            if type(s).__name__ == "RouteStage":
                route = s
        scope = _scope(key, BODY)
        pre = [s for s in state.call_stages[:state.call_stages.index(stage)]]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def make() -> RequestContext:
            ctx = RequestContext("openai.chat", "openai", "chat", "POST", "/v1/chat/completions",
                                 dict(scope["headers"]), receive, None)  # type: ignore[arg-type]
            for s in pre:
                if s is not auth and s is not route and type(s).__name__ not in ("DecodeStage", "AttributionStage"):
                    continue
                await s.before(ctx)
            return ctx

        if hot:
            return await _hot(stage, [await make() for _ in range(64)], n)
        ctxs = [await make() for _ in range(n)]
        for ctx in ctxs:
            ctx.status, ctx.usage = 200, Usage(8, 9)
        out = {}
        gc.collect()
        t0 = time.process_time()
        for ctx in ctxs:
            await stage.before(ctx)
        out["policy before()"] = (time.process_time() - t0) / n * 1e6
        t0 = time.process_time()
        for ctx in ctxs:
            await stage.after(ctx)
        out["policy after()"] = (time.process_time() - t0) / n * 1e6
        await inbox.put({"type": "lifespan.shutdown"})
        await task
        return out


def _ensure_mock() -> subprocess.Popen[bytes] | None:
    sys.path.insert(0, str(SHARED))
    import overhead

    if overhead.wait_http("http://127.0.0.1:18080/v1/models", 1):
        return None
    overhead.write_stream_file()
    p = subprocess.Popen(["nginx", "-c", str(SHARED / "mock_upstream.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    assert overhead.wait_http("http://127.0.0.1:18080/v1/models", 10), "mock upstream did not start"
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--n", type=int, default=6400)
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stage", action="store_true")
    ap.add_argument("--hot", action="store_true", help="with --stage: 64 contexts in turn, warm caches")
    ap.add_argument("-v", "--verbose", action="store_true", help="also print each run's garbage collections")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.stage:
            print(asyncio.run(stage_only(a.configs[0], a.n, a.hot)))
        else:
            try:
                import uvloop
                uvloop.install()
            except ImportError:
                pass
            print(asyncio.run(whole(a.configs[0], a.n, a.conc)))
        return
    mock = None if a.stage else _ensure_mock()
    try:
        results: dict[str, list[Any]] = {c: [] for c in a.configs}
        for _ in range(a.repeat):
            for c in a.configs:
                cmd = [sys.executable, __file__, "--child", "--n", str(a.n), "--conc", str(a.conc), c]
                if a.stage:
                    cmd.insert(2, "--stage")
                    if a.hot:
                        cmd.insert(2, "--hot")
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{c}: {out.stderr[-3000:]}")
                if a.verbose:
                    print(c, [ln for ln in out.stderr.splitlines() if ln.startswith("gc:")])
                results[c].append(eval(out.stdout.strip().splitlines()[-1]))  # our own child's repr
        for c, rs in results.items():
            if a.stage:
                for k in rs[0]:
                    vals = [r[k] for r in rs]
                    print(f"{os.path.basename(c):28} {k:18} {statistics.median(vals):7.1f} µs  "
                          f"({' '.join(f'{v:.1f}' for v in vals)})")
            else:
                print(f"{os.path.basename(c):28} {statistics.median(rs):7.1f} µs/call median, {min(rs):6.1f} min  "
                      f"({' '.join(f'{v:.0f}' for v in rs)})")
        print(f"(process CPU per call; load average {os.getloadavg()[0]:.1f})")
    finally:
        if mock is not None:
            mock.terminate()


if __name__ == "__main__":
    main()
