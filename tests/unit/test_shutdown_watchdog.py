"""A shutdown that hangs says on what: serve's watchdog logs each task still running and the
line it waits on, so a stop killed by its supervisor leaves the reason in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tracehouse import wiring


async def _insert_that_never_ends(released: asyncio.Event) -> None:
    await released.wait()


def test_a_slow_shutdown_logs_the_task_and_line_it_waits_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wiring, "SLOW_SHUTDOWN_S", 0.01)

    async def scenario() -> None:
        released = asyncio.Event()
        stuck = asyncio.create_task(_insert_that_never_ends(released), name="pipeline-flush")
        watchdog = asyncio.create_task(wiring._report_slow_shutdown())
        while not any("still shutting down" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.01)
        watchdog.cancel()
        released.set()
        await stuck

    with caplog.at_level(logging.WARNING, logger="tracehouse"):
        asyncio.run(asyncio.wait_for(scenario(), 10))
    message = next(r.getMessage() for r in caplog.records if "still shutting down" in r.getMessage())
    assert "pipeline-flush at test_shutdown_watchdog.py:" in message
    assert "(_insert_that_never_ends)" in message
