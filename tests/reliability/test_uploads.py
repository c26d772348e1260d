"""Finding 2 (uploads) and the time limits that really stop work.

A 149 KB PDF whose one page held 60 MB of text was answered 504, and a 61 MB draft was stored anyway
(the server grew by 577 MB). Now extraction stops at the upload limits (pages, characters,
sections) while it runs, the client is told so with 413 and the limit, and nothing is stored. An
upload or an approval that runs past its time limit is stopped: nothing is stored or recorded
afterwards, and the server stops spending CPU on it.
"""

from __future__ import annotations

import time

import httpx
import pytest
from api_server import serve
from reliability.faults import copy_data, cpu_seconds, figure, is_error, rss_mb, wait_for
from reliability.pdfs import bomb, pages

from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.reliability, pytest.mark.server, pytest.mark.integration]

REQUEST_TIMEOUT = 1.0
APPROVAL_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def limits(standard):
    """The default upload limits (the shared server), a clinic of its own."""
    standard.registry.add_clinic("Limits Clinic")
    standard.key = standard.registry.create_key("limits-clinic")
    return standard


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    """A server in a hurry: requests may take 1 s, approvals 3 s."""
    root = tmp_path_factory.mktemp("uploads")
    data = copy_data(built_data_dir, root)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Upload Clinic")
    server = serve(
        data,
        root / "server.log",
        env={
            "PHT_API_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
            "PHT_APPROVAL_TIMEOUT": str(APPROVAL_TIMEOUT),
            "PHT_APPROVAL_WAIT_SECONDS": "1",
            "PHT_API_RATE_LIMIT": "100000",
        },
    )
    try:
        server.wait_ready()
        server.key = registry.create_key("upload-clinic")
        server.registry = registry
        yield server
    finally:
        server.stop()


def _upload(api, name: str, data: bytes) -> httpx.Response:
    return httpx.post(
        api.url + "/v1/documents",
        files={"file": (name, data)},
        headers={"Authorization": f"Bearer {api.key}"},
        timeout=120,
    )


def _documents(api) -> list[dict]:
    r = httpx.get(api.url + "/v1/documents", headers={"Authorization": f"Bearer {api.key}"}, timeout=30)
    return r.json()["documents"]


def test_the_pdf_bomb_is_refused_with_the_limit_and_nothing_is_stored(limits):
    api = limits
    pdf = bomb(60_000_000)
    before = rss_mb(api.proc.pid)
    began = time.monotonic()
    r = _upload(api, "bomb.pdf", pdf)
    seconds = time.monotonic() - began
    body = is_error(r, 413, "document_too_large")
    assert "16,000,000 bytes" in body["message"] and "1,000,000 characters" in body["message"]
    after = rss_mb(api.proc.pid)
    time.sleep(2.0)  # nothing arrives later either
    assert _documents(api) == []
    figure(
        f"PDF bomb ({len(pdf) / 1000:.0f} KB file, one page of 60 MB of text)",
        f"413 after {seconds:.2f} s, nothing stored; server memory {before:.0f} -> {after:.0f} MB",
    )


@pytest.mark.parametrize(
    "name, make, needle",
    [
        ("long.pdf", lambda: pages(60, 18_000, vary=False), "1,000,000 characters"),
        ("thick.pdf", lambda: pages(501, 60), "501 pages"),
        ("long.md", lambda: ("# Title\n\n" + "Rest and load. " * 70_000).encode(), "1,000,000 characters"),
        ("headings.md", lambda: "".join(f"## Part {i}\n\nText {i}.\n\n" for i in range(1200)).encode(), "1,200 headings"),
        ("long.html", lambda: ("<p>" + "Rest and load. " * 70_000 + "</p>").encode(), "1,000,000 characters"),
    ],
)
def test_uploads_over_a_limit_get_413_naming_it_and_nothing_is_stored(limits, name, make, needle):
    api = limits
    body = is_error(_upload(api, name, make()), 413, "document_too_large")
    assert needle in body["message"] and body["message"].endswith(".")
    assert _documents(api) == []


def test_an_upload_past_its_time_limit_is_stopped_and_stores_nothing(api):
    pdf = pages(400, 1800)  # about 880,000 characters: within the limits, longer than 1 s to read here
    began = time.monotonic()
    r = _upload(api, "slow.pdf", pdf)
    told = time.monotonic() - began
    is_error(r, 504, "request_timed_out")
    cpu = cpu_seconds(api.proc.pid)
    time.sleep(3.0)
    spent = cpu_seconds(api.proc.pid) - cpu
    assert _documents(api) == []  # never stored, not even later
    assert "Traceback" not in api.log.read_text()
    figure(
        "upload past its time limit (1 s, 880,000 characters of PDF)",
        f"504 after {told:.2f} s; nothing stored 3 s later; server CPU in those 3 s {spent:.2f} s",
    )


def test_an_approval_past_its_time_limit_is_stopped_records_nothing_and_can_be_done_again(api):
    text = "# Long leaflet\n\n" + "".join(
        f"Tendon loading note {i}: the hamstring tendon tolerates slow, heavy loading better than fast stretching. "
        for i in range(5000)
    )
    r = _upload(api, "long-leaflet.md", text.encode())
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    headers = {"Authorization": f"Bearer {api.key}"}
    began = time.monotonic()
    r = httpx.post(api.url + f"/v1/documents/{doc}/approve", json={"reviewer": "Dr Slow"}, headers=headers, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == job["poll"] == f"/v1/approvals/{job['id']}"

    def ended():
        j = httpx.get(api.url + job["poll"], headers=headers, timeout=30).json()
        return j if j["status"] in ("succeeded", "failed") else None

    final = wait_for(ended, APPROVAL_TIMEOUT + 60, every=0.5)
    stopped = time.monotonic() - began
    assert final and final["status"] == "failed" and final["error"] == "approval_timed_out", final
    assert "nothing was recorded" in final["message"] and final["done"] < final["total"]
    cpu = cpu_seconds(api.proc.pid)
    time.sleep(3.0)
    spent = cpu_seconds(api.proc.pid) - cpu
    info = httpx.get(api.url + f"/v1/documents/{doc}", headers=headers, timeout=30).json()
    assert info["status"] == "draft" and info["approved_by"] is None
    sources = httpx.get(api.url + "/v1/sources", headers=headers, timeout=30).json()["sources"]
    assert doc not in {s["id"] for s in sources}
    figure(
        "approval past its time limit (3 s, 5,000 sentences)",
        f"job failed approval_timed_out {stopped:.1f} s after the request, {final['done']} of {final['total']} "
        f"records embedded then taken back; document still a draft; server CPU in the next 3 s {spent:.2f} s",
    )
