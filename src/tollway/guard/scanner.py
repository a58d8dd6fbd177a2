"""The scanner: finds credentials and PII in a text, and redacts what it found.

Speed is the design constraint (a 4 KB prompt in well under 100 µs of CPU, see
bench/guard_scan.py). Every pattern, credential rules and PII candidates alike, goes into one
RE2 `Set`: a single linear pass over the UTF-8 bytes says which patterns match anywhere. Text
without findings (nearly all of it) costs that one pass and nothing else; only the patterns
the set reports are run again to find their spans, keywords, entropy, allowlists and
validators. Offsets are byte offsets into the UTF-8 encoding; RE2 matches whole code points, so
they always fall on character boundaries.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import re2

from tollway.guard.pii import Recognizer
from tollway.guard.rules import Allowlist, CredentialRule, credential_rules, secret_span, shannon_entropy

log = logging.getLogger("tollway.guard")

CREDENTIAL = "credential"
PII = "pii"


@dataclass(frozen=True, slots=True)
class Finding:
    type: str  # e.g. "AWS_ACCESS_KEY", "EMAIL_ADDRESS"
    kind: str  # CREDENTIAL | PII
    start: int  # byte offsets in the UTF-8 text
    end: int


def placeholder(finding_type: str) -> str:
    return f"[REDACTED:{finding_type}]"


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    return dict(Counter(f.type for f in findings))


def _line(b: bytes, s: int, e: int) -> bytes:
    start = b.rfind(b"\n", 0, s) + 1
    end = b.find(b"\n", e)
    return b[start:] if end < 0 else b[start:end]


class Scanner:
    """Immutable once built; one per distinct configuration, shared by every request."""

    def __init__(self, *, credentials: bool, recognizers: tuple[Recognizer, ...] = ()) -> None:
        rules, self._global_allow = credential_rules() if credentials else ((), None)
        # Two sets, credentials and PII: measured faster than one (the joint DFA grows too large).
        self._groups: list[tuple[Any, list[tuple[str, Any, Any]]]] = []
        for kind, dets in ((CREDENTIAL, [(r.pattern, r, r.regex) for r in rules]),
                           (PII, [(r.pattern, r, re2.compile(r.pattern.encode())) for r in recognizers])):
            if not dets:
                continue
            opts = re2.Options()
            opts.max_mem = 64 << 20
            rset = re2.Set.SearchSet(opts)
            for pattern, _, _ in dets:
                rset.Add(pattern)
            rset.Compile()
            self._groups.append((rset, [(kind, det, regex) for _, det, regex in dets]))
        self.empty = not self._groups

    # -- finding --------------------------------------------------------------------------------
    def scan(self, text: str) -> list[Finding]:
        if self.empty or not text:
            return []
        return self.scan_bytes(text.encode("utf-8", "surrogatepass"))

    def scan_bytes(self, b: bytes) -> list[Finding]:
        if self.empty or not b:
            return []
        found: list[Finding] = []
        for rset, detectors in self._groups:
            try:
                hits = rset.Match(b)
            except Exception:  # the set's DFA ran out of memory on a pathological text: run every pattern
                log.warning("guard: pattern set failed on a %d-byte text; scanning pattern by pattern", len(b))
                hits = range(len(detectors))
            if hits:
                self._run(b, hits, detectors, found)
        return _without_overlaps(found) if found else found

    def _run(self, b: bytes, hits: Any, detectors: list[tuple[str, Any, Any]], found: list[Finding]) -> None:
        low: bytes | None = None
        for i in hits:
            kind, det, regex = detectors[i]
            if kind == CREDENTIAL:
                if det.keywords:
                    low = b.lower() if low is None else low
                    if not any(k in low for k in det.keywords):
                        continue
                self._credentials(det, regex, b, found)
            else:
                for m in regex.finditer(b):
                    s, e = m.span()
                    if e > s and (det.validate is None or det.validate(b[s:e].decode("utf-8", "replace"))):
                        found.append(Finding(det.entity, PII, s, e))

    def _credentials(self, rule: CredentialRule, regex: Any, b: bytes, found: list[Finding]) -> None:
        for m in regex.finditer(b):
            s, e = secret_span(rule, m)
            if e <= s:
                continue
            secret = b[s:e]
            if rule.entropy and shannon_entropy(secret) <= rule.entropy:
                continue
            ms, me = m.span()
            if _excused(rule.allowlists, self._global_allow, secret, b[ms:me], lambda ms=ms, me=me: _line(b, ms, me)):
                continue
            found.append(Finding(rule.label, CREDENTIAL, s, e))

    # -- redacting ------------------------------------------------------------------------------
    @staticmethod
    def redact_bytes(b: bytes, findings: Iterable[Finding]) -> bytes:
        out: list[bytes] = []
        pos = 0
        for f in sorted(findings, key=lambda f: f.start):
            if f.start < pos:
                continue
            out.append(b[pos:f.start])
            out.append(placeholder(f.type).encode())
            pos = f.end
        out.append(b[pos:])
        return b"".join(out)

    @classmethod
    def redact(cls, text: str, findings: Iterable[Finding]) -> str:
        b = text.encode("utf-8", "surrogatepass")
        return cls.redact_bytes(b, findings).decode("utf-8", "surrogatepass")


def _excused(lists: tuple[Allowlist, ...], glob: Allowlist | None, secret: bytes, match: bytes, line) -> bool:
    candidates = (*lists, glob) if glob is not None else lists
    for a in candidates:
        if a.excuses(secret, match, line() if a.target == "line" else b""):
            return True
    return False


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Earliest first; at the same start a credential beats PII and the longer match wins."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, f.kind != CREDENTIAL, f.start - f.end))
    kept: list[Finding] = []
    end = -1
    for f in found:
        if f.start >= end:
            kept.append(f)
            end = f.end
    return kept
