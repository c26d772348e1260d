"""Index terms: the words of a question or a passage, stemmed, with stopwords and the domain's own
words set apart. Shared by retrieval (BM25 keys, coverage), answerability (what a question asks
about) and the grounding check (specific words of a sentence).

>>> content_terms("Can I run a marathon with proximal hamstring tendinopathy?")
['run', 'marathon']
>>> terms("Personalised rehab advice for runners")
['person', 'rehabilit', 'advic', 'run']
"""

from __future__ import annotations

import re
from functools import lru_cache

from assistant.retrieval.lexical import clippings, expand, family
from assistant.retrieval.vocabulary import vocabulary

STOPWORDS = frozenset(
    """a about above after again against all also am an and any anything are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each else ever every few for from further get gets getting got had hadn't has hasn't
    have haven't having he her here hers herself him himself his how i i'd i'll i'm i've if im ive in into is
    isn't it it's its itself just know let's like lot make me might more most much must my myself need no nor
    not now of off oh ok okay on once only or other ought our ours ourselves out over own really same shall
    she should shouldn't so some something still such than that that's the their theirs them themselves
    then there there's these they they're thing things this those through to too under until up us very
    want was wasn't way we every we're were weren't what what's when where which while who whom why will with
    won't would wouldn't yeah yes yet you you're your yours yourself yourselves""".split()
)
STOPWORDS = STOPWORDS | {w.replace("'", "") for w in STOPWORDS}  # "whats", "dont", ...
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def generic_stems() -> frozenset[str]:
    """Index keys of the words every question and passage of the domain share (vocabulary.yaml)."""
    return frozenset(stems(list(vocabulary().domain_generic)))


_BRITISH_IZE = re.compile(r"^(\w{4,})is(e|ed|es|ing|ation|ations)$")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, apostrophes dropped ("don't" -> "dont")."""
    return [m.replace("'", "") for m in _WORD.findall(text.lower().replace("’", "'"))]


def stems(tokens: list[str]) -> list[str]:
    """Index keys of words: clippings expanded (:mod:`assistant.retrieval.lexical`), British -ise
    folded, Snowball stems joined into word families ("runner" and "running")."""
    clipped = clippings()  # looked up once per call, not per word
    tokens = [_BRITISH_IZE.sub(r"\1iz\2", clipped.get(w, w)) for w in tokens]
    return [family(w) for w in _stemmer().stemWords(tokens)]


def terms(text: str) -> list[str]:
    """Stemmed words of ``text`` without stopwords ("personalised" and "personalized" agree,
    and so do "rehab" and "rehabilitation", "runner" and "running").

    >>> terms("Personalised rehab advice for runners")
    ['person', 'rehabilit', 'advic', 'run']
    """
    return list(_terms(text))


@lru_cache(maxsize=16384)
def _terms(text: str) -> tuple[str, ...]:
    return tuple(terms_of(words(text)))  # the same sentences are read for every question


def terms_of(tokens: list[str]) -> list[str]:
    """Index keys of tokens (from :func:`words`) without stopwords."""
    tokens = [w for w in tokens if w not in STOPWORDS and expand(w) not in STOPWORDS]
    return [w for w in stems(tokens) if len(w) > 1]


@lru_cache(maxsize=4096)
def is_generic(stem: str) -> bool:
    """A domain word, or a misspelling of one ("tendonopathy", "hamstrng")."""
    generic = generic_stems()
    if stem in generic:
        return True
    if len(stem) < 6:
        return False
    from difflib import get_close_matches

    return bool(get_close_matches(stem, generic, n=1, cutoff=0.85))


def content_terms(text: str) -> list[str]:
    """The question's specific words: :func:`terms` less the words the whole domain shares."""
    seen: dict[str, None] = {}
    for t in terms(text):
        if not is_generic(t):
            seen.setdefault(t, None)
    return list(seen)
