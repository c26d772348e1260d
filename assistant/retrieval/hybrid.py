"""Find the passages that answer a question: dense (Chroma) and lexical (BM25), fused by rank.

The index stores passages and, beside them, their sentences ("units"). Dense search runs over
the units, so a passage is found by the sentence that best matches the question, and each unit's
score is corrected for hubness: a sentence that resembles everything (an introduction listing
every topic) is discounted by its mean similarity to its nearest sentences elsewhere in the
corpus. BM25 scores whole passages on the question's specific words (clippings expanded, word
families joined, misspellings corrected against the index's own words: assistant.retrieval.lexical).
Reciprocal-rank fusion, the two lists weighted alike, orders the passages. Where the lists disagree the fused scores tie; a
passage of a headed section then comes before its document's framing text (the introduction or
closing paragraph, which restate every section), and otherwise the more relevant passage first. A
calibrated relevance (a logistic over the corrected dense score and the share of the question's
specific words the passage contains) decides whether the best passage answers at all. docs/retrieval.md records how the numbers were chosen.

>>> from assistant.retrieval.hybrid import content_terms
>>> content_terms("Can I run a marathon with proximal hamstring tendinopathy?")
['run', 'marathon']
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assistant.contracts import Passage, Query
from assistant.corpus.parse import Chunk, Unit, framing
from assistant.index.embedded import ChromaIndex
from assistant.retrieval.lexical import Speller, clippings, known_form
from assistant.retrieval.prepare import HUB_NEIGHBOURS, HUB_SAMPLE, Bm25Scores, TermSets, hubness, lexical_arrays
from assistant.retrieval.terms import STOPWORDS, content_terms, generic_stems, stems, terms_of, words
from assistant.retrieval.vocabulary import vocabulary
from assistant.settings import CALIBRATED_RELEVANCE


@dataclass(frozen=True)
class RelevanceModel:
    """relevance = logistic(w_dense * dense + w_coverage * coverage + bias)."""

    w_dense: float = CALIBRATED_RELEVANCE[0]
    w_coverage: float = CALIBRATED_RELEVANCE[1]
    bias: float = CALIBRATED_RELEVANCE[2]

    def __call__(self, dense: float, coverage: float) -> float:
        z = self.w_dense * dense + self.w_coverage * coverage + self.bias
        return 1.0 / (1.0 + math.exp(-z))


class HybridRetriever:
    """Dense units in Chroma + BM25 over passages, fused by reciprocal rank. Thread-safe.

    The retriever stage (:class:`assistant.contracts.Retriever`) and the :class:`~assistant.contracts.Sources`
    it searches."""

    HUB_NEIGHBOURS = HUB_NEIGHBOURS
    HUB_WEIGHT = 1.0
    HUB_SAMPLE = HUB_SAMPLE

    def __init__(
        self,
        index: ChromaIndex,
        *,
        candidates: int = 20,
        rrf_k: int = 60,
        relevance: RelevanceModel | None = None,
        detail: int = 5,
        lexical_weight: float = 1.0,
    ) -> None:
        self.lexical_weight = lexical_weight
        self.index = index
        self.detail = detail  # passages whose sentences are scored for the composer
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.relevance = relevance or RelevanceModel()
        self._lock = threading.Lock()
        self._ready = False
        self._recent: OrderedDict[bytes, list] = OrderedDict()  # vector -> nearest units

    # -- set-up, once ------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Make the passage table, BM25, the speller, framing and hubness ready.

        An index with derived arrays (assistant.index.derived: worked out when the index was
        built) is only mapped here; any other store (a clinic's collection, a Chroma server) has
        the same arrays worked out in memory by the same functions (assistant.retrieval.prepare).
        """
        with self._lock:
            if self._ready:
                return
            derived = getattr(self.index, "derived", None)
            if derived is not None:
                self._from_derived(derived)
            else:
                self._in_memory()
            self._vocabulary_set = frozenset(self._vocabulary)
            self._ready = True

    def _from_derived(self, d) -> None:
        from assistant.index.derived import ByDocument, ChunkPositions, ChunkTable, HubTable

        self._chunks = ChunkTable(d)
        self._chunk_pos = ChunkPositions(d)
        self._by_doc = ByDocument(d, self._chunks)
        self._framing = d.array("framing")
        self._vocabulary = d.data["vocabulary"]
        self._speller = _speller_from_counts(d.data["speller_counts"])
        self._bm25 = _Lexical(
            Bm25Scores(d.array("bm25_data"), d.array("bm25_indices"), d.array("bm25_indptr"),
                       d.data["bm25_docs"], d.array("bm25_col")),
            self._vocabulary,
        )
        self._chunk_terms = TermSets(d.array("chunk_terms_ptr"), d.array("chunk_terms_ids"), self._vocabulary)
        self._hub = HubTable(d)

    def _in_memory(self) -> None:
        self._chunks = self.index.records()
        self._chunk_pos = {c.id: i for i, c in enumerate(self._chunks)}
        self._by_doc: dict[str, list[Chunk]] = {}
        for c in self._chunks:
            self._by_doc.setdefault(c.doc_id, []).append(c)
        self._framing = framing(self._chunks)
        lexical = lexical_arrays([words(f"{c.section_title} {c.text}") for c in self._chunks], terms_of)
        self._vocabulary = lexical["vocabulary"]
        self._speller = _speller_from_counts(lexical["speller_counts"])
        self._bm25 = _Lexical(
            Bm25Scores(lexical["bm25_data"], lexical["bm25_indices"], lexical["bm25_indptr"],
                       lexical["bm25_docs"], lexical["bm25_col"]),
            self._vocabulary,
        )
        self._chunk_terms = TermSets(lexical["chunk_terms_ptr"], lexical["chunk_terms_ids"], self._vocabulary)
        self._hub = self._hubness()

    def _hubness(self) -> dict[str, float]:
        """Each unit's mean similarity to its nearest units in *other* sections."""
        ids, vectors, groups = self.index.unit_vectors()
        values = hubness(ids, vectors, groups, self.HUB_NEIGHBOURS, self.HUB_SAMPLE)
        return dict(zip(np.asarray(ids).tolist(), values.tolist(), strict=True))

    # -- per question --------------------------------------------------------------------------

    def retrieve(self, query: Query) -> list[Passage]:
        """Passages best first for ``query.text``; coverage counts the specific words of
        ``query.focus`` (a follow-up searched together with the turn before it still has to be
        answered on its own words)."""
        self.warm_up()
        n = len(self._chunks)
        if n == 0:
            return []
        vector = list(query.vector)
        hits = self._nearest(vector)
        qterms = self._query_terms(query.text)
        focus_terms = self._query_terms(query.focus) if query.focus != query.text else qterms
        # A question made only of the domain's own words ("what is PHT?") is about the condition
        # itself: the overview passages hubness discounts are then the right ones.
        hub_weight = self.HUB_WEIGHT if qterms else 0.0
        dense = np.full(n, -np.inf)
        for unit, sim in hits:
            pos = self._chunk_pos.get(unit.chunk_id)
            if pos is None:
                continue
            corrected = sim - hub_weight * self._hub.get(unit.id, 0.0)
            dense[pos] = max(dense[pos], corrected)

        lexical = self._bm25.get_scores(qterms) if qterms else np.zeros(n)

        fused = np.zeros(n)
        for scores, weight in ((dense, 1.0), (lexical, self.lexical_weight)):
            keep = np.isfinite(scores) if scores is dense else scores > 0
            for rank, pos in enumerate(_top(scores, keep, self.candidates)):
                fused[pos] += weight / (self.rrf_k + rank + 1)

        qvec = np.asarray(vector, dtype=np.float32)
        out = []
        for pos in _top(fused, fused > 0, self.candidates).tolist():
            cov = (
                (sum(t in self._chunk_terms[pos] for t in focus_terms) / len(focus_terms))
                if focus_terms
                else 0.5
            )
            d = float(dense[pos]) if np.isfinite(dense[pos]) else -1.0
            out.append(
                Passage(
                    chunk=self._chunks[pos],
                    relevance=self.relevance(d, cov),
                    dense=d,
                    lexical=float(lexical[pos]),
                    fused=float(fused[pos]),
                    coverage=cov,
                )
            )
        # Equal fused scores (dense ranks one first, BM25 the other): a passage of a headed section
        # before framing text, then the more relevant; the sort is stable, so then by position.
        framing = self._framing
        out.sort(key=lambda p: (-round(p.fused, 12), framing[self._chunk_pos[p.chunk.id]], -p.relevance))
        for p in out[: self.detail]:
            p.units = self._scored_units(p.chunk.id, qvec)
        return out

    def _query_terms(self, text: str) -> list[str]:
        """The specific words of a question, misspellings corrected: first word by word against
        the words the index uses (assistant.retrieval.lexical.Speller), then stem by stem."""
        return self._spelled(content_terms(" ".join(self._word(w) for w in words(text))))

    @lru_cache(maxsize=8192)  # noqa: B019 - one retriever per index, kept for the process
    def _word(self, word: str) -> str:
        """``word``, or the index's (or a stopword's) spelling of it when it is a typo: not a
        stopword, a clipping, nor a word the index or the domain uses. A known English word (or an
        inflection of one) is only corrected for a doubled letter ("runing" but not "taping")."""
        if word in STOPWORDS or word in clippings() or not word.isalpha():
            return word
        key = stems([word])[0]
        if key in self._vocabulary_set or key in generic_stems():
            return word
        return self._speller.correct(word, doubling_only=known_form(word)) or word

    def _spelled(self, words: list[str]) -> list[str]:
        """Words the corpus never uses, replaced by a close spelling it does ("stregnth")."""
        return [self._spelling(w) for w in words]

    @lru_cache(maxsize=4096)  # noqa: B019 - one retriever per index, kept for the process
    def _spelling(self, word: str) -> str:
        if word in self._vocabulary_set or len(word) < 7 or len(self._vocabulary) > 200_000:
            return word
        from difflib import get_close_matches

        close = get_close_matches(word, self._vocabulary, n=1, cutoff=0.86)
        if not close or word.startswith(close[0]):  # "strengthen" is a word of its own, not a typo
            return word
        return close[0]

    def _scored_units(self, chunk_id: str, qvec: np.ndarray) -> list[tuple[Unit, float]]:
        return [(unit, float(vec @ qvec)) for unit, vec in self.index.units_of(chunk_id)]

    def nearest(self, vector: Sequence[float]) -> float:
        """Raw similarity of a vector to its nearest sentence anywhere in the corpus."""
        self.warm_up()
        hits = self._nearest(list(vector))
        return max((sim for _, sim in hits), default=0.0)

    def spelled(self, text: str) -> str:
        """``text`` with misspelt words replaced by the spelling the sources use ("excercises")."""
        self.warm_up()

        def fix(m: re.Match[str]) -> str:
            word = m.group(0)
            lower = word.lower()
            if not lower.isalpha():
                return word
            fixed = self._word(lower)
            return word if fixed == lower else fixed

        return re.sub(r"[A-Za-z]+", fix, text)

    def query_terms(self, text: str) -> list[str]:
        """The specific words of a text as this index spells them (typos corrected)."""
        self.warm_up()
        return self._query_terms(text)

    # -- the sources it searches (assistant.contracts.Sources) ----------------------------------

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        self.warm_up()
        return list(self._by_doc.get(doc_id, ()))

    def text_at(self, doc_id: str, version: str, start: int, end: int) -> str | None:
        for chunk in self.chunks_of(doc_id):
            if chunk.version == version and chunk.start <= start and end <= chunk.end:
                return chunk.text[start - chunk.start : end - chunk.start]
        return None

    def vocabulary(self) -> frozenset[str]:
        self.warm_up()
        return self._vocabulary_set

    def documents(self) -> dict[str, dict]:
        meta = getattr(self.index, "meta", None)  # a clinic's collection has no index record
        return dict(meta.documents) if meta is not None else {}

    def chunk_terms(self, chunk_id: str) -> frozenset[str]:
        """The index terms of one passage (its section title included)."""
        self.warm_up()
        pos = self._chunk_pos.get(chunk_id)
        return frozenset(self._chunk_terms[pos]) if pos is not None else frozenset()

    def _nearest(self, vector: list[float]) -> list[tuple[Unit, float]]:
        """The dense candidates for a vector: one store query, shared by triage and retrieval."""
        key = np.asarray(vector, dtype=np.float32).tobytes()
        with self._lock:
            hits = self._recent.get(key)
        if hits is None:
            hits = self.index.query_units(vector, self.candidates * 4)
            with self._lock:
                self._recent[key] = hits
                while len(self._recent) > 16:
                    self._recent.popitem(last=False)
        return hits


def _speller_from_counts(counts: dict[str, int]) -> Speller:
    """A speller over the words of the passages (``counts``: how often each is used), the
    stopwords (preferred) and the domain's words."""
    counts = dict(counts)
    for w in (*vocabulary().domain_generic, *clippings()):
        counts.setdefault(w, 1)
    return Speller(counts, preferred=STOPWORDS)


class _Lexical:
    """BM25 scores for a question's terms (the passages' precomputed scores, by vocabulary position)."""

    def __init__(self, scores: Bm25Scores, vocabulary: list[str]) -> None:
        self._scores = scores
        self._position = {t: i for i, t in enumerate(vocabulary)}

    def get_scores(self, terms: list[str]) -> np.ndarray:
        return self._scores.get_scores(terms, self._position)


def _top(scores: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best kept scores, best first, ties by position: the same as a stable
    ``argsort(-scores)`` filtered by ``keep``, without sorting every passage of a large corpus."""
    pos = np.flatnonzero(keep)
    if len(pos) > k:
        cut = np.partition(scores[pos], len(pos) - k)[len(pos) - k]  # the k-th best score
        pos = pos[scores[pos] >= cut]
    return pos[np.lexsort((pos, -scores[pos]))][:k]
