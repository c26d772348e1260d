"""POST /v1/feedback (a patient's rating of an answer) and GET /v1/feedback (the clinic reads them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from assistant.api.deps import AnyKey, AssistantDep, SecretKey, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import FeedbackList, FeedbackRecord, FeedbackRequest

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackRecord,
    responses=responses(
        401,
        403,
        404,
        413,
        422,
        429,
        503,
        504,
        _404="No answer with that id was given to this clinic (or the audit trail is turned off).",
    ),
    summary="Rate an answer",
)
async def give_feedback(
    body: FeedbackRequest, who: AnyKey, assistant: AssistantDep, settings: SettingsDep
) -> FeedbackRecord:
    """Thumbs up or down on an answer the clinic's key received, with an optional comment; a second
    rating of the same answer replaces the first. A publishable key may send it (the widget does).
    The question is stored only if the clinic keeps questions with feedback; the answer's status and
    cited sources are taken from the audit trail."""
    question = body.question[: settings.max_question_chars] if body.question else None
    row = await bounded(
        settings,
        lambda: assistant.library.registry.record_feedback(
            who.clinic.id, body.answer_id, body.rating, comment=body.comment, question=question
        ),
    )
    return FeedbackRecord(**row)


@router.get("/feedback", response_model=FeedbackList, responses=responses(401, 403, 422, 429, 503, 504))
async def read_feedback(
    who: SecretKey,
    assistant: AssistantDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Only records with a smaller id (paging).")
    ] = None,
) -> FeedbackList:
    """The clinic's own feedback, newest first (secret key only)."""
    rows = await bounded(
        settings, lambda: assistant.library.registry.feedback(who.clinic.id, limit=limit, before=before)
    )
    return FeedbackList(feedback=rows)
