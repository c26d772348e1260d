"""Approvals as jobs: idempotent, one at a time per document, really stopped at their time limit.

Approving a document embeds its passages, which takes seconds to minutes for a long one. So an
approval is a job (a row in the registry's ``approval_jobs``): the request starts it (or finds the
same approval already running) and waits a few seconds (``PHT_APPROVAL_WAIT_SECONDS``); a job that
finishes meanwhile is answered at once, one that does not is answered ``202 Accepted`` with the
job to poll (``GET /v1/approvals/{id}``, from any worker).

- **Idempotent**: the same approval (document version, reviewer, confirmed passages) while one runs
  is that job, and after it succeeded is that result: never a second approval.
- **One at a time per document**: a different approval of a document being approved gets 409 (a
  unique index on the running jobs holds it in the database, for every worker).
- **The reviewer recorded is the one whose approval did the work**: the document is approved with
  the job's reviewer in the same transaction that ends the job (``finish_approval``).
- **A time limit that really stops it** (``PHT_APPROVAL_TIMEOUT``): the job's work is abandoned,
  its next step stops, it records nothing and takes back the records it added; a job is failed in
  the database before anyone is told so, and a failed job can no longer record anything.
- **A killed worker**: its jobs stop sending heartbeats; after ``STALE_AFTER`` seconds they count
  as interrupted (failed), and the document may be approved again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from assistant.clinics.work import Work
from assistant.errors import AssistantError, Cancelled

log = logging.getLogger("assistant.clinics.approvals")

HEARTBEAT_SECONDS = 2.0
STALE_AFTER = 15.0  # a queued or running job not heard of this long was lost with its worker


def error_code(exc: BaseException) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


class Approvals:
    """This worker's approval jobs: started here, run one at a time on one thread, with a heartbeat
    for each and the time limit enforced."""

    def __init__(self, library: Any, *, timeout: float = 600.0) -> None:
        self.library = library
        self.timeout = timeout
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # job id -> (work, future, monotonic deadline)
        self._jobs: dict[str, tuple[Work, Future, float]] = {}
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def registry(self) -> Any:
        return self.library.registry

    # -- starting ---------------------------------------------------------------------------------

    def submit(
        self, clinic_id: str, doc_id: str, reviewer: str, confirm: list[str] | None = None
    ) -> tuple[dict[str, Any], Future | None]:
        """Start the approval (or find the one it repeats): ``(job, future)``. The future is this
        worker's run of the job (``None`` when the job runs in another worker, or is already done)."""
        reviewer = reviewer.strip()
        confirm = sorted(set(confirm or []))
        doc = self.registry.document(clinic_id, doc_id)
        self.library.check_confirmations(doc, confirm)
        job, outcome = self.registry.start_approval(
            clinic_id, doc_id, reviewer=reviewer, version=doc.version, confirm=confirm, stale_after=STALE_AFTER
        )
        if outcome != "new":
            with self._lock:
                running = self._jobs.get(job["id"])
            return job, running[1] if running else None
        work = Work()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pht-approval")
            future = self._executor.submit(self._run, job, work)
            self._jobs[job["id"]] = (work, future, time.monotonic() + self.timeout)
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, name="pht-approval-heartbeat", daemon=True)
                self._beat.start()
        return job, future

    def approve(self, clinic_id: str, doc_id: str, reviewer: str, confirm: list[str] | None = None) -> Any:
        """Approve and wait for the result (the command line and tests): the approved document."""
        job, future = self.submit(clinic_id, doc_id, reviewer, confirm)
        if future is not None:
            return future.result()
        while job["status"] in ("queued", "running"):  # run by another worker: wait for it
            time.sleep(0.5)
            job = self.registry.approval_job(clinic_id, job["id"], stale_after=STALE_AFTER)
        return self.result(clinic_id, job)

    def result(self, clinic_id: str, job: dict[str, Any]) -> Any:
        """The approved document of a succeeded job; the job's error, raised, for a failed one."""
        if job["status"] == "succeeded":
            return self.registry.document(clinic_id, job["document_id"])
        if job["status"] == "failed":
            raise JobFailed(job)
        raise RuntimeError("the job has not ended")

    # -- running ----------------------------------------------------------------------------------

    def _run(self, job: dict[str, Any], work: Work) -> Any:
        job_id = job["id"]
        try:
            if work.abandoned:
                raise Cancelled()
            self.registry.update_job(job_id, status="running")
            return self.library.run_approval(job, work)
        except Cancelled as exc:
            if self._stop.is_set():
                code, message = "approval_interrupted", (
                    "The server stopped while approving this document; nothing was recorded. Approve it again."
                )
            elif work.abandoned:
                code, message = "approval_timed_out", (
                    f"The approval took longer than {self.timeout:g} seconds and was stopped; nothing was recorded. "
                    "Split the document into smaller ones, or approve it again when the server is less busy."
                )
            else:
                code, message = "cancelled", exc.message
            self.registry.fail_job(job_id, code, message)
            raise Cancelled(message) from None
        except AssistantError as exc:
            self.registry.fail_job(job_id, error_code(exc), exc.message)
            raise
        except Exception as exc:
            log.error("approval %s failed: %s", job_id, type(exc).__name__, exc_info=exc)
            self.registry.fail_job(
                job_id,
                "internal_error",
                "Something unexpected went wrong while approving; nothing was recorded. Please try again, and "
                "tell the assistant's operator if it happens again.",
            )
            raise
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def _heartbeat(self) -> None:
        """Every few seconds: this worker's jobs are alive; those past their time limit are stopped."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                jobs = dict(self._jobs)
            now = time.monotonic()
            for job_id, (work, _, deadline) in jobs.items():
                if now > deadline and work.abandon():
                    log.warning("approval %s passed its time limit of %g s: stopping it", job_id, self.timeout)
                    self.registry.fail_job(
                        job_id,
                        "approval_timed_out",
                        f"The approval took longer than {self.timeout:g} seconds and was stopped; nothing was "
                        "recorded. Split the document into smaller ones, or approve it again when the server is "
                        "less busy.",
                    )
            try:
                self.registry.heartbeat_jobs(list(jobs))
            except Exception:  # the database is away: the jobs go on; their rows catch up later
                log.warning("could not record the approval jobs' heartbeat", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            executor, self._executor = self._executor, None
            for work, _, _ in self._jobs.values():
                work.abandon()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class JobFailed(AssistantError):
    """A failed approval job, as the error its request would have got."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job.get("message") or "The approval failed; nothing was recorded. Please try again.")
        self.job = job
        self.code = job.get("error") or "approval_failed"
