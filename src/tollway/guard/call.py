"""What the guard knows about one call: its policy, what the request held, the output check."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson

from tollway.guard.output import OutputCheck
from tollway.guard.policy import GuardPolicy


@dataclass(slots=True)
class GuardCall:
    policy: GuardPolicy
    request: Counter = field(default_factory=Counter)  # finding type -> count
    request_action: str | None = None  # "redacted" | "forwarded" | "refused"
    output: OutputCheck | None = None
    output_blocked: bool = False
    scrub_kind: str | None = None  # the request went on holding findings (policy): scrub it for storage

    @property
    def request_leaks(self) -> bool:
        """The request reached the provider with findings still in it (redaction off for them)."""
        return self.scrub_kind is not None

    def findings_json(self) -> str | None:
        """The record's `guard_findings`: types and counts, never values; None when nothing was found.

        {"request": {"AWS_ACCESS_KEY": 1}, "request_action": "redacted",
         "response": {"OPENAI_API_KEY": 1}, "response_action": "redacted"}
        """
        doc: dict = {}
        if self.request:
            doc["request"] = dict(sorted(self.request.items()))
            doc["request_action"] = self.request_action
        if self.output is not None and self.output.found:
            doc["response"] = dict(sorted(self.output.found.items()))
            doc["response_action"] = {"log": "logged", "redact": "redacted", "block": "blocked"}[self.output.mode]
        return orjson.dumps(doc).decode() if doc else None
