"""The widget in a real browser: Debian's chromium driven by Playwright, a clinic's plain web site on
one loopback origin and `pht-assistant serve` on another, each started here on a free port.

The site's pages carry the one tag a clinic pastes. The tests click the launcher and ask, read the
streamed answer, a citation with its quote and the notice; an urgent reply; a page whose CSS
attacks everything; a page under a strict Content-Security-Policy; a site that is not on the
clinic's allowed origins; errors (offline, 429, 503) with the panel still working; a phone's
width. A loopback proxy that passes the server-sent events on one at a time, 0.15 s apart (as a
language model would write them), shows that the widget renders pieces as they arrive.

Screenshots (desktop and phone width) go to one folder under pytest's temporary directory; its
path and each file's are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from api_server import serve
from test_page_browser import CHROMIUM, CHROMIUM_FLAGS, contrast

from assistant import SAFETY_NOTICE
from assistant.clinics.registry import ClinicRegistry

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.server]

ANSWERABLE = "Can running be part of my rehab?"
FOLLOW_UP = "How should I build up my long runs for a race?"
URGENT = "I suddenly can't control my bladder and my saddle area is numb"
EMERGENCY = "999 or NHS 111"
ACCENT = "#7b2d8e"  # North Physio's colour in its clinic record
LIMIT = 12  # the server's rate limit per key per minute
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WCAG_AA = 4.5

HOSTILE_CSS = """
* { display: none !important; color: #ff00ff !important; background: #00ff00 !important;
    font: italic 40px/0.5 "Comic Sans MS", cursive !important; letter-spacing: 8px !important;
    text-transform: uppercase !important; visibility: hidden !important; direction: rtl !important;
    opacity: 0.3 !important; border: 6px dashed red !important; margin: 40px !important;
    padding: 40px !important; box-sizing: content-box !important; line-height: 0.4 !important; }
html, body { display: block !important; visibility: visible !important; opacity: 1 !important; }
html { font-size: 5px !important; }
div, p, section, button, textarea, input, span, svg, h2, details, summary, blockquote, form, [role] {
    position: absolute !important; top: -9999px !important; width: 10px !important; height: 10px !important; }
"""
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32">'
    '<rect width="96" height="32" rx="6" fill="#7b2d8e"/><circle cx="16" cy="16" r="9" fill="#fff"/>'
    '<rect x="32" y="11" width="54" height="10" rx="5" fill="#fff"/></svg>'
)


# -- servers ---------------------------------------------------------------------------------------


class Site:
    """A clinic's plain web site on its own loopback origin: pages from a dict, each with its own
    headers (a Content-Security-Policy, say)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                found = site.pages.get(self.path.split("?")[0])
                if found is None:
                    self.send_error(404)
                    return
                body, kind, headers = found
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, path: str, body: str, kind: str = "text/html; charset=utf-8", **headers: str) -> str:
        self.pages[path] = (body.encode(), kind, {k.replace("_", "-"): v for k, v in headers.items()})
        return self.origin + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Trickle:
    """A loopback proxy in front of the API that passes each server-sent event on `gap` seconds
    after the one before (everything else unchanged, CORS headers included): the pace of a
    language model writing, which today's extractive answers do not have."""

    def __init__(self, upstream: str, gap: float = 0.15) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                with httpx.stream(self.command, upstream + self.path, headers=headers, content=body, timeout=60) as r:
                    self.send_response(r.status_code)
                    for k, v in r.headers.items():
                        if k.lower() not in {"content-length", "transfer-encoding", "connection", "content-encoding"}:
                            self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if not r.headers.get("content-type", "").startswith("text/event-stream"):
                        self.wfile.write(r.read())
                        return
                    buffer = ""
                    for text in r.iter_text():
                        buffer += text
                        while "\n\n" in buffer:
                            event, buffer = buffer.split("\n\n", 1)
                            self.wfile.write((event + "\n\n").encode())
                            self.wfile.flush()
                            proxy.sent += 1
                            time.sleep(gap)

            do_GET = do_POST = do_OPTIONS = _forward

            def log_message(self, *args):
                pass

        self.sent = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory, built_data_dir):
    """The API over the session's index, with North Physio (emergency wording, colour) whose only
    allowed site is `site` below."""
    root = tmp_path_factory.mktemp("widget-browser")
    data = root / "data"
    shutil.copytree(built_data_dir, data)
    server = serve(data, root / "server.log", env={"PHT_API_RATE_LIMIT": str(LIMIT)})
    server.registry = ClinicRegistry(data / "clinics.sqlite3")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(api):
    site = Site()
    site.add("/logo.svg", LOGO_SVG, "image/svg+xml")
    api.registry.add_clinic(
        "North Physio",
        emergency_text=EMERGENCY,
        allowed_origins=[site.origin],
        accent_color=ACCENT,
        logo_url=site.origin + "/logo.svg",
    )
    api.secret = api.registry.create_key("north-physio")
    yield site
    site.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("widget-screenshots")
    print(f"widget screenshots: {folder}")
    return folder


@pytest.fixture
def browser(tmp_path):
    """A new chromium with an empty profile; yields a function making contexts (desktop by default)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install chromium` (the Makefile does)")
    from playwright.sync_api import sync_playwright

    contexts = []
    with sync_playwright() as p:

        def open_context(**kw):
            context = p.chromium.launch_persistent_context(
                str(tmp_path / f"profile-{len(contexts)}"),
                executable_path=CHROMIUM,
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport=kw.pop("viewport", DESKTOP),
                **kw,
            )
            contexts.append(context)
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.console = []
            page.on("console", lambda m: page.console.append(m.text))
            return page

        try:
            yield open_context
        finally:
            for context in contexts:
                context.close()


# -- helpers ---------------------------------------------------------------------------------------


def host_page(api, site, path: str, key: str, *, attrs: str = "", head: str = "", **headers: str) -> str:
    """A clinic's page with the one tag on it."""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>North Physio</title>{head}</head><body>
<h1>North Physio</h1>
<p id="host-text">Sports physiotherapy in the north of town. Book online or call us.</p>
<button id="host-button" type="button">Book an appointment</button>
<script src="{api.url}/widget.js" data-key="{key}" {attrs} async></script>
</body></html>"""
    return site.add(path, html, **headers)


def expected(api, question: str) -> dict:
    """What the API answers North Physio (the secret key, from a server): the widget must show it."""
    r = httpx.post(
        api.url + "/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {api.secret}"}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()


def widget(page):
    """The launcher, the panel, the question box and the conversation (Playwright reads into the
    open shadow root)."""
    return (
        page.locator("pht-assistant .launcher"),
        page.get_by_role("dialog"),
        page.get_by_role("textbox", name="Your question"),
        page.get_by_role("log"),
    )


def ask(page, question: str, *, done: str = ".notice"):
    """Type and send a question; return the reply once it has finished (it ends with the notice)."""
    replies = page.locator("pht-assistant .msg.bot")
    before = replies.count()
    box = page.locator("pht-assistant #pht-q")  # the question box, whatever its label's language
    box.fill(question)
    box.press("Enter")
    reply = replies.nth(before)
    reply.locator(done).wait_for()
    return reply


def shadow_focus(page) -> str:
    """The class of the element focused inside the widget, or '' when focus is elsewhere."""
    return page.evaluate(
        """() => { const host = document.querySelector('pht-assistant');
                   const el = host && host.shadowRoot.activeElement;
                   return document.activeElement === host && el ? (el.className || el.tagName.toLowerCase()) : ''; }"""
    )


def save(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.wait_for_timeout(250)  # the panel's opening animation (0.16 s) has finished
    page.screenshot(path=str(path))
    assert path.stat().st_size > 0
    print(f"screenshot ({name}): {path}")
    return path


def body_of(answer: dict) -> str:
    text = answer["text"].rstrip()
    return text[: -len(SAFETY_NOTICE)].rstrip() if text.endswith(SAFETY_NOTICE) else text


# -- the tests -------------------------------------------------------------------------------------


def test_ask_read_cite_rate_close_and_keep_the_conversation_for_the_tab(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    url = host_page(api, site, "/", pk)
    control = site.add("/control", "<!doctype html><p id='host-text'>x</p><button id='host-button'>b</button>")
    page = browser()

    # The host page's own look before the widget exists, to compare with after.
    page.goto(control)
    host_look = page.evaluate(
        "() => ['host-text', 'host-button'].map(id => { const s = getComputedStyle(document.getElementById(id)); "
        "return [s.fontFamily, s.color, s.fontSize, s.backgroundColor]; })"
    )
    page.goto(url)
    launcher, panel, box, log = widget(page)
    launcher.wait_for()
    expect(launcher).to_have_accessible_name("Ask us: North Physio")
    assert launcher.get_attribute("aria-expanded") == "false" and panel.is_hidden()
    colour = launcher.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(123, 45, 142)"  # the clinic record's accent
    assert contrast(launcher.locator("span")) >= WCAG_AA
    # its styles stay inside: the page's own text and button look as they did without it
    assert page.evaluate(
        "() => ['host-text', 'host-button'].map(id => { const s = getComputedStyle(document.getElementById(id)); "
        "return [s.fontFamily, s.color, s.fontSize, s.backgroundColor]; })"
    ) == host_look

    # Keyboard: Tab from the page reaches the launcher, Enter opens, focus goes to the question box.
    page.locator("#host-button").focus()
    page.keyboard.press("Tab")
    assert shadow_focus(page) == "launcher"
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(panel).to_have_accessible_name("North Physio")
    assert launcher.get_attribute("aria-expanded") == "true" and shadow_focus(page) == "textarea"
    assert log.get_attribute("aria-live") == "polite"
    expect(log).to_have_accessible_name("Conversation")
    expect(page.get_by_role("button", name="Close the chat")).to_be_visible()
    logo = page.locator("pht-assistant .head img")
    expect(logo).to_be_visible()  # the clinic's logo, loaded, beside its name (alt="": nothing to add)
    assert logo.evaluate("e => e.naturalWidth") > 0 and logo.get_attribute("alt") == ""
    assert SAFETY_NOTICE in log.inner_text()  # under the greeting too

    # An answer: the text, a citation marker, the sources with their quotes, the notice.
    want = expected(api, ANSWERABLE)
    assert want["status"] == "answered" and want["citations"]
    first = want["citations"][0]
    reply = ask(page, ANSWERABLE)
    assert reply.locator(".notice").inner_text() == SAFETY_NOTICE
    shown = reply.locator(".body").inner_text()
    assert first["quote"].split(". ")[0] in " ".join(shown.split())
    assert SAFETY_NOTICE not in shown  # the notice is its own line, under the reply
    summary = reply.locator("summary").first
    assert summary.inner_text() == f"[1] {first['title']}"
    quote = reply.locator("details blockquote").first
    assert quote.is_hidden()
    reply.get_by_role("button", name="Source 1").click()  # the [1] in the text opens its source
    expect(quote).to_be_visible()
    assert quote.inner_text() == first["quote"]
    assert reply.locator("details").count() == len(want["citations"])
    for name, element in {"answer": reply.locator(".body p").first, "quote": quote, "notice": reply.locator(".notice")}.items():
        ratio = contrast(element)
        print(f"contrast ({name}): {ratio:.1f}:1")
        assert ratio >= WCAG_AA, name
    save(page, shots, "desktop-answer")

    # Thumbs up and a comment: the clinic reads them back, without the question.
    reply.get_by_role("button", name="Yes").click()
    expect(reply.get_by_role("button", name="Yes")).to_have_attribute("aria-pressed", "true")
    reply.get_by_role("textbox", name="Anything to add? (optional)").fill("Clear and short")
    reply.get_by_role("button", name="Send", exact=True).click()
    expect(reply.get_by_text("Thank you for your feedback.")).to_be_visible()
    rows = httpx.get(api.url + "/v1/feedback", headers={"Authorization": f"Bearer {api.secret}"}, timeout=30).json()
    row = next(r for r in rows["feedback"] if r["answer_id"] == reply_id(page, -1))
    assert (row["rating"], row["comment"], row["question"], row["status"]) == ("up", "Clear and short", None, "answered")

    # A follow-up sends the conversation so far (the answer without its notice).
    with page.expect_request(lambda r: r.url.endswith("/v1/ask/stream") and r.method == "POST") as sent:
        ask(page, FOLLOW_UP)
    body = json.loads(sent.value.post_data)
    assert body["question"] == FOLLOW_UP
    assert body["history"] == [{"role": "user", "content": ANSWERABLE}, {"role": "assistant", "content": body_of(want)}]

    # Escape closes and gives focus back to the launcher; nothing traps focus while it is open.
    box.focus()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert shadow_focus(page) == "launcher" and launcher.get_attribute("aria-expanded") == "false"
    launcher.click()
    page.locator("pht-assistant .send").focus()
    page.keyboard.press("Tab")  # the send button is the panel's last control: Tab leaves the widget
    assert shadow_focus(page) == ""

    # The conversation lasts for the tab: a reload keeps it, a new tab starts afresh, and nothing
    # but sessionStorage is used on the clinic's site.
    page.reload()
    launcher, panel, box, log = widget(page)
    expect(panel).to_be_visible()  # it was open
    expect(log).to_contain_text(FOLLOW_UP)
    expect(page.locator("pht-assistant .msg.bot details")).to_have_count(len(want["citations"]) + len(expected(api, FOLLOW_UP)["citations"]))
    stored = page.evaluate(
        "() => ({local: localStorage.length, cookie: document.cookie, "
        "session: Object.keys(sessionStorage).filter(k => !k.startsWith('pht-assistant:')).length})"
    )
    assert stored == {"local": 0, "cookie": "", "session": 0}
    other = page.context.new_page()
    other.goto(url)
    widget(other)[0].click()
    expect(widget(other)[3]).not_to_contain_text(ANSWERABLE)
    assert page.context.cookies() == []


def reply_id(page, n: int) -> str:
    """The answer id the widget keeps for its n-th stored answer (from its tab's sessionStorage)."""
    return page.evaluate(
        """(n) => { const k = Object.keys(sessionStorage).find(k => /^pht-assistant:[0-9a-f]+$/.test(k));
                   const answers = JSON.parse(sessionStorage.getItem(k)).msgs.filter(m => m.role === 'assistant');
                   return answers.at(n).id; }""",
        n,
    )


def test_pieces_are_rendered_as_they_arrive(api, site, browser):
    pk = api.registry.create_key("north-physio", publishable=True)
    trickle = Trickle(api.url)
    try:
        url = host_page(api, site, "/trickle", pk, attrs=f'data-api="{trickle.url}"')
        page = browser()
        page.goto(url)
        widget(page)[0].click()
        # Record what the reply shows at every change, and whether its notice is there yet.
        page.evaluate(
            """() => { const log = document.querySelector('pht-assistant').shadowRoot.querySelector('.log');
                       window.seen = [];
                       new MutationObserver(() => {
                         const last = log.lastElementChild;
                         if (!last || !last.classList.contains('bot')) return;
                         const body = last.querySelector('.body');
                         window.seen.push([body ? body.textContent.length : 0, !!last.querySelector('.notice'), performance.now()]);
                       }).observe(log, {subtree: true, childList: true, characterData: true}); }"""
        )
        want = expected(api, ANSWERABLE)
        events_before = trickle.sent
        reply = ask(page, ANSWERABLE)
        events = trickle.sent - events_before
        seen = page.evaluate("window.seen")
        growing = sorted({length for length, notice, _ in seen if length and not notice})
        print(f"{events} events, 0.15 s apart; the reply was drawn at {len(growing)} lengths before it finished: {growing}")
        assert events >= 6
        assert len(growing) >= 3  # drawn piece by piece, not all at once at the end
        assert growing[-1] <= len(reply.locator(".body").inner_text()) + 5
        # the first text showed well before the answer was complete
        first_text = min(t for length, _, t in seen if length)
        finished = min(t for _, notice, t in seen if notice)
        assert finished - first_text > 0.15 * 1000 * 2
        assert reply.locator("summary").first.inner_text() == f"[1] {want['citations'][0]['title']}"
    finally:
        trickle.close()


def test_urgent_reply_is_an_alert_with_the_clinics_emergency_wording(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    url = host_page(api, site, "/urgent", pk)
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser(viewport=size)
        page.goto(url)
        widget(page)[0].click()
        reply = ask(page, URGENT)
        alert = reply.get_by_role("alert")
        expect(alert).to_be_visible()
        said = alert.inner_text()
        assert "Urgent" in said and "Please seek medical care now" in said and EMERGENCY in said
        assert reply.locator(".notice").inner_text() == SAFETY_NOTICE
        assert reply.locator("details").count() == 0 and reply.get_by_role("button", name="Yes").count() == 0
        for name, element in {"alert": alert.locator(".body p").first, "heading": alert.locator(".alert-h")}.items():
            ratio = contrast(element)
            print(f"contrast (urgent {name}, {size_name}): {ratio:.1f}:1")
            assert ratio >= WCAG_AA
        border = reply.evaluate("e => getComputedStyle(e).borderTopColor")
        assert border == "rgb(179, 38, 30)"  # the red frame
        save(page, shots, f"{size_name}-urgent")


def test_phone_width_fills_the_screen_and_keeps_the_input_above_the_keyboard(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    url = host_page(api, site, "/phone", pk)
    page = browser(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.goto(url)
    launcher, panel, box, log = widget(page)
    launcher.tap()
    expect(panel).to_be_visible()
    panel.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")  # opened, not opening
    frame = panel.bounding_box()
    assert (frame["x"], frame["y"], frame["width"]) == (0, 0, PHONE["width"])
    assert abs(frame["height"] - PHONE["height"]) <= 1
    assert box.evaluate("e => getComputedStyle(e).fontSize") == "16px"  # no zoom when it is focused
    assert launcher.is_hidden()  # the full-screen panel has its own close button
    reply = ask(page, ANSWERABLE)
    reply.locator("summary").first.tap()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    save(page, shots, "phone-answer")

    # The on-screen keyboard takes the lower half: the panel follows the visual viewport and the
    # question box stays in view (a browser that resizes the view, as Android's does).
    box.tap()
    page.set_viewport_size({"width": PHONE["width"], "height": 420})
    page.wait_for_timeout(300)
    field = box.bounding_box()
    assert field["y"] >= 0 and field["y"] + field["height"] <= 420
    assert abs(panel.bounding_box()["height"] - 420) <= 1
    assert log.evaluate("e => e.scrollHeight - e.scrollTop - e.clientHeight") <= 2  # the newest stays in view
    save(page, shots, "phone-keyboard")
    page.set_viewport_size(PHONE)

    # Escape (a hardware keyboard) and the close button both close it.
    page.get_by_role("button", name="Close the chat").tap()
    expect(panel).to_be_hidden()
    expect(launcher).to_be_visible()


def test_hostile_host_css_leaves_the_widget_readable(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    css = site.add("/hostile.css", HOSTILE_CSS, "text/css")
    url = host_page(api, site, "/hostile", pk, head=f'<link rel="stylesheet" href="{css}"><style>{HOSTILE_CSS}</style>')
    page = browser()
    page.goto(url)
    launcher, panel, box, log = widget(page)
    launcher.wait_for()
    assert page.locator("#host-text").is_hidden() and page.locator("#host-button").is_hidden()  # the CSS is live
    expect(launcher).to_be_visible()
    launcher.click()
    expect(panel).to_be_visible()
    panel.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
    reply = ask(page, ANSWERABLE)
    expect(reply.locator(".body")).to_be_visible()
    text = reply.locator(".body p").first
    look = text.evaluate(
        "e => { const s = getComputedStyle(e); return [s.fontSize, s.fontStyle, s.letterSpacing, s.textTransform, "
        "s.color, s.direction, s.visibility, s.fontFamily]; }"
    )
    assert look[:7] == ["15px", "normal", "normal", "none", "rgb(27, 31, 36)", "ltr", "visible"], look
    assert "Comic" not in look[7]
    assert box.evaluate("e => getComputedStyle(e).fontSize") == "16px"
    frame = panel.bounding_box()
    assert frame["width"] >= 350 and frame["height"] >= 500
    assert contrast(text) >= WCAG_AA and contrast(reply.locator(".notice")) >= WCAG_AA
    assert reply.locator(".notice").inner_text() == SAFETY_NOTICE
    save(page, shots, "desktop-hostile-css")


def test_strict_content_security_policy(api, site, browser, shots):
    """Only the assistant's origin for scripts and connections, nothing inline, styles and images
    from the site itself: the widget works and causes no violation. An inline <style> on the page
    shows the policy is enforced (it is blocked: the one violation there is)."""
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    own = site.add("/site.css", "h1 { color: rgb(0, 0, 128); }", "text/css")
    policy = (
        f"default-src 'none'; script-src {api.url}; connect-src {api.url}; img-src 'self'; style-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    url = host_page(
        api,
        site,
        "/strict",
        pk,
        head=f'<link rel="stylesheet" href="{own}"><style>body {{ background: rgb(255, 0, 0); }}</style>',
        Content_Security_Policy=policy,
    )
    page = browser()
    page.context.add_init_script(
        "window.violations = []; document.addEventListener('securitypolicyviolation', e => "
        "window.violations.push({directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile}));"
    )
    response = page.goto(url)
    assert response.headers["content-security-policy"] == policy
    launcher, panel, box, log = widget(page)
    launcher.click()
    reply = ask(page, ANSWERABLE)
    assert reply.locator("summary").count() >= 1 and reply.locator(".notice").inner_text() == SAFETY_NOTICE
    reply.get_by_role("button", name="Yes").click()
    expect(reply.get_by_text("Anything to add? (optional)")).to_be_visible()  # the rating went through
    assert launcher.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(123, 45, 142)"  # styled
    logo = page.locator("pht-assistant .head img")
    expect(logo).to_be_visible()  # the logo, from 'self'
    assert logo.evaluate("e => e.naturalWidth") > 0
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(0, 0, 128)"
    violations = page.evaluate("window.violations")
    print(f"CSP violations: {violations}")
    assert len(violations) == 1 and violations[0]["blocked"] == "inline"
    assert violations[0]["directive"].startswith("style-src") and "widget.js" not in violations[0]["source"]
    assert not [m for m in page.console if "Content Security Policy" in m and "widget" in m]
    save(page, shots, "desktop-strict-csp")


def test_a_site_not_on_the_allowed_list_is_refused(api, site, browser):
    pk = api.registry.create_key("north-physio", publishable=True)
    stranger = Site()
    try:
        url = host_page(api, stranger, "/", pk)
        page = browser()
        with page.expect_console_message(lambda m: "PHT Assistant" in m.text) as warned:
            page.goto(url)
        assert "allowed origins" in warned.value.text and stranger.origin in warned.value.text
        assert page.locator("pht-assistant").count() == 0  # no launcher for a site that cannot ask
        tried = page.evaluate(
            """([api, key]) => fetch(api + '/v1/ask/stream', {method: 'POST',
                   headers: {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
                   body: JSON.stringify({question: 'Can I run?'})}).then(r => 'read ' + r.status, e => e.name)""",
            [api.url, pk],
        )
        assert tried == "TypeError"  # the browser was not let in
    finally:
        stranger.close()
    # the same key still works from the clinic's own site: the refusals did not spend its budget
    r = httpx.post(
        api.url + "/v1/ask",
        json={"question": ANSWERABLE},
        headers={"Authorization": f"Bearer {pk}", "Origin": site.origin},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == site.origin


def test_errors_are_a_sentence_and_the_notice_and_the_panel_keeps_working(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    url = host_page(api, site, "/errors", pk)
    page = browser()
    page.goto(url)
    launcher, panel, box, log = widget(page)
    launcher.click()

    def failed(question: str, sentence: str):
        reply = ask(page, question)
        assert "error" in reply.get_attribute("class")
        said = reply.inner_text()
        assert re.search(sentence, said), said
        assert reply.locator(".notice").inner_text() == SAFETY_NOTICE
        expect(box).to_be_enabled()
        expect(page.locator("pht-assistant .send")).to_be_enabled()
        return reply

    # Offline, then back online: the next question is answered.
    page.context.set_offline(True)
    failed(ANSWERABLE, "You seem to be offline; check your connection and ask again.")
    page.context.set_offline(False)
    assert ask(page, ANSWERABLE).locator("summary").count() >= 1

    # The service unavailable (503, as the API sends it while its store is down).
    def unavailable(route):
        route.fulfill(
            status=503,
            headers={"Access-Control-Allow-Origin": site.origin, "Content-Type": "application/json"},
            body=json.dumps({"error": "store_unavailable", "message": "x", "safety_notice": SAFETY_NOTICE}),
        )

    page.route(f"{api.url}/v1/ask/stream", unavailable)
    failed(ANSWERABLE, "The assistant is not available just now; please try again in a minute.")
    page.unroute(f"{api.url}/v1/ask/stream")
    assert ask(page, ANSWERABLE).locator("summary").count() >= 1

    # Over the key's rate limit (429, for real): the wait the server gives is the one said.
    retry_after = None
    for _ in range(LIMIT + 1):
        r = httpx.post(
            api.url + "/v1/ask",
            json={"question": ANSWERABLE},
            headers={"Authorization": f"Bearer {pk}", "Origin": site.origin},
            timeout=60,
        )
        if r.status_code == 429:
            retry_after = int(r.headers["retry-after"])
            break
    assert retry_after is not None
    reply = failed(ANSWERABLE, r"Many questions are being asked just now; please try again in \d+ seconds\.")
    said = int(re.search(r"in (\d+) seconds", reply.inner_text()).group(1))
    assert retry_after - 3 <= said <= retry_after
    failed(FOLLOW_UP, "Many questions")  # still usable: the next question is sent and answered in words
    save(page, shots, "desktop-errors")


def test_tag_attributes_and_init_override_the_clinics_looks(api, site, browser, shots):
    from playwright.sync_api import expect

    pk = api.registry.create_key("north-physio", publishable=True)
    url = host_page(
        api,
        site,
        "/themed",
        pk,
        attrs='data-position="left" data-accent="#1864ab" data-title="Ask North Physio" '
        'data-greeting="Hi! Ask about your hamstring." data-label="Questions?"',
    )
    page = browser()
    page.goto(url)
    launcher, panel, box, log = widget(page)
    launcher.wait_for()
    expect(launcher).to_have_accessible_name("Questions?: Ask North Physio")
    assert launcher.bounding_box()["x"] < 100  # on the left
    assert launcher.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(24, 100, 171)"
    launcher.click()
    expect(panel).to_have_accessible_name("Ask North Physio")
    expect(log).to_contain_text("Hi! Ask about your hamstring.")
    ask(page, ANSWERABLE)

    # The page's own script (here: Playwright's) calls init(): German labels, a light accent whose
    # text turns dark to stay readable; the tag's own label stays (init's options are merged over
    # the tag's, and `label: null` gives the language's own); the conversation survives the re-mount.
    page.evaluate("PHTAssistant.init({lang: 'de', accent: '#ffd43b', position: 'right', open: true})")
    launcher = page.locator("pht-assistant .launcher")
    expect(launcher).to_have_accessible_name("Questions?: Ask North Physio")
    page.evaluate("PHTAssistant.init({label: null})")
    launcher = page.locator("pht-assistant .launcher")
    expect(launcher).to_contain_text("Fragen Sie uns")
    expect(page.get_by_role("textbox", name="Ihre Frage")).to_be_visible()
    expect(page.get_by_role("log", name="Gespräch")).to_contain_text(ANSWERABLE)
    assert launcher.evaluate("e => getComputedStyle(e).color") == "rgb(17, 17, 17)"
    assert contrast(launcher.locator("span")) >= WCAG_AA
    assert launcher.bounding_box()["x"] > DESKTOP["width"] / 2
    save(page, shots, "desktop-themed-de")

    # A new conversation: only the greeting is left, here and in the tab's storage.
    page.get_by_role("button", name="Neues Gespräch").click()
    expect(page.locator("pht-assistant .msg")).to_have_count(1)
    assert page.evaluate(
        "() => Object.keys(sessionStorage).filter(k => /^pht-assistant:[0-9a-f]+$/.test(k))"
        ".map(k => JSON.parse(sessionStorage.getItem(k)).msgs.length)"
    ) == [0]


def test_the_example_page_in_the_docs_works_as_pasted(api, site, browser):
    """docs/widget-example.html with its two placeholders filled in, served as it is (its own
    Content-Security-Policy included): the widget appears and answers."""
    from conftest import ROOT

    pk = api.registry.create_key("north-physio", publishable=True)
    example = (ROOT / "docs" / "widget-example.html").read_text(encoding="utf-8")
    assert example.count("https://ASSISTANT-HOST") == 3 and "PUBLISHABLE_KEY" in example
    url = site.add("/example", example.replace("https://ASSISTANT-HOST", api.url).replace("PUBLISHABLE_KEY", pk))
    page = browser()
    page.goto(url)
    widget(page)[0].click()
    reply = ask(page, ANSWERABLE)
    assert reply.locator("summary").count() >= 1 and reply.locator(".notice").inner_text() == SAFETY_NOTICE
    assert not [m for m in page.console if "Content Security Policy" in m]
