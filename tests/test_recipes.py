"""docs/architecture.md's recipes, followed as written.

"How to add a stage": a reranker is one class that meets the answerability contract (wrapping the
default stage) and one argument where the assistant is assembled. "How to add a red flag" is
followed in tests/test_policy.py (a policy file, nothing else).
"""

from __future__ import annotations

import pytest

from assistant import Assistant, Settings, Status
from assistant.answerability.judge import FocusAnswerability
from assistant.contracts import Answerability

pytestmark = pytest.mark.integration


class FramingLastReranker:
    """Passages of a document's introduction or closing text after its headed sections."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def judge(self, query, passages, sources):
        self.calls += 1
        ordered = sorted(passages, key=lambda p: p.chunk.section_id in {"intro", "outro"})
        return self.inner.judge(query, ordered, sources)


def test_a_reranker_is_one_class_and_one_argument(built_data_dir, embeddings):
    reranker = FramingLastReranker(FocusAnswerability())
    assert isinstance(reranker, Answerability)
    a = Assistant.from_settings(
        Settings(data_dir=built_data_dir), embeddings=embeddings, answerability=reranker, notify=lambda m: None
    )
    try:
        answer = a.ask("Which exercises can I do to build muscle with PHT?", explain=True)
        assert reranker.calls == 1 and answer.status is Status.answered
        assert answer.citations[0].source == "pht-podcast-qa#qa-2"
        assert a.ask("my groin has gone numb since this morning").status is Status.urgent
        assert reranker.calls == 1  # urgent questions never reach it
    finally:
        a.close()
