"""Calibrate answerability's two relevance bars on the suites it may be tuned on (docs/retrieval.md).

For each pair of bars (the relevance a passage needs when a sentence of it names the question's
focus, and the relevance a question naming nothing particular needs) it runs every tuned suite of
both corpora (evals/suites without the held-out ones, and the leaflet's dev suite) and prints
status accuracy, how often a question the sources don't cover is answered, and the right first
source. Held-out suites (heldout_*) are never read here.

    .venv/bin/python benchmarks/calibrate_answerability.py [--json docs/answerability_calibration.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = {
    "podcast": (ROOT / "corpus", ROOT / "evals" / "suites"),
    "leaflet": (ROOT / "evals" / "leaflet" / "corpus", ROOT / "evals" / "leaflet" / "suites"),
}
FOCUS_BARS = (0.1, 0.2, 0.3, 0.4, 0.5)
PLAIN_BARS = (0.35, 0.41, 0.5)


def tuned(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".yaml") and not p.name.startswith("heldout_"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    from assistant import Assistant, Settings
    from assistant.answerability.judge import FocusAnswerability
    from assistant.embed.minilm import MiniLMEmbeddings
    from assistant.evaluation import metrics, runner, suite

    embeddings = MiniLMEmbeddings()
    rows = []
    for name, (corpus, suites) in CORPORA.items():
        data = Path(tempfile.mkdtemp(prefix=f"pht-calibrate-{name}-"))
        loaded = suite.load_suites(tuned(suites))
        cases = suite.select(loaded, None)
        base = Assistant.from_settings(
            Settings(data_dir=data, corpus_dir=corpus), embeddings=embeddings, progress=False, notify=lambda m: None
        )
        for focus_bar in FOCUS_BARS:
            for plain_bar in PLAIN_BARS:
                stage = FocusAnswerability(threshold=plain_bar, focus_threshold=focus_bar, keep=base.settings.top_k + 2)
                a = Assistant(base.settings, embeddings=embeddings, index=base.index, answerability=stage)
                records = runner.run_cases(cases, runner.LocalTarget(a), progress=False)
                m = metrics.compute(records)
                rows.append({
                    "corpus": name, "focus_relevance_threshold": focus_bar, "relevance_threshold": plain_bar,
                    "cases": len(records),
                    "status_accuracy": m["status_accuracy"]["value"],
                    "answered_when_not_covered": m["answered_when_not_covered"]["value"],
                    "first_source_accuracy": m["first_source_accuracy"]["value"],
                })  # fmt: skip
                r = rows[-1]
                print(
                    f"{name:8} focus {focus_bar:.2f} plain {plain_bar:.2f}: status {r['status_accuracy']:.3f}, "
                    f"answered when not covered {r['answered_when_not_covered']:.3f}, first source {r['first_source_accuracy']:.3f}"
                )
        base.close()
    if args.json:
        args.json.write_text(json.dumps({"tuned_on": "every suite but heldout_*", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
