"""`tollway serve` as a user starts it: "listening" only once the port is bound; with --demo it says
which models there are, where records go, and a curl that works; and `tollway usage` against a
store it cannot reach says so in one line."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import free_port

from .test_cli import tollway_cli


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "TOLLWAY_"))}
    return {**env, **extra}


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tollway", "serve", *args], cwd=cwd, env=env or clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} in:\n" + "\n".join(lines))


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_demo_says_listening_once_bound_and_its_curl_works(tmp_path: Path) -> None:
    port = free_port()
    proc = start(["--demo", "--port", str(port)], tmp_path)
    try:
        lines = read_until(proc, "listening on")
        # the moment it says so, the port answers (no retry loop: bound before the line was written)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        lines += read_until(proc, "try: curl", timeout=10)
        text = "\n".join(lines)
        assert f"listening on http://127.0.0.1:{port}" in text
        models = next(ln for ln in lines if "demo models:" in ln)
        for name in ("demo ", "demo-claude", "demo-gemini"):
            assert name in models
        records = next(ln for ln in lines if "records go to" in ln)
        assert str((tmp_path / ".tollway" / "tollway.db").resolve()) in records and "SQLite" in records
        curl = next(ln for ln in lines if "try: curl" in ln).split("try: ", 1)[1]
        argv = shlex.split(curl)
        assert argv[0] == "curl" and f"http://127.0.0.1:{port}/v1/chat/completions" in argv
        if shutil.which("curl"):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            answer = json.loads(out.stdout)
        else:  # the same request without curl
            import urllib.request

            body = argv[argv.index("-d") + 1].encode()
            req = urllib.request.Request(argv[2], data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=20) as r:
                answer = json.loads(r.read())
        assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
    finally:
        stop(proc)


def test_a_port_in_use_never_says_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tollway", "serve", "--demo", "--port", str(port)], cwd=tmp_path,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "listening" not in out and "address already in use" in out.lower(), out
    assert "Traceback" not in out


@pytest.mark.parametrize("url,words", [
    ("postgresql+asyncpg://postgres@127.0.0.1:{closed}/tollway", "cannot read the store at postgresql+asyncpg://"),
])
def test_usage_with_an_unreachable_store_is_one_line(tmp_path: Path, url: str, words: str) -> None:
    cfg = tmp_path / "tollway.toml"
    cfg.write_text(f'[store]\nurl = "{url.format(closed=free_port())}"\n')
    r = tollway_cli("usage", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ") and words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("url,words", [
    ("mysql://u:hunter2-SECRET@db/x", "SQLite or Postgres, not mysql"),
    ("not a url at all hunter2-SECRET", "is not a database URL"),
])
def test_an_unusable_store_url_is_a_config_error(tmp_path: Path, url: str, words: str) -> None:
    cfg = tmp_path / "tollway.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\n')
    for args in (("usage", "--config", str(cfg)), ("config", "check", str(cfg))):
        r = tollway_cli(*args, cwd=tmp_path)
        assert r.returncode != 0 and "store.url" in r.stderr and words in r.stderr, r.stderr
        assert "hunter2" not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_serve_refuses_a_provider_key_with_a_trailing_newline(tmp_path: Path) -> None:
    secret = "sk-proj-trailing-newline-SECRET-77"
    r = subprocess.run([sys.executable, "-m", "tollway", "serve", "--port", str(free_port())], cwd=tmp_path,
                       env=clean_env(OPENAI_API_KEY=secret + "\n"), capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "OPENAI_API_KEY (environment): contains a line break" in out, out
    assert secret not in out and "Traceback" not in out and "listening" not in out
    assert not (tmp_path / ".tollway").exists()
