"""The domain's vocabulary as data (``assistant/policy/vocabulary.yaml``): words every question
shares, patients' clippings and chat spellings, the medical terms a paraphrase may not add, and
groups of words that mean the same thing to a patient. A clinic extends it with ``PHT_POLICY_DIR``.

>>> v = vocabulary()
>>> v.clippings["hammy"], "tendinopathy" in v.domain_generic
('hamstring', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant import policy
from assistant.errors import PolicyInvalid


@dataclass(frozen=True, eq=False)
class Vocabulary:
    domain_generic: tuple[str, ...]
    clippings: dict[str, str]
    medical_terms: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    frame_words: tuple[str, ...] = ()
    # category -> its entries: a word or phrase, or a group of ways of saying one thing
    focus: dict[str, tuple[str | tuple[str, ...], ...]] = field(default_factory=dict)


def vocabulary() -> Vocabulary:
    """The vocabulary for this process's settings (``PHT_POLICY_DIR``), read once."""
    from assistant.settings import get_settings

    return load_vocabulary(get_settings().policy_dir)


def load_vocabulary(policy_dir: Path | str | None = None) -> Vocabulary:
    return _load(str(policy_dir) if policy_dir else "")


@lru_cache(maxsize=8)
def _load(policy_dir: str) -> Vocabulary:
    data = policy.load("vocabulary", policy_dir or None)
    generic = data.get("domain_generic")
    clippings = data.get("clippings")
    if not isinstance(generic, list) or not all(isinstance(w, str) for w in generic):
        raise PolicyInvalid("vocabulary.yaml: `domain_generic` must be a list of words.")
    if not isinstance(clippings, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in clippings.items()):
        raise PolicyInvalid("vocabulary.yaml: `clippings` must map each clipping to the full word.")
    medical = data.get("medical_terms") or []
    synonyms = data.get("synonyms") or []
    if not all(isinstance(w, str) for w in medical):
        raise PolicyInvalid("vocabulary.yaml: `medical_terms` must be a list of words or phrases.")
    if not all(isinstance(g, list) and len(g) >= 2 and all(isinstance(w, (str, int)) for w in g) for g in synonyms):
        raise PolicyInvalid("vocabulary.yaml: each entry of `synonyms` is a list of two or more words or phrases.")
    frame = data.get("frame_words") or []
    focus = data.get("focus") or {}
    if not all(isinstance(w, (str, int)) for w in frame):
        raise PolicyInvalid("vocabulary.yaml: `frame_words` must be a list of words.")
    def entry_ok(w: object) -> bool:
        return isinstance(w, (str, int)) or (isinstance(w, list) and len(w) >= 2 and all(isinstance(x, (str, int)) for x in w))

    if not isinstance(focus, dict) or not all(isinstance(v, list) and all(entry_ok(w) for w in v) for v in focus.values()):
        raise PolicyInvalid(
            "vocabulary.yaml: `focus` maps each category to a list of words or phrases, or of groups (lists) of them."
        )
    return Vocabulary(
        domain_generic=tuple(w.lower() for w in generic),
        clippings={k.lower(): v.lower() for k, v in clippings.items()},
        medical_terms=tuple(w.lower() for w in medical),
        synonyms=tuple(tuple(str(w).lower() for w in g) for g in synonyms),
        frame_words=tuple(str(w).lower() for w in frame),
        focus={
            str(k): tuple(tuple(str(x).lower() for x in w) if isinstance(w, list) else str(w).lower() for w in v)
            for k, v in focus.items()
        },
    )
