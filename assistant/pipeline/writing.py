"""A writing composer's reply (a language model's), checked sentence by sentence as it arrives.

The writer is shown numbered passages; each sentence it writes must cite one of them and be
supported by what it cites (the grounding check) before anyone sees it. Unsupported sentences
are dropped; citations are renumbered in the order the kept sentences first use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from assistant.answer import Citation
from assistant.contracts import ComposerFailed

MARKER = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+\])*[\"”’)\]]*\s+(?=\S)")
_FINISHED = re.compile(r"[.!?](?:\s*\[\d+\])*[\"”’)\]]*\s*$|\[\d+\][.!?]?\s*$")


def sentences(pieces: Iterable[str]) -> Iterator[str]:
    """Complete sentences from text that arrives in pieces (a sentence ends after its markers).
    When the writer fails, a finished last sentence still counts; an unfinished one does not.

    >>> list(sentences(["Run slowly [1]. Re", "st well. [2] And"]))
    ['Run slowly [1].', 'Rest well. [2]', 'And']
    """
    buffer = ""
    try:
        for piece in pieces:
            buffer += piece
            while True:
                m = _SENTENCE_END.search(buffer)
                if m is None:
                    break
                yield buffer[: m.end()].strip()
                buffer = buffer[m.end() :]
    except ComposerFailed:
        if _FINISHED.search(buffer):
            yield buffer.strip()
        raise
    if buffer.strip():
        yield buffer.strip()


def passages_match(citations: Iterable[Citation], sources: Any) -> bool:
    """Whether every passage given to the writer is the indexed text at its offsets."""
    found = list(citations)
    return bool(found) and all(
        sources.text_at(c.source.split("#", 1)[0], c.version, c.start, c.end) == c.quote for c in found
    )


class SentenceCheck:
    """Each sentence against the passages it cites; keeps the supported ones, renumbered."""

    def __init__(self, citations: Iterable[Citation], grounding: Any) -> None:
        self.citations = {c.n: c for c in citations}
        self.grounding = grounding
        self.renumber: dict[int, int] = {}
        self.kept: list[str] = []
        self.dropped: list[str] = []  # why each dropped sentence was dropped

    def verify(self, sentence: str) -> str | None:
        """The sentence with its markers renumbered, or ``None`` (and the reason kept) when it cites
        no passage it was given or is not supported by what it cites."""
        markers = [int(m) for m in MARKER.findall(sentence)]
        if not markers or any(m not in self.citations for m in markers):
            self.dropped.append("a sentence cites no passage it was given")
            return None
        support = self.grounding.support(sentence, [self.citations[m].quote for m in markers])
        if not support.supported:
            self.dropped.append(support.reason)
            return None
        for m in markers:
            self.renumber.setdefault(m, len(self.renumber) + 1)
        good = MARKER.sub(lambda x: f"[{self.renumber[int(x.group(1))]}]", sentence.strip())
        self.kept.append(good)
        return good

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.dropped)

    def enough(self, min_share: float) -> bool:
        return bool(self.kept) and len(self.kept) >= min_share * self.total

    def kept_citations(self) -> list[Citation]:
        order = sorted(self.renumber.items(), key=lambda kv: kv[1])
        return [self.citations[old].model_copy(update={"n": new}) for old, new in order]
