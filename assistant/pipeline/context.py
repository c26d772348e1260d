"""Who a request is answered for: a value that travels with it through the pipeline.

The assistant's own context searches the shared corpus and uses the configured emergency wording.
A clinic's context (made by :meth:`assistant.clinics.documents.ClinicLibrary.context_for`) searches
the shared corpus together with the clinic's approved documents, uses the clinic's emergency
wording, names who approved each quoted version, and records an audit row per answer. Nothing
of the assistant is copied or patched for a clinic: the same stages run with another context.

>>> from assistant.pipeline.context import Context
>>> Context(retriever=None, emergency_contact="112").clinic_id is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from assistant.answer import Answer


@dataclass(frozen=True)
class Context:
    """The per-request context: the sources to search and the clinic's wording and records."""

    retriever: Any  # a Retriever that is also the Sources it searches (assistant.contracts)
    emergency_contact: str
    clinic_id: str | None = None
    approvers: Mapping[str, str | None] = field(default_factory=dict)  # document id -> who approved it
    topics: tuple[str, ...] = ()  # what the sources cover, for replies that say so
    corpus_version: str = ""
    composer: Any = None  # a clinic's own composer (its language-model endpoint); None: the assistant's
    on_answer: Callable[[Answer], None] | None = None  # e.g. the clinic's audit record

    def with_changes(self, **changes: Any) -> "Context":
        """A copy with some fields replaced (the clinic library builds clinic contexts this way)."""
        return replace(self, **changes)
