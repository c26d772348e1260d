"""Short names of what the sources cover, for replies that say what the assistant can help with.

A section's title, without a label before a colon ("Q&A 2: ..."), a byline ("... by Andrea
Camerillo", "... with Rob Jones") or a subtitle after a dash; the introduction and closing text are
left out (they restate every section).

>>> topics_of({"d": {"sections": [{"id": "intro", "title": "Introduction"},
...     {"id": "qa-1", "title": "Q&A 1: Building Strength and Recovery with Rob Jones"},
...     {"id": "qa-3", "title": "Q&A 3: Race Training with PHT – Arthi Raghu’s Dilemma"}]}})
['Building Strength and Recovery', 'Race Training with PHT']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from assistant.corpus.parse import INTRO, OUTRO

_LABEL = re.compile(r"^[^:]{1,24}:\s*")
_BYLINE = re.compile(r"\s+(?:by|with)\s+(?:[A-Z][\w'’.-]+\s+){1,3}?[A-Z][\w'’.-]+\s*$")
_SUBTITLE = re.compile(r"\s+[–—-]\s+.*$")


def topic_name(title: str) -> str:
    name = _SUBTITLE.sub("", _LABEL.sub("", title.strip()))
    return _BYLINE.sub("", name).strip()


def topics_of(documents: Mapping[str, Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for doc in documents.values():
        for section in doc.get("sections", []):
            if section.get("id") in {INTRO[0], OUTRO[0]}:
                continue
            name = topic_name(section.get("title", ""))
            if name and name not in out:
                out.append(name)
    return out
