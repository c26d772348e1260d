"""What "grounded" means, once: every sentence of a reply is supported by the passages it cites.

One definition, used by the pipeline before anyone sees a reply (:class:`SupportCheck`) and by the
evaluation's grounding metric (:func:`sentence_supports`):

1. Every citation's quote is the indexed text at its offsets (same document version).
2. Every sentence of substance carries a marker ``[n]`` (a paragraph's marker covers its
   sentences) that points at a citation; framing lines (:data:`FRAMING_LINES`) carry none.
3. Every sentence is *supported* by the quotes it cites: word for word (what the extractive
   composer writes), or as a faithful paraphrase. A paraphrase is supported when it is close in
   meaning to one cited sentence (embedding similarity), its specific words come from the cited
   text, and it adds nothing the text lacks: no number, dose or duration that is not there, no
   medical term that is not there, and no negation the text does not have (or drops one it has).
   The thresholds were chosen on faithful and unfaithful paraphrases kept in
   ``evals/grounding/``; docs/safety.md gives the check's precision and recall there.

>>> s = sentence_support("Running should be part of your rehab.", ["Running should be considered a part of your rehabilitation, not the end goal."])
>>> s.verbatim, s.supported
(False, False)
>>> sentence_support("Running should be considered a part of your rehabilitation, not the end goal.", ["Running should be considered a part of your rehabilitation, not the end goal."]).verbatim
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.contracts import FRAMING_LINES, Draft, GroundingResult, SentenceSupport, Sources

MARKER = re.compile(r"\s*\[(\d+)\]")
_SENTENCE = re.compile(r"(?<=[.!?])[\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"twenty|thirty|forty|fifty|hundred|half|once|twice|dozen)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|no|never|don't|doesn't|didn't|isn't|aren't|won't|can't|cannot|shouldn't|"
                       r"without|avoid\w*|stop\w*|nor|neither)\b|n't\b", re.IGNORECASE)
_QUANTITY = re.compile(
    r"\b(\d+(?:[.,]\d+)?\s*(?:-|to)?\s*\d*\s*(?:mg|g|kg|lbs?|ml|%|x|times?|sets?|reps?|repetitions?|"
    r"seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|miles?|km|kilomet\w+)|"
    r"(?:daily|weekly|twice|once) (?:a|per) \w+|every (?:day|week|other day|morning|night))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Thresholds:
    """Where a paraphrase stops being supported (evals/grounding, docs/safety.md)."""

    similarity: float = 0.74  # cosine to the closest cited sentence
    coverage: float = 0.6  # share of the sentence's specific words found in the cited text


def normal(text: str) -> str:
    """Whitespace and quote marks folded, for word-for-word comparison."""
    return _SPACE.sub(" ", text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')).strip()


def claims(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """The sentences of a reply body with the markers that cite them (a paragraph's markers cover
    each of its sentences, and a sentence's own markers are its own). Framing lines are left out.

    >>> claims("Here is what my sources say, quoted as written:\\n\\n> Run slowly. Rest well. [1]")
    [('Run slowly.', (1,)), ('Rest well.', (1,))]
    """
    out: list[tuple[str, tuple[int, ...]]] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = "\n".join(line.strip().removeprefix(">").strip() for line in para.strip().splitlines()).strip()
        if not para or para in FRAMING_LINES:
            continue
        para_markers = tuple(int(m) for m in MARKER.findall(para))
        sentences = [s.strip() for s in _SENTENCE.split(para) if s.strip()]
        for sentence in sentences:
            own = tuple(int(m) for m in MARKER.findall(sentence))
            claim = MARKER.sub("", sentence).strip()
            if claim:
                out.append((claim, own or para_markers))
    return out


def sentence_support(
    sentence: str,
    quotes: Sequence[str],
    embed: Callable[[list[str]], Any] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> SentenceSupport:
    """Whether ``sentence`` is supported by ``quotes`` (the text of the passages it cites).

    Word for word needs no model. A paraphrase needs ``embed`` (texts -> normalised vectors); without
    it a paraphrase is not supported.
    """
    claim = normal(MARKER.sub("", sentence))
    pool = [normal(q) for q in quotes if q]
    if not claim:
        return SentenceSupport(sentence, (), False, 0.0, False, "empty sentence")
    if any(claim in q for q in pool):
        return SentenceSupport(sentence, (), True, 1.0, True)
    if not pool:
        return SentenceSupport(sentence, (), False, 0.0, False, "cites nothing")
    text = " ".join(pool)
    reason = _adds_something(claim, text)
    from assistant.retrieval.terms import content_terms, terms

    words = content_terms(claim)
    known = set(terms(text))
    coverage = (sum(w in known for w in words) / len(words)) if words else 1.0
    if embed is None:
        return SentenceSupport(sentence, (), False, 0.0, False, reason or "a paraphrase needs the embedding model to check")
    candidates = [s for q in pool for s in _SENTENCE.split(q) if s.strip()] or pool
    import numpy as np

    vectors = np.asarray(embed([claim, *candidates]), dtype=np.float32)
    similarity = float((vectors[1:] @ vectors[0]).max())
    score = round(min(similarity, 0.5 + coverage / 2), 4)
    if not reason and coverage < thresholds.coverage:
        reason = f"only {coverage:.0%} of its specific words are in the cited text"
    if not reason and similarity < thresholds.similarity:
        reason = f"not close enough in meaning to the cited text (similarity {similarity:.2f})"
    return SentenceSupport(sentence, (), not reason, score, False, reason)


def _adds_something(claim: str, text: str) -> str:
    """What a paraphrase adds that the cited text does not have, or an empty string."""
    lower_text = text.lower()
    numbers = {m.group(0).lower() for m in _NUMBER.finditer(claim)} - {m.group(0).lower() for m in _NUMBER.finditer(text)}
    if numbers:
        return f"it gives a number the cited text does not: {', '.join(sorted(numbers))}"
    for m in _QUANTITY.finditer(claim):
        if m.group(0).lower() not in lower_text:
            return f"it gives a dose, count or duration the cited text does not: {m.group(0)}"
    negated_claim = bool(_NEGATION.search(claim))
    negated_text = bool(_NEGATION.search(text))
    if negated_claim and not negated_text:
        return "it negates something the cited text does not"
    from assistant.grounding.terms import new_medical_terms

    new = new_medical_terms(claim, text)
    if new:
        return f"it names something the cited text does not: {', '.join(new)}"
    return ""


class SupportCheck:
    """The grounding check (:class:`assistant.contracts.GroundingCheck`) over a draft."""

    def __init__(self, embedder: Any = None, thresholds: Thresholds = Thresholds()) -> None:
        self.embedder = embedder
        self.thresholds = thresholds

    def support(self, sentence: str, quotes: Sequence[str]) -> SentenceSupport:
        """Whether one sentence is supported by the quotes it cites (for a reply checked as it is written)."""
        embed = self.embedder.embed_documents if self.embedder is not None else None
        return sentence_support(sentence, quotes, embed, self.thresholds)

    def check(self, draft: Draft, sources: Sources) -> GroundingResult:
        if not draft.citations:
            return GroundingResult(False, "no citations")
        by_n = {c.n: c for c in draft.citations}
        for c in draft.citations:
            doc_id = c.source.split("#", 1)[0]
            text = sources.text_at(doc_id, c.version, c.start, c.end)
            if text is None:
                return GroundingResult(False, f"citation [{c.n}] names text that is not in the index")
            if text != c.quote:
                return GroundingResult(False, f"citation [{c.n}] does not match the source at its offsets")
        found = claims(draft.text)
        if not found:
            return GroundingResult(False, "empty reply")
        embed = self.embedder.embed_documents if self.embedder is not None else None
        results = []
        for sentence, markers in found:
            if not markers:
                return GroundingResult(False, "a sentence carries no citation marker", tuple(results))
            if any(m not in by_n for m in markers):
                return GroundingResult(False, "a marker points at no citation", tuple(results))
            support = sentence_support(sentence, [by_n[m].quote for m in markers], embed, self.thresholds)
            support = SentenceSupport(sentence, markers, support.supported, support.score, support.verbatim, support.reason)
            results.append(support)
            if not support.supported:
                return GroundingResult(False, f"a sentence is not supported by what it cites ({support.reason})", tuple(results))
        return GroundingResult(True, "", tuple(results))
