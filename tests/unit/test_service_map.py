"""The service map's graph as Cytoscape elements (sizes, colours, badges, edge labels, isolated
services) and the traces page an edge opens."""

from __future__ import annotations

from typing import Any

from tracehouse.dashboard.pages.service_map import edge_traces, elements

GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "front", "kind": "service"},
        {"id": "back", "kind": "service"},
        {"id": "pg", "kind": "database"},
        {"id": "cron", "kind": "service"},
    ],
    "edges": [
        {
            "parent": "front",
            "child": "back",
            "calls": 360,
            "rate": 0.1,
            "errors": 36,
            "errorRate": 0.1,
            "p99Nano": 12_500_000,
        },
        {
            "parent": "back",
            "child": "pg",
            "calls": 90,
            "rate": 0.025,
            "errors": 0,
            "errorRate": 0.0,
            "p99Nano": 800_000,
        },
    ],
}


def test_every_node_is_there_isolated_ones_too() -> None:
    nodes = {e["data"]["id"]: e["data"] for e in elements(GRAPH, {"back": 2}) if "source" not in e["data"]}
    assert set(nodes) == {"front", "back", "pg", "cron"}
    assert nodes["cron"]["size"] == nodes["front"]["size"] == 30  # nothing calls them
    assert nodes["back"]["size"] == 70 > nodes["pg"]["size"] > 30  # the busiest callee is the largest
    assert (nodes["back"]["colour"], nodes["pg"]["colour"], nodes["front"]["colour"]) == (
        "#e15759",
        "#59a14f",
        "#4e79a7",
    )
    assert nodes["back"]["label"] == "back  ⚠ 2 open"
    assert nodes["back"]["borderWidth"] == 4
    assert nodes["pg"]["shape"] == "barrel"


def test_edges_say_calls_per_second_errors_and_p99() -> None:
    edges = [e["data"] for e in elements(GRAPH, None) if "source" in e["data"]]
    assert [(e["source"], e["target"], e["kind"], e["label"]) for e in edges] == [
        ("front", "back", "service", "0.1 calls/s, 10.0% err, p99 12.5 ms"),
        ("back", "pg", "database", "0.025 calls/s, 0.0% err, p99 800 µs"),
    ]
    quiet = {**GRAPH, "edges": [{**GRAPH["edges"][0], "calls": 3, "rate": 3 / 900}]}
    label = next(e["data"]["label"] for e in elements(quiet, None) if "source" in e["data"])
    assert label.startswith("3 calls/15 min")


def test_an_edge_opens_the_traces_of_its_calls() -> None:
    service = {"source": "front", "target": "back", "kind": "service"}
    database = {"source": "back", "target": "pg", "kind": "database"}
    assert edge_traces(service, "?lookback=6h") == "/?service=back&parentService=front&lookback=6h"
    assert edge_traces(database, "") == "/?service=back&peer=pg&lookback=1h"


def test_a_queue_named_like_a_service_is_searched_by_its_name() -> None:
    graph = {
        "nodes": [
            {"id": "orders", "name": "orders", "kind": "service"},
            {"id": "orders (queue)", "name": "orders", "kind": "queue"},
            {"id": "worker", "name": "worker", "kind": "service"},
        ],
        "edges": [
            {"parent": "orders", "parentKind": "service", "child": "orders (queue)", "childKind": "queue",
             "calls": 5, "rate": 0.1, "errors": 0, "errorRate": 0.0, "p99Nano": 1_000},
            {"parent": "orders (queue)", "parentKind": "queue", "child": "worker", "childKind": "service",
             "calls": 5, "rate": 0.1, "errors": 0, "errorRate": 0.0, "p99Nano": 1_000},
        ],
    }  # fmt: skip
    produce, consume = (e["data"] for e in elements(graph) if "source" in e["data"])
    assert edge_traces(produce, "") == "/?service=orders&peer=orders&lookback=1h"
    assert edge_traces(consume, "") == "/?service=worker&peer=orders&lookback=1h"
