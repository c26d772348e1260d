"""Connection hygiene below the app: time limits on reading a request, and caps on connections.

uvicorn reads requests for the app; it closes a kept-alive connection that stays idle, but a
connection that sends part of a request line or headers and then stops is kept for ever, and so is
a body that never ends. One client opening thousands of those uses up the server's file limit and
every other client is reset. ``pht-assistant serve`` therefore runs uvicorn with the protocol
classes here, which add to uvicorn's own HTTP/1.1 protocols:

- **header time limit**: a request's line and headers must arrive within ``api_header_timeout``
  seconds of the connection opening (or of the first byte after a reply on a kept-alive
  connection), and be at most ``api_max_header_bytes`` long;
- **body time limit**: a request's body must arrive within ``api_body_timeout`` seconds of its
  headers;
- **caps**: at most ``api_max_connections`` open connections per worker (kept below the process's
  file limit) and ``api_max_connections_per_client`` from one client address; a connection over a
  cap is answered ``503`` at once and closed;
- **its own errors with the notice**: a malformed request gets a JSON ``400``, headers too large a
  ``431``, a request that stalls a ``408``, all as ``{error, message, safety_notice}`` (uvicorn's
  own are plain text).

Each refusal and each closed connection is counted (``pht_connections_refused_total{reason}``,
``pht_connections_closed_total{reason}``, ``pht_connections_open`` in ``/metrics``) and logged by
``assistant.api.connections``: the first of a kind at once, then one line per kind every ten
seconds with the number since, so a flood cannot flood the log.

>>> body = error_bytes(503, "server_busy", "Busy.")
>>> body.split(b"\\r\\n")[0], b'"safety_notice"' in body
(b'HTTP/1.1 503 Service Unavailable', True)
"""

from __future__ import annotations

import http
import json
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from assistant.answer import SAFETY_NOTICE

log = logging.getLogger("assistant.api.connections")

# A connection refused over a cap is answered 503 once its first bytes are read (closing it with
# its request unread would reset it, and the reply would be lost), or after this long if it sends
# nothing.
REFUSE_AFTER = 1.0
MAX_PENDING_REFUSALS = 1024  # past this many waiting to be answered, refused connections are just closed
LOG_EVERY = 10.0  # seconds between two log lines of the same kind
FD_RESERVE = 128  # file descriptors kept for the store, the database, logs and the model


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_connections: int  # 0: only the file limit
    max_per_client: int  # 0: no cap per client address

    @classmethod
    def from_settings(cls, settings: Any) -> "Limits":
        return cls(
            header_timeout=settings.api_header_timeout,
            body_timeout=settings.api_body_timeout,
            max_header_bytes=settings.api_max_header_bytes,
            max_connections=effective_max_connections(settings.api_max_connections),
            max_per_client=settings.api_max_connections_per_client,
        )


def effective_max_connections(wanted: int) -> int:
    """``wanted``, or fewer when the process's file limit would be reached first."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - FD_RESERVE if soft != resource.RLIM_INFINITY else None
    if room is None:
        return wanted
    room = max(16, room)
    return room if wanted <= 0 else min(wanted, room)


@lru_cache(maxsize=1)
def limits() -> Limits:
    """This worker's limits, read once from the settings (``PHT_API_*``)."""
    from assistant.settings import get_settings

    found = Limits.from_settings(get_settings())
    log.info(
        "connection limits: headers within %gs (%d bytes), body within %gs, %d connections, %s per client",
        found.header_timeout,
        found.max_header_bytes,
        found.body_timeout,
        found.max_connections,
        found.max_per_client or "no cap",
    )
    return found


def error_bytes(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 error response with the API's JSON error body and ``Connection: close``."""
    body = json.dumps({"error": code, "message": message, "safety_notice": SAFETY_NOTICE}).encode()
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ConnectionStats:
    """What this worker's connections are doing: open ones per client address, and counts of
    refusals and closes by reason (read by ``/metrics``). Used from the event loop only."""

    def __init__(self) -> None:
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self.pending_refusals = 0
        self.refused: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self._last_line: dict[str, float] = {}
        self._since: Counter[str] = Counter()
        self._clients: dict[str, Counter[str]] = {}

    def admit(self, client: str, lim: Limits) -> str:
        """``""`` when the connection may stay, else the reason it is refused."""
        if lim.max_per_client and self.by_client[client] >= lim.max_per_client:
            return "per_client_cap"
        if lim.max_connections and self.open >= lim.max_connections:
            return "total_cap"
        self.open += 1
        self.by_client[client] += 1
        return ""

    def release(self, client: str) -> None:
        self.open -= 1
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]

    def note(self, kind: str, reason: str, client: str, sentence: str) -> None:
        """Count one refusal or close and log it, at most one line per reason every LOG_EVERY s."""
        (self.refused if kind == "refused" else self.closed)[reason] += 1
        now = time.monotonic()
        self._since[reason] += 1
        self._clients.setdefault(reason, Counter())[client] += 1
        last = self._last_line.get(reason)
        if last is not None and now - last < LOG_EVERY:
            return
        count, clients = self._since.pop(reason), self._clients.pop(reason)
        self._last_line[reason] = now
        top, top_n = clients.most_common(1)[0]
        log.warning(
            "connection %s (%s): %s; %d since the last such line, from %d address(es), most from %s (%d); "
            "%d connections open",
            kind,
            reason,
            sentence,
            count,
            len(clients),
            top or "-",
            top_n,
            self.open,
        )


STATS = ConnectionStats()


class _Guard:
    """Mixed into uvicorn's HTTP/1.1 protocols (see the module's docstring)."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._g_timer: Any = None
        self._g_waiting = ""  # "headers" or "body" while a time limit runs
        self._g_bytes = 0  # bytes of a request line and headers not yet complete
        self._g_refused = ""  # the 503 to send a refused connection
        self._g_admitted = False
        self._g_client = self.client[0] if self.client else ""
        lim = limits()
        reason = STATS.admit(self._g_client, lim)
        if reason:
            self._g_refuse(reason, lim)
            return
        self._g_admitted = True
        self._g_arm("headers", lim.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._g_cancel()
        if self._g_admitted:
            self._g_admitted = False
            STATS.release(self._g_client)
        elif self._g_refused:
            self._g_refused = ""
            STATS.pending_refusals -= 1
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._g_refused:
            self._g_refuse_now()  # its request has been read: the 503 goes out, then a clean close
            return
        before = self.cycle
        waiting = before is None or before.response_complete
        if waiting:
            self._g_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():
            self._g_cancel()
            return
        cycle = self.cycle
        lim = limits()
        if cycle is not None and cycle is not before:  # a request's headers are complete
            self._g_bytes = 0
            self._g_cancel()
            if cycle.more_body:
                self._g_arm("body", lim.body_timeout)
        elif cycle is not None and not cycle.response_complete:  # its body arriving
            if not cycle.more_body and self._g_waiting == "body":
                self._g_cancel()
        elif self._g_bytes > lim.max_header_bytes:
            self._g_close(
                "headers_too_large",
                431,
                f"The request's line and headers are longer than {lim.max_header_bytes} bytes; send a shorter request.",
            )
        elif self._g_waiting != "headers":  # the first bytes of the next request on this connection
            self._g_arm("headers", lim.header_timeout)

    def send_400_response(self, msg: str) -> None:  # uvicorn's, for a request it cannot parse
        self._g_close(
            "bad_request",
            400,
            "The HTTP request could not be read (a malformed request line or header); "
            "send a well-formed HTTP/1.1 request as /docs shows.",
        )

    # -- time limits ------------------------------------------------------------------------------

    def _g_arm(self, what: str, seconds: float) -> None:
        self._g_cancel()
        self._g_waiting = what
        self._g_timer = self.loop.call_later(seconds, self._g_expired, what, seconds)

    def _g_cancel(self) -> None:
        if self._g_timer is not None:
            self._g_timer.cancel()
            self._g_timer = None
        self._g_waiting = ""

    def _g_expired(self, what: str, seconds: float) -> None:
        self._g_timer = None
        self._g_waiting = ""
        if self.transport.is_closing():
            return
        if what == "headers":
            if self._g_bytes == 0:  # nothing asked: closed quietly, as an idle connection
                STATS.note("closed", "idle", self._g_client, f"no request within {seconds:g} s")
                self.transport.close()
                return
            self._g_close(
                "header_timeout",
                408,
                f"The request's headers did not arrive within {seconds:g} seconds; send the whole request at once.",
            )
            return
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        self._g_close(
            "body_timeout",
            408,
            f"The request's body did not arrive within {seconds:g} seconds of its headers; send it again in one go.",
            reply=not started,
        )

    # -- refusing and closing ---------------------------------------------------------------------

    def _g_close(self, reason: str, status: int, message: str, *, reply: bool = True) -> None:
        self._g_cancel()
        STATS.note("closed", reason, self._g_client, message)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.response_started = True  # the app's own reply, if it comes, is not written after ours
            cycle.disconnected = True
        if reply:
            self.transport.write(error_bytes(status, reason, message))
        self.transport.close()

    def _g_refuse(self, reason: str, lim: Limits) -> None:
        if reason == "per_client_cap":
            message = (
                f"This address already has {lim.max_per_client} connections open to the assistant; "
                "close some, or reuse one, and try again."
            )
        else:
            message = "The assistant has all the connections it can take just now; please try again in a few seconds."
        STATS.note("refused", reason, self._g_client, message)
        code = "too_many_connections" if reason == "per_client_cap" else "server_busy"
        if STATS.pending_refusals >= MAX_PENDING_REFUSALS:
            self.transport.close()
            return
        STATS.pending_refusals += 1
        self._g_refused = error_bytes(503, code, message, {"retry-after": "1"}).decode("latin-1")
        self._g_timer = self.loop.call_later(REFUSE_AFTER, self._g_refuse_now)

    def _g_refuse_now(self) -> None:
        if self._g_timer is not None:
            self._g_timer.cancel()
            self._g_timer = None
        if self.transport.is_closing():
            return
        self.transport.write(self._g_refused.encode("latin-1"))
        self.transport.close()


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol with the time limits, caps and error bodies of this module."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional for uvicorn
    GuardedProtocol: type = GuardedH11Protocol
else:

    class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
        """uvicorn's httptools protocol with the time limits, caps and error bodies of this module."""

    GuardedProtocol = GuardedHttpToolsProtocol


def collector() -> Any:
    """A Prometheus collector of this worker's connection counts (for ``Metrics``)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class ConnectionCollector:
        def collect(self):
            yield GaugeMetricFamily("pht_connections_open", "Open client connections", value=STATS.open)
            refused = CounterMetricFamily(
                "pht_connections_refused", "Connections refused over a cap, by reason", labels=["reason"]
            )
            for reason in ("per_client_cap", "total_cap", *sorted(set(STATS.refused) - {"per_client_cap", "total_cap"})):
                refused.add_metric([reason], STATS.refused[reason])
            yield refused
            closed = CounterMetricFamily(
                "pht_connections_closed",
                "Connections closed by the server's own limits, by reason",
                labels=["reason"],
            )
            known = ("idle", "header_timeout", "body_timeout", "headers_too_large", "bad_request")
            for reason in (*known, *sorted(set(STATS.closed) - set(known))):
                closed.add_metric([reason], STATS.closed[reason])
            yield closed

        def describe(self):
            return []

    return ConnectionCollector()
