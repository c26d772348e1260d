"""What the OpenAI-compatible door costs: POST /v1/chat/completions against POST /v1/ask, 16 clients.

    .venv/bin/python benchmarks/bench.py --only-chat [--api-requests N] [--api-repeat R]
    (and a phase of `make bench`)

One `pht-assistant serve` on loopback, one clinic key, the benchmark's 20 questions. Each round runs
the two endpoints in turn, A B B A (so a drift in the machine's load falls on both alike), each
phase 16 clients on kept-alive connections sending ``per_client`` requests; then the same for the
streamed pair (/v1/ask/stream against /v1/chat/completions with ``stream: true``). Per round:
overhead = /v1/ask's answers per second / chat's - 1 (the extra wall time per answer), and the
server's CPU per answer, chat / ask - 1. The figures are the rounds' medians. Target: under 10%.
Nothing here asserts on time.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
CLIENTS = 16
TARGET = 0.10
NOTICE_END = "qualified clinician before acting on it."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _request(endpoint: str, question: str) -> tuple[str, bytes]:
    if endpoint == "ask":
        return "/v1/ask", json.dumps({"question": question}).encode()
    if endpoint == "ask_stream":
        return "/v1/ask/stream", json.dumps({"question": question}).encode()
    body = {"model": "pht-assistant", "messages": [{"role": "user", "content": question}]}
    if endpoint == "chat_stream":
        body["stream"] = True
    return "/v1/chat/completions", json.dumps(body).encode()


class Load:
    """``CLIENTS`` threads, each on its own kept-alive connection, against one server."""

    def __init__(self, port: int, key: str, pid: int, questions: list[str]) -> None:
        self.port, self.key, self.pid, self.questions = port, key, pid, questions
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.phases = 0  # every phase asks questions no earlier phase asked (no cache answers for the second)

    def one(self, conn: http.client.HTTPConnection, endpoint: str, question: str) -> bytes:
        path, body = _request(endpoint, question)
        conn.request("POST", path, body=body, headers=self.headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status} from {path}")
        return data

    def phase(self, endpoint: str, per_client: int) -> dict[str, Any]:
        self.phases += 1
        tag = self.phases
        errors: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                for i in range(per_client):
                    q = self.questions[(c * 7 + i) % len(self.questions)] + f" (phase {tag}, client {c}, {i})"
                    t = time.perf_counter()
                    try:
                        self.one(conn, endpoint, q)
                        bad = None
                    except Exception as exc:
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                        bad = str(exc) or type(exc).__name__
                    with lock:
                        latencies.append((time.perf_counter() - t) * 1000)
                        if bad:
                            errors.append(bad)
            finally:
                conn.close()

        cpu = _cpu_seconds(self.pid)
        t = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        cpu = _cpu_seconds(self.pid) - cpu
        latencies.sort()
        return {
            "endpoint": endpoint,
            "requests": len(latencies),
            "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5],
            "per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(latencies[len(latencies) // 2], 1),
            "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1),
            "server_cpu_ms_per_request": round(cpu * 1000 / max(1, len(latencies)), 2),
        }


def _pair(load: Load, base: str, door: str, per_client: int) -> dict[str, Any]:
    """A B B A: the base endpoint, the door twice, the base again; rates and CPU summed per endpoint."""
    phases = [load.phase(e, per_client) for e in (base, door, door, base)]

    def joined(name: str) -> dict[str, Any]:
        mine = [p for p in phases if p["endpoint"] == name]
        n = sum(p["requests"] for p in mine)
        seconds = sum(p["requests"] / p["per_s"] for p in mine)
        return {
            "per_s": round(n / seconds, 2),
            "p50_ms": statistics.median(p["p50_ms"] for p in mine),
            "p95_ms": statistics.median(p["p95_ms"] for p in mine),
            "server_cpu_ms_per_request": round(statistics.mean(p["server_cpu_ms_per_request"] for p in mine), 2),
            "errors": sum(p["errors"] for p in mine),
        }

    b, d = joined(base), joined(door)
    return {
        base: b,
        door: d,
        "overhead": round(b["per_s"] / d["per_s"] - 1, 4),
        "cpu_overhead": round(d["server_cpu_ms_per_request"] / b["server_cpu_ms_per_request"] - 1, 4),
        "loadavg": round(os.getloadavg()[0], 2),
    }


def measure(port: int, key: str, pid: int, questions: list[str], per_client: int, rounds: int,
            log=lambda m: None) -> dict[str, Any]:
    load = Load(port, key, pid, questions)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for q in questions:  # warm the server and check both doors answer alike
        a = json.loads(load.one(conn, "ask", q))
        c = json.loads(load.one(conn, "chat", q))
        if c["pht"]["status"] != a["status"] or not c["choices"][0]["message"]["content"].endswith(NOTICE_END):
            raise RuntimeError(f"/v1/chat/completions and /v1/ask disagree on {q!r}")
    conn.close()
    done = []
    for i in range(max(1, rounds)):
        log(f"chat overhead round {i + 1}/{rounds}: load {os.getloadavg()[0]:.2f}")
        done.append({"plain": _pair(load, "ask", "chat", per_client),
                     "streamed": _pair(load, "ask_stream", "chat_stream", per_client)})
    out: dict[str, Any] = {"clients": CLIENTS, "requests_per_phase": CLIENTS * per_client, "rounds": done}
    for kind in ("plain", "streamed"):
        out[kind] = {
            "overhead": round(statistics.median(r[kind]["overhead"] for r in done), 4),
            "overheads": [r[kind]["overhead"] for r in done],
            "cpu_overhead": round(statistics.median(r[kind]["cpu_overhead"] for r in done), 4),
            "cpu_overheads": [r[kind]["cpu_overhead"] for r in done],
            "errors": sum(v["errors"] for r in done for k, v in r[kind].items() if isinstance(v, dict)),
        }
    return out


def run(work: Path, index_dir: Path, questions: list[str], per_client: int, rounds: int, log=lambda m: None) -> dict[str, Any]:
    """Start a server on a copy of ``index_dir`` with one clinic key, then :func:`measure`."""
    cli = str(VENV_BIN / "pht-assistant")
    data = work / "chat-data"
    shutil.copytree(index_dir, data)
    env = {k: v for k, v in os.environ.items() if k != "PHT_CORPUS_DIR"}
    env.update({"PHT_DATA_DIR": str(data), "PHT_API_RATE_LIMIT": "1000000", "PHT_LOG_LEVEL": "warning"})
    added = subprocess.run([cli, "clinic", "add", "Benchmark clinic"], env=env, capture_output=True, text=True, timeout=120)
    if added.returncode != 0:
        return {"error": f"clinic add failed: {added.stderr.strip()[-300:]}"}
    clinic_id = added.stdout.split("(id ", 1)[1].split(")", 1)[0]
    made = subprocess.run([cli, "key", "create", "--clinic", clinic_id], env=env, capture_output=True, text=True, timeout=120)
    if made.returncode != 0 or not made.stdout.strip():
        return {"error": f"key create failed: {made.stderr.strip()[-300:]}"}
    key = made.stdout.strip().splitlines()[0]
    port = _free_port()
    logf = open(work / "chat-server.log", "wb")
    server = subprocess.Popen([cli, "serve", "--port", str(port)], env=env, stdout=logf, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                return {"error": "the server did not become ready: " + (work / "chat-server.log").read_text()[-300:]}
            time.sleep(0.2)
        return measure(port, key, server.pid, questions, per_client, rounds, log=log)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        logf.close()


def report(fig: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Lines for bench.py's report and its target."""
    name = "chat completions overhead over /v1/ask < 10% (16 clients)"
    if "error" in fig:
        return [f"OpenAI-compatible door: not measured ({fig['error']})."], {name: {"met": None}}
    p, s = fig["plain"], fig["streamed"]
    each = ", ".join(f"{v:+.1%}" for v in p["overheads"])
    lines = [
        f"OpenAI-compatible door ({fig['clients']} clients, {fig['requests_per_phase']} requests per phase, "
        f"A B B A in each of {len(fig['rounds'])} rounds, medians): POST /v1/chat/completions costs {p['overhead']:+.1%} "
        f"wall time per answer over POST /v1/ask (rounds: {each}), server CPU per answer {p['cpu_overhead']:+.1%}; "
        f"streamed (chat `stream: true` over /v1/ask/stream) {s['overhead']:+.1%}, CPU {s['cpu_overhead']:+.1%}; "
        f"{p['errors'] + s['errors']} errors."
    ]
    met = p["overhead"] < TARGET and p["errors"] == 0
    return lines, {name: {"ratio": p["overhead"], "met": met}}


def only_chat(load_project, corpus: Path, questions: list[str], per_client: int, rounds: int, log) -> int:
    """``bench.py --only-chat``: build the index, measure, print JSON and the report line."""
    import tempfile

    from assistant.index.embedded import build_index

    os.environ["HF_HUB_OFFLINE"] = "1"
    _, emb = load_project()
    with tempfile.TemporaryDirectory(prefix="pht-bench-chat-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        build_index(work / "project-index", corpus, emb)
        del emb
        fig = run(work, work / "project-index", questions, per_client, rounds, log=log)
    fig["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(fig, indent=1))
    log(" ".join(report(fig)[0]))
    return 0
