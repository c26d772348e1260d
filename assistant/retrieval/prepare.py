"""What retrieval works out once per index, and the small readers over it.

The retriever used to work these out in every process that opened an index (BM25 over every
passage, the speller's word counts, each sentence's hubness): tens of seconds and gigabytes at
100,000 passages. They depend only on the index, so the index build works them out once
(:mod:`assistant.index.derived` writes them into the index's generation folder) and a reader
maps them. A store without such a folder (a clinic's collection, a Chroma server) gets the same
arrays computed in memory by the same functions, so both paths score alike.

>>> scores = Bm25Scores(np.array([1.5, 2.0], np.float32), np.array([0, 1]), np.array([0, 1, 2]), 2, np.array([0, 1]))
>>> scores.get_scores(["a", "b"], {"a": 0, "b": 1}).tolist()
[1.5, 2.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HUB_NEIGHBOURS = 8
HUB_SAMPLE = 4096


def terms_fingerprint() -> str:
    """Changes when the way a passage is cut into index terms changes (the code of the steps,
    the stopwords, the clippings in the vocabulary file): derived arrays made another way are stale."""
    import hashlib
    import inspect
    import json

    from assistant.retrieval import lexical, terms

    h = hashlib.sha256()
    for f in (terms.words, terms.stems, terms.terms_of, terms._stemmer, lexical.expand, lexical.family):
        h.update(inspect.getsource(inspect.unwrap(f)).encode())
    h.update(json.dumps([sorted(terms.STOPWORDS), terms._WORD.pattern, terms._BRITISH_IZE.pattern,
                         sorted(lexical.clippings().items())]).encode())
    return h.hexdigest()[:16]


def hubness(ids: np.ndarray, vectors: np.ndarray, groups: np.ndarray,
            neighbours: int = HUB_NEIGHBOURS, sample: int = HUB_SAMPLE) -> np.ndarray:
    """Each unit's mean similarity to its nearest units in *other* sections (float64, row order).

    The reference set is every unit, or ``sample`` of them drawn with a fixed seed over the rows
    in the order given (the order the store returns them)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.float64)
    rng = np.random.default_rng(0)
    ref = np.arange(len(ids)) if len(ids) <= sample else rng.choice(len(ids), sample, replace=False)
    ref_vecs, ref_groups = vectors[ref], groups[ref]
    out = np.zeros(len(ids), dtype=np.float64)
    k = min(neighbours, len(ref))
    for start in range(0, len(ids), 1024):
        block = slice(start, start + 1024)
        sims = np.asarray(vectors[block]) @ ref_vecs.T
        sims[groups[block, None] == ref_groups[None, :]] = -np.inf  # same section: not a neighbour
        top = np.sort(sims, axis=1)[:, -k:]
        top[~np.isfinite(top)] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a unit with no neighbours at all
            means = np.nan_to_num(np.nanmean(top, axis=1), nan=0.0)
        out[block] = means
    return out


def lexical_arrays(chunk_words: list[list[str]], terms_of: Callable[[list[str]], list[str]]) -> dict[str, Any]:
    """BM25 over the passages' terms, the sorted vocabulary, each passage's terms and the word
    counts the speller needs. ``chunk_words``: each passage's words (title and text)."""
    import bm25s

    # a word's terms do not depend on its neighbours (each step works word by word), and a corpus
    # repeats its words: each distinct word is cut once (a tenth of the time at 100k passages)
    cut: dict[str, list[str]] = {}

    def terms(words: list[str]) -> list[str]:
        out: list[str] = []
        for w in words:
            t = cut.get(w)
            if t is None:
                t = cut[w] = terms_of([w])
            out.extend(t)
        return out

    tokens = [terms(w) for w in chunk_words]
    vocabulary = sorted(set().union(*map(set, tokens))) if tokens else []
    position = {t: i for i, t in enumerate(vocabulary)}
    bm25 = bm25s.BM25()
    bm25.index([t or [""] for t in tokens], show_progress=False)
    col = np.array([bm25.vocab_dict[t] for t in vocabulary], dtype=np.int64)
    ptr = np.zeros(len(tokens) + 1, dtype=np.int64)
    ids: list[int] = []
    for i, t in enumerate(tokens):
        ids.extend(sorted({position[x] for x in t}))
        ptr[i + 1] = len(ids)
    counts: dict[str, int] = {}
    for words in chunk_words:
        for w in words:
            if w.isalpha():
                counts[w] = counts.get(w, 0) + 1
    s = bm25.scores
    return {
        "vocabulary": vocabulary,
        "speller_counts": counts,
        "bm25_data": np.asarray(s["data"]),
        "bm25_indices": np.asarray(s["indices"]),
        "bm25_indptr": np.asarray(s["indptr"]),
        "bm25_col": col,
        "bm25_docs": int(s["num_docs"]),
        "chunk_terms_ptr": ptr,
        "chunk_terms_ids": np.array(ids, dtype=np.int32),
    }


class Bm25Scores:
    """BM25 scores of every passage for a query's terms, from the arrays bm25s builds.

    The same arithmetic as ``bm25s.BM25.get_scores`` (method "lucene": the precomputed
    per-term, per-passage scores added up term by term, in float32), read from memory-mapped
    arrays, so a reader never imports bm25s (nor scipy)."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_docs: int, col: np.ndarray):
        self.data, self.indices, self.indptr, self.num_docs, self.col = data, indices, indptr, num_docs, col

    def get_scores(self, terms: list[str], position: dict[str, int]) -> np.ndarray:
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for t in terms:
            i = position.get(t)
            if i is None:
                continue
            c = int(self.col[i])
            start, end = int(self.indptr[c]), int(self.indptr[c + 1])
            np.add.at(scores, np.asarray(self.indices[start:end]), np.asarray(self.data[start:end]))
        return scores


class TermSets(Sequence):
    """Each passage's set of terms, made when asked for (``terms in term_sets[pos]``)."""

    KEEP = 65_536  # sets kept once made (a passage is asked about again and again)

    def __init__(self, ptr: np.ndarray, ids: np.ndarray, vocabulary: Sequence[str]) -> None:
        self._ptr, self._ids, self._vocabulary = ptr, ids, vocabulary
        self._made: dict[int, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._ptr) - 1

    def __getitem__(self, pos: int) -> frozenset[str]:  # type: ignore[override]
        made = self._made.get(pos)
        if made is None:
            v = self._vocabulary
            made = frozenset(v[i] for i in self._ids[self._ptr[pos] : self._ptr[pos + 1]].tolist())
            if len(self._made) >= self.KEEP:
                self._made.clear()
            self._made[pos] = made
        return made
