"""Exact outcome counts of scripted calls — sync, async, context managers, thread pools, many threads —
checked against what Hystrix counts: one execution outcome per attempt, plus its fallback outcome
and ``EXCEPTION_THROWN`` when the caller gets an exception; ``requestCount`` and ``errorCount``
leave short circuits, bad requests and ignored exceptions out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.conftest import FakeClock, execution
from tracehouse.instrumentation.breakers import (
    BreakerConfig,
    BulkheadFull,
    CallNotPermitted,
    CallTimeout,
    CircuitBreaker,
    Registry,
    State,
    Transition,
    breaker,
)
from tracehouse.instrumentation.breakers.histogram import bucket_of, bucket_value_ms
from tracehouse.instrumentation.breakers.stream import hystrix_events

pytestmark = pytest.mark.usefixtures("clean_breakers")


class Boom(Exception):
    pass


class Invalid(Exception):
    pass


class Benign(Exception):
    pass


def make(name: str, **settings: Any) -> CircuitBreaker:
    settings.setdefault("bad_request", (Invalid,))
    settings.setdefault("ignore", (Benign,))
    return CircuitBreaker(name, register=False, **settings)


def counts(b: CircuitBreaker) -> dict[str, int]:
    """The breaker's counts over its rolling window, by outcome key, zeros left out."""
    total: Counter[str] = Counter()
    for bucket in b.recent_buckets():
        assert min(bucket.counts) >= 0
        total.update({key: n for key, n in zip(KEYS, bucket.counts, strict=True) if n})
    return dict(total)


KEYS = [
    "success",
    "failure",
    "timeout",
    "short_circuited",
    "thread_pool_rejected",
    "semaphore_rejected",
    "bad_request",
    "fallback_success",
    "fallback_failure",
    "fallback_missing",
    "exception_thrown",
    "ignored",
    "slow",
]


def events(*breakers: CircuitBreaker, registry: Registry | None = None) -> dict[str, dict[str, Any]]:
    """This process's Hystrix events of ``breakers`` (and of the pools of ``registry``), by name."""
    registry = registry or Registry()
    for b in breakers:
        registry.add(b)
    return {event["name"]: event for event in hystrix_events(registry)}


def raiser(exc: BaseException) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fn


def taking(clock: FakeClock, seconds: float, result: Any = "ok") -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        clock.elapse(seconds)
        if isinstance(result, BaseException):
            raise result
        return result

    return fn


FALLBACKS: dict[str, Callable[..., Any] | None] = {
    "missing": None,
    "succeeds": lambda *a, **k: "fallback",
    "fails": raiser(RuntimeError("fallback broke")),
}
#: What each fallback adds to a failed, timed-out, short-circuited or rejected call.
FALLBACK_COUNTS = {
    "missing": {"fallback_missing": 1, "exception_thrown": 1},
    "succeeds": {"fallback_success": 1},
    "fails": {"fallback_failure": 1, "exception_thrown": 1},
}


def times(n: int, outcome: dict[str, int]) -> Counter[str]:
    return Counter({key: n * count for key, count in outcome.items()})


@pytest.mark.parametrize("fallback", sorted(FALLBACKS))
def test_scripted_sync_calls_count_as_hystrix(fake_clock: FakeClock, fallback: str) -> None:
    b = make("orders.sync", fallback=FALLBACKS[fallback], bulkhead=1)
    for _ in range(3):
        assert b.call(taking(fake_clock, 0.010)) == "ok"
    for _ in range(3):
        try:
            assert b.call(taking(fake_clock, 0.020, Boom())) == "fallback"
        except (Boom, RuntimeError):
            assert fallback != "succeeds"
    with pytest.raises(Invalid):
        b.call(raiser(Invalid()))  # a bad request: re-raised, no fallback even when there is one
    with pytest.raises(Benign):
        b.call(raiser(Benign()))
    with b:  # holds the only bulkhead place, so the call inside is rejected
        fake_clock.elapse(0.010)
        try:
            assert b.call(taking(fake_clock, 0.010)) == "fallback"
        except (BulkheadFull, RuntimeError):
            assert fallback != "succeeds"
    b.force_open()
    try:
        assert b.call(taking(fake_clock, 0.010)) == "fallback"
    except (CallNotPermitted, RuntimeError):
        assert fallback != "succeeds"
    b.reset()

    expected = Counter(
        success=4, failure=3, bad_request=1, ignored=1, semaphore_rejected=1, short_circuited=1, exception_thrown=1
    )
    expected += times(5, FALLBACK_COUNTS[fallback])  # 3 failures, 1 rejection, 1 short circuit
    assert counts(b) == dict(expected)

    event = events(b)["orders.sync"]
    assert event["requestCount"] == 8  # 4 successes, 3 failures, 1 rejection
    assert event["errorCount"] == 4
    assert event["errorPercentage"] == 50
    assert event["rollingCountShortCircuited"] == 1
    assert event["rollingCountBadRequests"] == 1
    assert event["rollingCountExceptionsThrown"] == expected["exception_thrown"]
    assert event["rollingCountFallbackSuccess"] == expected["fallback_success"]
    assert event["rollingCountFallbackFailure"] == expected["fallback_failure"]
    assert event["rollingCountFallbackMissing"] == expected["fallback_missing"]
    assert event["rollingMaxConcurrentExecutionCount"] == 1
    assert event["currentConcurrentExecutionCount"] == 0
    # Latencies: 4 × 10 ms (successes) and 3 × 20 ms (failures); others are not timed.
    assert event["latencyExecute_mean"] == round((4 * 10 + 3 * 20) / 7)
    assert event["latencyExecute"]["0"] == pytest.approx(bucket_value_ms(bucket_of(10.0)), abs=0.001)
    assert event["latencyExecute"]["50"] == pytest.approx(bucket_value_ms(bucket_of(10.0)), abs=0.001)
    assert event["latencyExecute"]["100"] == round(bucket_value_ms(bucket_of(20.0)))
    assert b.state is State.CLOSED


def test_ignored_and_bad_requests_say_nothing_about_health(fake_clock: FakeClock) -> None:
    b = make("orders.health", minimum_calls=2, failure_rate_threshold=50)
    b.call(taking(fake_clock, 0.001))
    for _ in range(5):
        with pytest.raises(Invalid):
            b.call(raiser(Invalid()))
        with pytest.raises(Benign):
            b.call(raiser(Benign()))
    assert b.state is State.CLOSED
    with pytest.raises(Boom):
        b.call(raiser(Boom()))
    assert b.state is State.OPEN  # 1 failure of 2 counted calls
    with pytest.raises(CallNotPermitted, match=r"orders\.health: the circuit is open"):
        b.call(taking(fake_clock, 0.001))


def test_exceptions_outside_failure_pass_through_uncounted_as_failures(fake_clock: FakeClock) -> None:
    b = make("orders.narrow", failure=(Boom,), minimum_calls=1, fallback=lambda: "fallback")
    with pytest.raises(KeyError):
        b.call(raiser(KeyError("x")))
    with pytest.raises(KeyboardInterrupt):
        b.call(raiser(KeyboardInterrupt()))
    assert counts(b) == {"ignored": 2}
    assert b.state is State.CLOSED


def test_sync_timeout_counts_timeout_and_frees_the_caller(fake_clock: FakeClock) -> None:
    release = threading.Event()
    b = make("orders.slow", timeout=0.05)
    try:
        with pytest.raises(CallTimeout, match=r"orders\.slow: no answer within 0\.05 s"):
            b.call(release.wait, 30)
        with pytest.raises(TimeoutError):  # CallTimeout is a TimeoutError too
            b.call(release.wait, 30)
    finally:
        release.set()
    assert counts(b) == {"timeout": 2, "fallback_missing": 2, "exception_thrown": 2}
    assert b.concurrency == 0
    assert events(b)["orders.slow"]["errorCount"] == 2


def test_timeout_with_fallback_answers_the_fallback(fake_clock: FakeClock) -> None:
    release = threading.Event()
    b = make("orders.slowfb", timeout=0.05, fallback=lambda *args: ("cached", *args))
    try:
        assert b.call(release.wait, 30) == ("cached", 30)
    finally:
        release.set()
    assert counts(b) == {"timeout": 1, "fallback_success": 1}


def test_timeout_errors_of_the_call_itself_are_failures(fake_clock: FakeClock) -> None:
    """Only this breaker's own CallTimeout is a timeout; a TimeoutError raised by the call, or an
    inner breaker's CallTimeout, is the dependency failing."""
    b = make("orders.outer", timeout=5.0)
    with pytest.raises(TimeoutError):
        b.call(raiser(TimeoutError("socket")))
    inner = make("orders.inner")
    with pytest.raises(CallTimeout):
        b.call(raiser(CallTimeout(inner.name, "no answer")))
    assert counts(b) == {"failure": 2, "fallback_missing": 2, "exception_thrown": 2}


def test_a_call_finishing_as_the_wait_runs_out_is_not_a_failure(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic: the wait for the answer times out, but by then the call is done."""

    class LateFuture(concurrent.futures.Future[Any]):
        def result(self, timeout: float | None = None) -> Any:
            if timeout is not None:
                raise TimeoutError()  # the wait's own timeout, not the call's
            return super().result()

    class Executor:
        def submit(self, fn: Callable[..., Any], *args: Any) -> LateFuture:
            future = LateFuture()
            future.set_result(fn(*args))
            return future

    monkeypatch.setattr(execution, "_timeout_executor", Executor)
    b = make("orders.late", timeout=0.05)
    assert b.call(lambda: "just in time") == "just in time"
    assert counts(b) == {"success": 1}


def test_thread_pool_rejects_beyond_threads_and_queue(fake_clock: FakeClock) -> None:
    registry = Registry()
    pool = registry.pool("inventory", core_size=1, queue_size=0)
    b = make("inventory.reserve", thread_pool=pool)
    started, release = threading.Event(), threading.Event()
    answers: list[Any] = []

    def blocker() -> str:
        started.set()
        release.wait(30)
        return "reserved"

    holder = threading.Thread(target=lambda: answers.append(b.call(blocker)))
    holder.start()
    try:
        assert started.wait(30)
        with pytest.raises(BulkheadFull, match=r"inventory\.reserve: no free place"):
            b.call(taking(fake_clock, 0.001))
        assert pool.gauges()["currentActiveCount"] == 1
    finally:
        release.set()
        holder.join(30)
    assert answers == ["reserved"]
    assert counts(b) == {"success": 1, "thread_pool_rejected": 1, "fallback_missing": 1, "exception_thrown": 1}

    found = events(b, registry=registry)
    assert found["inventory.reserve"]["rollingCountThreadPoolRejected"] == 1
    assert found["inventory.reserve"]["errorCount"] == 1
    assert found["inventory.reserve"]["propertyValue_executionIsolationStrategy"] == "THREAD"
    tp = found["inventory"]
    assert tp["type"] == "HystrixThreadPool"
    assert tp["rollingCountThreadsExecuted"] == 1
    assert tp["rollingCountCommandRejections"] == 1
    assert tp["rollingMaxActiveThreads"] == 1
    assert (tp["currentActiveCount"], tp["currentQueueSize"], tp["currentCompletedTaskCount"]) == (0, 0, 1)
    assert tp["currentTaskCount"] == 1
    assert tp["currentCorePoolSize"] == 1
    pool.shutdown(wait=True)


def test_a_queued_call_that_times_out_gives_its_queue_place_back(fake_clock: FakeClock) -> None:
    registry = Registry()
    pool = registry.pool("queue", core_size=1, queue_size=1)
    b = make("queue.call", thread_pool=pool, timeout=0.05)
    started, release = threading.Event(), threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(30)
        return "done"

    def hold() -> None:
        with pytest.raises(CallTimeout):
            b.call(blocker)

    holder = threading.Thread(target=hold)
    try:
        holder.start()
        # The first call times out too, but its thread keeps running (as in Hystrix): wait for it.
        assert started.wait(30)
        holder.join(30)
        with pytest.raises(CallTimeout):
            b.call(taking(fake_clock, 0.001))  # queued behind the blocker, then cancelled
        gauges = pool.gauges()
        assert (gauges["currentActiveCount"], gauges["currentQueueSize"]) == (1, 0)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert counts(b) == {"timeout": 2, "fallback_missing": 2, "exception_thrown": 2}
    assert pool.gauges()["currentActiveCount"] == 0


def test_context_manager_counts_like_a_call_without_fallback(fake_clock: FakeClock) -> None:
    b = make("orders.with", bulkhead=2)
    with b:
        fake_clock.elapse(0.005)
    with pytest.raises(Boom), b:
        raise Boom()
    with pytest.raises(Invalid), b:
        raise Invalid()
    with pytest.raises(Benign), b:
        raise Benign()
    b.force_open()
    with pytest.raises(CallNotPermitted), b:
        pytest.fail("a short-circuited block must not run")
    assert counts(b) == {
        "success": 1,
        "failure": 1,
        "bad_request": 1,
        "ignored": 1,
        "short_circuited": 1,
        "fallback_missing": 2,  # the failure and the short circuit: a block has no fallback
        "exception_thrown": 3,
    }
    assert b.concurrency == 0
    assert b.bulkhead is not None
    assert b.bulkhead.active == 0


def test_nested_blocks_of_one_breaker_count_twice(fake_clock: FakeClock) -> None:
    b = make("orders.nested")
    b.call(taking(fake_clock, 0.001))
    assert events(b)["orders.nested"]["rollingMaxConcurrentExecutionCount"] == 1
    with b:
        with b:
            assert b.concurrency == 2
        assert b.concurrency == 1
    assert b.concurrency == 0
    assert counts(b) == {"success": 3}
    assert events(b)["orders.nested"]["rollingMaxConcurrentExecutionCount"] == 2


def test_decorator_keeps_the_function_and_passes_arguments(fake_clock: FakeClock) -> None:
    @breaker("pricing.quote", fallback=lambda sku, qty=1: -1.0, minimum_calls=100)
    def quote(sku: str, qty: int = 1) -> float:
        """Price of a quantity."""
        if sku == "bad":
            raise Boom()
        return 2.5 * qty

    assert quote.__name__ == "quote"
    assert quote.__doc__ == "Price of a quantity."
    assert quote("a", qty=4) == 10.0
    assert quote("bad") == -1.0
    assert breaker("pricing.quote") is breaker("pricing.quote")  # the factory returns the registered one
    assert counts(breaker("pricing.quote")) == {"success": 1, "failure": 1, "fallback_success": 1}


# -- async --------------------------------------------------------------------------------------


def test_scripted_async_calls_count_as_hystrix(fake_clock: FakeClock) -> None:
    async def fallback(*args: Any) -> str:
        return "async fallback"

    b = make("orders.async", fallback=fallback, timeout=0.05)
    plain = make("orders.async-nofb")

    async def ok(value: str) -> str:
        fake_clock.elapse(0.002)
        return value

    async def fails() -> str:
        raise Boom()

    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    async def bad() -> str:
        raise Invalid()

    async def script() -> None:
        assert await b.call_async(ok, "a") == "a"
        assert await b.call_async(fails) == "async fallback"
        assert await b.call_async(hangs) == "async fallback"  # timed out
        with pytest.raises(Invalid):
            await b.call_async(bad)
        with pytest.raises(Boom):
            await plain.call_async(fails)
        with pytest.raises(CallTimeout):
            await plain_timeout()
        b.force_open()
        assert await b.call_async(ok, "b") == "async fallback"

    async def plain_timeout() -> None:
        timed = make("orders.async-timeout", timeout=0.01)
        try:
            await timed.call_async(hangs)
        finally:
            assert counts(timed) == {"timeout": 1, "fallback_missing": 1, "exception_thrown": 1}

    asyncio.run(script())
    assert counts(b) == {
        "success": 1,
        "failure": 1,
        "timeout": 1,
        "bad_request": 1,
        "short_circuited": 1,
        "fallback_success": 3,
        "exception_thrown": 1,
    }
    assert counts(plain) == {"failure": 1, "fallback_missing": 1, "exception_thrown": 1}


def test_async_sync_fallback_and_failing_fallback(fake_clock: FakeClock) -> None:
    async def fails() -> str:
        raise Boom()

    sync_fb = make("orders.async-syncfb", fallback=lambda: "sync fallback")

    async def broken_fallback() -> str:
        raise RuntimeError("fallback broke")

    broken = make("orders.async-broken", fallback=broken_fallback)

    async def script() -> None:
        assert await sync_fb.call_async(fails) == "sync fallback"
        with pytest.raises(RuntimeError, match="fallback broke") as raised:
            await broken.call_async(fails)
        assert isinstance(raised.value.__cause__, Boom)

    asyncio.run(script())
    assert counts(sync_fb) == {"failure": 1, "fallback_success": 1}
    assert counts(broken) == {"failure": 1, "fallback_failure": 1, "exception_thrown": 1}


def test_cancelled_async_call_is_ignored_and_cancels(fake_clock: FakeClock) -> None:
    b = make("orders.cancel", fallback=lambda: "fallback", minimum_calls=1)

    async def script() -> None:
        entered = asyncio.Event()

        async def waits() -> str:
            entered.set()
            await asyncio.Event().wait()
            return "never"

        task = asyncio.ensure_future(b.call_async(waits))
        await entered.wait()
        assert b.concurrency == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(script())
    assert counts(b) == {"ignored": 1}
    assert b.concurrency == 0
    assert b.state is State.CLOSED


def test_async_decorator_and_async_with(fake_clock: FakeClock) -> None:
    b = make("orders.adeco", fallback=lambda order: f"queued {order}")

    @b
    async def place(order: str) -> str:
        if order == "x":
            raise Boom()
        return f"placed {order}"

    async def script() -> None:
        assert await place("o1") == "placed o1"
        assert await place("x") == "queued x"
        async with b:
            assert b.concurrency == 1
        with pytest.raises(Boom):
            async with b:
                raise Boom()

    asyncio.run(script())
    assert counts(b) == {
        "success": 2,
        "failure": 2,
        "fallback_success": 1,
        "fallback_missing": 1,
        "exception_thrown": 1,
    }


def test_coroutine_function_on_a_thread_pool_breaker_is_refused() -> None:
    registry = Registry()
    b = make("orders.pooled", thread_pool=registry.pool("orders-pool", core_size=1))

    async def coro() -> None:
        pass

    with pytest.raises(TypeError, match="a thread pool runs sync functions"):
        b(coro)
    registry.clear()


# -- threads ------------------------------------------------------------------------------------


def hammer(threads: int, body: Callable[[int], None]) -> None:
    """Run ``body(thread_index)`` in ``threads`` threads at once and re-raise the first error."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            body(index)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers)
    if errors:
        raise errors[0]


def test_many_threads_on_one_breaker_count_exactly(fake_clock: FakeClock) -> None:
    threads, per_thread = 8, 300
    b = make("orders.threads", fallback=lambda i: "fallback", minimum_calls=10**6)
    everyone_inside = threading.Barrier(threads)

    def fn(i: int) -> str:
        if i == 0:
            everyone_inside.wait(30)  # every thread's first call is running at once
        if i % 3 == 1:
            raise Boom()
        return "ok"

    def body(index: int) -> None:
        for i in range(per_thread):
            b.call(fn, i)

    hammer(threads, body)
    failures = threads * sum(1 for i in range(per_thread) if i % 3 == 1)
    assert counts(b) == {
        "success": threads * per_thread - failures,
        "failure": failures,
        "fallback_success": failures,
    }
    assert b.concurrency == 0
    event = events(b)["orders.threads"]
    assert event["rollingMaxConcurrentExecutionCount"] == threads
    assert event["currentConcurrentExecutionCount"] == 0
    assert event["requestCount"] == threads * per_thread


def test_threads_racing_an_opening_breaker_count_every_call_once(fake_clock: FakeClock) -> None:
    threads, per_thread = 8, 200
    b = make("orders.opening", minimum_calls=20, failure_rate_threshold=50, wait_in_open=3600)
    seen: list[Transition] = []
    b.add_listener(seen.append)

    def body(index: int) -> None:
        for _ in range(per_thread):
            with pytest.raises((Boom, CallNotPermitted)):
                b.call(raiser(Boom()))

    hammer(threads, body)
    found = counts(b)
    total = threads * per_thread
    assert found["failure"] + found["short_circuited"] == total
    assert found["failure"] >= 20
    assert found["fallback_missing"] == found["exception_thrown"] == total
    assert [(t.from_state, t.to_state) for t in seen] == [(State.CLOSED, State.OPEN)]
    assert b.state is State.OPEN
    assert b.concurrency == 0


def test_threads_on_a_semaphore_bulkhead_never_exceed_it(fake_clock: FakeClock) -> None:
    threads, per_thread, limit = 8, 200, 3
    b = make("orders.bulkhead", bulkhead=limit, fallback=lambda: "busy", minimum_calls=10**6)
    inside = 0
    most = 0
    lock = threading.Lock()

    def fn() -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        with lock:
            inside -= 1
        return "ok"

    def body(index: int) -> None:
        for _ in range(per_thread):
            assert b.call(fn) in ("ok", "busy")

    hammer(threads, body)
    found = counts(b)
    assert found["success"] + found.get("semaphore_rejected", 0) == threads * per_thread
    assert found.get("semaphore_rejected", 0) == found.get("fallback_success", 0)
    assert most <= limit
    assert events(b)["orders.bulkhead"]["rollingMaxConcurrentExecutionCount"] <= limit
    assert b.bulkhead is not None
    assert b.bulkhead.active == 0
    assert b.concurrency == 0


def test_config_is_validated_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="breaker setting minimum_calls: must be at least 1"):
        make("orders.cfg", minimum_calls=0)
    with pytest.raises(ValueError, match="breaker setting failure_rate_threshold"):
        BreakerConfig(failure_rate_threshold=0).validate()
    with pytest.raises(ValueError, match="breaker setting timeout"):
        make("orders.cfg", timeout=0)
    with pytest.raises(ValueError, match="a breaker name is 1–200 characters"):
        make("")
