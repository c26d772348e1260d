"""Triage before retrieval: urgent red flags and clinician-only decisions (the safety stage).

Triage never depends on the corpus: a red flag is a red flag whatever the documents say. It runs
in this order, and the first step that decides wins (docs/safety.md):

1. red-flag rules on the question, then on every earlier user turn, newest first;
2. clinician-only rules on the question;
3. red-flag examples: the question's vector against each flag's example phrasings, deciding only
   when the question also affirms one of that flag's own symptom words (embeddings barely see
   negation); then earlier user turns that affirm a symptom word, the same way;
4. clinician-only examples: near an example, nearer to it than to any on-topic example by a
   margin, and naming that kind of decision in its own words.

The rules are data (:mod:`assistant.safety.rules`). Each decision names the rule or example that
made it, for audit.

>>> from assistant.safety.triage import triage_rules
>>> triage_rules("I suddenly can't control my bladder and my buttock is numb").decision
'urgent'
>>> triage_rules("no numbness, no bladder problems, just a deep ache when I sit").decision
'continue'
>>> triage_rules("had a numb bum last year but it's gone now, can I run?").decision
'continue'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from assistant.answer import Triage
from assistant.safety.rules import Rules, load_rules

CONTINUE = "rules:no-flag"


def triage_rules(question: str, earlier: list[str] | None = None, rules: Rules | None = None) -> Triage:
    """Rule-based triage: red flags in the question or any earlier user turn, then clinician-only
    decisions in the question. ``earlier`` are the earlier user turns, oldest first."""
    rules = rules or load_rules()
    for text in [question, *(earlier or [])[::-1]]:
        found = rules.red_flag(text)
        if found:
            flag, words = found
            where = "question" if text is question else "earlier turn"
            return Triage(decision="urgent", rule=f"red-flag:{flag.name}", matched=f"{words} ({where})")
    found_decision = rules.clinician_decision(question)
    if found_decision:
        decision, words = found_decision
        return Triage(decision="out_of_scope", rule=f"clinician-only:{decision.name}", matched=words)
    return Triage(decision="continue", rule=CONTINUE)


class ExampleTriage:
    """Every flag's and decision's example phrasings, embedded once, compared with a vector."""

    def __init__(self, embed: Callable[[list[str]], Any], rules: Rules, topic_examples: Sequence[str]) -> None:
        import numpy as np

        self.rules = rules
        self._urgent = [(f.name, text) for f in rules.flags for text in f.examples]
        self._clinician = [(d.name, text) for d in rules.decisions for text in d.examples]
        texts = [t for _, t in self._urgent] + [t for _, t in self._clinician] + list(topic_examples)
        vectors = np.asarray(embed(texts), dtype=np.float32)
        a, b = len(self._urgent), len(self._urgent) + len(self._clinician)
        self._u, self._c, self._topic = vectors[:a], vectors[a:b], vectors[b:]

    def urgent_scores(self, vector: Any) -> list[tuple[float, str, str]]:
        """(similarity, flag, example) for the best example of each flag, best first."""
        import numpy as np

        sims = self._u @ np.asarray(vector, dtype=np.float32)
        best: dict[str, tuple[float, str, str]] = {}
        for (flag, text), sim in zip(self._urgent, sims):
            if flag not in best or sim > best[flag][0]:
                best[flag] = (float(sim), flag, text)
        return sorted(best.values(), reverse=True)

    def urgent(self, text: str, vector: Any, threshold: float, where: str = "question") -> Triage | None:
        for sim, name, example in self.urgent_scores(vector):
            if sim < threshold:
                break
            flag = self.rules.flag(name)
            words = self.rules.symptom_words(text, flag) if flag else ""
            if words:
                return Triage(
                    decision="urgent",
                    rule=f"exemplar:{name}",
                    matched=f'"{example}" (similarity {sim:.2f}; symptom words: {words}; {where})',
                )
        return None

    def topic_similarity(self, vector: Any) -> float:
        import numpy as np

        return float((self._topic @ np.asarray(vector, dtype=np.float32)).max()) if len(self._topic) else 0.0

    def clinician(self, text: str, vector: Any, threshold: float, margin: float) -> Triage | None:
        """Out of scope when the question is near a clinician-only example, nearer than to any
        ordinary PHT question by ``margin``, and names that kind of decision in its own words."""
        import numpy as np

        if not len(self._c):
            return None
        sims = self._c @ np.asarray(vector, dtype=np.float32)
        i = int(sims.argmax())
        sim, (name, example) = float(sims[i]), self._clinician[i]
        topic = self.topic_similarity(vector)
        if sim < threshold or sim - topic < margin:
            return None
        decision = self.rules.decision(name)
        words = self.rules.names_decision(text, decision) if decision else ""
        if not words:
            return None
        return Triage(
            decision="out_of_scope",
            rule=f"exemplar:clinician-{name}",
            matched=f'"{example}" (similarity {sim:.2f}, {sim - topic:+.2f} over topic; words: {words})',
        )


class RuleTriage:
    """The safety stage: red-flag and clinician-only rules, then their examples (see the module).

    Implements :class:`assistant.contracts.SafetyTriage`.
    """

    def __init__(
        self,
        embedder: Any,
        *,
        rules: Rules | None = None,
        topic_examples: Sequence[str] = (),
        urgent_similarity: float = 0.70,
        clinician_similarity: float = 0.60,
        clinician_margin: float = 0.15,
    ) -> None:
        self.embedder = embedder
        self.rules = rules or load_rules()
        self.topic_examples = tuple(topic_examples)
        self.urgent_similarity = urgent_similarity
        self.clinician_similarity = clinician_similarity
        self.clinician_margin = clinician_margin
        self._examples: ExampleTriage | None = None

    def warm_up(self) -> None:
        if self._examples is None:
            # fixed texts: their vectors are kept in the model cache (embed_fixed), not encoded per start
            embed = getattr(self.embedder, "embed_fixed", self.embedder.embed_documents)
            self._examples = ExampleTriage(embed, self.rules, self.topic_examples)

    @property
    def examples(self) -> ExampleTriage:
        self.warm_up()
        assert self._examples is not None
        return self._examples

    def triage(self, question: str, vector: Sequence[float], earlier: list[str]) -> Triage:
        decision = triage_rules(question, earlier, self.rules)
        if decision.decision != "continue":
            return decision
        examples = self.examples
        found = examples.urgent(question, vector, self.urgent_similarity)
        if found is None:
            mentioned = [text for text in earlier[::-1] if self.rules.mentions_any_symptom(text)]
            vectors = self.embedder.embed_documents(mentioned) if mentioned else []
            for text, earlier_vector in zip(mentioned, vectors):
                found = examples.urgent(text, earlier_vector, self.urgent_similarity, where="earlier turn")
                if found is not None:
                    break
        found = found or examples.clinician(question, vector, self.clinician_similarity, self.clinician_margin)
        if found is not None:
            return found
        scores = examples.urgent_scores(vector)
        near, flag, _ = scores[0] if scores else (0.0, "none", "")
        return Triage(decision="continue", rule=CONTINUE, matched=f"nearest red-flag example {flag} {near:.2f}")
