"""The command line as a person uses it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import SAFETY_NOTICE, Answer

CLI = [sys.executable, "-m", "assistant.cli"]


def run(*args: str, data_dir: Path | None = None, env: dict | None = None, timeout: float = 300):
    full_env = {**os.environ, **(env or {})}
    if data_dir is not None:
        full_env["PHT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom assistant.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'chromadb', 'langchain_core', 'sentence_transformers', 'transformers', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_help_and_version():
    helped = run("--help")
    assert helped.returncode == 0
    for command in ("ask", "chat", "index", "sources"):
        assert command in helped.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("pht-assistant ")


@pytest.mark.parametrize(
    "question, needle",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 3000, "characters or fewer"),
        ("bad\x01char", "control characters"),
    ],
)
def test_bad_questions_exit_2_with_one_sentence(question, needle, tmp_path):
    out = run("ask", question, data_dir=tmp_path / "data")
    assert out.returncode == 2
    assert needle in out.stderr and SAFETY_NOTICE in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "data").exists()  # rejected before anything was loaded or built


def test_missing_corpus_folder_exits_2(tmp_path):
    out = run("index", data_dir=tmp_path / "data", env={"PHT_CORPUS_DIR": str(tmp_path / "nope")})
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["ask", "Can I run with PHT?"], ["index"], ["sources"]])
def test_a_data_folder_that_is_a_file_exits_2(command, tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    out = run(*command, data_dir=not_a_folder)
    assert out.returncode == 2 and "not a folder" in out.stderr and "Traceback" not in out.stderr


def test_sources_without_an_index_says_how_to_build_one(tmp_path):
    out = run("sources", data_dir=tmp_path / "data")
    assert out.returncode == 2 and "pht-assistant index" in out.stderr


@pytest.mark.integration
def test_damaged_index_exits_2_with_the_rebuild_command(built_data_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(built_data_dir, broken)
    (broken / "index.json").write_text("garbage")
    out = run("ask", "Can I run with PHT?", data_dir=broken)
    assert out.returncode == 2
    assert "pht-assistant index --rebuild" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_ask_works_as_the_very_first_command(tmp_path):
    data = tmp_path / "data"
    out = run("ask", "Can running be part of my PHT rehab?", "--json", data_dir=data)
    assert out.returncode == 0, out.stderr
    answer = Answer.model_validate_json(out.stdout)
    assert answer.status.value == "answered"
    assert answer.text.endswith(SAFETY_NOTICE)
    assert "building it" in out.stderr  # the first use said what it was doing
    again = run("index", data_dir=data)
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.integration
def test_ask_plain_text_and_sources(built_data_dir):
    out = run("ask", "Which exercises help me build muscle with PHT?", data_dir=built_data_dir)
    assert out.returncode == 0, out.stderr
    assert "[1]" in out.stdout and "pht-podcast-qa#qa-2" in out.stdout and SAFETY_NOTICE in out.stdout
    listed = run("sources", data_dir=built_data_dir)
    assert listed.returncode == 0
    for section in ("intro", "qa-1", "qa-2", "qa-3", "outro"):
        assert f"pht-podcast-qa#{section}" in listed.stdout


@pytest.mark.integration
def test_chat_keeps_the_conversation(built_data_dir):
    proc = subprocess.run(
        [*CLI, "chat"],
        input="Should I run my marathon while rehabbing PHT?\nwhat about speed work?\nexit\n",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PHT_DATA_DIR": str(built_data_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(SAFETY_NOTICE) == 2
    assert "speed work" in proc.stdout.split("you>")[-2]  # the follow-up was answered from qa-3


@pytest.mark.integration
def test_index_rebuild_reports_what_it_did(tmp_path):
    data = tmp_path / "data"
    first = run("index", data_dir=data)
    assert first.returncode == 0 and "Indexed 5 passages" in first.stdout
    rebuilt = run("index", "--rebuild", data_dir=data)
    assert rebuilt.returncode == 0 and "Indexed 5 passages" in rebuilt.stdout
    assert "from scratch" in rebuilt.stderr
    meta = json.loads((data / "index.json").read_text())
    assert meta["chunks"] == 5
