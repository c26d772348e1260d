"""Medical terms a paraphrase may not add (``medical_terms`` in ``assistant/policy/vocabulary.yaml``).

>>> new_medical_terms("Ice the tendon after running.", "Running should be part of your rehabilitation.")
['ice']
>>> new_medical_terms("Calf raises and bridges suit the tendon.", "such as calf raises, step-ups, hip thrusts, and bridges")
[]
"""

from __future__ import annotations

import re
from functools import lru_cache

from assistant.retrieval.terms import stems, words
from assistant.retrieval.vocabulary import vocabulary


@lru_cache(maxsize=4)
def _lexicon(entries: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((entry, tuple(stems(words(entry)))) for entry in entries)


def _has(keys: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(keys[i : i + n]) == phrase for i in range(len(keys) - n + 1)) if n else False


def new_medical_terms(claim: str, cited: str) -> list[str]:
    """Medical terms ``claim`` names that ``cited`` does not."""
    claim_keys = stems(words(re.sub(r"-", " ", claim)))
    cited_keys = stems(words(re.sub(r"-", " ", cited)))
    out = []
    for entry, phrase in _lexicon(vocabulary().medical_terms):
        if _has(claim_keys, phrase) and not _has(cited_keys, phrase):
            out.append(entry)
    return out
