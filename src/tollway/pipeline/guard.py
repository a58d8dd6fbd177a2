"""The guard stage of a model call: scan the request, redact or refuse, arm the output check.

Runs after decode (the body is parsed) and before route. It exists only when sanitization or
body logging is configured somewhere (`Policies.any_configured`), so it costs nothing
otherwise. The logic lives in `tollway.guard`; this is the door.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import orjson

from tollway.errors import ProxyError
from tollway.guard.call import GuardCall
from tollway.guard.sanitizer import describe
from tollway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from tollway.state import AppState

log = logging.getLogger("tollway.guard")

# endpoints whose answers carry model text the output check reads (on the canonical path)
CONTENT_ENDPOINTS = frozenset({"chat", "responses", "messages", "generate_content"})
OUTPUT_ACTIONS = {"log": "logged", "redact": "redacted", "block": "blocked"}  # as in guard_findings


class ComplianceRefusal(ProxyError):
    """403 in the route's format; recorded with error_type "compliance_gate"."""

    def __init__(self, found) -> None:
        super().__init__("permission", "Refused by Tollway's compliance gate: the request contains "
                                       f"{describe(found)}. Remove them and send the request again.")

    @property
    def error_type(self) -> str:
        return "compliance_gate"


class GuardStage:
    def __init__(self, state: "AppState") -> None:
        assert state.guard is not None
        self._state = state
        self._guard = state.guard

    async def before(self, ctx: RequestContext) -> None:
        pol = self._guard.policies.for_call(ctx.key_id, ctx.project, ctx.key)
        call = ctx.guard = GuardCall(pol)
        if pol.log_bodies and self._state.bodies is not None and ctx.send is not None:
            ctx.bodies = self._state.bodies.capture(pol.redact_pii)
            ctx.send = ctx.bodies.wrap(ctx.send)
        if pol.scan and ctx.json is not None:
            await self.inspect(ctx, call, str(ctx.endpoint))
        if pol.output != "off" and ctx.endpoint in CONTENT_ENDPOINTS:
            call.output = self._guard.output_check(pol)
            ctx.canonical = True
            if ctx.content_filters is None:
                ctx.content_filters = []
            ctx.content_filters.append(call.output)
        elif pol.output != "off" and ctx.endpoint == "completions":
            call.output = self._guard.output_check(pol)  # read from the relayed bytes (guard.legacy)

    async def inspect(self, ctx: RequestContext, call: GuardCall, kind: str) -> None:
        """Scan ctx.json as client format `kind`; redact (ctx.json and ctx.body) or refuse.

        A large body is scanned off the event loop (validators cost per candidate: a megabyte of
        phone-number-like digits is seconds of CPU, which must not stall every other request)."""
        assert ctx.json is not None
        size = len(ctx.body) if ctx.body else 0
        report = await self._state.counting.run(size, self._guard.inspect, call.policy, kind, ctx.json)
        if not report.found:
            return
        call.request = report.found
        pol = call.policy
        call.request_action = "refused" if pol.compliance_gate else ("redacted" if report.redacted else "forwarded")
        ctx.guard_findings = call.findings_json()
        self._count(report.found, call.request_action)
        log.warning("guard: trace %s: request holds %s (%s)", ctx.trace_id, describe(report.found),
                    call.request_action)
        if pol.compliance_gate:
            # never forwarded: what is kept of it (stored body, spans with captured content) loses
            # what was found now, JSON escapes and all (the raw bytes may spell it \u0041KIA...)
            await self.scrub_request(ctx, call, kind)
            raise ComplianceRefusal(report.found)
        if report.redacted:
            ctx.body = orjson.dumps(ctx.json)
        call.scrub_kind = kind if report.kept else None  # forwarded as the policy says: scrubbed in after()

    def _count(self, found, action: str) -> None:
        """tollway_guardrail_findings_total{scanner=<finding type>, action}."""
        metrics = self._state.metrics
        if metrics is not None:
            for finding_type, n in found.items():
                metrics.guardrail_finding(finding_type, action, n)

    async def scrub_request(self, ctx: RequestContext, call: GuardCall, kind: str) -> None:
        """Replace everything the scan found in ctx.json (and ctx.body), whatever the policy
        forwarded: for what Tollway keeps once the request has gone (or was refused)."""
        if ctx.json is None:
            return
        pol = dataclasses.replace(call.policy, compliance_gate=False, redact_credentials=True,
                                  redact_pii=call.policy.scan_pii)
        size = len(ctx.body) if ctx.body else 0
        report = await self._state.counting.run(size, self._guard.inspect, pol, kind, ctx.json)
        if report.redacted:
            ctx.body = orjson.dumps(ctx.json)

    async def inspect_passthrough(self, ctx: RequestContext) -> None:
        """A pass-through JSON body: every string in it is scanned (no output check there)."""
        pol = self._guard.policies.for_call(ctx.key_id, ctx.project, ctx.key)
        if pol.scan and ctx.json is not None:
            await self.inspect(ctx, GuardCall(pol), "passthrough")

    async def after(self, ctx: RequestContext) -> None:
        call = ctx.guard
        if call is None:
            return
        if call.output is not None and call.output.found:
            log.warning("guard: trace %s: answer holds %s (%s)", ctx.trace_id, describe(call.output.found),
                        call.output.mode)
            self._count(call.output.found, OUTPUT_ACTIONS[call.output.mode])
        ctx.guard_findings = call.findings_json()
        if call.scrub_kind is not None:  # the provider had the findings (policy); nothing kept has them
            await self.scrub_request(ctx, call, call.scrub_kind)
        if ctx.bodies is not None and self._state.bodies is not None:
            self._state.bodies.put(ctx.trace_id, ctx.started, ctx.body, ctx.bodies)
