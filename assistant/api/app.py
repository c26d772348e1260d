"""Assembles the API: settings, the assistant, middleware, error translation and the routers.

uvicorn --factory assistant.api.app:create_app    (or: pht-assistant serve)
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from assistant import __version__
from assistant.api import errors, openai_compat
from assistant.api.cors import Cors
from assistant.api.deps import RefusedLimiter
from assistant.api.limits import RateLimits
from assistant.api.metrics import Metrics
from assistant.api.routes import ask, audit, chat, documents, feedback, health, keys, metrics, sources, widget
from assistant.errors import RequestTooLarge
from assistant.mcp import http as mcp_http
from assistant.settings import Settings, get_settings

log = logging.getLogger("assistant.api")
access = logging.getLogger("assistant.api.access")

DESCRIPTION = """Answers questions about proximal hamstring tendinopathy from a curated corpus and
the clinic's own approved documents, always with citations and a "consult a physiotherapist" notice.

Every endpoint but `/v1/health` and `/widget.js` needs `Authorization: Bearer <key>` (`pht-assistant key create`).
Browsers on a clinic's allowed origins may call the widget's routes with its publishable key (CORS).
Errors are JSON `{error, message, safety_notice}`; `message` says what to do next."""


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before any route reads them (pure ASGI)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.limit
        messages = []
        if not too_big:
            size, more = 0, True
            while more:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
                if size > self.limit:
                    too_big = True
                    break
        if too_big:
            if scope["path"].startswith(openai_compat.PATHS):  # the OpenAI-compatible routes' own error shape
                response = openai_compat.response_for(RequestTooLarge(self.limit))
            else:
                response = errors.response_for(RequestTooLarge(self.limit))
            response.headers["Connection"] = "close"
            return await response(scope, receive, send)

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


class Observe:
    """Per request: metrics, the access log line, the ``X-PHT-Worker`` and ``X-RateLimit-*`` headers,
    and (when traces are on) the request's span (pure ASGI).

    The status and time are taken when the response starts; ``request.state.clinic``,
    ``request.state.ratelimit`` and ``request.state.error`` (set by the key check and the error
    handlers) are read from the scope.
    """

    def __init__(self, app: Any, metrics: Metrics, state: Any) -> None:
        self.app, self.metrics, self.state = app, metrics, state
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracing = getattr(self.state, "tracing", None)
        if tracing is None:
            return await self._observe(scope, receive, send, None)
        span = tracing.request(scope["method"], scope.get("path", ""), scope.get("headers") or [])
        with span:
            await self._observe(scope, receive, send, span)

    async def _observe(self, scope, receive, send, span):
        began = time.perf_counter()
        started: dict[str, Any] = {}

        async def send_with_worker(message):
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                started["seconds"] = time.perf_counter() - began
                # which worker answered (scale-out checks)
                headers = [*message.get("headers", []), (b"x-pht-worker", self.worker)]
                window = (scope.get("state") or {}).get("ratelimit")
                if window is not None:  # every reply to a known key says where its limit stands
                    headers += [(k.lower().encode(), v.encode()) for k, v in window.headers().items()]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_worker)
        except Exception:
            # a bug: the outermost middleware answers 500 with the notice (errors.py); it is counted
            # and logged here like any other reply, so it can be alerted on
            if not started:
                started.update(status=500, seconds=time.perf_counter() - began)
                scope.setdefault("state", {})["error"] = "internal_error"
            self._record(scope, started, span)
            raise
        finally:
            if span is not None:
                state = scope.get("state") or {}
                span.finish(getattr(scope.get("route"), "path", "unmatched"), started.get("status"), state.get("clinic"))
        if not started:
            return
        self._record(scope, started, span)

    def _record(self, scope, started, span) -> None:
        path = getattr(scope.get("route"), "path", "unmatched")
        seconds, status = started["seconds"], started["status"]
        m = self.metrics
        m.requests.labels(path, scope["method"], str(status)).inc()
        m.latency.labels(path).observe(seconds)
        state = scope.get("state") or {}
        error = state.get("error")
        if error:
            m.errors.labels(error).inc()
        # The access log: no body, no query string, no key; the trace id when traces are on.
        access.info(
            "%s %s %d %.1fms clinic=%s trace=%s",
            scope["method"],
            path,
            status,
            seconds * 1000,
            state.get("clinic", "-"),
            span.trace_id if span is not None else "-",
        )


def tracing_enabled(settings: Settings) -> bool:
    from assistant.tracing import tracing_enabled as enabled

    return enabled(settings)


def create_app(settings: Settings | None = None, assistant: Any = None, tracing: Any = None) -> FastAPI:
    """The API app; ``assistant`` defaults to one built from ``settings`` at start-up, ``tracing``
    (an :class:`assistant.tracing.Tracing`) to one made from the settings when traces are on."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if app.state.assistant is None:
            from assistant.pipeline.assistant import Assistant

            def load():
                a = Assistant.from_settings(settings, notify=log.info, progress=False)
                a.warm_up()
                a.library.store.client()  # open the clinics' store now (the embedded one is claimed)
                return a

            app.state.assistant = await run_in_threadpool(load)
            app.state.owned = True
            # a newly published index is answered from within index_refresh_seconds, without a restart
            app.state.assistant.follow_index(settings.index_refresh_seconds, notify=log.info)
        a = app.state.assistant
        registry = await run_in_threadpool(lambda: a.library.registry)  # its schema is checked as it opens
        if app.state.tracing is None and tracing_enabled(settings):
            from assistant.tracing import Tracing

            app.state.tracing = Tracing(
                settings,
                model_name=getattr(a.embeddings, "model_id", ""),
                composer=getattr(a.composer, "name", type(a.composer).__name__),
            )
        log.info(
            "ready: store %s, registry %s (%s), rate limits %s, traces %s, corpus %s, composer %s",
            a.library.store.kind,
            registry.kind,
            registry.where,
            "in Redis" if settings.redis_url else "per worker",
            "on" if app.state.tracing is not None else "off",
            a.corpus_version,
            a.describe_composer(),
        )
        tally = getattr(app.state.assistant, "composed", None)  # language-model replies and fallbacks -> /metrics
        if tally is not None:
            tally.listeners.append(app.state.metrics.observe_composed)
        async with app.state.mcp.running():  # /mcp's transport needs its session manager running
            yield
        if tally is not None:
            tally.listeners.remove(app.state.metrics.observe_composed)
        library = app.state.assistant.library_if_open
        if library is not None:  # every answer's audit record is committed before the server stops
            await run_in_threadpool(library.registry.flush_audit)
            # running approvals are stopped: they record nothing, and report so to whoever polls
            await run_in_threadpool(library.close_approvals)
        if getattr(app.state, "owned", False):
            app.state.assistant.library.store.release()
            app.state.assistant.close()
        if app.state.tracing is not None:
            app.state.tracing.shutdown()  # the last spans are sent

    app = FastAPI(
        title="PHT Assistant API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.assistant = assistant
    app.state.metrics = Metrics()
    app.state.limiter = RateLimits.from_settings(settings, app.state.metrics)
    # refused requests, per client address, apart from every key's budget (deps.RefusedLimiter)
    app.state.refusals = RefusedLimiter(
        RateLimits.from_settings(settings, app.state.metrics, limit=settings.api_refused_limit), app.state.metrics
    )
    app.state.tracing = tracing
    errors.install(app)

    app.add_middleware(Cors)  # innermost of the three: preflights are counted and logged too
    app.add_middleware(Observe, metrics=app.state.metrics, state=app.state)
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    for module in (ask, chat, sources, documents, keys, audit, feedback, widget, health, metrics):
        app.include_router(module.router)
    app.include_router(documents.approvals)
    app.state.mcp = mcp_http.install(app, settings)  # /mcp: the MCP server over streamable HTTP
    return app
