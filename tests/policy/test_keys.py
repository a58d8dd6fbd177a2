"""Virtual keys through the admin API and the CLI: shown once, stored as a hash, roles, config
keys read-only, rotation with grace, revocation within a second, key_map credentials sealed at
rest, every change audited, input validated with the field path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import MASTER_KEY, TEAM_KEY, Tollway, openai_client, standard_config
from tests.policy.support import HELLO, admin, eventually

SECRET_KEY = "test-secret-box-key"


@pytest.fixture(scope="module")
def tw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tollway]:
    cfg = standard_config(fake.url)
    cfg["server"]["secret_key"] = SECRET_KEY
    cfg["teams"] = [{"id": "platform", "rpm": 1000}]
    t = Tollway(tmp_path_factory.mktemp("keys"), cfg)
    yield t
    t.stop()


def works(tw: Tollway, key: str) -> bool:
    try:
        openai_client(tw, key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        return True
    except openai.AuthenticationError:
        return False


def test_create_use_show_once_and_hash_only(tw: Tollway) -> None:
    status, k = admin(tw, "POST", "/admin/keys", {"name": "billing-svc", "team": "platform", "rpm": 50,
                                                  "budgets": ["20/month"], "models": ["gpt-4o*"]})
    assert status == 201, k
    assert k["key"].startswith(f"tw-{k['id']}-") and len(k["key"]) > 40
    assert k["key_prefix"] == f"tw-{k['id']}-…" and k["state"] == "active" and k["source"] == "store"
    assert k["limits"]["rpm"] == 50 and k["budgets"][0]["limit_usd"] == "20.000000000"
    assert k["budgets"][0]["spent_usd"] == "0.000000000" and k["budgets"][0]["resets_at"].endswith("T00:00:00Z")
    assert works(tw, k["key"])
    status, shown = admin(tw, "GET", f"/admin/keys/{k['id']}")
    assert status == 200 and "key" not in shown
    listed = {x["id"]: x for x in admin(tw, "GET", "/admin/keys")[1]["data"]}
    assert "key" not in listed[k["id"]] and listed["team-alpha"]["source"] == "config"
    assert Decimal_str(listed[k["id"]]["budgets"][0]["spent_usd"]) > 0  # the call above was priced
    store = store_bytes(tw)
    secret = k["key"].split("-", 2)[2]
    assert secret.encode() not in store and k["key"].encode() not in store
    import hashlib

    assert hashlib.sha256(k["key"].encode()).hexdigest().encode() in store


def store_bytes(tw: Tollway) -> bytes:
    """The SQLite store as it is on disk: the database file and its write-ahead log."""
    db = tw.workdir / ".tollway" / "tollway.db"
    return b"".join(f.read_bytes() for f in (db, db.with_name("tollway.db-wal")) if f.exists())


def Decimal_str(s: str):  # noqa: N802
    from decimal import Decimal

    return Decimal(s)


def test_validation_names_the_field_and_changes_nothing(tw: Tollway) -> None:
    audit_before = len(admin(tw, "GET", "/admin/audit?limit=1000")[1]["data"])
    keys_before = len(admin(tw, "GET", "/admin/keys")[1]["data"])
    for body, param in (({"name": "x", "budgets": ["50/fortnight"]}, "budgets.0"),
                        ({"name": "x", "rpm": -5}, "rpm"),
                        ({"name": "x", "team": "no-such-team"}, "team"),
                        ({"name": "x", "colour": "blue"}, "colour"),
                        ({"rpm": 5}, "name"),
                        # JSON true is not 1 and "10" is not 10; a key's project is a slug like any other
                        ({"name": "x", "rpm": True}, "rpm"),
                        ({"name": "x", "max_concurrency": "10"}, "max_concurrency"),
                        ({"name": "x", "expires_at": True}, "expires_at"),
                        ({"name": "x", "project": "../etc"}, "project")):
        status, err = admin(tw, "POST", "/admin/keys", body)
        assert status == 422, (body, err)
        assert err["error"]["param"] == param and err["error"]["code"] == "validation_error"
    assert admin(tw, "POST", "/admin/budgets", {"scope": "team", "target": "ghost", "limit": "5/day"})[0] == 422
    assert admin(tw, "POST", "/admin/budgets", {"scope": "planet", "target": "x", "limit": "5/day"})[0] == 422
    assert len(admin(tw, "GET", "/admin/audit?limit=1000")[1]["data"]) == audit_before
    assert len(admin(tw, "GET", "/admin/keys")[1]["data"]) == keys_before


def test_config_keys_are_read_only(tw: Tollway) -> None:
    for method, path, body in (("PATCH", "/admin/keys/team-alpha", {"rpm": 1}), ("DELETE", "/admin/keys/team-alpha",
                                                                               None),
                               ("POST", "/admin/keys/team-alpha/rotate", {}), ("PATCH", "/admin/teams/platform",
                                                                               {"rpm": 1})):
        status, err = admin(tw, method, path, body)
        assert status == 409 and "config" in err["error"]["message"], (path, err)
    assert works(tw, TEAM_KEY)


def test_rotation_with_grace_and_revocation(tw: Tollway) -> None:
    k = admin(tw, "POST", "/admin/keys", {"name": "rotating"})[1]
    status, r = admin(tw, "POST", f"/admin/keys/{k['id']}/rotate", {"grace": "1h"})
    assert status == 200 and r["id"] == k["id"] and r["key"] != k["key"] and r["old_secret_valid_until"]
    assert works(tw, k["key"]) and works(tw, r["key"])  # both during the grace period
    r2 = admin(tw, "POST", f"/admin/keys/{k['id']}/rotate", {})[1]  # no grace: the others stop now
    assert works(tw, r2["key"]) and not works(tw, r["key"]) and not works(tw, k["key"])
    assert admin(tw, "DELETE", f"/admin/keys/{k['id']}")[1]["state"] == "revoked"
    assert not works(tw, r2["key"])
    assert admin(tw, "PATCH", f"/admin/keys/{k['id']}", {"rpm": 5})[0] == 409
    actions = [(e["action"], e["target"]) for e in admin(tw, "GET", f"/admin/audit?target=key:{k['id']}")[1]["data"]]
    assert actions == [("key.revoke", f"key:{k['id']}"), ("key.rotate", f"key:{k['id']}"),
                       ("key.rotate", f"key:{k['id']}"), ("key.create", f"key:{k['id']}")]


def test_expiry(tw: Tollway) -> None:
    k = admin(tw, "POST", "/admin/keys", {"name": "short-lived", "expires_in": "1s"})[1]
    assert works(tw, k["key"])
    time.sleep(1.1)
    assert not works(tw, k["key"])
    assert admin(tw, "GET", f"/admin/keys/{k['id']}")[1]["state"] == "expired"


def test_store_keys_have_roles(tw: Tollway) -> None:
    viewer = admin(tw, "POST", "/admin/keys", {"name": "dash", "roles": ["viewer"]})[1]["key"]
    ops = admin(tw, "POST", "/admin/keys", {"name": "ops", "roles": ["admin"]})[1]["key"]
    assert admin(tw, "GET", "/admin/keys", key=viewer)[0] == 200
    assert admin(tw, "POST", "/admin/keys", {"name": "nope"}, key=viewer)[0] == 403
    assert admin(tw, "GET", "/v1/records", key=viewer)[0] == 200
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(tw, viewer).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    status, made = admin(tw, "POST", "/admin/keys", {"name": "made-by-ops"}, key=ops)
    assert status == 201
    entry = admin(tw, "GET", f"/admin/audit?target=key:{made['id']}")[1]["data"][0]
    assert entry["actor"] == admin(tw, "GET", "/v1/me", key=ops)[1]["key_id"]
    user = admin(tw, "POST", "/admin/keys", {"name": "u"})[1]["key"]
    assert admin(tw, "GET", "/admin/keys", key=user)[0] == 403


def test_credentials_are_sealed_and_used_for_the_keys_calls(tw: Tollway, fake: FakeProvider) -> None:
    plaintext = "sk-team-owned-credential-0123456789"
    status, k = admin(tw, "POST", "/admin/keys", {"name": "own-creds", "credentials": {"openai": plaintext}})
    assert status == 201 and k["credentials"] == ["openai"] and plaintext not in json.dumps(k)
    fake.clear()
    assert works(tw, k["key"])
    assert fake.requests[-1].headers["authorization"] == f"Bearer {plaintext}"
    assert works(tw, TEAM_KEY)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-fake-openai"  # others keep the provider's
    store = store_bytes(tw)
    assert b"credentials" in store and plaintext.encode() not in store
    assert plaintext not in json.dumps(admin(tw, "GET", "/admin/audit?limit=1000")[1])
    assert plaintext not in json.dumps(admin(tw, "GET", "/admin/keys")[1])
    assert admin(tw, "PATCH", f"/admin/keys/{k['id']}", {"credentials": {"openai": None}})[1]["credentials"] == []
    fake.clear()
    assert works(tw, k["key"]) and fake.requests[-1].headers["authorization"] == "Bearer sk-fake-openai"


def test_credentials_need_a_secret_key(fake: FakeProvider, tmp_path: Path) -> None:
    tw = Tollway(tmp_path, standard_config(fake.url))
    try:
        status, err = admin(tw, "POST", "/admin/keys", {"name": "x", "credentials": {"openai": "sk-1"}})
        assert status == 422 and "TOLLWAY_SECRET_KEY" in err["error"]["message"]
        assert err["error"]["param"] == "credentials"
    finally:
        tw.stop()


def test_key_map_from_config(fake: FakeProvider, tmp_path: Path) -> None:
    """The seed's format: [key_map.NAME] with label, openai_key and anthropic_key."""
    cfg = standard_config(fake.url)
    tw_dir = tmp_path / "tw"
    tw_dir.mkdir()
    from tests.harness import to_toml

    toml = to_toml(cfg) + (
        '\n[key_map.team-alpha-virtual]\nlabel = "Team Alpha"\nopenai_key = "sk-alpha-own"\n'
        'anthropic_key = "sk-ant-alpha-own"\n'
        '\n[key_map.team-beta-virtual]\nlabel = "Team Beta"\nopenai_key = "sk-beta-own"\n')
    tw = Tollway(tw_dir, None, extra_args=["--config", str(_write(tw_dir / "tollway.toml", toml))])
    try:
        fake.clear()
        openai_client(tw, "team-alpha-virtual").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-alpha-own"
        from tests.harness import anthropic_client

        anthropic_client(tw, "team-alpha-virtual").messages.create(model="claude-3-5-haiku-latest", max_tokens=5,
                                                                   messages=HELLO)
        assert fake.requests[-1].headers["x-api-key"] == "sk-ant-alpha-own"
        anthropic_client(tw, "team-beta-virtual").messages.create(model="claude-3-5-haiku-latest", max_tokens=5,
                                                                  messages=HELLO)
        assert fake.requests[-1].headers["x-api-key"] == "sk-ant-fake"  # no anthropic_key: the provider's
        keys = {k["name"]: k for k in admin(tw, "GET", "/admin/keys")[1]["data"]}
        # ids come from the label; "team-alpha" is taken by a [[keys]] entry, so that one adds its position
        assert keys["Team Beta"]["id"] == "team-beta" and keys["Team Alpha"]["id"] == "team-alpha-1"
        assert keys["Team Alpha"]["credentials"] == ["anthropic", "openai"] and keys["Team Alpha"]["read_only"]
        rec = tw.records(limit=1)[0]
        assert rec["key_id"] == "team-beta"
        assert "team-alpha-virtual" not in tw.log() and "sk-alpha-own" not in tw.log()
    finally:
        tw.stop()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tollway", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TOLLWAY_MASTER_KEY": ""}, cwd=cwd)


def test_cli_on_the_store_and_through_the_api(tw: Tollway) -> None:
    assert tw.config_path is not None
    made = _cli("keys", "create", "--name", "from-cli", "--budget", "3/day", "--rpm", "100", "--models",
                "gpt-4o*,claude-*", "--config", str(tw.config_path), "--json", cwd=tw.workdir)
    assert made.returncode == 0, made.stderr
    k = json.loads(made.stdout)
    eventually(lambda: works(tw, k["key"]), within=1.5)  # the running Tollway sees the store change
    listed = _cli("keys", "list", "--json", "--config", str(tw.config_path), cwd=tw.workdir)
    mine = [x for x in json.loads(listed.stdout) if x["id"] == k["id"]][0]
    assert mine["limits"]["models"] == ["gpt-4o*", "claude-*"] and mine["budgets"][0]["window"] == "day"
    table = _cli("keys", "list", "--url", tw.url, "--admin-key", MASTER_KEY)
    assert table.returncode == 0 and k["id"] in table.stdout and "from-cli" in table.stdout
    bad = _cli("keys", "create", "--name", "x", "--budget", "lots", "--url", tw.url, "--admin-key", MASTER_KEY)
    assert bad.returncode == 2 and "budgets.0" in bad.stderr
    revoked = _cli("keys", "revoke", k["id"], "--url", tw.url, "--admin-key", MASTER_KEY)
    assert revoked.returncode == 0, revoked.stderr
    assert not works(tw, k["key"])
    entry = admin(tw, "GET", f"/admin/audit?target=key:{k['id']}")[1]["data"]
    assert [e["actor"] for e in entry][-1].startswith("cli:") and entry[0]["actor"] == "master"
    team = _cli("teams", "create", "cli-team", "--rpm", "10", "--budget", "1/week", "--config", str(tw.config_path),
                cwd=tw.workdir)
    assert team.returncode == 0, team.stderr
    budgets = json.loads(_cli("budgets", "list", "--json", "--scope", "team", "--url", tw.url, "--admin-key",
                              MASTER_KEY).stdout)
    assert any(b["target"] == "cli-team" and b["window"] == "week" for b in budgets)


def test_workers_need_redis() -> None:
    out = _cli("serve", "--workers", "2", "--port", "1")
    assert out.returncode == 2 and "[redis] url" in out.stderr and "every worker" in out.stderr
