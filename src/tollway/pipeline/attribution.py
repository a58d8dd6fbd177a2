"""To whom a request belongs: project, source and customer from headers (never sent upstream).

Precedence for the project: the `/projects/{slug}/` path, then headers, then the key's default.
The slug that is used must follow `tollway.slugs` (else a 400 in the route's format, and the
record keeps no project).
"""

from __future__ import annotations

from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.slugs import SLUG_RULE, is_slug

ATTRIBUTION_HEADERS = frozenset({
    b"x-tollway-project", b"x-project", b"x-tollway-source", b"x-source", b"x-tollway-customer",
    b"x-tollway-key",
})


class AttributionStage:
    async def before(self, ctx: RequestContext) -> None:
        h = ctx.headers
        if ctx.path_project is not None:
            if not is_slug(ctx.path_project):
                raise ProxyError("invalid_request", f"The project slug in /projects/{{slug}}/ must be {SLUG_RULE}.")
            ctx.project = ctx.path_project
        else:
            name, project = b"x-tollway-project", h.get(b"x-tollway-project")
            if not project:
                name, project = b"x-project", h.get(b"x-project")
            if project:
                if not is_slug(project):
                    raise ProxyError("invalid_request", f"The {name.decode()} header must be {SLUG_RULE}.")
                ctx.project = project.decode("ascii")
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
