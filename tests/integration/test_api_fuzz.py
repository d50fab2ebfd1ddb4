"""Property-based fuzzing of every read API route from the app's own OpenAPI document
(schemathesis): generated and schema-violating parameters must never produce a 5xx. Runs
in process, the real query app over the real store holding golden_data's traces.

Drives schemathesis through its Python API (operation strategies run by Hypothesis), not its
pytest plugin, whose lazy-fixture loader does not run on pytest 9."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

#: An endless stream: its parameters are fuzzed by tests/reliability against a real server.
STREAMS = r"^/turbine\.stream$"
EXAMPLES = int(os.environ.get("TRACEHOUSE_FUZZ_EXAMPLES", "25"))


def test_no_generated_request_gets_a_5xx(golden_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", golden_app).exclude(path_regex=STREAMS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, [op.label for op in operations]  # every API, not a broken document
    failed: dict[str, str] = {}
    for operation in operations:
        try:
            _fuzz(operation)
        except (Exception, BaseExceptionGroup) as exc:  # one report naming every failing route
            failed[operation.label] = str(exc)[:2000]
    assert not failed, "\n\n".join(f"{label}:\n{text}" for label, text in failed.items())


def _fuzz(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    run()
