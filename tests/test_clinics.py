"""Clinic documents, keys and limits without a server: fast unit tests."""

from __future__ import annotations

import asyncio
import time

import pytest
from api_server import pdf_bytes

from assistant.clinics.registry import ClinicRegistry
from assistant.clinics.documents import extract_text, parse_upload
from assistant.errors import ClinicError, DocumentRejected, RateLimited, RequestTimedOut


def test_html_headings_become_sections_and_scripts_go():
    doc = parse_upload(
        "c",
        "pool.html",
        b"<html><head><title>T</title><style>p{}</style></head><body><h1>Pool</h1><p>Tuesdays &amp; Thursdays.</p>"
        b"<script>alert(1)</script><h2>Booking</h2><ul><li>At the desk.</li></ul></body></html>",
    )
    assert [s["title"] for s in doc.sections] == ["Pool", "Booking"]
    assert "alert" not in doc.text and "Tuesdays & Thursdays." in doc.text
    for s in doc.sections:  # offsets point into the stored text
        assert doc.text[s["start"] : s["end"]].strip()


def test_pdf_text_is_extracted_and_versioned():
    a = parse_upload("c", "a.pdf", pdf_bytes(["Step class", "We meet on Wednesdays at six."]))
    b = parse_upload("c", "b.pdf", pdf_bytes(["Step class", "We meet on Thursdays at six."]))
    assert a.media_type == "pdf" and "Wednesdays at six." in a.text and a.version != b.version


@pytest.mark.parametrize(
    "name, data", [("a.docx", b"x"), ("a.txt", b"\xff\xfe\x00"), ("a.md", b"  \n"), ("a.pdf", b"not a pdf")]
)
def test_unreadable_uploads_are_rejected_with_a_sentence(name, data):
    with pytest.raises(DocumentRejected) as err:
        extract_text(name, data)
    assert str(err.value).endswith(".")


def test_keys_are_stored_as_hashes_and_revocable(tmp_path):
    reg = ClinicRegistry(tmp_path / "c.sqlite3")
    reg.add_clinic("A Clinic")
    with pytest.raises(ClinicError):
        reg.add_clinic("a clinic!")  # same id
    key = reg.create_key("a-clinic")
    assert key not in (tmp_path / "c.sqlite3").read_bytes().decode("latin-1")
    assert reg.authenticate(key).kind == "secret"
    assert reg.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert reg.authenticate(key.replace("pht_sk_", "pht_pk_")) is None  # the kind is part of the key
    reg.revoke_key(key)
    assert reg.authenticate(key) is None


def test_rate_limiter_says_how_long_to_wait():
    from assistant.api.limits import RateLimits

    async def run():
        limiter = RateLimits(limit=2, window=60)
        first = await limiter.hit("k")
        second = await limiter.hit("k")
        assert (first.limit, first.remaining, second.remaining) == (2, 1, 0)
        assert 59 <= second.reset <= 60 and limiter.backend == "memory"
        with pytest.raises(RateLimited) as err:
            await limiter.hit("k")
        assert 1 <= err.value.retry_after <= 60 and err.value.window.remaining == 0
        assert err.value.window.headers()["X-RateLimit-Limit"] == "2"
        assert (await limiter.hit("other")).remaining == 1  # per key

    asyncio.run(run())


def test_a_request_over_its_time_limit_fails_with_a_sentence():
    from assistant.api.deps import bounded
    from assistant.settings import Settings

    with pytest.raises(RequestTimedOut) as err:
        asyncio.run(bounded(Settings(api_request_timeout=0.05), lambda: time.sleep(0.5)))
    assert "0.05 seconds" in str(err.value)


def test_every_error_maps_to_one_status_and_code():
    from assistant import errors as e
    from assistant.api.errors import code_of, status_of

    assert (
        status_of(e.QuestionTooLong(3000, 2000)) == 422
        and code_of(e.QuestionTooLong(1, 1)) == "question_too_long"
    )
    assert status_of(e.StoreUnavailable()) == 503 and status_of(e.IndexBusy()) == 503
    assert status_of(e.RateLimited(3)) == 429 and status_of(e.NotAllowed()) == 403
    assert status_of(e.NotAuthenticated()) == 401 and status_of(e.RequestTooLarge(10)) == 413


def test_help_loads_no_web_or_store_library():
    import subprocess
    import sys

    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom assistant.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "print(','.join(m for m in ('fastapi', 'uvicorn', 'chromadb', 'pypdf', 'prometheus_client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == ""
