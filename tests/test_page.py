"""The chat page (ui/app.py), driven in-process with Streamlit's AppTest.

The page's ``st.cache_resource`` and the embedding model are per process, so the model loads once
for the whole module. Every test asks the real assistant over a real index built in a temporary
folder; the answers' status is checked first, so a routing change shows up as such.
"""

from __future__ import annotations

import doctest
import html
import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import ROOT

from assistant import SAFETY_NOTICE, Assistant, Settings, Status, get_settings

pytestmark = pytest.mark.integration

APP = ROOT / "ui" / "app.py"
ANSWERABLE = "Can running be part of my rehab?"
URGENT = "I suddenly can't control my bladder and my buttock is numb"
OFF_TOPIC = "how do I bake sourdough bread?"
NOT_COVERED = "ice or heat for proximal hamstring tendinopathy?"  # evals/suites/not_covered.jsonl
EXAMPLES = (
    "Can running be part of my rehab?",
    "Which exercises can I do to build muscle with PHT?",
    "Should I still run my marathon?",
)


@pytest.fixture(scope="session")
def page_index(tmp_path_factory) -> Path:
    """A folder with a built index, shared by the page tests."""
    data_dir = tmp_path_factory.mktemp("page-index")
    Assistant.from_settings(Settings(data_dir=data_dir), progress=False, notify=lambda m: None).close()
    return data_dir


@pytest.fixture(autouse=True)
def _use_page_index(page_index, monkeypatch):
    monkeypatch.setenv("PHT_DATA_DIR", str(page_index))
    for var in ("PHT_FEEDBACK_ENABLED", "PHT_FEEDBACK_PATH", "PHT_LOG_QUESTIONS"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def new_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page():
    return new_page()


def ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.chat_message[-1]  # the reply just given


def last_answer(at):
    return at.session_state["turns"][-1]["answer"]


def assert_notice(reply) -> None:
    assert SAFETY_NOTICE in [c.value for c in reply.caption]


def visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", markup)))


# -- the empty chat --------------------------------------------------------------------------------


def test_empty_chat_shows_welcome_topics_and_examples(page):
    assert page.title[0].value == "PHT Assistant"
    (welcome,) = page.chat_message
    assert welcome.name == "assistant"
    text = welcome.markdown[0].value
    assert "proximal hamstring tendinopathy" in text
    assert "Race Training with PHT" in text  # the topics from the index
    assert "Overcoming Proximal Hamstring Tendinopathy: Your Questions Answered" in text  # its sources
    assert [b.label for b in welcome.button] == list(EXAMPLES)
    assert "New conversation" not in [b.label for b in page.button]
    footer = [c.value for c in page.caption]
    assert any(SAFETY_NOTICE in c for c in footer)
    assert any(c.startswith("Privacy: nothing you type is stored") for c in footer)


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_each_example_button_asks_it_and_gets_an_answer(n):
    at = new_page()
    at.chat_message[0].button[n].click().run()
    assert not at.exception, at.exception
    user, reply = at.chat_message[-2:]
    assert user.name == "user" and user.markdown[0].value.startswith(EXAMPLES[n][:20])
    assert last_answer(at).status is Status.answered
    assert reply.expander  # its sources
    assert_notice(reply)


# -- each status its own way ------------------------------------------------------------------------


def test_answer_streams_progressively(page, monkeypatch):
    import streamlit

    pieces: list[str] = []
    original = streamlit.write_stream

    def spy(stream, **kwargs):
        def tee():
            for piece in stream:
                pieces.append(piece)
                yield piece

        return original(tee(), **kwargs)

    monkeypatch.setattr(streamlit, "write_stream", spy)
    reply = ask(page, ANSWERABLE)
    body = last_answer(page).body
    assert len(pieces) >= 3  # the pieces the pipeline streams (sentences here), not one block
    assert "".join(pieces) == body  # the notice is not streamed into the reply: it has its own line
    assert reply.markdown[0].value == body  # what stays on the page once streamed


def test_answer_lists_each_citation_with_its_quote_in_context(page):
    reply = ask(page, ANSWERABLE)
    answer = last_answer(page)
    assert answer.status is Status.answered and answer.citations
    assert "[1]" in reply.markdown[0].value
    assert not reply.error and not reply.info
    assert "**Sources**" in [m.value for m in reply.markdown]
    source_file = (ROOT / "corpus" / "pht_podcast_qa.txt").read_text(encoding="utf-8")
    assert [e.label for e in reply.expander] == [f"[{c.n}] {c.title}" for c in answer.citations]
    for c, expander in zip(answer.citations, reply.expander):
        shown = expander.markdown[0].value
        assert f'<mark class="pht-quote">{html.escape(c.quote)}</mark>' in shown
        paragraph = visible_text(shown)
        assert len(paragraph) > len(c.quote)  # the quote sits inside its paragraph
        offset = paragraph.index(c.quote)
        assert source_file[c.start - offset : c.start - offset + len(paragraph)] == paragraph
        assert expander.caption[0].value == f"{c.source} · version {c.version}"
    assert "Running should be considered a part of your rehabilitation" in answer.citations[0].quote
    assert_notice(reply)
    assert page.chat_message[-2].name == "user"
    assert page.chat_message[-2].markdown[0].value.startswith("Can running be part of my rehab")


def test_urgent_is_an_alert_with_the_action_and_nothing_else(page):
    reply = ask(page, URGENT)
    assert last_answer(page).status is Status.urgent
    (alert,) = reply.error
    assert alert.value.startswith("**Please seek medical care now.**")
    assert alert.icon == ":material/emergency:"
    assert not reply.expander and not reply.markdown and not reply.info and not reply.button
    assert [c.value for c in reply.caption] == [SAFETY_NOTICE]


def test_out_of_scope_is_a_calm_note_saying_what_it_can_help_with(page):
    reply = ask(page, OFF_TOPIC)
    assert last_answer(page).status is Status.out_of_scope
    (note,) = reply.markdown
    assert note.value.startswith(":material/info: I can only help with questions about proximal")
    assert "Race Training with PHT" in note.value  # what it can help with
    assert not reply.error and not reply.warning and not reply.info and not reply.expander
    assert_notice(reply)


def test_not_covered_is_an_honest_note_of_its_own(page):
    reply = ask(page, NOT_COVERED)
    assert last_answer(page).status is Status.not_covered
    (note,) = reply.info
    assert note.icon == ":material/menu_book:"
    assert "don't mention ice or heat" in note.value and "Race Training with PHT" in note.value
    assert not reply.error and not reply.expander and not reply.markdown
    assert_notice(reply)


def test_invalid_question_shows_warning_not_traceback(page):
    reply = ask(page, "hamstring pain\x00 when sitting")
    (warning,) = reply.warning
    assert "control characters" in warning.value
    assert not reply.exception
    assert_notice(reply)


# -- the conversation ------------------------------------------------------------------------------


def test_conversation_keeps_every_reply_and_passes_history(page, monkeypatch):
    calls = []
    original = Assistant.stream

    def spy(self, question, history=None, **kwargs):
        calls.append((question, list(history or [])))
        return original(self, question, history=history, **kwargs)

    monkeypatch.setattr(Assistant, "stream", spy)
    for question in (ANSWERABLE, OFF_TOPIC, URGENT):
        ask(page, question)

    replies = [m for m in page.chat_message if m.name == "assistant"]
    assert len(replies) == 3  # the welcome is gone once the chat starts
    for reply in replies:
        assert_notice(reply)
    first = page.session_state["turns"][0]["answer"]
    assert len(replies[0].expander) == len(first.citations) >= 1  # one expander per source
    assert replies[1].markdown and len(replies[2].error) == 1
    assert [t["answer"].status for t in page.session_state["turns"]] == [
        Status.answered,
        Status.out_of_scope,
        Status.urgent,
    ]

    assert calls[0] == (ANSWERABLE, [])
    history = calls[2][1]
    assert [t["role"] for t in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == ANSWERABLE and history[2]["content"] == OFF_TOPIC
    assert SAFETY_NOTICE not in history[1]["content"]  # the body, not the notice


def test_new_conversation_clears_the_history(page):
    ask(page, ANSWERABLE)
    ask(page, OFF_TOPIC)
    (button,) = [b for b in page.button if b.label == "New conversation"]
    button.click().run()
    assert not page.exception
    assert page.session_state["turns"] == []
    (welcome,) = page.chat_message
    assert [b.label for b in welcome.button] == list(EXAMPLES)


# -- feedback ----------------------------------------------------------------------------------------


def test_feedback_is_off_by_default_and_nothing_is_written(page, page_index):
    assert get_settings().feedback_enabled is False
    before = sorted(p.name for p in page_index.iterdir())
    for question in (ANSWERABLE, NOT_COVERED, OFF_TOPIC):
        reply = ask(page, question)
        assert not reply.get("feedback") and not reply.text_input
        assert "Was this reply helpful?" not in [c.value for c in reply.caption]
    assert not get_settings().feedback_path.exists()
    assert get_settings().feedback_path == page_index / "feedback.sqlite3"
    assert sorted(p.name for p in page_index.iterdir()) == before


def _feedback_rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM feedback")]


@pytest.fixture
def feedback_on(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "clinic" / "feedback.sqlite3"
    monkeypatch.setenv("PHT_FEEDBACK_ENABLED", "true")
    monkeypatch.setenv("PHT_FEEDBACK_PATH", str(path))
    get_settings.cache_clear()
    return path


def test_feedback_when_turned_on_stores_rating_comment_and_sources_not_the_question(feedback_on):
    at = new_page()
    assert any("your rating, comment and the sources cited are saved" in c.value for c in at.caption)
    reply = ask(at, ANSWERABLE)
    answer = last_answer(at)
    (thumbs,) = reply.get("feedback")
    assert not feedback_on.exists()  # nothing until the patient rates

    thumbs.set_value(1).run()
    assert not at.exception, at.exception
    (row,) = _feedback_rows(feedback_on)
    assert (row["answer_id"], row["status"], row["thumbs"], row["comment"]) == (
        answer.id,
        "answered",
        "up",
        "",
    )
    assert json.loads(row["sources"]) == [c.source for c in answer.citations]
    assert json.loads(row["sources"])[0] == "pht-podcast-qa#qa-1"
    assert row["question"] is None  # PHT_LOG_QUESTIONS is off
    assert row["created_at"].endswith("+00:00")

    reply = at.chat_message[-1]
    reply.text_input[0].input("Clear, thank you")
    reply.button[0].click().run()  # "Send comment"
    assert not at.exception, at.exception
    assert "Thank you, your comment was saved." in [c.value for c in at.chat_message[-1].caption]
    at.chat_message[-1].get("feedback")[0].set_value(0).run()
    (row,) = _feedback_rows(feedback_on)
    assert (row["thumbs"], row["comment"]) == ("down", "Clear, thank you")

    at.chat_message[-1].get("feedback")[0].set_value(None).run()  # the thumb taken back
    assert _feedback_rows(feedback_on) == []


def test_feedback_stores_the_question_only_with_log_questions(feedback_on, monkeypatch):
    monkeypatch.setenv("PHT_LOG_QUESTIONS", "true")
    get_settings.cache_clear()
    at = new_page()
    ask(at, NOT_COVERED)
    at.chat_message[-1].get("feedback")[0].set_value(0).run()
    (row,) = _feedback_rows(feedback_on)
    assert (row["status"], row["thumbs"], row["question"], row["sources"]) == (
        "not_covered",
        "down",
        NOT_COVERED,
        "[]",
    )


def test_urgent_replies_carry_no_feedback_even_when_it_is_on(feedback_on):
    at = new_page()
    reply = ask(at, URGENT)
    assert not reply.get("feedback") and not reply.text_input
    assert [c.value for c in reply.caption] == [SAFETY_NOTICE]


def test_feedback_module_examples():
    import assistant.feedback

    result = doctest.testmod(assistant.feedback)
    assert result.failed == 0 and result.attempted > 0


# -- errors ----------------------------------------------------------------------------------------


def _assert_one_sentence_and_notice(at, expected: str) -> None:
    assert not at.exception, at.exception
    (warning,) = at.warning
    assert expected in warning.value
    assert "\n" not in warning.value and "Traceback" not in warning.value
    assert SAFETY_NOTICE in [c.value for c in at.caption]
    assert not at.chat_input and not at.chat_message


def test_data_folder_that_is_a_file_shows_one_sentence(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    monkeypatch.setenv("PHT_DATA_DIR", str(not_a_folder))
    get_settings.cache_clear()
    _assert_one_sentence_and_notice(new_page(), "which is a file, not a folder; point it at a folder.")


def test_damaged_index_shows_one_sentence(tmp_path, monkeypatch):
    damaged = tmp_path / "data"
    damaged.mkdir()
    (damaged / "index.json").write_text("{not json")
    monkeypatch.setenv("PHT_DATA_DIR", str(damaged))
    get_settings.cache_clear()
    expected = "is damaged; rebuild it with `pht-assistant index --rebuild`."
    _assert_one_sentence_and_notice(new_page(), expected)
