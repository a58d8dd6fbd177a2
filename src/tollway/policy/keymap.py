"""The seed's `[key_map.NAME]` tables: a virtual key (NAME itself) with its own provider keys.

    [key_map.team-alpha-key]          # clients send "Authorization: Bearer team-alpha-key"
    label = "Team Alpha"
    openai_key = "sk-..."             # used instead of the openai provider's api_key for this key
    anthropic_key = "sk-ant-..."

Each entry becomes an ordinary `[[keys]]` entry (so roles, limits and budgets work the same),
with the `<kind>_key` fields as its credentials. NAME is a secret: it never appears in an id,
a log line or an error message (entries are named by their label or their position).
"""

from __future__ import annotations

import re
from typing import Any

_CREDENTIAL_FIELDS = {"openai_key": "openai", "anthropic_key": "anthropic", "azure_openai_key": "azure_openai",
                      "azure_key": "azure_openai", "gemini_key": "gemini", "openai_compatible_key": "openai_compatible"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def key_map_entries(raw: Any) -> list[dict[str, Any]]:
    """`{NAME: {...}}` → `[{"key": NAME, ...}]`, so that later error paths say key_map[i], not NAME."""
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, dict):
        raise ValueError("key_map is a table of [key_map.KEY] tables")
    out = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError("each [key_map.KEY] is a table with label, openai_key, anthropic_key, ...")
        out.append({**entry, "key": name})
    return out


def expand_key_map(raw: Any, existing_keys: list[Any]) -> list[dict[str, Any]]:
    """The `[[keys]]` entries for a key_map section (dict or list form)."""
    taken = {k.get("id") for k in existing_keys if isinstance(k, dict)}
    keys: list[dict[str, Any]] = []
    for i, entry in enumerate(key_map_entries(raw)):
        e = dict(entry)
        secret = e.get("key")
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"key_map[{i}]: the table name is the key clients send; it cannot be empty")
        label = e.pop("label", None)
        creds = dict(e.pop("credentials", None) or {})
        for field, kind in _CREDENTIAL_FIELDS.items():
            value = e.pop(field, None)
            if value not in (None, ""):
                creds[kind] = value
        key_id = e.pop("id", None)
        if key_id is None:
            # from the label, else the position; never from NAME (not even a hash of it: key_map
            # names are often guessable, and a hash would let anyone confirm a guess)
            slug = _slug(label) if isinstance(label, str) else ""
            key_id = slug if slug and slug not in taken else f"{slug or 'keymap'}-{i + 1}"
        taken.add(key_id)
        out = {**e, "id": key_id, "key": secret, "credentials": creds}
        if label is not None:
            out.setdefault("name", label)
        keys.append(out)
    return keys
