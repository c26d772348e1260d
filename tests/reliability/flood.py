"""Half-open connections, as an attacker opens them: a request line and a header, then nothing."""

from __future__ import annotations

import selectors
import socket
import time

PARTIAL = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"


class Flood:
    """``n`` connections from ``source`` (a loopback address) that each send ``PARTIAL`` and stop;
    :meth:`watch` records when each got bytes and when the server closed it."""

    def __init__(self, port: int, n: int, source: str = "127.0.0.1") -> None:
        self.socks: list[socket.socket] = []
        self.opened = time.monotonic()
        self.failed = 0  # connections the kernel refused or reset at once
        for _ in range(n):
            s = socket.socket()
            try:
                s.bind((source, 0))
                s.connect(("127.0.0.1", port))
                s.sendall(PARTIAL)
            except OSError:
                self.failed += 1
                s.close()
                continue
            self.socks.append(s)
        self.data: dict[int, bytes] = {}
        self.closed_at: dict[int, float] = {}
        self.reset: set[int] = set()

    def watch(self, seconds: float) -> None:
        """Read every connection for up to ``seconds``, or until all are closed."""
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        deadline = time.monotonic() + seconds
        left = len(self.socks)
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                i, s = key.data, key.fileobj
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk, _ = b"", self.reset.add(i)
                except BlockingIOError:
                    continue
                if chunk:
                    self.data[i] = self.data.get(i, b"") + chunk
                    continue
                self.closed_at[i] = time.monotonic() - self.opened
                sel.unregister(s)
                left -= 1
        sel.close()

    def status(self, i: int) -> int | None:
        head = self.data.get(i, b"")
        return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None

    def still_open(self) -> int:
        return len(self.socks) - len(self.closed_at)

    def close(self) -> None:
        for s in self.socks:
            s.close()
