"""Finding 5: a Chroma server that hangs instead of dying.

Stopped with SIGSTOP, the server kept its port open: connections were accepted and never answered,
and ask and health hung until the 30 s request time limit (504), health unable to tell. Now every
call to the store has a time limit (``PHT_STORE_TIMEOUT``, 2 s here): health answers 503 "not
ready" with the notice within that bound, asks get 503 with the notice within the same bound (and
at once while the server is known to hang), and all of it comes back by itself after SIGCONT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from api_server import chroma_server, serve
from reliability.faults import copy_data, figure, is_error, wait_for

from assistant import SAFETY_NOTICE
from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.reliability, pytest.mark.server, pytest.mark.integration]

STORE_TIMEOUT = 2.0
BOUND = STORE_TIMEOUT + 1.0  # what /v1/health promises: the store's limit and a second


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    root = tmp_path_factory.mktemp("hang-chroma")
    server = chroma_server(root / "store", root / "chroma.log")
    try:
        server.wait_ready("/api/v2/heartbeat", timeout=60)
        yield server
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)  # never leave it stopped
        server.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir, chroma):
    root = tmp_path_factory.mktemp("hang")
    data = copy_data(built_data_dir, root)
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CHROMA_URL": chroma.url},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Hang Clinic")
    server = serve(
        data,
        root / "server.log",
        env={"PHT_CHROMA_URL": chroma.url, "PHT_STORE_TIMEOUT": str(STORE_TIMEOUT), "PHT_API_RATE_LIMIT": "100000"},
    )
    try:
        server.wait_ready(timeout=240)
        server.key = registry.create_key("hang-clinic")
        yield server
    finally:
        server.stop()


QUESTIONS = iter(f"Can running be part of my rehab after {n} weeks of loading?" for n in range(1, 10_000))


def _ask(api) -> tuple[httpx.Response, float]:
    """A question not asked before (a repeated one's store query is kept for a while)."""
    began = time.monotonic()
    r = httpx.post(
        api.url + "/v1/ask",
        json={"question": next(QUESTIONS)},
        headers={"Authorization": f"Bearer {api.key}"},
        timeout=60,
    )
    return r, time.monotonic() - began


def _health(api) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    r = httpx.get(api.url + "/v1/health", timeout=60)
    return r, time.monotonic() - began


def _resume(api, chroma) -> float:
    """SIGCONT, then the seconds until health and answers are back by themselves."""
    os.kill(chroma.proc.pid, signal.SIGCONT)
    resumed = time.monotonic()
    assert wait_for(lambda: _health(api)[0].status_code == 200, 60, every=0.5)
    back = time.monotonic() - resumed
    r = wait_for(lambda: (lambda a: a if a.status_code == 200 else None)(_ask(api)[0]), 60, every=0.5)
    assert r is not None and r.json()["status"] == "answered"
    return back


def _not_ready(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["status"] == "not_ready" and body["safety_notice"] == SAFETY_NOTICE


def test_a_stopped_chroma_server_is_reported_by_an_ask_and_by_health_within_the_bound(api, chroma):
    assert _ask(api)[0].status_code == 200 and _health(api)[0].status_code == 200
    # an ask finds it first
    os.kill(chroma.proc.pid, signal.SIGSTOP)
    try:
        first, first_s = _ask(api)
        is_error(first, 503, "store_unavailable")
        health, health_s = _health(api)
        _not_ready(health)
    finally:
        back = _resume(api, chroma)
    # health finds it first; then many asks at once
    os.kill(chroma.proc.pid, signal.SIGSTOP)
    try:
        health2, health2_s = _health(api)
        _not_ready(health2)
        results: list[tuple[httpx.Response, float]] = []
        threads = [threading.Thread(target=lambda: results.append(_ask(api))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 8
        for r, _ in results:
            is_error(r, 503, "store_unavailable")
        slowest = max(s for _, s in results)
    finally:
        back2 = _resume(api, chroma)
    # was: both hung until the request's own 30 s limit, then 504, health unable to tell
    for seconds in (first_s, health2_s, slowest):
        assert seconds < BOUND + 2.0
    figure(
        f"Chroma server stopped with SIGSTOP (store time limit {STORE_TIMEOUT:g} s, health bound {BOUND:g} s)",
        f"first ask 503 with the notice after {first_s:.2f} s, health then 503 not ready in {health_s:.2f} s; "
        f"stopped again: health first 503 after {health2_s:.2f} s, then 8 concurrent asks 503, slowest {slowest:.2f} s; "
        f"after SIGCONT health 200 again in {back:.1f} s and {back2:.1f} s, answers too",
    )


def test_an_index_published_to_the_chroma_server_is_answered_from_without_a_restart(api, chroma, tmp_path):
    """Finding 6 on a Chroma server: `pht-assistant index` publishes to it, and the serving process
    answers from the new version within the refresh interval (2 s)."""
    import shutil
    from pathlib import Path

    from assistant.index.embedded import read_meta

    root = Path(__file__).resolve().parents[2]
    corpus = tmp_path / "corpus"
    shutil.copytree(root / "corpus", corpus)
    doc = next(corpus.glob("*.txt"))
    doc.write_text(
        doc.read_text(encoding="utf-8")
        + "\nQ&A 43: Cycling\n\nQuestion: Can I cycle with PHT?\n\nAnswer: Cycling with the saddle raised a little "
        "keeps the hip from bending far, which spares the hamstring tendon while you stay fit.\n",
        encoding="utf-8",
    )
    before = httpx.get(api.url + "/v1/health", timeout=30).json()["corpus_version"]
    data = api.log.parent / "data"
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CHROMA_URL": chroma.url, "PHT_CORPUS_DIR": str(corpus)},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    published = time.monotonic()
    new = read_meta(data).corpus_version
    assert new != before
    assert wait_for(lambda: httpx.get(api.url + "/v1/health", timeout=30).json()["corpus_version"] == new, 30)
    seen = time.monotonic() - published
    r, _ = _ask(api)  # answered from the new version
    assert r.status_code == 200 and r.json()["corpus_version"] == new
    figure("index published to the Chroma server", f"answered from {seen:.1f} s after `pht-assistant index` returned")
