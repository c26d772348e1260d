"""Two JSON reports side by side: which cases were fixed, broken or changed, and how each figure moved.

Cases are matched by ``suite/id``. *fixed*: failed before, passes now. *broken*: passed before,
fails now. Of the rest, *changed status* and *changed source* (the first cited section differs).
A regression is a broken case, or a share figure (not latency) that went the wrong way by more
than ``tolerance``.

>>> from assistant.evaluation.compare import compare
>>> def rep(passed, acc): return {"cases": [{"key": "s/a", "passed": passed, "got": {"status": "answered", "sources": []}, "reasons": []}],
...                                "summary": {"overall": {"status_accuracy": {"value": acc, "n": 1}}}}
>>> c = compare(rep(False, 0.0), rep(True, 1.0))
>>> c["fixed"][0]["key"], c["regressions"]
('s/a', [])
"""

from __future__ import annotations

from typing import Any

from assistant.evaluation.metrics import LATENCY, LOWER_IS_BETTER


def _first(case: dict[str, Any]) -> str:
    sources = case["got"].get("sources") or []
    return sources[0] if sources else ""


def compare(old: dict[str, Any], new: dict[str, Any], *, tolerance: float = 0.0) -> dict[str, Any]:
    before = {c["key"]: c for c in old["cases"]}
    after = {c["key"]: c for c in new["cases"]}
    out: dict[str, Any] = {"fixed": [], "broken": [], "changed_status": [], "changed_source": []}
    for key in [k for k in after if k in before]:
        a, b = before[key], after[key]
        row = {
            "key": key,
            "question": b.get("question", ""),
            "status": [a["got"]["status"], b["got"]["status"]],
            "source": [_first(a), _first(b)],
            "reasons": [a.get("reasons", []), b.get("reasons", [])],
        }
        if not a["passed"] and b["passed"]:
            out["fixed"].append(row)
        elif a["passed"] and not b["passed"]:
            out["broken"].append(row)
        elif a["got"]["status"] != b["got"]["status"]:
            out["changed_status"].append(row)
        elif _first(a) != _first(b):
            out["changed_source"].append(row)
    out["added"] = [k for k in after if k not in before]
    out["removed"] = [k for k in before if k not in after]
    deltas = {}
    regressions = [f"broken: {r['key']} ({'; '.join(r['reasons'][1])})" for r in out["broken"]]
    old_m, new_m = old["summary"]["overall"], new["summary"]["overall"]
    for name in new_m:
        if name not in old_m:
            continue
        x, y = old_m[name]["value"], new_m[name]["value"]
        delta = None if x is None or y is None else round(y - x, 4)
        deltas[name] = {"old": x, "new": y, "delta": delta, "n": [old_m[name]["n"], new_m[name]["n"]]}
        if delta is None or name in LATENCY:
            continue
        worse = delta > tolerance if name in LOWER_IS_BETTER else delta < -tolerance
        if worse:
            regressions.append(f"{name}: {x:.4g} -> {y:.4g}")
    out["metrics"] = deltas
    out["regressions"] = regressions
    out["composers"] = [_composer(old), _composer(new)]
    return out


def _composer(report: dict[str, Any]) -> dict[str, Any]:
    """Which composer a run was made with and who wrote its answered replies (``eval --composer``)."""
    settings = report.get("settings") or {}
    written: dict[str, int] = {}
    for case in report.get("cases", []):
        if case.get("got", {}).get("status") == "answered":
            name = case.get("composer") or "?"
            written[name] = written.get(name, 0) + 1
    return {
        "composer": settings.get("composer") or "?",
        "prompt_version": settings.get("prompt_version") or "",
        "written_by": dict(sorted(written.items())),
        "outcomes": settings.get("composer_outcomes") or {},
    }


def render_text(result: dict[str, Any]) -> str:
    """The comparison as plain lines for a terminal or a CI log."""
    lines = []
    composers = result.get("composers")
    if composers:
        for label, c in zip(("Old run", "New run"), composers):
            written = ", ".join(f"{k} {v}" for k, v in c["written_by"].items()) or "none"
            prompt = f" (prompt {c['prompt_version']})" if c["prompt_version"] else ""
            falls = c["outcomes"].get("fallbacks")
            extra = f"; fell back {falls} times {c['outcomes'].get('fallback_reasons', {})}" if falls else ""
            lines.append(f"{label}: composer {c['composer']}{prompt}; answered replies written by {written}{extra}")
        lines.append("")
    for label, key in (("Fixed", "fixed"), ("Broken", "broken"), ("Changed status", "changed_status"), ("Changed source", "changed_source")):
        rows = result[key]
        lines.append(f"{label}: {len(rows)}")
        for r in rows:
            status = r["status"][0] if r["status"][0] == r["status"][1] else f"{r['status'][0]} -> {r['status'][1]}"
            source = "" if r["source"][0] == r["source"][1] else f"; source {r['source'][0] or '-'} -> {r['source'][1] or '-'}"
            lines.append(f"  {r['key']}: {status}{source}")
    if result["added"] or result["removed"]:
        lines.append(f"Cases only in the new run: {len(result['added'])}; only in the old run: {len(result['removed'])}")
    lines.append("")
    lines.append(f"{'metric':<22}{'old':>10}{'new':>10}{'delta':>10}")
    for name, d in result["metrics"].items():
        fmt = (lambda v: "-" if v is None else f"{v:.0f}") if name in LATENCY else (lambda v: "-" if v is None else f"{v:.4f}")
        delta = "-" if d["delta"] is None else (f"{d['delta']:+.0f}" if name in LATENCY else f"{d['delta']:+.4f}")
        lines.append(f"{name:<22}{fmt(d['old']):>10}{fmt(d['new']):>10}{delta:>10}")
    lines.append("")
    lines.append(f"Regressions: {len(result['regressions'])}" + "".join(f"\n  {r}" for r in result["regressions"]))
    return "\n".join(lines)
