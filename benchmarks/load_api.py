"""Load on the clinics' HTTP API: requests per second and p50/p95 latency at 1, 4 and 16 clients.

    .venv/bin/python benchmarks/load_api.py                 # starts its own server on loopback
    .venv/bin/python benchmarks/load_api.py --url http://127.0.0.1:8080 --key pht_sk_...

Bounded: each level sends at most ``--requests`` requests and runs at most ``--seconds`` seconds,
and only to a loopback address. Without ``--url`` it builds an index in a temporary folder, adds a
clinic and a key, starts `pht-assistant serve` (one worker, rate limit lifted) and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

QUESTIONS = [
    "Can running be part of my rehab?",
    "How should I build up my long runs for a race?",
    "What is the best way to build muscle with PHT?",
    "Should I stop speed work while my hamstring tendon is sore?",
    "How much should my weekly mileage go up?",
    "Is strength training better than running alone for tendon pain?",
    "What exercises help proximal hamstring tendinopathy?",
    "Can I train for a marathon with high hamstring pain?",
    "Should I pull out of my race if my hamstring flares up?",
    "How do I make my tendon more resilient?",
    "What is proximal hamstring tendinopathy?",
    "Does sitting make hamstring tendinopathy worse?",
    "What is the capital of France?",
    "Can I keep lifting weights with PHT?",
    "How long does PHT take to settle?",
    "Is a gradual return to running safe?",
    "What should I avoid when I have hamstring tendon pain?",
    "Do hills make PHT worse?",
    "How do I balance strength and running in rehab?",
    "When can I add intervals back?",
]


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "PHT_DATA_DIR": str(folder / "data"), "PHT_API_RATE_LIMIT": "1000000"}
    cli = [sys.executable, "-m", "assistant.cli"]
    subprocess.run([*cli, "index"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([*cli, "clinic", "add", "Load Test"], env=env, check=True, capture_output=True, timeout=60)
    key = subprocess.run(
        [*cli, "key", "create", "--clinic", "load-test"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    port = _free_port()
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=5).status_code == 200:
                return proc, url, key
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    stop_server(proc)
    raise SystemExit(f"the server did not start; see {folder / 'server.log'}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def level(url: str, key: str, clients: int, max_requests: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}

    async def client(n: int) -> None:
        nonlocal errors, sent
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            while sent < max_requests and time.perf_counter() - began < max_seconds:
                question = QUESTIONS[sent % len(QUESTIONS)]
                sent += 1
                t = time.perf_counter()
                try:
                    r = await http.post("/v1/ask", json={"question": question})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 2) if elapsed else 0.0,
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="A running API on a loopback address (default: start one).")
    parser.add_argument("--key", help="A secret key for --url.")
    parser.add_argument("--clients", default="1,4,16", help="Concurrency levels, comma-separated.")
    parser.add_argument("--requests", type=int, default=120, help="At most this many requests per level.")
    parser.add_argument("--seconds", type=float, default=60.0, help="At most this many seconds per level.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if args.requests > 5000 or args.seconds > 300:
        raise SystemExit("bounded on purpose: at most 5000 requests and 300 seconds per level")

    proc = None
    tmp = None
    if args.url:
        if not _loopback(args.url):
            raise SystemExit("the load script only targets loopback addresses (127.0.0.0/8, ::1, localhost)")
        if not args.key:
            raise SystemExit("--url needs --key")
        url, key = args.url.rstrip("/"), args.key
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pht-load-")
        print("Building an index and starting a server on loopback (about 30 s)...", file=sys.stderr)
        proc, url, key = start_server(Path(tmp.name))
    try:
        httpx.post(
            url + "/v1/ask",
            json={"question": QUESTIONS[0]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        results = []
        print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
        for clients in (int(c) for c in args.clients.split(",")):
            r = asyncio.run(level(url, key, clients, args.requests, args.seconds))
            results.append(r)
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['requests_per_second']:>7.2f} "
                f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f}"
            )
        if args.json:
            args.json.write_text(json.dumps({"url": url, "results": results}, indent=2) + "\n")
    finally:
        if proc is not None:
            stop_server(proc)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
