"""GET /metrics: Prometheus text format, for the operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assistant.api.errors import responses
from assistant.errors import NotAllowed, NotAuthenticated

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **responses(
            401, 403, _401="No or a wrong operator token.", _403="Not a loopback caller, and no token set."
        ),
    },
)
async def metrics(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
):
    """Requests, latency per route and per answering stage, answer statuses and errors of this worker.
    Needs `Authorization: Bearer $PHT_METRICS_TOKEN`; without that setting, loopback callers only."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    token = request.app.state.settings.metrics_token
    if token:
        import hmac

        if credentials is None or not hmac.compare_digest(credentials.credentials, token):
            raise NotAuthenticated(
                "The metrics need the operator's token (PHT_METRICS_TOKEN) as a Bearer key."
            )
    elif (request.client.host if request.client else "") not in {"127.0.0.1", "::1", "localhost"}:
        raise NotAllowed("Metrics are served to loopback callers only unless PHT_METRICS_TOKEN is set.")
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
