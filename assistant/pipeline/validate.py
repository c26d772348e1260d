"""Input checks before anything runs: a question and a history the pipeline can read.

>>> validate_question("  Can I run?  ", 100)
'Can I run?'
>>> validate_history([("user", "I have PHT"), {"role": "assistant", "content": "I see."}], 2000, 20)
[{'role': 'user', 'content': 'I have PHT'}, {'role': 'assistant', 'content': 'I see.'}]
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from assistant.errors import EmptyQuestion, InvalidCharacters, InvalidHistory, InvalidQuestion, QuestionTooLong


def validate_question(question: Any, max_chars: int) -> str:
    """The question, stripped; or an :class:`~assistant.errors.InvalidQuestion` saying what to fix."""
    if question is None:
        raise EmptyQuestion()
    if isinstance(question, bytes):
        raise InvalidCharacters()
    if not isinstance(question, str):
        raise InvalidQuestion("The question must be text; please type it again as plain text.")
    if "\ufffd" in question or any(
        unicodedata.category(ch) in {"Cc", "Cs", "Co"} and ch not in "\n\t\r" for ch in question
    ):
        raise InvalidCharacters()
    text = question.strip()
    if not text:
        raise EmptyQuestion()
    if len(text) > max_chars:
        raise QuestionTooLong(len(text), max_chars)
    return text


def validate_history(history: Sequence[Any] | None, max_chars: int, max_turns: int) -> list[dict[str, str]]:
    """The conversation so far as ``{"role", "content"}`` dicts, oldest first, the last ``max_turns``.

    Each turn is a dict, a ``(role, content)`` pair or an object with ``role`` and ``content``.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
        raise InvalidHistory()
    turns: list[dict[str, str]] = []
    for item in history:
        if isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            role, content = item
        elif hasattr(item, "role") and hasattr(item, "content"):
            role, content = item.role, item.content
        else:
            raise InvalidHistory()
        if role not in {"user", "assistant"} or not isinstance(content, str):
            raise InvalidHistory()
        if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in content):
            raise InvalidCharacters(
                "The conversation history contains control characters; please start a new conversation."
            )
        turns.append({"role": role, "content": content[:max_chars]})
    return turns[-max_turns:] if max_turns else []
