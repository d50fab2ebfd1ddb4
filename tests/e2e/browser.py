"""Headless Chromium for the dashboard's browser tests: Debian's build (Playwright never downloads
one here), pages that fail their test on any console error or uncaught exception, and screenshots
saved as test artifacts in one directory (``build/screenshots/``, or ``$TRACEHOUSE_SCREENSHOTS``)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def checked_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A new page that fails the test, when closed, if the browser logged an error or a script threw."""
    page = browser.new_page(**options)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("console", lambda message: _console_error(message, problems, page))
    try:
        yield page
    finally:
        page.close()
    assert problems == [], problems


def _console_error(message: ConsoleMessage, problems: list[str], page: Page) -> None:
    if message.type == "error":
        problems.append(f"{page.url}: {message.text}")


def screenshot_dir() -> Path:
    configured = os.environ.get("TRACEHOUSE_SCREENSHOTS")
    return Path(configured).resolve() if configured else ROOT / "build" / "screenshots"


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save the page as ``<dir>/<name>.png`` (replacing an older one) and return its path."""
    path = screenshot_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)
