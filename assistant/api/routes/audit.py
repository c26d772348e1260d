"""GET /v1/audit: the clinic's own audit records, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from assistant.api.deps import AssistantDep, SecretKey, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import AuditList

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", response_model=AuditList, responses=responses(401, 403, 422, 429, 503, 504))
async def audit(
    who: SecretKey,
    assistant: AssistantDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Only records with a smaller id (paging).")
    ] = None,
) -> AuditList:
    """What the assistant answered for this clinic, from which material: never the question text."""
    rows = await bounded(
        settings, lambda: assistant.library.registry.audit(who.clinic.id, limit=limit, before=before)
    )
    return AuditList(records=rows)
