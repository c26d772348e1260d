"""The search index: chunks and their vectors in an embedded Chroma store, built by one writer.

Layout of ``PHT_DATA_DIR``::

    index.json            what is built: model, corpus version, documents, the live generation
    chroma-<generation>/  the Chroma folder that index.json points at (one back is kept)
    .index.lock           held by the one process that writes

A build copies the live generation, applies the changes there (new chunks embedded, removed
ones deleted, unchanged ones left alone) and only then points ``index.json`` at it with an
atomic rename. A failed or killed build leaves the previous index in service.

>>> from assistant.index.embedded import read_meta
>>> read_meta(Path("/nonexistent")) is None
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from assistant.contracts import embed_for_index, model_id_of
from assistant.corpus.parse import Chunk, Corpus, Unit, chunk_units, load_corpus
from assistant.errors import DataFolderError, IndexBusy, IndexDamaged, IndexMissing

META_NAME = "index.json"
LOCK_NAME = ".index.lock"
SCHEMA = 1
_ADD_BATCH = 256
# Up to this many sentences, questions are matched against them exactly, in memory (0.4 ms at
# 10,000 here against ~1.5 ms for a Chroma query); above it, through Chroma's HNSW index.
EXACT_SEARCH_MAX_UNITS = 10_000


def exact_nearest(vectors: np.ndarray, vector: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` largest dot products with ``vector`` (best first, ties by row) and their values."""
    sims = vectors @ np.asarray(vector, dtype=np.float32)
    k = min(k, len(sims))
    rows = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    rows = rows[np.lexsort((rows, -sims[rows]))]
    return rows, sims[rows]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: called as chunks are embedded."""


@dataclass
class IndexMeta:
    schema: int
    model: str
    corpus_version: str
    generation: str
    collection: str
    chunks: int
    records: int
    built_at: str
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "IndexMeta":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass
class BuildReport:
    """What a build did, counted in records (passages and their sentences).

    ``encoded`` counts the texts that went through the encoder: the sentences, and only those
    passages that have none (a passage's vector is the mean of its sentences').
    """

    chunks: int
    records: int
    added: int
    removed: int
    unchanged: int
    corpus_version: str
    model: str
    changed: bool
    seconds: float
    rebuilt_because: str = ""
    encoded: int = 0
    encoder: str = ""  # what encoded them: onnx-int8, onnx or sentence-transformers

    @property
    def embedded(self) -> int:
        return self.encoded


def check_data_dir(data_dir: Path) -> None:
    """Raise :class:`DataFolderError` when ``data_dir`` exists but is not a folder."""
    if Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataFolderError(
            f"PHT_DATA_DIR points at {data_dir}, which is a file, not a folder; point it at a folder."
        )


def read_meta(data_dir: Path) -> IndexMeta | None:
    """The index's record, ``None`` when there is none; raises :class:`IndexDamaged` if unreadable."""
    check_data_dir(data_dir)
    path = Path(data_dir) / META_NAME
    if not path.exists():
        return None
    try:
        meta = IndexMeta.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        raise IndexDamaged(
            f"The index record {path} is damaged; rebuild it with `pht-assistant index --rebuild`."
        ) from None
    if meta.schema != SCHEMA:
        raise IndexDamaged(
            f"The index in {data_dir} was made by another version of the assistant; "
            "rebuild it with `pht-assistant index --rebuild`."
        )
    return meta


def _write_meta(data_dir: Path, meta: IndexMeta) -> None:
    tmp = data_dir / f".{META_NAME}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(asdict(meta), indent=2, ensure_ascii=False), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, data_dir / META_NAME)


def _client(path: Path):
    import chromadb

    return chromadb.PersistentClient(
        path=str(path),
        settings=chromadb.Settings(anonymized_telemetry=False, allow_reset=False),
    )


def _collection(client, name: str):
    # embedding_function=None: vectors always come from our encoder, never Chroma's default
    return client.get_or_create_collection(
        name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )


def _chunk_metadata(chunk: Chunk) -> dict[str, Any]:
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


def _unit_metadata(unit: Unit, chunk: Chunk) -> dict[str, Any]:
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
        out[c.id] = IndexRecord(c.id, c.text, c.embedding_text, _chunk_metadata(c))
        for u in chunk_units(c):
            out[u.id] = IndexRecord(u.id, u.text, u.text, _unit_metadata(u, c))
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


@contextlib.contextmanager
def writer_lock(data_dir: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold the one-writer lock, or raise :class:`IndexBusy` after ``timeout`` seconds."""
    check_data_dir(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(
            f"The data folder {data_dir} cannot be created ({exc.strerror}); set PHT_DATA_DIR to a writable folder."
        ) from None
    lock = FileLock(str(data_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise IndexBusy() from None
    try:
        yield
    finally:
        lock.release()


def build_index(
    data_dir: Path,
    corpus: Corpus | Path,
    embeddings: Any,
    *,
    collection: str = "pht-corpus",
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_timeout: float = 0.0,
    notify: Callable[[str], None] | None = None,
) -> BuildReport:
    """Bring the index in ``data_dir`` up to date with the corpus; incremental unless ``rebuild``.

    ``embeddings`` is any LangChain ``Embeddings`` with a ``model_id``. ``notify`` receives
    sentences worth showing a person (e.g. why the index is rebuilt from scratch).
    """
    began = time.perf_counter()
    data_dir = Path(data_dir)
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)  # a corpus that fails to parse fails before anything changes
    all_chunks = corpus.chunks()
    records = index_records(all_chunks)
    model = model_id_of(embeddings)
    say = notify or (lambda _msg: None)

    with writer_lock(data_dir, lock_timeout):
        reason = ""
        try:
            meta = read_meta(data_dir)
        except IndexDamaged:
            meta, reason = None, "The previous index record was damaged; building the index again."
        if meta and meta.model != model:
            reason = f"The index was built with {meta.model}; rebuilding it for {model}."
            meta = None
        elif meta and meta.collection != collection:
            meta = None
        elif meta and not (data_dir / meta.generation).is_dir():
            reason = "The index folder was missing; building the index again."
            meta = None
        if rebuild and meta:
            reason = reason or "Rebuilding the index from scratch, as asked."
            meta = None
        if reason:
            say(reason)

        if meta and meta.corpus_version == corpus.version and meta.records == len(records):
            return BuildReport(
                chunks=len(all_chunks),
                records=len(records),
                added=0,
                removed=0,
                unchanged=len(records),
                corpus_version=corpus.version,
                model=model,
                changed=False,
                seconds=time.perf_counter() - began,
            )

        generation = f"chroma-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        staging = data_dir / generation
        if meta:
            shutil.copytree(data_dir / meta.generation, staging)
        client = _client(staging)
        try:
            col = _collection(client, collection)
            existing = set(col.get(include=[])["ids"])
            stale = sorted(existing - records.keys())
            fresh = [records[i] for i in records if i not in existing]
            for i in range(0, len(stale), _ADD_BATCH):
                col.delete(ids=stale[i : i + _ADD_BATCH])
            done = 0
            if fresh and hasattr(embeddings, "warm_up"):
                if not getattr(embeddings, "is_loaded", True):
                    say("Loading the embedding model (takes a few seconds, once per process).")
                embeddings.warm_up()  # load the model before the progress bar starts
                getattr(embeddings, "index_encoder", None)  # and the index encoder (made once per machine)
            # Dense search runs over sentence units, so only they go through the encoder; a
            # passage's vector is the normalised mean of its units' (one without units is encoded).
            fresh_units = [r for r in fresh if r.meta["kind"] == "unit"]
            unit_sums: dict[str, np.ndarray] = {}
            has_units = {r.meta["chunk_id"] for r in fresh_units}
            to_encode = fresh_units + [r for r in fresh if r.meta["kind"] != "unit" and r.id not in has_units]
            passages = [r for r in fresh if r.meta["kind"] != "unit" and r.id in has_units]
            if progress:
                progress(0, len(to_encode), "embedding")
            for i in range(0, len(to_encode), _ADD_BATCH):
                batch = to_encode[i : i + _ADD_BATCH]

                def step(n: int) -> None:
                    nonlocal done
                    done += n
                    if progress:
                        progress(done, len(to_encode), "embedding")

                vectors = embed_for_index(embeddings, [r.embed for r in batch], progress=step)
                for r, v in zip(batch, vectors):
                    if r.meta["kind"] == "unit":
                        key = r.meta["chunk_id"]
                        unit_sums[key] = unit_sums.get(key, 0.0) + np.asarray(v, dtype=np.float64)
                col.add(
                    ids=[r.id for r in batch],
                    embeddings=vectors,
                    documents=[r.text for r in batch],
                    metadatas=[r.meta for r in batch],
                )
            for i in range(0, len(passages), _ADD_BATCH):
                batch = passages[i : i + _ADD_BATCH]
                vectors = []
                for r in batch:
                    mean = unit_sums[r.id]
                    vectors.append((mean / max(float(np.linalg.norm(mean)), 1e-12)).tolist())
                col.add(
                    ids=[r.id for r in batch],
                    embeddings=vectors,
                    documents=[r.text for r in batch],
                    metadatas=[r.meta for r in batch],
                )
            if col.count() != len(records):
                raise IndexDamaged(
                    "The new index did not hold every passage; the previous index is still in use. "
                    "Run `pht-assistant index --rebuild`."
                )
        except BaseException:
            with contextlib.suppress(Exception):
                client.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        client.close()

        previous = meta.generation if meta else None
        _write_meta(
            data_dir,
            IndexMeta(
                schema=SCHEMA,
                model=model,
                corpus_version=corpus.version,
                generation=generation,
                collection=collection,
                chunks=len(all_chunks),
                records=len(records),
                built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                documents={
                    d.id: {
                        "title": d.entry.title,
                        "version": d.version,
                        "file": d.entry.file,
                        "origin": d.entry.origin,
                        "added": d.entry.added,
                        "reviewed_by": d.entry.reviewed_by,
                        "sections": [{"id": s.id, "title": s.title} for s in d.sections],
                    }
                    for d in corpus.documents
                },
            ),
        )
        _remove_old_generations(data_dir, keep={generation, previous})
        return BuildReport(
            chunks=len(all_chunks),
            records=len(records),
            added=len(fresh),
            removed=len(stale),
            unchanged=len(records) - len(fresh),
            corpus_version=corpus.version,
            model=model,
            changed=True,
            seconds=time.perf_counter() - began,
            rebuilt_because=reason,
            encoded=len(to_encode),
            encoder=str(getattr(embeddings, "index_encoder", "")) if to_encode else "",
        )


def _remove_old_generations(data_dir: Path, keep: set[str | None]) -> None:
    """Drop generations other than the live one and the one before (a reader may still use it)."""
    for path in data_dir.glob("chroma-*"):
        if path.name not in keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


class ChromaIndex:
    """Read-only access to a built index: vector queries and the stored passages.

    Readers never write: opening checks the record, counts the passages and runs one query,
    all within ``check_timeout`` seconds, so a damaged index is reported instead of hanging.
    """

    def __init__(self, data_dir: Path, *, collection: str = "pht-corpus", check_timeout: float = 30.0):
        self.data_dir = Path(data_dir)
        meta = read_meta(self.data_dir)
        if meta is None:
            raise IndexMissing(
                f"There is no index in {self.data_dir} yet; build it with `pht-assistant index`."
            )
        if meta.collection != collection:
            raise IndexMissing(
                f"The index in {self.data_dir} holds no collection {collection!r}; "
                "build it with `pht-assistant index`."
            )
        self.meta = meta
        folder = self.data_dir / meta.generation
        if not folder.is_dir():
            raise IndexDamaged(
                f"The index folder {folder} is missing; rebuild it with `pht-assistant index --rebuild`."
            )
        self._client, self._collection = self._open_checked(folder, collection, meta, check_timeout)
        self._init_caches()

    @classmethod
    def over_collection(cls, collection: Any, meta: IndexMeta) -> "ChromaIndex":
        """The same reader over a collection opened elsewhere (a Chroma server's), without a folder."""
        index = cls.__new__(cls)
        index.data_dir = None
        index.meta = meta
        index._client = None
        index._collection = collection
        index._init_caches()
        return index

    def _init_caches(self) -> None:
        """What has been read, kept (also for a Chroma server's collection: store.open_server_index)."""
        self._records: list[Chunk] | None = None
        self._units: dict[str, list[tuple[Unit, np.ndarray]]] = {}
        self._unit_map: dict[str, Unit] | None = None
        self._exact: tuple[list[Unit], np.ndarray] | None = None  # small indexes: every unit's vector
        self._records_lock = threading.Lock()

    @staticmethod
    def _open_checked(folder: Path, collection: str, meta: IndexMeta, timeout: float):
        result: dict[str, Any] = {}

        def check() -> None:
            try:
                client = _client(folder)
                col = client.get_collection(collection)
                count = col.count()
                if count != meta.records:
                    raise IndexDamaged(
                        f"The index holds {count} records but its record says {meta.records}; "
                        "rebuild it with `pht-assistant index --rebuild`."
                    )
                if count:
                    probe = col.get(limit=1, include=["embeddings"])
                    col.query(query_embeddings=[list(probe["embeddings"][0])], n_results=1, include=[])
                result["value"] = (client, col)
            except IndexDamaged as exc:
                result["error"] = exc
            except Exception as exc:  # chroma raises many kinds; all mean the same to a user
                result["error"] = IndexDamaged(
                    f"The index in {folder.parent} could not be read ({type(exc).__name__}); "
                    "rebuild it with `pht-assistant index --rebuild`."
                )

        worker = threading.Thread(target=check, name="pht-index-check", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise IndexDamaged(
                f"The index in {folder.parent} did not answer within {timeout:.0f} seconds; it may be "
                "damaged or locked by another program. Rebuild it with `pht-assistant index --rebuild`."
            )
        if "error" in result:
            raise result["error"]
        return result["value"]

    @property
    def corpus_version(self) -> str:
        return self.meta.corpus_version

    def count(self) -> int:
        return self._collection.count()

    def query_units(self, vector: list[float], k: int) -> list[tuple[Unit, float]]:
        """The ``k`` nearest sentences with their cosine similarity.

        Chroma's filtered search takes time in proportion to the records the filter matches, and
        fetching metadata costs more than the search itself. So the query asks for ids and
        distances only, without a filter, for more neighbours than needed; the sentences among
        them (kept in memory once read) are the answer. Passages' vectors sit among them.
        """
        exact = self._exact
        if exact is not None:  # a small index, read whole by unit_vectors(): exact and in memory
            table, vectors = exact
            rows, sims = exact_nearest(vectors, vector, max(1, k))
            return [(table[r], float(v)) for r, v in zip(rows, sims)]
        units = self._unit_table()
        if not units:
            return []
        k = max(1, min(k, len(units)))
        n = min(self.meta.records, 2 * k + 8)
        while True:
            res = self._collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
            hits = [
                (units[i], 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0]) if i in units
            ]
            if len(hits) >= k or n >= self.meta.records:
                return hits[:k]
            n = min(self.meta.records, n * 4)

    def _unit_table(self, got: dict[str, Any] | None = None) -> dict[str, Unit]:
        """Every unit by id (read once, then kept)."""
        with self._records_lock:
            if self._unit_map is None:
                if got is None:
                    got = self._get_all({"kind": "unit"}, ["documents", "metadatas"])
                self._unit_map = {
                    i: unit_from_record(d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])
                }
            return self._unit_map

    def _get_all(self, where: dict[str, Any], include: list[str], page: int = 5000) -> dict[str, list]:
        """Every matching record, read in pages (one large read exceeds SQLite's variable limit)."""
        out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            got = self._collection.get(where=where, include=include, limit=page, offset=offset)
            out["ids"].extend(got["ids"])
            for key in include:
                out[key].extend(got[key])
            if len(got["ids"]) < page:
                return out
            offset += page

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, vectors, section keys) of every unit, for corpus-wide statistics."""
        got = self._get_all({"kind": "unit"}, ["embeddings", "metadatas", "documents"])
        self._unit_table(got)
        ids = np.array(got["ids"])
        vectors = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(ids), -1 if len(ids) else 0)
        groups = np.array([m["source"] for m in got["metadatas"]])
        # Only an embedded store: a Chroma server's collection is asked every time (it is what the
        # workers share, and a question while it is away must fail as such, with 503).
        if self._client is not None and 0 < len(ids) <= EXACT_SEARCH_MAX_UNITS:
            table = self._unit_table()
            self._exact = ([table[i] for i in got["ids"]], np.ascontiguousarray(vectors))
        return ids, vectors, groups

    def units_of(self, chunk_id: str) -> list[tuple[Unit, np.ndarray]]:
        """The units of one passage with their vectors, in text order (kept once read)."""
        with self._records_lock:
            cached = self._units.get(chunk_id)
        if cached is not None:
            return cached
        got = self._collection.get(
            where={"chunk_id": chunk_id}, include=["documents", "metadatas", "embeddings"]
        )
        units = [
            (unit_from_record(d, m), np.asarray(v, dtype=np.float32))
            for d, m, v in zip(got["documents"], got["metadatas"], got["embeddings"])
        ]
        units.sort(key=lambda uv: uv[0].start)
        with self._records_lock:
            if len(self._units) > 4096:
                self._units.clear()
            self._units[chunk_id] = units
        return units

    def records(self) -> list[Chunk]:
        """Every stored passage, in document order (read once, then kept)."""
        with self._records_lock:
            if self._records is None:
                got = self._get_all({"kind": "chunk"}, ["documents", "metadatas"])
                chunks = [chunk_from_record(d, m) for d, m in zip(got["documents"], got["metadatas"])]
                order = list(self.meta.documents)
                chunks.sort(
                    key=lambda c: (order.index(c.doc_id) if c.doc_id in order else len(order), c.start)
                )
                self._records = chunks
            return self._records

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
