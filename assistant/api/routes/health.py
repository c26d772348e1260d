"""GET /v1/health: liveness and readiness, without a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from assistant.api.deps import AssistantDep, bounded
from assistant.api.errors import responses
from assistant.errors import RequestTimedOut
from assistant.api.models import HealthResponse

router = APIRouter(prefix="/v1", tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        **responses(400),
        503: {"model": HealthResponse, "description": "Alive, but the index or the store does not answer."},
    },
    summary="Liveness and readiness",
)
async def health(request: Request, assistant: AssistantDep):
    """200 with `ready: true` when the index, the store and the clinics database answer; 503 with
    `ready: false` otherwise (the process is alive and retries by itself). A store that hangs is
    reported within `PHT_STORE_TIMEOUT` seconds and a second. Redis being away does not make a
    worker unready (it counts its own requests meanwhile): `rate_limits` and `message` say so."""
    settings = request.app.state.settings
    bound = settings.store_timeout + 1.0
    try:
        ready, message = await bounded(settings, assistant.library.readiness, timeout=bound)
    except RequestTimedOut:
        ready, message = False, (
            f"The index, the store or the clinics database did not answer within {bound:g} seconds; answers "
            "fail with 503 until they do (the assistant reconnects by itself)."
        )
    limiter = request.app.state.limiter
    degraded = limiter.describe()
    body = HealthResponse(
        status="ok" if ready else "not_ready",
        ready=ready,
        model=getattr(assistant.embeddings, "model_id", ""),
        corpus_version=assistant.corpus_version,
        store=assistant.library.store.kind,
        registry=assistant.library.registry.kind,
        rate_limits=limiter.backend,
        message=" ".join(m for m in (message, degraded) if m),
        composer=assistant.composer_name,
        composer_detail=assistant.describe_composer(),
        composer_outcomes=assistant.composed.summary(),
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
