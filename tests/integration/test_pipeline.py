"""The ingest pipeline over the real embedded store, with faults injected at the
`SpanWriter` seam: senders are answered once their batch is in the write-ahead log; refused
batches are spooled, then replayed exactly once; a full spool and a full queue refuse with a
retryable answer; data the store refuses is stored request by request, repaired or set aside."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.spans import full_batch
from tests.unit.test_otlp_decode import sdk_spans
from tests.unit.test_otlp_pieces import poisoned_request
from tracehouse.collector import CollectorConfig, Overloaded, Pipeline, Spool, decode_protobuf
from tracehouse.collector.errors import PayloadTooLarge, StoreDown
from tracehouse.collector.pipeline import BUSY_PAUSES
from tracehouse.collector.spool import encode
from tracehouse.storage import ClickHouseStore, OtlpPayload, SpanBatch, StoreBusy, StoreRejected, StoreUnavailable

pytestmark = pytest.mark.integration

CONFIG = CollectorConfig(flush_interval=0.01, flush_spans=1000, max_queued_spans=2000, spool_retry_interval=0.05)


class FaultyWriter:
    """The real store behind a switch: while `down` is set, every write fails as an
    unreachable store would. `written` is set after each successful write."""

    def __init__(self, store: ClickHouseStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.written = threading.Event()

    def write(self, batch: SpanBatch) -> None:
        if self.down.is_set():
            raise StoreUnavailable("injected fault: store unreachable")
        self.store.write(batch)
        self.written.set()

    def write_otlp(self, payload: OtlpPayload) -> None:
        if self.down.is_set():
            raise StoreUnavailable("injected fault: store unreachable")
        self.store.write_otlp(payload)
        self.written.set()


class HeldWriter(FaultyWriter):
    """`FaultyWriter` that also keeps the write of the batch named `held` running until `hold` is set."""

    def __init__(self, store: ClickHouseStore, held: str) -> None:
        super().__init__(store)
        self.held = held
        self.hold = threading.Event()
        self.holding = threading.Event()

    def write(self, batch: SpanBatch) -> None:
        if not self.down.is_set() and batch.span_name[0] == self.held:
            self.holding.set()
            self.hold.wait(30)
        super().write(batch)


def stored(store: ClickHouseStore, batch: SpanBatch) -> int:
    return int(
        store.client().command(
            "SELECT count() FROM otel_traces WHERE TraceId = {t:String}", parameters={"t": batch.trace_id[0]}
        )
    )


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most 30 s) for state another task changes."""
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.005)


async def run_pipeline(pipeline: Pipeline, scenario: object) -> None:
    task = asyncio.create_task(pipeline.run())
    try:
        await scenario  # type: ignore[misc]
    finally:
        await pipeline.close()
        await task


def test_refused_batches_are_spooled_then_replayed_once(store: ClickHouseStore, tmp_path: Path) -> None:
    writer = FaultyWriter(store)
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CONFIG, spool)
    batches = [full_batch(spans=3), full_batch(spans=4)]

    async def scenario() -> None:
        writer.down.set()
        for batch in batches:
            await pipeline.submit(batch)  # acknowledged (logged) although the store is down
        await until(lambda: len(spool) == 2)  # the inserts failed: spooled
        assert [stored(store, b) for b in batches] == [0, 0]
        assert pipeline.store_failing  # what /healthz tells
        writer.down.clear()
        await until(lambda: len(spool) == 0)
        assert not pipeline.store_failing
        late = full_batch(spans=2)
        await pipeline.submit(late)
        await until(lambda: stored(store, late) == 2)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert [stored(store, b) for b in batches] == [3, 4]


def test_otlp_payloads_are_spooled_and_replayed_too(store: ClickHouseStore, tmp_path: Path) -> None:
    writer = FaultyWriter(store)
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CONFIG, spool)
    decoded = decode_protobuf(encode_spans(sdk_spans()).SerializeToString())
    columns = full_batch(spans=2)

    async def scenario() -> None:
        writer.down.set()
        await asyncio.gather(pipeline.submit(decoded.payload), pipeline.submit(columns))
        await until(lambda: len(spool) == 2)
        assert sorted(p.suffix for p in (tmp_path / "spool").iterdir() if p.is_file()) == [".batch", ".otlp"]
        writer.down.clear()
        await until(lambda: len(spool) == 0)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 4


@pytest.mark.parametrize("kept_in", ["spool", "write-ahead log"])
def test_a_replay_repeated_after_a_crash_stores_once(store: ClickHouseStore, tmp_path: Path, kept_in: str) -> None:
    """Crash between the insert (of a spooled batch, or of a logged one whose senders were
    answered) and the file's removal: the next start replays the same batch (same token) and
    the store keeps one copy."""
    batch = full_batch(spans=5)
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    spool.append(batch) if kept_in == "spool" else spool.log(batch)
    store.write(batch)  # the insert that happened before the crash
    restarted = Spool(tmp_path / "spool", max_bytes=100_000_000)
    writer = FaultyWriter(store)
    pipeline = Pipeline(writer, CONFIG, restarted)

    async def scenario() -> None:
        await asyncio.to_thread(writer.written.wait, 10)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert len(restarted) == 0
    assert stored(store, batch) == 5


def test_a_full_spool_refuses_with_a_retryable_answer(store: ClickHouseStore, tmp_path: Path) -> None:
    writer = FaultyWriter(store)
    first = full_batch()
    spool = Spool(tmp_path / "spool", max_bytes=len(encode(first)) + 100)
    pipeline = Pipeline(writer, CONFIG, spool)

    async def scenario() -> None:
        writer.down.set()
        await pipeline.submit(first)
        with pytest.raises(Overloaded, match="spool is full"):
            await pipeline.submit(full_batch())

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert len(spool) == 1


def test_without_a_spool_a_refusal_reaches_the_sender(store: ClickHouseStore) -> None:
    writer = FaultyWriter(store)
    pipeline = Pipeline(writer, CONFIG)

    async def scenario() -> None:
        writer.down.set()
        with pytest.raises(StoreDown, match="injected fault"):
            await pipeline.submit(full_batch())

    asyncio.run(run_pipeline(pipeline, scenario()))


def test_a_full_queue_refuses_at_once(store: ClickHouseStore) -> None:
    class BlockedWriter:
        def __init__(self) -> None:
            self.entered = threading.Event()
            self.release = threading.Event()

        def write(self, batch: SpanBatch) -> None:
            self.entered.set()
            self.release.wait(30)

        def write_otlp(self, payload: OtlpPayload) -> None:
            raise AssertionError("not used")

    writer = BlockedWriter()
    config = CollectorConfig(flush_interval=0.01, flush_spans=10, max_queued_spans=10, flush_workers=1)
    pipeline = Pipeline(writer, config)

    async def scenario() -> None:
        first = asyncio.create_task(pipeline.submit(full_batch(spans=10)))
        await asyncio.to_thread(writer.entered.wait, 10)  # taken by the writer, which blocks
        assert pipeline.queued_spans == 0
        second = asyncio.create_task(pipeline.submit(full_batch(spans=10)))
        await until(lambda: pipeline.queued_spans == 10)
        with pytest.raises(Overloaded, match="queue is full"):
            await pipeline.submit(full_batch(spans=1))
        writer.release.set()
        await asyncio.gather(first, second)

    asyncio.run(run_pipeline(pipeline, scenario()))


class RefusingWriter(HeldWriter):
    """`HeldWriter` that refuses as data (as ClickHouse refuses a value it cannot parse)
    every OTLP insert holding a span named `refuse-me`."""

    def __init__(self, store: ClickHouseStore, held: str = "") -> None:
        super().__init__(store, held)

    def write_otlp(self, payload: OtlpPayload) -> None:
        if b"refuse-me" in payload.data:
            raise StoreRejected("injected fault: Code: 27. DB::Exception: Cannot parse input")
        super().write_otlp(payload)


def otlp_request(name: str = "") -> OtlpPayload:
    request = encode_spans(sdk_spans())
    if name:
        request.resource_spans[0].scope_spans[0].spans[0].name = name
    return decode_protobuf(request.SerializeToString()).payload


async def submit_all(pipeline: Pipeline, payloads: list[OtlpPayload]) -> list[str]:
    """Submit at once (one merged insert) and run the pipeline to its end; each answer's type."""
    task = asyncio.create_task(pipeline.run())
    try:
        results = await asyncio.gather(*(pipeline.submit(p) for p in payloads), return_exceptions=True)
    finally:
        await pipeline.close()
        await task
    return [type(r).__name__ for r in results]


@pytest.mark.parametrize("logged", [True, False])
def test_a_request_with_a_field_the_store_refuses_is_stored_without_it(
    store: ClickHouseStore, tmp_path: Path, logged: bool
) -> None:
    """Merged with good requests, a poisoned one (a known field with another wire type, which
    protobuf parsers keep as an unknown field) makes the insert fail: the pipeline stores the
    requests one by one, the poisoned one without that field, as a protobuf parser reads it —
    whether the senders were answered from the write-ahead log or wait for the insert."""
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    writer = HeldWriter(store, held="busy")
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.05, flush_workers=1), spool)
    poison = decode_protobuf(poisoned_request())
    assert (poison.payload.spans, poison.rejected) == (1, 0)  # the parser cannot tell
    good = [otlp_request() for _ in range(3)]

    async def scenario() -> None:
        busy = asyncio.ensure_future(pipeline.submit(named_batch("busy")))
        if logged:
            await asyncio.to_thread(writer.holding.wait, 30)  # the one insert slot is taken
        else:
            writer.hold.set()
            await busy
        async with asyncio.timeout(30):  # answered before the held insert ends, when logged
            answers = await asyncio.gather(*(pipeline.submit(p) for p in [good[0], poison.payload, *good[1:]]))
        assert answers == [None] * 4
        writer.hold.set()
        await busy

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 2 + 3 * 2 + 1
    assert len(spool) == 0
    assert not list((tmp_path / "spool").glob("*.rejected"))


def test_a_lone_request_with_a_field_the_store_refuses_is_stored_without_it(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    """Alone, with no insert running (so answered after its insert, not logged ahead), a poisoned
    request is stored without that field as well: its good spans are not answered 400."""
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(store, CollectorConfig(flush_interval=0.05), spool)
    poison = decode_protobuf(poisoned_request()).payload

    assert asyncio.run(submit_all(pipeline, [poison])) == ["NoneType"]
    assert int(store.client().command("SELECT count() FROM otel_traces")) == poison.spans == 1
    assert len(spool) == 0


def test_data_the_store_refuses_is_answered_400_when_answers_wait_for_the_insert(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(RefusingWriter(store), CollectorConfig(flush_interval=0.05, write_ahead=0), spool)
    payloads = [otlp_request(), otlp_request("refuse-me"), otlp_request()]

    answers = asyncio.run(submit_all(pipeline, payloads))
    assert answers == ["NoneType", "RejectedByStore", "NoneType"]
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 4
    assert len(spool) == 0


def test_acknowledged_data_the_store_refuses_is_set_aside_and_the_rest_stored(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    """With the write-ahead log the senders were answered before the insert: a request the
    store refuses as data is kept in the spool as `.rejected` (logged), the others stored."""
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    writer = RefusingWriter(store, held="busy")
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.05, flush_workers=1), spool)
    refused = otlp_request("refuse-me")

    async def scenario() -> None:
        busy = asyncio.ensure_future(pipeline.submit(named_batch("busy")))
        await asyncio.to_thread(writer.holding.wait, 30)  # the one insert slot is taken
        async with asyncio.timeout(30):  # answered once logged, before the held insert ends
            answers = await asyncio.gather(*(pipeline.submit(p) for p in [otlp_request(), refused, otlp_request()]))
        assert answers == [None] * 3
        writer.hold.set()
        await busy

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 2 + 4
    assert pipeline.set_aside_spans == 2
    assert len(spool) == 0
    [kept] = (tmp_path / "spool").glob("*.rejected")
    assert kept.read_bytes().endswith(refused.data)
    assert list((tmp_path / "spool" / "ahead").iterdir()) == []


def test_a_spooled_batch_the_store_refuses_is_stored_request_by_request(store: ClickHouseStore, tmp_path: Path) -> None:
    """A spooled batch of merged requests, one of them poisoned: the replay stores each
    request alone, the poisoned one repaired; one the store still refuses is set aside."""
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    merged = OtlpPayload.concat([otlp_request(), decode_protobuf(poisoned_request()).payload, otlp_request()])
    spool.append(merged)
    spool.append(OtlpPayload.concat([otlp_request("refuse-me"), otlp_request()]))
    good = full_batch(spans=2)
    spool.append(good)
    pipeline = Pipeline(RefusingWriter(store), CONFIG, spool)

    async def scenario() -> None:
        await until(lambda: len(spool) == 0)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert stored(store, good) == 2
    assert int(store.client().command("SELECT count() FROM otel_traces")) == 2 + 1 + 2 + 2 + 2
    assert [p.suffix for p in (tmp_path / "spool").iterdir() if p.is_file()] == [".rejected"]


class DownAfterOneWrite(RefusingWriter):
    """`RefusingWriter` whose store goes down right after its first successful OTLP write
    (until `down` is cleared; it stays up from then on)."""

    def __init__(self, store: ClickHouseStore) -> None:
        super().__init__(store)
        self.went_down = False

    def write_otlp(self, payload: OtlpPayload) -> None:
        super().write_otlp(payload)
        if not self.went_down:
            self.went_down = True
            self.down.set()


def test_a_refused_logged_batch_whose_pieces_cannot_all_be_made_durable_is_spooled_whole(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    """Answered from the write-ahead log, a merged batch is refused as data; stored request by
    request, the first is stored, the refused one set aside, then the store goes down and the
    spool has no room for the last: the whole logged batch is spooled. Its replay, once the store
    is back, stores the requests again under the same tokens: every span exactly once."""
    good, refused, last = otlp_request(), otlp_request("refuse-me"), otlp_request()
    logged_size = len(encode(OtlpPayload.concat([good, refused, last])))
    spool = Spool(tmp_path / "spool", max_bytes=logged_size + 10)  # the log fits, nothing beside it
    writer = DownAfterOneWrite(store)
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.05, spool_retry_interval=0.05), spool)

    async def scenario() -> None:
        answers = await asyncio.gather(*(pipeline.submit(p) for p in [good, refused, last]))
        assert answers == [None] * 3  # answered once logged: the insert comes after
        await until(lambda: pipeline.spooled_spans > 0)
        assert len(spool) == 1  # the logged batch, adopted whole
        assert int(store.client().command("SELECT count() FROM otel_traces")) == len(good)
        writer.down.clear()
        await until(lambda: len(spool) == 0)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert int(store.client().command("SELECT count() FROM otel_traces")) == len(good) + len(last)
    # the refused request met twice (the first pass, the replay) and kept once
    [kept] = (tmp_path / "spool").glob("*.rejected")
    assert kept.read_bytes().endswith(refused.data)
    assert pipeline.set_aside_spans == len(refused)
    assert list((tmp_path / "spool" / "ahead").iterdir()) == []


def test_one_request_larger_than_the_queue_is_too_large(store: ClickHouseStore) -> None:
    pipeline = Pipeline(store, CollectorConfig(flush_spans=10, max_queued_spans=10))

    async def scenario() -> None:
        with pytest.raises(PayloadTooLarge, match="more than the queue holds"):
            await pipeline.submit(full_batch(spans=11))

    asyncio.run(run_pipeline(pipeline, scenario()))


class BusyWriter:
    """The real store behind a writer that answers `StoreBusy` (as ClickHouse does when an insert
    exceeds its memory limit) to the first `busy` writes of the batches named in `busy_for`,
    and logs when each write starts and ends. `hold` keeps the write of batch `held` running."""

    def __init__(self, store: ClickHouseStore, busy_for: dict[str, int], held: str = "") -> None:
        self.store = store
        self.busy_for = busy_for
        self.held = held
        self.hold = threading.Event()
        self.log: list[tuple[str, str]] = []

    def write(self, batch: SpanBatch) -> None:
        name = batch.span_name[0]
        self.log.append(("start", name))
        if self.busy_for.get(name, 0):
            self.busy_for[name] -= 1
            self.log.append(("busy", name))
            raise StoreBusy("injected fault: Code: 241. DB::Exception: (total) memory limit exceeded")
        if name == self.held:
            self.hold.wait(30)
        self.store.write(batch)
        self.log.append(("end", name))

    def write_otlp(self, payload: OtlpPayload) -> None:
        raise AssertionError("not used")


def named_batch(name: str) -> SpanBatch:
    batch = full_batch(spans=2)
    batch.span_name[:] = [name] * len(batch)
    return batch


def test_a_busy_store_gets_the_insert_again_alone_instead_of_the_spool(store: ClickHouseStore, tmp_path: Path) -> None:
    """A store short of memory for two inserts at once: the refused one is tried again once
    the other has ended, and no new insert starts meanwhile; nothing goes to the spool (which
    would send every later batch through it too)."""
    writer = BusyWriter(store, {"b": 1}, held="a")
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.01, flush_spans=2, flush_workers=2), spool)
    a, b, c = named_batch("a"), named_batch("b"), named_batch("c")

    async def scenario() -> None:
        first = asyncio.gather(pipeline.submit(a), pipeline.submit(b))
        await until(lambda: ("busy", "b") in writer.log)
        late = asyncio.ensure_future(pipeline.submit(c))
        await asyncio.sleep(0.3)  # b's retry and c would run now if they did not wait for a
        assert writer.log.count(("start", "b")) == 1
        assert ("start", "c") not in writer.log
        writer.hold.set()
        await first
        await late

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert writer.log.index(("end", "a")) < writer.log.index(("end", "b")) < writer.log.index(("start", "c"))
    assert pipeline.busy_retries == 1
    assert len(spool) == 0
    assert [stored(store, batch) for batch in (a, b, c)] == [2, 2, 2]


def test_a_store_busy_past_the_retries_has_the_batch_spooled(store: ClickHouseStore, tmp_path: Path) -> None:
    writer = BusyWriter(store, {"a": 1 + len(BUSY_PAUSES)})
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CONFIG, spool)
    batch = named_batch("a")

    async def scenario() -> None:
        await pipeline.submit(batch)  # acknowledged: logged
        await until(lambda: pipeline.spooled_spans == 2)  # still busy after the retries: spooled
        assert pipeline.busy_retries == len(BUSY_PAUSES)
        await until(lambda: len(spool) == 0)  # replayed once the store has room

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert stored(store, batch) == 2


def test_a_store_back_takes_new_batches_while_the_spool_drains(store: ClickHouseStore, tmp_path: Path) -> None:
    """Once a spooled batch is written again, new batches go to the store, not behind the rest of
    the spool: a spool filled during an outage (or by one insert refused for memory) does not put
    every later batch through the slower one-at-a-time replay until it is empty."""
    writer = HeldWriter(store, held="b")
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CONFIG, spool)
    a, b, c = named_batch("a"), named_batch("b"), named_batch("c")

    async def scenario() -> None:
        writer.down.set()
        await pipeline.submit(a)
        await pipeline.submit(b)
        await until(lambda: len(spool) == 2)
        writer.down.clear()
        await asyncio.to_thread(writer.holding.wait, 30)  # a replayed; b's replay is running
        await pipeline.submit(c)
        await until(lambda: stored(store, c) == 2)  # written, not spooled behind b (held until below)
        assert len(spool) == 1
        writer.hold.set()
        await until(lambda: len(spool) == 0)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert [stored(store, batch) for batch in (a, b, c)] == [2, 2, 2]


def test_new_batches_go_to_the_spool_while_the_store_stays_down(store: ClickHouseStore, tmp_path: Path) -> None:
    """Until a spooled batch is written again, a new batch is spooled without trying the store."""
    writer = FaultyWriter(store)
    attempts: list[int] = []
    original = writer.write

    def counted(batch: SpanBatch) -> None:
        attempts.append(len(batch))
        original(batch)

    writer.write = counted  # type: ignore[method-assign]
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.01, spool_retry_interval=30), spool)

    async def scenario() -> None:
        writer.down.set()
        await pipeline.submit(full_batch(spans=3))
        await until(lambda: len(spool) == 1)
        await pipeline.submit(full_batch(spans=4))
        await until(lambda: len(spool) == 2)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert attempts[:2] == [3, 3]  # the first batch, then its first replay; the second never tried
    assert 4 not in attempts


@pytest.mark.parametrize("write_ahead", [2, 0])
def test_while_an_insert_runs_senders_are_answered_once_logged(
    store: ClickHouseStore, tmp_path: Path, write_ahead: int
) -> None:
    """A batch flushed while nothing is being inserted is inserted, then answered (its spans can
    be read back at once); one flushed while an insert runs is written to the write-ahead log and
    answered before its insert — unless `write_ahead` is 0."""
    writer = HeldWriter(store, held="a")
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    config = CollectorConfig(flush_interval=0.01, flush_workers=1, write_ahead=write_ahead)
    pipeline = Pipeline(writer, config, spool)
    a, b = named_batch("a"), named_batch("b")

    async def scenario() -> None:
        a_answered = asyncio.ensure_future(pipeline.submit(a))
        await asyncio.to_thread(writer.holding.wait, 30)  # a's insert has started and is held
        b_answered = asyncio.ensure_future(pipeline.submit(b))
        if write_ahead:
            async with asyncio.timeout(30):
                await b_answered  # logged while a's insert runs
            assert [p.name for p in (tmp_path / "spool" / "ahead").iterdir()] == ["000000000001.batch"]
            assert stored(store, b) == 0
        else:
            await asyncio.sleep(0.2)  # b would be taken and answered now if it did not wait for a
            assert not b_answered.done()
        assert not a_answered.done()  # a came while nothing was inserted: answered once inserted
        writer.hold.set()
        await asyncio.gather(a_answered, b_answered)
        assert stored(store, a) == 2
        await until(lambda: stored(store, b) == 2)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert list((tmp_path / "spool" / "ahead").iterdir()) == []  # forgotten once stored


def test_a_batch_of_several_requests_is_answered_once_logged(store: ClickHouseStore, tmp_path: Path) -> None:
    """Requests merged into one batch are answered once it is in the write-ahead log, before its
    insert, though nothing else is being inserted: answered after the insert, every sender would
    wait for it and all send again at once, one insert at a time (16 senders: 27k spans/s stored,
    54k so)."""
    writer = HeldWriter(store, held="a")
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    pipeline = Pipeline(writer, CollectorConfig(flush_interval=0.2, flush_workers=1), spool)
    a, b = named_batch("a"), named_batch("b")

    async def scenario() -> None:
        async with asyncio.timeout(30):
            await asyncio.gather(pipeline.submit(a), pipeline.submit(b))  # one batch, "a" first: held
        assert [p.name for p in (tmp_path / "spool" / "ahead").iterdir()] == ["000000000001.batch"]
        assert stored(store, a) == stored(store, b) == 0
        writer.hold.set()
        await until(lambda: stored(store, a) == stored(store, b) == 2)

    asyncio.run(run_pipeline(pipeline, scenario()))
    assert writer.holding.is_set()  # the two were one insert, held while they were answered
    assert list((tmp_path / "spool" / "ahead").iterdir()) == []
