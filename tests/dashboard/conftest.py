"""A headless Debian chromium driven by Playwright (its own browser download cannot work here).

Skips when /usr/bin/chromium is absent, unless TOLLWAY_REQUIRE_SERVICES=1 (CI installs it with
apt). Screenshots of every page land in tests/artifacts/portal/ (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TOLLWAY_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "portal"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: Playwright's sync API holds an event loop on this thread while it runs,
    which the asyncio tests of later modules must not find."""
    if not Path(CHROMIUM).exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " and TOLLWAY_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
