"""Deterministic figures over case records, and gates over them. No language-model judge.

Every figure is ``{"value", "n", "of", "cases"}``: ``value`` a share 0..1 (or milliseconds for
latency), ``n`` how many things it is a share of, ``of`` what those things are, ``cases`` how many
cases it stands on. ``value`` is ``None`` when it stands on nothing. docs/evals.md lists them.

>>> from assistant.evaluation.metrics import parse_gate
>>> parse_gate("status_accuracy>=0.8")
Gate(metric='status_accuracy', op='>=', bound=0.8)
>>> parse_gate("false_urgent_rate <= 5%").bound
0.05
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from assistant.errors import AssistantError
from assistant.evaluation.suite import STATUSES

# name -> (what n counts, one line on what it means); the order is the summary's
METRICS: dict[str, tuple[str, str]] = {
    "pass_rate": ("cases", "cases that passed every check (status, notice, sources, phrases, grounding)"),
    "status_accuracy": ("cases", "replies with the expected status"),
    "hit_at_1": ("cases with expected_sources", "the first retrieved section is an expected one"),
    "hit_at_3": ("cases with expected_sources", "an expected section is among the first three retrieved"),
    "mrr": ("cases with expected_sources", "mean of 1/rank of the first expected section retrieved (0 if none)"),
    "citation_precision": (
        "citations of answered cases with expected_sources",
        "citations that come from an expected section",
    ),
    "first_source_accuracy": (
        "answered cases with expected_sources",
        "the first citation of the reply comes from an expected section",
    ),
    "answered_when_not_covered": ("cases expecting not_covered", "questions the sources don't cover that got an answered reply"),
    "missing_named_rate": (
        "cases with expected_missing that got not_covered",
        "not-covered replies that name what the sources lack (one of expected_missing)",
    ),
    "grounding_rate": (
        "sentences of answered replies",
        "sentences supported by the passages they cite (word for word, or a faithful paraphrase: assistant.grounding)",
    ),
    "notice_compliance": ("cases", "replies that end with the safety notice (must be 1.0)"),
    "urgent_recall": ("cases expecting urgent", "red flags answered as urgent"),
    "false_urgent_rate": ("cases not expecting urgent", "calm questions answered as urgent"),
    "phrase_pass_rate": ("cases with must_include / must_not_include", "replies passing their phrase checks"),
    "error_rate": ("cases", "questions the target failed to answer (HTTP error, rejected question)"),
    "latency_p50_ms": ("cases answered", "median time per question, as the runner measured it"),
    "latency_p95_ms": ("cases answered", "95th percentile of the time per question"),
}
LOWER_IS_BETTER = {"false_urgent_rate", "answered_when_not_covered", "error_rate", "latency_p50_ms", "latency_p95_ms"}
LATENCY = {"latency_p50_ms", "latency_p95_ms"}
ALWAYS = "notice_compliance>=1.0"  # the one gate every run has: the notice is not negotiable


def _figure(name: str, value: float | None, n: int, cases: int) -> dict[str, Any]:
    if value is not None and name not in LATENCY:
        value = round(value, 4)
    return {"value": value, "n": n, "of": METRICS[name][0], "cases": cases}


def _share(name: str, hits: int, n: int, cases: int | None = None) -> dict[str, Any]:
    return _figure(name, hits / n if n else None, n, n if cases is None else cases)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def compute(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every figure in :data:`METRICS` over ``records``."""
    n = len(records)
    out: dict[str, dict[str, Any]] = {}
    out["pass_rate"] = _share("pass_rate", sum(r["passed"] for r in records), n)
    out["status_accuracy"] = _share("status_accuracy", sum(r["got"]["status"] == r["expected"]["status"] for r in records), n)
    sourced = [r for r in records if r["expected"]["sources"]]
    ranks = []
    for r in sourced:
        expected = set(r["expected"]["sources"])
        ranks.append(next((i for i, s in enumerate(r["ranking"], 1) if s in expected), None))
    m = len(sourced)
    out["hit_at_1"] = _share("hit_at_1", sum(k == 1 for k in ranks), m)
    out["hit_at_3"] = _share("hit_at_3", sum(k is not None and k <= 3 for k in ranks), m)
    out["mrr"] = _figure("mrr", sum(1 / k for k in ranks if k) / m if m else None, m, m)
    answered_sourced = [r for r in sourced if r["got"]["status"] == "answered"]
    cites = [(s, set(r["expected"]["sources"])) for r in answered_sourced for s in r["got"]["sources"]]
    out["citation_precision"] = _share(
        "citation_precision", sum(s in e for s, e in cites), len(cites), len(answered_sourced)
    )
    firsts = [r for r in answered_sourced if r["got"]["sources"]]
    out["first_source_accuracy"] = _share(
        "first_source_accuracy", sum(r["got"]["sources"][0] in set(r["expected"]["sources"]) for r in firsts), len(firsts)
    )
    uncovered = [r for r in records if r["expected"]["status"] == "not_covered"]
    out["answered_when_not_covered"] = _share(
        "answered_when_not_covered", sum(r["got"]["status"] == "answered" for r in uncovered), len(uncovered)
    )
    named = [r for r in records if r["checks"].get("missing") is not None]
    out["missing_named_rate"] = _share("missing_named_rate", sum(r["checks"]["missing"] for r in named), len(named))
    grounded = [r["checks"]["grounding"] for r in records if r["checks"].get("grounding")]
    out["grounding_rate"] = _share(
        "grounding_rate", sum(g["grounded"] for g in grounded), sum(g["sentences"] for g in grounded), len(grounded)
    )
    out["notice_compliance"] = _share("notice_compliance", sum(bool(r["checks"]["notice"]) for r in records), n)
    urgent = [r for r in records if r["expected"]["status"] == "urgent"]
    calm = [r for r in records if r["expected"]["status"] != "urgent"]
    out["urgent_recall"] = _share("urgent_recall", sum(r["got"]["status"] == "urgent" for r in urgent), len(urgent))
    out["false_urgent_rate"] = _share("false_urgent_rate", sum(r["got"]["status"] == "urgent" for r in calm), len(calm))
    phrased = [r for r in records if r["checks"].get("phrases") is not None]
    out["phrase_pass_rate"] = _share("phrase_pass_rate", sum(r["checks"]["phrases"] for r in phrased), len(phrased))
    out["error_rate"] = _share("error_rate", sum(r["got"]["status"] == "error" for r in records), n)
    latencies = [r["latency_ms"] for r in records if r["got"]["status"] != "error"]
    out["latency_p50_ms"] = _figure("latency_p50_ms", percentile(latencies, 50), len(latencies), len(latencies))
    out["latency_p95_ms"] = _figure("latency_p95_ms", percentile(latencies, 95), len(latencies), len(latencies))
    return out


def confusion(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected status (rows) by the status got (columns), with an ``error`` column."""
    columns = [*STATUSES, "error"]
    counts = Counter((r["expected"]["status"], r["got"]["status"]) for r in records)
    return {
        "rows": list(STATUSES),
        "columns": columns,
        "counts": [[counts.get((e, g), 0) for g in columns] for e in STATUSES],
    }


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall figures, the confusion matrix, and the same figures per suite and per tag."""
    suites = sorted({r["suite"] for r in records})
    tags = sorted({t for r in records for t in r["tags"]})
    return {
        "cases": len(records),
        "overall": compute(records),
        "confusion": confusion(records),
        "by_suite": {s: {"cases": sum(r["suite"] == s for r in records), "metrics": compute([r for r in records if r["suite"] == s])} for s in suites},
        "by_tag": {t: {"cases": sum(t in r["tags"] for r in records), "metrics": compute([r for r in records if t in r["tags"]])} for t in tags},
    }


# -- gates -----------------------------------------------------------------------------------------


class InvalidGate(AssistantError):
    """A --gate that cannot be read; the message says what form it takes."""


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def check(self, figures: dict[str, dict[str, Any]]) -> tuple[bool, str]:
        fig = figures[self.metric]
        value = fig["value"]
        if value is None:
            return False, f"{self} fails: {self.metric} stands on no cases ({fig['of']})"
        ok = {">=": value >= self.bound, "<=": value <= self.bound, ">": value > self.bound, "<": value < self.bound}[self.op]
        shown = f"{value:.1f}" if self.metric in LATENCY else f"{value:.4g}"
        return ok, f"{self} {'passes' if ok else 'fails'}: {self.metric} = {shown} over {fig['n']} {fig['of']}"


_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


def parse_gate(text: str) -> Gate:
    """``METRIC>=VALUE`` (also ``<=``, ``>``, ``<``; a value may end in ``%``)."""
    m = _GATE.match(text)
    if not m:
        raise InvalidGate(f"The gate {text!r} is not of the form METRIC>=VALUE (or <=, >, <), e.g. status_accuracy>=0.8.")
    name, op, number, percent = m.groups()
    if name not in METRICS:
        raise InvalidGate(f"The gate {text!r} names no metric; the metrics are: {', '.join(METRICS)}.")
    bound = float(number) / (100 if percent else 1)
    if name not in LATENCY and not 0 <= bound <= 1:
        raise InvalidGate(f"The gate {text!r} needs a share between 0 and 1 (or a percentage).")
    return Gate(name, op, bound)


def check_gates(gates: list[Gate], figures: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each gate with whether it passed and a sentence saying so; the notice gate is always there."""
    always = parse_gate(ALWAYS)
    if not any(str(g) == str(always) for g in gates):
        gates = [always, *gates]
    out = []
    for g in gates:
        ok, message = g.check(figures)
        out.append({"gate": str(g), "metric": g.metric, "op": g.op, "bound": g.bound, "passed": ok, "message": message})
    return out
