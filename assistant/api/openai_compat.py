"""The OpenAI chat-completions wire format: request and response bodies, stream chunks, errors.

Only the shapes live here; ``routes/chat.py`` serves them. What we take from a request: the last
``user`` message is the question and the ``user``/``assistant`` turns before it are the history.
``system`` and ``developer`` messages, tool messages and every parameter we do not use (``model``,
``temperature``, ``max_tokens``, ``tools``, ...) are accepted and ignored: nothing in them reaches
the pipeline, so nothing in them can remove the notice or change triage or the status.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import errors as e
from assistant.answer import SAFETY_NOTICE, Answer, Citation, Triage
from assistant.api.errors import code_of, status_of
from assistant.reply import patient_text

log = logging.getLogger("assistant.api")

MODEL_ID = "pht-assistant"
PATHS = ("/v1/chat/", "/v1/models")  # the routes that answer errors in OpenAI's shape


# -- requests --------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content; only ``text`` parts are read."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="`text` parts are read; images and other parts are ignored.")
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = Field(
        default=None, description="Text, or a list of content parts whose `text` parts are joined."
    )
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. Parameters not listed here are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": MODEL_ID,
                    "messages": [{"role": "user", "content": "Can running be part of my rehab?"}],
                }
            ]
        },
    )
    model: str = Field(default=MODEL_ID, description="Accepted and ignored: every model id answers the same way.")
    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation, oldest first: the last `user` message is the question, the `user` and "
        "`assistant` turns before it are the history; `system` and `developer` messages are ignored.",
    )
    stream: bool | None = Field(default=False, description="Server-sent `chat.completion.chunk` events, then `[DONE]`.")
    temperature: float | None = Field(default=None, description="Accepted and ignored.")
    max_tokens: int | None = Field(default=None, description="Accepted and ignored.")


class NoUserMessage(e.InvalidQuestion):
    default_message = "The request has no user message with text; send the question as the last `user` message."


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The last user message's text, and the user and assistant turns before it (oldest first)."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None or not messages[last].text.strip():
        raise NoUserMessage()
    history = [
        {"role": m.role, "content": m.text}
        for m in messages[:last]
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    return messages[last].text, history


# -- responses -------------------------------------------------------------------------------------


class PHTReply(BaseModel):
    """What a client that knows PHT Assistant can render itself: status, citations, the notice."""

    id: str = Field(description="The answer's id (as in the audit trail).")
    status: Literal["answered", "not_covered", "out_of_scope", "urgent"]
    citations: list[Citation] = Field(description="The passages the [n] markers refer to, with offsets and versions.")
    triage: Triage | None = None
    safety_notice: str = SAFETY_NOTICE
    corpus_version: str = ""

    @classmethod
    def of(cls, answer: Answer) -> "PHTReply":
        return cls(
            id=answer.id,
            status=answer.status.value,
            citations=answer.citations,
            triage=answer.triage,
            safety_notice=answer.safety_notice,
            corpus_version=answer.corpus_version,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="The reply with its [n] markers, a short Sources list, then the safety notice.")


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL_ID
    choices: list[Choice]
    pht: PHTReply = Field(description="PHT Assistant's own field: status and structured citations.")


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = Field(description="The clinic the key belongs to.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


def completion(answer: Answer) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{answer.id}",
        created=int(time.time()),
        choices=[Choice(message=AssistantMessage(content=patient_text(answer)))],
        pht=PHTReply.of(answer),
    )


def chunk(answer_id: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    """One server-sent ``chat.completion.chunk`` event."""
    body = {
        "id": f"chatcmpl-{answer_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"


class TextChunks:
    """The text chunks of one stream, their fixed part written once (a chunk per piece of text)."""

    def __init__(self, answer_id: str, created: int) -> None:
        self._head = (
            'data: {"id": ' + json.dumps(f"chatcmpl-{answer_id}") + ', "object": "chat.completion.chunk", "created": '
            + str(created) + ', "model": ' + json.dumps(MODEL_ID) + ', "choices": [{"index": 0, "delta": {"content": '
        )

    def __call__(self, text: str) -> str:
        return self._head + json.dumps(text, ensure_ascii=False) + '}, "finish_reason": null, "logprobs": null}]}\n\n'


DONE = "data: [DONE]\n\n"


# -- errors ----------------------------------------------------------------------------------------


class OpenAIError(BaseModel):
    message: str = Field(description="One sentence: what happened and what to do next.")
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `rate_limit_error`, ...")
    code: str | None = Field(default=None, description="Our machine-readable code, e.g. `question_too_long`.")
    param: str | None = None


class OpenAIErrorBody(BaseModel):
    """An error as OpenAI's clients read it (they raise their own exception for each status)."""

    error: OpenAIError
    safety_notice: str = SAFETY_NOTICE


TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}
DESCRIBED = {
    400: "The request or its question cannot be used (no user message, empty or too long question, ...).",
    401: "No key, or an unknown or revoked key.",
    403: "A publishable key from an origin the clinic has not allowed.",
    413: "Body too large.",
    429: "Too many requests (see Retry-After).",
    503: "Index, store or clinics database unavailable.",
    504: "Took too long.",
    500: "Something unexpected went wrong.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For the OpenAPI schema. A request the server cannot even parse is answered 400 by the server
    itself, before any route, in the rest of the API's error shape (api/connections.py)."""
    from assistant.api.models import ErrorBody

    out: dict[int | str, dict[str, Any]] = {
        c: {"model": OpenAIErrorBody, "description": DESCRIBED.get(c, "Error")} for c in (*codes, 500)
    }
    out.setdefault(
        400,
        {"model": ErrorBody, "description": "The HTTP request could not be read; answered by the server itself."},
    )
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, param: str | None = None
) -> JSONResponse:
    error = OpenAIError(message=message, type=TYPES.get(status, "server_error"), code=code, param=param)
    body = OpenAIErrorBody(error=error)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def response_for(exc: e.AssistantError) -> JSONResponse:
    """The assistant's error in OpenAI's shape; a request that cannot be answered as sent is a 400,
    as OpenAI's API answers it (the rest of our API says 422)."""
    status = status_of(exc)
    if status == 422:
        status = 400
    headers = {}
    if isinstance(exc, e.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, e.NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status, code_of(exc), exc.message, headers)


def stream_error(exc: Exception) -> str:
    """An error after the stream began: a ``data: {"error": ...}`` event, which the openai client raises."""
    if isinstance(exc, e.AssistantError):
        status, code, message = status_of(exc), code_of(exc), exc.message
    else:
        log.error("unexpected error in a chat-completions stream: %s", type(exc).__name__, exc_info=exc)
        status, code = 500, "internal_error"
        message = "Something unexpected went wrong; please try again, and tell the clinic if it happens again."
    body = OpenAIErrorBody(error=OpenAIError(message=message, type=TYPES.get(status, "server_error"), code=code))
    return "data: " + json.dumps(body.model_dump(), ensure_ascii=False) + "\n\n"


def _first_problem(exc: RequestValidationError) -> tuple[str, str | None]:
    problems = exc.errors()
    if not problems:
        return "The request could not be read; send a JSON chat-completions request.", None
    p = problems[0]
    where = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or None
    if p.get("type") == "json_invalid":
        return "The request body is not valid JSON; send a JSON chat-completions request.", None
    return (
        f"The request's {where or 'body'} is not valid ({p.get('msg', 'invalid')}); "
        "send messages as OpenAI's chat-completions API takes them.",
        where,
    )


class OpenAIRoute(APIRoute):
    """A route whose errors are OpenAI-shaped ``{"error": {message, type, code}}``; the rest of the API
    keeps ``{error, message, safety_notice}``."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def run(request: Request):
            try:
                return await handler(request)
            except e.AssistantError as exc:
                request.state.error = code_of(exc)
                return response_for(exc)
            except RequestValidationError as exc:
                request.state.error = "invalid_request"
                message, param = _first_problem(exc)
                return error_response(400, "invalid_request", message, param=param)
            except StarletteHTTPException as exc:
                request.state.error = "http_error"
                return error_response(exc.status_code, "http_error", str(exc.detail), getattr(exc, "headers", None))
            except Exception as exc:
                log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
                request.state.error = "internal_error"
                return error_response(
                    500,
                    "internal_error",
                    "Something unexpected went wrong; please try again, and tell the clinic if it happens again.",
                )

        return run
