"""The embedded engine's allocator keeps the pages a query freed for seconds (jemalloc's dirty
pages, 5 s decay, no background thread); `ClickHouseStore.release_freed_memory`, which serve runs
every second, hands them back to the system at once."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from tracehouse import wiring
from tracehouse.storage import ClickHouseStore, StorageError

pytestmark = pytest.mark.integration


def dirty_pages(store: ClickHouseStore) -> int:
    """Dirty pages of all the engine's arenas (the first `dirty:` line of jemalloc's stats)."""
    stats = store.client().query("SELECT stats FROM system.jemalloc_stats").result_rows[0][0]
    match = re.search(r"^\s+dirty:\s+\S+\s+(\d+)", stats, re.MULTILINE)
    assert match, "jemalloc's stats have no dirty-pages line"
    return int(match[1])


def test_freed_memory_is_handed_back(store: ClickHouseStore) -> None:
    store.client().query("SELECT groupArray(number) FROM numbers(5000000) GROUP BY number % 3")
    if not store.config.embedded:  # a server's allocator is its own business; the call still works
        store.release_freed_memory()
        return
    before = dirty_pages(store)
    assert before > 10_000  # ~40 MiB of the ~120 MiB the query freed
    store.release_freed_memory()
    assert dirty_pages(store) < before // 10


class EngineWithoutJemalloc:
    """Stands in for a store whose engine was built without jemalloc (no such chDB here): its
    purge fails as the store reports an engine's refusal."""

    def __init__(self) -> None:
        self.calls = 0

    def release_freed_memory(self) -> None:
        self.calls += 1
        raise StorageError("releasing the engine's freed memory failed: Code: 1. DB::Exception: jemalloc is not used")


def test_the_purge_gives_up_once_logged_when_the_engine_cannot(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """serve's purge loop stops after the first refusal, with one warning: not a warning (and a
    refused statement) every second for as long as serve runs. Nor does it purge once serve stops."""
    monkeypatch.setattr(wiring, "PURGE_INTERVAL_S", 0.01)
    engine = EngineWithoutJemalloc()

    async def scenario() -> None:
        stop = asyncio.Event()  # never set: the loop must end by itself
        await asyncio.wait_for(wiring._purge_forever(engine, stop), 10)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert engine.calls == 1

    async def stopped_while_waiting() -> None:
        monkeypatch.setattr(wiring, "PURGE_INTERVAL_S", 3600)
        stop = asyncio.Event()
        loop = asyncio.create_task(wiring._purge_forever(engine, stop))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # the loop waits out its interval
        stop.set()  # serve shutting down: the store closes next
        await asyncio.wait_for(loop, 10)

    asyncio.run(stopped_while_waiting())
    assert engine.calls == 1  # no purge once stopped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "releasing the engine's freed memory failed: Code: 1. DB::Exception: jemalloc is not used; "
        "the engine's freed memory is left to its allocator from now on"
    ]
