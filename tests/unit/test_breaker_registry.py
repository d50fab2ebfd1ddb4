"""One breaker per name, as Hystrix keys commands: a second breaker object taking a live breaker's
name is warned about (the first one's counts and state stop being reported), and ``breaker(name)``
shares the one registered."""

from __future__ import annotations

import logging

import pytest

from tracehouse.instrumentation.breakers import REGISTRY, CircuitBreaker, Registry, breaker

pytestmark = pytest.mark.usefixtures("clean_breakers")


def test_a_second_breaker_with_a_taken_name_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    first = CircuitBreaker("payments.charge", register=False)
    registry.add(first)
    registry.add(first)  # the same object again: nothing to say
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="tracehouse.breakers"):
        registry.add(CircuitBreaker("payments.charge", register=False))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "'payments.charge'" in record.getMessage()
    assert "breaker('payments.charge')" in record.getMessage()


def test_breaker_by_name_shares_one_circuit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tracehouse.breakers"):
        one = breaker("inventory.reserve")
        two = breaker("inventory.reserve")
    assert one is two is REGISTRY.get("inventory.reserve")
    assert not caplog.records
