"""The rows of a passage collection: how passages and their sentences are stored in Chroma and
read back, shared by the corpus index (:mod:`assistant.index.embedded`), its derived arrays
(:mod:`assistant.index.derived`) and the clinics' collections (:mod:`assistant.index.store`).

Each passage is one record (``kind: chunk``) and each of its sentence units another
(``kind: unit``), with the metadata that makes the :class:`~assistant.corpus.parse.Chunk` or
:class:`~assistant.corpus.parse.Unit` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.corpus.parse import Chunk, Unit, chunk_units

PAGE = 5000  # ids per read or delete: well under SQLite's 32,766 values per statement


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    return {
        "kind": "chunk",
        "doc_id": chunk.doc_id,
        "doc_title": chunk.doc_title,
        "version": chunk.version,
        "section_id": chunk.section_id,
        "section_title": chunk.section_title,
        "start": chunk.start,
        "end": chunk.end,
        "ordinal": chunk.ordinal,
        "source": chunk.source,
    }


def unit_metadata(unit: Unit, chunk: Chunk) -> dict[str, Any]:
    return {
        "kind": "unit",
        "unit_kind": unit.kind,
        "chunk_id": unit.chunk_id,
        "source": unit.source,
        "doc_id": chunk.doc_id,
        "start": unit.start,
        "end": unit.end,
    }


@dataclass(frozen=True)
class IndexRecord:
    """One row of the collection: a passage or one of its units."""

    id: str
    text: str
    embed: str
    meta: dict[str, Any]


def index_records(chunks: list[Chunk]) -> dict[str, IndexRecord]:
    """The records to store for passages: each passage and each of its sentence units, by id."""
    out: dict[str, IndexRecord] = {}
    for c in chunks:
        out[c.id] = IndexRecord(c.id, c.text, c.embedding_text, chunk_metadata(c))
        for u in chunk_units(c):
            out[u.id] = IndexRecord(u.id, u.text, u.text, unit_metadata(u, c))
    return out


def unit_from_record(text: str, meta: dict[str, Any]) -> Unit:
    return Unit(
        chunk_id=meta["chunk_id"],
        source=meta["source"],
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
        kind=meta["unit_kind"],
    )


def chunk_from_record(text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=meta["doc_id"],
        doc_title=meta["doc_title"],
        version=meta["version"],
        section_id=meta["section_id"],
        section_title=meta["section_title"],
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
        ordinal=int(meta["ordinal"]),
    )


def get_all(collection: Any, where: dict[str, Any], include: list[str], page: int = PAGE) -> dict[str, list]:
    """Every record matching ``where``, read in pages: Chroma turns one large read into a statement
    with a value per record, and SQLite refuses more than 32,766 of them ("too many SQL variables")."""
    out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
    offset = 0
    while True:
        got = collection.get(where=where, include=include, limit=page, offset=offset)
        out["ids"].extend(got["ids"])
        for key in include:
            out[key].extend(got[key] if got[key] is not None else [])
        if len(got["ids"]) < page:
            return out
        offset += page
