"""The BreakerStore on the real store (embedded always, a server when Docker is there): per-second
deltas sum exactly per instance, a retried report does not count twice, history steps add up."""

from __future__ import annotations

import time

import pytest

from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample
from tracehouse.storage import ClickHouseStore

pytestmark = pytest.mark.integration
NOW = int(time.time()) // 60 * 60 - 60  # a whole minute, a minute or two ago


def report(instance: str, second: int, success: int, failure: int, state: str = "CLOSED") -> BreakerReport:
    sample = BreakerSample(
        kind="command",
        name="payments.charge",
        group="payments",
        second=second,
        state=state,
        counts={"success": success, "failure": failure},
        latency={150: success, 200: failure},
        latency_sum_ms=1.5 * success + 3.0 * failure,
        concurrency=1,
        max_concurrency=4,
        properties={"circuitBreakerRequestVolumeThreshold": 20, "executionIsolationStrategy": "THREAD", "x": True},
    )
    return BreakerReport("checkout", instance, "shop", (sample,))


def test_window_sums_per_instance_and_retries_do_not_double(store: ClickHouseStore) -> None:
    store.write_breakers([(report("a:1", NOW, 5, 1), "push"), (report("a:1", NOW + 1, 7, 0, "OPEN"), "push")])
    store.write_breakers([(report("b:1", NOW + 1, 3, 3), "pull")])
    store.write_breakers([(report("a:1", NOW + 1, 7, 0, "OPEN"), "push")])  # the reporter retried

    rows = store.breaker_window("shop", NOW, NOW + 10)
    assert [r.instance for r in rows] == ["a:1", "b:1"]
    a, b = rows[0].sample, rows[1].sample
    assert a.counts == {"success": 12, "failure": 1}
    assert a.latency == {150: 12, 200: 1}
    assert a.latency_sum_ms == pytest.approx(21.0)
    assert a.state == "OPEN"  # the newest second's
    assert a.second == NOW + 1
    assert a.properties == {
        "circuitBreakerRequestVolumeThreshold": 20,
        "executionIsolationStrategy": "THREAD",
        "x": True,
    }
    assert b.counts == {"success": 3, "failure": 3}
    assert rows[0].service == "checkout"

    assert store.breaker_window("shop", NOW + 1, NOW + 2, instance="a:1")[0].sample.counts == {"success": 7}
    assert store.breaker_window("shop", NOW + 2, NOW + 10) == []
    assert store.breaker_window("elsewhere", NOW, NOW + 10) == []


def test_history_steps_sum_across_instances(store: ClickHouseStore) -> None:
    store.write_breakers([(report("a:1", NOW + s, 2, 1, "OPEN" if s == 15 else "CLOSED"), "push") for s in range(20)])
    store.write_breakers([(report("b:1", NOW + s, 1, 0), "push") for s in range(0, 20, 2)])
    points = store.breaker_history("shop", "command", "payments.charge", NOW, NOW + 60, 10)
    assert [p.t for p in points] == [NOW, NOW + 10]
    assert [p.counts for p in points] == [{"success": 25, "failure": 10}] * 2
    assert [(p.hosts, p.open_hosts) for p in points] == [(2, 0), (2, 1)]
    assert store.breaker_clusters(NOW - 5)[0][:3] == ("shop", 1, 2)
