"""Several machines, end to end: two `pht-assistant serve` processes (each its own worker, as on two
machines) sharing a Chroma server, a PostgreSQL registry and Redis, all real and on loopback.

A limit of N a minute holds in total (counted), a key revoked through one worker is refused by the
other, audit rows from both land in one table, approvals and settings reach both within the stated
bounds (measured and printed), and Redis or PostgreSQL killed mid-run: the API keeps answering
without Redis (per-worker limits, said in /v1/health and the metrics), answers 503 with the notice
without PostgreSQL, and both recover without a restart when they return.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from api_server import chroma_server, serve

from assistant import SAFETY_NOTICE
from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.integration, pytest.mark.server, pytest.mark.services]

LIMIT = 12  # requests per key per minute, for every key
STEPS = (
    "Our step class for hamstring tendinopathy meets in the gym hall on Wednesday evenings at six. "
    "Low step-ups load the hamstring tendon gently, and the class lasts forty-five minutes."
)
URGENT = "I suddenly can't control my bladder and my saddle area is numb"


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma")
    server = chroma_server(root / "store", root / "chroma.log")
    try:
        server.wait_ready("/api/v2/heartbeat", timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, built_data_dir, chroma, postgres, redis_server):
    """Two workers on one PostgreSQL database, one Redis and one Chroma server."""
    root = tmp_path_factory.mktemp("cluster")
    data = root / "data"
    shutil.copytree(built_data_dir, data)
    url = postgres.database()
    env = {
        "PHT_CHROMA_URL": chroma.url,
        "PHT_DATABASE_URL": url,
        "PHT_REDIS_URL": redis_server.url,
        "PHT_API_RATE_LIMIT": str(LIMIT),
        "PHT_API_RATE_WINDOW": "60",
        "PHT_REDIS_RETRY_SECONDS": "1",
    }
    published = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "PHT_DATA_DIR": str(data), **env},
    )
    assert published.returncode == 0, published.stderr
    registry = ClinicRegistry(url)
    registry.add_clinic("North Physio", emergency_text="999 or NHS 111")
    keys = {name: registry.create_key("north-physio") for name in ("limited", "revoked", "admin", "audit")}
    keys["pool"] = [registry.create_key("north-physio") for _ in range(12)]  # for the polling loops
    workers = [serve(data, root / f"worker-{i}.log", env=env) for i in (1, 2)]
    try:
        for w in workers:
            w.wait_ready(timeout=240)
        yield workers, registry, keys, url
    finally:
        for w in workers:
            w.stop()
        registry.close()


def call(worker, method: str, path: str, key: str | None = None, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, worker.url + path, headers=headers, timeout=60, **kw)


def ask(worker, key: str, question: str) -> httpx.Response:
    return call(worker, "POST", "/v1/ask", key, json={"question": question})


def test_a_limit_of_n_a_minute_holds_across_both_workers(cluster):
    workers, _, keys, _ = cluster
    replies = [call(workers[i % 2], "GET", "/v1/sources", keys["limited"]) for i in range(3 * LIMIT)]
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    print(f"\nlimit {LIMIT}/min on 2 workers: {len(ok)} answered, {len(refused)} refused of {len(replies)}")
    assert len(ok) == LIMIT and len(refused) == 2 * LIMIT  # not 2 x LIMIT: one count for both
    assert len({r.headers["x-pht-worker"] for r in ok}) == 2  # both workers answered some
    # the headers count down across both workers: one window
    assert [int(r.headers["x-ratelimit-remaining"]) for r in ok] == list(range(LIMIT - 1, -1, -1))
    for r in replies:
        assert r.headers["x-ratelimit-limit"] == str(LIMIT)
        assert 0 <= int(r.headers["x-ratelimit-reset"]) <= 60
    for r in refused:
        assert r.json()["error"] == "rate_limited" and r.json()["safety_notice"] == SAFETY_NOTICE
        assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining"] == "0"


def test_a_key_revoked_through_one_worker_is_refused_by_the_other(cluster):
    (a, b), _, keys, _ = cluster
    key, key_id = keys["revoked"], keys["revoked"].split("_")[2]
    assert call(b, "GET", "/v1/sources", key).status_code == 200
    assert call(a, "DELETE", f"/v1/keys/{key_id}", keys["admin"]).json() == {"id": key_id, "revoked": True}
    revoked_at = time.monotonic()
    r = call(b, "GET", "/v1/sources", key)
    print(f"\nrevocation: refused by the other worker on its next request, {time.monotonic() - revoked_at:.3f} s later")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    assert call(a, "GET", "/v1/sources", key).status_code == 401
    again = call(b, "DELETE", f"/v1/keys/{key_id}", keys["admin"])
    assert again.status_code == 404 and again.json()["error"] == "key_not_found"


def test_audit_rows_from_both_workers_land_in_one_table(cluster):
    workers, _, keys, url = cluster
    answered = {}
    for w in workers:
        r = ask(w, keys["audit"], "Can running be part of my rehab?")
        assert r.status_code == 200, r.text
        answered[r.json()["id"]] = r.headers["x-pht-worker"]
    assert len(set(answered.values())) == 2
    deadline = time.monotonic() + 10  # each worker commits its rows from a background thread
    while time.monotonic() < deadline:
        listed = call(workers[0], "GET", "/v1/audit", keys["audit"]).json()["records"]
        if set(answered) <= {rec["answer_id"] for rec in listed}:
            break
        time.sleep(0.2)
    assert set(answered) <= {rec["answer_id"] for rec in listed}
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT answer_id FROM audit WHERE answer_id = ANY(:ids)"), {"ids": list(answered)}
        ).scalars().all()
    engine.dispose()
    assert sorted(rows) == sorted(answered)


def _poll(worker, keys, question: str, seen, timeout: float = 30.0) -> float | None:
    """Ask ``worker`` until ``seen(answer)``; seconds it took, or None. Keys are cycled (each has its limit)."""
    pool = itertools.cycle(keys["pool"])
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        r = ask(worker, next(pool), question)
        if r.status_code == 200 and seen(r.json()):
            return time.monotonic() - began
        assert r.status_code in (200, 429), r.text
        time.sleep(0.05)
    return None


def test_an_approval_and_a_settings_change_reach_both_workers_within_the_bound(cluster):
    (a, b), registry, keys, _ = cluster
    admin = keys["pool"][0]
    doc = call(a, "POST", "/v1/documents", admin, files={"file": ("steps.md", f"# Step class\n\n{STEPS}\n".encode())}).json()
    question = "When does the step class meet?"
    cites = lambda answer: any(  # noqa: E731
        c["source"].startswith(doc["id"]) and c["approved_by"] == "Dr Step" for c in answer["citations"]
    )
    assert not cites(ask(b, keys["pool"][1], question).json())  # a draft
    assert call(a, "POST", f"/v1/documents/{doc['id']}/approve", admin, json={"reviewer": "Dr Step"}).status_code == 200
    on_b = _poll(b, keys, question, cites)
    on_a = _poll(a, keys, question, cites)
    print(f"\napproval through worker 1: answered from by worker 2 after {on_b:.2f} s, by worker 1 after {on_a:.2f} s")
    assert on_b is not None and on_a is not None

    registry.update_clinic("north-physio", emergency_text="the clinic's line, 0100 000 000")
    changed = time.monotonic()
    for w in (a, b):
        r = ask(w, keys["pool"][2], URGENT)
        assert r.status_code == 200 and "0100 000 000" in r.json()["text"], r.text
    print(f"\nsettings change: applied by both workers on their next request ({time.monotonic() - changed:.3f} s)")


def test_redis_killed_mid_run_the_api_keeps_answering_and_shares_limits_again(cluster, redis_server):
    (a, b), _, keys, _ = cluster
    redis_server.stop()
    try:
        key = keys["pool"][3]
        replies = [ask(w, key, "Can running be part of my rehab?") for w in (a, b, a, b)]
        assert [r.status_code for r in replies] == [200] * 4
        assert all(r.headers["x-ratelimit-limit"] == str(LIMIT) for r in replies)
        for w in (a, b):
            health = call(w, "GET", "/v1/health")
            body = health.json()
            assert health.status_code == 200 and body["ready"] is True and body["rate_limits"] == "memory"
            assert "Redis does not answer" in body["message"]
            metrics = call(w, "GET", "/metrics").text
            assert "pht_redis_up 0.0" in metrics
            fallbacks = [line for line in metrics.splitlines() if line.startswith("pht_rate_limit_fallbacks_total")]
            assert fallbacks and float(fallbacks[0].split()[-1]) >= 2
    finally:
        redis_server.start()
    time.sleep(1.2)  # PHT_REDIS_RETRY_SECONDS=1: each worker tries Redis again after a second
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for w in (a, b):
            call(w, "GET", "/v1/sources", keys["pool"][4])
        states = [call(w, "GET", "/v1/health").json()["rate_limits"] for w in (a, b)]
        if states == ["redis", "redis"]:
            break
        time.sleep(0.3)
    assert states == ["redis", "redis"]
    assert "pht_redis_up 1.0" in call(a, "GET", "/metrics").text


def test_postgresql_killed_mid_run_is_503_with_the_notice_and_recovers_without_a_restart(cluster, postgres):
    (a, b), _, keys, _ = cluster
    key = keys["pool"][5]
    assert ask(a, key, "Can running be part of my rehab?").status_code == 200
    postgres.stop("immediate")  # as a crash
    try:
        for w in (a, b):
            r = ask(w, key, "Can running be part of my rehab?")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["error"] == "registry_unavailable" and body["safety_notice"] == SAFETY_NOTICE
            assert "try again" in body["message"] and "Traceback" not in r.text
            health = call(w, "GET", "/v1/health")
            assert health.status_code == 503 and health.json()["ready"] is False
            assert "clinics database" in health.json()["message"]
        assert "Traceback" not in a.log.read_text()
    finally:
        postgres.start()
    for w in (a, b):
        w.wait_ready(timeout=60)  # health is 200 again by itself
        r = ask(w, key, "Can running be part of my rehab?")
        assert r.status_code == 200 and r.json()["status"] == "answered", r.text
