"""Finding 6: a running server never saw a new index, and killed builds left their folders behind.

After `pht-assistant index` the server kept answering from the old corpus version (health "ready")
until restarted, even after the old folder was deleted; each killed build left a ``chroma-*``
folder (141 MB after three). Now a serving process opens a newly published index within
``PHT_INDEX_REFRESH_SECONDS`` (2 s) and answers from it, requests already running finish on the
generation they started with, and the writer removes every generation no reader holds, the
folders of killed builds included, when it next starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest
from api_server import serve
from reliability.faults import copy_data, figure, wait_for

from assistant.clinics.registry import ClinicRegistry
from assistant.index.embedded import read_meta

pytestmark = [pytest.mark.reliability, pytest.mark.server, pytest.mark.integration]

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SWIM = (
    "\nQ&A 41: Swimming\n\nQuestion: Can I swim while my hamstring tendon settles?\n\n"
    "Answer: Swimming with a pull buoy between the legs keeps you fit while the hamstring tendon settles, "
    "because the buoy stops the kick that loads the tendon.\n"
)
SWIM_QUESTION = "Can I swim with a pull buoy while my hamstring tendon settles?"


def _index(data, corpus, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CORPUS_DIR": str(corpus)},
        stdin=subprocess.DEVNULL,
    )


def _generations(data) -> set[str]:
    return {p.name for p in data.glob("chroma-*")}


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    root = tmp_path_factory.mktemp("follow")
    data = copy_data(built_data_dir, root)
    corpus = root / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Follow Clinic")
    server = serve(data, root / "server.log", env={"PHT_CORPUS_DIR": str(corpus), "PHT_API_RATE_LIMIT": "100000"})
    try:
        server.wait_ready()
        server.key, server.data, server.corpus = registry.create_key("follow-clinic"), data, corpus
        yield server
    finally:
        server.stop()


def _ask(api, question: str) -> dict:
    return httpx.post(
        api.url + "/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {api.key}"}, timeout=60
    ).json()


def _version(api) -> str:
    return httpx.get(api.url + "/v1/health", timeout=30).json()["corpus_version"]


def test_a_newly_published_index_is_answered_from_without_a_restart(api):
    data, corpus = api.data, api.corpus
    before = _version(api)
    assert "pull buoy" not in _ask(api, SWIM_QUESTION)["text"]
    old = read_meta(data).generation
    doc = next(corpus.glob("*.txt"))
    doc.write_text(doc.read_text(encoding="utf-8") + SWIM, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "index"],
        env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CORPUS_DIR": str(corpus)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    seen_at = wait_for(lambda: _version(api) != before and time.time(), 300, every=0.1)  # polled while it runs
    assert proc.wait(300) == 0 and seen_at
    new_version = read_meta(data).corpus_version
    assert new_version != before and _version(api) == new_version
    picked_up = seen_at - (data / "index.json").stat().st_mtime  # from the moment it was published
    answer = _ask(api, SWIM_QUESTION)
    assert answer["status"] == "answered" and "pull buoy" in answer["text"]
    assert answer["corpus_version"] == new_version
    # the server let go of the old generation after its last request; the writer's next start removes it
    assert old in _generations(data)
    out = _index(data, corpus)
    assert out.returncode == 0 and f"{old}" in out.stderr
    assert _generations(data) == {read_meta(data).generation}
    figure(
        "newly published index (refresh every 2 s)",
        f"answered from {picked_up:.1f} s after `pht-assistant index` published it, without a restart; the previous "
        "generation removed by the next `pht-assistant index`",
    )


def test_the_folders_of_killed_builds_are_removed_when_the_writer_next_starts(api):
    data, corpus = api.data, api.corpus
    live = read_meta(data).generation
    orphans = set()
    doc = next(corpus.glob("*.txt"))
    for n in range(2):  # the finding left three; two show it
        # a change to index: the build copies the live generation, then embeds (killed meanwhile)
        doc.write_text(doc.read_text(encoding="utf-8") + SWIM.replace("41", f"5{n}"), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "index"],
            env={**os.environ, "PHT_DATA_DIR": str(data), "PHT_CORPUS_DIR": str(corpus)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        staged = wait_for(
            lambda: {g for g in _generations(data) - {live} - orphans if (data / g / "chroma.sqlite3").exists()},
            120,
            every=0.05,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert staged, "the build never started"
        orphans |= staged
        assert _ask(api, "Can running be part of my rehab?")["status"] == "answered"  # served throughout
    # the second build, when it started, already removed what the first left; the last one is left
    assert len(orphans) == 2 and _generations(data) == {live, *(orphans & _generations(data))}
    left = _generations(data) - {live}
    assert len(left) == 1 and read_meta(data).generation == live
    size = sum(f.stat().st_size for o in left for f in (data / o).rglob("*") if f.is_file())
    out = _index(data, corpus)
    assert out.returncode == 0, out.stderr
    assert all(o in out.stderr for o in left)
    # what is left: the generation it built, and the one the server still answers from until it moves on
    assert not orphans & _generations(data) and _generations(data) <= {live, read_meta(data).generation}
    figure(
        "builds killed mid-way (SIGKILL), twice",
        f"the second removed the first one's folder when it started; the last one's ({size / 1e6:.1f} MB) was removed "
        "by the next `pht-assistant index`; the server answered throughout",
    )


def test_a_request_keeps_the_generation_it_started_on(tmp_path, built_data_dir, embeddings):
    """In one process: a streamed answer started before a new index is published finishes on its
    generation, which stays on disk until it is done, and is removed by the next build after."""
    from assistant import Assistant, Settings

    data = copy_data(built_data_dir, tmp_path)
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    settings = Settings(data_dir=data, corpus_dir=corpus)
    reader = Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None)
    try:
        first = read_meta(data)
        events = reader.stream("Can running be part of my rehab?")
        started = next(events)  # the request is under way, on the first generation
        doc = next(corpus.glob("*.txt"))
        doc.write_text(doc.read_text(encoding="utf-8") + SWIM, encoding="utf-8")
        assert _index(data, corpus).returncode == 0
        assert reader.refresh_index() and reader.index.generation != first.generation
        doc.write_text(doc.read_text(encoding="utf-8") + SWIM.replace("41", "42").replace("Swimming", "Pool"), encoding="utf-8")
        assert _index(data, corpus).returncode == 0  # a third generation; the first is still in use
        assert first.generation in _generations(data)
        rest = list(events)
        done = rest[-1].answer
        assert done.id == started.id and done.corpus_version == first.corpus_version
        assert reader.ask(SWIM_QUESTION).corpus_version != first.corpus_version
        out = _index(data, corpus)
        assert first.generation in out.stderr and first.generation not in _generations(data)
    finally:
        reader.close()
