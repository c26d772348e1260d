"""The widget's pieces without a server: the clinic's theming and feedback in the registry, the
script's asset, and what the script must never do under a strict Content-Security-Policy."""

from __future__ import annotations

import gzip
import re
import sqlite3

import pytest

from assistant.answer import Answer, Citation
from assistant.clinics.registry import ClinicRegistry
from assistant.errors import ClinicError, UnknownAnswer
from assistant.widget import GZIP_BUDGET, SCRIPT, widget_script


@pytest.fixture
def registry(tmp_path):
    reg = ClinicRegistry(tmp_path / "clinics.sqlite3")
    yield reg
    reg.close()


def _answer(registry: ClinicRegistry, clinic_id: str) -> Answer:
    quote = "Running should be considered a part of your rehabilitation."
    answer = Answer(
        status="answered",
        text=f"> {quote} [1]",
        citations=[
            Citation(n=1, source="pht-podcast-qa#qa-1", title="T", quote=quote, start=0, end=len(quote), score=0.9, version="v1")
        ],
    )
    registry.record_answer(clinic_id, answer, composer="extractive", model="m")
    return answer


def test_theme_is_checked_kept_and_changed(registry):
    c = registry.add_clinic("North Physio", accent_color="#7B2D8E", logo_url="https://north.example/logo.png")
    assert (c.accent_color, c.logo_url, c.feedback_questions) == ("#7b2d8e", "https://north.example/logo.png", False)
    for bad in ("purple", "#12345", "url(x)", "#0b7285; color: red"):
        with pytest.raises(ClinicError, match="hex colour"):
            registry.update_clinic("north-physio", accent_color=bad)
    for bad in ("javascript:alert(1)", "north.example/logo.png", 'https://x.example/a"b', "https://x.example/a b"):
        with pytest.raises(ClinicError, match="http"):
            registry.update_clinic("north-physio", logo_url=bad)
    for bad in ("www.north.example", "https://north.example/contact", "https://north.example?x=1"):
        with pytest.raises(ClinicError, match="scheme and host"):
            registry.update_clinic("north-physio", allowed_origins=[bad])
    changed = registry.update_clinic(
        "North Physio", accent_color="", feedback_questions=True, allowed_origins=["https://north.example"]
    )
    assert changed.accent_color == "" and changed.logo_url == "https://north.example/logo.png"
    assert changed.feedback_questions and changed.allowed_origins == ("https://north.example",)
    assert registry.clinic("north-physio") == changed


def test_an_older_registry_file_gains_the_new_columns(tmp_path):
    path = tmp_path / "clinics.sqlite3"
    with sqlite3.connect(path) as db:  # the clinics table as the first release made it
        db.execute(
            "CREATE TABLE clinics (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, emergency_text TEXT NOT NULL DEFAULT '', "
            "allowed_origins TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute("INSERT INTO clinics (id, name, created) VALUES ('old', 'Old Clinic', '2026-01-01')")
    reg = ClinicRegistry(path)
    try:
        old = reg.clinic("old")
        assert (old.name, old.accent_color, old.logo_url, old.feedback_questions) == ("Old Clinic", "", "", False)
        assert reg.update_clinic("old", accent_color="#123").accent_color == "#123"
    finally:
        reg.close()


def test_feedback_only_on_the_clinics_own_answers_and_without_the_question(registry):
    registry.add_clinic("North Physio")
    registry.add_clinic("South Clinic")
    answer = _answer(registry, "north-physio")
    with pytest.raises(UnknownAnswer):
        registry.record_feedback("south-clinic", answer.id, "up")  # another clinic's answer
    with pytest.raises(UnknownAnswer):
        registry.record_feedback("north-physio", "0" * 32, "up")
    with pytest.raises(ClinicError):
        registry.record_feedback("north-physio", answer.id, "sideways")
    row = registry.record_feedback("north-physio", answer.id, "up", comment=" Clear ", question="zebraquokka?")
    assert (row["rating"], row["comment"], row["question"], row["status"]) == ("up", "Clear", None, "answered")
    assert row["sources"] == ["pht-podcast-qa#qa-1"]
    again = registry.record_feedback("north-physio", answer.id, "down")  # replaces; the comment stays
    assert (again["id"], again["rating"], again["comment"]) == (row["id"], "down", "Clear")
    assert [r["answer_id"] for r in registry.feedback("north-physio")] == [answer.id]
    assert registry.feedback("south-clinic") == []
    dump = "\n".join(sqlite3.connect(registry.path).iterdump())
    assert "zebraquokka" not in dump


def test_a_clinic_that_keeps_questions_gets_them_and_paging_works(registry):
    registry.add_clinic("South Clinic", feedback_questions=True)
    answers = [_answer(registry, "south-clinic") for _ in range(3)]
    for i, a in enumerate(answers):
        registry.record_feedback("south-clinic", a.id, "up", question=f"question {i}")
    rows = registry.feedback("south-clinic", limit=2)
    assert [r["question"] for r in rows] == ["question 2", "question 1"]
    assert [r["question"] for r in registry.feedback("south-clinic", before=rows[-1]["id"])] == ["question 0"]


def test_widget_script_asset_is_under_its_budget():
    asset = widget_script()
    assert asset.body == SCRIPT.read_bytes() and gzip.decompress(asset.gzipped) == asset.body
    assert len(asset.gzipped) <= GZIP_BUDGET <= 30_000
    assert re.fullmatch(r'"[0-9a-f]{20}"', asset.etag)


def test_the_script_needs_nothing_a_strict_csp_forbids():
    """No inline style attributes, no HTML parsing of text, no eval: what a page with
    `style-src 'self'; script-src ASSISTANT` (no 'unsafe-inline', no 'unsafe-eval') would block.
    The browser test runs the widget under such a policy; this names the reason if it breaks."""
    js = SCRIPT.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", js, flags=re.S)
    for forbidden in (
        ".style.", 'setAttribute("style"', "cssText", "innerHTML", "outerHTML", "insertAdjacentHTML",
        "document.write", "eval(", "new Function", "setTimeout(\"", "localStorage", "document.cookie",
    ):  # fmt: skip
        assert forbidden not in code, forbidden
    assert "adoptedStyleSheets" in code and "attachShadow" in code and "sessionStorage" in code



def test_readme_widget_commands_run(tmp_path):
    """The README's widget commands work as written, on a clinic made as its API section says."""
    import os
    import shlex
    import subprocess
    import sys

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Clinics: the widget.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [shlex.split(line.split("  #")[0])[1:] for line in block.splitlines() if line.startswith("pht-assistant ")]
    assert [c[:2] for c in commands] == [["clinic", "set"], ["key", "create"]]
    env = {**os.environ, "PHT_DATA_DIR": str(tmp_path / "data")}

    def cli(args):
        return subprocess.run(
            [sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, timeout=120, env=env
        )

    assert cli(["clinic", "add", "North Physio"]).returncode == 0
    outputs = [cli(args) for args in commands]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert "accent: #0b7285" in outputs[0].stdout and outputs[1].stdout.startswith("pht_pk_")
    clinic = ClinicRegistry(tmp_path / "data" / "clinics.sqlite3").clinic("north-physio")
    assert clinic.allowed_origins == ("https://www.north-physio.example",) and clinic.accent_color == "#0b7285"
    bad = cli(["clinic", "set", "north-physio", "--accent-color", "teal"])
    assert bad.returncode == 2 and "#0b7285" in bad.stderr and "Traceback" not in bad.stderr
