"""The portal's files at `/`: content types, cache headers, gzip, ETags, HEAD; nothing else is served."""

from __future__ import annotations

import gzip
import re
import urllib.error
import urllib.request

import pytest

from tests.harness import Tollway


def fetch(tw: Tollway, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(tw.url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_index_and_assets(tollway: Tollway) -> None:
    status, h, body = fetch(tollway, "/")
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8"
    assert h["cache-control"] == "no-cache" and h["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in h["content-security-policy"]
    assets = re.findall(rb'(?:src|href)="(/assets/[^"]+)"', body)
    assert {a.rsplit(b".", 1)[1] for a in assets} == {b"js", b"css"}
    for a in assets:
        status, h, data = fetch(tollway, a.decode(), **{"Accept-Encoding": "gzip"})
        assert status == 200 and h["cache-control"] == "public, max-age=31536000, immutable"
        assert h["content-type"].startswith("text/javascript" if a.endswith(b".js") else "text/css")
        assert h["content-encoding"] == "gzip" and gzip.decompress(data)
        assert fetch(tollway, a.decode(), **{"If-None-Match": h["etag"]})[0] == 304
        plain = fetch(tollway, a.decode())
        assert "content-encoding" not in plain[1] and plain[2] == gzip.decompress(data)
    status, h, body = fetch(tollway, "/", "HEAD")
    assert status == 200 and body == b"" and int(h["content-length"]) > 0


@pytest.mark.parametrize("path", ["/assets/nope.js", "/../pyproject.toml", "/assets/../../config.py", "/index.htm",
                                  "/dashboard/static/index.html"])
def test_nothing_else_is_served(tollway: Tollway, path: str) -> None:
    status, h, body = fetch(tollway, path)
    assert status == 404 and h["content-type"] == "application/json"
