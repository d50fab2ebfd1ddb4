"""The demo's traffic: ``GET /work`` on the gateway at a fixed rate, open loop — a request leaves
on schedule whether or not earlier ones have answered, as real users keep arriving when a system
slows down. Requests in flight are capped; beyond the cap a tick is skipped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["MAX_IN_FLIGHT", "TrafficStats", "first_traceparent", "send_traffic"]

MAX_IN_FLIGHT = 200


@dataclass(slots=True)
class TrafficStats:
    sent: int = 0
    answered: int = 0  # 2xx
    degraded: int = 0  # 2xx with a fallback's answer somewhere inside
    failed: int = 0  # 5xx or no answer
    skipped: int = 0  # ticks with MAX_IN_FLIGHT requests already waiting

    def summary(self) -> str:
        return (
            f"{self.sent} requests sent: {self.answered} answered ({self.degraded} with a fallback's answer), "
            f"{self.failed} failed" + (f", {self.skipped} skipped (too many in flight)" if self.skipped else "")
        )


def first_traceparent() -> tuple[str, str]:
    """A trace id and the ``traceparent`` header that makes the gateway continue it: the demo
    sends its first request so, to point the user at a trace it knows."""
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


async def send_traffic(
    gateway: str, rate: float, stop: asyncio.Event, first_header: str, on_tick: Callable[[], None] | None = None
) -> TrafficStats:
    """Send ``rate`` requests a second to ``gateway`` until ``stop`` is set; waits for those in
    flight before it returns. ``on_tick`` runs before each request (progress reporting)."""
    stats = TrafficStats()
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    # A connection per request: the gateway's two worker processes take turns accepting them (kept
    # alive, the connections stayed with one worker: 292 requests to 3 in a minute).
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gateway, timeout=10.0, limits=limits) as client:
        next_at = loop.time()
        headers = {"traceparent": first_header}
        while not stop.is_set():
            if on_tick is not None:
                on_tick()
            if len(in_flight) >= MAX_IN_FLIGHT:
                stats.skipped += 1
            else:
                task = asyncio.create_task(_request(client, headers, stats))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                headers = {}
            next_at += 1.0 / rate
            await _sleep_until(stop, next_at - loop.time())
        await asyncio.gather(*in_flight)
    return stats


async def _request(client: httpx.AsyncClient, headers: dict[str, str], stats: TrafficStats) -> None:
    stats.sent += 1
    try:
        response = await client.get("/work", headers=headers)
    except httpx.HTTPError:
        stats.failed += 1
        return
    if response.is_success:
        stats.answered += 1
        stats.degraded += '"fallback":true' in response.text
    else:
        stats.failed += 1


async def _sleep_until(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless ``stop`` is set first."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
