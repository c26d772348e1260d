"""Where one new process's time goes, to its first answer: imports, open, warm-up, first answer.

    PHT_DATA_DIR=... PHT_CORPUS_DIR=... .venv/bin/python benchmarks/open_phases.py "a question"

Prints one JSON line: each phase as [wall seconds, CPU seconds], the peak memory, the answer's
status and which heavy modules the process imported. Run it under ``python -m cProfile`` or
``py-spy record`` for the breakdown inside each phase (docs/performance.md).
"""

import json
import resource
import sys
import time


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(question: str) -> int:
    w0, c0 = time.perf_counter(), cpu()
    from assistant import Assistant
    import assistant.cli  # noqa: F401 - what the command line imports too

    w1, c1 = time.perf_counter(), cpu()
    a = Assistant.from_settings(progress=False, notify=lambda m: None)
    w2, c2 = time.perf_counter(), cpu()
    a.warm_up()
    w3, c3 = time.perf_counter(), cpu()
    answer = a.ask(question)
    w4, c4 = time.perf_counter(), cpu()
    heavy = [m for m in ("chromadb", "bm25s", "scipy", "torch", "langchain_core.runnables") if m in sys.modules]
    print(json.dumps({
        "imports": [round(w1 - w0, 3), round(c1 - c0, 3)], "open": [round(w2 - w1, 3), round(c2 - c1, 3)],
        "warm_up": [round(w3 - w2, 3), round(c3 - c2, 3)], "first_answer": [round(w4 - w3, 3), round(c4 - c3, 3)],
        "total": [round(w4 - w0, 3), round(c4 - c0, 3)],
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "status": answer.status.value, "modules": heavy,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "Can running be part of my rehab?"))
