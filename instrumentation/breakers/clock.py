"""The wall clock of the breakers, bulkheads and reporter, in one place so tests can move time.

Callers look ``clock.wall`` up at each call (as cheap as ``time.time``), so a test replaces it
once (``monkeypatch.setattr(clock, "wall", fake)``) instead of sleeping. Nothing else lives here.
"""

from __future__ import annotations

from time import time

__all__ = ["wall"]

#: Epoch seconds: one-second buckets, open-state deadlines.
wall = time
