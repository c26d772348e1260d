"""A clinic's collection as the retriever reads it (assistant.index.store.CollectionIndex).

The dense search over a clinic's sentences is exact: a document of many near-identical sentences
hid the one sentence that answered from Chroma's approximate search in about half of the runs
(found by tests/reliability/test_approvals.py). Real Chroma, stand-in vectors.
"""

from __future__ import annotations

import chromadb
import numpy as np

from assistant.clinics.documents import document_chunks, parse_upload
from assistant.index.records import index_records
from assistant.index.store import CollectionIndex

DIM = 32


def _collection(tmp_path, records, vectors):
    client = chromadb.PersistentClient(path=str(tmp_path / "store"))
    col = client.get_or_create_collection("clinic-test", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    ids = list(records)
    col.add(
        ids=ids,
        embeddings=[vectors[i] for i in ids],
        documents=[records[i].text for i in ids],
        metadatas=[records[i].meta for i in ids],
    )
    return col


def _document(notes: int):
    lines = "".join(f"Note {i}: slow bridges on a step load the tendon. " for i in range(notes))
    text = f"# Circuit\n\nEach bridge is held for five seconds at the top.\n\n## Notes\n\n{lines}\n"
    doc = parse_upload("c", "circuit.md", text.encode())
    return doc, index_records(document_chunks(doc))


def test_the_nearest_sentences_are_exact_among_near_duplicates(tmp_path):
    rng = np.random.default_rng(7)
    doc, records = _document(600)
    base = rng.normal(size=DIM)
    target = rng.normal(size=DIM)
    vectors = {}
    for rid, rec in records.items():
        if "held for five seconds" in rec.text:
            v = target + 0.01 * rng.normal(size=DIM)
        else:  # every note a hair away from the others
            v = base + 0.02 * rng.normal(size=DIM)
        vectors[rid] = (v / np.linalg.norm(v)).tolist()
    index = CollectionIndex(_collection(tmp_path, records, vectors), order=[doc.id])
    query = 0.55 * target / np.linalg.norm(target) + 0.45 * base / np.linalg.norm(base)

    # read once when made: the search needs the store no more (it is exact over those vectors)
    chromadb.PersistentClient(path=str(tmp_path / "store")).delete_collection("clinic-test")
    hits = index.query_units(query.tolist(), 10)

    unit_ids = [rid for rid, rec in records.items() if rec.meta["kind"] == "unit"]
    q = query / np.linalg.norm(query)
    brute = sorted(unit_ids, key=lambda i: -float(np.asarray(vectors[i]) @ q))[:10]
    assert [records[brute[0]].text] == [hits[0][0].text] and "five seconds" in hits[0][0].text
    assert [round(s, 5) for _, s in hits] == [round(float(np.asarray(vectors[i]) @ q), 5) for i in brute]
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_held_back_passages_and_other_documents_are_never_found(tmp_path):
    rng = np.random.default_rng(3)
    doc, records = _document(5)
    other, other_records = _document(5)
    everything = {**records, **other_records}
    vectors = {rid: (lambda v: (v / np.linalg.norm(v)).tolist())(rng.normal(size=DIM)) for rid in everything}
    answer = next(i for i, r in records.items() if "five seconds" in r.text and r.meta["kind"] == "unit")
    held = records[answer].meta["chunk_id"]
    index = CollectionIndex(_collection(tmp_path, everything, vectors), order=[doc.id], held_back={held})
    # asked with the held-back sentence's own vector: it and the other document stay out of reach
    hits = index.query_units(vectors[answer], 50)
    assert hits and all(u.chunk_id != held for u, _ in hits)
    assert {u.source.split("#")[0] for u, _ in hits} == {doc.id}
