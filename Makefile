# Tracehouse developer commands. `make test` is the CI gate; `make demo` the main job.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGE_DIRS := tracehouse instrumentation collector storage query dashboard demo

.PHONY: help install test lint typecheck pytest demo serve bench-ingest bench-ingest-long bench-breakers bench-query bench-trace-page bench-breaker-wall bench-instrumentation reliability reliability-long clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing tracehouse[server,dev] (first run takes a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --progress-bar off -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv with the server and dev extras

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check $(PACKAGE_DIRS) tests compose

typecheck: $(STAMP)  ## mypy --strict on the package (through a link tree of the tracehouse.* namespace)
	@rm -rf build/typecheck && mkdir -p build/typecheck/tracehouse
	@for f in tracehouse/*; do ln -s "$(CURDIR)/$$f" build/typecheck/tracehouse/; done
	@for d in $(filter-out tracehouse,$(PACKAGE_DIRS)); do ln -s "$(CURDIR)/$$d" build/typecheck/tracehouse/$$d; done
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p tracehouse

pytest: $(STAMP)  ## the whole pytest suite (unit, integration, end-to-end)
	$(BIN)/pytest

test: lint typecheck pytest  ## lint, type check and every test tier

reliability: $(STAMP)  ## the reliability tier alone: crash, overload, hostile input, fuzz, instrumentation faults (~3 min)
	$(BIN)/pytest tests/reliability -s

reliability-long: $(STAMP)  ## long crash (20 kills) and overload (120 s) runs; figures for docs/reliability.md (~6 min)
	$(BIN)/python -m benchmarks.reliability --kills 20 --storm-seconds 120

demo: $(STAMP)  ## the server plus instrumented demo services with traffic; prints the UI address
	$(BIN)/tracehouse demo

serve: $(STAMP)  ## the all-in-one server on the default ports
	$(BIN)/tracehouse serve

bench-ingest: $(STAMP)  ## sustained OTLP/HTTP ingest into tracehouse serve vs the in-process limit (~2 min)
	$(BIN)/python -m benchmarks.ingest --seconds 60

bench-ingest-long: $(STAMP)  ## the same for 5 minutes: what merges cost once they have piled up (~8 min)
	$(BIN)/python -m benchmarks.ingest --seconds 300

bench-breakers: $(STAMP)  ## overhead of a breaker per call (sync, async) vs a bare call and pybreaker (~30 s)
	$(BIN)/python -m benchmarks.breakers

bench-query: $(STAMP)  ## query latency on 10M spans (1M traces) in the embedded store vs Jaeger's published figures (~10 min)
	$(BIN)/python -m benchmarks.query

bench-trace-page: $(STAMP)  ## time until a 10,000-span trace page is interactive, headless Chromium (~1 min)
	$(BIN)/python -m benchmarks.trace_page

bench-breaker-wall: $(STAMP)  ## cost of one live update of a 200-breaker wall vs 20, headless Chromium (~3 min)
	$(BIN)/python -m benchmarks.breaker_wall

bench-instrumentation: $(STAMP)  ## latency per request of a FastAPI endpoint: tracehouse-run vs opentelemetry-instrument vs none (~1 min)
	$(BIN)/python -m benchmarks.instrumentation

clean:  ## remove the virtualenv and build output
	rm -rf $(VENV) build *.egg-info
