"""The chat page (ui/app.py), driven in-process with Streamlit's AppTest.

The page's ``st.cache_resource`` and the embedding model are per process, so the model loads once
for the whole module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import SAFETY_NOTICE, Assistant, Settings, get_settings

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
ANSWERABLE = "Can running be part of my rehab?"
URGENT = "I suddenly can't control my bladder and my buttock is numb"
OFF_TOPIC = "how do I bake sourdough bread?"


@pytest.fixture(scope="session")
def page_index(tmp_path_factory) -> Path:
    """A folder with a built index, shared by the page tests."""
    data_dir = tmp_path_factory.mktemp("page-index")
    Assistant.from_settings(Settings(data_dir=data_dir), progress=False, notify=lambda m: None)
    return data_dir


@pytest.fixture(autouse=True)
def _use_page_index(page_index, monkeypatch):
    monkeypatch.setenv("PHT_DATA_DIR", str(page_index))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.chat_message[-1]  # the reply just given


def assert_notice(reply) -> None:
    assert SAFETY_NOTICE in [c.value for c in reply.caption]


def test_empty_chat_shows_welcome(page):
    assert page.title[0].value == "PHT Assistant"
    (welcome,) = page.chat_message
    assert welcome.name == "assistant"
    text = welcome.markdown[0].value
    assert "proximal hamstring tendinopathy" in text
    assert "Race Training with PHT" in text  # the topics from the index
    assert any(SAFETY_NOTICE in c.value for c in page.caption)  # footer


def test_answerable_question_shows_sources_and_notice(page):
    reply = ask(page, ANSWERABLE)
    assert reply.name == "assistant"
    assert "[1]" in reply.markdown[0].value
    assert not reply.error and not reply.info
    (sources,) = reply.expander
    assert sources.label == "Sources"
    cited = [m.value for m in sources.markdown]
    assert cited[0].startswith("**[1] ") and "Overcoming Proximal Hamstring Tendinopathy" in cited[0]
    assert cited[1].startswith("> ")
    assert_notice(reply)
    assert page.chat_message[-2].name == "user"
    assert page.chat_message[-2].markdown[0].value.startswith("Can running be part of my rehab")


def test_urgent_question_renders_error(page):
    reply = ask(page, URGENT)
    (alert,) = reply.error
    assert "seek medical care now" in alert.value
    assert not reply.expander
    assert_notice(reply)


def test_off_topic_question_renders_info(page):
    reply = ask(page, OFF_TOPIC)
    (info,) = reply.info
    assert "proximal hamstring tendinopathy" in info.value
    assert not reply.expander
    assert_notice(reply)


def test_invalid_question_shows_warning_not_traceback(page):
    reply = ask(page, "hamstring pain\x00 when sitting")
    (warning,) = reply.warning
    assert "control characters" in warning.value
    assert not reply.exception
    assert_notice(reply)


def test_conversation_keeps_every_reply_and_passes_history(page, monkeypatch):
    calls = []
    original = Assistant.ask

    def spy(self, question, history=None):
        calls.append((question, list(history or [])))
        return original(self, question, history=history)

    monkeypatch.setattr(Assistant, "ask", spy)
    for question in (ANSWERABLE, OFF_TOPIC, URGENT):
        ask(page, question)

    replies = [m for m in page.chat_message if m.name == "assistant"]
    assert len(replies) == 3  # the welcome is gone once the chat starts
    for reply in replies:
        assert_notice(reply)
    assert len(replies[0].expander) == 1 and len(replies[1].info) == 1 and len(replies[2].error) == 1

    assert calls[0] == (ANSWERABLE, [])
    history = calls[2][1]
    assert [t["role"] for t in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == ANSWERABLE and history[2]["content"] == OFF_TOPIC
    assert SAFETY_NOTICE not in history[1]["content"]  # the body, not the notice
