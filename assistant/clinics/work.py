"""Work a request waits for, that can be given up for real.

A request that runs long work in a thread (an upload's extraction, an approval's indexing) hands it
a :class:`Work`. The work calls :meth:`Work.check` as it goes, and makes its lasting change (the
stored draft, the recorded approval) inside :meth:`Work.commit`. When the request runs out of time
it calls :meth:`Work.abandon`: either the work has not reached its commit, and then it never will
(its next ``check`` or its ``commit`` raises :class:`Cancelled`, and it undoes what it staged), so
the client may be told it failed; or the commit is under way, and the request waits for it and
answers with its result. There is never a result after the client was told it failed.

>>> work = Work()
>>> work.abandon()
True
>>> try:
...     work.check()
... except Cancelled:
...     print("stopped")
stopped
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from assistant.errors import Cancelled

__all__ = ["Cancelled", "Work"]


class Work:
    """A cancellation token with a commit point (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "running"  # running -> committing -> done, or running -> abandoned

    @property
    def abandoned(self) -> bool:
        return self._state == "abandoned"

    def check(self) -> None:
        """Raise :class:`Cancelled` once the request has given up on this work."""
        if self._state == "abandoned":
            raise Cancelled()

    @contextlib.contextmanager
    def commit(self) -> Iterator[None]:
        """The lasting change: entered only if the request still waits; once entered, the request
        waits for it to finish."""
        with self._lock:
            if self._state == "abandoned":
                raise Cancelled()
            self._state = "committing"
        try:
            yield
        finally:
            with self._lock:
                self._state = "done"

    def abandon(self) -> bool:
        """Give up on the work: ``True`` when it will keep nothing, ``False`` when it is already
        committing (or done) and its result should be awaited."""
        with self._lock:
            if self._state == "running":
                self._state = "abandoned"
                return True
            return self._state == "abandoned"
