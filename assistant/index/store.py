"""Where clinic documents' vectors live: the embedded Chroma folder, or a Chroma server.

With ``PHT_CHROMA_URL`` unset, clinic collections live in ``<data_dir>/clinic-store/`` (one
process writes: ``serve --workers 1``). With it set, they live on that Chroma server, which
several API workers and machines share. Each clinic has its own collection
(``clinic-<clinic id>``), so one clinic's passages are never in another's search.

Every call to a Chroma server has a time limit (``PHT_STORE_TIMEOUT``) and goes through
:func:`guarded`, which turns a failure to reach it (refused, dropped, timed out) into
:class:`~assistant.errors.StoreUnavailable` (503 in the API) and leaves any other failure as the
bug it is (500, logged). After a time-out, the server's :class:`Breaker` fails calls at once until
one gets through again, so a server that hangs costs a request at most one time limit; the
assistant recovers by itself when the server returns.

>>> parse_chroma_url("http://127.0.0.1:8123")
('127.0.0.1', 8123, False)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from assistant.corpus.parse import Chunk, Unit
from assistant.errors import AssistantError, StoreUnavailable
from assistant.index.records import PAGE, chunk_from_record, get_all, unit_from_record

log = logging.getLogger("assistant.index.store")


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, ssl)`` of a Chroma server URL."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    ssl = parsed.scheme == "https"
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if ssl else 8000), ssl


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store cannot be reached now (a refused or dropped connection, a
    time limit, a server or proxy that answers 502-504), rather than a request it refused for
    what it was (a bad name, too many values at once): only the first kind is an outage."""
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError, _TimedOut)):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in (502, 503, 504)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and unreachable(cause)


class _TimedOut(Exception):
    """A call to the store took longer than its time limit."""


@contextlib.contextmanager
def guarded(what: str = "the document store", breaker: "Breaker | None" = None) -> Iterator[None]:
    """Turn a failure to reach the store into :class:`StoreUnavailable` (503: try again later).

    Any other failure (a request the store refuses for what it is) is left as it is: it is a bug
    of ours, answered 500 and logged, never a 503 that blames an outage. With a ``breaker`` (a
    Chroma server's), a call made while the server is known not to answer fails at once, and a
    call that times out opens the breaker.
    """
    if breaker is not None:
        breaker.check(what)
    try:
        yield
    except AssistantError:  # already sorted (an inner guard, a missing index): leaves the breaker be
        if breaker is not None:
            breaker.release()
        raise
    except Exception as exc:  # chromadb and httpx raise many kinds: sorted by unreachable()
        if not unreachable(exc):
            if breaker is not None:
                breaker.answered()  # it answered, with a refusal
            raise
        if breaker is not None:
            breaker.failed(exc)
        raise StoreUnavailable(
            f"{what[0].upper()}{what[1:]} cannot be reached just now ({type(exc).__name__}); "
            "please try again in a minute (the assistant reconnects by itself)."
        ) from exc
    except BaseException:
        if breaker is not None:
            breaker.release()
        raise
    if breaker is not None:
        breaker.answered()


class Breaker:
    """Per Chroma server: after a call times out, calls fail at once for ``timeout`` seconds; then
    one call at a time tries the server again, until one gets through. A server that hangs
    (stopped, or stuck) thus costs each request at most one time limit, and most nothing at all.
    """

    _all: dict[str, "Breaker"] = {}
    _all_lock = threading.Lock()

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._probing = False

    @classmethod
    def for_url(cls, url: str, timeout: float) -> "Breaker":
        with cls._all_lock:
            breaker = cls._all.get(f"{url} {timeout}")
            if breaker is None:
                breaker = cls._all[f"{url} {timeout}"] = cls(url, timeout)
            return breaker

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until or self._probing

    def check(self, what: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._open_until == 0.0:
                return
            if now >= self._open_until and not self._probing:
                self._probing = True  # this call tries the server; the others still fail at once
                return
        raise StoreUnavailable(
            f"{what[0].upper()}{what[1:]} did not answer within {self.timeout:g} seconds just now; please try "
            "again in a minute (the assistant reconnects by itself)."
        )

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._probing = False
            if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__ or isinstance(exc, _TimedOut):
                if self._open_until == 0.0:
                    log.warning("The Chroma server at %s did not answer within %g s", self.url, self.timeout)
                self._open_until = time.monotonic() + self.timeout
            elif self._open_until:
                self._open_until = time.monotonic() + self.timeout

    def release(self) -> None:
        """A call that tried the server ended without telling whether it answers."""
        with self._lock:
            self._probing = False

    def answered(self) -> None:
        with self._lock:
            if self._open_until:
                log.warning("The Chroma server at %s answers again", self.url)
            self._open_until, self._probing = 0.0, False


class Store:
    """Opens Chroma collections on the embedded folder or on a server; reconnects after failures.

    Every call to a server has a time limit (``timeout``, ``PHT_STORE_TIMEOUT``): opening the
    client, and each request it makes afterwards.
    """

    def __init__(self, *, path: Path | None = None, url: str = "", timeout: float = 5.0) -> None:
        self.path = Path(path) if path is not None else None
        self.url = url
        self.timeout = timeout
        self.breaker = Breaker.for_url(url, timeout) if url else None
        self._client: Any = None
        self._lock = threading.Lock()
        self._connecting: threading.Thread | None = None
        self._claim: Any = None

    _shared: dict[tuple[str, float], "Store"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, url: str, timeout: float) -> "Store":
        """One client per Chroma server and time limit in this process, for the reads made again and
        again (the index record every few seconds): a new client per call would talk to the server
        twice more each time, and chromadb keeps every client it made."""
        with cls._shared_lock:
            store = cls._shared.get((url, timeout))
            if store is None:
                store = cls._shared[(url, timeout)] = cls(url=url, timeout=timeout)
            return store

    @classmethod
    def from_settings(cls, settings: Any) -> "Store":
        if settings.chroma_url:
            return cls(url=settings.chroma_url, timeout=settings.store_timeout)
        return cls(path=Path(settings.data_dir) / "clinic-store", timeout=settings.store_timeout)

    @property
    def kind(self) -> str:
        return "server" if self.url else "embedded"

    def guard(self, what: str = "the document store") -> Any:
        """:func:`guarded` with this store's breaker."""
        return guarded(what, self.breaker)

    def client(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            if not self.url:
                import chromadb

                with guarded():
                    self.claim()
                    self._client = chromadb.PersistentClient(
                        path=str(self.path), settings=chromadb.Settings(anonymized_telemetry=False, allow_reset=False)
                    )
                return self._client
        client = self._connect()
        with self._lock:
            if self._client is None:
                self._client = client
            return self._client

    def _connect(self) -> Any:
        """A client of the Chroma server, made within the time limit. Making one already talks to
        the server (it checks the tenant and database) without a time limit of its own, so it is
        made in a thread that is given up on after ``timeout`` seconds; at most one such thread
        waits on a server that hangs."""
        with self.guard():
            with self._lock:
                if self._connecting is not None and self._connecting.is_alive():
                    raise _TimedOut("an earlier attempt to connect is still waiting for the server")
                result: dict[str, Any] = {}

                def connect() -> None:
                    import chromadb
                    import httpx

                    try:
                        host, port, ssl = parse_chroma_url(self.url)
                        client = chromadb.HttpClient(
                            host=host,
                            port=port,
                            ssl=ssl,
                            settings=chromadb.Settings(anonymized_telemetry=False, allow_reset=False),
                        )
                        # every later request of this client: the same time limit
                        client._server._session.timeout = httpx.Timeout(self.timeout)
                        result["client"] = client
                    except BaseException as exc:  # handed to the caller
                        result["error"] = exc

                self._connecting = threading.Thread(target=connect, name="pht-chroma-connect", daemon=True)
                self._connecting.start()
                thread = self._connecting
            thread.join(self.timeout)
            if thread.is_alive():
                raise _TimedOut(f"the Chroma server at {self.url} did not answer within {self.timeout:g} seconds")
            if "error" in result:
                raise result["error"]
            return result["client"]

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
        """The collection ``name``; on a server, every call on it goes through :meth:`guard`."""
        try:
            client = self.client()
            with self.guard():
                if create:
                    col = client.get_or_create_collection(
                        name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                    )
                else:
                    col = client.get_collection(name, embedding_function=None)
        except StoreUnavailable:
            if self.url:
                self.reset()
            raise
        return _Guarded(col, self.breaker) if self.url else col

    def delete_collection(self, name: str) -> None:
        with self.guard(), contextlib.suppress(ValueError):
            self.client().delete_collection(name)

    def heartbeat(self) -> bool:
        """True when the store answers now (within the time limit)."""
        try:
            client = self.client()
            with self.guard():
                client.heartbeat()
            return True
        except StoreUnavailable:
            if self.url:
                self.reset()
            return False


def _without(got: dict[str, list], passages: set[str], *, ids: bool) -> dict[str, list]:
    """Records other than the ``passages`` (by their own id) or their sentences (by ``chunk_id``)."""
    if ids:
        rows = [i for i, rid in enumerate(got["ids"]) if rid not in passages]
    else:
        rows = [i for i, m in enumerate(got["metadatas"]) if m.get("chunk_id") not in passages]
    return {key: [values[i] for i in rows] for key, values in got.items()}


def _only(got: dict[str, list], documents: set[str]) -> dict[str, list]:
    rows = [i for i, m in enumerate(got["metadatas"]) if m.get("doc_id") in documents]
    return {key: [values[i] for i in rows] for key, values in got.items()}


def present_ids(collection: Any, ids: list[str], page: int = PAGE) -> set[str]:
    """Which of ``ids`` the collection holds, asked a page at a time."""
    found: set[str] = set()
    for i in range(0, len(ids), page):
        found.update(collection.get(ids=ids[i : i + page], include=[])["ids"])
    return found


def delete_where(collection: Any, where: dict[str, Any], page: int = PAGE) -> int:
    """Delete every record matching ``where``, a page of ids at a time; the number deleted."""
    ids = get_all(collection, where, [], page)["ids"]
    for i in range(0, len(ids), page):
        collection.delete(ids=ids[i : i + page])
    return len(ids)


class CollectionIndex:
    """Read access to one collection of passages and sentences, shaped as the retriever expects.

    Everything is read once, when the object is made; the vector query then runs in memory.
    """

    def __init__(self, collection: Any, *, order: list[str] | None = None, held_back: set[str] = frozenset()) -> None:
        """``order``: the documents to read, in their order; records of any other document in the
        collection (an approval that did not finish, say) are left out, and so are the passages in
        ``held_back`` (flagged, not confirmed by the reviewer) with their sentences."""
        with guarded():
            chunks = get_all(collection, {"kind": "chunk"}, ["documents", "metadatas"])
            units = get_all(collection, {"kind": "unit"}, ["documents", "metadatas", "embeddings"])
        if order is not None:
            keep = set(order)
            chunks = _only(chunks, keep)
            units = _only(units, keep)
        if held_back:
            chunks = _without(chunks, set(held_back), ids=True)
            units = _without(units, set(held_back), ids=False)
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
        self._unit_list: list[Unit] = []  # aligned with the rows of the vectors
        for doc, meta, vec in zip(units["documents"], units["metadatas"], self._unit_vectors):
            unit = unit_from_record(doc, meta)
            self._unit_list.append(unit)
            self._units.setdefault(meta["chunk_id"], []).append((unit, vec))
        if len(self._unit_ids):  # unit length (Chroma keeps them so; made sure): dot product = cosine
            self._unit_vectors /= np.maximum(np.linalg.norm(self._unit_vectors, axis=1, keepdims=True), 1e-12)
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
        """The ``k`` nearest sentences with their cosine similarity, computed exactly over the
        vectors read when the object was made (held-back passages are already left out).

        Exact rather than the store's approximate search: a collection full of near-identical
        sentences (a long list of notes, say) can hide the one sentence that answers from an HNSW
        graph, and the vectors are in memory anyway.
        """
        from assistant.index.derived import exact_nearest

        if len(self._unit_ids) == 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        rows, sims = exact_nearest(self._unit_vectors, q / max(float(np.linalg.norm(q)), 1e-12), max(1, k))
        return [(self._unit_list[i], float(s)) for i, s in zip(rows.tolist(), sims.tolist())]


# -- the shared corpus index on a Chroma server ------------------------------------------------------

META_KEY = "pht_index"


class _Guarded:
    """A collection whose every call turns a failure to reach the server into StoreUnavailable
    (through the server's breaker: a call while the server is known to hang fails at once)."""

    def __init__(self, collection: Any, breaker: Breaker | None = None) -> None:
        self._collection = collection
        self._breaker = breaker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with guarded(breaker=self._breaker):
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

    store = Store.shared(settings.chroma_url, settings.store_timeout)
    client = store.client()
    try:
        with store.guard():
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
    return ChromaIndex.over_collection(_Guarded(col, store.breaker), IndexMeta.from_json(json.loads(raw)))


def server_generation(settings: Any) -> str | None:
    """The generation of the index on the Chroma server (from its record), ``None`` if it has none."""
    import json

    store = Store.shared(settings.chroma_url, settings.store_timeout)
    try:
        col = store.collection(settings.collection, create=False)
    except StoreUnavailable:
        raise
    except Exception:  # no such collection yet
        return None
    raw = (col.metadata or {}).get(META_KEY)
    return json.loads(raw).get("generation") if raw else None


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
        remote = Store(url=settings.chroma_url, timeout=max(settings.store_timeout, 60.0)).collection(meta.collection)
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
