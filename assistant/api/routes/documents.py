"""The clinic's own documents: upload, list, read, delete, approve (secret key only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from assistant.api.deps import AssistantDep, SecretKey, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import ApproveRequest, DocumentInfo, DocumentList
from assistant.clinics.work import Work

router = APIRouter(prefix="/v1/documents", tags=["documents"])

_ERRORS = responses(
    401,
    403,
    413,
    422,
    429,
    503,
    504,
    _413="The body is over PHT_API_MAX_BODY_BYTES, or the file holds more text, pages or sections than an "
    "upload may (the message says which limit).",
    _422="The file is not .txt, .md, .html or .pdf, or has no readable text.",
)
_ONE = responses(401, 403, 404, 429, 503, 504, _404="The clinic has no such document.")


@router.post(
    "", response_model=DocumentInfo, status_code=201, responses=_ERRORS, summary="Upload a draft document"
)
async def upload(
    who: SecretKey,
    assistant: AssistantDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A .txt, .md, .html or .pdf file.")],
    title: Annotated[
        str | None, Form(description="Shown beside citations; defaults to the file name.")
    ] = None,
) -> DocumentInfo:
    """Parsed into sections like the corpus and kept as a draft: it is not answered from until approved."""
    data = await file.read()
    work = Work()  # a time-out stops the extraction, and nothing is stored
    doc = await bounded(
        settings,
        lambda: assistant.library.upload(who.clinic.id, file.filename or "", data, title, work=work),
        work=work,
    )
    return DocumentInfo(**doc.public())


@router.get("", response_model=DocumentList, responses=responses(401, 403, 429, 503, 504))
async def list_documents(who: SecretKey, assistant: AssistantDep, settings: SettingsDep) -> DocumentList:
    """The clinic's documents, drafts and approved, without their text."""
    docs = await bounded(settings, lambda: assistant.library.documents(who.clinic.id))
    return DocumentList(documents=[DocumentInfo(**d.public()) for d in docs])


@router.get("/{doc_id}", response_model=DocumentInfo, responses=_ONE)
async def get_document(
    doc_id: str, who: SecretKey, assistant: AssistantDep, settings: SettingsDep
) -> DocumentInfo:
    doc = await bounded(settings, lambda: assistant.library.document(who.clinic.id, doc_id))
    return DocumentInfo(**doc.public())


@router.delete("/{doc_id}", response_model=DocumentInfo, responses=_ONE)
async def delete_document(
    doc_id: str, who: SecretKey, assistant: AssistantDep, settings: SettingsDep
) -> DocumentInfo:
    """Remove the document; its passages stop being answered from."""
    doc = await bounded(settings, lambda: assistant.library.delete(who.clinic.id, doc_id))
    return DocumentInfo(**doc.public())


@router.post("/{doc_id}/approve", response_model=DocumentInfo, responses={**_ONE, **responses(422)})
async def approve(
    doc_id: str, body: ApproveRequest, who: SecretKey, assistant: AssistantDep, settings: SettingsDep
) -> DocumentInfo:
    """Clinical sign-off of the current version: it is indexed and answered from, and citations
    quoting it name `reviewer`."""
    work = Work()  # a time-out stops the indexing, records no approval and takes back what it added
    doc = await bounded(
        settings, lambda: assistant.library.approve(who.clinic.id, doc_id, body.reviewer, work=work), work=work
    )
    return DocumentInfo(**doc.public())
