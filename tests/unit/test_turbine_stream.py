"""``/turbine.stream`` and ``/api/v1/breakers`` over time: the window never shows a second whose
reports may still be arriving, and a breaker no longer reported gets the delete event that makes the
Hystrix Dashboard drop its tile, once."""

from __future__ import annotations

import json
from typing import Any

from tracehouse.instrumentation.breakers.wire import BreakerSample
from tracehouse.query.breakers import _frame, window_bounds
from tracehouse.storage.breakers import InstanceWindow

S = 1_700_000_000


def test_the_window_ends_at_the_last_second_whose_reports_have_arrived() -> None:
    # 0.3 s into second S the reports of S - 1 are still on their way: S - 2 is the last one shown.
    assert window_bounds(S + 0.3, 10) == (S - 11, S - 1)
    # Later in the second they have arrived: S - 1 is in, and the window still spans 10 seconds.
    assert window_bounds(S + 0.6, 10) == (S - 10, S)
    assert window_bounds(S + 0.99, 60) == (S - 60, S)
    # Never the running second, nor one of the first half of a second after it ended.
    for tenth in range(10):
        start, end = window_bounds(S + tenth / 10, 10)
        assert end <= S - (1 if tenth < 5 else 0)
        assert end - start == 10


def row(name: str, kind: str = "command", instance: str = "a:1") -> InstanceWindow:
    sample = BreakerSample(kind=kind, name=name, group="g", second=S, counts={"success": 4})
    return InstanceWindow(instance, "svc", sample)


def events(frame: bytes) -> list[dict[str, Any]]:
    return [json.loads(part.removeprefix(b"data: ")) for part in frame.split(b"\n\n") if part.startswith(b"data: ")]


def test_a_breaker_gone_from_the_window_is_deleted_once() -> None:
    first, shown = _frame([row("orders.pay"), row("orders.stock c"), row("orders", "threadpool")], 10, set())
    assert {e["name"] for e in events(first)} == {"orders.pay", "orders.stock c", "orders"}
    assert not any("deleteData" in e for e in events(first))

    second, shown = _frame([row("orders.pay")], 10, shown)
    deletes = [e for e in events(second) if e.get("deleteData") == "true"]
    # What hystrixCommand.js removes: '#CIRCUIT_' + escapedName (its own escaping, with and without
    # the stream index of dashboards that number their streams); the thread pool's tile likewise.
    assert deletes == [
        {
            "type": "HystrixCommand",
            "name": "orders.stock c",
            "escapedName": "orders\\.stock\\ c_0",
            "deleteData": "true",
        },
        {"type": "HystrixCommand", "name": "orders.stock c", "escapedName": "orders\\.stock\\ c", "deleteData": "true"},
        {"type": "HystrixThreadPool", "name": "orders", "escapedName": "orders_0", "deleteData": "true"},
        {"type": "HystrixThreadPool", "name": "orders", "escapedName": "orders", "deleteData": "true"},
    ]
    assert [e["name"] for e in events(second) if "deleteData" not in e] == ["orders.pay"]

    third, shown = _frame([row("orders.pay")], 10, shown)  # once: not again
    assert [e["name"] for e in events(third)] == ["orders.pay"]

    fourth, shown = _frame([], 10, shown)  # the last one goes too, instead of a bare ping
    assert [(e["name"], e["deleteData"]) for e in events(fourth)] == [("orders.pay", "true")] * 2
    assert _frame([], 10, shown) == (b"ping: \n\n", set())
