"""The grounding check's thresholds are the ones evals/grounding/calibrate.py chooses, and the
figures docs/safety.md quotes are what the check measures now (real model, every pair)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.grounding.support import Thresholds
from evals.grounding import calibrate

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "evals" / "grounding" / "calibration.json").read_text(encoding="utf-8"))


def test_the_paraphrase_set_is_large_and_covers_every_kind():
    rows = calibrate.load_pairs()
    kinds = Counter(r["kind"] for r in rows)
    assert len(rows) >= 150 and set(kinds) == {"faithful", "invented", "number", "negation", "added", "certainty", "elsewhere"}
    assert {r["corpus"] for r in rows} == {"podcast", "leaflet"}
    halves = {half: {r["group"] for r in rows if r["half"] == half} for half in ("tune", "held-out")}
    assert halves["tune"] and halves["held-out"] and not halves["tune"] & halves["held-out"]


@pytest.mark.integration
def test_the_thresholds_in_code_are_the_calibrated_ones_and_the_figures_hold(embeddings):
    rows = calibrate.load_pairs()
    calibrate.measure(rows, embeddings.embed_documents)
    tune = [r for r in rows if r["half"] == "tune"]
    held = [r for r in rows if r["half"] == "held-out"]
    chosen = calibrate.choose(tune, RECORDED["chosen"]["min_precision"])
    assert chosen == (Thresholds().similarity, Thresholds().coverage) == (RECORDED["chosen"]["similarity"], RECORDED["chosen"]["coverage"])
    assert calibrate.figures(tune, *chosen) == RECORDED["tune"]
    assert calibrate.figures(held, *chosen) == RECORDED["held_out"]
    assert calibrate.verbatim_sentences_pass(embeddings.embed_documents) == RECORDED["verbatim_sentences_accepted"]


def test_an_extractive_quote_of_list_items_is_word_for_word():
    """The extractive composer quotes list items with their bullets and line breaks; that is a quote."""
    from assistant.corpus.parse import load_corpus
    from assistant.grounding.support import claims, sentence_support

    chunk = next(c for d in load_corpus(ROOT / "evals" / "leaflet" / "corpus").documents for c in d.chunks() if c.section_id == "why-sitting-hurts")
    start = chunk.text.index("- Sit on a cushion")
    end = chunk.text.index("30 minutes.") + len("30 minutes.")
    quote = chunk.text[start:end]
    found = claims(f"Here is what my sources say, quoted as written:\n\n> {quote} [1]")
    assert len(found) == 1 and "\n- Break up" in found[0][0]
    support = sentence_support(found[0][0], [chunk.text])  # no model: word for word needs none
    assert support.supported and support.verbatim
    assert not sentence_support("- Sit on a cushion,\n- Break up your sitting [1]", [chunk.text]).verbatim
