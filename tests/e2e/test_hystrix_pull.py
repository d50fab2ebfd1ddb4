"""The Hystrix pull end to end: HystrixPuller reads real ``/hystrix.stream`` servers — a Node service
(opossum + opossum-hystrix from npm), a Python service (``serve_hystrix_stream``) and a scripted HTTP
server for bad input, disconnects and a failing sink — and the deltas it reports add up to the calls
each service made, also after those calls have rolled out of the service's window."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracehouse.collector.hystrix_pull import MAX_REDIRECTS, HystrixPuller
from tracehouse.instrumentation.breakers.histogram import bucket_of
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).parents[1] / "fixtures"
NODE_DIR = FIXTURES / "node_hystrix"
PYTHON_SERVICE = FIXTURES / "python_hystrix" / "service.py"
DEADLINE = 30.0
#: Seconds after the last new event by which every emitter has rolled it out of its 10 s window.
ROLLED_OUT = 12


# -- helpers ---------------------------------------------------------------------------------


class Recorder:
    """A sink that keeps every report."""

    def __init__(self) -> None:
        self.reports: list[BreakerReport] = []

    async def __call__(self, report: BreakerReport) -> None:
        self.reports.append(report)

    def samples(self, name: str, kind: str = "command") -> list[BreakerSample]:
        return [s for r in self.reports for s in r.samples if s.name == name and s.kind == kind]

    def totals(self, name: str, kind: str = "command") -> dict[str, int]:
        totals: dict[str, int] = {}
        for sample in self.samples(name, kind):
            for key, n in sample.counts.items():
                totals[key] = totals.get(key, 0) + n
        return {key: n for key, n in totals.items() if n}

    def newest_second(self) -> int:
        return max((s.second for r in self.reports for s in r.samples), default=0)

    def last_counted_second(self) -> int:
        return max(s.second for r in self.reports for s in r.samples if any(s.counts.values()))


async def until(done: Callable[[], bool], what: str, within: float = DEADLINE) -> None:
    """Poll ``done`` until it holds; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def pulling(puller: HystrixPuller) -> AsyncIterator[HystrixPuller]:
    task = asyncio.create_task(puller.run())
    try:
        yield puller
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@dataclass
class Emitter:
    """A service process that prints ``ready PORT`` and exits when its standard input closes."""

    proc: subprocess.Popen[str]
    port: int = 0
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def line(self, prefix: str, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout} s: {self.output}") from None
            if line is None:
                raise AssertionError(f"the service exited ({self.proc.poll()}) before {prefix!r}: {self.output}")
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.pump is not None:
            self.pump.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_emitter(command: Sequence[str], cwd: Path | None = None) -> Emitter:
    proc = subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    emitter = Emitter(proc)
    emitter.pump = threading.Thread(target=_pump, args=(emitter,), daemon=True)
    emitter.pump.start()
    try:
        emitter.port = int(emitter.line("ready "))
    except BaseException:
        emitter.stop()
        raise
    return emitter


def _pump(emitter: Emitter) -> None:
    assert emitter.proc.stdout is not None
    for line in emitter.proc.stdout:
        emitter.output.append(line.rstrip("\n"))
        emitter.lines.put(line.rstrip("\n"))
    emitter.lines.put(None)


# -- a real Node service -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_service_dir() -> Path:
    """The Node emitter with its npm dependencies installed (node and npm are required, not optional)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the Hystrix pull e2e tests run a real Node service "
            "(.ci/run installs Debian's nodejs and npm; by hand: apt-get install -y nodejs npm)"
        )
    npm = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600
    )
    if npm.returncode != 0:
        pytest.fail(f"npm install in {NODE_DIR} failed ({npm.returncode}):\n{npm.stdout}\n{npm.stderr}")
    return NODE_DIR


@pytest.fixture
def node_service(node_service_dir: Path) -> Iterator[Emitter]:
    emitter = start_emitter(["node", "emitter.js", "0"], cwd=node_service_dir)
    yield emitter
    emitter.stop()


def test_opossum_stream_deltas_add_up_to_the_calls_made(node_service: Emitter) -> None:
    asyncio.run(_opossum(node_service))


async def _opossum(service: Emitter) -> None:
    recorder = Recorder()
    url = f"http://127.0.0.1:{service.port}/hystrix.stream"
    async with pulling(HystrixPuller([f"node-shop={url}"], recorder)) as puller:
        await until(lambda: puller.frames > 0, "a first (idle) snapshot")
        async with httpx.AsyncClient() as client:
            done = (await client.post(f"http://127.0.0.1:{service.port}/go", timeout=DEADLINE)).json()
        # opossum counts a timeout as a failure too, and opossum-hystrix reports failures as bad requests
        assert done["seen"] == {"successes": 20, "failures": 7, "timeouts": 2, "shortCircuited": 3}
        expected = {"success": 20, "failure": 7, "timeout": 2, "short_circuited": 3, "bad_request": 7}
        name = "inventory.lookup"
        await until(lambda: recorder.totals(name) == expected, f"totals {expected}, have {recorder.totals(name)}")
        counted = recorder.last_counted_second()
        await until(lambda: recorder.newest_second() >= counted + ROLLED_OUT, "the calls rolling out of the window")
        assert recorder.totals(name) == expected
    assert puller.bad_frames == 0
    assert {(r.service, r.cluster, r.instance) for r in recorder.reports} == {
        ("node-shop", "node-shop", f"127.0.0.1:{service.port}")
    }
    samples = recorder.samples(name)
    assert len({s.second for s in samples}) == len(samples)
    assert samples[-1].state == "OPEN"
    assert samples[-1].group == "inventory"
    assert samples[-1].properties["metricsRollingStatisticalWindowInMilliseconds"] == 10000
    # the stream's percentiles were ~0 ms up to p75 (a busy machine makes some 1–2 ms) and 50–51 ms
    # above (the two timeouts of 50 ms)
    latency: dict[int, int] = {}
    for sample in samples:
        for index, n in sample.latency.items():
            latency[index] = latency.get(index, 0) + n
    assert sum(latency.values()) == 20 + 7 + 2
    fast, timed_out = {bucket_of(ms) for ms in range(10)}, {bucket_of(ms) for ms in range(45, 70)}
    assert set(latency) <= fast | timed_out
    assert set(latency) & fast
    assert set(latency) & timed_out


def test_a_restarted_service_is_counted_from_zero_again(node_service_dir: Path) -> None:
    started: list[Emitter] = []

    def start(port: int) -> Emitter:
        started.append(start_emitter(["node", "emitter.js", str(port)], cwd=node_service_dir))
        return started[-1]

    try:
        asyncio.run(_restart(start))
    finally:
        for emitter in started:
            emitter.stop()


async def _restart(start: Callable[[int], Emitter]) -> None:
    service = start(0)
    recorder, name, port = Recorder(), "inventory.lookup", service.port
    before = {"success": 20, "failure": 7, "timeout": 2, "short_circuited": 3, "bad_request": 7}
    after = {**before, "success": 25}
    puller = HystrixPuller([f"http://127.0.0.1:{port}/hystrix.stream"], recorder, min_backoff=0.05, max_backoff=0.2)
    async with pulling(puller), httpx.AsyncClient(timeout=DEADLINE) as client:
        await until(lambda: puller.frames > 0, "a first (idle) snapshot")
        await client.post(f"http://127.0.0.1:{port}/go")
        await until(lambda: recorder.totals(name) == before, f"totals {before}")
        counted = recorder.last_counted_second()
        service.stop()
        start(port)  # the same instance, restarted
        frames = puller.frames
        await until(lambda: puller.frames > frames, "a snapshot of the restarted service")
        # 5 calls: fewer than the window still shows from before, so only a reset can count them
        await client.post(f"http://127.0.0.1:{port}/go?successes=5")
        await until(lambda: recorder.totals(name) == after, f"totals {after}, have {recorder.totals(name)}")
    # counted when seen, not only once the calls from before the restart left the belief (10 s)
    [again] = [s.second for s in recorder.samples(name) if s.counts.get("success") == 5]
    assert again < counted + 10
    assert puller.counter_resets == 1
    assert puller.reconnects >= 1


# -- a real Python service ---------------------------------------------------------------------


@pytest.fixture
def python_service() -> Iterator[Emitter]:
    emitter = start_emitter([sys.executable, str(PYTHON_SERVICE)])
    yield emitter
    emitter.stop()


def test_python_stream_deltas_add_up_to_the_calls_made(python_service: Emitter) -> None:
    asyncio.run(_python(python_service))


async def _python(service: Emitter) -> None:
    recorder = Recorder()
    instance = f"127.0.0.1:{service.port}"
    async with pulling(HystrixPuller([f"shop=http://{instance}/hystrix.stream"], recorder)) as puller:
        await until(lambda: puller.connected_instances == [instance], "the stream to be open")
        service.send("go")
        local = json.loads(await asyncio.to_thread(service.line, "done "))
        assert local == {
            "payments.charge": {
                "success": 8,
                "failure": 4,
                "bad_request": 1,
                "exception_thrown": 1,
                "short_circuited": 3,
                "fallback_success": 7,
            },
            "inventory.lookup": {"success": 5},
            "pool:inventory": {"success": 5},
        }

        def pulled() -> dict[str, dict[str, int]]:
            return {
                "payments.charge": recorder.totals("payments.charge"),
                "inventory.lookup": recorder.totals("inventory.lookup"),
                "pool:inventory": recorder.totals("inventory", kind="threadpool"),
            }

        await until(lambda: pulled() == local, f"totals {local}")
        counted = recorder.last_counted_second()
        await until(lambda: recorder.newest_second() >= counted + ROLLED_OUT, "the calls rolling out of the window")
        assert pulled() == local
    assert puller.bad_frames == 0
    assert puller.counter_resets == 0
    payments = recorder.samples("payments.charge")
    assert payments[-1].state == "FORCED_OPEN"
    assert sum(n for s in payments for n in s.latency.values()) == 8 + 4
    [pool] = {s.group for s in recorder.samples("inventory", kind="threadpool")}
    assert pool == "inventory"
    assert recorder.samples("inventory", kind="threadpool")[-1].gauges["currentCorePoolSize"] == 2


# -- a scripted server: bad input, disconnects, a failing sink, DNS --------------------------------


def command_event(success: int, name: str = "orders.place") -> bytes:
    event = {"type": "HystrixCommand", "name": name, "group": "orders", "rollingCountSuccess": success}
    return f"data: {json.dumps(event)}\n\n".encode()


def calls_once_open(success: int) -> tuple[bytes, bytes]:
    """The command idle when the stream opens, then with ``success`` calls: counted as they are seen
    (a window already full at the connect would be believed spread over the seconds before it)."""
    return command_event(0), command_event(success)


@dataclass(frozen=True)
class Reply:
    """One answer to a GET: a status, chunks, then ``repeat`` every 0.1 s — ``times`` times, or until
    the server closes — then the end of the response."""

    status: int = 200
    chunks: tuple[bytes, ...] = ()
    repeat: bytes | None = None
    times: int | None = None
    location: str | None = None


class ScriptedStreams:
    """A real HTTP server answering the n-th GET with the n-th reply (the last one from then on)."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = False
        self.server.block_on_close = True  # close() joins every connection's thread
        self.thread = threading.Thread(target=self.server.serve_forever, name="scripted-streams")
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def next_reply(self, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(headers)
            return self.replies[min(len(self.requests), len(self.replies)) - 1]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        streams = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reply = streams.next_reply({**{k.lower(): v for k, v in self.headers.items()}, ":path": self.path})
                self.send_response(reply.status)
                if reply.location is not None:
                    self.send_header("Location", reply.location)
                self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
                self.end_headers()
                try:
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    sent = 0
                    while reply.repeat is not None and sent != reply.times and not streams.stopping.wait(0.1):
                        self.wfile.write(reply.repeat)
                        self.wfile.flush()
                        sent += 1
                except OSError:
                    pass  # the puller went away

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedStreams]]:
    started: list[ScriptedStreams] = []

    def start(*replies: Reply) -> ScriptedStreams:
        started.append(ScriptedStreams(replies))
        return started[-1]

    yield start
    for streams in started:
        streams.close()


def test_bad_frames_are_counted_and_skipped(scripted: Callable[..., ScriptedStreams]) -> None:
    event = command_event(3)
    streams = scripted(
        Reply(
            chunks=(
                b"ping: \n\n",
                b"data: {not json\n\n",
                b"data: [1, 2]\n\n",
                b'data: {"type": "HystrixCommand"}\n\n',
                b'data: {"type": "meta", "reportingHostsLast10Seconds": 1}\n\n',
                command_event(0),
                event[:25],
                event[25:],
            ),
            repeat=event,
        )
    )

    async def main() -> None:
        recorder = Recorder()
        async with pulling(HystrixPuller([f"http://127.0.0.1:{streams.port}/"], recorder)) as puller:
            await until(lambda: puller.frames >= 6, "good frames")
            await until(lambda: recorder.totals("orders.place") == {"success": 3}, "the split event's count")
        assert puller.bad_frames == 3
        assert puller.reconnects == 0
        assert recorder.reports[0].cluster == "127.0.0.1"

    asyncio.run(main())


def test_reconnects_back_off_and_count_nothing_twice(scripted: Callable[..., ScriptedStreams]) -> None:
    streams = scripted(
        Reply(status=503),
        Reply(status=404),
        Reply(chunks=calls_once_open(4), repeat=command_event(4), times=15),  # then the server ends the stream
        Reply(chunks=(command_event(4),), repeat=command_event(6)),
    )

    async def main() -> None:
        recorder = Recorder()
        puller = HystrixPuller([f"http://127.0.0.1:{streams.port}/hystrix.stream"], recorder, min_backoff=0.05)
        async with pulling(puller):
            await until(lambda: len(streams.requests) >= 4, "four connections")
            assert recorder.totals("orders.place") == {"success": 4}  # reported while the third was open
            await until(lambda: recorder.totals("orders.place") == {"success": 6}, "4 then 2 more")
            frames = puller.frames
            await until(lambda: puller.frames >= frames + 10, "more snapshots of the same count")
            await puller.flush()
            assert recorder.totals("orders.place") == {"success": 6}
        assert puller.reconnects == 3
        assert {r["accept"] for r in streams.requests} == {"text/event-stream"}

    asyncio.run(main())


def test_a_redirect_is_followed(scripted: Callable[..., ScriptedStreams]) -> None:
    # What Starlette's Mount answers for the documented app.mount("/hystrix.stream", HystrixStreamASGI()).
    streams = scripted(
        Reply(status=307, location="/hystrix.stream/"),
        Reply(chunks=calls_once_open(3), repeat=command_event(3)),
    )

    async def main() -> None:
        recorder = Recorder()
        puller = HystrixPuller([f"http://127.0.0.1:{streams.port}/hystrix.stream"], recorder, min_backoff=0.05)
        async with pulling(puller):
            await until(lambda: recorder.totals("orders.place") == {"success": 3}, "the redirected stream's count")
        assert puller.reconnects == 0
        assert [r[":path"] for r in streams.requests] == ["/hystrix.stream", "/hystrix.stream/"]

    asyncio.run(main())


def test_a_redirect_to_another_origin_is_not_followed(
    scripted: Callable[..., ScriptedStreams], caplog: pytest.LogCaptureFixture
) -> None:
    # Followed before: a target could send the collector to any host and port (an internal admin page).
    elsewhere = scripted(Reply(chunks=calls_once_open(3), repeat=command_event(3)))
    streams = scripted(Reply(status=307, location=f"http://127.0.0.1:{elsewhere.port}/admin?api_key=S3CRET"))

    async def main() -> None:
        url = f"http://127.0.0.1:{streams.port}/hystrix.stream?api_key=S3CRET"
        puller = HystrixPuller([url], Recorder(), min_backoff=0.05)
        with caplog.at_level(logging.DEBUG, logger="tracehouse.collector.hystrix_pull"):
            async with pulling(puller):
                await until(lambda: puller.reconnects >= 2, "reconnects after the refused redirect")
        assert elsewhere.requests == []
        assert puller.frames == 0

    asyncio.run(main())
    told = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert told
    assert (
        f"hystrix.stream?api_key=***: HTTPError: redirected to another origin (http://127.0.0.1:{elsewhere.port})"
        in told[0]
    )
    assert not any("S3CRET" in r.getMessage() for r in caplog.records)


def test_a_redirect_loop_is_cut_and_retried(scripted: Callable[..., ScriptedStreams]) -> None:
    streams = scripted(Reply(status=307, location="/hystrix.stream"))

    async def main() -> None:
        puller = HystrixPuller([f"http://127.0.0.1:{streams.port}/hystrix.stream"], Recorder(), min_backoff=0.05)
        async with pulling(puller):
            await until(lambda: puller.reconnects >= 1, "a reconnect after too many redirects")
            assert len(streams.requests) <= (1 + MAX_REDIRECTS) * (puller.reconnects + 1)
        assert puller.frames == 0

    asyncio.run(main())


def test_a_failing_sink_gets_the_same_reports_again(scripted: Callable[..., ScriptedStreams]) -> None:
    streams = scripted(Reply(chunks=calls_once_open(5), repeat=command_event(5)))

    async def main() -> None:
        recorder = Recorder()
        refused: list[BreakerReport] = []

        async def flaky(report: BreakerReport) -> None:
            if len(refused) < 2:
                refused.append(report)
                raise ConnectionError("storage is down")
            await recorder(report)

        async with pulling(HystrixPuller([f"http://127.0.0.1:{streams.port}/"], flaky)) as puller:
            await until(lambda: len(recorder.reports) >= 3, "three reports past the failures")
        assert puller.sink_errors == 2
        assert recorder.totals("orders.place") == {"success": 5}
        seconds = [r.samples[0].second for r in recorder.reports]
        assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # none lost, in order
        assert refused == [recorder.reports[0]] * 2

    asyncio.run(main())


def test_a_dns_target_reads_every_address(scripted: Callable[..., ScriptedStreams]) -> None:
    streams = scripted(Reply(chunks=calls_once_open(2), repeat=command_event(2)))

    async def main() -> None:
        recorder = Recorder()
        target = f"dns+http://localhost:{streams.port}/hystrix.stream"
        async with pulling(HystrixPuller([target], recorder, min_backoff=0.05, max_backoff=0.2)):
            await until(lambda: recorder.totals("orders.place") == {"success": 2}, "the count of the v4 address")
        assert {(r.cluster, r.instance) for r in recorder.reports} == {("localhost", f"127.0.0.1:{streams.port}")}
        assert streams.requests[0]["host"] == f"localhost:{streams.port}"

    asyncio.run(main())
