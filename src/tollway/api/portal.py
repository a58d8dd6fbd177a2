"""The portal: the built single-page app (dashboard/static/) served at `/`.

Every file is read once at start-up into memory (a few hundred KB) with its content type, an
ETag and a gzip copy; only those paths exist, so nothing outside the directory can be named.
`index.html` is revalidated on every load (`no-cache`); files under `assets/` carry a content
hash in their name and are cached for a year (`immutable`).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from tollway.api.asgi import Receive, Scope, Send, send_bytes

STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json",
          ".ico": "image/x-icon", ".png": "image/png", ".txt": "text/plain; charset=utf-8",
          ".woff2": "font/woff2", ".map": "application/json"}
_SECURITY = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
             (b"x-frame-options", b"DENY"),
             (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' "
                                          b"'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"))


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    gz: bytes | None
    content_type: bytes
    etag: bytes
    cache: bytes


def load_static(root: Path = STATIC_DIR) -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    if not root.is_dir():
        return files
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = "/" + path.relative_to(root).as_posix()
        body = path.read_bytes()
        ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        gz = gzip.compress(body, 6, mtime=0) if len(body) > 1024 and path.suffix in (".js", ".css", ".html", ".svg",
                                                                                        ".json") else None
        immutable = rel.startswith("/assets/")
        files[rel] = StaticFile(body, gz if gz is not None and len(gz) < len(body) else None, ctype.encode(),
                                b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"',
                                b"public, max-age=31536000, immutable" if immutable else b"no-cache")
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


class PortalRoute:
    def __init__(self, files: dict[str, StaticFile] | None = None) -> None:
        self.files = load_static() if files is None else files

    def serves(self, path: str) -> bool:
        return path in self.files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        f = self.files[scope["path"]]
        req = dict(scope["headers"])
        headers = [(b"content-type", f.content_type), (b"cache-control", f.cache), (b"etag", f.etag),
                   (b"vary", b"accept-encoding"), *_SECURITY]
        if req.get(b"if-none-match") == f.etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = f.body
        if f.gz is not None and b"gzip" in req.get(b"accept-encoding", b""):
            body = f.gz
            headers.append((b"content-encoding", b"gzip"))
        if scope["method"] == "HEAD":
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_bytes(send, 200, body, headers)
