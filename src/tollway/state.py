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
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.billing.outbox import Outbox
from tollway.billing.sender import BillingSender
from tollway.cache.service import ResponseCache, any_enabled, any_semantic
from tollway.config import ProviderSettings, Settings
from tollway.counters.base import CounterStore
from tollway.counters.memory import MemoryCounters
from tollway.counting import CountingPool
from tollway.guard.policy import Policies
from tollway.guard.sanitizer import Guard
from tollway.logs import AccessLog
from tollway.pipeline.accounting import AccountingStage
from tollway.pipeline.attribution import AttributionStage
from tollway.pipeline.cache import CacheStage
from tollway.pipeline.auth import AuthStage, KeyRing
from tollway.pipeline.context import RequestContext
from tollway.pipeline.decode import DecodeStage
from tollway.pipeline.policy import PolicyStage
from tollway.pipeline.guard import GuardStage
from tollway.pipeline.proxy import Forwarder
from tollway.pipeline.route import RouteStage
from tollway.pipeline.stage import Stage
from tollway.policy.directory import Directory
from tollway.policy.queue import SlotQueues
from tollway.policy.refresh import PolicyRefresher
from tollway.policy.store import PolicyStore
from tollway.pipeline.telemetry import TelemetryStage
from tollway.pricing import ModelPrice, PriceBook
from tollway.redis_client import open_redis
from tollway.providers.base import Provider
from tollway.providers.registry import build_provider
from tollway.providers.transport import HttpTransport, Transport
from tollway.readiness import Readiness, store_probe
from tollway.routing.catalog import Catalog, Deployment
from tollway.routing.health import MemoryHealth
from tollway.routing.outcome import HealthBoard, NoHealth
from tollway.routing.router import Router
from tollway.server.limits import ConnectionTracker
from tollway.secrets import SecretBox
from tollway.storage.audit import AuditLog
from tollway.storage.bodies import BodyStore
from tollway.storage.engine import make_engine, migrate
from tollway.storage.ledger import LedgerWriter
from tollway.storage.responses import ResponseStore
from tollway.storage.retention import Retention
from tollway.telemetry.metrics import Metrics
from tollway.tokens import TokenCounter

if TYPE_CHECKING:
    from tollway.providers.runtime import RuntimeProviders

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


async def open_cache(settings: Settings, redis: Any, metrics: Metrics | None) -> ResponseCache | None:
    """The response cache, when some mode is on ([cache], a model, a project or a key). The
    local embedder is loaded now (in a thread) when some semantic mode is on without
    `embedding_model`; the routed one needs the AppState and is attached by `open`."""
    if not any_enabled(settings):
        return None
    c = settings.cache
    if c.backend == "redis":
        from tollway.cache.redis_store import RedisStore

        store: Any = RedisStore(redis, settings.redis.prefix)
    else:
        from tollway.cache.store import MemoryStore

        store = MemoryStore(c.max_bytes)
    embedder = None
    if any_semantic(settings) and not c.embedding_model:
        from tollway.cache.embed import LocalEmbedder, missing_packages

        why = missing_packages()
        if why is not None:
            raise RuntimeError(f"[cache] mode = \"semantic\" is configured, but {why}")
        embedder = LocalEmbedder()
        await embedder.warm()
    log.info("cache: %s, %s%s, scope %s, ttl %gs%s", c.mode, c.backend,
             f" ({c.max_bytes // (1 << 20)} MiB)" if c.backend == "memory" else "", c.scope, c.ttl_secs,
             "; semantic embeddings: " + (c.embedding_model or "local all-MiniLM-L6-v2") if any_semantic(settings) else "")
    return ResponseCache(settings, store, embedder, metrics)


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
    counters: CounterStore = field(default_factory=MemoryCounters)  # limits and budgets: memory | redis
    metrics: Metrics | None = None  # None with [metrics] enabled = false
    tracing: Any = None  # telemetry.tracing.Tracing when OpenTelemetry is on
    outbox: Outbox | None = None  # billing events, when [[billing.sinks]] are configured
    redis: Any = None  # redis.asyncio.Redis when a feature needs [redis] (see redis_client)
    cache: "ResponseCache | None" = None  # the response cache, when configured anywhere
    billing: BillingSender | None = None
    # breakers, latency EWMAs, in-flight counts, credential cool-downs (routing.health); the attempt
    # loop reports every provider call to it (routing.outcome)
    health: HealthBoard = field(default_factory=NoHealth)
    router: Router = field(init=False)  # plans each call's deployments (routing.router)
    # checks behind GET /health/ready: features add one per shared service they open
    readiness: Readiness = field(default_factory=Readiness)
    responses: ResponseStore = field(init=False)
    audit: AuditLog = field(init=False)
    # seals credentials set through the API; None without TOLLWAY_SECRET_KEY (then such calls are refused)
    secret_box: SecretBox | None = field(init=False)
    forwarder: Forwarder = field(init=False)
    stages: tuple[Stage, ...] = field(init=False)  # every proxied request: accounting, auth, attribution
    call_stages: tuple[Stage, ...] = field(init=False)  # model calls (unified routes): see pipeline.stage
    # keys, teams, projects, customers, budgets in memory (policy.directory); replaced whole on change
    directory: Directory = field(default_factory=Directory)
    policy_store: PolicyStore = field(init=False)
    refresher: PolicyRefresher = field(init=False)
    slot_queues: SlotQueues = field(init=False)
    lease_ms: int = field(init=False)  # how long a budget reservation or a slot may be held
    # sanitization and body logging: None when configured nowhere (then no guard stage at all)
    guard: Guard | None = None
    guard_stage: GuardStage | None = field(init=False, default=None)
    bodies: BodyStore | None = None
    started_at: float = field(default_factory=time.time)
    # raw records older than [store] retention_days go in the background (None: kept forever)
    retention: Retention | None = None
    # providers added through the API; the one place that rebuilds `catalog` (providers/runtime.py)
    runtime_providers: "RuntimeProviders | None" = None
    counting: CountingPool = field(default_factory=CountingPool)  # large token counts, off the loop
    inflight: set[RequestContext] = field(default_factory=set)  # between AccountingStage.before and after
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever nothing is in flight
    connections: ConnectionTracker | None = None  # the HTTP server's, when it is Tollway's own (serve)
    unauthenticated: int = 0  # requests refused with 401 by the auth stage (logged, not recorded)
    realtime_sessions: int = 0  # Realtime WebSocket sessions open (api.realtime), at most [server] max_realtime_sessions
    _byok: dict[str, tuple[Provider, Transport]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)

    def _deployment_health(self, key: str, healthy: bool) -> None:
        """A breaker opened or closed: tollway_deployment_healthy (deployments, not credentials)."""
        provider, sep, model = key.partition(":")
        if sep and "|" not in provider and self.metrics is not None:
            self.metrics.deployment_health(provider, model, healthy)

    def __post_init__(self) -> None:
        if isinstance(self.health, NoHealth):
            self.health = MemoryHealth(self.settings.routing.breaker, self.settings.routing.ewma_alpha)
            if self.metrics is not None:
                self.health.on_change = self._deployment_health
        self.router = Router(self)
        self.forwarder = Forwarder(self)
        self.responses = ResponseStore(self.engine, self.settings.responses)
        self.audit = AuditLog(self.engine)
        sk = self.settings.server.secret_key
        self.secret_box = SecretBox(sk.get_secret_value()) if sk is not None else None
        self.policy_store = PolicyStore(self.engine)
        self.refresher = PolicyRefresher(self)
        self.slot_queues = SlotQueues(poll=None if self.counters.name == "memory" else 0.02)
        self.counters.on_released = self.slot_queues.released  # type: ignore[attr-defined]
        self.lease_ms = int((self.settings.budgets.lease_secs or self.settings.server.read_timeout_secs) * 1000)
        self._policy_stages = (PolicyStage(self), PolicyStage(self, metered=False))
        self._build_stages(with_policy=False)

    def _build_stages(self, with_policy: bool) -> None:
        # accounting first: its after() runs last, for every request, failures included;
        # telemetry before it, so it sees the finished, priced request
        base: tuple[Stage, ...] = (AccountingStage(self), AuthStage(self.keys), AttributionStage())
        if self.metrics is not None or self.tracing is not None:
            base = (TelemetryStage(self.metrics, self.tracing), *base)
        call, passthrough = self._policy_stages
        self._with_policy = with_policy
        self.stages = (*base, passthrough) if with_policy else base
        decode: tuple[Stage, ...] = (DecodeStage(self),)
        if self.guard is not None:
            if self.guard_stage is None:
                self.guard_stage = GuardStage(self)
            decode += (self.guard_stage,)
        policy: tuple[Stage, ...] = (call,) if with_policy else ()
        cache: tuple[Stage, ...] = (CacheStage(self.cache),) if self.cache is not None else ()
        # the agreed order: ... decode, guard, route, policy (limits, budget reserve), cache
        self.call_stages = (*base, *decode, RouteStage(self), *policy, *cache)

    def publish_directory(self, d: Directory) -> None:
        """Make `d` current; the policy stage joins or leaves the stage lists as limits appear or go."""
        self.directory = d
        if d.needs_policy != self._with_policy:
            self._build_stages(with_policy=d.needs_policy)
            if d.needs_policy:  # worst cases and token limits count tokens: load encodings off the loop
                asyncio.get_running_loop().run_in_executor(None, self.tokens.preload)

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
        counting = CountingPool()
        providers: list[tuple[Provider, Transport]] = []
        for ps in settings.providers:
            providers.append(build_provider(ps, http, tokens, counting))
        prices = PriceBook(price_overrides(settings))
        await asyncio.to_thread(prices.warm)
        guard = bodies = None
        if Policies.any_configured(settings):
            guard = Guard(settings)
            guard.warm()
            st = settings.store
            bodies = BodyStore(engine, guard, cap=st.body_max_bytes, retention_days=st.body_retention_days)
            await bodies.start()
        catalog = Catalog(providers, settings.aliases, known_models=prices.known_models)
        # Long-lived start-up objects never need collecting; fewer, larger young-generation
        # collections cost far less per request at thousands of requests per second.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        redis = open_redis(settings.redis) if settings.redis.url is not None else None
        cache = await open_cache(settings, redis, metrics)
        counters = await open_counters(settings)
        state = cls(settings=settings, engine=engine, ledger=ledger, http=http, catalog=catalog,
                    keys=KeyRing(settings), prices=prices, tokens=tokens, counting=counting, guard=guard,
                    bodies=bodies, counters=counters,
                    access_log=AccessLog(settings.logging.format, enabled=settings.logging.level in ("debug", "info")),
                    metrics=metrics, tracing=tracing, outbox=outbox, redis=redis, cache=cache)
        if cache is not None and cache.embedder is None and settings.cache.embedding_model:
            from tollway.cache.embed import RoutedEmbedder

            cache.embedder = RoutedEmbedder(state, settings.cache.embedding_model)
        if redis is not None:
            from tollway.routing.health_sync import RedisHealthSync

            RedisHealthSync(state.health, redis, settings.redis.prefix,  # type: ignore[arg-type]
                            affinity=state.router.affinity).start()
        state.router.quality.start(settings.routing.quality_refresh_secs)
        state.access_log.start()
        state.responses.start()  # deletes expired stored responses in the background
        state.readiness.add("store", store_probe(engine, spool_dir))
        if counters.name == "redis":
            state.readiness.add("counters", counters_probe(state))
        await state.refresher.load()  # keys and budgets from config and the store, spend from the ledger
        state.refresher.start()
        if metrics is not None:
            metrics.start_sync(ledger, tracing.exporter if tracing is not None else None)
        if outbox is not None:
            state.billing = BillingSender(outbox, settings.billing, metrics)
            await state.billing.start()
        # models of OpenAI-compatible servers: one short look now, retried in the background
        from tollway.providers.openai_compatible import ModelDiscovery

        catalog.discovery = ModelDiscovery(catalog, http)
        await catalog.discovery.start()
        # what glob providers' upstreams serve, for the model list (one bounded look now, then periodically)
        from tollway.providers.model_listing import UpstreamListing

        catalog.listing = UpstreamListing(catalog, providers)
        await catalog.listing.start()
        from tollway.providers.runtime import RuntimeProviders

        state.runtime_providers = RuntimeProviders(state)
        await state.runtime_providers.start()
        if settings.store.retention_days is not None:
            state.retention = Retention(engine, settings.store.retention_days)
            state.retention.start()
        if any(p.kind == "demo" for p in settings.providers):
            # the demo counts tokens on every call: load the encodings now, off the event loop
            asyncio.get_running_loop().run_in_executor(None, tokens.preload)
        return state

    async def wait_recorded(self) -> None:
        """Wait (at most 5 s) until every request still in flight has written its record: at
        shutdown, uvicorn cancels what outlived the grace and goes on at once; the cut
        requests need a moment to answer and record themselves before the writer drains."""
        if not self.inflight:
            return
        try:
            async with asyncio.timeout(5.0):
                await self.idle.wait()
        except TimeoutError:
            log.warning("%d request(s) still running at shutdown were not recorded", len(self.inflight))

    async def close(self) -> None:
        await self.wait_recorded()
        if self.runtime_providers is not None:
            await self.runtime_providers.stop()
        if self.retention is not None:
            await self.retention.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.catalog.discovery is not None:
            await self.catalog.discovery.stop()
        await self.refresher.stop()
        await self.router.quality.stop()
        sync = getattr(self.health, "sync", None)
        if sync is not None:
            await sync.stop()
        await self.counters.close()
        if self.catalog.listing is not None:
            await self.catalog.listing.stop()
        if self.billing is not None:
            await self.billing.stop()
        await self.access_log.stop()
        await self.responses.stop()
        if self.bodies is not None:
            await self.bodies.stop()
        await self.ledger.stop(drain_secs=max(5.0, self.settings.server.shutdown_grace_secs))
        if self.metrics is not None:
            await self.metrics.stop()
        if self.tracing is not None:
            await self.tracing.shutdown()
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.http.close()
        self.counting.close()
        await self.engine.dispose()

    def keep_task(self, task: "asyncio.Task[object]") -> None:
        """Hold a reference to a background task until it ends (and cancel it at close)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget_byok(self) -> None:
        """The catalog changed: /proxy/<kind>/ providers take their URL from it again."""
        self._byok.clear()

    def byok_provider(self, kind: str) -> tuple[Provider, Transport]:
        """The provider for `/proxy/<kind>/`: the configured one's URL, but no key of ours."""
        found = self._byok.get(kind)
        if found is None:
            configured = self.catalog.first_of_kind(kind)
            base = configured[0].settings.base_url if configured else ""
            ps = ProviderSettings(id=configured[0].id if configured else kind, kind=kind, base_url=base)  # type: ignore[arg-type]
            found = build_provider(ps, self.http, self.tokens, self.counting)
            self._byok[kind] = found
        return found

    def byok_deployment(self, kind: str, model: str) -> Deployment:
        provider, transport = self.byok_provider(kind)
        return Deployment(provider, transport, model)


async def open_counters(settings: Settings) -> CounterStore:
    """In-process counters, or Redis ones when `[redis] url` is set."""
    if settings.redis.url is None:
        return MemoryCounters()
    from tollway.counters.redis import RedisCounters

    store = RedisCounters(settings.redis.url.get_secret_value(), settings.redis.prefix, settings.redis.timeout_ms)
    await store.start()
    if not store.healthy:
        log.error("counters: Redis is not reachable at start-up (%s); [redis] on_error = %s applies until it is",
                  store.last_error, settings.redis.on_error)
    return store


def counters_probe(state: "AppState"):
    """/health/ready: the shared counters answer; with them down, fail_open still serves (noted)."""

    async def probe() -> str | None:
        if state.counters.healthy:
            return None
        status = state.counters.status()
        if state.settings.redis.on_error == "fail_open":
            return f"Redis unreachable ({status['last_error']}); calls pass uncounted (fail_open)"
        raise RuntimeError(f"Redis unreachable ({status['last_error']}); calls with limits are refused")

    return probe
