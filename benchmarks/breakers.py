"""`make bench-breakers`: what a Tracehouse circuit breaker adds to a call in the closed state,
sync and async, against the same function called bare and, in the same run, against pybreaker.

Every figure is the median over ``--repeat`` rounds of ``--calls`` calls of a no-op function, in
µs per call. The variants take turns within each round, a Tracehouse variant right before the
pybreaker one it is held against, and rounds are short, so a noisy neighbour hits them alike.
Overhead is a variant's time less the bare call's in the same round; the ratio to pybreaker is the
median over rounds of Tracehouse's overhead over pybreaker's in the same form (``call`` against
``call``, decorator against decorator). No span is recording.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pybreaker

from tracehouse.instrumentation.breakers import CircuitBreaker, Registry
from tracehouse.instrumentation.breakers.pybreaker_adapter import TracehouseListener

Timer = Callable[[int], float]
#: Each Tracehouse variant and the pybreaker variant it is held against.
RIVALS = {"CircuitBreaker.call": "pybreaker.call", "@breaker": "@pybreaker"}
AsyncTimer = Callable[[int], Coroutine[Any, Any, float]]


def noop(x: int) -> int:
    return x


async def anoop(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round and variant")
    parser.add_argument("--repeat", type=int, default=101, help="rounds; the median is reported")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, pybreaker {_pybreaker_version()}; {args.repeat} rounds of {args.calls:,}")
    _report("sync", _measure(_sync_variants(), args.calls, args.repeat), "bare call")
    with asyncio.Runner() as runner:
        _report("async", _measure(_async_variants(runner), args.calls, args.repeat), "bare await")
    print("\npybreaker async: not measured. Its call_async is a Tornado gen.coroutine (needs Tornado), it")
    print("has no asyncio support: cb.call(coroutine_function) returns the coroutine before it has run.")
    print("\nRecorded per call — Tracehouse: the outcome in a one-second bucket, a latency histogram and sum,")
    print("concurrency and its per-second peak, rolling health; pybreaker: a consecutive-failure counter reset.")


def _sync_variants() -> dict[str, Timer]:
    tracehouse = CircuitBreaker("bench.sync", register=False)
    decorated = CircuitBreaker("bench.sync-decorated", register=False)(noop)
    other = pybreaker.CircuitBreaker(name="bench")
    listened = TracehouseListener(registry=Registry()).attach(pybreaker.CircuitBreaker(name="bench.listened"))
    return {
        "bare call": _loop(noop),
        "CircuitBreaker.call": _loop_call(tracehouse.call, noop),
        "pybreaker.call": _loop_call(other.call, noop),
        "@breaker": _loop(decorated),
        "@pybreaker": _loop(other(noop)),
        "pybreaker.call + TracehouseListener": _loop_call(listened.call, noop),
    }


def _async_variants(runner: asyncio.Runner) -> dict[str, Timer]:
    tracehouse = CircuitBreaker("bench.async", register=False)
    decorated = CircuitBreaker("bench.async-decorated", register=False)(anoop)
    return {
        "bare await": _in(runner, _aloop(anoop)),
        "await CircuitBreaker.call_async": _in(runner, _aloop_call(tracehouse.call_async, anoop)),
        "await @breaker async def": _in(runner, _aloop(decorated)),
    }


def _loop(fn: Callable[[int], Any]) -> Timer:
    def timed(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn(1)
        return time.perf_counter() - started

    return timed


def _loop_call(call: Callable[..., Any], fn: Callable[[int], Any]) -> Timer:
    def timed(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            call(fn, 1)
        return time.perf_counter() - started

    return timed


def _aloop(fn: Callable[[int], Awaitable[Any]]) -> AsyncTimer:
    async def timed(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await fn(1)
        return time.perf_counter() - started

    return timed


def _aloop_call(call: Callable[..., Awaitable[Any]], fn: Callable[[int], Awaitable[Any]]) -> AsyncTimer:
    async def timed(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await call(fn, 1)
        return time.perf_counter() - started

    return timed


def _in(runner: asyncio.Runner, timed: AsyncTimer) -> Timer:
    return lambda n: runner.run(timed(n))


def _measure(variants: dict[str, Timer], calls: int, repeat: int) -> dict[str, list[float]]:
    """µs per call of each variant in each round; gc is off while a variant runs, as in timeit."""
    for timed in variants.values():
        timed(min(calls, 10_000))  # warm up
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        gc.collect()
        for name, timed in variants.items():
            gc.disable()
            try:
                rounds[name].append(timed(calls) / calls * 1e6)
            finally:
                gc.enable()
    return rounds


def _report(kind: str, rounds: dict[str, list[float]], baseline: str) -> None:
    base = rounds[baseline]
    print(f"\n{kind:<36} {'µs/call':>8} {'overhead':>9} {'ratio to pybreaker':>19}")
    for name, values in rounds.items():
        overheads = [value - bare for value, bare in zip(values, base, strict=True)]
        shown = f"{statistics.median(overheads):+.2f}" if name != baseline else ""
        ratio = ""
        rival = RIVALS.get(name)
        if rival in rounds:
            theirs = [value - bare for value, bare in zip(rounds[rival], base, strict=True)]
            ratio = f"{statistics.median(o / t for o, t in zip(overheads, theirs, strict=True)):.2f}"
        print(f"{name:<36} {statistics.median(values):>8.2f} {shown:>9} {ratio:>19}")


def _pybreaker_version() -> str:
    from importlib.metadata import version

    return version("pybreaker")


if __name__ == "__main__":
    main()
