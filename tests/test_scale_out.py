"""Scale-out on a real Chroma server (`chroma run`, started here): the index built onto it, the
retriever contract on both stores, two API workers sharing it, and the store going away and back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from api_server import chroma_server, serve

from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.integration, pytest.mark.server]

STEPS = (
    "Our step class for hamstring tendinopathy meets in the gym hall on Wednesday evenings at six. "
    "Low step-ups load the hamstring tendon gently, and the class lasts forty-five minutes."
)


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma")
    server = chroma_server(root / "store", root / "chroma.log")
    try:
        server.wait_ready("/api/v2/heartbeat", timeout=60)
        server.root = root
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory, built_data_dir, chroma):
    """A data folder whose index `pht-assistant index` has published to the Chroma server."""
    data = tmp_path_factory.mktemp("scale") / "data"
    shutil.copytree(built_data_dir, data)
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CHROMA_URL": chroma.url},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert f"Published to the Chroma server at {chroma.url}: 30 records added, 0 removed." in out.stderr
    return data


QUESTIONS = [
    "Can running be part of my rehab?",
    "How should I build up my long runs for a race?",
    "What is the best way to build muscle with PHT?",
    "What is the capital of France?",
    "Can I eat more protein to heal?",
]


@pytest.mark.parametrize("store", ["embedded", "server"])
def test_retriever_contract_on_both_stores(store, data, chroma, embeddings, assistant):
    """The same answers, statuses and citations from the embedded folder and from the server."""
    from assistant import Assistant, Settings

    settings = Settings(data_dir=data, chroma_url=chroma.url if store == "server" else "")
    a = Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None)
    try:
        assert a.index.meta.corpus_version == assistant.corpus_version
        assert [c.id for c in a.retriever.chunks_of("pht-podcast-qa")] == [
            c.id for c in assistant.retriever.chunks_of("pht-podcast-qa")
        ]
        for q in QUESTIONS:
            mine, reference = a.ask(q), assistant.ask(q)
            assert mine.status == reference.status, q
            assert [(c.source, c.start, c.end) for c in mine.citations] == [
                (c.source, c.start, c.end) for c in reference.citations
            ], q
    finally:
        a.close()


@pytest.fixture(scope="module")
def workers(data, chroma, tmp_path_factory):
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Scale Clinic")
    key = registry.create_key("scale-clinic")
    server = serve(
        data,
        tmp_path_factory.mktemp("workers") / "api.log",
        workers=2,
        # these tests poll; the rate limit (60 a minute per worker) is tested in test_http_api.py
        env={"PHT_CHROMA_URL": chroma.url, "PHT_API_RATE_LIMIT": "100000"},
    )
    try:
        server.wait_ready(timeout=240)
        server.key = key
        yield server
    finally:
        server.stop()


def _ask(server, question: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/ask",
        json={"question": question},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )


def test_an_upload_through_one_worker_is_answered_by_every_worker(workers):
    auth = {"Authorization": f"Bearer {workers.key}"}
    doc = httpx.post(
        workers.url + "/v1/documents",
        files={"file": ("steps.md", f"# Step class\n\n{STEPS}\n".encode())},
        headers=auth,
        timeout=60,
    ).json()
    question = "When does the step class meet?"
    first = _ask(workers, question).json()
    assert not [c for c in first["citations"] if c["source"].startswith(doc["id"])]  # a draft
    approved = httpx.post(
        workers.url + f"/v1/documents/{doc['id']}/approve",
        json={"reviewer": "Dr Step"},
        headers=auth,
        timeout=60,
    )
    assert approved.status_code == 200
    approved_at, seen, answered_by = time.monotonic(), {}, {approved.headers["x-pht-worker"]}
    deadline = approved_at + 90
    while time.monotonic() < deadline and len(seen) < 2:
        r = _ask(workers, question)
        if r.status_code == 429:  # as a client should: wait as long as it says
            time.sleep(float(r.headers.get("retry-after", "1")))
            continue
        assert r.status_code == 200, r.text
        worker = r.headers["x-pht-worker"]
        answered_by.add(worker)
        if any(
            c["source"].startswith(doc["id"]) and c["approved_by"] == "Dr Step" for c in r.json()["citations"]
        ):
            seen.setdefault(worker, time.monotonic() - approved_at)
        time.sleep(0.1)
    print(
        f"\npropagation: every worker answered from the new document within {max(seen.values()):.2f} s: {seen}"
    )
    assert len(answered_by) == 2 and len(seen) == 2, (answered_by, seen)


def test_the_store_going_away_gives_503_and_the_server_recovers(workers, chroma):
    chroma.stop()
    r = _ask(workers, "Which exercises build strength in the hamstring tendon?")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "store_unavailable" and "try again" in body["message"]
    health = httpx.get(workers.url + "/v1/health", timeout=30)
    assert health.status_code == 503 and health.json()["ready"] is False

    again = chroma_server(chroma.root / "store", chroma.root / "chroma-again.log", port=chroma.port)
    try:
        again.wait_ready("/api/v2/heartbeat", timeout=60)
        workers.wait_ready(timeout=60)  # health answers 200 again by itself
        r = _ask(workers, "How often should I do strength training for my hamstring?")
        assert r.status_code == 200 and r.json()["status"] in {"answered", "not_covered"}
        assert _ask(workers, "Can running be part of my rehab?").json()["status"] == "answered"
    finally:
        again.stop()
