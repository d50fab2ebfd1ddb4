"""Spans of children forked by ``multiprocessing`` reach the exporter: such a child leaves through
``os._exit``, which skips the ``atexit`` flush, so without its own flush the batch is lost.

Real SDK, real batch processor, a real exporter (the SDK's console exporter writing to a file that
the forked child inherits), real forked processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from tracehouse.instrumentation import InstrumentationConfig, _setup

FORK = multiprocessing.get_context("fork")
_provider: TracerProvider | None = None  # the provider the forked children inherit


@pytest.fixture
def spans_file(tmp_path: Path) -> Iterator[Path]:
    global _provider
    path = tmp_path / "spans.jsonl"
    with path.open("a") as out:
        # Default batch delay (5 s): nothing would be exported before the child exits on its own.
        config = InstrumentationConfig(service_name="forking", auto_breakers="off")
        _provider = _setup.build_provider(config, ConsoleSpanExporter(out=out))
        try:
            yield path
        finally:
            _provider.shutdown()
            _provider = None


def work(name: str) -> str:
    assert _provider is not None
    _provider.get_tracer("test").start_span(name).end()
    return name


def test_a_forked_process_flushes_its_spans_when_it_ends(spans_file: Path) -> None:
    child = FORK.Process(target=work, args=("in a child process",))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert '"name": "in a child process"' in spans_file.read_text()


def test_pool_workers_flush_their_spans_when_the_pool_closes(spans_file: Path) -> None:
    pool = FORK.Pool(2)
    try:
        assert pool.map(work, ["task 1", "task 2", "task 3"]) == ["task 1", "task 2", "task 3"]
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    text = spans_file.read_text()
    assert all(f'"name": "task {n}"' in text for n in (1, 2, 3))
