from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.browser import (
    browser,  # noqa: F401  (the module-scoped headless Chromium fixture)
    checked_page,
)
from tests.e2e.server import Server, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data")
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    """A page of the shared browser that fails its test on a script error or console error
    (`checked_page`); test files with other needs define their own."""
    with checked_page(browser, viewport={"width": 1300, "height": 900}) as opened:
        yield opened
