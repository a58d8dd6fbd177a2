"""The sanitizer: scans a request's text slots, redacts or refuses, and reports what it found.

Findings are reported by type and count only; their values never leave this module (not in
logs, records, errors or stored bodies).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from tollway.config import Settings
from tollway.guard.output import OutputCheck
from tollway.guard.pii import recognizers
from tollway.guard.policy import GuardPolicy, Policies
from tollway.guard.scanner import CREDENTIAL, PII, Scanner
from tollway.guard.stored import redact_stored
from tollway.guard.walk import text_slots

log = logging.getLogger("tollway.guard")


@dataclass(slots=True)
class RequestReport:
    found: Counter = field(default_factory=Counter)  # type -> count
    redacted: bool = False  # something was replaced before forwarding
    kept: bool = False  # something found was left in place (its kind is not redacted by the policy)


class Guard:
    """One per process (on AppState): the policies and the scanners they need, built lazily."""

    def __init__(self, settings: Settings) -> None:
        self.policies = Policies(settings)
        san = settings.sanitization
        self._pii_types = tuple(san.pii_types) if san.pii_types is not None else None
        self._pii_patterns = dict(san.pii_patterns)
        self._scanners: dict[tuple[bool, bool], Scanner] = {}

    def scanner(self, credentials: bool, pii: bool) -> Scanner:
        key = (credentials, pii)
        found = self._scanners.get(key)
        if found is None:
            recs = recognizers(self._pii_types, self._pii_patterns) if pii else ()
            found = self._scanners[key] = Scanner(credentials=credentials, recognizers=recs)
        return found

    def warm(self) -> None:
        """Build the scanners the default policy needs now, not on the first request."""
        pol = self.policies.default
        if pol.scan or pol.output != "off":
            self.scanner(pol.scan_credentials, pol.scan_pii)
        self.scanner(True, pol.scan_pii)  # what stored bodies are scanned with

    # -- requests -------------------------------------------------------------------------------
    def inspect(self, pol: GuardPolicy, kind: str, body: dict) -> RequestReport:
        """Scan `body` (a client format named by `kind`, see walk.WALKERS) and redact in place
        what the policy says to redact. The caller re-serialises when `report.redacted`."""
        report = RequestReport()
        scanner = self.scanner(pol.scan_credentials, pol.scan_pii)
        if scanner.empty:
            return report
        redact_kinds = {k for k, on in ((CREDENTIAL, pol.redact_credentials), (PII, pol.redact_pii)) if on}
        for container, key in text_slots(kind, body):
            text = container[key]
            findings = scanner.scan(text)
            if not findings:
                continue
            report.found.update(f.type for f in findings)
            if pol.compliance_gate:
                continue  # refused as a whole: nothing to rewrite
            chosen = [f for f in findings if f.kind in redact_kinds]
            if len(chosen) < len(findings):
                report.kept = True
            if chosen:
                container[key] = Scanner.redact(text, chosen)
                report.redacted = True
        return report

    def output_check(self, pol: GuardPolicy) -> OutputCheck | None:
        if pol.output == "off":
            return None
        return OutputCheck(self.scanner(pol.scan_credentials, pol.scan_pii), pol.output)

    # -- stored bodies ----------------------------------------------------------------------------
    def redact_for_storage(self, data: bytes, pii: bool) -> bytes:
        """Credentials (and PII, when the call's policy redacts it) out of bytes about to be stored."""
        return redact_stored(self.scanner(True, pii), data)


def describe(found: Counter) -> str:
    """`AWS_ACCESS_KEY ×1, EMAIL_ADDRESS ×2`: types and counts, for logs and error messages."""
    return ", ".join(f"{t} ×{n}" for t, n in sorted(found.items()))
