"""PHT Assistant: answers questions about proximal hamstring tendinopathy from a curated corpus.

>>> from assistant import Answer, Assistant
>>> sorted(__all__) == __all__
True

Importing the package is cheap: the model, Chroma and LangChain load when an
:class:`Assistant` first needs them.
"""

from assistant.answer import SAFETY_NOTICE, Answer, Citation, Delta, Done, Started, Status, Triage
from assistant.pipeline.assistant import Assistant
from assistant.errors import (
    AssistantError,
    CorpusError,
    DataFolderError,
    EmptyQuestion,
    IndexBusy,
    IndexDamaged,
    IndexMissing,
    IndexUnavailable,
    InvalidCharacters,
    InvalidHistory,
    InvalidQuestion,
    ModelUnavailable,
    QuestionTooLong,
)
from assistant.settings import Settings, get_settings

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Assistant",
    "AssistantError",
    "Citation",
    "CorpusError",
    "DataFolderError",
    "Delta",
    "Done",
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
    "SAFETY_NOTICE",
    "Settings",
    "Started",
    "Status",
    "Triage",
    "__version__",
    "get_settings",
]
