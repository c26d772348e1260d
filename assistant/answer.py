"""The one result type every surface shows: :class:`Answer`.

An ``Answer`` cannot exist without the safety notice: the validator refuses an empty notice and
makes sure the text ends with it, whatever produced the text.

>>> from assistant.answer import Answer, SAFETY_NOTICE
>>> a = Answer(status="not_covered", text="The sources do not cover this.")
>>> a.text.endswith(SAFETY_NOTICE) and a.safety_notice == SAFETY_NOTICE
True
"""

from __future__ import annotations

import uuid
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SAFETY_NOTICE = (
    "This is general information from the assistant's sources, not medical advice. "
    "Please consult a physiotherapist or other qualified clinician before acting on it."
)


class Status(str, Enum):
    """What kind of reply an :class:`Answer` is."""

    answered = "answered"  # drawn from cited passages
    not_covered = "not_covered"  # on topic, but the sources don't say
    out_of_scope = "out_of_scope"  # not PHT / running rehab, or a decision for a clinician
    urgent = "urgent"  # red-flag symptoms: seek care now, no rehab advice


class Citation(BaseModel):
    """One quoted passage; ``quote == source_text[start:end]`` of document version ``version``."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(ge=1, description="Marker number used in the text, [1] being the most relevant.")
    source: str = Field(description="DOCID#SECTIONID, e.g. pht-podcast-qa#qa-2.")
    title: str = Field(description="Document title, then the section title.")
    quote: str = Field(min_length=1, description="The exact text quoted from the document.")
    start: int = Field(ge=0, description="Character offset of the quote in the source file.")
    end: int = Field(ge=0, description="Character offset just past the quote.")
    score: float = Field(description="Relevance of the passage to the question, 0..1.")
    version: str = Field(description="Hash of the document content the quote comes from.")
    approved_by: str | None = Field(
        default=None,
        description="Who approved the quoted version: a clinic document's reviewer, or the corpus manifest's.",
    )

    @model_validator(mode="after")
    def _span_matches_quote(self) -> "Citation":
        if self.end - self.start != len(self.quote):
            raise ValueError("citation offsets do not span the quote")
        return self


class Triage(BaseModel):
    """Why the question was routed the way it was (for audit)."""

    decision: str = Field(description="continue, urgent or out_of_scope")
    rule: str = Field(default="", description="The rule or exemplar that decided it.")
    matched: str = Field(default="", description="The words that triggered the rule, if any.")


class RetrievedPassage(BaseModel):
    """A passage retrieval returned for the question, best first, with its scores (for evaluators).

    Only on answers asked for with ``ask(..., explain=True)``; see docs/evals.md.
    """

    rank: int = Field(ge=1, description="1 is the passage retrieval ranked first.")
    source: str = Field(description="DOCID#SECTIONID.")
    title: str = Field(description="Document title, then the section title.")
    text: str = Field(description="The passage's text.")
    start: int = Field(ge=0, description="Character offset of the passage in the source file.")
    end: int = Field(ge=0, description="Character offset just past the passage.")
    version: str = Field(description="Hash of the document content.")
    relevance: float = Field(description="Calibrated relevance 0..1; below the threshold nothing is answered.")
    dense: float = Field(description="Best sentence similarity, hubness-corrected.")
    lexical: float = Field(description="BM25 score of the passage.")
    fused: float = Field(description="Reciprocal-rank-fusion score (orders the passages).")
    coverage: float = Field(description="Share of the question's specific words found in the passage.")


class Answer(BaseModel):
    """A reply, with its status, citations and the mandatory safety notice."""

    model_config = ConfigDict(use_enum_values=False)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    status: Status
    text: str = Field(description="Markdown; always ends with the safety notice.")
    safety_notice: str = SAFETY_NOTICE
    citations: list[Citation] = Field(default_factory=list)
    triage: Triage | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage.")
    corpus_version: str = ""
    composer: str = Field(default="", description="What wrote the reply: `extractive`, or the language-model composer's name.")
    prompt_version: str = Field(default="", description="Version of the prompt file, when a language model wrote the reply.")
    composer_note: str = Field(
        default="",
        description="What happened to a language model's reply: sentences dropped by the grounding check, or why "
        "the extractive composer answered instead (empty when nothing happened).",
    )
    retrieved: list[RetrievedPassage] | None = Field(
        default=None,
        description="With `explain=True` only: the passages retrieval returned (up to top_k + 2), best first; "
        "empty when triage routed the question before retrieval.",
    )

    @field_validator("safety_notice")
    @classmethod
    def _notice_required(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("an Answer must carry the safety notice")
        return value

    @model_validator(mode="after")
    def _text_ends_with_notice(self) -> "Answer":
        body = self.text.rstrip()
        if not body.endswith(self.safety_notice):
            body = f"{body}\n\n{self.safety_notice}" if body else self.safety_notice
        self.text = body
        if self.status is Status.answered and not self.citations:
            raise ValueError("an answered reply must cite at least one passage")
        if self.status is Status.urgent and self.citations:
            raise ValueError("an urgent reply carries no passages")
        return self

    @property
    def body(self) -> str:
        """The text without the trailing notice."""
        text = self.text.rstrip()
        if text.endswith(self.safety_notice):
            return text[: -len(self.safety_notice)].rstrip()
        return text


# -- streaming -------------------------------------------------------------------------------------
# ``Assistant.stream`` yields these in order: one ``Started`` once the status is decided, ``Delta``
# pieces whose texts joined are the reply's text (safety notice included), then one ``Done`` with the
# whole ``Answer``. Surfaces (the page, the API's event stream, the widget, the OpenAI-compatible
# endpoint) show the pieces as they come and take citations and status from ``Done``.


class Started(BaseModel):
    """The reply's status is decided; its text follows."""

    model_config = ConfigDict(frozen=True)

    status: Status
    id: str


class Delta(BaseModel):
    """A piece of the reply's text, in order."""

    model_config = ConfigDict(frozen=True)

    text: str


class Done(BaseModel):
    """The whole reply: its text is the pieces joined."""

    model_config = ConfigDict(frozen=True)

    answer: Answer
