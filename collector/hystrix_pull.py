"""Turbine classic for services that only expose ``/hystrix.stream`` (Java Hystrix, Node opossum): the
collector pulls each stream and hands one :class:`BreakerReport` of per-second deltas per instance
per second to a sink. It must never crash on what a stream sends, nor stop because a sink failed.

A target is ``[CLUSTER=]http(s)://host:port/path`` — one stream — or ``[CLUSTER=]dns+http://name:port/path``:
the name's A/AAAA records are resolved every ``resolve_interval`` seconds and each address is a stream
(a headless Kubernetes service). The cluster defaults to the host name. The instance is ``host:port``
of the URL (for DNS targets, of the address). How rolling sums become deltas: :mod:`.hystrix_deltas`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tracehouse.collector.hystrix_deltas import SnapshotDeltas
from tracehouse.collector.sse import SseParser
from tracehouse.instrumentation.breakers.wire import BreakerReport, BreakerSample
from tracehouse.storage.config import redacted_url

__all__ = ["MAX_OUTBOX", "MAX_REDIRECTS", "HystrixPuller", "PullTarget", "Sink", "parse_target", "read_targets_file"]

_log = logging.getLogger("tracehouse.collector.hystrix_pull")
Sink = Callable[[BreakerReport], Awaitable[None]]
_DEFAULT_PORTS = {"http": 80, "https": 443, "dns+http": 80}
_DEFAULT_PATH = "/hystrix.stream"
_HOST = re.compile(r"[A-Za-z0-9_.-]+")
_FORMAT = "expected [CLUSTER=]http(s)://host:port/path or [CLUSTER=]dns+http://name:port/path"
#: Reports waiting for a failing sink; beyond this the oldest are dropped (counted).
MAX_OUTBOX = 10_000
#: A stream sends an event or a ping every 0.5–1 s: this much silence means the connection is dead.
_TIMEOUT = httpx.Timeout(10.0, read=30.0)
_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
#: Redirects followed per connection (Starlette answers ``/hystrix.stream`` of a mounted stream with a
#: 307 to ``/hystrix.stream/``); more is a loop, retried with back-off like any other failure.
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class PullTarget:
    """One line of the target list. ``resolve``: a ``dns+http`` target (one stream per address)."""

    cluster: str
    scheme: str
    host: str
    port: int
    path: str
    resolve: bool = False
    #: The path is part of the instance: another target of the cluster may be on the same host and port.
    path_in_instance: bool = False

    def url(self, address: str | None = None) -> str:
        """The stream's URL; for a DNS target, that of one resolved ``address``."""
        return f"{self.scheme}://{_netloc(address or self.host, self.port)}{self.path}"

    def instance(self, address: str | None = None) -> str:
        """``host:port`` (``[v6]:port``), ``host:port/path`` beside another stream on that host and
        port: the instance the samples are reported for."""
        netloc = _netloc(address or self.host, self.port)
        return f"{netloc}{self.path}" if self.path_in_instance else netloc

    def __str__(self) -> str:
        scheme = "dns+http" if self.resolve else self.scheme
        return redacted_url(f"{self.cluster}={scheme}://{_netloc(self.host, self.port)}{self.path}")


@asynccontextmanager
async def _opened(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
    """The stream's response, redirects followed within its origin (scheme, host and port), at most
    :data:`MAX_REDIRECTS`: a target answering with a redirect elsewhere must not make the collector
    send requests to hosts the operator did not list (an internal admin page, say)."""
    request = client.build_request("GET", url, headers=headers, timeout=_TIMEOUT)
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        following = response.next_request
        if following is None:
            try:
                yield response
            finally:
                await response.aclose()
            return
        await response.aclose()
        there = (following.url.scheme, following.url.host, following.url.port)
        if there != (request.url.scheme, request.url.host, request.url.port):
            elsewhere = redacted_url(f"{following.url.scheme}://{following.url.netloc.decode()}")
            raise httpx.HTTPError(f"redirected to another origin ({elsewhere}), not followed")
        request = following
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)


def parse_target(text: str) -> PullTarget:
    """Parse ``[CLUSTER=]URL``; ``ValueError`` naming what is wrong with it (a password in it shown as ``***``)."""
    try:
        return _parse_target(text)
    except ValueError as exc:
        raise ValueError(redacted_url(str(exc))) from None


def _parse_target(text: str) -> PullTarget:
    raw = text.strip()
    cluster: str | None = None
    scheme_at, equals_at = raw.find("://"), raw.find("=")
    if equals_at >= 0 and (scheme_at < 0 or equals_at < scheme_at):
        cluster, raw = raw[:equals_at].strip(), raw[equals_at + 1 :].strip()
        _check_cluster(cluster, text)
    if "://" not in raw:
        raise ValueError(f"hystrix target {text!r}: no URL; {_FORMAT}")
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise ValueError(f"hystrix target {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"hystrix target {text!r}: scheme {parts.scheme!r} is not supported; {_FORMAT}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"hystrix target {text!r}: credentials in the URL are not supported")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"hystrix target {text!r}: the port is not a number in 1–65535")
    host = parts.hostname
    if not host:
        raise ValueError(f"hystrix target {text!r}: no host; {_FORMAT}")
    if ":" not in host and not _HOST.fullmatch(host):
        raise ValueError(f"hystrix target {text!r}: {host!r} is not a host name or address")
    path = (parts.path or _DEFAULT_PATH) + (f"?{parts.query}" if parts.query else "")
    resolve = scheme == "dns+http"
    cluster = cluster if cluster is not None else host
    _check_cluster(cluster, text)
    return PullTarget(cluster, "http" if resolve else scheme, host, port or _DEFAULT_PORTS[scheme], path, resolve)


def read_targets_file(path: str | Path) -> list[PullTarget]:
    """One target per line; blank lines and ``#`` comments (whole-line or after a space) are skipped."""
    targets = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        try:
            targets.append(parse_target(text))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return targets


def distinct_instances(targets: Sequence[PullTarget]) -> tuple[PullTarget, ...]:
    """The targets, each reporting as an instance of its own: two of one cluster that may be streams
    on the same host and port (the same host, or a DNS name's addresses) with different paths report
    as ``host:port/path`` (as ``host:port`` they would overwrite each other's seconds); a target listed
    twice is refused."""
    seen: set[PullTarget] = set()
    for target in targets:
        if target in seen:
            raise ValueError(f"hystrix target {target} is listed twice")
        seen.add(target)

    def may_share(a: PullTarget, b: PullTarget) -> bool:
        """The same host, or a DNS name's addresses and another DNS name or an address."""
        dns, other = (a, b) if a.resolve else (b, a)
        same_host = a.host == b.host or (dns.resolve and (other.resolve or _is_address(other.host)))
        return a.cluster == b.cluster and a.port == b.port and a.path != b.path and same_host

    return tuple(
        replace(target, path_in_instance=True) if any(may_share(target, other) for other in targets) else target
        for target in targets
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_cluster(cluster: str, text: str) -> None:
    if not cluster or len(cluster) > 200 or any(c.isspace() for c in cluster):
        raise ValueError(f"hystrix target {text!r}: the cluster must be 1–200 characters without spaces")


def _netloc(host: str, port: int) -> str:
    return f"[{host.replace('%', '%25')}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(eq=False)
class _Stream:
    """One instance's stream: its URL, and its deltas, kept across reconnects."""

    target: PullTarget
    address: str | None = None
    deltas: SnapshotDeltas = field(default_factory=SnapshotDeltas)
    connected: bool = False

    @property
    def instance(self) -> str:
        return self.target.instance(self.address)

    @property
    def headers(self) -> dict[str, str]:
        if self.address is None:
            return _HEADERS
        return {**_HEADERS, "Host": _netloc(self.target.host, self.target.port)}  # the name, not the address


class HystrixPuller:
    """Follows every target's stream until cancelled and reports its deltas to ``sink`` each second.

    ``sink(report)`` gets one report per instance per whole second that saw events, in order; when
    it raises, the report waits (at most :data:`MAX_OUTBOX` of them) and is offered again the next
    second. Counters: :attr:`frames`, :attr:`bad_frames`, :attr:`reconnects`, :attr:`sink_errors`,
    :attr:`dropped_reports`, :attr:`counter_resets`. Redirects are followed within the target's
    origin (at most :data:`MAX_REDIRECTS` per connection). A given ``client`` is used as is (its
    connection limit bounds the number of streams) and not closed; otherwise one is made.
    """

    def __init__(
        self,
        targets: Iterable[PullTarget | str],
        sink: Sink,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        resolve_interval: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.targets = distinct_instances([t if isinstance(t, PullTarget) else parse_target(t) for t in targets])
        if not min_backoff > 0:
            raise ValueError("hystrix puller setting min_backoff: must be > 0 seconds")
        if not max_backoff >= min_backoff:
            raise ValueError("hystrix puller setting max_backoff: must be >= min_backoff")
        if not resolve_interval > 0:
            raise ValueError("hystrix puller setting resolve_interval: must be > 0 seconds")
        self.sink = sink
        self.min_backoff, self.max_backoff, self.resolve_interval = min_backoff, max_backoff, resolve_interval
        self._client = client
        self.frames = 0
        self.bad_frames = 0
        self.reconnects = 0
        self.sink_errors = 0
        self.dropped_reports = 0
        self.counter_resets = 0
        self._streams: dict[int, _Stream] = {}
        self._outbox: deque[BreakerReport] = deque()
        self._sink_failing = False

    @property
    def connected_instances(self) -> list[str]:
        """The instances whose stream is open now."""
        return sorted(s.instance for s in self._streams.values() if s.connected)

    async def run(self) -> None:
        """Pull every target until cancelled."""
        client = self._client or httpx.AsyncClient(limits=httpx.Limits(max_connections=None), trust_env=False)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._report_every_second())
                for target in self.targets:
                    if target.resolve:
                        group.create_task(self._follow_dns(target, client))
                    else:
                        group.create_task(self._follow(_Stream(target), client))
        finally:
            if self._client is None:
                await client.aclose()

    async def flush(self) -> None:
        """Hand the finished seconds of every stream to the sink (run does this each second)."""
        before = int(time.time())
        for stream in list(self._streams.values()):
            self._collect(stream, before)
        await self._drain()

    # -- reporting ---------------------------------------------------------------------------

    async def _report_every_second(self) -> None:
        while True:
            await asyncio.sleep(1.05 - time.time() % 1.0)  # just after each second turns
            await self.flush()

    def _collect(self, stream: _Stream, before: int) -> None:
        by_second: dict[int, list[BreakerSample]] = {}
        for sample in stream.deltas.take(before):
            by_second.setdefault(sample.second, []).append(sample)
        cluster, instance = stream.target.cluster, stream.instance
        for second in sorted(by_second):
            if len(self._outbox) >= MAX_OUTBOX:
                self._outbox.popleft()
                self.dropped_reports += 1
            self._outbox.append(BreakerReport(cluster, instance, cluster, tuple(by_second[second])))

    async def _drain(self) -> None:
        while self._outbox:
            try:
                await self.sink(self._outbox[0])
            except Exception:
                self.sink_errors += 1
                if not self._sink_failing:
                    _log.exception("hystrix pull: the sink failed; reports wait and are offered again each second")
                self._sink_failing = True
                return
            self._outbox.popleft()
            if self._sink_failing:
                _log.info("hystrix pull: the sink works again (%d reports dropped meanwhile)", self.dropped_reports)
                self._sink_failing = False

    # -- streams -----------------------------------------------------------------------------

    async def _follow(self, stream: _Stream, client: httpx.AsyncClient) -> None:
        """Read one stream forever, reconnecting with capped exponential back-off."""
        self._streams[id(stream)] = stream
        failures = 0
        try:
            while True:
                healthy = await self._read(stream, client, quiet=failures > 0)
                failures = 0 if healthy else failures + 1
                delay = min(self.max_backoff, self.min_backoff * 2 ** min(failures, 30))
                await asyncio.sleep(delay * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not secrecy
                self.reconnects += 1
        finally:
            self._collect(stream, before=2**62)  # a retired stream's last seconds still go out
            del self._streams[id(stream)]

    async def _read(self, stream: _Stream, client: httpx.AsyncClient, quiet: bool) -> bool:
        """One connection; ``True`` when it was healthy (answered 200 and sent good events or pings)."""
        url, good = stream.target.url(stream.address), 0
        parser = SseParser()
        problem = "the stream ended"
        try:
            async with _opened(client, url, stream.headers) as response:
                if response.status_code != 200:
                    problem = f"HTTP {response.status_code}"
                else:
                    stream.connected = True
                    stream.deltas.connected(int(time.time()))
                    _log.info("hystrix pull: reading %s (cluster %s)", redacted_url(url), stream.target.cluster)
                    async for chunk in response.aiter_bytes():
                        for data in parser.feed(chunk):
                            good += self._frame(stream, data)
                        self.bad_frames += parser.oversized
                        parser.oversized = 0
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception:
            _log.exception("hystrix pull: reading %s failed", redacted_url(url))
            problem = "an internal error"
        finally:
            stream.connected = False
        healthy = good > 0 or parser.keepalives > 0
        level = logging.DEBUG if quiet and not healthy else logging.WARNING
        _log.log(level, "hystrix pull: %s: %s; reconnecting", redacted_url(url), redacted_url(problem))
        return healthy

    def _frame(self, stream: _Stream, data: str) -> int:
        """Take one SSE data payload; the number of good events in it."""
        good = 0
        for event in _decode(data):
            if event is None:
                self.bad_frames += 1
                continue
            resets = stream.deltas.resets
            try:
                stream.deltas.observe(event, int(time.time()))
            except ValueError:
                self.bad_frames += 1
                continue
            self.counter_resets += stream.deltas.resets - resets
            self.frames += 1
            good += 1
        return good

    async def _follow_dns(self, target: PullTarget, client: httpx.AsyncClient) -> None:
        """Keep one stream per resolved address of ``target``, re-resolving every interval."""
        streams: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                addresses = await _resolve(target)
                if addresses is not None:
                    for gone in streams.keys() - addresses:
                        streams.pop(gone).cancel()
                    for address in sorted(addresses - streams.keys()):
                        streams[address] = asyncio.create_task(self._follow(_Stream(target, address), client))
                await asyncio.sleep(self.resolve_interval)
        finally:
            for task in streams.values():
                task.cancel()
            await asyncio.gather(*streams.values(), return_exceptions=True)


async def _resolve(target: PullTarget) -> set[str] | None:
    """The addresses of ``target``'s name, or ``None`` when resolving failed (keep the ones we have)."""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, target.host, target.port, 0, socket.SOCK_STREAM)
    except OSError as exc:
        _log.warning("hystrix pull: resolving %s failed (%s); keeping its streams", target.host, exc)
        return None
    return {str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)}


def _decode(data: str) -> list[dict[str, Any] | None]:
    """The JSON objects of one payload (``None`` for each bad one). Emitters that put several events
    in one SSE event, one per ``data:`` line, are read line by line."""
    try:
        return [_object(json.loads(data))]
    except (ValueError, RecursionError):
        if "\n" not in data:
            return [None]
    decoded: list[dict[str, Any] | None] = []
    for line in data.split("\n"):
        try:
            decoded.append(_object(json.loads(line)))
        except (ValueError, RecursionError):
            decoded.append(None)
    return decoded


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
