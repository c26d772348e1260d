"""The grounding check: every sentence of substance in a reply is supported by what it cites.

It runs on every ``answered`` reply, whatever composer wrote it. For the default extractive
composer support means *verbatim*: each quoted line must appear word for word in the passage its
marker points at, and each citation's quote must be the source text at its offsets. For other
composers each sentence must carry a marker and most of its specific words must come from the
cited quotes. A reply that fails is never shown; the caller replaces it with ``not_covered``.

>>> from assistant.grounding.support import check
>>> from assistant.compose.extractive import Draft
>>> check(Draft(text="Unsupported advice.", citations=[]), lambda *a: None).ok
False
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from assistant.compose.extractive import FRAMING_LINE, Draft
from assistant.retrieval.hybrid import content_terms

_MARKERS = re.compile(r"\s*\[(\d+)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class GroundingResult:
    ok: bool
    reason: str = ""


SourceText = Callable[[str, str, int, int], "str | None"]
"""``source_text(doc_id, version, start, end)``: the indexed text at those offsets, or None."""


def check(draft: Draft, source_text: SourceText, *, min_support: float = 0.8) -> GroundingResult:
    """Check ``draft`` against the indexed text of the passages it cites."""
    if not draft.citations:
        return GroundingResult(False, "no citations")
    by_n = {c.n: c for c in draft.citations}
    for c in draft.citations:
        doc_id = c.source.split("#", 1)[0]
        text = source_text(doc_id, c.version, c.start, c.end)
        if text is None:
            return GroundingResult(False, f"citation [{c.n}] names text that is not in the index")
        if text != c.quote:
            return GroundingResult(False, f"citation [{c.n}] does not match the source at its offsets")

    body = draft.text.strip()
    if body.startswith(FRAMING_LINE):
        body = body[len(FRAMING_LINE) :]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    if not paragraphs:
        return GroundingResult(False, "empty reply")
    for para in paragraphs:
        para = para.removeprefix(">").strip()
        markers = [int(m) for m in _MARKERS.findall(para)]
        if not markers:
            return GroundingResult(False, "a paragraph carries no citation marker")
        if any(m not in by_n for m in markers):
            return GroundingResult(False, "a marker points at no citation")
        claim = _MARKERS.sub("", para).strip()
        quotes = [by_n[m].quote for m in markers]
        if draft.verbatim:
            if not any(claim in q for q in quotes):
                return GroundingResult(False, "a quoted line is not word for word in its source")
            continue
        pool = set(t for q in quotes for t in content_terms(q))
        for sentence in _SENTENCE.split(claim):
            words = content_terms(sentence)
            if words and sum(w in pool for w in words) / len(words) < min_support:
                return GroundingResult(False, "a sentence says more than its cited passages")
    return GroundingResult(True)
