"""The clinics' HTTP API through a real `pht-assistant serve` on loopback, with real HTTP calls.

One server for the module (it loads the model once, about 10 s). Clinics and keys are made with
the same registry the CLI uses, in the server's data folder.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import httpx
import pytest
from api_server import pdf_bytes, serve

from assistant import SAFETY_NOTICE
from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.integration, pytest.mark.server]

MARKER = "zebraquokka"  # a word that must never reach a log or the audit trail
POOL = (
    "Our hydrotherapy pool sessions for hamstring tendinopathy run on Tuesday and Thursday mornings at nine. "
    "Walking in chest-deep water loads the hamstring tendon gently while buoyancy takes weight off the sit bone."
)
POOL_QUESTION = "When do the hydrotherapy pool sessions run?"


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    """A running server with clinics north (emergency wording), south, and one per document type."""
    root = tmp_path_factory.mktemp("api")
    data = root / "data"
    shutil.copytree(built_data_dir, data)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("North Physio", emergency_text="999 or NHS 111")
    registry.add_clinic("South Clinic", allowed_origins=["https://south.example"])
    keys = {
        "north": registry.create_key("north-physio"),
        "south": registry.create_key("south-clinic"),
        "south-pk": registry.create_key("south-clinic", publishable=True),
        "limited": registry.create_key("south-clinic"),
        "revoked": registry.create_key("south-clinic"),
    }
    for kind in ("txt", "md", "html", "pdf"):
        registry.add_clinic(f"Type {kind}")
        keys[kind] = registry.create_key(f"type-{kind}")
    keys["fuzz"] = [registry.create_key("south-clinic") for _ in range(8)]
    server = serve(
        data,
        root / "server.log",
        env={"PHT_API_RATE_LIMIT": "40", "PHT_API_MAX_BODY_BYTES": "200000", "PHT_LOG_LEVEL": "debug"},
    )
    try:
        server.wait_ready()
        server.keys, server.registry, server.data = keys, registry, data
        yield server
    finally:
        server.stop()


def call(api, method: str, path: str, key: str | None = None, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, api.url + path, headers=headers, timeout=60, **kw)


def ask(api, key: str, question: str, **kw) -> httpx.Response:
    return call(api, "POST", "/v1/ask", key, json={"question": question}, **kw)


def is_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message", "safety_notice"} and body["safety_notice"] == SAFETY_NOTICE
    assert body["message"].endswith(".")
    if code:
        assert body["error"] == code
    return body


def upload(api, key: str, name: str, data: bytes, title: str | None = None) -> httpx.Response:
    files = {"file": (name, data)}
    return call(api, "POST", "/v1/documents", key, files=files, data={"title": title} if title else None)


def approve(api, key: str, doc_id: str, reviewer: str) -> httpx.Response:
    return call(api, "POST", f"/v1/documents/{doc_id}/approve", key, json={"reviewer": reviewer})


# -- health, ask, stream ---------------------------------------------------------------------------


def test_health_needs_no_key(api):
    r = call(api, "GET", "/v1/health")
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True and body["store"] == "embedded"
    assert body["model"].startswith("sentence-transformers/all-MiniLM-L6-v2") and body["corpus_version"]


def test_ask_returns_the_answer_with_citations_and_notice(api):
    r = ask(api, api.keys["north"], "Can running be part of my rehab?")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["status"] == "answered" and a["text"].endswith(SAFETY_NOTICE)
    assert a["citations"][0]["source"].startswith("pht-podcast-qa#") and "approved_by" in a["citations"][0]


def test_urgent_reply_uses_the_clinics_emergency_wording(api):
    question = "I suddenly can't control my bladder and my saddle area is numb"
    north = ask(api, api.keys["north"], question).json()
    south = ask(api, api.keys["south"], question).json()
    assert north["status"] == south["status"] == "urgent"
    assert "999 or NHS 111" in north["text"] and "999 or NHS 111" not in south["text"]


def test_stream_sends_status_text_citations_then_done(api):
    with httpx.stream(
        "POST",
        api.url + "/v1/ask/stream",
        json={"question": "How should I build up my long runs for a race?"},
        headers={"Authorization": f"Bearer {api.keys['north']}"},
        timeout=60,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    names = [name for name, _ in events]
    assert names[0] == "status" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"text"} and len(names) > 4
    done = events[-1][1]
    assert "".join(d["text"] for n, d in events if n == "text") == done["text"]
    assert events[0][1]["status"] == done["status"] == "answered"
    assert events[-2][1]["citations"] == done["citations"] and done["citations"]


def test_sources_lists_the_corpus(api):
    r = call(api, "GET", "/v1/sources", api.keys["north"])
    assert r.status_code == 200
    assert [s["id"] for s in r.json()["sources"] if s["kind"] == "corpus"] == ["pht-podcast-qa"]


# -- auth and limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer pht_sk_000000000000_" + "x" * 43},
    ],
    ids=["missing", "malformed", "basic", "unknown"],
)
def test_missing_or_wrong_key_is_401(api, headers):
    r = call(api, "POST", "/v1/ask", json={"question": "Can I run?"}, headers=headers)
    is_error(r, 401, "not_authenticated")
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401_at_once(api):
    key = api.keys["revoked"]
    assert call(api, "GET", "/v1/sources", key).status_code == 200
    api.registry.revoke_key(key)
    is_error(call(api, "GET", "/v1/sources", key), 401)


def test_publishable_key_only_asks_and_only_from_allowed_origins(api):
    key = api.keys["south-pk"]
    is_error(ask(api, key, "Can I run?"), 403, "not_allowed")
    is_error(ask(api, key, "Can I run?", headers={"Origin": "https://elsewhere.example"}), 403)
    ok = ask(api, key, "Can running be part of my rehab?", headers={"Origin": "https://south.example"})
    assert ok.status_code == 200 and ok.json()["status"] == "answered"
    origin = {"Origin": "https://south.example"}
    is_error(call(api, "GET", "/v1/documents", key, headers=origin), 403)
    is_error(call(api, "GET", "/v1/audit", key, headers=origin), 403)
    is_error(call(api, "GET", "/v1/sources", key, headers=origin), 403)


def test_rate_limit_is_429_with_retry_after(api):
    key = api.keys["limited"]
    replies = [call(api, "GET", "/v1/sources", key) for _ in range(40)]
    assert {r.status_code for r in replies} == {200}
    # every keyed reply says where the key's limit stands (one moving window of 60 s)
    assert [int(r.headers["x-ratelimit-remaining"]) for r in replies] == list(range(39, -1, -1))
    assert all(r.headers["x-ratelimit-limit"] == "40" and 0 < int(r.headers["x-ratelimit-reset"]) <= 60 for r in replies)
    r = call(api, "GET", "/v1/sources", key)
    is_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining"] == "0" and r.headers["x-ratelimit-limit"] == "40"
    assert "x-ratelimit-limit" not in call(api, "GET", "/v1/sources").headers  # no key, no limit to show
    assert call(api, "GET", "/v1/sources", api.keys["south"]).status_code == 200  # per key


def test_body_over_the_limit_is_413(api):
    r = upload(api, api.keys["south"], "big.txt", b"hamstring " * 30_000)
    is_error(r, 413, "request_too_large")
    r = call(
        api,
        "POST",
        "/v1/ask",
        api.keys["south"],
        content=b'{"question": "' + b"a" * 250_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    is_error(r, 413)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"question": "x" * 3000}, "2000 characters or fewer"),
        ({"question": "   "}, "empty"),
        ({"question": "bad\u0001char"}, "control characters"),
        ({"history": []}, "question"),
        ({"question": "Can I run?", "history": [{"role": "robot", "content": "x"}]}, "history"),
    ],
    ids=["too-long", "empty", "control", "missing", "bad-history"],
)
def test_bad_questions_are_422_with_the_reason(api, body, needle):
    r = call(api, "POST", "/v1/ask", api.keys["south"], json=body)
    assert needle in is_error(r, 422)["message"]


def test_unknown_routes_and_documents_are_json_404(api):
    is_error(call(api, "GET", "/v1/nothing", api.keys["south"]), 404, "not_found")
    is_error(call(api, "GET", "/v1/documents/doc-000000000000", api.keys["south"]), 404, "document_not_found")


# -- documents, sign-off, tenancy ------------------------------------------------------------------


def test_a_clinics_document_answers_only_for_that_clinic_once_approved(api):
    north, south = api.keys["north"], api.keys["south"]
    r = upload(api, north, "pool.md", f"# Hydrotherapy pool\n\n{POOL}\n".encode(), title="Pool sessions")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "draft" and doc["approved_by"] is None

    def cites(key):
        answer = ask(api, key, POOL_QUESTION).json()
        return answer, [c for c in answer["citations"] if c["source"].startswith(doc["id"])]

    assert cites(north)[1] == []  # a draft is never answered from
    is_error(approve(api, north, doc["id"], ""), 422)
    is_error(approve(api, south, doc["id"], "Dr Other"), 404)  # another clinic cannot see it
    approved = approve(api, north, doc["id"], "Dr Jane Smith").json()
    assert approved["status"] == "approved" and approved["approved_version"] == doc["version"]

    answer, quoted = cites(north)
    assert answer["status"] == "answered" and quoted, answer
    assert all(c["approved_by"] == "Dr Jane Smith" and c["version"] == doc["version"] for c in quoted)
    assert quoted[0]["quote"] in POOL
    south_answer, leaked = cites(south)
    assert leaked == [] and all(not c["source"].startswith("doc-") for c in south_answer["citations"])

    north_sources = {s["id"]: s for s in call(api, "GET", "/v1/sources", north).json()["sources"]}
    assert north_sources[doc["id"]]["reviewed_by"] == "Dr Jane Smith"
    assert doc["id"] not in {s["id"] for s in call(api, "GET", "/v1/sources", south).json()["sources"]}
    assert [d["id"] for d in call(api, "GET", "/v1/documents", south).json()["documents"]] == []
    is_error(call(api, "DELETE", f"/v1/documents/{doc['id']}", south), 404)

    assert call(api, "DELETE", f"/v1/documents/{doc['id']}", north).status_code == 200
    assert cites(north)[1] == []
    is_error(call(api, "GET", f"/v1/documents/{doc['id']}", north), 404)


NORDIC = [
    "Nordic walking classes",
    "Nordic walking classes for hamstring tendinopathy meet in the park on Saturday at eight.",
    "The poles take load off the hamstring tendon on hills, and the class walks for forty minutes.",
]


def _as(kind: str) -> tuple[str, bytes]:
    head, *body = NORDIC
    if kind == "txt":
        return "classes.txt", (head + "\n\n" + " ".join(body) + "\n").encode()
    if kind == "md":
        return "classes.md", (f"# {head}\n\n" + " ".join(body) + "\n").encode()
    if kind == "html":
        return "classes.html", (
            f"<html><head><title>t</title><style>p {{}}</style></head><body><h1>{head}</h1>"
            + "".join(f"<p>{b}</p>" for b in body)
            + "<script>var x = 1;</script></body></html>"
        ).encode()
    return "classes.pdf", pdf_bytes(NORDIC)


@pytest.mark.parametrize("kind", ["txt", "md", "html", "pdf"])
def test_each_document_type_is_parsed_and_answered_from(api, kind):
    key = api.keys[kind]
    name, data = _as(kind)
    doc = upload(api, key, name, data).json()
    assert doc["media_type"] == {"txt": "text", "md": "markdown"}.get(kind, kind) and doc["sections"]
    approve(api, key, doc["id"], f"Dr {kind.upper()}")
    answer = ask(api, key, "When do the Nordic walking classes meet?").json()
    quoted = [c for c in answer["citations"] if c["source"].startswith(doc["id"])]
    assert answer["status"] == "answered" and quoted, answer
    assert quoted[0]["approved_by"] == f"Dr {kind.upper()}"
    assert " ".join(quoted[0]["quote"].split()) in " ".join(" ".join(NORDIC).split())


def test_unsupported_or_empty_uploads_are_422(api):
    key = api.keys["south"]
    assert (
        "upload a .txt"
        in is_error(upload(api, key, "x.docx", b"PK\x03\x04"), 422, "document_rejected")["message"]
    )
    is_error(upload(api, key, "empty.md", b"   \n"), 422)
    is_error(upload(api, key, "broken.pdf", b"%PDF-1.4 nothing"), 422)


# -- audit, metrics, logs, schema ------------------------------------------------------------------


def test_audit_has_a_record_per_answer_without_the_question(api):
    key = api.keys["txt"]
    before = call(api, "GET", "/v1/audit", key).json()["records"]
    answer = ask(api, key, f"Can running be part of my rehab {MARKER}?").json()
    records = call(api, "GET", "/v1/audit", key).json()["records"]
    assert len(records) == len(before) + 1
    rec = records[0]
    assert (
        rec["answer_id"] == answer["id"] and rec["clinic"] == "type-txt" and rec["status"] == answer["status"]
    )
    assert rec["composer"] == "extractive" and rec["model"].startswith("sentence-transformers/")
    assert rec["corpus_version"] == answer["corpus_version"] and "rule" in rec["triage"]
    assert [s["source"] for s in rec["sources"]] == [c["source"] for c in answer["citations"]]
    assert MARKER not in json.dumps(records)
    others = call(api, "GET", "/v1/audit", api.keys["md"]).json()["records"]
    assert all(r["clinic"] == "type-md" for r in others)


def test_every_audit_record_is_written_when_the_server_stops(tmp_path, built_data_dir):
    """Audit rows are committed by a background thread: stopping the server right after a burst
    of concurrent answers still leaves one row per answer in the file."""
    import threading

    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Burst Clinic")
    key = registry.create_key("burst-clinic")
    server = serve(data, tmp_path / "server.log", env={"PHT_API_RATE_LIMIT": "1000"})
    answered: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(4):
                r = http.post(
                    "/v1/ask",
                    json={"question": f"Can running be part of my rehab? ({c}.{i})"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 200, r.text
                with lock:
                    answered.append(r.json()["id"])

    try:
        server.wait_ready()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()  # SIGTERM at once, as an operator's Ctrl-C
    assert len(answered) == 32
    with sqlite3.connect(data / "clinics.sqlite3") as db:
        written = [r[0] for r in db.execute("SELECT answer_id FROM audit WHERE clinic_id = 'burst-clinic'")]
    assert sorted(written) == sorted(answered)


def test_metrics_count_requests_stages_statuses_and_errors(api):
    ask(api, api.keys["north"], "Can running be part of my rehab?")
    call(api, "POST", "/v1/ask", json={"question": "x"})
    text = call(api, "GET", "/metrics").text
    assert 'pht_requests_total{code="200",method="POST",route="/v1/ask"}' in text
    assert 'pht_stage_seconds_bucket{le="0.5",stage="retrieve"}' in text
    assert 'pht_answers_total{status="answered"}' in text
    assert 'pht_errors_total{error="not_authenticated"}' in text


def test_logs_carry_no_question_text_and_no_key(api):
    ask(api, api.keys["north"], f"Is {MARKER} cycling fine with PHT?")
    log = api.log.read_text()
    assert "/v1/ask 200" in log  # the access log is there, at debug level too
    assert MARKER not in log
    for key in (k for v in api.keys.values() for k in (v if isinstance(v, list) else [v])):
        assert key.split("_", 3)[3] not in log


def test_a_second_server_on_the_same_embedded_store_is_refused(api):
    out = _cli("serve", "--port", "1", data_dir=api.data)
    assert out.returncode == 2 and "Another `pht-assistant serve` is using the embedded store" in out.stderr
    assert "PHT_CHROMA_URL" in out.stderr and "Traceback" not in out.stderr


def test_openapi_documents_every_model_and_error(api):
    schema = call(api, "GET", "/openapi.json").json()
    models = set(schema["components"]["schemas"])
    assert {
        "Answer",
        "Citation",
        "ErrorBody",
        "AskRequest",
        "DocumentInfo",
        "AuditList",
        "HealthResponse",
    } <= models
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if path not in {"/v1/health", "/metrics", "/widget.js"}:  # the ones that need no key
                assert {"401", "429"} <= set(op["responses"]), (method, path)
                # the OpenAI-compatible routes answer errors in OpenAI's shape (test_openai_api.py)
                shape = "/OpenAIErrorBody" if path.startswith(("/v1/chat/", "/v1/models")) else "/ErrorBody"
                assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(shape)
    assert call(api, "GET", "/docs").status_code == 200


def test_schemathesis_finds_no_server_error(api):
    """Property-based calls over the whole schema (bounded), with valid keys: never a 5xx."""
    import itertools

    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    # Every response a generated request gets must be a documented status with a documented body.
    # (Not checked: that every schema-valid question is accepted; the server also refuses control
    # and private-use characters with 422 and the reason, which the schema does not spell out.)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    keys = itertools.cycle(api.keys["fuzz"])
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def check(case):
            r = case.call(base_url=api.url, headers={"Authorization": f"Bearer {next(keys)}"}, timeout=60)
            if r.status_code >= 500:
                failures.append((case.operation.label, r.status_code, r.text[:200]))
            case.validate_response(r, checks=checks)

        check()
    assert failures == []


# -- the command line ------------------------------------------------------------------------------


def _cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PHT_DATA_DIR": str(data_dir)},
        stdin=subprocess.DEVNULL,
    )


def test_clinic_and_key_commands(tmp_path):
    data = tmp_path / "data"
    added = _cli(
        "clinic",
        "add",
        "East Physio",
        "--emergency-text",
        "112",
        "--allowed-origin",
        "https://east.example",
        data_dir=data,
    )
    assert added.returncode == 0 and "east-physio" in added.stdout
    assert _cli("clinic", "add", "East Physio", data_dir=data).returncode == 2  # already there
    listed = _cli("clinic", "list", data_dir=data)
    assert "East Physio" in listed.stdout and "https://east.example" in listed.stdout
    created = _cli("key", "create", "--clinic", "East Physio", data_dir=data)
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("pht_sk_") and "not stored" in created.stderr
    assert _cli("key", "create", "--clinic", "east-physio", "--publishable", data_dir=data).stdout.startswith(
        "pht_pk_"
    )
    dump = "\n".join(sqlite3.connect(data / "clinics.sqlite3").iterdump())
    assert key not in dump and key.split("_", 3)[3] not in dump  # only the hash is stored
    assert ClinicRegistry(data / "clinics.sqlite3").authenticate(key).clinic.id == "east-physio"
    revoked = _cli("key", "revoke", key, data_dir=data)
    assert revoked.returncode == 0 and ClinicRegistry(data / "clinics.sqlite3").authenticate(key) is None
    missing = _cli("key", "create", "--clinic", "Nowhere", data_dir=data)
    assert missing.returncode == 2 and "clinic list" in missing.stderr and "Traceback" not in missing.stderr


def test_serve_refuses_several_workers_on_the_embedded_store(tmp_path):
    out = _cli("serve", "--workers", "2", data_dir=tmp_path / "data")
    assert out.returncode == 2 and "PHT_CHROMA_URL" in out.stderr and "Traceback" not in out.stderr


def test_readme_clinic_commands_run(tmp_path):
    """The README's clinic commands work as written (`serve` is started by the fixture above)."""
    import re
    import shlex

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Clinics: HTTP API.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [
        shlex.split(line.split("  #")[0])[1:]
        for line in block.splitlines()
        if line.startswith("pht-assistant ")
    ]
    assert [c[0] for c in commands] == ["clinic", "key", "serve"]
    for args in commands[:-1]:
        out = _cli(*args, data_dir=tmp_path / "data")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip()


def test_serve_says_so_when_the_chroma_server_does_not_answer(tmp_path):
    import os

    from api_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PHT_DATA_DIR": str(tmp_path / "data"), "PHT_CHROMA_URL": url},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2 and f"The Chroma server at {url} does not answer" in out.stderr
    assert "Traceback" not in out.stderr
