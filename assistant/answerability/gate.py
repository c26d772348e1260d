"""The simplest answerability stage: the best passage's calibrated relevance against a threshold.

>>> from assistant.answerability.gate import RelevanceGate
>>> RelevanceGate(0.41).judge(None, [], None).answerable
False
"""

from __future__ import annotations

from typing import Any

from assistant.contracts import Judgement, Passage, Query


class RelevanceGate:
    """Answer when the best passage's relevance reaches ``threshold``
    (:class:`assistant.contracts.Answerability`)."""

    def __init__(self, threshold: float, keep: int = 5) -> None:
        self.threshold = threshold
        self.keep = keep

    def judge(self, query: Query | None, passages: list[Passage], sources: Any) -> Judgement:
        if not passages or passages[0].relevance < self.threshold:
            return Judgement(answerable=False, reason="below-threshold")
        return Judgement(answerable=True, passages=passages[: self.keep])
