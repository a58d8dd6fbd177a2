"""To whom a request belongs: project, source and customer from headers (never sent upstream).

Precedence for the project: the `/projects/{slug}/` path, then headers, then the key's default.
"""

from __future__ import annotations

from tollway.pipeline.context import RequestContext

ATTRIBUTION_HEADERS = frozenset({
    b"x-tollway-project", b"x-project", b"x-tollway-source", b"x-source", b"x-tollway-customer",
    b"x-tollway-key",
})


class AttributionStage:
    async def before(self, ctx: RequestContext) -> None:
        h = ctx.headers
        project = h.get(b"x-tollway-project") or h.get(b"x-project")
        if ctx.path_project is not None:
            ctx.project = ctx.path_project
        elif project:
            ctx.project = project.decode("utf-8", "replace")[:200]
        source = h.get(b"x-tollway-source") or h.get(b"x-source")
        if source:
            ctx.source = source.decode("utf-8", "replace")[:200]
        key = ctx.key
        if key is not None and key.customer is not None:
            ctx.customer = key.customer  # a customer's key bills that customer, whatever the header says
        else:
            customer = h.get(b"x-tollway-customer")
            if customer:
                ctx.customer = customer.decode("utf-8", "replace")[:200]

    async def after(self, ctx: RequestContext) -> None:
        return None
