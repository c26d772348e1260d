"""The run as JSON (everything) and as JUnit XML (for CI systems).

The JSON report is the reference: ``{"format", "settings", "summary", "gates", "cases"}``; the
HTML page and ``eval compare`` read it. In JUnit XML each suite is a ``<testsuite>``, each case a
``<testcase>`` (a ``<failure>`` carries its reasons), and the gates one more suite named ``gates``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

FORMAT = "pht-assistant-eval/1"


def build(settings: dict[str, Any], summary: dict[str, Any], gates: list[dict[str, Any]], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The report as one JSON-ready dict; failing cases first within each suite's order is left to the viewers."""
    return {"format": FORMAT, "settings": settings, "summary": summary, "gates": gates, "cases": cases}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    from assistant.evaluation.suite import Problem, SuiteInvalid

    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SuiteInvalid([Problem(str(path), None, None, f"not a readable JSON report ({exc})")]) from exc
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise SuiteInvalid([Problem(str(path), None, None, f"not a report written by `pht-assistant eval --report` ({FORMAT})")])
    return report


def _details(case: dict[str, Any]) -> str:
    lines = [
        f"question: {case['question']}",
        f"expected: {case['expected']['status']}" + (f" from {', '.join(case['expected']['sources'])}" if case["expected"]["sources"] else ""),
        f"got: {case['got']['status']}" + (f" citing {', '.join(case['got']['sources'])}" if case["got"]["sources"] else ""),
    ]
    if case.get("triage"):
        lines.append(f"triage: {case['triage'].get('decision')} {case['triage'].get('rule')} {case['triage'].get('matched')}")
    lines.append(f"{case['file']}:{case['line']}")
    return "\n".join(lines)


def write_junit(report: dict[str, Any], path: Path) -> None:
    cases = report["cases"]
    settings = report["settings"]
    root = ET.Element("testsuites", name="pht-assistant eval")
    total = failures = errors = 0
    seconds_all = 0.0
    suites: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        suites.setdefault(c["suite"], []).append(c)
    for name, members in suites.items():
        fails = sum(not c["passed"] and c["got"]["status"] != "error" for c in members)
        errs = sum(c["got"]["status"] == "error" for c in members)
        secs = sum(c["latency_ms"] for c in members) / 1000
        suite = ET.SubElement(
            root, "testsuite", name=name, tests=str(len(members)), failures=str(fails), errors=str(errs),
            skipped="0", time=f"{secs:.3f}", timestamp=settings.get("started", ""),
        )  # fmt: skip
        props = ET.SubElement(suite, "properties")
        for key in ("target", "model", "corpus_version", "composer"):
            ET.SubElement(props, "property", name=key, value=str(settings.get(key) or ""))
        sha = (settings.get("commit") or {}).get("sha", "")
        ET.SubElement(props, "property", name="commit", value=sha)
        for c in members:
            tc = ET.SubElement(suite, "testcase", classname=f"eval.{name}", name=c["id"], time=f"{c['latency_ms'] / 1000:.3f}", file=c["file"], line=str(c["line"]))
            if c["got"]["status"] == "error":
                el = ET.SubElement(tc, "error", message=c["got"]["error"] or "error", type="error")
                el.text = _details(c)
            elif not c["passed"]:
                el = ET.SubElement(tc, "failure", message="; ".join(c["reasons"]), type=c["reasons"][0].split(":")[0])
                el.text = _details(c)
        total, failures, errors, seconds_all = total + len(members), failures + fails, errors + errs, seconds_all + secs
    gates = report.get("gates") or []
    if gates:
        suite = ET.SubElement(root, "testsuite", name="gates", tests=str(len(gates)), failures=str(sum(not g["passed"] for g in gates)), errors="0", skipped="0", time="0")
        for g in gates:
            tc = ET.SubElement(suite, "testcase", classname="eval.gates", name=g["gate"], time="0")
            if not g["passed"]:
                ET.SubElement(tc, "failure", message=g["message"], type="gate")
        total += len(gates)
        failures += sum(not g["passed"] for g in gates)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", f"{seconds_all:.3f}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
