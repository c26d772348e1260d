"""Where clinic documents' vectors live: the embedded Chroma folder, or a Chroma server.

With ``PHT_CHROMA_URL`` unset, clinic collections live in ``<data_dir>/clinic-store/`` (one
process writes: ``serve --workers 1``). With it set, they live on that Chroma server, which
several API workers and machines share. Each clinic has its own collection
(``clinic-<clinic id>``), so one clinic's passages are never in another's search.

Every call to a Chroma server goes through :func:`guarded`, which turns a connection failure into
:class:`~assistant.errors.StoreUnavailable` (503 in the API); the next call tries again, so the
assistant recovers by itself when the server returns.

>>> parse_chroma_url("http://127.0.0.1:8123")
('127.0.0.1', 8123, False)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from assistant.corpus.parse import Chunk, Unit
from assistant.errors import AssistantError, StoreUnavailable


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, ssl)`` of a Chroma server URL."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    ssl = parsed.scheme == "https"
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if ssl else 8000), ssl


@contextlib.contextmanager
def guarded(what: str = "the document store") -> Iterator[None]:
    """Turn any failure to reach the store into :class:`StoreUnavailable`."""
    try:
        yield
    except AssistantError:
        raise
    except Exception as exc:  # chromadb and httpx raise many kinds; all mean "not reachable now"
        raise StoreUnavailable(
            f"{what[0].upper()}{what[1:]} cannot be reached just now ({type(exc).__name__}); "
            "please try again in a minute (the assistant reconnects by itself)."
        ) from exc


class Store:
    """Opens Chroma collections on the embedded folder or on a server; reconnects after failures."""

    def __init__(self, *, path: Path | None = None, url: str = "") -> None:
        self.path = Path(path) if path is not None else None
        self.url = url
        self._client: Any = None
        self._lock = threading.Lock()
        self._claim: Any = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Store":
        if settings.chroma_url:
            return cls(url=settings.chroma_url)
        return cls(path=Path(settings.data_dir) / "clinic-store")

    @property
    def kind(self) -> str:
        return "server" if self.url else "embedded"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import chromadb

                settings = chromadb.Settings(anonymized_telemetry=False, allow_reset=False)
                with guarded():
                    if self.url:
                        host, port, ssl = parse_chroma_url(self.url)
                        self._client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
                    else:
                        self.claim()
                        self._client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            return self._client

    def claim(self) -> None:
        """The embedded folder takes one writing process: hold its lock, or say who to stop."""
        if self.url or self._claim is not None:
            return
        from filelock import FileLock, Timeout

        from assistant.errors import IndexBusy

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path.parent / ".clinic-store.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise IndexBusy(
                f"Another `pht-assistant serve` is using the embedded store in {self.path.parent}; stop it, "
                "or run several workers against a Chroma server (set PHT_CHROMA_URL)."
            ) from None
        self._claim = lock

    def release(self) -> None:
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def reset(self) -> None:
        """Forget the connection; the next call opens a new one."""
        with self._lock:
            self._client = None

    def collection(self, name: str, *, create: bool = True) -> Any:
        try:
            with guarded():
                client = self.client()
                if create:
                    return client.get_or_create_collection(
                        name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                    )
                return client.get_collection(name, embedding_function=None)
        except StoreUnavailable:
            if self.url:
                self.reset()
            raise

    def delete_collection(self, name: str) -> None:
        with guarded(), contextlib.suppress(ValueError):
            self.client().delete_collection(name)

    def heartbeat(self) -> bool:
        """True when the store answers now."""
        try:
            with guarded():
                self.client().heartbeat()
            return True
        except StoreUnavailable:
            self.reset()
            return False


class CollectionIndex:
    """Read access to one collection of passages and sentences, shaped as the retriever expects.

    Everything but the vector query is read once, when the object is made.
    """

    def __init__(self, collection: Any, *, order: list[str] | None = None) -> None:
        from assistant.index.embedded import chunk_from_record, unit_from_record

        self._collection = collection
        with guarded():
            chunks = collection.get(where={"kind": "chunk"}, include=["documents", "metadatas"])
            units = collection.get(where={"kind": "unit"}, include=["documents", "metadatas", "embeddings"])
        rank = {d: i for i, d in enumerate(order or [])}
        self._chunks = sorted(
            (chunk_from_record(d, m) for d, m in zip(chunks["documents"], chunks["metadatas"])),
            key=lambda c: (rank.get(c.doc_id, len(rank)), c.doc_id, c.start),
        )
        self._unit_ids = np.array(units["ids"])
        vectors = units["embeddings"]
        self._unit_vectors = (
            np.asarray(vectors, dtype=np.float32).reshape(len(self._unit_ids), -1)
            if len(self._unit_ids)
            else np.zeros((0, 1), dtype=np.float32)
        )
        self._unit_groups = np.array([m["source"] for m in units["metadatas"]])
        self._units: dict[str, list[tuple[Unit, np.ndarray]]] = {}
        for doc, meta, vec in zip(units["documents"], units["metadatas"], self._unit_vectors):
            self._units.setdefault(meta["chunk_id"], []).append((unit_from_record(doc, meta), vec))
        for value in self._units.values():
            value.sort(key=lambda uv: uv[0].start)

    def __len__(self) -> int:
        return len(self._chunks)

    def records(self) -> list[Chunk]:
        return self._chunks

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._unit_ids, self._unit_vectors, self._unit_groups

    def units_of(self, chunk_id: str) -> list[tuple[Unit, np.ndarray]]:
        return self._units.get(chunk_id, [])

    def query_units(self, vector: list[float], k: int) -> list[tuple[Unit, float]]:
        from assistant.index.embedded import unit_from_record

        k = max(1, min(k, len(self._unit_ids)))
        if len(self._unit_ids) == 0:
            return []
        with guarded():
            res = self._collection.query(
                query_embeddings=[vector],
                n_results=k,
                where={"kind": "unit"},
                include=["documents", "metadatas", "distances"],
            )
        return [
            (unit_from_record(doc, meta), 1.0 - float(dist))
            for doc, meta, dist in zip(res["documents"][0], res["metadatas"][0], res["distances"][0])
        ]


# -- the shared corpus index on a Chroma server ------------------------------------------------------

META_KEY = "pht_index"


class _Guarded:
    """A collection whose every call turns a failure to reach the server into StoreUnavailable."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with guarded():
                return attr(*args, **kwargs)

        return call


def _missing(url: str) -> Exception:
    from assistant.errors import IndexMissing

    return IndexMissing(
        f"The Chroma server at {url} holds no index yet; build it with `PHT_CHROMA_URL={url} pht-assistant index`."
    )


def open_server_index(settings: Any) -> Any:
    """The shared corpus index on the Chroma server at ``settings.chroma_url`` (read only)."""
    import json

    from assistant.index.embedded import ChromaIndex, IndexMeta

    store = Store(url=settings.chroma_url)
    client = store.client()
    try:
        with guarded():
            try:
                col = client.get_collection(settings.collection, embedding_function=None)
            except Exception as exc:
                if (
                    "not" in str(exc).lower()
                    and "exist" in str(exc).lower()
                    or "NotFound" in type(exc).__name__
                ):
                    raise _missing(settings.chroma_url) from None
                raise
    except StoreUnavailable:
        store.reset()
        raise
    raw = (col.metadata or {}).get(META_KEY)
    if not raw:
        raise _missing(settings.chroma_url)

    # the embedded reader's queries, over the server's collection
    return ChromaIndex.over_collection(_Guarded(col), IndexMeta.from_json(json.loads(raw)))


def publish_index(settings: Any, notify: Any = None) -> tuple[int, int]:
    """Copy the local index's changes to the Chroma server: ``(added, removed)`` records.

    ``pht-assistant index`` with ``PHT_CHROMA_URL`` set builds the index in the data folder as
    always (incrementally, behind the writer lock), then calls this: new records are copied with
    their vectors (nothing is embedded twice), the record of what is built is stored in the
    collection's metadata, and records no longer in the corpus are removed last.
    """
    import json
    from dataclasses import asdict

    from assistant.index.embedded import _client, read_meta

    say = notify or (lambda _msg: None)
    meta = read_meta(Path(settings.data_dir))
    if meta is None:
        raise _missing(settings.chroma_url)
    local_client = _client(Path(settings.data_dir) / meta.generation)
    try:
        local = local_client.get_collection(meta.collection)
        remote = Store(url=settings.chroma_url).collection(meta.collection)
        with guarded(f"the Chroma server at {settings.chroma_url}"):
            local_ids = set(local.get(include=[])["ids"])
            remote_ids = set(remote.get(include=[])["ids"])
            fresh, stale = sorted(local_ids - remote_ids), sorted(remote_ids - local_ids)
            for i in range(0, len(fresh), 256):
                got = local.get(ids=fresh[i : i + 256], include=["embeddings", "documents", "metadatas"])
                remote.add(
                    ids=got["ids"],
                    embeddings=got["embeddings"],
                    documents=got["documents"],
                    metadatas=got["metadatas"],
                )
            remote.modify(metadata={META_KEY: json.dumps(asdict(meta), ensure_ascii=False)})
            for i in range(0, len(stale), 256):
                remote.delete(ids=stale[i : i + 256])
    finally:
        with contextlib.suppress(Exception):
            local_client.close()
    say(
        f"Published to the Chroma server at {settings.chroma_url}: {len(fresh)} records added, {len(stale)} removed."
    )
    return len(fresh), len(stale)
