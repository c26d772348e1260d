"""Suites: one case per JSONL row (or per item of a YAML list), validated against :data:`SCHEMA`.

>>> import json, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "mini.jsonl").write_text(json.dumps({"id": "a", "question": "Can I run?", "expected_status": "answered"}) + "\\n")
>>> [c.id for c in load_suite(folder / "mini.jsonl").cases]
['a']
>>> _ = (folder / "bad.jsonl").write_text('{"id": "b", "question": "?", "expected_status": "fine"}\\n')
>>> try:
...     load_suite(folder / "bad.jsonl")
... except SuiteInvalid as exc:
...     print(exc.problems[0].where())
bad.jsonl:1: expected_status

Every problem in every file is collected before anything runs, so one pass shows them all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError

STATUSES = ("answered", "not_covered", "out_of_scope", "urgent")
SUFFIXES = (".jsonl", ".yaml", ".yml")

# The JSON Schema of one case. evals/suite.schema.json is this, written out (a test keeps them equal).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://pht-assistant.invalid/evals/suite.schema.json",
    "title": "PHT Assistant evaluation case",
    "description": (
        "One case of an evaluation suite: a JSONL row, or an item of a YAML list. See docs/evals.md."
    ),
    "type": "object",
    "required": ["id", "question", "expected_status"],
    "additionalProperties": False,
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
            "maxLength": 120,
            "description": "Unique within the suite; letters, digits, '_', '.', ':' and '-'.",
        },
        "question": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "What the patient asks."},
        "history": {
            "type": "array",
            "description": "The conversation before the question, oldest first.",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "additionalProperties": False,
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"type": "string"},
                },
            },
        },
        "expected_status": {"enum": list(STATUSES), "description": "The status the reply should have."},
        "expected_sources": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "description": "DOCID#SECTIONID of the sections that answer it; citing any one of them counts.",
            "items": {"type": "string", "pattern": "^[^#\\s]+#[^#\\s]+$"},
        },
        "expected_missing": {
            "type": "array",
            "minItems": 1,
            "description": (
                "For a question the sources don't cover: words naming what they lack (e.g. 'shockwave'); "
                "the not-covered reply must name one of them, case-insensitive."
            ),
            "items": {"type": "string", "minLength": 1},
        },
        "must_include": {
            "type": "array",
            "description": "Phrases the reply (without the notice) must contain, case-insensitive.",
            "items": {"type": "string", "minLength": 1},
        },
        "must_not_include": {
            "type": "array",
            "description": "Phrases the reply (without the notice) must not contain, case-insensitive.",
            "items": {"type": "string", "minLength": 1},
        },
        "tags": {
            "type": "array",
            "description": "Free labels; every figure is also broken down by tag.",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"},
        },
        "note": {"type": "string", "description": "A comment for people; ignored by the runner."},
    },
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a suite: where (file, line, field) and what."""

    file: str
    line: int | None
    field: str | None
    message: str

    def where(self) -> str:
        out = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{out}: {self.field}" if self.field else out

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"


class SuiteInvalid(AssistantError):
    """A suite cannot run; ``problems`` lists every problem found, each with file, line and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = f"{len(problems)} problem(s) in the suite(s); nothing was run"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class Case:
    id: str
    question: str
    expected_status: str
    suite: str
    file: str
    line: int
    history: list[dict[str, str]] = field(default_factory=list)
    expected_sources: list[str] = field(default_factory=list)
    expected_missing: list[str] = field(default_factory=list)
    must_include: list[str] = field(default_factory=list)
    must_not_include: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    note: str = ""
    field_lines: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        """``suite/id``: how reports and comparisons name the case."""
        return f"{self.suite}/{self.id}"


@dataclass
class Suite:
    name: str
    path: Path
    cases: list[Case]
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "cases": len(self.cases), "sha256": self.sha256}


def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(SCHEMA)


def _field_of(error: Any) -> str:
    """The dotted path of the field an error is about (the missing or extra name when there is one)."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        name = missing[0] if missing else ""
        return f"{path}.{name}" if path else name
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        name = ",".join(extra)
        return f"{path}.{name}" if path else name
    return path or "(row)"


def _message_of(error: Any) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "additionalProperties":
        return "unknown field (allowed: " + ", ".join(SCHEMA["properties"]) + ")"
    if error.validator == "pattern" and error.absolute_path and error.absolute_path[0] == "expected_sources":
        return f"{error.instance!r} is not DOCID#SECTIONID"
    return error.message


def _rows_jsonl(path: Path, text: str, problems: list[Problem]) -> list[tuple[int, Any, dict[str, int]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line), {}))
        except json.JSONDecodeError as exc:
            problems.append(Problem(path.name, n, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
    return rows


def _rows_yaml(path: Path, text: str, problems: list[Problem]) -> list[tuple[int, Any, dict[str, int]]]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(path.name, line, None, f"not valid YAML ({getattr(exc, 'problem', None) or exc})"))
        return []
    items_node = root
    if isinstance(data, dict) and "cases" in data:
        data = data["cases"]
        items_node = next(v for k, v in root.value if k.value == "cases")
    if not isinstance(data, list) or not isinstance(items_node, yaml.SequenceNode):
        line = root.start_mark.line + 1 if root is not None else 1
        problems.append(Problem(path.name, line, None, "a YAML suite is a list of cases (or a mapping with `cases:`)"))
        return []
    rows = []
    for node, row in zip(items_node.value, data):
        lines = {}
        if isinstance(node, yaml.MappingNode):
            lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        rows.append((node.start_mark.line + 1, row, lines))
    return rows


def load_suite(path: Path | str) -> Suite:
    """One suite file; raises :class:`SuiteInvalid` listing every problem."""
    return load_suites([path])[0]


def expand(paths: list[Path | str]) -> list[Path]:
    """Files as given; a folder stands for its .jsonl, .yaml and .yml files (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


def load_suites(paths: list[Path | str]) -> list[Suite]:
    """Every suite in ``paths`` (files or folders), validated; raises :class:`SuiteInvalid` if any problem."""
    problems: list[Problem] = []
    suites: list[Suite] = []
    files = expand(paths)
    if not files:
        raise SuiteInvalid([Problem(", ".join(map(str, paths)) or "(none)", None, None, "no suite files given")])
    validator = _validator()
    names: dict[str, Path] = {}
    for path in files:
        if not path.is_file():
            problems.append(Problem(str(path), None, None, "no such file"))
            continue
        if path.suffix not in SUFFIXES:
            problems.append(Problem(path.name, None, None, "a suite is a .jsonl, .yaml or .yml file"))
            continue
        if path.stem in names:
            problems.append(Problem(path.name, None, None, f"another suite is also named {path.stem!r} ({names[path.stem]})"))
            continue
        names[path.stem] = path
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(path.name, None, None, "not UTF-8 text"))
            continue
        reader = _rows_jsonl if path.suffix == ".jsonl" else _rows_yaml
        before = len(problems)
        rows = reader(path, text, problems)
        if not rows and len(problems) == before:
            problems.append(Problem(path.name, None, None, "the suite has no cases"))
        cases: list[Case] = []
        seen: dict[str, int] = {}
        for line, row, lines in rows:
            errors = sorted(validator.iter_errors(row), key=lambda e: list(map(str, e.absolute_path)))
            for error in errors:
                name = _field_of(error)
                top = name.split(".")[0].split("[")[0]
                problems.append(Problem(path.name, lines.get(top, line), name, _message_of(error)))
            if errors:
                continue
            if row["id"] in seen:
                problems.append(
                    Problem(path.name, lines.get("id", line), "id", f"{row['id']!r} is used again (first on line {seen[row['id']]})")
                )
                continue
            seen[row["id"]] = line
            cases.append(
                Case(
                    suite=path.stem, file=str(path), line=line, field_lines=lines,
                    **{k: v for k, v in row.items()},
                )
            )
        suites.append(Suite(path.stem, path, cases, hashlib.sha256(raw).hexdigest()))
    if problems:
        raise SuiteInvalid(problems)
    return suites


def unknown_sources(suites: list[Suite], known: set[str]) -> list[Problem]:
    """Expected sources that name no section the target knows (a typo would silently lower every figure)."""
    problems = []
    for suite in suites:
        for case in suite.cases:
            for i, source in enumerate(case.expected_sources):
                if source not in known:
                    problems.append(
                        Problem(
                            Path(case.file).name, case.field_lines.get("expected_sources", case.line),
                            f"expected_sources[{i}]", f"{source!r} is no section of the indexed sources",
                        )
                    )
    return problems


def select(suites: list[Suite], tags: list[str] | None) -> list[Case]:
    """The cases to run: all, or those carrying any of ``tags``."""
    cases = [c for s in suites for c in s.cases]
    if tags:
        wanted = set(tags)
        cases = [c for c in cases if wanted & set(c.tags)]
    return cases
