"""The pipeline's own logic with small fake stages: no model, no index, milliseconds per test.

What is tested here is the flow (assistant.pipeline.flow): which stage runs when, what reaches the
patient, what a clinic's context changes, how a written reply is checked sentence by sentence. The
real stages are tested against their contracts elsewhere (test_contracts.py) and end to end with
the real model (test_answering.py, evals/).
"""

from __future__ import annotations

import hashlib
import math

import pytest

from assistant import SAFETY_NOTICE, Assistant, Settings, Status
from assistant.answer import Citation, Delta, Done, Started, Triage
from assistant.contracts import ComposerFailed, Draft, Judgement, Passage, Query
from assistant.corpus.parse import Chunk, Unit

TEXT = "Calf raises suit a sore tendon. Add weight slowly over weeks. Rest between sets."


class HashEmbeddings:
    """A LangChain-shaped embedder with no model: a unit vector from each text's hash."""

    model_id = "hash-16"

    def embed_query(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()[:16]
        v = [b - 127.5 for b in digest]
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


class FakeSources:
    """One document of one passage; records what it was asked."""

    def __init__(self, doc_id: str = "leaflet", text: str = TEXT) -> None:
        self.chunk = Chunk(doc_id, "Leaflet", "v1", "exercise", "Exercise", 0, len(text), text, 0)
        units = []
        start = 0
        for sentence in text.split(". "):
            sentence = sentence if sentence.endswith(".") else sentence + "."
            units.append((Unit(self.chunk.id, self.chunk.source, start, start + len(sentence), sentence, "statement"), 0.5))
            start += len(sentence) + 1
        self.units = units
        self.calls: list[str] = []

    def warm_up(self) -> None:
        pass

    def retrieve(self, query: Query) -> list[Passage]:
        self.calls.append(query.text)
        return [Passage(self.chunk, relevance=0.9, dense=0.6, lexical=2.0, fused=0.03, coverage=1.0, units=list(self.units))]

    def nearest(self, vector) -> float:
        return 0.8

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return [self.chunk] if doc_id == self.chunk.doc_id else []

    def text_at(self, doc_id: str, version: str, start: int, end: int) -> str | None:
        c = self.chunk
        if doc_id == c.doc_id and version == c.version and c.start <= start <= end <= c.end:
            return c.text[start:end]
        return None

    def vocabulary(self) -> frozenset[str]:
        return frozenset({"calf", "rais", "tendon", "weight", "rest", "set"})

    def spelled(self, text: str) -> str:
        return text

    def documents(self) -> dict:
        return {self.chunk.doc_id: {"title": "Leaflet", "reviewed_by": "Dr Manifest", "sections": [{"id": "exercise", "title": "Exercise"}]}}


class OnTopic:
    def judge(self, query, nearest, follow_up) -> Triage:
        return Triage(decision="continue", rule="scope:on-topic", matched="fake")


class OffTopic:
    def judge(self, query, nearest, follow_up) -> Triage:
        return Triage(decision="out_of_scope", rule="scope:off-topic", matched="fake")


class Always:
    """Answerability that answers from every passage."""

    def judge(self, query, passages, sources) -> Judgement:
        return Judgement(answerable=True, passages=passages)


class Never:
    def __init__(self, missing: str = "shockwave therapy", related: bool = False) -> None:
        self.missing, self.related = missing, related

    def judge(self, query, passages, sources) -> Judgement:
        return Judgement(answerable=False, missing=self.missing, related=passages[:1] if self.related else [], reason="fake")


class Quoting:
    """A composer that quotes the first sentence of the first passage, or adds to it."""

    name = "quoting"

    def __init__(self, extra: str = "") -> None:
        self.extra = extra
        self.calls = 0

    def compose(self, question, judgement) -> Draft:
        self.calls += 1
        u, _ = judgement.passages[0].units[0]
        c = judgement.passages[0].chunk
        citation = Citation(n=1, source=c.source, title="Leaflet — Exercise", quote=u.text, start=u.start, end=u.end, score=0.9, version=c.version)
        return Draft(text=f"> {u.text}{self.extra} [1]", citations=[citation], composer=self.name)


class Writer:
    """A writing composer (like a language model) that streams scripted text."""

    name = "writer"
    prompt_version = "test-1"

    def __init__(self, pieces: list[str], fail_after: int | None = None) -> None:
        self.pieces, self.fail_after = pieces, fail_after

    def citations(self, judgement) -> list[Citation]:
        c = judgement.passages[0].chunk
        return [Citation(n=1, source=c.source, title="Leaflet", quote=c.text, start=c.start, end=c.end, score=0.9, version=c.version)]

    def compose(self, question, judgement) -> Draft:  # unused: the flow streams a writer
        raise AssertionError("a writing composer is streamed")

    def stream(self, question, judgement):
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i >= self.fail_after:
                raise ComposerFailed("timeout")
            yield piece


def make(**stages) -> tuple[Assistant, FakeSources]:
    sources = stages.pop("retriever", None) or FakeSources()
    stages.setdefault("scope", OnTopic())
    a = Assistant(Settings(), embeddings=HashEmbeddings(), retriever=sources, **stages)
    return a, sources


def test_an_urgent_question_never_reaches_retrieval_or_a_composer():
    composer = Quoting()
    a, sources = make(answerability=Always(), composer=composer)
    answer = a.ask("my groin has gone numb since this morning, which exercises?")
    assert answer.status is Status.urgent and answer.triage.rule.startswith("red-flag:")
    assert sources.calls == [] and composer.calls == 0
    assert not answer.citations and answer.text.endswith(SAFETY_NOTICE)
    assert "retrieve" not in answer.timings


def test_an_off_topic_question_is_retrieved_for_scope_but_never_composed():
    composer = Quoting()
    a, sources = make(scope=OffTopic(), answerability=Always(), composer=composer)
    answer = a.ask("what should I cook tonight?")
    assert answer.status is Status.out_of_scope and composer.calls == 0
    assert "I can only help" in answer.body


def test_a_grounded_draft_is_answered_with_its_citations():
    a, _ = make(answerability=Always(), composer=Quoting())
    answer = a.ask("are calf raises ok?")
    assert answer.status is Status.answered and answer.composer == "quoting"
    assert answer.citations[0].quote == "Calf raises suit a sore tendon."
    assert answer.citations[0].approved_by is None  # the assistant's own context names no approvers


def test_a_draft_that_says_more_than_its_source_is_never_shown():
    a, _ = make(answerability=Always(), composer=Quoting(extra=" Take two painkillers a day."))
    answer = a.ask("are calf raises ok?")
    assert answer.status is Status.not_covered and answer.triage.rule.startswith("grounding:")
    assert "painkillers" not in answer.text


def test_a_question_the_sources_do_not_address_names_what_is_missing():
    a, _ = make(answerability=Never("shockwave therapy"))
    answer = a.ask("does shockwave therapy work?")
    assert answer.status is Status.not_covered and not answer.citations
    assert answer.body.startswith("My sources don't mention shockwave therapy")


def test_the_closest_thing_the_sources_say_is_quoted_and_checked():
    a, _ = make(answerability=Never("deadlifts", related=True))
    answer = a.ask("can I do deadlifts?")
    assert answer.status is Status.not_covered
    assert answer.body.startswith("My sources don't mention deadlifts")
    assert "The closest thing they say, quoted as written:" in answer.body
    assert answer.citations and answer.citations[0].quote in answer.body


def test_a_clinic_context_is_a_value_passed_in_not_a_copy():
    own = FakeSources("clinic-doc", "Pool sessions run on Tuesdays. Walking in water loads the tendon gently.")
    seen = []
    a, shared = make(answerability=Always(), composer=Quoting())
    context = a.context.with_changes(
        retriever=own, clinic_id="north", approvers={"clinic-doc": "Dr Jane"}, emergency_contact="999", on_answer=seen.append
    )
    answer = a.ask("when are the pool sessions?", context=context)
    assert own.calls and not shared.calls  # the clinic's retriever, not the assistant's
    assert answer.citations[0].source == "clinic-doc#exercise" and answer.citations[0].approved_by == "Dr Jane"
    assert seen == [answer]
    assert "999" in a.ask("I suddenly can't control my bladder", context=context).body
    assert "your local emergency number" in a.ask("I suddenly can't control my bladder").body
    assert a.context.clinic_id is None  # the assistant's own context is untouched


def test_stream_events_are_the_answer_in_pieces():
    a, _ = make(answerability=Always(), composer=Quoting())
    events = list(a.stream("are calf raises ok?"))
    assert isinstance(events[0], Started) and isinstance(events[-1], Done)
    answer = events[-1].answer
    assert events[0].status is answer.status and events[0].id == answer.id
    assert "".join(e.text for e in events if isinstance(e, Delta)) == answer.text


def test_a_writing_composer_is_shown_only_what_its_sources_support():
    writer = Writer(["Calf raises suit a sore tendon [1]. ", "Add weight slowly over weeks [1]. ", "Ice it twice daily [1]. "])
    a, _ = make(answerability=Always(), composer=writer)
    events = list(a.stream("are calf raises ok?"))
    answer = events[-1].answer
    assert answer.status is Status.answered and answer.composer == "writer" and answer.prompt_version == "test-1"
    assert "Ice" not in answer.text and "1 of 3 sentences dropped" in answer.composer_note
    shown = "".join(e.text for e in events if isinstance(e, Delta))
    assert shown == answer.text and shown.startswith("Calf raises suit a sore tendon [1]. Add weight slowly over weeks [1].")


def test_a_writer_with_too_little_support_gives_way_to_the_extractive_reply():
    writer = Writer(["Ice it twice daily [1]. ", "Massage helps a lot [1]. ", "Calf raises suit a sore tendon [1]."])
    a, _ = make(answerability=Always(), composer=writer)
    answer = a.ask("are calf raises ok?")
    assert answer.status is Status.answered and answer.composer == "extractive"
    assert answer.composer_note.startswith("extractive instead: only 1 of 3")


def test_a_writer_that_fails_before_anything_is_shown_gives_way_silently():
    writer = Writer(["Calf raises suit a sore tendon [1]. ", "more"], fail_after=1)
    a, _ = make(answerability=Always(), composer=writer)
    answer = a.ask("are calf raises ok?")
    assert answer.status is Status.answered and answer.composer == "extractive"
    assert answer.composer_note == "extractive instead: timeout"


def test_a_writer_that_fails_after_it_was_shown_keeps_what_was_shown():
    writer = Writer(["Calf raises suit a sore tendon [1]. ", "Add weight slowly over weeks [1]. ", "More"], fail_after=2)
    a, _ = make(answerability=Always(), composer=writer)
    events = list(a.stream("are calf raises ok?"))
    answer = events[-1].answer
    assert answer.composer == "writer" and answer.text.startswith("Calf raises suit a sore tendon [1]. Add weight")
    assert "".join(e.text for e in events if isinstance(e, Delta)) == answer.text


def test_a_sentence_without_a_marker_is_dropped():
    writer = Writer(["Calf raises suit a sore tendon [1]. ", "You will be fine. ", "Add weight slowly over weeks [1]."])
    a, _ = make(answerability=Always(), composer=writer)
    answer = a.ask("are calf raises ok?")
    assert "fine" not in answer.text and answer.composer == "writer"


@pytest.mark.parametrize("bad", [None, "", "   ", b"bytes", 42])
def test_bad_input_is_refused_before_any_stage_runs(bad):
    a, sources = make(answerability=Always(), composer=Quoting())
    with pytest.raises(ValueError):
        a.ask(bad)
    with pytest.raises(ValueError):
        next(a.stream(bad))
    assert sources.calls == []


def test_the_chain_and_the_direct_run_give_the_same_answers():
    """With nobody listening, the flow calls its steps directly instead of through LangChain's
    runnables (docs/performance.md): the same steps, the same answers, for every kind of reply."""
    from assistant.pipeline.flow import Turn

    a, _ = make(answerability=Always(), composer=Quoting())
    a.warm_up()
    for question in ("are calf raises ok?", "my groin has gone numb since this morning"):
        chained = a.flow.chain.invoke(Turn(question=question, history=[], context=a.context))
        direct = a.flow.run(Turn(question=question, history=[], context=a.context))
        assert (chained.status, chained.text, chained.citations) == (direct.status, direct.text, direct.citations)
        assert list(chained.timings) == list(direct.timings)


def test_a_listening_tracer_gets_the_langchain_runs():
    from contextvars import ContextVar

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.tracers.context import register_configure_hook

    from assistant.pipeline.flow import listened

    class Names(BaseCallbackHandler):
        def __init__(self):
            self.names = []

        def on_chain_start(self, serialized, inputs, **kwargs):
            self.names.append(kwargs.get("name"))

    var: ContextVar = ContextVar("pht_test_tracer", default=None)
    register_configure_hook(var, True)
    a, _ = make(answerability=Always(), composer=Quoting())
    assert not listened()
    tracer = Names()
    token = var.set(tracer)
    try:
        assert listened()
        a.ask("are calf raises ok?")
    finally:
        var.reset(token)
    assert {"embed", "safety", "retrieve", "answerability", "compose", "ground"} <= set(tracer.names)
