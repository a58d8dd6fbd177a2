"""The `tollway` command: serve, config check, usage, version, and keys / teams / projects /
customers / budgets (cli_admin)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from enum import Enum
from typing import Any, Optional

import typer

from tollway import __version__
from tollway.config import ConfigError, Settings, load_settings

_HELP = {"help_option_names": ["-h", "--help"]}  # inherited by every sub-command
app = typer.Typer(help="Tollway: a self-hosted, metered LLM proxy for OpenAI-, Anthropic- and Gemini-speaking clients.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, context_settings=_HELP)
config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True, context_settings=_HELP)
app.add_typer(config_app, name="config")


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", help="Print the version and exit.",
                                       callback=_print_version, is_eager=True)) -> None:
    """Tollway: a self-hosted, metered LLM proxy for OpenAI-, Anthropic- and Gemini-speaking clients."""

ConfigOpt = typer.Option(None, "--config", "-c", help="Path to tollway.toml. Without it: defaults + environment "
                                                         "(OPENAI_API_KEY, ANTHROPIC_API_KEY, *_BASE_URL).",
                         exists=False, dir_okay=False)


def _load(config: Optional[Path], demo: bool = False) -> Settings:
    try:
        return load_settings(config, demo=demo)
    except ConfigError as e:
        typer.echo("Configuration error:", err=True)
        for p in e.problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(2) from None


def _override(settings: Settings, **server: object) -> Settings:
    changes = {k: v for k, v in server.items() if v is not None}
    if not changes:
        return settings
    return settings.model_copy(update={"server": settings.server.model_copy(update=changes)})


def _check_port(value: Optional[int]) -> Optional[int]:
    if value is not None and not 1 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a TCP port: use 1-65535")
    return value


@app.command()
def serve(
    config: Optional[Path] = ConfigOpt,
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1, or server.host)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", callback=_check_port,
                                       help="Port to listen on, 1-65535 (default 8930, or server.port)."),
    demo: bool = typer.Option(False, "--demo", help="Add the built-in demo providers, no key needed: 'demo' "
                                                    "(answers in the client's own format), 'demo-claude' (speaks "
                                                    "Anthropic) and 'demo-gemini' (speaks Gemini), streaming too."),
    log_format: Optional[LogFormat] = typer.Option(None, "--log-format",
                                                   help="'text' (default, or logging.format) or 'json'."),
    log_level: Optional[LogLevel] = typer.Option(None, "--log-level",
                                                 help="debug, info (default, or logging.level), warning or error."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=256,
                                help="Worker processes (needs [redis] url when more than 1: limits and budgets must "
                                     "be counted in one place)."),
) -> None:
    """Start the proxy. It says "listening" once the port is bound."""
    from tollway.app import build_app
    from tollway.logs import setup_logging
    from tollway.server.run import edge_tracker, raise_fd_limit, uvicorn_config

    settings = _override(_load(config, demo=demo), host=host, port=port)
    level = log_level.value if log_level else settings.logging.level
    fmt = log_format.value if log_format else settings.logging.format
    settings = settings.model_copy(update={"logging": settings.logging.model_copy(update={"level": level,
                                                                                         "format": fmt})})
    if workers > 1 and settings.redis.url is None:
        typer.echo(f"error: --workers {workers} needs [redis] url (or TOLLWAY_REDIS_URL): rate limits, budgets and "
                   "concurrency limits are counted in each process otherwise, so every worker would allow the full "
                   "limit and budgets could be overspent.", err=True)
        raise typer.Exit(2)
    setup_logging(level, fmt)
    log = logging.getLogger("tollway")
    if settings.server.master_key is None and not settings.keys:
        log.warning("no master key set (TOLLWAY_MASTER_KEY or [server] master_key): every route is open")
    if not settings.providers:
        log.warning("no providers configured: set OPENAI_API_KEY / ANTHROPIC_API_KEY, write a config, or use --demo")
    if workers > 1:
        return _serve_workers(settings, config, demo, workers)
    tracker = edge_tracker(settings)
    raise_fd_limit(settings.server.max_connections + settings.server.max_realtime_sessions)
    uv = uvicorn_config(build_app(settings, tracker), settings, tracker)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then restores the handlers it found and
    # raises the signal again; with the default handlers a clean drain would end as "killed by
    # SIGTERM" (exit -15 / 143). Handlers that do nothing let a graceful shutdown exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    from tollway.serve_banner import BannerServer

    BannerServer(uv, settings).run()


def _serve_workers(settings: Settings, config: Optional[Path], demo: bool, workers: int) -> None:
    """N processes on one socket (uvicorn's supervisor); each loads the same settings again
    (`app.app_from_env`). The store is migrated once here, before any of them starts, and
    prometheus-client's multiprocess directory (`<data_dir>/prometheus`, emptied) is set up."""
    import json
    import os

    import uvicorn

    from tollway.storage.engine import migrate

    asyncio.run(migrate(settings.store_url))
    if settings.metrics.enabled and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # every worker writes its samples there, and a scrape of any worker reads them all
        from tollway.telemetry.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir(settings.server.data_dir)
    os.environ["TOLLWAY_SERVE_ARGS"] = json.dumps({
        "config": str(config.resolve()) if config else None, "demo": demo, "host": settings.server.host,
        "port": settings.server.port, "log_level": settings.logging.level, "log_format": settings.logging.format})
    uvicorn.run("tollway.app:app_from_env", factory=True, workers=workers, host=settings.server.host,
                port=settings.server.port, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                log_config=None, server_header=False, proxy_headers=False,
                timeout_graceful_shutdown=int(settings.server.shutdown_grace_secs) or None, backlog=4096)


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="The config file to validate.", dir_okay=False)) -> None:
    """Validate a config file: print each problem with its key path; exit 1 if there is any."""
    try:
        settings = load_settings(file)
    except ConfigError as e:
        for p in e.problems:
            typer.echo(f"error: {p}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file}: ok ({len(settings.providers)} provider(s), {len(settings.keys)} key(s), "
               f"{len(settings.aliases)} alias(es))")


USAGE_BY = ("model", "project", "source", "customer", "key", "provider", "day", "hour", "week", "month")
USAGE_TIMEOUT_SECS = 20.0


@app.command()
def usage(
    config: Optional[Path] = ConfigOpt,
    since: Optional[str] = typer.Option(None, "--since", help="From: unix seconds, ISO 8601, or ago: 30m, 24h, 7d, 2w."),
    until: Optional[str] = typer.Option(None, "--until", help="Until (exclusive), in the same forms as --since."),
    by: str = typer.Option("model", "--by", help="Group by: " + ", ".join(USAGE_BY) + "."),
    project: Optional[str] = typer.Option(None, "--project", help="Only this project."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source."),
    customer: Optional[str] = typer.Option(None, "--customer", help="Only this customer."),
    key: Optional[str] = typer.Option(None, "--key", help="Only this key id."),
    model: Optional[str] = typer.Option(None, "--model", help="Only this model (requested or served)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON (the shape of GET /v1/stats)."),
) -> None:
    """Print requests, tokens, cost (exact; calls without a price counted as unpriced) and latency
    from the store, grouped by model or another attribute; the numbers of GET /v1/stats."""
    import orjson
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from tollway.api.admin import parse_since
    from tollway.errors import ProxyError
    from tollway.storage.engine import make_engine
    from tollway.storage.stats import stats

    settings = _load(config)
    if by not in USAGE_BY:
        typer.echo(f"error: --by must be one of {', '.join(USAGE_BY)}", err=True)
        raise typer.Exit(2)
    try:
        since_ts = parse_since(since, "since") if since else None
        until_ts = parse_since(until, "until") if until else None
    except ProxyError as e:
        typer.echo(f"error: --{e.message}", err=True)
        raise typer.Exit(2) from None
    url = make_url(settings.store_url)  # checked when the settings were loaded
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        typer.echo(f"No records yet: there is no store at {url.database} (run `tollway serve` here first).")
        return
    days = settings.store.retention_days

    async def run() -> dict[str, Any]:
        import time

        engine = make_engine(settings.store_url)
        try:
            return await asyncio.wait_for(
                stats(engine, since=since_ts, until=until_ts, group_by=by, project=project, source=source,
                      customer=customer, key_id=key, model=model,
                      raw_from=time.time() - days * 86400 if days else None), USAGE_TIMEOUT_SECS)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except (SQLAlchemyError, OSError, ImportError, asyncio.TimeoutError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()
        reason_text = reason[0] if reason else type(e).__name__
        if isinstance(e, asyncio.TimeoutError):
            reason_text = f"no answer within {USAGE_TIMEOUT_SECS:g} s"
        typer.echo(f"error: cannot read the store at {where}: {reason_text}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    time_group = by in ("day", "hour", "week", "month")
    table = Table(title=f"Tollway usage by {by}")
    cols = (by, "requests", "errors", "input tokens", "output tokens", "cost USD", "unpriced", "p50 ms", "p95 ms")
    for col in cols:
        table.add_column(col, justify="left" if col == by else "right")
    for row in [*result["groups"], {**result["totals"], by: "TOTAL", "time": "TOTAL"}]:
        name = row["time"] if time_group else row.get(by)
        table.add_row(str(name if name is not None else "-"), str(row["requests"]), str(row["errors"]),
                      str(row["input_tokens"]), str(row["output_tokens"]), str(row["cost_usd"]), str(row["unpriced"]),
                      str(row["latency_ms_p50"]), str(row["latency_ms_p95"]))
    Console(width=200).print(table)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


def _register_admin_commands() -> None:
    from tollway.cli_admin import register

    register(app)


_register_admin_commands()
