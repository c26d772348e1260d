"""Retrieval on a corpus of its own (real embeddings, a temporary index): how dense and BM25
ranks are fused, and where a document's framing text (introduction, closing paragraph) ranks."""

from __future__ import annotations

import pytest
from conftest import write_corpus

from assistant.index import ChromaIndex, build_index
from assistant.retrieval import HybridRetriever

# A care guide in the shape clinics upload: a title, an introduction that lists every part, numbered
# parts, and a closing paragraph (set apart by two blank lines) that restates them all.
GUIDE = """Knee care guide

Welcome to this guide to patellar tendinopathy. Whether you play sport or not, understanding this knee tendon condition helps. We cover loading exercises, returning to jumping sports and sleep.

Part 1: Loading exercises

Start with isometric wall sits held for forty five seconds, five times a day. Progress to slow heavy squats and leg press three times a week. Decline board squats load the patellar tendon most.

Part 2: Returning to jumping sports

Add skipping and hopping once slow heavy squats are comfortable. Basketball and volleyball players return to full training over six to eight weeks. Keep the total jump count low in the first weeks.

Part 3: Sleep and recovery

Seven to nine hours of sleep helps tendon repair. Avoid heavy training late at night.


Patellar tendinopathy is a stubborn knee tendon condition, but with patient loading exercises, a careful return to sport and good recovery, you can overcome it. Ask your physiotherapist for a plan that suits you.
"""
NOTE = "A plain note without headings. Ice can ease a sore knee after training.\n"


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, embeddings):
    root = tmp_path_factory.mktemp("framing")
    corpus = write_corpus(root / "corpus", {"guide.txt": ("knee-guide", GUIDE), "note.txt": ("plain-note", NOTE)})
    build_index(root / "data", corpus, embeddings)
    index = ChromaIndex(root / "data")
    r = HybridRetriever(index)
    r.warm_up()
    yield r
    index.close()


def _ask(retriever, embeddings, question):
    return retriever.retrieve(question, embeddings.embed_query(question))


def test_framing_text_is_the_intro_and_closing_of_a_document_with_headings(retriever):
    framing = {c.source: f for c, f in zip(retriever._chunks, retriever._framing, strict=True)}
    assert framing == {
        "knee-guide#intro": True,
        "knee-guide#part-1": False,
        "knee-guide#part-2": False,
        "knee-guide#part-3": False,
        "knee-guide#outro": True,
        "plain-note#intro": False,  # a document without headings: its intro is all its content
    }


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("how do I return to basketball with patellar tendinopathy", "knee-guide#part-2"),
        ("what exercises help patellar tendinopathy", "knee-guide#part-1"),
    ],
)
def test_when_dense_and_bm25_disagree_the_headed_section_comes_before_the_framing_text(
    retriever, embeddings, question, section
):
    first, second = _ask(retriever, embeddings, question)[:2]
    assert first.chunk.source == section
    assert second.chunk.source == "knee-guide#intro"
    # the case this is about: the introduction (which names every part) is the closer sentence,
    # BM25 prefers the section, and the two lists weigh alike, so the fused scores tie
    assert second.dense > first.dense and first.lexical > second.lexical
    assert first.fused == pytest.approx(second.fused, abs=1e-12)


def test_framing_text_still_comes_first_for_what_only_it_says(retriever, embeddings):
    passages = _ask(retriever, embeddings, "can I overcome patellar tendinopathy")
    assert passages[0].chunk.source == "knee-guide#outro"
    # between two framing passages the tie goes to the more relevant
    assert passages[1].chunk.source == "knee-guide#intro"
    assert passages[0].fused == pytest.approx(passages[1].fused, abs=1e-12)
    assert passages[0].relevance > passages[1].relevance


def test_the_first_passages_carry_their_scored_sentences(retriever, embeddings):
    passages = _ask(retriever, embeddings, "how long should I sleep to help my knee tendon")
    assert passages[0].chunk.source == "knee-guide#part-3"
    assert all(p.units for p in passages[: retriever.detail])
    assert all(not p.units for p in passages[retriever.detail :])
    assert {u.source for u, _ in passages[0].units} == {"knee-guide#part-3"}
