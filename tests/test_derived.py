"""What the index build derives for readers (assistant.index.derived): the same answers as reading
the store, searched without Chroma, rebuilt when missing or stale, and never half-written."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from assistant.corpus.parse import Chunk, Unit
from assistant.index import derived
from assistant.index.embedded import ChromaIndex, build_index, read_meta
from assistant.retrieval.hybrid import HybridRetriever

pytestmark = pytest.mark.integration


def _bundled_questions() -> list[str]:
    """Every question the project ships: eval suites, benchmark paraphrases and questions."""
    out: list[str] = []
    for path in sorted((ROOT / "evals").rglob("*.jsonl")) + sorted((ROOT / "benchmarks").glob("paraphrases*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line).get("question")
                if q:
                    out.append(q)
    return out


def _from_the_store(data) -> ChromaIndex:
    """A reader that ignores the derived arrays: everything read from Chroma and worked out in
    memory, as readers did before the arrays existed (a small index's sentences searched exactly,
    in memory, in the order the store returns them)."""
    index = ChromaIndex(data)
    index._derived = None
    ids, vectors, _ = index.unit_vectors()
    table = index._unit_table()
    units = [table[i] for i in ids.tolist()]

    def exact(vector, k):
        rows, sims = derived.exact_nearest(vectors, vector, max(1, k))
        return [(units[r], float(v)) for r, v in zip(rows, sims)]

    index.query_units = exact
    return index


def _through_chroma(data) -> ChromaIndex:
    index = ChromaIndex(data)
    index._derived = None
    return index


def _results(retriever, embeddings, questions):
    from assistant.contracts import Query

    out = []
    for q in questions:
        v = embeddings.embed_query(q)
        out.append((
            retriever.nearest(v),
            [(p.chunk, p.relevance, p.dense, p.lexical, p.fused, p.coverage, [(u, s) for u, s in p.units])
             for p in retriever.retrieve(Query(text=q, vector=v, focus=q))],
            retriever.query_terms(q),
            retriever.spelled(q),
        ))
    return out


def test_retrieval_from_the_derived_arrays_equals_retrieval_from_the_store(built_data_dir, embeddings):
    """Same passages, in the same order, with the same scores and sentences, on every bundled question."""
    questions = _bundled_questions()
    assert len(questions) > 1000
    mapped = ChromaIndex(built_data_dir)
    assert mapped.derived is not None and mapped.search == "exact"
    stored = _from_the_store(built_data_dir)
    a = HybridRetriever(mapped, detail=5)
    b = HybridRetriever(stored, detail=5)
    assert _results(a, embeddings, questions) == _results(b, embeddings, questions)
    # and the pieces the retriever reads at start
    assert list(a._chunks) == list(b._chunks) == stored.records()
    assert [bool(x) for x in a._framing] == list(b._framing)
    assert a._vocabulary == b._vocabulary
    ids, _, _ = stored.unit_vectors()
    assert [a._hub.get(i) for i in ids.tolist()] == [b._hub[i] for i in ids.tolist()]
    mapped.close()
    stored.close()


def test_bm25_scores_are_those_of_bm25s(built_data_dir):
    import bm25s

    from assistant.retrieval.prepare import Bm25Scores, lexical_arrays
    from assistant.retrieval.terms import terms_of as _terms_of
    from assistant.retrieval.terms import words as _words

    chunks = ChromaIndex(built_data_dir).records()
    words = [_words(f"{c.section_title} {c.text}") for c in chunks]
    tokens = [_terms_of(w) for w in words]
    reference = bm25s.BM25()
    reference.index([t or [""] for t in tokens], show_progress=False)
    lex = lexical_arrays(words, _terms_of)
    ours = Bm25Scores(lex["bm25_data"], lex["bm25_indices"], lex["bm25_indptr"], lex["bm25_docs"], lex["bm25_col"])
    position = {t: i for i, t in enumerate(lex["vocabulary"])}
    for q in ["run marathon", "muscl build leg", "rest set tendon recov", "run run", "zzz unknown run"]:
        terms = q.split()
        assert np.array_equal(ours.get_scores(terms, position), reference.get_scores(terms))


def test_small_indexes_are_searched_exactly_with_chromas_answers(built_data_dir, embeddings):
    questions = [
        "Can running be part of my rehab?",
        "how do i build muscle with a sore hamstring tendon",
        "What should I do before a marathon?",
        "What is a good recipe for banana bread?",
    ]
    idx = ChromaIndex(built_data_dir)
    stored = _through_chroma(built_data_dir)
    for q in questions:
        v = embeddings.embed_query(q)
        exact = idx.query_units(v, 12)
        chroma = stored.query_units(v, 12)
        assert [u for u, _ in exact] == [u for u, _ in chroma]
        assert np.allclose([s for _, s in exact], [s for _, s in chroma], atol=1e-4)
        assert all(a >= b for (_, a), (_, b) in zip(exact, exact[1:]))
        for (unit, _), (same, _) in zip(idx.units_of(exact[0][0].chunk_id), stored.units_of(exact[0][0].chunk_id)):
            assert unit == same
    idx.close()
    stored.close()


def test_a_reader_of_derived_arrays_never_imports_chroma(built_data_dir):
    code = (
        "import sys; from pathlib import Path\n"
        "from assistant import Assistant, Settings\n"
        "a = Assistant.from_settings(Settings(data_dir=Path(sys.argv[1])), notify=lambda m: None)\n"
        "print(a.ask('Can running be part of my rehab?').status.value, 'chromadb' in sys.modules, 'bm25s' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(built_data_dir)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["answered", "False", "False"]


def test_large_indexes_are_searched_by_clusters(tmp_path, embeddings, monkeypatch):
    """Above the exact limit the sentences are grouped in clusters at build time; with every
    cluster probed (this small index) the answers are the exact ones."""
    monkeypatch.setattr(derived, "EXACT_SEARCH_MAX_UNITS", 20)
    build_index(tmp_path / "data", ROOT / "corpus", embeddings)
    big = ChromaIndex(tmp_path / "data")
    assert big.search == "ivf"
    stored = _from_the_store(tmp_path / "data")  # exact
    for q in ["Can running be part of my rehab?", "What should I do before a marathon?"]:
        v = embeddings.embed_query(q)
        assert [u for u, _ in big.query_units(v, 12)] == [u for u, _ in stored.query_units(v, 12)]
    big.close()
    stored.close()


def test_cluster_search_finds_nearly_all_of_the_exact_neighbours():
    """The inverted file on 30,000 clustered vectors: the nearest 80 by clusters against exact."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(300, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 300, 30_000)] + rng.normal(scale=0.6, size=(30_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunk = Chunk("d", "D", "v", "s", "S", 0, 10, "x" * 10, 0)
    units = [Unit(chunk.id, chunk.source, i, i + 1, f"u{i}", "statement") for i in range(len(vectors))]
    ids = [u.id for u in units]
    arrays = derived.derive([chunk], ids, units, vectors, np.array(["g"] * len(units)))
    d = derived.Derived.in_memory(arrays)
    assert d.search == "ivf"
    recalls = []
    for q in vectors[rng.choice(len(vectors), 40, replace=False)] + rng.normal(scale=0.05, size=(40, 64)).astype(np.float32):
        q /= np.linalg.norm(q)
        found = {u.id for u, _ in d.nearest(q, 80)}
        truth = set(np.array(ids)[np.argsort(-(vectors @ q))[:80]])
        recalls.append(len(found & truth) / 80)
    assert np.mean(recalls) >= 0.97 and min(recalls) >= 0.8


def test_missing_or_stale_derived_arrays_are_made_again_from_the_store(built_data_dir, tmp_path, embeddings):
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    folder = data / read_meta(data).generation
    expected = _results(HybridRetriever(ChromaIndex(built_data_dir)), embeddings, ["Can running be part of my rehab?"])

    shutil.rmtree(folder / derived.FOLDER)  # missing (an index built before they existed)
    assert ChromaIndex(data).derived is not None and (folder / derived.FOLDER / derived.MANIFEST).exists()

    manifest = json.loads((folder / derived.FOLDER / derived.MANIFEST).read_text())
    manifest["generation"] = "chroma-another"  # made for another index
    (folder / derived.FOLDER / derived.MANIFEST).write_text(json.dumps(manifest))
    assert derived.check(folder, read_meta(data)) is None
    idx = ChromaIndex(data)
    assert derived.check(folder, read_meta(data)) is not None
    assert _results(HybridRetriever(idx), embeddings, ["Can running be part of my rehab?"]) == expected

    with open(folder / derived.FOLDER / "unit_vectors.npy", "r+b") as fh:  # cut short
        fh.truncate(100)
    assert derived.check(folder, read_meta(data)) is None
    assert _results(HybridRetriever(ChromaIndex(data)), embeddings, ["Can running be part of my rehab?"]) == expected


def test_an_incremental_build_does_not_carry_the_old_arrays(tmp_path, embeddings):
    from conftest import write_corpus

    first = "Guide\n\nQ&A 1: Hills\n\nAnswer: Walk the hills first.\n\nQ&A 2: Stairs\n\nAnswer: Take stairs slowly. Hold the rail.\n"
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": ("doc-a", first)})
    data = tmp_path / "data"
    build_index(data, corpus, embeddings)
    (corpus / "a.txt").write_text(first.replace("Walk the hills first.", "Walk the hills first, then jog them."))
    build_index(data, corpus, embeddings)
    meta = read_meta(data)
    manifest = derived.check(data / meta.generation, meta)
    assert manifest is not None and manifest["generation"] == meta.generation
    assert any("jog" in c.text for c in ChromaIndex(data).records())
    # sentences kept and added, in the store's order: the same figures as from the store
    q = ["Should I walk or jog the hills?", "hills"]
    assert _results(HybridRetriever(ChromaIndex(data)), embeddings, q) == _results(
        HybridRetriever(_from_the_store(data)), embeddings, q
    )


def test_a_folder_that_cannot_be_written_is_worked_out_in_memory(built_data_dir, tmp_path, embeddings, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    shutil.rmtree(data / read_meta(data).generation / derived.FOLDER)

    def read_only(*_a, **_k):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(derived, "write", read_only)
    idx = ChromaIndex(data)
    assert idx.derived is not None and not (data / read_meta(data).generation / derived.FOLDER).exists()
    q = "Can running be part of my rehab?"
    assert _results(HybridRetriever(idx), embeddings, [q]) == _results(HybridRetriever(ChromaIndex(built_data_dir)), embeddings, [q])


# A process that derives the arrays, slowed down after each file it writes, so the test can kill it
# in the middle of writing (the same code path as any reader that finds them missing).
_SLOW_WRITER = """
import sys, time
import numpy as np
save = np.save
def slow(*args, **kwargs):
    save(*args, **kwargs)
    print("wrote", flush=True)
    time.sleep(0.3)
np.save = slow
from pathlib import Path
from assistant.index.embedded import ChromaIndex
ChromaIndex(Path(sys.argv[1]))
print("done", flush=True)
"""


@pytest.mark.parametrize("files_before_kill", [1, 6, 14])
def test_a_writer_killed_mid_write_never_leaves_a_reader_a_wrong_index(
    built_data_dir, tmp_path, embeddings, files_before_kill
):
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    folder = data / read_meta(data).generation
    shutil.rmtree(folder / derived.FOLDER)
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(files_before_kill):
            assert writer.stdout.readline().strip() == "wrote"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    # what the killed writer left: a temporary folder, never a derived folder a reader would use
    assert not (folder / derived.FOLDER).exists()
    assert list(folder.glob(".derived-*.tmp"))
    assert derived.check(folder, read_meta(data)) is None
    time.sleep(0.1)
    reader = ChromaIndex(data)  # makes them again, and clears the leftovers
    assert derived.check(folder, read_meta(data)) is not None and not list(folder.glob(".derived-*"))
    q = ["Can running be part of my rehab?", "What should I do before a marathon?"]
    assert _results(HybridRetriever(reader), embeddings, q) == _results(HybridRetriever(ChromaIndex(built_data_dir)), embeddings, q)


def test_the_index_record_keeps_its_documents_beside_the_store(built_data_dir, tmp_path, embeddings):
    """A reader reads a small record; the documents are read when asked for. A record written by
    an older version (documents inside) is still read, and moved to this layout by the next build."""
    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    record = json.loads((data / "index.json").read_text())
    assert record["documents"] == {} and record["documents_file"] == "documents.json"
    full = read_meta(data)
    assert "pht-podcast-qa" in full.documents and read_meta(data, documents=False).documents == {}
    assert ChromaIndex(data).meta.documents == full.documents

    old = {**record, "documents": full.documents}
    del old["documents_file"]
    (data / "index.json").write_text(json.dumps(old))
    assert read_meta(data).documents == full.documents
    assert not build_index(data, ROOT / "corpus", embeddings).changed
    assert json.loads((data / "index.json").read_text())["documents"] == {}
    assert read_meta(data).documents == full.documents
