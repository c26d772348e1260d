"""The fixed check set an encoder must pass: cosine 0.99 or better to sentence-transformers.

Used by the tests (``tests/test_embeddings.py``) and the benchmark (``benchmarks/bench.py``), so
both hold every backend (the float ONNX export, the int8 index encoder) to the same texts:
questions, odd inputs, the corpus's paragraphs and a text well past the model's 256 word pieces.
"""

from __future__ import annotations

from typing import Any

MIN_COSINE = 0.99

ODD_AND_QUESTIONS = [
    "Can I keep running while I rehab my high hamstring tendon?",
    "what is PHT",
    "hamstring pain when sitting",
    "My bum has gone numb since yesterday",
    "What is a good recipe for banana bread?",
    "x",
    "",
    "Ça fait mal quand je cours — 痛い 🏃",
    "sit-bone pain!!! 10/10??",
]


def check_set(corpus_text: str) -> list[str]:
    """The questions and odd inputs, the corpus's first 24 paragraphs, and its first 4,000 characters."""
    paragraphs = [p.strip() for p in corpus_text.split("\n\n") if p.strip()][:24]
    return [*ODD_AND_QUESTIONS, *paragraphs, corpus_text[:4000]]


def cosines(ours: Any, reference: Any) -> Any:
    """Row-wise cosine of two stacks of vectors (each row normalised here, to be safe)."""
    import numpy as np

    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return (a * b).sum(axis=1)
