"""What routes depend on: the settings, the assistant, the caller's key, limits and time limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from assistant.clinics.registry import Clinic
from assistant.clinics.work import Work
from assistant.errors import NotAllowed, NotAuthenticated, RateLimited, RequestTimedOut, TooManyRefused
from assistant.settings import Settings

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="A clinic's key: `Authorization: Bearer pht_sk_...`.")


# The dependencies are coroutines: FastAPI runs a plain function dependency in the thread pool, a
# thread hand-off per dependency per request; these only read state (the key check: one SQLite read
# of tens of microseconds that never waits for a writer), so they run on the event loop.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_assistant(request: Request) -> Any:
    return request.app.state.assistant


class RateLimiter:
    """A sliding window per key, in this process (each worker counts its own requests)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # many keys or addresses: forget those quiet for a window
                self._hits = {k: h for k, h in self._hits.items() if h and h[-1] > now - self.window}
            hits = self._hits.setdefault(key_id, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                raise RateLimited(hits[0] + self.window - now)
            hits.append(now)


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
    address, and never against any key: an address past ``limit`` refusals in ``window`` seconds
    gets 429 for its refused requests. A valid request from the same address is not affected."""

    def __init__(self, limit: int, window: float, metrics: Any = None) -> None:
        self.counts = RateLimiter(limit, window)
        self.metrics = metrics

    def refused(self, request: Request, exc: Exception, reason: str) -> Exception:
        """The error to answer with: ``exc``, or :class:`TooManyRefused` once the address is over."""
        address = request.client.host if request.client else "-"
        if self.metrics is not None:
            self.metrics.refused.labels(reason).inc()
        try:
            self.counts.check(address)
        except RateLimited as over:
            if self.metrics is not None:
                self.metrics.refused.labels("over_limit").inc()
            return TooManyRefused(over.retry_after)
        return exc


def _identify(
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
        raise refusals.refused(request, NotAuthenticated(), "not_authenticated")
    info = request.app.state.assistant.library.registry.authenticate(credentials.credentials)
    if info is None:
        raise refusals.refused(
            request,
            NotAuthenticated("The API key is unknown or revoked; ask the clinic's administrator for a key."),
            "not_authenticated",
        )
    request.state.clinic = info.clinic.id
    if info.kind == "publishable":
        origin = origin_key(request.headers.get("origin", ""))
        if not origin or origin not in {origin_key(o) for o in info.clinic.allowed_origins}:
            raise refusals.refused(
                request,
                NotAllowed(
                    "This publishable key only works from the clinic's allowed origins; add the site with "
                    "`pht-assistant clinic set CLINIC --allowed-origin URL` or use the secret key from a server."
                ),
                "foreign_origin",
            )
        if secret:
            raise refusals.refused(
                request,
                NotAllowed("A publishable key may only ask questions; use the clinic's secret key from its server."),
                "publishable_key",
            )
        request.state.cors_origin = request.headers["origin"]
    if count:
        request.app.state.limiter.check(info.id)
    return Caller(key_id=info.id, clinic=info.clinic, kind=info.kind)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Any valid key of a clinic (publishable keys only from the clinic's allowed origins), counted
    against the key's rate limit."""
    return _identify(request, credentials, count=True)


async def uncounted_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """As :func:`caller`, without counting: for reads as cheap as the key check itself (the
    widget's settings on a page load), so page views do not spend the budget for questions."""
    return _identify(request, credentials, count=False)


async def secret_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """A clinic's secret key: documents, approval and audit need it. A publishable key is refused
    before anything is counted against it."""
    return _identify(request, credentials, count=True, secret=True)


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
