"""Fixtures for the answer-quality suites: one model and one index for the whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETS = Path(__file__).resolve().parent / "sets"


def load_set(name: str) -> list[dict]:
    rows = []
    for n, line in enumerate((SETS / name).read_text(encoding="utf-8").splitlines(), 1):
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


SUMMARY: dict[str, dict[str, float]] = {}
MISSES: dict[str, list[str]] = {}


def pytest_terminal_summary(terminalreporter):
    """Per-suite figures, then every case whose status differed, printed at the end of a run."""
    if not SUMMARY:
        return
    terminalreporter.section("answer-quality suites")
    for name, figures in SUMMARY.items():
        shown = ", ".join(f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        terminalreporter.write_line(f"{name}: {shown}")
    misses = [(name, line) for name, lines in MISSES.items() for line in lines]
    if misses:
        terminalreporter.write_line("")
        terminalreporter.write_line(f"cases whose status differed from the expected one ({len(misses)}):")
        for name, line in misses:
            terminalreporter.write_line(f"  {name.removesuffix('.jsonl')}:{line}")
