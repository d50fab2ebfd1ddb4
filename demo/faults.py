"""The demo's scripted fault: payments is healthy, gets slow, then fails, then recovers — on a
repeating cycle, so breakers open, fallbacks answer and breakers close while the demo runs.

Pure arithmetic on a wall clock shared by the payments service (which misbehaves) and the runner
(which tells the user what is happening); it never sleeps and never touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["PHASE_STARTS", "SLOW_SECONDS", "FaultSchedule", "Phase"]


class Phase(StrEnum):
    HEALTHY = "healthy"
    SLOW = "slow"
    FAILING = "failing"
    RECOVERING = "recovering"


#: Where each phase starts, as a share of the cycle: a quarter healthy (the map fills), a quarter
#: slow, a fifth failing, the rest recovering (healthy again, while the breakers close).
PHASE_STARTS = ((0.0, Phase.HEALTHY), (0.25, Phase.SLOW), (0.5, Phase.FAILING), (0.7, Phase.RECOVERING))

#: Extra latency of a slow call: well past the 0.5 s its callers allow, so they time out.
SLOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class FaultSchedule:
    """``cycle`` seconds per round (0: always healthy), the first round starting at ``epoch``
    (seconds since the Unix epoch, so separate processes agree on the phase)."""

    cycle: float
    epoch: float = 0.0

    def phase(self, now: float) -> Phase:
        """The phase at wall-clock time ``now``."""
        if self.cycle <= 0:
            return Phase.HEALTHY
        position = ((now - self.epoch) % self.cycle) / self.cycle
        current = Phase.HEALTHY
        for start, phase in PHASE_STARTS:
            if position >= start:
                current = phase
        return current

    def extra_latency(self, now: float) -> float:
        """Seconds a call made at ``now`` waits on top of its usual latency."""
        return SLOW_SECONDS if self.phase(now) is Phase.SLOW else 0.0

    def failing(self, now: float) -> bool:
        """True when every call made at ``now`` must fail."""
        return self.phase(now) is Phase.FAILING
