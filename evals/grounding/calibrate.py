"""Calibrate the grounding check on hand-written faithful and unfaithful paraphrases.

    .venv/bin/python evals/grounding/calibrate.py            # the table, the choice, both halves
    .venv/bin/python evals/grounding/calibrate.py --json out.json

Every sentence of ``paraphrases.yaml`` cites the whole passage that holds its anchor (as the
language-model composer shows passages to the model). The check's evidence is measured once per
sentence with the packaged model (:func:`assistant.grounding.support.evidence`); then, for every
pair of thresholds (similarity to the closest cited sentence, coverage of the sentence's specific
words), a sentence is accepted when no rule fired and both are met. Groups (an anchor and its
paraphrases) are split into two halves, alternately in file order within each corpus: the
thresholds are chosen on the *tune* half only and reported on both.

The choice: the highest recall (faithful sentences accepted) among the pairs whose precision
(accepted sentences that are faithful) is at least ``--min-precision`` on the tune half, ties to
the stricter pair. A patient is better served by an extractive reply than by one invented sentence,
so precision comes first. Whole sentences quoted word for word are accepted at any threshold (the
extractive composer's replies); the script checks that too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPORA = {"podcast": ROOT / "corpus", "leaflet": ROOT / "evals" / "leaflet" / "corpus"}
SIMILARITIES = [round(0.40 + 0.02 * i, 2) for i in range(26)]  # 0.40 .. 0.90
COVERAGES = [round(0.30 + 0.05 * i, 2) for i in range(15)]  # 0.30 .. 1.00


def load_pairs(path: Path = HERE / "paraphrases.yaml") -> list[dict]:
    """One row per sentence: corpus, group, half, kind, faithful, sentence and the cited passage."""
    import yaml

    from assistant.corpus.parse import load_corpus

    chunks = {name: [c for d in load_corpus(folder).documents for c in d.chunks()] for name, folder in CORPORA.items()}
    rows, seen = [], defaultdict(int)
    for group in yaml.safe_load(path.read_text(encoding="utf-8")):
        corpus, anchor = group["corpus"], group["anchor"]
        found = [c for c in chunks[corpus] if anchor.replace("’", "'") in c.text.replace("’", "'")]
        if len(found) != 1:
            raise SystemExit(f"{path.name}: the anchor {anchor!r} is in {len(found)} passages of the {corpus} corpus, not one")
        half = "tune" if seen[corpus] % 2 == 0 else "held-out"
        seen[corpus] += 1
        for kind, sentence in group["pairs"]:
            rows.append({
                "corpus": corpus, "group": anchor, "half": half, "kind": kind, "faithful": kind == "faithful",
                "sentence": sentence, "passage": found[0].text, "source": found[0].source,
            })  # fmt: skip
    return rows


def measure(rows: list[dict], embed) -> None:
    from assistant.grounding.support import evidence

    for row in rows:
        e = evidence(row["sentence"] + " [1]", [row["passage"]], embed)
        row.update(verbatim=e.verbatim, rule=e.rule or e.empty, similarity=round(e.similarity, 4), coverage=round(e.coverage, 4))


def accepted(row: dict, similarity: float, coverage: float) -> bool:
    if row["verbatim"]:
        return True
    return not row["rule"] and row["similarity"] >= similarity and row["coverage"] >= coverage


def figures(rows: list[dict], similarity: float, coverage: float) -> dict:
    faithful = [r for r in rows if r["faithful"]]
    unfaithful = [r for r in rows if not r["faithful"]]
    tp = sum(accepted(r, similarity, coverage) for r in faithful)
    fp = sum(accepted(r, similarity, coverage) for r in unfaithful)
    by_kind = defaultdict(lambda: [0, 0])
    for r in unfaithful:
        by_kind[r["kind"]][0] += not accepted(r, similarity, coverage)
        by_kind[r["kind"]][1] += 1
    return {
        "pairs": len(rows), "faithful": len(faithful), "unfaithful": len(unfaithful),
        "accepted_faithful": tp, "accepted_unfaithful": fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / len(faithful), 4) if faithful else 0.0,
        "unfaithful_caught": round(1 - fp / len(unfaithful), 4) if unfaithful else 1.0,
        "caught_by_kind": {k: f"{c}/{n}" for k, (c, n) in sorted(by_kind.items())},
    }  # fmt: skip


def _pr(f: dict) -> str:
    return f"{f['precision']:.3f}/{f['recall']:.3f}"


def choose(rows: list[dict], min_precision: float) -> tuple[float, float]:
    best = None
    for s in SIMILARITIES:
        for c in COVERAGES:
            f = figures(rows, s, c)
            if f["precision"] < min_precision:
                continue
            key = (f["recall"], f["precision"], s, c)  # ties: the stricter pair
            if best is None or key > best[0]:
                best = (key, (s, c))
    if best is None:
        raise SystemExit(f"no thresholds reach precision {min_precision} on the tune half")
    return best[1]


def verbatim_sentences_pass(embed) -> int:
    """Every whole sentence of every passage, every run of two, and every two list items as the extractive
    composer quotes them (bullets and line breaks kept) are accepted word for word."""
    from assistant.corpus.parse import load_corpus
    from assistant.grounding.support import sentence_support, source_sentences

    n = 0
    for folder in CORPORA.values():
        for doc in load_corpus(folder).documents:
            for chunk in doc.chunks():
                sentences = source_sentences(chunk.text)
                lines = [line for line in chunk.text.splitlines() if line.strip()]
                runs = sentences + [f"{a} {b}" for a, b in zip(sentences, sentences[1:])]
                runs += [f"{a}\n{b}" for a, b in zip(lines, lines[1:]) if a.lstrip().startswith("- ")]  # list items as quoted
                for s in runs:
                    if not sentence_support(s + " [1]", [chunk.text], embed).supported:
                        raise SystemExit(f"a word-for-word sentence was refused: {s!r}")
                    n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-precision", type=float, default=0.97, help="precision the choice must keep on the tune half")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--misses", action="store_true", help="list the tune half's sentences the chosen thresholds get wrong")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from assistant.embed.minilm import MiniLMEmbeddings
    from assistant.grounding.support import Thresholds

    embedder = MiniLMEmbeddings()
    rows = load_pairs()
    measure(rows, embedder.embed_documents)
    tune = [r for r in rows if r["half"] == "tune"]
    held = [r for r in rows if r["half"] == "held-out"]
    similarity, coverage = choose(tune, args.min_precision)
    current = Thresholds()
    out = {
        "pairs": len(rows), "groups": len({r["group"] for r in rows}),
        "chosen": {"similarity": similarity, "coverage": coverage, "min_precision": args.min_precision},
        "in_code": {"similarity": current.similarity, "coverage": current.coverage},
        "tune": figures(tune, similarity, coverage),
        "held_out": figures(held, similarity, coverage),
        "all": figures(rows, similarity, coverage),
        "rules_only": figures(rows, -1.0, -1.0),
        "verbatim_sentences_accepted": verbatim_sentences_pass(embedder.embed_documents),
        "curve": [
            {"similarity": s, "coverage": coverage, "tune": _pr(figures(tune, s, coverage)), "held_out": _pr(figures(held, s, coverage))}
            for s in SIMILARITIES[::3]
        ],
    }  # fmt: skip
    print(f"{out['pairs']} sentences in {out['groups']} groups; tune {len(tune)}, held-out {len(held)}")
    print(f"chosen on the tune half: similarity >= {similarity}, coverage >= {coverage} (precision >= {args.min_precision})")
    print(f"{'':10} {'precision':>9} {'recall':>7} {'caught':>7}  unfaithful caught by kind")
    for name in ("tune", "held_out", "all", "rules_only"):
        f = out[name]
        kinds = ", ".join(f"{k} {v}" for k, v in f["caught_by_kind"].items())
        print(f"{name:10} {f['precision']:9.3f} {f['recall']:7.3f} {f['unfaithful_caught']:7.3f}  {kinds}")
    print(f"at coverage >= {coverage}: similarity  tune P/R  held-out P/R")
    for point in out["curve"]:
        print(f"  {point['similarity']:.2f}  {point['tune']}  {point['held_out']}")
    print(f"word-for-word sentences and pairs of sentences accepted: {out['verbatim_sentences_accepted']}")
    if (current.similarity, current.coverage) != (similarity, coverage):
        print(f"NOTE: assistant/grounding/support.py Thresholds are {current.similarity}/{current.coverage}; set them to the chosen pair")
    if args.misses:
        for r in tune:
            if accepted(r, similarity, coverage) != r["faithful"]:
                print(f"  {r['kind']:9} sim {r['similarity']:.2f} cov {r['coverage']:.2f} rule={r['rule'] or '-'}: {r['sentence']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
