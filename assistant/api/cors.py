"""CORS for the widget: browsers on a clinic's own site may call the routes a publishable key may
use, and no other site may (pure ASGI).

A preflight carries no key, so it is answered for an origin that some clinic has allowed, for one
of those routes and its method, with the ``Authorization`` and ``Content-Type`` headers; anything
else gets 403 without ``Access-Control-Allow-Origin`` (deny by default). The request itself is
then let through to the browser only when its key is a publishable key of a clinic that allows that
origin: the key check (:func:`assistant.api.deps.caller`) leaves the origin in
``request.state.cors_origin`` and the response gets ``Access-Control-Allow-Origin`` for it. Every
other response (a secret key, an unknown key, an origin another clinic allows) carries none, so a
browser refuses to hand it to the page.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from assistant.api.deps import origin_key
from assistant.api.errors import code_of, error_response, response_for
from assistant.errors import AssistantError

# The routes a browser may call, with their method: what the widget uses.
BROWSER_ROUTES = {
    "/v1/ask": "POST",
    "/v1/ask/stream": "POST",
    "/v1/feedback": "POST",
    "/v1/widget": "GET",
}
ALLOWED_HEADERS = {"authorization", "content-type"}
MAX_AGE = 600  # seconds a browser may reuse a preflight answer
EXPOSED = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"  # the widget says how long to wait after a 429


class Cors:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        path = scope.get("path", "")
        if origin and scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            return await self._preflight(scope, receive, send, origin, headers)
        if path not in BROWSER_ROUTES:
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                extra = [(b"vary", b"Origin")]
                allowed = state.get("cors_origin")
                if allowed:
                    extra += [
                        (b"access-control-allow-origin", allowed.encode("latin-1")),
                        (b"access-control-expose-headers", EXPOSED.encode()),
                    ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope, receive, send, origin: str, headers: dict[bytes, bytes]) -> None:
        method = headers[b"access-control-request-method"].decode("latin-1").strip().upper()
        asked = {
            h.strip().lower()
            for h in headers.get(b"access-control-request-headers", b"").decode("latin-1").split(",")
            if h.strip()
        }
        app = scope["app"]
        assistant = getattr(app.state, "assistant", None)
        if assistant is None:
            response = error_response(
                503, "not_ready", "The assistant is starting; please try again in a few seconds."
            )
            response.headers["Vary"] = "Origin"
            return await response(scope, receive, send)
        route = BROWSER_ROUTES.get(scope.get("path", ""))
        registry = assistant.library.registry
        try:  # a PostgreSQL registry is a round trip away: in a thread, and a 503 (not a 500) if it is down
            clinics = registry.clinics() if registry.kind == "sqlite" else await run_in_threadpool(registry.clinics)
        except AssistantError as exc:
            scope.setdefault("state", {})["error"] = code_of(exc)
            response = response_for(exc)
            response.headers["Vary"] = "Origin"
            return await response(scope, receive, send)
        allowed = {origin_key(o) for c in clinics for o in c.allowed_origins}
        if route != method or not asked <= ALLOWED_HEADERS or origin_key(origin) not in allowed:
            scope.setdefault("state", {})["error"] = "cors_refused"
            response = error_response(
                403,
                "cors_refused",
                "This site may not call the assistant from a browser: only the widget's routes may be called, "
                "from a site on a clinic's allowed origins (`pht-assistant clinic set CLINIC --allowed-origin URL`).",
            )
            response.headers["Vary"] = "Origin"
            return await response(scope, receive, send)
        response = _Empty(
            204,
            [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", route.encode()),
                (b"access-control-allow-headers", b"Authorization, Content-Type"),
                (b"access-control-max-age", str(MAX_AGE).encode()),
                (b"vary", b"Origin"),
            ],
        )
        await response(scope, receive, send)


class _Empty:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status, self.headers = status, headers

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b""})
