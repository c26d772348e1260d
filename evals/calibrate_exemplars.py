"""Calibrate the exemplar thresholds of triage on the JSONL suites in evals/suites (docs/safety.md).

    .venv/bin/python -m evals.calibrate_exemplars

The exemplar layer is measured on its own, as if no rule had matched: for each threshold, the
share of urgent cases it would catch and the share of every other case it would wrongly make
urgent (or, for clinician-only exemplars, out of scope). The chosen threshold is the lowest one
with no false decision on any suite, plus a safety margin of 0.05, rounded up to a multiple of 0.05
and never below 0.60: the rules already carry recall, and the exemplars must never cost an
answerable question.
"""

from __future__ import annotations

import math

import numpy as np

from evals.conftest import SUITES, load_set

MARGIN = 0.05
FLOOR = 0.60  # below this, two sentences are not "very similar" for this model


def main() -> None:
    from assistant.embed.minilm import MiniLMEmbeddings
    from assistant.safety.rules import load_rules
    from assistant.safety.scope import ScopeWords
    from assistant.safety.triage import ExampleTriage
    from assistant.settings import Settings

    settings = Settings()
    emb = MiniLMEmbeddings()
    emb.warm_up()
    exemplars = ExampleTriage(emb.embed_documents, load_rules(settings.policy_dir), ScopeWords.load(settings.policy_dir).topic_examples)

    urgent_pos, urgent_neg, clin_pos, clin_neg = [], [], [], []
    for path in sorted(p for p in SUITES.glob("*.jsonl") if not p.name.startswith("heldout_")):
        for row in load_set(path.name):
            q = row["question"]
            v = np.asarray(emb.embed_query(q))
            # the highest similarity at which an urgent exemplar would decide (guard included)
            hit = exemplars.urgent(q, v, threshold=0.0)
            u = float(hit.matched.split("similarity ")[1].split(";")[0]) if hit else 0.0
            (urgent_pos if row["expected_status"] == "urgent" else urgent_neg).append((u, row["id"]))
            c = exemplars.clinician(q, v, 0.0, settings.clinician_exemplar_margin)
            cs = float(c.matched.split("similarity ")[1].split(",")[0]) if c else 0.0
            if "clinician-only" in row.get("tags", []):
                clin_pos.append((cs, row["id"]))
            elif row["expected_status"] != "out_of_scope":
                clin_neg.append((cs, row["id"]))

    for label, pos, neg, current in (
        ("urgent exemplars", urgent_pos, urgent_neg, settings.urgent_exemplar_similarity),
        ("clinician-only exemplars", clin_pos, clin_neg, settings.clinician_exemplar_similarity),
    ):
        print(f"\n{label}: {len(pos)} positive cases, {len(neg)} others")
        print("threshold  caught alone  false decisions")
        for t in np.arange(0.50, 0.86, 0.05):
            caught = sum(s >= t for s, _ in pos) / len(pos)
            false = sum(s >= t for s, _ in neg) / len(neg)
            print(f"  {t:.2f}      {caught:6.1%}        {false:6.1%}")
        worst = max(neg)
        print(f"highest score among the others: {worst[0]:.3f} ({worst[1]})")
        chosen = max(math.ceil((worst[0] + MARGIN) * 20) / 20, FLOOR)
        print(f"chosen: {chosen:.2f} (highest other + {MARGIN}, rounded up to 0.05, at least {FLOOR}); setting now {current:.2f}")


if __name__ == "__main__":
    main()
