"""To whom a request belongs: project, source and customer from headers (never sent upstream).

Precedence for the project: the `/projects/{slug}/` path, then headers, then the key's default.
The slug that is used must follow `tollway.slugs` (else a 400 in the route's format, and the
record keeps no project).

A key bound to a project (`project = "a"`) or a customer acts for that one only: its calls are
attributed to it, count against its budgets and limits, and a path or header naming another
one is refused (403 in the route's format) rather than silently re-attributed. Naming the
key's own project or customer is fine. The master key and keys without a binding may name any.
"""

from __future__ import annotations

from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.slugs import SLUG_RULE, is_slug

ATTRIBUTION_HEADERS = frozenset({
    b"x-tollway-project", b"x-project", b"x-tollway-source", b"x-source", b"x-tollway-customer",
    b"x-tollway-key",
})


def _bound(key_id: str, what: str, own: str, named: str) -> ProxyError:
    return ProxyError("permission", f"Key '{key_id}' is bound to {what} '{own}' and cannot act for {what} "
                                    f"'{named}'. Leave the {what} out (or name '{own}'), or use a key of '{named}'.",
                      code=f"{what}_not_allowed")


class AttributionStage:
    async def before(self, ctx: RequestContext) -> None:
        h = ctx.headers
        named: str | None = None
        if ctx.path_project is not None:
            if not is_slug(ctx.path_project):
                raise ProxyError("invalid_request", f"The project slug in /projects/{{slug}}/ must be {SLUG_RULE}.")
            named = ctx.path_project
        else:
            name, project = b"x-tollway-project", h.get(b"x-tollway-project")
            if not project:
                name, project = b"x-project", h.get(b"x-project")
            if project:
                if not is_slug(project):
                    raise ProxyError("invalid_request", f"The {name.decode()} header must be {SLUG_RULE}.")
                named = project.decode("ascii")
        key = ctx.key
        if named is not None:
            if key is not None and key.project is not None and named != key.project:
                raise _bound(key.id, "project", key.project, named)
            ctx.project = named
        source = h.get(b"x-tollway-source") or h.get(b"x-source")
        if source:
            ctx.source = source.decode("utf-8", "replace")[:200]
        customer = h.get(b"x-tollway-customer")
        if key is not None and key.customer is not None:
            if customer and customer.decode("utf-8", "replace")[:200] != key.customer:
                raise _bound(key.id, "customer", key.customer, customer.decode("utf-8", "replace")[:200])
            ctx.customer = key.customer  # a customer's key bills that customer
        elif customer:
            ctx.customer = customer.decode("utf-8", "replace")[:200]

    async def after(self, ctx: RequestContext) -> None:
        return None
