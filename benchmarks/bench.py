"""Speed benchmark: index build, cold start, warm ``ask`` latency and the floor under it.

    .venv/bin/python bench/bench.py [--runs N] [--json PATH]

Measures, each over N runs (default 5), and prints a table to standard output:

1. model load (once) and index build from scratch into a fresh temporary folder (median);
2. cold start: a new process answering one question against an already-built index (median);
3. warm ``ask`` latency, p50 / p95, over the fixed questions below, overall and per status;
4. the floor: one query embedding plus one raw Chroma query (p50), and warm p50 / floor p50;
5. per-stage medians from ``Answer.timings`` for answered questions.

All figures and the machine description go to a JSON file (default
``bench/results/bench-<UTC timestamp>.json``, copied to ``bench/results/latest.json``). Progress
goes to standard error. Nothing here asserts on time: it measures and reports.
docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV_BIN = ROOT / ".venv" / "bin"

COLD_QUESTION = "Can running be part of my rehab for high hamstring tendon pain?"
COLD_TIMEOUT_S = 120.0

# (question, the status we expect). Grouping in the report uses the status actually returned.
QUESTIONS: list[tuple[str, str]] = [
    # answered: the podcast Q&A covers these
    ("Is running part of rehab for proximal hamstring tendinopathy or only the goal?", "answered"),
    ("Can I keep running while I rehab my high hamstring tendon?", "answered"),
    ("How can I build leg muscle when I have PHT?", "answered"),
    ("Which exercises does a painful hamstring tendon usually tolerate?", "answered"),
    ("Should I take longer rest between sets to let my tendon recover?", "answered"),
    ("I have a marathon coming up and hamstring tendinopathy, should I still race?", "answered"),
    ("Is speed work a good idea while training for a race with PHT?", "answered"),
    ("what is proximal hamstring tendinopathy", "answered"),
    # not_covered: on topic, the sources do not say
    ("Does ice or heat help proximal hamstring tendinopathy more?", "not_covered"),
    ("What cushion should I sit on with high hamstring tendon pain?", "not_covered"),
    ("Should I stretch my hamstrings every day with PHT?", "not_covered"),
    ("Which sleeping position eases sit bone tendon pain?", "not_covered"),
    # off-topic: out_of_scope
    ("What is a good recipe for banana bread?", "out_of_scope"),
    ("How do I change a flat tyre on my bike?", "out_of_scope"),
    ("Which programming language should I learn first?", "out_of_scope"),
    ("When is the best season to visit Japan?", "out_of_scope"),
    # urgent: red flags
    ("My sit bone pain is worse and my bum has gone numb since yesterday", "urgent"),
    ("I suddenly can't control my bladder and my hamstring pain is much worse", "urgent"),
    ("I have a high fever and my hamstring is hot, red and swollen", "urgent"),
    ("My leg is getting weaker every day and my hamstring pain is spreading", "urgent"),
]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def pct(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 2)


def med(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "min": round(min(values), 2) if values else None,
        "max": round(max(values), 2) if values else None,
    }


class Background:
    """How many cores other processes kept busy while a phase ran (from /proc/stat, Linux only).

    The machine's busy time minus this process's and its children's CPU time, over wall time. On
    a small machine a busy neighbour slows every figure here, so each phase reports it.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = sum(os.times()[:4])
        return busy, own, time.perf_counter()

    def cores(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return round(max(0.0, other) / (end[2] - self.start[2]), 2)


# -- machine -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("torch", "chromadb", "sentence-transformers", "langchain-core", "pht-assistant"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = None
    try:
        mem_kb = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    except Exception:
        mem_gb = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# -- 1. model load and index build ---------------------------------------------------------------


def bench_build(runs: int, work: Path) -> tuple[dict[str, Any], Any, Path]:
    """Loads the model once, builds the index ``runs`` times; returns figures, embeddings, index."""
    from assistant.settings import Settings

    settings = Settings(data_dir=work / "unused")
    corpus_dir = settings.corpus_dir

    log("loading the embedding model (timed once)")
    t0 = time.perf_counter()
    import sentence_transformers  # noqa: F401  (import cost is part of loading)
    import torch

    t1 = time.perf_counter()
    from assistant.embeddings import MiniLMEmbeddings

    embeddings = MiniLMEmbeddings(batch_size=settings.embedding_batch_size)
    embeddings.warm_up()
    t2 = time.perf_counter()
    embeddings._encode(["first encode pays one-off setup"])
    t3 = time.perf_counter()

    from assistant.index import build_index

    # Time the encoder's share of each build by wrapping this instance's embed_documents.
    spent = [0.0]
    plain = embeddings.embed_documents

    def timed_embed(texts, *a, **kw):
        t = time.perf_counter()
        try:
            return plain(texts, *a, **kw)
        finally:
            spent[0] += time.perf_counter() - t

    times, embed_times, report = [], [], None
    keep = work / "index"
    embeddings.embed_documents = timed_embed
    background = Background()
    try:
        for i in range(runs):
            target = keep if i == runs - 1 else work / f"build-{i}"
            spent[0] = 0.0
            t = time.perf_counter()
            report = build_index(target, corpus_dir, embeddings, collection=settings.collection, rebuild=True)
            times.append(ms(time.perf_counter() - t))
            embed_times.append(ms(spent[0]))
            log(f"index build {i + 1}/{runs}: {times[-1]:.0f} ms ({report.records} records, "
                f"encoding {embed_times[-1]:.0f} ms)")
            if target != keep:
                shutil.rmtree(target, ignore_errors=True)
    finally:
        del embeddings.embed_documents  # back to the class method

    figures = {
        "model_import_ms": ms(t1 - t0),
        "model_load_ms": ms(t2 - t1),
        "model_import_and_load_ms": ms(t2 - t0),
        "first_encode_ms": ms(t3 - t2),
        "torch_threads": torch.get_num_threads(),
        "build_runs_ms": times,
        "build_median_ms": med(times),
        "build_encode_runs_ms": embed_times,
        "build_encode_median_ms": med(embed_times),
        "build_background_cores": background.cores(),
        "chunks": report.chunks,
        "records": report.records,
        "embedded": report.added,
        "corpus_dir": str(corpus_dir),
    }
    return figures, embeddings, keep


# -- 2. cold start -------------------------------------------------------------------------------

FALLBACK = r"""
import sys
from assistant import Assistant
a = Assistant.from_settings(progress=False, notify=lambda m: None)
print(a.ask(sys.argv[1]).model_dump_json())
"""


def cold_command(question: str) -> tuple[list[str], str]:
    """The CLI when it is installed and importable, else a ``python -c`` doing the same work."""
    script = VENV_BIN / "pht-assistant"
    cli = shutil.which("pht-assistant", path=str(VENV_BIN)) or (str(script) if script.exists() else None)
    try:
        has_module = importlib.util.find_spec("assistant.cli") is not None
    except Exception:
        has_module = False
    if cli and has_module:
        return [cli, "ask", question, "--json"], "cli"
    return [sys.executable, "-c", FALLBACK, question], "python -c"


def run_cold(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=COLD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return ms(time.perf_counter() - t), -1, "", "timed out"
    return ms(time.perf_counter() - t), proc.returncode, proc.stdout, proc.stderr


def answer_status(stdout: str) -> str | None:
    text = stdout.strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except ValueError:
        return None
    status = data.get("status") if isinstance(data, dict) else None
    if status is None and isinstance(data, dict) and isinstance(data.get("answer"), dict):
        status = data["answer"].get("status")
    return status


def bench_cold(runs: int, index_dir: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PHT_DATA_DIR"] = str(index_dir)
    env.pop("PHT_CORPUS_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    cmd, method = cold_command(COLD_QUESTION)
    fallback_reason = ""

    log(f"cold start via {method}: one untimed priming run (fills the OS file cache)")
    _, code, out, err = run_cold(cmd, env)
    if (code != 0 or answer_status(out) is None) and method == "cli":
        fallback_reason = f"CLI exit {code}: {(err.strip().splitlines() or [''])[-1][:200]}"
        log(f"CLI did not answer ({fallback_reason}); falling back to python -c")
        cmd, method = [sys.executable, "-c", FALLBACK, COLD_QUESTION], "python -c"
        _, code, out, err = run_cold(cmd, env)

    times, statuses, failures = [], [], 0
    background = Background()
    for i in range(runs):
        wall, code, out, err = run_cold(cmd, env)
        status = answer_status(out)
        if code != 0 or status is None:
            failures += 1
            log(f"cold start {i + 1}/{runs}: FAILED (exit {code}) {err.strip()[-200:]}")
            continue
        times.append(wall)
        statuses.append(status)
        log(f"cold start {i + 1}/{runs}: {wall:.0f} ms -> {status}")
    return {
        "method": method,
        "command": [Path(c).name if i == 0 else c for i, c in enumerate(cmd)] if method == "cli" else
        ["python", "-c", "<import Assistant; from_settings(); ask once; print JSON>", COLD_QUESTION],
        "fallback_reason": fallback_reason,
        "question": COLD_QUESTION,
        "runs_ms": times,
        "median_ms": med(times),
        "min_ms": min(times) if times else None,
        "max_ms": max(times) if times else None,
        "statuses": statuses,
        "failures": failures,
        "background_cores": background.cores(),
    }


# -- 3-5. warm latency and its floor -------------------------------------------------------------


def bench_warm(passes: int, index_dir: Path, embeddings: Any) -> dict[str, Any]:
    from assistant import Assistant, Settings

    assistant = Assistant.from_settings(
        Settings(data_dir=index_dir), embeddings=embeddings, progress=False, notify=lambda m: None
    )
    try:
        assistant.warm_up()
        log(f"warm-up pass over {len(QUESTIONS)} questions (untimed)")
        got: dict[str, str] = {}
        for q, _ in QUESTIONS:
            got[q] = assistant.ask(q).status.value

        wall: list[float] = []
        by_status: dict[str, list[float]] = {}
        stages: dict[str, dict[str, list[float]]] = {}
        reported_total: list[float] = []
        background = Background()
        for p in range(passes):
            assistant.embeddings._cache.clear()
            order = list(QUESTIONS)
            random.Random(p).shuffle(order)  # spread any background load evenly over the kinds
            for q, _ in order:
                t = time.perf_counter()
                answer = assistant.ask(q)
                elapsed = ms(time.perf_counter() - t)
                wall.append(elapsed)
                by_status.setdefault(answer.status.value, []).append(elapsed)
                reported_total.append(answer.timings.get("total", 0.0))
                per = stages.setdefault(answer.status.value, {})
                for stage, value in answer.timings.items():
                    per.setdefault(stage, []).append(value)
            log(f"warm pass {p + 1}/{passes}: median so far {med(wall):.1f} ms")
        warm_background = background.cores()

        # The floor: what any query must pay, one encode plus one nearest-neighbour lookup.
        log(f"floor: {passes * len(QUESTIONS)} x (encode + raw Chroma query)")
        collection = assistant.index._collection
        floor, enc, chroma = [], [], []
        background = Background()
        for p in range(passes):
            for i, (q, _) in enumerate(QUESTIONS):
                text = f"{q} ({p}.{i})"  # distinct strings; _encode is uncached anyway
                t0 = time.perf_counter()
                v = assistant.embeddings._encode([text])[0].tolist()
                t1 = time.perf_counter()
                collection.query(query_embeddings=[v], n_results=5, where={"kind": "unit"})
                t2 = time.perf_counter()
                enc.append(ms(t1 - t0))
                chroma.append(ms(t2 - t1))
                floor.append(ms(t2 - t0))
        floor_background = background.cores()
    finally:
        assistant.close()

    warm_p50 = pct(wall, 50)
    floor_p50 = pct(floor, 50)
    mismatches = [
        {"question": q, "expected": exp, "got": got[q]} for q, exp in QUESTIONS if got[q] != exp
    ]
    return {
        "questions": len(QUESTIONS),
        "passes": passes,
        "asks": len(wall),
        "latency_ms": summary(wall),
        "latency_by_status_ms": {s: summary(v) for s, v in sorted(by_status.items())},
        "reported_total_p50_ms": pct(reported_total, 50),
        "answered_stage_median_ms": {k: med(v) for k, v in stages.get("answered", {}).items()},
        "stage_median_ms_by_status": {
            s: {k: med(v) for k, v in per.items()} for s, per in sorted(stages.items())
        },
        "floor_ms": {
            "encode_plus_query": summary(floor),
            "encode": summary(enc),
            "chroma_query": summary(chroma),
        },
        "background_cores": {"warm": warm_background, "floor": floor_background},
        "warm_p50_over_floor_p50": round(warm_p50 / floor_p50, 2) if warm_p50 and floor_p50 else None,
        "status_counts_first_pass": {s: list(got.values()).count(s) for s in sorted(set(got.values()))},
        "status_mismatches": mismatches,
    }


# -- report --------------------------------------------------------------------------------------


def fmt(value: Any, unit: str = " ms") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def print_table(result: dict[str, Any]) -> None:
    m, b, c, w = result["machine"], result["build"], result["cold_start"], result["warm"]
    v = m["versions"]
    rows: list[tuple[str, str]] = []
    rows.append(("machine", f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
                            f"torch threads {b['torch_threads']}"))
    rows.append(("versions", f"python {m['python']}, torch {v['torch']}, chromadb {v['chromadb']}, "
                             f"sentence-transformers {v['sentence-transformers']}"))
    rows.append(("runs (N)", str(result["runs"])))
    rows.append(("", ""))
    rows.append(("model import + load (once)",
                 f"{fmt(b['model_import_and_load_ms'])} (import {fmt(b['model_import_ms'])}, "
                 f"weights {fmt(b['model_load_ms'])})"))
    rows.append(("index build, from scratch (median)",
                 f"{fmt(b['build_median_ms'])} (encoding {fmt(b['build_encode_median_ms'])}; "
                 f"{b['chunks']} passages, {b['records']} records)"))
    rows.append((f"cold start to first answer (median, {c['method']})",
                 f"{fmt(c['median_ms'])} (min {fmt(c['min_ms'])}, max {fmt(c['max_ms'])})"))
    lat = w["latency_ms"]
    rows.append((f"warm ask p50 / p95 ({w['asks']} asks)", f"{fmt(lat['p50'])} / {fmt(lat['p95'])}"))
    for status, s in w["latency_by_status_ms"].items():
        rows.append((f"  {status} p50 / p95 (n={s['n']})", f"{fmt(s['p50'])} / {fmt(s['p95'])}"))
    f = w["floor_ms"]
    rows.append(("floor p50: encode + Chroma query",
                 f"{fmt(f['encode_plus_query']['p50'])} (encode {fmt(f['encode']['p50'])}, "
                 f"query {fmt(f['chroma_query']['p50'])})"))
    rows.append(("warm p50 / floor p50", fmt(w["warm_p50_over_floor_p50"], "x")))
    rows.append(("answered: stage medians", ", ".join(
        f"{k} {fmt(val)}" for k, val in w["answered_stage_median_ms"].items())))
    width = max(len(r[0]) for r in rows)
    print()
    print(f"PHT Assistant benchmark, {result['date_utc']}")
    print("-" * (width + 60))
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if label else "")
    print("-" * (width + 60))
    bg = {
        "build": b.get("build_background_cores"),
        "cold start": c.get("background_cores"),
        "warm": w["background_cores"]["warm"],
        "floor": w["background_cores"]["floor"],
    }
    print("cores kept busy by other processes: " + ", ".join(
        f"{k} {v:.2f}" for k, v in bg.items() if v is not None) + f" (of {m['cores']})")
    la, lb = m.get("loadavg_start"), m.get("loadavg_end")
    if la and lb:
        print(f"load average (1 min) at start {la[0]:.2f}, at end {lb[0]:.2f}")
    if w["status_mismatches"]:
        print(f"note: {len(w['status_mismatches'])} question(s) got another status than expected:")
        for mm in w["status_mismatches"]:
            print(f"  {mm['expected']} -> {mm['got']}: {mm['question']}")
    if c["failures"]:
        print(f"note: {c['failures']} cold-start run(s) failed")
    if c["fallback_reason"]:
        print(f"note: cold start used python -c ({c['fallback_reason']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    runs = max(1, args.runs)

    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    result: dict[str, Any] = {
        "date_utc": now.strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs,
        "machine": machine_info(),
    }
    with tempfile.TemporaryDirectory(prefix="pht-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        result["build"], embeddings, index_dir = bench_build(runs, work)
        result["cold_start"] = bench_cold(runs, index_dir)
        result["warm"] = bench_warm(runs, index_dir, embeddings)
    result["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["seconds"] = round(time.perf_counter() - started, 1)

    print_table(result)
    path = args.json or RESULTS / f"bench-{now:%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    if path.resolve() != latest.resolve():
        latest.write_text(text, encoding="utf-8")
    log(f"done in {result['seconds']:.0f} s; figures in {path} and {latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
