"""POST /v1/ask and POST /v1/ask/stream."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from assistant.answer import Answer
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


def _pieces(text: str) -> list[str]:
    """The reply in pieces a page can show as they arrive: sentences and paragraph breaks."""
    return [p for p in re.split(r"(?<=[.!?\n])(?=\s)", text) if p]


def _events(answer: Answer) -> Iterator[str]:
    def event(name: str, data: object) -> str:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield event("status", {"status": answer.status.value, "id": answer.id})
    for piece in _pieces(answer.text):
        yield event("text", {"text": piece})
    yield event("citations", {"citations": [c.model_dump() for c in answer.citations]})
    yield event("done", answer.model_dump(mode="json"))


@router.post(
    "/ask/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `status`, then `text` pieces, then `citations`, then `done` with the whole Answer.",
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
    answer = await _answer(request, body, who, assistant, settings)
    return StreamingResponse(
        _events(answer), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
