"""A small JSON-Schema / OpenAPI validator (the subset the two provider specs use), so tests can
check translated bodies against /work/shared/specs/ without extra dependencies.

Checked: $ref, type (incl. lists and OpenAPI `nullable`), enum, const, properties, required,
additionalProperties (false or a schema), items, anyOf / oneOf (at least one branch),
allOf, minItems. Formats, numeric bounds and patterns are not checked.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SPECS = Path("/work/shared/specs")


@functools.lru_cache(maxsize=None)
def _spec(name: str) -> dict:
    if name == "openai":
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(SPECS / "openai-openapi.yml") as f:
            return yaml.load(f, Loader=loader)
    with open(SPECS / "anthropic-openapi.json") as f:
        return json.load(f)


def available() -> bool:
    return (SPECS / "openai-openapi.yml").exists() and (SPECS / "anthropic-openapi.json").exists()


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def with_citations(value: Any) -> Any:
    """Anthropic's spec makes `citations` required (nullable) on text blocks; Tollway omits it when
    there are none (`null` breaks the Vercel AI SDK), so it is filled in before checking."""
    if isinstance(value, list):
        return [with_citations(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: with_citations(v) for k, v in value.items()}
    if out.get("type") == "text" and isinstance(out.get("text"), str) and "citations" not in out:
        out["citations"] = None
    return out


def validate(spec: str, schema_name: str, value: Any) -> list[str]:
    if spec == "anthropic":
        value = with_citations(value)
    root = _spec(spec)
    return _check(root, root["components"]["schemas"][schema_name], value, schema_name)


def _resolve(root: dict, ref: str) -> dict:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _check(root: dict, schema: Any, v: Any, path: str, depth: int = 0) -> list[str]:
    if not isinstance(schema, dict) or depth > 60:
        return []
    if v is None and schema.get("nullable"):
        return []
    if "$ref" in schema:
        errs = _check(root, _resolve(root, schema["$ref"]), v, path, depth + 1)
        rest = {k: x for k, x in schema.items() if k not in ("$ref", "description")}
        return errs + (_check(root, rest, v, path, depth + 1) if rest else [])
    if v is None and schema.get("nullable"):
        return []
    errs: list[str] = []
    for sub in schema.get("allOf", ()):
        errs += _check(root, sub, v, path, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_check(root, sub, v, path, depth + 1) for sub in schema[key]]
            if all(branches):
                best = max(branches, key=lambda es: max(len(e.split(": ", 1)[0]) for e in es))  # got furthest
                errs.append(f"{path}: matches no {key} branch (closest: {best[:3]})")
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if schema.get("nullable"):
            types = types + ["null"]
        if not any(_TYPES.get(x, lambda _: True)(v) for x in types):
            return errs + [f"{path}: expected {t}, got {type(v).__name__} {str(v)[:60]!r}"]
    if "enum" in schema and v not in schema["enum"] and not (v is None and None in schema["enum"]):
        errs.append(f"{path}: {v!r} not in enum {schema['enum'][:8]}")
    if "const" in schema and v != schema["const"]:
        errs.append(f"{path}: {v!r} != const {schema['const']!r}")
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for r in schema.get("required", ()):
            if r not in v:
                errs.append(f"{path}: missing required {r!r}")
        ap = schema.get("additionalProperties", True)
        for k, x in v.items():
            if k in props:
                errs += _check(root, props[k], x, f"{path}.{k}", depth + 1)
            elif ap is False and (props or "anyOf" not in schema):
                errs.append(f"{path}: unexpected property {k!r}")
            elif isinstance(ap, dict):
                errs += _check(root, ap, x, f"{path}.{k}", depth + 1)
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, x in enumerate(v):
                errs += _check(root, schema["items"], x, f"{path}[{i}]", depth + 1)
    return errs
