"""POST /v1/ask and POST /v1/ask/stream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from assistant.answer import Answer, Delta, Done, Started
from assistant.api.deps import AnyKey, AssistantDep, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import AskRequest

router = APIRouter(prefix="/v1", tags=["ask"])

_ERRORS = responses(
    401,
    403,
    413,
    422,
    429,
    503,
    504,
    _422="The question is empty, too long or unreadable (the message says which).",
)


async def _answer(request: Request, body: AskRequest, who, assistant, settings) -> Answer:
    history = [t.model_dump() for t in body.history] if body.history else None

    def run() -> Answer:
        return assistant.for_clinic(who.clinic.id).ask(body.question, history, explain=body.explain and who.kind == "secret")

    answer = await bounded(settings, run)
    request.app.state.metrics.observe_answer(answer)
    return answer


@router.post("/ask", response_model=Answer, responses=_ERRORS, summary="Answer one question")
async def ask(
    request: Request, body: AskRequest, who: AnyKey, assistant: AssistantDep, settings: SettingsDep
) -> Answer:
    """The answer with its status, citations (each naming who approved the version it quotes) and the
    safety notice. The clinic's answers draw on the shared corpus and its own approved documents."""
    return await _answer(request, body, who, assistant, settings)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(request: Request, first: Started, rest: Iterator[Any], settings) -> AsyncIterator[str]:
    """SSE from the pipeline's stream: ``status``, ``text`` pieces as they are written,
    ``citations``, then ``done`` with the whole Answer."""
    yield _event("status", {"status": first.status.value, "id": first.id})
    deadline = time.monotonic() + settings.api_request_timeout
    while True:
        event = await bounded(settings, lambda: next(rest, None), deadline=deadline)
        if event is None:
            return
        if isinstance(event, Delta):
            yield _event("text", {"text": event.text})
        elif isinstance(event, Done):
            request.app.state.metrics.observe_answer(event.answer)
            yield _event("citations", {"citations": [c.model_dump() for c in event.answer.citations]})
            yield _event("done", event.answer.model_dump(mode="json"))


@router.post(
    "/ask/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `status`, then `text` pieces as they are written, then `citations`, then `done` with the whole Answer.",
        },
        **_ERRORS,
    },
    response_class=StreamingResponse,
    summary="Answer one question as server-sent events",
)
async def ask_stream(
    request: Request, body: AskRequest, who: AnyKey, assistant: AssistantDep, settings: SettingsDep
):
    """The same answer as `/v1/ask`, as events: `status` first, then `text` pieces (joined they are the
    text, ending with the safety notice), then `citations`, then `done` carrying the whole Answer.
    Errors found before the first event are JSON errors, as for `/v1/ask`."""
    history = [t.model_dump() for t in body.history] if body.history else None
    explain = body.explain and who.kind == "secret"

    def start() -> tuple[Started, Iterator[Any]]:
        events = assistant.for_clinic(who.clinic.id).stream(body.question, history, explain=explain)
        return next(events), events  # bad input raises here, before any event is sent

    first, rest = await bounded(settings, start)
    return StreamingResponse(
        _events(request, first, rest, settings), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
