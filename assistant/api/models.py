"""Request and response bodies: the OpenAPI contract. The answer itself is :class:`assistant.Answer`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.answer import SAFETY_NOTICE


class ErrorBody(BaseModel):
    """Every error: a machine-readable code, one sentence saying what to do next, and the notice."""

    error: str = Field(description="Machine-readable code, e.g. `question_too_long`, `not_authenticated`.")
    message: str = Field(description="One sentence for people: what happened and what to do next.")
    safety_notice: str = Field(default=SAFETY_NOTICE)


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(description="What was said in that turn.")


class AskRequest(BaseModel):
    question: str = Field(description="The patient's question (at most `PHT_MAX_QUESTION_CHARS` characters).")
    history: list[HistoryTurn] | None = Field(
        default=None, description="The conversation so far, oldest first."
    )
    explain: bool = Field(
        default=False,
        description="With a secret key: also return `retrieved`, the passages retrieval returned with their scores "
        "(for `pht-assistant eval`); ignored for publishable keys.",
    )

    model_config = {"json_schema_extra": {"examples": [{"question": "Can running be part of my rehab?"}]}}


class HealthResponse(BaseModel):
    status: Literal["ok", "not_ready"]
    ready: bool = Field(description="True when the index, the store and the clinics database answer.")
    model: str = Field(description="The embedding model.")
    corpus_version: str
    store: Literal["embedded", "server"]
    registry: Literal["sqlite", "postgresql"] = Field(description="Where clinics, keys and audit live.")
    rate_limits: Literal["redis", "memory"] = Field(
        description="Where this worker counts requests now: `redis` (shared by all workers) or `memory` "
        "(its own: Redis unset, or unreachable just now)."
    )
    message: str = Field(default="", description="What is wrong, or degraded, and what happens meanwhile.")


class SectionInfo(BaseModel):
    id: str
    title: str


class SourceInfo(BaseModel):
    id: str
    kind: Literal["corpus", "clinic"]
    title: str
    version: str | None = None
    reviewed_by: str | None = Field(default=None, description="Who approved this version.")
    sections: list[SectionInfo] = Field(default_factory=list)


class SourcesResponse(BaseModel):
    corpus_version: str
    sources: list[SourceInfo]


class DocumentInfo(BaseModel):
    id: str
    filename: str
    title: str
    media_type: Literal["text", "markdown", "html", "pdf"]
    version: str = Field(description="Hash of the extracted text; citations quote this version.")
    status: Literal["draft", "approved"]
    sections: list[SectionInfo]
    uploaded: str
    approved_by: str | None = None
    approved_at: str | None = None
    approved_version: str | None = None
    characters: int = Field(description="Length of the extracted text that citations' offsets point into.")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class ApproveRequest(BaseModel):
    reviewer: str = Field(
        min_length=1, max_length=200, description="The clinician who approves this version."
    )


class AuditRecord(BaseModel):
    id: int
    time: str
    clinic: str
    answer_id: str
    status: str
    triage: dict[str, Any] = Field(description="decision and rule; never the question's words.")
    sources: list[dict[str, Any]] = Field(description="source, version and approved_by of each citation.")
    corpus_version: str
    composer: str
    model: str


class AuditList(BaseModel):
    records: list[AuditRecord]


class KeyRevoked(BaseModel):
    id: str = Field(description="The key's id (the 12 hex digits after `pht_sk_` or `pht_pk_`).")
    revoked: bool = True
