"""The providers' published OpenAPI specs (`../shared/specs` beside the clone) and validation against
them with maintained libraries (jsonschema through openapi-schema-validator's OAS 3.1 dialect).

Where the specs are: `TOLLWAY_SPECS_DIR` if set; else `shared/specs` beside the repository; else,
in a git worktree, beside the main checkout the worktree belongs to. Never an absolute path.
When they are missing, a test that needs them skips with the places looked in, unless
`TOLLWAY_REQUIRE_SPECS=1` or `TOLLWAY_REQUIRE_SERVICES=1` (CI) is set: then it fails. The session
header says which (see tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FILES = {"openai": "openai-openapi.yml", "anthropic": "anthropic-openapi.json"}


def _main_checkout(repo: Path) -> Path | None:
    """For a git worktree (`.git` is a file), the checkout whose `.git` directory it shares."""
    dotgit = repo / ".git"
    if not dotgit.is_file():
        return None
    text = dotgit.read_text().strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = (repo / text.split(":", 1)[1].strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        gitdir = (gitdir / common.read_text().strip()).resolve()
    return gitdir.parent if gitdir.name == ".git" else None


def candidates() -> list[Path]:
    if os.environ.get("TOLLWAY_SPECS_DIR"):
        return [Path(os.environ["TOLLWAY_SPECS_DIR"])]
    out = [REPO.parent / "shared" / "specs"]
    main = _main_checkout(REPO)
    if main is not None:
        out.append(main.parent / "shared" / "specs")
    return out


@functools.lru_cache(maxsize=1)
def specs_dir() -> Path | None:
    for path in candidates():
        if all((path / f).is_file() for f in FILES.values()):
            return path
    return None


def required() -> bool:
    return "1" in (os.environ.get("TOLLWAY_REQUIRE_SPECS"), os.environ.get("TOLLWAY_REQUIRE_SERVICES"))


def missing_reason() -> str:
    looked = ", ".join(str(p) for p in candidates())
    return f"provider specs not found (looked in {looked}; set TOLLWAY_SPECS_DIR)"


def require() -> Path:
    """The specs directory, or skip the calling test (fail when specs are required)."""
    found = specs_dir()
    if found is None:
        if required():
            pytest.fail(missing_reason() + " and TOLLWAY_REQUIRE_SPECS / TOLLWAY_REQUIRE_SERVICES is set",
                        pytrace=False)
        pytest.skip(missing_reason())
    return found


@functools.lru_cache(maxsize=None)
def spec(name: str) -> dict[str, Any]:
    path = require() / FILES[name]
    if path.suffix == ".json":
        return json.loads(path.read_text())
    # the OpenAI YAML takes ~1 s to parse: cache it by mtime in pytest's cache directory
    cache = REPO / ".pytest_cache" / "specs" / f"{name}-{path.stat().st_mtime_ns}.pickle"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    import yaml

    loaded = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(loaded))
    except OSError:
        pass
    return loaded


@functools.lru_cache(maxsize=1)
def validator_class() -> Any:
    """OAS 3.1 (JSON Schema 2020-12) plus the OAS 3.0 keyword `nullable: true`, which both specs still
    use although they declare 3.1: a nullable schema accepts null, whatever its other keywords say."""
    from jsonschema import validators
    from openapi_schema_validator import OAS31Validator

    def nullable(check: Any) -> Any:
        def run(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
            if instance is None and schema.get("nullable") is True:
                return
            yield from check(validator, value, instance, schema) or ()
        return run

    return validators.extend(OAS31Validator, {k: nullable(v) for k, v in OAS31Validator.VALIDATORS.items()})


@functools.lru_cache(maxsize=None)
def _validator(name: str, schema_name: str) -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = spec(name)
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"{FILES[name]} has no schema {schema_name!r}")
    uri = f"urn:tollway-spec:{name}"
    registry = Registry().with_resource(uri, Resource.from_contents(document, default_specification=DRAFT202012))
    return validator_class()({"$ref": f"{uri}#/components/schemas/{schema_name}"}, registry=registry)


def _tolerated(err: Any, allow_null: frozenset[str]) -> bool:
    """An error caused only by null in one of `allow_null` (in every failing branch it needs)."""
    if err.validator in ("anyOf", "oneOf") and err.context:
        branches: dict[Any, list[Any]] = defaultdict(list)
        for sub in err.context:
            branches[sub.relative_schema_path[0]].append(sub)
        return any(all(_tolerated(s, allow_null) for s in subs) for subs in branches.values())
    return err.instance is None and bool(err.path) and err.path[-1] in allow_null


def with_citations(value: Any) -> Any:
    """Anthropic's spec makes `citations` required (nullable) on text blocks; Tollway's translated
    answers omit it when there are none (`null` breaks the Vercel AI SDK), so it is filled in here."""
    if isinstance(value, list):
        return [with_citations(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: with_citations(v) for k, v in value.items()}
    if out.get("type") == "text" and isinstance(out.get("text"), str) and "citations" not in out:
        out["citations"] = None
    return out


def errors(name: str, schema_name: str, value: Any, allow_null: Iterable[str] = ()) -> list[str]:
    """Problems of `value` against `components.schemas[schema_name]` of spec `name` ("openai" or
    "anthropic"); [] when it conforms. `allow_null` names properties where the real API sends null
    although the schema does not say so (each caller says why)."""
    allowed = frozenset(allow_null)
    if name == "anthropic":
        value = with_citations(value)
    out = []
    for err in _validator(name, schema_name).iter_errors(value):
        if allowed and _tolerated(err, allowed):
            continue
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(f"{where}: {err.message[:300]}")
    return out


def openapi_errors(document: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """Problems of `value` against `schema` inside an OpenAPI 3.1 `document` (e.g. Tollway's own)."""
    from openapi_schema_validator import OAS31Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:tollway-doc"
    registry = Registry().with_resource(uri, Resource.from_contents(document, default_specification=DRAFT202012))
    schema = json.loads(json.dumps(schema).replace('"#/', f'"{uri}#/'))
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:300]}"
            for e in OAS31Validator(schema, registry=registry).iter_errors(value)]
