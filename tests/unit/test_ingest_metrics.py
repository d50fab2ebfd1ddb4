"""The collector's own counters and its log of refused requests (one line per protocol and
status at most every `REFUSAL_LOG_SECONDS`, with how many were not logged)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tracehouse.collector import metrics as metrics_module
from tracehouse.collector.metrics import REFUSAL_LOG_SECONDS, IngestMetrics


def samples(metrics: IngestMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_decoded_spans_are_counted_received_and_rejected_by_reason() -> None:
    metrics = IngestMetrics()
    metrics.decoded("zipkin", kept=0, rejected=3, outside_window=1)  # a request whose spans were all refused
    metrics.decoded("zipkin", kept=5, rejected=0, outside_window=0)
    found = samples(metrics)
    assert found[("tracehouse_ingest_spans_received_total", (("protocol", "zipkin"),))] == 8
    assert found[("tracehouse_ingest_spans_rejected_total", (("protocol", "zipkin"), ("reason", "invalid")))] == 2
    outside = (("protocol", "zipkin"), ("reason", "outside_time_window"))
    assert found[("tracehouse_ingest_spans_rejected_total", outside)] == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_refusals_are_counted_each_and_logged_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    monkeypatch.setattr(metrics_module, "time", clock)
    metrics = IngestMetrics()
    with caplog.at_level(logging.INFO, logger="tracehouse.collector.metrics"):
        for _ in range(5):
            metrics.refuse("otlp_http", "400", "body is not valid JSON")
        metrics.refuse("otlp_http", "401", "missing or wrong ingest token")
        clock.now += REFUSAL_LOG_SECONDS
        metrics.refuse("otlp_http", "400", "body is not valid JSON: the last one")
    assert [r.getMessage() for r in caplog.records] == [
        "otlp_http request refused with 400: body is not valid JSON",
        "otlp_http request refused with 401: missing or wrong ingest token",
        "otlp_http request refused with 400 (and 4 more since the last line): body is not valid JSON: the last one",
    ]
    refused = samples(metrics)
    assert refused[("tracehouse_ingest_requests_refused_total", (("protocol", "otlp_http"), ("status", "400")))] == 6
