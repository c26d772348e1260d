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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np

from assistant.corpus.parse import INTRO, OUTRO, Chunk, Unit
from assistant.index.embedded import ChromaIndex
from assistant.retrieval.lexical import CLIPPINGS, Speller, expand, family, known_form
from assistant.retrieval.prepare import HUB_NEIGHBOURS, HUB_SAMPLE, Bm25Scores, TermSets, hubness, lexical_arrays
from assistant.settings import CALIBRATED_RELEVANCE

# Words every question and passage in this domain share: they say nothing about *which* passage
# answers. Stemmed at import.
_DOMAIN_GENERIC = (
    "pht proximal high upper hamstring hamstrings tendinopathy tendinopathies tendinitis tendonitis "
    "tendinosis tendon tendons condition pain painful hurt hurts hurting sore injury injured issue "
    "problem problems help advice question questions please thanks thank physio anyone "
    "mean means meaning define definition explain"  # how a question asks, not what about
)
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any anything are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each else ever every few for from further get gets getting got had hadn't has hasn't
    have haven't having he her here hers herself him himself his how i i'd i'll i'm i've if im ive in into is
    isn't it it's its itself just know let's like lot make me might more most much must my myself need no nor
    not now of off oh ok okay on once only or other ought our ours ourselves out over own really same shall
    she should shouldn't so some something still such than that that's the their theirs them themselves
    then there there's these they they're thing things this those through to too under until up us very
    want was wasn't way we every we're were weren't what what's when where which while who whom why will with
    won't would wouldn't yeah yes yet you you're your yours yourself yourselves""".split()
)
_STOPWORDS = _STOPWORDS | {w.replace("'", "") for w in _STOPWORDS}  # "whats", "dont", ...
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _generic_stems() -> frozenset[str]:
    return frozenset(_stems(_DOMAIN_GENERIC.split()))


_BRITISH_IZE = re.compile(r"^(\w{4,})is(e|ed|es|ing|ation|ations)$")


def _words(text: str) -> list[str]:
    """Lower-case words of ``text``, apostrophes dropped ("don't" -> "dont")."""
    return [m.replace("'", "") for m in _WORD.findall(text.lower().replace("’", "'"))]


def _stems(words: list[str]) -> list[str]:
    """Index keys of words: clippings expanded (assistant.retrieval.lexical), British -ise folded, Snowball
    stems joined into word families ("runner" and "running")."""
    words = [_BRITISH_IZE.sub(r"\1iz\2", expand(w)) for w in words]
    return [family(w) for w in _stemmer().stemWords(words)]


def terms(text: str) -> list[str]:
    """Stemmed words of ``text`` without stopwords ("personalised" and "personalized" agree,
    and so do "rehab" and "rehabilitation", "runner" and "running").

    >>> terms("Personalised rehab advice for runners")
    ['person', 'rehabilit', 'advic', 'run']
    """
    return _terms_of(_words(text))


def _terms_of(words: list[str]) -> list[str]:
    words = [w for w in words if w not in _STOPWORDS and expand(w) not in _STOPWORDS]
    return [w for w in _stems(words) if len(w) > 1]


@lru_cache(maxsize=4096)
def _is_generic(stem: str) -> bool:
    """A domain word, or a misspelling of one ("tendonopathy", "hamstrng")."""
    generic = _generic_stems()
    if stem in generic:
        return True
    if len(stem) < 6:
        return False
    from difflib import get_close_matches

    return bool(get_close_matches(stem, generic, n=1, cutoff=0.85))


def content_terms(text: str) -> list[str]:
    """The question's specific words: :func:`terms` less the words the whole domain shares."""
    seen: dict[str, None] = {}
    for t in terms(text):
        if not _is_generic(t):
            seen.setdefault(t, None)
    return list(seen)


@dataclass
class Passage:
    """A retrieved passage with the evidence for it."""

    chunk: Chunk
    relevance: float  # calibrated 0..1: how likely this passage answers the question
    dense: float  # best unit similarity, hubness-corrected
    lexical: float  # BM25 score
    fused: float  # reciprocal-rank-fusion score (orders the passages)
    coverage: float  # share of the question's specific words found in the passage
    units: list[tuple[Unit, float]] = field(default_factory=list)  # every unit, text order, raw similarity


class Retriever(Protocol):
    """Stage contract: question (and its vector) in, passages best first out."""

    def retrieve(self, question: str, vector: list[float]) -> list[Passage]: ...


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
    """Dense units in Chroma + BM25 over passages, fused by reciprocal rank. Thread-safe."""

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
        headed = {d for d, cs in self._by_doc.items() if any(not _outside(c) for c in cs)}
        # framing text: a document's introduction or closing paragraph, beside its headed
        # sections (a document without headings is all intro, and that is its content)
        self._framing = [_outside(c) and c.doc_id in headed for c in self._chunks]
        lexical = lexical_arrays([_words(f"{c.section_title} {c.text}") for c in self._chunks], _terms_of)
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

    def retrieve(self, question: str, vector: list[float], *, focus: str | None = None) -> list[Passage]:
        """Passages best first. ``focus``: the text whose specific words coverage counts
        (defaults to ``question``; a follow-up searched together with the turn before it still
        has to be answered on its own words)."""
        self.warm_up()
        n = len(self._chunks)
        if n == 0:
            return []
        hits = self._nearest(vector)
        qterms = self._query_terms(question)
        focus_terms = self._query_terms(focus) if focus is not None else qterms
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
        return self._spelled(content_terms(" ".join(self._word(w) for w in _words(text))))

    @lru_cache(maxsize=8192)  # noqa: B019 - one retriever per index, kept for the process
    def _word(self, word: str) -> str:
        """``word``, or the index's (or a stopword's) spelling of it when it is a typo: not a
        stopword, a clipping, nor a word the index or the domain uses. A known English word (or an
        inflection of one) is only corrected for a doubled letter ("runing" but not "taping")."""
        if word in _STOPWORDS or word in CLIPPINGS or not word.isalpha():
            return word
        key = _stems([word])[0]
        if key in self._vocabulary_set or key in _generic_stems():
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

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        self.warm_up()
        return list(self._by_doc.get(doc_id, ()))

    def max_similarity(self, vector: list[float]) -> float:
        """Raw similarity of the question to its nearest sentence anywhere in the corpus."""
        hits = self._nearest(vector)
        return max((sim for _, sim in hits), default=0.0)

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
    for w in (*_DOMAIN_GENERIC.split(), *CLIPPINGS):
        counts.setdefault(w, 1)
    return Speller(counts, preferred=_STOPWORDS)


class _Lexical:
    """BM25 scores for a question's terms (the passages' precomputed scores, by vocabulary position)."""

    def __init__(self, scores: Bm25Scores, vocabulary: list[str]) -> None:
        self._scores = scores
        self._position = {t: i for i, t in enumerate(vocabulary)}

    def get_scores(self, terms: list[str]) -> np.ndarray:
        return self._scores.get_scores(terms, self._position)


def _outside(chunk: Chunk) -> bool:
    """The chunk lies outside every headed section: the parser's introduction or closing text."""
    return (chunk.section_id, chunk.section_title) in (INTRO, OUTRO)


def _top(scores: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best kept scores, best first, ties by position: the same as a stable
    ``argsort(-scores)`` filtered by ``keep``, without sorting every passage of a large corpus."""
    pos = np.flatnonzero(keep)
    if len(pos) > k:
        cut = np.partition(scores[pos], len(pos) - k)[len(pos) - k]  # the k-th best score
        pos = pos[scores[pos] >= cut]
    return pos[np.lexsort((pos, -scores[pos]))][:k]
