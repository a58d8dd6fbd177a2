"""Shared fixtures: a fake provider, a Tollway subprocess in front of it, and SDK clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, standard_config


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
    return openai.OpenAI(base_url=tollway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.fixture
def claude(tollway: Tollway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=tollway.url, api_key=MASTER_KEY, max_retries=0, timeout=20)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
