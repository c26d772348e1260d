"""Short names of what the sources cover, for replies that say what the assistant can help with.

A section's title, without a label before a colon ("Q&A 2: ..."), a byline ("... by Andrea
Camerillo", "... with Rob Jones") or a subtitle after a dash; the introduction and closing text are
left out (they restate every section). A library with more sections than a reply can list is named
by its documents' titles instead.

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


MAX_TOPICS = 12  # a reply lists what it can help with; a library of thousands of sections names its documents


def topics_of(documents: Mapping[str, Mapping[str, Any]], limit: int = MAX_TOPICS) -> list[str]:
    """At most ``limit`` names: the sections' when there are that few, else the documents' titles."""
    out: dict[str, None] = {}  # first occurrence order; a dict, not a list, to look up
    for doc in documents.values():
        for section in doc.get("sections", []):
            if section.get("id") in {INTRO[0], OUTRO[0]}:
                continue
            name = topic_name(section.get("title", ""))
            if name:
                out.setdefault(name, None)
                if len(out) > limit:
                    titles = dict.fromkeys(topic_name(d.get("title", "")) for d in documents.values())
                    return [t for t in titles if t][:limit]
    return list(out)
