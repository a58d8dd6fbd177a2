"""Configuration problems as the operator reads them: key paths, "did you mean", no secrets.

`cross_checks` looks across entries (duplicate ids and keys, a key equal to the master key,
aliases to unknown providers) on the parsed document itself, so that it runs even when some
field elsewhere is invalid: pydantic skips a model's after-validators once any field fails,
and a file's problems must all be reported in one pass.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "int_parsing", "float_parsing", "bool_parsing"}


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `Model`, `Model | None`, `list[Model]` or `dict[str, Model]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _inner_model(typing.get_args(annotation)[0])
    if origin in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def model_at(root: type[BaseModel], parts: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the key at `parts` (list indexes skipped), or None."""
    model: type[BaseModel] | None = root
    for part in parts:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _inner_model(field.annotation) if field is not None else None
    return model


def validation_problems(err: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """(key path, message) per error; inputs are looked at for their type only, never shown."""
    out: list[tuple[str, str]] = []
    for e in err.errors(include_url=False):
        loc = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            holder = model_at(root, e["loc"][:-1])
            if holder is not None:
                close = difflib.get_close_matches(str(e["loc"][-1]), list(holder.model_fields), n=1, cutoff=0.6)
                if close:
                    msg += f" (did you mean {close[0]!r}?)"
        elif e["type"] in _TYPE_ERRORS and isinstance(e.get("input"), str):
            msg += " (the value is quoted text: write it without quotes)"
        out.append((loc, msg))
    return out


def _entries(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(section)
    return [(i, x) for i, x in enumerate(items) if isinstance(x, dict)] if isinstance(items, list) else []


def cross_checks(data: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen_ids: dict[str, int] = {}
    for i, p in _entries(data, "providers"):
        pid = p.get("id")
        if isinstance(pid, str) and pid:
            if pid in seen_ids:
                problems.append((f"providers[{i}].id", f"duplicate provider id {pid!r} "
                                                       f"(also providers[{seen_ids[pid]}])"))
            else:
                seen_ids[pid] = i
    enabled = {p.get("id") for _, p in _entries(data, "providers") if p.get("enabled", True) is not False}
    aliases = data.get("aliases")
    for alias, target in (aliases.items() if isinstance(aliases, dict) else ()):
        if not isinstance(target, str):
            continue
        prov, sep, model = target.partition(":")
        if sep and prov not in enabled:
            problems.append((f"aliases.{alias}", f"unknown provider {prov!r} in {target!r}"))
        elif sep and not model:
            problems.append((f"aliases.{alias}", f"empty model in {target!r}"))
    server = data.get("server")
    master = server.get("master_key") if isinstance(server, dict) else None
    key_ids: dict[str, int] = {}
    keys: dict[str, int] = {}
    for i, k in _entries(data, "keys"):
        kid, key = k.get("id"), k.get("key")
        if isinstance(kid, str) and kid:
            if kid in key_ids:
                problems.append((f"keys[{i}].id", f"duplicate key id {kid!r} (also keys[{key_ids[kid]}])"))
            else:
                key_ids[kid] = i
            if kid == "master":
                problems.append((f"keys[{i}].id", "'master' is the master key's id in records; choose another"))
        if isinstance(key, str) and key:
            if isinstance(master, str) and key == master:
                problems.append((f"keys[{i}].key", "is the master key: a [[keys]] key must differ from it "
                                                   "(the value is not shown)"))
            elif key in keys:
                problems.append((f"keys[{i}].key", f"the same key as keys[{keys[key]}]: every key must be "
                                                   "unique (the value is not shown)"))
            else:
                keys[key] = i
    return problems
