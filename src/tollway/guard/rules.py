"""Credential rules: the gitleaks rule set, shipped as data, plus Tollway's few additions.

`rules/gitleaks.toml` is gitleaks' default config, copied unchanged from the gitleaks
repository (MIT licence, `rules/GITLEAKS-LICENSE`; the commit is in `GITLEAKS_SOURCE`). To
update it, copy a newer `config/gitleaks.toml` over it and run tests/guard. `rules/tollway.toml`
adds what gitleaks leaves out because it scans files, not prompts (passwords in connection
strings, Azure account keys).

The patterns are Go regexps, i.e. RE2 syntax: they are compiled with google-re2, which also
guarantees linear-time matching on text a client controls (no catastrophic backtracking).
Gitleaks' semantics are kept: a rule reports a match only when one of its keywords occurs in
the text, its secret (the `secretGroup`, else the first non-empty group, else the match) has
more Shannon entropy than the rule's `entropy`, and no allowlist (the rule's or the global
one: regexes on the secret, match or line, stopwords) excuses it. Rules that need a file path
(`path = ...`) do not apply to prompts and are skipped.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import re2

GITLEAKS_SOURCE = "gitleaks/gitleaks@b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b (2026-07-22), config/gitleaks.toml"

# Finding types are rule ids in upper snake case; a few get the names people know them by.
LABELS = {"aws-access-token": "AWS_ACCESS_KEY", "private-key": "PRIVATE_KEY", "jwt": "JWT"}


def label_for(rule_id: str) -> str:
    return LABELS.get(rule_id) or rule_id.upper().replace("-", "_")


def _compile(pattern: str) -> Any:
    return re2.compile(pattern.encode())


@dataclass(frozen=True, slots=True)
class Allowlist:
    target: str  # "secret" | "match" | "line"
    regexes: tuple[Any, ...]
    stopwords: tuple[str, ...]
    both: bool  # condition = "AND": every criterion given must hold

    def excuses(self, secret: bytes, match: bytes, line: bytes) -> bool:
        checks = []
        if self.regexes:
            subject = match if self.target == "match" else line if self.target == "line" else secret
            checks.append(any(r.search(subject) for r in self.regexes))
        if self.stopwords:
            low = secret.lower().decode("utf-8", "replace")
            checks.append(any(w in low for w in self.stopwords))
        if not checks:
            return False
        return all(checks) if self.both else any(checks)


@dataclass(frozen=True, slots=True)
class CredentialRule:
    id: str
    label: str
    pattern: str  # the source regex (for the prefilter set)
    regex: Any  # compiled re2, bytes
    keywords: tuple[bytes, ...]  # lower case; empty: always applies
    entropy: float
    secret_group: int
    allowlists: tuple[Allowlist, ...]


def shannon_entropy(data: bytes) -> float:
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def _allowlist(raw: dict[str, Any]) -> Allowlist | None:
    if raw.get("paths") and not raw.get("regexes") and not raw.get("stopwords"):
        return None  # only about file paths: never applies to a prompt
    return Allowlist(target=raw.get("regexTarget", "secret"),
                     regexes=tuple(_compile(r) for r in raw.get("regexes", ()) if r),
                     stopwords=tuple(w.lower() for w in raw.get("stopwords", ())),
                     both=str(raw.get("condition", "OR")).upper() == "AND")


def _rules_from(doc: dict[str, Any]) -> list[CredentialRule]:
    out = []
    for r in doc.get("rules", ()):
        if "regex" not in r or "path" in r:
            continue
        lists = [r["allowlist"]] if isinstance(r.get("allowlist"), dict) else []
        lists += list(r.get("allowlists", ()))
        out.append(CredentialRule(
            id=r["id"], label=label_for(r["id"]), pattern=r["regex"], regex=_compile(r["regex"]),
            keywords=tuple(k.lower().encode() for k in r.get("keywords", ())),
            entropy=float(r.get("entropy", 0.0)), secret_group=int(r.get("secretGroup", 0)),
            allowlists=tuple(a for a in (_allowlist(x) for x in lists) if a is not None)))
    return out


def _load(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("tollway.guard").joinpath("rules").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def credential_rules() -> tuple[tuple[CredentialRule, ...], Allowlist | None]:
    """Every rule (gitleaks', then Tollway's) and the global allowlist. Parsed once per process:
    the rule set is immutable data, not state."""
    gitleaks = _load("gitleaks.toml")
    rules = _rules_from(gitleaks) + _rules_from(_load("tollway.toml"))
    glob = gitleaks.get("allowlist")
    return tuple(rules), _allowlist(glob) if isinstance(glob, dict) else None


def secret_span(rule: CredentialRule, m: Any) -> tuple[int, int]:
    """The span of the secret inside a match, by gitleaks' rule (secretGroup, else the first
    non-empty group, else the whole match)."""
    if rule.secret_group and m.start(rule.secret_group) >= 0:
        return m.span(rule.secret_group)
    for g in range(1, (m.re.groups if hasattr(m, "re") else 0) + 1):
        s, e = m.span(g)
        if s >= 0 and e > s:
            return s, e
    return m.span()
