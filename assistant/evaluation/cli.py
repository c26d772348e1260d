"""``pht-assistant eval``: run suites (the default) or ``eval compare`` two reports.

    pht-assistant eval evals/suites/ --report run.json --junit run.xml --html run.html --gate status_accuracy>=0.8
    pht-assistant eval suite.jsonl --target http://127.0.0.1:8080 --key "$PHT_EVAL_KEY"
    pht-assistant eval compare old.json new.json --fail-on-regression

Exit codes: 0 every gate passed; 1 a gate failed (or, for compare, a regression with
``--fail-on-regression``); 2 a suite, gate or report is invalid, or the target cannot be reached
(nothing was run). Only Typer loads here; the rest loads inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


class _RunByDefault(TyperGroup):
    """``eval SUITE ...`` means ``eval run SUITE ...``; ``eval compare`` is the other command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_RunByDefault,
    help="Run answer-quality suites and gate on the figures (`eval SUITE ...`), or compare two runs "
    "(`eval compare OLD.json NEW.json`). See docs/evals.md.",
    no_args_is_help=True,
)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _invalid(exc: Exception) -> None:
    problems = getattr(exc, "problems", None)
    if problems:
        _err(f"{len(problems)} problem(s); nothing was run:")
        for p in problems:
            _err(f"  {p}")
    else:
        _err(str(exc))
    raise typer.Exit(2)


def _summary_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from assistant.evaluation.html import _stands, _value
    from assistant.evaluation.metrics import METRICS

    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=160)
    overall = report["summary"]["overall"]
    gated = {g["metric"]: g for g in report["gates"]}
    table = Table(title=f"{report['summary']['cases']} cases", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("stands on")
    table.add_column("gate")
    for name in METRICS:
        g = gated.get(name)
        gate = "" if g is None else ("[green]pass[/] " if g["passed"] else "[bold red]FAIL[/] ") + g["gate"]
        table.add_row(name, _value(name, overall[name]), _stands(overall[name]), gate)
    console.print(table)
    suites = Table(title="per suite", title_justify="left")
    for col in ("suite", "cases", "status acc.", "hit@1", "hit@3", "MRR", "cit. prec.", "grounding", "notice", "urgent recall", "p50"):
        suites.add_column(col, justify="left" if col == "suite" else "right", no_wrap=col == "suite")
    for name, info in report["summary"]["by_suite"].items():
        m = info["metrics"]
        cells = [_value(k, m[k]) for k in ("status_accuracy", "hit_at_1", "hit_at_3", "mrr", "citation_precision", "grounding_rate", "notice_compliance", "urgent_recall", "latency_p50_ms")]
        suites.add_row(name, str(info["cases"]), *cells)
    console.print(suites)
    failing = [c for c in report["cases"] if not c["passed"]]
    if failing:
        console.print(f"Failing cases ({len(failing)}):", highlight=False)
        for c in failing[:40]:
            console.print(f"  {c['key']}: {'; '.join(c['reasons'])}", highlight=False, markup=False)
        if len(failing) > 40:
            console.print(f"  ... and {len(failing) - 40} more (see the reports)", highlight=False)
    for g in report["gates"]:
        console.print(("gate ok:   " if g["passed"] else "GATE FAILED: ") + g["message"], highlight=False, markup=False)


@eval_app.command("run")
def run(
    suites: Annotated[
        list[Path], typer.Argument(help="Suite files (.jsonl, .yaml, .yml) or folders of them.", show_default=False)
    ],
    target: Annotated[
        str, typer.Option(help="`local` (this checkout's index) or the base URL of a deployed API.")
    ] = "local",
    key: Annotated[
        str, typer.Option(envvar="PHT_EVAL_KEY", help="Clinic API key for a URL target (or PHT_EVAL_KEY).")
    ] = "",
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the self-contained HTML report here.")] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(help="METRIC>=VALUE (or <=, >, <), repeatable; exit 1 if one fails. notice_compliance>=1.0 always applies."),
    ] = None,
    tags: Annotated[str, typer.Option(help="Only cases with any of these tags (comma-separated).")] = "",
    composer: Annotated[
        str,
        typer.Option(
            help="Local target only: `settings` (a language model when PHT_LLM_BASE_URL is set), `extractive` "
            "(quotes, even when it is set) or `llm` (the language model; it must be set). Run both, then `eval compare`."
        ),
    ] = "settings",
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: when stderr is a terminal).")
    ] = None,
) -> None:
    """Run every case of the suites against the target, print the figures, write the reports, apply the gates."""
    from datetime import datetime, timezone

    from assistant.errors import AssistantError
    from assistant.evaluation import metrics, reports, suite
    from assistant.evaluation import runner as runner_

    try:
        gates = [metrics.parse_gate(g) for g in gate or []]
        loaded = suite.load_suites(suites)
    except AssistantError as exc:
        _invalid(exc)
    wanted = [t.strip() for t in tags.split(",") if t.strip()]
    cases = suite.select(loaded, wanted)
    if not cases:
        _invalid(ValueError(f"No case carries any of the tags {', '.join(wanted)}; nothing was run."))
    if target != "local" and not target.startswith(("http://", "https://")):
        _invalid(ValueError(f"--target is `local` or an http(s) URL, not {target!r}."))
    started = datetime.now(timezone.utc)
    try:
        if target != "local" and composer != "settings":
            raise runner_.TargetUnavailable("--composer chooses the local target's composer; a URL target uses the server's.")
        tgt = (
            runner_.LocalTarget.from_settings(notify=_err, composer=composer)
            if target == "local"
            else runner_.HttpTarget(target, key)
        )
    except AssistantError as exc:
        _invalid(exc)
    try:
        try:
            tgt.warm_up()
            unknown = suite.unknown_sources(loaded, tgt.known_sources())
        except AssistantError as exc:
            _invalid(exc)
        if unknown:
            _invalid(suite.SuiteInvalid(unknown))
        _err(f"Running {len(cases)} case(s) from {len(loaded)} suite(s) against {target}.")
        records = runner_.run_cases(cases, tgt, progress=progress)
        settings = runner_.run_settings(tgt, loaded, wanted, started)
    finally:
        tgt.close()
    summary = metrics.summarise(records)
    checked = metrics.check_gates(gates, summary["overall"])
    full = reports.build(settings, summary, checked, records)
    if report:
        reports.write_json(full, report)
    if junit:
        reports.write_junit(full, junit)
    if html:
        from assistant.evaluation.html import write_html

        write_html(full, html)
    _summary_table(full)
    for label, path in (("JSON report", report), ("JUnit XML", junit), ("HTML report", html)):
        if path:
            _err(f"{label}: {path}")
    if not all(g["passed"] for g in checked):
        raise typer.Exit(1)


@eval_app.command("compare")
def compare_(
    old: Annotated[Path, typer.Argument(help="The earlier JSON report.")],
    new: Annotated[Path, typer.Argument(help="The later JSON report.")],
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 1 when a case broke or a figure got worse.")
    ] = False,
    tolerance: Annotated[float, typer.Option(help="How much a share may drop before it counts as a regression.")] = 0.0,
    json_: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Per-case changes (fixed, broken, changed status or source) and the change in every figure."""
    import json

    from assistant.errors import AssistantError
    from assistant.evaluation import compare, reports

    try:
        a, b = reports.read_json(old), reports.read_json(new)
    except AssistantError as exc:
        _invalid(exc)
    result = compare.compare(a, b, tolerance=tolerance)
    typer.echo(json.dumps(result, indent=1) if json_ else compare.render_text(result))
    if fail_on_regression and result["regressions"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``eval`` (with ``eval compare``) to the ``pht-assistant`` app."""
    app.add_typer(eval_app, name="eval")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(eval_app())
