"""The evaluation's HTML report in a real browser: Debian's chromium driven by Playwright.

A small suite runs through the evaluation runner against the session's assistant (a real index in
a temporary folder); the page it writes is opened from disk with a new, empty profile and no
network. The test reads the figures and both charts, filters to the failing cases, opens one and
finds its reasons, answer and retrieved passages, then searches by text. The screenshot goes to
tmp_path and its path is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROWS = [
    {"id": "run-1", "question": "Can running be part of my rehab?", "expected_status": "answered", "expected_sources": ["pht-podcast-qa#qa-1"], "tags": ["qa-1"]},
    {"id": "gym-1", "question": "Which exercises can I do to build muscle with PHT?", "expected_status": "answered", "expected_sources": ["pht-podcast-qa#qa-2"], "tags": ["qa-2"]},
    {"id": "ice-1", "question": "ice or heat for proximal hamstring tendinopathy?", "expected_status": "not_covered", "tags": ["not-covered"]},
    {"id": "flag-1", "question": "I suddenly can't control my bladder and my saddle area is numb", "expected_status": "urgent", "tags": ["red-flag"]},
    {"id": "race-wrong", "question": "Should I do speed work before my marathon with PHT?", "expected_status": "not_covered", "tags": ["mislabelled"]},
]  # fmt: skip


@pytest.fixture
def report_page(tmp_path, assistant) -> Path:
    from assistant.evaluation import metrics, reports, runner, suite
    from assistant.evaluation.html import write_html

    path = tmp_path / "browser.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    loaded = suite.load_suites([path])
    target = runner.LocalTarget(assistant)  # the session's assistant: not closed here
    started = datetime.now(timezone.utc)
    records = runner.run_cases(suite.select(loaded, None), target, progress=False)
    summary = metrics.summarise(records)
    gates = metrics.check_gates([metrics.parse_gate("status_accuracy>=0.9")], summary["overall"])
    report = reports.build(runner.run_settings(target, loaded, [], started), summary, gates, records)
    page = tmp_path / "report.html"
    write_html(report, page)
    return page


def test_the_report_opens_filters_and_expands_in_chromium(report_page, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium` (the Makefile does)")
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report_page.as_uri())
            assert page.title() == "PHT Assistant evaluation: 4 of 5 cases passed"
            cards = page.locator("#metrics .card")
            assert cards.count() >= 14
            accuracy = page.locator("#metrics .card", has_text="status_accuracy")
            assert "80.0%" in accuracy.inner_text() and "n = 5 cases" in accuracy.inner_text()
            assert page.locator("#confusion svg rect").count() == 4 * 5
            assert page.locator("#latency svg rect").count() >= 1
            assert "✗ status_accuracy>=0.9" in page.locator(".gates").inner_text()
            rows = page.locator("tr.case")
            assert rows.count() == 5 and rows.first.get_attribute("data-outcome") == "fail"  # failing first
            assert page.locator("#shown").inner_text() == "5 of 5 cases shown"

            page.select_option("#outcome", "fail")
            visible = page.locator("tr.case:visible")
            assert visible.count() == 1 and visible.first.get_attribute("data-key") == "browser/race-wrong"
            assert page.locator("#shown").inner_text() == "1 of 5 cases shown"

            detail = page.locator("#" + visible.first.get_attribute("data-detail"))
            assert detail.is_hidden()
            visible.first.click()
            assert detail.is_visible()
            assert visible.first.locator("button").get_attribute("aria-expanded") == "true"
            text = detail.inner_text()
            assert "status: expected not_covered, got answered" in text
            assert "Here is what my sources say" in text and "Please consult a physiotherapist" in text
            passages = detail.locator("table.passages tbody tr")
            assert passages.count() >= 3 and "pht-podcast-qa#qa-3" in passages.first.inner_text()
            detail.scroll_into_view_if_needed()
            shot = tmp_path / "eval-report.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the evaluation report: {shot}")

            page.select_option("#outcome", "all")
            page.fill("#filter", "bladder")
            assert page.locator("tr.case:visible").count() == 1
            assert page.locator("tr.case:visible").first.get_attribute("data-status") == "urgent"
            page.fill("#filter", "")
            page.select_option("#status", "not_covered")
            assert page.locator("tr.case:visible").count() == 1
        finally:
            context.close()
    assert requests == [report_page.as_uri()]  # the page fetched nothing else: no CDN, no network
    assert shot.stat().st_size > 10_000
