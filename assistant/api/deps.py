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
from assistant.clinics.work import Work
from assistant.errors import NotAllowed, NotAuthenticated, RateLimited, RequestTimedOut, TooManyRefused
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


class RefusedLimiter:
    """Requests refused before they reach a key's budget (no key, an unknown or revoked key, a
    foreign origin, a publishable key where only a secret key may go) are counted here, per client
    address, and never against any key: an address past ``limit`` refusals in a window gets 429
    for its refused requests. A valid request from the same address is not affected. Counted like
    the keys (assistant/api/limits.py): in Redis when it is set, so for every worker at once."""

    def __init__(self, limits: Any, metrics: Any = None) -> None:
        self.limits = limits
        self.metrics = metrics

    async def refused(self, request: Request, exc: Exception, reason: str) -> Exception:
        """The error to answer with: ``exc``, or :class:`TooManyRefused` once the address is over."""
        address = request.client.host if request.client else "-"
        if self.metrics is not None:
            self.metrics.refused.labels(reason).inc()
        try:
            await self.limits.hit(f"refused:{address}")
        except RateLimited as over:
            if self.metrics is not None:
                self.metrics.refused.labels("over_limit").inc()
            return TooManyRefused(over.retry_after)
        return exc


async def _identify(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, count: bool, secret: bool = False
) -> Caller:
    """The key's clinic and kind. Everything that can refuse the request is checked before it is
    counted against the key's rate limit (the key itself, a publishable key's origin, and with
    ``secret`` the kind of key): requests refused for any of those never use up the clinic's
    budget; they are counted per client address instead (:class:`RefusedLimiter`). An allowed
    origin is left in ``request.state.cors_origin`` for the CORS middleware (assistant/api/cors.py),
    which then lets the browser read the response."""
    refusals = request.app.state.refusals
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise await refusals.refused(request, NotAuthenticated(), "not_authenticated")
    registry = request.app.state.assistant.library.registry
    if registry.kind == "sqlite":  # a local read of tens of microseconds that never waits: on the loop
        info = registry.authenticate(credentials.credentials)
    else:  # a round trip to the database server: in a thread, never blocking the loop
        info = await run_in_threadpool(registry.authenticate, credentials.credentials)
    if info is None:
        raise await refusals.refused(
            request,
            NotAuthenticated("The API key is unknown or revoked; ask the clinic's administrator for a key."),
            "not_authenticated",
        )
    request.state.clinic = info.clinic.id
    read_with_key(info.clinic)  # the clinic's view in this request uses it: no second read
    if info.kind == "publishable":
        origin = origin_key(request.headers.get("origin", ""))
        if not origin or origin not in {origin_key(o) for o in info.clinic.allowed_origins}:
            raise await refusals.refused(
                request,
                NotAllowed(
                    "This publishable key only works from the clinic's allowed origins; add the site with "
                    "`pht-assistant clinic set CLINIC --allowed-origin URL` or use the secret key from a server."
                ),
                "foreign_origin",
            )
        if secret:
            raise await refusals.refused(
                request,
                NotAllowed("A publishable key may only ask questions; use the clinic's secret key from its server."),
                "publishable_key",
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


async def secret_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """A clinic's secret key: documents, approval and audit need it. A publishable key is refused
    before anything is counted against it."""
    return await _identify(request, credentials, count=True, secret=True)


AnyKey = Annotated[Caller, Depends(caller)]
AnyKeyUncounted = Annotated[Caller, Depends(uncounted_caller)]
SecretKey = Annotated[Caller, Depends(secret_caller)]
AssistantDep = Annotated[Any, Depends(get_assistant)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _consume(task: asyncio.Future) -> None:
    """A result nobody waits for any more: its error (a Cancelled, say) is not reported as lost."""
    if not task.cancelled():
        task.exception()


async def bounded(
    settings: Settings,
    fn: Callable[[], T],
    *,
    deadline: float | None = None,
    timeout: float | None = None,
    work: Work | None = None,
) -> T:
    """Run blocking work in a thread, failing with 504 after ``api_request_timeout`` seconds (or
    ``timeout``, or at ``deadline``, a ``time.monotonic()`` value, for work that continues a request
    already running).

    With ``work`` (the :class:`~assistant.clinics.work.Work` that ``fn`` checks and commits in), the
    time-out really stops it: the work is abandoned and keeps nothing, unless it is already
    committing, and then the request waits the moment more for its result. Without, the thread
    finishes by itself and its result is dropped (reads only).
    """
    limit = settings.api_request_timeout if timeout is None else timeout  # what the client is told
    if timeout is None:
        timeout = settings.api_request_timeout if deadline is None else max(0.0, deadline - time.monotonic())
    task = asyncio.ensure_future(run_in_threadpool(fn))
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
    except asyncio.TimeoutError:
        if work is not None and not work.abandon():
            return await task  # committing: its result is the answer
        task.add_done_callback(_consume)
        raise RequestTimedOut(limit) from None
