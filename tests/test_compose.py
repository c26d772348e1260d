"""The extractive composer's choice of sentences, on the real corpus and model."""

from __future__ import annotations

import pytest

from assistant import Status

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "question",
    ["what is PHT?", "What's proximal hamstring tendinopathy?", "what does PHT mean"],
)
def test_a_definition_question_quotes_a_defining_sentence(assistant, question):
    answer = assistant.ask(question)
    assert answer.status is Status.answered
    quotes = " ".join(c.quote for c in answer.citations)
    assert "is a debilitating condition" in quotes or "is a challenging condition" in quotes, quotes


def test_a_question_with_specific_words_is_not_treated_as_a_definition(assistant):
    from assistant.compose.extractive import _ASKS_DEFINITION

    question = "What are the best exercises for building muscle with PHT?"
    assert _ASKS_DEFINITION.search(question)  # it reads like one...
    answer = assistant.ask(question)
    # ...but it names exercises, so the quote is the exercise advice, not a definition
    assert answer.citations[0].source == "pht-podcast-qa#qa-2"
    assert "calf raises" in answer.citations[0].quote
