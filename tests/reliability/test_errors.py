"""Findings 3 and 8: errors that say what happened.

A clinic named with 47 letters and a space got an id ending in ``-``, Chroma refused the collection
name, and every approval for it answered 503 "try again in a minute" (health 200 throughout): a
bug of ours shown as an outage. Now ids never end in a separator, clinics made before that still
approve, and a request the store refuses for what it is is a logged 500. The server's own error
bodies carry the notice, 400 is in the schema, and ``explain`` takes booleans only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest
from reliability.faults import figure, is_error

from assistant import SAFETY_NOTICE

pytestmark = [pytest.mark.reliability, pytest.mark.server, pytest.mark.integration]

NAME = "A" * 47 + " Physio"
DOC = (
    "# Pool class\n\nOur aqua jogging class for hamstring tendinopathy meets on Friday mornings at eight. "
    "Aqua jogging in the deep end keeps the running pattern without loading the sit bone.\n"
)


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _upload_and_approve(api, key: str) -> tuple[httpx.Response, str]:
    r = httpx.post(api.url + "/v1/documents", files={"file": ("pool.md", DOC.encode())}, headers=_h(key), timeout=60)
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    return httpx.post(
        api.url + f"/v1/documents/{doc}/approve", json={"reviewer": "Dr Long"}, headers=_h(key), timeout=120
    ), doc


def test_a_clinic_named_with_47_letters_and_a_space_gets_an_id_that_approves(standard):
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "clinic", "add", NAME],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PHT_DATA_DIR": str(standard.data)},
    )
    assert out.returncode == 0, out.stderr
    clinic = standard.registry.clinic(NAME)
    assert clinic.id == "a" * 47 and clinic.id[-1].isalnum()
    r, _ = _upload_and_approve(standard, standard.registry.create_key(clinic.id))
    assert r.status_code == 200, r.text  # was 503 "try again in a minute", for ever


def test_a_clinic_whose_old_id_ends_in_a_dash_still_approves_and_is_answered(standard):
    legacy = "b" * 47 + "-"  # what the old rule made of "bbb...b Physio"
    with sqlite3.connect(standard.data / "clinics.sqlite3") as db:
        db.execute(
            "INSERT INTO clinics (id, name, created) VALUES (?, ?, '2026-01-01T00:00:00+00:00')", (legacy, "B" * 47 + " Physio")
        )
    key = standard.registry.create_key(legacy)
    r, doc = _upload_and_approve(standard, key)
    assert r.status_code == 200, r.text
    answer = httpx.post(
        standard.url + "/v1/ask", json={"question": "When does the aqua jogging class meet?"}, headers=_h(key), timeout=60
    ).json()
    assert any(c["source"].startswith(doc) for c in answer["citations"]), answer
    figure("clinic ids", "47 letters and a space: id without the dash, approval 200; an old id ending in '-': approval 200, answered")


def test_a_request_the_store_refuses_is_a_logged_500_not_a_503(tmp_path, built_data_dir, embeddings, monkeypatch, caplog):
    """A bug of ours (here: a collection name Chroma refuses) is a 500 with the notice, logged at
    ERROR; only a store that cannot be reached is a 503."""
    import shutil

    from fastapi.testclient import TestClient

    import assistant.clinics.documents as documents
    from assistant import Assistant, Settings
    from assistant.api.app import create_app
    from assistant.clinics.registry import ClinicRegistry

    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    settings = Settings(data_dir=data, approval_wait_seconds=30, metrics_token="operator-token")
    registry = ClinicRegistry(settings.clinics_path)
    registry.add_clinic("Bug Clinic")
    key = registry.create_key("bug-clinic")
    a = Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None)
    monkeypatch.setattr(documents, "collection_name", lambda clinic_id: "x")  # Chroma: 3 to 512 characters
    try:
        with TestClient(create_app(settings, assistant=a), raise_server_exceptions=False) as client, caplog.at_level(
            logging.ERROR
        ):
            r = client.post("/v1/documents", files={"file": ("pool.md", DOC.encode())}, headers=_h(key))
            assert r.status_code == 201, r.text
            doc = r.json()["id"]
            r = client.post(f"/v1/documents/{doc}/approve", json={"reviewer": "Dr Bug"}, headers=_h(key))
            body = is_error(r, 500, "internal_error")
            assert "try again in a minute" not in body["message"]
            assert any("approval" in rec.getMessage() and rec.levelno == logging.ERROR for rec in caplog.records)
            with sqlite3.connect(settings.clinics_path) as db:
                assert db.execute("SELECT status, error FROM approval_jobs").fetchall() == [("failed", "internal_error")]
            metrics = client.get("/metrics", headers={"Authorization": "Bearer operator-token"}).text
            assert 'pht_errors_total{error="internal_error"} 1.0' in metrics  # alerted on
    finally:
        a.library.close_approvals()
        a.library.store.release()
        a.close()


def test_only_a_store_that_cannot_be_reached_counts_as_unavailable():
    import chromadb.errors
    import httpx as h

    from assistant.errors import StoreUnavailable
    from assistant.index.store import guarded, unreachable

    assert unreachable(h.ConnectError("refused")) and unreachable(h.ReadTimeout("slow")) and unreachable(TimeoutError())
    assert not unreachable(chromadb.errors.InternalError("error returned from database: (code: 1) too many SQL variables"))
    assert not unreachable(ValueError("Expected a name containing 3-512 characters"))
    with pytest.raises(StoreUnavailable):
        with guarded():
            raise h.ConnectError("refused")
    with pytest.raises(chromadb.errors.InternalError):
        with guarded():
            raise chromadb.errors.InternalError("too many SQL variables")


def test_every_operation_documents_400_and_explain_takes_booleans_only(standard):
    schema = httpx.get(standard.url + "/openapi.json", timeout=30).json()
    missing = [
        f"{method.upper()} {path}"
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if "400" not in op["responses"]
    ]
    assert not missing, missing
    standard.registry.add_clinic("Strict Clinic")
    key = standard.registry.create_key("strict-clinic")
    for value in ("yes", 1, "true", None):
        r = httpx.post(
            standard.url + "/v1/ask", json={"question": "Can I run?", "explain": value}, headers=_h(key), timeout=60
        )
        body = is_error(r, 422, "invalid_request")
        assert "explain" in body["message"]
    ok = httpx.post(standard.url + "/v1/ask", json={"question": "Can I run?", "explain": True}, headers=_h(key), timeout=60)
    assert ok.status_code == 200 and ok.json()["safety_notice"] == SAFETY_NOTICE
