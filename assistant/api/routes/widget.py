"""GET /widget.js (the embeddable widget, no key) and GET /v1/widget (its settings for a clinic)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from assistant.answer import SAFETY_NOTICE
from assistant.api.deps import AnyKeyUncounted, SettingsDep
from assistant.api.errors import responses
from assistant.api.models import WidgetConfig
from assistant.widget import widget_script

router = APIRouter(tags=["widget"])

# Clinics paste an unversioned URL, so browsers keep the script a short while and then check it
# with its ETag (a 304 costs a few bytes); a new release reaches every site within five minutes.
CACHE = "public, max-age=300, stale-while-revalidate=86400"


@router.get(
    "/widget.js",
    response_class=Response,
    responses={
        200: {"content": {"text/javascript": {}}, "description": "The widget's script (gzipped when accepted)."},
        304: {"description": "Not modified: the `If-None-Match` ETag is current."},
        **responses(400),
    },
    summary="The embeddable widget's script",
)
async def widget_js(request: Request) -> Response:
    """One script tag on a clinic's page: `<script src="https://ASSISTANT-HOST/widget.js"
    data-key="pht_pk_..." async></script>` (docs/widget.md). No key is needed to fetch it."""
    asset = widget_script()
    headers = {
        "Cache-Control": CACHE,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    tags = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
    if asset.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        body, headers["Content-Encoding"] = asset.gzipped, "gzip"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/v1/widget",
    response_model=WidgetConfig,
    responses=responses(401, 403, 429, 503),
    summary="The widget's settings for the key's clinic",
)
async def widget_config(who: AnyKeyUncounted, settings: SettingsDep, response: Response) -> WidgetConfig:
    """The clinic's name, accent colour and logo, the notice, and whether answers can be rated.
    Any key of the clinic (the widget sends its publishable key); not counted against the rate limit,
    like a preflight."""
    response.headers["Cache-Control"] = "private, max-age=300"
    c = who.clinic
    return WidgetConfig(
        clinic=c.name,
        accent_color=c.accent_color,
        logo_url=c.logo_url,
        safety_notice=SAFETY_NOTICE,
        feedback=settings.audit_enabled,
        feedback_questions=c.feedback_questions,
        max_question_chars=settings.max_question_chars,
    )
