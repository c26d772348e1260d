"""The clinic's own documents: upload, list, read, delete, approve (secret key only)."""

from __future__ import annotations

from typing import Annotated

import asyncio

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from assistant.api.deps import AssistantDep, SecretKey, SettingsDep, _consume, bounded
from assistant.api.errors import responses
from assistant.api.models import ApprovalJob, ApproveRequest, DocumentInfo, DocumentList
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


@router.post(
    "/{doc_id}/approve",
    response_model=DocumentInfo,
    status_code=200,
    responses={
        **_ONE,
        **responses(409, 422, _422="A `confirm` id that is not a flagged passage of the document."),
        202: {"model": ApprovalJob, "description": "Still running after PHT_APPROVAL_WAIT_SECONDS: poll the job."},
    },
    summary="Approve a document (a job)",
)
async def approve(
    doc_id: str, body: ApproveRequest, request: Request, who: SecretKey, assistant: AssistantDep, settings: SettingsDep
):
    """Clinical sign-off of the current version: it is indexed and answered from, and citations
    quoting it name `reviewer`. Flagged passages (`flags`) stay out of the index unless listed in
    `confirm`.

    Approving is a job: answered with the approved document when it finishes within
    `PHT_APPROVAL_WAIT_SECONDS`, else `202` with the job (and `Location`) to poll. Sending the same
    approval again (same reviewer and confirmations) is that same job, never a second approval; a
    different approval of a document being approved gets 409."""
    library = assistant.library
    job, future = await bounded(
        settings, lambda: library.approvals.submit(who.clinic.id, doc_id, body.reviewer, body.confirm)
    )
    if future is not None:
        running = asyncio.wrap_future(future)
        try:
            doc = await asyncio.wait_for(asyncio.shield(running), settings.approval_wait_seconds)
        except asyncio.TimeoutError:
            running.add_done_callback(_consume)  # its end is read from the job, by whoever polls
            job = await bounded(settings, lambda: library.registry.approval_job(who.clinic.id, job["id"]))
        else:
            return DocumentInfo(**doc.public())
    if job["status"] == "succeeded":
        doc = await bounded(settings, lambda: library.registry.document(who.clinic.id, doc_id))
        return DocumentInfo(**doc.public())
    return _job_response(request, job, None, status=202)


def _job_response(request: Request, job: dict, doc, *, status: int) -> JSONResponse:
    poll = str(request.url_for("approval", job_id=job["id"]).path)
    body = ApprovalJob(
        **{k: v for k, v in job.items() if k in ApprovalJob.model_fields},
        document=DocumentInfo(**doc.public()) if doc is not None else None,
        poll=poll,
    )
    headers = {"Location": poll, "Retry-After": "2"} if job["status"] in ("queued", "running") else {}
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


approvals = APIRouter(prefix="/v1/approvals", tags=["documents"])


@approvals.get(
    "/{job_id}",
    name="approval",
    response_model=ApprovalJob,
    responses=responses(401, 403, 404, 429, 503, 504, _404="The clinic has no such approval job."),
    summary="An approval job",
)
async def approval(job_id: str, request: Request, who: SecretKey, assistant: AssistantDep, settings: SettingsDep):
    """Where an approval stands: `queued`, `running` (with `done` of `total` records embedded),
    `succeeded` (with the approved document) or `failed` (with the error; nothing was recorded)."""
    from assistant.clinics.approvals import STALE_AFTER

    registry = assistant.library.registry

    def read():
        job = registry.approval_job(who.clinic.id, job_id, stale_after=STALE_AFTER)
        doc = registry.document(who.clinic.id, job["document_id"]) if job["status"] == "succeeded" else None
        return job, doc

    job, doc = await bounded(settings, read)
    return _job_response(request, job, doc, status=200)
