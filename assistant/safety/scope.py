"""Scope: whether a question is about PHT, its rehab and running at all (the scope stage).

A question that names another body part and nothing of the hamstring is another condition
("tennis elbow"). Otherwise it is on topic when it is similar enough to the sources or to the
on-topic example questions, the bar lowered when it names the condition, training or treatment,
or follows earlier turns (the words, examples and bars are data: ``assistant/policy/scope.yaml``).

>>> words = ScopeWords.load()
>>> words.activity("are hip thrusts ok?"), words.other_body_part("I have tennis elbow")
(['hip thrusts'], 'elbow')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant import policy
from assistant.answer import Triage
from assistant.contracts import Query
from assistant.errors import PolicyInvalid
from assistant.safety.text import normalise

GATES = ("plain", "focus_word", "domain_word", "activity_word", "follow_up", "follow_up_with_word")


@dataclass(frozen=True)
class ScopeWords:
    """The scope policy, compiled."""

    domain_re: re.Pattern[str]
    activity_re: re.Pattern[str]
    other_body_re: re.Pattern[str]
    hamstring_re: re.Pattern[str]
    topic_examples: tuple[str, ...]
    gates: dict[str, float]
    weak: frozenset[tuple[str, ...]] = frozenset()
    off_topic_examples: tuple[str, ...] = ()

    @classmethod
    def load(cls, policy_dir: Path | str | None = None) -> "ScopeWords":
        data = policy.load("scope", policy_dir)

        def words(key: str) -> re.Pattern[str]:
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise PolicyInvalid(f"scope.yaml: `{key}` must be a regular expression of words.")
            try:
                return re.compile(rf"\b({value})\b")
            except re.error as exc:
                raise PolicyInvalid(f"scope.yaml: `{key}` is not a valid regular expression ({exc}).") from None

        gates = data.get("gates") or {}
        missing = [g for g in GATES if not isinstance(gates.get(g), (int, float))]
        if missing:
            raise PolicyInvalid(f"scope.yaml: `gates` needs a number for {', '.join(missing)}.")
        examples = data.get("topic_examples") or []
        if not examples or not all(isinstance(e, str) and e.strip() for e in examples):
            raise PolicyInvalid("scope.yaml: `topic_examples` must be a non-empty list of questions.")
        from assistant.retrieval.terms import stems, words as tokens

        weak = frozenset(tuple(stems(tokens(str(w)))) for w in data.get("weak_evidence") or [])
        off = data.get("off_topic_examples") or []
        if not all(isinstance(e, str) and e.strip() for e in off):
            raise PolicyInvalid("scope.yaml: `off_topic_examples` must be a list of questions.")
        return cls(
            weak=weak,
            off_topic_examples=tuple(off),
            domain_re=words("domain_words"),
            activity_re=words("activity_words"),
            other_body_re=words("other_body_parts"),
            hamstring_re=words("hamstring_words"),
            topic_examples=tuple(examples),
            gates={g: float(gates[g]) for g in GATES},
        )

    def on_topic(self, text: str) -> list[str]:
        """Words naming the condition or the body part ("hamstring", "sit bone", "physio")."""
        return [m.group(0) for m in self.domain_re.finditer(normalise(text))]

    def activity(self, text: str) -> list[str]:
        """Training and treatment words ("hip thrusts", "gym", "ice")."""
        return [m.group(0) for m in self.activity_re.finditer(normalise(text))]

    def focus_words(self, text: str) -> list[str]:
        """Treatments, activities, exercises, equipment, tests and ways of managing the tendon the
        question names (the vocabulary's ``focus`` lists): "ice", "cycling", "running shoes"."""
        from assistant.answerability.focus import SCOPE_EVIDENCE, mentions_in, question_clause

        return [
            m.phrase
            for m in mentions_in(question_clause(text))
            if m.category in SCOPE_EVIDENCE and m.keys not in self.weak
        ]

    def other_body_part(self, text: str) -> str:
        """The other body part a question is about, if it names one and nothing of the hamstring."""
        norm = normalise(text)
        m = self.other_body_re.search(norm)
        return m.group(0) if m and not self.hamstring_re.search(norm) else ""


class ScopeGate:
    """The scope stage (:class:`assistant.contracts.Scope`)."""

    def __init__(self, embedder: Any, *, words: ScopeWords | None = None, similarity: float = 0.42) -> None:
        self.embedder = embedder
        self.words = words or ScopeWords.load()
        self.similarity = similarity
        self._examples: Any = None

    def warm_up(self) -> None:
        if self._examples is None:
            import numpy as np

            on, off = list(self.words.topic_examples), list(self.words.off_topic_examples)
            # fixed texts: their vectors are kept in the model cache (embed_fixed), not encoded per start
            embed = getattr(self.embedder, "embed_fixed", self.embedder.embed_documents)
            vectors = np.asarray(embed(on + off), dtype=np.float32)
            self._off = vectors[len(on) :]
            self._examples = vectors[: len(on)]

    def similarity(self, vector: Sequence[float], nearest: float) -> float:
        """How near a question is to PHT: its nearest sentence of the sources or topic example."""
        import numpy as np

        self.warm_up()
        return max(nearest, float((self._examples @ np.asarray(vector, dtype=np.float32)).max()))

    def judge(self, query: Query, nearest: float, follow_up: bool) -> Triage:
        import numpy as np

        text = query.focus
        other = self.words.other_body_part(text)
        if other:
            return Triage(decision="out_of_scope", rule="scope:other-body-part", matched=other)
        self.warm_up()
        vector = np.asarray(query.vector, dtype=np.float32) if text.strip() else None
        similarity = 0.0 if vector is None else max(nearest, float((self._examples @ vector).max()))
        elsewhere = float((self._off @ vector).max()) if vector is not None and len(self._off) else 0.0
        domain, activity = self.words.on_topic(text), self.words.activity(text)
        # a training word counts only when the question is nearer to PHT than to other things
        focus = self.words.focus_words(text) if similarity > elsewhere else []
        activity = activity if similarity > elsewhere else []
        g, bar = self.words.gates, self.similarity
        on_topic = (
            similarity >= bar * g["plain"]
            or (bool(focus) and similarity >= bar * g["focus_word"])
            or (bool(domain) and similarity >= bar * g["domain_word"])
            or (bool(activity) and similarity >= bar * g["activity_word"])
            or (follow_up and similarity >= bar * g["follow_up"])
            or (follow_up and bool(domain or activity) and similarity >= bar * g["follow_up_with_word"])
        )
        named = ", ".join(dict.fromkeys(domain + activity + focus)) or "none"
        found = f"similarity {similarity:.2f} (elsewhere {elsewhere:.2f}); topic words: {named}"
        if not on_topic:
            return Triage(decision="out_of_scope", rule="scope:off-topic", matched=found)
        return Triage(decision="continue", rule="scope:on-topic", matched=found)

