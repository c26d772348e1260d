"""The search index: chunks and their vectors in an embedded Chroma store, built by one writer.

Layout of ``PHT_DATA_DIR``::

    index.json            what is built: model, corpus version, documents, the live generation
    chroma-<generation>/  the Chroma folder that index.json points at (and any a reader still uses)
    .readers/             readers' leases on the generations they use (assistant/index/generations.py)
    .index.lock           held by the one process that writes

A build copies the live generation, applies the changes there (new chunks embedded, removed
ones deleted, unchanged ones left alone) and only then points ``index.json`` at it with an
atomic rename. A failed or killed build leaves the previous index in service. When it starts,
and after it publishes, the writer removes every generation that is not live and that no reader
holds: older ones once their readers have moved on, and the folders of killed builds.

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
from assistant.corpus.parse import Chunk, Corpus, Unit, load_corpus
from assistant.errors import DataFolderError, IndexBusy, IndexDamaged, IndexMissing
from assistant.index.generations import GenerationGone, ReaderLease, remove_unused
from assistant.index.records import IndexRecord, chunk_from_record, get_all, index_records, unit_from_record

META_NAME = "index.json"
DOCUMENTS_NAME = "documents.json"
LOCK_NAME = ".index.lock"
SCHEMA = 1
_ADD_BATCH = 256
from assistant.index import derived
from assistant.index.derived import EXACT_SEARCH_MAX_UNITS, exact_nearest  # noqa: F401 - re-exported

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


def read_meta(data_dir: Path, *, documents: bool = True) -> IndexMeta | None:
    """The index's record, ``None`` when there is none; raises :class:`IndexDamaged` if unreadable.

    The documents and their sections (large for a large corpus) sit in the generation's folder
    (``documents.json``); ``documents=False`` leaves them unread (``meta.documents`` is then
    empty): what a reader needs at start.
    """
    check_data_dir(data_dir)
    path = Path(data_dir) / META_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        meta = IndexMeta.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        raise IndexDamaged(
            f"The index record {path} is damaged; rebuild it with `pht-assistant index --rebuild`."
        ) from None
    if meta.schema != SCHEMA:
        raise IndexDamaged(
            f"The index in {data_dir} was made by another version of the assistant; "
            "rebuild it with `pht-assistant index --rebuild`."
        )
    if documents and data.get("documents_file"):
        meta.documents = read_documents(Path(data_dir), meta)
    return meta


def read_documents(data_dir: Path, meta: IndexMeta) -> dict[str, dict[str, Any]]:
    """The documents of the index (``{}`` when its generation folder is gone: the caller says so)."""
    path = Path(data_dir) / meta.generation / DOCUMENTS_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise IndexDamaged(
            f"The index's list of documents {path} is damaged; rebuild it with `pht-assistant index --rebuild`."
        ) from None


def _record_has_documents(data_dir: Path) -> bool:
    """The index record still holds the documents itself (written by an older version)."""
    try:
        with open(Path(data_dir) / META_NAME, encoding="utf-8") as fh:
            return '"documents_file"' not in fh.read()
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(text, encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_meta(data_dir: Path, meta: IndexMeta) -> None:
    # the documents go beside the store they describe; the record itself stays small
    _write_atomic(data_dir / meta.generation / DOCUMENTS_NAME, json.dumps(meta.documents, ensure_ascii=False))
    record = {**asdict(meta), "documents": {}, "documents_file": DOCUMENTS_NAME}
    _write_atomic(data_dir / META_NAME, json.dumps(record, indent=2, ensure_ascii=False))


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

    A build never touches the generation readers use: it copies that generation's store into a
    new folder, applies the changes there (:class:`_StagedChanges`), writes the derived arrays
    beside it (:func:`_write_derived`), and only then points the index record at it.
    """
    began = time.perf_counter()
    data_dir = Path(data_dir)
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus)  # a corpus that fails to parse fails before anything changes
    all_chunks = corpus.chunks()
    records = index_records(all_chunks)
    model = model_id_of(embeddings)
    say = notify or (lambda _msg: None)

    def report(**what: Any) -> BuildReport:
        return BuildReport(
            chunks=len(all_chunks), records=len(records), corpus_version=corpus.version, model=model,
            seconds=time.perf_counter() - began, **what,
        )

    with writer_lock(data_dir, lock_timeout):
        meta, reason = _usable_meta(data_dir, model, collection, rebuild, say)
        if meta and meta.corpus_version == corpus.version and meta.records == len(records):
            if _record_has_documents(data_dir):
                _write_meta(data_dir, meta)  # an older layout: the documents move beside the store
            return report(added=0, removed=0, unchanged=len(records), changed=False)

        generation = f"chroma-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        staging = data_dir / generation
        if meta:
            # the store only: derived data belongs to the generation it was made from
            shutil.copytree(
                data_dir / meta.generation, staging,
                ignore=shutil.ignore_patterns(derived.FOLDER, ".derived-*", derived.LOCK, DOCUMENTS_NAME),
            )
        client = _client(staging)
        try:
            col = _collection(client, collection)
            staged = _StagedChanges(col, records, embeddings, progress, say)
            staged.apply()
            staged_meta = _meta_for(corpus, model, generation, collection, len(all_chunks), len(records), "")
            _write_derived(staging, data_dir, meta, staged_meta, all_chunks, staged, col, corpus)
        except BaseException:
            with contextlib.suppress(Exception):
                client.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        client.close()

        built_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _write_meta(data_dir, _meta_for(corpus, model, generation, collection, len(all_chunks), len(records), built_at))
        remove_unused(data_dir, keep={generation})  # the previous one stays while a reader holds it
        return report(
            added=len(staged.fresh),
            removed=len(staged.stale),
            unchanged=len(records) - len(staged.fresh),
            changed=True,
            rebuilt_because=reason,
            encoded=len(staged.to_encode),
            encoder=str(getattr(embeddings, "index_encoder", "")) if staged.to_encode else "",
        )


def _usable_meta(
    data_dir: Path, model: str, collection: str, rebuild: bool, say: Callable[[str], None]
) -> tuple[IndexMeta | None, str]:
    """The index record to build on, or ``None`` to build from scratch, and why from scratch.

    Also removes the generations no reader uses (older ones, and what killed builds left).
    """
    reason = ""
    try:
        meta = read_meta(data_dir)
    except IndexDamaged:
        meta, reason = None, "The previous index record was damaged; building the index again."
    removed = remove_unused(data_dir, keep={meta.generation if meta else None})
    if removed:
        say(f"Removed {len(removed)} index folder(s) no reader uses: {', '.join(removed)}.")
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
    return meta, reason


def _meta_for(
    corpus: Corpus, model: str, generation: str, collection: str, chunks: int, records: int, built_at: str
) -> IndexMeta:
    """The index record of a generation built from ``corpus`` (``built_at`` empty while staged)."""
    return IndexMeta(
        schema=SCHEMA,
        model=model,
        corpus_version=corpus.version,
        generation=generation,
        collection=collection,
        chunks=chunks,
        records=records,
        built_at=built_at,
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
    )


class _StagedChanges:
    """The records a build adds to and removes from the staged copy of the store, and every
    sentence's vector as the store keeps it (for the derived arrays).

    Dense search runs over sentence units, so only they go through the encoder; a passage's vector
    is the normalised mean of its units' (a passage without units is encoded itself).
    """

    def __init__(
        self, col: Any, records: dict[str, IndexRecord], embeddings: Any, progress: Progress | None,
        say: Callable[[str], None],
    ) -> None:
        self.col, self.embeddings, self.progress, self.say = col, embeddings, progress, say
        self.total = len(records)
        existing = set(col.get(include=[])["ids"])
        self.stale = sorted(existing - records.keys())
        self.fresh = [records[i] for i in records if i not in existing]
        self.fresh_ids = {r.id for r in self.fresh}
        self.fresh_units = [r for r in self.fresh if r.meta["kind"] == "unit"]
        has_units = {r.meta["chunk_id"] for r in self.fresh_units}
        self.to_encode = self.fresh_units + [
            r for r in self.fresh if r.meta["kind"] != "unit" and r.id not in has_units
        ]
        self.passages = [r for r in self.fresh if r.meta["kind"] != "unit" and r.id in has_units]
        self.unit_records = [r for r in records.values() if r.meta["kind"] == "unit"]
        self.unit_pos = {r.id: i for i, r in enumerate(self.unit_records)}
        self.unit_vecs: np.ndarray | None = None  # filled as the new sentences are stored
        self._unit_sums: dict[str, np.ndarray] = {}
        self._done = 0

    def apply(self) -> None:
        """Remove the stale records, encode and add the new ones, then the passages' means."""
        for i in range(0, len(self.stale), _ADD_BATCH):
            self.col.delete(ids=self.stale[i : i + _ADD_BATCH])
        if self.fresh and hasattr(self.embeddings, "warm_up"):
            if not getattr(self.embeddings, "is_loaded", True):
                self.say("Loading the embedding model (takes a few seconds, once per process).")
            self.embeddings.warm_up()  # load the model before the progress bar starts
            getattr(self.embeddings, "index_encoder", None)  # and the index encoder (made once per machine)
        self._report()
        for i in range(0, len(self.to_encode), _ADD_BATCH):
            self._encode(self.to_encode[i : i + _ADD_BATCH])
        for i in range(0, len(self.passages), _ADD_BATCH):
            batch = self.passages[i : i + _ADD_BATCH]
            means = [self._unit_sums[r.id] for r in batch]
            self._add(batch, [(m / max(float(np.linalg.norm(m)), 1e-12)).tolist() for m in means])
        if self.col.count() != self.total:
            raise IndexDamaged(
                "The new index did not hold every passage; the previous index is still in use. "
                "Run `pht-assistant index --rebuild`."
            )

    def _report(self, n: int = 0) -> None:
        self._done += n
        if self.progress:
            self.progress(self._done, len(self.to_encode), "embedding")

    def _encode(self, batch: list[IndexRecord]) -> None:
        vectors = embed_for_index(self.embeddings, [r.embed for r in batch], progress=self._report)
        for r, v in zip(batch, vectors):
            if r.meta["kind"] == "unit":
                key = r.meta["chunk_id"]
                self._unit_sums[key] = self._unit_sums.get(key, 0.0) + np.asarray(v, dtype=np.float64)
        self._add(batch, vectors)
        # the vectors as the store keeps them (it normalises them: the last bit can move)
        units = [r.id for r in batch if r.meta["kind"] == "unit"]
        stored = self.col.get(ids=units, include=["embeddings"]) if units else {"ids": [], "embeddings": []}
        for i, v in zip(stored["ids"], stored["embeddings"]):
            if self.unit_vecs is None:
                self.unit_vecs = np.zeros((len(self.unit_records), len(v)), dtype=np.float32)
            self.unit_vecs[self.unit_pos[i]] = np.asarray(v, dtype=np.float32)

    def _add(self, batch: list[IndexRecord], vectors: list[list[float]]) -> None:
        self.col.add(
            ids=[r.id for r in batch],
            embeddings=vectors,
            documents=[r.text for r in batch],
            metadatas=[r.meta for r in batch],
        )


def _write_derived(
    staging: Path, data_dir: Path, meta: IndexMeta | None, staged_meta: IndexMeta, all_chunks: list[Chunk],
    staged: _StagedChanges, col: Any, corpus: Corpus,
) -> None:
    """What readers map instead of reading the store (:mod:`assistant.index.derived`), written
    into the staged generation; unchanged sentences' vectors come from the previous one."""
    if staged.progress:
        staged.progress(len(staged.to_encode), len(staged.to_encode), "preparing")
    previous = derived.open_checked(data_dir / meta.generation, meta) if meta else None
    unit_records = staged.unit_records
    vecs = _unchanged_vectors(staged.unit_vecs, unit_records, staged.fresh_ids, col, previous)
    # the sentences in the order the store keeps them: those kept from the previous generation in
    # their order, then the new ones in the order they were added
    if meta is None:
        kept: list[str] = []
    elif previous is not None:
        kept = [i for i in derived.store_order(previous) if i in staged.unit_pos and i not in staged.fresh_ids]
    else:
        kept = [i for i in get_all(col, {"kind": "unit"}, [])["ids"] if i not in staged.fresh_ids]
    order = [staged.unit_pos[i] for i in kept] + [staged.unit_pos[r.id] for r in staged.fresh_units]
    unit_records = [unit_records[i] for i in order]
    vecs = vecs[order] if len(order) else vecs
    reading_order = {d.id: i for i, d in enumerate(corpus.documents)}
    derived.write(
        staging,
        derived.derive(
            sorted(all_chunks, key=lambda c: (reading_order.get(c.doc_id, len(reading_order)), c.start)),
            [r.id for r in unit_records],
            [unit_from_record(r.text, r.meta) for r in unit_records],
            vecs,
            np.array([r.meta["source"] for r in unit_records]),
        ),
        derived.identity_of(staged_meta),
    )


def _unchanged_vectors(
    vecs: np.ndarray | None, unit_records: list[IndexRecord], fresh: set[str], col: Any, old: Any,
) -> np.ndarray:
    """``vecs`` with the rows of sentences that were not encoded in this build filled in: from
    the previous generation's derived arrays when they are whole, else read from the store."""
    missing = [i for i, r in enumerate(unit_records) if r.id not in fresh]
    if not missing:
        return vecs if vecs is not None else np.zeros((0, 1), dtype=np.float32)
    if old is not None and old.unit_count:
        ids = old.array("unit_ids_sorted")
        want = np.array([unit_records[i].id for i in missing], dtype=ids.dtype)
        at = np.minimum(np.searchsorted(ids, want), len(ids) - 1)
        found = ids[at] == want
        rows = np.asarray(old.array("unit_ids_rows"))[at]
        source = old.array("unit_vectors")
        if vecs is None:
            vecs = np.zeros((len(unit_records), source.shape[1]), dtype=np.float32)
        take = np.array(missing)[found]
        vecs[take] = source[rows[found]]
        missing = np.array(missing)[~found].tolist()
    for i in range(0, len(missing), _ADD_BATCH):
        part = missing[i : i + _ADD_BATCH]
        got = col.get(ids=[unit_records[j].id for j in part], include=["embeddings"])
        by_id = dict(zip(got["ids"], got["embeddings"]))
        for j in part:
            v = np.asarray(by_id[unit_records[j].id], dtype=np.float32)
            if vecs is None:
                vecs = np.zeros((len(unit_records), len(v)), dtype=np.float32)
            vecs[j] = v
    return vecs


_SQLITE_HEADER = b"SQLite format 3\x00"


class ChromaIndex:
    """Read-only access to a built index: vector queries and the stored passages.

    Readers never write the store. Opening checks the record and the store's file, and maps the
    arrays derived from the store when the index was built (:mod:`assistant.index.derived`;
    derived again from the store when they are missing or stale). Chroma itself is opened only
    when it is needed (an index without usable derived data), with a check that runs within
    ``check_timeout`` seconds, so a damaged index is reported instead of hanging. The reader holds
    a lease on its generation until :meth:`close` (:mod:`assistant.index.generations`): the writer
    leaves it in place.
    """

    def __init__(self, data_dir: Path, *, collection: str = "pht-corpus", check_timeout: float = 30.0):
        self.data_dir = Path(data_dir)
        self._lease = None
        for _ in range(20):  # the writer may remove a generation between reading index.json and holding it
            meta = read_meta(self.data_dir, documents=False)
            if meta is None:
                raise IndexMissing(
                    f"There is no index in {self.data_dir} yet; build it with `pht-assistant index`."
                )
            if meta.collection != collection:
                raise IndexMissing(
                    f"The index in {self.data_dir} holds no collection {collection!r}; "
                    "build it with `pht-assistant index`."
                )
            folder = self.data_dir / meta.generation
            if not folder.is_dir():
                raise IndexDamaged(
                    f"The index folder {folder} is missing; rebuild it with `pht-assistant index --rebuild`."
                )
            try:
                self._lease = ReaderLease(self.data_dir, meta.generation)
                break
            except GenerationGone:
                time.sleep(0.05)
        else:
            raise IndexBusy()
        try:
            self._open(meta, folder, collection, check_timeout)
        except BaseException:
            self._lease.release()
            raise

    def _open(self, meta: IndexMeta, folder: Path, collection: str, check_timeout: float) -> None:
        self._meta = meta
        self._documents_read = False
        self._folder = folder
        self._check_timeout = check_timeout
        self._collection_name = collection
        self._chroma_lock = threading.Lock()
        self._init_caches()
        try:
            with open(folder / "chroma.sqlite3", "rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
        except OSError:
            header = b""
        if header != _SQLITE_HEADER:
            raise IndexDamaged(
                f"The index in {folder.parent} could not be read (its store file is damaged); "
                "rebuild it with `pht-assistant index --rebuild`."
            )
        self._derived = derived.ensure(folder, meta, lambda: self._collection, documents=lambda: self.meta.documents)

    def __getattr__(self, name: str) -> Any:
        # Chroma opens on first use: a reader whose derived arrays answer never imports it.
        if name in ("_collection", "_client") and "_chroma_lock" in self.__dict__:
            with self._chroma_lock:
                if "_collection" not in self.__dict__:
                    client, col = self._open_checked(self._folder, self._collection_name, self._meta, self._check_timeout)
                    self.__dict__["_client"], self.__dict__["_collection"] = client, col
            return self.__dict__[name]
        raise AttributeError(name)

    @property
    def meta(self) -> IndexMeta:
        """The index's record; its documents are read on first use (large for a large corpus)."""
        meta = self._meta
        if not self.__dict__.get("_documents_read", True):
            with self._records_lock:
                if not self._documents_read:
                    meta.documents = read_documents(self.data_dir, meta) or meta.documents
                    self._documents_read = True
        return meta

    @meta.setter
    def meta(self, value: IndexMeta) -> None:
        self._meta = value

    @classmethod
    def over_collection(cls, collection: Any, meta: IndexMeta) -> "ChromaIndex":
        """The same reader over a collection opened elsewhere (a Chroma server's), without a folder."""
        index = cls.__new__(cls)
        index.data_dir = None
        index.meta = meta
        index._lease = None
        index._client = None
        index._collection = collection
        index._init_caches()
        return index

    def _init_caches(self) -> None:
        """What has been read, kept (also for a Chroma server's collection: store.open_server_index)."""
        self._derived: derived.Derived | None = None
        self._records: list[Chunk] | None = None
        self._units: dict[str, list[tuple[Unit, np.ndarray]]] = {}
        self._unit_map: dict[str, Unit] | None = None
        self._records_lock = threading.RLock()

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
        return self._meta.corpus_version

    @property
    def derived(self) -> derived.Derived | None:
        """The arrays derived from the store (None for a Chroma server's collection)."""
        return self._derived

    @property
    def search(self) -> str:
        """How questions are matched to sentences: ``exact``, ``ivf`` (derived arrays) or ``chroma``."""
        return self._derived.search if self._derived is not None else "chroma"

    def count(self) -> int:
        if self._derived is not None:
            return self._meta.records
        return self._collection.count()

    def query_units(self, vector: list[float], k: int) -> list[tuple[Unit, float]]:
        """The ``k`` nearest sentences with their cosine similarity.

        From the derived arrays: exactly for a small index, through the nearest clusters for a
        large one. Without them (a Chroma server's collection): Chroma's filtered search takes
        time in proportion to the records the filter matches, and fetching metadata costs more
        than the search itself, so the query asks for ids and distances only, without a filter,
        for more neighbours than needed; the sentences among them (kept in memory once read)
        are the answer. Passages' vectors sit among them.
        """
        if self._derived is not None:
            if self._derived.unit_count == 0:
                return []
            return self._derived.nearest(vector, max(1, k))
        units = self._unit_table()
        if not units:
            return []
        k = max(1, min(k, len(units)))
        n = min(self._meta.records, 2 * k + 8)
        while True:
            res = self._collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
            hits = [
                (units[i], 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0]) if i in units
            ]
            if len(hits) >= k or n >= self._meta.records:
                return hits[:k]
            n = min(self._meta.records, n * 4)

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
        return get_all(self._collection, where, include, page)

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, vectors, section keys) of every unit, for corpus-wide statistics."""
        d = self._derived
        if d is not None:
            rows = range(d.unit_count)
            cols = d.array("unit_cols")
            ids = np.array([f"{d.array('chunk_id_by_row')[cols[r, 0]].decode()}:{cols[r, 2]}" for r in rows])
            groups = np.array([d.pool[g] for g in cols[:, 1].tolist()])
            return ids, np.asarray(d.array("unit_vectors")), groups
        got = self._get_all({"kind": "unit"}, ["embeddings", "metadatas", "documents"])
        self._unit_table(got)
        ids = np.array(got["ids"])
        vectors = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(ids), -1 if len(ids) else 0)
        groups = np.array([m["source"] for m in got["metadatas"]])
        return ids, vectors, groups

    def units_of(self, chunk_id: str) -> list[tuple[Unit, np.ndarray]]:
        """The units of one passage with their vectors, in text order (kept once read)."""
        d = self._derived
        if d is not None:
            row = derived.ChunkPositions(d).get(chunk_id)
            return [] if row is None else d.units_of_row(row)
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
                if self._derived is not None:
                    self._records = list(derived.ChunkTable(self._derived))
                    return self._records
                got = self._get_all({"kind": "chunk"}, ["documents", "metadatas"])
                chunks = [chunk_from_record(d, m) for d, m in zip(got["documents"], got["metadatas"])]
                order = list(self.meta.documents)
                chunks.sort(
                    key=lambda c: (order.index(c.doc_id) if c.doc_id in order else len(order), c.start)
                )
                self._records = chunks
            return self._records

    @property
    def generation(self) -> str:
        return self.meta.generation

    def close(self) -> None:
        client = self.__dict__.get("_client")
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self.__dict__.get("_lease") is not None:
            self._lease.release()
