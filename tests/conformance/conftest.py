"""One Tollway for the whole conformance suite, one provider per kind on the shared fake provider,
and one client per SDK, reused by every cell."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from tests.conformance.spec import LOCAL_PRICE, PROVIDERS
from tests.conformance.upstream import Upstream
from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config


def conformance_config(fake_url: str, kinds: list[str]) -> dict[str, Any]:
    cfg = standard_config(fake_url)
    cfg["aliases"] = {"conformance-fast": "openai:gpt-4o-mini"}
    cfg["providers"] = [PROVIDERS[k].config(fake_url) for k in kinds]
    cfg["prices"] = [{"model": PROVIDERS["openai_compatible"].model, "input_per_mtok": LOCAL_PRICE[0],
                      "output_per_mtok": LOCAL_PRICE[1]}]
    return cfg


def _kinds_in_use(session: pytest.Session) -> list[str]:
    """Provider kinds the selected tests need: when only matrix cells are selected, the kinds of
    those cells (openai and anthropic always), so `-k gemini` does not depend on the other kinds
    starting; any other test on this Tollway gets every kind."""
    kinds = {"openai", "anthropic"}
    for item in session.items:
        if "conformance" not in getattr(item, "fixturenames", ()):
            continue
        cell = getattr(item, "callspec", None) and item.callspec.params.get("cell")
        if cell is None:
            return list(PROVIDERS)
        kinds.add(cell.provider)
    return [k for k in PROVIDERS if k in kinds]


@dataclass
class Responses:
    """Headers of the responses the SDK clients received (an httpx event hook)."""

    seen: list[Any] = field(default_factory=list)

    def hook(self, response: Any) -> None:
        self.seen.append(response.headers)

    def clear(self) -> None:
        self.seen.clear()

    @property
    def last(self) -> Any:
        assert self.seen, "the client received no response"
        return self.seen[-1]


@dataclass
class Conformance:
    tollway: Tollway
    fake: FakeProvider
    oai: openai.OpenAI
    claude: anthropic.Anthropic
    gemini: genai.Client
    responses: Responses

    def client(self, name: str) -> Any:
        return {"anthropic-sdk": self.claude, "gemini-sdk": self.gemini}.get(name, self.oai)

    def upstream(self, nonce: str) -> list[Upstream]:
        """Every request the fake received that carries `nonce`, oldest first."""
        marker = nonce.encode()
        return [Upstream(r) for r in self.fake.requests if r.method == "POST" and marker in r.body]


@pytest.fixture(scope="session")
def conformance(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator[Conformance]:
    kinds = _kinds_in_use(request.session)
    tw = Tollway(tmp_path_factory.mktemp("conformance"), conformance_config(fake.url, kinds))
    seen = Responses()
    hooks = {"response": [seen.hook]}
    oai = openai.OpenAI(base_url=tw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20,
                        http_client=openai.DefaultHttpxClient(event_hooks=hooks, timeout=20))
    claude = anthropic.Anthropic(base_url=tw.url, api_key=MASTER_KEY, max_retries=0, timeout=20,
                                 http_client=anthropic.DefaultHttpxClient(event_hooks=hooks, timeout=20))
    gclient = httpx2.Client(event_hooks=hooks, timeout=20)
    gemini = genai.Client(api_key=MASTER_KEY, http_options=gtypes.HttpOptions(base_url=tw.url, httpx_client=gclient))
    try:
        yield Conformance(tw, fake, oai, claude, gemini, seen)
    finally:
        oai.close()
        claude.close()
        gclient.close()
        tw.stop()


__all__ = ["Conformance", "conformance_config"]
