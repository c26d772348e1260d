"""Synthetic corpora for the scale benchmark: N passages beside the real corpus, vectors precomputed.

Each synthetic passage is a numbered section of one sentence (``Q&A n: title`` then ``Answer:
...``), so it is one passage with one sentence unit: two records in the store. Words come from
the real corpus and a list of made-up words (so BM25 sees a realistic, growing vocabulary); the
vector of a passage is a mix of two real sentence vectors plus noise, normalised. The encoder is
not run over synthetic text: the store and retrieval are what is measured. The real corpus is
included as it is (and encoded for real), so the benchmark's questions still find their answers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR = "2"  # bump when the generated corpus changes (cached stores are keyed by it)
DOC_SECTIONS = 1000  # sections per synthetic document


class PrecomputedEmbeddings:
    """Vectors for synthetic texts from a table; real texts go to the real encoder."""

    def __init__(self, real: Any, table: dict[str, np.ndarray]) -> None:
        self.real = real
        self.table = table
        self.model_id = real.model_id

    def warm_up(self) -> None:
        self.real.warm_up()

    @property
    def is_loaded(self) -> bool:
        return True

    def embed_documents(self, texts, progress=None):
        out: list[Any] = [None] * len(texts)
        missing = [i for i, t in enumerate(texts) if t not in self.table]
        for i, t in enumerate(texts):
            v = self.table.get(t)
            if v is not None:
                out[i] = v.tolist()
        if missing:
            for i, v in zip(missing, self.real.embed_documents([texts[i] for i in missing])):
                out[i] = v
        if progress:
            progress(len(texts))
        return out

    def embed_query(self, text: str):
        return self.real.embed_query(text)


def _words(corpus_dir: Path, rng: np.random.Generator) -> list[str]:
    real = sorted({w for w in re.findall(r"[a-z]{3,}", (corpus_dir / "pht_podcast_qa.txt").read_text().lower())})
    syllables = ["ka", "lo", "mi", "ren", "tu", "vas", "pel", "dor", "qui", "sen", "bra", "fi", "go", "nu"]
    made_up = {"".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(20000)}
    return real + sorted(made_up)


def make(n: int, target: Path, real_corpus: Path, encoder: Any, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """Write a corpus folder with the real documents plus ``n`` synthetic passages.

    Returns the folder and the vector table for the synthetic sentences and titled passages.
    """
    rng = np.random.default_rng(seed)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    manifest = (real_corpus / "manifest.toml").read_text(encoding="utf-8")
    for f in real_corpus.iterdir():
        if f.is_file() and f.name != "manifest.toml":
            shutil.copy2(f, target / f.name)

    words = np.array(_words(real_corpus, rng))  # an array: rng.choice on a list copies it every call
    # a pool of real vectors to mix: sentences of the real corpus and plain made-up sentences
    pool_texts = [s for s in re.split(r"(?<=[.!?])\s+", (real_corpus / "pht_podcast_qa.txt").read_text()) if len(s.split()) > 3]
    pool_texts += [" ".join(rng.choice(words[:2000], size=12)) for _ in range(200)]
    pool = np.asarray(encoder.embed_documents(pool_texts), dtype=np.float32)

    table: dict[str, np.ndarray] = {}
    rows = [manifest.rstrip() + "\n"]
    for d in range(0, n, DOC_SECTIONS):
        lines = []
        for i in range(d, min(n, d + DOC_SECTIONS)):
            title = " ".join(rng.choice(words, size=3)).capitalize()
            sentence = " ".join(rng.choice(words, size=int(rng.integers(14, 28)))).capitalize() + "."
            lines.append(f"Q&A {i - d + 1}: {title}\n\nAnswer: {sentence}\n")
            a, b = rng.integers(0, len(pool), size=2)
            v = pool[a] + 0.5 * pool[b] + rng.normal(0, 0.5 / np.sqrt(pool.shape[1]), pool.shape[1])
            v = (v / np.linalg.norm(v)).astype(np.float32)
            table[sentence] = v
        name = f"synthetic-{d // DOC_SECTIONS:04d}.txt"
        (target / name).write_text(f"Synthetic notes {d // DOC_SECTIONS}\n\n" + "\n".join(lines), encoding="utf-8")
        rows.append(
            f'[[document]]\nid = "synthetic-{d // DOC_SECTIONS:04d}"\nfile = "{name}"\n'
            f'title = "Synthetic notes {d // DOC_SECTIONS}"\norigin = "benchmark"\nadded = "2026-11-26"\nreviewed_by = ""\n'
        )
    (target / "manifest.toml").write_text("\n".join(rows), encoding="utf-8")
    return target, table


HANDBOOK_GENERATOR = "1"  # bump when the generated handbook changes
HANDBOOK_SECTIONS_PER_FILE = 500


def make_handbook(n: int, target: Path, real_corpus: Path, encoder: Any, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """A clinic's handbook: ``n`` Markdown sections (a ``##`` heading, then about 90 words in five
    sentences) in files of 500 sections, beside the real corpus. Returns the folder and the vector
    table for the synthetic sentences (mixed from real vectors, as :func:`make`)."""
    rng = np.random.default_rng(seed)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    manifest = (real_corpus / "manifest.toml").read_text(encoding="utf-8")
    for f in real_corpus.iterdir():
        if f.is_file() and f.name != "manifest.toml":
            shutil.copy2(f, target / f.name)
    words = np.array(_words(real_corpus, rng))
    pool_texts = [s for s in re.split(r"(?<=[.!?])\s+", (real_corpus / "pht_podcast_qa.txt").read_text()) if len(s.split()) > 3]
    pool_texts += [" ".join(rng.choice(words[:2000], size=12)) for _ in range(200)]
    pool = np.asarray(encoder.embed_documents(pool_texts), dtype=np.float32)
    table: dict[str, np.ndarray] = {}
    rows = [manifest.rstrip() + "\n"]
    for f, d in enumerate(range(0, n, HANDBOOK_SECTIONS_PER_FILE)):
        parts = [f"# Clinic handbook, part {f + 1}\n"]
        for i in range(d, min(n, d + HANDBOOK_SECTIONS_PER_FILE)):
            title = " ".join(rng.choice(words, size=3)).capitalize()
            sentences = []
            for _ in range(5):
                s = " ".join(rng.choice(words, size=int(rng.integers(14, 22)))).capitalize() + "."
                a, b = rng.integers(0, len(pool), size=2)
                v = pool[a] + 0.5 * pool[b] + rng.normal(0, 0.5 / np.sqrt(pool.shape[1]), pool.shape[1])
                table[s] = (v / np.linalg.norm(v)).astype(np.float32)
                sentences.append(s)
            parts.append(f"## {title} {i + 1}\n\n{' '.join(sentences)}\n")
        name = f"handbook-{f:03d}.md"
        (target / name).write_text("\n".join(parts), encoding="utf-8")
        rows.append(
            f'[[document]]\nid = "handbook-{f:03d}"\nfile = "{name}"\ntitle = "Clinic handbook, part {f + 1}"\n'
            f'origin = "benchmark"\nadded = "2026-11-29"\nreviewed_by = ""\n'
        )
    (target / "manifest.toml").write_text("\n".join(rows), encoding="utf-8")
    return target, table
