"""The Vercel AI SDK (Node) against Tollway: what broke it once stays fixed. Optional: it runs where
`node` is installed and TOLLWAY_NODE_CLIENTS names a directory whose node_modules holds `ai`,
`@ai-sdk/openai`, `@ai-sdk/anthropic` and `zod` (`npm install ai @ai-sdk/openai @ai-sdk/anthropic zod`
there); it skips otherwise, saying which is missing. The core checks of these behaviours are the
Python SDK tests (test_translation.py, test_responses_state.py, providers/test_demo_structured.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config

SCRIPT = Path(__file__).with_name("node_clients.cjs")
PACKAGES = ("ai", "@ai-sdk/openai", "@ai-sdk/anthropic", "zod")


def _node_clients() -> tuple[str, Path]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Vercel AI SDK checks need it")
    where = os.environ.get("TOLLWAY_NODE_CLIENTS")
    if not where:
        pytest.skip("TOLLWAY_NODE_CLIENTS is not set (a directory with `npm install ai @ai-sdk/openai "
                    "@ai-sdk/anthropic zod` done in it)")
    missing = [p for p in PACKAGES if not (Path(where) / "node_modules" / p / "package.json").is_file()]
    if missing:
        pytest.skip(f"TOLLWAY_NODE_CLIENTS={where} lacks {', '.join(missing)}")
    return node, Path(where)


@pytest.fixture(scope="module")
def results(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node, where = _node_clients()
    tw = Tollway(tmp_path_factory.mktemp("node"), standard_config(fake.url), demo=True)
    try:
        run = subprocess.run([node, str(SCRIPT), tw.url, MASTER_KEY], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "TOLLWAY_NODE_CLIENTS": str(where)})
        assert run.returncode == 0, run.stderr[-2000:]
        yield json.loads(run.stdout)
    finally:
        tw.stop()


def ok(results: dict[str, Any], name: str) -> Any:
    value = results[name]
    assert not (isinstance(value, dict) and "error" in value), f"{name}: {value}"
    return value


def test_anthropic_provider_takes_translated_answers(results: dict[str, Any]) -> None:
    """A translated Anthropic answer carries no `citations: null` (the provider's schema refuses it)."""
    assert ok(results, "anthropic provider, translated, generateText") == "Hello from the fake provider!"
    assert ok(results, "anthropic provider, translated, tool steps") == [2, "Tool said: sunny in Paris"]


def test_responses_item_references_resolve_for_an_anthropic_model(results: dict[str, Any]) -> None:
    got = ok(results, "openai responses, anthropic model, item_reference")
    upstream = json.loads(got["upstream"])  # what the Anthropic provider received on the second call
    assert [m["role"] for m in upstream["messages"]] == ["user", "assistant", "user"]
    assert upstream["messages"][1]["content"][0]["text"] == got["first"]
    assert ok(results, "openai responses, anthropic model, tool steps") == [2, "Tool said: sunny in Paris"]
    assert ok(results, "openai responses, anthropic model, streamed tool steps") == [2, "Tool said: sunny in Paris"]


def test_json_mode_through_the_emulation(results: dict[str, Any]) -> None:
    assert "Where is it sunny?" in ok(results, "openai chat json_object, demo-claude")["message"]
    assert ok(results, "openai responses json_schema, demo-claude") == {"city": "demo"}
