"""The index: real embeddings, a real Chroma in a temporary folder, one writer at a time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, write_corpus

from assistant import Assistant, Settings
from assistant.errors import IndexBusy, IndexDamaged, IndexMissing
from assistant.index.embedded import ChromaIndex, build_index, read_meta, writer_lock

pytestmark = pytest.mark.integration

DOC_A = (
    "Loading guide\n\nIntro words about tendons.\n\nQ&A 1: Squats\n\nAnswer: Squat to a box. Keep it slow.\n"
)
DOC_B = "Running notes\n\nQ&A 1: Hills\n\nAnswer: Avoid steep hills at first. Walk them.\n"


class CountingEmbeddings:
    """The real model, counting what it encodes (to prove unchanged passages are not re-embedded)."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner = inner
        self.model_id = inner.model_id
        self.embedded = 0
        self.fail_after = fail_after

    def warm_up(self):
        self.inner.warm_up()

    def embed_documents(self, texts, progress=None):
        if self.fail_after is not None and self.embedded + len(texts) > self.fail_after:
            raise RuntimeError("killed mid-build")
        self.embedded += len(texts)
        return self.inner.embed_documents(texts, progress=progress)

    def embed_query(self, text):
        return self.inner.embed_query(text)


def _records_of(corpus_dir, doc_id):
    from assistant.corpus.parse import chunk_units, load_corpus

    doc = next(d for d in load_corpus(corpus_dir).documents if d.id == doc_id)
    return sum(1 + len(chunk_units(c)) for c in doc.chunks())


def test_build_then_incremental(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A), "b.txt": ("doc-b", DOC_B)})
    data = tmp_path / "data"
    emb = CountingEmbeddings(embeddings)

    first = build_index(data, corpus, emb)
    assert first.changed and first.added == first.records
    assert first.encoded == emb.embedded < first.records  # passages reuse their sentences' vectors
    assert read_meta(data).chunks == first.chunks

    again = build_index(data, corpus, emb)
    assert not again.changed and emb.embedded == first.encoded  # nothing re-embedded

    (corpus / "b.txt").write_text(DOC_B.replace("steep hills", "steep hills and stairs"))
    before = emb.embedded
    changed = build_index(data, corpus, emb)
    # only doc-b's changed passage (and its sentences) went through the encoder again
    assert changed.encoded == emb.embedded - before
    assert 0 < changed.encoded < changed.added <= _records_of(corpus, "doc-b")
    assert changed.removed == changed.added  # the old version of b's passages went away
    idx = ChromaIndex(data)
    assert idx.count() == changed.records
    assert any("stairs" in c.text for c in idx.records())
    assert not any(c.text.endswith("Avoid steep hills at first. Walk them.") for c in idx.records())
    idx.close()


def test_removed_documents_are_deleted(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A), "b.txt": ("doc-b", DOC_B)})
    data = tmp_path / "data"
    build_index(data, corpus, embeddings)
    write_corpus(corpus, {"a.txt": ("doc-a", DOC_A)})
    report = build_index(data, corpus, embeddings)
    assert report.added == 0 and report.removed > 0
    idx = ChromaIndex(data)
    assert {c.doc_id for c in idx.records()} == {"doc-a"}
    assert set(read_meta(data).documents) == {"doc-a"}
    idx.close()


def test_a_failed_build_leaves_the_previous_index_in_service(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A)})
    data = tmp_path / "data"
    build_index(data, corpus, embeddings)
    meta_before = read_meta(data)
    write_corpus(corpus, {"a.txt": ("doc-a", DOC_A), "b.txt": ("doc-b", DOC_B)})
    with pytest.raises(RuntimeError):
        build_index(data, corpus, CountingEmbeddings(embeddings, fail_after=1))
    assert read_meta(data) == meta_before
    assert sorted(p.name for p in data.glob("chroma-*")) == [meta_before.generation]
    idx = ChromaIndex(data)
    assert {c.doc_id for c in idx.records()} == {"doc-a"}
    idx.close()


def test_another_model_triggers_a_rebuild_with_a_message(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A)})
    data = tmp_path / "data"
    build_index(data, corpus, embeddings)
    meta = json.loads((data / "index.json").read_text())
    meta["model"] = "some-other-model"
    (data / "index.json").write_text(json.dumps(meta))
    said = []
    report = build_index(data, corpus, embeddings, notify=said.append)
    assert report.changed and report.added == report.records
    assert said and "some-other-model" in said[0] and "rebuilding" in said[0]


def test_a_second_writer_is_told_the_index_is_busy(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A)})
    data = tmp_path / "data"
    with writer_lock(data):
        with pytest.raises(IndexBusy, match="being rebuilt"):
            build_index(data, corpus, embeddings)


def test_the_lock_holds_across_processes(tmp_path):
    data = tmp_path / "data"
    code = (
        "import sys,time; from pathlib import Path; from assistant.index.embedded import writer_lock\n"
        "with writer_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexBusy):
            with writer_lock(data):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_missing_and_damaged_indexes_say_how_to_rebuild(tmp_path, embeddings):
    data = tmp_path / "data"
    with pytest.raises(IndexMissing, match="pht-assistant index"):
        ChromaIndex(data)
    build_index(data, ROOT / "corpus", embeddings)

    broken = tmp_path / "broken-record"
    shutil.copytree(data, broken)
    (broken / "index.json").write_text("{not json")
    with pytest.raises(IndexDamaged, match="--rebuild"):
        ChromaIndex(broken)

    gone = tmp_path / "missing-store"
    shutil.copytree(data, gone)
    shutil.rmtree(gone / read_meta(gone).generation)
    with pytest.raises(IndexDamaged, match="--rebuild"):
        ChromaIndex(gone)

    garbage = tmp_path / "garbage-store"
    shutil.copytree(data, garbage)
    (garbage / read_meta(garbage).generation / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexDamaged, match="--rebuild"):
        ChromaIndex(garbage, check_timeout=20)


def test_first_use_builds_the_index(tmp_path, embeddings):
    data = tmp_path / "fresh"
    said = []
    a = Assistant.from_settings(
        Settings(data_dir=data), embeddings=embeddings, notify=said.append, progress=False
    )
    assert said and "building it" in said[0]
    assert read_meta(data).documents["pht-podcast-qa"]["sections"][1]["id"] == "qa-1"
    assert a.ask("Can running be part of my rehab?").status.value == "answered"
    a.close()


def test_a_new_document_is_answered_after_index(tmp_path, embeddings):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    manifest = (corpus / "manifest.toml").read_text()
    (corpus / "cycling.md").write_text(
        "# Cycling with PHT\n\nLower the saddle slightly and avoid long climbs out of the saddle early on. "
        "Short, easy spins are usually tolerated before long rides.\n",
        encoding="utf-8",
    )
    (corpus / "manifest.toml").write_text(
        manifest + '\n[[document]]\nid = "cycling-notes"\nfile = "cycling.md"\ntitle = "Cycling notes"\n'
    )
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus)
    a = Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None, progress=False)
    answer = a.ask("Is cycling ok with PHT, and how should I set up my bike saddle?")
    assert answer.status.value == "answered"
    assert answer.citations[0].source.startswith("cycling-notes#")
    a.close()


def test_readers_keep_answering_while_another_process_rebuilds(built_data_dir, tmp_path, embeddings):
    """One writer at a time: a second writer is told so at once, readers are not disturbed."""
    import os
    import time

    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    reader = Assistant.from_settings(Settings(data_dir=data), embeddings=embeddings, notify=lambda m: None)
    env = {**os.environ, "PHT_DATA_DIR": str(data)}
    cli = [sys.executable, "-m", "assistant.cli", "index", "--rebuild"]
    # the writer waits for the lock instead of giving up: the poll below takes it for an instant
    writer = subprocess.Popen(
        cli, env={**env, "PHT_INDEX_LOCK_TIMEOUT": "60"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the writer holds the lock
            try:
                with writer_lock(data):
                    pass
            except IndexBusy:
                break
            assert writer.poll() is None, writer.communicate()
            time.sleep(0.05)
        second = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "being rebuilt" in second.stderr and "Traceback" not in second.stderr
        for _ in range(5):
            assert reader.ask("Can running be part of my rehab?").status.value == "answered"
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert "Indexed 5 passages" in out
    finally:
        if writer.poll() is None:
            writer.kill()
    # the reader still works on the generation it opened; a new reader opens the new one
    assert reader.ask("Which exercises build muscle with PHT?").status.value == "answered"
    fresh = ChromaIndex(data)
    assert fresh.meta.generation != reader.index.meta.generation
    fresh.close()
    reader.close()


def test_readers_say_when_the_corpus_moved_on(tmp_path, embeddings):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", DOC_A)})
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=corpus)
    Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None).close()
    (corpus / "a.txt").write_text(DOC_A + "\nQ&A 2: Hills\n\nAnswer: Walk the hills at first, then run them.\n")
    said: list[str] = []
    a = Assistant.from_settings(settings, embeddings=embeddings, notify=said.append)
    assert any("run `pht-assistant index`" in m for m in said)
    assert a.index.meta.corpus_version != build_index(settings.data_dir, corpus, embeddings).corpus_version
    a.close()
