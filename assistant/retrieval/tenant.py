"""One clinic's retrieval: the shared corpus and the clinic's own approved passages.

The two are searched apart (each with its own BM25 statistics) and merged by relevance; as
:class:`~assistant.contracts.Sources` they read as one library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.contracts import Passage, Query
from assistant.corpus.parse import Chunk


class TenantRetriever:
    """:class:`~assistant.contracts.Retriever` and :class:`~assistant.contracts.Sources` over two retrievers."""

    def __init__(self, shared: Any, own: Any, own_documents: dict[str, dict[str, Any]] | None = None) -> None:
        self.shared, self.own = shared, own
        self._own_documents = dict(own_documents or {})

    def warm_up(self) -> None:
        self.shared.warm_up()
        self.own.warm_up()

    def retrieve(self, query: Query) -> list[Passage]:
        found = self.shared.retrieve(query) + self.own.retrieve(query)
        return sorted(found, key=lambda p: p.relevance, reverse=True)

    def nearest(self, vector: Sequence[float]) -> float:
        return max(self.shared.nearest(vector), self.own.nearest(vector))

    def spelled(self, text: str) -> str:
        return self.shared.spelled(text)

    def query_terms(self, text: str) -> list[str]:
        return self.shared.query_terms(text)

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return self.shared.chunks_of(doc_id) or self.own.chunks_of(doc_id)

    def text_at(self, doc_id: str, version: str, start: int, end: int) -> str | None:
        found = self.shared.text_at(doc_id, version, start, end)
        return found if found is not None else self.own.text_at(doc_id, version, start, end)

    def vocabulary(self) -> frozenset[str]:
        return self.shared.vocabulary() | self.own.vocabulary()

    def documents(self) -> dict[str, dict[str, Any]]:
        return {**self.shared.documents(), **self._own_documents}

    def chunk_terms(self, chunk_id: str) -> frozenset[str]:
        return self.shared.chunk_terms(chunk_id) or self.own.chunk_terms(chunk_id)
