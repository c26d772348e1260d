"""The chat page in a real browser: `streamlit run ui/app.py` driven by Debian's chromium.

`playwright install` cannot download browsers here, so Playwright drives /usr/bin/chromium (the
Makefile installs it). Screenshots go to the test's tmp_path; their paths are printed (see -s).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant import SAFETY_NOTICE, Assistant, Settings

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ANSWERABLE = "Can running be part of my rehab?"
URGENT = "I suddenly can't control my bladder and my buttock is numb"
TIMEOUT_MS = 120_000


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
def server_url(tmp_path_factory):
    """A running page over a freshly built index; always stopped afterwards."""
    data_dir = tmp_path_factory.mktemp("browser-index")
    Assistant.from_settings(Settings(data_dir=data_dir), progress=False, notify=lambda m: None).close()
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "PHT_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable, "-m", "streamlit", "run", "ui/app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/_stcore/health", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium` (the Makefile does)")
    from playwright.sync_api import sync_playwright

    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    with sync_playwright() as p:
        # Playwright refuses --user-data-dir in launch(); a persistent context takes the folder itself.
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=args,
            headless=True,
            viewport={"width": 1280, "height": 900},
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


def test_chat_in_chromium(server_url, browser_page, tmp_path):
    page = browser_page
    page.goto(server_url)
    page.get_by_text("They cover:").wait_for()  # the welcome, once the assistant has loaded
    page.get_by_text(SAFETY_NOTICE).first.wait_for()  # the footer
    shots = {"welcome-desktop": tmp_path / "page-welcome-desktop.png"}
    page.screenshot(path=str(shots["welcome-desktop"]))

    answer = ask(page, ANSWERABLE)
    assert "[1]" in answer.inner_text()
    sources = answer.get_by_test_id("stExpander")
    sources.get_by_text("Sources").click()
    citation = sources.get_by_text("[1] Overcoming Proximal Hamstring Tendinopathy")
    citation.wait_for()
    assert "Running should be considered a part of your rehabilitation" in sources.inner_text()

    urgent = ask(page, URGENT)
    alert = urgent.get_by_test_id("stAlertContentError")
    alert.wait_for()
    assert "Please seek medical care now" in alert.inner_text()
    assert urgent.get_by_text(SAFETY_NOTICE, exact=True).is_visible()

    footer = page.get_by_text("Please note:")
    for name, size in {"chat-desktop": (1280, 900), "chat-phone": (390, 844)}.items():
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(500)  # let the layout settle
        footer.scroll_into_view_if_needed()  # the latest reply and the footer
        shots[name] = tmp_path / f"page-{name}.png"
        page.screenshot(path=str(shots[name]))
    for path in shots.values():
        assert path.stat().st_size > 0
    for name, path in shots.items():
        print(f"screenshot ({name}): {path}")
