"""Answerability, decided on what was asked: answer only when a sentence of the sources
addresses the question's focus, and say what is missing when none does.

The stage (:class:`FocusAnswerability`) works out the question's focus
(:mod:`assistant.answerability.focus`) and looks for it in the statements of the retrieved
passages (never in a listener's question quoted in a source):

- **A thing the sources never address.** A treatment, activity, exercise, piece of equipment,
  test, person, body part or condition named by the question that no statement mentions (nor any
  word of its synonym group) makes the reply ``not_covered``, whatever the similarity:
  "My sources don't mention shockwave therapy." When a passage speaks to the rest of the question,
  it is offered as the closest thing the sources say.
- **A kind of answer.** "How long / how often / how many / how much" needs a duration, a frequency,
  a number or an amount in a statement that speaks to the question ("how often should I do
  strength training?" is not answered by a sentence about strength training with no frequency).
- **A definition.** "What does PHT stand for?" is answered by the sentence that defines the term.
- **Anything else** is answered when a statement names what the question names, or, for a
  question that names nothing particular ("can people beat this?"), when the best passage's
  calibrated relevance reaches the threshold (docs/retrieval.md).

Passages are reordered so that those whose statements address the focus come first, and the spans
of those statements are handed to the composer.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from assistant.answerability.focus import FELT, Focus, Mention, lexicon, parse, question_clause
from assistant.contracts import Judgement, Passage, Query
from assistant.corpus.parse import INTRO, OUTRO, Unit
from assistant.retrieval.terms import STOPWORDS, generic_stems, stems, words

_NUMBER = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|a few|several|a couple of|a dozen)"
_UNIT_OF_TIME = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|yrs?)"
KIND_EXPRESSIONS: dict[str, re.Pattern[str]] = {
    "duration": re.compile(
        rf"\b{_NUMBER}\s*(?:-|to|or)?\s*{_NUMBER}?\s*{_UNIT_OF_TIME}\b|\b(?:by|until|till) the (?:next|following) "
        r"(?:morning|day)\b|\bovernight\b|\bwithin (?:a|an|\d+)\b|\b(?:for|after|over) (?:a|several|some) "
        rf"{_UNIT_OF_TIME}\b|\blong[- ]term\b",
        re.I,
    ),
    "timing": re.compile(
        rf"\b{_NUMBER}\s*(?:-|to|or)?\s*{_NUMBER}?\s*{_UNIT_OF_TIME}\b|\bonce (?:you|your|it|the|pain)\b|\buntil\b|"
        r"\bas soon as\b|\bwhen (?:you|your) (?:can|are|have|feel)\b|\bafter (?:you|your)\b|\bby the (?:next|following)\b|"
        r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)days?\b|\b(?:mornings?|afternoons?|evenings?|weekends?|weekdays?)\b|"
        r"\bat (?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|noon|midday)(?::\d\d)?\b|"
        r"\b\d{1,2}(?::\d\d)?\s*(?:am|pm)\b|\b(?:daily|weekly|monthly|every (?:day|week|month))\b",
        re.I,
    ),
    "frequency": re.compile(
        rf"\b{_NUMBER}\s*(?:times?|sessions?|days?)\s*(?:a|per|each|every)\s+\w+|\b(?:once|twice)\b|\bdaily\b|"
        r"\bweekly\b|\bevery (?:day|other day|week|morning|evening|night)\b|\beach (?:day|week|session)\b",
        re.I,
    ),
    "count": re.compile(rf"\b{_NUMBER}\b", re.I),
    "sensation": re.compile(
        r"\b(?:pain\w*|hurt\w*|sore\w*|ache\w*|aching|discomfort|flare\w*|symptoms?|sensations?|stiff\w*|tight\w*|normal|expected)\b",
        re.I,
    ),
    "amount": re.compile(
        rf"\b{_NUMBER}\b|\b(?:minimal|small|slight(?:ly)?|gradual(?:ly)?|little|light(?:er)?|heav(?:y|ier)|"
        r"moderate|increase|increasing|reduce|reducing|more|less|fewer|weights?|load|intensity|percent|%)\b",
        re.I,
    ),
}
KIND_NAMES = {
    "duration": "a time", "timing": "when", "frequency": "how often", "count": "a number", "amount": "an amount",
    "sensation": "what it means",
}
STRONG_DEFINITION = re.compile(r"\brefer(?:s|red)? to\b|\bstands? for\b|\bknown as\b|\bdefined as\b|\bmeans\b|\bcalled\b", re.I)
FRAMING_SECTIONS = {INTRO[0], OUTRO[0]}
DEFINES = re.compile(
    r"\b(?:is|are) (?:a|an|the)\b|\brefer(?:s|red)? to\b|\bmeans\b|\bdefined as\b|\bstands? for\b|\bknown as\b|\bcalled\b",
    re.I,
)


@dataclass
class Statement:
    """A quotable sentence of a retrieved passage, with what it addresses."""

    passage: Passage
    unit: Unit
    similarity: float
    keys: tuple[str, ...]  # its words' stems, then (after an empty key) its section title's
    title: tuple[str, ...] = ()


class FocusAnswerability:
    """The answerability stage (:class:`assistant.contracts.Answerability`): see the module."""

    def __init__(self, *, threshold: float = 0.41, focus_threshold: float = 0.3, keep: int = 5) -> None:
        self.threshold = threshold  # relevance a question naming nothing particular needs
        self.focus_threshold = focus_threshold  # relevance a passage that names the focus needs
        self.keep = keep
        self._keys: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def judge(self, query: Query, passages: list[Passage], sources: Any) -> Judgement:
        focus = parse(query.focus, context=query.context)
        statements = [s for p in passages[: self.keep] for s in self._statements(p)]
        if focus.kind == "definition":
            return self._definition(focus, passages, statements)
        vocab = sources.vocabulary()
        topical = list(focus.topical)
        missing = [m for m in topical if not self._known(m, vocab) or not any(self._says(s, m) for s in statements)]
        if missing:
            named = _names(missing, focus.text)
            rest = [m for m in focus.mentions + focus.context if m not in missing]
            return Judgement(
                answerable=False,
                missing=named,
                related=self._related(rest, statements),
                reason=f"focus-missing:{named}",
            )
        mentions = list(focus.mentions)
        if focus.kind in KIND_EXPRESSIONS:
            return self._kind(focus, mentions, passages, statements)
        generic = generic_stems()

        def vocabulary_words(found: tuple[Mention, ...]) -> list[Mention]:
            return [
                m for m in found
                if (m.topical or m.group >= 0 or m.category == "body") and not set(m.keys) <= generic
            ]  # fmt: skip

        known = vocabulary_words(focus.mentions)
        # a follow-up's passages were found with the turn before it, while relevance counts only its
        # own words: a sentence that names what it asks about is the evidence
        bar = 0.0 if query.expanded else self.focus_threshold
        if not known and query.expanded:  # "is it enough on its own?": about what the turn before named
            known = vocabulary_words(focus.context)
            mentions = mentions + known
        if known:  # things the vocabulary knows (an exercise, "grow my legs", "speed work"...)
            addressing = [s for s in statements if any(self._says(s, m) for m in known)]
            good = [s for s in addressing if s.passage.relevance >= bar]
            if good:
                return self._answer(passages, good, mentions, "focus-addressed")
            if topical:
                return Judgement(answerable=False, related=self._related(topical, statements), reason="focus-weak")
        unknown = [m for m in focus.mentions if not self._known(m, vocab)]
        standalone = not focus.background and not query.expanded  # a follow-up leans on the turn before
        if mentions and not known and standalone and len(unknown) == len(mentions):
            # every specific word of the question is one the sources never use ("is PHT worse in
            # cold weather?"): whatever the similarity, they do not speak to it
            return Judgement(answerable=False, missing=_names(unknown[:1], focus.text), reason="words-unknown")
        if passages and passages[0].relevance >= self.threshold:
            addressing = [s for s in statements if any(self._says(s, m) for m in mentions)]
            return self._answer(passages, addressing, mentions, "relevance", keep_order=True)
        return Judgement(
            answerable=False,
            missing=_names(unknown[:1], focus.text) if unknown else "",
            related=[],
            reason="below-threshold",
        )

    # -- the kinds of questions ------------------------------------------------------------------

    def _definition(self, focus: Focus, passages: list[Passage], statements: list[Statement]) -> Judgement:
        subject = focus.mentions[0] if focus.mentions else None
        generic = generic_stems()
        defining = [
            s for s in statements
            if DEFINES.search(s.unit.text)
            and (self._says(s, subject) if subject else bool(set(s.keys) & generic))
        ]  # fmt: skip
        if not defining:
            what = f"what {subject.phrase} is" if subject else ""
            return Judgement(answerable=False, missing=what, reason="definition-missing")
        best = sorted(defining, key=lambda s: (not STRONG_DEFINITION.search(s.unit.text), -s.similarity))[:1]
        return self._answer(passages, best, [], "definition")

    def _kind(self, focus: Focus, mentions: list[Mention], passages: list[Passage], statements: list[Statement]) -> Judgement:
        expression = KIND_EXPRESSIONS[focus.kind]
        about = mentions or list(focus.context)
        # what the vocabulary knows of the question must be spoken to ("a break from running" is not
        # answered by "break up your sitting"); without such words, any of its words
        needed = [m for m in about if not _plain_word(m) and m.keys != focus.measured] or about
        relevant = [s for s in statements if s.passage.relevance >= self.focus_threshold]
        if needed:
            relevant = [s for s in relevant if any(self._says(s, m) for m in needed) or self._passage_says(s.passage, needed)]
        good = [s for s in relevant if expression.search(s.unit.text)]
        if focus.kind == "sensation":  # "it's tight after calf raises, is that normal?": about *that* feeling
            felt = {k for w in FELT.findall(focus.text) for k in stems([w.lower()])}
            good = [s for s in good if felt & set(s.keys)] if felt else []
        if focus.measured:  # "how much pain", "how long a break": the amount must be of that
            group = next((lexicon().group_of(m.keys, m.group) for m in focus.mentions if m.keys == focus.measured), (focus.measured,))
            good = [s for s in good if any(_contains(s.keys, p) for p in group)]
        if good:
            return self._answer(passages, good, about, f"kind:{focus.kind}")
        missing = (
            "whether that is normal or what it means"
            if focus.kind == "sensation"
            else indirect(question_clause(focus.text), focus.kind_phrase, mentions)
        )
        return Judgement(
            answerable=False,
            missing=missing,
            related=self._related(about, statements),
            reason=f"kind-missing:{focus.kind}",
        )

    # -- evidence --------------------------------------------------------------------------------

    def _answer(self, passages: list[Passage], good: list[Statement], mentions: list[Mention], reason: str,
                keep_order: bool = False) -> Judgement:
        spans: dict[str, list[tuple[int, int]]] = {}
        score: dict[str, float] = {}
        for s in good:
            cid = s.passage.chunk.id
            spans.setdefault(cid, []).append((s.unit.start, s.unit.end))
            # what the vocabulary knows counts fully, any other word of the question half
            hits = sum((0.5 if _plain_word(m) else 1.0) * self._says(s, m) for m in mentions)
            # a section whose title names what was asked is about it ("Why sitting hurts")
            titled = 0.5 * sum(
                any(_contains(s.title, p) for p in lexicon().group_of(m.keys, m.group)) for m in mentions if not _plain_word(m)
            )
            # a document's introduction or closing text restates every section: a headed section
            # that says the same comes first
            framing = 0.5 if s.passage.chunk.section_id in FRAMING_SECTIONS else 0.0
            strong = 0.5 if reason == "definition" and STRONG_DEFINITION.search(s.unit.text) else 0.0
            score[cid] = max(score.get(cid, float("-inf")), hits + titled + s.similarity + s.passage.relevance - framing + strong)
        ordered = list(passages[: self.keep])
        if not keep_order:
            ordered.sort(key=lambda p: (p.chunk.id not in score, -score.get(p.chunk.id, 0.0)))
        return Judgement(answerable=True, passages=ordered, sentences=spans, reason=reason)

    def _related(self, mentions: list[Mention], statements: list[Statement]) -> list[Passage]:
        """The passage that best speaks to the rest of the question, if one does and is relevant."""
        if not mentions:
            return []
        scored = [
            (sum(self._says(s, m) for m in mentions), s.similarity, s.passage)
            for s in statements
            if s.passage.relevance >= self.threshold
        ]
        scored = [t for t in scored if t[0] > 0]
        if not scored:
            return []
        return [max(scored, key=lambda t: (t[0], t[1]))[2]]

    def _statements(self, passage: Passage) -> list[Statement]:
        """The passage's quotable sentences; each is read with its section's title, which says what
        the sentences under it are about ("Cycling with PHT": "Lower the saddle slightly...")."""
        title = self._title_keys(passage.chunk.section_title)
        return [
            Statement(passage, u, sim, self._unit_keys(u) + title, title) for u, sim in passage.units if u.kind == "statement"
        ]

    def _title_keys(self, title: str) -> tuple[str, ...]:
        return ("",) + tuple(stems(words(title.replace("-", " "))))  # "" keeps a phrase from running across

    def _unit_keys(self, unit: Unit) -> tuple[str, ...]:
        keys = self._keys.get(unit.id)
        if keys is None:
            keys = tuple(stems(words(unit.text.replace("-", " "))))
            self._keys[unit.id] = keys
            while len(self._keys) > 20_000:
                self._keys.popitem(last=False)
        return keys

    def _says(self, statement: Statement, mention: Mention | None) -> bool:
        """Whether a statement names the mention, or a word of its synonym group."""
        if mention is None:
            return False
        return _in(_Words.of(statement.keys), _phrases(mention.keys, mention.group))

    def _passage_says(self, passage: Passage, mentions: list[Mention]) -> bool:
        words = _Words.of(tuple(k for u, _ in passage.units for k in self._unit_keys(u)))
        return any(_in(words, _phrases(m.keys, m.group)) for m in mentions)

    def _known(self, mention: Mention, vocab: frozenset[str]) -> bool:
        """Whether the sources use the mention's words anywhere (or a word of its synonym group)."""
        for phrase in lexicon().group_of(mention.keys, mention.group):
            content = [k for k in phrase if k not in STOPWORDS]
            if content and all(k in vocab for k in content):
                return True
        return False


def _content(phrase: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in phrase if k not in STOPWORDS) or phrase


def _phrases(keys: tuple[str, ...], group: int) -> tuple[tuple[str, ...], ...]:
    """The content words of every phrase meaning the same as ``keys`` (its synonym group)."""
    lex = lexicon()
    return _phrases_of(id(lex), keys, group)


@lru_cache(maxsize=4096)
def _phrases_of(lexicon_id: int, keys: tuple[str, ...], group: int) -> tuple[tuple[str, ...], ...]:
    return tuple(_content(p) for p in lexicon().group_of(keys, group))


@dataclass(frozen=True)
class _Words:
    """A sentence's stems as a set (one-word phrases) and in order without stopwords (phrases)."""

    set: frozenset[str]
    flat: tuple[str, ...]
    # n -> every run of n words of ``flat``, made on first use (a sentence is asked about many phrases)
    runs: dict[int, frozenset[tuple[str, ...]]] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @staticmethod
    @lru_cache(maxsize=8192)
    def of(keys: tuple[str, ...]) -> "_Words":
        return _Words(frozenset(keys), tuple(k for k in keys if k not in STOPWORDS))

    def runs_of(self, n: int) -> frozenset[tuple[str, ...]]:
        found = self.runs.get(n)
        if found is None:  # two threads may both make it: the same set either way
            found = self.runs[n] = frozenset(self.flat[i : i + n] for i in range(len(self.flat) - n + 1))
        return found


def _in(words: _Words, phrases: tuple[tuple[str, ...], ...]) -> bool:
    for content in phrases:
        if len(content) == 1:
            if content[0] in words.set:
                return True
        elif tuple(content) in words.runs_of(len(content)):
            return True
    return False


def _contains(keys: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    return _in(_Words.of(keys), (_content(phrase),))


def _plain_word(m: Mention) -> bool:
    return m.category == "word" and m.group < 0


_HEAD = re.compile(
    r"\s+(exercises?|training|therapy|treatments?|work|sessions?|shoes|class(?:es)?|machines?|programmes?|"
    r"programs?|techniques?|holds?|curls?|raises?|stretch(?:es)?)\b",
    re.I,
)


def _names(missing: list[Mention], text: str) -> str:
    """The missing things in the patient's words: "shockwave therapy", "ice or heat",
    "eccentric exercises" (a following head noun is part of the name)."""
    if not missing:
        return ""
    flat0 = text.replace("-", " ")
    missing = [
        replace(m, phrase=m.phrase + h.group(0), name="")
        if (h := _HEAD.match(flat0, m.start + len(m.phrase))) and m.category != "activity"
        else m
        for m in missing
    ]
    missing = sorted(missing, key=lambda m: m.start)
    flat = text.replace("-", " ")
    if len(missing) >= 2:
        first, last = missing[0], missing[-1]
        between = flat[first.start + len(first.phrase) : last.start]
        if re.fullmatch(r"\s*(?:(?:,|or|and|/|&)\s*(?:a|an|the|some|use|using|maybe)?\s*)+", between, re.I) and len(missing) == 2:
            return flat[first.start : last.start + len(last.phrase)]
        names = [m.display for m in missing]
        return ", ".join(names[:-1]) + " or " + names[-1]
    return missing[0].display


# -- "how long does PHT take to heal" -> "how long PHT takes to heal" --------------------------------

_SUBJECTS = {"i": "you", "we": "you", "me": "you", "my": "your", "myself": "yourself", "our": "your", "am": "are"}
_INVERTED = re.compile(
    r"(?i)^(?P<wh>how (?:long|often|(?:many|much)(?: more)?(?: [a-z]+){0,4}?|heavy|far|hard|soon|quickly|fast|frequently|regularly)|when)"
    r"\s+(?P<aux>do|does|did|should|can|could|will|would|is|are|am|must|shall|might)\s+(?P<rest>.+)$"
)


def indirect(clause: str, kind_phrase: str = "", mentions: list[Mention] | None = None) -> str:
    """A question as the object of "My sources don't say ...".

    >>> indirect("How long does PHT take to heal?")
    'how long PHT takes to heal'
    >>> indirect("How often a week should I do strength training?")
    'how often to do strength training'
    >>> indirect("and how heavy should they be?")
    'how heavy they should be'
    >>> indirect("how many miles a week is safe with pht?")
    'how many miles a week is safe with pht'
    >>> indirect("how many reps of bridges should i do")
    'how many reps of bridges to do'
    """
    q = re.sub(r"^(?:and|but|so|ok|okay|also|then|right|hi|hello)[,\s]+", "", clause.strip(), flags=re.I)
    q = re.sub(r"\s*\?+\s*$", "", q).strip()
    q = re.sub(r"(?i)^(how often|how many times)\s+(?:a|per|each)\s+(?:day|week|month)\b", r"\1", q)
    m = _INVERTED.match(q)
    if m and m.group("aux").lower() in {"is", "are", "am"} and len(m.group("wh").split()) > 3:
        m = None  # "how many miles a week is safe": the long "how many" phrase is the subject, not inverted
    if m:
        wh, aux, rest = m.group("wh").lower(), m.group("aux").lower(), m.group("rest")
        parts = rest.split(" ", 1)
        subject, tail = parts[0], (parts[1] if len(parts) > 1 else "")
        if subject.lower() in {"i", "we"} and aux in {"do", "should", "can", "must", "shall", "could"}:
            return f"{wh} to {_second_person(tail)}".strip()
        if aux not in {"do", "does", "did"} and rest.lower().endswith(" be") and len(rest.split()) > 2:
            return f"{wh} {_second_person(rest[:-3])} {aux} be"  # "how long should my long runs be"
        subject = _SUBJECTS.get(subject.lower(), subject)
        if aux in {"do", "does", "did"}:
            verb_rest = tail.split(" ", 1)
            verb = verb_rest[0]
            if aux == "does" and verb and not verb.endswith("s"):
                verb = verb + ("es" if verb.endswith(("sh", "ch", "o", "x")) else "s")
            return " ".join(filter(None, [wh, subject, verb, _second_person(verb_rest[1]) if len(verb_rest) > 1 else ""]))
        aux = {"am": "are"}.get(aux, aux) if subject == "you" else aux
        return " ".join(filter(None, [wh, subject, aux, _second_person(tail)]))
    if re.match(r"(?i)^(?:how|when|what|which|whether)\b", q):
        return _second_person(q[0].lower() + q[1:])
    named = ", ".join(m.phrase for m in mentions or [])
    return f"{kind_phrase or 'that'}" + (f" for {named}" if named else "")


def _second_person(text: str) -> str:
    return re.sub(r"\b(i|me|my|myself|we|our|am)\b", lambda m: _SUBJECTS[m.group(1).lower()], text, flags=re.I)
