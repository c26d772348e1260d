"""GET /v1/models and POST /v1/chat/completions: the assistant as an OpenAI-compatible model.

For the chat front ends and libraries clinics already run (Open WebUI, LibreChat, the `openai`
client, LangChain's `ChatOpenAI`): same keys, limits and audit as `/v1/ask`, errors in OpenAI's
shape. docs/integrations.md shows the set-up.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from assistant.answer import Delta, Done, Started
from assistant.api.deps import AnyKey, AssistantDep, SettingsDep, bounded
from assistant.api.openai_compat import (
    DONE,
    MODEL_ID,
    ChatCompletion,
    ChatCompletionRequest,
    ModelInfo,
    ModelList,
    OpenAIRoute,
    PHTReply,
    TextChunks,
    chunk,
    completion,
    error_responses,
    question_and_history,
    stream_error,
)
from assistant.reply import TextRelay

router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIRoute)

_STARTED = int(time.time())


@router.get("/models", response_model=ModelList, responses=error_responses(401, 403, 429), summary="List the model")
async def models(who: AnyKey) -> ModelList:
    """One model, `pht-assistant`: the shared corpus and the clinic's own approved documents."""
    return ModelList(data=[ModelInfo(id=MODEL_ID, created=_STARTED, owned_by=who.clinic.id)])


_STREAM_DOC = (
    "With `stream: true`: server-sent `chat.completion.chunk` events (the first delta carries the role, "
    "the last has `finish_reason: \"stop\"` and the `pht` field), then `data: [DONE]`."
)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The answer; " + _STREAM_DOC},
        **error_responses(400, 401, 403, 413, 429, 503, 504),
    },
    summary="Answer the last user message (OpenAI-compatible)",
)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, who: AnyKey, assistant: AssistantDep, settings: SettingsDep
):
    """The answer to the last `user` message, the earlier turns being the conversation so far.
    `content` is what a patient should see: the reply with its [n] markers, a short Sources list and
    the safety notice; `pht` carries the status and the structured citations. `system` messages and
    parameters such as `temperature` are accepted and ignored. Errors are OpenAI-shaped
    `{"error": {message, type, code}}`; a request that cannot be answered as sent is a 400."""
    question, history = question_and_history(body.messages)

    if not body.stream:
        answer = await bounded(settings, lambda: assistant.for_clinic(who.clinic.id).ask(question, history))
        request.app.state.metrics.observe_answer(answer)
        return completion(answer)

    def start() -> tuple[Started, Iterator[Any]]:
        events = assistant.for_clinic(who.clinic.id).stream(question, history)
        return next(events), events  # bad input raises here, before any byte is sent

    first, rest = await bounded(settings, start)
    return StreamingResponse(
        _chunks(request, first, rest, settings),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _chunks(request: Request, first: Started, rest: Iterator[Any], settings) -> AsyncIterator[str]:
    """The pipeline's events as chunks: the role first, text pieces as they are written (the start of
    the notice held back), then the Sources list and the notice, then the stop chunk and [DONE]."""
    created = int(time.time())
    yield chunk(first.id, created, {"role": "assistant", "content": ""})
    text_chunk, relay = TextChunks(first.id, created), TextRelay()
    deadline = time.monotonic() + settings.api_request_timeout
    try:
        while True:
            event = await bounded(settings, lambda: next(rest, None), deadline=deadline)
            if event is None:
                break
            if isinstance(event, Delta):
                text = relay.feed(event.text)
                if text:
                    yield text_chunk(text)
            elif isinstance(event, Done):
                request.app.state.metrics.observe_answer(event.answer)
                yield text_chunk(relay.finish(event.answer))
                pht = PHTReply.of(event.answer).model_dump(mode="json")
                yield chunk(first.id, created, {}, finish="stop", pht=pht)
    except Exception as exc:  # the status line has gone: the error travels as an event
        yield stream_error(exc)
    yield DONE
