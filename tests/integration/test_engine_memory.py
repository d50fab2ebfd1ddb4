"""The embedded engine's allocator keeps the pages a query freed for seconds (jemalloc's dirty
pages, 5 s decay, no background thread); `ClickHouseStore.release_freed_memory`, which serve runs
every second, hands them back to the system at once."""

from __future__ import annotations

import re

import pytest

from tracehouse.storage import ClickHouseStore

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
