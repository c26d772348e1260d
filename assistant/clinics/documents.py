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
from assistant.errors import DocumentRejected

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


def extract_text(filename: str, data: bytes) -> tuple[str, str]:
    """The text of an upload and its kind (``text``, ``markdown``, ``html`` or ``pdf``)."""
    suffix = PurePath(filename or "").suffix.lower()
    kind = MEDIA_TYPES.get(suffix)
    if kind is None:
        raise DocumentRejected(
            f"{filename or 'The file'} is a {suffix or 'suffix-less'} file; upload a .txt, .md, .html or .pdf file."
        )
    if kind == "pdf":
        try:
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(data))
            pages = [(page.extract_text() or "").strip() for page in reader.pages]
        except Exception as exc:  # pypdf raises many kinds for a damaged file
            raise DocumentRejected(
                f"{filename} could not be read as a PDF ({type(exc).__name__}); export it again and upload it."
            ) from None
        text = _tidy("\n\n".join(p for p in pages if p))
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
            parser.feed(raw)
            parser.close()
            text = _tidy(html.unescape("".join(parser.parts)))
        else:
            text = raw.replace("\r\n", "\n")
    if not text.strip():
        raise DocumentRejected(f"{filename} has no text to index; upload a document with text in it.")
    return text, kind


def parse_upload(clinic_id: str, filename: str, data: bytes, title: str | None = None) -> ClinicDocument:
    """A draft :class:`ClinicDocument` from an uploaded file (not stored, not indexed)."""
    text, kind = extract_text(filename, data)
    sections = parse_markdown(text) if kind in {"markdown", "html"} else parse_text(text)
    if not sections:
        raise DocumentRejected(f"{filename} has no text to index; upload a document with text in it.")
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


def collection_name(clinic_id: str) -> str:
    return f"clinic-{clinic_id}"


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
        self.registry = registry or open_registry(settings)
        self.store = store or Store.from_settings(settings)
        self._lock = threading.Lock()
        # clinic id -> (revision, retriever or None, {document id: approver})
        self._retrievers: dict[str, tuple[int, Any, dict[str, str | None]]] = {}
        self._checked = 0.0
        # clinic id -> (base context, clinic, the retriever entry it was made with, the clinic's context)
        self._views: dict[str, tuple[Any, Clinic, tuple[int, Any, dict[str, str | None]], Any]] = {}

    # -- documents -----------------------------------------------------------------------------

    def upload(self, clinic_id: str, filename: str, data: bytes, title: str | None = None) -> ClinicDocument:
        """Parse and keep a draft; nothing is answered from it until it is approved."""
        return self.registry.add_document(parse_upload(clinic_id, filename, data, title))

    def documents(self, clinic_id: str) -> list[ClinicDocument]:
        return self.registry.documents(clinic_id)

    def document(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        return self.registry.document(clinic_id, doc_id)

    def approve(self, clinic_id: str, doc_id: str, reviewer: str) -> ClinicDocument:
        """Sign the document off and embed its passages into the clinic's collection."""
        from assistant.contracts import embed_for_index
        from assistant.index.embedded import index_records
        from assistant.index.store import guarded

        doc = self.registry.document(clinic_id, doc_id)
        records = index_records(document_chunks(doc))
        col = self.store.collection(collection_name(clinic_id))
        with guarded():
            present = set(col.get(ids=list(records), include=[])["ids"])
        fresh = [r for r in records.values() if r.id not in present]
        for i in range(0, len(fresh), 256):
            batch = fresh[i : i + 256]
            vectors = embed_for_index(self.embeddings, [r.embed for r in batch])  # outside the store's guard
            with guarded():
                col.add(
                    ids=[r.id for r in batch],
                    embeddings=vectors,
                    documents=[r.text for r in batch],
                    metadatas=[r.meta for r in batch],
                )
        approved = self.registry.approve(clinic_id, doc_id, reviewer.strip())
        self._forget(clinic_id)
        return approved

    def delete(self, clinic_id: str, doc_id: str) -> ClinicDocument:
        from assistant.index.store import guarded

        doc = self.registry.document(clinic_id, doc_id)
        if doc.status == "approved":
            col = self.store.collection(collection_name(clinic_id))
            with guarded():
                col.delete(where={"doc_id": doc_id})
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
                self.store.collection(collection_name(clinic.id)), order=[d.id for d in approved]
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
