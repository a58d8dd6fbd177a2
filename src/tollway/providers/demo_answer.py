"""What the demo provider answers: its fixed text, JSON when the request asks for JSON, or a call
to a tool the request forces.

So structured output works against the demo as against a real model: OpenAI's `response_format`
(json_object, json_schema), Responses' `text.format`, Anthropic's `output_format` /
`output_config.format`, Gemini's `responseMimeType` with `responseJsonSchema` / `responseSchema`,
and a forced tool choice in each format (which is also how Tollway emulates JSON mode for an
Anthropic-speaking provider: `demo-claude` answers the forced `json_response` tool). A schema is
answered with a small value that fits it (`example_of`); a free-form JSON object holds the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tollway.providers.base import Endpoint

_MAX_DEPTH = 8  # a deeper (or recursive) schema is answered with null below this depth


@dataclass(frozen=True, slots=True)
class DemoToolCall:
    name: str
    arguments: dict[str, Any]


def _type_of(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if isinstance(x, str) and x.lower() != "null"), None)
    if isinstance(t, str):
        return t.lower()  # Gemini's OpenAPI subset writes OBJECT, STRING, ...
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def example_of(schema: Any, text: str, depth: int = 0) -> Any:
    """A small value that fits `schema` (JSON Schema, or Gemini's subset of it). A free-form
    object gets {"message": text}."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and _type_of(o) == "null")]
            return example_of((usable or options)[0], text, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            return {str(k): example_of(v, text, depth + 1) for k, v in props.items()}
        return {} if schema.get("additionalProperties") is False else {"message": text}
    if kind == "array":
        return [example_of(schema.get("items"), text, depth + 1)] if isinstance(schema.get("items"), dict) else []
    if kind == "string":
        return text if depth == 0 else "demo"
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        low = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
        return int(low) + (1 if "exclusiveMinimum" in schema else 0) if kind == "integer" else float(low)
    if kind == "boolean":
        return True
    return {"message": text} if depth == 0 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _g(d: dict[str, Any], camel: str) -> Any:
    """A Gemini field by its lowerCamelCase name or its snake_case one (proto3 JSON takes both)."""
    if camel in d:
        return d[camel]
    return d.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def _json_schema(endpoint: Endpoint, body: dict[str, Any]) -> tuple[bool, Any]:
    """(asks for JSON, its schema or None)."""
    if endpoint == Endpoint.CHAT:
        rf = _dict(body.get("response_format"))
        if rf.get("type") == "json_schema":
            return True, _dict(rf.get("json_schema")).get("schema")
        return rf.get("type") == "json_object", None
    if endpoint == Endpoint.RESPONSES:
        fmt = _dict(_dict(body.get("text")).get("format"))
        return fmt.get("type") in ("json_object", "json_schema"), fmt.get("schema")
    if endpoint == Endpoint.MESSAGES:
        fmt = _dict(body.get("output_format")) or _dict(_dict(body.get("output_config")).get("format"))
        return fmt.get("type") == "json_schema", fmt.get("schema")
    if endpoint == Endpoint.GENERATE_CONTENT:
        gc = _dict(_g(body, "generationConfig"))
        schema = _g(gc, "responseJsonSchema") or _g(gc, "responseSchema")
        return _g(gc, "responseMimeType") == "application/json", schema
    return False, None


def _forced_tool(endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, Any] | None:
    """(tool name, its parameter schema) when the request makes the model call a tool."""
    choice = body.get("tool_choice")
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    if endpoint == Endpoint.CHAT:
        fns = {_dict(t.get("function")).get("name"): _dict(t.get("function")).get("parameters") for t in tools
               if t.get("type", "function") == "function"}
        name = _dict(_dict(choice).get("function")).get("name") if isinstance(choice, dict) else (
            next(iter(fns), None) if choice == "required" else None)
    elif endpoint == Endpoint.RESPONSES:
        fns = {t.get("name"): t.get("parameters") for t in tools if t.get("type") == "function"}
        name = _dict(choice).get("name") if _dict(choice).get("type") == "function" else (
            next(iter(fns), None) if choice == "required" else None)
    elif endpoint == Endpoint.MESSAGES:
        fns = {t.get("name"): t.get("input_schema") for t in tools if t.get("type") in (None, "custom")}
        kind = _dict(choice).get("type")
        name = _dict(choice).get("name") if kind == "tool" else (next(iter(fns), None) if kind == "any" else None)
    elif endpoint == Endpoint.GENERATE_CONTENT:
        decls = [d for t in tools for d in _g(t, "functionDeclarations") or () if isinstance(d, dict)]
        fns = {d.get("name"): _g(d, "parametersJsonSchema") or d.get("parameters") for d in decls}
        config = _dict(_g(_dict(_g(body, "toolConfig")), "functionCallingConfig"))
        allowed = _g(config, "allowedFunctionNames") or list(fns)
        name = allowed[0] if str(config.get("mode", "")).upper() == "ANY" and allowed else None
    else:
        return None
    if not isinstance(name, str) or name not in fns:
        return None
    return name, fns[name]


def decide(endpoint: Endpoint, body: dict[str, Any], text: str) -> str | DemoToolCall:
    """The demo's answer to `body`: a forced tool call, else JSON when asked for, else `text`."""
    forced = _forced_tool(endpoint, body)
    if forced is not None:
        args = example_of(forced[1] or {"type": "object"}, text)
        return DemoToolCall(forced[0], args if isinstance(args, dict) else {"value": args})
    wants_json, schema = _json_schema(endpoint, body)
    if wants_json:
        return orjson.dumps(example_of(schema if isinstance(schema, dict) else {"type": "object"}, text)).decode()
    return text
