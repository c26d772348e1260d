"""`pht-assistant eval` as an evaluator uses it: suites, exit codes, reports, compare, a deployed API.

Runs with the real model over an index built once in a temporary folder (tests/conftest.py). The
local runs go through Typer's CliRunner in this process, so the model loads once; the URL run talks
to one real `pht-assistant serve` on a loopback port, with a clinic key made through the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant import SAFETY_NOTICE, get_settings
from assistant.cli import app

CLI = [sys.executable, "-m", "assistant.cli"]

CASES = [
    {"id": "run-1", "question": "Can running be part of my rehab?", "expected_status": "answered",
     "expected_sources": ["pht-podcast-qa#qa-1"], "must_include": ["part of your rehabilitation"], "tags": ["qa-1"]},
    {"id": "race-1", "question": "Should I do speed work while training for my marathon with PHT?", "expected_status": "answered",
     "expected_sources": ["pht-podcast-qa#qa-3"], "tags": ["qa-3"]},
    {"id": "ice-1", "question": "ice or heat for proximal hamstring tendinopathy?", "expected_status": "not_covered", "tags": ["not-covered"]},
    {"id": "flag-1", "question": "I suddenly can't control my bladder and my saddle area is numb", "expected_status": "urgent", "tags": ["red-flag"]},
    {"id": "bread-1", "question": "how do I bake sourdough bread?", "expected_status": "out_of_scope", "tags": ["off-topic"]},
]  # fmt: skip
WRONG = {"id": "wrong-1", "question": "Which exercises can I do to build muscle with PHT?", "expected_status": "not_covered",
         "tags": ["mislabelled"]}  # fmt: skip
YAML_SUITE = """\
# a hand-written suite
- id: gym-1
  question: are hip thrusts ok with high hamstring tendinopathy?
  expected_status: answered
  expected_sources: [pht-podcast-qa#qa-2]
  tags: [qa-2]
"""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


def copy_index(built: Path, to: Path) -> Path:
    shutil.copytree(built, to)
    return to


# -- invalid input: exit 2, nothing run ------------------------------------------------------------


def test_an_invalid_suite_exits_2_naming_file_line_and_field_and_runs_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(CASES[0]) + "\n\n"
        + json.dumps({"id": "b", "question": "Can I run?", "expected_status": "fine"}) + "\n"
        + json.dumps({"id": "c", "expected_status": "answered"}) + "\n"
        + '{"id": "d", "question": "broken json"\n'
        + json.dumps({"id": "e", "question": "q", "expected_status": "answered", "expected_source": ["x#y"]}) + "\n"
        + json.dumps({"id": "f", "question": "q", "expected_status": "answered", "expected_sources": ["no-section"]}) + "\n"
        + json.dumps({**CASES[1], "id": "run-1"}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    yaml_bad = tmp_path / "hand.yaml"
    yaml_bad.write_text("- id: y1\n  question: can I run?\n  expected_status: answered\n  history:\n    - {role: physio, content: hi}\n")
    report = tmp_path / "run.json"
    out = subprocess.run(
        [*CLI, "eval", str(bad), str(yaml_bad), "--report", str(report)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "PHT_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    for where in (
        "bad.jsonl:3: expected_status: 'fine' is not one of",
        "bad.jsonl:4: question: 'question' is a required property",
        "bad.jsonl:5: not valid JSON",
        "bad.jsonl:6: expected_source: unknown field",
        "bad.jsonl:7: expected_sources[0]: 'no-section' is not DOCID#SECTIONID",
        "bad.jsonl:8: id: 'run-1' is used again (first on line 1)",
        "hand.yaml:4: history[0].role",
    ):
        assert where in out.stderr, out.stderr
    assert "nothing was run" in out.stderr and "Traceback" not in out.stderr
    assert not report.exists() and not (tmp_path / "data").exists()  # no report, no index, no model


@pytest.mark.parametrize(
    "gate, needle",
    [("status_accuracy=>0.8", "not of the form"), ("accuracy>=0.8", "names no metric"), ("hit_at_1>=80", "between 0 and 1")],
)
def test_a_bad_gate_exits_2(gate, needle, tmp_path):
    suite = write_jsonl(tmp_path / "s.jsonl", CASES[:1])
    out = invoke(str(suite), "--gate", gate)
    assert out.exit_code == 2 and needle in out.output
    assert not (tmp_path / "data").exists()


def test_the_schema_file_is_the_one_the_runner_validates_with():
    from assistant.evaluation.suite import SCHEMA

    root = Path(__file__).resolve().parent.parent
    assert json.loads((root / "evals" / "suite.schema.json").read_text()) == SCHEMA


# -- local runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory, built_data_dir):
    """Two local runs of a small suite (one case mislabelled, so a gate fails) and one with a
    threshold nothing passes; module-scoped, in this process (the model is loaded once)."""
    from assistant.settings import get_settings

    root = tmp_path_factory.mktemp("eval-runs")
    data = copy_index(built_data_dir, root / "data")
    suite = write_jsonl(root / "small.jsonl", [*CASES, WRONG])
    (root / "hand.yaml").write_text(YAML_SUITE, encoding="utf-8")
    old_env = os.environ.get("PHT_DATA_DIR")
    os.environ["PHT_DATA_DIR"] = str(data)
    out = {"root": root, "suite": suite, "yaml": root / "hand.yaml"}
    try:
        get_settings.cache_clear()
        out["gated"] = invoke(
            str(suite), str(root / "hand.yaml"), "--report", str(root / "run.json"), "--junit", str(root / "run.xml"),
            "--html", str(root / "run.html"), "--gate", "status_accuracy>=1.0", "--gate", "urgent_recall>=1",
        )  # fmt: skip
        out["tagged"] = invoke(str(suite), "--tags", "qa-1,red-flag", "--gate", "status_accuracy>=1.0", "--report", str(root / "tagged.json"))
        os.environ["PHT_RELEVANCE_THRESHOLD"] = "0.99"
        os.environ["PHT_FOCUS_RELEVANCE_THRESHOLD"] = "0.99"
        get_settings.cache_clear()
        out["strict"] = invoke(str(suite), str(root / "hand.yaml"), "--report", str(root / "strict.json"))
    finally:
        os.environ.pop("PHT_RELEVANCE_THRESHOLD", None)
        os.environ.pop("PHT_FOCUS_RELEVANCE_THRESHOLD", None)
        if old_env is None:
            os.environ.pop("PHT_DATA_DIR", None)
        else:
            os.environ["PHT_DATA_DIR"] = old_env
        get_settings.cache_clear()
    return out


@pytest.mark.integration
def test_a_failing_gate_exits_1_and_still_writes_the_reports(runs):
    out = runs["gated"]
    assert out.exit_code == 1, out.output
    assert "GATE FAILED: status_accuracy>=1 fails: status_accuracy = 0.8571 over 7 cases" in out.output
    assert "gate ok:   urgent_recall>=1 passes" in out.output
    assert "small/wrong-1: status: expected not_covered, got answered" in out.output
    report = json.loads((runs["root"] / "run.json").read_text())
    assert [g["passed"] for g in report["gates"]] == [True, False, True]  # the notice gate comes first


@pytest.mark.integration
def test_a_passing_run_exits_0_and_tags_select_cases(runs):
    out = runs["tagged"]
    assert out.exit_code == 0, out.output
    report = json.loads((runs["root"] / "tagged.json").read_text())
    assert sorted(c["id"] for c in report["cases"]) == ["flag-1", "run-1"]
    assert report["settings"]["tags"] == ["qa-1", "red-flag"]


@pytest.mark.integration
def test_the_json_report_has_every_case_metric_and_setting(runs):
    report = json.loads((runs["root"] / "run.json").read_text())
    cases = {c["id"]: c for c in report["cases"]}
    assert set(cases) == {"run-1", "race-1", "ice-1", "flag-1", "bread-1", "wrong-1", "gym-1"}
    run1 = cases["run-1"]
    assert run1["passed"] and run1["got"]["status"] == "answered" and run1["answer"].endswith(SAFETY_NOTICE)
    assert run1["retrieved_from"] == "retrieval" and run1["ranking"][0] == "pht-podcast-qa#qa-1"
    assert run1["retrieved"][0]["rank"] == 1 and 0 <= run1["retrieved"][0]["relevance"] <= 1
    assert run1["checks"]["phrases"] is True and run1["checks"]["grounding"]["grounded"] == run1["checks"]["grounding"]["sentences"] > 0
    assert run1["timings"]["total"] > 0 and run1["latency_ms"] > 0 and run1["question"] == CASES[0]["question"]
    assert cases["flag-1"]["got"]["status"] == "urgent" and cases["flag-1"]["retrieved"] == []
    assert cases["ice-1"]["got"]["status"] == "not_covered" and cases["ice-1"]["retrieved"]  # retrieved, not cited
    assert cases["wrong-1"]["reasons"] == ["status: expected not_covered, got answered"] and not cases["wrong-1"]["passed"]
    assert cases["gym-1"]["suite"] == "hand" and cases["gym-1"]["line"] == 2
    overall = report["summary"]["overall"]
    assert overall["status_accuracy"] == {"value": round(6 / 7, 4), "n": 7, "of": "cases", "cases": 7}
    assert overall["urgent_recall"]["value"] == 1.0 and overall["urgent_recall"]["n"] == 1
    assert overall["notice_compliance"]["value"] == 1.0 and overall["hit_at_1"]["n"] == 3
    assert overall["latency_p95_ms"]["value"] >= overall["latency_p50_ms"]["value"] > 0
    assert report["summary"]["by_tag"]["red-flag"]["metrics"]["urgent_recall"]["n"] == 1
    assert report["summary"]["by_suite"]["hand"]["cases"] == 1
    conf = report["summary"]["confusion"]
    assert conf["counts"][conf["rows"].index("not_covered")][conf["columns"].index("answered")] == 1
    s = report["settings"]
    assert s["target"] == "local" and s["model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert s["corpus_version"] and s["thresholds"]["relevance_threshold"] == get_settings().relevance_threshold and "commit" in s
    assert [x["name"] for x in s["suites"]] == ["small", "hand"]


@pytest.mark.integration
def test_the_junit_xml_has_a_testcase_per_case_and_per_gate(runs):
    root = ET.parse(runs["root"] / "run.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == str(7 + 3) and root.get("failures") == "2"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"small", "hand", "gates"}
    small = {tc.get("name"): tc for tc in suites["small"].findall("testcase")}
    assert len(small) == 6 and small["wrong-1"].find("failure") is not None
    assert small["run-1"].find("failure") is None
    assert "expected not_covered, got answered" in small["wrong-1"].find("failure").get("message")
    failed_gates = [tc.get("name") for tc in suites["gates"].findall("testcase") if tc.find("failure") is not None]
    assert failed_gates == ["status_accuracy>=1"]


@pytest.mark.integration
def test_the_html_report_is_one_file_with_no_network(runs):
    page = (runs["root"] / "run.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and 'id="cases"' in page
    assert "src=" not in page and "<link" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert page.count("class='case'") == 7


@pytest.mark.integration
def test_compare_reports_fixed_broken_and_changed_cases(runs):
    root = runs["root"]
    strict, normal = root / "strict.json", root / "run.json"
    forward = CliRunner().invoke(app, ["eval", "compare", str(strict), str(normal), "--json"])
    assert forward.exit_code == 0, forward.output
    result = json.loads(forward.output)
    fixed = {r["key"] for r in result["fixed"]}
    assert {"small/run-1", "small/race-1", "hand/gym-1"} <= fixed
    assert {r["key"] for r in result["broken"]} == {"small/wrong-1"}  # not_covered under 0.99 was "right"
    assert result["metrics"]["status_accuracy"]["delta"] > 0
    run1 = next(r for r in result["fixed"] if r["key"] == "small/run-1")
    assert run1["status"] == ["not_covered", "answered"] and run1["source"] == ["", "pht-podcast-qa#qa-1"]
    backward = CliRunner().invoke(app, ["eval", "compare", str(normal), str(strict), "--fail-on-regression"])
    assert backward.exit_code == 1
    assert "Broken: " in backward.output and "small/run-1: answered -> not_covered" in backward.output
    assert "Regressions:" in backward.output and "status_accuracy" in backward.output
    same = CliRunner().invoke(app, ["eval", "compare", str(normal), str(normal), "--fail-on-regression"])
    assert same.exit_code == 0 and "Regressions: 0" in same.output


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    out = invoke("compare", str(tmp_path / "x.json"), str(tmp_path / "x.json"))
    assert out.exit_code == 2 and "not a report written by" in out.output


@pytest.mark.integration
def test_an_unknown_expected_source_exits_2(tmp_path, built_data_dir, monkeypatch):
    from assistant.settings import get_settings

    data = copy_index(built_data_dir, tmp_path / "idx")
    monkeypatch.setenv("PHT_DATA_DIR", str(data))
    get_settings.cache_clear()
    suite = write_jsonl(tmp_path / "typo.jsonl", [{**CASES[0], "expected_sources": ["pht-podcast-qa#qa-9"]}])
    out = invoke(str(suite), "--report", str(tmp_path / "r.json"))
    assert out.exit_code == 2 and "typo.jsonl:1: expected_sources[0]: 'pht-podcast-qa#qa-9' is no section" in out.output
    assert not (tmp_path / "r.json").exists()


# -- a deployed API --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.server
def test_target_url_runs_the_suite_against_a_real_server(runs, tmp_path, built_data_dir):
    from api_server import serve

    data = copy_index(built_data_dir, tmp_path / "data")
    env = {**os.environ, "PHT_DATA_DIR": str(data)}
    for args in (["clinic", "add", "Eval Clinic"],):
        done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    made = subprocess.run([*CLI, "key", "create", "--clinic", "eval-clinic"], capture_output=True, text=True, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    server = serve(data, tmp_path / "server.log")
    try:
        server.wait_ready()
        report = tmp_path / "url.json"
        out = subprocess.run(
            [*CLI, "eval", str(runs["suite"]), "--target", server.url, "--report", str(report), "--gate", "status_accuracy>=0.8"],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env={**env, "PHT_EVAL_KEY": key},
        )  # fmt: skip
        refused = subprocess.run(
            [*CLI, "eval", str(runs["suite"]), "--target", server.url, "--key", "pht_sk_nope_nope"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    remote = json.loads(report.read_text())
    local = json.loads((runs["root"] / "run.json").read_text())
    assert remote["settings"]["target"] == server.url and remote["settings"]["model"] == local["settings"]["model"]
    assert remote["settings"]["corpus_version"] == local["settings"]["corpus_version"]
    got_local = {c["id"]: (c["got"]["status"], c["got"]["sources"]) for c in local["cases"] if c["suite"] == "small"}
    got_remote = {c["id"]: (c["got"]["status"], c["got"]["sources"]) for c in remote["cases"]}
    assert got_remote == got_local  # the same answers over HTTP
    rank_local = {c["id"]: c["ranking"] for c in local["cases"] if c["suite"] == "small"}
    assert {c["id"]: c["ranking"] for c in remote["cases"]} == rank_local  # explain: the retrieved passages too
    assert {c["retrieved_from"] for c in remote["cases"]} == {"retrieval"}
    assert remote["summary"]["overall"]["hit_at_1"] == local["summary"]["by_suite"]["small"]["metrics"]["hit_at_1"]
    assert all(c["answer"].endswith(SAFETY_NOTICE) for c in remote["cases"])
    assert refused.returncode == 2 and "refused the key" in refused.stderr


@pytest.mark.parametrize("name", ["suite", "runner", "metrics", "compare"])
def test_module_examples(name):
    import doctest
    import importlib

    module = importlib.import_module(f"assistant.evaluation.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def _readme_eval_commands() -> list[list[str]]:
    import re
    import shlex

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Evaluating.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines() if line.startswith("pht-assistant ")]


def test_the_docs_name_every_metric_and_the_readme_gates_parse():
    from assistant.evaluation.metrics import METRICS, parse_gate

    docs = (Path(__file__).resolve().parent.parent / "docs" / "evals.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in docs for name in METRICS)
    commands = _readme_eval_commands()
    assert len(commands) >= 3 and any(c[:2] == ["eval", "compare"] for c in commands)
    for args in commands:
        for i, a in enumerate(args[:-1]):
            if a == "--gate":
                parse_gate(args[i + 1])


@pytest.mark.integration
def test_the_readme_eval_commands_run(tmp_path, built_data_dir):
    """The README's commands, in order, in a scratch folder that sees the bundled suites."""
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "evals").symlink_to(root / "evals")
    env = {**os.environ, "PHT_DATA_DIR": str(copy_index(built_data_dir, tmp_path / "data"))}
    for args in _readme_eval_commands():
        out = subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, " ".join(args) + "\n" + out.stdout[-3000:] + out.stderr[-3000:]
        assert out.stdout.strip()
    assert json.loads((tmp_path / "run.json").read_text())["summary"]["cases"] > 700
    assert (tmp_path / "run.html").stat().st_size > 100_000 and ET.parse(tmp_path / "red_flags.xml").getroot().get("failures") == "0"
