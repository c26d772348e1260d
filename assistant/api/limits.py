"""Rate limits per key: a moving window counted in Redis (one count for every worker and machine)
when ``PHT_REDIS_URL`` is set, in this process's memory otherwise.

Both counts use the `limits` library's moving window: at most ``api_rate_limit`` requests in any
``api_rate_window`` seconds. When Redis does not answer (down, or slower than ``redis_timeout``),
the worker keeps answering and counts on its own (the limit then holds per worker), says so in
``/v1/health`` and the metrics, and tries Redis again after ``redis_retry_seconds``: patients are
never refused because the counter is away.

>>> import asyncio
>>> limits = RateLimits(limit=2, window=60)
>>> asyncio.run(limits.hit("key")).headers()["X-RateLimit-Remaining"]
'1'
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from assistant.errors import RateLimited

log = logging.getLogger("assistant.api.limits")


@dataclass(frozen=True)
class Window:
    """Where a key stands: its limit, what is left, and seconds until a request is free again."""

    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(max(0, math.ceil(self.reset))),
        }


class RateLimits:
    """The API's limiter: ``await hit(key_id)`` counts one request and returns the :class:`Window`,
    or raises :class:`~assistant.errors.RateLimited` (with the window) when the key is over its limit.

    Made per worker; the Redis client is opened on first use, in the server's event loop.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        redis_url: str = "",
        timeout: float = 0.25,
        retry_seconds: float = 5.0,
        metrics: Any = None,
    ) -> None:
        from limits import RateLimitItemPerSecond

        self.item = RateLimitItemPerSecond(limit, max(1, round(window)))
        self.limit = limit
        self.redis_url = redis_url
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.metrics = metrics
        self._memory: Any = None
        self._redis: Any = None
        self._down_since: float | None = None  # monotonic time Redis last failed
        self._retry_at = 0.0

    @classmethod
    def from_settings(cls, settings: Any, metrics: Any = None, *, limit: int | None = None) -> "RateLimits":
        """The keys' limits; with ``limit``, another count on the same storage and window (the
        refused requests per client address, for one)."""
        return cls(
            limit=settings.api_rate_limit if limit is None else limit,
            window=settings.api_rate_window,
            redis_url=settings.redis_url,
            timeout=settings.redis_timeout,
            retry_seconds=settings.redis_retry_seconds,
            metrics=metrics,
        )

    # -- where the count lives ---------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``redis`` when counted in Redis now, ``memory`` otherwise (unset, or Redis unreachable)."""
        return "redis" if self.redis_url and self._down_since is None else "memory"

    def describe(self) -> str:
        """A sentence for ``/v1/health`` when the limits are not what the settings ask for, else ``""``."""
        if self.redis_url and self._down_since is not None:
            return (
                "Redis does not answer: each worker counts its own requests until it returns "
                "(the rate limit holds per worker meanwhile)."
            )
        return ""

    def _limiter(self, redis: bool) -> Any:
        from limits.aio.strategies import MovingWindowRateLimiter

        if redis:
            if self._redis is None:
                from limits.aio.storage import RedisStorage

                url = self.redis_url if self.redis_url.startswith("async+") else "async+" + self.redis_url
                storage = RedisStorage(
                    url,
                    implementation="redispy",
                    wrap_exceptions=True,
                    key_prefix="pht",
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                )
                self._redis = MovingWindowRateLimiter(storage)
            return self._redis
        if self._memory is None:
            from limits.aio.storage import MemoryStorage

            self._memory = MovingWindowRateLimiter(MemoryStorage())
        return self._memory

    # -- counting ----------------------------------------------------------------------------------

    async def _count(self, limiter: Any, key_id: str) -> tuple[bool, Window]:
        allowed = await limiter.hit(self.item, key_id)
        reset_at, remaining = await limiter.get_window_stats(self.item, key_id)
        return allowed, Window(self.limit, remaining, reset_at - time.time())

    async def hit(self, key_id: str) -> Window:
        if self.redis_url and time.monotonic() >= self._retry_at:
            try:
                allowed, window = await self._count(self._limiter(True), key_id)
            except Exception as exc:  # StorageError, a timeout, a refused connection: count alone
                self._redis_failed(exc)
            else:
                if self._down_since is not None:
                    log.warning(
                        "Redis answers again after %.0f s: rate limits are shared again",
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
                    if self.metrics is not None:
                        self.metrics.redis_up.set(1)
                return self._verdict(allowed, window)
        if self.redis_url and self.metrics is not None:
            self.metrics.limit_fallbacks.inc()
        allowed, window = await self._count(self._limiter(False), key_id)
        return self._verdict(allowed, window)

    async def peek(self, key_id: str) -> Window:
        """Where the key stands, without counting a request (for reads that are not counted)."""
        if self.redis_url and time.monotonic() >= self._retry_at:
            try:
                reset_at, remaining = await self._limiter(True).get_window_stats(self.item, key_id)
                return Window(self.limit, remaining, reset_at - time.time())
            except Exception as exc:
                self._redis_failed(exc)
        reset_at, remaining = await self._limiter(False).get_window_stats(self.item, key_id)
        return Window(self.limit, remaining, reset_at - time.time())

    def _redis_failed(self, exc: Exception) -> None:
        if self._down_since is None:
            log.warning(
                "Redis does not answer (%s): each worker counts its own requests; trying again every %.0f s",
                type(getattr(exc, "storage_error", exc)).__name__,
                self.retry_seconds,
            )
            self._down_since = time.monotonic()
            if self.metrics is not None:
                self.metrics.redis_up.set(0)
        self._retry_at = time.monotonic() + self.retry_seconds  # the client reconnects by itself then

    @staticmethod
    def _verdict(allowed: bool, window: Window) -> Window:
        if not allowed:
            raise RateLimited(window.reset, window=window)
        return window
