"""Fixtures for the answer-quality suites: one model, one index and one run of every suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = Path(__file__).resolve().parent / "suites"
LEAFLET = Path(__file__).resolve().parent / "leaflet"
HELD_OUT = "heldout_"  # suites whose cases are never listed one by one (docs/evals.md)


def load_set(name: str) -> list[dict]:
    """The rows of one JSONL suite as dicts (with ``_line``), for scripts such as calibrate_exemplars."""
    rows = []
    for n, line in enumerate((SUITES / name).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            row["_line"] = n
            rows.append(row)
    return rows


@pytest.fixture(scope="session")
def eval_assistant(tmp_path_factory):
    from assistant import Assistant, Settings

    data = tmp_path_factory.mktemp("eval-index")
    a = Assistant.from_settings(Settings(data_dir=data), progress=False, notify=lambda m: None)
    a.warm_up()
    yield a
    a.close()


SUMMARY: dict[str, dict] = {}
MISSES: dict[str, list[str]] = {}


@pytest.fixture(scope="session")
def leaflet_assistant(tmp_path_factory):
    """An assistant over the second corpus: a clinic leaflet written for the tests (evals/leaflet)."""
    from assistant import Assistant, Settings

    data = tmp_path_factory.mktemp("leaflet-index")
    a = Assistant.from_settings(
        Settings(data_dir=data, corpus_dir=LEAFLET / "corpus"), progress=False, notify=lambda m: None
    )
    a.warm_up()
    yield a
    a.close()


@pytest.fixture(scope="session")
def eval_run(eval_assistant):
    """Every case of every suite in evals/suites, asked once through the evaluation runner.

    With ``PHT_EVAL_REPORT_DIR`` set, the run's JSON, JUnit XML and HTML reports are written there.
    """
    return run_suites(eval_assistant, SUITES, "run")


@pytest.fixture(scope="session")
def leaflet_run(leaflet_assistant):
    """Every case of the leaflet's suites, against the leaflet corpus."""
    return run_suites(leaflet_assistant, LEAFLET / "suites", "leaflet")


def run_suites(assistant, folder: Path, report_name: str) -> dict:
    from datetime import datetime, timezone

    from assistant.evaluation import metrics, reports, runner, suite

    started = datetime.now(timezone.utc)
    loaded = suite.load_suites([folder])
    target = runner.LocalTarget(assistant)  # the session's assistant; closed by its fixture
    records = runner.run_cases(suite.select(loaded, None), target, progress=False)
    summary = metrics.summarise(records)
    for name, info in summary["by_suite"].items():
        SUMMARY[name] = info
        MISSES[name] = [
            f"{r['id']}: {'; '.join(r['reasons'])} ({(r.get('triage') or {}).get('rule', '')})"
            for r in records
            if r["suite"] == name and r["got"]["status"] != r["expected"]["status"] and not name.startswith(HELD_OUT)
        ]
    out = os.environ.get("PHT_EVAL_REPORT_DIR")
    if out:
        from assistant.evaluation.html import write_html

        report = reports.build(runner.run_settings(target, loaded, [], started), summary, [], records)
        reports.write_json(report, Path(out) / f"{report_name}.json")
        reports.write_junit(report, Path(out) / f"{report_name}.xml")
        write_html(report, Path(out) / f"{report_name}.html")
    return {"records": records, "by_key": {r["key"]: r for r in records}, "summary": summary}


def pytest_terminal_summary(terminalreporter):
    """Per-suite figures (each with the cases it stands on), then every case whose status differed."""
    if not SUMMARY:
        return
    names = (
        "status_accuracy", "urgent_recall", "false_urgent_rate", "hit_at_1", "hit_at_3", "first_source_accuracy",
        "answered_when_not_covered", "missing_named_rate", "citation_precision", "notice_compliance",
    )
    terminalreporter.section("answer-quality suites")
    for name, info in SUMMARY.items():
        m = info["metrics"]
        shown = ", ".join(
            f"{k} {m[k]['value']:.1%} (n={m[k]['n']})" for k in names if m[k]["value"] is not None
        )
        terminalreporter.write_line(f"{name} ({info['cases']} cases): {shown}")
    misses = [(name, line) for name, lines in MISSES.items() for line in lines]
    if misses:
        terminalreporter.write_line("")
        terminalreporter.write_line(f"cases whose status differed from the expected one ({len(misses)}):")
        for name, line in misses:
            terminalreporter.write_line(f"  {name}:{line}")
