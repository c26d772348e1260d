"""The public surface: a curated root API and an Answer that cannot drop the notice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import assistant
from assistant import SAFETY_NOTICE, Answer, Citation, Status


def test_root_api_is_curated_and_sorted():
    assert assistant.__all__ == sorted(assistant.__all__)
    for name in assistant.__all__:
        assert hasattr(assistant, name), name
    assert {"Assistant", "Answer", "AssistantError", "Settings", "get_settings"} <= set(assistant.__all__)


def test_errors_are_value_errors_with_a_sentence():
    from assistant import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ValueError)
    assert str(errors.QuestionTooLong(3000, 2000)).endswith("2000 characters or fewer.")


def test_notice_mentions_a_physiotherapist():
    assert "physiotherapist" in SAFETY_NOTICE


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.answered])
def test_every_answer_ends_with_the_notice(status):
    a = Answer(status=status, text="Some reply.")
    assert a.text.endswith(SAFETY_NOTICE)
    assert a.body == "Some reply."
    # round trip keeps exactly one notice
    again = Answer.model_validate_json(a.model_dump_json())
    assert again.text == a.text and again.text.count(SAFETY_NOTICE) == 1


@pytest.mark.parametrize("notice", ["", "   "])
def test_an_answer_cannot_be_built_without_a_notice(notice):
    with pytest.raises(ValidationError):
        Answer(status=Status.not_covered, text="x", safety_notice=notice)


def test_answered_needs_a_citation_and_urgent_carries_none():
    c = Citation(n=1, source="d#s", title="t", quote="abc", start=3, end=6, score=0.5, version="v")
    with pytest.raises(ValidationError):
        Answer(status=Status.answered, text="x")
    with pytest.raises(ValidationError):
        Answer(status=Status.urgent, text="x", citations=[c])
    assert Answer(status=Status.answered, text="abc [1]", citations=[c]).citations[0].quote == "abc"


def test_citation_offsets_must_span_the_quote():
    with pytest.raises(ValidationError):
        Citation(n=1, source="d#s", title="t", quote="abc", start=0, end=10, score=0.5, version="v")


def test_answer_ids_are_unique():
    assert Answer(status="not_covered", text="a").id != Answer(status="not_covered", text="a").id


def test_settings_read_the_environment(monkeypatch, tmp_path):
    from assistant import get_settings

    monkeypatch.setenv("PHT_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("PHT_EMERGENCY_CONTACT", "112")
    get_settings.cache_clear()
    s = get_settings()
    assert s.data_dir == tmp_path / "elsewhere" and s.emergency_contact == "112"
    assert s.corpus_dir.name == "corpus" and (s.corpus_dir / "manifest.toml").exists()
