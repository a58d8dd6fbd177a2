"""In-process checks of the new provider kinds: URLs, headers, error classes, Azure's stream
watcher, the catalog's discovered models and the discovery loop (no servers)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tollway.config import ProviderSettings
from tollway.counting import OutputTally
from tollway.errors import ProxyError
from tollway.providers.azure_openai import AzureOpenAIProvider
from tollway.providers.base import Endpoint, StreamRelay, UpstreamRequest
from tollway.providers.gemini import GeminiProvider
from tollway.providers.openai import OpenAIProvider
from tollway.providers.openai_compatible import ModelDiscovery, OpenAICompatibleProvider, parse_model_list
from tollway.providers.registry import build_provider
from tollway.providers.transport import HttpTransport
from tollway.routing.catalog import Catalog
from tollway.tokens import TokenCounter


def azure(**kw: Any) -> AzureOpenAIProvider:
    return AzureOpenAIProvider(ProviderSettings(id="az", kind="azure_openai", base_url="https://r.openai.azure.com/",
                                                api_key="k", **kw))


def gemini() -> GeminiProvider:
    return GeminiProvider(ProviderSettings(id="g", kind="gemini", api_key="gk"))


def local(pid: str = "local", **kw: Any) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(ProviderSettings(id=pid, kind="openai_compatible",
                                                     base_url="http://127.0.0.1:9/v1", **kw))


def test_registry_builds_every_kind() -> None:
    http = HttpTransport(1, 1)
    tokens = TokenCounter()
    kinds = {"openai": "OpenAIProvider", "anthropic": "AnthropicProvider", "azure_openai": "AzureOpenAIProvider",
             "gemini": "GeminiProvider", "openai_compatible": "OpenAICompatibleProvider", "demo": "DemoProvider"}
    for kind, cls in kinds.items():
        base = "http://x" if kind in ("azure_openai", "openai_compatible") else ""
        ps = ProviderSettings(id=kind, kind=kind, base_url=base)  # type: ignore[arg-type]
        p, t = build_provider(ps, http, tokens)
        assert type(p).__name__ == cls and p.kind == kind
        assert (t is http) == (kind != "demo")
        assert isinstance(getattr(p, "translate_options", {}), dict)


# ---------------------------------------------------------------- Azure


def test_azure_urls_auth_and_body_model() -> None:
    p = azure(deployments={"gpt-4o": "my dep/1"}, api_version="2024-10-21")
    body = {"model": "gpt-4o", "messages": []}
    raw = json.dumps(body).encode()
    call = p.prepare(Endpoint.CHAT, dict(body), raw, "gpt-4o", False, {})
    assert call.request.url == "https://r.openai.azure.com/openai/deployments/my%20dep%2F1/chat/completions" \
                               "?api-version=2024-10-21"
    assert call.request.headers["api-key"] == "k" and "authorization" not in call.request.headers
    assert call.request.body == raw  # nothing to edit: the bytes go as they came
    call = p.prepare(Endpoint.EMBEDDINGS, {"model": "other", "input": "x"}, b"{}", "other", False, {})
    assert "/openai/deployments/other/embeddings?" in call.request.url
    call = p.prepare(Endpoint.RESPONSES, {"model": "gpt-4o", "input": "x"}, b"{}", "gpt-4o", False, {})
    assert call.request.url == "https://r.openai.azure.com/openai/v1/responses"
    assert json.loads(call.request.body)["model"] == "my dep/1"
    call = p.prepare(Endpoint.CHAT, {"model": "gpt-4o", "messages": []}, b"{}", "gpt-4o", True, {})
    assert json.loads(call.request.body)["stream_options"] == {"include_usage": True} and call.injected_usage_option


@pytest.mark.parametrize("base", ["https://r.openai.azure.com", "https://r.openai.azure.com/openai/",
                                  "https://r.openai.azure.com/openai/v1"])
def test_azure_accepts_the_portals_endpoint_urls(base: str) -> None:
    p = AzureOpenAIProvider(ProviderSettings(id="az", kind="azure_openai", base_url=base))
    assert p.url(Endpoint.RESPONSES, "d") == "https://r.openai.azure.com/openai/v1/responses"
    assert p.url(Endpoint.CHAT, "d").startswith("https://r.openai.azure.com/openai/deployments/d/chat/completions?")


def test_azure_maps_a_deployment_named_as_served_back_to_its_model() -> None:
    p = azure(deployments={"gpt-4o": "prod"})
    body = {"model": "prod", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    assert p.usage_from_response(Endpoint.RESPONSES, body).input_tokens == 3
    assert body["model"] == "prod"  # the relayed body is left as the provider sent it
    assert p.served_model("prod") == "gpt-4o"
    assert p.served_model("gpt-4o-2024-08-06") == "gpt-4o-2024-08-06"


AZURE_FILTER = (b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
                b'[{"prompt_index":0,"content_filter_results":{}}]}\n\n')
ROLE = b'data: {"choices":[{"delta":{"content":"","role":"assistant"},"index":0}],"id":"c1","model":"gpt-4o-x"}\n\n'
TEXT = b'data: {"choices":[{"delta":{"content":"Hi"},"index":0}],"id":"c1","model":"gpt-4o-x","usage":null}\n\n'
USAGE = (b'data: {"choices":[],"id":"c1","model":"gpt-4o-x","usage":{"completion_tokens":1,"prompt_tokens":2,'
         b'"total_tokens":3}}\n\n')


@pytest.mark.parametrize("split", [True, False], ids=["separate-blocks", "one-block"])
def test_azure_watcher_skips_the_prompt_filter_chunk(split: bool) -> None:
    tally = OutputTally(len)  # counts characters: shows exactly what text was collected
    w = azure().stream_watcher(Endpoint.CHAT, injected_usage_option=True, tally=tally)
    relay = StreamRelay(w)
    blocks = [AZURE_FILTER, ROLE, TEXT, USAGE, b"data: [DONE]\n\n"]
    out = b""
    if split:
        out += relay.feed(blocks[0])
        assert not w.first_token and w.model_served is None and w.usage is None
        for b in blocks[1:]:
            out += relay.feed(b)
    else:
        out = relay.feed(b"".join(blocks))
    assert w.first_token and w.model_served == "gpt-4o-x"
    assert (w.usage.input_tokens, w.usage.output_tokens) == (2, 1)
    assert out.startswith(AZURE_FILTER)  # relayed untouched
    assert b'"usage"' not in out  # the usage Tollway asked for is not shown to the client
    assert tally.total() == len("Hi")


# ---------------------------------------------------------------- Gemini


def test_gemini_urls_and_key() -> None:
    p = gemini()
    call = p.prepare(Endpoint.CHAT, {"contents": []}, b'{"contents":[]}', "models/gemini-2.0-flash", False, {})
    assert call.request.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                                "gemini-2.0-flash:generateContent")
    assert call.request.headers["x-goog-api-key"] == "gk"
    call = p.prepare(Endpoint.CHAT, {"contents": []}, b"{}", "gemini-2.0-flash", True, {})
    assert call.request.url.endswith("/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    assert p.prepare(Endpoint.EMBEDDINGS, {"content": {}}, b"{}", "e", False, {}).request.url.endswith(":embedContent")
    assert p.prepare(Endpoint.EMBEDDINGS, {"requests": []}, b"{}", "e", False, {}).request.url.endswith(
        ":batchEmbedContents")
    assert p.prepare(Endpoint.COUNT_TOKENS, {}, b"{}", "g", False, {}).request.url.endswith(":countTokens")


def test_gemini_usage_and_text() -> None:
    p = gemini()
    parts = [{"text": "Hi "}, {"functionCall": {"name": "f", "args": {"a": 1}}}]
    body = {"candidates": [{"content": {"parts": parts}}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3,
                              "cachedContentTokenCount": 1}}
    u = p.usage_from_response(Endpoint.CHAT, body)
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_tokens) == (5, 5, 3, 1)
    assert p.output_text(Endpoint.CHAT, body) == 'Hi f{"a":1}'
    assert p.usage_from_response(Endpoint.EMBEDDINGS, {"embedding": {"values": [1]}}) is None


@pytest.mark.parametrize("status,body,expected", [
    (429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, (True, True, True)),
    (503, {"error": {"code": 503, "status": "UNAVAILABLE"}}, (True, True, False)),
    (500, [{"error": {"code": 500, "status": "INTERNAL"}}], (True, True, False)),
    (400, {"error": {"code": 400, "status": "FAILED_PRECONDITION"}}, (False, True, False)),
    (400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}, (False, False, False)),
    (403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}}, (False, False, False)),
    (502, "<html>bad gateway</html>", (True, True, False)),
])
def test_gemini_error_classes(status: int, body: Any, expected: tuple[bool, bool, bool]) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    c = gemini().classify_error(status, raw)
    assert (c.retryable, c.fallbackable, c.rate_limited) == expected


def test_gemini_stream_watcher() -> None:
    tally = OutputTally(len)  # counts characters: shows exactly what text was collected
    w = gemini().stream_watcher(Endpoint.CHAT, False, tally)
    relay = StreamRelay(w)
    relay.feed(b'data: {"candidates":[{"content":{"parts":[{"text":"Hel"}]}}],"modelVersion":"gemini-x"}\r\n\r\n')
    assert w.first_token and not w.done and w.model_served == "gemini-x"
    relay.feed(b'data: {"candidates":[{"content":{"parts":[{"text":"lo"}]},"finishReason":"STOP"}],'
               b'"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}\r\n\r\n')
    assert w.done and (w.usage.input_tokens, w.usage.output_tokens) == (4, 2) and tally.total() == len("Hello")


# ---------------------------------------------------------------- OpenAI-compatible, catalog, discovery


def test_openai_compatible_provider() -> None:
    p = local(api_key="sk-local")
    assert Endpoint.RESPONSES not in p.endpoints and p.translate_options == {"compat": True}
    assert p.auth_headers() == {"authorization": "Bearer sk-local"} and local().auth_headers() == {}
    req = p.models_request()
    assert (req.method, req.url, req.body) == ("GET", "http://127.0.0.1:9/v1/models", None)
    assert getattr(OpenAIProvider, "translate_options", {}) == {}  # only compatible servers get compat


def test_parse_model_list_shapes() -> None:
    assert parse_model_list(b'{"object":"list","data":[{"id":"a"},{"id":""},{"x":1},{"id":"b"}]}') == ["a", "b"]
    assert parse_model_list(b'{"models":[{"name":"llama3:8b","model":"llama3:8b"},{"name":"q"}]}') == ["llama3:8b", "q"]
    with pytest.raises(ValueError):
        parse_model_list(b'{"error":"nope"}')


def test_catalog_routes_discovered_models_and_drops_its_cache() -> None:
    a, b = local("a", models=["pinned"]), local("b")
    openai_p = OpenAIProvider(ProviderSettings(id="openai", kind="openai", models=["gpt-*"]))
    cat = Catalog([(openai_p, None), (a, None), (b, None)], {"fav": "gpt-oss:20b"})  # type: ignore[list-item]
    assert cat.resolve("llama3:8b") is None  # cached as unknown...
    assert cat.resolve("gpt-oss:20b").provider is openai_p  # ...and a glob of an earlier provider
    assert cat.set_discovered("b", ["llama3:8b", "gpt-oss:20b", "llama3:8b"]) is True
    assert cat.set_discovered("b", ["llama3:8b", "gpt-oss:20b"]) is False  # unchanged
    assert cat.resolve("llama3:8b").provider is b  # the cache was dropped
    assert cat.resolve("gpt-oss:20b").provider is b  # an exact name beats a glob
    assert cat.resolve("fav").provider is b and cat.resolve("fav").model == "gpt-oss:20b"
    assert cat.discovered("b") == ("llama3:8b", "gpt-oss:20b")
    assert cat.listed_models() == [("fav", "b"), ("pinned", "a"), ("llama3:8b", "b"), ("gpt-oss:20b", "b")]
    assert cat.routable() == ["fav", "gpt-*", "pinned", "llama3:8b", "gpt-oss:20b"]
    cat.set_discovered("b", [])
    assert cat.resolve("llama3:8b") is None
    with pytest.raises(KeyError):
        cat.set_discovered("nope", ["x"])


class ScriptedTransport:
    """Answers GET /models from a script: ProxyError, "hang", or a list of model ids."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[UpstreamRequest] = []

    async def send(self, req: UpstreamRequest) -> Any:
        self.calls.append(req)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if step == "hang":
            await asyncio.sleep(3600)
        if isinstance(step, Exception):
            raise step
        return _Resp(200, json.dumps({"data": [{"id": m} for m in step]}).encode())


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body, self.raw_headers = status, body, []

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


async def test_discovery_retries_a_server_that_was_down() -> None:
    p = local()
    cat = Catalog([(p, None)], {})  # type: ignore[list-item]
    down = ProxyError("upstream_unreachable", "refused")
    transport = ScriptedTransport([down, down, ["m1", "m2"]])
    d = ModelDiscovery(cat, transport, timeout=1, interval=0.05)  # type: ignore[arg-type]
    await d.start()
    assert cat.resolve("m1") is None and d.pending == ["local"]
    for _ in range(100):
        if not d.pending:
            break
        await asyncio.sleep(0.02)
    assert d.pending == [] and cat.resolve("m1").provider is p and len(transport.calls) == 3
    await asyncio.sleep(0.15)
    assert len(transport.calls) == 3  # once it answered, the retry loop ended
    await d.stop()


async def test_discovery_start_is_bounded_by_its_timeout() -> None:
    p = local()
    cat = Catalog([(p, None)], {})  # type: ignore[list-item]
    d = ModelDiscovery(cat, ScriptedTransport(["hang"]), timeout=0.2, interval=60)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await d.start()
    assert loop.time() - t0 < 1 and d.pending == ["local"]
    await d.stop()  # cancels the background retry


async def test_refresh_is_rate_limited_and_keeps_the_last_list_on_failure() -> None:
    p = local()
    cat = Catalog([(p, None)], {})  # type: ignore[list-item]
    transport = ScriptedTransport([["a"], ProxyError("upstream_unreachable", "gone"), ["a", "b"]])
    d = ModelDiscovery(cat, transport, timeout=1, interval=60, min_gap=0.1)  # type: ignore[arg-type]
    await d.start()
    assert cat.discovered("local") == ("a",)
    await d.refresh()  # too soon: not asked again
    assert len(transport.calls) == 1
    await asyncio.sleep(0.12)
    await d.refresh()  # fails: the last list stays
    assert len(transport.calls) == 2 and cat.discovered("local") == ("a",)
    await asyncio.sleep(0.12)
    cat.discovery = d
    with pytest.raises(ProxyError):
        cat.require("b", Endpoint.CHAT)  # unknown: raises, and asks the server again in the background
    for _ in range(50):
        if cat.discovered("local") == ("a", "b"):
            break
        await asyncio.sleep(0.02)
    assert cat.require("b", Endpoint.CHAT).provider is p
    await d.stop()


async def test_discovery_ignores_providers_that_do_not_ask_for_it() -> None:
    cat = Catalog([(local(discover_models=False), None)], {})  # type: ignore[list-item]
    transport = ScriptedTransport([["x"]])
    d = ModelDiscovery(cat, transport)  # type: ignore[arg-type]
    await d.start()
    await d.refresh()
    assert transport.calls == [] and d.pending == []
    await d.stop()
