"""Shared by the map tests: Debian's headless Chromium (never a downloaded one) with every
request off this machine refused, and the app served on 127.0.0.1 for it to open."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from api.app import create_app
from api.settings import Settings
from maps.assets import NODE_MODULES

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium that resolves no name but 127.0.0.1 and phones nowhere on its own."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium")
    assert (NODE_MODULES / "leaflet").is_dir(), "run `make assets`"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )  # fmt: skip
        try:
            yield b
        finally:
            b.close()


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app on 127.0.0.1 at a free port, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def open_offline(
    browser: Browser, url: str, headers: dict[str, str] | None = None, *, ready: str
) -> Page:
    """Open ``url`` with every request off this machine refused and wait for the selector
    ``ready``; fail on any JavaScript error, console error or failed request."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, extra_http_headers=headers or {}
    )
    problems: list[str] = []

    def guard(route: Any) -> None:
        target = urlsplit(route.request.url)
        if target.scheme in ("file", "data") or target.hostname == "127.0.0.1":
            route.continue_()
        else:
            problems.append(f"request off the machine: {route.request.url}")
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url[:200]} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_selector(ready, timeout=15_000)
    page.evaluate("document.fonts.ready.then(() => true)")
    page.wait_for_timeout(200)  # late requests (fonts, images) fail the page too
    assert problems == []
    return page
