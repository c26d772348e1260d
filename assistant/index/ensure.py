"""Opening the index for a reader, and building it when there is none (the one first-use write).

Readers never write, except on the very first use of an empty data folder: then the index is
built from the corpus behind the writer's lock, with a progress bar, and a reader that finds a
build running waits for it. A Chroma server (``PHT_CHROMA_URL``) is only read; `pht-assistant
index` publishes to it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from assistant.contracts import model_id_of
from assistant.errors import IndexBusy
from assistant.settings import Settings


def open_index(
    settings: Settings,
    embeddings: Any,
    *,
    progress: bool | None = None,
    notify: Callable[[str], None] | None = None,
) -> Any:
    """The reader for ``settings``: the Chroma server's index, or the embedded one (built first if
    the data folder has none, or one made with another model)."""
    from assistant.index.embedded import ChromaIndex, read_meta

    say = notify or (lambda msg: print(msg, file=sys.stderr))
    if settings.chroma_url:
        from assistant.index.store import open_server_index

        return open_server_index(settings)
    meta = read_meta(settings.data_dir, documents=False)  # the record only: the documents can be large
    if meta is None or meta.model != model_id_of(embeddings):
        if meta is None:
            say(f"No index in {settings.data_dir} yet: building it from {settings.corpus_dir} (once).")
        ensure_index(settings, embeddings, progress=progress, notify=say)
    index = ChromaIndex(settings.data_dir, collection=settings.collection, check_timeout=settings.index_check_timeout)
    _hint_if_corpus_changed(settings, index.corpus_version, say)
    return index


def open_reader(settings: Settings) -> Any:
    """The index published now, opened for reading only (never built): the Chroma server's, or the
    embedded generation ``index.json`` names (held with a lease until the reader is closed)."""
    from assistant.index.embedded import ChromaIndex

    if settings.chroma_url:
        from assistant.index.store import open_server_index

        return open_server_index(settings)
    return ChromaIndex(settings.data_dir, collection=settings.collection, check_timeout=settings.index_check_timeout)


def published_generation(settings: Settings) -> str | None:
    """The generation published now (cheap: ``index.json``, or the Chroma server's index record),
    ``None`` when there is none."""
    if settings.chroma_url:
        from assistant.index.store import server_generation

        return server_generation(settings)
    from assistant.index.embedded import read_meta

    meta = read_meta(settings.data_dir)
    return meta.generation if meta is not None and meta.collection == settings.collection else None


def _hint_if_corpus_changed(settings: Settings, indexed_version: str, say: Callable[[str], None]) -> None:
    """Readers answer from the index as built; say so when the corpus folder has moved on."""
    from assistant.corpus.parse import corpus_version, load_corpus
    from assistant.errors import CorpusError

    try:
        if corpus_version(settings.corpus_dir) == indexed_version:
            return  # the files the index was built from: nothing to parse
        current = load_corpus(settings.corpus_dir).version
    except CorpusError as exc:
        say(f"Answering from the existing index; the corpus folder has a problem: {exc}")
        return
    if current != indexed_version:
        say("The corpus has changed since the index was built; run `pht-assistant index` to include the changes.")




def ensure_index(
    settings: Settings,
    embeddings: Any,
    *,
    rebuild: bool = False,
    progress: bool | None = None,
    notify: Callable[[str], None] | None = None,
    wait: float | None = None,
) -> Any:
    """Build or update the index, with a progress bar; waits for a build another process runs.

    Returns the :class:`~assistant.index.embedded.BuildReport`, or ``None`` when another process built it.
    """
    from assistant.index.embedded import build_index, read_meta

    say = notify or (lambda msg: print(msg, file=sys.stderr))
    show = sys.stderr.isatty() if progress is None else progress
    bar = None

    def on_progress(done: int, total: int, what: str) -> None:
        nonlocal bar
        if not show or total == 0:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="Embedding passages and sentences", unit="text", file=sys.stderr)
        bar.n = done
        bar.refresh()

    deadline = time.monotonic() + (wait if wait is not None else 600.0)
    announced = False
    while True:
        try:
            report = build_index(
                settings.data_dir,
                settings.corpus_dir,
                embeddings,
                collection=settings.collection,
                rebuild=rebuild,
                progress=on_progress,
                lock_timeout=settings.index_lock_timeout,
                notify=say,
            )
            if settings.chroma_url:
                from assistant.index.store import publish_index

                publish_index(settings, notify=say)
            return report
        except IndexBusy:
            if wait == 0:
                raise
            if not announced:
                say("The index is being rebuilt by another process; waiting for it to finish.")
                announced = True
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            meta = read_meta(settings.data_dir)
            if meta is not None and meta.model == model_id_of(embeddings) and not rebuild:
                return None
        finally:
            if bar is not None:
                bar.close()
                bar = None
