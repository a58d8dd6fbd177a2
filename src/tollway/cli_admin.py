"""`tollway keys|teams|projects|customers|budgets …`: manage what the admin API manages, on
the store a config names (`--config`) or through a running Tollway (`--url` + an admin key)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

from tollway.cli_backend import CommandError, LocalBackend, RemoteBackend

keys_app = typer.Typer(help="Virtual keys (tw-<id>-<secret>): create, list, show, update, revoke, rotate.",
                       no_args_is_help=True)
budgets_app = typer.Typer(help="USD budgets on a key, team, project or customer (day, week, month, total).",
                          no_args_is_help=True)

ConfigOpt = typer.Option(None, "--config", "-c", dir_okay=False,
                         help="Work on the store this config names (default: the defaults' SQLite store).")
UrlOpt = typer.Option(None, "--url", help="Work through a running Tollway's admin API instead, e.g. "
                                          "http://127.0.0.1:8930 (needs an admin key).")
AdminKeyOpt = typer.Option(None, "--admin-key", envvar="TOLLWAY_ADMIN_KEY",
                           help="Admin or master key for --url (or TOLLWAY_ADMIN_KEY).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
BudgetOpt = typer.Option(None, "--budget", help="USD budget AMOUNT/WINDOW, e.g. 50/month (repeatable; windows: "
                                                "day, week, month, total).")
RpmOpt = typer.Option(None, "--rpm", help="Requests per minute.")
TpmOpt = typer.Option(None, "--tpm", help="Tokens (input + output) per minute.")


def _backend(config: Optional[Path], url: Optional[str], admin_key: Optional[str]):
    if url:
        if config:
            typer.echo("error: give --config or --url, not both", err=True)
            raise typer.Exit(2)
        return RemoteBackend(url, admin_key)
    from tollway.cli import _load

    return LocalBackend(_load(config))


def _run(backend, op: str, *args: Any, body: Any = None, query: dict[str, str] | None = None) -> Any:
    try:
        return backend.run(op, *args, body=body, query=query)
    except CommandError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2 if e.status in (400, 422) else 1) from None


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _budget_cell(budgets: list[dict[str, Any]]) -> str:
    out = []
    for b in budgets:
        spent = b.get("spent_usd")
        amount = f"{float(b['limit_usd']):g}"
        out.append(f"${float(spent):.2f}/${amount} {b['window']}" if spent is not None else f"${amount}/{b['window']}")
    return ", ".join(out) or "-"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    Console(width=max(160, os.get_terminal_size().columns if os.isatty(1) else 160)).print(table)


def _key_limits(k: dict[str, Any]) -> str:
    lim = k["limits"]
    parts = [f"{name}={lim[f]}" for f, name in (("rpm", "rpm"), ("tpm", "tpm"), ("max_concurrency", "conc"),
                                                 ("max_tokens", "max_tokens"), ("max_body_bytes", "max_body"))
             if lim.get(f) is not None]
    if lim.get("models") is not None:
        parts.append("models=" + ",".join(lim["models"]))
    return " ".join(parts) or "-"


def _creds(values: list[str] | None) -> dict[str, str | None] | None:
    if not values:
        return None
    out: dict[str, str | None] = {}
    for item in values:
        kind, sep, value = item.partition("=")
        if not sep or not kind:
            typer.echo("error: --credential is KIND=VALUE, KIND=env:VARIABLE or KIND= (to remove)", err=True)
            raise typer.Exit(2)
        if value.startswith("env:"):
            if value[4:] not in os.environ:
                typer.echo(f"error: --credential {kind}: environment variable {value[4:]} is not set", err=True)
                raise typer.Exit(2)
            value = os.environ[value[4:]]
        out[kind] = value or None
    return out


def _key_body(name, role, team, project, customer, budget, rpm, tpm, max_concurrency, queue_timeout_ms, models,
              max_tokens, max_body_bytes, expires, credential) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "roles": role, "team": team, "project": project, "customer": customer,
                            "budgets": budget, "rpm": rpm, "tpm": tpm, "max_concurrency": max_concurrency,
                            "queue_timeout_ms": queue_timeout_ms, "max_tokens": max_tokens,
                            "max_body_bytes": max_body_bytes, "expires_in": expires, "credentials": _creds(credential)}
    if models is not None:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    return {k: v for k, v in body.items() if v not in (None, [])}


_KEY_OPTS = dict(
    team=typer.Option(None, "--team", help="Team id (its limits and budgets apply too)."),
    project=typer.Option(None, "--project", help="Default project of the key's calls."),
    customer=typer.Option(None, "--customer", help="Bill every call of the key to this customer."),
    role=typer.Option(None, "--role", help="user (calls models), viewer (reads), admin (changes); repeatable."),
    max_concurrency=typer.Option(None, "--max-concurrency", help="Requests in flight at once."),
    queue_timeout_ms=typer.Option(None, "--queue-timeout-ms", help="Over --max-concurrency, wait this long for a "
                                                                   "slot (FIFO) instead of a 429."),
    models=typer.Option(None, "--models", help="Allowed models, comma-separated globs: 'gpt-4o*,claude-*'."),
    max_tokens=typer.Option(None, "--max-tokens", help="Largest max_tokens a call may ask for."),
    max_body_bytes=typer.Option(None, "--max-body-bytes", help="Largest request body."),
    expires=typer.Option(None, "--expires", help="Stop working after this long: 30d, 12h, …"),
    credential=typer.Option(None, "--credential", help="Provider credential for this key's calls: "
                                                        "KIND=VALUE or KIND=env:VARIABLE (repeatable; sealed with "
                                                        "TOLLWAY_SECRET_KEY)."),
)


@keys_app.command("create")
def keys_create(name: str = typer.Option(..., "--name", help="What the key is for."),
                team: Optional[str] = _KEY_OPTS["team"], project: Optional[str] = _KEY_OPTS["project"],
                customer: Optional[str] = _KEY_OPTS["customer"], role: Optional[list[str]] = _KEY_OPTS["role"],
                budget: Optional[list[str]] = BudgetOpt, rpm: Optional[int] = RpmOpt, tpm: Optional[int] = TpmOpt,
                max_concurrency: Optional[int] = _KEY_OPTS["max_concurrency"],
                queue_timeout_ms: Optional[int] = _KEY_OPTS["queue_timeout_ms"],
                models: Optional[str] = _KEY_OPTS["models"], max_tokens: Optional[int] = _KEY_OPTS["max_tokens"],
                max_body_bytes: Optional[int] = _KEY_OPTS["max_body_bytes"],
                expires: Optional[str] = _KEY_OPTS["expires"], credential: Optional[list[str]] = _KEY_OPTS["credential"],
                config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                admin_key: Optional[str] = AdminKeyOpt, as_json: bool = JsonOpt) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    body = _key_body(name, role, team, project, customer, budget, rpm, tpm, max_concurrency, queue_timeout_ms,
                     models, max_tokens, max_body_bytes, expires, credential)
    out = _run(_backend(config, url, admin_key), "keys.create", body=body)
    if as_json:
        _print_json(out)
        return
    typer.echo(f"Created key {out['id']} ({out['name']}). Store it now; it is not shown again:\n\n  {out['key']}\n")


@keys_app.command("list")
def keys_list(config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt, admin_key: Optional[str] = AdminKeyOpt,
              as_json: bool = JsonOpt) -> None:
    """Every key: name, public id, roles, limits, budgets (spent / limit) and state."""
    keys = _run(_backend(config, url, admin_key), "keys.list")
    if as_json:
        _print_json(keys)
        return
    _table("Tollway keys", ["id", "name", "roles", "team", "limits", "budgets", "state", "source"],
           [[k["id"], k.get("name") or "-", ",".join(k["roles"]), k.get("team") or "-", _key_limits(k),
             _budget_cell(k["budgets"]), k["state"] + (" (rotating)" if k.get("old_secret_valid_until") else ""),
             k["source"]] for k in keys])


@keys_app.command("show")
def keys_show(key_id: str = typer.Argument(..., help="The key's public id."), config: Optional[Path] = ConfigOpt,
              url: Optional[str] = UrlOpt, admin_key: Optional[str] = AdminKeyOpt) -> None:
    """One key, as JSON."""
    _print_json(_run(_backend(config, url, admin_key), "keys.show", key_id))


@keys_app.command("update")
def keys_update(key_id: str = typer.Argument(..., help="The key's public id."),
                name: Optional[str] = typer.Option(None, "--name"),
                team: Optional[str] = _KEY_OPTS["team"], project: Optional[str] = _KEY_OPTS["project"],
                customer: Optional[str] = _KEY_OPTS["customer"], role: Optional[list[str]] = _KEY_OPTS["role"],
                budget: Optional[list[str]] = typer.Option(None, "--budget", help="Replaces the key's budgets "
                                                                                  "(repeatable)."),
                no_budgets: bool = typer.Option(False, "--no-budgets", help="Remove the key's budgets."),
                rpm: Optional[int] = RpmOpt, tpm: Optional[int] = TpmOpt,
                max_concurrency: Optional[int] = _KEY_OPTS["max_concurrency"],
                queue_timeout_ms: Optional[int] = _KEY_OPTS["queue_timeout_ms"],
                models: Optional[str] = _KEY_OPTS["models"], max_tokens: Optional[int] = _KEY_OPTS["max_tokens"],
                max_body_bytes: Optional[int] = _KEY_OPTS["max_body_bytes"],
                expires: Optional[str] = _KEY_OPTS["expires"], credential: Optional[list[str]] = _KEY_OPTS["credential"],
                clear: Optional[list[str]] = typer.Option(None, "--clear", help="Remove a limit: rpm, tpm, "
                                                                                  "max_concurrency, models, max_tokens, "
                                                                                  "max_body_bytes, team, expires."),
                config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                admin_key: Optional[str] = AdminKeyOpt) -> None:
    """Change a key's limits, budgets, roles or credentials (only what is given)."""
    body = _key_body(name, role, team, project, customer, budget, rpm, tpm, max_concurrency, queue_timeout_ms,
                     models, max_tokens, max_body_bytes, expires, credential)
    if credential:
        body["credentials"] = _creds(credential)
    if no_budgets:
        body["budgets"] = []
    for field in clear or []:
        body["expires_at" if field == "expires" else field] = None
    _print_json(_run(_backend(config, url, admin_key), "keys.update", key_id, body=body))


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(...), config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                admin_key: Optional[str] = AdminKeyOpt) -> None:
    """Revoke a key: it stops working on every instance within a second."""
    out = _run(_backend(config, url, admin_key), "keys.revoke", key_id)
    typer.echo(f"Revoked key {out['id']}.")


@keys_app.command("rotate")
def keys_rotate(key_id: str = typer.Argument(...),
                grace: Optional[str] = typer.Option(None, "--grace", help="Keep the old secret working this long "
                                                                          "(e.g. 24h); default: not at all."),
                config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                admin_key: Optional[str] = AdminKeyOpt, as_json: bool = JsonOpt) -> None:
    """New secret for the same key id; print it (once)."""
    out = _run(_backend(config, url, admin_key), "keys.rotate", key_id, body={"grace": grace} if grace else {})
    if as_json:
        _print_json(out)
        return
    until = out.get("old_secret_valid_until")
    typer.echo(f"Rotated key {out['id']}. " + (f"The old secret works until {until}. " if until else
                                                 "The old secret no longer works. ")
               + f"Store the new one now:\n\n  {out['key']}\n")


def group_app(plural: str, kind: str) -> typer.Typer:
    app = typer.Typer(help=f"{kind.capitalize()}s with their own rate limits and budgets.", no_args_is_help=True)

    @app.command("create")
    def create(gid: str = typer.Argument(..., help=f"The {kind}'s id."), name: Optional[str] = typer.Option(None),
               rpm: Optional[int] = RpmOpt, tpm: Optional[int] = TpmOpt, budget: Optional[list[str]] = BudgetOpt,
               config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
               admin_key: Optional[str] = AdminKeyOpt) -> None:
        body = {k: v for k, v in {"id": gid, "name": name, "rpm": rpm, "tpm": tpm, "budgets": budget}.items()
                if v not in (None, [])}
        _print_json(_run(_backend(config, url, admin_key), f"{plural}.create", body=body))

    @app.command("list")
    def list_(config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt, admin_key: Optional[str] = AdminKeyOpt,
              as_json: bool = JsonOpt) -> None:
        rows = _run(_backend(config, url, admin_key), f"{plural}.list")
        if as_json:
            _print_json(rows)
            return
        _table(f"Tollway {plural}", ["id", "name", "rpm", "tpm", "budgets", "source"],
               [[g["id"], g.get("name") or "-", str(g.get("rpm") or "-"), str(g.get("tpm") or "-"),
                 _budget_cell(g["budgets"]), g["source"]] for g in rows])

    @app.command("show")
    def show(gid: str = typer.Argument(...), config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
             admin_key: Optional[str] = AdminKeyOpt) -> None:
        _print_json(_run(_backend(config, url, admin_key), f"{plural}.show", gid))

    @app.command("update")
    def update(gid: str = typer.Argument(...), name: Optional[str] = typer.Option(None), rpm: Optional[int] = RpmOpt,
               tpm: Optional[int] = TpmOpt, budget: Optional[list[str]] = BudgetOpt,
               clear: Optional[list[str]] = typer.Option(None, "--clear", help="Remove: rpm, tpm, budgets."),
               config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
               admin_key: Optional[str] = AdminKeyOpt) -> None:
        body: dict[str, Any] = {k: v for k, v in {"name": name, "rpm": rpm, "tpm": tpm, "budgets": budget}.items()
                                if v not in (None, [])}
        for field in clear or []:
            body[field] = [] if field == "budgets" else None
        _print_json(_run(_backend(config, url, admin_key), f"{plural}.update", gid, body=body))

    @app.command("delete")
    def delete(gid: str = typer.Argument(...), config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
               admin_key: Optional[str] = AdminKeyOpt) -> None:
        _run(_backend(config, url, admin_key), f"{plural}.delete", gid)
        typer.echo(f"Deleted {kind} {gid}.")

    for cmd, doc in ((create, f"Create a {kind}."), (list_, f"Every {kind} with its limits and budgets."),
                     (show, f"One {kind}, as JSON."), (update, f"Change a {kind}'s limits or budgets."),
                     (delete, f"Delete a {kind} and its budgets.")):
        cmd.__doc__ = doc
    return app


@budgets_app.command("create")
def budgets_create(scope: str = typer.Option(..., "--scope", help="key, team, project or customer."),
                   target: str = typer.Option(..., "--target", help="The key id, team id, project or customer."),
                   limit: str = typer.Option(..., "--limit", help="AMOUNT/WINDOW in USD, e.g. 50/month."),
                   config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                   admin_key: Optional[str] = AdminKeyOpt) -> None:
    """Create a budget."""
    _print_json(_run(_backend(config, url, admin_key), "budgets.create",
                     body={"scope": scope, "target": target, "limit": limit}))


@budgets_app.command("list")
def budgets_list(scope: Optional[str] = typer.Option(None, "--scope"), target: Optional[str] = typer.Option(None,
                                                                                                       "--target"),
                 config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                 admin_key: Optional[str] = AdminKeyOpt, as_json: bool = JsonOpt) -> None:
    """Every budget with its spend in the current window and when that window resets."""
    rows = _run(_backend(config, url, admin_key), "budgets.list", query={"scope": scope, "target": target})
    if as_json:
        _print_json(rows)
        return
    _table("Tollway budgets", ["id", "scope", "target", "limit USD", "window", "spent USD", "remaining USD",
                               "resets at", "source"],
           [[b["id"], b["scope"], b["target"], b["limit_usd"], b["window"], b.get("spent_usd", "?"),
             b.get("remaining_usd", "?"), b.get("resets_at") or "never", b["source"]] for b in rows])


@budgets_app.command("show")
def budgets_show(budget_id: str = typer.Argument(...), config: Optional[Path] = ConfigOpt,
                 url: Optional[str] = UrlOpt, admin_key: Optional[str] = AdminKeyOpt) -> None:
    """One budget, as JSON."""
    _print_json(_run(_backend(config, url, admin_key), "budgets.show", budget_id))


@budgets_app.command("update")
def budgets_update(budget_id: str = typer.Argument(...),
                   limit: str = typer.Option(..., "--limit", help="AMOUNT/WINDOW in USD, e.g. 80/month."),
                   config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
                   admin_key: Optional[str] = AdminKeyOpt) -> None:
    """Change a budget's amount or window."""
    _print_json(_run(_backend(config, url, admin_key), "budgets.update", budget_id, body={"limit": limit}))


@budgets_app.command("delete")
def budgets_delete(budget_id: str = typer.Argument(...), config: Optional[Path] = ConfigOpt,
                   url: Optional[str] = UrlOpt, admin_key: Optional[str] = AdminKeyOpt) -> None:
    """Delete a budget."""
    _run(_backend(config, url, admin_key), "budgets.delete", budget_id)
    typer.echo(f"Deleted budget {budget_id}.")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    for plural, kind in (("teams", "team"), ("projects", "project"), ("customers", "customer")):
        app.add_typer(group_app(plural, kind), name=plural)
    app.add_typer(budgets_app, name="budgets")
