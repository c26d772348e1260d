"""A small, real OpenAI-compatible server on a loopback port, scripted by the tests.

It speaks the chat-completions API over HTTP (``POST /v1/chat/completions``, streamed as
server-sent events or not, ``GET /v1/models``), reads the numbered passages out of the prompt it is
sent, and answers as its current :class:`Script` says: a reply written from those passages, a
slow reply, an HTTP error, malformed JSON, or a stream cut midway. It records every request (body and
headers) and every connection, so tests can check what the composer sent and that nothing connected.

>>> with FakeLLM() as llm:
...     llm.script = Script(reply=lambda passages: "Calf raises suit the tendon [1].")
...     import httpx
...     r = httpx.post(llm.url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
...     r.json()["choices"][0]["message"]["content"], len(llm.requests)
('Calf raises suit the tendon [1].', 1)
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PASSAGE = re.compile(r'<passage number="(\d+)"[^>]*>\n(.*?)\n</passage>', re.DOTALL)


def passages_of(body: dict[str, Any]) -> dict[int, str]:
    """The numbered passages the composer put in its prompt: number -> text."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    return {int(n): t for n, t in _PASSAGE.findall(text)}


def number_of(passages: dict[int, str], anchor: str) -> int:
    """The number of the passage that contains ``anchor`` (the fake answers from what it was given)."""
    for n, text in sorted(passages.items()):
        if anchor in text:
            return n
    raise AssertionError(f"no passage given to the model contains {anchor!r}: {passages}")


@dataclass
class Script:
    """What the server does with the next requests.

    ``mode``: ``reply`` (the text of ``reply(passages)``), ``status`` (an HTTP error ``status``
    with an OpenAI-style error body), ``malformed`` (a body that is not JSON), ``cut`` (stream the
    first ``cut_after`` pieces of the reply, then drop the connection mid-body). ``delay`` seconds
    pass before anything is sent; ``gap`` seconds between streamed pieces.
    """

    reply: Callable[[dict[int, str]], str] = lambda passages: ""
    mode: str = "reply"
    status: int = 500
    delay: float = 0.0
    gap: float = 0.0
    cut_after: int = 3
    finish_reason: str = "stop"


@dataclass
class Request:
    body: dict[str, Any]
    headers: dict[str, str]
    passages: dict[int, str] = field(default_factory=dict)


class FakeLLM:
    """Start with ``with FakeLLM() as llm:``; ``llm.url`` is the base URL (``.../v1``)."""

    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[Request] = []
        self.connections = 0
        self.finished: list[float] = []  # time.monotonic() when each streamed reply was fully sent
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                fake.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                body = json.loads(raw or b"{}")
                passages = passages_of(body)
                fake.requests.append(Request(body, {k.lower(): v for k, v in self.headers.items()}, passages))
                script = fake.script
                try:
                    if script.delay:
                        time.sleep(script.delay)
                    if script.mode == "status":
                        self._json(script.status, {"error": {"message": f"scripted {script.status}", "type": "server_error", "code": None}},
                                   {"Retry-After": "1"} if script.status == 429 else {})  # fmt: skip
                    elif script.mode == "malformed":
                        self._malformed(bool(body.get("stream")))
                    elif body.get("stream"):
                        self._stream(body, script, passages)
                    else:
                        text = script.reply(passages)
                        self._json(200, _completion(body, text, script.finish_reason))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to do

            # -- responses ------------------------------------------------------------------

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _malformed(self, stream: bool) -> None:
                if stream:
                    self._start_stream()
                    self._chunk(b'data: {"id": "chatcmpl-x", "choices": [{"delta": {"content": "Calf' + b"\n\n")
                    self._chunk(b"data: this is not JSON at all }\n\n")
                    self._chunk(b"")
                else:
                    data = b'{"id": "chatcmpl-x", "choices": [ oops'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _event(self, payload: Any) -> None:
                self._chunk(b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n")

            def _stream(self, body: dict[str, Any], script: Script, passages: dict[int, str]) -> None:
                text = script.reply(passages)
                pieces = re.findall(r"\S+\s*|\s+", text)
                self._start_stream()
                self._event(_chunk(body, {"role": "assistant", "content": ""}))
                for i, piece in enumerate(pieces):
                    if script.mode == "cut" and i >= script.cut_after:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: no final chunk, no [DONE]
                        return
                    if script.gap:
                        time.sleep(script.gap)
                    self._event(_chunk(body, {"content": piece}))
                self._event(_chunk(body, {}, script.finish_reason))
                self._event(b"[DONE]")
                self._chunk(b"")
                fake.finished.append(time.monotonic())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-llm", daemon=True)

    def __enter__(self) -> "FakeLLM":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def _completion(body: dict[str, Any], text: str, finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
