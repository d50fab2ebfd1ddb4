"""The ingest pipeline: one bounded queue, group commit into the `SpanWriter`, and the spool.

A request's spans are queued and its sender is answered only when they are durable: written
by the store, or — when the store refuses — appended to the on-disk spool, which is replayed
in order once the store is back, or — while an insert runs, or when several requests share
the batch — written to the spool's write-ahead log, so senders go on while the inserts run
(and the rate does not depend on how many senders wait for their answers). Past its bound
the queue refuses at once (`Overloaded`), and so does a full spool, so memory and disk stay
bounded whatever senders do. So does a queue that stopped draining (its oldest request
waited too long): senders are answered in seconds, well within an exporter's timeout, instead
of piling up behind a slow store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracehouse.collector.config import CollectorConfig
from tracehouse.collector.errors import Overloaded, PayloadTooLarge, RejectedByStore, StoreDown
from tracehouse.collector.otlp import repaired, split_requests
from tracehouse.collector.spool import Spool, Spooled, SpoolFull
from tracehouse.storage import OtlpPayload, SpanBatch, SpanWriter, StorageError, StoreBusy, StoreRejected

log = logging.getLogger(__name__)

#: A busy store (out of memory, too many parts) gets the insert again after each of these
#: pauses, alone: other inserts finish first and no new one starts until it is through. Only
#: then is the batch spooled — spooling is for a store that is down: until a spooled batch has
#: been written again, every newer batch goes to the spool too, without trying the store.
BUSY_PAUSES = (0.05, 0.25, 1.0)
#: How many set-aside pieces' tokens the pipeline remembers so as not to set one aside twice.
SET_ASIDE_REMEMBERED = 1024

#: What decoders hand to the pipeline: columns (Zipkin) or validated OTLP bytes.
Batch = SpanBatch | OtlpPayload


@dataclass(slots=True)
class _Pending:
    batch: Batch
    done: asyncio.Future[None]
    queued_at: float


class Pipeline:
    """Group commit: flush at `flush_spans` queued spans or `flush_interval` seconds after the
    oldest queued request, with up to `flush_workers` inserts running at once, each of at most
    `flush_spans` spans and (OTLP) `flush_bytes` bytes, so an insert's memory is bounded. Run
    `run()` as a task; `close()` makes it flush what is queued and end (spooled batches stay on
    disk for the next start)."""

    def __init__(self, writer: SpanWriter, config: CollectorConfig, spool: Spool | None = None) -> None:
        self._writer = writer
        self._config = config
        self._spool = spool
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
        self._last_request_spans = 0
        self._wakeup = asyncio.Event()
        self._replay_wakeup = asyncio.Event()
        self._closing = False
        self.written_spans = 0
        self.spooled_spans = 0
        self.busy_retries = 0
        self.set_aside_spans = 0
        # Tokens of the pieces set aside lately: a spooled batch retried after a later piece could
        # not be made durable meets its refused piece again, which is kept once (newest 1,024).
        self._set_aside: dict[str, None] = {}
        # Set when a batch is spooled because the store refused it; cleared once a spooled batch
        # is written. While set, new batches go straight to the spool (the store is down: each
        # would wait for its own refusal); once clear, they are inserted beside the replay, so a
        # store that is back takes new data at the normal rate while the spool drains.
        self._store_failing = False
        self._inserting = 0
        self._insert_ended = asyncio.Event()
        self._may_insert = asyncio.Event()  # cleared while a busy retry waits to run alone
        self._may_insert.set()
        self._retry_alone = asyncio.Lock()
        self._insert_slots = asyncio.Semaphore(config.flush_workers)
        self._write_ahead = spool is not None and config.write_ahead > 0
        self.flush_observer: Callable[[float], None] | None = None  # seconds per durable flush

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    @property
    def store_failing(self) -> bool:
        """The store refused a batch for a reason of its own (down, disk full, access) and has
        written none since: new batches go to the spool."""
        return self._store_failing

    def refuse_early(self) -> None:
        """Raise `Overloaded` now if `submit` would refuse a request as large as the last one
        queued. Receivers call it before decoding: under overload about half the requests are
        refused, and decoding each only to refuse it spends the CPU the inserts need."""
        self._admit(self._last_request_spans)

    async def submit(self, batch: Batch) -> None:
        """Return once `batch` is durable. Raises `Overloaded` (queue full, spool full, closing)
        or `StoreDown` (store refused and no spool: nothing of the batch is assumed stored)."""
        if not len(batch):
            return
        if len(batch) > self._config.max_queued_spans:
            raise PayloadTooLarge(
                f"one request of {len(batch)} spans is more than the queue holds ({self._config.max_queued_spans})"
            )
        self._admit(len(batch))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, done, time.monotonic()))
        self._queued_spans += len(batch)
        self._last_request_spans = len(batch)
        if self._queued_spans >= self._config.flush_spans or len(self._queue) == 1:
            self._wakeup.set()
        await asyncio.shield(done)

    def _admit(self, spans: int) -> None:
        """`Overloaded` unless the queue takes `spans` more spans now."""
        if self._closing:
            raise Overloaded("the collector is shutting down; retry later")
        if self._queued_spans + spans > self._config.max_queued_spans:
            raise Overloaded(f"ingest queue is full ({self._queued_spans} spans waiting); retry later")
        self._refuse_when_stalled()

    def _refuse_when_stalled(self) -> None:
        """`Overloaded` while the oldest queued request has waited `max_queue_delay` seconds
        more than its linger: the store is behind, and a new request would wait longer still."""
        if not self._queue:
            return
        waited = time.monotonic() - self._queue[0].queued_at - self._config.flush_interval
        if waited > self._config.max_queue_delay:
            raise Overloaded(f"the store is behind: the oldest queued request has waited {waited:.1f} s; retry later")

    async def run(self) -> None:
        """Flush (and replay the spool) until `close()` was called and the queue is empty."""
        replay = asyncio.create_task(self._replay(), name="spool-replay")
        # A flush holds one of these from taking its requests until they are stored. With the
        # write-ahead log, `write_ahead` more than the inserts: while inserts run, the next
        # batches are logged and their senders answered, so the rate no longer depends on how
        # many senders wait for their answer.
        ahead = self._config.write_ahead if self._write_ahead else 0
        workers = asyncio.Semaphore(self._config.flush_workers + ahead)
        flushes: set[asyncio.Task[None]] = set()
        try:
            while not (self._closing and not self._queue):
                await workers.acquire()  # take from the queue only when a flush may start
                await self._wait_for_work()
                items = self._take()
                if not items:
                    workers.release()
                    continue
                flush = asyncio.create_task(self._flush(items))
                flushes.add(flush)
                flush.add_done_callback(flushes.discard)
                flush.add_done_callback(lambda _: workers.release())
            await asyncio.gather(*flushes)
        finally:
            self._replay_wakeup.set()
            await replay

    async def close(self) -> None:
        """Refuse new batches; `run()` then flushes what is queued and ends."""
        self._closing = True
        self._wakeup.set()

    async def _wait_for_work(self) -> None:
        while not self._queue and not self._closing:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._closing or self._queued_spans >= self._config.flush_spans:
            return
        linger = self._queue[0].queued_at + self._config.flush_interval - time.monotonic()
        if linger > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), linger)

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        spans = size = 0
        while self._queue and (not taken or self._fits(spans, size, self._queue[0].batch)):
            item = self._queue.popleft()
            taken.append(item)
            spans += len(item.batch)
            size += _size(item.batch)
        self._queued_spans -= spans
        return taken

    def _fits(self, spans: int, size: int, batch: Batch) -> bool:
        config = self._config
        return spans + len(batch) <= config.flush_spans and size + _size(batch) <= config.flush_bytes

    async def _flush(self, items: list[_Pending]) -> None:
        started = time.monotonic()
        await self._flush_items(items)
        if self.flush_observer is not None:
            self.flush_observer(time.monotonic() - started)

    async def _flush_items(self, items: list[_Pending]) -> None:
        groups = [
            [item for item in items if isinstance(item.batch, OtlpPayload)],
            [item for item in items if isinstance(item.batch, SpanBatch)],
        ]
        items.clear()  # a group's requests are let go once answered (see `_flush_group`)
        while groups:
            group = groups.pop()
            if group:
                await self._flush_group(group)

    async def _flush_group(self, group: list[_Pending]) -> None:
        batch = _merge([item.batch for item in group])
        # Logged ahead while an insert runs (under load), or when the batch merges several
        # requests (several senders wait on it: answered after the insert, they would all wait
        # for it and send their next requests together, one insert at a time). A lone request
        # with no insert running is inserted first: its answer also means its spans can be read.
        logged = await self._log(batch) if self._inserting or len(group) > 1 else None
        if isinstance(logged, Exception):
            _settle(group, logged)
            return
        if logged is not None:
            _settle(group, None)  # durable in the write-ahead log: the senders may go on
            pieces = group[:] if isinstance(batch, SpanBatch) else []  # OTLP splits back from `batch`
            group.clear()  # the requests' own bytes are not kept while the insert waits
            async with self._insert_slots:
                await self._store_logged(batch, logged, pieces)
            return
        async with self._insert_slots:
            error = await self._store_or_spool(batch)
            if isinstance(error, RejectedByStore) and len(group) > 1:
                # One request's data spoiled the merged insert: isolate it, store the others.
                errors = await self._store_pieces([item.batch for item in group], set_aside=False)
                for item, piece_error in zip(group, errors, strict=True):
                    _settle([item], piece_error)
            else:
                _settle(group, await self._store_repaired(batch, error))

    async def _log(self, batch: Batch) -> Path | Overloaded | None:
        """Write `batch` to the write-ahead log: its path; `Overloaded` when the spool is full
        and the store failing; None without a spool or when the log cannot take it now (the
        senders are then answered once the batch is stored or spooled)."""
        if not self._write_ahead or self._spool is None:  # no spool: no write-ahead either
            return None
        try:
            return await asyncio.to_thread(self._spool.log, batch)
        except SpoolFull as exc:
            if self._store_failing:
                return Overloaded(f"the store is unavailable and the spool is full ({exc}); retry later")
            return None
        except OSError as exc:
            log.error("cannot write the write-ahead log (%s); answering senders once their spans are stored", exc)
            return None

    async def _store_logged(self, batch: Batch, logged: Path, group: list[_Pending]) -> None:
        """Insert a logged (acknowledged) batch, then forget it; into the spool when the store
        refuses it; piece by piece when the store refuses it as data."""
        spool = self._spool
        assert spool is not None
        try:
            if not (self._store_failing and len(spool)):
                try:
                    await self._insert(batch)
                    self.written_spans += len(batch)
                    await asyncio.to_thread(spool.forget, logged)
                    return
                except StoreRejected as exc:
                    log.warning("the store refused %d spans as data, storing them by request: %s", len(batch), exc)
                    if not any(await self._store_pieces(_pieces(batch, group), set_aside=True)):
                        await asyncio.to_thread(spool.forget, logged)
                        return
                    # A piece neither stored, spooled nor set aside: the whole batch is spooled;
                    # its replay stores the pieces again under the same tokens (no doubles).
                except StorageError as exc:
                    log.warning("the store refused %d spans, spooled: %s", len(batch), exc)
                    self._store_failing = True
                except Exception:
                    log.exception("unexpected error storing %d spans; spooled", len(batch))
            await asyncio.to_thread(spool.adopt, logged)
        except OSError as exc:
            log.error("cannot spool logged batch %s (%s); it is spooled at the next start", logged, exc)
            return
        self.spooled_spans += len(batch)
        self._replay_wakeup.set()

    async def _store_pieces(self, pieces: list[Batch], set_aside: bool) -> list[Exception | None]:
        """Store each piece of a batch the store refused as data on its own; a piece refused
        again is stored without the fields the parser did not know (`repaired`), else set aside
        in the spool (`set_aside`) or answered `RejectedByStore`. The error for each piece."""
        errors: list[Exception | None] = []
        for piece in pieces:
            error = await self._store_repaired(piece, await self._store_or_spool(piece))
            if isinstance(error, RejectedByStore) and set_aside and self._spool is not None:
                if piece.token not in self._set_aside:
                    log.error("%d acknowledged spans refused as data, set aside in the spool: %s", len(piece), error)
                    await asyncio.to_thread(self._spool.set_aside, piece)
                    self.set_aside_spans += len(piece)
                    self._set_aside[piece.token] = None
                    if len(self._set_aside) > SET_ASIDE_REMEMBERED:
                        del self._set_aside[next(iter(self._set_aside))]
                error = None
            errors.append(error)
        return errors

    async def _store_repaired(self, piece: Batch, error: Exception | None) -> Exception | None:
        """After the store refused a one-request `piece` as data (`error`): the piece stored without
        the fields the parser did not know (`repaired`), when it has such fields; the error to answer."""
        if isinstance(error, RejectedByStore):
            fixed = repaired(piece)
            if fixed is not None:
                log.warning("storing %d spans without the fields of unexpected wire type", len(piece))
                return await self._store_or_spool(fixed)
        return error

    async def _store_or_spool(self, batch: Batch) -> Exception | None:
        """Make `batch` durable; the error to answer with, or None."""
        if self._spool is None or not (self._store_failing and len(self._spool)):
            try:
                await self._insert(batch)
                self.written_spans += len(batch)
                return None
            except StoreRejected as exc:
                log.warning("the store refused %d spans as data: %s", len(batch), exc)
                return RejectedByStore(f"the store refused these spans: {exc}")
            except StorageError as exc:
                log.warning("the store refused %d spans: %s", len(batch), exc)
                if self._spool is None:
                    return StoreDown(f"the store refused the spans, retry later: {exc}")
                self._store_failing = True
            except Exception as exc:
                log.exception("unexpected error storing %d spans", len(batch))
                return StoreDown(f"internal error storing the spans, retry later: {type(exc).__name__}")
        return await self._to_spool(batch)

    async def _insert(self, batch: Batch) -> None:
        """Write `batch`; when the store is busy, again after each of `BUSY_PAUSES`, alone."""
        await self._may_insert.wait()
        try:
            await self._write_counted(batch)
            return
        except StoreBusy as exc:
            error = exc
        async with self._retry_alone:
            self._may_insert.clear()
            try:
                for pause in BUSY_PAUSES:
                    log.info("the store is busy, writing %d spans again alone in %g s: %s", len(batch), pause, error)
                    self.busy_retries += 1
                    await asyncio.sleep(pause)
                    while self._inserting:
                        self._insert_ended.clear()
                        await self._insert_ended.wait()
                    try:
                        await self._write_counted(batch)
                        return
                    except StoreBusy as exc:
                        error = exc
            finally:
                self._may_insert.set()
        raise error

    async def _write_counted(self, batch: Batch) -> None:
        self._inserting += 1
        try:
            await asyncio.to_thread(self._write, batch)
        finally:
            self._inserting -= 1
            self._insert_ended.set()

    def _write(self, batch: Batch) -> None:
        if isinstance(batch, OtlpPayload):
            self._writer.write_otlp(batch)
        else:
            self._writer.write(batch)

    async def _to_spool(self, batch: Batch) -> Exception | None:
        assert self._spool is not None
        try:
            await asyncio.to_thread(self._spool.append, batch)
        except SpoolFull as exc:
            return Overloaded(f"the store is unavailable and the spool is full ({exc}); retry later")
        except OSError as exc:
            log.error("cannot write the spool: %s", exc)
            return StoreDown(f"the store is unavailable and the spool cannot be written ({exc}); retry later")
        self.spooled_spans += len(batch)
        self._replay_wakeup.set()
        return None

    async def _replay(self) -> None:
        """Write spooled batches, oldest first, with their original tokens (no doubles).
        A batch the store refuses as data is moved aside (`.rejected`), never retried forever."""
        spool = self._spool
        if spool is None:
            return
        while not self._closing:
            self._replay_wakeup.clear()  # before looking: a batch spooled meanwhile sets it again
            try:
                spooled = await asyncio.to_thread(spool.oldest)
                if spooled is None:
                    await self._replay_wakeup.wait()
                elif await self._replay_one(spool, spooled):
                    continue
            except Exception as exc:
                log.warning("spool replay waits (%d batches spooled): %s", len(spool), exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replay_wakeup.wait(), self._config.spool_retry_interval)

    async def _replay_one(self, spool: Spool, spooled: Spooled) -> bool:
        """Write one spooled batch; False when the store cannot take it now. It counts as an
        insert: a busy retry waits for it to end, and it waits while one runs alone."""
        try:
            await self._may_insert.wait()
            await self._write_counted(spooled.batch)
        except StoreRejected as exc:
            log.warning("spooled batch %s refused as data, storing it by request: %s", spooled.path.name, exc)
            self._store_failing = False  # it answered: it is up
            if any(await self._store_pieces(_pieces(spooled.batch, []), set_aside=True)):
                return False  # a piece could not be made durable: all again later, same tokens
            await asyncio.to_thread(spool.remove, spooled)
            return True
        except StorageError as exc:
            log.info("spool replay waits for the store (%d batches spooled): %s", len(spool), exc)
            return False
        await asyncio.to_thread(spool.remove, spooled)
        self._store_failing = False  # the store writes again: new batches need not queue in the spool
        self.written_spans += len(spooled.batch)
        log.info("replayed %d spooled spans (%d batches left)", len(spooled.batch), len(spool))
        return True


def _merge(batches: list[Batch]) -> Batch:
    if all(isinstance(b, OtlpPayload) for b in batches):
        return OtlpPayload.concat([b for b in batches if isinstance(b, OtlpPayload)])
    return SpanBatch.concat([b for b in batches if isinstance(b, SpanBatch)])


def _pieces(batch: Batch, group: list[_Pending]) -> list[Batch]:
    """`batch` as the requests it was merged from (OTLP: one piece per framed message, each
    with a token derived from the batch's, so a piece stored twice is stored once)."""
    if isinstance(batch, OtlpPayload):
        return list[Batch](split_requests(batch))
    return [item.batch for item in group] or [batch]


def _size(batch: Batch) -> int:
    """Bytes an insert of `batch` carries (OTLP payloads; column batches count by spans only)."""
    return len(batch.data) if isinstance(batch, OtlpPayload) else 0


def _settle(items: list[_Pending], error: Exception | None) -> None:
    for item in items:
        if item.done.done():
            continue
        if error is None:
            item.done.set_result(None)
        else:
            item.done.set_exception(error)
