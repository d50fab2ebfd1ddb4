"""compose/: the files cannot be run here (no Docker engine), so they are checked as data — parsed
YAML, XML and nginx config — against each other and against the real CLI: services, pinned images,
published ports, each command parsed and validated by `tracehouse`'s own parser and configs, the
cluster layout (2 shards x 2 replicas, Keeper) the same in the compose file, remote_servers and macros.
The e2e cluster test (tests/e2e/test_distributed.py) runs these ClickHouse configs where Docker is."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import CLICKHOUSE_IMAGE
from tracehouse.cli import build_parser
from tracehouse.config import COLLECTOR_OPTIONS, QUERY_OPTIONS, CollectorProcessConfig, QueryProcessConfig
from tracehouse.options import resolve
from tracehouse.schema import SCHEMA_OPTIONS

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "compose"
PINNED = re.compile(r"^[a-z0-9./-]+:\d+(\.\d+)+(-[a-z0-9.-]+)?$")
CLUSTER_NODES = {"ch-s1-r1": "01", "ch-s1-r2": "01", "ch-s2-r1": "02", "ch-s2-r2": "02"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COMPOSE / name).read_text(encoding="utf-8"))
    return data


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default}, with every variable unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in (service.get("environment") or {}).items()}


def tracehouse_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s["image"].startswith("tracehouse:")}


@pytest.fixture(params=["docker-compose.yml", "docker-compose.cluster.yml"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_services_of_the_single_server_file() -> None:
    services = load("docker-compose.yml")["services"]
    assert set(services) == {"clickhouse", "schema", "collector", "query", "demo"}
    assert services["clickhouse"]["image"] == CLICKHOUSE_IMAGE


def test_services_of_the_cluster_file() -> None:
    services = load("docker-compose.cluster.yml")["services"]
    assert set(services) == {"keeper", *CLUSTER_NODES, "schema", "collector-1", "collector-2", "lb", "query", "demo"}
    assert services["keeper"]["image"] == CLICKHOUSE_IMAGE.replace("-server:", "-keeper:")
    assert services["lb"]["image"].startswith("nginx:")
    for node, shard in CLUSTER_NODES.items():
        assert services[node]["image"] == CLICKHOUSE_IMAGE
        assert services[node]["hostname"] == node
        env = environment(services[node])
        assert (env["CLICKHOUSE_SHARD"], env["CLICKHOUSE_REPLICA"]) == (shard, node)
        assert "CLICKHOUSE_PASSWORD" in env


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert PINNED.match(service["image"]), f"{name}: {service['image']} is not pinned to a version"


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host, outside, inside = port.split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[int(outside)] = (name, int(inside))
    ingest = "lb" if "lb" in compose["services"] else "collector"
    assert {p: s for p, s in published.items() if p != 8123} == {
        4317: (ingest, 4317),
        4318: (ingest, 4318),
        9411: (ingest, 9411),
        16686: ("query", 16686),
    }


def test_each_tracehouse_command_parses_and_validates(compose: dict[str, Any]) -> None:
    """Commands through the real parser, environment through the real option resolution."""
    clickhouse = {n for n, s in compose["services"].items() if s["image"].startswith("clickhouse/clickhouse-server")}
    commands = set()
    for name, service in tracehouse_services(compose).items():
        env = environment(service)
        if "entrypoint" in service:  # the demo services, sending to the collectors
            assert service["entrypoint"][-1] == "/app/compose/demo_services.py"
            assert urlparse(env["TRACEHOUSE_ENDPOINT"]).hostname in {"collector", "lb"}
            continue
        args = build_parser().parse_args(service["command"])
        commands.add(args.command)
        config: CollectorProcessConfig | QueryProcessConfig | None = None
        if args.command == "collector":
            config = CollectorProcessConfig.from_values(resolve(args, COLLECTOR_OPTIONS, env))
        elif args.command == "query":
            config = QueryProcessConfig.from_values(resolve(args, QUERY_OPTIONS, env))
        else:
            assert (args.command, args.action) == ("schema", "apply")
            assert resolve(args, SCHEMA_OPTIONS, env)["clickhouse"] == env["TRACEHOUSE_CLICKHOUSE"]
        if config is not None:
            config.validate()
            assert config.store.database == "tracehouse"
        assert urlparse(env["TRACEHOUSE_CLICKHOUSE"]).hostname in clickhouse, name
    assert commands == {"schema", "collector", "query"}


def test_start_order_waits_for_the_schema(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in tracehouse_services(compose).items():
        command = service.get("command") or []
        if command[:1] in (["collector"], ["query"]):
            assert service["depends_on"]["schema"] == {"condition": "service_completed_successfully"}, name
    schema = services["schema"]
    assert schema["restart"] == "no"
    for dependency, condition in schema["depends_on"].items():
        assert condition == {"condition": "service_healthy"}
        assert "healthcheck" in services[dependency]


def test_the_cluster_file_applies_the_schema_on_its_cluster() -> None:
    services = load("docker-compose.cluster.yml")["services"]
    assert services["schema"]["command"] == ["schema", "apply", "--cluster", "tracehouse"]
    hosts = {
        urlparse(environment(services[c])["TRACEHOUSE_CLICKHOUSE"]).hostname for c in ("collector-1", "collector-2")
    }
    assert {CLUSTER_NODES[h] for h in hosts} == {"01", "02"}  # one writes through each shard


def test_cluster_configuration_matches_the_compose_nodes() -> None:
    config = ET.parse(COMPOSE / "clickhouse" / "cluster.xml").getroot()
    (cluster,) = config.find("remote_servers") or []
    assert cluster.tag == "tracehouse"
    layout = {}
    for number, shard in enumerate(cluster.findall("shard"), 1):
        assert shard.findtext("internal_replication") == "true"
        hosts = [replica.findtext("host") for replica in shard.findall("replica")]
        for replica in shard.findall("replica"):
            assert replica.findtext("port") == "9000"
            assert replica.find("user").get("from_env") == "CLICKHOUSE_USER"  # type: ignore[union-attr]
            assert replica.find("password").get("from_env") == "CLICKHOUSE_PASSWORD"  # type: ignore[union-attr]
        layout[f"{number:02d}"] = hosts
    assert layout == {"01": ["ch-s1-r1", "ch-s1-r2"], "02": ["ch-s2-r1", "ch-s2-r2"]}
    assert {h: s for s, hosts in layout.items() for h in hosts} == CLUSTER_NODES
    assert config.findtext("zookeeper/node/host") == "keeper"
    assert config.findtext("zookeeper/node/port") == "9181"
    macros = ET.parse(COMPOSE / "clickhouse" / "macros.xml").getroot()
    assert {m.tag: m.get("from_env") for m in macros.find("macros")} == {  # type: ignore[union-attr]
        "shard": "CLICKHOUSE_SHARD",
        "replica": "CLICKHOUSE_REPLICA",
    }
    keeper = ET.parse(COMPOSE / "clickhouse" / "keeper.xml").getroot()
    assert keeper.findtext("keeper_server/tcp_port") == "9181"
    assert keeper.findtext("keeper_server/raft_configuration/server/hostname") == "keeper"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).is_file(), f"{name} mounts missing {source}"


def test_the_load_balancer_spreads_over_every_collector() -> None:
    services = load("docker-compose.cluster.yml")["services"]
    collectors = sorted(n for n, s in services.items() if s.get("command") == ["collector"])
    assert collectors == ["collector-1", "collector-2"]
    conf = (COMPOSE / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    upstreams = dict(re.findall(r"upstream (\w+) \{([^}]*)\}", conf))
    for upstream, port in (("otlp_grpc", 4317), ("otlp_http", 4318), ("zipkin", 9411)):
        assert re.findall(r"server ([\w-]+):(\d+);", upstreams[upstream]) == [(c, str(port)) for c in collectors]
    assert re.findall(r"listen (\d+);", conf) == ["4317", "4318", "9411"]
    assert "grpc_pass grpc://otlp_grpc;" in conf
    assert set(services["lb"]["depends_on"]) == set(collectors)


def test_the_image_installs_every_package_folder() -> None:
    dockerfile = (COMPOSE / "Dockerfile").read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, flags=re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.M))
    assert copied == folders
    ignore = (COMPOSE / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert {line[1:] for line in ignore if line.startswith("!")} >= folders | {"pyproject.toml", "README.md"}
    assert 'ENTRYPOINT ["tracehouse"]' in dockerfile
    assert "COPY compose/demo_services.py compose/demo_services.py" in dockerfile
