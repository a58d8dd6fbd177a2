"""Roles on a live Tollway: user keys call models, viewer keys read, admin keys also change;
a management key is not an inference key; /v1/me says who a key is; /admin/audit needs viewer."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, openai_client, standard_config

VIEWER, ADMIN, BOTH = "tw-viewer-key-1", "tw-admin-key-1", "tw-admin-user-key"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["keys"] = [*cfg["keys"],
                   {"id": "viewer", "key": VIEWER, "roles": ["viewer"]},
                   {"id": "ops", "key": ADMIN, "roles": ["admin"]},
                   {"id": "ops-user", "key": BOTH, "roles": ["admin", "user"]}]
    t = Tollway(tmp_path_factory.mktemp("roles"), cfg)
    yield t
    t.stop()


def test_management_keys_cannot_call_models(tw: Tollway) -> None:
    for key in (VIEWER, ADMIN):
        with pytest.raises(openai.PermissionDeniedError) as e:
            openai_client(tw, key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert "management key" in e.value.message
    for key in (TEAM_KEY, BOTH, MASTER_KEY):
        r = openai_client(tw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        assert r.status_code == 200


@pytest.mark.parametrize("path", ["/v1/records", "/v1/stats", "/admin/audit"])
def test_reading_needs_viewer_or_admin(tw: Tollway, path: str) -> None:
    assert tw.get(path, key=TEAM_KEY)[0] == 403
    assert tw.get(path, key=None)[0] == 401
    assert tw.get(path, key="tw-nope")[0] == 401
    for key in (VIEWER, ADMIN, BOTH, MASTER_KEY):
        status, body = tw.get(path, key=key)
        assert status == 200, (key, body)
        assert "data" in body if path != "/v1/stats" else "totals" in body


def test_me_names_the_key_and_its_roles(tw: Tollway) -> None:
    assert tw.get("/v1/me", key=VIEWER) == (200, {"open": False, "key_id": "viewer", "roles": ["viewer"], "name": None,
                                                  "team": None, "project": None, "customer": None,
                                                  "source": "config"})
    assert tw.get("/v1/me", key=TEAM_KEY)[1]["roles"] == ["user"]
    assert tw.get("/v1/me", key=MASTER_KEY)[1]["roles"] == ["admin", "user", "viewer"]
    assert tw.get("/v1/me", key=None)[0] == 401


def test_unknown_admin_route_and_method(tw: Tollway) -> None:
    assert tw.get("/admin/nothing-here", key=ADMIN)[0] == 404
    import urllib.error
    import urllib.request
    req = urllib.request.Request(tw.url + "/admin/audit", method="DELETE", headers={"Authorization": f"Bearer {ADMIN}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_open_tollway_me_and_audit(demo: Tollway) -> None:
    assert demo.get("/v1/me", key=None)[1]["open"] is True
    status, body = demo.get("/admin/audit", key=None)
    assert status == 200 and body["data"] == []
