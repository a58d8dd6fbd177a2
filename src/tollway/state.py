"""AppState: every shared object of a running Tollway, built at start-up, closed at shutdown.

Nothing else holds state between requests: no module globals.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.billing.outbox import Outbox
from tollway.billing.sender import BillingSender
from tollway.config import ProviderSettings, Settings
from tollway.logs import AccessLog
from tollway.pipeline.accounting import AccountingStage
from tollway.pipeline.attribution import AttributionStage
from tollway.pipeline.auth import AuthStage, KeyRing
from tollway.pipeline.decode import DecodeStage
from tollway.pipeline.proxy import Forwarder
from tollway.pipeline.route import RouteStage
from tollway.pipeline.stage import Stage
from tollway.pipeline.telemetry import TelemetryStage
from tollway.pricing import ModelPrice, PriceBook
from tollway.providers.base import Provider
from tollway.providers.registry import build_provider
from tollway.providers.transport import HttpTransport, Transport
from tollway.readiness import Readiness, store_probe
from tollway.routing.catalog import Catalog, Deployment
from tollway.secrets import SecretBox
from tollway.storage.audit import AuditLog
from tollway.storage.engine import make_engine, migrate
from tollway.storage.ledger import LedgerWriter
from tollway.storage.responses import ResponseStore
from tollway.telemetry.metrics import Metrics
from tollway.tokens import TokenCounter

log = logging.getLogger("tollway")

# The demo provider prices its tokens like a small real model, so new users see costs.
DEMO_PRICE = ModelPrice(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"),
                        cached_input_per_mtok=Decimal("0.075"))


def _open_tracing(settings: Settings) -> Any:
    try:
        from tollway.telemetry.tracing import Tracing
    except ImportError as e:
        raise RuntimeError("OpenTelemetry is configured ([otel] or OTEL_EXPORTER_OTLP_*), but its packages are "
                           f"not installed ({e.name}): pip install 'tollway[otel]'") from None
    return Tracing(settings.otel)


def price_overrides(settings: Settings) -> dict[str, ModelPrice]:
    out: dict[str, ModelPrice] = {"demo:*": DEMO_PRICE}
    for p in settings.prices:
        out[p.model] = ModelPrice(p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok,
                                  p.cache_write_per_mtok)
    return out


@dataclass(eq=False)
class AppState:
    settings: Settings
    engine: AsyncEngine
    ledger: LedgerWriter
    http: HttpTransport
    catalog: Catalog
    keys: KeyRing
    prices: PriceBook
    tokens: TokenCounter
    access_log: AccessLog
    metrics: Metrics | None = None  # None with [metrics] enabled = false
    tracing: Any = None  # telemetry.tracing.Tracing when OpenTelemetry is on
    outbox: Outbox | None = None  # billing events, when [[billing.sinks]] are configured
    billing: BillingSender | None = None
    # checks behind GET /health/ready: features add one per shared service they open
    readiness: Readiness = field(default_factory=Readiness)
    responses: ResponseStore = field(init=False)
    audit: AuditLog = field(init=False)
    # seals credentials set through the API; None without TOLLWAY_SECRET_KEY (then such calls are refused)
    secret_box: SecretBox | None = field(init=False)
    forwarder: Forwarder = field(init=False)
    stages: tuple[Stage, ...] = field(init=False)  # every proxied request: accounting, auth, attribution
    call_stages: tuple[Stage, ...] = field(init=False)  # model calls (unified routes): see pipeline.stage
    started_at: float = field(default_factory=time.time)
    _byok: dict[str, tuple[Provider, Transport]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.forwarder = Forwarder(self)
        self.responses = ResponseStore(self.engine)
        self.audit = AuditLog(self.engine)
        sk = self.settings.server.secret_key
        self.secret_box = SecretBox(sk.get_secret_value()) if sk is not None else None
        # accounting first: its after() runs last, for every request, failures included;
        # telemetry before it, so it sees the finished, priced request
        stages: tuple[Stage, ...] = (AccountingStage(self), AuthStage(self.keys), AttributionStage())
        if self.metrics is not None or self.tracing is not None:
            stages = (TelemetryStage(self.metrics, self.tracing), *stages)
        self.stages = stages
        self.call_stages = (*self.stages, DecodeStage(self), RouteStage(self))

    @classmethod
    async def open(cls, settings: Settings) -> "AppState":
        url = settings.store_url
        await migrate(url)
        engine = make_engine(url)
        metrics = Metrics(settings.metrics) if settings.metrics.enabled else None
        tracing = None
        if settings.otel.active():
            tracing = _open_tracing(settings)
            await tracing.start_export()
        outbox = Outbox(engine, list(settings.billing.sinks)) if settings.billing.sinks else None
        spool_dir = settings.server.data_dir / "spool"
        ledger = LedgerWriter(engine, spool_dir, batch_size=settings.store.batch_size,
                              flush_interval=settings.store.flush_interval_secs, outbox=outbox)
        await ledger.start()
        http = HttpTransport(settings.server.connect_timeout_secs, settings.server.read_timeout_secs)
        await http.start()
        tokens = TokenCounter()
        providers: list[tuple[Provider, Transport]] = []
        for ps in settings.providers:
            providers.append(build_provider(ps, http, tokens))
        prices = PriceBook(price_overrides(settings))
        catalog = Catalog(providers, settings.aliases, known_models=prices.known_models)
        # Long-lived start-up objects never need collecting; fewer, larger young-generation
        # collections cost far less per request at thousands of requests per second.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        state = cls(settings=settings, engine=engine, ledger=ledger, http=http, catalog=catalog,
                    keys=KeyRing(settings), prices=prices, tokens=tokens,
                    access_log=AccessLog(settings.logging.format, enabled=settings.logging.level in ("debug", "info")),
                    metrics=metrics, tracing=tracing, outbox=outbox)
        state.access_log.start()
        state.readiness.add("store", store_probe(engine, spool_dir))
        if metrics is not None:
            metrics.start_sync(ledger, tracing.exporter if tracing is not None else None)
        if outbox is not None:
            state.billing = BillingSender(outbox, settings.billing, metrics)
            await state.billing.start()
        # models of OpenAI-compatible servers: one short look now, retried in the background
        from tollway.providers.openai_compatible import ModelDiscovery

        catalog.discovery = ModelDiscovery(catalog, http)
        await catalog.discovery.start()
        if any(p.kind == "demo" for p in settings.providers):
            # the demo counts tokens on every call: load the encodings now, off the event loop
            asyncio.get_running_loop().run_in_executor(None, tokens.preload)
        return state

    async def close(self) -> None:
        if self.catalog.discovery is not None:
            await self.catalog.discovery.stop()
        if self.billing is not None:
            await self.billing.stop()
        await self.access_log.stop()
        await self.ledger.stop(drain_secs=max(5.0, self.settings.server.shutdown_grace_secs))
        if self.metrics is not None:
            await self.metrics.stop()
        if self.tracing is not None:
            await self.tracing.shutdown()
        await self.http.close()
        await self.engine.dispose()

    def byok_provider(self, kind: str) -> tuple[Provider, Transport]:
        """The provider for `/proxy/<kind>/`: the configured one's URL, but no key of ours."""
        found = self._byok.get(kind)
        if found is None:
            configured = self.catalog.first_of_kind(kind)
            base = configured[0].settings.base_url if configured else ""
            ps = ProviderSettings(id=configured[0].id if configured else kind, kind=kind, base_url=base)  # type: ignore[arg-type]
            found = build_provider(ps, self.http, self.tokens)
            self._byok[kind] = found
        return found

    def byok_deployment(self, kind: str, model: str) -> Deployment:
        provider, transport = self.byok_provider(kind)
        return Deployment(provider, transport, model)
