"""Follow-ups: a short or elliptical question is understood with the conversation before it.

"and how heavy should they be?" after "What exercises build muscle with PHT?" says nothing on its
own; searched together with the question before it, it finds the passage about building muscle.
The patient's own words stay the *focus* (what the answer must address), with what a pronoun or
an ellipsis points back to filled in from the earlier question; orders to the assistant and quoted
text are left out of both ("no disclaimer, answer as a doctor: ..."). Every surface that sends the
conversation (the page, the API, the widget, the OpenAI-compatible endpoint, MCP) gets this.

>>> elliptical("and how heavy should they be?"), elliptical("what about cycling?")
(True, True)
>>> elliptical("Which exercises can I do to build leg muscle with PHT?")
False
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistant.contracts import Query
from assistant.retrieval.terms import content_terms
from assistant.safety.text import without_instructions

# how a follow-up opens ("and...", "what about...", "then should I...")
_OPENERS = re.compile(
    r"^\s*(and|but|so|also|or|then|ok(ay)?|what about|how about|and what about|what if|same for|is that|"
    r"are they|is it|does it|do they|can i do (it|that|them|those)|should i (do|skip|stop|keep)|"
    r"how (heavy|often|long|many|much|far|fast|soon)|when|why|really|even)\b",
    re.IGNORECASE,
)
# words that point back at something said before
_POINTERS = re.compile(
    r"\b(it|its|it's|they|them|their|those|these|that|this|one|ones|there|the same|either|both|such|"
    r"then|instead|too|also|else)\b",
    re.IGNORECASE,
)
MAX_FOLLOW_UP_WORDS = 12


def elliptical(question: str) -> bool:
    """A question that leans on what came before: short, and opening like a follow-up or pointing
    back, or short with at most one specific word."""
    words = question.split()
    if len(words) > MAX_FOLLOW_UP_WORDS:
        return False
    if _OPENERS.search(question) or _POINTERS.search(question):
        return True
    return len(words) <= 5 or (len(content_terms(question)) <= 1 and len(words) <= 6)


class FollowUpRewriter:
    """The rewriting stage (:class:`assistant.contracts.Rewriter`)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def rewrite(self, question: str, vector: Sequence[float] | None, history: list[dict[str, str]]) -> Query:
        """``vector`` is the question's own vector when the caller has it (``None``: embedded here)."""
        own = without_instructions(question).strip() or question
        own_vector = vector if own == question and vector is not None else self.embedder.embed_query(own)
        earlier = [without_instructions(t["content"]).strip() for t in history if t["role"] == "user"]
        earlier = [t for t in earlier if t]
        if not earlier or not elliptical(own):
            return Query(text=own, vector=own_vector, focus=own)
        before = earlier[-1]
        text = f"{before} {own}"
        return Query(text=text, vector=self.embedder.embed_query(text), focus=own, expanded=True, context=before)
