"""Distributed mode end to end: `tracehouse schema apply`, two `tracehouse collector` processes and a
`tracehouse query` against a real ClickHouse server (testcontainers, the official image) — and
against a cluster of 2 shards x 2 replicas with ClickHouse Keeper built from compose/clickhouse/.
Skipped, with the reason, where no Docker engine answers. Spans of one trace go through different
collectors; the query process reads them back, and the linker (in both collectors) links them."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest
from opentelemetry import trace as otel
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from tests.conftest import CLICKHOUSE_IMAGE, docker_engine_problem
from tests.e2e.server import Server, start_tracehouse
from tests.e2e.test_serve import assert_trace, make_trace
from tracehouse.storage.migrate import latest_version

pytestmark = pytest.mark.e2e

COMPOSE = Path(__file__).parents[2] / "compose"
KEEPER_IMAGE = "clickhouse/clickhouse-keeper:25.8"
DEADLINE = 90.0


def tracehouse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracehouse", *args], capture_output=True, text=True, timeout=300, check=False
    )


def start_collector(dsn: str, data_dir: Path) -> Server:
    return start_tracehouse(
        "collector", "--clickhouse", dsn, "--data-dir", str(data_dir), "--otlp-http-port", "0",
        "--otlp-grpc-port", "0", "--zipkin-port", "0", "--flush-interval", "0.05", "--link-interval", "0.5",
    )  # fmt: skip


def start_query(dsn: str) -> Server:
    return start_tracehouse("query", "--clickhouse", dsn, "--ui-port", "0")


def split_trace(front: SpanExporter, back: SpanExporter) -> str:
    """front calls back, each service exporting to its own collector; returns the trace id."""
    providers = {}
    for name, exporter in (("front", front), ("back", back)):
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers[name] = provider
    tracer = providers["front"].get_tracer("e2e")
    back = providers["back"].get_tracer("e2e")
    with (
        tracer.start_as_current_span("GET /", kind=otel.SpanKind.SERVER) as root,
        tracer.start_as_current_span("call back", kind=otel.SpanKind.CLIENT),
        back.start_as_current_span("handle", kind=otel.SpanKind.SERVER),
    ):
        pass
    for provider in providers.values():
        provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def wait_for_edge(query: Server, parent: str, child: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        graph = query.api("/api/v1/dependencies").json()
        edges = {(e["parent"], e["child"]): e for e in graph.get("edges", [])}
        if (parent, child) in edges:
            return edges[(parent, child)]
        time.sleep(0.5)
    raise AssertionError(f"no {parent} -> {child} edge within {DEADLINE} s: {graph}")


def wait_for_trace(query: Server, trace_id: str, spans: int) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        response = query.api(f"/api/v1/traces/{trace_id}")
        if response.status_code == 200 and response.json()["spanCount"] == spans:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"trace {trace_id} did not reach {spans} spans: {response.text}")


def round_trip(collector_dsns: list[str], query_dsn: str, tmp_path: Path) -> list[str]:
    """Two collectors and a query process over `collector_dsns` / `query_dsn`; returns trace ids."""
    collectors = [start_collector(dsn, tmp_path / f"collector-{n}") for n, dsn in enumerate(collector_dsns)]
    query = start_query(query_dsn)
    try:
        one, two = collectors
        for collector in collectors:
            health = httpx.get(f"{collector.otlp_http}/healthz", timeout=10).json()
            assert (health["status"], health["schemaVersion"]) == ("ok", latest_version())
        assert query.api("/healthz").json()["schemaVersion"] == latest_version()
        by_http = make_trace(HttpExporter(endpoint=f"{one.otlp_http}/v1/traces"), "web")
        by_grpc = make_trace(GrpcExporter(endpoint=two.otlp_grpc, insecure=True), "worker")
        split = split_trace(
            HttpExporter(endpoint=f"{one.otlp_http}/v1/traces"), HttpExporter(endpoint=f"{two.otlp_http}/v1/traces")
        )
        for trace_id, service in ((by_http, "web"), (by_grpc, "worker")):
            wait_for_trace(query, trace_id, 3)
            assert_trace(query, trace_id, service)
        assert {s["serviceName"] for s in wait_for_trace(query, split, 3)["spans"]} == {"front", "back"}
        edge = wait_for_edge(query, "front", "back")
        assert (edge["calls"], edge["errors"]) == (1, 0)  # both linkers ran it: still one call
        assert {"web", "worker", "front", "back"} <= set(query.api("/api/v1/services").json()["services"])
    finally:
        codes = [server.stop() for server in (*collectors, query)]
    assert codes == [0, 0, 0], "\n\n".join(server.text() for server in (*collectors, query))
    return [by_http, by_grpc, split]


def test_collector_and_query_against_a_clickhouse_server(clickhouse_server: str, tmp_path: Path) -> None:
    dsn = f"{clickhouse_server}/th_{uuid.uuid4().hex[:8]}"
    refused = tracehouse("collector", "--clickhouse", dsn, "--data-dir", str(tmp_path / "early"))
    assert refused.returncode == 1
    assert "has schema version 0" in refused.stderr
    assert "tracehouse schema apply" in refused.stderr

    applied = tracehouse("schema", "apply", "--clickhouse", dsn)
    assert applied.returncode == 0, applied.stderr
    assert f"({latest_version()} migration(s) applied now)" in applied.stdout
    again = tracehouse("schema", "apply", "--clickhouse", dsn)
    assert again.stdout.splitlines()[-1] == f"schema: version {latest_version()} (nothing to apply)"

    round_trip([dsn, dsn], dsn, tmp_path)


# -- a cluster: 2 shards x 2 replicas + Keeper, from the compose configuration ---------------

NODES = {"ch-s1-r1": "01", "ch-s1-r2": "01", "ch-s2-r1": "02", "ch-s2-r2": "02"}
USER = PASSWORD = "tracehouse"


@pytest.fixture(scope="module")
def clickhouse_cluster() -> Iterator[dict[str, str]]:
    """Base URL (http://user:pass@host:port) of each node of compose/'s `tracehouse` cluster."""
    problem = docker_engine_problem()
    if problem:
        pytest.skip(f"ClickHouse-cluster tier needs a Docker engine: {problem}")
    from testcontainers.community.clickhouse import ClickHouseContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    config = COMPOSE / "clickhouse"
    with Network() as network:
        keeper = (
            DockerContainer(KEEPER_IMAGE)
            .with_network(network)
            .with_network_aliases("keeper")
            .with_kwargs(hostname="keeper")
            .with_volume_mapping(str(config / "keeper.xml"), "/etc/clickhouse-keeper/keeper_config.xml", "ro")
        )
        nodes = {
            name: ClickHouseContainer(CLICKHOUSE_IMAGE, username=USER, password=PASSWORD, dbname="default")
            .with_network(network)
            .with_network_aliases(name)
            .with_kwargs(hostname=name)
            .with_env("CLICKHOUSE_SHARD", shard)
            .with_env("CLICKHOUSE_REPLICA", name)
            .with_volume_mapping(str(config / "cluster.xml"), "/etc/clickhouse-server/config.d/tracehouse-cluster.xml")
            .with_volume_mapping(str(config / "macros.xml"), "/etc/clickhouse-server/config.d/tracehouse-macros.xml")
            for name, shard in NODES.items()
        }
        with keeper:
            started = []
            try:
                for node in nodes.values():
                    started.append(node.start())
                urls = {
                    name: f"http://{USER}:{PASSWORD}@{node.get_container_host_ip()}:{node.get_exposed_port(8123)}"
                    for name, node in nodes.items()
                }
                _wait_for_keeper(urls["ch-s1-r1"])
                yield urls
            finally:
                for node in started:
                    node.stop()


def _wait_for_keeper(url: str) -> None:
    client = clickhouse_connect.get_client(dsn=url)
    deadline = time.monotonic() + DEADLINE
    try:
        while True:
            try:
                client.query("SELECT count() FROM system.zookeeper WHERE path = '/'")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        client.close()


def test_collectors_and_query_against_a_two_shard_cluster(clickhouse_cluster: dict[str, str], tmp_path: Path) -> None:
    dsn = {name: f"{url}/tracehouse" for name, url in clickhouse_cluster.items()}
    applied = tracehouse("schema", "apply", "--clickhouse", dsn["ch-s1-r1"], "--cluster", "tracehouse")
    assert applied.returncode == 0, applied.stderr
    assert "on cluster tracehouse" in applied.stdout
    again = tracehouse("schema", "apply", "--clickhouse", dsn["ch-s2-r2"], "--cluster", "tracehouse")
    assert again.stdout.splitlines()[-1] == f"schema: version {latest_version()} (nothing to apply)", again.stderr

    # Writes through a node of each shard, reads through a replica neither collector uses.
    trace_ids = round_trip([dsn["ch-s1-r1"], dsn["ch-s2-r1"]], dsn["ch-s1-r2"], tmp_path)

    # Every node reads the whole cluster through the Distributed table; each trace's spans sit on
    # the one shard cityHash64(TraceId) picks, on both of its replicas.
    spans = {name: _spans_by_trace(url, trace_ids) for name, url in clickhouse_cluster.items()}
    for trace_id in trace_ids:
        shard = _shard_of(clickhouse_cluster["ch-s1-r1"], trace_id)
        for name in NODES:
            assert spans[name]["all"] == {t: 3 for t in trace_ids}, name
            assert spans[name]["local"].get(trace_id, 0) == (3 if NODES[name] == shard else 0), (name, trace_id)


def _spans_by_trace(url: str, trace_ids: list[str]) -> dict[str, dict[str, int]]:
    """Spans per trace in the node's local table and through the Distributed table, once the
    node's replica has caught up (replication is asynchronous)."""
    client = clickhouse_connect.get_client(dsn=url)
    sql = "SELECT TraceId, count() FROM tracehouse.{t:Identifier} WHERE TraceId IN {ids:Array(String)} GROUP BY TraceId"
    try:
        client.command("SYSTEM SYNC REPLICA tracehouse.otel_traces_local")
        found = {}
        for table in ("otel_traces_local", "otel_traces"):
            rows = client.query(sql, parameters={"t": table, "ids": trace_ids}).result_rows
            found["local" if table.endswith("_local") else "all"] = {t: int(n) for t, n in rows}
        return found
    finally:
        client.close()


def _shard_of(url: str, trace_id: str) -> str:
    """The shard the Distributed tables send a trace to: cityHash64(TraceId) % 2 (weights 1, 1)."""
    client = clickhouse_connect.get_client(dsn=url)
    try:
        remainder = int(client.command("SELECT cityHash64({t:String}) % 2", parameters={"t": trace_id}))
    finally:
        client.close()
    return "01" if remainder == 0 else "02"
