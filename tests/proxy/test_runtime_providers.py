"""Providers added at run time through the API: validated like the config file, sealed at rest,
audited, persistent across restarts, seen by every instance within seconds; config providers
and viewers cannot change anything."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, Tollway, openai_client, standard_config
from tests.proxy.test_postgres_store import pg_database  # noqa: F401 (fixture)

VIEWER, ADMIN = "tw-viewer-prov", "tw-admin-prov"
SECRET = "sk-runtime-secret-0123456789"
ENV = {"TOLLWAY_SECRET_KEY": "test passphrase for the secret box"}
HELLO = [{"role": "user", "content": "Hello"}]


def config(fake_url: str, **kw: Any) -> dict[str, Any]:
    cfg = standard_config(fake_url, **kw)
    cfg["keys"] = [*cfg["keys"], {"id": "viewer", "key": VIEWER, "roles": ["viewer"]},
                   {"id": "ops", "key": ADMIN, "roles": ["admin"]}]
    return cfg


def send(tw: Tollway, method: str, path: str, body: Any = None, key: str = ADMIN) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(tw.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def runtime_provider(fake_url: str, pid: str = "extra", model: str = "runtime-model") -> dict[str, Any]:
    return {"id": pid, "kind": "openai", "base_url": fake_url + "/v1", "api_key": SECRET, "models": [model]}


@pytest.fixture
def tw(fake: FakeProvider, tmp_path: Path) -> Iterator[Tollway]:
    t = Tollway(tmp_path, config(fake.url), env=ENV)
    yield t
    t.stop()


def test_list_shows_config_providers_read_only_and_never_a_key(tw: Tollway) -> None:
    status, body = send(tw, "GET", "/v1/providers", key=VIEWER)
    assert status == 200
    assert [(p["id"], p["source"], p["read_only"], p["has_key"]) for p in body["data"]] == [
        ("openai", "config", True, True), ("anthropic", "config", True, True)]
    assert "sk-fake-openai" not in json.dumps(body) and body["secret_key_set"] is True


@pytest.mark.parametrize(("body", "message"), [
    ({"id": "x", "kind": "nope"}, "kind"),
    ({"id": "bad id!", "kind": "openai"}, "id"),
    ({"id": "local", "kind": "openai_compatible"}, "base_url is required"),
    ({"id": "x", "kind": "openai", "surprise": 1}, "surprise"),
    ({"id": "x", "kind": "openai", "wire_format": "anthropic"}, "wire_format applies to the demo provider only"),
])
def test_invalid_providers_are_422_with_the_config_files_message(tw: Tollway, body: dict[str, Any],
                                                                  message: str) -> None:
    status, err = send(tw, "POST", "/v1/providers", body)
    assert status == 422, err
    assert message in err["error"]["message"]


def test_config_providers_are_read_only_and_viewers_change_nothing(tw: Tollway, fake: FakeProvider) -> None:
    assert send(tw, "POST", "/v1/providers", {"id": "openai", "kind": "openai"})[0] == 409
    assert send(tw, "DELETE", "/v1/providers/openai")[0] == 409
    assert send(tw, "POST", "/v1/providers", runtime_provider(fake.url), key=VIEWER)[0] == 403
    assert send(tw, "DELETE", "/v1/providers/extra", key=VIEWER)[0] == 403
    assert send(tw, "DELETE", "/v1/providers/nothing")[0] == 404
    assert len(send(tw, "GET", "/v1/providers")[1]["data"]) == 2


def test_an_added_provider_serves_is_sealed_audited_survives_a_restart_and_goes(
        tw: Tollway, fake: FakeProvider, tmp_path: Path) -> None:
    status, view = send(tw, "POST", "/v1/providers", runtime_provider(fake.url))
    assert status == 201, view
    assert (view["id"], view["has_key"], view["source"], view["created_by"]) == ("extra", True, "runtime", "ops")
    assert send(tw, "POST", "/v1/providers", runtime_provider(fake.url))[0] == 409  # no silent replace

    raw = openai_client(tw).chat.completions.with_raw_response.create(model="runtime-model", messages=HELLO)
    assert raw.status_code == 200
    assert tw.record(raw.headers["x-tollway-trace-id"])["provider"] == "extra"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {SECRET}"

    for f in (tmp_path / ".tollway").glob("tollway.db*"):  # sealed at rest, WAL included
        assert SECRET.encode() not in f.read_bytes()
    audit = send(tw, "GET", "/admin/audit?target=provider:extra", key=VIEWER)[1]["data"]
    assert [a["action"] for a in audit] == ["provider.create"] and audit[0]["actor"] == "ops"
    assert SECRET not in json.dumps(audit)

    tw.stop()
    again = Tollway(tmp_path, config(fake.url), env=ENV)
    try:
        assert openai_client(again).chat.completions.create(model="runtime-model", messages=HELLO).choices
        assert send(again, "DELETE", "/v1/providers/extra") == (200, {"id": "extra", "object": "provider",
                                                                       "deleted": True})
        with pytest.raises(openai.NotFoundError):
            openai_client(again).chat.completions.create(model="runtime-model", messages=HELLO)
        actions = [a["action"] for a in send(again, "GET", "/admin/audit?target=provider:extra")[1]["data"]]
        assert actions == ["provider.delete", "provider.create"]
    finally:
        again.stop()


def test_keys_need_a_secret_key(fake: FakeProvider, tmp_path: Path) -> None:
    t = Tollway(tmp_path, config(fake.url))
    try:
        status, err = send(t, "POST", "/v1/providers", runtime_provider(fake.url))
        assert status == 400 and "TOLLWAY_SECRET_KEY" in err["error"]["message"]
        # a local server without a key needs no secret key
        status, _ = send(t, "POST", "/v1/providers", {"id": "local", "kind": "openai_compatible",
                                                      "base_url": fake.local_url + "/v1", "models": ["llama-x"],
                                                      "discover_models": False})
        assert status == 201
        assert openai_client(t).chat.completions.create(model="llama-x", messages=HELLO).choices
    finally:
        t.stop()


def test_every_instance_picks_up_a_change_within_seconds(
        fake: FakeProvider, tmp_path: Path, pg_database: str) -> None:  # noqa: F811
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = config(fake.url, store={"url": pg_database, "flush_interval_secs": 0.05})
    first, second = Tollway(tmp_path / "a", cfg, env=ENV), Tollway(tmp_path / "b", cfg, env=ENV)
    try:
        assert send(first, "POST", "/v1/providers", runtime_provider(fake.url, model="shared-model"))[0] == 201
        deadline = time.time() + 5
        while True:
            try:
                openai_client(second).chat.completions.create(model="shared-model", messages=HELLO)
                break
            except openai.NotFoundError:
                assert time.time() < deadline, "the second instance did not pick up the new provider"
                time.sleep(0.2)
        assert send(second, "DELETE", "/v1/providers/extra")[0] == 200
        deadline = time.time() + 5
        while True:
            try:
                openai_client(first).chat.completions.create(model="shared-model", messages=HELLO)
            except openai.NotFoundError:
                break
            assert time.time() < deadline, "the first instance still routes to a removed provider"
            time.sleep(0.2)
    finally:
        first.stop()
        second.stop()


def test_master_key_may_change_too(tw: Tollway, fake: FakeProvider) -> None:
    assert send(tw, "POST", "/v1/providers", runtime_provider(fake.url, "m"), key=MASTER_KEY)[0] == 201
    assert send(tw, "DELETE", "/v1/providers/m", key=MASTER_KEY)[0] == 200
