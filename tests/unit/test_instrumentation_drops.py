"""Unit tests of the outage accounting: spans dropped from the full queue and lost in failed exports are
counted, not logged one by one, and reported in one line with the first export that works again.

Runs on the SDK's real tracer provider and batch processor, built by ``_setup.build_provider``; the
exporter is a test exporter whose first export hangs (a frozen collector) and then fails, or the SDK's
OTLP/HTTP exporter sending to a stand-in collector on loopback (tests/stand_in_collectors.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from tests.stand_in_collectors import down_collector, http_collector, stalling_collector
from tracehouse.instrumentation import InstrumentationConfig, _setup
from tracehouse.instrumentation._drops import DROPS, EXPORTER_LOGGER, QUIET, SDK_QUEUE_LOGGER

QUEUE = 8
URL = "http://127.0.0.1:4318/v1/traces"


class OutageExporter(SpanExporter):
    """The first ``outage`` exports hang until released and then fail; later ones succeed and keep the spans."""

    def __init__(self, outage: int) -> None:
        self.outage = outage
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.calls <= self.outage:
            self.entered.set()
            self.release.wait(30)
            return SpanExportResult.FAILURE
        self.exported += spans
        return SpanExportResult.SUCCESS


@pytest.fixture(autouse=True)
def small_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A queue of QUEUE spans, exported QUEUE at a time, and no timer: exports happen when the queue is full."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", str(QUEUE))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(QUEUE))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    DROPS.take()
    yield
    DROPS.take()
    QUIET.outage = False


def provider_for(exporter: SpanExporter, url: str = "http://127.0.0.1:4318") -> TracerProvider:
    return _setup.build_provider(InstrumentationConfig(endpoint=url, auto_breakers="off"), exporter)


def make_spans(tracer: Tracer, count: int) -> None:
    for _ in range(count):
        with tracer.start_as_current_span("GET /orders"):
            pass


def messages(records: list[logging.LogRecord], logger: str) -> list[str]:
    return [r.getMessage() for r in records if r.name == logger]


def test_an_outage_is_reported_once_with_what_it_cost(caplog: pytest.LogCaptureFixture) -> None:
    exporter = OutageExporter(outage=1)
    provider = provider_for(exporter)
    tracer = provider.get_tracer("test")
    try:
        with caplog.at_level(logging.WARNING):
            make_spans(tracer, QUEUE)  # a full batch: the worker takes it and hangs in the export
            assert exporter.entered.wait(10)
            make_spans(tracer, QUEUE + 5)  # the queue fills again, then 5 spans are dropped
            exporter.release.set()  # that export fails; the next one, of the queued spans, succeeds
            assert provider.force_flush()
    finally:
        provider.shutdown()

    assert messages(caplog.records, SDK_QUEUE_LOGGER) == ["Queue full, dropping Span."]
    assert messages(caplog.records, "tracehouse.instrumentation") == [
        f"tracehouse: exporting to {URL} works again; 13 spans were lost while it did not "
        "(5 dropped from the full queue, 8 in failed exports)"
    ]
    assert len(exporter.exported) == QUEUE


def test_no_loss_no_report(caplog: pytest.LogCaptureFixture) -> None:
    exporter = OutageExporter(outage=0)
    provider = provider_for(exporter)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                make_spans(provider.get_tracer("test"), QUEUE)
                assert provider.force_flush()
    finally:
        provider.shutdown()
    assert len(exporter.exported) == 3 * QUEUE
    assert not messages(caplog.records, "tracehouse.instrumentation")


def sdk_record(msg: str) -> logging.LogRecord:
    return logging.LogRecord(SDK_QUEUE_LOGGER, logging.WARNING, __file__, 1, msg, ("Span",), None)


def test_the_first_drop_of_an_outage_is_logged_and_the_rest_counted() -> None:
    assert [DROPS.filter(sdk_record("Queue full, dropping %s.")) for _ in range(4)] == [True, False, False, False]
    assert DROPS.take() == 4
    assert DROPS.filter(sdk_record("Queue full, dropping %s."))  # a new outage is told again
    assert DROPS.take() == 1


def test_other_records_of_the_sdk_logger_pass() -> None:
    assert DROPS.filter(sdk_record("Exception while exporting %s."))
    assert DROPS.take() == 0


def test_the_counter_comes_before_the_sdks_duplicate_filter() -> None:
    provider_for(OutageExporter(outage=0)).shutdown()
    provider_for(OutageExporter(outage=0)).shutdown()
    filters = logging.getLogger(SDK_QUEUE_LOGGER).filters
    assert filters.index(DROPS) == 0
    assert filters.count(DROPS) == 1


def otlp_exporter(url: str, timeout_s: float = 10) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=timeout_s)


def test_a_stopping_process_gives_an_absent_collector_a_second_not_ten(caplog: pytest.LogCaptureFixture) -> None:
    # The SDK's exporter retries a refused batch for up to 10 s (here: every second, as Retry-After
    # asks); a short script under tracehouse-run waited that long at exit. Now one more try at most.
    with http_collector(503) as collector, caplog.at_level(logging.WARNING):
        provider = provider_for(otlp_exporter(collector.url), collector.url)
        make_spans(provider.get_tracer("test"), 3)
        provider.shutdown()
    assert 1 <= collector.contacts <= 3  # 0, 1 and 2 s at most, as Retry-After asks; ~10 before
    assert messages(caplog.records, "tracehouse.instrumentation") == [
        f"tracehouse: 3 spans were not sent: {collector.url}/v1/traces did not take them before the process stopped"
    ]


def test_a_stopping_process_sends_its_last_spans_to_a_collector_that_answers() -> None:
    with http_collector(200) as collector:
        provider = provider_for(otlp_exporter(collector.url), collector.url)
        make_spans(provider.get_tracer("test"), 3)
        provider.shutdown()
    assert collector.contacts == 1


def test_a_stopping_process_sends_all_its_spans_to_a_slow_collector(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The grace is for a collector that makes no progress: one taking 0.6 s per export gets the whole
    # queue, however long that takes (the first version gave every collector 1 s, then dropped the rest).
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    with http_collector(200, delay_s=0.6) as collector, caplog.at_level(logging.WARNING):
        provider = provider_for(otlp_exporter(collector.url), collector.url)
        make_spans(provider.get_tracer("test"), 5 * QUEUE)
        provider.shutdown()
    assert collector.contacts == 5  # 3 s of exports, past the grace
    assert not messages(caplog.records, "tracehouse.instrumentation")


def test_the_exporters_complaints_are_told_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    # Before: three retries and a failure logged for every batch while the collector was down.
    with down_collector() as collector, caplog.at_level(logging.WARNING):
        provider = provider_for(otlp_exporter(collector.url, timeout_s=0.5), collector.url)
        try:
            for _ in range(3):
                make_spans(provider.get_tracer("test"), QUEUE)
                provider.force_flush()
            told = messages(caplog.records, EXPORTER_LOGGER)
        finally:
            provider.shutdown()
    assert len(told) == 1, told  # the first failed export's "due to timeout, max retries or shutdown"
    assert messages(caplog.records, "tracehouse.instrumentation") == [
        f"tracehouse: {3 * QUEUE} spans were not sent: {collector.url}/v1/traces did not take them before "
        "the process stopped"
    ]


def test_a_stopping_process_gives_up_a_collector_that_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    # The export's own timeout is longer than the test's: waiting it out (as the SDK's shutdown
    # does) fails the test; before, a short script hung the exporter's 10 s at exit.
    with stalling_collector() as collector, caplog.at_level(logging.WARNING):
        provider = provider_for(otlp_exporter(collector.url, timeout_s=3600), collector.url)
        make_spans(provider.get_tracer("test"), 3)
        provider.shutdown()
        assert collector.contacts == 1
    assert messages(caplog.records, "tracehouse.instrumentation") == [
        f"tracehouse: 3 spans were not sent: {collector.url}/v1/traces did not take them before the process stopped"
    ]
