"""Which sanitization applies to a call: `[sanitization]`, then the project's, then the key's.

A key is the most specific: its values win over its project's, which win over the global
block. Config keys carry theirs in `[[keys]] sanitization = {...}`; a key object that has a
`sanitization` attribute of its own (store-backed keys, when they carry one) is used the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.config import SanitizationOverride, SanitizationSettings, Settings


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    scan: bool  # scan the request at all (sanitization enabled)
    scan_credentials: bool
    redact_credentials: bool
    redact_pii: bool
    compliance_gate: bool
    output: str  # off | log | redact | block
    log_bodies: bool

    @property
    def scan_pii(self) -> bool:
        return self.redact_pii


def _policy(s: SanitizationSettings, log_bodies: bool) -> GuardPolicy:
    on = s.enabled and (s.scan_credentials or s.redact_pii)
    return GuardPolicy(scan=on, scan_credentials=s.scan_credentials, redact_credentials=s.redact_credentials,
                       redact_pii=s.redact_pii, compliance_gate=s.compliance_gate,
                       output=s.output if s.enabled else "off", log_bodies=log_bodies)


class Policies:
    """Resolved once per (key, project) pair from settings; a dict lookup per request."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.sanitization
        self._log_bodies = settings.store.log_bodies
        self._keys: dict[str, tuple[SanitizationOverride | None, bool | None]] = {
            k.id: (k.sanitization, k.log_bodies) for k in settings.keys}
        self._projects: dict[str, tuple[SanitizationOverride | None, bool | None]] = {
            p.id: (p.sanitization, p.log_bodies) for p in settings.projects}
        self._cache: dict[tuple[str | None, str | None], GuardPolicy] = {}
        self.default = _policy(self._base, self._log_bodies)

    @staticmethod
    def any_configured(settings: Settings) -> bool:
        """True when some call could be scanned or have its bodies kept: the guard stage exists."""
        overrides = [k.sanitization for k in settings.keys] + [p.sanitization for p in settings.projects]
        bodies = [k.log_bodies for k in settings.keys] + [p.log_bodies for p in settings.projects]
        return (settings.sanitization.enabled or settings.store.log_bodies or any(bodies)
                or any(o is not None and o.enabled for o in overrides))

    def for_call(self, key_id: str | None, project: str | None, key: Any = None) -> GuardPolicy:
        store_override = getattr(key, "sanitization", None) if key is not None else None
        if store_override is None:
            found = self._cache.get((key_id, project))
            if found is not None:
                return found
        k_san, k_bodies = self._keys.get(key_id or "", (None, None))
        p_san, p_bodies = self._projects.get(project or "", (None, None))
        if isinstance(store_override, SanitizationOverride):
            k_san = store_override
        log_bodies = self._log_bodies
        for v in (p_bodies, k_bodies):
            if v is not None:
                log_bodies = v
        pol = _policy(self._base.merged(p_san, k_san), log_bodies)
        if store_override is None and len(self._cache) < 10_000:
            self._cache[(key_id, project)] = pol
        return pol
