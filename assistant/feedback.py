"""Patients' thumbs up/down on replies, kept in a local SQLite file (only when turned on).

The chat page writes here only when ``PHT_FEEDBACK_ENABLED=true``. A row holds the answer's id, its
status, the thumb, an optional comment, the time, the cited sources and the corpus version. The
question is stored only when ``PHT_LOG_QUESTIONS=true`` as well; otherwise the column stays empty.
One row per answer: changing the thumb or adding a comment updates it.

>>> import tempfile, pathlib
>>> store = FeedbackStore(pathlib.Path(tempfile.mkdtemp()) / "feedback.sqlite3")
>>> store.save(Feedback(answer_id="a1", status="answered", thumbs="up", sources=("doc#qa-1",)))
>>> store.save(Feedback(answer_id="a1", status="answered", thumbs="down", comment="Too short"))
>>> [(r["answer_id"], r["thumbs"], r["comment"], r["question"]) for r in store.rows()]
[('a1', 'down', 'Too short', None)]
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    answer_id      TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    thumbs         TEXT NOT NULL CHECK (thumbs IN ('up', 'down')),
    comment        TEXT NOT NULL DEFAULT '',
    sources        TEXT NOT NULL DEFAULT '[]',  -- JSON list of DOCID#SECTION cited by the answer
    corpus_version TEXT NOT NULL DEFAULT '',
    question       TEXT,                        -- only when PHT_LOG_QUESTIONS is on
    created_at     TEXT NOT NULL,               -- UTC, ISO 8601
    updated_at     TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Feedback:
    """One person's verdict on one answer."""

    answer_id: str
    status: str
    thumbs: Literal["up", "down"]
    comment: str = ""
    sources: tuple[str, ...] = ()
    corpus_version: str = ""
    question: str | None = None


class FeedbackStore:
    """A SQLite file of :class:`Feedback`, one row per answer; safe to use from several threads.

    Each call opens its own connection, so the page's sessions (threads) never share one.
    """

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        if not self._ready:
            with conn:
                conn.execute(SCHEMA)
            self._ready = True
        return conn

    def save(self, feedback: Feedback) -> None:
        """Record ``feedback``; a second verdict on the same answer replaces the first."""
        if feedback.thumbs not in ("up", "down"):
            raise ValueError("thumbs must be 'up' or 'down'")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with closing(self._connect()) as conn, conn:
            conn.execute(
                """
                INSERT INTO feedback (answer_id, status, thumbs, comment, sources, corpus_version,
                                      question, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (answer_id) DO UPDATE SET
                    thumbs = excluded.thumbs,
                    comment = CASE WHEN excluded.comment != '' THEN excluded.comment ELSE comment END,
                    updated_at = excluded.updated_at
                """,
                (
                    feedback.answer_id,
                    feedback.status,
                    feedback.thumbs,
                    feedback.comment.strip(),
                    json.dumps(list(feedback.sources)),
                    feedback.corpus_version,
                    feedback.question,
                    now,
                    now,
                ),
            )

    def forget(self, answer_id: str) -> None:
        """Remove the feedback on one answer (the person took their thumb back)."""
        if not self.path.exists():
            return
        with closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM feedback WHERE answer_id = ?", (answer_id,))

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row, oldest first, with ``sources`` as a list."""
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute("SELECT * FROM feedback ORDER BY created_at, rowid").fetchall()
        return [{**dict(r), "sources": json.loads(r["sources"])} for r in found]
