"""Client headers that reach the upstream on unified routes, and the upstream's request id that
reaches the client on translated ones.

Upstream: `Idempotency-Key` (a retried call is not charged twice), `X-Client-Request-Id`,
W3C trace context (`traceparent`, `tracestate`), and `User-Agent` with ` tollway/<version>`
appended (just `tollway/<version>` when the client sent none). Nothing else: credentials,
attribution and hop-by-hop headers never travel.

Back: the provider's request id under the name the client's SDK reads: `x-request-id` for
OpenAI (and Gemini) clients, `request-id` for Anthropic ones, whatever the provider called it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tollway import __version__

FORWARDED = (b"idempotency-key", b"x-client-request-id", b"traceparent", b"tracestate")
TOLLWAY_AGENT = f"tollway/{__version__}"
_UPSTREAM_IDS = (b"x-request-id", b"request-id")


def with_client_headers(headers: dict[str, str], client: dict[bytes, bytes]) -> dict[str, str]:
    """A copy of the provider's request headers plus the client's that matter."""
    out = dict(headers)
    for name in FORWARDED:
        v = client.get(name)
        if v:
            out[name.decode()] = v.decode("latin-1")
    ua = client.get(b"user-agent")
    out["user-agent"] = f"{ua.decode('latin-1')} {TOLLWAY_AGENT}" if ua else TOLLWAY_AGENT
    return out


def request_id_header(upstream: Iterable[tuple[bytes, bytes]], client_wire: str) -> tuple[bytes, bytes] | None:
    """(the client format's request-id header, the upstream's request id), when it sent one."""
    for k, v in upstream:
        if k.lower() in _UPSTREAM_IDS and v:
            return (b"request-id" if client_wire == "anthropic" else b"x-request-id", v)
    return None
