"""Real-browser fixtures: Debian's chromium driven by Playwright, against a live app on loopback.

Without chromium the browser tests skip with a reason, except under ``CI=true`` where a missing
browser is a failure.
"""

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import uvicorn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
PHONE = {"width": 390, "height": 844}


def require_chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail("Debian's chromium is missing under CI (.ci/run installs it with apt-get)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The test app served by uvicorn on a free loopback port, in a thread."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class OffBoxRequests:
    """Every request the page tried to send anywhere but loopback."""

    urls: list[str] = field(default_factory=list)


@pytest.fixture
def browser_page(live_server: str):
    """A fresh Chromium page; requests leaving loopback are blocked and recorded."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    off_box = OffBoxRequests()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(locale="fr-FR", viewport=PHONE)

        def guard(route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in (
                "127.0.0.1",
                "localhost",
            ):
                route.continue_()
            else:
                off_box.urls.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.off_box = off_box  # type: ignore[attr-defined]
        page.base_url = live_server  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def sign_in(page, path: str, username: str, password: str, *, landing: str) -> None:
    """Open ``path`` on the live app, sign in as ``username`` on the login page it leads to,
    and wait until the browser is at ``landing`` (a URL glob)."""
    page.goto(f"{page.base_url}{path}")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url(landing)
