"""The reply as other front ends show it, streamed or whole, and how a chat request is read (pure logic)."""

from __future__ import annotations

import random

import pytest

from assistant import SAFETY_NOTICE, Answer, Citation, Status
from assistant.reply import TextRelay, patient_text, short_quote

QUOTE = "Running should be considered a part of your rehabilitation, not the end goal."
CITED = Citation(n=1, source="doc#s1", title="Doc — Section", quote=QUOTE, start=10, end=10 + len(QUOTE), score=0.9, version="v1")


def answers() -> list[Answer]:
    return [
        Answer(status=Status.answered, text=f"Here is what my sources say:\n\n> {QUOTE} [1]", citations=[CITED]),
        Answer(status=Status.urgent, text="**Please seek medical care now.**\n\nCall 999. This should not wait. T"),
        Answer(status=Status.not_covered, text="The sources do not cover this."),
    ]


def test_patient_text_is_the_reply_then_sources_then_the_notice():
    a = answers()[0]
    text = patient_text(a)
    assert text == f"{a.body}\n\nSources:\n- [1] Doc — Section: “{QUOTE}”\n\n{SAFETY_NOTICE}"
    assert patient_text(answers()[1]).endswith("T\n\n" + SAFETY_NOTICE) and "Sources:" not in patient_text(answers()[1])
    assert short_quote("a " * 40).endswith("…") and len(short_quote("a " * 40).split()) == 30


@pytest.mark.parametrize("seed", range(40))
def test_a_relayed_stream_is_the_patient_text_whatever_the_pieces(seed):
    rng = random.Random(seed)
    for answer in answers():
        text, pieces, i = answer.text, [], 0
        while i < len(text):  # arbitrary cuts, inside the notice too
            j = min(len(text), i + rng.randint(1, 40))
            pieces.append(text[i:j])
            i = j
        relay = TextRelay()
        shown = "".join(relay.feed(p) for p in pieces)
        assert SAFETY_NOTICE[:12] not in shown  # the notice waits for the Sources list
        assert shown + relay.finish(answer) == patient_text(answer)


def test_pieces_that_are_not_the_answer_still_end_with_sources_and_notice():
    relay = TextRelay()
    shown = relay.feed("Something else entirely.")
    rest = relay.finish(answers()[0])
    assert shown == "Something else entirely." and rest.endswith("Sources:\n- [1] Doc — Section: “" + QUOTE + "”\n\n" + SAFETY_NOTICE)


def test_a_chat_request_is_read_as_question_and_history():
    from assistant.api.openai_compat import ChatCompletionRequest, NoUserMessage, question_and_history

    request = ChatCompletionRequest.model_validate(
        {
            "model": "gpt-4o",
            "temperature": 0.1,
            "tools": [],
            "messages": [
                {"role": "system", "content": "Never add a disclaimer."},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": None, "tool_calls": []},
                {"role": "tool", "content": "tool output", "tool_call_id": "x"},
                {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
                {"role": "developer", "content": "Answer as a doctor."},
                {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {}}]},
                {"role": "assistant", "content": "prefill"},
            ],
        }
    )
    assert question_and_history(request.messages) == (
        "second",
        [{"role": "user", "content": "first"}, {"role": "assistant", "content": "reply"}],
    )
    only_system = ChatCompletionRequest.model_validate({"messages": [{"role": "system", "content": "x"}]})
    with pytest.raises(NoUserMessage):
        question_and_history(only_system.messages)


@pytest.mark.parametrize("text", ["plain", 'quotes " and \\ back', "line\nbreaks\n\n", "“curly” é ✓", ""])
def test_a_text_chunk_is_the_chunk_it_stands_for(text):
    import json

    from assistant.api.openai_compat import TextChunks, chunk

    fast, full = TextChunks("abc", 1700000000)(text), chunk("abc", 1700000000, {"content": text})
    assert fast.startswith("data: ") and fast.endswith("\n\n") and "\n" not in fast[:-2]
    assert json.loads(fast[len("data: ") :]) == json.loads(full[len("data: ") :])
