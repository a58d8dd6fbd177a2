"""Links in a pass-through answer that must point at Tollway, not at the provider.

An Anthropic Message Batch names the URL of its results (`results_url`) on Anthropic's host,
and the Anthropic SDKs fetch that URL as given, with the client's key: through Tollway that
key is a Tollway key, which must not travel to Anthropic (and would not work there). The URL
is rewritten to the same path under the Tollway base the client used, so the download goes
through Tollway with Tollway's Anthropic key (and is recorded).
"""

from __future__ import annotations

import orjson


def own_results_url(body: bytes, upstream: str, ours: str) -> bytes:
    """`body` (a batch, or a list of them) with each `results_url` under `upstream` (the provider's
    base URL) moved under `ours` (e.g. "http://tollway:8930/v1")."""
    if b'"results_url"' not in body:
        return body
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    batches = obj.get("data") if isinstance(obj, dict) and isinstance(obj.get("data"), list) else [obj]
    changed = False
    for b in batches:
        url = b.get("results_url") if isinstance(b, dict) else None
        if isinstance(url, str) and url.startswith(upstream + "/v1/"):
            b["results_url"] = ours + url[len(upstream) + 3:]
            changed = True
    return orjson.dumps(obj) if changed else body
