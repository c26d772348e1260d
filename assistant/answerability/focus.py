"""What a question is about: its focus (the treatment, activity, exercise, body part, person...)
and the kind of answer it asks for (a definition, a duration, a frequency, a number, an amount).

Words come from the domain vocabulary (``assistant/policy/vocabulary.yaml``): phrases of the
``focus`` lists and the ``synonyms`` groups are found first (longest first, by word stems, so
"glute bridges" and "calf raises" are one thing each), then any other specific word the question
uses. Only the question's own clause counts when it has one ("I sit all day. Can I still run?" is
about running); earlier turns of a follow-up are its context.

>>> f = parse("Does shockwave therapy work for PHT?")
>>> f.kind, [(m.phrase, m.category) for m in f.mentions]
('general', [('shockwave therapy', 'treatment')])
>>> f = parse("How often a week should I do strength training?")
>>> f.kind, f.kind_phrase, [m.phrase for m in f.mentions]
('frequency', 'how often', ['strength training'])
>>> parse("pht stands for what?").kind
'definition'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from assistant.retrieval.terms import STOPWORDS, generic_stems, stems
from assistant.retrieval.vocabulary import Vocabulary, vocabulary

TOPICAL = (
    "treatment", "activity", "exercise", "equipment", "test", "condition", "person", "management", "everyday", "symptom",
)
# "body" (knee, hip, calves...) names where as often as what ("build my calves"): it counts as a
# known word of the vocabulary, not as a topic the sources must name; "domain" words never count.
# what tells scope a question is about managing the tendon, even without naming it
SCOPE_EVIDENCE = ("treatment", "activity", "exercise", "equipment", "test", "management")
# "as a 50-year-old woman, can I...": a person the patient says they are is background, not the topic;
# so is a condition they say they have ("I have diabetes, can I run?") and anything they deny ("no
# numbness or weakness")
_SELF = re.compile(r"\b(?:as an?|i'?m an?|i am an?|im an?|being an?|me,? an?)\s+(?:[\w-]+\s+){0,3}$", re.I)
_HAVE = re.compile(r"\b(?:i have|i've got|ive got|i have got|i've had|i had|i get|i got|with my|diagnosed with)\s+(?:[\w-]+\s+){0,2}$", re.I)
_DENIED = re.compile(r"\b(?:no|not|without|never|nor|neither|none of|free of|n't (?:have|had|got|get|feel))\s+(?:any\s+|a\s+|the\s+)?(?:[\w-]+\s+(?:or|and|,)\s+)?$", re.I)

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")

# -- the kind of answer asked for ---------------------------------------------------------------

_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("duration", re.compile(
        r"\bhow long\b|\bhow many (?:more )?(?:days|weeks|months|years|hours|minutes|seconds)\b|\bhow soon\b|"
        r"\bhow quickly\b|\bhow much time\b|\btime ?frame\b|\btime ?line\b", re.I)),
    ("timing", re.compile(r"\bwhen (?:will|can|could|should|do|does|might|would|am|is|are)\b", re.I)),
    ("frequency", re.compile(
        r"\bhow often\b|\bhow many times\b|\bhow frequently\b|\bhow regularly\b|\btimes (?:a|per|each) (?:day|week|month)\b"
        r"|\b(?:every|each) (?:day|week)\?", re.I)),
    ("count", re.compile(r"\bhow many\b", re.I)),
    # "is it normal that it hurts more the next day?": about what a sensation means
    ("sensation", re.compile(
        r"\b(?:is|are) (?:it|that|this|these|they) (?:normal|expected|usual|a (?:bad |good |normal )?sign)\b|"
        r"\bshould i (?:be )?(?:worried|worry|concerned)\b|\bis (?:it|that|this) (?:worrying|something to worry about)\b|"
        r"\bnormal (?:to|that|for)\b|\b(?:is|could) (?:this|that|it) (?:be )?(?:pht|my pht|tendinopathy|proximal hamstring tendinopathy|my tendon)\b",
        re.I)),
    ("amount", re.compile(r"\bhow (?:much|heavy|far|hard|intense|fast|big|light)\b|\bwhat weight\b|\bwhich weight\b", re.I)),
)
_WHAT_ANYWHERE = re.compile(r"(?i)\bwhat(?:'s|’s| is| are)? (?:even |exactly |actually |really )?(?:is |are )?(?=\S)")
_DEFINITION = re.compile(
    r"^\s*(?:so\s+|and\s+|but\s+)?(?:what(?:'s|’s| is| are| does| mean| means)|whats|define|definition|meaning of|explain what)\b"
    r"|\bwhat (?:even|exactly|actually|really) (?:is|are)\b"
    r"|\bsame (?:thing|as)\b|\b(?:also|people|they|doctors|physios) call\b|\bcalled\b|\banother name\b"
    r"|\bstands? for\b|\bfull (?:name|form)\b|\babbreviat\w*\b|\bwhat (?:does|do) .{1,40}\bmean\b|\bmeaning\b|\bdefin\w*\b",
    re.I,
)
# "what is an isometric?": the one thing named is the whole of what is asked
_WHAT_IS = re.compile(r"(?i)^(?:so |and )?what(?:'s|’s|s| is| are)\s+(?:an?\s+|the\s+)?([\w-]+(?:\s[\w-]+)?)\s*\??$")
# words that only say how a definition is asked for ("what does PHT stand for", "the full name")
_DEFINITION_FRAME = frozenset(stems("stand stands full name form term mean means meaning define definition "
                                    "abbreviation short acronym letters called call explain exactly".split()))


@dataclass(frozen=True)
class Mention:
    """One thing a question names: its words as typed, their stems, and its category."""

    phrase: str
    keys: tuple[str, ...]
    category: str  # a focus category of the vocabulary, or "word" for any other specific word
    start: int
    group: int = -1  # its synonym group, if any
    name: str = ""  # how a reply names it (the vocabulary's word for it), or the words as typed

    @property
    def topical(self) -> bool:
        return self.category in TOPICAL and not self.self_description

    @property
    def counts(self) -> bool:
        """Whether it says anything about *which* passage answers (the condition's own words don't)."""
        return self.category != "domain"

    self_description: bool = False

    @property
    def display(self) -> str:
        """The patient's words, or for an activity the vocabulary's form ("cycle" -> "cycling")."""
        return self.name if self.name and self.category in ("activity", "everyday", "management") else self.phrase


# what a patient says they feel, in their words: the sentence that explains it must use one of them
FELT = re.compile(
    r"\b(pain\w*|hurt\w*|sore\w*|ach\w*|tight\w*|stiff\w*|weak\w*|heavy|heaviness|tired\w*|cramp\w*|pop\w*|"
    r"click\w*|burn\w*|throb\w*|numb\w*|tingl\w*|swell\w*|swollen|bruis\w*|twinge\w*|niggle\w*)\b",
    re.I,
)
_MEASURED = re.compile(r"(?i)\bhow (?:much|many)\s+(?:more\s+)?([a-z]+)|\bhow long (?:a|an|the|my|your)\s+([a-z]+)")
# what an implicit "how long will it take?" is about in this domain: getting better
_IMPLIED_DURATION = "recover"


@dataclass(frozen=True)
class Focus:
    text: str
    kind: str  # definition, duration, frequency, count, amount or general
    kind_phrase: str
    mentions: tuple[Mention, ...]  # in the question itself
    context: tuple[Mention, ...] = ()  # in the turn a follow-up points back to
    measured: tuple[str, ...] = ()  # "how much pain": what the number or amount is of
    background: bool = False  # the message says something before it asks ("I only run. Is that enough?")

    @property
    def topical(self) -> tuple[Mention, ...]:
        return tuple(m for m in self.mentions if m.topical)


@dataclass(frozen=True)
class Lexicon:
    """The vocabulary, compiled: phrases by stems, synonym groups, frame words."""

    phrases: dict[tuple[str, ...], tuple[str, int]]  # stems -> (category, synonym group or -1)
    names: dict[tuple[str, ...], str]  # stems -> how a reply names it (the first entry with those stems)
    groups: tuple[tuple[tuple[str, ...], ...], ...]  # synonym group -> the stems of its phrases
    frame: frozenset[str]
    longest: int

    @classmethod
    def of(cls, v: Vocabulary) -> "Lexicon":
        phrases: dict[tuple[str, ...], tuple[str, int]] = {}
        names: dict[tuple[str, ...], str] = {}
        groups = []
        for g, group in enumerate(v.synonyms):
            keys = tuple(_phrase_keys(p) for p in group)
            groups.append(tuple(k for k in keys if k))
            for k in keys:
                if k:
                    phrases.setdefault(k, ("word", g))
        for category, entries in v.focus.items():
            for entry in entries:
                if isinstance(entry, tuple):  # a group: one thing said in several ways
                    keys = tuple(k for k in (_phrase_keys(p) for p in entry) if k)
                    g = len(groups)
                    groups.append(keys)
                    for k, p in zip(keys, entry):
                        phrases[k] = (category, g)
                        names.setdefault(k, p)
                    continue
                k = _phrase_keys(entry)
                if k:
                    _, g = phrases.get(k, ("word", -1))
                    phrases[k] = (category, g)
                    names.setdefault(k, entry)
        frame = frozenset(stems([w for w in v.frame_words]))
        return cls(phrases, names, tuple(groups), frame, max((len(k) for k in phrases), default=1))

    def group_of(self, keys: tuple[str, ...], group: int) -> tuple[tuple[str, ...], ...]:
        """The stems of every phrase meaning the same as ``keys`` (itself included)."""
        if group < 0:
            return (keys,)
        return self.groups[group] if keys in self.groups[group] else (keys, *self.groups[group])


def _phrase_keys(text: str) -> tuple[str, ...]:
    return tuple(stems([w.lower() for w in _TOKEN.findall(text.replace("-", " "))]))


_LEXICONS: dict[int, tuple[Vocabulary, Lexicon]] = {}


def lexicon() -> Lexicon:
    """The compiled vocabulary of this process's settings (made once per vocabulary)."""
    v = vocabulary()
    cached = _LEXICONS.get(id(v))
    if cached is None or cached[0] is not v:
        cached = _LEXICONS[id(v)] = (v, Lexicon.of(v))
    return cached[1]


def kind_of(text: str) -> tuple[str, str]:
    """``(kind, the words that ask for it)``; ``("general", "")`` when no particular kind."""
    for kind, pattern in _KINDS:
        m = pattern.search(text)
        if m:
            return kind, m.group(0).lower()
    return "general", ""


def question_clause(text: str) -> str:
    """The part of a message that asks: its sentences with a question mark (or the last sentence),
    so background ("I sit at a desk all day.") does not become the focus."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    asking = [s for s in sentences if s.endswith("?")]
    return " ".join(asking) if asking else (sentences[-1] if sentences else text)


def mentions_in(text: str, lex: Lexicon | None = None) -> list[Mention]:
    """Everything ``text`` names, in order: vocabulary phrases first (longest match), then other
    specific words (not stopwords, not the domain's own words, not frame words)."""
    lex = lex or lexicon()
    tokens = [(m.group(0), m.start()) for m in _TOKEN.finditer(text.replace("-", " "))]
    keys = stems([t.lower().replace("’", "'") for t, _ in tokens])
    generic = generic_stems()
    out: list[Mention] = []
    i = 0
    while i < len(tokens):
        for n in range(min(lex.longest, len(tokens) - i), 0, -1):
            span = tuple(keys[i : i + n])
            found = lex.phrases.get(span)
            if found is None or (n == 1 and (tokens[i][0].lower() in STOPWORDS or (span[0] in generic and found[1] < 0))):
                continue  # a domain word counts only where the vocabulary groups it ("physio": see a professional)
            category, group = found
            first, last = tokens[i], tokens[i + n - 1]
            flat = text.replace("-", " ")
            phrase = flat[first[1] : last[1] + len(last[0])]
            before = flat[: first[1]]
            own = (
                (category == "person" and bool(_SELF.search(before)))
                or (category in ("condition", "symptom") and bool(_HAVE.search(before)))
                or bool(_DENIED.search(before))
            )
            out.append(Mention(phrase, span, category, first[1], group, lex.names.get(span, ""), own))
            i += n
            break
        else:
            word, start = tokens[i]
            key = keys[i]
            lower = word.lower().replace("’", "'")
            if (
                lower not in STOPWORDS
                and lower.replace("'", "") not in STOPWORDS
                and key not in generic
                and key not in lex.frame
                and len(key) > 1
                and not key.isdigit()
            ):
                out.append(Mention(word, (key,), "word", start))
            i += 1
    return out


def parse(question: str, context: str = "") -> Focus:
    """The focus of ``question``; ``context`` is the earlier turn a follow-up points back to."""
    lex = lexicon()
    clause = question_clause(question)
    kind, phrase = kind_of(clause)
    asked = set(stems(phrase.split()))  # "how heavy": the kind, not a thing asked about
    mentions = [m for m in mentions_in(clause, lex) if m.counts and not set(m.keys) <= asked]
    if not mentions:  # "I can't do lunges without pain. What else can I do?": what it says before is background
        background = [m for m in mentions_in(question, lex) if m.counts and not set(m.keys) <= asked]
        mentions = [replace(m, self_description=True) if clause != question else m for m in background]
    if kind == "general":
        for part in re.split(r"[,;]|\s[-–]\s", clause):
            if not _DEFINITION.search(part):
                continue
            asked_part = _DEFINITION.split(part, maxsplit=1)[-1] if _WHAT_ANYWHERE.search(part) else part
            specific = [m for m in mentions_in(asked_part, lex) if not set(m.keys) <= _DEFINITION_FRAME]
            term = _WHAT_IS.match(part.strip())
            one = (
                len(specific) == 1 and term is not None and specific[0].group < 0
                and specific[0].phrase.lower() in term.group(1).lower() and not term.group(0).lower().count(" the ")
            )
            if not specific or one or (len(specific) == 1 and specific[0].category == "domain"):
                kind, phrase, mentions = "definition", "what it is", specific
                break
    measured: tuple[str, ...] = ()
    m = _MEASURED.search(clause) if kind in ("count", "amount", "duration") else None
    word = (m.group(1) or m.group(2)).lower() if m else ""
    if word and word not in STOPWORDS:
        key = tuple(stems([word]))
        if key[0] not in lex.frame or key[0] in generic_stems():
            measured = key
    context_mentions = tuple(m for m in mentions_in(context, lex) if m.counts) if context else ()
    if kind == "duration" and not mentions and not any(m.topical or m.group >= 0 for m in context_mentions):
        mentions = [m for m in mentions_in(_IMPLIED_DURATION, lex)]  # "how long will it take?"
    return Focus(
        text=question,
        kind=kind,
        kind_phrase=phrase,
        measured=measured,
        background=clause.strip() != question.strip(),
        mentions=tuple(mentions),
        context=context_mentions,
    )
