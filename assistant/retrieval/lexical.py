"""How patients write, folded onto how documents write: the lexical side of retrieval.

Three corpus-independent steps, used by :func:`assistant.retrieval.hybrid.terms` (documents and
questions alike) and by the retriever's spelling correction (questions only):

1. **Clippings and chat spellings** (:func:`clippings`, data in ``assistant/policy/vocabulary.yaml``): a short list of general domain and
   texting knowledge, not taken from any corpus: "rehab" is "rehabilitation", "physio" is
   "physiotherapy", "hammy" is "hamstring", "shud" is "should", "ur" is "your".
2. **Word families** (:func:`family`): Snowball leaves some derivations of one word apart;
   a few suffix rules join them after stemming ("physiotherapist" and "physiotherapy", "runner"
   and "running", "heavier" and "heavy").
3. **Spelling** (:class:`Speller`): a question word the index never uses and that is not a known
   English word is replaced by the nearest word the index (or the stopword list) does use, within
   an edit distance that grows with the word's length (:func:`max_edits`): "excercises",
   "runing", "wiht", "musle". Known English words are the whole words of the encoder's WordPiece
   vocabulary, and their regular inflections ("taping" is not "taking"), so "heat" is never turned
   into "heal", nor "sitting" into "setting"; such a word is only corrected for a doubled letter
   ("runing" is "running").

>>> expand("rehab")
'rehabilitation'
>>> family("physiotherapist"), family("runner"), family("heavier"), family("recoveri")
('physiotherapi', 'run', 'heavi', 'recoveri')
>>> osa("wiht", "with"), osa("excercises", "exercises"), max_edits(4), max_edits(9)
(1, 1, 1, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

def clippings() -> dict[str, str]:
    """Clippings, abbreviations and chat spellings patients use, each with the word documents use
    (``assistant/policy/vocabulary.yaml``)."""
    from assistant.retrieval.vocabulary import vocabulary

    return vocabulary().clippings


def expand(word: str) -> str:
    """The full word for a clipping or chat spelling; other words unchanged."""
    return clippings().get(word, word)


def family(stem: str) -> str:
    """One key for a Snowball stem and its derivations (Snowball keeps them apart).

    - ``-ist`` (the practitioner): physiotherapist -> physiotherapi, as "physiotherapy" stems;
    - ``-ier`` (a comparative of a word in -y): heavier -> heavi, as "heavy" stems;
    - a doubled consonant before ``-er`` (the doer of a short verb): runner -> run, jogger -> jog.
      Snowball removes ``-er`` only from longer words, and a plain ``-er`` ("number", "power",
      "later") is too often not a suffix to remove here.
    """
    n = len(stem)
    if n >= 8 and stem.endswith("ist"):
        return stem[:-2]
    if n >= 6 and stem.endswith("ier"):
        return stem[:-2]
    if n >= 6 and stem.endswith("er") and stem[-3] == stem[-4] and stem[-3] not in "aeiouls":
        return stem[:-3]
    return stem


def max_edits(length: int) -> int:
    """Edits allowed between a word and its correction: none up to 3 letters, one up to 7, then two."""
    if length <= 3:
        return 0
    if length <= 7:
        return 1
    return 2


def osa(a: str, b: str, limit: int = 3) -> int:
    """Optimal-string-alignment distance (insert, delete, substitute, swap two neighbours);
    any distance above ``limit`` is reported as ``limit + 1``."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            best = min(best, v)
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


@lru_cache(maxsize=1)
def known_words() -> frozenset[str]:
    """Whole English words of the encoder's WordPiece vocabulary (about 22,000): a word found
    here is a word, not a typo. Empty if the model package is missing (then distance alone)."""
    try:
        from assistant.embed.minilm import _packaged_model_path

        path = _packaged_model_path()
        with open(f"{path}/vocab.txt", encoding="utf-8") as f:
            return frozenset(w for w in (line.strip() for line in f) if w.isalpha() and w.isascii() and len(w) > 1)
    except Exception:  # noqa: BLE001 - a lexicon is a guard, not a requirement
        return frozenset()


_INFLECTIONS = ("ing", "ed", "es", "s", "er", "est", "ly")


def known_form(word: str) -> bool:
    """A known word, or a regular inflection of one: "taping" (tape), "icing" (ice), "runing"
    (rune, or run with its consonant not doubled; see :func:`doubling_slip`)."""
    known = known_words()
    if word in known:
        return True
    for suffix in _INFLECTIONS:
        base = word[: -len(suffix)]
        if not word.endswith(suffix) or len(base) < 2:
            continue
        if base in known or base + "e" in known or (base.endswith("i") and base[:-1] + "y" in known):
            return True
    return False


def doubling_slip(word: str, other: str) -> bool:
    """The two differ by one doubled letter ("runing" and "running"): the commonest slip in an
    inflected word, and the one correction allowed to a word that :func:`known_form` accepts."""
    short, long_ = sorted((word, other), key=len)
    if len(long_) != len(short) + 1:
        return False
    return any(long_[i] == long_[i + 1] and long_[:i] + long_[i + 1 :] == short for i in range(len(long_) - 1))


def _deletes(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


class Speller:
    """Corrects question words against the words an index uses (and the stopwords).

    Candidates come from a one-deletion neighbourhood (SymSpell style: a word and a candidate share
    a form with at most one letter deleted from each, which covers one insertion, deletion,
    substitution or swap, and some pairs of them), then the edit distance decides. Built on the
    first word it has to correct; above ``MAX_WORDS`` distinct words it corrects nothing."""

    MAX_WORDS = 200_000

    def __init__(self, words: dict[str, int], preferred: Iterable[str] = ()) -> None:
        # word -> how often the index uses it; preferred words (stopwords) win ties
        self._count = dict(words)
        for w in preferred:
            self._count[w] = max(self._count.get(w, 0), 10**9)
        self._by_delete: dict[str, list[str]] | None = None

    def _neighbourhood(self) -> dict[str, list[str]]:
        if self._by_delete is None:
            index: dict[str, list[str]] = {}
            for w in self._count:
                if len(w) >= 3:
                    for d in _deletes(w):
                        index.setdefault(d, []).append(w)
            self._by_delete = index
        return self._by_delete

    def __contains__(self, word: str) -> bool:
        return word in self._count

    def correct(self, word: str, *, doubling_only: bool = False) -> str | None:
        """The closest word within :func:`max_edits`, or None. A candidate that begins the word
        ("strength" in "strengthen") or that the word begins is a relative, not a correction.
        ``doubling_only``: only a :func:`doubling_slip` counts (for words that may be real)."""
        limit = max_edits(len(word))
        if limit == 0 or word in self._count or len(self._count) > self.MAX_WORDS:
            return None
        index = self._neighbourhood()
        found: set[str] = set()
        for d in _deletes(word):
            found.update(index.get(d, ()))
        best: tuple[int, int, int, str] | None = None
        for c in found:
            if c.startswith(word) or word.startswith(c) or len(c) < 3:
                continue
            if doubling_only and not doubling_slip(word, c):
                continue
            dist = osa(word, c, limit)
            if dist > limit or dist > max_edits(len(c)):
                continue
            key = (dist, c[0] != word[0], -self._count[c], c)
            if best is None or key < best:
                best = key
        return best[3] if best else None
