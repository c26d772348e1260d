"""``/mcp`` of the HTTP API: the MCP server over streamable HTTP, behind a clinic's secret key.

The route is an ordinary FastAPI route, so the key check, the rate limit, the API's error bodies,
metrics and the access log are those of every other route; once the key is accepted the request is
handed whole to the SDK's streamable-HTTP transport, and the tools answer for the key's clinic
(its documents, emergency wording and audit trail). Stateless: each request stands alone, so any
worker can serve it. The transport's session manager runs in the app's lifespan (:meth:`McpHttp.running`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from assistant.api.deps import AssistantDep, SecretKey
from assistant.errors import NotAuthenticated
from assistant.mcp.server import Door, build_server
from assistant.settings import Settings

# The door of the request being served. Set by the route before the transport runs; the SDK starts
# the request's server task from within it, so the tools (and the static resource, which gets no
# context object) read the caller's clinic here.
_door: ContextVar[Door | None] = ContextVar("pht_mcp_door", default=None)


async def _current() -> Door:
    door = _door.get()
    if door is None:  # only a request through the route reaches the tools
        raise NotAuthenticated()
    return door


class _Handover(Response):
    """A response that hands the request to an ASGI app (the MCP transport) as it stands."""

    def __init__(self, app: Any) -> None:  # no body of its own
        self.app = app
        self.background = None

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
        if self.background is not None:  # FastAPI may hand a route's background tasks to its response
            await self.background()


class McpHttp:
    """The MCP server and its streamable-HTTP transport for one app."""

    def __init__(self, settings: Settings) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
        from mcp.server.transport_security import TransportSecuritySettings

        self.server = build_server(_current, settings)
        # Every request carries a secret key in a header no browser sends by itself, so the
        # transport's Host/Origin check (DNS rebinding) adds nothing; behind a proxy it would refuse.
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            max_request_body_size=settings.api_max_body_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.transport = StreamableHTTPASGIApp(self.server.session_manager)

    def running(self) -> Any:
        """The session manager's run, for the app's lifespan (it must run before any request)."""
        return self.server.session_manager.run()


def install(app: FastAPI, settings: Settings) -> McpHttp:
    """Add ``/mcp`` (GET, POST, DELETE; not in the OpenAPI schema) to ``app``."""
    mcp = McpHttp(settings)

    @app.api_route("/mcp", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def mcp_endpoint(request: Request, who: SecretKey, assistant: AssistantDep) -> Response:
        """The MCP server (streamable HTTP) for the key's clinic."""
        _door.set(Door(assistant, who.clinic.id, observe=request.app.state.metrics.observe_answer))
        return _Handover(mcp.transport)

    return mcp
