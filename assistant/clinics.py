"""Clinics, their API keys, their documents and their audit trail, in one SQLite file.

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
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ClinicError, DocumentNotFound, UnknownClinic

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clinics (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, emergency_text TEXT NOT NULL DEFAULT '',
    allowed_origins TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0
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
    corpus_version TEXT NOT NULL, composer TEXT NOT NULL, model TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_clinic ON audit (clinic_id, id);
"""

_KEY = re.compile(r"^pht_(sk|pk)_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


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

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- clinics -------------------------------------------------------------------------------

    def add_clinic(
        self, name: str, *, emergency_text: str = "", allowed_origins: list[str] | None = None
    ) -> Clinic:
        name = name.strip()
        cid = clinic_slug(name)
        with self._db() as db:
            if db.execute("SELECT 1 FROM clinics WHERE id = ? OR name = ?", (cid, name)).fetchone():
                raise ClinicError(f"A clinic named {name!r} already exists; choose another name.")
            db.execute(
                "INSERT INTO clinics (id, name, emergency_text, allowed_origins, created) VALUES (?, ?, ?, ?, ?)",
                (cid, name, emergency_text.strip(), json.dumps(list(allowed_origins or [])), _now()),
            )
        return self.clinic(cid)

    def clinics(self) -> list[Clinic]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM clinics ORDER BY name").fetchall()
        return [self._clinic(r) for r in rows]

    def clinic(self, name_or_id: str) -> Clinic:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM clinics WHERE id = ? OR name = ?", (name_or_id, name_or_id)
            ).fetchone()
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
        )

    def revisions(self) -> dict[str, int]:
        """Each clinic's document revision: it goes up whenever an approved document changes."""
        with self._db() as db:
            return {r["id"]: r["revision"] for r in db.execute("SELECT id, revision FROM clinics")}

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
        with self._db() as db:
            return [dict(r) for r in db.execute(query + " ORDER BY created", args)]

    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's clinic and kind, or ``None`` for a malformed, unknown or revoked key."""
        m = _KEY.match(key or "")
        if not m:
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT k.hash, k.kind, k.id, k.clinic_id FROM keys k WHERE k.id = ? AND k.revoked IS NULL",
                (m.group(2),),
            ).fetchone()
        if row is None or not hmac.compare_digest(row["hash"], _hash(key)):
            return None
        kind = "publishable" if m.group(1) == "pk" else "secret"
        if kind != row["kind"]:
            return None
        return KeyInfo(id=row["id"], clinic=self.clinic(row["clinic_id"]), kind=kind)

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
        with self._db() as db:
            rows = db.execute(query + " ORDER BY uploaded, id", args).fetchall()
        return [self._document(r) for r in rows]

    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM documents WHERE clinic_id = ? AND id = ?", (clinic_id, doc_id)
            ).fetchone()
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

    def record_answer(self, clinic_id: str, answer: Any, *, composer: str, model: str) -> None:
        """One audit row for an answer: never the question text."""
        triage = answer.triage
        sources = [
            {"source": c.source, "version": c.version, "approved_by": c.approved_by} for c in answer.citations
        ]
        with self._db() as db:
            db.execute(
                "INSERT INTO audit (time, clinic_id, answer_id, status, triage, sources, corpus_version, composer, model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )

    def audit(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM audit WHERE clinic_id = ?", [clinic_id]
        if before is not None:
            query += " AND id < ?"
            args.append(before)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
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
            }
            for r in rows
        ]
