"""Shared fixtures: a private data folder for every test, and one model and index per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """No test touches the project's data/ folder: PHT_DATA_DIR points at a temporary one."""
    from assistant.settings import get_settings

    monkeypatch.setenv("PHT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def embeddings():
    """The real all-MiniLM-L6-v2, loaded once for the session."""
    from assistant.embed.minilm import MiniLMEmbeddings

    emb = MiniLMEmbeddings()
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def built_data_dir(tmp_path_factory, embeddings) -> Path:
    """A data folder holding an index of the project's corpus, built once."""
    from assistant.index.embedded import build_index

    data_dir = tmp_path_factory.mktemp("built-index")
    build_index(data_dir, ROOT / "corpus", embeddings)
    return data_dir


@pytest.fixture(scope="session")
def assistant(built_data_dir, embeddings):
    """One Assistant over the built index, shared by the tests that only ask."""
    from assistant import Assistant, Settings

    a = Assistant.from_settings(
        Settings(data_dir=built_data_dir), embeddings=embeddings, notify=lambda m: None
    )
    a.warm_up()
    yield a
    a.close()


def write_corpus(folder: Path, docs: dict[str, tuple[str, str]]) -> Path:
    """A corpus folder with a manifest: ``docs`` maps file name to (doc id, text)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (doc_id, text) in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
        rows.append(
            f'[[document]]\nid = "{doc_id}"\nfile = "{name}"\ntitle = "Title of {doc_id}"\n'
            f'origin = "test"\nadded = 2026-11-25\nreviewed_by = ""\n'
        )
    (folder / "manifest.toml").write_text("\n".join(rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (tests.services.Postgres), stopped at the end."""
    from services import Postgres

    server = Postgres()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server for the session (tests.services.Redis), stopped at the end."""
    from services import Redis

    server = Redis()
    yield server
    server.close()
