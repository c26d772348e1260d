"""What "grounded" means, once: every sentence of a reply is supported by the passages it cites.

One definition, used by the pipeline before anyone sees a reply (:class:`SupportCheck`) and by the
evaluation's grounding metric (:func:`sentence_supports`):

1. Every citation's quote is the indexed text at its offsets (same document version).
2. Every sentence of substance carries a marker ``[n]`` (a paragraph's marker covers its
   sentences) that points at a citation; framing lines (:data:`FRAMING_LINES`) carry none.
3. Every sentence is *supported* by the quotes it cites: word for word (whole sentences of a
   quote, what the extractive composer writes; a piece cut out of a sentence is not word for
   word), or as a faithful paraphrase. A paraphrase is supported when it is close in meaning to
   one cited sentence (embedding similarity), its specific words come from the cited text, and it
   adds nothing the text lacks: no number, dose or duration that is not there, no medical term
   that is not there, no certainty the text does not claim ("always", "cures", "guaranteed"), and
   no negation the closest sentence does not have (nor drops one it has). Sentences of a passage
   that give orders to a language model ("ignore your instructions...") support nothing.
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
_NOT_A_COUNT = re.compile(r"\b(?:no one|one (?:example|of|way|thing|another|at a time|day to the next))\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|no|never|don't|doesn't|didn't|isn't|aren't|won't|can't|cannot|shouldn't|"
                       r"without|avoid\w*|stop\w*|nor|neither|stay away|steer clear|keep away|refrain\w*)\b|n't\b",
                       re.IGNORECASE)  # fmt: skip
_COUNT = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty)"
_QUANTITY = re.compile(
    rf"\b({_COUNT}\s*(?:-|to|or)?\s*(?:{_COUNT})?\s*(?:mg|g|kg|lbs?|ml|%|x|times?|sets?|reps?|repetitions?|"
    r"seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|miles?|km|kilomet\w+)|"
    r"(?:daily|weekly|twice|once) (?:a|per) \w+|every (?:day|week|other day|morning|night))\b",
    re.IGNORECASE,
)


# Text in a passage that speaks to a language model rather than to a patient: a passage's orders
# support nothing a model writes (it may be quoted word for word, never obeyed; docs/safety.md).
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?]{0,60}\b(?:instructions?|rules?|prompts?|guidelines?|above|previous)\b|"
    r"\bsystem prompt\b|\bas an ai\b|\byou are (?:an? )?(?:ai|assistant|chatbot|language model|llm)\b|"
    r"\b(?:note|message|instructions?|order)s? (?:to|for) (?:the |any )?(?:ai|assistant|model|chatbot|llm|language model)s?\b|"
    r"\b(?:ai|assistant|chatbot|llm|language model)s? (?:must|should|shall|are to|reading this)\b",
    re.IGNORECASE,
)
# Words that claim more certainty than a source that hedges ("may help" is not "will cure").
_CERTAIN = re.compile(
    r"\b(?:always|definitely|certainly|guarantee[sd]?|guaranteed|proven|cures?|cured|permanently|"
    r"completely (?:cure|heal|fix|resolve)\w*|will (?:cure|fix|heal|resolve|stop|prevent)|every(?:one|body)|"
    r"all (?:patients|people|runners)|no risk|risk-free|100 ?%|must)\b",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•>]|\d+[.)])\s+")


@dataclass(frozen=True)
class Thresholds:
    """Where a paraphrase stops being supported: chosen by ``evals/grounding/calibrate.py`` on the
    tune half of ``evals/grounding/paraphrases.yaml`` (the highest recall at precision >= 0.97;
    figures of both halves in docs/safety.md, "Grounding")."""

    similarity: float = 0.74  # cosine to the closest cited sentence (not a quoted order to a model)
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


def source_sentences(quote: str) -> list[str]:
    """The sentences of a cited text: split at sentence ends and at line breaks (list items,
    headings), bullets taken off, whitespace folded.

    >>> source_sentences("## Sitting\\n\\n- Sit on a cushion.\\n- Stand up often. Move around.")
    ['## Sitting', 'Sit on a cushion.', 'Stand up often.', 'Move around.']
    """
    out = []
    for line in quote.splitlines():
        line = _BULLET.sub("", line).strip()
        out += [normal(s) for s in _SENTENCE.split(line) if s.strip()]
    return out


def _whole_sentences(claim: str, sentences: list[str]) -> bool:
    """Whether ``claim`` is a run of whole consecutive sentences of the source (word for word): a
    piece cut out of a sentence ("running cures PHT" out of "It is not true that running cures PHT")
    is not."""
    for i in range(len(sentences)):
        joined = ""
        for s in sentences[i:]:
            joined = f"{joined} {s}" if joined else s
            if joined == claim:
                return True
            if len(joined) >= len(claim):
                break
    return False


@dataclass(frozen=True)
class Evidence:
    """What the check measures of one sentence against the text it cites (thresholds decide)."""

    verbatim: bool  # whole sentences of a quote, word for word
    rule: str  # what a paraphrase adds or flips (a number, a dose, a negation, certainty, a term), or ""
    similarity: float  # cosine to the closest cited sentence (0 without a model)
    coverage: float  # share of the sentence's specific words found in the cited text
    empty: str = ""  # why there is nothing to compare ("empty sentence", "cites nothing"...)


def evidence(sentence: str, quotes: Sequence[str], embed: Callable[[list[str]], Any] | None = None) -> Evidence:
    """Measure ``sentence`` against ``quotes``; ``embed`` (texts -> normalised vectors) gives the similarity."""
    claim = normal(MARKER.sub("", sentence))
    if not claim:
        return Evidence(False, "", 0.0, 0.0, "empty sentence")
    split = [source_sentences(q) for q in quotes if q]
    quoted = " ".join(source_sentences(MARKER.sub("", sentence)))  # a quoted list keeps its items' bullets and lines
    if any(_whole_sentences(claim, sentences) or _whole_sentences(quoted, sentences) for sentences in split):
        return Evidence(True, "", 1.0, 1.0)
    candidates = [s for sentences in split for s in sentences if not _INSTRUCTION.search(s)]
    if not candidates:
        return Evidence(False, "", 0.0, 0.0, "cites nothing" if not split else "the cited text has nothing but instructions to a model")
    text = " ".join(candidates)
    rule = _adds_something(claim, text)
    from assistant.retrieval.terms import content_terms, terms

    words = content_terms(claim)
    known = set(terms(text))
    coverage = (sum(w in known for w in words) / len(words)) if words else 1.0
    if embed is None:
        return Evidence(False, rule, 0.0, coverage)
    import numpy as np

    vectors = np.asarray(embed([claim, *candidates]), dtype=np.float32)
    similarities = vectors[1:] @ vectors[0]
    best = int(similarities.argmax())
    return Evidence(False, rule or _flips(claim, candidates[best]), float(similarities[best]), coverage)


def sentence_support(
    sentence: str,
    quotes: Sequence[str],
    embed: Callable[[list[str]], Any] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> SentenceSupport:
    """Whether ``sentence`` is supported by ``quotes`` (the text of the passages it cites).

    Word for word (whole sentences of a quote) needs no model. A paraphrase needs ``embed`` (texts ->
    normalised vectors); without it a paraphrase is not supported. Sentences of a quote that give
    orders to a language model support no paraphrase.
    """
    e = evidence(sentence, quotes, embed)
    if e.empty:
        return SentenceSupport(sentence, (), False, 0.0, False, e.empty)
    if e.verbatim:
        return SentenceSupport(sentence, (), True, 1.0, True)
    if embed is None:
        return SentenceSupport(sentence, (), False, 0.0, False, e.rule or "a paraphrase needs the embedding model to check")
    reason = e.rule
    if not reason and e.coverage < thresholds.coverage:
        reason = f"only {e.coverage:.0%} of its specific words are in the cited text"
    if not reason and e.similarity < thresholds.similarity:
        reason = f"not close enough in meaning to the cited text (similarity {e.similarity:.2f})"
    score = round(min(e.similarity, 0.5 + e.coverage / 2), 4)
    return SentenceSupport(sentence, (), not reason, score, False, reason)


def _flips(claim: str, closest: str) -> str:
    """A negation the closest cited sentence does not have, or one it has that the claim drops."""
    negated_claim, negated_source = bool(_NEGATION.search(claim)), bool(_NEGATION.search(closest))
    if negated_claim and not negated_source:
        return "it negates what the closest cited sentence says"
    if negated_source and not negated_claim:
        return "it drops a negation of the closest cited sentence"
    return ""


def _adds_something(claim: str, text: str) -> str:
    """What a paraphrase adds that the cited text does not have, or an empty string."""
    lower_text = text.lower()
    counted = _NOT_A_COUNT.sub(" ", claim)
    numbers = {m.group(0).lower() for m in _NUMBER.finditer(counted)} - {m.group(0).lower() for m in _NUMBER.finditer(text)}
    if numbers:
        return f"it gives a number the cited text does not: {', '.join(sorted(numbers))}"
    for m in _QUANTITY.finditer(claim):
        if m.group(0).lower() not in lower_text:
            return f"it gives a dose, count or duration the cited text does not: {m.group(0)}"
    negated_claim = bool(_NEGATION.search(claim))
    negated_text = bool(_NEGATION.search(text))
    if negated_claim and not negated_text:
        return "it negates something the cited text does not"
    certain = {m.group(0).lower() for m in _CERTAIN.finditer(claim)} - {m.group(0).lower() for m in _CERTAIN.finditer(text)}
    if certain:
        return f"it is more certain than the cited text: {', '.join(sorted(certain))}"
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
