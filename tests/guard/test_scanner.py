"""The scanner against the committed corpus of FAKE secrets, PII samples and look-alikes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tollway.guard.pii import recognizers
from tollway.guard.rules import credential_rules
from tollway.guard.scanner import CREDENTIAL, PII, Scanner, placeholder

CORPUS = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "guard" / "corpus.json").read_text())
FULL = Scanner(credentials=True, recognizers=recognizers())


def test_the_gitleaks_rule_set_loads_whole() -> None:
    rules, glob = credential_rules()
    assert len(rules) > 200 and glob is not None
    ids = {r.id for r in rules}
    for expected in ("aws-access-token", "openai-api-key", "anthropic-api-key", "github-pat", "gitlab-pat",
                     "slack-bot-token", "stripe-access-token", "gcp-api-key", "azure-ad-client-secret", "jwt",
                     "private-key", "connection-string-password"):
        assert expected in ids


@pytest.mark.parametrize("kind,secret", sorted(CORPUS["secrets"].items()))
def test_every_fake_secret_is_found_and_redacted(kind: str, secret: str) -> None:
    text = f"Please debug this:\n{secret}\nthanks"
    found = FULL.scan(text)
    assert [f.type for f in found] == [kind]
    assert found[0].kind == CREDENTIAL
    out = Scanner.redact(text, found)
    assert placeholder(kind) in out and out.startswith("Please debug this:\n") and out.endswith("\nthanks")
    # the secret's value is gone (for context rules, the key name stays: `api_key = [REDACTED:...]`)
    body = secret.split('"')[1] if kind == "GENERIC_API_KEY" else secret.split("@")[0].split(":")[-1] \
        if kind == "CONNECTION_STRING_PASSWORD" else secret.split("AccountKey=")[-1]
    assert body not in out


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in sorted(CORPUS["pii"].items()) for v in vs])
def test_every_pii_sample_is_found(kind: str, value: str) -> None:
    found = FULL.scan(f"contact: {value}.")
    assert [(f.type, f.kind) for f in found] == [(kind, PII)]
    assert Scanner.redact(f"contact: {value}.", found) == f"contact: {placeholder(kind)}."


@pytest.mark.parametrize("text", CORPUS["lookalikes"])
def test_lookalikes_do_not_match(text: str) -> None:
    assert FULL.scan(text) == []


def test_credentials_only_scanner_ignores_pii_and_keeps_offsets_in_non_ascii_text() -> None:
    aws = CORPUS["secrets"]["AWS_ACCESS_KEY"]
    text = f"clé secrète ✓ {aws} — écrit par jane.doe@example.com"
    creds = Scanner(credentials=True)
    found = creds.scan(text)
    assert [f.type for f in found] == ["AWS_ACCESS_KEY"]
    assert creds.redact(text, found) == "clé secrète ✓ [REDACTED:AWS_ACCESS_KEY] — écrit par jane.doe@example.com"


def test_custom_pii_patterns_plug_in() -> None:
    s = Scanner(credentials=False, recognizers=recognizers(("EMAIL_ADDRESS",), {"EMPLOYEE_ID": r"\bEMP-[0-9]{6}\b"}))
    found = s.scan("EMP-123456 wrote to jane.doe@example.com from 192.168.1.20")
    assert [f.type for f in found] == ["EMPLOYEE_ID", "EMAIL_ADDRESS"]  # IP_ADDRESS was not chosen


def test_overlapping_findings_keep_the_credential() -> None:
    text = "postgres://app:s3cretPassw0rd@db.example.com/app"
    found = FULL.scan(text)
    assert [f.type for f in found] == ["CONNECTION_STRING_PASSWORD"]


def test_a_key_inside_base64_noise_and_a_megabyte_line_is_still_found() -> None:
    """High-entropy text (the case the keyword pre-filter exists for) hides nothing, and a line
    allowlist still sees the line around a match when the line is a megabyte long."""
    import base64
    import random

    rnd = random.Random(12)
    noise = base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(30_000))).decode()
    aws = CORPUS["secrets"]["AWS_ACCESS_KEY"]
    found = FULL.scan(f"{noise[:20_000]} {aws} {noise[20_000:]}")
    assert [f.type for f in found] == ["AWS_ACCESS_KEY"]
    creds = Scanner(credentials=True)
    match = "token=Zx9a1B2c3D4e5F6g7H8qW"
    assert [f.type for f in creds.scan(match)] == ["GENERIC_API_KEY"]
    line = "x " * 400_000 + "RUN --mount=type=secret,id=npm " + match + " y" * 400_000
    assert creds.scan(line) == []  # excused by gitleaks' line allowlist (a Dockerfile secret mount)
