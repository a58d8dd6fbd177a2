"""Secrets at rest: provider credentials that operators set through the API are sealed with
AES-GCM (the `cryptography` package) before they reach the store, and opened only in memory.

The key comes from `TOLLWAY_SECRET_KEY` (or `[server] secret_key`): any string, stretched to
256 bits with HKDF-SHA256, so an operator can use a passphrase or `openssl rand -base64 32`.
Each sealed value is bound to what it belongs to (the associated data, e.g. `key:team-a:openai`),
so a ciphertext copied onto another row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1:"
_INFO = b"tollway secret box v1"


class SecretBoxError(Exception):
    """A sealed value could not be opened (wrong key, tampered, or not ours). Never holds a secret."""


class SecretBox:
    __slots__ = ("_aead",)

    def __init__(self, passphrase: str) -> None:
        if not passphrase:
            raise ValueError("the secret key is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(passphrase.encode())
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + ct).decode()

    def open(self, sealed: str, bound_to: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SecretBoxError("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX):])
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except (InvalidTag, ValueError) as e:
            raise SecretBoxError("the sealed value does not open with this TOLLWAY_SECRET_KEY") from e
