"""What a reader needs from an index, worked out when the index is built and read through memory maps.

Chroma is the store of record. Everything a reading process used to read from it and work out on
every start (every passage and sentence, the sentences' vectors, BM25, the speller's words, each
sentence's hubness) is derived from it once, into the generation's folder::

    chroma-<generation>/
        chroma.sqlite3 ...      the store of record (Chroma)
        derived/                this module: arrays (.npy, memory-mapped) and a manifest.json

Opening an index then reads ``manifest.json`` and maps the arrays: the operating system reads the
pages a question touches, and shares them between processes. Nothing is parsed up front, and
Chroma is not even imported while the index's sentences can be searched from the arrays: exactly
up to ``EXACT_SEARCH_MAX_UNITS`` sentences, through an inverted-file index (coarse clusters made
at build time, the question's nearest clusters searched exactly) above that.

Safe to crash: the folder is written under a temporary name (``.derived-<random>.tmp``), every file
flushed to disk, and only then renamed to ``derived`` in one step. A reader sees a whole folder
or none. It checks the manifest (format, generation, record count, the settings it was made with,
each file's size) and, when the folder is missing or stale, derives it again from Chroma (under a
lock, so two readers do not both do it), or, where it cannot write, works it out in memory.

>>> describe_search(150)
'exact'
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.corpus.parse import Chunk, Unit, framing

FOLDER = "derived"
MANIFEST = "manifest.json"
FORMAT = 2
LOCK = ".derived.lock"
# Up to this many sentences a question is compared with every one of them (0.4 ms at 10,000);
# above it, with those in its nearest clusters (inverted file).
EXACT_SEARCH_MAX_UNITS = 10_000
IVF_PROBE_SHARE = 16  # clusters searched: one in this many (and at least IVF_MIN_PROBES)
IVF_MIN_PROBES = 16
# The sentences' vectors are read into memory up to this size (about 340,000 sentences), mapped above it.
VECTORS_IN_MEMORY_MAX_BYTES = 512 * 2**20
log = logging.getLogger("assistant")

_CHUNK_COLS = ("doc_id", "doc_title", "version", "section_id", "section_title", "start", "end", "ordinal")
_UNIT_COLS = ("chunk_row", "source", "start", "end", "kind")
_KINDS = ("statement", "question")


def describe_search(units: int, exact_max: int | None = None) -> str:
    """How an index of ``units`` sentences is searched: ``exact`` or ``ivf``."""
    limit = EXACT_SEARCH_MAX_UNITS if exact_max is None else exact_max
    return "exact" if units <= limit else "ivf"


def _params() -> dict[str, Any]:
    from assistant.retrieval import prepare

    return {"hub_neighbours": prepare.HUB_NEIGHBOURS, "hub_sample": prepare.HUB_SAMPLE,
            "terms": prepare.terms_fingerprint(),
            "exact_max": EXACT_SEARCH_MAX_UNITS, "probe_share": IVF_PROBE_SHARE, "min_probes": IVF_MIN_PROBES}


# -- writing ---------------------------------------------------------------------------------------


class _Pool:
    """Strings that repeat (document ids, titles, sections), stored once each."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.index)
        return i

    @property
    def strings(self) -> list[str]:
        return list(self.index)


def _strings(arrays: dict[str, Any], name: str, texts: Sequence[str]) -> None:
    data = [t.encode("utf-8") for t in texts]
    off = np.zeros(len(data) + 1, dtype=np.int64)
    if data:
        np.cumsum([len(d) for d in data], out=off[1:])
    arrays[f"{name}_bytes"] = np.frombuffer(b"".join(data), dtype=np.uint8)
    arrays[f"{name}_off"] = off


def _kmeans(vectors: np.ndarray, clusters: int, *, iterations: int = 8, seed: int = 0) -> np.ndarray:
    """Spherical k-means on a sample: unit-length centroids."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    sample = vectors[np.sort(rng.choice(n, min(n, clusters * 32), replace=False))]
    centroids = sample[rng.choice(len(sample), clusters, replace=False)].copy()
    for _ in range(iterations):
        assign = _nearest_centroid(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, sample)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]  # restart an empty cluster
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1), 1e-12)[:, None]
    return centroids.astype(np.float32)


def _nearest_centroid(vectors: np.ndarray, centroids: np.ndarray, block: int = 8192) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int32)
    for s in range(0, len(vectors), block):
        out[s : s + block] = np.argmax(np.asarray(vectors[s : s + block]) @ centroids.T, axis=1)
    return out


def derive(
    chunks: list[Chunk],
    unit_ids: Sequence[str],
    units: Sequence[Unit],
    vectors: np.ndarray,
    groups: np.ndarray,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every array a reader maps, from the passages (in reading order) and the sentences (in the
    store's order, with their vectors and section keys)."""
    from assistant.retrieval import prepare
    from assistant.retrieval.terms import terms_of, words

    say = progress or (lambda _msg: None)
    arrays: dict[str, Any] = {}
    pool = _Pool()
    n = len(chunks)
    cols = np.zeros((n, len(_CHUNK_COLS)), dtype=np.int64)
    for i, c in enumerate(chunks):
        cols[i] = (pool(c.doc_id), pool(c.doc_title), pool(c.version), pool(c.section_id), pool(c.section_title),
                   c.start, c.end, c.ordinal)
    arrays["chunk_cols"] = cols
    _strings(arrays, "chunk_text", [c.text for c in chunks])
    chunk_ids = [c.id for c in chunks]
    arrays["chunk_id_by_row"] = np.array(chunk_ids, dtype="S32") if n else np.zeros(0, dtype="S32")
    order = np.argsort(arrays["chunk_id_by_row"], kind="stable")
    arrays["chunk_ids_sorted"] = arrays["chunk_id_by_row"][order]
    arrays["chunk_ids_rows"] = order.astype(np.int64)
    # a document's passages, in reading order (what chunks_of returns)
    doc_of = cols[:, 0] if n else np.zeros(0, dtype=np.int64)
    doc_keys = list(dict.fromkeys(doc_of.tolist()))
    key_pos = {d: i for i, d in enumerate(doc_keys)}
    doc_pos = np.array([key_pos[d] for d in doc_of.tolist()], dtype=np.int64)
    doc_ptr = np.zeros(len(doc_keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc_pos, minlength=len(doc_keys)), out=doc_ptr[1:])
    arrays["doc_keys"] = np.array(doc_keys, dtype=np.int64)
    arrays["doc_rows"] = np.argsort(doc_pos, kind="stable").astype(np.int64)
    arrays["doc_ptr"] = doc_ptr
    arrays["framing"] = np.array(framing(chunks), dtype=bool)

    say("lexical index")
    chunk_words = [words(f"{c.section_title} {c.text}") for c in chunks]
    lexical = prepare.lexical_arrays(chunk_words, terms_of)
    for k, v in lexical.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
    arrays["_json"] = {"vocabulary": lexical["vocabulary"], "speller_counts": lexical["speller_counts"],
                       "bm25_docs": lexical["bm25_docs"], "pool": pool.strings}

    say("sentence statistics")
    u = len(units)
    row_of_chunk = {cid: i for i, cid in enumerate(chunk_ids)}
    # the sentences come in the store's order (what Chroma returns; the build reproduces it), and
    # the statistics are taken in it: the same figures, to the last bit, as from the store itself
    vectors = np.asarray(vectors, dtype=np.float32).reshape(u, -1) if u else np.zeros((0, 1), np.float32)
    groups = np.asarray(groups)
    hub = prepare.hubness(np.asarray(unit_ids), vectors, groups)
    search = describe_search(u)
    if search == "ivf":  # rows in cluster order, so a cluster's vectors are one slice
        say("clustering sentence vectors")
        clusters = max(16, min(8192, int(round(2 * math.sqrt(u)))))
        centroids = _kmeans(vectors, clusters)
        assign = _nearest_centroid(vectors, centroids)
        perm = np.argsort(assign, kind="stable")
        ptr = np.zeros(clusters + 1, dtype=np.int64)
        np.cumsum(np.bincount(assign, minlength=clusters), out=ptr[1:])
        arrays["ivf_centroids"] = centroids
        arrays["ivf_ptr"] = ptr
    else:
        perm = np.arange(u)
    perm_list = perm.tolist()
    ucols = np.zeros((u, len(_UNIT_COLS)), dtype=np.int64)
    kept = [units[i] for i in perm_list]
    for r, unit in enumerate(kept):
        ucols[r] = (row_of_chunk.get(unit.chunk_id, -1), pool(unit.source), unit.start, unit.end, _KINDS.index(unit.kind))
    arrays["_json"]["pool"] = pool.strings
    arrays["unit_cols"] = ucols
    arrays["unit_vectors"] = np.ascontiguousarray(vectors[perm]) if u else vectors
    arrays["unit_hub"] = hub[perm] if u else hub
    arrays["unit_store_rank"] = np.asarray(perm, dtype=np.int64)  # each row's place in the store's order
    _strings(arrays, "unit_text", [x.text for x in kept])
    ids = np.array([unit_ids[i] for i in perm_list], dtype=f"S{max([len(i) for i in unit_ids] or [1])}")
    o = np.argsort(ids, kind="stable")
    arrays["unit_ids_sorted"] = ids[o]
    arrays["unit_ids_rows"] = o.astype(np.int64)
    # each passage's sentences, in text order
    has_chunk = ucols[:, 0] >= 0
    by_chunk = np.lexsort((ucols[:, 2], ucols[:, 0]))
    cptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(ucols[has_chunk, 0], minlength=n), out=cptr[1:])
    arrays["chunk_units_ptr"] = cptr
    arrays["chunk_units_rows"] = by_chunk[has_chunk[by_chunk]].astype(np.int64)
    arrays["_json"].update(search=search, units=u, chunks=n)
    return arrays


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(folder: Path, arrays: dict[str, Any], identity: dict[str, Any]) -> Path:
    """Write ``arrays`` as ``folder/derived`` in one step: a temporary folder, every file flushed,
    then one rename. An existing (stale) ``derived`` is replaced."""
    tmp = folder / f".derived-{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        files: dict[str, int] = {}
        for name, value in arrays.items():
            if name == "_json":
                continue
            path = tmp / f"{name}.npy"
            np.save(path, value, allow_pickle=False)
            _fsync(path)
            files[path.name] = path.stat().st_size
        data = tmp / "data.json"
        data.write_text(json.dumps(arrays["_json"], ensure_ascii=False), encoding="utf-8")
        _fsync(data)
        files[data.name] = data.stat().st_size
        manifest = {**identity, "format": FORMAT, "params": _params(), "files": files,
                    "search": arrays["_json"]["search"], "units": arrays["_json"]["units"],
                    "chunks": arrays["_json"]["chunks"]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _fsync(tmp / MANIFEST)
        _fsync(tmp)
        final = folder / FOLDER
        if final.exists():  # stale: move it aside first (a reader holding its files keeps them)
            old = folder / f".derived-{uuid.uuid4().hex}.old"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)
        _fsync(folder)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_leftovers(folder: Path) -> None:
    """Remove what a killed writer left (temporary folders never renamed)."""
    for p in folder.glob(".derived-*"):
        shutil.rmtree(p, ignore_errors=True)


# -- reading ---------------------------------------------------------------------------------------


class Strings(Sequence):
    """A column of strings in one byte array, decoded when asked for."""

    def __init__(self, data: np.ndarray, off: np.ndarray) -> None:
        self._data, self._off = data, off

    def __len__(self) -> int:
        return len(self._off) - 1

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return bytes(self._data[self._off[i] : self._off[i + 1]]).decode("utf-8")


class ChunkTable(Sequence):
    """Every passage, in reading order, made into a :class:`Chunk` when asked for (the last
    ``KEEP`` made are kept: a document's passages are looked through again and again)."""

    KEEP = 16_384

    def __init__(self, d: "Derived") -> None:
        self._cols, self._text, self._pool = d.array("chunk_cols"), d.strings("chunk_text"), d.pool
        self._made: dict[int, Chunk] = {}

    def __len__(self) -> int:
        return len(self._cols)

    def __getitem__(self, i: int) -> Chunk:  # type: ignore[override]
        if i < 0:
            i += len(self)
        chunk = self._made.get(i)
        if chunk is not None:
            return chunk
        doc_id, doc_title, version, sid, stitle, start, end, ordinal = self._cols[i].tolist()
        p = self._pool
        chunk = Chunk(doc_id=p[doc_id], doc_title=p[doc_title], version=p[version], section_id=p[sid],
                      section_title=p[stitle], start=start, end=end, text=self._text[i], ordinal=ordinal)
        if len(self._made) >= self.KEEP:
            self._made.clear()
        self._made[i] = chunk
        return chunk

    def __iter__(self) -> Iterator[Chunk]:
        for i in range(len(self)):
            yield self[i]


class ChunkPositions(Mapping):
    """Passage id -> its position in reading order."""

    def __init__(self, d: "Derived") -> None:
        self._ids, self._rows = d.array("chunk_ids_sorted"), d.array("chunk_ids_rows")
        self._known = d.chunk_rows  # filled as sentences are read

    def get(self, key: str, default: Any = None) -> Any:
        row = self._known.get(key)
        if row is not None:
            return row
        k = key.encode("ascii", "replace")
        i = int(np.searchsorted(self._ids, k))
        if i < len(self._ids) and self._ids[i] == k:
            return int(self._rows[i])
        return default

    def __getitem__(self, key: str) -> int:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return (i.decode("ascii") for i in self._ids.tolist())


class ByDocument(Mapping):
    """Document id -> its passages in reading order."""

    def __init__(self, d: "Derived", chunks: ChunkTable) -> None:
        self._chunks, self._rows, self._ptr = chunks, d.array("doc_rows"), d.array("doc_ptr")
        self._keys = {d.pool[k]: i for i, k in enumerate(d.array("doc_keys").tolist())}

    def get(self, key: str, default: Any = None) -> Any:
        i = self._keys.get(key)
        if i is None:
            return default
        return [self._chunks[r] for r in self._rows[self._ptr[i] : self._ptr[i + 1]].tolist()]

    def __getitem__(self, key: str) -> list[Chunk]:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)


class HubTable(Mapping):
    """Sentence id -> its hubness."""

    def __init__(self, d: "Derived") -> None:
        self._d, self._hub = d, d.array("unit_hub")

    def get(self, key: str, default: Any = None) -> Any:
        row = self._d.unit_row(key)
        return default if row is None else float(self._hub[row])

    def __getitem__(self, key: str) -> float:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __len__(self) -> int:
        return len(self._hub)

    def __iter__(self) -> Iterator[str]:
        return (i.decode("ascii") for i in self._d.array("unit_ids_sorted").tolist())


class Derived:
    """The arrays of one index, memory-mapped (or held in memory when computed without a folder)."""

    def __init__(self, arrays: Callable[[str], np.ndarray], data: dict[str, Any], manifest: dict[str, Any]) -> None:
        self._load = arrays
        self._arrays: dict[str, np.ndarray] = {}
        self.data = data
        self.manifest = manifest
        self.pool: list[str] = data["pool"]
        self.search: str = manifest["search"]
        self._row_cache: dict[str, int] = {}
        self.chunk_rows: dict[str, int] = {}  # passage id -> row, for passages whose sentences were read
        self._units_made: dict[int, Unit] = {}

    @classmethod
    def in_memory(cls, arrays: dict[str, Any]) -> "Derived":
        data = arrays["_json"]
        return cls(arrays.__getitem__, data, {"search": data["search"], "units": data["units"], "chunks": data["chunks"]})

    @classmethod
    def open(cls, path: Path, manifest: dict[str, Any]) -> "Derived":
        def load(name: str) -> np.ndarray:
            file = path / f"{name}.npy"
            if name == "unit_vectors" and file.stat().st_size <= VECTORS_IN_MEMORY_MAX_BYTES:
                # read into this process's memory: every question scans slices of it, and mapped
                # pages the system takes back are read again (3x slower per question at 100k here)
                return np.load(file, allow_pickle=False)
            try:
                a = np.load(file, mmap_mode="r", allow_pickle=False)
            except ValueError:  # numpy cannot map an empty array
                return np.load(file, allow_pickle=False)
            # (no madvise(MADV_RANDOM): a cluster is one contiguous slice, and read-ahead reads it
            # in a few large reads; at 1M chunks random access cost 60 ms a question)
            return a.view(np.ndarray)  # the same pages; plain arrays index faster than np.memmap

        data = json.loads((path / "data.json").read_text(encoding="utf-8"))
        return cls(load, data, manifest)

    def array(self, name: str) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None:
            a = self._arrays[name] = self._load(name)
        return a

    def strings(self, name: str) -> Strings:
        return Strings(self.array(f"{name}_bytes"), self.array(f"{name}_off"))

    # sentences
    @property
    def unit_count(self) -> int:
        return int(self.manifest["units"])

    def unit(self, row: int) -> Unit:
        made = self._units_made.get(row)
        if made is not None:
            return made
        made = self._unit(row)
        if len(self._units_made) >= 65_536:
            self._units_made.clear()
        self._units_made[row] = made
        return made

    def _unit(self, row: int) -> Unit:
        chunk_row, source, start, end, kind = self.array("unit_cols")[row].tolist()
        cid = self.array("chunk_id_by_row")[chunk_row].decode("ascii")
        if len(self.chunk_rows) < 500_000:
            self.chunk_rows[cid] = chunk_row
        return Unit(chunk_id=cid, source=self.pool[source], start=start, end=end,
                    text=self.strings("unit_text")[row], kind=_KINDS[kind])

    def unit_row(self, unit_id: str) -> int | None:
        row = self._row_cache.get(unit_id)
        if row is not None:
            return row
        ids = self.array("unit_ids_sorted")
        k = unit_id.encode("ascii", "replace")
        i = int(np.searchsorted(ids, k))
        if i < len(ids) and ids[i] == k:
            return int(self.array("unit_ids_rows")[i])
        return None

    def units_of_row(self, chunk_row: int) -> list[tuple[Unit, np.ndarray]]:
        ptr, rows = self.array("chunk_units_ptr"), self.array("chunk_units_rows")
        vectors = self.array("unit_vectors")
        return [(self.unit(r), np.asarray(vectors[r])) for r in rows[ptr[chunk_row] : ptr[chunk_row + 1]].tolist()]

    def nearest(self, vector: Any, k: int) -> list[tuple[Unit, float]]:
        """The ``k`` most similar sentences (best first, ties by row), exactly or by clusters."""
        q = np.asarray(vector, dtype=np.float32)
        vectors = self.array("unit_vectors")
        if self.search == "exact":
            rows, sims = exact_nearest(vectors, q, max(1, k))
        else:
            centroids, ptr = self.array("ivf_centroids"), self.array("ivf_ptr")
            probes = max(IVF_MIN_PROBES, len(centroids) // IVF_PROBE_SHARE)
            near = np.argpartition(-(centroids @ q), min(probes, len(centroids)) - 1)[:probes]
            spans = sorted((int(ptr[c]), int(ptr[c + 1])) for c in near.tolist())
            cand_rows = np.concatenate([np.arange(s, e) for s, e in spans]) if spans else np.zeros(0, np.int64)
            cand = np.concatenate([np.asarray(vectors[s:e]) @ q for s, e in spans]) if spans else np.zeros(0, np.float32)
            kk = min(max(1, k), len(cand))
            top = np.argpartition(-cand, kk - 1)[:kk] if kk < len(cand) else np.arange(len(cand))
            rows = cand_rows[top]
            sims = cand[top]
            o = np.lexsort((rows, -sims))
            rows, sims = rows[o], sims[o]
        out = []
        for r, s in zip(rows.tolist(), sims.tolist()):
            unit = self.unit(r)
            self._row_cache[unit.id] = r
            out.append((unit, float(s)))
        if len(self._row_cache) > 200_000:
            self._row_cache.clear()
        return out


def store_order(d: Derived) -> list[str]:
    """The sentence ids of ``d`` in the store's order."""
    rank = np.asarray(d.array("unit_store_rank"))
    ids = d.array("unit_ids_sorted")[np.argsort(np.asarray(d.array("unit_ids_rows")))]  # row order
    return [i.decode("ascii") for i in ids[np.argsort(rank, kind="stable")].tolist()]


def exact_nearest(vectors: np.ndarray, vector: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` largest dot products with ``vector`` (best first, ties by row) and their values."""
    sims = vectors @ np.asarray(vector, dtype=np.float32)
    k = min(k, len(sims))
    rows = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    rows = rows[np.lexsort((rows, -sims[rows]))]
    return rows, sims[rows]


def identity_of(meta: Any) -> dict[str, Any]:
    """What ties a derived folder to its index: a folder made for another index is stale."""
    return {"generation": meta.generation, "records": meta.records, "corpus_version": meta.corpus_version,
            "model": meta.model, "collection": meta.collection}


def check(folder: Path, meta: Any) -> dict[str, Any] | None:
    """The manifest of ``folder/derived`` if it is whole and made for this index, else None."""
    path = folder / FOLDER
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    want = {**identity_of(meta), "format": FORMAT, "params": _params()}
    if any(manifest.get(k) != v for k, v in want.items()):
        return None
    for name, size in (manifest.get("files") or {}).items():
        try:
            if (path / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return manifest if manifest.get("files") else None


def open_checked(folder: Path, meta: Any) -> Derived | None:
    manifest = check(folder, meta)
    if manifest is None:
        return None
    try:
        return Derived.open(folder / FOLDER, manifest)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _derive_lock(folder: Path, timeout: float) -> Iterator[bool]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def read_store(collection: Any, documents_order: list[str]) -> tuple[list[Chunk], list[str], list[Unit], np.ndarray, np.ndarray]:
    """Passages (reading order) and sentences (store order, with vectors and section keys) of a collection."""
    from assistant.index.records import chunk_from_record, get_all, unit_from_record

    got = get_all(collection, {"kind": "chunk"}, ["documents", "metadatas"])
    chunks = [chunk_from_record(d, m) for d, m in zip(got["documents"], got["metadatas"])]
    chunks.sort(key=lambda c: (documents_order.index(c.doc_id) if c.doc_id in documents_order else len(documents_order), c.start))
    got = get_all(collection, {"kind": "unit"}, ["embeddings", "metadatas", "documents"])
    units = [unit_from_record(d, m) for d, m in zip(got["documents"], got["metadatas"])]
    ids = got["ids"]
    vectors = np.asarray(got["embeddings"], dtype=np.float32).reshape(len(ids), -1) if ids else np.zeros((0, 1), np.float32)
    groups = np.array([m["source"] for m in got["metadatas"]])
    return chunks, ids, units, vectors, groups


def build_for(folder: Path, collection: Any, meta: Any, progress: Callable[[str], None] | None = None,
              documents: list[str] | None = None) -> Path:
    """Derive the arrays of the index in ``folder`` from its Chroma collection and write them."""
    order = documents if documents is not None else list(meta.documents)
    chunks, ids, units, vectors, groups = read_store(collection, order)
    arrays = derive(chunks, ids, units, vectors, groups, progress=progress)
    return write(folder, arrays, identity_of(meta))


def ensure(folder: Path, meta: Any, collection: Callable[[], Any], *, documents: Callable[[], Any],
           wait: float = 600.0) -> Derived:
    """The derived arrays of the index in ``folder``: mapped when whole and current, else derived
    again from Chroma and written (one reader at a time), else computed in memory (read-only folder)."""
    found = open_checked(folder, meta)
    if found is not None:
        return found
    try:
        with _derive_lock(folder, wait) as held:
            if held:
                found = open_checked(folder, meta)
                if found is not None:
                    return found
                clean_leftovers(folder)
                log.warning("derived index data missing or stale in %s; deriving it from the store (once)", folder)
                build_for(folder, collection(), meta, documents=list(documents()))
                found = open_checked(folder, meta)
                if found is not None:
                    return found
    except OSError as exc:  # a read-only folder: work it out here, for this process only
        log.warning("cannot write derived index data in %s (%s); computing it in memory", folder, exc.strerror)
    chunks, ids, units, vectors, groups = read_store(collection(), list(documents()))
    return Derived.in_memory(derive(chunks, ids, units, vectors, groups))
