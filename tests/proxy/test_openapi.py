"""GET /openapi.json: a valid OpenAPI 3.1 document of Tollway's routes, and the live answers match it."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import anthropic
import openai
import pytest

from tests import specs
from tests.harness import MASTER_KEY, Tollway

HELLO = [{"role": "user", "content": "Hello"}]

PATHS = (
    "/health", "/v1/records", "/v1/records/{trace_id}", "/v1/responses/{response_id}", "/v1/stats", "/v1/models", "/v1/chat/completions",
    "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
    "/proxy/openai/v1/{path}", "/proxy/anthropic/v1/{path}", "/projects/{slug}/v1/chat/completions",
)
PROXY_POSTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
               "/v1/messages/count_tokens", "/projects/{slug}/v1/chat/completions")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def doc(tollway: Tollway) -> dict[str, Any]:
    req = urllib.request.Request(tollway.url + "/openapi.json", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("application/json")
        return json.loads(r.read())


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"external $ref {ref!r}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"$ref {ref!r} does not resolve"
        node = node[part]
    return node


def conforms(doc: dict[str, Any], value: Any, schema: dict[str, Any]) -> list[str]:
    """Problems of `value` against `schema` of the document (jsonschema, OpenAPI 3.1 dialect)."""
    return specs.openapi_errors(doc, schema, value)


def schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]


def call(tollway: Tollway, method: str, path: str, key: str | None = MASTER_KEY, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    req = urllib.request.Request(tollway.url + path, method=method, data=body, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# -- the document -------------------------------------------------------------------------------


def test_it_is_openapi_3_1(doc: dict[str, Any]) -> None:
    from tollway import __version__

    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"] == __version__
    assert isinstance(doc["paths"], dict) and isinstance(doc["components"]["schemas"], dict)


def test_every_ref_resolves_inside_the_document(doc: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert len(refs) > 10
    for ref in refs:
        resolve(doc, ref)


def test_it_lists_every_route(doc: dict[str, Any]) -> None:
    missing = [p for p in PATHS if p not in doc["paths"]]
    assert not missing, missing
    for p in ("/health", "/v1/records", "/v1/records/{trace_id}", "/v1/stats", "/v1/models"):
        assert "get" in doc["paths"][p], p
    for p in PROXY_POSTS:
        assert "post" in doc["paths"][p], p
    for slug_route in ("completions", "embeddings", "responses", "messages", "messages/count_tokens"):
        assert f"/projects/{{slug}}/v1/{slug_route}" in doc["paths"]


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    out = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                out.append((path, method, item[method], [*item.get("parameters", ()),
                                                         *item[method].get("parameters", ())]))
    return out


def test_every_path_template_parameter_is_declared(doc: dict[str, Any]) -> None:
    for path, method, op, params in operations(doc):
        declared = {p["name"] for p in params if p.get("in") == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), (method, path)
        assert all(p.get("required") is True for p in params if p.get("in") == "path"), (method, path)
        assert op.get("responses"), (method, path)


def test_security_schemes_used_are_defined(doc: dict[str, Any]) -> None:
    defined = set(doc["components"]["securitySchemes"])
    for path, method, op, _ in operations(doc):
        for requirement in op.get("security", []):
            assert set(requirement) <= defined, (method, path, requirement)


def test_trace_and_cost_headers_are_documented(doc: dict[str, Any]) -> None:
    for p in PROXY_POSTS + ("/proxy/openai/v1/{path}", "/proxy/anthropic/v1/{path}"):
        ok = doc["paths"][p]["post"]["responses"]["200"]
        assert "x-tollway-trace-id" in ok["headers"] and "x-tollway-cost-usd" in ok["headers"], p
        assert "text/event-stream" in ok["content"]
        for status, resp in doc["paths"][p]["post"]["responses"].items():
            if status.startswith(("4", "5")):
                assert "x-tollway-trace-id" in resp.get("headers", {}), (p, status)


def test_attribution_headers_are_documented(doc: dict[str, Any]) -> None:
    params = {x["name"].lower() for x in doc["paths"]["/v1/chat/completions"]["post"]["parameters"]
              if x["in"] == "header"}
    assert {"x-tollway-project", "x-tollway-source", "x-tollway-customer"} <= params
    byok = {x["name"].lower() for x in doc["paths"]["/proxy/openai/v1/{path}"]["post"]["parameters"]}
    assert "x-tollway-key" in byok


def error_schema_ref(doc: dict[str, Any], path: str, status: str) -> str:
    return doc["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]["$ref"]


def test_both_error_shapes_are_documented_per_route(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert {"OpenAIError", "AnthropicError"} <= set(schemas)
    for status in ("400", "401", "404", "413", "502", "504"):
        assert error_schema_ref(doc, "/v1/chat/completions", status).endswith("/OpenAIError")
        assert error_schema_ref(doc, "/v1/messages", status).endswith("/AnthropicError")
        assert error_schema_ref(doc, "/v1/messages/count_tokens", status).endswith("/AnthropicError")
        assert error_schema_ref(doc, "/proxy/anthropic/v1/{path}", status).endswith("/AnthropicError")
    for p in ("/v1/records", "/v1/stats"):
        assert {"200", "400", "401", "403"} <= set(doc["paths"][p]["get"]["responses"])


# -- the live answers match it ------------------------------------------------------------------


def test_health_matches_the_health_schema(doc: dict[str, Any], tollway: Tollway) -> None:
    status, body = call(tollway, "GET", "/health", key=None)
    assert status == 200
    health = schema(doc, "Health")
    assert set(health["required"]) >= {"status", "version", "uptime_secs", "providers"}
    assert not conforms(doc, body, health)
    assert set(body) <= set(health["properties"]), set(body) - set(health["properties"])


def test_records_rows_have_exactly_the_record_properties(doc: dict[str, Any], tollway: Tollway,
                                                         oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO,
                                                        extra_headers={"x-tollway-source": "openapi-check"})
    trace = raw.headers["x-tollway-trace-id"]
    tollway.record(trace)
    status, page = call(tollway, "GET", "/v1/records?limit=20")
    assert status == 200
    assert not conforms(doc, page, schema(doc, "RecordPage"))
    record = schema(doc, "Record")
    assert page["data"]
    for row in page["data"]:
        assert set(row) == set(record["properties"]), set(row) ^ set(record["properties"])
        assert not conforms(doc, row, record)
    status, one = call(tollway, "GET", f"/v1/records/{trace}")
    assert status == 200 and not conforms(doc, one, record) and set(one) == set(record["properties"])


def test_stats_and_models_match_their_schemas(doc: dict[str, Any], tollway: Tollway, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    status, stats = call(tollway, "GET", "/v1/stats")
    assert status == 200
    assert not conforms(doc, stats, schema(doc, "Stats"))
    for group in ("totals",):
        assert set(schema(doc, "Stats")["properties"][group]["properties"]) <= set(stats[group])
    status, models = call(tollway, "GET", "/v1/models")
    assert status == 200 and not conforms(doc, models, schema(doc, "ModelList"))


@pytest.mark.parametrize("method,path,fmt", [
    ("GET", "/no/such/route", "OpenAIError"),
    ("GET", "/v1/records/00000000-0000-7000-8000-000000000000", "OpenAIError"),
    ("POST", "/v1/messages/nope", "AnthropicError"),
    ("GET", "/projects/acme/v1/nope", "OpenAIError"),
])
def test_404_bodies_match_the_error_schemas(doc: dict[str, Any], tollway: Tollway, method: str, path: str,
                                            fmt: str) -> None:
    status, body = call(tollway, method, path, body=b"{}" if method == "POST" else None)
    assert status == 404
    assert not conforms(doc, body, schema(doc, fmt)), body


def test_sdk_errors_match_the_documented_shapes(doc: dict[str, Any], oai: openai.OpenAI,
                                                claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError) as oe:
        oai.chat.completions.create(model="no-such-model", messages=HELLO)
    assert not conforms(doc, oe.value.response.json(), schema(doc, "OpenAIError"))
    with pytest.raises(anthropic.NotFoundError) as ae:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    assert not conforms(doc, ae.value.response.json(), schema(doc, "AnthropicError"))


def test_records_errors_match_the_documented_responses(doc: dict[str, Any], tollway: Tollway) -> None:
    for key, expected in ((None, 401), ("tw-team-alpha-key", 403)):
        status, body = call(tollway, "GET", "/v1/records", key=key)
        assert status == expected and str(expected) in doc["paths"]["/v1/records"]["get"]["responses"]
        assert not conforms(doc, body, schema(doc, "OpenAIError"))
    status, body = call(tollway, "GET", "/v1/stats?bogus=1")
    assert status == 400 and not conforms(doc, body, schema(doc, "OpenAIError"))


def test_documented_parameterless_gets_are_served(doc: dict[str, Any], tollway: Tollway) -> None:
    for path, method, op, _ in operations(doc):
        if method == "get" and "{" not in path and "200" in op["responses"]:  # (not /v1/realtime: a WebSocket)
            if path == "/metrics":  # text, not JSON
                req = urllib.request.Request(tollway.url + path, headers={"Authorization": f"Bearer {MASTER_KEY}"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
                continue
            if "text/html" in op["responses"]["200"].get("content", {}):  # the portal
                with urllib.request.urlopen(tollway.url + path, timeout=10) as r:
                    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), path
                continue
            status, _ = call(tollway, "GET", path)
            assert status == 200, path


def test_client_surfaces_are_documented(doc: dict[str, Any]) -> None:
    for prefix in ("/v1beta", "/v1"):
        for verb in ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"):
            op = doc["paths"][f"{prefix}/models/{{model}}:{verb}"]["post"]
            assert error_schema_ref(doc, f"{prefix}/models/{{model}}:{verb}", "401").endswith("/GeminiError")
            assert {"googApiKey"} in [set(s) for s in op["security"]]
    for p in ("/openai/deployments/{deployment}/chat/completions", "/openai/deployments/{deployment}/embeddings",
              "/openai/v1/chat/completions", "/openai/responses", "/chat/completions", "/responses", "/embeddings",
              "/completions"):
        assert "post" in doc["paths"][p], p
    for p in ("/models", "/openai/models", "/v1beta/models", "/v1beta/models/{model}", "/v1/models/{model}",
              "/v1/realtime"):
        assert "get" in doc["paths"][p], p


# -- the document and the router cannot drift ---------------------------------------------------

PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
SAMPLE = {"slug": "probe-project", "id": "probe-id", "path": "tollway-probe/item", "trace_id": "00000000-0000-7000-8000-000000000000",
          "response_id": "resp_tollway_probe", "model": "probe-model", "deployment": "probe-deployment"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """What the real Router answers, from the route tables it dispatches on."""
    import asyncio

    from tollway.app import Router
    from tollway.config import build_settings
    from tollway.state import AppState

    data_dir = tmp_path_factory.mktemp("router")

    async def routes() -> list[tuple[str, str]]:
        state = await AppState.open(build_settings({"server": {"data_dir": str(data_dir)}}, {}, demo=True))
        try:
            return Router(state).served_routes()
        finally:
            await state.close()

    return set(asyncio.run(routes()))


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, method, _, _ in operations(doc)}


def test_the_document_lists_exactly_the_routes_the_router_serves(doc: dict[str, Any],
                                                                  served: set[tuple[str, str]]) -> None:
    # a GET route answers HEAD too (HTTP semantics); the document need not repeat it
    expected = {(m, p) for m, p in served if not (m == "HEAD" and ("GET", p) in served)}
    assert documented(doc) - {("HEAD", p) for _, p in expected if ("GET", p) in expected} == expected, (
        "in the document only:", sorted(documented(doc) - expected), "served only:", sorted(expected - documented(doc)))


def concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


def matcher(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: ".+" if m.group(1) == "path" else "[^/]+",
                             re.escape(template)) + "$")


def raw(tollway: Tollway, method: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(tollway.url + path, method=method, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                 data=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def no_route(status: int, body: bytes) -> bool:
    """Tollway's own answer for a route or method it does not serve."""
    return (status == 404 and b"route for" in body) or (status == 405 and b"method_not_allowed" in body)


def test_every_served_route_is_answered_and_nothing_else_is(tollway: Tollway, served: set[tuple[str, str]]) -> None:
    templates = sorted({p for _, p in served})
    catch_alls = [(m, matcher(p)) for m, p in served if "{path}" in p]
    for template in templates:
        path = concrete(template)
        for method in PROBE_METHODS:
            status, body = raw(tollway, method, path)
            if (method, template) in served:
                assert not no_route(status, body), (method, template, status, body[:200])
            elif not any(m == method and rx.match(path) for m, rx in catch_alls):
                assert no_route(status, body), (method, template, status, body[:200])


def test_the_readme_names_every_route(served: set[tuple[str, str]]) -> None:
    readme = (specs.REPO / "README.md").read_text()
    missing = sorted({p for _, p in served if f"`{p}`" not in readme and f" {p}`" not in readme})
    assert not missing, f"README.md does not name {missing}"


# -- where Tollway's key may travel: the document says exactly what the routes accept --------------

PLACEMENTS = {  # security scheme -> how a client sends the key there
    "bearer": lambda k: ({"Authorization": f"Bearer {k}"}, ""),
    "apiKey": lambda k: ({"x-api-key": k}, ""),
    "tollwayKey": lambda k: ({"X-Tollway-Key": k}, ""),
    "googApiKey": lambda k: ({"x-goog-api-key": k}, ""),
    "googKeyQuery": lambda k: ({}, f"key={k}"),
    "azureApiKey": lambda k: ({"api-key": k}, ""),
}
PROBE_BODY = {"post": b'{"model": "probe-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}',
              "put": b"{}", "patch": b"{}"}


def probe(tollway: Tollway, method: str, path: str, headers: dict[str, str], query: str) -> tuple[int, bytes]:
    url = tollway.url + path + (("&" if "?" in path else "?") + query if query else "")
    req = urllib.request.Request(url, method=method.upper(), data=PROBE_BODY.get(method),
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def refused_for_want_of_a_key(status: int, body: bytes) -> bool:
    """Tollway's own 401 (a provider behind a pass-through route may answer 401 too: not this one;
    a HEAD answer has no body to tell them apart)."""
    return status == 401 and (b"Tollway key" in body or not body)


def test_documented_key_placements_are_exactly_the_accepted_ones(doc: dict[str, Any], tollway: Tollway) -> None:
    """Every operation: with keys configured, a request without a key is refused iff the document
    lists security for it, and the master key is accepted in exactly the places it lists."""
    problems = []
    for path, method, op, _ in operations(doc):
        if path.startswith("/proxy/") or path.endswith("/realtime"):  # BYOK and WebSocket: tests of their own
            continue
        documented_schemes = {name for alt in op.get("security", doc.get("security", [])) for name in alt}
        concrete_path = concrete(path)
        needs_key = refused_for_want_of_a_key(*probe(tollway, method, concrete_path, {}, ""))
        if needs_key != bool(documented_schemes):
            problems.append(f"{method.upper()} {path}: needs a key: {needs_key}, documented: {documented_schemes}")
            continue
        if not needs_key:
            continue
        accepted = {name for name, place in PLACEMENTS.items()
                    if not refused_for_want_of_a_key(*probe(tollway, method, concrete_path, *place(MASTER_KEY)))}
        if accepted != documented_schemes:
            problems.append(f"{method.upper()} {path}: accepts {sorted(accepted)}, documents "
                            f"{sorted(documented_schemes)}")
    assert not problems, "\n".join(problems)


def test_the_realtime_and_proxy_key_placements_are_documented(doc: dict[str, Any]) -> None:
    rt = doc["paths"]["/v1/realtime"]["get"]
    assert {n for alt in rt["security"] for n in alt} == {"bearer", "azureApiKey", "tollwayKey"}
    for path, _method, op, _ in operations(doc):
        if path.startswith("/proxy/"):
            assert op["security"] == [{"tollwayKey": []}], path
