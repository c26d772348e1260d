"""Docs that cannot drift: the README's commands run, and its claims match the code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

from assistant import get_settings

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.splitlines()[:8])
    assert "make run" in head and "make test" in head


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_settings_table_matches_the_defaults(monkeypatch):
    for var in ("PHT_RELEVANCE_THRESHOLD", "PHT_MAX_QUESTION_CHARS"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    s = get_settings()
    assert f"`PHT_RELEVANCE_THRESHOLD` | `{s.relevance_threshold}`" in README
    assert f"`PHT_MAX_QUESTION_CHARS` | `{s.max_question_chars}`" in README
    assert f"`PHT_EMERGENCY_CONTACT` | `{s.emergency_contact}`" in README


def _readme_cli_commands() -> list[list[str]]:
    block = re.search(r"## Command line.*?```bash\n(.*?)```", README, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("pht-assistant ")]


@pytest.mark.integration
@pytest.mark.parametrize("args", _readme_cli_commands(), ids=lambda a: " ".join(a)[:40])
def test_readme_commands_run(args, built_data_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(data)},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_calibrated_defaults_match_the_recorded_calibration():
    import json

    from assistant.settings import CALIBRATED_RELEVANCE, CALIBRATED_THRESHOLD

    recorded = json.loads((ROOT / "docs" / "calibration.json").read_text())
    assert recorded["chosen_threshold"] == CALIBRATED_THRESHOLD
    w = recorded["weights"]
    assert (w["w_dense"], w["w_coverage"], w["bias"]) == pytest.approx(CALIBRATED_RELEVANCE, abs=0.006)
    retrieval_md = (ROOT / "docs" / "retrieval.md").read_text()
    assert f"Below **{CALIBRATED_THRESHOLD}**" in retrieval_md


def test_deploy_settings_table_matches_the_defaults(monkeypatch):
    """docs/deploy.md's settings table gives each PHT_ setting's real default."""
    from assistant.settings import Settings

    for var in [v for v in os.environ if v.startswith(("PHT_", "OTEL_"))]:
        monkeypatch.delenv(var)
    s = Settings()
    table = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("### Settings", 1)[1].split("###", 1)[0]
    rows = re.findall(r"^\| `(PHT_[A-Z_]+)`(?:, `(PHT_[A-Z_]+)`)? \| ([^|]+) \|", table, re.M)
    assert len(rows) >= 8
    for first, second, default in rows:
        defaults = [d.strip(" `") for d in default.split(",")]
        for var, shown in zip([v for v in (first, second) if v], defaults):
            value = getattr(s, var[4:].lower())
            expected = "unset" if value == "" else str(value).lower() if isinstance(value, bool) else str(value)
            assert shown == expected, var
