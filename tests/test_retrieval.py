"""Retrieval on a corpus of its own (real embeddings, a temporary index): how dense and BM25
ranks are fused, and where a document's framing text (introduction, closing paragraph) ranks."""

from __future__ import annotations

import pytest
from conftest import write_corpus

from assistant.index.embedded import ChromaIndex, build_index
from assistant.retrieval.hybrid import HybridRetriever

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


def _retriever_over(root, embeddings, docs):
    """A warmed retriever over a fresh index of ``docs`` (file name -> (doc id, text)) under ``root``."""
    build_index(root / "data", write_corpus(root / "corpus", docs), embeddings)
    index = ChromaIndex(root / "data")
    r = HybridRetriever(index)
    r.warm_up()
    yield r
    index.close()


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, embeddings):
    docs = {"guide.txt": ("knee-guide", GUIDE), "note.txt": ("plain-note", NOTE)}
    yield from _retriever_over(tmp_path_factory.mktemp("framing"), embeddings, docs)


def _ask(retriever, embeddings, question):
    from assistant.contracts import Query

    return retriever.retrieve(Query(text=question, vector=embeddings.embed_query(question), focus=question))


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


# How patients write against how a care guide writes: clipped words ("rehab"), misspellings of
# short words ("runing", "wiht") and of words whose stem the misspelling changes ("excercises").
ACHILLES = """Achilles care guide

This guide covers the Achilles tendon: what to do in the first weeks, and later.

Part 1: Rehabilitation

Heel drops on a step are the main exercises: three sets of fifteen, twice a day. Bent knee heel drops load the lower calf.

Part 2: Running again

Start with a walk and jog on alternate days. Add five minutes each week if the tendon settles by the next morning.

Part 3: Footwear

Choose shoes with a small heel drop. Avoid flat sandals in the first weeks.
"""


@pytest.fixture(scope="module")
def achilles(tmp_path_factory, embeddings):
    yield from _retriever_over(tmp_path_factory.mktemp("lexical"), embeddings, {"achilles.txt": ("achilles", ACHILLES)})


@pytest.mark.parametrize(
    ("question", "section", "term"),
    [
        ("is rehab the same every day", "achilles#part-1", "rehabilit"),  # a clipping
        ("wen can I start runing agian", "achilles#part-2", "run"),  # a doubling slip, short words
        ("which excercises shud i do", "achilles#part-1", "exerc"),  # the misspelling's stem differs
    ],
)
def test_clipped_and_misspelled_words_reach_the_passage_that_uses_the_full_word(
    achilles, embeddings, question, section, term
):
    assert term in achilles.query_terms(question)
    passages = _ask(achilles, embeddings, question)
    assert passages[0].chunk.source == section
    assert passages[0].lexical > 0 and passages[0].coverage > 0
    assert max(p.lexical for p in passages[1:]) < passages[0].lexical


def test_misspelled_stopwords_and_short_words_are_corrected_against_the_index(achilles):
    # "wiht" is "with" and "agian" is "again" (stopwords, so they leave the query); "drps",
    # "sandels" and "shoos" are the guide's "drops", "sandals" and "shoes"
    assert achilles.query_terms("heel drps wiht shoes agian") == ["heel", "drop", "shoe"]
    assert achilles.query_terms("sandels or shoos") == ["sandal", "shoe"]


def test_real_words_the_index_does_not_use_are_not_turned_into_words_it_does(achilles):
    # "taping" is tape + ing (not "taking"), "heat" is a word (not "heel" or "seat")
    assert achilles.query_terms("does taping or heat help") == ["tape", "heat"]


def test_word_families_and_clippings_agree_in_documents_and_questions():
    from assistant.retrieval.terms import terms

    assert terms("runner") == terms("running") == terms("runs")
    assert terms("rehab") == terms("rehabbing") == terms("rehabilitation")
    assert terms("physiotherapist") == terms("physiotherapy") == terms("physio")
    assert terms("heavier") == terms("heavy")
    assert terms("shud u") == []  # chat spellings of stopwords
    assert terms("number") != terms("numb")  # a plain -er is left alone


def test_edit_distance_allowed_grows_with_the_word():
    from assistant.retrieval.lexical import doubling_slip, max_edits, osa

    assert [max_edits(n) for n in (3, 4, 7, 8, 12)] == [0, 1, 1, 2, 2]
    assert osa("wiht", "with") == 1  # a swap is one edit
    assert osa("excercises", "exercises") == 1
    assert osa("stregnth", "strength") == 1
    assert osa("abc", "xyzuvw", limit=2) == 3  # anything beyond the limit is limit + 1
    assert doubling_slip("runing", "running") and not doubling_slip("taping", "taking")
