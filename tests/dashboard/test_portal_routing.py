"""The portal's Routing page in a real browser: the profiles, and the five-layer visualizer showing
per layer what POST /v1/route/explain kept (with scores) and removed (with reasons), and the plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.test_portal import shot, signed_in
from tests.fakes.provider import FakeProvider
from tests.harness import Tollway
from tests.routing.test_routing_e2e import HELLO, VIEWER_KEY, config, post


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    t = Tollway(tmp_path_factory.mktemp("portal-routing"), config(fake.url))
    yield t
    t.stop()


@pytest.mark.parametrize(("body", "profile"), [
    ({"model": "cheap", "messages": HELLO}, ""),
    ({"model": "spread", "messages": HELLO}, "pricey"),
    ({"model": "small", "messages": [{"role": "user", "content": "long " * 800}], "response_format": {"type": "json_object"}}, ""),
])
def test_routing_page_shows_each_layer_as_explain_does(browser: Browser, tw: Tollway, artifacts: Path,
                                                       body: dict, profile: str) -> None:
    p = signed_in(browser, tw, VIEWER_KEY, "routing")
    profiles = tw.get("/v1/profiles", key=VIEWER_KEY)[1]
    expect(p.get_by_test_id("profiles").locator("td[data-col='name']")).to_have_text(
        [x["name"] for x in profiles["data"]])
    expect(p.get_by_test_id("key-profile")).to_contain_text("none")
    p.get_by_test_id("explain-body").fill(json.dumps(body))
    if profile:
        p.get_by_test_id("explain-profile").select_option(profile)
    p.get_by_test_id("explain-submit").click()
    status, explained = post(tw, "/v1/route/explain", {**body, **({"profile": profile} if profile else {})},
                             key=VIEWER_KEY)
    assert status == 200 and explained["plan"]
    for layer in explained["layers"]:
        box = p.get_by_test_id(f"layer-{layer['name']}")
        kept = [k["deployment"] + (f" score {k['score']:.4f}" if "score" in k else "") for k in layer["kept"]]
        expect(box.get_by_test_id("kept")).to_have_text(kept)
        expect(box.get_by_test_id("removed")).to_have_text([f"{r['deployment']} {r['reason']}" for r in layer["removed"]])
    expect(p.get_by_test_id("explain-plan")).to_contain_text(" → ".join(explained["plan"]))
    if body["model"] == "small":  # the capabilities layer removed the deployment whose context is too small
        assert explained["layers"][1]["removed"]
    shot(p, artifacts, f"routing-{body['model']}")
    p.context.close()
