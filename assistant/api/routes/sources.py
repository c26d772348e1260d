"""GET /v1/sources: the documents this clinic's answers draw on."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import AssistantDep, SecretKey, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import SourcesResponse

router = APIRouter(prefix="/v1", tags=["sources"])


@router.get("/sources", response_model=SourcesResponse, responses=responses(401, 403, 429, 503, 504))
async def sources(who: SecretKey, assistant: AssistantDep, settings: SettingsDep) -> SourcesResponse:
    """The shared corpus's documents and the clinic's own approved documents, with their versions."""

    def run() -> SourcesResponse:
        out = [{**d, "kind": "corpus"} for d in assistant.sources()]
        out += [{**d, "kind": "clinic"} for d in assistant.library.sources(who.clinic.id)]
        return SourcesResponse(corpus_version=assistant.corpus_version, sources=out)

    return await bounded(settings, run)
