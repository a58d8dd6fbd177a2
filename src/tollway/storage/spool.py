"""The ledger's local spool: JSON-lines files that hold records the store could not take.

Layout of the spool directory:

- `spool.jsonl`: the active file; records are appended here (one `os.write` per batch, with
  O_APPEND, so lines never interleave).
- `replay-<time_ns>-<pid>.jsonl`: sealed segments. Replay first renames the active file to a
  segment (atomic), so appends carry on into a fresh active file while a segment is read.
  A segment is deleted once every record in it is stored, or cut down to the records not
  yet stored when replay is interrupted.
- `rejected.jsonl`: dead letters: records the store refuses on their own merits (a
  constraint or type error) and unreadable spool lines. Kept for an operator; never replayed.

Appends are fsynced (and so is the directory when a file is new): a record the writer has
handed to the spool survives a crash of the machine, not only of the process. A line a crash
cut short cannot be read back: it is dead-lettered, counted (`unreadable`) and logged.

All methods are synchronous and do small amounts of local disk I/O; they are called from the
event loop only on the failure path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tollway.storage.rows import record_from_json, record_to_json
from tollway.usage import UsageRecord

log = logging.getLogger(__name__)

ACTIVE = "spool.jsonl"
REJECTED = "rejected.jsonl"
SEGMENT_GLOB = "replay-*.jsonl"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def _line(record: UsageRecord) -> bytes:
    try:
        return record_to_json(record) + b"\n"
    except TypeError:  # a field of a type orjson cannot write: keep what we can read back
        return repr(record).encode() + b"\n"


class Spool:
    """JSON-lines files under one directory. One directory per process is simplest; sharing
    one is safe from duplicates (replay ignores rows already stored) but not from re-work."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.unreadable = 0  # lines that could not be read back (dead-lettered), since start

    @property
    def active_path(self) -> Path:
        return self.directory / ACTIVE

    @property
    def rejected_path(self) -> Path:
        return self.directory / REJECTED

    def append(self, records: Iterable[UsageRecord]) -> int:
        """Append records to the active file; returns how many. Raises OSError."""
        lines = [_line(r) for r in records]
        if not lines:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True)
        _append(self.active_path, b"".join(lines))
        return len(lines)

    def reject(self, lines: Iterable[bytes], reason: str) -> None:
        """Keep dead letters (raw lines, newline-terminated or not) in `rejected.jsonl`."""
        data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        if not data:
            return
        log.error("ledger: dead-lettering %d record(s) to %s: %s",
                  data.count(b"\n"), self.rejected_path, reason)
        self.directory.mkdir(parents=True, exist_ok=True)
        _append(self.rejected_path, data)

    def reject_records(self, records: Iterable[UsageRecord], reason: str) -> None:
        self.reject((_line(r) for r in records), reason)

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def size(self) -> int:
        """Bytes waiting to be replayed: the active file and the segments."""
        total = 0
        for path in (self.active_path, *self.segments()):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    def rejected_size(self) -> int:
        try:
            return self.rejected_path.stat().st_size
        except FileNotFoundError:
            return 0

    def has_data(self) -> bool:
        try:
            if self.active_path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        return bool(self.segments())

    def seal(self) -> list[Path]:
        """Turn the active file into a segment; return all segments, oldest first."""
        try:
            if self.active_path.stat().st_size > 0:
                name = f"replay-{time.time_ns():020d}-{os.getpid()}.jsonl"
                os.replace(self.active_path, self.directory / name)
        except FileNotFoundError:
            pass
        return self.segments()

    def read(self, segment: Path, batch_size: int) -> Iterator[list[tuple[int, UsageRecord]]]:
        """Batches of (byte offset of the line, record). Unreadable lines are dead-lettered."""
        batch: list[tuple[int, UsageRecord]] = []
        offset = 0
        with segment.open("rb") as f:
            for line in f:
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    batch.append((start, record_from_json(line)))
                except (ValueError, TypeError, ArithmeticError) as exc:
                    self.unreadable += 1
                    self.reject([line], f"UNREPLAYABLE spool line in {segment.name} (record lost to the "
                                        f"ledger; {self.unreadable} since start): {exc}")
                    continue
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def keep_from(self, segment: Path, offset: int) -> None:
        """Cut a segment down to its bytes from `offset` on (what is not yet stored)."""
        tmp = segment.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with segment.open("rb") as src, os.fdopen(fd, "wb") as dst:
            src.seek(offset)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, segment)
        _fsync_dir(self.directory)

    def remove(self, segment: Path) -> None:
        segment.unlink(missing_ok=True)
