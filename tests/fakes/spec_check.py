"""A small OpenAPI/JSON-Schema checker: required keys, types, const/enum, $ref/allOf/anyOf/oneOf.

Just enough to hold the fake's output to the providers' published specs (no jsonschema
dependency). `allow_null` names properties where the real API sends null although the schema
says otherwise (each use is explained where it is passed).
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
                          "boolean": bool, "null": type(None)}


class SchemaChecker:
    def __init__(self, spec: dict, allow_null: frozenset[str] = frozenset()):
        self.spec = spec
        self.allow_null = allow_null

    def errors(self, schema_name: str, value: Any) -> list[str]:
        return self._check({"$ref": f"#/components/schemas/{schema_name}"}, value, "$")

    def _ref(self, ref: str) -> Any:
        node: Any = self.spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def _check(self, s: Any, x: Any, path: str) -> list[str]:
        if not isinstance(s, dict):
            return []
        if x is None and (s.get("nullable") or path.rsplit(".", 1)[-1] in self.allow_null):
            return []
        errs: list[str] = []
        if "$ref" in s:
            errs += self._check(self._ref(s["$ref"]), x, path)
        for sub in s.get("allOf", []):
            errs += self._check(sub, x, path)
        for key in ("anyOf", "oneOf"):
            if key in s:
                results = [self._check(sub, x, path) for sub in s[key]]
                if all(results):
                    errs.append(f"{path}: matches no {key} branch; closest: {min(results, key=len)[:3]}")
        t = s.get("type")
        if x is None:
            if t is not None and t != "null" and not (isinstance(t, list) and "null" in t):
                errs.append(f"{path}: null where {t} expected")
            return errs
        if isinstance(t, str) and t in _TYPES:
            if not isinstance(x, _TYPES[t]) or (t in ("integer", "number") and isinstance(x, bool)):
                return errs + [f"{path}: expected {t}, got {type(x).__name__}"]
        if "const" in s and x != s["const"]:
            errs.append(f"{path}: {x!r} != const {s['const']!r}")
        if "enum" in s and x not in s["enum"]:
            errs.append(f"{path}: {x!r} not in {s['enum'][:10]}")
        if isinstance(x, dict):
            errs += [f"{path}: missing required '{k}'" for k in s.get("required", []) if k not in x]
            for k, sub in (s.get("properties") or {}).items():
                if k in x:
                    errs += self._check(sub, x[k], f"{path}.{k}")
        if isinstance(x, list) and "items" in s:
            for i, item in enumerate(x):
                errs += self._check(s["items"], item, f"{path}[{i}]")
        return errs
