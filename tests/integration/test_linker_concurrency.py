"""Several collectors link the same minutes with no leader: every interleaving of two linker
generations' statements, from two clients, must leave — and show at every step — exactly the
links one linking leaves (storage/linker.py explains why it holds)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from tests.integration.test_dependencies import MINUTE_NS, T0, edges, split_trace
from tests.integration.test_search import MS, S, add_trace
from tracehouse.storage import ClickHouseStore, SpanBatch
from tracehouse.storage.client import connect
from tracehouse.storage.linker import GENERATION, SETTINGS, generation_parameters, link_minutes, new_version

pytestmark = pytest.mark.integration

STEPS = len(GENERATION)
#: Which generation runs its next statement: every way to interleave two runs of STEPS statements.
INTERLEAVINGS = sorted(set(itertools.permutations("A" * STEPS + "B" * STEPS)))


@pytest.fixture
def collectors(store: ClickHouseStore) -> Iterator[tuple[Client, Client]]:
    """Two clients of their own, as two collector processes would have."""
    pair = (connect(store.config), connect(store.config))
    yield pair
    for client in pair:
        client.close()


def traffic(store: ClickHouseStore) -> None:
    """Calls over three minutes, the two sides of each in separate inserts, plus a database."""
    for minute in range(3):
        split_trace(store, T0 + minute * MINUTE_NS + 5000 * MS, 0, error=minute == 1)
    batch = SpanBatch()
    add_trace(batch, T0 + MINUTE_NS, [
        S("orders", "POST /orders", 0, 20, None, kind="Server"),
        S("orders", "INSERT orders", 1, 5, 0, {"db.system": "sqlite", "db.name": "orders.db"}, kind="Client"),
    ])  # fmt: skip
    store.write(batch)


def test_every_interleaving_of_two_linkers_reads_as_one_linking(
    store: ClickHouseStore, collectors: tuple[Client, Client]
) -> None:
    """A links minutes 0-1, B minutes 1-2: minute 1 is linked by both, the others by one."""
    a_minutes, b_minutes = (0, 2), (1, 3)
    traffic(store)
    link_minutes(store.client(), T0, T0 + 3 * MINUTE_NS)
    expected = edges(store)
    per_minute = [edges(store, T0 + m * MINUTE_NS, T0 + (m + 1) * MINUTE_NS) for m in range(3)]
    assert expected == {("gateway", "orders", "service"): (3, 1), ("orders", "orders.db", "database"): (1, 0)}

    for order in INTERLEAVINGS:
        # Versions rise from one interleaving to the next; within one, B's is the newer: the
        # older generation finishing last is the case that must not win.
        a, b = new_version(), new_version() + 1000
        params = {
            "A": generation_parameters(T0 + a_minutes[0] * MINUTE_NS, T0 + a_minutes[1] * MINUTE_NS, a),
            "B": generation_parameters(T0 + b_minutes[0] * MINUTE_NS, T0 + b_minutes[1] * MINUTE_NS, b),
        }
        client = {"A": collectors[0], "B": collectors[1]}
        done = {"A": 0, "B": 0}
        for who in order:
            client[who].command(GENERATION[done[who]], parameters=params[who])
            done[who] += 1
            assert edges(store) == expected, f"after {''.join(order)[: sum(done.values())]}"
        assert [edges(store, T0 + m * MINUTE_NS, T0 + (m + 1) * MINUTE_NS) for m in range(3)] == per_minute


def test_versions_of_one_process_rise_and_carry_its_salt() -> None:
    versions = [new_version() for _ in range(1000)]
    assert versions == sorted(versions)
    assert len({v % 1000 for v in versions}) == 1


def test_shutdown_cancels_the_running_linker_statement(store: ClickHouseStore) -> None:
    """At full ingest one linker statement can run for minutes; `cancel_linking` (called while
    serve and the collector shut down) ends it at once, and leaves other queries alone. The
    statement is run as the linker runs its own: an INSERT ... SELECT with bound parameters and
    `linker.SETTINGS` (a comment mark was lost in the engine's re-formatted text of such a
    statement, and a shutdown at full ingest waited for the statement to end)."""
    client = connect(store.config)
    other = connect(store.config)
    endless = """
        INSERT INTO tracehouse_links_1m
        SELECT toDateTime(0), 'a', 'b', 'service', count(), 0,
               quantilesTDigestState(0.5, 0.95, 0.99)(toUInt64(0)), {version:UInt64}
        FROM numbers({rows:UInt64}) WHERE NOT ignore(sipHash64(number))
    """
    params = {"version": 1, "rows": 100_000_000_000}
    outcome: dict[str, BaseException | None] = {}

    def run(name: str, target: Client, settings: dict[str, str]) -> None:
        try:
            target.command(endless, parameters=params, settings=settings)
            outcome[name] = None
        except BaseException as exc:  # recorded for the assertions below
            outcome[name] = exc

    linker = threading.Thread(target=run, args=("linker", client, SETTINGS))
    unrelated = threading.Thread(target=run, args=("other", other, {"max_execution_time": "3"}))
    try:
        linker.start()
        unrelated.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = store.client().command("SELECT count() FROM system.processes WHERE query LIKE '%sipHash64%'")
            if int(running) >= 3:  # the two, and this count itself
                break
            time.sleep(0.05)
        store.cancel_linking()
        linker.join(10)
        assert not linker.is_alive()
        assert "QUERY_WAS_CANCELLED" in str(outcome["linker"])
        assert unrelated.is_alive() or "TIMEOUT" in str(outcome.get("other"))  # not cancelled by it
    finally:
        unrelated.join(30)
        client.close()
        other.close()
    assert "QUERY_WAS_CANCELLED" not in str(outcome["other"])
