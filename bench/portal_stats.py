"""Benchmark (not a test): the portal's Overview on a large SQLite store.

1. Generates N usage records (default 1,000,000) spread over a year into a fresh SQLite store,
   through the real LedgerWriter (so the rollups are built exactly as in production, batch by
   batch, and the writer's throughput with rollups is measured too). Distributions are skewed
   like real traffic: Zipf-distributed models, projects, sources and customers; keys tied to
   projects and teams; ~3 % errors; lognormal latencies; some unpriced calls.
2. Starts `tollway serve` on that store and times what the Overview page loads: six /v1/stats
   calls fired together (series + top models, projects, teams, sources, customers), as the
   browser does, for every range (24h, 7d, 30d, year, all time), for all projects and for one
   project, and a team and a customer filter. Reports the median and worst of `--rounds` runs,
   and the load average (the machine may be shared: read the numbers with it).

    python bench/portal_stats.py                       # 1M records in bench/.portal-store/
    python bench/portal_stats.py --records 200000 --reuse
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from tollway.storage import LedgerWriter, make_engine, migrate
from tollway.usage import Usage, UsageRecord

HERE = Path(__file__).resolve().parent
MODELS = [("gpt-4o-mini", "openai", "0.15", "0.6"), ("gpt-4o", "openai", "2.5", "10"),
          ("claude-3-5-haiku", "anthropic", "0.8", "4"), ("claude-sonnet-4", "anthropic", "3", "15"),
          ("gemini-2.0-flash", "gemini", "0.1", "0.4"), ("o3-mini", "openai", "1.1", "4.4"),
          ("text-embedding-3-small", "openai", "0.02", "0"), ("llama3.2", "ollama", None, None),
          ("gpt-4.1", "openai", "2", "8"), ("claude-opus-4", "anthropic", "15", "75"),
          ("gemini-2.5-pro", "gemini", "1.25", "10"), ("mistral-large", "mistral", "2", "6")]
PROJECTS = ["search", "support-bot", "analytics", "internal-tools", "mobile", "billing", "growth", "research"]
SOURCES = ["web", "batch", "cron", "notebook", "api", "slack-bot"]


_CUM: dict[tuple[int, float], list[float]] = {}


def zipf_choice(rng: random.Random, items: list, s: float = 1.1):  # type: ignore[no-untyped-def]
    cum = _CUM.get((len(items), s))
    if cum is None:
        total, cum = 0.0, []
        for i in range(len(items)):
            total += 1 / (i + 1) ** s
            cum.append(total)
        _CUM[(len(items), s)] = cum
    return rng.choices(items, cum_weights=cum)[0]


def generate(n: int, seed: int = 1) -> list[UsageRecord]:
    rng = random.Random(seed)
    now = time.time()
    customers = [f"cust-{i:04d}" for i in range(300)]
    keys = [(f"key-{i:02d}", PROJECTS[i % len(PROJECTS)], f"team-{i % 5}") for i in range(20)]
    out = []
    for i in range(n):
        model, provider, pin, pout = zipf_choice(rng, MODELS)
        key, project, team = zipf_choice(rng, keys, 0.8)
        status = rng.choices([200, 429, 500, 400, 502], [970, 15, 8, 5, 2])[0]
        inp, outp = int(rng.lognormvariate(6, 1)), int(rng.lognormvariate(5, 1))
        ok = status < 400
        cost = None
        if ok and pin is not None:
            cost = (Decimal(pin) * inp + Decimal(pout) * outp) / Decimal(1_000_000)
        stream = rng.random() < 0.4
        latency = rng.lognormvariate(6.5, 0.8)
        out.append(UsageRecord(
            trace_id=f"bench-{i:08d}", ts=now - rng.random() * 365 * 86400, route="openai.chat",
            path="/v1/chat/completions", provider=provider, model_requested=model, model_served=model,
            stream=stream, usage=Usage(input_tokens=inp if ok else None, output_tokens=outp if ok else None,
                                       cached_tokens=rng.choice([0, 0, 0, inp // 2])),
            cost_usd=cost, cost_note=None if cost is not None else ("unknown model price" if ok else None),
            latency_ms=round(latency, 3), ttft_ms=round(latency * rng.uniform(0.1, 0.4), 3) if stream else None,
            status=status, error_type=None if ok else "provider:error", key_id=key, project=project, team=team,
            source=zipf_choice(rng, SOURCES), customer=zipf_choice(rng, customers) if rng.random() < 0.8 else None))
    out.sort(key=lambda r: r.ts)  # records reach the writer in time order, as they do in production
    return out


async def build_store(url: str, n: int) -> None:
    await migrate(url)
    engine = make_engine(url)
    writer = LedgerWriter(engine, HERE / ".portal-store" / "spool", max_queue=2_000_000)
    chunk = 100_000
    gen = time.perf_counter()
    everything = generate(n)
    gen = time.perf_counter() - gen
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        records = everything[start:start + chunk]
        for r in records:
            writer.put(r)
        await writer.flush()
        print(f"  {start + len(records):>9,} records stored", flush=True)
    await writer.stop(60)
    elapsed = time.perf_counter() - t0
    async with engine.connect() as conn:
        sizes = {t: (await conn.exec_driver_sql(f"SELECT count(*) FROM {t}")).scalar()
                 for t in ("usage_facets", "usage_daily", "usage_latency")}
        faces = (await conn.exec_driver_sql("SELECT facet, grain, count(*) FROM usage_facets GROUP BY 1, 2 "
                                            "ORDER BY 1, 2")).all()
    await engine.dispose()
    print(f"store built: {n:,} records in {elapsed:.1f} s of writing ({n / elapsed:,.0f} records/s through the "
          f"ledger writer, rollups included); rollup rows: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()))
    print("  usage_facets rows per facet/grain: " + ", ".join(f"{f}/{g}={c:,}" for f, g, c in faces))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


RANGES = [("24h", {"since": "24h"}, "hour"), ("7d", {"since": "7d"}, "hour"), ("30d", {"since": "30d"}, "day"),
          ("year", {"since": "365d"}, "week"), ("all time", {}, "month")]
SCENARIOS = [*((f"{name}, all projects", f, b) for name, f, b in RANGES),
             *((f"{name}, project=search", {**f, "project": "search"}, b) for name, f, b in RANGES),
             ("30d, team=team-1", {"since": "30d", "team": "team-1"}, "day"),
             ("year, team=team-1", {"since": "365d", "team": "team-1"}, "week"),
             ("30d, customer=cust-0003", {"since": "30d", "customer": "cust-0003"}, "day")]
TOPS = ("model", "project", "team", "source", "customer")


def overview(base: str, filters: dict[str, str], bucket: str, pool: ThreadPoolExecutor,
             tops: tuple[str, ...] = TOPS, old: bool = False) -> tuple[float, int]:
    qs = "&".join(f"{k}={v}" for k, v in filters.items())
    urls = [f"{base}/v1/stats?{qs}&group_by={bucket}",  # as the page asks: the top lists without percentiles
            *(f"{base}/v1/stats?{qs}&group_by={g}{'' if old else '&percentiles=false'}" for g in tops)]
    t0 = time.perf_counter()
    results = list(pool.map(get, urls))
    return (time.perf_counter() - t0) * 1000, results[0]["totals"]["requests"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reuse", action="store_true", help="keep an existing generated store (migrated first)")
    ap.add_argument("--without-team", action="store_true",
                    help="the Overview of builds before team was a dimension and percentiles=false (five calls "
                         "with percentiles; no team views)")
    args = ap.parse_args()
    data = HERE / ".portal-store"
    db = data / "tollway.db"
    if not (args.reuse and db.exists()):
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        print(f"generating {args.records:,} records over a year into {db} ...")
        asyncio.run(build_store(f"sqlite+aiosqlite:///{db}", args.records))
    t0 = time.perf_counter()
    asyncio.run(migrate(f"sqlite+aiosqlite:///{db}"))  # a reused store of an older version: timed here
    print(f"migrations: {time.perf_counter() - t0:.1f} s")
    print(f"store file: {sum(f.stat().st_size for f in data.glob('tollway.db*')) / 2**20:,.0f} MB")
    tops = tuple(g for g in TOPS if g != "team") if args.without_team else TOPS
    scenarios = [sc for sc in SCENARIOS if not (args.without_team and "team" in sc[1])]
    port = free_port()
    cfg = data / "bench.toml"
    cfg.write_text(f'[server]\ndata_dir = "{data}"\n[logging]\nlevel = "warning"\n')
    proc = subprocess.Popen([sys.executable, "-m", "tollway", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                get(base + "/health")
                break
            except OSError:
                time.sleep(0.2)
        with ThreadPoolExecutor(len(tops) + 1) as pool:
            overview(base, {}, "month", pool, tops, args.without_team)  # warm the page cache once
            print(f"\nOverview data ({len(tops) + 1} concurrent /v1/stats calls), {args.rounds} rounds, ms; "
                  f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
            print(f"{'view':<26} {'median':>8} {'worst':>8} {'requests in view':>18}")
            for name, filters, bucket in scenarios:
                times = []
                for _ in range(args.rounds):
                    ms, n = overview(base, filters, bucket, pool, tops, args.without_team)
                    times.append(ms)
                print(f"{name:<26} {statistics.median(times):>8.1f} {max(times):>8.1f} {n:>18,}")
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert math.isfinite(0.0)


if __name__ == "__main__":
    main()
