"""Runs a real Tollway (`python -m tollway serve`) as a subprocess on 127.0.0.1 for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types as gtypes

MASTER_KEY = "tw-master-test-key"
TEAM_KEY = "tw-team-alpha-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(cfg: dict[str, Any]) -> str:
    """Enough TOML for test configs: tables of scalars, arrays of tables, inline dicts."""
    lines: list[str] = []
    for k, v in cfg.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and v and not isinstance(v[0], dict)):
            lines.append(f"{k} = {toml_value(v)}")
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines.extend(f"{json.dumps(kk)} = {toml_value(vv)}" for kk, vv in v.items())
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"\n[[{k}]]")
                lines.extend(f"{kk} = {toml_value(vv)}" for kk, vv in item.items())
    return "\n".join(lines) + "\n"


class Tollway:
    """A Tollway server process with its own config and data directory."""

    def __init__(self, workdir: Path, config: dict[str, Any] | None, *, demo: bool = False,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "tollway.toml"
            self.config_path.write_text(to_toml(config))
        # the "listening" line tells our Tollway is up; no such line with workers or below info
        level = (config or {}).get("logging", {}).get("level", "info")
        self._banner = not {"--workers", "--log-level"} & set(extra_args or []) and level in ("debug", "info")
        clean_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("OPENAI_", "ANTHROPIC_", "TOLLWAY_MASTER"))}
        self.log_path = workdir / "tollway.log"
        # free_port() only finds a port that was free a moment ago: another test process may take
        # it before Tollway binds. Then Tollway exits saying so, and it starts again on another.
        for attempt in range(5):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args = [sys.executable, "-m", "tollway", "serve", "--port", str(self.port)]
            if self.config_path:
                args += ["--config", str(self.config_path)]
            if demo:
                args.append("--demo")
            args += extra_args or []
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(args, cwd=workdir, env={**clean_env, **(env or {})},
                                         stdout=self._log, stderr=subprocess.STDOUT)
            try:
                self._wait_ready()
                return
            except RuntimeError:
                if attempt == 4 or "address already in use" not in self.log().lower():
                    raise
                self._log.close()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tollway exited with {self.proc.returncode}:\n{self.log()}")
            # Until our own Tollway says it is listening, whatever answers on the port is not it.
            if self._banner and " listening on http" not in self.log():
                time.sleep(0.05)
                continue
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return
            except urllib.error.HTTPError:
                return  # up, though degraded (503): e.g. started with its store down
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"tollway did not become ready:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, key: str | None = MASTER_KEY) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def records(self, **filters: Any) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in filters.items())
        status, body = self.get("/v1/records" + (f"?{qs}" if qs else ""))
        assert status == 200, body
        return body["data"]

    def record(self, trace_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The usage record of one call (records are written in the background)."""
        deadline = time.time() + timeout
        while True:
            status, body = self.get(f"/v1/records/{trace_id}")
            if status == 200:
                return body
            if time.time() > deadline:
                raise AssertionError(f"no record for trace {trace_id}: {status} {body}")
            time.sleep(0.05)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        # A coroutine nobody awaited is always a bug (e.g. a metering call that did nothing),
        # and inside the server it only shows as a warning in its log.
        never_awaited = [line for line in self.log_path.read_text(errors="replace").splitlines()
                         if "was never awaited" in line]
        assert not never_awaited, f"tollway logged un-awaited coroutines: {never_awaited[:3]}"
        return self.proc.returncode


def openai_client(tw: "Tollway", api_key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=tw.url + "/v1", api_key=api_key, max_retries=0, timeout=20)


def anthropic_client(tw: "Tollway", api_key: str = MASTER_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=tw.url, api_key=api_key, max_retries=0, timeout=20)


def gemini_client(tw: "Tollway", api_key: str = MASTER_KEY, api_version: str | None = None) -> genai.Client:
    """google-genai with its base URL on Tollway (it asks /v1/... by default, /v1beta/... when told)."""
    return genai.Client(api_key=api_key, http_options=gtypes.HttpOptions(base_url=tw.url, api_version=api_version,
                                                                         timeout=20_000))


def standard_config(fake_url: str, **overrides: Any) -> dict[str, Any]:
    """OpenAI and Anthropic providers on the fake, a master key and a team key."""
    cfg: dict[str, Any] = {
        "server": {"master_key": MASTER_KEY, "shutdown_grace_secs": 10, "read_timeout_secs": 5,
                   "connect_timeout_secs": 2, "max_body_bytes": 1_000_000},
        "store": {"flush_interval_secs": 0.05},
        "aliases": {"fast": "openai:gpt-4o-mini"},
        "providers": [
            {"id": "openai", "kind": "openai", "base_url": fake_url + "/v1", "api_key": "sk-fake-openai",
             "models": ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-4.1*"]},
            {"id": "anthropic", "kind": "anthropic", "base_url": fake_url, "api_key": "sk-ant-fake",
             "models": ["claude-*"]},
        ],
        "keys": [{"id": "team-alpha", "key": TEAM_KEY, "project": "alpha"}],
    }
    cfg.update(overrides)
    return cfg
