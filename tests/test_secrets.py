"""SecretBox: AES-GCM sealing of credentials stored through the API."""

from __future__ import annotations

import pytest

from tollway.secrets import SecretBox, SecretBoxError


def test_seal_and_open_round_trip_and_each_seal_differs() -> None:
    box = SecretBox("correct horse battery staple")
    a, b = box.seal("sk-abc", "key:k1:openai"), box.seal("sk-abc", "key:k1:openai")
    assert a != b and "sk-abc" not in a
    assert box.open(a, "key:k1:openai") == "sk-abc"


def test_wrong_binding_wrong_key_or_tampering_do_not_open() -> None:
    box = SecretBox("k1")
    sealed = box.seal("sk-abc", "key:k1:openai")
    with pytest.raises(SecretBoxError):
        box.open(sealed, "key:k2:openai")
    with pytest.raises(SecretBoxError):
        SecretBox("k2").open(sealed, "key:k1:openai")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.open(tampered, "key:k1:openai")
    with pytest.raises(SecretBoxError):
        box.open("plain", "key:k1:openai")


def test_repr_and_errors_hold_no_secret() -> None:
    box = SecretBox("passphrase-123")
    assert "passphrase" not in repr(box)
    with pytest.raises(SecretBoxError) as e:
        box.open(box.seal("sk-abc", "a"), "b")
    assert "sk-abc" not in str(e.value) and "passphrase" not in str(e.value)
