"""Crash: `kill -9` of `tracehouse serve` while senders stream OTLP/HTTP spans, then a restart
on the same data directory, several times over. Every span whose request was acknowledged is
stored exactly once and whole; a span nobody acknowledged may be missing but never doubled;
a refused span is never stored. `make reliability-long` runs the same with many more kills."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import contract_breaches, stored_traces
from tests.reliability.scenarios import crash_repeatedly

pytestmark = pytest.mark.reliability

KILLS = 3
SENDERS = 12  # enough that, at each kill, batches answered from the write-ahead log are mid-insert
ACKS_BEFORE_KILL = 40  # requests acknowledged in each life before the kill (up to twice as many)


def test_kill_9_loses_and_doubles_nothing_acknowledged(tmp_path: Path) -> None:
    run = crash_repeatedly(tmp_path / "data", KILLS, SENDERS, ACKS_BEFORE_KILL)
    stored = stored_traces(run.data_dir)
    ledger = run.ledger
    print(
        f"crash: {run.kills} kills, {ledger.acked_spans()} spans acknowledged, {len(ledger.unsettled)} requests "
        f"unsettled at the kills ({len(set(ledger.unsettled) & set(stored))} of them stored anyway, whole), "
        f"{len(ledger.refused)} refused; {run.logged_at_kills()} batches of the write-ahead log replayed at "
        f"the restarts; answers {dict(ledger.statuses)}"
    )
    assert contract_breaches(ledger, stored) == [], "\n".join(run.logs)
    assert len(ledger.acked) >= run.kills * ACKS_BEFORE_KILL
    cut_off = sum(n for status, n in ledger.statuses.items() if status not in ("200", "ConnectError"))
    assert cut_off, f"no request was in flight at any kill, so no crash was tested: {ledger.statuses}"
