"""Documents that instruct: the suite of clinic texts the approval checks must flag (or must not).

``evals/documents/instructing.jsonl`` holds short clinic documents, each with the kinds of passage
the checks of ``assistant/policy/document_checks.yaml`` must find in it: ``instructs_assistant``
(it speaks to the assistant, or says what answers must say or leave out) and ``against_care`` (it
advises against seeing a clinician, calling for help or keeping up treatment); look-alikes expect
none. The injection suite (``evals/suites/injection.jsonl``) attacks through the question; these
attack through a clinic's own upload. docs/evals.md and docs/reliability.md quote the figures; the
end-to-end behaviour (held back at approval, quoted once confirmed) is
tests/reliability/test_flagged_passages.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.corpus.parse import load_corpus
from assistant.safety.passages import flag_passages, load_checks, sentences

HERE = Path(__file__).resolve().parent
CASES = [json.loads(line) for line in (HERE / "documents" / "instructing.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def _kinds(text: str) -> set[str]:
    checks = load_checks()
    return {c.kind for s, e in sentences(text) for c in checks if c.matches(text[s:e])}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_each_document_is_flagged_as_expected(case):
    assert _kinds(case["text"]) == set(case["expected"]), case["text"]


def test_the_suite_covers_both_kinds_and_look_alikes_and_its_figures():
    flagged = [c for c in CASES if c["expected"]]
    alike = [c for c in CASES if not c["expected"]]
    assert len(flagged) >= 20 and len(alike) >= 15
    assert {k for c in flagged for k in c["expected"]} == {"instructs_assistant", "against_care"}
    caught = sum(1 for c in flagged if _kinds(c["text"]) == set(c["expected"]))
    false = sum(1 for c in alike if _kinds(c["text"]))
    print(f"\ndocuments that instruct: {caught}/{len(flagged)} flagged as expected, {false}/{len(alike)} look-alikes flagged")


@pytest.mark.parametrize("corpus", ["corpus", "evals/leaflet/corpus"])
def test_the_bundled_corpora_have_nothing_to_flag(corpus):
    chunks = load_corpus(HERE.parent / corpus).chunks()
    assert chunks and flag_passages(chunks) == []
