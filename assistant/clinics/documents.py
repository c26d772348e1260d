"""Each clinic's own documents: upload, sign-off, indexing, and the clinic's context for answers.

An upload (.txt, .md, .html, .pdf) is turned into text once; that extracted text is what is stored,
parsed into sections exactly like the corpus (HTML headings become Markdown headings, a PDF's
pages are separated by blank lines), and every citation's offsets point into it. The document's
version is the hash of its extracted text. An upload is a draft: it is embedded into the clinic's
own collection only when someone with the clinic's secret key approves it, and it leaves the
collection when deleted. Answers for a clinic search the shared corpus and that clinic's collection,
with a lexical (BM25) index built for the clinic alone.

>>> text, kind = extract_text("notes.html", b"<h1>Pool</h1><p>Tuesdays at nine.</p>")
>>> kind, text.split()
('html', ['#', 'Pool', 'Tuesdays', 'at', 'nine.'])
"""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from assistant.clinics.registry import Clinic, ClinicDocument, ClinicRegistry, open_registry
from assistant.corpus.parse import (
    Document,
    DocumentEntry,
    Section,
    content_version,
    parse_markdown,
    parse_text,
)
from assistant.clinics.work import Cancelled, Work
from assistant.errors import DocumentRejected, DocumentTooLarge

log = logging.getLogger("assistant.clinics.documents")

MEDIA_TYPES = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}

_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "blockquote",
    "pre",
    "br",
    "dd",
    "dt",
}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "svg"}
_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.M)


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = re.sub(r"^(#{1,6}) *\n+", r"\1 ", text, flags=re.M)  # a heading tag with a line break in it
    return text.strip() + "\n"


@dataclass(frozen=True)
class UploadLimits:
    """What extracting one upload may produce; past any of them it stops, and the upload gets 413."""

    max_chars: int = 1_000_000
    max_pages: int = 500
    max_sections: int = 1000

    @classmethod
    def from_settings(cls, settings: Any) -> "UploadLimits":
        return cls(settings.upload_max_chars, settings.upload_max_pages, settings.upload_max_sections)

    @property
    def max_stream_bytes(self) -> int:
        """The most a PDF stream may inflate to: a page's drawing instructions run to several bytes
        per character, so generously more than the characters allowed, and never the 75 MB a
        149 KB file can otherwise unpack into."""
        return max(8_000_000, 16 * self.max_chars)


class _TooMuchText(Exception):
    pass


def _too_long(filename: str, limits: UploadLimits) -> DocumentTooLarge:
    return DocumentTooLarge(
        f"{filename} holds more than {limits.max_chars:,} characters of text, the most one upload may have; "
        "split it into smaller documents and upload each."
    )


def _pdf_text(filename: str, data: bytes, limits: UploadLimits, work: Work) -> str:
    """A PDF's text, page by page, stopped as soon as it passes the limits."""
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError

    total = 0
    calls = 0

    def count(text: Any, *_: Any) -> None:
        nonlocal total, calls
        total += len(text or "")
        calls += 1
        if total > limits.max_chars:
            raise _TooMuchText()
        if calls % 2000 == 0:
            work.check()

    pages: list[str] = []
    try:
        with apply_configuration(
            zlib_maximum_output_length=limits.max_stream_bytes,
            stream_decoding_work_maximum_length=4 * limits.max_stream_bytes,
        ):
            reader = PdfReader(io.BytesIO(data))
            n = len(reader.pages)
            if n > limits.max_pages:
                raise DocumentTooLarge(
                    f"{filename} has {n:,} pages, more than the {limits.max_pages:,} one upload may have; "
                    "split it into smaller documents and upload each."
                )
            for page in reader.pages:
                work.check()
                pages.append((page.extract_text(visitor_text=count) or "").strip())
    except (DocumentTooLarge, Cancelled):
        raise
    except _TooMuchText:
        raise _too_long(filename, limits) from None
    except LimitReachedError:
        raise DocumentTooLarge(
            f"A page of {filename} unpacks to more than {limits.max_stream_bytes:,} bytes, more than a page of "
            f"text may take (an upload may hold {limits.max_chars:,} characters); export it again as plain "
            "text or a simpler PDF, or split it."
        ) from None
    except Exception as exc:  # pypdf raises many kinds for a damaged file
        raise DocumentRejected(
            f"{filename} could not be read as a PDF ({type(exc).__name__}); export it again and upload it."
        ) from None
    return "\n\n".join(p for p in pages if p)


def extract_text(
    filename: str, data: bytes, *, limits: UploadLimits | None = None, work: Work | None = None
) -> tuple[str, str]:
    """The text of an upload and its kind (``text``, ``markdown``, ``html`` or ``pdf``).

    Extraction stops as soon as the text passes ``limits`` (:class:`DocumentTooLarge`, 413) or
    ``work`` is abandoned (:class:`~assistant.clinics.work.Cancelled`).
    """
    limits = limits or UploadLimits()
    work = work or Work()
    suffix = PurePath(filename or "").suffix.lower()
    kind = MEDIA_TYPES.get(suffix)
    if kind is None:
        raise DocumentRejected(
            f"{filename or 'The file'} is a {suffix or 'suffix-less'} file; upload a .txt, .md, .html or .pdf file."
        )
    if kind == "pdf":
        text = _tidy(_pdf_text(filename, data, limits, work))
    else:
        try:
            raw = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DocumentRejected(
                f"{filename} is not UTF-8 text; save it as UTF-8 and upload it again."
            ) from None
        if "\x00" in raw:
            raise DocumentRejected(f"{filename} contains binary data; upload a text, HTML or PDF file.")
        if kind == "html":
            parser = _HTMLText()
            size = 0
            for i in range(0, len(raw), 65_536):  # fed in pieces: the text so far is measured as it grows
                work.check()
                before = len(parser.parts)
                parser.feed(raw[i : i + 65_536])
                size += sum(len(p) for p in parser.parts[before:])
                if size > limits.max_chars:
                    raise _too_long(filename, limits)
            parser.close()
            text = _tidy(html.unescape("".join(parser.parts)))
        else:
            if len(raw) > limits.max_chars:
                raise _too_long(filename, limits)
            text = raw.replace("\r\n", "\n")
    if len(text) > limits.max_chars:
        raise _too_long(filename, limits)
    if not text.strip():
        raise DocumentRejected(f"{filename} has no text to index; upload a document with text in it.")
    return text, kind


def parse_upload(
    clinic_id: str,
    filename: str,
    data: bytes,
    title: str | None = None,
    *,
    limits: UploadLimits | None = None,
    work: Work | None = None,
) -> ClinicDocument:
    """A draft :class:`ClinicDocument` from an uploaded file (not stored, not indexed)."""
    limits = limits or UploadLimits()
    text, kind = extract_text(filename, data, limits=limits, work=work)
    if kind in {"markdown", "html"}:
        headings = len(_HEADING.findall(text))
        if headings > limits.max_sections:  # counted before parsing, so a heading flood is not parsed
            raise DocumentTooLarge(
                f"{filename} has {headings:,} headings, more than the {limits.max_sections:,} sections one upload "
                "may have; split it into smaller documents and upload each."
            )
    sections = parse_markdown(text) if kind in {"markdown", "html"} else parse_text(text)
    if not sections:
        raise DocumentRejected(f"{filename} has no text to index; upload a document with text in it.")
    if len(sections) > limits.max_sections:
        raise DocumentTooLarge(
            f"{filename} has {len(sections):,} sections, more than the {limits.max_sections:,} one upload may "
            "have; split it into smaller documents and upload each."
        )
    name = PurePath(filename).name
    return ClinicDocument(
        id="doc-" + uuid.uuid4().hex[:12],
        clinic_id=clinic_id,
        filename=name,
        title=(title or "").strip()[:200]
        or PurePath(name).stem.replace("_", " ").replace("-", " ").strip()
        or name,
        media_type=kind,
        text=text,
        version=content_version(text.encode("utf-8")),
        sections=[{"id": s.id, "title": s.title, "start": s.start, "end": s.end} for s in sections],
        uploaded=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def document_chunks(doc: ClinicDocument) -> list[Any]:
    """The passages of a clinic document, made exactly as the corpus makes them."""
    entry = DocumentEntry(id=doc.id, file=doc.filename, title=doc.title, reviewed_by=doc.approved_by or "")
    sections = [Section(s["id"], s["title"], s["start"], s["end"]) for s in doc.sections]
    return Document(
        entry=entry, path=PurePath(doc.filename), text=doc.text, version=doc.version, sections=sections
    ).chunks()  # type: ignore[arg-type]


ADD_BATCH = 2048  # records per add to the store (SQLite takes 32,766 values per statement)


def collection_name(clinic_id: str) -> str:
    """The clinic's Chroma collection. Chroma wants a name that ends in a letter or digit; ids made
    before they were trimmed may end in ``-``, and get a ``0`` (ids are at most 48 characters, so
    ``<id>-0`` is never another clinic's id).

    >>> collection_name("north-physio"), collection_name("a-very-long-name-cut-at-a-space-")
    ('clinic-north-physio', 'clinic-a-very-long-name-cut-at-a-space-0')
    """
    name = f"clinic-{clinic_id}"
    return name if name[-1].isalnum() else name + "0"


class ClinicLibrary:
    """Clinic documents and contexts: owned by :class:`~assistant.pipeline.assistant.Assistant` (``assistant.library``)."""

    def __init__(
        self,
        settings: Any,
        embeddings: Any,
        *,
        index: Any = None,
        registry: ClinicRegistry | None = None,
        store: Any = None,
    ):
        from assistant.index.store import Store

        self.settings = settings
        self.index = index  # the shared corpus index, checked by readiness()
        self.embeddings = embeddings
        self.registry = registry or open_registry(settings)  # every statement within PHT_STORE_TIMEOUT
        self.store = store or Store.from_settings(settings)
        self._lock = threading.Lock()
        # clinic id -> (revision, retriever or None, {document id: approver})
        self._retrievers: dict[str, tuple[int, Any, dict[str, str | None]]] = {}
        self._checked = 0.0
        # clinic id -> (base context, clinic, the retriever entry it was made with, the clinic's context)
        self._views: dict[str, tuple[Any, Clinic, tuple[int, Any, dict[str, str | None]], Any]] = {}
        self._approvals: Any = None

    # -- documents -----------------------------------------------------------------------------

    def upload(
        self, clinic_id: str, filename: str, data: bytes, title: str | None = None, *, work: Work | None = None
    ) -> ClinicDocument:
        """Parse and keep a draft; nothing is answered from it until it is approved. Extraction
        stops at the upload limits (``PHT_UPLOAD_MAX_*``: 413) or when ``work`` is abandoned, and
        then nothing is stored."""
        work = work or Work()
        doc = parse_upload(
            clinic_id, filename, data, title, limits=UploadLimits.from_settings(self.settings), work=work
        )
        doc.flags = self.flags_for(doc)  # shown with the draft; held back at approval unless confirmed
        with work.commit():
            return self.registry.add_document(doc)

    def documents(self, clinic_id: str) -> list[ClinicDocument]:
        return self.registry.documents(clinic_id)

    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        return self.registry.document(clinic_id, doc_id)

    # -- approval (a job: assistant/clinics/approvals.py) ----------------------------------------

    @property
    def approvals(self) -> Any:
        """This worker's approval jobs."""
        with self._lock:
            if self._approvals is None:
                from assistant.clinics.approvals import Approvals

                self._approvals = Approvals(self, timeout=self.settings.approval_timeout)
            return self._approvals

    def approve(
        self, clinic_id: str, doc_id: str, reviewer: str, *, confirm: list[str] | None = None
    ) -> ClinicDocument:
        """Sign the document off and embed its passages into the clinic's collection, waiting for
        the job (the API waits a few seconds, then answers 202 with the job to poll).

        Flagged passages (:func:`flags_for`) are left out of the index unless their ids are in
        ``confirm``: the reviewer's explicit confirmation that they may be quoted.
        """
        return self.approvals.approve(clinic_id, doc_id, reviewer, confirm)

    def flags_for(self, doc: ClinicDocument, confirm: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The document's flagged passages as the checks find them now, each marked confirmed when
        its passage id is in ``confirm``."""
        from assistant.safety.passages import flag_passages, load_checks

        checks = load_checks(str(self.settings.policy_dir or ""))
        confirmed = set(confirm)
        return [
            {**f.public(), "confirmed": f.passage in confirmed} for f in flag_passages(document_chunks(doc), checks)
        ]

    def close_approvals(self) -> None:
        """Stop this worker's approval jobs (the server is stopping): they record nothing."""
        with self._lock:
            approvals, self._approvals = self._approvals, None
        if approvals is not None:
            approvals.close()

    def check_confirmations(self, doc: ClinicDocument, confirm: list[str]) -> None:
        """Every confirmed id must be a flagged passage of the document (422 otherwise)."""
        flagged = {f["passage"] for f in self.flags_for(doc)}
        unknown = [c for c in confirm if c not in flagged]
        if unknown:
            raise DocumentRejected(
                f"{unknown[0]!r} is not a flagged passage of this document; confirm only passages listed in its "
                "`flags` (GET /v1/documents/{id})."
            )

    def run_approval(self, job: dict[str, Any], work: Work) -> ClinicDocument:
        """The work of one approval job: embed and add the passages (not the held-back ones) a page
        at a time, then record the approval in the job's commit. Stopped (``Cancelled``) or failed
        before the commit, it takes back the records it added and records nothing."""
        from assistant.contracts import embed_for_index
        from assistant.index.records import index_records
        from assistant.index.store import guarded, present_ids

        clinic_id, doc_id = job["clinic_id"], job["document_id"]
        doc = self.registry.document(clinic_id, doc_id)
        flags = self.flags_for(doc, job["confirm"])
        held = {f["passage"] for f in flags if not f["confirmed"]}
        records = index_records([c for c in document_chunks(doc) if c.id not in held])
        col = self.store.collection(collection_name(clinic_id))
        with guarded():
            present = present_ids(col, list(records))
        fresh = [r for r in records.values() if r.id not in present]
        self.registry.update_job(job["id"], total=len(fresh), done=0)
        added: list[str] = []
        pending: list[tuple[Any, Any]] = []  # embedded, not yet added: a store call costs ~0.2 s whatever its size

        def flush() -> None:
            work.check()
            with guarded():
                col.add(
                    ids=[r.id for r, _ in pending],
                    embeddings=[v for _, v in pending],
                    documents=[r.text for r, _ in pending],
                    metadatas=[r.meta for r, _ in pending],
                )
            added.extend(r.id for r, _ in pending)
            pending.clear()

        try:
            for i in range(0, len(fresh), 256):
                work.check()
                batch = fresh[i : i + 256]
                vectors = embed_for_index(self.embeddings, [r.embed for r in batch])  # outside the store's guard
                pending.extend(zip(batch, vectors))
                if len(pending) >= ADD_BATCH:
                    flush()
                self.registry.update_job(job["id"], done=min(len(fresh), i + 256))
            if pending:
                flush()
            with work.commit():
                approved = self.registry.finish_approval(job["id"], flags)
                self._forget(clinic_id)  # answered from in this worker as soon as the job says succeeded
        except BaseException:
            self._remove(col, added)
            raise
        self._remove_stale(col, doc_id, set(records))
        return approved

    def _remove(self, col: Any, ids: list[str]) -> None:
        """Take back records an approval added and did not record."""
        from assistant.index.store import PAGE, guarded

        try:
            with guarded():
                for i in range(0, len(ids), PAGE):
                    col.delete(ids=ids[i : i + PAGE])
        except Exception:  # the store went away: the records stay, never searched (not approved)
            log.warning("could not remove %d records of an approval that did not finish", len(ids), exc_info=True)

    def _remove_stale(self, col: Any, doc_id: str, keep: set[str]) -> None:
        """After an approval: the document's records it no longer quotes (passages held back now)."""
        from assistant.index.store import PAGE, get_all, guarded

        try:
            with guarded():
                stale = [i for i in get_all(col, {"doc_id": doc_id}, [])["ids"] if i not in keep]
                for i in range(0, len(stale), PAGE):
                    col.delete(ids=stale[i : i + PAGE])
        except Exception:  # they stay, and are never searched: the registry says they are held back
            log.warning("could not remove the held-back records of %s", doc_id, exc_info=True)

    def delete(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        from assistant.index.store import delete_where, guarded

        doc = self.registry.document(clinic_id, doc_id)
        if doc.status == "approved":
            col = self.store.collection(collection_name(clinic_id))
            with guarded():
                delete_where(col, {"doc_id": doc_id})
        removed = self.registry.delete_document(clinic_id, doc_id)
        self._forget(clinic_id)
        return removed

    def sources(self, clinic_id: str) -> list[dict[str, Any]]:
        """The clinic's approved documents, as :meth:`Assistant.sources` lists the corpus."""
        return [
            {
                "id": d.id,
                "title": d.title,
                "version": d.approved_version,
                "file": d.filename,
                "origin": "clinic",
                "added": d.uploaded[:10],
                "reviewed_by": d.approved_by,
                "sections": [{"id": s["id"], "title": s["title"]} for s in d.sections],
            }
            for d in self.registry.documents(clinic_id, status="approved")
        ]

    def readiness(self) -> tuple[bool, str]:
        """``(ready, sentence)``: whether the search index, the store and the clinics database answer now."""
        from assistant.errors import AssistantError
        from assistant.index.store import guarded

        try:
            self.registry.ping()
        except AssistantError:
            return False, (
                "The clinics database cannot be reached; keyed requests fail with 503 until it returns "
                "(each worker reconnects by itself)."
            )
        if not self.store.heartbeat():
            return False, "The document store cannot be reached; answers fail with 503 until it returns."
        try:
            with guarded("the search index"):
                if self.index is not None:
                    self.index.count()
        except AssistantError as exc:
            return False, exc.message
        return True, ""

    # -- the clinic's view of the assistant ------------------------------------------------------

    def use_index(self, index: Any) -> None:
        """A newly published corpus index is in use: readiness checks it, and every clinic's view
        is made again over it on its next request."""
        with self._lock:
            self.index = index
            self._views.clear()

    def _forget(self, clinic_id: str) -> None:
        with self._lock:
            self._retrievers.pop(clinic_id, None)
            self._views.pop(clinic_id, None)

    def _refresh(self) -> None:
        """At most every ``clinic_refresh_seconds``: drop retrievers whose clinic has changed."""
        now = time.monotonic()
        if now - self._checked < self.settings.clinic_refresh_seconds:
            return
        revisions = self.registry.revisions()
        with self._lock:
            self._checked = now
            for cid, (rev, *_) in list(self._retrievers.items()):
                if revisions.get(cid) != rev:
                    del self._retrievers[cid]

    def retriever_for(self, clinic: Clinic) -> tuple[Any, dict[str, str | None]]:
        """A retriever over the clinic's approved passages (``None`` when it has none), and who
        approved each of its documents."""
        _, retriever, approvers = self._entry(clinic)
        return retriever, approvers

    def _entry(self, clinic: Clinic) -> tuple[int, Any, dict[str, str | None]]:
        """The clinic's cached ``(revision, retriever, approvers)``; a new tuple whenever it changes."""
        from assistant.retrieval.hybrid import HybridRetriever, RelevanceModel
        from assistant.index.store import CollectionIndex

        self._refresh()
        with self._lock:
            cached = self._retrievers.get(clinic.id)
        if cached is not None:
            return cached
        revision = self.registry.revisions().get(clinic.id, 0)
        approved = self.registry.documents(clinic.id, status="approved")
        retriever = None
        if approved:
            index = CollectionIndex(
                self.store.collection(collection_name(clinic.id)),
                order=[d.id for d in approved],
                held_back=set().union(*(d.held_back for d in approved)),
            )
            if len(index):
                s = self.settings
                retriever = HybridRetriever(
                    index,  # type: ignore[arg-type]
                    candidates=s.candidates,
                    rrf_k=s.rrf_k,
                    detail=s.top_k + 2,
                    relevance=RelevanceModel(*s.relevance_weights),
                )
                retriever.warm_up()
        approvers = {d.id: d.approved_by for d in approved}
        entry = (revision, retriever, approvers)
        with self._lock:
            self._retrievers[clinic.id] = entry
        return entry

    def context_for(self, clinic_id: str, base: Any) -> Any:
        """The per-request context for one clinic, made from the assistant's own ``base`` context
        (:class:`assistant.pipeline.context.Context`): the shared corpus plus the clinic's approved
        documents, its emergency wording, who approved each document, and an audit row per answer.

        It is made once and used again while the clinic's record is unchanged and its retriever
        entry is the same one: approving or deleting a document in this process drops both at once
        (:meth:`_forget`), a change made by another worker drops the entry within
        ``clinic_refresh_seconds`` (:meth:`_refresh`), and a changed clinic record (its emergency
        wording, say) makes a new context on the next request.
        """
        clinic = self.registry.clinic(clinic_id)  # every request: an unknown clinic is refused now
        entry = self._entry(clinic)
        with self._lock:
            cached = self._views.get(clinic.id)
        if cached is not None and cached[0] is base and cached[1] == clinic and cached[2] is entry:
            return cached[3]
        context = self._make_context(base, clinic, entry)
        with self._lock:
            if self._retrievers.get(clinic.id) is entry:  # not forgotten meanwhile
                self._views[clinic.id] = (base, clinic, entry, context)
        return context

    def _composer_for(self, clinic: Clinic) -> Any:
        """The clinic's own language model when its record names an endpoint (timeouts and token limits
        from the settings), else ``None``: the assistant's composer writes for it."""
        if not clinic.llm_base_url:
            return None
        from assistant.compose.llm import Endpoint, LLMComposer

        s = self.settings
        endpoint = Endpoint(
            base_url=clinic.llm_base_url,
            model=clinic.llm_model or "default",
            api_key=clinic.llm_api_key,
            timeout=s.llm_timeout,
            max_tokens=s.llm_max_tokens,
            temperature=s.llm_temperature,
        )
        return LLMComposer(endpoint, max_passages=s.top_k)

    def _make_context(self, base: Any, clinic: Clinic, entry: tuple[int, Any, dict[str, str | None]]) -> Any:
        from assistant.contracts import model_id_of
        from assistant.corpus.topics import topics_of
        from assistant.retrieval.tenant import TenantRetriever

        _, own, approvers = entry
        model = model_id_of(self.embeddings)  # worked out once per context, not per answer
        retriever = base.retriever
        topics = base.topics
        if own is not None:
            documents = {d["id"]: d for d in self.sources(clinic.id)}
            retriever = TenantRetriever(base.retriever, own, documents)
            topics = base.topics + tuple(t for t in topics_of(documents) if t not in base.topics)
        registry, audit = self.registry, self.settings.audit_enabled

        def record(answer: Any) -> None:
            if audit:
                registry.record_answer(
                    clinic.id, answer, composer=answer.composer or "extractive", model=model,
                    prompt_version=answer.prompt_version,
                )  # fmt: skip

        return base.with_changes(
            composer=self._composer_for(clinic) or base.composer,
            retriever=retriever,
            emergency_contact=clinic.emergency_text or base.emergency_contact,
            clinic_id=clinic.id,
            approvers=dict(approvers),
            topics=topics,
            on_answer=record,
        )
