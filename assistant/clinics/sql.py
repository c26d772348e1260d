"""The registry's two implementations, on SQLAlchemy Core: an embedded SQLite file and PostgreSQL.

Both run the same statements (:class:`SQLRegistry`); they differ in how they connect, read and
write. SQLite: one file, reads outside any transaction (WAL: a read never waits for a writer),
writes one at a time (``BEGIN IMMEDIATE``). PostgreSQL: a connection pool per process, reads in
autocommit (one round trip each), writes in a transaction; a connection lost when the server
restarted is replaced and the read tried once more, so a worker recovers without a restart.
Either raises :class:`~assistant.errors.RegistryUnavailable` (the API's 503) when the database
does not answer, never a driver's error.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import SecretStr

from assistant.clinics import schema as t
from assistant.clinics.migrate import HEAD, check, database_url, display_url
from assistant.clinics.registry import (
    KEY_PATTERN,
    AuditWriter,
    Clinic,
    ClinicDocument,
    ClinicRegistry,
    KeyInfo,
    clinic_slug,
    key_hash,
    llm_endpoint,
    now,
    origins,
    request_clinic,
    theme,
)
from assistant.errors import (
    ApprovalInProgress,
    ApprovalNotFound,
    Cancelled,
    ClinicError,
    DocumentNotFound,
    KeyNotFound,
    RegistrySchemaError,
    UnknownAnswer,
    RegistryUnavailable,
    UnknownClinic,
)

log = logging.getLogger("assistant.clinics.sql")
T = TypeVar("T")

_CLINIC_COLUMNS = [
    t.clinics.c.id,
    t.clinics.c.name,
    t.clinics.c.emergency_text,
    t.clinics.c.allowed_origins,
    t.clinics.c.revision,
    t.clinics.c.accent_color,
    t.clinics.c.logo_url,
    t.clinics.c.feedback_questions,
    t.clinics.c.llm_base_url,
    t.clinics.c.llm_model,
    t.clinics.c.llm_api_key,
]
_AUTH = (
    sa.select(t.keys.c.hash, t.keys.c.kind.label("key_kind"), t.keys.c.id.label("key_id"), *_CLINIC_COLUMNS)
    .select_from(t.keys.join(t.clinics, t.clinics.c.id == t.keys.c.clinic_id))
    .where(t.keys.c.id == sa.bindparam("key_id"), t.keys.c.revoked.is_(None))
)
_CLINIC = sa.select(*_CLINIC_COLUMNS).where(
    sa.or_(t.clinics.c.id == sa.bindparam("name"), t.clinics.c.name == sa.bindparam("name"))
)


@functools.lru_cache(maxsize=16)
def _row_type(names: tuple[str, ...]) -> type:
    return collections.namedtuple("Row", names)  # type: ignore[misc]


def _named_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Any:
    """sqlite3 rows with attribute access, as SQLAlchemy's rows have."""
    return _row_type(tuple(d[0] for d in cursor.description))(*values)


def _clinic(row: Any) -> Clinic:
    return Clinic(
        id=row.id,
        name=row.name,
        emergency_text=row.emergency_text,
        allowed_origins=tuple(json.loads(row.allowed_origins)),
        revision=row.revision,
        accent_color=row.accent_color,
        logo_url=row.logo_url,
        feedback_questions=bool(row.feedback_questions),
        llm_base_url=row.llm_base_url,
        llm_model=row.llm_model,
        llm_api_key=SecretStr(row.llm_api_key),
    )


def _feedback(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.time,
        "updated": row.updated,
        "answer_id": row.answer_id,
        "rating": row.rating,
        "comment": row.comment,
        "status": row.status,
        "sources": json.loads(row.sources),
        "question": row.question,
    }


def _document(row: Any) -> ClinicDocument:
    return ClinicDocument(
        id=row.id,
        clinic_id=row.clinic_id,
        filename=row.filename,
        title=row.title,
        media_type=row.media_type,
        text=row.text,
        version=row.version,
        sections=json.loads(row.sections),
        uploaded=row.uploaded,
        status=row.status,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        approved_version=row.approved_version,
        flags=json.loads(row.flags),
    )


_INTERRUPTED = "The server stopped while approving this document; nothing was recorded. Approve it again."
_LIVE = ("queued", "running")


def _job(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "clinic_id": row.clinic_id,
        "document_id": row.doc_id,
        "version": row.version,
        "reviewer": row.reviewer,
        "confirm": json.loads(row.confirm),
        "status": row.status,
        "created": row.created,
        "started": row.started,
        "finished": row.finished,
        "done": row.done,
        "total": row.total,
        "error": row.error,
        "message": row.message,
    }


class SQLRegistry(ClinicRegistry):
    """What both databases share: every statement, the audit writer, error translation.

    A subclass gives ``engine`` (writes), ``reader`` (reads) and ``where``.
    """

    engine: sa.Engine
    reader: sa.Engine

    def _open(self) -> None:
        """Check the schema (an empty database is created only where :meth:`_create_if_empty`
        says so), then start the audit writer."""
        try:
            with self.reader.connect() as conn:
                revision = self._revision(conn)
        except sa.exc.OperationalError as exc:
            raise self._unavailable(exc) from None
        if revision is None:
            self._create_if_empty()
        elif revision != HEAD:
            self._upgrade_older(revision)
        self._audit = AuditWriter(self._write_audit)

    def _revision(self, conn: sa.Connection) -> str | None:
        try:  # the quick way, without Alembic: the revision row of a database at head
            row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
            if row is not None and row[0] == HEAD:
                return HEAD
        except sa.exc.OperationalError:
            pass
        except sa.exc.ProgrammingError:
            pass
        if conn.in_transaction():
            conn.rollback()
        return check(conn, self.where, older=self.upgrades_itself)

    upgrades_itself = False  # SQLite: a single machine's file is brought up to date when opened

    def _create_if_empty(self) -> None:
        raise RegistrySchemaError(
            f"The clinics database at {self.where} has no tables yet; create them with `pht-assistant db upgrade`."
        )

    def _upgrade_older(self, revision: str) -> None:
        from assistant.clinics.migrate import upgrade

        log.warning("upgrading the clinics database at %s from schema revision %s to %s", self.where, revision, HEAD)
        upgrade(self.url)

    # -- talking to the database ---------------------------------------------------------------

    def _unavailable(self, exc: Exception) -> RegistryUnavailable:
        # INFO: the 503s, /v1/health and the error metrics already say so; the driver's words are for the operator
        log.info("clinics database %s does not answer: %s", self.where, str(exc).splitlines()[0])
        error = RegistryUnavailable()
        error.where = self.where
        return error

    def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; a connection found dead (the server restarted) is replaced and ``fn`` run once
        more; a database that does not answer is :class:`RegistryUnavailable`."""
        for attempt in (1, 2):
            try:
                return fn()
            except sa.exc.DBAPIError as exc:
                if isinstance(exc, sa.exc.IntegrityError):
                    raise
                if exc.connection_invalidated and attempt == 1:
                    continue
                raise self._unavailable(exc) from None
            except sa.exc.TimeoutError as exc:  # no pooled connection came free in time
                raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    def _rows(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        def read() -> list[Any]:
            with self.reader.connect() as conn:
                return conn.execute(stmt, params or {}).all()

        return self._run(read)

    def _row(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        rows = self._rows(stmt, params)
        return rows[0] if rows else None

    def _hot_row(self, stmt: Any, params: dict[str, Any]) -> Any:
        """:meth:`_row` for the two reads every request makes (the key, the clinic)."""
        return self._row(stmt, params)

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(conn)`` in one write transaction (retried once on a dead connection)."""

        def write() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return self._run(write)

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
        cid = clinic_slug(name)
        accent, logo = theme(accent_color or "", logo_url or "")
        allowed = origins(allowed_origins or [])
        llm_url, llm_name, llm_key = llm_endpoint(llm_base_url or "", llm_model or "", llm_api_key or "")
        taken = ClinicError(f"A clinic named {name!r} already exists; choose another name.")

        def add(db: sa.Connection) -> None:
            if db.execute(
                sa.select(1).where(sa.or_(t.clinics.c.id == cid, t.clinics.c.name == name))
            ).first():
                raise taken
            db.execute(
                t.clinics.insert().values(
                    id=cid,
                    name=name,
                    emergency_text=emergency_text.strip(),
                    allowed_origins=json.dumps(allowed),
                    created=now(),
                    revision=0,
                    accent_color=accent,
                    logo_url=logo,
                    feedback_questions=int(feedback_questions),
                    llm_base_url=llm_url,
                    llm_model=llm_name,
                    llm_api_key=llm_key,
                )
            )

        try:
            self._write(add)
        except sa.exc.IntegrityError:  # added meanwhile by another process
            raise taken from None
        return self._read_clinic(cid)

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
        clinic = self._read_clinic(name_or_id)
        accent, logo = theme(
            clinic.accent_color if accent_color is None else accent_color,
            clinic.logo_url if logo_url is None else logo_url,
        )
        values: dict[str, Any] = {"accent_color": accent, "logo_url": logo}
        if (llm_base_url, llm_model, llm_api_key) != (None, None, None):
            url = clinic.llm_base_url if llm_base_url is None else llm_base_url
            # an emptied endpoint takes its stored model and key with it; a model or key given now
            # without an endpoint is refused (llm_endpoint), not silently dropped
            kept = bool(url.strip())
            values["llm_base_url"], values["llm_model"], values["llm_api_key"] = llm_endpoint(
                url,
                llm_model if llm_model is not None else (clinic.llm_model if kept else ""),
                llm_api_key if llm_api_key is not None else (clinic.llm_api_key.get_secret_value() if kept else ""),
            )
        if emergency_text is not None:
            values["emergency_text"] = emergency_text.strip()
        if allowed_origins is not None:
            values["allowed_origins"] = json.dumps(origins(allowed_origins))
        if feedback_questions is not None:
            values["feedback_questions"] = int(feedback_questions)
        self._write(lambda db: db.execute(t.clinics.update().where(t.clinics.c.id == clinic.id).values(**values)))
        return self._read_clinic(clinic.id)

    def clinics(self) -> list[Clinic]:
        return [_clinic(r) for r in self._rows(sa.select(*_CLINIC_COLUMNS).order_by(t.clinics.c.name))]

    def clinic(self, name_or_id: str) -> Clinic:
        seen = request_clinic(name_or_id)  # already read with this request's key
        if seen is not None:
            return seen
        return self._read_clinic(name_or_id)

    def _read_clinic(self, name_or_id: str) -> Clinic:
        row = self._hot_row(_CLINIC, {"name": name_or_id})
        if row is None:
            raise UnknownClinic(
                f"There is no clinic {name_or_id!r}; add it with `pht-assistant clinic add` or list them with `pht-assistant clinic list`."
            )
        return _clinic(row)

    def revisions(self) -> dict[str, int]:
        return {r.id: r.revision for r in self._rows(sa.select(t.clinics.c.id, t.clinics.c.revision))}

    # -- keys ----------------------------------------------------------------------------------

    def create_key(self, clinic: str, *, publishable: bool = False) -> str:
        c = self.clinic(clinic)
        key_id = secrets.token_hex(6)
        key = f"pht_{'pk' if publishable else 'sk'}_{key_id}_{secrets.token_urlsafe(32)}"
        self._write(
            lambda db: db.execute(
                t.keys.insert().values(
                    id=key_id,
                    clinic_id=c.id,
                    hash=key_hash(key),
                    kind="publishable" if publishable else "secret",
                    created=now(),
                )
            )
        )
        return key

    def revoke_key(self, key_or_id: str, *, clinic: str | None = None) -> str:
        m = KEY_PATTERN.match(key_or_id.strip())
        key_id = m.group(2) if m else key_or_id.strip()
        where = [t.keys.c.id == key_id, t.keys.c.revoked.is_(None)]
        if clinic is not None:
            where.append(t.keys.c.clinic_id == clinic)

        def revoke(db: sa.Connection) -> int:
            return db.execute(t.keys.update().where(*where).values(revoked=now())).rowcount

        if not self._write(revoke):
            raise KeyNotFound(f"There is no active key {key_id!r}; list them with `pht-assistant key list`.")
        return key_id

    def keys(self, clinic: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.keys.c.id, t.keys.c.clinic_id, t.keys.c.kind, t.keys.c.created, t.keys.c.revoked)
        if clinic:
            query = query.where(t.keys.c.clinic_id == self.clinic(clinic).id)
        return [dict(r._mapping) for r in self._rows(query.order_by(t.keys.c.created, t.keys.c.id))]

    def authenticate(self, key: str) -> KeyInfo | None:
        m = KEY_PATTERN.match(key or "")
        if not m:
            return None
        # One read, key and clinic together, on every request: a key revoked by any process
        # (`pht-assistant key revoke`, another worker, another machine) is refused on its next request.
        row = self._hot_row(_AUTH, {"key_id": m.group(2)})
        if row is None or not hmac.compare_digest(row.hash, key_hash(key)):
            return None
        kind = "publishable" if m.group(1) == "pk" else "secret"
        if kind != row.key_kind:
            return None
        return KeyInfo(id=row.key_id, clinic=_clinic(row), kind=kind)

    # -- documents -----------------------------------------------------------------------------

    def add_document(self, doc: ClinicDocument) -> ClinicDocument:
        self._write(
            lambda db: db.execute(
                t.documents.insert().values(
                    id=doc.id,
                    clinic_id=doc.clinic_id,
                    filename=doc.filename,
                    title=doc.title,
                    media_type=doc.media_type,
                    text=doc.text,
                    version=doc.version,
                    sections=json.dumps(doc.sections),
                    uploaded=doc.uploaded,
                    status="draft",
                    flags=json.dumps(doc.flags),
                )
            )
        )
        return self.document(doc.clinic_id, doc.id)

    def documents(self, clinic_id: str, *, status: str | None = None) -> list[ClinicDocument]:
        query = sa.select(t.documents).where(t.documents.c.clinic_id == clinic_id)
        if status:
            query = query.where(t.documents.c.status == status)
        return [_document(r) for r in self._rows(query.order_by(t.documents.c.uploaded, t.documents.c.id))]

    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        row = self._row(
            sa.select(t.documents).where(t.documents.c.clinic_id == clinic_id, t.documents.c.id == doc_id)
        )
        if row is None:
            raise DocumentNotFound(
                f"This clinic has no document {doc_id!r}; list its documents with GET /v1/documents."
            )
        return _document(row)

    def _bump(self, db: sa.Connection, clinic_id: str) -> None:
        db.execute(
            t.clinics.update().where(t.clinics.c.id == clinic_id).values(revision=t.clinics.c.revision + 1)
        )

    def approve(self, clinic_id: str, doc_id: str, reviewer: str) -> ClinicDocument:
        doc = self.document(clinic_id, doc_id)

        def approve(db: sa.Connection) -> None:
            db.execute(
                t.documents.update()
                .where(t.documents.c.clinic_id == clinic_id, t.documents.c.id == doc_id)
                .values(status="approved", approved_by=reviewer, approved_at=now(), approved_version=doc.version)
            )
            self._bump(db, clinic_id)

        self._write(approve)
        return self.document(clinic_id, doc_id)

    def delete_document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        doc = self.document(clinic_id, doc_id)

        def delete(db: sa.Connection) -> None:
            db.execute(
                t.documents.delete().where(t.documents.c.clinic_id == clinic_id, t.documents.c.id == doc_id)
            )
            self._bump(db, clinic_id)

        self._write(delete)
        return doc

    # -- approvals -----------------------------------------------------------------------------

    def start_approval(
        self, clinic_id: str, doc_id: str, *, reviewer: str, version: str, confirm: list[str], stale_after: float
    ) -> tuple[dict[str, Any], str]:
        confirm = sorted(set(confirm))
        j, d = t.approval_jobs, t.documents

        def start(db: sa.Connection) -> tuple[dict[str, Any], str]:
            doc = db.execute(
                sa.select(d.c.status, d.c.approved_by, d.c.approved_version, d.c.flags).where(
                    d.c.clinic_id == clinic_id, d.c.id == doc_id
                )
            ).first()
            if doc is None:
                raise DocumentNotFound(
                    f"This clinic has no document {doc_id!r}; list its documents with GET /v1/documents."
                )
            now_s = time.time()
            db.execute(  # jobs of a worker that is gone
                j.update()
                .where(j.c.doc_id == doc_id, j.c.status.in_(_LIVE), j.c.heartbeat < now_s - stale_after)
                .values(status="failed", finished=now(), error="approval_interrupted", message=_INTERRUPTED)
            )
            live = db.execute(sa.select(j).where(j.c.doc_id == doc_id, j.c.status.in_(_LIVE))).first()
            if live is not None:
                job = _job(live)
                if (job["reviewer"], job["version"], job["confirm"]) == (reviewer, version, confirm):
                    return job, "same"
                raise ApprovalInProgress(
                    f"An approval of this document by {job['reviewer']!r} is under way (job {job['id']}); wait for "
                    f"it with GET /v1/approvals/{job['id']}, then approve again if you need to."
                )
            confirmed = sorted(f["passage"] for f in json.loads(doc.flags) if f.get("confirmed"))
            if (doc.status, doc.approved_by, doc.approved_version, confirmed) == ("approved", reviewer, version, confirm):
                last = db.execute(
                    sa.select(j).where(j.c.doc_id == doc_id, j.c.status == "succeeded").order_by(j.c.created.desc()).limit(1)
                ).first()
                if last is not None:
                    return _job(last), "done"
            job_id = "apv-" + secrets.token_hex(8)
            db.execute(
                j.insert().values(
                    id=job_id,
                    clinic_id=clinic_id,
                    doc_id=doc_id,
                    version=version,
                    reviewer=reviewer,
                    confirm=json.dumps(confirm),
                    status="queued",
                    created=now(),
                    heartbeat=now_s,
                )
            )
            return _job(db.execute(sa.select(j).where(j.c.id == job_id)).one()), "new"

        try:
            return self._write(start)
        except sa.exc.IntegrityError:  # another worker started one at the same moment
            live = self._row(sa.select(j).where(j.c.doc_id == doc_id, j.c.status.in_(_LIVE)))
            who = live.reviewer if live is not None else "another reviewer"
            raise ApprovalInProgress(
                f"An approval of this document by {who!r} is under way; wait for it, then approve again if you need to."
            ) from None

    def approval_job(self, clinic_id: str, job_id: str, *, stale_after: float | None = None) -> dict[str, Any]:
        j = t.approval_jobs
        row = self._row(sa.select(j).where(j.c.clinic_id == clinic_id, j.c.id == job_id))
        if row is None:
            raise ApprovalNotFound()
        job = _job(row)
        if stale_after is not None and job["status"] in _LIVE and row.heartbeat < time.time() - stale_after:
            self.fail_job(job_id, "approval_interrupted", _INTERRUPTED)
            return self.approval_job(clinic_id, job_id)
        return job

    def update_job(
        self, job_id: str, *, status: str | None = None, done: int | None = None, total: int | None = None
    ) -> None:
        j = t.approval_jobs
        values: dict[str, Any] = {"heartbeat": time.time()}
        if status is not None:
            values["status"] = status
            if status == "running":
                values["started"] = sa.func.coalesce(j.c.started, now())
        if done is not None:
            values["done"] = done
        if total is not None:
            values["total"] = total
        self._write(lambda db: db.execute(j.update().where(j.c.id == job_id, j.c.status.in_(_LIVE)).values(**values)))

    def heartbeat_jobs(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        j = t.approval_jobs
        self._write(
            lambda db: db.execute(
                j.update().where(j.c.id.in_(job_ids), j.c.status.in_(_LIVE)).values(heartbeat=time.time())
            )
        )

    def fail_job(self, job_id: str, error: str, message: str) -> bool:
        j = t.approval_jobs
        result = self._write(
            lambda db: db.execute(
                j.update()
                .where(j.c.id == job_id, j.c.status.in_(_LIVE))
                .values(status="failed", finished=now(), error=error, message=message)
            )
        )
        return result.rowcount > 0

    def finish_approval(self, job_id: str, flags: list[dict[str, Any]]) -> ClinicDocument:
        j, d = t.approval_jobs, t.documents

        def finish(db: sa.Connection) -> tuple[str, str]:
            row = db.execute(sa.select(j).where(j.c.id == job_id).with_for_update()).first()
            if row is None or row.status != "running":
                raise Cancelled("This approval was stopped before it finished; nothing was recorded. Approve again.")
            done = db.execute(
                d.update()
                .where(d.c.clinic_id == row.clinic_id, d.c.id == row.doc_id, d.c.version == row.version)
                .values(
                    status="approved",
                    approved_by=row.reviewer,
                    approved_at=now(),
                    approved_version=row.version,
                    flags=json.dumps(flags),
                )
            )
            if done.rowcount == 0:
                raise DocumentNotFound("The document was deleted while it was being approved; nothing was recorded.")
            self._bump(db, row.clinic_id)
            db.execute(
                j.update().where(j.c.id == job_id).values(status="succeeded", finished=now(), heartbeat=time.time())
            )
            return row.clinic_id, row.doc_id

        clinic_id, doc_id = self._write(finish)
        return self.document(clinic_id, doc_id)

    # -- audit ---------------------------------------------------------------------------------

    def record_answer(self, clinic_id: str, answer: Any, *, composer: str, model: str, prompt_version: str = "") -> None:
        """One audit row for an answer: never the question text. ``prompt_version``: the version of
        the prompt a language model wrote the reply with (empty for quoted replies).

        The row (its time is now) is handed to this registry's :class:`AuditWriter`, which commits
        it from a background thread, batched with the rows that arrived meanwhile; :meth:`audit`
        and :meth:`flush_audit` wait for it, and so does the end of the process. While the database
        does not answer, rows wait in memory and are retried every second.
        """
        triage = answer.triage
        sources = [
            {"source": c.source, "version": c.version, "approved_by": c.approved_by} for c in answer.citations
        ]
        self._audit.put(
            {
                "time": now(),
                "clinic_id": clinic_id,
                "answer_id": answer.id,
                "status": answer.status.value,
                "triage": json.dumps({"decision": triage.decision, "rule": triage.rule} if triage else {}),
                "sources": json.dumps(sources),
                "corpus_version": answer.corpus_version,
                "composer": composer,
                "model": model,
                "prompt_version": prompt_version,
            }
        )

    def _write_audit(self, rows: list[dict[str, Any]]) -> None:
        self._write(lambda db: db.execute(t.audit.insert(), rows))

    def flush_audit(self, timeout: float = 30.0) -> bool:
        return self._audit.flush(timeout)

    def audit(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        self.flush_audit()  # this process's own answers are all listed
        query = sa.select(t.audit).where(t.audit.c.clinic_id == clinic_id)
        if before is not None:
            query = query.where(t.audit.c.id < before)
        rows = self._rows(query.order_by(t.audit.c.id.desc()).limit(limit))
        return [
            {
                "id": r.id,
                "time": r.time,
                "clinic": r.clinic_id,
                "answer_id": r.answer_id,
                "status": r.status,
                "triage": json.loads(r.triage),
                "sources": json.loads(r.sources),
                "corpus_version": r.corpus_version,
                "composer": r.composer,
                "model": r.model,
                "prompt_version": r.prompt_version,
            }
            for r in rows
        ]

    def answered(self, clinic_id: str, answer_id: str) -> dict[str, Any] | None:
        self.flush_audit()  # an answer this process has just given is found
        row = self._row(
            sa.select(t.audit.c.status, t.audit.c.sources)
            .where(t.audit.c.clinic_id == clinic_id, t.audit.c.answer_id == answer_id)
            .order_by(t.audit.c.id.desc())
            .limit(1)
        )
        return None if row is None else {"status": row.status, "sources": json.loads(row.sources)}

    # -- feedback ------------------------------------------------------------------------------

    def record_feedback(
        self, clinic_id: str, answer_id: str, rating: str, *, comment: str = "", question: str | None = None
    ) -> dict[str, Any]:
        if rating not in ("up", "down"):
            raise ClinicError("A rating is 'up' or 'down'.")
        clinic = self.clinic(clinic_id)
        given = self.answered(clinic.id, answer_id)
        if given is None:
            raise UnknownAnswer()
        kept = question if clinic.feedback_questions and question else None
        stamp = now()
        row = {
            "clinic_id": clinic.id,
            "answer_id": answer_id,
            "rating": rating,
            "comment": comment.strip(),
            "question": kept,
            "status": given["status"],
            "sources": json.dumps([s["source"] for s in given["sources"]]),
            "time": stamp,
            "updated": stamp,
        }

        def upsert(db: sa.Connection) -> None:
            insert = self._insert(t.feedback).values(**row)
            db.execute(
                insert.on_conflict_do_update(
                    index_elements=["clinic_id", "answer_id"],
                    set_={
                        "rating": insert.excluded.rating,
                        "updated": insert.excluded.updated,
                        # a new comment replaces the old one; none keeps it
                        "comment": sa.case(
                            (insert.excluded.comment != "", insert.excluded.comment), else_=t.feedback.c.comment
                        ),
                        "question": sa.func.coalesce(insert.excluded.question, t.feedback.c.question),
                    },
                )
            )

        self._write(upsert)
        found = self._row(
            sa.select(t.feedback).where(t.feedback.c.clinic_id == clinic.id, t.feedback.c.answer_id == answer_id)
        )
        return _feedback(found)

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that can say ON CONFLICT (both databases have it; SQLAlchemy spells it per dialect)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def feedback(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.feedback).where(t.feedback.c.clinic_id == clinic_id)
        if before is not None:
            query = query.where(t.feedback.c.id < before)
        return [_feedback(r) for r in self._rows(query.order_by(t.feedback.c.id.desc()).limit(limit))]

    # -- the database ----------------------------------------------------------------------------

    def ping(self) -> None:
        self._rows(sa.select(sa.literal(1)))

    def close(self) -> None:
        self._audit.close()
        self.engine.dispose()


class SQLiteRegistry(SQLRegistry):
    """The embedded registry: one SQLite file (WAL), created with its tables on first use.

    >>> import tempfile, pathlib
    >>> SQLiteRegistry(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite3").kind
    'sqlite'
    """

    kind = "sqlite"
    upgrades_itself = True

    def __init__(self, where: str | Path, *, timeout: float = 30.0) -> None:
        """``timeout``: seconds a statement may wait for another process's write (the API passes
        ``PHT_STORE_TIMEOUT``; past it the call fails as unavailable rather than hanging)."""
        self.timeout = timeout
        if isinstance(where, str) and where.startswith("sqlite"):
            self.path = Path(sa.make_url(where).database or "")
        else:
            self.path = Path(where)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        engine = sa.create_engine(
            self.url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            poolclass=sa.pool.QueuePool,
            pool_size=8,
            max_overflow=64,
        )

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # the driver begins nothing by itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Writes take the write lock at once (one writer at a time, no upgrade deadlocks);
            # reads begin nothing: each statement sees everything committed before it.
            if conn.get_execution_options().get("pht_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        self.engine = engine.execution_options(pht_write=True)
        self.reader = engine
        self._base = engine
        self._local = threading.local()
        self._compiled: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._open()

    def _create_if_empty(self) -> None:
        from assistant.clinics.migrate import upgrade

        upgrade(self.url)  # a new file: the embedded registry makes its tables itself

    def _hot_row(self, stmt: Any, params: dict[str, Any]) -> Any:
        """The per-request reads on this thread's own sqlite3 connection, their SQL compiled once:
        about 6 microseconds instead of 50 through SQLAlchemy's pool (same statements, same rows)."""
        compiled = self._compiled.get(id(stmt))
        if compiled is None:
            c = stmt.compile(dialect=self._base.dialect)
            compiled = self._compiled[id(stmt)] = (str(c), tuple(c.positiontup or ()))
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.row_factory = _named_row
            self._local.conn = conn
        sql, order = compiled
        try:
            cur = conn.execute(sql, tuple(params[name] for name in order))
            try:
                return cur.fetchone()
            finally:
                cur.close()  # ends the read: the next one sees every later commit
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    def close(self) -> None:
        self._audit.close()
        self._base.dispose()


class PostgresRegistry(SQLRegistry):
    """The shared registry: a PostgreSQL database that every worker on every machine uses.

    Its tables are made by ``pht-assistant db upgrade`` (never by a server starting).
    """

    kind = "postgresql"

    def __init__(
        self, where: str, *, pool_size: int = 10, connect_timeout: float = 5.0, statement_timeout: float | None = None
    ) -> None:
        """``connect_timeout`` and ``statement_timeout`` (seconds): how long connecting, and each
        statement, may take before the call fails as unavailable (the API passes ``PHT_STORE_TIMEOUT``)."""
        url = database_url(where)
        self.url = url
        self.where = display_url(url)
        engine = sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=10.0,
            pool_recycle=1800,
            connect_args={
                "connect_timeout": max(1, int(connect_timeout)),
                "application_name": "pht-assistant",
                **({"options": f"-c statement_timeout={int(statement_timeout * 1000)}"} if statement_timeout else {}),
            },
        )
        self.engine = engine
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")  # one round trip per read
        self._compiled: dict[int, str] = {}
        self._open()
        # Audit rows wait up to a quarter second to be committed together: a PostgreSQL transaction
        # is three round trips, so a busy worker commits a few batches a second, not fifty.
        self._audit = AuditWriter(self._write_audit, linger_seconds=0.25)

    def _hot_row(self, stmt: Any, params: dict[str, Any]) -> Any:
        """The per-request reads (the key, the clinic) straight on a pooled psycopg connection, in
        autocommit, their SQL compiled once: one round trip and about a fifth of the client's CPU
        time of the same read through SQLAlchemy. A connection found dead (the server restarted) is
        dropped and the read tried once more on a new one."""
        import psycopg

        sql = self._compiled.get(id(stmt))
        if sql is None:
            sql = self._compiled[id(stmt)] = str(stmt.compile(dialect=self.engine.dialect))
        for attempt in (1, 2):
            try:
                conn = self.engine.raw_connection()
            except (psycopg.Error, sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:  # the pool does not wrap
                raise self._unavailable(exc) from None
            raw = conn.driver_connection
            try:
                raw.autocommit = True
                with raw.cursor() as cur:
                    cur.execute(sql, params, prepare=True)
                    row = cur.fetchone()
                    names = tuple(d.name for d in cur.description or ())
                raw.autocommit = False
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                conn.invalidate()
                conn.close()
                if attempt == 1:  # the server may have restarted: every pooled connection is stale
                    self.engine.dispose()
                    continue
                raise self._unavailable(exc) from None
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
            conn.close()
            return None if row is None else _row_type(names)(*row)
        raise AssertionError("unreachable")


@contextlib.contextmanager
def opened(where: str | Path) -> Iterator[ClinicRegistry]:
    """A registry closed at the end of the block."""
    registry = ClinicRegistry(where)
    try:
        yield registry
    finally:
        registry.close()
