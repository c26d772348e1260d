"""Every stage implementation meets its contract (assistant.contracts), and the pipeline is
assembled only from what the contracts declare: a plain LangChain ``Embeddings`` works."""

from __future__ import annotations

import pytest
from conftest import ROOT

from assistant import Assistant, Settings, Status
from assistant.contracts import (
    Answerability,
    Composer,
    GroundingCheck,
    Passage,
    Query,
    Retriever,
    Rewriter,
    SafetyTriage,
    Scope,
    Sources,
)

pytestmark = pytest.mark.integration

LEAFLET = ROOT / "evals" / "leaflet" / "corpus"


def test_the_default_stages_meet_their_contracts(assistant):
    s = assistant.stages
    assert isinstance(assistant.retriever, Retriever) and isinstance(assistant.retriever, Sources)
    assert isinstance(s.safety, SafetyTriage) and isinstance(s.rewriter, Rewriter) and isinstance(s.scope, Scope)
    assert isinstance(s.answerability, Answerability) and isinstance(s.composer, Composer)
    assert isinstance(s.grounding, GroundingCheck)


@pytest.fixture(scope="module")
def retrievers(tmp_path_factory, built_data_dir, embeddings):
    """Each Retriever implementation: the corpus index, and a clinic's (corpus + its own documents)."""
    import shutil

    data = tmp_path_factory.mktemp("contract") / "data"
    shutil.copytree(built_data_dir, data)
    a = Assistant.from_settings(Settings(data_dir=data), embeddings=embeddings, notify=lambda m: None)
    a.warm_up()
    a.library.registry.add_clinic("Contract Clinic")
    text = (LEAFLET / "leaflet.md").read_bytes()
    doc = a.library.upload("contract-clinic", "leaflet.md", text)
    a.library.approve("contract-clinic", doc.id, "Dr Test")
    tenant = a.for_clinic("contract-clinic").context().retriever
    yield {"hybrid": a.retriever, "tenant": tenant}
    a.library.registry.close()
    a.library.store.release()
    a.close()


@pytest.mark.parametrize("kind", ["hybrid", "tenant"])
def test_a_retriever_returns_passages_best_first_with_their_sentences(retrievers, embeddings, kind):
    r = retrievers[kind]
    question = "which exercises can I do to build muscle with PHT?"
    passages = r.retrieve(Query(text=question, vector=embeddings.embed_query(question), focus=question))
    assert passages and all(isinstance(p, Passage) for p in passages)
    assert all(0.0 <= p.relevance <= 1.0 for p in passages)
    assert passages[0].units and all(u.chunk_id == passages[0].chunk.id for u, _ in passages[0].units)
    assert -1.0 <= r.nearest(embeddings.embed_query(question)) <= 1.0


@pytest.mark.parametrize("kind", ["hybrid", "tenant"])
def test_sources_give_back_the_exact_indexed_text(retrievers, kind):
    r = retrievers[kind]
    docs = r.documents()
    assert "pht-podcast-qa" in docs
    chunk = r.chunks_of("pht-podcast-qa")[0]
    assert r.text_at("pht-podcast-qa", chunk.version, chunk.start, chunk.start + 20) == chunk.text[:20]
    assert r.text_at("pht-podcast-qa", "another-version", chunk.start, chunk.start + 20) is None
    assert {"marathon", "tendon"} <= set(r.vocabulary())
    assert "exercises" in r.spelled("excercises for my hammy")


def test_a_clinic_retriever_reads_the_clinic_documents_as_its_own(retrievers):
    tenant = retrievers["tenant"]
    own = [d for d in tenant.documents() if d != "pht-podcast-qa"]
    assert len(own) == 1 and tenant.chunks_of(own[0])
    assert "isometr" in tenant.vocabulary()  # a word of the clinic's leaflet
    assert "isometr" not in retrievers["hybrid"].vocabulary()


def test_a_plain_langchain_embeddings_builds_the_index_and_answers(tmp_path, embeddings):
    """Only ``embed_documents`` and ``embed_query``: no model id, warm-up or index encoder."""
    from langchain_core.embeddings import Embeddings

    class Plain(Embeddings):
        def embed_documents(self, texts):
            return embeddings.embed_documents(texts)

        def embed_query(self, text):
            return embeddings.embed_query(text)

    a = Assistant.from_settings(Settings(data_dir=tmp_path / "data"), embeddings=Plain(), notify=lambda m: None)
    try:
        answer = a.ask("Which exercises can I do to build muscle with PHT?")
        assert answer.status is Status.answered and answer.citations[0].source == "pht-podcast-qa#qa-2"
        assert a.model_id == "Plain"
    finally:
        a.close()
