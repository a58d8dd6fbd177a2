"""The scanner: finds credentials and PII in a text, and redacts what it found.

Speed is the design constraint (a 4 KB prompt in well under 100 µs of CPU, see
bench/guard_scan.py), on any text a client sends: prose, code, base64, minified JSON.

- Credentials: gitleaks' own pre-filter. Every rule names keywords, one of which must occur in
  the text for the rule to apply; one RE2 `Set` of those keywords (literals, over the
  lower-cased bytes) says in a single linear pass which rules can apply at all, and only those
  run their regex. A set of the rules' regexes themselves is not used: on high-entropy text
  (base64, hex dumps) its DFA meets a new state on nearly every byte, and building a state of
  the ~220-rule automaton costs ~0.5 ms: 11 s of CPU for 20 KB of base64 (measured). The
  keyword automaton has few states whatever the input (1 MB of base64: ~300 ms in all).
  The dozen rules with keywords of two or three characters (`ey`, `s.`, `api`, `key`) apply
  to nearly every prompt; they share one small `Set` (small enough to stay fast on base64),
  so a prompt pays one pass for them, not one per rule.
- PII: the handful of candidate patterns in one RE2 `Set`; only the patterns it reports run
  again to find their spans and validators.

Text without findings costs those passes and nothing else. Offsets are byte offsets into the
UTF-8 encoding; RE2 matches whole code points, so they always fall on character boundaries.
Scanning is linear in the text, but validators (phone numbers, cards) cost per candidate: the
guard stage scans large bodies off the event loop (`pipeline.guard`).
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
GENERIC = "GENERIC_API_KEY"
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


COMMON_KEYWORD = 3  # rules with a keyword this short share a pattern set (see the module docstring)
LINE_CONTEXT = 2048  # bytes of a line either side of a match that a line allowlist sees


def _line(b: bytes, s: int, e: int) -> bytes:
    """The line around a match, at most LINE_CONTEXT bytes either side of it: a prompt can be
    one line of a megabyte, and line allowlists are checked per match (unbounded, that was
    quadratic: 9 s of CPU for 30,000 `token=` matches on one line)."""
    lo = max(0, s - LINE_CONTEXT)
    start = b.rfind(b"\n", lo, s) + 1 or lo
    end = b.find(b"\n", e, e + LINE_CONTEXT)
    return b[start:min(len(b), e + LINE_CONTEXT)] if end < 0 else b[start:end]


class Scanner:
    """Immutable once built; one per distinct configuration, shared by every request."""

    def __init__(self, *, credentials: bool, recognizers: tuple[Recognizer, ...] = ()) -> None:
        rules, self._global_allow = credential_rules() if credentials else ((), None)
        self._rules: tuple[CredentialRule, ...] = tuple(rules)
        # rules by index (a frozen dataclass hashes and compares all its fields: slow in a loop)
        self._always = [i for i, r in enumerate(rules) if not r.keywords]  # no keywords: always apply
        keywords = sorted({k for r in rules for k in r.keywords})
        self._by_keyword = [[i for i, r in enumerate(rules) if k in r.keywords] for k in keywords]
        self._keywords = _set([re2.escape(k) for k in keywords]) if keywords else None
        self._common = [i for i, r in enumerate(rules) if any(len(k) <= COMMON_KEYWORD for k in r.keywords)]
        self._is_common = frozenset(self._common)
        self._common_set = _set([rules[i].pattern for i in self._common]) if self._common else None
        self._pii = [(r, re2.compile(r.pattern.encode())) for r in recognizers]
        self._pii_set = _set([r.pattern for r in recognizers]) if recognizers else None
        self.empty = not rules and not recognizers
        self.pii = bool(recognizers)

    # -- finding --------------------------------------------------------------------------------
    def scan(self, text: str) -> list[Finding]:
        if self.empty or not text:
            return []
        return self.scan_bytes(text.encode("utf-8", "surrogatepass"))

    def scan_bytes(self, b: bytes) -> list[Finding]:
        if self.empty or not b:
            return []
        found: list[Finding] = []
        if self._rules:
            hits = self._keywords.Match(b.lower()) if self._keywords is not None else None
            if hits or self._always:
                chosen = set(self._always)
                for i in hits or ():
                    chosen.update(self._by_keyword[i])
                if self._common_set is not None and not chosen.isdisjoint(self._is_common):
                    # one pass for the rules nearly every prompt admits; only those that match run again
                    common = self._common_set.Match(b)
                    matched = {self._common[i] for i in common} if common else set()
                    chosen = (chosen - self._is_common) | (chosen & matched)
                for i in sorted(chosen):
                    rule = self._rules[i]
                    self._credentials(rule, rule.regex, b, found)
        if self._pii_set is not None:
            try:
                hits = self._pii_set.Match(b)
            except Exception:  # the set's DFA ran out of memory on a pathological text: run every pattern
                log.warning("guard: pattern set failed on a %d-byte text; scanning pattern by pattern", len(b))
                hits = range(len(self._pii))
            for i in hits or ():
                det, regex = self._pii[i]
                for m in regex.finditer(b):
                    s, e = m.span()
                    if e > s and (det.validate is None or det.validate(b[s:e].decode("utf-8", "replace"))):
                        found.append(Finding(det.entity, PII, s, e))
        return _without_overlaps(found) if found else found

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


def _set(patterns: list[str]) -> Any:
    opts = re2.Options()
    opts.max_mem = 64 << 20
    rset = re2.Set.SearchSet(opts)
    for p in patterns:
        rset.Add(p)
    rset.Compile()
    return rset


def _excused(lists: tuple[Allowlist, ...], glob: Allowlist | None, secret: bytes, match: bytes, line) -> bool:
    candidates = (*lists, glob) if glob is not None else lists
    for a in candidates:
        if a.excuses(secret, match, line() if a.target == "line" else b""):
            return True
    return False


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Earliest first; at the same start a credential beats PII, the longer match wins, and a
    specific rule beats gitleaks' catch-all `generic-api-key` (an `AccountKey=...` is an Azure key)."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, f.kind != CREDENTIAL, f.start - f.end, f.type == GENERIC))
    kept: list[Finding] = []
    end = -1
    for f in found:
        if f.start >= end:
            kept.append(f)
            end = f.end
    return kept
