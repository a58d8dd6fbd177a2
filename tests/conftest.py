"""Shared fixtures: a fake provider, a Tollway subprocess in front of it, and SDK clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import Tollway, anthropic_client, openai_client, standard_config


def pytest_report_header(config: pytest.Config) -> str:
    from tests import specs

    found = specs.specs_dir()
    if found is not None:
        return f"provider specs: {found}"
    return f"provider specs: MISSING, spec checks will {'FAIL' if specs.required() else 'skip'}: {specs.missing_reason()}"


def services_required() -> bool:
    return os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="session")
def tollway(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    tw = Tollway(tmp_path_factory.mktemp("tollway"), standard_config(fake.url))
    yield tw
    tw.stop()


@pytest.fixture
def oai(tollway: Tollway) -> openai.OpenAI:
    return openai_client(tollway)


@pytest.fixture
def claude(tollway: Tollway) -> anthropic.Anthropic:
    return anthropic_client(tollway)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    """`tollway serve --demo` with no config file (the harness strips provider env vars)."""
    tw = Tollway(tmp_path_factory.mktemp("demo"), None, demo=True)
    yield tw
    tw.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
