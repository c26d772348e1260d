"""Finding 4: a publishable key, public by design, locked out its clinic's widget.

Five requests from another site (refused with 403 for their Origin) left the real site with 429 for
a minute. Now only requests that passed the key check, the origin check and the kind of key count
against a key's budget; refused requests are counted per client address instead, and an address
past its refusals gets 429 for them, while valid requests from anywhere go on.
"""

from __future__ import annotations

import httpx
import pytest
from api_server import serve
from reliability.faults import copy_data, figure, is_error

from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.reliability, pytest.mark.server, pytest.mark.integration]

SITE = "https://widget-clinic.example"
LIMIT = 5
REFUSED = 8


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    root = tmp_path_factory.mktemp("limits")
    data = copy_data(built_data_dir, root)
    registry = ClinicRegistry(data / "clinics.sqlite3")
    registry.add_clinic("Widget Clinic", allowed_origins=[SITE])
    server = serve(
        data,
        root / "server.log",
        env={"PHT_API_RATE_LIMIT": str(LIMIT), "PHT_API_REFUSED_LIMIT": str(REFUSED), "PHT_API_RATE_WINDOW": "60"},
    )
    try:
        server.wait_ready()
        server.registry = registry
        yield server
    finally:
        server.stop()


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60)


def _ask(client: httpx.Client, api, key: str, origin: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if origin:
        headers["Origin"] = origin
    return client.post(api.url + "/v1/ask", json={"question": "Can running be part of my rehab?"}, headers=headers)


def test_requests_from_a_foreign_origin_leave_the_clinics_budget_untouched(api):
    key = api.registry.create_key("widget-clinic", publishable=True)
    with _client("127.0.0.2") as attacker, _client("127.0.0.3") as patient:
        for _ in range(LIMIT):  # the finding: five from another site
            is_error(_ask(attacker, api, key, "https://elsewhere.example"), 403, "not_allowed")
        # a publishable key where only a secret key may go: refused, and not counted either
        r = attacker.get(api.url + "/v1/documents", headers={"Authorization": f"Bearer {key}", "Origin": SITE})
        is_error(r, 403, "not_allowed")
        # the real site still has its whole budget
        got = [_ask(patient, api, key, SITE).status_code for _ in range(LIMIT)]
        assert got == [200] * LIMIT
        is_error(_ask(patient, api, key, SITE), 429, "rate_limited")
    figure(
        "foreign-origin requests against a publishable key (limit 5 a minute)",
        f"{LIMIT} refused with 403 and one on a secret route: the real site then got {LIMIT} answers, the 6th 429",
    )


def test_an_address_sending_refused_requests_is_slowed_on_its_own(api):
    key = api.registry.create_key("widget-clinic")
    bad = "pht_sk_0123456789ab_" + "x" * 43
    with _client("127.0.0.4") as prober, _client("127.0.0.5") as other:
        codes = [prober.get(api.url + "/v1/sources", headers={"Authorization": f"Bearer {bad}"}).status_code for _ in range(REFUSED + 3)]
        assert codes == [401] * REFUSED + [429] * 3
        r = prober.get(api.url + "/v1/sources", headers={"Authorization": f"Bearer {bad}"})
        body = is_error(r, 429, "too_many_refused")
        assert "refused requests from this address" in body["message"] and int(r.headers["Retry-After"]) >= 1
        # the same address with a valid key is answered; another address's refusals are its own
        assert prober.get(api.url + "/v1/sources", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert other.get(api.url + "/v1/sources", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    metrics = httpx.get(api.url + "/metrics", timeout=30).text
    assert 'pht_refused_requests_total{reason="over_limit"}' in metrics
    figure(
        f"refused requests from one address (limit {REFUSED} a minute)",
        f"{REFUSED} answered 401, then 429 too_many_refused; a valid key from it still 200; another address 401",
    )
