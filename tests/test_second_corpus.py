"""The assistant on a second corpus: a clinic leaflet (evals/leaflet/corpus), not the podcast.

These tests hold whatever the podcast says: answerability, follow-ups, definitions and the
README's "Adding a document" step, followed as written with the command line (copy the folder, add
a file and a manifest entry, `pht-assistant index`, ask).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from assistant import Assistant, Settings, Status

pytestmark = pytest.mark.integration

LEAFLET = ROOT / "evals" / "leaflet" / "corpus"
CLI = [sys.executable, "-m", "assistant.cli"]


@pytest.fixture(scope="module")
def leaflet(tmp_path_factory, embeddings):
    data = tmp_path_factory.mktemp("leaflet") / "data"
    a = Assistant.from_settings(Settings(data_dir=data, corpus_dir=LEAFLET), embeddings=embeddings, notify=lambda m: None)
    a.warm_up()
    yield a
    a.close()


def _sections(answer) -> list[str]:
    return [c.source.split("#", 1)[1] for c in answer.citations]


@pytest.mark.parametrize(
    "question, section, words",
    [
        ("how often should i do the strengthening exercises?", "your-exercise-programme", "3 times a week"),
        ("how long does it usually take to get better?", "how-long-recovery-takes", "3 months"),
        ("does shockwave therapy help?", "other-treatments", "Shockwave therapy"),
        ("what's a good cushion for sitting", "why-sitting-hurts", "cushion"),
        ("should i rest completely?", "managing-load-and-pain", "Complete rest is not recommended"),
        ("whats PHT?", "what-is-pht", "Proximal hamstring tendinopathy, or PHT"),
    ],
)
def test_what_the_leaflet_says_is_answered_from_the_sentence_that_says_it(leaflet, question, section, words):
    answer = leaflet.ask(question)
    assert answer.status is Status.answered, answer.triage
    assert _sections(answer)[0] == section and words in answer.body, answer.body


@pytest.mark.parametrize(
    "question, named",
    [
        ("is acupuncture any good for PHT?", "acupuncture"),
        ("which running shoes should I buy?", "running shoes"),
        ("how many km can I run in my first week back?", "how many km"),
    ],
)
def test_what_the_leaflet_does_not_say_is_named(leaflet, question, named):
    answer = leaflet.ask(question)
    assert answer.status is Status.not_covered, answer.body
    assert named in answer.body


def test_a_follow_up_is_understood_with_the_turn_before_it(leaflet):
    history = [{"role": "user", "content": "What exercises should I do for PHT?"}]
    answer = leaflet.ask("and how many sets?", history=history)
    assert answer.status is Status.answered and "3 or 4 sets" in answer.body


def test_adding_a_document_as_the_readme_says(tmp_path):
    """README, "Adding a document": a file in the corpus folder, an entry in the manifest, then
    `pht-assistant index`; only the new passages are embedded, and the next question can use them."""
    corpus = tmp_path / "corpus"
    shutil.copytree(LEAFLET, corpus)
    env = {**os.environ, "PHT_CORPUS_DIR": str(corpus), "PHT_DATA_DIR": str(tmp_path / "data")}
    first = subprocess.run([*CLI, "index"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    (corpus / "pool.md").write_text(
        "# Hydrotherapy pool\n\nOur hydrotherapy sessions for hamstring tendon pain run on Tuesday "
        "mornings at nine. Walking in chest-deep water loads the tendon gently.\n",
        encoding="utf-8",
    )
    with (corpus / "manifest.toml").open("a", encoding="utf-8") as f:
        f.write(
            '\n[[document]]\nid = "pool-times"\nfile = "pool.md"\ntitle = "Pool sessions"\n'
            'origin = "clinic notice board"\nadded = "2026-11-29"\nreviewed_by = "Dr Test"\n'
        )
    second = subprocess.run([*CLI, "index"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert " 0 removed" in second.stdout and "unchanged" in second.stdout and " 0 added" not in second.stdout, second.stdout
    asked = subprocess.run(
        [*CLI, "ask", "When do the hydrotherapy sessions run?", "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["status"] == "answered" and answer["citations"][0]["source"].startswith("pool-times#")
