"""Clinics, their API keys, their documents, their audit trail and their patients' feedback, in
one SQLite file.

Keys are shown once when created and stored only as a SHA-256 hash (they are 32 random bytes,
so a plain hash is enough). A key looks like ``pht_sk_<id>_<secret>`` (secret: for a clinic's
servers) or ``pht_pk_<id>_<secret>`` (publishable: may only ask, from the clinic's origins).

>>> import tempfile, pathlib
>>> reg = ClinicRegistry(pathlib.Path(tempfile.mkdtemp()) / "clinics.sqlite3")
>>> clinic = reg.add_clinic("North Physio", emergency_text="999")
>>> key = reg.create_key("North Physio")
>>> reg.authenticate(key).clinic.id, reg.authenticate(key).kind
('north-physio', 'secret')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import atexit
import json
import logging
import re
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from assistant.errors import ClinicError, DocumentNotFound, UnknownAnswer, UnknownClinic

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clinics (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, emergency_text TEXT NOT NULL DEFAULT '',
    allowed_origins TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    accent_color TEXT NOT NULL DEFAULT '', logo_url TEXT NOT NULL DEFAULT '',
    feedback_questions INTEGER NOT NULL DEFAULT 0,
    llm_base_url TEXT NOT NULL DEFAULT '', llm_model TEXT NOT NULL DEFAULT '', llm_api_key TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics(id), hash TEXT NOT NULL,
    kind TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics(id), filename TEXT NOT NULL,
    title TEXT NOT NULL, media_type TEXT NOT NULL, text TEXT NOT NULL, version TEXT NOT NULL,
    sections TEXT NOT NULL, uploaded TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'draft',
    approved_by TEXT, approved_at TEXT, approved_version TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, clinic_id TEXT NOT NULL,
    answer_id TEXT NOT NULL, status TEXT NOT NULL, triage TEXT NOT NULL, sources TEXT NOT NULL,
    corpus_version TEXT NOT NULL, composer TEXT NOT NULL, model TEXT NOT NULL,
    prompt_version TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_clinic ON audit (clinic_id, id);
CREATE INDEX IF NOT EXISTS audit_answer ON audit (answer_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, clinic_id TEXT NOT NULL, answer_id TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT NOT NULL DEFAULT '',
    question TEXT, status TEXT NOT NULL, sources TEXT NOT NULL, time TEXT NOT NULL,
    updated TEXT NOT NULL, UNIQUE (clinic_id, answer_id)
);
"""

# Columns added to ``clinics`` after the first release: added to older files when opened.
_CLINIC_COLUMNS = {
    "accent_color": "TEXT NOT NULL DEFAULT ''",
    "logo_url": "TEXT NOT NULL DEFAULT ''",
    "feedback_questions": "INTEGER NOT NULL DEFAULT 0",
    # the clinic's own language-model endpoint (docs/api.md); the key is only ever read to call it
    "llm_base_url": "TEXT NOT NULL DEFAULT ''",
    "llm_model": "TEXT NOT NULL DEFAULT ''",
    "llm_api_key": "TEXT NOT NULL DEFAULT ''",
}
# Columns added to ``audit`` after the first release.
_AUDIT_COLUMNS = {"prompt_version": "TEXT NOT NULL DEFAULT ''"}

log = logging.getLogger("assistant.clinics.registry")

_KEY = re.compile(r"^pht_(sk|pk)_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LOGO_URL = re.compile(r"^https?://[^\s\"'<>()\\]+$")
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_ENDPOINT = re.compile(r"^https?://[^\s\"'<>]+$")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def clinic_slug(name: str) -> str:
    """The clinic's id: its name in lowercase letters, digits and dashes.

    >>> clinic_slug("St. Mary's Physio & Sport")
    'st-mary-s-physio-sport'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    if not slug:
        raise ClinicError("A clinic name needs at least one letter or digit.")
    return slug


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Clinic:
    id: str
    name: str
    emergency_text: str = ""
    allowed_origins: tuple[str, ...] = ()
    revision: int = 0
    accent_color: str = ""  # the widget's accent, e.g. "#0b7285"; empty: the widget's default
    logo_url: str = ""  # shown in the widget's header; empty: no logo
    feedback_questions: bool = False  # keep the question text with a patient's feedback
    llm_base_url: str = ""  # the clinic's own OpenAI-compatible endpoint; empty: the server's composer
    llm_model: str = ""
    llm_api_key: SecretStr = field(default=SecretStr(""), repr=False)  # never shown, logged or listed


@dataclass(frozen=True)
class KeyInfo:
    id: str
    clinic: Clinic
    kind: str  # "secret" or "publishable"


@dataclass
class ClinicDocument:
    """An uploaded document: its extracted text, sections and sign-off."""

    id: str
    clinic_id: str
    filename: str
    title: str
    media_type: str
    text: str
    version: str
    sections: list[dict[str, Any]]
    uploaded: str
    status: str = "draft"
    approved_by: str | None = None
    approved_at: str | None = None
    approved_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Everything but the text: what the API lists."""
        return {
            "id": self.id,
            "filename": self.filename,
            "title": self.title,
            "media_type": self.media_type,
            "version": self.version,
            "status": self.status,
            "sections": [{"id": s["id"], "title": s["title"]} for s in self.sections],
            "uploaded": self.uploaded,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "approved_version": self.approved_version,
            "characters": len(self.text),
        }


class ClinicRegistry:
    """The SQLite file of clinics, key hashes, clinic documents and audit records. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            have = {r[1] for r in conn.execute("PRAGMA table_info(clinics)")}
            for column, kind in _CLINIC_COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE clinics ADD COLUMN {column} {kind}")
            have = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
            for column, kind in _AUDIT_COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE audit ADD COLUMN {column} {kind}")
            conn.commit()
        self._audit = AuditWriter(self._write_audit)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _rows(self, sql: str, args: Any = ()) -> list[sqlite3.Row]:
        """One read statement, outside any write transaction: it takes no write lock, so it never
        waits for a writer (WAL), and it sees everything committed before it. The cursor is closed
        at once, which ends the statement's read snapshot (a later read sees later commits)."""
        cur = self._conn().execute(sql, args)
        try:
            return cur.fetchall()
        finally:
            cur.close()

    def _row(self, sql: str, args: Any = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): one writer at a time."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- clinics -------------------------------------------------------------------------------

    def add_clinic(
        self,
        name: str,
        *,
        emergency_text: str = "",
        allowed_origins: list[str] | None = None,
        accent_color: str = "",
        logo_url: str = "",
        feedback_questions: bool = False,
        llm_base_url: str = "",
        llm_model: str = "",
        llm_api_key: str = "",
    ) -> Clinic:
        name = name.strip()
        llm = _llm(llm_base_url, llm_model, llm_api_key)
        cid = clinic_slug(name)
        theme = _theme(accent_color, logo_url)
        with self._db() as db:
            if db.execute("SELECT 1 FROM clinics WHERE id = ? OR name = ?", (cid, name)).fetchone():
                raise ClinicError(f"A clinic named {name!r} already exists; choose another name.")
            db.execute(
                "INSERT INTO clinics (id, name, emergency_text, allowed_origins, created, accent_color, logo_url, "
                "feedback_questions, llm_base_url, llm_model, llm_api_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    name,
                    emergency_text.strip(),
                    json.dumps(_origins(allowed_origins or [])),
                    _now(),
                    *theme,
                    int(feedback_questions),
                    *llm,
                ),
            )
        return self.clinic(cid)

    def update_clinic(
        self,
        name_or_id: str,
        *,
        emergency_text: str | None = None,
        allowed_origins: list[str] | None = None,
        accent_color: str | None = None,
        logo_url: str | None = None,
        feedback_questions: bool | None = None,
        llm_base_url: str | None = None,
        llm_model: str | None = None,
        llm_api_key: str | None = None,
    ) -> Clinic:
        """Change the given fields of a clinic's record (``None`` leaves a field as it is; an empty
        colour or logo URL removes it). Every worker sees the change on its next request.

        >>> import tempfile, pathlib
        >>> reg = ClinicRegistry(pathlib.Path(tempfile.mkdtemp()) / "clinics.sqlite3")
        >>> _ = reg.add_clinic("North Physio")
        >>> reg.update_clinic("north-physio", accent_color="#0B7285").accent_color
        '#0b7285'
        """
        clinic = self.clinic(name_or_id)
        accent, logo = _theme(
            clinic.accent_color if accent_color is None else accent_color,
            clinic.logo_url if logo_url is None else logo_url,
        )
        url = clinic.llm_base_url if llm_base_url is None else llm_base_url
        llm = _llm(
            url,
            (clinic.llm_model if llm_model is None else llm_model) if url.strip() else "",
            (clinic.llm_api_key.get_secret_value() if llm_api_key is None else llm_api_key) if url.strip() else "",
        )  # an emptied endpoint takes its model and key with it
        with self._db() as db:
            db.execute(
                "UPDATE clinics SET emergency_text = ?, allowed_origins = ?, accent_color = ?, logo_url = ?, "
                "feedback_questions = ?, llm_base_url = ?, llm_model = ?, llm_api_key = ? WHERE id = ?",
                (
                    clinic.emergency_text if emergency_text is None else emergency_text.strip(),
                    json.dumps(_origins(clinic.allowed_origins if allowed_origins is None else allowed_origins)),
                    accent,
                    logo,
                    int(clinic.feedback_questions if feedback_questions is None else feedback_questions),
                    *llm,
                    clinic.id,
                ),
            )
        return self.clinic(clinic.id)

    def clinics(self) -> list[Clinic]:
        rows = self._rows("SELECT * FROM clinics ORDER BY name")
        return [self._clinic(r) for r in rows]

    def clinic(self, name_or_id: str) -> Clinic:
        row = self._row("SELECT * FROM clinics WHERE id = ? OR name = ?", (name_or_id, name_or_id))
        if row is None:
            raise UnknownClinic(
                f"There is no clinic {name_or_id!r}; add it with `pht-assistant clinic add` or list them with `pht-assistant clinic list`."
            )
        return self._clinic(row)

    @staticmethod
    def _clinic(row: sqlite3.Row) -> Clinic:
        return Clinic(
            id=row["id"],
            name=row["name"],
            emergency_text=row["emergency_text"],
            allowed_origins=tuple(json.loads(row["allowed_origins"])),
            revision=row["revision"],
            accent_color=row["accent_color"],
            logo_url=row["logo_url"],
            feedback_questions=bool(row["feedback_questions"]),
            llm_base_url=row["llm_base_url"],
            llm_model=row["llm_model"],
            llm_api_key=SecretStr(row["llm_api_key"]),
        )

    def revisions(self) -> dict[str, int]:
        """Each clinic's document revision: it goes up whenever an approved document changes."""
        return {r["id"]: r["revision"] for r in self._rows("SELECT id, revision FROM clinics")}

    # -- keys ----------------------------------------------------------------------------------

    def create_key(self, clinic: str, *, publishable: bool = False) -> str:
        """A new key for ``clinic``; returned once, only its hash is kept."""
        c = self.clinic(clinic)
        key_id = secrets.token_hex(6)
        key = f"pht_{'pk' if publishable else 'sk'}_{key_id}_{secrets.token_urlsafe(32)}"
        with self._db() as db:
            db.execute(
                "INSERT INTO keys (id, clinic_id, hash, kind, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, c.id, _hash(key), "publishable" if publishable else "secret", _now()),
            )
        return key

    def revoke_key(self, key_or_id: str) -> str:
        """Revoke a key by its id (the 12 hex digits after ``pht_sk_``) or by the key itself."""
        m = _KEY.match(key_or_id.strip())
        key_id = m.group(2) if m else key_or_id.strip()
        with self._db() as db:
            row = db.execute(
                "SELECT clinic_id FROM keys WHERE id = ? AND revoked IS NULL", (key_id,)
            ).fetchone()
            if row is None:
                raise ClinicError(
                    f"There is no active key {key_id!r}; list them with `pht-assistant key list`."
                )
            db.execute("UPDATE keys SET revoked = ? WHERE id = ?", (_now(), key_id))
        return key_id

    def keys(self, clinic: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT id, clinic_id, kind, created, revoked FROM keys", ()
        if clinic:
            query, args = query + " WHERE clinic_id = ?", (self.clinic(clinic).id,)
        return [dict(r) for r in self._rows(query + " ORDER BY created", args)]

    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's clinic and kind, or ``None`` for a malformed, unknown or revoked key."""
        m = _KEY.match(key or "")
        if not m:
            return None
        # One read, key and clinic together, on every request: a key revoked by any process
        # (`pht-assistant key revoke`, another worker) is refused on its next request.
        row = self._row(
            "SELECT k.hash, k.kind AS key_kind, k.id AS key_id, c.* FROM keys k JOIN clinics c ON c.id = k.clinic_id "
            "WHERE k.id = ? AND k.revoked IS NULL",
            (m.group(2),),
        )
        if row is None or not hmac.compare_digest(row["hash"], _hash(key)):
            return None
        kind = "publishable" if m.group(1) == "pk" else "secret"
        if kind != row["key_kind"]:
            return None
        return KeyInfo(id=row["key_id"], clinic=self._clinic(row), kind=kind)

    # -- documents -----------------------------------------------------------------------------

    def add_document(self, doc: ClinicDocument) -> ClinicDocument:
        with self._db() as db:
            db.execute(
                "INSERT INTO documents (id, clinic_id, filename, title, media_type, text, version, sections, uploaded, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft')",
                (
                    doc.id,
                    doc.clinic_id,
                    doc.filename,
                    doc.title,
                    doc.media_type,
                    doc.text,
                    doc.version,
                    json.dumps(doc.sections),
                    doc.uploaded,
                ),
            )
        return self.document(doc.clinic_id, doc.id)

    def documents(self, clinic_id: str, *, status: str | None = None) -> list[ClinicDocument]:
        query, args = "SELECT * FROM documents WHERE clinic_id = ?", [clinic_id]
        if status:
            query += " AND status = ?"
            args.append(status)
        rows = self._rows(query + " ORDER BY uploaded, id", args)
        return [self._document(r) for r in rows]

    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        row = self._row("SELECT * FROM documents WHERE clinic_id = ? AND id = ?", (clinic_id, doc_id))
        if row is None:
            raise DocumentNotFound(
                f"This clinic has no document {doc_id!r}; list its documents with GET /v1/documents."
            )
        return self._document(row)

    def approve(self, clinic_id: str, doc_id: str, reviewer: str) -> ClinicDocument:
        doc = self.document(clinic_id, doc_id)
        with self._db() as db:
            db.execute(
                "UPDATE documents SET status = 'approved', approved_by = ?, approved_at = ?, approved_version = ? "
                "WHERE clinic_id = ? AND id = ?",
                (reviewer, _now(), doc.version, clinic_id, doc_id),
            )
            db.execute("UPDATE clinics SET revision = revision + 1 WHERE id = ?", (clinic_id,))
        return self.document(clinic_id, doc_id)

    def delete_document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        doc = self.document(clinic_id, doc_id)
        with self._db() as db:
            db.execute("DELETE FROM documents WHERE clinic_id = ? AND id = ?", (clinic_id, doc_id))
            db.execute("UPDATE clinics SET revision = revision + 1 WHERE id = ?", (clinic_id,))
        return doc

    @staticmethod
    def _document(row: sqlite3.Row) -> ClinicDocument:
        return ClinicDocument(
            id=row["id"],
            clinic_id=row["clinic_id"],
            filename=row["filename"],
            title=row["title"],
            media_type=row["media_type"],
            text=row["text"],
            version=row["version"],
            sections=json.loads(row["sections"]),
            uploaded=row["uploaded"],
            status=row["status"],
            approved_by=row["approved_by"],
            approved_at=row["approved_at"],
            approved_version=row["approved_version"],
        )

    # -- audit ---------------------------------------------------------------------------------

    def record_answer(self, clinic_id: str, answer: Any, *, composer: str, model: str, prompt_version: str = "") -> None:
        """One audit row for an answer: never the question text. ``prompt_version``: the version of
        the prompt a language model wrote the reply with (empty for quoted replies).

        The row (its time is now) is handed to this registry's :class:`AuditWriter`, which commits
        it from a background thread, batched with the rows that arrived meanwhile; :meth:`audit`
        and :meth:`flush_audit` wait for it, and so does the end of the process.
        """
        triage = answer.triage
        sources = [
            {"source": c.source, "version": c.version, "approved_by": c.approved_by} for c in answer.citations
        ]
        self._audit.put(
            (
                _now(),
                clinic_id,
                answer.id,
                answer.status.value,
                json.dumps({"decision": triage.decision, "rule": triage.rule} if triage else {}),
                json.dumps(sources),
                answer.corpus_version,
                composer,
                model,
                prompt_version,
            )
        )

    def answered(self, clinic_id: str, answer_id: str) -> dict[str, Any] | None:
        """The audit record of an answer this clinic was given, or ``None`` (never another clinic's)."""
        self.flush_audit()  # an answer this process has just given is found
        row = self._row(
            "SELECT status, sources FROM audit WHERE clinic_id = ? AND answer_id = ? ORDER BY id DESC LIMIT 1",
            (clinic_id, answer_id),
        )
        return None if row is None else {"status": row["status"], "sources": json.loads(row["sources"])}

    def _write_audit(self, rows: list[tuple[Any, ...]]) -> None:
        with self._db() as db:
            db.executemany(
                "INSERT INTO audit (time, clinic_id, answer_id, status, triage, sources, corpus_version, composer, model, "
                "prompt_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def flush_audit(self, timeout: float = 30.0) -> bool:
        """Wait until every audit row recorded so far in this process is committed."""
        return self._audit.flush(timeout)

    def close(self) -> None:
        """Commit the pending audit rows and stop the writer (later rows are written at once)."""
        self._audit.close()

    def audit(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        self.flush_audit()  # this process's own answers are all listed
        query, args = "SELECT * FROM audit WHERE clinic_id = ?", [clinic_id]
        if before is not None:
            query += " AND id < ?"
            args.append(before)
        rows = self._rows(query + " ORDER BY id DESC LIMIT ?", [*args, limit])
        return [
            {
                "id": r["id"],
                "time": r["time"],
                "clinic": r["clinic_id"],
                "answer_id": r["answer_id"],
                "status": r["status"],
                "triage": json.loads(r["triage"]),
                "sources": json.loads(r["sources"]),
                "corpus_version": r["corpus_version"],
                "composer": r["composer"],
                "model": r["model"],
                "prompt_version": r["prompt_version"],
            }
            for r in rows
        ]

    # -- feedback ------------------------------------------------------------------------------

    def record_feedback(
        self, clinic_id: str, answer_id: str, rating: str, *, comment: str = "", question: str | None = None
    ) -> dict[str, Any]:
        """A patient's rating of one answer the clinic was given, with an optional comment; a
        second rating of the same answer replaces the first (a new comment replaces the old one).

        ``question`` is kept only when the clinic has ``feedback_questions`` turned on; otherwise
        it is dropped here. Raises :class:`UnknownAnswer` for an answer not in the clinic's audit
        trail (another clinic's, or none at all).
        """
        if rating not in ("up", "down"):
            raise ClinicError("A rating is 'up' or 'down'.")
        clinic = self.clinic(clinic_id)
        given = self.answered(clinic.id, answer_id)
        if given is None:
            raise UnknownAnswer()
        kept = question if clinic.feedback_questions and question else None
        now = _now()
        with self._db() as db:
            db.execute(
                "INSERT INTO feedback (clinic_id, answer_id, rating, comment, question, status, sources, time, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (clinic_id, answer_id) DO UPDATE SET "
                "rating = excluded.rating, updated = excluded.updated, "
                "comment = CASE WHEN excluded.comment != '' THEN excluded.comment ELSE comment END, "
                "question = COALESCE(excluded.question, question)",
                (
                    clinic.id,
                    answer_id,
                    rating,
                    comment.strip(),
                    kept,
                    given["status"],
                    json.dumps([s["source"] for s in given["sources"]]),
                    now,
                    now,
                ),
            )
        row = self._row("SELECT * FROM feedback WHERE clinic_id = ? AND answer_id = ?", (clinic.id, answer_id))
        return self._feedback(row)

    def feedback(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """The clinic's feedback, newest first (``before``: only rows with a smaller id)."""
        query, args = "SELECT * FROM feedback WHERE clinic_id = ?", [clinic_id]
        if before is not None:
            query += " AND id < ?"
            args.append(before)
        return [self._feedback(r) for r in self._rows(query + " ORDER BY id DESC LIMIT ?", [*args, limit])]

    @staticmethod
    def _feedback(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "time": row["time"],
            "updated": row["updated"],
            "answer_id": row["answer_id"],
            "rating": row["rating"],
            "comment": row["comment"],
            "status": row["status"],
            "sources": json.loads(row["sources"]),
            "question": row["question"],
        }


def _origins(origins: list[str] | tuple[str, ...]) -> list[str]:
    """Allowed origins as a browser sends them: scheme and host (and port), no path."""
    out = []
    for origin in origins:
        o = origin.strip().rstrip("/")
        if not _ORIGIN.match(o):
            raise ClinicError(
                f"{origin!r} is not a site's origin; give its scheme and host only, like https://www.north-physio.example."
            )
        out.append(o)
    return out


def _llm(base_url: str, model: str, api_key: str) -> tuple[str, str, str]:
    """A clinic's language-model endpoint, checked: an http(s) base URL (or none), its model and key."""
    url, model, key = base_url.strip(), model.strip(), api_key.strip()
    if url and not _ENDPOINT.match(url):
        raise ClinicError(
            f"The language-model address {url!r} is not an http(s) URL; give its OpenAI-compatible base, like http://10.0.0.5:8000/v1."
        )
    if not url and (model or key):
        raise ClinicError("A language model needs its endpoint too: give --llm-base-url with --llm-model or --llm-api-key.")
    return url, model, key


def _theme(accent_color: str, logo_url: str) -> tuple[str, str]:
    """A clinic's accent colour (``#rgb`` or ``#rrggbb``, kept lowercase) and logo URL, checked."""
    accent, logo = accent_color.strip().lower(), logo_url.strip()
    if accent and not _COLOUR.match(accent):
        raise ClinicError(f"The accent colour {accent_color!r} is not a hex colour; give one like #0b7285.")
    if logo and not _LOGO_URL.match(logo):
        raise ClinicError(
            f"The logo URL {logo_url!r} is not an http(s) address; give one like https://clinic.example/logo.png."
        )
    return accent, logo


_WRITERS: "weakref.WeakSet[AuditWriter]" = weakref.WeakSet()


@atexit.register
def _close_writers() -> None:
    """At interpreter exit, commit every pending audit row (after the last answer, before exit)."""
    for writer in list(_WRITERS):
        writer.close()


class AuditWriter:
    """Commits audit rows from one background thread, in order, each batch in one transaction.

    Answers do not wait for the database, nor wake the thread: a row is queued, and the thread
    looks every ``linger_seconds`` and commits everything queued meanwhile; only after a second
    without rows does it sleep until the next row wakes it. A failed write is logged and retried
    every ``retry_seconds``; nothing is dropped. :meth:`flush` has the queue committed now and waits for
    it; :meth:`close` (also run at interpreter exit) flushes and stops the thread, after which rows
    are written synchronously.

    >>> written = []
    >>> w = AuditWriter(written.extend)
    >>> w.put(("a",)); w.put(("b",)); w.flush()
    True
    >>> w.close(); w.put(("c",)); written
    [('a',), ('b',), ('c',)]
    """

    def __init__(self, write: Any, *, linger_seconds: float = 0.02, retry_seconds: float = 1.0) -> None:
        self._write = write
        self._linger = linger_seconds
        self._retry = retry_seconds
        self._cond = threading.Condition()
        self._rows: list[Any] = []
        self._busy = False  # a batch is being written
        self._idle = False  # the thread sleeps until a row wakes it
        self._now = False  # flush() or close(): commit without gathering first
        self._closed = False
        self._thread: threading.Thread | None = None
        _WRITERS.add(self)

    def put(self, row: Any) -> None:
        with self._cond:
            if not self._closed:
                self._rows.append(row)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()
                elif self._idle:
                    self._cond.notify_all()
                return
        self._write([row])  # closed: the caller writes it (and sees any error)

    def _run(self) -> None:
        quiet = 0.0  # seconds without rows
        while True:
            with self._cond:
                while not self._rows and not self._closed:
                    if quiet < 1.0:  # looks again soon: rows arriving meanwhile wake nobody
                        self._cond.wait(self._linger)
                        quiet += self._linger
                    else:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                quiet = 0.0
                if not self._rows:
                    return
                batch, self._rows, self._busy = self._rows, [], True
            failed = False
            try:
                self._write(batch)
            except Exception:
                log.exception("%d audit record(s) not written yet; retrying in %.0f s", len(batch), self._retry)
                failed = True
            with self._cond:
                self._busy = False
                if failed:
                    self._rows[:0] = batch
                self._cond.notify_all()  # flush() waiters
                if not (self._now or self._closed):
                    self._cond.wait(self._retry if failed else self._linger)  # flush()/close() cut it short
                self._now = False

    def pending(self) -> int:
        with self._cond:
            return len(self._rows) + (1 if self._busy else 0)

    def flush(self, timeout: float = 30.0) -> bool:
        """True once every row queued before this call is committed (False after ``timeout`` s)."""
        with self._cond:
            if self._thread is None:
                return True
            self._now = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._rows and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            left = len(self._rows)
        if left:
            log.error("%d audit record(s) could not be written before exit", left)
