"""multipart/form-data parsing that keeps file bytes exactly as sent."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


_DISPOSITION_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def parse_multipart(body: bytes, content_type: str) -> dict[str, str | UploadedFile]:
    """Parse multipart/form-data exactly (byte-for-byte file contents)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return {}
    delimiter = b"--" + m.group(1).encode()
    fields: dict[str, str | UploadedFile] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        part_headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            part_headers[name.strip().lower()] = value.strip()
        params = {}
        for key, quoted, plain in _DISPOSITION_PARAM.findall(part_headers.get("content-disposition", "")):
            params[key.lower()] = quoted.replace('\\"', '"') if quoted else plain.strip()
        name = params.get("name", "")
        if "filename" in params or "filename*" in params:
            filename = params.get("filename") or params.get("filename*", "").split("''")[-1]
            fields[name] = UploadedFile(filename, part_headers.get("content-type", "application/octet-stream"), data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields
