"""Rates over a range are over the seconds their services have sent spans (query/views.py)."""

from __future__ import annotations

import pytest

from tracehouse.query.views import covered_seconds, dependencies_json
from tracehouse.storage import Dependencies, DependencyLink

MINUTE_NS = 60 * 10**9
START_NS = 1_700_000_000 // 60 * 60 * 10**9  # a whole minute
HOUR_NS = 60 * MINUTE_NS


def link(parent: str, child: str, kind: str = "service", calls: int = 600) -> DependencyLink:
    return DependencyLink(calls=calls, errors=0, p50_ns=1.0, p95_ns=1.0, p99_ns=1.0, parent=parent, child=child,
                          child_kind=kind)  # fmt: skip


def test_the_seconds_run_from_the_services_first_minute_to_the_earlier_of_end_and_now() -> None:
    first_s = (START_NS + 50 * MINUTE_NS) // 10**9
    assert covered_seconds(START_NS, START_NS + HOUR_NS, START_NS + 2 * HOUR_NS, first_s) == 600
    assert covered_seconds(START_NS, START_NS + HOUR_NS, START_NS + 55 * MINUTE_NS, first_s) == 300
    assert covered_seconds(START_NS, START_NS + HOUR_NS, START_NS + 2 * HOUR_NS, None) == 3600
    assert covered_seconds(START_NS, START_NS + HOUR_NS, START_NS, first_s) == 1  # at least a second


def test_an_edge_is_rated_over_its_later_service_and_a_queue_is_not_the_service_of_its_name() -> None:
    new_s = (START_NS + 50 * MINUTE_NS) // 10**9  # "billing", the service, started 10 minutes ago
    found = Dependencies(
        services=("billing", "legacy"),
        links=(link("legacy", "billing"), link("legacy", "billing", kind="queue")),
        since_s={"billing": new_s, "legacy": START_NS // 10**9},
    )
    edges = dependencies_json(found, START_NS, START_NS + HOUR_NS, START_NS + HOUR_NS)["edges"]
    rates = {edge["child"]: edge["rate"] for edge in edges}
    assert rates["billing"] == pytest.approx(600 / 600)  # both services: since billing's first minute
    assert rates["billing (queue)"] == pytest.approx(600 / 3600)  # the queue: legacy's whole hour


def test_an_edge_is_rated_up_to_where_the_linker_has_read_not_to_now() -> None:
    # The linker runs once a minute: calls of the last minute are not links yet. Before, they were
    # counted in the seconds but not in the calls (a 2-minute-old service's edges at half rate).
    first_s = (START_NS + 50 * MINUTE_NS) // 10**9
    linked_until_s = first_s + 300  # 5 of the 10 minutes since the first linked
    found = Dependencies(
        services=("billing", "legacy"),
        links=(link("legacy", "billing"),),
        since_s={"billing": first_s, "legacy": first_s},
        linked_until_s=linked_until_s,
    )
    (edge,) = dependencies_json(found, START_NS, START_NS + HOUR_NS, START_NS + HOUR_NS)["edges"]
    assert edge["rate"] == pytest.approx(600 / 300)
    everything_linked = Dependencies(found.services, found.links, found.since_s)
    (edge,) = dependencies_json(everything_linked, START_NS, START_NS + HOUR_NS, START_NS + HOUR_NS)["edges"]
    assert edge["rate"] == pytest.approx(600 / 600)
