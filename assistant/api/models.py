"""Request and response bodies: the OpenAPI contract. The answer itself is :class:`assistant.Answer`."""

from __future__ import annotations

import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

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
    explain: StrictBool = Field(
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
    composer: str = Field(
        default="extractive",
        description="Who writes replies by default: `extractive` (quotes), or `llm:<model>` when PHT_LLM_BASE_URL is set.",
    )
    composer_detail: str = Field(default="", description="The composer in words: a language model's name and host (never its key).")
    composer_outcomes: dict[str, Any] = Field(
        default_factory=dict,
        description="This worker's language-model replies since it started (its own and clinics' endpoints): "
        "`written`, `fallbacks` (the extractive reply given instead), `fallback_rate`, `fallback_reasons` "
        "(timeout, unavailable, rate-limited, malformed, cut, unsupported...), `dropped_sentences_in`.",
    )
    safety_notice: str = Field(default=SAFETY_NOTICE)


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


class PassageFlag(BaseModel):
    """A passage held back from the index until the reviewer confirms it: it speaks to the
    assistant, or advises against seeking care (assistant/policy/document_checks.yaml)."""

    passage: str = Field(description="The passage's id: what `confirm` lists to let it be quoted.")
    section: str
    start: int = Field(description="Offset of the flagged sentence in the document's text.")
    end: int
    text: str = Field(description="The flagged sentence.")
    kind: Literal["instructs_assistant", "against_care"]
    check: str = Field(description="The check that flagged it.")
    reason: str = Field(description="Why it is held back, for the reviewer.")
    confirmed: bool = Field(description="Confirmed by the reviewer at approval: quoted like any other passage.")


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
    flags: list[PassageFlag] = Field(
        default_factory=list,
        description="Passages that speak to the assistant or advise against seeking care: never quoted unless "
        "the reviewer lists them in `confirm` when approving.",
    )
    held_back: int = Field(default=0, description="Flagged passages not confirmed: left out of the index.")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class ApproveRequest(BaseModel):
    reviewer: str = Field(
        min_length=1, max_length=200, pattern=r"\S", description="The clinician who approves this version."
    )
    confirm: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Ids of flagged passages (the document's `flags`) the reviewer has read and confirms may be "
        "quoted; every other flagged passage is held back.",
    )


class ApprovalJob(BaseModel):
    """An approval that takes longer than `PHT_APPROVAL_WAIT_SECONDS`: poll it until it ends."""

    id: str
    document_id: str
    version: str = Field(description="The document version being approved.")
    reviewer: str = Field(description="Who approves: the name recorded when it succeeds.")
    confirm: list[str]
    status: Literal["queued", "running", "succeeded", "failed"]
    created: str
    started: str | None = None
    finished: str | None = None
    done: int = Field(description="Records (passages and sentences) embedded so far.")
    total: int = Field(description="Records to embed (0 until known).")
    error: str | None = Field(default=None, description="When failed: the error code, as an error body's `error`.")
    message: str | None = Field(default=None, description="When failed: what happened and what to do (nothing was recorded).")
    document: DocumentInfo | None = Field(default=None, description="When succeeded: the approved document.")
    poll: str = Field(description="Where to ask again.")


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
    prompt_version: str = Field(default="", description="The prompt file's version when a language model wrote the reply.")


class AuditList(BaseModel):
    records: list[AuditRecord]


class KeyRevoked(BaseModel):
    id: str = Field(description="The key's id (the 12 hex digits after `pht_sk_` or `pht_pk_`).")
    revoked: bool = True


class FeedbackRequest(BaseModel):
    """A patient's rating of one answer, sent by the widget (or the clinic's own site)."""

    answer_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The `id` of the Answer rated."
    )
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=2000, description="What the patient wrote, if anything.")
    question: str | None = Field(
        default=None,
        max_length=10_000,
        description="The question that was answered; stored only if the clinic keeps questions with feedback "
        "(`pht-assistant clinic set --feedback-questions`), dropped otherwise.",
    )

    @field_validator("comment", "question")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value and any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in value):
            raise ValueError("must be plain text without control characters")
        return value

    model_config = {"json_schema_extra": {"examples": [{"answer_id": "4f9c2b7e0a1d4c6b8e3f5a7b9c1d2e3f", "rating": "up"}]}}


class FeedbackRecord(BaseModel):
    id: int
    time: str = Field(description="When the answer was first rated (UTC).")
    updated: str = Field(description="When the rating or comment last changed (UTC).")
    answer_id: str
    rating: Literal["up", "down"]
    comment: str
    status: str = Field(description="The rated answer's status.")
    sources: list[str] = Field(description="The sources the rated answer cited.")
    question: str | None = Field(
        default=None, description="Only when the clinic keeps questions with feedback; otherwise null."
    )


class FeedbackList(BaseModel):
    feedback: list[FeedbackRecord]


class WidgetConfig(BaseModel):
    """What the widget needs to draw itself for a clinic; the tag's attributes may override the looks."""

    clinic: str = Field(description="The clinic's name: the panel's default title.")
    accent_color: str = Field(description="`#rrggbb` or `#rgb`; empty for the widget's default.")
    logo_url: str = Field(description="Shown in the panel's header; empty for none.")
    safety_notice: str = Field(default=SAFETY_NOTICE)
    feedback: bool = Field(description="Whether answers can be rated (`POST /v1/feedback`).")
    feedback_questions: bool = Field(description="Whether a rating may carry the question (the clinic keeps it).")
    max_question_chars: int
