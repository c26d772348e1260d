"""Clinics, their API keys, their documents, their audit trail and their patients' feedback: the registry.

One interface, :class:`ClinicRegistry`, two implementations (:mod:`assistant.clinics.sql`): an
embedded SQLite file (the default; a single machine needs nothing else) and PostgreSQL (several
workers on several machines share one; ``PHT_DATABASE_URL=postgresql+psycopg://...``). The same
contract tests run against both. ``ClinicRegistry(path)`` opens the SQLite file at ``path``,
``ClinicRegistry("postgresql+psycopg://...")`` a PostgreSQL database; :func:`open_registry` picks
from the settings.

Keys are shown once when created and stored only as a SHA-256 hash (they are 32 random bytes,
so a plain hash is enough). A key looks like ``pht_sk_<id>_<secret>`` (secret: for a clinic's
servers) or ``pht_pk_<id>_<secret>`` (publishable: may only ask, from the clinic's origins).

What every worker sees, and how soon (docs/deploy.md): each request reads its key (and the key's
clinic) from the database, so a revoked key or a changed clinic setting is refused or applied on
the next request anywhere; approved or deleted documents are noticed within
``clinic_refresh_seconds`` (each worker compares the clinics' revisions that often).

>>> import tempfile, pathlib
>>> reg = ClinicRegistry(pathlib.Path(tempfile.mkdtemp()) / "clinics.sqlite3")
>>> clinic = reg.add_clinic("North Physio", emergency_text="999")
>>> key = reg.create_key("North Physio")
>>> reg.authenticate(key).clinic.id, reg.authenticate(key).kind
('north-physio', 'secret')
"""

from __future__ import annotations

import abc
import atexit
import datetime as dt
import hashlib
import logging
import re
import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from assistant.errors import ClinicError

log = logging.getLogger("assistant.clinics.registry")

KEY_PATTERN = re.compile(r"^pht_(sk|pk)_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LOGO_URL = re.compile(r"^https?://[^\s\"'<>()\\]+$")
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_ENDPOINT = re.compile(r"^https?://[^\s\"'<>]+$")


def clinic_slug(name: str) -> str:
    """The clinic's id: its name in lowercase letters, digits and dashes, at most 48 characters,
    never ending in a dash (Chroma's collection names must end in a letter or digit).

    >>> clinic_slug("St. Mary's Physio & Sport")
    'st-mary-s-physio-sport'
    >>> clinic_slug("A" * 47 + " Physio")
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:48].strip("-")
    if not slug:
        raise ClinicError("A clinic name needs at least one letter or digit.")
    return slug


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
    # sent to that endpoint, so stored as given (not a hash); never shown, logged, listed or returned
    llm_api_key: SecretStr = field(default=SecretStr(""), repr=False)


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
    # passages held back until the reviewer confirms them (assistant/safety/passages.py), each a
    # PassageFlag as a dict with ``confirmed``
    flags: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def held_back(self) -> set[str]:
        """The passages not indexed: flagged and not confirmed."""
        return {f["passage"] for f in self.flags if not f.get("confirmed")}

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
            "flags": self.flags,
            "held_back": len(self.held_back),
        }


class ClinicRegistry(abc.ABC):
    """The registry's interface. Thread-safe; every method may raise
    :class:`~assistant.errors.RegistryUnavailable` when the database does not answer.

    ``ClinicRegistry(where)`` opens the implementation ``where`` names: a path or ``sqlite:///``
    URL (:class:`~assistant.clinics.sql.SQLiteRegistry`) or a ``postgresql+psycopg://`` URL
    (:class:`~assistant.clinics.sql.PostgresRegistry`).
    """

    kind: str = ""  # "sqlite" or "postgresql"
    where: str = ""  # the file or the URL without its password, for messages

    def __new__(cls, *args: Any, **kwargs: Any) -> "ClinicRegistry":
        if cls is ClinicRegistry:
            from assistant.clinics.sql import PostgresRegistry, SQLiteRegistry

            where = args[0] if args else kwargs.get("where")
            cls = PostgresRegistry if str(where).startswith("postgresql") else SQLiteRegistry
        return super().__new__(cls)

    # -- clinics -------------------------------------------------------------------------------

    @abc.abstractmethod
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
        """A new clinic (its origins, colour, logo and language-model endpoint checked:
        :class:`ClinicError` says what is wrong)."""

    @abc.abstractmethod
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
        colour or logo URL removes it; an empty ``llm_base_url`` removes the endpoint with its model
        and key). Every worker on every machine applies it on its next request.

        >>> import tempfile, pathlib
        >>> reg = ClinicRegistry(pathlib.Path(tempfile.mkdtemp()) / "clinics.sqlite3")
        >>> _ = reg.add_clinic("North Physio")
        >>> reg.update_clinic("north-physio", accent_color="#0B7285").accent_color
        '#0b7285'
        """

    @abc.abstractmethod
    def clinics(self) -> list[Clinic]: ...

    @abc.abstractmethod
    def clinic(self, name_or_id: str) -> Clinic:
        """The clinic, or :class:`~assistant.errors.UnknownClinic`."""

    @abc.abstractmethod
    def revisions(self) -> dict[str, int]:
        """Each clinic's document revision: it goes up whenever an approved document changes."""

    # -- keys ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_key(self, clinic: str, *, publishable: bool = False) -> str:
        """A new key for ``clinic``; returned once, only its hash is kept."""

    @abc.abstractmethod
    def revoke_key(self, key_or_id: str, *, clinic: str | None = None) -> str:
        """Revoke a key by its id (the 12 hex digits after ``pht_sk_``) or by the key itself
        (with ``clinic``, only that clinic's keys); returns its id."""

    @abc.abstractmethod
    def keys(self, clinic: str | None = None) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's clinic and kind, or ``None`` for a malformed, unknown or revoked key."""

    # -- documents -----------------------------------------------------------------------------

    @abc.abstractmethod
    def add_document(self, doc: ClinicDocument) -> ClinicDocument: ...

    @abc.abstractmethod
    def documents(self, clinic_id: str, *, status: str | None = None) -> list[ClinicDocument]: ...

    @abc.abstractmethod
    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        """The document, or :class:`~assistant.errors.DocumentNotFound`."""

    @abc.abstractmethod
    def approve(self, clinic_id: str, doc_id: str, reviewer: str) -> ClinicDocument: ...

    @abc.abstractmethod
    def delete_document(self, clinic_id: str, doc_id: str) -> ClinicDocument: ...

    # -- approvals (one job per approval; assistant/clinics/approvals.py) -------------------------

    @abc.abstractmethod
    def start_approval(
        self, clinic_id: str, doc_id: str, *, reviewer: str, version: str, confirm: list[str], stale_after: float
    ) -> tuple[dict[str, Any], str]:
        """Begin an approval, or find the one it repeats, in one transaction: ``(job, outcome)``.

        ``outcome`` is ``"new"`` (a job was made, ``queued``), ``"same"`` (the same approval, same
        version, reviewer and confirmed passages, is queued or running: that job) or ``"done"`` (the
        document is already approved so, by the job returned). Another approval of the same document
        still running raises :class:`~assistant.errors.ApprovalInProgress`: one at a time per
        document, held by a unique index on running jobs. A job not heard of for ``stale_after``
        seconds (lost with its worker) is marked failed first."""

    @abc.abstractmethod
    def approval_job(self, clinic_id: str, job_id: str, *, stale_after: float | None = None) -> dict[str, Any]:
        """One of the clinic's approval jobs (:class:`~assistant.errors.ApprovalNotFound` for any
        other); with ``stale_after``, a job gone quiet that long is recorded and reported interrupted."""

    @abc.abstractmethod
    def update_job(self, job_id: str, *, status: str | None = None, done: int | None = None, total: int | None = None) -> None:
        """Progress of a queued or running job, and its heartbeat."""

    @abc.abstractmethod
    def heartbeat_jobs(self, job_ids: list[str]) -> None:
        """This worker's jobs are alive (every few seconds while any runs)."""

    @abc.abstractmethod
    def fail_job(self, job_id: str, error: str, message: str) -> bool:
        """Mark a queued or running job failed; ``False`` if it had already ended."""

    @abc.abstractmethod
    def finish_approval(self, job_id: str, flags: list[dict[str, Any]]) -> ClinicDocument:
        """Record the approval a running job did, in one transaction with the job's end: the
        document approved by the job's reviewer, at its version, with its flagged passages.
        :class:`~assistant.errors.Cancelled` when the job is no longer running (it timed out, or
        was found interrupted): then nothing is recorded."""

    # -- audit ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def record_answer(self, clinic_id: str, answer: Any, *, composer: str, model: str, prompt_version: str = "") -> None:
        """One audit row for an answer, never the question text; committed in the background.
        ``prompt_version``: the version of the prompt a language model wrote the reply with (empty
        for quoted replies)."""

    @abc.abstractmethod
    def audit(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """The clinic's audit rows, newest first (this process's pending rows are committed first)."""

    @abc.abstractmethod
    def flush_audit(self, timeout: float = 30.0) -> bool:
        """Wait until every audit row recorded so far in this process is committed."""

    @abc.abstractmethod
    def answered(self, clinic_id: str, answer_id: str) -> dict[str, Any] | None:
        """The audit record (``status``, ``sources``) of an answer this clinic was given, or
        ``None`` (never another clinic's)."""

    # -- feedback ------------------------------------------------------------------------------

    @abc.abstractmethod
    def record_feedback(
        self, clinic_id: str, answer_id: str, rating: str, *, comment: str = "", question: str | None = None
    ) -> dict[str, Any]:
        """A patient's rating (``up`` or ``down``) of one answer the clinic was given, with an
        optional comment; a second rating of the same answer replaces the first (a new comment
        replaces the old one). ``question`` is kept only when the clinic has ``feedback_questions``
        on, dropped otherwise. :class:`~assistant.errors.UnknownAnswer` for an answer not in the
        clinic's audit trail (another clinic's, or none at all)."""

    @abc.abstractmethod
    def feedback(self, clinic_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """The clinic's feedback, newest first (``before``: only rows with a smaller id)."""

    # -- the database ----------------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the database answers now; :class:`~assistant.errors.RegistryUnavailable` if not."""

    @abc.abstractmethod
    def close(self) -> None:
        """Commit the pending audit rows, stop the writer and let the connections go."""


_REQUEST_CLINIC: ContextVar[Clinic | None] = ContextVar("pht_request_clinic", default=None)


def read_with_key(clinic: Clinic) -> None:
    """Remember the clinic the request's key was read with (one database read, on every request):
    the same request's later :meth:`ClinicRegistry.clinic` of it (its view, its audit) is answered
    from it instead of a second read. Each request runs in a context of its own, so it never
    outlives the request: a changed setting is still applied on the next request."""
    _REQUEST_CLINIC.set(clinic)


def request_clinic(name_or_id: str) -> Clinic | None:
    """The clinic :func:`read_with_key` remembered for this request, if it is ``name_or_id``."""
    seen = _REQUEST_CLINIC.get()
    return seen if seen is not None and seen.id == name_or_id else None


def open_registry(settings: Any) -> ClinicRegistry:
    """The registry the settings name: ``database_url`` if set, else the SQLite file ``clinics_path``.
    Every statement waits at most ``store_timeout`` seconds (for a connection, a lock, an answer)."""
    timeout = getattr(settings, "store_timeout", 5.0)
    if settings.database_url.startswith("postgresql"):
        from assistant.clinics.sql import PostgresRegistry

        return PostgresRegistry(
            settings.database_url, pool_size=settings.database_pool_size, connect_timeout=timeout, statement_timeout=timeout
        )
    return ClinicRegistry(settings.database_url or settings.clinics_path, timeout=timeout)


def origins(values: list[str] | tuple[str, ...]) -> list[str]:
    """Allowed origins as a browser sends them: scheme and host (and port), no path.

    >>> origins(["https://north.example/ "])
    ['https://north.example']
    """
    out = []
    for origin in values:
        o = origin.strip().rstrip("/")
        if not _ORIGIN.match(o):
            raise ClinicError(
                f"{origin!r} is not a site's origin; give its scheme and host only, like https://www.north-physio.example."
            )
        out.append(o)
    return out


def theme(accent_color: str, logo_url: str) -> tuple[str, str]:
    """A clinic's accent colour (``#rgb`` or ``#rrggbb``, kept lowercase) and logo URL, checked."""
    accent, logo = accent_color.strip().lower(), logo_url.strip()
    if accent and not _COLOUR.match(accent):
        raise ClinicError(f"The accent colour {accent_color!r} is not a hex colour; give one like #0b7285.")
    if logo and not _LOGO_URL.match(logo):
        raise ClinicError(
            f"The logo URL {logo_url!r} is not an http(s) address; give one like https://clinic.example/logo.png."
        )
    return accent, logo


def llm_endpoint(base_url: str, model: str, api_key: str) -> tuple[str, str, str]:
    """A clinic's language-model endpoint, checked: an http(s) base URL (or none), its model and key.

    >>> llm_endpoint(" http://10.0.0.5:8000/v1 ", "llama", "")
    ('http://10.0.0.5:8000/v1', 'llama', '')
    >>> llm_endpoint("", "llama", "")
    Traceback (most recent call last):
    ...
    assistant.errors.ClinicError: A language model needs its endpoint too: give --llm-base-url with --llm-model or --llm-api-key.
    """
    url, model, key = base_url.strip(), model.strip(), api_key.strip()
    if url and not _ENDPOINT.match(url):
        raise ClinicError(
            f"The language-model address {url!r} is not an http(s) URL; give its OpenAI-compatible base, like http://10.0.0.5:8000/v1."
        )
    if not url and (model or key):
        raise ClinicError("A language model needs its endpoint too: give --llm-base-url with --llm-model or --llm-api-key.")
    return url, model, key


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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
            except Exception as exc:
                log.warning(
                    "%d audit record(s) not written yet (%s: %s); retrying in %.0f s",
                    len(batch), type(exc).__name__, exc, self._retry,
                )
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
