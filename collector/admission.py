"""Admission by bytes: how much request data the collector holds at once.

Bodies are reserved before they are read (by Content-Length, or the body limit when it is
unknown) and again once inflated; the reservation lasts until the sender is answered. Past
the budget a request is refused at once with a retryable answer, so memory is bounded by
configuration, not by how many senders connect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tracehouse.collector.errors import Overloaded


class ByteBudget:
    """Used from one event loop (no locking needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            self.used -= lease.held


class Lease:
    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.held = 0

    def reserve(self, size: int) -> None:
        """Hold `size` more bytes, or raise `Overloaded` when the budget cannot take them."""
        budget = self._budget
        if budget.used + size > budget.limit:
            raise Overloaded(
                f"the collector holds {budget.used} bytes of requests and takes at most {budget.limit}; retry later"
            )
        budget.used += size
        self.held += size
