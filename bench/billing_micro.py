"""Micro-benchmark: µs of CPU per billing event, from the ledger's write to delivery.

    python bench/billing_micro.py                       # SQLite, starts bench/null_receiver.py
    python bench/billing_micro.py --pg postgresql://postgres@127.0.0.1:5432/postgres
    python bench/billing_micro.py --n 20000 --batch 100 --repeat 3

What one event costs Tollway's process (time.process_time(), every thread), in two parts:

  write   the outbox rows the ledger's writer adds to its transaction for a batch of records
          that carry a customer (built and inserted), minus the same transaction without them
  send    the background sender: claim a batch, POST it signed to the receiver (the null
          receiver, another process, so its CPU is not counted), mark it delivered

`--batch` is both the ledger's batch and the sink's batch_size. The store server's CPU
(Postgres) is not counted: it is not the proxy's core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from tollway.billing.outbox import Outbox
from tollway.billing.sender import BillingSender
from tollway.config import BillingSettings, BillingSinkSettings
from tollway.storage.engine import make_engine, migrate
from tollway.storage.rows import row_from_record
from tollway.usage import Usage, UsageRecord

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(n: int) -> list[UsageRecord]:
    now = time.time() - 60
    return [UsageRecord(uuid.uuid4().hex, now + i * 1e-6, "openai.chat", provider="openai",
                        model_requested="gpt-4o-mini", usage=Usage(12, 9), cost_usd=Decimal("0.0000072"),
                        key_id="key_bench", customer=f"cust-{i % 50}") for i in range(n)]


async def one_run(url: str, receiver: str, n: int, batch: int) -> tuple[float, float, int]:
    await migrate(url)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM billing_outbox"))
        sink = BillingSinkSettings(id="meter", url=receiver + "/hook", secret="s", batch_size=batch)
        settings = BillingSettings(sinks=[sink])
        outbox = Outbox(engine, [sink])
        recs = records(n)
        chunks = [recs[i:i + batch] for i in range(0, n, batch)]
        stored = [[row_from_record(r) for r in chunk] for chunk in chunks]  # the ledger makes them anyway
        # warm-up: statement caches, the connection pool, the HTTP connection
        sender = BillingSender(outbox, settings)
        await sender.start()
        sender._stopping = True  # noqa: SLF001 - drive it by hand, not its loop
        async with engine.begin() as conn:
            await outbox.write(conn, records(2 * batch))
        while await sender._deliver_due(sink):  # noqa: SLF001
            pass
        gc.collect()

        # the ledger's transaction without, then with the outbox rows
        t = time.process_time()
        for _chunk in chunks:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
        empty = time.process_time() - t
        t = time.process_time()
        for chunk, rows in zip(chunks, stored, strict=True):
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
                await outbox.write(conn, chunk, rows)
        write = time.process_time() - t - empty

        t = time.process_time()
        sent = 0
        while await sender._deliver_due(sink):  # noqa: SLF001
            sent += 1
        send = time.process_time() - t
        await sender.stop()
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM billing_outbox WHERE state = 'pending'"))).scalar()
        if left:
            raise SystemExit(f"{left} events not delivered")
        return write / n * 1e6, send / n * 1e6, sent
    finally:
        await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", help="a Postgres server URL: the bench creates and drops its own database")
    a = ap.parse_args()
    gc.set_threshold(20_000, 50, 100)  # as `tollway serve` sets it
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "null_receiver.py"), "--port", str(port),
                             "--report-secs", "3600"], stdout=subprocess.DEVNULL)
    receiver = f"http://127.0.0.1:{port}"
    time.sleep(0.5)
    tmp = tempfile.TemporaryDirectory()
    db = None
    try:
        url = f"sqlite:///{tmp.name}/bench.db"
        if a.pg:
            db = f"tollway_billing_bench_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg_admin(a.pg, f"CREATE DATABASE {db}"))
            url = a.pg.rsplit("/", 1)[0] + "/" + db
        writes, sends = [], []
        for _ in range(a.repeat):
            w, s, _posts = asyncio.run(one_run(url, receiver, a.n, a.batch))
            writes.append(w)
            sends.append(s)
        w, s = statistics.median(writes), statistics.median(sends)
        store = "Postgres" if a.pg else "SQLite"
        print(f"{store}, {a.n} events, batches of {a.batch}, median of {a.repeat}:")
        print(f"{w:8.2f} µs  write: outbox rows in the ledger's transaction  [{min(writes):.2f}..{max(writes):.2f}]")
        print(f"{s:8.2f} µs  send: claim, POST, mark delivered               [{min(sends):.2f}..{max(sends):.2f}]")
        print(f"{w + s:8.2f} µs  per event in all")
    finally:
        if db:
            asyncio.run(_pg_admin(a.pg, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        tmp.cleanup()
        proc.terminate()
        proc.wait(5)


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
