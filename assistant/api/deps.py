"""What routes depend on: the settings, the assistant, the caller's key, limits and time limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from assistant.clinics.registry import Clinic, read_with_key
from assistant.errors import NotAllowed, NotAuthenticated, RateLimited, RequestTimedOut
from assistant.settings import Settings

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="A clinic's key: `Authorization: Bearer pht_sk_...`.")


# The dependencies are coroutines: FastAPI runs a plain function dependency in the thread pool, a
# thread hand-off per dependency per request; these only read state (the key check: one SQLite read
# of tens of microseconds that never waits for a writer), so they run on the event loop. A key check
# on a PostgreSQL server is a network round trip: that one goes to a thread. The rate limit is
# counted with an asyncio client (Redis) or in memory (assistant/api/limits.py): on the loop either way.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_assistant(request: Request) -> Any:
    return request.app.state.assistant


@dataclass(frozen=True)
class Caller:
    """Who is calling: the clinic and the kind of key."""

    key_id: str
    clinic: Clinic
    kind: str


def origin_key(origin: str) -> str:
    """An origin as compared: no trailing slash, lowercase (``https://North.example/`` is ``https://north.example``)."""
    return origin.strip().rstrip("/").lower()


async def _identify(request: Request, credentials: HTTPAuthorizationCredentials | None, *, count: bool) -> Caller:
    """The key's clinic and kind. A publishable key's origin is checked before the request is
    counted against the key's rate limit: requests refused for a foreign origin never use up the
    clinic's budget. An allowed origin is left in ``request.state.cors_origin`` for the CORS
    middleware (assistant/api/cors.py), which then lets the browser read the response."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated()
    registry = request.app.state.assistant.library.registry
    if registry.kind == "sqlite":  # a local read of tens of microseconds that never waits: on the loop
        info = registry.authenticate(credentials.credentials)
    else:  # a round trip to the database server: in a thread, never blocking the loop
        info = await run_in_threadpool(registry.authenticate, credentials.credentials)
    if info is None:
        raise NotAuthenticated("The API key is unknown or revoked; ask the clinic's administrator for a key.")
    request.state.clinic = info.clinic.id
    read_with_key(info.clinic)  # the clinic's view in this request uses it: no second read
    if info.kind == "publishable":
        origin = origin_key(request.headers.get("origin", ""))
        if not origin or origin not in {origin_key(o) for o in info.clinic.allowed_origins}:
            raise NotAllowed(
                "This publishable key only works from the clinic's allowed origins; add the site with "
                "`pht-assistant clinic set CLINIC --allowed-origin URL` or use the secret key from a server."
            )
        request.state.cors_origin = request.headers["origin"]
    limiter = request.app.state.limiter
    try:  # every keyed reply says where the key's limit stands (X-RateLimit-*, added by Observe)
        request.state.ratelimit = await (limiter.hit(info.id) if count else limiter.peek(info.id))
    except RateLimited as exc:
        request.state.ratelimit = exc.window
        raise
    return Caller(key_id=info.id, clinic=info.clinic, kind=info.kind)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Any valid key of a clinic (publishable keys only from the clinic's allowed origins), counted
    against the key's rate limit."""
    return await _identify(request, credentials, count=True)


async def uncounted_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """As :func:`caller`, without counting: for reads as cheap as the key check itself (the
    widget's settings on a page load), so page views do not spend the budget for questions."""
    return await _identify(request, credentials, count=False)


async def secret_caller(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """A clinic's secret key: documents, approval and audit need it."""
    if who.kind != "secret":
        raise NotAllowed(
            "A publishable key may only ask questions; use the clinic's secret key from its server."
        )
    return who


AnyKey = Annotated[Caller, Depends(caller)]
AnyKeyUncounted = Annotated[Caller, Depends(uncounted_caller)]
SecretKey = Annotated[Caller, Depends(secret_caller)]
AssistantDep = Annotated[Any, Depends(get_assistant)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def bounded(settings: Settings, fn: Callable[[], T], *, deadline: float | None = None) -> T:
    """Run blocking work in a thread, failing with 504 after ``api_request_timeout`` seconds (or at
    ``deadline``, a ``time.monotonic()`` value, for work that continues a request already running)."""
    timeout = settings.api_request_timeout if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        return await asyncio.wait_for(run_in_threadpool(fn), timeout=timeout)
    except asyncio.TimeoutError:
        raise RequestTimedOut(settings.api_request_timeout) from None
