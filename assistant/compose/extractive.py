"""Compose a reply from retrieved passages. The default composer needs no language model.

:class:`ExtractiveComposer` picks, in each passage worth citing, the run of sentences that best
answers the question, quotes it exactly as written and marks it with its citation number. [1] is
the passage that best answers the question. Nothing in the reply's substance is the composer's
own words: the only added text is one framing line.

Composers are swappable (:class:`assistant.contracts.Composer`: ``compose(question, judgement)
-> Draft``), and the grounding check (:mod:`assistant.grounding.support`) runs on whatever they
return.

>>> from assistant.contracts import Judgement
>>> ExtractiveComposer().compose("anything", Judgement(answerable=False)).citations
[]
"""

from __future__ import annotations

import re

from assistant.answer import Citation
from assistant.contracts import FRAMING_LINES, Draft, Judgement, Passage
from assistant.corpus.parse import Unit
from assistant.retrieval.terms import content_terms, terms

FRAMING_LINE = FRAMING_LINES[0]
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\r?\n")
# "What is PHT?" asks for a definition: a sentence that defines ("X, often referred to as Y, is
# a ...") answers it better than one that merely mentions the term more often. Applied only to
# questions made of the domain's own words, so "what are the best exercises?" is unaffected.
_ASKS_DEFINITION = re.compile(
    r"^\s*(what(?:'s| is| are)|define|definition of|meaning of|what does .{1,40} mean)\b", re.IGNORECASE
)
_DEFINES = re.compile(r"\b(is|are) (a|an|the)\b|\brefer(s|red)? to\b|\bmeans\b|\bdefined as\b", re.IGNORECASE)
DEFINITION_BONUS = 0.15


class ExtractiveComposer:
    """Quote the best-matching run of sentences from each passage worth citing."""

    name = "extractive"

    def __init__(
        self,
        *,
        max_citations: int = 3,
        citation_margin: float = 0.10,
        min_relevance: float = 0.0,
        max_sentences: int = 4,
        sentence_margin: float = 0.20,
        min_sentences: int = 2,
    ) -> None:
        self.max_citations = max_citations
        self.citation_margin = citation_margin
        self.min_relevance = min_relevance
        self.max_sentences = max_sentences
        self.sentence_margin = sentence_margin
        self.min_sentences = min_sentences

    def compose(self, question: str, judgement: Judgement) -> Draft:
        """Quotes from the passages the judgement found worth citing (best first), each built
        around the sentences it found addressing the question when it names them."""
        passages = judgement.passages
        if judgement.sentences:
            passages = [p for p in passages if p.chunk.id in judgement.sentences]
        return self.quote(question, passages, preferred=judgement.sentences)

    def quote(
        self,
        question: str,
        passages: list[Passage],
        framing: str = FRAMING_LINE,
        preferred: dict[str, list[tuple[int, int]]] | None = None,
    ) -> Draft:
        """The best run of sentences from each passage worth citing, under ``framing``;
        ``preferred`` (chunk id -> sentence spans) are the sentences a run must be built around."""
        preferred = preferred or {}
        if not passages:
            return Draft(text="", citations=[])
        best = passages[0].relevance
        chosen = [passages[0]] + [
            p for p in passages[1:] if p.relevance >= max(self.min_relevance, best - self.citation_margin)
        ]
        qterms = set(content_terms(question))
        # only when the question names nothing but the condition itself ("what is PHT?")
        definition = not qterms and bool(_ASKS_DEFINITION.search(question))
        citations: list[Citation] = []
        parts: list[str] = []
        seen_spans: set[tuple[str, int, int]] = set()
        for passage in chosen:
            if len(citations) >= self.max_citations:
                break
            span = self._select(passage, qterms, definition, set(preferred.get(passage.chunk.id, ())))
            if span is None:
                continue
            start, end = span
            chunk = passage.chunk
            key = (chunk.doc_id, start, end)
            if key in seen_spans:
                continue
            seen_spans.add(key)
            quote = chunk.text[start - chunk.start : end - chunk.start]
            if citations and qterms and not qterms & set(terms(quote)):
                # a further source must speak to the question's own words, not just the topic
                continue
            n = len(citations) + 1
            citations.append(
                Citation(
                    n=n,
                    source=chunk.source,
                    title=f"{chunk.doc_title} — {chunk.section_title}",
                    quote=quote,
                    start=start,
                    end=end,
                    score=round(passage.relevance, 4),
                    version=chunk.version,
                )
            )
            parts.append(f"> {quote} [{n}]")
        if not citations:
            return Draft(text="", citations=[])
        head = framing + "\n\n" if framing else ""
        return Draft(text=head + "\n\n".join(parts), citations=citations, composer=self.name)

    def _select(
        self, passage: Passage, qterms: set[str], definition: bool = False, preferred: set[tuple[int, int]] = frozenset()
    ) -> tuple[int, int] | None:
        """Offsets of the run of statements in one paragraph that best answers the question."""
        statements = [(u, s) for u, s in passage.units if u.kind == "statement"]
        if not statements:
            return None

        def score(unit: Unit, sim: float) -> float:
            if definition and _DEFINES.search(unit.text):
                sim += DEFINITION_BONUS
            if not qterms:
                return sim
            overlap = len(qterms & set(terms(unit.text))) / len(qterms)
            return sim + 0.15 * overlap

        scored = [(u, score(u, s)) for u, s in statements]
        choices = [i for i, (u, _) in enumerate(scored) if (u.start, u.end) in preferred] or range(len(scored))
        top_i = max(choices, key=lambda i: scored[i][1])
        top_score = scored[top_i][1]
        chunk = passage.chunk

        # the paragraph the best sentence sits in: a quote never crosses a blank line
        def same_paragraph(a: Unit, b: Unit) -> bool:
            lo, hi = (a, b) if a.start <= b.start else (b, a)
            gap = chunk.text[lo.end - chunk.start : hi.start - chunk.start]
            return not _PARAGRAPH_BREAK.search(gap)

        para = [i for i, (u, _) in enumerate(scored) if same_paragraph(u, scored[top_i][0])]
        keep = [i for i in para if scored[i][1] >= top_score - self.sentence_margin]
        lo, hi = min(keep), max(keep)
        while hi - lo + 1 < self.min_sentences and (lo > para[0] or hi < para[-1]):
            # too short to read well: take the stronger neighbour in the same paragraph
            left = scored[lo - 1][1] if lo > para[0] else float("-inf")
            right = scored[hi + 1][1] if hi < para[-1] else float("-inf")
            if right >= left:
                hi += 1
            else:
                lo -= 1
        while hi - lo + 1 > self.max_sentences:  # trim the weaker end, never the best sentence
            if lo == top_i or (hi != top_i and scored[hi][1] < scored[lo][1]):
                hi -= 1
            else:
                lo += 1
        return scored[lo][0].start, scored[hi][0].end
