"""GET /health (liveness and readiness probes for orchestrators: probes.py).

/health says whether records reach the store: the writer's backlog, the spool, the last
successful write, and what could not be written or replayed. It answers 503 with
`"status": "degraded"` and the reasons in `problems` when the backlog or the spool passes its
`[store] degraded_*` threshold, the store is failing, or a write has hung; Tollway still
proxies then (records wait in memory or the spool): a load balancer wants /health/live or
/health/ready (probes.py), a monitor wants this. It is open, but it names the configured
providers only to a caller with a key (or when Tollway is open).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tollway import __version__
from tollway.api.asgi import Receive, Scope, Send, send_json
from tollway.api.authz import has_key
from tollway.storage.rows import iso_utc

if TYPE_CHECKING:
    from tollway.state import AppState


def ledger_health(state: "AppState") -> tuple[dict[str, Any], list[str]]:
    """The ledger part of /health and the problems that make it degraded."""
    ledger, limits = state.ledger, state.settings.store
    spool_bytes = ledger.spool_bytes()
    stalled = ledger.write_stalled_secs
    last = ledger.last_write
    info = {
        "pending": ledger.pending,
        "store_ok": ledger.store_ok,
        "last_write": None if last is None else iso_utc(last),
        "last_write_age_secs": None if last is None else round(time.time() - last, 3),
        "write_in_flight_secs": round(stalled, 3),
        "spool_bytes": spool_bytes,
        "written": ledger.written,
        "spooled": ledger.spooled,
        "replayed": ledger.replayed,
        "rejected": ledger.rejected,
        "batch_fallbacks": ledger.batch_fallbacks,
        "unreplayable": ledger.unreplayable,
        "lost": ledger.lost,
        "dead_letter_bytes": ledger.dead_letter_bytes(),
    }
    problems = []
    if not ledger.store_ok:
        problems.append("store writes are failing; records go to the spool")
    if ledger.pending > limits.degraded_pending:
        problems.append(f"{ledger.pending} records waiting to be written (threshold {limits.degraded_pending})")
    if spool_bytes > limits.degraded_spool_bytes:
        problems.append(f"{spool_bytes} bytes in the spool (threshold {limits.degraded_spool_bytes})")
    if stalled > limits.degraded_write_secs:
        problems.append(f"a store write has been in flight for {stalled:.1f}s "
                        f"(threshold {limits.degraded_write_secs:g}s)")
    return info, problems


class HealthRoutes:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self._state
        ledger, problems = ledger_health(st)
        # where limits and budgets are counted; with Redis down, [redis] on_error decides
        counters = st.counters.status()
        if not counters["ok"]:
            counters["on_error"] = st.settings.redis.on_error
            problems.append(f"counters: Redis unreachable since {counters['down_since']:.0f} "
                            f"({counters['last_error']}); calls with limits are "
                            + ("refused (fail_closed)" if st.settings.redis.on_error == "fail_closed"
                               else "passed uncounted (fail_open)"))
        body: dict[str, Any] = {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "version": __version__,
            "uptime_secs": int(time.time() - st.started_at),
            "providers": [p.id for p in st.catalog.providers] if has_key(st, scope) else [],
            "ledger": ledger,
            "requests": {"unauthenticated": st.unauthenticated},
            "counters": counters,
            "keys": {"version": st.refresher.version, "store_ok": st.refresher.last_error is None},
        }
        if st.connections is not None:
            body["connections"] = st.connections.snapshot()
        await send_json(send, 503 if problems else 200, body)
