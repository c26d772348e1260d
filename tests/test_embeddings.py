"""The ONNX encoder gives sentence-transformers' vectors, and indexes stay valid across backends."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, write_corpus

pytestmark = pytest.mark.integration

_CORPUS = (ROOT / "corpus" / "pht_podcast_qa.txt").read_text(encoding="utf-8")
# A fixed check set: questions, corpus sentences and paragraphs, odd inputs, and a text well past
# the model's 256 word pieces (truncated the same way by both backends).
CHECK_SET = [
    "Can I keep running while I rehab my high hamstring tendon?",
    "what is PHT",
    "hamstring pain when sitting",
    "My bum has gone numb since yesterday",
    "What is a good recipe for banana bread?",
    "x",
    "",
    "Ça fait mal quand je cours — 痛い 🏃",
    "sit-bone pain!!! 10/10??",
    *[p.strip() for p in _CORPUS.split("\n\n") if p.strip()][:24],
    _CORPUS[:4000],
]


@pytest.fixture(scope="module")
def reference():
    from assistant.embeddings import MiniLMEmbeddings

    ref = MiniLMEmbeddings(backend="sentence-transformers")
    assert ref.loaded_backend == "sentence-transformers"
    return ref


def test_onnx_matches_sentence_transformers(embeddings, reference):
    assert embeddings.loaded_backend == "onnx"
    ours = np.asarray(embeddings._encode(CHECK_SET))
    theirs = np.asarray(reference._encode(CHECK_SET))
    assert ours.shape == theirs.shape == (len(CHECK_SET), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.99, dict(zip(CHECK_SET, cosines.round(4)))
    # one text alone and inside a padded batch give the same vector
    alone = np.asarray(embeddings.embed_query(CHECK_SET[0]))
    assert float(alone @ ours[0]) > 0.9999


def test_both_backends_record_one_model_id_and_share_an_index(tmp_path, embeddings, reference):
    from assistant.index import build_index, read_meta

    assert embeddings.model_id == reference.model_id
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", "Notes\n\nRun slowly at first. Build up over weeks.\n")})
    data = tmp_path / "data"
    first = build_index(data, corpus, reference)
    assert first.changed and read_meta(data).model == embeddings.model_id
    again = build_index(data, corpus, embeddings)  # the other backend reads it: no rebuild
    assert not again.changed and again.rebuilt_because == ""


def test_falls_back_to_sentence_transformers_without_an_onnx_file(tmp_path, monkeypatch, reference):
    from assistant.embeddings import _load, _packaged_model_path

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PHT_MODEL_CACHE", str(blocker / "cache"))
    kind, model = _load.__wrapped__(_packaged_model_path(), "onnx")
    assert kind == "sentence-transformers"
    assert model.encode(["hamstring"]).shape == (1, 384)


def test_a_reading_process_never_imports_torch(built_data_dir, embeddings):
    code = (
        "import sys\nfrom assistant import Assistant, Settings\n"
        f"a = Assistant.from_settings(Settings(data_dir={str(built_data_dir)!r}), notify=lambda m: None)\n"
        "print(a.ask('Can running be part of my rehab for PHT?').status.value)\n"
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    status, heavy = (out.stdout.strip().splitlines() + [""])[:2]
    assert status == "answered"
    assert heavy == ""
