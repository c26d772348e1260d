"""The widget's side of the HTTP API through a real `pht-assistant serve` on loopback: /widget.js,
CORS for the clinic's own sites (and nobody else's), the widget's settings, and feedback.

One server for the module with a small rate limit (8 a minute); each test makes its own keys, so
their budgets are their own.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3

import httpx
import pytest
from api_server import serve

from assistant import SAFETY_NOTICE
from assistant.clinics.registry import ClinicRegistry
from assistant.widget import GZIP_BUDGET, SCRIPT

pytestmark = [pytest.mark.integration, pytest.mark.server]

LIMIT = 8
NORTH = "https://north.example"
SOUTH = "https://south.example"
ELSEWHERE = "https://elsewhere.example"
QUESTION = "Can running be part of my rehab?"
MARKER = "zebraquokka"


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    root = tmp_path_factory.mktemp("widget-api")
    data = root / "data"
    shutil.copytree(built_data_dir, data)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic(
        "North Physio",
        emergency_text="999 or NHS 111",
        allowed_origins=[NORTH, "https://www.north.example/"],
        accent_color="#7b2d8e",
        logo_url="https://north.example/logo.png",
    )
    registry.add_clinic("South Clinic", allowed_origins=[SOUTH], feedback_questions=True)
    server = serve(data, root / "server.log", env={"PHT_API_RATE_LIMIT": str(LIMIT)})
    try:
        server.wait_ready()
        server.registry = registry
        yield server
    finally:
        server.stop()


def key(api, clinic: str, *, publishable: bool = True) -> str:
    return api.registry.create_key(clinic, publishable=publishable)


def call(api, method: str, path: str, key: str | None = None, origin: str | None = None, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if origin:
        headers["Origin"] = origin
    return httpx.request(method, api.url + path, headers=headers, timeout=60, **kw)


def preflight(api, path: str, origin: str, method: str = "POST", headers: str = "authorization,content-type"):
    return call(
        api,
        "OPTIONS",
        path,
        origin=origin,
        headers={"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def ask(api, k: str, origin: str | None, question: str = QUESTION) -> httpx.Response:
    return call(api, "POST", "/v1/ask", k, origin, json={"question": question})


# -- widget.js -------------------------------------------------------------------------------------


def test_widget_js_is_served_gzipped_cacheable_and_within_its_budget(api):
    with httpx.stream("GET", api.url + "/widget.js", headers={"Accept-Encoding": "gzip"}, timeout=30) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())  # the bytes on the wire, still gzipped
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "max-age=300" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
    assert gzip.decompress(raw) == SCRIPT.read_bytes()
    print(f"widget.js: {len(SCRIPT.read_bytes())} bytes, {len(raw)} bytes gzipped as served (budget {GZIP_BUDGET})")
    assert len(raw) <= GZIP_BUDGET

    plain = call(api, "GET", "/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.content == SCRIPT.read_bytes() and "content-encoding" not in plain.headers
    etag = plain.headers["etag"]
    again = call(api, "GET", "/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


# -- CORS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, method", [("/v1/ask", "POST"), ("/v1/ask/stream", "POST"), ("/v1/feedback", "POST"), ("/v1/widget", "GET")]
)
def test_preflight_is_answered_for_an_allowed_origin(api, path, method):
    r = preflight(api, path, NORTH, method)
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == NORTH
    assert r.headers["access-control-allow-methods"] == method
    assert {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")} == {
        "authorization",
        "content-type",
    }
    assert int(r.headers["access-control-max-age"]) > 0 and "Origin" in r.headers["vary"]
    # an origin given with a trailing slash in the clinic's list matches too
    assert preflight(api, path, "https://www.north.example", method).status_code == 204


@pytest.mark.parametrize(
    "path, origin, method, headers",
    [
        ("/v1/ask", ELSEWHERE, "POST", "authorization,content-type"),  # no clinic allows it
        ("/v1/documents", NORTH, "GET", "authorization"),  # not a route a browser may call
        ("/v1/audit", NORTH, "GET", "authorization"),
        ("/v1/feedback", NORTH, "GET", "authorization"),  # reading feedback is for the clinic's server
        ("/v1/ask", NORTH, "DELETE", "authorization"),
        ("/v1/ask", NORTH, "POST", "authorization,x-something"),
        ("/v1/ask", "null", "POST", "authorization"),
    ],
    ids=["foreign", "documents", "audit", "feedback-read", "method", "header", "null-origin"],
)
def test_preflight_is_refused_by_default(api, path, origin, method, headers):
    r = preflight(api, path, origin, method, headers)
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    body = r.json()
    assert body["error"] == "cors_refused" and body["safety_notice"] == SAFETY_NOTICE


def test_responses_let_the_browser_read_them_only_for_the_keys_allowed_origins(api):
    north_pk, north_sk = key(api, "north-physio"), key(api, "north-physio", publishable=False)
    ok = ask(api, north_pk, NORTH)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == NORTH
    assert "Origin" in ok.headers["vary"] and "Retry-After" in ok.headers["access-control-expose-headers"]
    # an origin another clinic allows: refused, and unreadable by the page
    other = ask(api, north_pk, SOUTH)
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    # a secret key works from a server, but a browser is never let in
    secret = ask(api, north_sk, NORTH)
    assert secret.status_code == 200 and "access-control-allow-origin" not in secret.headers
    # an unknown key: no way in either
    bogus = ask(api, "pht_pk_000000000000_" + "x" * 43, NORTH)
    assert bogus.status_code == 401 and "access-control-allow-origin" not in bogus.headers


def test_foreign_origins_do_not_use_up_the_clinics_rate_limit(api):
    """Issue 19, item 4: a publishable key is public; requests refused for a foreign origin are
    refused before they are counted, so they cannot lock the clinic's own site out."""
    pk = key(api, "north-physio")
    for origin in [ELSEWHERE, SOUTH, None] * LIMIT:
        assert ask(api, pk, origin).status_code == 403
    codes = [ask(api, pk, NORTH).status_code for _ in range(LIMIT)]
    assert codes == [200] * LIMIT
    over = ask(api, pk, NORTH)
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
    assert over.headers["access-control-allow-origin"] == NORTH  # the widget can read the wait


def test_the_stream_is_readable_by_the_clinics_site(api):
    pk = key(api, "north-physio")
    with httpx.stream(
        "POST",
        api.url + "/v1/ask/stream",
        json={"question": QUESTION},
        headers={"Authorization": f"Bearer {pk}", "Origin": NORTH},
        timeout=60,
    ) as r:
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == NORTH
        names = [line.split(": ", 1)[1] for line in r.read().decode().splitlines() if line.startswith("event: ")]
    assert names[0] == "status" and names[-1] == "done" and "text" in names


# -- the widget's settings -------------------------------------------------------------------------


def test_widget_settings_come_from_the_clinic_and_do_not_spend_the_budget(api):
    pk = key(api, "north-physio")
    for _ in range(LIMIT * 2):
        r = call(api, "GET", "/v1/widget", pk, NORTH)
        assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == NORTH and "private" in r.headers["cache-control"]
    assert r.json() == {
        "clinic": "North Physio",
        "accent_color": "#7b2d8e",
        "logo_url": "https://north.example/logo.png",
        "safety_notice": SAFETY_NOTICE,
        "feedback": True,
        "feedback_questions": False,
        "max_question_chars": 2000,
    }
    assert ask(api, pk, NORTH).status_code == 200  # the budget for questions is untouched
    refused = call(api, "GET", "/v1/widget", pk, ELSEWHERE)
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert call(api, "GET", "/v1/widget").status_code == 401


# -- feedback --------------------------------------------------------------------------------------


def test_feedback_from_the_widget_is_read_back_by_the_clinic_without_the_question(api):
    pk, sk = key(api, "north-physio"), key(api, "north-physio", publishable=False)
    answer = ask(api, pk, NORTH).json()
    sent = call(
        api,
        "POST",
        "/v1/feedback",
        pk,
        NORTH,
        json={"answer_id": answer["id"], "rating": "up", "comment": "Clear, thanks", "question": f"{QUESTION} {MARKER}"},
    )
    assert sent.status_code == 200, sent.text
    assert sent.headers["access-control-allow-origin"] == NORTH
    row = sent.json()
    assert (row["answer_id"], row["rating"], row["comment"], row["question"]) == (answer["id"], "up", "Clear, thanks", None)
    assert row["status"] == "answered" and row["sources"] == [c["source"] for c in answer["citations"]]

    changed = call(api, "POST", "/v1/feedback", pk, NORTH, json={"answer_id": answer["id"], "rating": "down"})
    assert changed.json()["rating"] == "down" and changed.json()["comment"] == "Clear, thanks"
    listed = call(api, "GET", "/v1/feedback", sk).json()["feedback"]
    mine = [r for r in listed if r["answer_id"] == answer["id"]]
    assert len(mine) == 1 and mine[0]["rating"] == "down" and mine[0]["question"] is None
    assert call(api, "GET", "/v1/feedback", pk, NORTH).status_code == 403  # reading is for the secret key
    dump = "\n".join(sqlite3.connect(api.registry.path).iterdump())
    assert MARKER not in dump and MARKER not in api.log.read_text()


def test_feedback_is_only_taken_on_the_clinics_own_answers(api):
    north_pk, south_pk = key(api, "north-physio"), key(api, "south-clinic")
    answer = ask(api, north_pk, NORTH).json()
    wrong = call(api, "POST", "/v1/feedback", south_pk, SOUTH, json={"answer_id": answer["id"], "rating": "up"})
    assert wrong.status_code == 404 and wrong.json()["error"] == "unknown_answer"
    assert wrong.headers["access-control-allow-origin"] == SOUTH  # the widget can say so
    unknown = call(api, "POST", "/v1/feedback", north_pk, NORTH, json={"answer_id": "f" * 32, "rating": "up"})
    assert unknown.status_code == 404
    for body in (
        {"answer_id": answer["id"], "rating": "meh"},
        {"answer_id": "../etc", "rating": "up"},
        {"answer_id": answer["id"], "rating": "up", "comment": "x" * 2001},
        {"answer_id": answer["id"], "rating": "up", "comment": "bad\u0000byte"},
    ):
        r = call(api, "POST", "/v1/feedback", north_pk, NORTH, json=body)
        assert r.status_code == 422 and r.json()["safety_notice"] == SAFETY_NOTICE, body


def test_a_clinic_that_keeps_questions_gets_them_with_its_feedback(api):
    pk, sk = key(api, "south-clinic"), key(api, "south-clinic", publishable=False)
    answer = ask(api, pk, SOUTH).json()
    r = call(api, "POST", "/v1/feedback", pk, SOUTH, json={"answer_id": answer["id"], "rating": "up", "question": QUESTION})
    assert r.json()["question"] == QUESTION
    api.registry.update_clinic("south-clinic", feedback_questions=False)
    try:
        later = ask(api, pk, SOUTH).json()
        r = call(api, "POST", "/v1/feedback", pk, SOUTH, json={"answer_id": later["id"], "rating": "up", "question": QUESTION})
        assert r.json()["question"] is None
        rows = {row["answer_id"]: row for row in call(api, "GET", "/v1/feedback", sk).json()["feedback"]}
        assert rows[answer["id"]]["question"] == QUESTION and rows[later["id"]]["question"] is None
    finally:
        api.registry.update_clinic("south-clinic", feedback_questions=True)


def test_openapi_has_the_widget_routes(api):
    paths = call(api, "GET", "/openapi.json").json()["paths"]
    assert "get" in paths["/widget.js"] and "get" in paths["/v1/widget"]
    assert {"get", "post"} <= set(paths["/v1/feedback"])
    assert json.dumps(paths["/v1/feedback"]["post"]).count("FeedbackRequest") >= 1
