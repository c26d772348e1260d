"""Index generations in use: readers' leases, and the writer removing the generations nobody uses.

Every build makes a new ``chroma-<generation>/`` folder and then points ``index.json`` at it
(:mod:`assistant.index.embedded`). A serving process opens the generation ``index.json`` names,
and keeps it while any request it started on it is still answering (:class:`ReaderLease`): a
shared ``flock`` on ``.readers/<generation>.lock`` for as long as it has that generation open. The
operating system drops the lock when the process ends, however it ends, so a lease never outlives
its reader.

The writer, when it starts and again after it publishes, removes every ``chroma-*`` folder that
is not the live generation and that no reader holds (:func:`remove_unused`): the previous
generation once its last reader has moved on, and the half-built folders that killed runs left.
It takes the generation's lock exclusively first, so a reader can never open a folder while it is
being removed: a reader that finds a generation gone reads ``index.json`` again.

>>> import tempfile, pathlib
>>> data = pathlib.Path(tempfile.mkdtemp())
>>> (data / "chroma-old").mkdir(); (data / "chroma-live").mkdir(); (data / "chroma-read").mkdir()
>>> lease = ReaderLease(data, "chroma-read")
>>> remove_unused(data, keep={"chroma-live"})
['chroma-old']
>>> lease.release(); remove_unused(data, keep={"chroma-live"})
['chroma-read']
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("assistant.index.generations")

READERS = ".readers"


class GenerationGone(Exception):
    """The generation was removed (or is being removed) before the reader could hold it."""


def _lock_path(data_dir: Path, generation: str) -> Path:
    folder = Path(data_dir) / READERS
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{generation}.lock"


class ReaderLease:
    """A reader's hold on one generation: a shared lock, released by :meth:`release` or by the
    process ending. Raises :class:`GenerationGone` when the writer is removing it, or it is gone."""

    def __init__(self, data_dir: Path, generation: str) -> None:
        self.generation = generation
        self._fd: int | None = os.open(_lock_path(data_dir, generation), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise GenerationGone(generation) from None
        if not (Path(data_dir) / generation).is_dir():
            self.release()
            raise GenerationGone(generation)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a lease dropped without release() still lets go
        self.release()


@contextlib.contextmanager
def _exclusive(data_dir: Path, generation: str) -> Iterator[bool]:
    """``True`` while holding the generation's lock exclusively (no reader holds it), else ``False``."""
    path = _lock_path(data_dir, generation)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def in_use(data_dir: Path, generation: str) -> bool:
    """Whether some reader holds ``generation`` now."""
    with _exclusive(data_dir, generation) as free:
        return not free


def remove_unused(data_dir: Path, keep: set[str | None]) -> list[str]:
    """Remove every ``chroma-*`` generation but those in ``keep`` that no reader holds; their names."""
    data_dir = Path(data_dir)
    removed = []
    for path in sorted(data_dir.glob("chroma-*")):
        if path.name in keep or not path.is_dir():
            continue
        with _exclusive(data_dir, path.name) as free:
            if not free:
                continue
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                log.warning("could not remove the unused index generation %s", path)
                continue
            with contextlib.suppress(OSError):
                (data_dir / READERS / f"{path.name}.lock").unlink()
        removed.append(path.name)
    for lock in (data_dir / READERS).glob("chroma-*.lock") if (data_dir / READERS).is_dir() else ():
        generation = lock.name[: -len(".lock")]
        if not (data_dir / generation).exists():  # a reader's lock left for a folder already gone
            with _exclusive(data_dir, generation) as free:
                if free:
                    with contextlib.suppress(OSError):
                        lock.unlink()
    return removed
