"""`tracehouse demo` end to end, on real processes: the server and six services launched by
tracehouse-run (no tracing code in them) reach the store; the dependency graph has every call,
with the SQLite databases and the job queue as nodes; the scripted fault opens a breaker and the
recovery closes it; and after Ctrl-C, SIGTERM or --duration no process the demo started is left.

One demo runs for the module, with a short fault cycle and a high rate so a whole scenario fits in
well under a minute; every wait polls the running server's API against a deadline."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import tracehouse.demo
from tests.e2e.server import start_server

pytestmark = pytest.mark.e2e

T = TypeVar("T")
SERVICES = {"gateway", "orders", "inventory", "payments", "fraud", "worker"}
FAULT_CYCLE = 20  # s: payments healthy 5 s, slow 5 s, failing 4 s, recovering 6 s
READY_TIMEOUT = 240.0
SERVICE_SOURCES = ("service.py", "worker.py", "database.py")
DEMO_SOURCES = Path(tracehouse.demo.__file__).parent


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    ui: str = ""
    trace_id: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    pump: threading.Thread | None = None
    seen: set[int] = field(default_factory=set)  # every process ever seen below the demo

    def below(self) -> set[int]:
        """The processes below the demo now (and remembered, for the clean-up)."""
        found = descendants(self.proc.pid)
        self.seen |= found
        return found

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.ui}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def text(self) -> str:
        return "\n".join(self.output)

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        """Read output lines until one matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the demo exited ({self.proc.poll()}) before {pattern!r}:\n{self.text()}")
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no {pattern!r} from the demo within {timeout:g} s:\n{self.text()}")


def start_demo(data: Path, *extra: str) -> Demo:
    command = [sys.executable, "-m", "tracehouse", "demo", "--data-dir", str(data), "--ui-port", "0",
               "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--zipkin-port", "0", *extra]  # fmt: skip
    demo = Demo(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    demo.pump = threading.Thread(target=_pump, args=(demo,), daemon=True)
    demo.pump.start()
    return demo


def _pump(demo: Demo) -> None:
    assert demo.proc.stdout is not None
    for line in demo.proc.stdout:
        demo.output.append(line.rstrip("\n"))
        demo.lines.put(line)
    demo.lines.put(None)


def read_startup(demo: Demo) -> None:
    """Wait for the announcement, noting every ready process's pid, the UI and the first trace."""
    while len(demo.pids) < 1 + len(SERVICES):
        match = demo.wait_for(r"^\s+ready\s+(.+?)\s+pid (\d+)")
        demo.pids[match[1]] = int(match[2])
    demo.ui = demo.wait_for(r"Tracehouse demo is running\. Open (http://\S+)/$")[1]
    demo.trace_id = demo.wait_for(r"/trace/([0-9a-f]{32})")[1]
    demo.wait_for(r"Press Ctrl-C to stop")


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.5)


# --- processes ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        if (stat := _stat(pid)) is not None:
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pids: set[int], sessions: set[int]) -> set[int]:
    """Which of ``pids``, or of any process in one of ``sessions``, still runs (zombies are gone)."""
    alive = set()
    for pid in pids | set(_all_pids()):
        stat = _stat(pid)
        if stat is not None and stat[0] != "Z" and (pid in pids or stat[2] in sessions):
            alive.add(pid)
    return alive


def assert_all_gone(pids: set[int], sessions: set[int]) -> None:
    eventually(lambda: True if not running(pids, sessions) else None, 10, "processes left behind")


def stop_leftovers(demo: Demo) -> None:
    """Safety net for a failing test: kill the demo and whatever it left, then close its pipe."""
    known = set(demo.pids.values()) | demo.seen
    for pid in running(known | {demo.proc.pid}, sessions=known):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    demo.proc.wait(30)
    if demo.pump is not None:
        demo.pump.join(30)
    if demo.proc.stdout is not None and not (demo.pump and demo.pump.is_alive()):
        demo.proc.stdout.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    extra = ("--rate", "20", "--fault-cycle", str(FAULT_CYCLE), "--link-interval", "1", "--duration", "300")
    running_demo = start_demo(tmp_path_factory.mktemp("demo"), *extra)
    try:
        read_startup(running_demo)
        yield running_demo
    finally:
        stop_leftovers(running_demo)


# --- the running demo -----------------------------------------------------------------------


def test_starts_the_server_and_six_services_each_through_tracehouse_run(demo: Demo) -> None:
    assert set(demo.pids) == {"tracehouse serve"} | SERVICES
    assert len(set(demo.pids.values())) == 7
    for name in SERVICES:
        environ = _environ(demo.pids[name])
        # What tracehouse-run sets before it execs the service: the distro and the service's name.
        assert environ.get("OTEL_PYTHON_DISTRO") == "tracehouse", name
        assert environ.get("TRACEHOUSE_SERVICE_NAME") == name
        assert "auto_instrumentation" in environ["PYTHONPATH"].split(os.pathsep)[0]
    # The gateway's uvicorn workers: grandchildren of the demo, traced as instances of the gateway.
    workers = eventually(lambda: w if len(w := descendants(demo.pids["gateway"])) >= 2 else None, 60, "workers")
    assert all(_environ(pid).get("TRACEHOUSE_SERVICE_NAME") == "gateway" for pid in workers)
    for source in SERVICE_SOURCES:
        assert "opentelemetry" not in (DEMO_SOURCES / source).read_text(), f"{source} has tracing code"
    assert re.search(r"Breakers wall\s+http://\S+/breakers", demo.text())
    assert re.search(r"Service map\s+http://\S+/map", demo.text())


def test_every_service_reaches_the_store(demo: Demo) -> None:
    eventually(lambda: True if set(demo.api("/api/v1/services")["services"]) >= SERVICES else None, 60, "every service")


def test_a_request_is_one_trace_through_services_database_and_queue(demo: Demo) -> None:
    def announced_trace() -> dict[str, Any] | None:
        spans = demo.api(f"/api/v1/traces/{demo.trace_id}")["spans"] if _exists(demo, demo.trace_id) else []
        # Each service exports on its own schedule: wait for the publish span too (it ends last).
        complete = {"gateway", "orders", "inventory", "payments", "fraud"} <= _services(spans)
        return {"spans": spans} if complete and any(s["kind"] == "Producer" for s in spans) else None

    spans = eventually(announced_trace, 60, "the announced trace across five services, with its publish span")["spans"]
    database = [s for s in spans if s["kind"] == "Client" and s["attributes"].get("db.system") == "sqlite"]
    assert {s["serviceName"] for s in database} == {"inventory"}
    assert database[0]["attributes"].get("db.name") == "inventory.db"
    publish = [s for s in spans if s["kind"] == "Producer"]
    assert [(s["serviceName"], s["name"]) for s in publish] == [("orders", "publish shipments")]
    assert publish[0]["attributes"]["messaging.system"] == "jobqueue"
    assert publish[0]["attributes"]["messaging.destination.name"] == "shipments"

    # The worker's handling is a trace of its own, linked to the publishing span by the context
    # that travelled in the job.
    def linked_consumer() -> dict[str, Any] | None:
        for found in demo.api("/api/v1/traces", service="worker", limit="20")["traces"]:
            for span in demo.api(f"/api/v1/traces/{found['traceId']}")["spans"]:
                if span["kind"] == "Consumer" and span["links"]:
                    return span
        return None

    consumer = eventually(linked_consumer, 60, "a worker CONSUMER span with a link")
    assert consumer["name"] == "process shipments"
    assert consumer["attributes"]["messaging.destination.name"] == "shipments"
    link = consumer["links"][0]
    producer = eventually(lambda: _span(demo, link["traceId"], link["spanId"]), 30, "the linked publish span")
    assert (producer["serviceName"], producer["kind"], producer["name"]) == ("orders", "Producer", "publish shipments")


def test_dependency_graph_has_every_call_with_databases_and_queue(demo: Demo) -> None:
    expected = {
        ("gateway", "orders", "service"),
        ("orders", "inventory", "service"),
        ("orders", "payments", "service"),
        ("payments", "fraud", "service"),
        ("inventory", "inventory.db", "database"),
        ("orders", "shipments", "queue"),
        ("shipments", "worker", "service"),  # the queue's consumer, from its CONSUMER spans
        ("worker", "shipping.db", "database"),
    }

    def graph() -> dict[str, Any] | None:
        found = demo.api("/api/v1/dependencies")
        edges = {(e["parent"], e["child"], e["childKind"]) for e in found["edges"]}
        return found if expected <= edges else None

    found = eventually(graph, 60, f"the edges {sorted(expected)}")
    kinds = {node["id"]: node["kind"] for node in found["nodes"]}
    assert {name: kinds.get(name) for name in SERVICES} == dict.fromkeys(SERVICES, "service")
    assert (kinds["inventory.db"], kinds["shipping.db"], kinds["shipments"]) == ("database", "database", "queue")


def test_the_fault_opens_a_breaker_and_the_recovery_closes_it(demo: Demo) -> None:
    since = str(int(demo.started_at * 1_000_000))

    def history() -> list[dict[str, Any]]:
        found = demo.api("/api/v1/breakers/orders.payments/history", cluster="orders", step="1s", start=since)
        return [p for p in found["points"] if p["hosts"]]

    def opened_then_closed() -> list[dict[str, Any]] | None:
        points = history()
        opened = next((i for i, p in enumerate(points) if p["openHosts"]), None)
        if opened is None:
            return None
        closed = [p for p in points[opened:] if not p["openHosts"] and p["counts"].get("success", 0)]
        return points if closed else None

    points = eventually(opened_then_closed, 3 * FAULT_CYCLE + 30, "orders.payments open, then closed")
    while_open = [p for p in points if p["openHosts"]]
    assert sum(p["counts"].get("short_circuited", 0) for p in while_open) > 0  # refused while open
    assert sum(p["counts"].get("fallback_success", 0) for p in points) > 0  # and the fallback answered
    live = demo.api("/api/v1/breakers", cluster="orders", window="1m")["breakers"]
    assert {"orders.payments", "orders.inventory"} <= {b["name"] for b in live}


def test_the_gateway_breaker_sums_both_worker_processes(demo: Demo) -> None:
    def gateway_breaker() -> dict[str, Any] | None:
        live = demo.api("/api/v1/breakers", cluster="gateway", window="30s")["breakers"]
        found = next((b for b in live if b["name"] == "gateway.orders"), None)
        return found if found and found["hosts"] == 2 else None

    breaker = eventually(gateway_breaker, 60, "gateway.orders reported by two instances")
    assert len({i["instance"] for i in breaker["instances"]}) == 2
    assert breaker["requests"] > 0


def test_ctrl_c_stops_every_process_it_started(demo: Demo) -> None:
    started = set(demo.pids.values())
    below = demo.below()
    assert started <= below
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(90) == 0, demo.text()
    demo.wait_for(r"every process the demo started has stopped", timeout=10)
    assert_all_gone(below | started, sessions=started)


# --- runs of their own ------------------------------------------------------------------------


def test_duration_ends_the_demo_and_keeps_its_spans(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo", "--duration", "3", "--rate", "10", "--link-interval", "1")
    try:
        read_startup(demo)
        below = demo.below()
        assert demo.proc.wait(90) == 0, demo.text()
    finally:
        stop_leftovers(demo)
    assert re.search(r"\d+ requests sent: \d+ answered", demo.text())
    assert_all_gone(below | set(demo.pids.values()), sessions=set(demo.pids.values()))
    server = start_server(tmp_path / "demo" / "store")  # the store outlives the demo
    try:
        body = server.api(f"/api/v1/traces/{demo.trace_id}").json()
    finally:
        server.stop()
    assert _services(body["spans"]) >= {"gateway", "orders", "inventory", "payments", "fraud"}


def test_sigterm_while_starting_leaves_no_process(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo")
    try:
        server_pid = int(demo.wait_for(r"^\s+ready\s+tracehouse serve\s+pid (\d+)")[1])
        below = eventually(lambda: b if len(b := demo.below()) > 2 else None, 30, "services starting")
        demo.proc.send_signal(signal.SIGTERM)
        code = demo.proc.wait(90)
    finally:
        stop_leftovers(demo)
    assert code == 130, demo.text()
    assert "interrupted while starting; every process the demo started has stopped" in demo.text()
    assert server_pid in below
    assert_all_gone(below, sessions=below)


def test_a_server_that_cannot_start_ends_the_demo_with_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = start_demo(tmp_path / "demo", "--ui-port", str(taken.getsockname()[1]))
        try:
            code = demo.proc.wait(120)
        finally:
            stop_leftovers(demo)
    assert code == 1, demo.text()
    assert "tracehouse demo: error: tracehouse serve exited with code 2 before it was ready" in demo.text()
    assert "Address already in use" in demo.text()
    assert "Traceback" not in demo.text()


# --- helpers -------------------------------------------------------------------------------------


def _environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def _services(spans: list[dict[str, Any]]) -> set[str]:
    return {s["serviceName"] for s in spans}


def _exists(demo: Demo, trace_id: str) -> bool:
    return httpx.get(f"{demo.ui}/api/v1/traces/{trace_id}", timeout=30).status_code == 200


def _span(demo: Demo, trace_id: str, span_id: str) -> dict[str, Any] | None:
    if not _exists(demo, trace_id):
        return None
    spans = demo.api(f"/api/v1/traces/{trace_id}")["spans"]
    return next((s for s in spans if s["spanId"] == span_id), None)
