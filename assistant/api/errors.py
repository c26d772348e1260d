"""Translate :mod:`assistant.errors` into status codes and ``{error, message, safety_notice}``.

The API decides nothing here: each error class has one status, and the message is the error's own.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import errors as e
from assistant.answer import SAFETY_NOTICE
from assistant.api.models import ErrorBody

log = logging.getLogger("assistant.api")

STATUS: list[tuple[type[e.AssistantError], int]] = [
    (e.NotAuthenticated, 401),
    (e.NotAllowed, 403),
    (e.RateLimited, 429),
    (e.RequestTooLarge, 413),
    (e.DocumentTooLarge, 413),
    (e.RequestTimedOut, 504),
    (e.Cancelled, 504),
    (e.InvalidQuestion, 422),
    (e.DocumentRejected, 422),
    (e.UnknownClinic, 404),
    (e.DocumentNotFound, 404),
    (e.KeyNotFound, 404),
    (e.ApprovalNotFound, 404),
    (e.ApprovalInProgress, 409),
    (e.UnknownAnswer, 404),
    (e.IndexUnavailable, 503),
    (e.ModelUnavailable, 503),
    (e.RegistryUnavailable, 503),
    (e.RegistrySchemaError, 503),
]

# For the OpenAPI schema: the errors each kind of route may answer with.
COMMON = {
    400: "The HTTP request could not be read (a malformed request line, header or body framing); "
    "answered by the server itself, with the same JSON body.",
    401: "No key, or an unknown or revoked key.",
    403: "The key may not do this.",
    429: "Too many requests (see Retry-After).",
    409: "Another approval of the same document is under way (one at a time per document).",
    413: "Body too large.",
    503: "Index, store or clinics database unavailable (the message says which; try again shortly).",
    504: "Took too long.",
    500: "Something unexpected went wrong (a bug: the message says to try again).",
}


def responses(*codes: int, **extra: str) -> dict[int | str, dict[str, Any]]:
    described = {**COMMON, **{int(k[1:]): v for k, v in extra.items()}}
    return {
        code: {"model": ErrorBody, "description": described.get(code, "Error")}
        for code in sorted({400, *codes, 500})
    }


def code_of(exc: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def status_of(exc: e.AssistantError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, message=message, safety_notice=SAFETY_NOTICE)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def response_for(exc: e.AssistantError) -> JSONResponse:
    headers = {}
    if isinstance(exc, e.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)  # X-RateLimit-* are added by the Observe middleware
    if isinstance(exc, e.NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status_of(exc), code_of(exc), exc.message, headers)


def _first_problem(exc: RequestValidationError) -> str:
    problems = exc.errors()
    if not problems:
        return "The request could not be read; send JSON as the API documentation shows."
    p = problems[0]
    where = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or "the body"
    return f"The request's {where} is not valid ({p.get('msg', 'invalid')}); fix it as /docs shows and send it again."


def install(app: FastAPI) -> None:
    @app.exception_handler(e.AssistantError)
    async def _assistant_error(request: Request, exc: e.AssistantError) -> JSONResponse:
        request.state.error = code_of(exc)
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error = "invalid_request"
        return error_response(422, "invalid_request", _first_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: "There is no such endpoint; see /docs for the API.",
            405: "This endpoint does not take that method; see /docs for the API.",
        }.get(exc.status_code, str(exc.detail))
        request.state.error = code
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unexpected error on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
        request.state.error = "internal_error"
        return error_response(
            500,
            "internal_error",
            "Something unexpected went wrong; please try again, and tell the clinic if it happens again.",
        )
