"""What shared state costs: the API at 16 clients with the embedded registry (SQLite, limits in memory)
and with PostgreSQL + Redis (registry and limits shared), side by side; and how soon a change made
through one worker is seen by another (revocation, settings, approval).

    .venv/bin/python benchmarks/shared_state.py                 # both phases (a few minutes)
    .venv/bin/python benchmarks/shared_state.py --rounds 5 --requests 40 --json out.json
    .venv/bin/python benchmarks/shared_state.py --no-propagation

Throughput: one `pht-assistant serve` worker per configuration on the same index; rounds alternate
embedded / shared so the machine's other load falls on both alike; each round is 16 clients x
``--requests`` POST /v1/ask on kept-alive connections, after a warm-up. The rate limit is set out of
reach but still counted (in Redis for the shared configuration). Reported: the median requests per
second of each, and the shared one as a fraction of the embedded one (target: at least 0.90).

Propagation: two workers (a Chroma server, PostgreSQL, Redis); a key revoked through worker 1, a
clinic setting changed, a document approved through worker 1: seconds until worker 2 refuses,
applies or answers from it, over ``--trials`` trials (median and worst).

Everything runs on loopback, bounded in requests and time; PostgreSQL and Redis are started in
temporary folders (tests/services.py) and stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from load_api import QUESTIONS  # noqa: E402
from services import Postgres, Redis  # noqa: E402  (the same servers the tests start)
from api_server import Server, chroma_server, free_port  # noqa: E402

CLIENTS = 16
CLI = [sys.executable, "-m", "assistant.cli"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"pht-assistant {' '.join(args)} failed: {out.stderr[-500:]}")
    return out.stdout.strip()


def start(data: Path, logfile: Path, env: dict[str, str]) -> Server:
    port = free_port()
    server = Server([*CLI, "serve", "--port", str(port)], env={"PHT_DATA_DIR": str(data), **env}, log=logfile, port=port)
    server.wait_ready(timeout=240)
    return server


def _cpu_seconds(pids: set[int]) -> float:
    """CPU time (user + system) of these processes and all their descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, set(pids)
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += times.get(pid, 0.0)
        todo |= {child for child, parent in parents.items() if parent == pid}
    return total


def load(server: Server, key: str, per_client: int, services: set[int] | None = None) -> dict[str, Any]:
    """16 clients, each ``per_client`` questions on its own kept-alive connection."""
    host, port = "127.0.0.1", server.port
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for i in range(per_client):
            question = QUESTIONS[(c * 7 + i) % len(QUESTIONS)] + f" ({c}.{i})"
            t = time.perf_counter()
            try:
                conn.request("POST", "/v1/ask", body=json.dumps({"question": question}).encode(),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                bad = None if r.status == 200 else f"HTTP {r.status}"
            except Exception as exc:  # counted, and the connection made again
                bad = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - t)
                if bad:
                    errors.append(bad)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    server_cpu, services_cpu = _cpu_seconds({server.proc.pid}), _cpu_seconds(services or set())
    began = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - began
    server_cpu = _cpu_seconds({server.proc.pid}) - server_cpu
    services_cpu = _cpu_seconds(services or set()) - services_cpu
    latencies.sort()
    return {
        # CPU per answer: the worker's, and PostgreSQL's and Redis's (what the shared state adds)
        "server_cpu_ms": round(1000 * server_cpu / max(1, len(latencies)), 2),
        "services_cpu_ms": round(1000 * services_cpu / max(1, len(latencies)), 2),
        "requests": len(latencies),
        "errors": len(errors),
        "per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
    }


CONFIGS = ("embedded", "shared", "postgresql", "redis")  # the last two: one shared service each


def throughput(
    work: Path, index: Path, pg: Postgres, redis: Redis, rounds: int, per_client: int,
    names: tuple[str, ...] = ("embedded", "shared"),
) -> dict[str, Any]:
    configs: dict[str, tuple[Path, dict[str, str], str]] = {}
    base = {"PHT_API_RATE_LIMIT": "100000000", "PHT_LOG_LEVEL": "warning"}
    for name in names:
        data = work / f"data-{name}"
        shutil.copytree(index, data)
        env = dict(base)
        if name in ("shared", "postgresql"):
            env["PHT_DATABASE_URL"] = pg.database()
        if name in ("shared", "redis"):
            env["PHT_REDIS_URL"] = redis.url
        full = {**os.environ, "PHT_DATA_DIR": str(data), **env}
        run(["clinic", "add", "Bench Clinic"], full)
        configs[name] = (data, env, run(["key", "create", "--clinic", "bench-clinic"], full).splitlines()[0])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    services = {pg.postmaster_pid(), redis.proc.pid}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            data, env, key = configs[name]
            server = start(data, work / f"{name}-{r}.log", env)
            try:
                load(server, key, 2)  # warm: model, lexical index, connections
                figures = load(server, key, per_client, services if name != "embedded" else set())
            finally:
                server.stop()
            results[name].append(figures)
            log(f"round {r + 1} {name}: {figures['per_s']} req/s, p95 {figures['p95_ms']} ms, CPU per answer "
                f"{figures['server_cpu_ms']} ms + {figures['services_cpu_ms']} ms in PostgreSQL and Redis, "
                f"{figures['errors']} errors")
    med = {name: statistics.median(f["per_s"] for f in rs) for name, rs in results.items()}
    cpu = {name: statistics.median(f["server_cpu_ms"] + f["services_cpu_ms"] for f in rs) for name, rs in results.items()}
    return {
        "clients": CLIENTS,
        "requests_per_client": per_client,
        "rounds": results,
        "median_per_s": med,
        "median_cpu_ms_per_answer": cpu,
        # each configuration's requests per second as a fraction of the embedded one's (target >= 0.90)
        "over_embedded": {name: round(med[name] / med["embedded"], 3) for name in med},
        "cpu_over_embedded": {name: round(cpu[name] / cpu["embedded"], 3) for name in cpu},
        "errors": sum(f["errors"] for rs in results.values() for f in rs),
    }


def propagation(work: Path, index: Path, pg: Postgres, redis: Redis, trials: int) -> dict[str, Any]:
    import httpx

    from assistant.clinics.registry import ClinicRegistry

    chroma = chroma_server(work / "chroma", work / "chroma.log")
    chroma.wait_ready("/api/v2/heartbeat", timeout=60)
    data = work / "data-propagation"
    shutil.copytree(index, data)
    url = pg.database()
    env = {"PHT_CHROMA_URL": chroma.url, "PHT_DATABASE_URL": url, "PHT_REDIS_URL": redis.url,
           "PHT_API_RATE_LIMIT": "100000000", "PHT_LOG_LEVEL": "warning"}
    run(["index"], {**os.environ, "PHT_DATA_DIR": str(data), **env})  # publish the corpus to the Chroma server
    registry = ClinicRegistry(url)
    registry.add_clinic("Propagation Clinic")
    admin = registry.create_key("propagation-clinic")
    workers = [start(data, work / f"worker-{i}.log", env) for i in (1, 2)]
    a, b = workers
    auth = {"Authorization": f"Bearer {admin}"}

    def until(check, timeout: float = 30.0) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if check():
                return time.monotonic() - began
            time.sleep(0.01)
        return float("inf")

    out: dict[str, list[float]] = {"revocation": [], "settings": [], "approval": []}
    try:
        with httpx.Client(timeout=60) as http:
            for t in range(trials):
                key = registry.create_key("propagation-clinic")
                http.get(b.url + "/v1/sources", headers={"Authorization": f"Bearer {key}"})
                http.delete(a.url + f"/v1/keys/{key.split('_')[2]}", headers=auth).raise_for_status()
                out["revocation"].append(until(lambda: http.get(
                    b.url + "/v1/sources", headers={"Authorization": f"Bearer {key}"}).status_code == 401))

                wording = f"call line {t}"
                registry.update_clinic("propagation-clinic", emergency_text=wording)
                out["settings"].append(until(lambda: wording in http.post(
                    b.url + "/v1/ask", json={"question": "I suddenly can't control my bladder and my saddle area is numb"},
                    headers=auth).json()["text"]))

                text = f"# Class {t}\n\nOur aqua class number {t} for hamstring tendinopathy meets on Friday at {t + 1} o'clock in the pool.\n"
                doc = http.post(a.url + "/v1/documents", files={"file": (f"class{t}.md", text.encode())}, headers=auth).json()
                http.post(a.url + f"/v1/documents/{doc['id']}/approve", json={"reviewer": "Dr B"}, headers=auth).raise_for_status()
                question = f"When does aqua class number {t} meet?"
                out["approval"].append(until(lambda: any(c["source"].startswith(doc["id"]) for c in http.post(
                    b.url + "/v1/ask", json={"question": question}, headers=auth).json()["citations"])))
                log(f"trial {t + 1}: revocation {out['revocation'][-1]:.3f} s, settings {out['settings'][-1]:.3f} s, "
                    f"approval {out['approval'][-1]:.3f} s")
    finally:
        for w in workers:
            w.stop()
        chroma.stop()
        registry.close()
    return {
        kind: {"median_s": round(statistics.median(v), 3), "worst_s": round(max(v), 3), "trials": [round(x, 3) for x in v]}
        for kind, v in out.items()
    }


def per_request(work: Path, index: Path, pg: Postgres, redis: Redis, answers: int = 200) -> dict[str, Any]:
    """CPU time of what each configuration does per request around the answer (the key read, the
    rate limit, the clinic read, the audit row, the revision check), next to the CPU time of the
    answer itself, all in this process, in turn: a ratio that the machine's other load moves much
    less than requests per second."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from assistant import Assistant, Settings
    from assistant.api.limits import RateLimits
    from assistant.clinics.registry import ClinicRegistry, read_with_key

    data = work / "data-per-request"
    shutil.copytree(index, data)
    assistant = Assistant.from_settings(Settings(data_dir=data), notify=lambda m: None)
    assistant.warm_up()
    registries = {"embedded": ClinicRegistry(data / "clinics.sqlite3"), "shared": ClinicRegistry(pg.database())}
    limiters: dict[str, Any] = {}  # made in each run's event loop (their clients belong to it)
    keys = {}
    for name, reg in registries.items():
        reg.add_clinic("Bench Clinic")
        keys[name] = reg.create_key("bench-clinic")
    answer = assistant.ask("Can running be part of my rehab?")
    hop = ThreadPoolExecutor(4)

    async def request(name: str) -> None:
        reg, key = registries[name], keys[name]
        if name == "shared":  # as the API does: the database read in a thread, the limit on the loop
            info = await asyncio.get_running_loop().run_in_executor(hop, reg.authenticate, key)
        else:
            info = reg.authenticate(key)
        read_with_key(info.clinic)
        await limiters[name].hit(info.id)
        reg.clinic("bench-clinic")
        reg.record_answer("bench-clinic", answer, composer="extractive", model="m")

    def state_cpu(name: str, n: int = 1000) -> float:
        async def many() -> float:
            limiters[name] = RateLimits(limit=10**9, window=60, redis_url=redis.url if name == "shared" else "")
            for _ in range(50):
                await request(name)
            registries[name].flush_audit()
            began = time.process_time()
            for _ in range(n):
                await request(name)
            registries[name].revisions()  # once per PHT_CLINIC_REFRESH_SECONDS: far fewer than n
            registries[name].flush_audit()
            return (time.process_time() - began) / n

        return asyncio.run(many())

    def answer_cpu() -> float:
        questions = [q + f" ({i})" for i, q in enumerate(QUESTIONS * (answers // len(QUESTIONS) + 1))][:answers]
        began = time.process_time()
        for q in questions:
            assistant.ask(q)
        return (time.process_time() - began) / len(questions)

    rounds = {"embedded": [], "shared": [], "answer": []}
    try:
        for _ in range(3):
            rounds["answer"].append(answer_cpu())
            rounds["embedded"].append(state_cpu("embedded"))
            rounds["shared"].append(state_cpu("shared"))
    finally:
        hop.shutdown()
        for reg in registries.values():
            reg.close()
        assistant.close()
    med = {k: statistics.median(v) for k, v in rounds.items()}
    return {
        "answer_cpu_ms": round(1000 * med["answer"], 3),
        "state_cpu_ms": {k: round(1000 * med[k], 3) for k in ("embedded", "shared")},
        "shared_adds_ms": round(1000 * (med["shared"] - med["embedded"]), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each configuration (default 3)")
    ap.add_argument("--requests", type=int, default=30, help="requests per client per round (default 30)")
    ap.add_argument("--trials", type=int, default=5, help="propagation trials (default 5)")
    ap.add_argument("--no-propagation", action="store_true", help="throughput only")
    ap.add_argument("--configs", default="embedded,shared",
                    help=f"configurations to compare, of {', '.join(CONFIGS)} (default embedded,shared)")
    ap.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pht-shared-bench-"))
    pg = redis = None
    try:
        index = work / "index"
        log("building the index once ...")
        run(["index"], {**os.environ, "PHT_DATA_DIR": str(index)})
        pg, redis = Postgres(), Redis()
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "note": "shared machine: other engineers' work runs at the same time"},
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "throughput": throughput(work, index, pg, redis, args.rounds, args.requests,
                                     tuple(c for c in args.configs.split(",") if c in CONFIGS)),
        }
        log("per request, in process ...")
        report["per_request"] = pr = per_request(work, index, pg, redis)
        api_cpu = report["throughput"]["median_cpu_ms_per_answer"].get("embedded")
        if api_cpu:  # what the shared state adds, as a fraction of an API request's CPU (worker, embedded)
            pr["shared_adds_of_api_request"] = round(pr["shared_adds_ms"] / api_cpu, 4)
        if not args.no_propagation:
            report["propagation"] = propagation(work, index, pg, redis, args.trials)
    finally:
        if pg is not None:
            pg.close()
        if redis is not None:
            redis.close()
        shutil.rmtree(work, ignore_errors=True)
    t = report["throughput"]
    ok = t["over_embedded"].get("shared", 1.0) >= 0.90 and t["errors"] == 0
    labels = {
        "embedded": "embedded (SQLite, limits in memory)",
        "shared": "shared (PostgreSQL + Redis)",
        "postgresql": "PostgreSQL, limits in memory",
        "redis": "SQLite, limits in Redis",
    }
    lines = ["", f"Shared state at {CLIENTS} clients ({args.rounds} rounds each, {args.requests} requests per "
                 "client, medians; CPU per answer = the worker's + PostgreSQL's + Redis's):"]
    for name in t["median_per_s"]:
        lines.append(
            f"  {labels[name]:<37} {t['median_per_s'][name]:>6.1f} req/s  ({t['over_embedded'][name]:.3f} of embedded)"
            f"   CPU {t['median_cpu_ms_per_answer'][name]:>5.2f} ms  ({t['cpu_over_embedded'][name]:.3f} of embedded)"
        )
    if "shared" in t["over_embedded"]:
        lines.append(f"  shared state {'meets' if ok else 'misses'} the 0.90 target; {t['errors']} errors")
    pr = report["per_request"]
    lines.append(
        f"Per request, CPU in one process (medians of 3): key, limit, clinic and audit row: embedded "
        f"{pr['state_cpu_ms']['embedded']:.3f} ms, shared {pr['state_cpu_ms']['shared']:.3f} ms (+{pr['shared_adds_ms']:.3f} ms"
        + (f", {100 * pr['shared_adds_of_api_request']:.1f}% of an API request's CPU above)" if "shared_adds_of_api_request" in pr else ")")
        + f"; the answer alone, without HTTP: {pr['answer_cpu_ms']:.2f} ms"
    )
    if "propagation" in report:
        p = report["propagation"]
        lines.append("Seen by the other worker (median / worst of the trials):")
        for kind, label in (("revocation", "key revoked"), ("settings", "clinic setting changed"), ("approval", "document approved")):
            lines.append(f"  {label:<24} {p[kind]['median_s']:.3f} s / {p[kind]['worst_s']:.3f} s")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
