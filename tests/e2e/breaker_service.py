"""A service process for the breaker e2e tests: configures Tracehouse from its environment, makes a
scripted sequence of protected calls, waits for the second of its last call to end, stops the
reporter (which ships the last whole seconds) and prints its own local totals as JSON.

Each call's latency is scripted (the breaker's latency clock is advanced by exactly that much), so
the test knows every raw latency and can check cluster percentiles against them.

    python breaker_service.py SEED SUCCESSES FAILURES [force-open]
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time

from tracehouse.instrumentation import configure
from tracehouse.instrumentation.breakers import CallNotPermitted, CircuitBreaker, Outcome
from tracehouse.instrumentation.breakers.histogram import merge
from tracehouse.instrumentation.breakers.reporter import stop_reporter


class Declined(Exception):
    pass


def main() -> None:
    seed, successes, failures = (int(a) for a in sys.argv[1:4])
    force_open = "force-open" in sys.argv[4:]
    configure()
    rng = random.Random(seed)
    breaker = CircuitBreaker("payments.charge", minimum_calls=10_000, fallback=lambda ok: "cached")
    plan = [True] * successes + [False] * failures
    rng.shuffle(plan)
    latency_clock = [1000.0]
    execution = importlib.import_module("tracehouse.instrumentation.breakers.execution")
    execution.perf_counter = lambda: latency_clock[0]  # type: ignore[attr-defined]
    raw: list[float] = []

    def charge(ok: bool) -> str:
        latency_ms = rng.uniform(0.5, 400.0)
        raw.append(latency_ms)
        latency_clock[0] += latency_ms / 1000
        if not ok:
            raise Declined("card declined")
        return "charged"

    for ok in plan:
        breaker.call(charge, ok)
    if force_open:
        breaker.force_open()
        for _ in range(3):
            breaker.call(charge, True)  # short-circuited, answered by the fallback
        try:
            with breaker:
                pass
        except CallNotPermitted:
            pass
    time.sleep(1.05 - time.time() % 1.0)  # the second of the last call is over: the reporter ships it
    buckets = breaker.recent_buckets(seconds=120)
    stop_reporter()
    counts = {o.key: sum(b.counts[o] for b in buckets) for o in Outcome}
    latency = merge(b.latency for b in buckets)
    local = {"counts": counts, "latency": {str(k): v for k, v in latency.items()}, "raw": raw}
    print(json.dumps(local), flush=True)


if __name__ == "__main__":
    main()
