"""The runnable examples in the docstrings of the public modules stay true."""

from __future__ import annotations

import doctest
import importlib
import shutil

import pytest

from assistant.settings import get_settings

LIGHT = [
    "answer",
    "reply",
    "corpus.parse",
    "corpus.topics",
    "contracts",
    "policy",
    "safety.rules",
    "safety.text",
    "safety.scope",
    "safety.replies",
    "retrieval.terms",
    "retrieval.vocabulary",
    "grounding.terms",
    "pipeline.context",
    "pipeline.validate",
    "pipeline.writing",
    "pipeline.assembly",
    "answerability.gate",
    "rewrite.followups",
    "errors",
    "grounding.support",
    "compose.extractive",
    "compose.llm",
    "retrieval.hybrid",
    "safety.triage",
    "settings",
    "index.embedded",
    "clinics.registry",
    "clinics.schema",
    "clinics.migrate",
    "clinics.sql",
    "api.limits",
    "tracing",
    "widget",
    "__init__",
]


@pytest.mark.parametrize("name", LIGHT)
def test_module_examples(name):
    module = importlib.import_module("assistant" if name == "__init__" else f"assistant.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name not in {"__init__"}:
        assert result.attempted > 0, f"assistant.{name} has no runnable example"


@pytest.mark.integration
@pytest.mark.parametrize("name", ["pipeline.assistant", "embed.minilm"])
def test_examples_that_need_the_model(name, built_data_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    monkeypatch.setenv("PHT_DATA_DIR", str(data))
    get_settings.cache_clear()
    module = importlib.import_module(f"assistant.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
