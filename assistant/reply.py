"""An :class:`~assistant.answer.Answer` as the one block of text a patient reads in someone else's
front end: the reply with its [n] markers, a short "Sources:" list, then the safety notice.

The OpenAI-compatible endpoint sends it as the message ``content`` and the MCP server as the ``ask``
tool's text; both also send the structured citations and status beside it.

>>> from assistant.answer import Answer, Citation, SAFETY_NOTICE
>>> c = Citation(n=1, source="pht-podcast-qa#qa-1", title="Podcast — Q&A 1", quote="Keep running.",
...              start=0, end=13, score=0.9, version="v1")
>>> text = patient_text(Answer(status="answered", text="> Keep running. [1]", citations=[c]))
>>> print(text.replace(SAFETY_NOTICE, "<notice>"))
> Keep running. [1]
<BLANKLINE>
Sources:
- [1] Podcast — Q&A 1: “Keep running.”
<BLANKLINE>
<notice>
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from assistant.answer import SAFETY_NOTICE, Answer, Citation

log = logging.getLogger("assistant")

QUOTE_WORDS = 30  # a quote in the Sources list is cut after this many words (the structured field has it whole)


def short_quote(quote: str, words: int = QUOTE_WORDS) -> str:
    """The quote on one line, cut after ``words`` words with an ellipsis.

    >>> short_quote("one two three four", words=2)
    'one two…'
    """
    parts = quote.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def sources_block(citations: Sequence[Citation]) -> str:
    """``Sources:`` and one line per citation (its marker, title and a short quote); empty without citations."""
    if not citations:
        return ""
    lines = ["Sources:"]
    lines += [f"- [{c.n}] {c.title}: “{short_quote(c.quote)}”" for c in citations]
    return "\n".join(lines)


def patient_text(answer: Answer) -> str:
    """The reply, its Sources list (when it cites any) and the safety notice, in that order."""
    parts = [answer.body, sources_block(answer.citations), answer.safety_notice]
    return "\n\n".join(p for p in parts if p)


class TextRelay:
    """Passes a reply's text pieces on as they arrive, holding back only what may be the start of the
    safety notice, so that the Sources list can still go in front of the notice once the whole
    :class:`Answer` is known. Joined, what :meth:`feed` and :meth:`finish` return is
    :func:`patient_text` of the answer.

    >>> relay = TextRelay()
    >>> [relay.feed(p) for p in ["Rest.", "\\n\\nThis is general"]]
    ['Rest.', '']
    >>> relay.finish(Answer(status="not_covered", text="Rest.")) == "\\n\\n" + SAFETY_NOTICE
    True
    """

    def __init__(self, notice: str = SAFETY_NOTICE) -> None:
        self.notice = notice
        self.seen = ""  # every piece so far, joined
        self.sent = 0  # how much of ``seen`` has been passed on

    def _held_from(self) -> int:
        """Where the tail that may begin the notice (white space, then a start of it) begins."""
        text, first = self.seen, self.notice[0]
        start = len(text)
        i = text.find(first, max(self.sent, len(text) - len(self.notice)))
        while i != -1:  # the earliest place from which the rest of the text starts the notice
            if self.notice.startswith(text[i:]):
                start = i
                break
            i = text.find(first, i + 1)
        while start > self.sent and text[start - 1].isspace():  # and the white space before it
            start -= 1
        return start

    def feed(self, piece: str) -> str:
        """The part of the text that can be shown now."""
        self.seen += piece
        cut = max(self.sent, self._held_from())
        out, self.sent = self.seen[self.sent : cut], cut
        return out

    def finish(self, answer: Answer) -> str:
        """The rest: whatever of the reply was held back, the Sources list and the notice."""
        whole = patient_text(answer)
        shown = self.seen[: self.sent]
        if whole.startswith(shown):
            return whole[len(shown) :]
        # The pieces were not the answer's text (they always are); never leave the notice out.
        log.warning("streamed pieces differ from the answer's text; sending its sources and notice after them")
        return "\n\n" + "\n\n".join(p for p in (sources_block(answer.citations), answer.safety_notice) if p)
