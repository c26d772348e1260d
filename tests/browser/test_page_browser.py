"""The chat page in a real browser: `streamlit run ui/app.py` driven by Debian's chromium.

`playwright install` cannot download browsers here, so Playwright drives /usr/bin/chromium (the
Makefile installs it) with a new, empty profile. The server runs on a free loopback port over an
index built in a temporary folder, with feedback turned on (into a temporary SQLite file) so the
thumbs can be clicked for real; it is always stopped. Screenshots at desktop and phone width go to
the test's tmp_path and their paths are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant import SAFETY_NOTICE, Answer, Assistant, Settings, Status

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ANSWERABLE = "Can running be part of my rehab?"
URGENT = "I suddenly can't control my bladder and my buttock is numb"
NOT_COVERED = "ice or heat for proximal hamstring tendinopathy?"  # evals/suites/not_covered.jsonl
OFF_TOPIC = "how do I bake sourdough bread?"
TIMEOUT_MS = 120_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WCAG_AA = 4.5  # contrast ratio for normal-size text


@dataclass
class Server:
    url: str
    feedback: Path
    expected: Answer  # what the same index answers to ANSWERABLE, asked in this process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with code {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer {url} within {timeout:.0f}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running page over a freshly built index, feedback on; always stopped afterwards."""
    data_dir = tmp_path_factory.mktemp("browser-index")
    assistant = Assistant.from_settings(Settings(data_dir=data_dir), progress=False, notify=lambda m: None)
    try:
        expected = assistant.ask(ANSWERABLE)
    finally:
        assistant.close()
    feedback = tmp_path_factory.mktemp("feedback") / "feedback.sqlite3"
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {
        **os.environ,
        "PHT_DATA_DIR": str(data_dir),
        "PHT_FEEDBACK_ENABLED": "true",
        "PHT_FEEDBACK_PATH": str(feedback),
        "PHT_LOG_QUESTIONS": "false",
    }
    cmd = [
        sys.executable, "-m", "streamlit", "run", "ui/app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/_stcore/health", process, log)
        yield Server(url=url, feedback=feedback, expected=expected)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium` (the Makefile does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright refuses --user-data-dir in launch(); a persistent context takes the folder itself.
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport=DESKTOP,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()


def ask(page, question: str):
    """Type a question, send it, and return the reply once it has rendered with its notice."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    asked = page.locator('[data-testid="stChatMessage"]', has_text=question).last
    reply = asked.locator("xpath=following::*[@data-testid='stChatMessage'][1]")
    reply.get_by_text(SAFETY_NOTICE, exact=True).wait_for()
    return reply


# What the eye sees: the element's colour (with every ancestor's opacity) over the backgrounds
# painted beneath it, composited from the page down.
SEEN_COLOURS = """
(el) => {
  const rgba = (s) => {
    const m = s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) throw new Error("unexpected colour " + s);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under, a) => top.map((c, i) => c * a + under[i] * (1 - a));
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.push(e);
  let bg = [255, 255, 255];
  let opacity = 1;
  for (const e of chain.slice().reverse()) {
    const [r, g, b, a] = rgba(getComputedStyle(e).backgroundColor);
    bg = over([r, g, b], bg, a);
    opacity *= parseFloat(getComputedStyle(e).opacity);
  }
  const [r, g, b, a] = rgba(getComputedStyle(el).color);
  return {fg: over([r, g, b], bg, a * opacity), bg: bg};
}
"""


def contrast(locator) -> float:
    """WCAG contrast ratio of a text element against what is behind it."""

    def luminance(rgb: list[float]) -> float:
        def channel(c: float) -> float:
            c /= 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (channel(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    seen = locator.evaluate(SEEN_COLOURS)
    hi, lo = sorted((luminance(seen["fg"]), luminance(seen["bg"])), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def unlabelled_buttons(page) -> list[str]:
    """Visible buttons with no accessible name (icons are aria-hidden, so they do not count)."""
    return page.locator("button:visible").evaluate_all(
        """els => els.filter(b => {
             const c = b.cloneNode(true);
             c.querySelectorAll('[aria-hidden="true"]').forEach(n => n.remove());
             return !(b.getAttribute('aria-label') || b.getAttribute('title') || c.textContent || '').trim();
           }).map(b => b.outerHTML.slice(0, 200))"""
    )


def shoot(page, target, path: Path, size: dict) -> Path:
    """A screenshot at ``size`` with ``target`` scrolled to the top of the view."""
    page.set_viewport_size(size)
    page.wait_for_timeout(300)  # let the layout settle at the new width
    # below Streamlit's top bar, so the first line of the target shows
    target.evaluate("e => { e.style.scrollMarginTop = '72px'; e.scrollIntoView({block: 'start'}); }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    return path


def test_chat_in_chromium(server, browser_page, tmp_path):
    from playwright.sync_api import expect

    page = browser_page
    shots: dict[str, Path] = {}
    page.goto(server.url)

    # The empty chat: welcome, topics, example questions as buttons, the notice in the footer.
    welcome = page.get_by_test_id("stChatMessage").first
    welcome.get_by_text("They cover:").wait_for()  # the assistant has loaded
    assert "Race Training with PHT" in welcome.inner_text()
    for example in ("Can running be part of my rehab?", "Should I still run my marathon?"):
        # the buttons render just after the welcome text: wait for them rather than look once
        expect(page.get_by_role("button", name=example)).to_be_visible()
    footer = page.get_by_test_id("stCaptionContainer").filter(has_text="Please note:")
    assert SAFETY_NOTICE in footer.inner_text()
    assert unlabelled_buttons(page) == []
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        path = tmp_path / f"welcome-{size_name}.png"
        shots[f"welcome-{size_name}"] = shoot(page, page.locator("h1"), path, size)
    page.set_viewport_size(DESKTOP)

    # An answer: its text, a citation with its quote highlighted in context, the notice.
    expected = server.expected
    assert expected.status is Status.answered
    first = expected.citations[0]
    reply = ask(page, ANSWERABLE)
    text = reply.inner_text()
    assert "[1]" in text and first.quote.split(". ")[0] in text
    reply.get_by_text("Sources", exact=True).wait_for()
    citation = reply.get_by_test_id("stExpander").filter(has_text=f"[1] {first.title}")
    citation.get_by_text(f"[1] {first.title}").click()
    mark = citation.locator("mark.pht-quote")
    mark.wait_for()
    assert mark.inner_text() == first.quote
    paragraph = citation.locator("blockquote.pht-passage").inner_text()
    assert len(paragraph) > len(first.quote)  # the quote inside its surrounding paragraph
    notice = reply.get_by_text(SAFETY_NOTICE, exact=True)
    assert notice.is_visible()

    # Feedback (turned on for this server): a real click lands in the SQLite file.
    reply.get_by_role("radio", name="Thumbs up").click()
    reply.get_by_text("Thank you, your rating was saved.").wait_for()
    with sqlite3.connect(server.feedback) as conn:
        rows = conn.execute("SELECT status, thumbs, question, sources FROM feedback").fetchall()
    assert len(rows) == 1
    status, thumbs, question, sources = rows[0]
    assert (status, thumbs, question) == ("answered", "up", None)
    assert first.source in sources

    # Legibility of what matters most, against what is really behind it.
    for name, element in {
        "notice": notice,
        "quoted answer": reply.locator("blockquote").first,
        "highlighted quote": mark,
        "footer": footer,
    }.items():
        ratio = contrast(element)
        print(f"contrast ({name}): {ratio:.1f}:1")
        assert ratio >= WCAG_AA, name
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        shots[f"answer-{size_name}"] = shoot(page, reply, tmp_path / f"answer-{size_name}.png", size)
    page.set_viewport_size(DESKTOP)

    # Not covered, then out of scope: two calm notes, each of its own kind, saying what is covered.
    not_covered = ask(page, NOT_COVERED)
    note = not_covered.get_by_test_id("stAlertContentInfo")
    assert "don't mention ice or heat" in note.inner_text() and "Race Training with PHT" in note.inner_text()
    off_topic = ask(page, OFF_TOPIC)
    said = off_topic.inner_text()
    assert "I can only help" in said and "Race Training with PHT" in said
    assert not off_topic.locator('[data-testid^="stAlertContent"]').count()  # a plain note, not an alert
    for reply_ in (not_covered, off_topic):
        assert reply_.get_by_text(SAFETY_NOTICE, exact=True).is_visible()
        assert not reply_.get_by_test_id("stExpander").count()
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        shots[f"notes-{size_name}"] = shoot(page, not_covered, tmp_path / f"notes-{size_name}.png", size)
    page.set_viewport_size(DESKTOP)

    # An urgent question: a prominent alert with the action, and nothing else but the notice.
    urgent = ask(page, URGENT)
    alert = urgent.get_by_test_id("stAlertContentError")
    alert.wait_for()
    assert "Please seek medical care now" in alert.inner_text()
    assert "emergency" in alert.inner_text()
    assert urgent.get_by_text(SAFETY_NOTICE, exact=True).is_visible()
    assert not urgent.get_by_test_id("stExpander").count()
    assert not urgent.get_by_test_id("stFeedback").count()
    ratio = contrast(alert.locator("p").first)
    print(f"contrast (urgent alert): {ratio:.1f}:1")
    assert ratio >= WCAG_AA
    assert unlabelled_buttons(page) == []
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        shots[f"urgent-{size_name}"] = shoot(page, urgent, tmp_path / f"urgent-{size_name}.png", size)

    for name, path in shots.items():
        print(f"screenshot ({name}): {path}")
